//! Error kinds to and from the wire. `nest-core` knows no protocol, so the
//! mapping between its [`ErrorKind`] and the generated `proto::ErrorKind`
//! lives here, once, for both sides.

use nest_core::ErrorKind;

use crate::proto;

/// [`ErrorKind`] on the wire.
pub trait WireErrorKind: Sized {
    /// The wire form of this kind.
    fn to_proto(self) -> proto::ErrorKind;
    /// Reads a kind off the wire; unknown or unset values are `Internal`.
    fn from_proto(kind: i32) -> Self;
    /// Builds the wire error for this kind with a message.
    fn error(self, message: impl Into<String>) -> proto::Error;
}

impl WireErrorKind for ErrorKind {
    fn to_proto(self) -> proto::ErrorKind {
        match self {
            Self::Invalid => proto::ErrorKind::Invalid,
            Self::Unauthenticated => proto::ErrorKind::Unauthenticated,
            Self::Forbidden => proto::ErrorKind::Forbidden,
            Self::OverQuota => proto::ErrorKind::OverQuota,
            Self::NotFound => proto::ErrorKind::NotFound,
            Self::Conflict => proto::ErrorKind::Conflict,
            Self::Unavailable => proto::ErrorKind::Unavailable,
            Self::Timeout => proto::ErrorKind::Timeout,
            Self::Internal => proto::ErrorKind::Internal,
        }
    }

    fn from_proto(kind: i32) -> Self {
        match proto::ErrorKind::try_from(kind) {
            Ok(proto::ErrorKind::Invalid) => Self::Invalid,
            Ok(proto::ErrorKind::Unauthenticated) => Self::Unauthenticated,
            Ok(proto::ErrorKind::Forbidden) => Self::Forbidden,
            Ok(proto::ErrorKind::OverQuota) => Self::OverQuota,
            Ok(proto::ErrorKind::NotFound) => Self::NotFound,
            Ok(proto::ErrorKind::Conflict) => Self::Conflict,
            Ok(proto::ErrorKind::Unavailable) => Self::Unavailable,
            Ok(proto::ErrorKind::Timeout) => Self::Timeout,
            Ok(proto::ErrorKind::Internal | proto::ErrorKind::Unspecified) | Err(_) => {
                Self::Internal
            }
        }
    }

    fn error(self, message: impl Into<String>) -> proto::Error {
        proto::Error {
            kind: self.to_proto() as i32,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_the_wire() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_proto(kind.to_proto() as i32), kind);
        }
        assert_eq!(ErrorKind::from_proto(999), ErrorKind::Internal);
    }
}
