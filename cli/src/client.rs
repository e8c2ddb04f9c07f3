//! Nest's REST API, as `osc` calls it: one [`Session`] (the HTTP client, the
//! service's URL and the token) with a method per request, each built and
//! read with `nest-api-types`. Errors come back as [`CliError::Api`] with
//! the service's own words.

use std::time::Duration;

use nest_api_types::zun::{
    ContainerCollection, ContainerView, CreateContainerBody, CreateDockerCertificateBody,
    DeleteContainerQuery, DockerCertificateView, ErrorBody, ExecView, ExecuteQuery, HostCollection,
    HostView, ImageCollection, ImageView, KillQuery, ListContainersQuery, LogsQuery, QuotaQuery,
    QuotaUsagesView, ResizeQuery, TimeoutQuery, UploadImageQuery,
};
use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::config::CloudSettings;
use crate::error::CliError;

/// The microversion `osc` speaks.
pub const API_VERSION: &str = "container 1.40";
/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest page the service hands out; lists follow `next`.
const PAGE_LIMIT: u32 = 1000;

/// Parses a URL, naming it when it does not parse.
pub fn parse_url(text: &str) -> Result<Url, CliError> {
    Url::parse(text).map_err(|source| CliError::InvalidUrl {
        url: text.to_owned(),
        source,
    })
}

/// The HTTP client, with `OS_CACERT` trusted or verification off.
pub fn http_client(settings: &CloudSettings) -> Result<reqwest::Client, CliError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("osc/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(path) = &settings.cacert {
        let pem = std::fs::read(path).map_err(|source| CliError::File {
            what: "cannot read the CA file",
            path: path.clone(),
            source,
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| CliError::Tls(Box::new(e)))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if settings.insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| CliError::Tls(Box::new(e)))
}

/// An authenticated conversation with one Nest service.
#[derive(Clone, Debug)]
pub struct Session {
    http: reqwest::Client,
    /// The service's root URL, without `/v1`.
    root: String,
    token: String,
    project_id: Option<String>,
    settings: CloudSettings,
}

impl Session {
    /// A session with a known endpoint (`…` or `…/v1`) and token.
    pub fn new(
        http: reqwest::Client,
        endpoint: Url,
        token: String,
        project_id: Option<String>,
        settings: CloudSettings,
    ) -> Self {
        let text = endpoint.as_str().trim_end_matches('/');
        let root = text.strip_suffix("/v1").unwrap_or(text).to_owned();
        Self {
            http,
            root,
            token,
            project_id,
            settings,
        }
    }

    /// The project the token is scoped to, when known.
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    /// The settings (TLS for websockets).
    pub fn settings(&self) -> &CloudSettings {
        &self.settings
    }

    /// The service's root URL.
    pub fn root(&self) -> &str {
        &self.root
    }

    fn url(&self, path: &str, query: Option<&dyn erased::Query>) -> Result<Url, CliError> {
        let mut url = parse_url(&format!("{}{path}", self.root))?;
        if let Some(query) = query {
            let pairs = query.pairs();
            if !pairs.is_empty() {
                url.query_pairs_mut().extend_pairs(pairs);
            }
        }
        Ok(url)
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http
            .request(method, url)
            .header("X-Auth-Token", &self.token)
            .header("OpenStack-API-Version", API_VERSION)
            .header("Accept", "application/json")
    }

    async fn send(&self, request: RequestBuilder, url: &Url) -> Result<Response, CliError> {
        let response = request
            .send()
            .await
            .map_err(|source| CliError::Unreachable {
                url: url.to_string(),
                source,
            })?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(api_error(response).await)
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        url: &Url,
    ) -> Result<T, CliError> {
        let response = self.send(request, url).await?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| CliError::Unreachable {
                url: url.to_string(),
                source,
            })?;
        serde_json::from_slice(&bytes).map_err(|e| CliError::BadAnswer {
            url: url.to_string(),
            status,
            source: Box::new(e),
        })
    }

    /// `POST /v1/containers?run=true`.
    pub async fn create_container(
        &self,
        body: &CreateContainerBody,
    ) -> Result<ContainerView, CliError> {
        let url = self.url("/v1/containers", Some(&[("run", "true")]))?;
        self.json(self.request(Method::POST, url.clone()).json(body), &url)
            .await
    }

    /// Every page of `GET /v1/containers`.
    pub async fn list_containers(
        &self,
        query: &ListContainersQuery,
    ) -> Result<Vec<ContainerView>, CliError> {
        let mut query = query.clone();
        query.limit = Some(PAGE_LIMIT);
        let mut all = Vec::new();
        loop {
            let url = self.url("/v1/containers", Some(&query))?;
            let page: ContainerCollection = self
                .json(self.request(Method::GET, url.clone()), &url)
                .await?;
            let full = page.containers.len() as u32 >= PAGE_LIMIT;
            let last = page.containers.last().map(|c| c.uuid.clone());
            all.extend(page.containers);
            match (page.next, full, last) {
                (Some(_), true, Some(marker)) => query.marker = Some(marker),
                _ => return Ok(all),
            }
        }
    }

    /// How the API names a container the user named: a uuid, a name, a
    /// Docker id, or a unique prefix of a Docker id (when no container has
    /// that name).
    pub async fn resolve(&self, ident: &str) -> Result<String, CliError> {
        if !is_short_id(ident) {
            return Ok(hyphenated(ident));
        }
        let all = self
            .list_containers(&ListContainersQuery::default())
            .await?;
        if all.iter().any(|c| c.name == ident) {
            return Ok(ident.to_owned());
        }
        let wanted = ident.to_ascii_lowercase();
        let mut matches = all
            .iter()
            .filter(|c| c.uuid.replace('-', "").starts_with(&wanted));
        match (matches.next(), matches.next()) {
            (Some(only), None) => Ok(only.uuid.clone()),
            (Some(_), Some(_)) => Err(CliError::Usage(format!(
                "{ident} is the start of several containers' ids: give more of it"
            ))),
            _ => Ok(ident.to_owned()),
        }
    }

    /// `GET /v1/containers/{c}`.
    pub async fn show_container(&self, ident: &str) -> Result<ContainerView, CliError> {
        let ident = &self.resolve(ident).await?;
        let url = self.url(&format!("/v1/containers/{}", segment(ident)), None)?;
        self.json(self.request(Method::GET, url.clone()), &url)
            .await
    }

    /// `DELETE /v1/containers/{c}`.
    pub async fn delete_container(
        &self,
        ident: &str,
        query: &DeleteContainerQuery,
    ) -> Result<(), CliError> {
        let ident = &self.resolve(ident).await?;
        let url = self.url(&format!("/v1/containers/{}", segment(ident)), Some(query))?;
        self.send(self.request(Method::DELETE, url.clone()), &url)
            .await
            .map(drop)
    }

    /// `POST /v1/containers/{c}/{action}` for start, stop, reboot, pause,
    /// unpause.
    pub async fn action(
        &self,
        ident: &str,
        action: &str,
        timeout: Option<u32>,
    ) -> Result<(), CliError> {
        let ident = &self.resolve(ident).await?;
        let query = TimeoutQuery { timeout };
        let url = self.url(
            &format!("/v1/containers/{}/{action}", segment(ident)),
            Some(&query),
        )?;
        self.send(self.request(Method::POST, url.clone()), &url)
            .await
            .map(drop)
    }

    /// `POST /v1/containers/{c}/kill`.
    pub async fn kill(&self, ident: &str, query: &KillQuery) -> Result<(), CliError> {
        let ident = &self.resolve(ident).await?;
        let url = self.url(
            &format!("/v1/containers/{}/kill", segment(ident)),
            Some(query),
        )?;
        self.send(self.request(Method::POST, url.clone()), &url)
            .await
            .map(drop)
    }

    /// `GET …/logs` (the whole text).
    pub async fn logs(&self, ident: &str, query: &LogsQuery) -> Result<String, CliError> {
        let ident = &self.resolve(ident).await?;
        let url = self.url(
            &format!("/v1/containers/{}/logs", segment(ident)),
            Some(query),
        )?;
        self.json(self.request(Method::GET, url.clone()), &url)
            .await
    }

    /// `GET …/logs?follow=true`: the streaming answer.
    pub async fn follow_logs(&self, ident: &str, query: &LogsQuery) -> Result<Response, CliError> {
        let ident = &self.resolve(ident).await?;
        let url = self.url(
            &format!("/v1/containers/{}/logs", segment(ident)),
            Some(query),
        )?;
        self.send(self.request(Method::GET, url.clone()), &url)
            .await
    }

    /// `POST …/execute`.
    pub async fn execute(&self, ident: &str, query: &ExecuteQuery) -> Result<ExecView, CliError> {
        let ident = &self.resolve(ident).await?;
        let url = self.url(
            &format!("/v1/containers/{}/execute", segment(ident)),
            Some(query),
        )?;
        self.json(self.request(Method::POST, url.clone()), &url)
            .await
    }

    /// `GET …/attach`: the console websocket's URL.
    pub async fn attach(&self, ident: &str) -> Result<String, CliError> {
        let ident = &self.resolve(ident).await?;
        let url = self.url(&format!("/v1/containers/{}/attach", segment(ident)), None)?;
        self.json(self.request(Method::GET, url.clone()), &url)
            .await
    }

    /// `POST …/resize`.
    pub async fn resize(&self, ident: &str, size: ResizeQuery) -> Result<(), CliError> {
        let ident = &self.resolve(ident).await?;
        let url = self.url(
            &format!("/v1/containers/{}/resize", segment(ident)),
            Some(&size),
        )?;
        self.send(self.request(Method::POST, url.clone()), &url)
            .await
            .map(drop)
    }

    /// `GET /v1/hosts` (every page).
    pub async fn list_hosts(&self) -> Result<Vec<HostView>, CliError> {
        let mut all = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let limit = PAGE_LIMIT.to_string();
            let mut pairs = vec![("limit", limit.as_str())];
            if let Some(m) = &marker {
                pairs.push(("marker", m.as_str()));
            }
            let url = self.url("/v1/hosts", Some(&pairs.as_slice()))?;
            let page: HostCollection = self
                .json(self.request(Method::GET, url.clone()), &url)
                .await?;
            let full = page.hosts.len() as u32 >= PAGE_LIMIT;
            let last = page.hosts.last().map(|h| h.uuid.clone());
            all.extend(page.hosts);
            match (page.next, full, last) {
                (Some(_), true, Some(m)) => marker = Some(m),
                _ => return Ok(all),
            }
        }
    }

    /// `GET /v1/hosts/{id}`.
    pub async fn show_host(&self, id: &str) -> Result<HostView, CliError> {
        let url = self.url(&format!("/v1/hosts/{}", segment(id)), None)?;
        self.json(self.request(Method::GET, url.clone()), &url)
            .await
    }

    /// `POST /v1/nest/images` with the archive as the body.
    pub async fn upload_image(
        &self,
        query: &UploadImageQuery,
        body: reqwest::Body,
        length: Option<u64>,
    ) -> Result<ImageView, CliError> {
        let url = self.url("/v1/nest/images", Some(query))?;
        let mut request = self
            .request(Method::POST, url.clone())
            .header("Content-Type", "application/x-tar")
            .body(body);
        if let Some(length) = length {
            request = request.header("Content-Length", length);
        }
        self.json(request, &url).await
    }

    /// `GET /v1/nest/images`.
    pub async fn list_images(&self) -> Result<Vec<ImageView>, CliError> {
        let url = self.url("/v1/nest/images", None)?;
        let list: ImageCollection = self
            .json(self.request(Method::GET, url.clone()), &url)
            .await?;
        Ok(list.images)
    }

    /// `DELETE /v1/nest/images/{id}`.
    pub async fn delete_image(&self, id: &str) -> Result<(), CliError> {
        let url = self.url(&format!("/v1/nest/images/{}", segment(id)), None)?;
        self.send(self.request(Method::DELETE, url.clone()), &url)
            .await
            .map(drop)
    }

    /// `GET /v1/quotas/{project}?usages=True`.
    pub async fn quota_usages(&self, project: &str) -> Result<QuotaUsagesView, CliError> {
        let query = QuotaQuery { usages: Some(true) };
        let url = self.url(&format!("/v1/quotas/{}", segment(project)), Some(&query))?;
        self.json(self.request(Method::GET, url.clone()), &url)
            .await
    }

    /// `POST /v1/nest/docker/certificates`.
    pub async fn create_docker_certificate(
        &self,
        body: &CreateDockerCertificateBody,
    ) -> Result<DockerCertificateView, CliError> {
        let url = self.url("/v1/nest/docker/certificates", None)?;
        self.json(self.request(Method::POST, url.clone()).json(body), &url)
            .await
    }
}

/// A Docker-style id (the 64 hex digits `docker run` prints, whose first
/// 32 are the uuid, or those 32 alone) in the uuid spelling the REST API
/// takes; anything else unchanged.
pub fn hyphenated(ident: &str) -> String {
    if (32..=64).contains(&ident.len()) && ident.chars().all(|c| c.is_ascii_hexdigit()) {
        let s = ident[..32].to_ascii_lowercase();
        format!(
            "{}-{}-{}-{}-{}",
            &s[..8],
            &s[8..12],
            &s[12..16],
            &s[16..20],
            &s[20..]
        )
    } else {
        ident.to_owned()
    }
}

/// Whether `ident` may be a short Docker id (`docker ps` shows 12 hex
/// digits).
fn is_short_id(ident: &str) -> bool {
    (12..32).contains(&ident.len()) && ident.chars().all(|c| c.is_ascii_hexdigit())
}

/// A path segment, percent-encoded (names may hold `.`, never `/`).
fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Turns an error answer into [`CliError::Api`]: Zun's body, Keystone's
/// (401), or the text.
async fn api_error(response: Response) -> CliError {
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-openstack-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    if let Ok(body) = serde_json::from_str::<ErrorBody>(&text)
        && let Some(entry) = body.errors.into_iter().next()
    {
        let message = if entry.detail.is_empty() {
            entry.title
        } else {
            entry.detail
        };
        return CliError::Api {
            status,
            code: entry.code,
            message,
            request_id: request_id.or(Some(entry.request_id)),
        };
    }
    let keystone = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
    if status == 401 {
        return CliError::Unauthenticated(keystone.unwrap_or(text));
    }
    let message = keystone.unwrap_or_else(|| {
        if text.trim().is_empty() {
            format!("the service answered {status}")
        } else {
            text.chars().take(300).collect()
        }
    });
    CliError::Api {
        status,
        code: String::new(),
        message,
        request_id,
    }
}

/// Query strings from the API types, without serde_urlencoded: each
/// query type serializes to a flat JSON object.
mod erased {
    use super::*;

    /// A query string's pairs.
    pub trait Query {
        /// `(name, value)` in order.
        fn pairs(&self) -> Vec<(String, String)>;
    }

    impl<T: Serialize> Query for T {
        fn pairs(&self) -> Vec<(String, String)> {
            let value = serde_json::to_value(self).unwrap_or(Value::Null);
            match value {
                Value::Object(map) => map
                    .into_iter()
                    .filter_map(|(k, v)| scalar(v).map(|v| (k, v)))
                    .collect(),
                Value::Array(items) => items
                    .into_iter()
                    .filter_map(|item| match item {
                        Value::Array(mut pair) if pair.len() == 2 => {
                            let v = scalar(pair.pop()?)?;
                            let k = scalar(pair.pop()?)?;
                            Some((k, v))
                        }
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            }
        }
    }

    fn scalar(value: Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::erased::Query;
    use super::*;

    #[test]
    fn queries_become_pairs_and_endpoints_lose_their_version() {
        let query = LogsQuery {
            follow: Some(true),
            tail: Some("5".into()),
            ..LogsQuery::default()
        };
        assert_eq!(
            query.pairs(),
            vec![
                ("follow".to_owned(), "true".to_owned()),
                ("tail".to_owned(), "5".to_owned())
            ]
        );
        assert_eq!(
            [("run", "true")].pairs(),
            vec![("run".into(), "true".into())]
        );
        let session = Session::new(
            reqwest::Client::new(),
            parse_url("http://h:9517/v1/").expect("url"),
            "t".into(),
            None,
            CloudSettings::default(),
        );
        assert_eq!(session.root(), "http://h:9517");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(
            hyphenated("E8C81E20C2F04E75AC95E1831A017F6A"),
            "e8c81e20-c2f0-4e75-ac95-e1831a017f6a"
        );
        assert_eq!(
            hyphenated(&format!(
                "e8c81e20c2f04e75ac95e1831a017f6a{}",
                "5".repeat(32)
            )),
            "e8c81e20-c2f0-4e75-ac95-e1831a017f6a"
        );
        assert_eq!(hyphenated("web"), "web");
        assert!(is_short_id("e8c81e20c2f0") && !is_short_id("web-e8c81e20c2f0"));
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;

    #[test]
    fn a_private_ca_is_loaded_and_a_missing_one_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::CertificateParams::new(vec!["nest.example".to_owned()])
            .and_then(|p| p.self_signed(&key))
            .expect("certificate");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.pem()).expect("write");
        let settings = CloudSettings {
            cacert: Some(path),
            ..CloudSettings::default()
        };
        assert!(http_client(&settings).is_ok());
        let missing = CloudSettings {
            cacert: Some(dir.path().join("absent.pem")),
            ..CloudSettings::default()
        };
        let err = http_client(&missing).expect_err("no such file");
        assert!(err.to_string().contains("absent.pem"), "{err}");
    }
}
