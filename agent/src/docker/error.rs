//! Errors of the Docker module, and the one place where engine failures are
//! classified into [`ErrorKind`]s.
//!
//! bollard's error type stays inside these variants as the `source`, so the
//! cause is never lost, but callers only ever look at [`DockerError::kind`]
//! and the message; they never match on bollard types.

use std::path::PathBuf;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use nest_core::ErrorKind;

use crate::model::ContainerUuid;

/// A failure of an operation on the local Docker engine.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine's socket could not be reached, or the version handshake
    /// with it failed.
    #[error("cannot reach the docker engine at {}", socket.display())]
    Connect {
        /// The Unix socket the agent tried.
        socket: PathBuf,
        /// What bollard reported.
        #[source]
        source: BollardError,
    },

    /// The request was refused before it reached the engine.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field, as the wire names it (`spec.labels[0].key`).
        field: String,
        /// Why the value is refused.
        reason: String,
    },

    /// The registry credentials are not the engine's `X-Registry-Auth` JSON.
    ///
    /// The parser's own error is left out on purpose: serde's messages can
    /// quote the input, and the input is a secret.
    #[error("registry auth is not valid X-Registry-Auth JSON (line {line}, column {column})")]
    RegistryAuth {
        /// Line of the first syntax or type error.
        line: usize,
        /// Column of the first syntax or type error.
        column: usize,
    },

    /// No container of this agent has that uuid. A container that exists in
    /// the engine but was not created by this agent is reported the same way.
    #[error("container {uuid} not found")]
    ContainerNotFound {
        /// Nest's container uuid.
        uuid: ContainerUuid,
    },

    /// The image of a new container is not on this instance, and the request
    /// did not ask for it to be pulled.
    #[error("image {image} is missing on this instance; pull it first or ask for pull_missing")]
    ImageMissing {
        /// The image reference from the spec.
        image: String,
        /// The engine's refusal.
        #[source]
        source: BollardError,
    },

    /// The engine network Nest would use for a network exists but is not
    /// Nest's (someone made it by hand); it is left alone.
    #[error(
        "engine network {name} exists but was not made by Nest; remove or rename it to use this network"
    )]
    ForeignNetwork {
        /// The engine network's name, `nest-<network id>`.
        name: String,
    },

    /// Several engine networks have the name Nest uses for a network.
    #[error("several engine networks are named {name}; remove all but one")]
    AmbiguousNetwork {
        /// The engine networks' name, `nest-<network id>`.
        name: String,
    },

    /// Pulling an image from its registry failed.
    #[error("pulling image {reference} failed")]
    Pull {
        /// The image reference.
        reference: String,
        /// What the engine reported.
        #[source]
        source: BollardError,
    },

    /// Loading an image archive failed.
    #[error("loading the image archive failed")]
    Load {
        /// What the engine reported.
        #[source]
        source: BollardError,
    },

    /// An engine call failed.
    #[error("docker {operation} of {target} failed")]
    Engine {
        /// The engine operation (`start`, `inspect`, `logs`, ...).
        operation: &'static str,
        /// What it was applied to (`container <uuid>`, `image <ref>`, ...).
        target: String,
        /// What bollard reported.
        #[source]
        source: BollardError,
    },

    /// An engine call did not finish in time.
    #[error("docker {operation} of {target} did not finish within {after:?}")]
    Timeout {
        /// The engine operation.
        operation: &'static str,
        /// What it was applied to.
        target: String,
        /// The limit that was hit.
        after: Duration,
    },

    /// The engine answered, but without something it always sends.
    #[error("docker {operation} of {target} answered without {missing}")]
    Malformed {
        /// The engine operation.
        operation: &'static str,
        /// What it was applied to.
        target: String,
        /// The missing part of the answer.
        missing: &'static str,
    },
}

impl DockerError {
    /// How a caller should see this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connect { .. } => ErrorKind::Unavailable,
            Self::Invalid { .. } | Self::RegistryAuth { .. } => ErrorKind::Invalid,
            Self::ContainerNotFound { .. } | Self::ImageMissing { .. } => ErrorKind::NotFound,
            Self::ForeignNetwork { .. } | Self::AmbiguousNetwork { .. } => ErrorKind::Conflict,
            Self::Pull { source, .. } => pull_kind(source),
            Self::Load { source } => load_kind(source),
            Self::Engine { source, .. } => classify(source),
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Malformed { .. } => ErrorKind::Internal,
        }
    }

    /// A [`DockerError::Invalid`] refusal of `field` for `reason`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The HTTP status the engine answered with, when the failure is an answer.
pub(crate) fn engine_status(error: &BollardError) -> Option<u16> {
    match error {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Classifies a bollard error.
///
/// 304 (already started, already stopped) never gets here: bollard treats it
/// as success, which is what `start` and `stop` want.
pub(crate) fn classify(error: &BollardError) -> ErrorKind {
    match error {
        BollardError::DockerResponseServerError { status_code, .. } => match status_code {
            400 => ErrorKind::Invalid,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            503 => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        },
        BollardError::RequestTimeoutError => ErrorKind::Timeout,
        // The transport failed: the engine is down, restarting or its socket
        // is gone. A retry may help.
        BollardError::SocketNotFoundError(_)
        | BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::IOError { .. } => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// Classifies a failed pull. The engine (20.10) answers 500 when the
/// registry cannot be reached, which is worth a retry, and 404 for an image
/// the registry does not have (or will not show without credentials).
fn pull_kind(error: &BollardError) -> ErrorKind {
    match engine_status(error) {
        Some(401 | 403) => ErrorKind::Forbidden,
        Some(status) if status >= 500 => ErrorKind::Unavailable,
        _ => classify(error),
    }
}

/// Classifies a failed load. The engine (20.10) answers 200 and reports a
/// bad archive inside the body ("Error processing tar file"), which bollard
/// turns into a stream error: that is the sender's archive at fault.
fn load_kind(error: &BollardError) -> ErrorKind {
    match error {
        BollardError::DockerStreamError { .. } => ErrorKind::Invalid,
        _ => classify(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status_code: u16) -> BollardError {
        BollardError::DockerResponseServerError {
            status_code,
            message: "engine says no".to_owned(),
        }
    }

    #[test]
    fn engine_statuses_map_to_kinds() {
        assert_eq!(classify(&answer(400)), ErrorKind::Invalid);
        assert_eq!(classify(&answer(404)), ErrorKind::NotFound);
        assert_eq!(classify(&answer(409)), ErrorKind::Conflict);
        assert_eq!(classify(&answer(500)), ErrorKind::Internal);
        assert_eq!(
            classify(&BollardError::RequestTimeoutError),
            ErrorKind::Timeout
        );
        assert_eq!(
            classify(&BollardError::SocketNotFoundError("/nowhere".to_owned())),
            ErrorKind::Unavailable
        );
    }

    #[test]
    fn unreachable_registry_is_unavailable() {
        let err = DockerError::Pull {
            reference: "busybox:1".to_owned(),
            source: answer(500),
        };
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let err = DockerError::Pull {
            reference: "busybox:1".to_owned(),
            source: answer(404),
        };
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn message_does_not_repeat_the_source() {
        let err = DockerError::Engine {
            operation: "start",
            target: "container c1".to_owned(),
            source: answer(409),
        };
        assert_eq!(err.to_string(), "docker start of container c1 failed");
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }
}
