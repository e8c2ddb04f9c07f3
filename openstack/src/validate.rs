//! Keystone v3 token validation for an API: [`TokenValidator`].
//!
//! It works as keystonemiddleware's `auth_token` does. The validator's
//! [`Session`] logs in as the service user, and each user token is checked
//! with `GET /v3/auth/tokens` (`X-Auth-Token`: the service token,
//! `X-Subject-Token`: the user's). When Keystone rejects the service token
//! itself (401), the session logs in again once and the check is retried;
//! a 401 with a fresh service token means the user's token is invalid.
//!
//! Successful validations are cached for [`ValidatorConfig::cache_ttl`]
//! (default [`DEFAULT_CACHE_TTL`], 30s; keystonemiddleware's is 300s) and
//! never past the token's own `expires_at`. The TTL is the window in which a
//! revoked token is still accepted, which is why it is short. Refusals are
//! not cached, so a flood of bogus tokens cannot fill the cache; it holds at
//! most [`MAX_CACHED_TOKENS`] entries, keyed by the token's SHA-256, never by
//! the token.
//!
//! This module must not log or store a raw token or the service password.
//! It knows nothing of the API that uses it: what a caller is, and which
//! ids are safe to store, is the API's to decide.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nest_core::ErrorKind;
use nest_core::config::{Problems, Validate};
use nest_core::duration::HumanDuration;
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use time::OffsetDateTime;
use tokio::time::Instant;
use url::Url;

use crate::config::SessionConfig;
use crate::error::{OpenStackError, RemoteRequestId};
use crate::session::{
    Call, SUBJECT_TOKEN_HEADER, Session, SessionOptions, lifetime_until, parse_expiry,
};

/// Default time a successful validation is reused without asking Keystone.
/// Short, so that a revoked token stops working within half a minute.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
/// Longest `cache_ttl` accepted: keystonemiddleware's default, beyond which
/// a revocation would take too long to bite.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(300);
/// Most validations cached at once. Refusals are never cached, so only
/// that many distinct *valid* tokens within one TTL could reach the bound.
pub const MAX_CACHED_TOKENS: usize = 10_000;
/// Longest token sent to Keystone. Fernet tokens are about 200 characters;
/// anything far longer is not a token and is refused without a call.
pub const MAX_TOKEN_LEN: usize = 8192;

/// Settings of a [`TokenValidator`]: the session's keys (see
/// [`SessionConfig`]) and `cache_ttl`, side by side in one section, as
/// keystonemiddleware's `[keystone_authtoken]` has them.
#[derive(Clone, Debug)]
pub struct ValidatorConfig {
    /// The service user's session.
    pub session: SessionConfig,
    /// How long a successful validation is reused, and so how long a revoked
    /// token may still be accepted. `0s` disables the cache. Default: 30s;
    /// at most 5m.
    pub cache_ttl: HumanDuration,
}

impl ValidatorConfig {
    /// A config with the default cache for `session`.
    pub fn new(session: SessionConfig) -> Self {
        Self {
            session,
            cache_ttl: HumanDuration(DEFAULT_CACHE_TTL),
        }
    }
}

// By hand, because serde's `flatten` cannot be combined with
// `deny_unknown_fields`: `cache_ttl` is taken out of the section, and the
// rest must be exactly a `SessionConfig`, so an unknown key is still refused
// by name.
impl<'de> serde::Deserialize<'de> for ValidatorConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut section = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let cache_ttl = match section.remove("cache_ttl") {
            Some(value) => HumanDuration::deserialize(value)
                .map_err(|e| D::Error::custom(format!("cache_ttl: {e}")))?,
            None => HumanDuration(DEFAULT_CACHE_TTL),
        };
        let session = SessionConfig::deserialize(serde_json::Value::Object(section))
            .map_err(D::Error::custom)?;
        Ok(Self { session, cache_ttl })
    }
}

impl Validate for ValidatorConfig {
    fn check(&self, problems: &mut Problems) {
        self.session.check(problems);
        problems.require(
            self.cache_ttl.get() <= MAX_CACHE_TTL,
            "cache_ttl",
            "must be at most 5m: revoked tokens stay accepted that long",
        );
    }
}

/// What Keystone says of a valid, project-scoped token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedToken {
    /// The user's id, as Keystone sent it (unchecked).
    pub user_id: String,
    /// The id of the project the token is scoped to (unchecked).
    pub project_id: String,
    /// Role names on that project, lowercase (implied roles included).
    pub roles: BTreeSet<String>,
    /// When the token expires.
    pub expires_at: OffsetDateTime,
}

/// Why a token was not validated.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    /// The token is unknown, expired, revoked or malformed.
    #[error("the token is invalid, expired or revoked")]
    Invalid,
    /// The token is valid but not scoped to a project.
    #[error("the token is not scoped to a project")]
    Unscoped,
    /// The service user may not validate tokens (it lacks the `admin` or
    /// `service` role).
    #[error("keystone does not allow {principal} to validate tokens")]
    NotAllowed {
        /// Who the service logs in as.
        principal: String,
    },
    /// Keystone could not be asked, or answered nonsense.
    #[error(transparent)]
    Keystone(#[from] OpenStackError),
}

impl ValidationError {
    /// The classification of this error: the caller's fault for
    /// `Invalid`/`Unscoped`, Keystone's unavailability otherwise.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid | Self::Unscoped => ErrorKind::Unauthenticated,
            Self::NotAllowed { .. } => ErrorKind::Unavailable,
            // A Keystone that cannot validate means nobody can be
            // authenticated: unavailable, whatever the cause (a timeout, a
            // misconfiguration noticed only now).
            Self::Keystone(_) => ErrorKind::Unavailable,
        }
    }
}

/// Validates user tokens against Keystone, with a short cache.
pub struct TokenValidator {
    session: Session,
    /// `<identity>/auth/tokens?nocatalog`: the catalog is not needed to
    /// validate a token, and is the bulk of the body.
    tokens_url: Url,
    cache_ttl: Duration,
    /// Never held across `.await`.
    cache: Mutex<ValidationCache>,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("session", &self.session)
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

impl TokenValidator {
    /// Checks `config` and builds the validator's session. Does not call
    /// Keystone: the first login happens with the first token to validate.
    ///
    /// # Errors
    /// [`OpenStackError::Config`] with every config problem, or why the
    /// session could not be built.
    pub async fn new(
        config: &ValidatorConfig,
        options: SessionOptions,
    ) -> Result<Self, OpenStackError> {
        config.validate().map_err(OpenStackError::Config)?;
        let session = Session::new(&config.session, options).await?;
        Ok(Self::with_session(session, config.cache_ttl.get()))
    }

    /// A validator over an existing `session`, caching for `cache_ttl`.
    pub fn with_session(session: Session, cache_ttl: Duration) -> Self {
        let mut tokens_url = session.identity_url().clone();
        tokens_url.set_path(&format!("{}/auth/tokens", tokens_url.path()));
        tokens_url.set_query(Some("nocatalog"));
        Self {
            session,
            tokens_url,
            cache_ttl,
            cache: Mutex::new(ValidationCache::new(MAX_CACHED_TOKENS)),
        }
    }

    /// Validates `token`, from the cache when a recent answer is there.
    ///
    /// # Errors
    /// [`ValidationError::Invalid`] or [`ValidationError::Unscoped`] for a
    /// token that does not authenticate anyone; the others when Keystone
    /// cannot say.
    ///
    /// # Cancel safety
    /// Safe to cancel: a cancelled call leaves the cache and the service
    /// token as they were, or updated with a complete answer.
    #[tracing::instrument(name = "keystone_validate", skip_all)]
    pub async fn validate(&self, token: &str) -> Result<ValidatedToken, ValidationError> {
        // Keystone would refuse these too; refusing here saves a call and
        // keeps bytes that cannot be a header value off the wire.
        if token.is_empty()
            || token.len() > MAX_TOKEN_LEN
            || !token.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ValidationError::Invalid);
        }
        let Ok(mut subject) = HeaderValue::from_str(token) else {
            return Err(ValidationError::Invalid);
        };
        subject.set_sensitive(true);
        let key = TokenHash::of(token);
        if let Some(validated) = self.lock_cache().get(&key, Instant::now()) {
            tracing::debug!("token validation served from cache");
            return Ok(validated);
        }
        let (validated, lifetime) = self.validate_remotely(&subject).await?;
        let now = Instant::now();
        let ttl = self.cache_ttl.min(lifetime);
        if let Some(until) = now.checked_add(ttl) {
            self.lock_cache().insert(key, validated.clone(), until, now);
        }
        tracing::debug!(
            user_id = %validated.user_id,
            project_id = %validated.project_id,
            "token validated by keystone"
        );
        Ok(validated)
    }

    /// One `GET /v3/auth/tokens` of `subject` (the session retries it once
    /// with a fresh service token on 401).
    async fn validate_remotely(
        &self,
        subject: &HeaderValue,
    ) -> Result<(ValidatedToken, Duration), ValidationError> {
        const OPERATION: &str = "validate a token";
        let response = self
            .session
            .send(&Call::new("keystone", OPERATION), |http| {
                http.get(self.tokens_url.clone())
                    .header(SUBJECT_TOKEN_HEADER, subject.clone())
            })
            .await?;
        match response.status() {
            StatusCode::OK => {}
            // Keystone answers 404 for unknown, expired and revoked subject
            // tokens (and for malformed ones). A 401 that survived the
            // session's retry with a fresh service token is about the
            // user's token too (keystonemiddleware reads it the same way).
            StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED => {
                return Err(ValidationError::Invalid);
            }
            StatusCode::FORBIDDEN => {
                return Err(ValidationError::NotAllowed {
                    principal: self.session.principal(),
                });
            }
            s => {
                return Err(OpenStackError::UnexpectedStatus {
                    service: "keystone",
                    operation: OPERATION,
                    status: s.as_u16(),
                    request: RemoteRequestId::of(&response),
                }
                .into());
            }
        }
        let body: ValidatedBody =
            response
                .json()
                .await
                .map_err(|source| OpenStackError::MalformedBody {
                    service: "keystone",
                    operation: OPERATION,
                    source,
                })?;
        let token = body.token;
        // Domain- and system-scoped tokens have no project either: Nest's
        // objects all belong to a project, so they cannot act on anything.
        let project = token.project.ok_or(ValidationError::Unscoped)?;
        let expires_at = parse_expiry(&token.expires_at)?;
        let lifetime = lifetime_until(expires_at);
        let validated = ValidatedToken {
            user_id: token.user.id,
            project_id: project.id,
            roles: token
                .roles
                .into_iter()
                .map(|r| r.name.to_lowercase())
                .collect(),
            expires_at,
        };
        Ok((validated, lifetime))
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ValidationCache> {
        // A panic elsewhere cannot leave the map half-updated in a way that
        // matters: at worst one entry is missing or stale within its TTL.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The validator's session, for tests that revoke its tokens.
    #[cfg(test)]
    fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }
}

/// Keystone's answer to a validation; only what is used.
#[derive(serde::Deserialize)]
struct ValidatedBody {
    token: ValidatedTokenBody,
}

#[derive(serde::Deserialize)]
struct ValidatedTokenBody {
    expires_at: String,
    user: IdRef,
    #[serde(default)]
    project: Option<IdRef>,
    #[serde(default)]
    roles: Vec<RoleRef>,
}

#[derive(serde::Deserialize)]
struct IdRef {
    id: String,
}

#[derive(serde::Deserialize)]
struct RoleRef {
    name: String,
}

/// The SHA-256 of a token: how tokens are keyed in memory, so that a heap
/// dump or a debug print of the cache never shows a usable token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct TokenHash([u8; 32]);

impl TokenHash {
    /// Done inline rather than in `spawn_blocking`: SHA-256 of a few hundred
    /// bytes takes well under a microsecond, less than a thread hand-off.
    fn of(token: &str) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }
}

/// Recent successful validations, bounded, keyed by token hash.
struct ValidationCache {
    entries: HashMap<TokenHash, CacheEntry>,
    capacity: usize,
}

struct CacheEntry {
    validated: ValidatedToken,
    until: Instant,
}

impl ValidationCache {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
        }
    }

    fn get(&mut self, key: &TokenHash, now: Instant) -> Option<ValidatedToken> {
        match self.entries.get(key) {
            Some(entry) if now < entry.until => Some(entry.validated.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `validated` until `until`. When full, expired entries go
    /// first, then the one closest to expiry: the scan is O(n), but only
    /// runs when the cache is full of live entries.
    fn insert(&mut self, key: TokenHash, validated: ValidatedToken, until: Instant, now: Instant) {
        if until <= now || self.capacity == 0 {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, e| e.until > now);
            if self.entries.len() >= self.capacity {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.until)
                    .map(|(k, _)| *k);
                if let Some(soonest) = soonest {
                    self.entries.remove(&soonest);
                }
            }
        }
        self.entries.insert(key, CacheEntry { validated, until });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    //! Against the fake Keystone of [`crate::testing`]. The real one is
    //! exercised by `service/tests/keystone.rs`.

    use nest_core::Secret;
    use serde_json::json;

    use super::*;
    use crate::testing::{FakeKeystone, expires_in, scoped_token};

    async fn validator(fake: &FakeKeystone, ttl: Duration) -> TokenValidator {
        let mut config = ValidatorConfig::new(fake.config());
        config.cache_ttl = HumanDuration(ttl);
        let options = SessionOptions {
            catalog: false,
            ..SessionOptions::default()
        };
        TokenValidator::new(&config, options)
            .await
            .expect("valid config")
    }

    #[tokio::test]
    async fn valid_token_is_validated_with_lowercase_roles_and_cached() {
        let fake = FakeKeystone::start().await;
        fake.add_subject(
            "user-token-1",
            scoped_token("u1", "p1", &["Member", "reader"]),
        );
        let validator = validator(&fake, DEFAULT_CACHE_TTL).await;
        for _ in 0..2 {
            let validated = validator
                .validate("user-token-1")
                .await
                .expect("valid token");
            assert_eq!(validated.user_id, "u1");
            assert_eq!(validated.project_id, "p1");
            assert_eq!(
                validated.roles,
                BTreeSet::from(["member".to_owned(), "reader".to_owned()])
            );
        }
        let state = fake.state();
        assert_eq!((state.logins, state.validations), (1, 1));
        assert!(
            state
                .targets
                .iter()
                .all(|t| t.ends_with("/v3/auth/tokens?nocatalog")),
            "{:?}",
            state.targets
        );
    }

    #[tokio::test]
    async fn unknown_token_is_invalid_and_never_cached() {
        let fake = FakeKeystone::start().await;
        let validator = validator(&fake, DEFAULT_CACHE_TTL).await;
        for _ in 0..2 {
            let err = validator
                .validate("bogus")
                .await
                .expect_err("unknown token");
            assert!(matches!(err, ValidationError::Invalid), "{err:?}");
            assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        }
        assert_eq!(fake.state().validations, 2);
    }

    #[tokio::test]
    async fn unscoped_token_is_refused_as_unscoped() {
        let fake = FakeKeystone::start().await;
        let mut body = scoped_token("u1", "p1", &[]);
        body.as_object_mut().expect("an object").remove("project");
        fake.add_subject("unscoped", body);
        let validator = validator(&fake, DEFAULT_CACHE_TTL).await;
        let err = validator.validate("unscoped").await.expect_err("unscoped");
        assert!(matches!(err, ValidationError::Unscoped), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    }

    #[tokio::test]
    async fn rejected_service_token_is_replaced_once_and_the_call_retried() {
        let fake = FakeKeystone::start().await;
        fake.add_subject("a", scoped_token("u1", "p1", &["member"]));
        fake.add_subject("b", scoped_token("u2", "p1", &["member"]));
        let mut validator = validator(&fake, DEFAULT_CACHE_TTL).await;
        validator.session_mut().set_min_refresh_age(Duration::ZERO);
        validator.validate("a").await.expect("valid token");
        fake.state().service_tokens.clear();
        let validated = validator.validate("b").await.expect("valid after re-login");
        assert_eq!(validated.user_id, "u2");
        let state = fake.state();
        assert_eq!((state.logins, state.validations), (2, 3));
    }

    #[tokio::test]
    async fn a_401_with_a_fresh_service_token_means_the_user_token_is_invalid() {
        let fake = FakeKeystone::start().await;
        fake.state().reject_all_service_tokens = true;
        let mut validator = validator(&fake, DEFAULT_CACHE_TTL).await;
        validator.session_mut().set_min_refresh_age(Duration::ZERO);
        let err = validator.validate("whatever").await.expect_err("401 twice");
        assert!(matches!(err, ValidationError::Invalid), "{err:?}");
        let state = fake.state();
        assert_eq!((state.logins, state.validations), (2, 2));
    }

    #[tokio::test]
    async fn a_401_just_after_login_does_not_cause_another_login() {
        let fake = FakeKeystone::start().await;
        fake.state().reject_all_service_tokens = true;
        let validator = validator(&fake, DEFAULT_CACHE_TTL).await;
        let err = validator.validate("whatever").await.expect_err("401");
        assert!(matches!(err, ValidationError::Invalid), "{err:?}");
        let state = fake.state();
        assert_eq!((state.logins, state.validations), (1, 1));
    }

    #[tokio::test]
    async fn concurrent_first_requests_share_one_login() {
        let fake = FakeKeystone::start().await;
        for i in 0..6 {
            fake.add_subject(&format!("t{i}"), scoped_token("u1", "p1", &["member"]));
        }
        let validator = validator(&fake, DEFAULT_CACHE_TTL).await;
        let tokens: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
        let results =
            futures_util::future::join_all(tokens.iter().map(|t| validator.validate(t))).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(fake.state().logins, 1);
    }

    #[tokio::test]
    async fn a_service_user_without_the_right_role_is_not_allowed() {
        let fake = FakeKeystone::start().await;
        fake.add_subject("a", scoped_token("u1", "p1", &["member"]));
        fake.state().forbid_validations = true;
        let validator = validator(&fake, DEFAULT_CACHE_TTL).await;
        let err = validator.validate("a").await.expect_err("403");
        assert!(matches!(err, ValidationError::NotAllowed { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "keystone does not allow user \"nest\" to validate tokens"
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn a_token_past_its_expiry_by_our_clock_is_not_cached() {
        let fake = FakeKeystone::start().await;
        let mut body = scoped_token("u1", "p1", &["member"]);
        body["expires_at"] = json!(expires_in(time::Duration::seconds(-5)));
        fake.add_subject("skewed", body);
        let validator = validator(&fake, DEFAULT_CACHE_TTL).await;
        for _ in 0..2 {
            validator
                .validate("skewed")
                .await
                .expect("keystone said valid");
        }
        assert_eq!(fake.state().validations, 2);
    }

    #[tokio::test]
    async fn zero_ttl_disables_the_cache() {
        let fake = FakeKeystone::start().await;
        fake.add_subject("a", scoped_token("u1", "p1", &["member"]));
        let validator = validator(&fake, Duration::ZERO).await;
        for _ in 0..2 {
            validator.validate("a").await.expect("valid token");
        }
        assert_eq!(fake.state().validations, 2);
    }

    #[tokio::test]
    async fn tokens_that_cannot_be_tokens_never_reach_keystone() {
        let fake = FakeKeystone::start().await;
        let validator = validator(&fake, DEFAULT_CACHE_TTL).await;
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        for bad in ["", "tok en", "tok\r\nX-Evil: 1", "tøken", long.as_str()] {
            assert!(
                matches!(validator.validate(bad).await, Err(ValidationError::Invalid)),
                "{bad:?}"
            );
        }
        let state = fake.state();
        assert_eq!((state.logins, state.validations), (0, 0));
    }

    #[tokio::test]
    async fn a_malformed_expiry_is_keystones_fault() {
        let fake = FakeKeystone::start().await;
        let mut body = scoped_token("u1", "p1", &["member"]);
        body["expires_at"] = json!("tomorrow");
        fake.add_subject("a", body);
        let validator = validator(&fake, DEFAULT_CACHE_TTL).await;
        let err = validator.validate("a").await.expect_err("bad expiry");
        assert!(
            matches!(
                err,
                ValidationError::Keystone(OpenStackError::BadExpiry { .. })
            ),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }

    fn validated(user: &str) -> ValidatedToken {
        ValidatedToken {
            user_id: user.to_owned(),
            project_id: "p1".to_owned(),
            roles: BTreeSet::new(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn cache_entries_end_at_their_deadline() {
        let mut cache = ValidationCache::new(10);
        let now = Instant::now();
        let key = TokenHash::of("a");
        cache.insert(key, validated("u1"), now + Duration::from_secs(1), now);
        assert!(cache.get(&key, now + Duration::from_millis(999)).is_some());
        assert!(cache.get(&key, now + Duration::from_secs(1)).is_none());
        assert_eq!(cache.len(), 0, "an expired entry is dropped when seen");
        cache.insert(key, validated("u1"), now, now);
        assert_eq!(cache.len(), 0, "an entry already expired is not kept");
    }

    #[test]
    fn full_cache_drops_expired_entries_then_the_one_closest_to_expiry() {
        let mut cache = ValidationCache::new(3);
        let now = Instant::now();
        let s = Duration::from_secs;
        cache.insert(TokenHash::of("a"), validated("a"), now + s(30), now);
        cache.insert(TokenHash::of("b"), validated("b"), now + s(10), now);
        cache.insert(TokenHash::of("c"), validated("c"), now + s(20), now);
        cache.insert(TokenHash::of("d"), validated("d"), now + s(30), now);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&TokenHash::of("b"), now).is_none());
        assert!(cache.get(&TokenHash::of("c"), now).is_some());
        // Later, "c" has expired: it goes first, and nothing live is evicted.
        let later = now + s(25);
        cache.insert(TokenHash::of("e"), validated("e"), later + s(30), later);
        assert_eq!(cache.len(), 3);
        for live in ["a", "d", "e"] {
            assert!(cache.get(&TokenHash::of(live), later).is_some(), "{live}");
        }
    }

    #[test]
    fn token_hash_is_stable() {
        let a = TokenHash::of("gAAAAAB-some-token");
        assert!(a == TokenHash::of("gAAAAAB-some-token"));
        assert!(a != TokenHash::of("gAAAAAB-some-tokeN"));
    }

    #[test]
    fn config_parses_flat_with_defaults_and_refuses_unknown_keys() {
        let config: ValidatorConfig = serde_json::from_value(json!({
            "auth_url": "http://127.0.0.1:5000/v3",
            "username": "nest",
            "password": "hunter2-secret",
            "project_name": "service",
        }))
        .expect("valid config");
        assert_eq!(config.cache_ttl.get(), DEFAULT_CACHE_TTL);
        assert_eq!(config.session.username.as_deref(), Some("nest"));
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");

        let config: ValidatorConfig = serde_json::from_value(json!({
            "auth_url": "http://k:5000", "username": "n", "password": "p",
            "project_name": "s", "cache_ttl": "1s", "request_timeout": "250ms",
        }))
        .expect("valid config");
        assert_eq!(config.cache_ttl.get(), Duration::from_secs(1));
        assert_eq!(
            config.session.request_timeout.get(),
            Duration::from_millis(250)
        );

        let unknown = serde_json::from_value::<ValidatorConfig>(json!({
            "auth_url": "http://k:5000", "username": "n", "password": "p",
            "project_name": "s", "insecure": true,
        }))
        .expect_err("an unknown key");
        assert!(unknown.to_string().contains("`insecure`"), "{unknown}");
        let bad_ttl = serde_json::from_value::<ValidatorConfig>(json!({
            "auth_url": "http://k:5000", "cache_ttl": "soon",
        }))
        .expect_err("not a duration");
        assert!(bad_ttl.to_string().starts_with("cache_ttl: "), "{bad_ttl}");
    }

    #[tokio::test]
    async fn every_config_problem_is_reported_at_once() {
        let mut config = ValidatorConfig::new(SessionConfig::password(
            "ftp://k",
            "",
            Secret::new(String::new()),
            "s",
        ));
        config.cache_ttl = HumanDuration(Duration::from_secs(600));
        config.session.request_timeout = HumanDuration(Duration::ZERO);
        let err = TokenValidator::new(&config, SessionOptions::default())
            .await
            .expect_err("bad config");
        assert_eq!(err.kind(), ErrorKind::Invalid);
        let OpenStackError::Config(nest_core::config::ConfigError::Invalid(problems)) = err else {
            panic!("expected a config error, got {err:?}");
        };
        let keys: Vec<&str> = problems
            .iter()
            .filter_map(|p| p.split(':').next())
            .collect();
        assert_eq!(
            keys,
            [
                "auth_url",
                "username",
                "password",
                "request_timeout",
                "cache_ttl"
            ]
        );
    }
}
