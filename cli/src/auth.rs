//! Keystone v3: exchanges the credentials for a project-scoped token and
//! finds Nest in its catalog (service type `container`), unless a token
//! and an endpoint were given outright.

use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::client::{Session, http_client, parse_url};
use crate::config::{CloudSettings, Credentials};
use crate::error::CliError;

/// The catalog's service type for Nest (as for OpenStack Zun).
pub const SERVICE_TYPE: &str = "container";
/// The catalog interface used unless one is asked for.
pub const DEFAULT_INTERFACE: &str = "public";

/// Authenticates and locates the service.
pub async fn open_session(settings: &CloudSettings) -> Result<Session, CliError> {
    let http = http_client(settings)?;
    let credentials = settings.credentials()?;
    if let Credentials::Direct { token, endpoint } = credentials {
        return Ok(Session::new(
            http,
            parse_url(&endpoint)?,
            token,
            settings
                .project_id
                .clone()
                .or_else(|| settings.direct_project_id.clone()),
            settings.clone(),
        ));
    }
    let auth_url = settings.auth_url.clone().ok_or(CliError::NoCredentials)?;
    let tokens_url = tokens_url(&auth_url)?;
    let body = auth_body(settings, &credentials);
    let response = http
        .post(tokens_url.clone())
        .json(&body)
        .send()
        .await
        .map_err(|source| CliError::Unreachable {
            url: auth_url.clone(),
            source,
        })?;
    let status = response.status().as_u16();
    let token = response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response
        .text()
        .await
        .map_err(|source| CliError::Unreachable {
            url: auth_url.clone(),
            source,
        })?;
    if status != 201 {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| text.chars().take(200).collect());
        return Err(CliError::KeystoneRefused {
            auth_url,
            status,
            message,
        });
    }
    let bad = |source: Box<dyn std::error::Error + Send + Sync>| CliError::BadAnswer {
        url: tokens_url.to_string(),
        status,
        source,
    };
    let token = token.ok_or_else(|| bad("no X-Subject-Token header".into()))?;
    let answer: TokenAnswer = serde_json::from_str(&text).map_err(|e| bad(Box::new(e)))?;
    let endpoint = match &settings.endpoint {
        Some(endpoint) => parse_url(endpoint)?,
        None => find_endpoint(
            &answer.token.catalog,
            settings.interface.as_deref().unwrap_or(DEFAULT_INTERFACE),
            settings.region.as_deref(),
        )?,
    };
    let project_id = answer
        .token
        .project
        .map(|p| p.id)
        .or_else(|| settings.project_id.clone());
    Ok(Session::new(
        http,
        endpoint,
        token,
        project_id,
        settings.clone(),
    ))
}

/// `…/v3/auth/tokens`, whether or not the URL names the version.
fn tokens_url(auth_url: &str) -> Result<Url, CliError> {
    let trimmed = auth_url.trim_end_matches('/');
    let versioned = if trimmed.ends_with("/v3") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v3")
    };
    parse_url(&format!("{versioned}/auth/tokens"))
}

fn domain(id: &Option<String>, name: &Option<String>) -> Value {
    match (id, name) {
        (Some(id), _) => json!({"id": id}),
        (None, Some(name)) => json!({"name": name}),
        (None, None) => json!({"id": "default"}),
    }
}

fn user(settings: &CloudSettings) -> Value {
    match (&settings.user_id, &settings.username) {
        (Some(id), _) => json!({"id": id}),
        (None, name) => json!({
            "name": name,
            "domain": domain(&settings.user_domain_id, &settings.user_domain_name),
        }),
    }
}

/// The `POST /v3/auth/tokens` body for the chosen method.
fn auth_body(settings: &CloudSettings, credentials: &Credentials) -> Value {
    let identity = match credentials {
        Credentials::Password => {
            let mut user = user(settings);
            user["password"] = json!(settings.password);
            json!({"methods": ["password"], "password": {"user": user}})
        }
        Credentials::ApplicationCredential => {
            let credential = match &settings.application_credential_id {
                Some(id) => json!({"id": id, "secret": settings.application_credential_secret}),
                None => json!({
                    "name": settings.application_credential_name,
                    "secret": settings.application_credential_secret,
                    "user": user(settings),
                }),
            };
            // An application credential carries its own scope.
            return json!({"auth": {"identity": {
                "methods": ["application_credential"],
                "application_credential": credential,
            }}});
        }
        Credentials::Token | Credentials::Direct { .. } => {
            json!({"methods": ["token"], "token": {"id": settings.token}})
        }
    };
    let scope = match (&settings.project_id, &settings.project_name) {
        (Some(id), _) => Some(json!({"project": {"id": id}})),
        (None, Some(name)) => Some(json!({"project": {
            "name": name,
            "domain": domain(&settings.project_domain_id, &settings.project_domain_name),
        }})),
        (None, None) => None,
    };
    match scope {
        Some(scope) => json!({"auth": {"identity": identity, "scope": scope}}),
        None => json!({"auth": {"identity": identity}}),
    }
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    token: TokenBody,
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    #[serde(default)]
    catalog: Vec<CatalogEntry>,
    project: Option<ProjectRef>,
}

#[derive(Debug, Deserialize)]
struct ProjectRef {
    id: String,
}

#[derive(Debug, Deserialize)]
struct CatalogEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Deserialize)]
struct CatalogEndpoint {
    interface: String,
    url: String,
    region: Option<String>,
    region_id: Option<String>,
}

fn find_endpoint(
    catalog: &[CatalogEntry],
    interface: &str,
    region: Option<&str>,
) -> Result<Url, CliError> {
    let found = catalog
        .iter()
        .filter(|entry| entry.kind == SERVICE_TYPE)
        .flat_map(|entry| &entry.endpoints)
        .find(|e| {
            e.interface == interface
                && region.is_none_or(|r| {
                    e.region.as_deref() == Some(r) || e.region_id.as_deref() == Some(r)
                })
        });
    match found {
        Some(endpoint) => parse_url(&endpoint.url),
        None => {
            let mut types: Vec<&str> = catalog.iter().map(|e| e.kind.as_str()).collect();
            types.sort_unstable();
            Err(CliError::NotInCatalog {
                interface: interface.to_owned(),
                region: region.map(|r| format!(", region {r}")).unwrap_or_default(),
                found: if types.is_empty() {
                    "nothing".into()
                } else {
                    types.join(", ")
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Vec<CatalogEntry> {
        serde_json::from_value(json!([
            {"type": "compute", "endpoints": [
                {"interface": "public", "url": "http://n:8774/v2.1", "region": "RegionOne"}]},
            {"type": "container", "endpoints": [
                {"interface": "internal", "url": "http://i:9517/v1", "region": "RegionOne"},
                {"interface": "public", "url": "http://p:9517/v1", "region": "RegionOne"},
                {"interface": "public", "url": "http://q:9517/v1", "region_id": "Two"}]},
        ]))
        .expect("catalog")
    }

    #[test]
    fn the_container_endpoint_is_found_by_interface_and_region() {
        let public = find_endpoint(&catalog(), "public", None).expect("found");
        assert_eq!(public.as_str(), "http://p:9517/v1");
        let two = find_endpoint(&catalog(), "public", Some("Two")).expect("found");
        assert_eq!(two.host_str(), Some("q"));
        let err = find_endpoint(&catalog(), "admin", None).expect_err("absent");
        assert!(err.to_string().contains("compute, container"), "{err}");
    }

    #[test]
    fn bodies_follow_keystone_v3() {
        let settings = CloudSettings {
            username: Some("demo".into()),
            password: Some("pw".into()),
            project_name: Some("demo".into()),
            user_domain_name: Some("Default".into()),
            ..CloudSettings::default()
        };
        let body = auth_body(&settings, &Credentials::Password);
        assert_eq!(
            body["auth"]["identity"]["password"]["user"]["domain"]["name"],
            "Default"
        );
        assert_eq!(body["auth"]["scope"]["project"]["domain"]["id"], "default");
        let app = CloudSettings {
            application_credential_id: Some("ac".into()),
            application_credential_secret: Some("s".into()),
            ..CloudSettings::default()
        };
        let body = auth_body(&app, &Credentials::ApplicationCredential);
        assert!(body["auth"].get("scope").is_none());
        assert_eq!(
            body["auth"]["identity"]["application_credential"]["id"],
            "ac"
        );
        assert_eq!(
            tokens_url("http://k:5000").ok().map(|u| u.to_string()),
            Some("http://k:5000/v3/auth/tokens".into())
        );
    }
}
