//! The one place where `ErrorKind` meets gRPC status codes, both ways, so an
//! agent's NotFound is still NotFound when it reaches the API.

use nest_core::ErrorKind;

use crate::convert::WireErrorKind;
use crate::proto;

/// The gRPC code for an error kind.
pub fn code_of(kind: ErrorKind) -> tonic::Code {
    match kind {
        ErrorKind::Invalid => tonic::Code::InvalidArgument,
        ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
        ErrorKind::Forbidden => tonic::Code::PermissionDenied,
        ErrorKind::OverQuota => tonic::Code::ResourceExhausted,
        ErrorKind::NotFound => tonic::Code::NotFound,
        ErrorKind::Conflict => tonic::Code::FailedPrecondition,
        ErrorKind::Unavailable => tonic::Code::Unavailable,
        ErrorKind::Timeout => tonic::Code::DeadlineExceeded,
        ErrorKind::Internal => tonic::Code::Internal,
    }
}

/// The error kind for a gRPC code.
pub fn kind_of(code: tonic::Code) -> ErrorKind {
    match code {
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => ErrorKind::Invalid,
        tonic::Code::Unauthenticated => ErrorKind::Unauthenticated,
        tonic::Code::PermissionDenied => ErrorKind::Forbidden,
        tonic::Code::NotFound => ErrorKind::NotFound,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists | tonic::Code::Aborted => {
            ErrorKind::Conflict
        }
        tonic::Code::ResourceExhausted => ErrorKind::OverQuota,
        tonic::Code::Unavailable | tonic::Code::Cancelled => ErrorKind::Unavailable,
        tonic::Code::DeadlineExceeded => ErrorKind::Timeout,
        _ => ErrorKind::Internal,
    }
}

/// A status carrying `kind` and `message`.
pub fn status(kind: ErrorKind, message: impl Into<String>) -> tonic::Status {
    tonic::Status::new(code_of(kind), message)
}

/// The status for an error that came over the wire from an agent or signer.
pub fn from_proto_error(error: &proto::Error) -> tonic::Status {
    status(ErrorKind::from_proto(error.kind), error.message.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_a_round_trip_through_grpc() {
        for kind in ErrorKind::ALL {
            assert_eq!(kind_of(code_of(kind)), kind);
        }
    }
}
