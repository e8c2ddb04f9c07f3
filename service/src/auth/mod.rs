//! Who is calling, and what they may do.
//!
//! An [`Authenticate`] implementation turns a token (`X-Auth-Token`) into a
//! [`Caller`]: Keystone v3 validation in production (`keystone.rs`), or
//! static tokens from the config file in the loudly labelled dev mode
//! (`dev.rs`). `policy.rs` decides what a caller may do (owner-or-admin;
//! `all_projects` admin-only; the reader role reads only).
//!
//! Nothing here is wired into HTTP: the API layer holds an
//! `Arc<dyn Authenticate>` and calls [`policy::authorize`]. Raw tokens are
//! never stored or logged; caches key them by `TokenHash`.

use std::collections::BTreeSet;
use std::fmt;

use futures_util::future::BoxFuture;
use nest_core::ErrorKind;
pub use nest_core::Secret;

use crate::domain::{ProjectId, UserId};

pub mod dev;
pub mod keystone;
pub mod policy;

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

/// The SHA-256 of a token: how tokens are keyed in memory, so that a heap
/// dump or a debug print of a cache never shows a usable token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes `token`.
    ///
    /// Done inline rather than in `spawn_blocking`: SHA-256 of a few hundred
    /// bytes takes well under a microsecond, less than a thread hand-off.
    pub(crate) fn of(token: &str) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        Self(
            digest
                .as_ref()
                .try_into()
                .expect("a SHA-256 digest is 32 bytes"),
        )
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to tell entries apart in a debug print.
        write!(f, "TokenHash(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// One problem found in an auth config section: which key, and why.
///
/// Keys are relative to the section (`auth_url`, `tokens[2].token`); the
/// service config prefixes its own section name. Never holds a secret's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The offending key, relative to the section.
    pub key: String,
    /// Why its value is refused.
    pub reason: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// Why an auth config section cannot be used: every problem found, at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid auth configuration: {}", join_problems(.problems))]
pub struct AuthConfigError {
    /// Each problem, in the order the keys appear.
    pub problems: Vec<ConfigProblem>,
}

impl AuthConfigError {
    /// Configuration errors are the operator's to fix; a request never causes one.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }

    /// `Ok` when no problem was found, otherwise all of them.
    pub(crate) fn check(problems: Vec<ConfigProblem>) -> Result<(), Self> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Self { problems })
        }
    }
}

fn join_problems(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads a config string straight into a [`Secret`], so the plain value never
/// sits in a field that `Debug` would print.
pub(crate) fn deserialize_secret<'de, D>(d: D) -> Result<Secret<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <String as serde::Deserialize>::deserialize(d).map(Secret::new)
}

/// Lowercases and checks configured role names, recording problems under `key`.
pub(crate) fn normalize_roles(
    key: &str,
    roles: &[String],
    problems: &mut Vec<ConfigProblem>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, role) in roles.iter().enumerate() {
        let role = role.trim().to_lowercase();
        if role.is_empty() || role.len() > 255 || role.chars().any(char::is_control) {
            problems.push(ConfigProblem {
                key: format!("{key}[{i}]"),
                reason: "a role name must be 1 to 255 printable characters".into(),
            });
            continue;
        }
        out.insert(role);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_stable_and_never_prints_the_token() {
        let a = TokenHash::of("gAAAAAB-some-token");
        assert_eq!(a, TokenHash::of("gAAAAAB-some-token"));
        assert_ne!(a, TokenHash::of("gAAAAAB-some-tokeN"));
        let printed = format!("{a:?}");
        assert!(!printed.contains("some-token"), "{printed}");
    }

    #[test]
    fn config_error_lists_every_problem() {
        let err = AuthConfigError::check(vec![
            ConfigProblem {
                key: "a".into(),
                reason: "bad".into(),
            },
            ConfigProblem {
                key: "b".into(),
                reason: "worse".into(),
            },
        ])
        .expect_err("two problems");
        assert_eq!(
            err.to_string(),
            "invalid auth configuration: a: bad; b: worse"
        );
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }
}
