//! nest-relay: Nest's wire protocol, TLS and identity, and the relay that
//! carries commands and streams between nest-service and the nest-agents.
//!
//! The relay depends only on `nest-core`; the service and the agent depend
//! on it for the protocol. The server and the client sit behind the
//! `server` and `client` features, so the agent (client only) never builds
//! the server. The CA lives in `nest-pki`, on the service side.
//!
//! # Layout
//! - [`proto`]: the generated gRPC types and services (`proto/nest/v1/*.proto`);
//! - [`convert`]: error kinds to and from the wire;
//! - [`version`]: protocol version and the flow-control limits peers share;
//! - [`status`]: the one mapping between error kinds and gRPC codes;
//! - [`identity`]: who a certificate names (agent, service or relay);
//! - [`signing`]: the seam to the CA that signs agents' certificates;
//! - [`tls`]: TLS 1.3 configurations for both sides of an mTLS channel;
//! - [`server`] (feature `server`): the relay server itself, and
//!   [`config`], the stand-alone relay's config file;
//! - [`client`] (feature `client`): dialling a relay, and the service's
//!   [`client::RelayClient`].
#![warn(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod config;
pub mod convert;
pub mod identity;
#[cfg(feature = "server")]
pub mod server;
pub mod signing;
pub mod status;
pub mod tls;
pub mod version;

/// Generated protocol types and gRPC stubs.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("nest.v1");
}
