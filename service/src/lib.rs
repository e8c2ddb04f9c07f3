//! nest-service: Nest's container service: its front ends, the
//! application layer they call, and everything behind it.
//!
//! Dependencies point one way: front ends (`api`) → application layer
//! (`app`) → scheduler, database, agent link, drivers. The application
//! layer knows no HTTP and no proto; only `agents` speaks the wire protocol.
//!
//! # Layout
//! - [`api`]: the front ends over HTTP: `api/zun/` (the Zun-compatible REST
//!   API), with room for `api/docker/`; shared error rendering and metrics;
//! - [`app`]: the application layer, one concrete [`app::App`] every front
//!   end calls, with its plain request/response types and [`app::AppError`];
//! - [`domain`]: containers, instances, their ids and status machines;
//! - [`auth`]: callers, token validation (Keystone through `nest-openstack`,
//!   or dev tokens) and policy;
//! - [`db`]: the database (SQLite or PostgreSQL), the only module with SQL;
//! - [`scheduler`]: one file per job: binding, booting, creating on agents,
//!   retiring; `placement` is the pure decision;
//! - [`reconcile`]: converging the database with what agents and drivers report;
//! - [`agents`]: the one typed link to agents (commands, streams, events),
//!   and the only mapping to and from the wire protocol;
//! - [`driver`]: the instance drivers (`local`, `nova`) behind one trait,
//!   and their typed configuration;
//! - [`enrollment`]: the driver's check of an instance before its agent's
//!   first certificate is signed;
//! - [`ca`]: Nest's CA: the relay's and the service's certificates, the signer;
//! - [`relay_link`]: the service's long-lived links to its relay;
//! - [`images`]: per-project stored images and loading them into instances;
//! - [`metrics`]: the registry `/metrics` renders, and the security counters;
//! - [`config`]: the service's configuration file;
//! - [`state_dir`]: the state directory and its files, kept private;
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
pub mod enrollment;
pub mod images;
pub mod metrics;
pub mod reconcile;
pub mod relay_link;
pub mod scheduler;
pub mod server;
pub mod state_dir;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use nest_core::process::error_chain;
