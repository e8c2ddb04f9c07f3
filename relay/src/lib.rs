//! nest-relay: Nest's wire protocol, its PKI, and the relay that carries
//! commands and streams between nest-service and the nest-agents.
//!
//! The relay never depends on the service or the agent; both depend on it
//! for the protocol, so everything they share lives here.
//!
//! # Layout
//! - [`proto`]: the generated gRPC types and services (`proto/nest/v1/*.proto`);
//! - [`version`]: protocol version and the flow-control limits peers share;
//! - [`ids`]: identifiers that cross processes ([`ids::InstanceId`]);
//! - [`error_kind`]: the classification every client-visible error carries;
//! - [`status`]: the one mapping between error kinds and gRPC codes;
//! - [`identity`]: who a certificate names (agent, service or relay);
//! - [`pki`]: the CA, enrollment tokens and the signer the service runs;
//! - [`tls`]: TLS 1.3 configurations for both sides of an mTLS channel;
//! - [`server`]: the relay server itself;
//! - [`client`]: dialling a relay, and the service's [`client::RelayClient`];
//! - [`backoff`]: the one jittered, capped retry schedule;
//! - [`duration`]: durations with units in config files;
//! - [`config`]: the stand-alone relay's config file, and loading TOML
//!   config files for every binary;
//! - [`process`]: logging, TLS provider, signals and error chains, as every
//!   binary sets them up.
#![warn(missing_docs)]

pub mod backoff;
pub mod client;
pub mod config;
pub mod duration;
pub mod error_kind;
pub mod identity;
pub mod ids;
pub mod pki;
pub mod process;
pub mod server;
pub mod status;
pub mod tls;
pub mod version;

/// Generated protocol types and gRPC stubs.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("nest.v1");
}
