//! Who is calling, and what they may do.
//!
//! An [`Authenticate`] implementation turns a token (`X-Auth-Token`) into a
//! [`Caller`]: Keystone v3 validation in production (`keystone.rs`), or
//! static tokens from the config file in the loudly labelled dev mode
//! (`dev.rs`). `policy.rs` decides what a caller may do (owner-or-admin;
//! `all_projects` admin-only; the reader role reads only).

use std::collections::BTreeSet;

use futures_util::future::BoxFuture;
use nest_relay::error_kind::ErrorKind;

use crate::domain::{ProjectId, UserId};

/// An authenticated caller, from a validated token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The Keystone user.
    pub user_id: UserId,
    /// The project the token is scoped to.
    pub project_id: ProjectId,
    /// Role names on that project, lowercase.
    pub roles: BTreeSet<String>,
}

impl Caller {
    /// Whether the caller holds the admin role.
    pub fn is_admin(&self) -> bool {
        self.roles.contains("admin")
    }

    /// Whether the caller may only read (holds `reader` and no role that
    /// writes).
    pub fn is_read_only(&self) -> bool {
        !self.is_admin() && !self.roles.contains("member") && self.roles.contains("reader")
    }
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token was sent.
    #[error("authentication required")]
    Missing,
    /// The token is unknown, expired, revoked or malformed.
    #[error("the token is invalid, expired or revoked")]
    Invalid,
    /// The token is valid but not scoped to a project.
    #[error("the token is not scoped to a project")]
    Unscoped,
    /// The identity service could not be asked.
    #[error("the identity service is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AuthError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Missing | Self::Invalid | Self::Unscoped => ErrorKind::Unauthenticated,
            Self::Unavailable(_) => ErrorKind::Unavailable,
        }
    }
}

/// Turns a token into a caller.
pub trait Authenticate: Send + Sync {
    /// Validates `token`.
    ///
    /// # Errors
    /// [`AuthError`] when the token is not accepted or cannot be checked.
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, AuthError>>;
}
