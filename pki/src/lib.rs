//! nest-pki: Nest's certificate authority, enrollment tokens and agent
//! signing.
//!
//! `nest-service` holds the CA and signs; the stand-alone relay's tests
//! and the test harness issue certificates with it. The agent never links
//! it: an agent only makes a key and a CSR. It builds on `nest-relay`
//! (without its server or client) for the identity a certificate names.
//!
//! # Layout
//!
//! - [`ca`]: [`CertificateAuthority`], which creates or loads the CA and
//!   issues certificates, either with a fresh key pair ([`IssueRequest`]) or
//!   for an agent's CSR, overriding everything in the CSR but its key.
//! - [`tokens`]: single-use, short-lived [`EnrollmentToken`]s bound to one
//!   instance, stored only as SHA-256 hashes ([`TokenStore`]).
//! - [`signer`]: [`Signer`], what the service runs to answer enrollment and
//!   renewal: token (or verified identity) in, agent certificate out.
//!
//! This module never logs keys, tokens or certificates, and never does
//! network I/O. Its only file I/O is [`CertificateAuthority::load_or_create`].

#![warn(missing_docs)]

use std::time::Duration;

use time::OffsetDateTime;

pub mod ca;
pub mod signer;
pub mod tokens;

pub use ca::{CertificateAuthority, IssueRequest, IssuedCertificate, PkiError, SignedClient};
pub use signer::{SignError, SignedAgent, Signer};
pub use tokens::{Clock, EnrollmentToken, MemoryTokenStore, SystemClock, TokenError, TokenStore};

/// How long an agent certificate lives; agents renew well before the end.
pub const DEFAULT_AGENT_CERT_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// How long a relay or service certificate lives.
pub const DEFAULT_SERVER_CERT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

pub use nest_core::Secret;
pub use nest_relay::identity::CLOCK_SKEW_ALLOWANCE;

/// The time window in which a certificate is valid.
///
/// The fields are private so that `not_before < not_after` always holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Validity {
    /// A window of `lifetime` from now, with `not_before` backdated by
    /// [`CLOCK_SKEW_ALLOWANCE`]. A lifetime too long to represent ends at the
    /// last representable date instead of failing.
    pub fn starting_now(lifetime: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now.saturating_sub(to_time_duration(CLOCK_SKEW_ALLOWANCE)),
            not_after: now.saturating_add(to_time_duration(lifetime).max(time::Duration::SECOND)),
        }
    }

    /// An explicit window, for certificates that must start or end at a
    /// given time (tests use it to make not-yet-valid certificates).
    ///
    /// # Errors
    /// [`PkiError::EmptyValidity`] when `not_after` is not after
    /// `not_before`.
    pub fn new(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Result<Self, PkiError> {
        if not_after <= not_before {
            return Err(PkiError::EmptyValidity);
        }
        Ok(Self {
            not_before,
            not_after,
        })
    }

    /// A one-hour window that ended `ago` before now: a certificate that is
    /// already expired, for tests of expiry handling.
    pub fn ended_ago(ago: Duration) -> Self {
        let not_after = OffsetDateTime::now_utc().saturating_sub(to_time_duration(ago));
        Self {
            not_before: not_after.saturating_sub(time::Duration::HOUR),
            not_after,
        }
    }

    /// First instant the certificate is valid.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// Last instant the certificate is valid.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
}

/// Converts a std duration, saturating at the largest `time` duration
/// (only reachable with absurd configured lifetimes).
fn to_time_duration(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn starting_now_backdates_by_the_skew_allowance() {
        let before = OffsetDateTime::now_utc();
        let v = Validity::starting_now(Duration::from_secs(3600));
        let after = OffsetDateTime::now_utc();
        assert!(v.not_before() >= before - time::Duration::minutes(5));
        assert!(v.not_before() <= after - time::Duration::minutes(5));
        assert!(v.not_after() >= before + time::Duration::HOUR);
        assert!(v.not_after() <= after + time::Duration::HOUR);
    }

    #[test]
    fn absurd_lifetime_saturates_instead_of_panicking() {
        let v = Validity::starting_now(Duration::MAX);
        assert!(v.not_after() > v.not_before());
    }

    #[test]
    fn empty_window_is_refused() {
        let now = OffsetDateTime::now_utc();
        assert!(matches!(
            Validity::new(now, now),
            Err(PkiError::EmptyValidity)
        ));
        assert!(Validity::new(now, now + time::Duration::SECOND).is_ok());
    }

    #[test]
    fn ended_ago_is_in_the_past() {
        let v = Validity::ended_ago(Duration::from_secs(60));
        assert!(v.not_after() < OffsetDateTime::now_utc());
        assert!(v.not_before() < v.not_after());
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2");
    }
}
