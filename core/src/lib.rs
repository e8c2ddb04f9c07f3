//! nest-core: what every Nest process shares, and nothing else. A leaf
//! crate: it depends on no other Nest crate, knows no protocol, no
//! database and no HTTP.
//!
//! # Layout
//! - [`error`]: [`ErrorKind`], the classification every client-visible
//!   error carries; each protocol maps it to its codes in one place;
//! - [`ids`]: identifiers that cross processes ([`InstanceId`],
//!   [`RequestId`]);
//! - [`duration`]: durations with units in config files;
//! - [`backoff`]: the one jittered, capped retry schedule;
//! - [`secret`]: values whose `Debug` never shows them;
//! - [`config`]: loading TOML config files and reporting every problem;
//! - [`process`]: logging, the TLS provider, signals and exit codes, as
//!   every binary sets them up;
//! - [`process_input`]: what a container's process may be given
//!   (environment, working directory, user), checked alike by the
//!   service's doors and the agent's;
//! - `testing` (feature `testing`): the bounded poll tests wait with.
#![warn(missing_docs)]

pub mod backoff;
pub mod config;
pub mod duration;
pub mod engine_options;
pub mod error;
pub mod ids;
pub mod process;
pub mod process_input;
pub mod secret;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::ErrorKind;
pub use ids::{InstanceId, RequestId};
pub use secret::Secret;
