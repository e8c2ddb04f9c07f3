//! [`AppError`]: why a call on the application layer failed, in terms
//! every front end can render (each maps [`AppError::kind`] to its own
//! protocol in one place).

use nest_core::ErrorKind;

use super::types::{ContainerRef, ExecId};
use crate::domain::{ContainerId, ContainerStatus, RequestId};

/// A boxed error kept as the cause of another.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a call on the application layer failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such container visible to the caller (including another
    /// project's).
    #[error("container {0} could not be found")]
    ContainerNotFound(ContainerRef),
    /// The list marker names no visible container.
    #[error("marker container {0} could not be found")]
    MarkerNotFound(ContainerId),
    /// No such exec instance on the container.
    #[error("exec instance {0} could not be found")]
    ExecNotFound(ExecId),
    /// No action was recorded under that request id.
    #[error("action {0} could not be found")]
    ActionNotFound(RequestId),
    /// No such instance visible to the caller.
    #[error("host {0} could not be found")]
    HostNotFound(String),
    /// A stored image (Nest extension) of the caller's project is missing.
    #[error("image {0} could not be found")]
    StoredImageNotFound(String),
    /// No Docker client certificate of this serial is visible to the
    /// caller.
    #[error("certificate {0} could not be found")]
    CertificateNotFound(String),
    /// No such network visible to the caller.
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// The project has a network of this name.
    #[error("network with name {0} already exists")]
    NetworkNameInUse(String),
    /// Containers are still on the network.
    #[error("network {name} is in use by {} container(s): {}; remove them first", containers.len(), containers.join(", "))]
    NetworkInUse {
        /// The network's name.
        name: String,
        /// The names of the containers on it.
        containers: Vec<String>,
    },
    /// A part of Nest the request needs is switched off by the operator.
    #[error("{0} is not enabled on this service")]
    NotEnabled(&'static str),
    /// Several containers of the project have this name.
    #[error("multiple containers exist with name {0}; use the uuid instead")]
    AmbiguousName(String),
    /// The name is taken in the project.
    #[error("a container named {0} already exists")]
    NameInUse(String),
    /// The status machine refuses the action.
    #[error("cannot {action} container {id} in {status} state")]
    InvalidState {
        /// The container.
        id: ContainerId,
        /// Its status.
        status: ContainerStatus,
        /// What was asked (`start`, `delete`, ...).
        action: &'static str,
    },
    /// Attach needs a container created with `interactive`.
    #[error("container {0} is not interactive; create it with interactive set to attach")]
    NotInteractive(ContainerId),
    /// The request is well formed but cannot be honoured (for example an
    /// unknown host hint).
    #[error("invalid {what}: {reason}")]
    InvalidRequest {
        /// Which input.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The image reference names nothing.
    #[error("image {0} could not be found")]
    ImageNotFound(String),
    /// Policy refuses the caller this rule.
    #[error("policy doesn't allow {0} to be performed")]
    PolicyNotAuthorized(String),
    /// The project's quota would be exceeded.
    #[error("quota exceeded for resources: {0}")]
    OverQuota(String),
    /// The console token is unknown, expired, used, or for another target.
    #[error("the console token is invalid, expired or already used")]
    ConsoleTokenRejected,
    /// A dependency (the relay, an agent, Nova, the database) is down.
    #[error("{what} is unavailable")]
    Unavailable {
        /// What could not be reached.
        what: String,
        /// Why.
        #[source]
        source: Option<BoxError>,
    },
    /// An operation on an agent or dependency did not finish in time.
    #[error("{what} timed out")]
    Timeout {
        /// What did not finish.
        what: String,
    },
    /// A bug or an unexpected failure; the client sees a generic message.
    #[error("internal error while {context}")]
    Internal {
        /// What was being done.
        context: &'static str,
        /// The cause (logged, never sent).
        #[source]
        source: BoxError,
    },
}

impl AppError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ContainerNotFound(_)
            | Self::MarkerNotFound(_)
            | Self::ExecNotFound(_)
            | Self::ActionNotFound(_)
            | Self::HostNotFound(_)
            | Self::StoredImageNotFound(_)
            | Self::CertificateNotFound(_)
            | Self::NetworkNotFound(_)
            | Self::NotEnabled(_) => ErrorKind::NotFound,
            Self::AmbiguousName(_)
            | Self::NameInUse(_)
            | Self::NetworkNameInUse(_)
            | Self::NetworkInUse { .. }
            | Self::InvalidState { .. } => ErrorKind::Conflict,
            Self::NotInteractive(_) | Self::InvalidRequest { .. } | Self::ImageNotFound(_) => {
                ErrorKind::Invalid
            }
            Self::OverQuota(_) => ErrorKind::OverQuota,
            Self::PolicyNotAuthorized(_) | Self::ConsoleTokenRejected => ErrorKind::Forbidden,
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Internal { .. } => ErrorKind::Internal,
        }
    }
}
