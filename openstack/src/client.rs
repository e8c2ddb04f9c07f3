//! What the Nova, Neutron, Glance and trust clients share: retrying the
//! calls that may be retried, reading a service's refusal in its own
//! words, and decoding answers.
//!
//! Only idempotent calls are retried (reads, deletes): a `POST` that timed
//! out may have been carried out, so its caller decides (the `nova` driver
//! looks for the server it asked for before asking again).

use std::time::Duration;

use nest_core::backoff::Backoff;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{OpenStackError, RemoteRequestId};
use crate::session::{Call, Session};

/// Attempts of an idempotent call before its last answer stands.
pub const MAX_ATTEMPTS: u32 = 4;
/// First delay between attempts; the shared backoff grows it.
const RETRY_INITIAL: Duration = Duration::from_millis(400);
/// Longest delay between attempts.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How much of a refusal's body a message quotes when it is not JSON.
const MAX_MESSAGE_CHARS: usize = 512;

/// Whether a call may be sent again after a timeout or a 5xx.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Reads and deletes: sending twice does no harm.
    Idempotent,
    /// Creates: sent once; the caller checks what happened.
    Never,
}

/// Whether an answer's status is the cloud's passing trouble.
fn is_transient(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Sends through `session`, retrying an idempotent call on transport
/// failures, timeouts and 5xx with the shared backoff. Returns the last
/// answer, whatever its status.
///
/// # Errors
/// The last transport failure, or why a login failed.
pub async fn send<B>(
    session: &Session,
    call: &Call<'_>,
    retry: Retry,
    build: B,
) -> Result<reqwest::Response, OpenStackError>
where
    B: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
{
    let mut backoff = Backoff::new(RETRY_INITIAL, RETRY_MAX);
    let mut attempt = 1;
    loop {
        let last = attempt >= MAX_ATTEMPTS || retry == Retry::Never;
        match session.send(call, &build).await {
            Ok(response) if last || !is_transient(response.status()) => return Ok(response),
            Err(e) if last || !e.kind().is_retryable() => return Err(e),
            Ok(response) => tracing::warn!(
                service = call.service(),
                operation = call.operation(),
                status = response.status().as_u16(),
                attempt,
                "openstack answered with a server error; retrying"
            ),
            Err(e) => tracing::warn!(
                service = call.service(),
                operation = call.operation(),
                error = %e,
                attempt,
                "openstack call failed; retrying"
            ),
        }
        attempt += 1;
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// The refusal an unexpected answer means, with the service's message.
pub async fn refusal(call: &Call<'_>, response: reqwest::Response) -> OpenStackError {
    let status = response.status().as_u16();
    let request = RemoteRequestId::of(&response);
    let body = response.text().await.unwrap_or_default();
    OpenStackError::Refused {
        service: call.service(),
        operation: call.operation(),
        status,
        message: error_message(&body),
        request,
    }
}

/// Decodes a successful answer's JSON body, or turns any other answer into
/// its refusal.
///
/// # Errors
/// [`OpenStackError::Refused`] for a non-2xx answer;
/// [`OpenStackError::MalformedBody`] when the JSON is not the expected one.
pub async fn json<T: DeserializeOwned>(
    call: &Call<'_>,
    response: reqwest::Response,
) -> Result<T, OpenStackError> {
    if !response.status().is_success() {
        return Err(refusal(call, response).await);
    }
    response
        .json()
        .await
        .map_err(|source| OpenStackError::MalformedBody {
            service: call.service(),
            operation: call.operation(),
            source,
        })
}

/// Succeeds for a 2xx answer, and for a 404 when `missing_ok` (a delete of
/// something already gone); anything else is a refusal. Returns whether the
/// thing existed.
///
/// # Errors
/// [`OpenStackError::Refused`].
pub async fn done(
    call: &Call<'_>,
    response: reqwest::Response,
    missing_ok: bool,
) -> Result<bool, OpenStackError> {
    match response.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND if missing_ok => Ok(false),
        _ => Err(refusal(call, response).await),
    }
}

/// The message of an OpenStack error body, verbatim: Nova's
/// `{"<kind>": {"code": .., "message": ..}}`, Neutron's
/// `{"NeutronError": {"message": ..}}`, Keystone's `{"error": {"message": ..}}`,
/// a top-level `message`, or (Glance's HTML) the text itself, shortened.
pub fn error_message(body: &str) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(serde_json::Value::String(m)) = map.get("message") {
            return m.clone();
        }
        for value in map.values() {
            if let Some(serde_json::Value::String(m)) = value.get("message") {
                return m.clone();
            }
        }
    }
    let text: String = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .collect();
    if text.is_empty() {
        "no message".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_found_in_every_services_shape() {
        assert_eq!(
            error_message(
                r#"{"forbidden": {"code": 403, "message": "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"}}"#
            ),
            "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances"
        );
        assert_eq!(
            error_message(
                r#"{"NeutronError": {"type": "NetworkNotFound", "message": "Network x could not be found.", "detail": ""}}"#
            ),
            "Network x could not be found."
        );
        assert_eq!(error_message(r#"{"message": "flat"}"#), "flat");
        assert_eq!(
            error_message("<html>\n <body>404 Not Found\n</body></html>"),
            "<html> <body>404 Not Found </body></html>"
        );
        assert_eq!(error_message(""), "no message");
        assert_eq!(error_message(&"x".repeat(2000)).len(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn quota_refusals_are_over_quota_whatever_the_status() {
        use nest_core::ErrorKind;
        let refused = |status, message: &str| OpenStackError::Refused {
            service: "nova",
            operation: "boot a server",
            status,
            message: message.into(),
            request: RemoteRequestId(None),
        };
        let quota = "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances";
        assert_eq!(refused(403, quota).kind(), ErrorKind::OverQuota);
        assert_eq!(refused(413, quota).kind(), ErrorKind::OverQuota);
        assert_eq!(
            refused(403, "Policy doesn't allow").kind(),
            ErrorKind::Forbidden
        );
        assert_eq!(refused(404, "gone").kind(), ErrorKind::NotFound);
        assert_eq!(refused(400, "bad").kind(), ErrorKind::Invalid);
        assert_eq!(refused(503, "down").kind(), ErrorKind::Unavailable);
        assert_eq!(
            refused(403, quota).to_string(),
            format!("nova refused to boot a server (403): {quota}")
        );
    }
}
