//! The request path before routing: Zun's path leniency and Keystone
//! token validation.

use axum::extract::{Request, State};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::auth::AuthError;

/// The token header keystonemiddleware reads.
pub const AUTH_TOKEN_HEADER: &str = "x-auth-token";

/// Paths outside `/v1` that are served as they are.
use super::agent::{AGENT_PATH, AGENT_SHA256_PATH};

const ROOT_PATHS: [&str; 4] = ["/", "/healthz", "/metrics", "/openapi.json"];

/// Zun's path leniency (zun-api.md §1): repeated slashes collapse, a
/// trailing slash is dropped (`/v1/containers/`), and a path whose first
/// segment is not `v1` is served under `/v1` (`/containers` ==
/// `/v1/containers`).
pub fn normalize_path(mut request: Request) -> Request {
    let path = request.uri().path();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut normalized = format!("/{}", segments.join("/"));
    if !ROOT_PATHS.contains(&normalized.as_str()) && segments.first() != Some(&"v1") {
        normalized = format!("/v1{normalized}");
    }
    if normalized != path {
        let with_query = match request.uri().query() {
            Some(q) => format!("{normalized}?{q}"),
            None => normalized,
        };
        if let Ok(uri) = with_query.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// Whether a (normalized) path is served without a Keystone token: the
/// version documents (Zun's `acl_public_routes`), operations endpoints, and
/// the console websockets, whose single-use token is their credential, and
/// the agent binary that new instances download (it holds no secret).
fn is_public(path: &str) -> bool {
    ROOT_PATHS.contains(&path)
        || path == "/v1"
        || path == AGENT_PATH
        || path == AGENT_SHA256_PATH
        || (path.starts_with("/v1/containers/")
            && (path.ends_with("/attach/ws") || path.ends_with("/exec/ws")))
}

/// The caller's validated token, for the one use that needs it: creating
/// the delegation (a Keystone trust) a driver acts with later. Never
/// logged (`Secret`).
#[derive(Clone, Debug)]
pub struct UserToken(pub nest_core::Secret<String>);

/// Validates `X-Auth-Token` and puts the [`crate::auth::Caller`] in the
/// request's extensions; 401 (Keystone's shape) without a valid token.
/// Replaces the project's delegation first when the cloud refused it.
pub async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(AUTH_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return ApiError::Auth(AuthError::Missing).into_response();
    };
    match state.authenticator().authenticate(&token).await {
        Ok(caller) => {
            tracing::Span::current().record("project_id", caller.project_id.as_str());
            let token = nest_core::Secret::new(token);
            // Any call of the project's users renews a delegation the cloud
            // refused (a revoked trust), so that the sweep covers the
            // project again.
            state.app().renew_refused_delegation(&caller, &token).await;
            request.extensions_mut().insert(caller);
            // For the handlers that delegate with the user's own token.
            request.extensions_mut().insert(UserToken(token));
            next.run(request).await
        }
        Err(error) => ApiError::Auth(error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(p: &str) -> String {
        let request = Request::builder()
            .uri(p)
            .body(axum::body::Body::empty())
            .expect("valid request");
        normalize_path(request).uri().to_string()
    }

    #[test]
    fn paths_are_normalized_like_zun() {
        assert_eq!(path_of("/containers"), "/v1/containers");
        assert_eq!(path_of("/v1/containers/"), "/v1/containers");
        assert_eq!(path_of("/v1/containers//abc?x=1"), "/v1/containers/abc?x=1");
        assert_eq!(path_of("/"), "/");
        assert_eq!(path_of("/v1/"), "/v1");
        assert_eq!(path_of("/healthz"), "/healthz");
        assert!(is_public("/v1/containers/x/attach/ws"));
        assert!(!is_public("/v1/containers/x/attach"));
    }
}
