//! The one place in the agent where the wire protocol meets the agent's
//! own types: generated `nest_relay::proto` messages in, [`crate::model`]
//! values out, and back.
//!
//! What comes from the wire is external input: every enum, range and id
//! is checked here, and a malformed message becomes a [`ConvertError`]
//! (kind `Invalid`) that is answered like any other refusal, never a
//! panic. The way out cannot fail.
//!
//! This module decides nothing and does no I/O; the session calls it at
//! the edge, and no proto type travels further.
//!
//! - `from_wire.rs`: relay messages into [`Inbound`](crate::model::Inbound);
//! - `to_wire.rs`: [`Outbound`](crate::model::Outbound) into agent messages.

mod from_wire;
mod to_wire;

use std::net::AddrParseError;

use nest_core::ErrorKind;

use crate::model::ContainerUuidError;

pub use from_wire::{enrolled_certificate, relay_message};
pub use to_wire::{agent_message, enroll_request};

/// Why a message from the relay cannot be read as what it claims to be.
///
/// The messages name the field the way the wire does
/// (`spec.ports[0].host_port`), so that the service can tell what it sent.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A command request carries no command.
    #[error("command is empty")]
    EmptyCommand,
    /// A field that names a container does not hold a container uuid.
    #[error("invalid {field}")]
    Uuid {
        /// The field, as the wire names it.
        field: String,
        /// What is wrong with it.
        #[source]
        source: ContainerUuidError,
    },
    /// A field that must hold an IP address does not.
    #[error("invalid {field}: {value:?} is not an IP address")]
    Address {
        /// The field, as the wire names it.
        field: String,
        /// What it held.
        value: String,
        /// The parser's complaint.
        #[source]
        source: AddrParseError,
    },
    /// A field holds a value outside what the agent accepts.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, as the wire names it.
        field: String,
        /// Why the value is refused.
        reason: String,
    },
}

impl ConvertError {
    /// How a caller should see this failure: always `Invalid`, since the
    /// message itself is wrong and sending it again cannot help.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::EmptyCommand
            | Self::Uuid { .. }
            | Self::Address { .. }
            | Self::Invalid { .. } => ErrorKind::Invalid,
        }
    }

    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
