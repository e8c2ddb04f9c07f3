//! `/v1/nest/images`: a Nest extension for images Nest stores itself, so
//! that containers can run without any registry. Upload a `docker save`
//! tarball or a root filesystem tarball as the request body; run it by
//! naming the returned uuid as a container's `image`. The bodies are
//! [`nest_api_types::zun::images`]'s.
//!
//! Zun's own `/v1/images` (list, show, delete; `openstack appcontainer
//! image ...`) answers the same stored images in Zun's image view; its
//! pull onto a host is refused, since Nest pulls a registry image on the
//! instance that runs it.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use futures_util::TryStreamExt;
use nest_api_types::zun::{ImageCollection, ImageView, ZunImageCollection, ZunImageView};
use serde::Deserialize;

use super::containers::NoParams;
use super::extract::{QueryParams, RequestContext, ZunPath};
use super::views::resource_links;
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::{AppError, StoredImage};

/// Query of an upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// A name for the image, shown in lists.
    #[serde(default)]
    name: Option<String>,
}

fn view(image: StoredImage) -> ImageView {
    ImageView {
        uuid: image.id,
        name: image.name,
        size: image.size_bytes,
        sha256: image.sha256,
        created_at: image.created_at,
        repo_tags: image.repo_tags,
    }
}

/// Stores an image uploaded as the request body (an uncompressed tar).
#[utoipa::path(post, path = "/v1/nest/images", tag = "images",
    params(UploadQuery),
    responses((status = 201, body = ImageView), (status = 400, description = "not an image tarball")))]
pub async fn upload(
    State(state): State<ApiState>,
    cx: RequestContext,
    QueryParams(query): QueryParams<UploadQuery>,
    body: Body,
) -> Result<(StatusCode, Json<ImageView>), ApiError> {
    if let Some(name) = &query.name
        && (name.is_empty() || name.len() > 255 || name.chars().any(char::is_control))
    {
        return Err(ApiError::InvalidParameter {
            name: "name".into(),
            reason: "must be 1 to 255 printable characters".into(),
        });
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let image = state
        .app()
        .upload_image(&cx.call, query.name, Box::pin(reader))
        .await?;
    Ok((StatusCode::CREATED, Json(view(image))))
}

/// Lists the caller's project's stored images.
#[utoipa::path(get, path = "/v1/nest/images", tag = "images",
    responses((status = 200, body = ImageCollection)))]
pub async fn list(
    State(state): State<ApiState>,
    cx: RequestContext,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<Json<ImageCollection>, ApiError> {
    let images = state.app().list_images(&cx.call).await?;
    Ok(Json(ImageCollection {
        images: images.into_iter().map(view).collect(),
    }))
}

/// Deletes a stored image.
#[utoipa::path(delete, path = "/v1/nest/images/{image}", tag = "images",
    params(("image" = String, Path, description = "image uuid")),
    responses((status = 204), (status = 404, description = "no such image")))]
pub async fn delete(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(image): ZunPath<String>,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<StatusCode, ApiError> {
    state.app().delete_image(&cx.call, &image).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `repo` and `tag` of a stored image: its upload name, else the first of
/// its archive's tags (`name[:tag]`, the tag after the last `:` that
/// follows the last `/`).
fn repo_and_tag(image: &StoredImage) -> (Option<String>, Option<String>) {
    let Some(name) = image.name.as_ref().or(image.repo_tags.first()) else {
        return (None, None);
    };
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(colon) => {
            let at = slash + colon;
            (Some(name[..at].to_owned()), Some(name[at + 1..].to_owned()))
        }
        None => (Some(name.clone()), Some("latest".to_owned())),
    }
}

fn zun_view(image: StoredImage, cx: &RequestContext) -> ZunImageView {
    let (repo, tag) = repo_and_tag(&image);
    ZunImageView {
        links: resource_links(&cx.base_url, "images", &image.id),
        uuid: image.id,
        image_id: None,
        repo,
        tag,
        size: image.size_bytes,
        project_id: cx.call.caller.project_id.to_string(),
        image_pull_policy: None,
        host: None,
    }
}

/// Zun's image list (`openstack appcontainer image list`): the caller's
/// project's stored images.
#[utoipa::path(get, path = "/v1/images", tag = "images",
    responses((status = 200, body = ZunImageCollection)))]
pub async fn zun_list(
    State(state): State<ApiState>,
    cx: RequestContext,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<Json<ZunImageCollection>, ApiError> {
    let images = state.app().list_images(&cx.call).await?;
    Ok(Json(ZunImageCollection {
        images: images.into_iter().map(|i| zun_view(i, &cx)).collect(),
        next: None,
    }))
}

/// Refused: Nest pulls a registry image when a container names it, on
/// the instance that runs it.
#[utoipa::path(post, path = "/v1/images", tag = "images",
    responses((status = 400, description = "not supported: images are pulled at create time")))]
pub async fn zun_pull(cx: RequestContext) -> Result<StatusCode, ApiError> {
    let _ = cx;
    Err(ApiError::NotSupported {
        what: "pulling an image onto a host",
        instead: "a registry image is pulled on the instance when a container names it; \
                  upload an image to the project's store with POST /v1/nest/images",
    })
}

/// One stored image of the caller's project, in Zun's view.
#[utoipa::path(get, path = "/v1/images/{image}", tag = "images",
    params(("image" = String, Path, description = "image uuid")),
    responses((status = 200, body = ZunImageView), (status = 404, description = "no such image")))]
pub async fn zun_show(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(image): ZunPath<String>,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<Json<ZunImageView>, ApiError> {
    let found = state
        .app()
        .list_images(&cx.call)
        .await?
        .into_iter()
        .find(|i| i.id == image)
        .ok_or(AppError::StoredImageNotFound(image))?;
    Ok(Json(zun_view(found, &cx)))
}

/// Deletes a stored image (`openstack appcontainer image delete`).
#[utoipa::path(delete, path = "/v1/images/{image}", tag = "images",
    params(("image" = String, Path, description = "image uuid")),
    responses((status = 204), (status = 404, description = "no such image")))]
pub async fn zun_delete(
    state: State<ApiState>,
    cx: RequestContext,
    image: ZunPath<String>,
    query: QueryParams<NoParams>,
) -> Result<StatusCode, ApiError> {
    delete(state, cx, image, query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: Option<&str>, tags: &[&str]) -> StoredImage {
        StoredImage {
            id: "u".into(),
            name: name.map(str::to_owned),
            size_bytes: 1,
            sha256: String::new(),
            created_at: String::new(),
            repo_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn repo_and_tag_come_from_the_name_or_the_archive() {
        let pair = |n, t: &[&str]| repo_and_tag(&image(n, t));
        let some = |r: &str, t: &str| (Some(r.to_owned()), Some(t.to_owned()));
        assert_eq!(pair(Some("web:1.2"), &["x:y"]), some("web", "1.2"));
        assert_eq!(pair(Some("web"), &[]), some("web", "latest"));
        assert_eq!(pair(None, &["reg:5000/app:v1"]), some("reg:5000/app", "v1"));
        assert_eq!(
            pair(None, &["reg:5000/app"]),
            some("reg:5000/app", "latest")
        );
        assert_eq!(pair(None, &[]), (None, None));
    }
}
