//! One-time enrollment tokens: what lets a new agent get its first
//! certificate.
//!
//! A token is written into the instance's user-data, which anything inside
//! the instance can read, so it must not be a lasting secret: it is random
//! (32 bytes from aws-lc-rs), bound to one instance id, short-lived and
//! single-use. The store keeps only its SHA-256 hash, so a leaked store
//! cannot be replayed, and looking a token up by hash leaks nothing useful
//! through timing.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;

use nest_core::ErrorKind;
use nest_core::ids::InstanceId;

/// Length of a token's text form: 32 random bytes as lowercase hex.
pub const ENROLLMENT_TOKEN_LEN: usize = 64;

/// How long a token stays redeemable when the caller has no better idea:
/// long enough for an instance to boot and pull the agent.
pub const DEFAULT_ENROLLMENT_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);

/// How long a token's record is kept after it expires, so that a replay of
/// a used token is reported as [`TokenError::AlreadyUsed`] (a sign of a
/// leak worth an operator's attention) rather than [`TokenError::Unknown`].
pub const TOKEN_RECORD_RETENTION: Duration = Duration::from_secs(60 * 60);

/// Number of random bytes in a token.
const TOKEN_BYTES: usize = ENROLLMENT_TOKEN_LEN / 2;

/// Why a token could not be issued or redeemed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The presented token is not 64 lowercase hex characters.
    #[error("enrollment token is malformed")]
    Malformed,
    /// No such token was issued (or its record has been purged).
    #[error("enrollment token is unknown")]
    Unknown,
    /// The token was issued but its time to live has passed.
    #[error("enrollment token of instance {instance} has expired")]
    Expired {
        /// The instance it was issued for.
        instance: InstanceId,
    },
    /// The token was already redeemed once: someone else holds a copy.
    #[error("enrollment token of instance {instance} was already used")]
    AlreadyUsed {
        /// The instance it was issued for.
        instance: InstanceId,
    },
    /// The token's expiry cannot be represented (absurd time to live).
    #[error("enrollment token time to live {0:?} is too long")]
    TtlTooLong(Duration),
    /// Randomness for a new token was unavailable.
    #[error("random number generator failed")]
    Random(#[source] aws_lc_rs::error::Unspecified),
}

impl TokenError {
    /// How a caller sees this error: any refused token means the caller did
    /// not prove who it is; failing to make one is internal.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Malformed | Self::Unknown | Self::Expired { .. } | Self::AlreadyUsed { .. } => {
                ErrorKind::Unauthenticated
            }
            Self::TtlTooLong(_) | Self::Random(_) => ErrorKind::Internal,
        }
    }
}

/// A freshly issued enrollment token; its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentToken(String);

impl EnrollmentToken {
    /// Makes a new random token.
    ///
    /// # Errors
    /// [`TokenError::Random`] if the system's randomness is unavailable.
    pub fn generate() -> Result<Self, TokenError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        aws_lc_rs::rand::fill(&mut bytes).map_err(TokenError::Random)?;
        let mut text = String::with_capacity(ENROLLMENT_TOKEN_LEN);
        for b in bytes {
            text.push(hex_digit(b >> 4));
            text.push(hex_digit(b & 0x0f));
        }
        Ok(Self(text))
    }

    /// The token's text, to write into the instance's user-data. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnrollmentToken(<redacted>)")
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

/// Where issued tokens are remembered until they are redeemed or expire.
pub trait TokenStore: Send + Sync {
    /// Issues a new token that `instance` can redeem once within `ttl`.
    ///
    /// # Errors
    /// [`TokenError::Random`] or [`TokenError::TtlTooLong`].
    fn issue(&self, instance: &InstanceId, ttl: Duration) -> Result<EnrollmentToken, TokenError>;

    /// Redeems a token, returning the instance it was issued for. A token
    /// can be redeemed once.
    ///
    /// # Errors
    /// [`TokenError::Malformed`], [`TokenError::Unknown`],
    /// [`TokenError::Expired`] or [`TokenError::AlreadyUsed`].
    fn redeem(&self, token: &str) -> Result<InstanceId, TokenError>;
}

/// A source of the current time, so that expiry can be tested without
/// sleeping. Any `Fn() -> Instant + Send + Sync` closure is a clock.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

impl<F> Clock for F
where
    F: Fn() -> Instant + Send + Sync,
{
    fn now(&self) -> Instant {
        self()
    }
}

/// SHA-256 of a token's text: what the store keeps instead of the token.
type TokenHash = [u8; 32];

struct TokenRecord {
    instance: InstanceId,
    expires_at: Instant,
    used: bool,
}

/// An in-memory [`TokenStore`]: tokens do not survive a restart of the
/// process holding it, which only means an instance that had not enrolled
/// yet needs a new token.
///
/// A std `Mutex` is right here: every critical section is a few map
/// operations and nothing awaits while holding it.
pub struct MemoryTokenStore {
    records: Mutex<HashMap<TokenHash, TokenRecord>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTokenStore").finish_non_exhaustive()
    }
}

impl Default for MemoryTokenStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryTokenStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store on the given clock (tests pass a settable one).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            records: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// Locks the map. A panic while the lock was held cannot leave a record
    /// half-updated (each update is one field write or one map call), so a
    /// poisoned lock is still safe to use.
    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, TokenRecord>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TokenStore for MemoryTokenStore {
    fn issue(&self, instance: &InstanceId, ttl: Duration) -> Result<EnrollmentToken, TokenError> {
        let token = EnrollmentToken::generate()?;
        let now = self.clock.now();
        let expires_at = now.checked_add(ttl).ok_or(TokenError::TtlTooLong(ttl))?;
        let mut records = self.records();
        // Purging here bounds the map by the tokens issued within the last
        // ttl + retention; it only grows when a token is issued.
        records.retain(|_, r| {
            r.expires_at
                .checked_add(TOKEN_RECORD_RETENTION)
                .is_none_or(|purge_at| now < purge_at)
        });
        records.insert(
            hash(token.as_str()),
            TokenRecord {
                instance: instance.clone(),
                expires_at,
                used: false,
            },
        );
        Ok(token)
    }

    fn redeem(&self, token: &str) -> Result<InstanceId, TokenError> {
        if !is_well_formed(token) {
            return Err(TokenError::Malformed);
        }
        let key = hash(token);
        let now = self.clock.now();
        let mut records = self.records();
        let record = records.get_mut(&key).ok_or(TokenError::Unknown)?;
        // Reported before expiry: a replay is worth knowing about even late.
        if record.used {
            return Err(TokenError::AlreadyUsed {
                instance: record.instance.clone(),
            });
        }
        if now >= record.expires_at {
            return Err(TokenError::Expired {
                instance: record.instance.clone(),
            });
        }
        record.used = true;
        Ok(record.instance.clone())
    }
}

fn is_well_formed(token: &str) -> bool {
    token.len() == ENROLLMENT_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hash(token: &str) -> TokenHash {
    let digest = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    // SHA-256 output is always 32 bytes.
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A clock that only moves when the test says so.
    struct ManualClock {
        start: Instant,
        offset_secs: AtomicU64,
    }

    impl ManualClock {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                start: Instant::now(),
                offset_secs: AtomicU64::new(0),
            })
        }

        fn advance(&self, d: Duration) {
            self.offset_secs.fetch_add(d.as_secs(), Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            self.start + Duration::from_secs(self.offset_secs.load(Ordering::SeqCst))
        }
    }

    fn instance(id: &str) -> InstanceId {
        InstanceId::parse(id).unwrap()
    }

    const TTL: Duration = Duration::from_secs(600);

    #[test]
    fn token_is_64_lowercase_hex_and_debug_is_redacted() {
        let t = EnrollmentToken::generate().unwrap();
        assert!(is_well_formed(t.as_str()), "{}", t.as_str());
        assert!(!format!("{t:?}").contains(t.as_str()));
        assert_ne!(t, EnrollmentToken::generate().unwrap());
    }

    #[test]
    fn token_redeems_once_for_its_instance() {
        let store = MemoryTokenStore::new();
        let a = store.issue(&instance("i-a"), TTL).unwrap();
        let b = store.issue(&instance("i-b"), TTL).unwrap();
        assert_eq!(store.redeem(b.as_str()).unwrap(), instance("i-b"));
        assert_eq!(store.redeem(a.as_str()).unwrap(), instance("i-a"));
    }

    #[test]
    fn enrollment_token_is_refused_on_second_use() {
        let store = MemoryTokenStore::new();
        let t = store.issue(&instance("i-a"), TTL).unwrap();
        store.redeem(t.as_str()).unwrap();
        let err = store.redeem(t.as_str()).unwrap_err();
        assert!(matches!(err, TokenError::AlreadyUsed { .. }));
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    }

    #[test]
    fn expired_token_is_refused_and_stays_refused() {
        let clock = ManualClock::new();
        let store = MemoryTokenStore::with_clock(clock.clone());
        let t = store.issue(&instance("i-a"), TTL).unwrap();
        clock.advance(TTL - Duration::from_secs(1));
        let early = store.issue(&instance("i-b"), TTL).unwrap();
        clock.advance(Duration::from_secs(1));
        assert!(matches!(
            store.redeem(t.as_str()),
            Err(TokenError::Expired { .. })
        ));
        assert!(matches!(
            store.redeem(t.as_str()),
            Err(TokenError::Expired { .. })
        ));
        // The other token, issued later, is still good.
        assert_eq!(store.redeem(early.as_str()).unwrap(), instance("i-b"));
    }

    #[test]
    fn records_are_purged_after_retention_so_the_store_stays_bounded() {
        let clock = ManualClock::new();
        let store = MemoryTokenStore::with_clock(clock.clone());
        let used = store.issue(&instance("i-a"), TTL).unwrap();
        store.redeem(used.as_str()).unwrap();
        let _unused = store.issue(&instance("i-b"), TTL).unwrap();
        clock.advance(TTL + TOKEN_RECORD_RETENTION - Duration::from_secs(1));
        // Within retention, the replay is still recognised.
        assert!(matches!(
            store.redeem(used.as_str()),
            Err(TokenError::AlreadyUsed { .. })
        ));
        clock.advance(Duration::from_secs(1));
        let fresh = store.issue(&instance("i-c"), TTL).unwrap();
        assert_eq!(store.records().len(), 1);
        assert!(matches!(
            store.redeem(used.as_str()),
            Err(TokenError::Unknown)
        ));
        assert_eq!(store.redeem(fresh.as_str()).unwrap(), instance("i-c"));
    }

    #[test]
    fn malformed_and_unknown_tokens_are_refused_without_changing_anything() {
        let store = MemoryTokenStore::new();
        let t = store.issue(&instance("i-a"), TTL).unwrap();
        let upper = t.as_str().to_ascii_uppercase();
        for bad in ["", "abc", upper.as_str(), &"g".repeat(64), &"a".repeat(65)] {
            assert!(
                matches!(store.redeem(bad), Err(TokenError::Malformed)),
                "{bad:?}"
            );
        }
        let unknown = EnrollmentToken::generate().unwrap();
        let err = store.redeem(unknown.as_str()).unwrap_err();
        assert!(matches!(err, TokenError::Unknown));
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        // The real token is untouched by the failed attempts.
        assert_eq!(store.redeem(t.as_str()).unwrap(), instance("i-a"));
    }

    #[test]
    fn store_keeps_only_hashes() {
        let store = MemoryTokenStore::new();
        let t = store.issue(&instance("i-a"), TTL).unwrap();
        let records = store.records();
        assert!(records.contains_key(&hash(t.as_str())));
        assert!(
            records
                .keys()
                .all(|k| k.as_slice() != t.as_str().as_bytes())
        );
    }

    #[test]
    fn closures_are_clocks() {
        let fixed = Instant::now();
        let store = MemoryTokenStore::with_clock(Arc::new(move || fixed));
        let t = store.issue(&instance("i-a"), Duration::ZERO).unwrap();
        assert!(matches!(
            store.redeem(t.as_str()),
            Err(TokenError::Expired { .. })
        ));
    }
}
