//! nest-service: Nest's API server, scheduler and instance drivers.
//!
//! # Layout
//! - [`domain`]: containers, instances, their ids and status machines;
//! - [`auth`]: callers, token validation and policy.
//! - [`api`]: the Zun-compatible REST API over the `ContainerBackend` trait.
//! - [`db`]: the database (SQLite or PostgreSQL): containers, instances, ports, actions.
//! - [`driver`]: the instance drivers (`local`, later `nova`) behind one trait.
//! - [`scheduler`]: placement, booting and retiring instances.
//! - [`reconcile`]: converging the database with what agents and drivers report.
//! - [`ca`]: Nest's CA: the relay's and the service's certificates, the signer.
//! - [`relay_link`]: the service's long-lived links to its relay.
//! - [`agents`]: the one typed link to agents (commands, streams, events),
//!   and the only mapping to and from the wire protocol.
//! - [`app`]: the container service the API calls (`ContainerBackend`).
//! - [`images`]: per-project stored images and loading them into instances.
//! - [`config`]: the service's configuration file.
//! - [`server`]: assembling and running all of the above.
//! - `testing` (tests and the `testing` feature only): fake agents and a
//!   fake driver, and the real service assembled over them.
#![warn(missing_docs)]

pub mod agents;
pub mod api;
pub mod app;
pub mod auth;
pub mod ca;
pub mod config;
pub mod db;
pub mod domain;
pub mod driver;
pub mod images;
pub mod reconcile;
pub mod relay_link;
pub mod scheduler;
pub mod server;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use nest_core::process::error_chain;
