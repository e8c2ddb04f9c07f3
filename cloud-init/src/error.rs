//! Why rendering or parsing user-data failed.

use crate::encode::{MAX_USER_DATA_BYTES, NOVA_USER_DATA_MAX_BYTES};
use crate::validate::ValidationError;

/// Why [`render`](crate::render) produced no user-data.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The bootstrap breaks one or more rules; the error lists them all.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The user-data would exceed what Nova stores.
    #[error(
        "user-data is {bytes} bytes, {encoded} once base64-encoded; Nova accepts at most \
         {NOVA_USER_DATA_MAX_BYTES} encoded ({MAX_USER_DATA_BYTES} raw)"
    )]
    TooLarge {
        /// Length of the rendered user-data.
        bytes: usize,
        /// Length of its base64 form, which is what Nova limits.
        encoded: usize,
    },
    /// The agent configuration could not be written as TOML.
    #[error("cannot serialize the agent configuration as TOML")]
    AgentConfig(#[source] toml::ser::Error),
    /// The cloud-config document could not be written as JSON.
    #[error("cannot serialize the cloud-config document as JSON")]
    Json(#[source] serde_json::Error),
}

/// Why [`parse`](crate::parse) refused a user-data document.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The text is longer than anything [`render`](crate::render) produces.
    #[error("user-data is {bytes} bytes; rendered user-data is at most {MAX_USER_DATA_BYTES}")]
    TooLarge {
        /// Length of the refused text.
        bytes: usize,
    },
    /// The first line is not exactly `#cloud-config`.
    #[error("user-data does not start with a \"#cloud-config\" line")]
    MissingHeader,
    /// The body is not the JSON document that `render` writes.
    #[error("user-data body is not a nest-cloud-init document")]
    Body(#[source] serde_json::Error),
    /// A `write_files` path is not a plain absolute path.
    #[error("write_files[{index}].path is unsafe: {reason}")]
    UnsafePath {
        /// Position of the entry in `write_files`.
        index: usize,
        /// What exactly is wrong.
        reason: &'static str,
    },
    /// A `write_files` owner is not `user:group`.
    #[error("write_files[{index}].owner must be user:group")]
    Owner {
        /// Position of the entry in `write_files`.
        index: usize,
    },
}
