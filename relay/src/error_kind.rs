//! The classification every error that can reach a client carries. Each
//! protocol boundary maps it to its own codes in exactly one place
//! (`status.rs` for gRPC; the service's API error module for HTTP).

use crate::proto;

/// What kind of failure an error is, which decides how a caller sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request itself is wrong; retrying it unchanged cannot help.
    Invalid,
    /// The caller did not prove who it is.
    Unauthenticated,
    /// The caller is known but not allowed.
    Forbidden,
    /// The object does not exist (or belongs to someone else).
    NotFound,
    /// The object is in the wrong state, or already exists.
    Conflict,
    /// A dependency is down or unreachable; a retry may help.
    Unavailable,
    /// The operation did not finish in time.
    Timeout,
    /// A bug or an unexpected failure; details go to the log only.
    Internal,
}

impl ErrorKind {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Unavailable | Self::Timeout)
    }

    /// The wire form of this kind.
    pub fn to_proto(self) -> proto::ErrorKind {
        match self {
            Self::Invalid => proto::ErrorKind::Invalid,
            Self::Unauthenticated => proto::ErrorKind::Unauthenticated,
            Self::Forbidden => proto::ErrorKind::Forbidden,
            Self::NotFound => proto::ErrorKind::NotFound,
            Self::Conflict => proto::ErrorKind::Conflict,
            Self::Unavailable => proto::ErrorKind::Unavailable,
            Self::Timeout => proto::ErrorKind::Timeout,
            Self::Internal => proto::ErrorKind::Internal,
        }
    }

    /// Reads a kind off the wire; unknown or unset values are `Internal`.
    pub fn from_proto(kind: i32) -> Self {
        match proto::ErrorKind::try_from(kind) {
            Ok(proto::ErrorKind::Invalid) => Self::Invalid,
            Ok(proto::ErrorKind::Unauthenticated) => Self::Unauthenticated,
            Ok(proto::ErrorKind::Forbidden) => Self::Forbidden,
            Ok(proto::ErrorKind::NotFound) => Self::NotFound,
            Ok(proto::ErrorKind::Conflict) => Self::Conflict,
            Ok(proto::ErrorKind::Unavailable) => Self::Unavailable,
            Ok(proto::ErrorKind::Timeout) => Self::Timeout,
            Ok(proto::ErrorKind::Internal | proto::ErrorKind::Unspecified) | Err(_) => {
                Self::Internal
            }
        }
    }

    /// Builds the wire error for this kind with a message.
    pub fn error(self, message: impl Into<String>) -> proto::Error {
        proto::Error {
            kind: self.to_proto() as i32,
            message: message.into(),
        }
    }
}
