//! nest-openstack: Nest's conversation with OpenStack. Everything that
//! talks to a cloud goes through one Keystone v3 [`Session`] (auth methods,
//! token refresh, the service catalog, timeouts, request ids, private CAs);
//! the API's token validation and the Nova, Neutron and Glance clients are
//! built on it.
//!
//! It depends on no Nest crate but `nest-core`, and knows nothing of the
//! service that uses it: no database, no HTTP server, no API types. It
//! never logs a token, a password or a secret.
//!
//! # Layout
//! - [`config`]: [`SessionConfig`], the flat `auth_url` / `auth_type` /
//!   `username` / ... section (as `clouds.yaml` writes it), strictly
//!   parsed and checked all at once;
//! - [`auth`]: the auth methods ([`AuthMethod`]), token scopes, and the
//!   [`TenantAuthority`] (trust or application credential) that lets a
//!   driver act in a tenant's project;
//! - [`session`]: [`Session`]: logging in, refreshing before expiry and
//!   once on a 401, endpoint lookup, and [`Session::send`], the
//!   authenticated call every client makes;
//! - [`catalog`]: the token's service catalog, lookup by service type,
//!   [`Interface`] and region;
//! - [`validate`]: [`TokenValidator`], Keystone token validation for an
//!   API, with a short cache;
//! - [`compute`]: [`Compute`], Nova at a pinned microversion (servers,
//!   flavors, zones, key pairs, limits);
//! - [`network`]: [`Network`], Neutron (networks, ports, floating IPs);
//! - [`image`]: [`Image`], Glance (image records and data);
//! - [`trust`]: creating Keystone trusts with a user's token;
//! - [`client`]: what those clients share (retries, refusals in the
//!   service's own words);
//! - [`error`]: [`OpenStackError`] and its [`OpenStackError::kind`];
//! - `testing` (feature `testing`): a fake Keystone on loopback for tests.
#![warn(missing_docs)]

pub mod auth;
pub mod catalog;
pub mod client;
pub mod compute;
pub mod config;
pub mod error;
pub mod image;
pub mod network;
pub mod session;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trust;
pub mod validate;

pub use auth::{AuthMethod, NamedUser, Scope, TenantAuthority};
pub use catalog::{Catalog, Interface, join_segments};
pub use compute::Compute;
pub use config::{AuthType, SessionConfig};
pub use error::{OpenStackError, RemoteRequestId};
pub use image::Image;
pub use network::Network;
pub use session::{Call, Session, SessionOptions};
pub use trust::TrustRequest;
pub use validate::{TokenValidator, ValidatedToken, ValidationError, ValidatorConfig};
