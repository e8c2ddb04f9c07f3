//! Zun's microversions (zun-api.md §3): the `OpenStack-API-Version:
//! container 1.N` request header, its negotiation, and the headers every
//! `/v1` response carries.
//!
//! No header means 1.1 (the minimum, not the maximum); `latest` means 1.40.
//! A different service name, a bad format, a major version other than 1 or
//! a minor version out of range is refused with 406. Zun sets the response
//! headers before dispatch, so they are on its errors too; they are not on
//! 401s, which keystonemiddleware answers before Zun runs.

use std::fmt;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::zun::error::ApiError;

/// A container API microversion (`1.N`; the major is always 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    minor: u16,
}

impl ApiVersion {
    /// The oldest version served.
    pub const MIN: Self = Self::new(1);
    /// The newest version served (also python-zunclient's).
    pub const MAX: Self = Self::new(40);

    /// Version `1.minor`.
    pub const fn new(minor: u16) -> Self {
        Self { minor }
    }

    /// The minor number.
    pub fn minor(self) -> u16 {
        self.minor
    }

    /// Whether this version is `1.minor` or later.
    pub fn at_least(self, minor: u16) -> bool {
        self.minor >= minor
    }

    /// Refuses a route that needs `1.minor` or later.
    ///
    /// # Errors
    /// [`ApiError::RouteNotInVersion`] (406) below that version.
    pub fn require(self, minor: u16) -> Result<(), ApiError> {
        if self.at_least(minor) {
            Ok(())
        } else {
            Err(ApiError::RouteNotInVersion {
                requested: self,
                minimum: Self::new(minor),
            })
        }
    }

    /// Reads the request's header (`None`: absent).
    ///
    /// # Errors
    /// [`VersionError`] when it cannot be honoured.
    pub fn negotiate(header: Option<&str>) -> Result<Self, VersionError> {
        let Some(raw) = header else {
            return Ok(Self::MIN);
        };
        let mut words = raw.split_whitespace();
        let (Some(service), Some(version), None) = (words.next(), words.next(), words.next())
        else {
            return Err(VersionError::Malformed(raw.to_owned()));
        };
        if !service.eq_ignore_ascii_case(SERVICE) {
            return Err(VersionError::WrongService(service.to_owned()));
        }
        if version.eq_ignore_ascii_case("latest") {
            return Ok(Self::MAX);
        }
        let (major, minor) = version
            .split_once('.')
            .and_then(|(ma, mi)| Some((ma.parse::<u32>().ok()?, mi.parse::<u32>().ok()?)))
            .ok_or_else(|| VersionError::Malformed(raw.to_owned()))?;
        if major != 1 {
            return Err(VersionError::UnsupportedMajor(major));
        }
        match u16::try_from(minor) {
            Ok(minor) if (Self::MIN.minor..=Self::MAX.minor).contains(&minor) => {
                Ok(Self::new(minor))
            }
            _ => Err(VersionError::OutOfRange { minor }),
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.minor)
    }
}

/// Why a requested microversion is refused (406).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Not `container <major>.<minor>` or `container latest`.
    #[error("invalid value {0:?} for the OpenStack-API-Version header; {RANGE}")]
    Malformed(String),
    /// Another service's version.
    #[error("the OpenStack-API-Version header names service {0:?}, not container; {RANGE}")]
    WrongService(String),
    /// Not major version 1.
    #[error("version {0} was requested but only major version 1 is supported; {RANGE}")]
    UnsupportedMajor(u32),
    /// Outside [`ApiVersion::MIN`]..=[`ApiVersion::MAX`].
    #[error(
        "version 1.{minor} was requested but the minor version is not supported by this service; {RANGE}"
    )]
    OutOfRange {
        /// The requested minor version.
        minor: u32,
    },
}

const RANGE: &str = "the supported version range is: [container 1.1, container 1.40]";

/// The service name in the header.
const SERVICE: &str = "container";

/// Request and response header with the version in effect.
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("openstack-api-version");
/// Response header with the oldest version served.
pub const MIN_VERSION_HEADER: HeaderName = HeaderName::from_static("openstack-api-minimum-version");
/// Response header with the newest version served.
pub const MAX_VERSION_HEADER: HeaderName = HeaderName::from_static("openstack-api-maximum-version");

/// Negotiates the version of every `/v1` request, puts the [`ApiVersion`]
/// in the request's extensions and sets the version headers on the
/// response (including a 406 for a version out of range).
pub async fn negotiate(mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path != "/v1" && !path.starts_with("/v1/") {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(&VERSION_HEADER)
        .map(|v| v.to_str().map(str::to_owned));
    let requested = match header {
        None => Ok(None),
        Some(Ok(value)) => Ok(Some(value)),
        Some(Err(_)) => Err(VersionError::Malformed("<not ASCII>".into())),
    };
    let negotiated = requested
        .clone()
        .and_then(|value| ApiVersion::negotiate(value.as_deref()));
    match negotiated {
        Ok(version) => {
            request.extensions_mut().insert(version);
            let mut response = next.run(request).await;
            // Echo what the client asked for exactly (tempest compares
            // strings), `latest` and no header as the resolved number.
            let echoed = match requested {
                Ok(Some(value)) if !value.to_ascii_lowercase().contains("latest") => value,
                _ => format!("{SERVICE} {version}"),
            };
            set_headers(response.headers_mut(), Some(&echoed));
            response
        }
        Err(error) => {
            let echoed = match (&error, &requested) {
                (VersionError::OutOfRange { .. }, Ok(Some(value))) => Some(value.as_str()),
                _ => None,
            };
            let mut response = ApiError::Version(error).into_response();
            set_headers(response.headers_mut(), echoed);
            response
        }
    }
}

fn set_headers(headers: &mut HeaderMap, version: Option<&str>) {
    headers.insert(
        MIN_VERSION_HEADER,
        HeaderValue::from_static("container 1.1"),
    );
    headers.insert(
        MAX_VERSION_HEADER,
        HeaderValue::from_static("container 1.40"),
    );
    if let Some(value) = version.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(VERSION_HEADER, value);
    }
    headers.insert(
        axum::http::header::VARY,
        HeaderValue::from_static("OpenStack-API-Version"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_negotiate_like_zun() {
        assert_eq!(ApiVersion::negotiate(None), Ok(ApiVersion::new(1)));
        assert_eq!(
            ApiVersion::negotiate(Some("container 1.40")),
            Ok(ApiVersion::MAX)
        );
        assert_eq!(
            ApiVersion::negotiate(Some("container latest")),
            Ok(ApiVersion::MAX)
        );
        assert_eq!(
            ApiVersion::negotiate(Some("container 1.12")),
            Ok(ApiVersion::new(12))
        );
        assert_eq!(
            ApiVersion::negotiate(Some("container 1.41")),
            Err(VersionError::OutOfRange { minor: 41 })
        );
        assert_eq!(
            ApiVersion::negotiate(Some("container 1.0")),
            Err(VersionError::OutOfRange { minor: 0 })
        );
        assert_eq!(
            ApiVersion::negotiate(Some("container 2.1")),
            Err(VersionError::UnsupportedMajor(2))
        );
        assert!(matches!(
            ApiVersion::negotiate(Some("compute 2.1")),
            Err(VersionError::WrongService(_))
        ));
        assert!(matches!(
            ApiVersion::negotiate(Some("container")),
            Err(VersionError::Malformed(_))
        ));
        assert!(matches!(
            ApiVersion::negotiate(Some("container 1.x")),
            Err(VersionError::Malformed(_))
        ));
        assert_eq!(ApiVersion::new(7).to_string(), "1.7");
    }
}
