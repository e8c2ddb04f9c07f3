//! The messages of one session with the relay, in the agent's terms:
//! [`Inbound`] from the relay, [`Outbound`] to it.

use std::time::{Duration, SystemTime};

use super::command::{CommandOutput, CommandRequest};
use super::report::{ContainerEvent, ContainerState, Failure};
use super::stream::{StreamInput, StreamOpenRequest, StreamOutput};
use super::{CommandId, StreamId};
use crate::convert::ConvertError;

/// The first message of every session: who the agent is and what it has.
#[derive(Debug)]
pub struct Hello {
    /// The protocol version this agent speaks.
    pub protocol_version: u32,
    /// This agent's release.
    pub agent_version: String,
    /// Every container this agent manages, as the engine sees it now.
    pub inventory: Vec<ContainerState>,
    /// The engine's version.
    pub docker_version: String,
    /// The negotiated engine API version.
    pub docker_api_version: String,
    /// What this agent supports beyond protocol version 1.
    pub features: Vec<String>,
}

/// The relay's answer to [`Hello`].
#[derive(Debug)]
pub struct HelloAck {
    /// The protocol version the relay speaks.
    pub protocol_version: u32,
    /// The relay's release.
    pub relay_version: String,
    /// The instance id the relay read from the agent's certificate.
    pub instance_id: String,
    /// How often each side sends a heartbeat.
    pub heartbeat_interval: Duration,
}

/// How the relay answered a certificate renewal.
#[derive(Debug)]
pub enum RenewOutcome {
    /// The renewed certificate, PEM.
    Certificate(String),
    /// The renewal was refused.
    Refused(Failure),
    /// The answer said neither.
    Empty,
}

/// A message from the relay.
#[derive(Debug)]
pub enum Inbound {
    /// The answer to [`Hello`].
    HelloAck(HelloAck),
    /// The relay is alive.
    Heartbeat,
    /// A command to carry out.
    Command(CommandRequest),
    /// A stream to open.
    StreamOpen(StreamOpenRequest),
    /// Input for an open stream.
    StreamInput {
        /// The stream.
        stream: StreamId,
        /// The input, or why the wire message is not valid input.
        input: Result<StreamInput, ConvertError>,
    },
    /// Credit for more output frames on a stream.
    Credit {
        /// The stream.
        stream: StreamId,
        /// Frames the agent may send.
        frames: u32,
    },
    /// The answer to [`Outbound::Renew`].
    Renewed {
        /// The renewal it answers.
        renewal_id: u64,
        /// The answer.
        outcome: RenewOutcome,
    },
}

/// A message to the relay.
#[derive(Debug)]
pub enum Outbound {
    /// The first message of a session.
    Hello(Hello),
    /// The agent is alive.
    Heartbeat {
        /// Counts up within a session.
        seq: u64,
        /// The agent's clock, for diagnostics.
        sent_at: SystemTime,
    },
    /// A command's result.
    Result {
        /// The command it answers.
        command: CommandId,
        /// What it produced, or why it failed.
        outcome: Result<CommandOutput, Failure>,
    },
    /// A container event.
    Event(ContainerEvent),
    /// One frame of a stream.
    Stream {
        /// The stream.
        stream: StreamId,
        /// The frame.
        output: StreamOutput,
    },
    /// Credit for more input frames on a stream.
    Credit {
        /// The stream.
        stream: StreamId,
        /// Frames the relay may send.
        frames: u32,
    },
    /// A certificate renewal request.
    Renew {
        /// Names the renewal; the answer carries it.
        renewal_id: u64,
        /// The certificate signing request, PEM.
        csr_pem: String,
    },
    /// The local engine stopped or started answering.
    EngineHealth {
        /// Whether it answers.
        healthy: bool,
        /// Why it does not; empty when healthy.
        reason: String,
    },
}
