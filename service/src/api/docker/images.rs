//! Images as the docker CLI sees them: the project's images stored in
//! Nest (`docker load` puts one there; `docker images` lists them; `docker
//! run <tag>` runs one), and registry references, which each instance
//! pulls when a container needs them (`docker pull` only records that the
//! project wants the reference: Nest itself never downloads it).

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde_json::{Value, json};

use super::containers::{flag, query_map};
use super::error::DockerError;
use super::{DockerContext, DockerState};
use crate::app::StoredImage;

/// A reference as Docker compares them: without the default registry
/// and `library/`, with `:latest` when it has no tag or digest.
pub fn normalize(reference: &str) -> String {
    let short = reference
        .strip_prefix("docker.io/library/")
        .or_else(|| reference.strip_prefix("index.docker.io/library/"))
        .or_else(|| reference.strip_prefix("docker.io/"))
        .unwrap_or(reference);
    let last = short.rsplit('/').next().unwrap_or(short);
    if last.contains(':') || short.contains('@') {
        short.to_owned()
    } else {
        format!("{short}:latest")
    }
}

fn unix(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(time::OffsetDateTime::unix_timestamp)
        .unwrap_or(0)
}

/// The tags the docker CLI shows for a stored image: its archive's own,
/// or, for a root filesystem Nest converted (tagged only with Nest's
/// internal `nest/image:<uuid>`), the name it was uploaded under.
pub fn docker_tags(image: &StoredImage) -> Vec<String> {
    let internal = format!(
        "{}:{}",
        nest_images::archive::CONVERTED_REPOSITORY,
        image.id
    );
    let own: Vec<String> = image
        .repo_tags
        .iter()
        .filter(|t| **t != internal)
        .cloned()
        .collect();
    if !own.is_empty() {
        return own;
    }
    image.name.as_deref().map(normalize).into_iter().collect()
}

fn summary(image: &StoredImage) -> Value {
    json!({
        "Id": format!("sha256:{}", image.sha256),
        "ParentId": "",
        "RepoTags": docker_tags(image),
        "RepoDigests": [],
        "Created": unix(&image.created_at),
        "Size": image.size_bytes,
        "SharedSize": -1,
        "Labels": {},
        "Containers": -1,
        "Nest": {"Uuid": image.id, "Name": image.name},
    })
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The stored image a name, tag, uuid or id prefix names.
async fn find(
    state: &DockerState,
    cx: &DockerContext,
    name: &str,
) -> Result<StoredImage, DockerError> {
    let wanted = normalize(name);
    let id = name.trim_start_matches("sha256:");
    state
        .app()
        .list_images(&cx.call)
        .await?
        .into_iter()
        .find(|i| {
            i.id == name
                || (id.len() >= 4 && i.sha256.starts_with(id))
                || i.repo_tags.iter().any(|t| normalize(t) == wanted)
                // The upload name, as `docker run NAME` finds it.
                || i.name.as_deref().map(normalize).as_ref() == Some(&wanted)
        })
        .ok_or_else(|| DockerError::NoSuchImage(name.to_owned()))
}

/// `GET /images/json`.
pub async fn list(
    State(state): State<DockerState>,
    cx: DockerContext,
) -> Result<Response, DockerError> {
    let images = state.app().list_images(&cx.call).await?;
    Ok(json_response(
        StatusCode::OK,
        &Value::Array(images.iter().map(summary).collect()),
    ))
}

/// `GET /images/{name}/json` and `DELETE /images/{name}` (the name may
/// hold slashes, so the route takes the rest of the path).
pub async fn inspect(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(rest): Path<String>,
) -> Result<Response, DockerError> {
    let Some(name) = rest.strip_suffix("/json") else {
        return Err(DockerError::RouteNotFound);
    };
    let image = find(&state, &cx, name).await?;
    let mut view = summary(&image);
    view["Os"] = json!("linux");
    view["Architecture"] = json!(std::env::consts::ARCH);
    view["Config"] = json!({});
    view["RootFS"] = json!({"Type": "layers"});
    Ok(json_response(StatusCode::OK, &view))
}

/// `DELETE /images/{name}`: deletes the stored image.
pub async fn remove(
    State(state): State<DockerState>,
    cx: DockerContext,
    Path(name): Path<String>,
) -> Result<Response, DockerError> {
    let image = find(&state, &cx, &name).await?;
    state.app().delete_image(&cx.call, &image.id).await?;
    let mut answer: Vec<Value> = docker_tags(&image)
        .iter()
        .map(|t| json!({"Untagged": t}))
        .collect();
    answer.push(json!({"Deleted": format!("sha256:{}", image.sha256)}));
    Ok(json_response(StatusCode::OK, &Value::Array(answer)))
}

fn progress(lines: Vec<Value>) -> Response {
    let body: String = lines.into_iter().map(|l| l.to_string() + "\n").collect();
    json_response_text(body)
}

fn json_response_text(body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `POST /images/create?fromImage=&tag=` (`docker pull`, and `docker run`
/// after a 404): a stored image is there already; a registry reference is
/// recorded for the project, for its instances to pull.
pub async fn pull(
    State(state): State<DockerState>,
    cx: DockerContext,
    RawQuery(raw): RawQuery,
) -> Result<Response, DockerError> {
    let query = query_map(raw);
    if query.get("fromSrc").is_some_and(|s| !s.is_empty()) {
        return Err(DockerError::Unsupported(
            "docker import: use docker load with a docker save archive",
        ));
    }
    let from = query
        .get("fromImage")
        .filter(|f| !f.is_empty())
        .ok_or_else(|| DockerError::Invalid("fromImage is required".into()))?;
    let reference = match query.get("tag").filter(|t| !t.is_empty()) {
        Some(tag) if tag.starts_with("sha256:") => format!("{from}@{tag}"),
        Some(tag) => format!("{from}:{tag}"),
        None => from.clone(),
    };
    if nest_images::ImageRef::parse(&reference).is_err()
        || reference.len() > 255
        || reference.chars().any(char::is_whitespace)
    {
        return Err(DockerError::Invalid(format!(
            "invalid reference format: {reference}"
        )));
    }
    let wanted = normalize(&reference);
    if let Ok(image) = find(&state, &cx, &reference).await {
        return Ok(progress(vec![
            json!({"status": format!("{wanted} is stored in Nest ({})", image.id)}),
            json!({"status": format!("Status: Image is up to date for {wanted}")}),
        ]));
    }
    state.remember_pull(&cx.call.caller.project_id, wanted.clone());
    Ok(progress(vec![
        json!({"status": format!("Nest does not download {wanted} itself: each instance pulls it when a container needs it")}),
        json!({"status": format!("Status: Image is up to date for {wanted}")}),
    ]))
}

/// `POST /images/load` (`docker load`): stores a `docker save` archive in
/// Nest for the project.
pub async fn load(
    State(state): State<DockerState>,
    cx: DockerContext,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<Response, DockerError> {
    let quiet = flag(&query_map(raw), "quiet");
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let image = state
        .app()
        .upload_image(&cx.call, None, Box::pin(reader))
        .await?;
    let mut lines: Vec<Value> = image
        .repo_tags
        .iter()
        .map(|t| json!({"stream": format!("Loaded image: {t}\n")}))
        .collect();
    if lines.is_empty() {
        lines.push(json!({"stream": format!("Loaded image ID: sha256:{}\n", image.sha256)}));
    }
    let _ = quiet;
    let body: String = lines.into_iter().map(|l| l.to_string() + "\n").collect();
    let chunks = futures_util::stream::once(async move { Ok::<_, Infallible>(Bytes::from(body)) });
    let mut response = Response::new(Body::from_stream(chunks));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalize_as_docker_compares_them() {
        assert_eq!(normalize("busybox"), "busybox:latest");
        assert_eq!(normalize("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(normalize("nest-test/busybox:1"), "nest-test/busybox:1");
        assert_eq!(normalize("registry:5000/app"), "registry:5000/app:latest");
        assert_eq!(normalize("app@sha256:ab"), "app@sha256:ab");
    }
}
