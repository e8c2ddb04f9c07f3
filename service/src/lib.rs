//! nest-service: Nest's API server, scheduler and instance drivers.
//!
//! # Layout
//! - [`domain`]: containers, instances, their ids and status machines;
//! - [`auth`]: callers, token validation and policy.
#![warn(missing_docs)]

pub mod auth;
pub mod domain;
