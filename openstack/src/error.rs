//! [`OpenStackError`]: why the session could not be set up, or could not
//! talk to OpenStack on a caller's behalf.
//!
//! One enum for the whole conversation (configuration, transport, Keystone's
//! answers, the catalog), classified by [`OpenStackError::kind`]. Messages
//! name the operation, the URL and OpenStack's own request id where there is
//! one, so that an operator can find the call in the cloud's logs; they
//! never hold a token, a password or a secret.

use std::fmt;
use std::path::PathBuf;

use nest_core::ErrorKind;

use crate::catalog::Interface;

/// Why OpenStack could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenStackError {
    /// The session configuration is not usable; every problem is listed.
    #[error("invalid OpenStack configuration")]
    Config(#[source] nest_core::config::ConfigError),
    /// The configured CA file could not be read.
    #[error("cannot read the CA file {path}")]
    ReadCaFile {
        /// The configured `ca_file`.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The configured CA file holds no usable PEM certificate.
    #[error("the CA file {path} holds no usable PEM certificate")]
    BadCaFile {
        /// The configured `ca_file`.
        path: PathBuf,
        /// The parse failure, when there was one (none: the file is empty
        /// of certificates).
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The HTTP client could not be built (TLS roots, for instance).
    #[error("cannot build the OpenStack HTTP client")]
    BuildClient(#[source] reqwest::Error),
    /// The service could not be reached, or did not answer in time.
    #[error("cannot {operation} at {url}")]
    Request {
        /// What was being done.
        operation: &'static str,
        /// The URL called.
        url: String,
        /// The transport failure.
        #[source]
        source: reqwest::Error,
    },
    /// Keystone refused the session's own credentials.
    #[error("keystone refused the service credentials of {principal} ({status}{request})")]
    CredentialsRejected {
        /// Who the session logs in as (never the secret).
        principal: String,
        /// Keystone's answer.
        status: u16,
        /// Keystone's request id for the refusal.
        request: RemoteRequestId,
    },
    /// A service answered with a status that has no meaning for the operation.
    #[error("{service} answered {status} when asked to {operation}{request}")]
    UnexpectedStatus {
        /// The service asked (`keystone`, `nova`, ...).
        service: &'static str,
        /// What was being done.
        operation: &'static str,
        /// The answer's status.
        status: u16,
        /// The service's request id for the answer.
        request: RemoteRequestId,
    },
    /// A service's body is not the expected JSON.
    #[error("{service}'s answer to {operation} is malformed")]
    MalformedBody {
        /// The service asked.
        service: &'static str,
        /// What was being done.
        operation: &'static str,
        /// The decoding failure.
        #[source]
        source: reqwest::Error,
    },
    /// Keystone's login answer lacks a usable `X-Subject-Token` header.
    #[error("keystone's login answer has no usable X-Subject-Token header")]
    MissingSubjectToken,
    /// An `expires_at` from Keystone is not RFC 3339.
    #[error("keystone's expires_at {value:?} is not an RFC 3339 time")]
    BadExpiry {
        /// The value received.
        value: String,
        /// The parse failure.
        #[source]
        source: time::error::Parse,
    },
    /// The session logs in without a catalog, so it knows no endpoint.
    #[error("this session was built without a service catalog")]
    NoCatalog,
    /// The catalog has no endpoint of that type, interface and region.
    #[error("the catalog has no {interface} {service_type:?} endpoint{}", in_region(.region))]
    EndpointNotFound {
        /// The service type asked for (`compute`, `network`, `image`).
        service_type: String,
        /// The interface asked for.
        interface: Interface,
        /// The region asked for; `None`: any.
        region: Option<String>,
    },
    /// The catalog's endpoint URL does not parse.
    #[error("the catalog's {service_type:?} endpoint {url:?} is not a URL")]
    BadEndpoint {
        /// The service type.
        service_type: String,
        /// The URL as the catalog has it.
        url: String,
        /// The parse failure.
        #[source]
        source: url::ParseError,
    },
    /// A service refused a request; `message` is the service's own words
    /// (Nova's `{"forbidden": {"message": ...}}`, Neutron's
    /// `NeutronError.message`), shown verbatim to whoever asked.
    #[error("{service} refused to {operation} ({status}{request}): {message}")]
    Refused {
        /// The service asked (`nova`, `neutron`, `glance`, `keystone`).
        service: &'static str,
        /// What was being done.
        operation: &'static str,
        /// The answer's status.
        status: u16,
        /// The service's message, verbatim.
        message: String,
        /// The service's request id for the answer.
        request: RemoteRequestId,
    },
    /// A session acting for a tenant was asked for with no authority to act
    /// with.
    #[error("no tenant authority (trust or application credential) was given")]
    NoTenantAuthority,
    /// The tenant's authority cannot be used with this session's own
    /// credentials.
    #[error("cannot act for the tenant: {reason}")]
    Delegation {
        /// Why not.
        reason: &'static str,
    },
}

impl OpenStackError {
    /// The classification of this error.
    ///
    /// Configuration problems are the operator's to fix (`Invalid`); a
    /// cloud that cannot be reached or refuses the service's own
    /// credentials is `Unavailable` to whoever depends on it; a call that
    /// ran out of time is `Timeout`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(_)
            | Self::ReadCaFile { .. }
            | Self::BadCaFile { .. }
            | Self::NoTenantAuthority
            | Self::Delegation { .. } => ErrorKind::Invalid,
            Self::BuildClient(_) | Self::NoCatalog => ErrorKind::Internal,
            Self::Request { source, .. } if source.is_timeout() => ErrorKind::Timeout,
            Self::Request { .. }
            | Self::CredentialsRejected { .. }
            | Self::UnexpectedStatus { .. }
            | Self::MalformedBody { .. }
            | Self::MissingSubjectToken
            | Self::BadExpiry { .. }
            | Self::EndpointNotFound { .. }
            | Self::BadEndpoint { .. } => ErrorKind::Unavailable,
            Self::Refused {
                status, message, ..
            } => refusal_kind(*status, message),
        }
    }
}

/// What a refusal means: Nova answers a quota refusal 403 at the API and
/// 413 in a server's fault (lab README, section 4); 5xx is the cloud's
/// trouble, not the caller's.
fn refusal_kind(status: u16, message: &str) -> ErrorKind {
    match status {
        400 | 422 => ErrorKind::Invalid,
        401 => ErrorKind::Unauthenticated,
        403 | 413 if is_quota_message(message) => ErrorKind::OverQuota,
        413 => ErrorKind::OverQuota,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        408 | 504 => ErrorKind::Timeout,
        _ => ErrorKind::Unavailable,
    }
}

/// Whether a message is a quota refusal, in the words Nova and Neutron use
/// ("Quota exceeded for instances: ...", "Quota exceeded for resources").
pub fn is_quota_message(message: &str) -> bool {
    message.contains("Quota exceeded") || message.contains("quota exceeded")
}

/// OpenStack's own id for one answer (`x-openstack-request-id`), shown in
/// messages as ` (request req-…)` so that the cloud's logs can be searched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteRequestId(pub Option<String>);

impl RemoteRequestId {
    /// The id an answer carries, if any (and if it is printable).
    pub fn of(response: &reqwest::Response) -> Self {
        Self(
            response
                .headers()
                .get(crate::session::REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        )
    }
}

impl fmt::Display for RemoteRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(id) => write!(f, ", request {id}"),
            None => Ok(()),
        }
    }
}

fn in_region(region: &Option<String>) -> String {
    region
        .as_deref()
        .map(|r| format!(" in region {r:?}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_request_and_the_region() {
        let e = OpenStackError::UnexpectedStatus {
            service: "keystone",
            operation: "validate a token",
            status: 500,
            request: RemoteRequestId(Some("req-1".into())),
        };
        assert_eq!(
            e.to_string(),
            "keystone answered 500 when asked to validate a token, request req-1"
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let e = OpenStackError::EndpointNotFound {
            service_type: "compute".into(),
            interface: Interface::Internal,
            region: Some("RegionTwo".into()),
        };
        assert_eq!(
            e.to_string(),
            "the catalog has no internal \"compute\" endpoint in region \"RegionTwo\""
        );
        let e = OpenStackError::CredentialsRejected {
            principal: "user \"nest\"".into(),
            status: 401,
            request: RemoteRequestId(None),
        };
        assert_eq!(
            e.to_string(),
            "keystone refused the service credentials of user \"nest\" (401)"
        );
        assert_eq!(OpenStackError::NoTenantAuthority.kind(), ErrorKind::Invalid);
    }
}
