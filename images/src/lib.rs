//! Container images for Nest: what a tenant's `image:` field names, and the
//! images Nest holds itself so that an instance can run them without any
//! registry.
//!
//! A tenant writes either a registry reference (`nginx:1.25`), which the
//! agent in the instance pulls, or the uuid of an image held by Nest, which
//! the service streams to the agent to `docker load`. Held images live behind
//! the [`ImageStore`] trait; the embedded default, [`FileImageStore`], keeps
//! them as files under the service's state directory, and a Glance-backed
//! store can implement the same trait. Every held image is a `docker
//! load`-able archive, whatever form it was uploaded in.
//!
//! This crate depends only on `nest-core`. It never talks to Docker or to
//! a registry; moving the bytes to an agent is the caller's job.
//!
//! # Layout
//!
//! - [`mod@reference`]: [`ImageRef`] and [`RegistryReference`], a hand-written
//!   parser for Docker's reference grammar plus Nest's image ids.
//! - [`store`]: the [`ImageStore`] trait and what it traffics in:
//!   [`ImageId`], [`ImageRecord`], [`ImageFormat`] and [`StoreError`].
//! - [`file_store`]: [`FileImageStore`], images as `<uuid>.tar` plus
//!   `<uuid>.json` in one directory, written crash-safely.
//! - [`archive`]: the blocking tar work behind uploads: telling a `docker
//!   save` archive from a root filesystem, validating the former and
//!   converting the latter into a docker archive.
//! - `testing` (feature `testing`): fixture archives for tests.

#![warn(missing_docs)]

pub mod archive;
pub mod file_store;
pub mod reference;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use archive::ArchiveError;
pub use file_store::{DEFAULT_MAX_IMAGE_SIZE, FileImageStore, FileStoreConfig};
pub use reference::{ImageRef, ReferenceError, RegistryReference};
pub use store::{ImageFormat, ImageId, ImageRecord, ImageStore, ParseImageIdError, StoreError};

/// The classification every error of this crate carries: Nest's one
/// [`nest_core::ErrorKind`], so no caller has to translate it.
pub use nest_core::ErrorKind;
