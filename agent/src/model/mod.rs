//! The agent's own terms for what it is asked to do and what it reports:
//! container specs, commands, stream openings and input, container state,
//! events and the session's messages.
//!
//! These types exist so that the wire format stops at the edge. The
//! generated protocol types are read and written in [`crate::convert`]
//! alone; everything else in the agent, the Docker module above all, speaks
//! these. A value of these types has passed the conversion's checks of
//! shape (ids, ports, enums, ranges the wire cannot express); what the
//! engine may refuse (limits, label prefixes, paths) is still the Docker
//! module's to check.
//!
//! Nothing here does I/O or knows bollard or protobuf.
//!
//! - `ids.rs`: [`ContainerUuid`], [`NetworkId`], [`CommandId`], [`StreamId`];
//! - `spec.rs`: [`ContainerSpec`] and its parts, [`NetworkAttachment`] among them;
//! - `command.rs`: [`Command`], its bodies and [`CommandOutput`];
//! - `stream.rs`: [`StreamOpen`], [`StreamInput`] and [`StreamOutput`];
//! - `report.rs`: [`ContainerState`], [`ContainerEvent`] and the results;
//! - `session.rs`: [`Inbound`] and [`Outbound`], the session's messages.

mod command;
mod ids;
mod report;
mod session;
mod spec;
mod stream;

pub use command::{
    Command, CommandOutput, CommandRequest, CreateContainer, ExecCapture, KillContainer, PullImage,
    RemoveContainer, StopContainer, Top, UpdateResources,
};
pub use ids::{
    CommandId, ContainerUuid, ContainerUuidError, MAX_UUID_LEN, NETWORK_ID_LEN, NetworkId,
    NetworkIdError, StreamId,
};
pub use report::{
    ContainerEvent, ContainerState, EngineStatus, ExecCaptured, Failure, ImagePulled, Pong,
    StatsResult, TopResult,
};
pub use session::{Hello, HelloAck, Inbound, Outbound, RenewOutcome};
pub use spec::{
    ContainerSpec, EngineOptions, EnvVar, HealthCheck, Label, MAX_ALIAS_LEN, MAX_ALIASES,
    MAX_NETWORKS, NetworkAlias, NetworkAliasError, NetworkAttachment, PortBinding, Protocol,
    RestartPolicy,
};
pub use stream::{
    AttachStream, Chunk, ExecStream, LogsRequest, OutputKind, StreamInput, StreamOpen,
    StreamOpenRequest, StreamOutput, TerminalSize,
};
