//! Keystone v3 token validation: the production [`Authenticate`].
//!
//! It works as keystonemiddleware's `auth_token` does. The service logs in
//! with its own password and a project scope (`POST /v3/auth/tokens`),
//! keeps that service token until shortly before it expires, and validates
//! each user token with `GET /v3/auth/tokens` (`X-Auth-Token`: the service
//! token, `X-Subject-Token`: the user's). When Keystone rejects the service
//! token itself (401), the service logs in again once and retries.
//!
//! Successful validations are cached for [`KeystoneConfig::cache_ttl`]
//! (default [`DEFAULT_CACHE_TTL`], 30s; keystonemiddleware's is 300s) and
//! never past the token's own `expires_at`. The TTL is the window in which a
//! revoked token is still accepted, which is why it is short. Refusals are
//! not cached, so a flood of bogus tokens cannot fill the cache; it holds at
//! most [`MAX_CACHED_TOKENS`] entries, keyed by the token's SHA-256, never by
//! the token.
//!
//! This module must not log or store a raw token or the service password.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use nest_core::ErrorKind;
use nest_core::duration::HumanDuration;
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

use super::{
    AuthConfigError, AuthError, Authenticate, Caller, ConfigProblem, Secret, TokenHash,
    deserialize_secret,
};
use crate::domain::{InvalidValue, ProjectId, UserId};

/// Default time a successful validation is reused without asking Keystone.
/// Short, so that a revoked token stops working within half a minute.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
/// Longest `cache_ttl` accepted: keystonemiddleware's default, beyond which
/// a revocation would take too long to bite.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default time one call to Keystone may take, connection included.
pub const DEFAULT_KEYSTONE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most validations cached at once. Refusals are never cached, so only
/// that many distinct *valid* tokens within one TTL could reach the bound.
pub const MAX_CACHED_TOKENS: usize = 10_000;
/// Default domain of the service user and project, as Keystone names it.
pub const DEFAULT_DOMAIN_NAME: &str = "Default";

/// How long before its expiry the service token is replaced; keystoneauth
/// uses the same margin (`MIN_TOKEN_LIFE_SECONDS`).
const SERVICE_TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(120);
/// A service token younger than this is not replaced on a 401: the 401 is
/// then taken to be about the user's token. This bounds password logins
/// (about 0.3s of Keystone CPU each) if bogus tokens ever came back as 401.
const MIN_SERVICE_TOKEN_AGE_FOR_REFRESH: Duration = Duration::from_secs(5);
/// Longest token sent to Keystone. Fernet tokens are about 200 characters;
/// anything far longer is not a token and is refused without a call.
const MAX_TOKEN_LEN: usize = 8192;

/// Settings for Keystone v3 authentication (keystonemiddleware's
/// `[keystone_authtoken]`).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoneConfig {
    /// Keystone's identity endpoint, e.g. `http://127.0.0.1:5000/v3`. A URL
    /// without the trailing `/v3` gets it appended, since `OS_AUTH_URL` is
    /// written both ways. Required.
    pub auth_url: String,
    /// The service user that validates tokens; it needs the `admin` or
    /// `service` role. Required.
    pub username: String,
    /// That user's password. Required; never logged.
    #[serde(deserialize_with = "deserialize_secret")]
    pub password: Secret<String>,
    /// Domain of the service user. Default: `Default`.
    #[serde(default = "default_domain")]
    pub user_domain_name: String,
    /// Project the service token is scoped to (usually `service`). Required.
    pub project_name: String,
    /// Domain of that project. Default: `Default`.
    #[serde(default = "default_domain")]
    pub project_domain_name: String,
    /// How long a successful validation is reused, and so how long a revoked
    /// token may still be accepted. `0s` disables the cache. Default: 30s;
    /// at most 5m.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl: HumanDuration,
    /// Time one call to Keystone may take, from connecting to the end of the
    /// body. Default: 10s.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
}

fn default_domain() -> String {
    DEFAULT_DOMAIN_NAME.to_owned()
}
fn default_cache_ttl() -> HumanDuration {
    HumanDuration(DEFAULT_CACHE_TTL)
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration(DEFAULT_KEYSTONE_TIMEOUT)
}

impl KeystoneConfig {
    /// A config with the defaults for everything optional.
    pub fn new(
        auth_url: impl Into<String>,
        username: impl Into<String>,
        password: Secret<String>,
        project_name: impl Into<String>,
    ) -> Self {
        Self {
            auth_url: auth_url.into(),
            username: username.into(),
            password,
            user_domain_name: default_domain(),
            project_name: project_name.into(),
            project_domain_name: default_domain(),
            cache_ttl: default_cache_ttl(),
            request_timeout: default_request_timeout(),
        }
    }

    /// Checks every field, reporting all problems at once.
    ///
    /// # Errors
    /// [`AuthConfigError`] naming each bad key (relative to this section).
    pub fn validate(&self) -> Result<(), AuthConfigError> {
        self.tokens_url().map(drop)
    }

    /// Validates and returns the `/v3/auth/tokens` URL.
    fn tokens_url(&self) -> Result<reqwest::Url, AuthConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, reason: &str| {
            problems.push(ConfigProblem {
                key: key.to_owned(),
                reason: reason.to_owned(),
            });
        };
        let url = match reqwest::Url::parse(self.auth_url.trim()) {
            Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                problem("auth_url", "must be an http or https URL");
                None
            }
            Ok(url) if url.query().is_some() || url.fragment().is_some() => {
                problem("auth_url", "must not have a query or fragment");
                None
            }
            Ok(url) => Some(url),
            Err(e) => {
                problem("auth_url", &format!("not a URL: {e}"));
                None
            }
        };
        for (key, value) in [
            ("username", self.username.as_str()),
            ("password", self.password.expose().as_str()),
            ("user_domain_name", self.user_domain_name.as_str()),
            ("project_name", self.project_name.as_str()),
            ("project_domain_name", self.project_domain_name.as_str()),
        ] {
            if value.is_empty() {
                problem(key, "must not be empty");
            }
        }
        if self.cache_ttl.get() > MAX_CACHE_TTL {
            problem(
                "cache_ttl",
                "must be at most 5m: revoked tokens stay accepted that long",
            );
        }
        if self.request_timeout.get().is_zero() {
            problem("request_timeout", "must be greater than zero");
        }
        AuthConfigError::check(problems)?;
        let mut url = url.expect("an unparsable auth_url is reported as a problem above");
        let base = url.path().trim_end_matches('/');
        let path = if base.ends_with("/v3") {
            format!("{base}/auth/tokens")
        } else {
            format!("{base}/v3/auth/tokens")
        };
        url.set_path(&path);
        // The catalog is not needed to validate a token, and is the bulk of the body.
        url.set_query(Some("nocatalog"));
        Ok(url)
    }
}

/// Why Keystone could not be used. Reaches clients only inside
/// [`AuthError::Unavailable`], as a 503.
#[derive(Debug, thiserror::Error)]
pub enum KeystoneError {
    /// The configuration is not usable.
    #[error("invalid keystone configuration")]
    Config(#[from] AuthConfigError),
    /// The HTTP client could not be built (TLS roots, for instance).
    #[error("cannot build the keystone HTTP client")]
    BuildClient(#[source] reqwest::Error),
    /// Keystone could not be reached, or did not answer in time.
    #[error("cannot {operation} at {url}")]
    Request {
        /// What was being done.
        operation: &'static str,
        /// The URL called.
        url: String,
        /// The transport failure.
        #[source]
        source: reqwest::Error,
    },
    /// Keystone refused the service user's own password login.
    #[error("keystone refused the service credentials of user {username:?} ({status})")]
    ServiceCredentialsRejected {
        /// The service user.
        username: String,
        /// Keystone's answer.
        status: u16,
    },
    /// The service user may not validate tokens (it lacks the `admin` or
    /// `service` role).
    #[error("keystone does not allow service user {username:?} to validate tokens")]
    ValidationForbidden {
        /// The service user.
        username: String,
    },
    /// Keystone answered with a status that has no meaning here.
    #[error("keystone answered {status} when asked to {operation}")]
    UnexpectedStatus {
        /// What was being done.
        operation: &'static str,
        /// Keystone's answer.
        status: u16,
    },
    /// Keystone's body is not the expected JSON.
    #[error("keystone's answer to {operation} is malformed")]
    MalformedBody {
        /// What was being done.
        operation: &'static str,
        /// The decoding failure.
        #[source]
        source: reqwest::Error,
    },
    /// The login answer lacks a usable `X-Subject-Token` header.
    #[error("keystone's login answer has no usable X-Subject-Token header")]
    MissingSubjectToken,
    /// An `expires_at` is not RFC 3339.
    #[error("keystone's expires_at {value:?} is not an RFC 3339 time")]
    BadExpiry {
        /// The value received.
        value: String,
        /// The parse failure.
        #[source]
        source: time::error::Parse,
    },
    /// A user or project id is not one Nest can store safely.
    #[error("keystone returned an unusable id")]
    BadId(#[source] InvalidValue),
}

impl KeystoneError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(_) => ErrorKind::Invalid,
            Self::BuildClient(_) => ErrorKind::Internal,
            _ => ErrorKind::Unavailable,
        }
    }
}

impl From<KeystoneError> for AuthError {
    fn from(e: KeystoneError) -> Self {
        AuthError::Unavailable(Box::new(e))
    }
}

/// [`Authenticate`] by Keystone v3 token validation.
pub struct KeystoneAuth {
    client: reqwest::Client,
    tokens_url: reqwest::Url,
    config: KeystoneConfig,
    /// The service token. An async mutex, held across the login, so that
    /// concurrent requests wait for one login instead of each starting one.
    service: tokio::sync::Mutex<Option<ServiceToken>>,
    /// Never held across `.await`.
    cache: Mutex<ValidationCache>,
    min_refresh_age: Duration,
}

impl fmt::Debug for KeystoneAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeystoneAuth")
            .field("tokens_url", &self.tokens_url.as_str())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The service's own token, and when to replace it.
#[derive(Clone)]
struct ServiceToken {
    /// Marked sensitive, so that header debug output hides it.
    header: HeaderValue,
    /// Counts logins, so that a caller can say "replace the one I used".
    generation: u64,
    issued_at: Instant,
    refresh_at: Instant,
}

/// What one validation call found.
enum Checked {
    Valid { caller: Caller, lifetime: Duration },
    ServiceTokenRejected,
}

impl KeystoneAuth {
    /// Checks `config` and builds the HTTP client. Does not call Keystone:
    /// the first login happens with the first token to validate.
    ///
    /// # Errors
    /// [`KeystoneError::Config`] with every config problem, or
    /// [`KeystoneError::BuildClient`].
    pub fn new(config: KeystoneConfig) -> Result<Self, KeystoneError> {
        let tokens_url = config.tokens_url()?;
        let timeout = config.request_timeout.get();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // X-Auth-Token is not one of the headers reqwest strips on a
            // cross-origin redirect, so a redirect could hand both tokens to
            // another host. Keystone never redirects token calls.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("nest-service/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(KeystoneError::BuildClient)?;
        if tokens_url.scheme() == "http"
            && !matches!(
                tokens_url.host_str(),
                Some("127.0.0.1" | "localhost" | "[::1]")
            )
        {
            tracing::warn!(
                auth_url = %config.auth_url,
                "keystone is reached over plain http: the service password and tokens cross the network unencrypted"
            );
        }
        tracing::info!(?config, "keystone auth configured");
        Ok(Self {
            client,
            tokens_url,
            config,
            service: tokio::sync::Mutex::new(None),
            cache: Mutex::new(ValidationCache::new(MAX_CACHED_TOKENS)),
            min_refresh_age: MIN_SERVICE_TOKEN_AGE_FOR_REFRESH,
        })
    }

    /// Validates `token`, from the cache when a recent answer is there.
    ///
    /// # Cancel safety
    /// Safe to cancel: a cancelled call leaves the cache and the service
    /// token as they were, or updated with a complete answer.
    #[tracing::instrument(name = "keystone_validate", skip_all)]
    async fn validate(&self, token: &str) -> Result<Caller, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        // Keystone would refuse these too; refusing here saves a call and
        // keeps bytes that cannot be a header value off the wire.
        if token.len() > MAX_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AuthError::Invalid);
        }
        let Ok(mut subject) = HeaderValue::from_str(token) else {
            return Err(AuthError::Invalid);
        };
        subject.set_sensitive(true);
        let key = TokenHash::of(token);
        if let Some(caller) = self.lock_cache().get(&key, Instant::now()) {
            tracing::debug!("token validation served from cache");
            return Ok(caller);
        }
        let (caller, lifetime) = self.validate_remotely(&subject).await?;
        let now = Instant::now();
        let ttl = self.config.cache_ttl.get().min(lifetime);
        if let Some(until) = now.checked_add(ttl) {
            self.lock_cache().insert(key, caller.clone(), until, now);
        }
        tracing::debug!(user_id = %caller.user_id, project_id = %caller.project_id, "token validated by keystone");
        Ok(caller)
    }

    async fn validate_remotely(
        &self,
        subject: &HeaderValue,
    ) -> Result<(Caller, Duration), AuthError> {
        let service = self.service_token(None).await?;
        match self.check(&service, subject).await? {
            Checked::Valid { caller, lifetime } => return Ok((caller, lifetime)),
            Checked::ServiceTokenRejected if service.issued_at.elapsed() < self.min_refresh_age => {
                return Err(AuthError::Invalid);
            }
            Checked::ServiceTokenRejected => {}
        }
        // The service token may have been revoked, or Keystone's keys rotated
        // past it: log in again and retry once, as keystoneauth does.
        tracing::warn!("keystone rejected the service token; logging in again");
        let fresh = self.service_token(Some(service.generation)).await?;
        match self.check(&fresh, subject).await? {
            Checked::Valid { caller, lifetime } => Ok((caller, lifetime)),
            // A fresh service token rejected too: the 401 is about the
            // user's token (keystonemiddleware reads it the same way).
            Checked::ServiceTokenRejected => Err(AuthError::Invalid),
        }
    }

    /// The current service token, logging in when there is none, it is due
    /// for replacement, or it is the one of generation `replace`.
    async fn service_token(&self, replace: Option<u64>) -> Result<ServiceToken, KeystoneError> {
        let mut slot = self.service.lock().await;
        if let Some(current) = slot.as_ref() {
            let rejected = replace == Some(current.generation);
            if !rejected && Instant::now() < current.refresh_at {
                return Ok(current.clone());
            }
        }
        let generation = slot.as_ref().map_or(0, |t| t.generation.wrapping_add(1));
        let fresh = self.log_in(generation).await?;
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Password login of the service user, scoped to its project.
    async fn log_in(&self, generation: u64) -> Result<ServiceToken, KeystoneError> {
        const OPERATION: &str = "issue the service token";
        let c = &self.config;
        let body = serde_json::json!({
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": c.username,
                            "domain": { "name": c.user_domain_name },
                            "password": c.password.expose(),
                        }
                    }
                },
                "scope": {
                    "project": {
                        "name": c.project_name,
                        "domain": { "name": c.project_domain_name },
                    }
                }
            }
        });
        let response = self
            .client
            .post(self.tokens_url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|source| self.request_error(OPERATION, source))?;
        match response.status() {
            s if s.is_success() => {}
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) => {
                return Err(KeystoneError::ServiceCredentialsRejected {
                    username: c.username.clone(),
                    status: s.as_u16(),
                });
            }
            s => {
                return Err(KeystoneError::UnexpectedStatus {
                    operation: OPERATION,
                    status: s.as_u16(),
                });
            }
        }
        let mut header = response
            .headers()
            .get("x-subject-token")
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or(KeystoneError::MissingSubjectToken)?;
        header.set_sensitive(true);
        let issued: IssuedBody =
            response
                .json()
                .await
                .map_err(|source| KeystoneError::MalformedBody {
                    operation: OPERATION,
                    source,
                })?;
        let lifetime = remaining_lifetime(&issued.token.expires_at)?;
        let refresh_in = if lifetime > SERVICE_TOKEN_REFRESH_MARGIN * 2 {
            lifetime - SERVICE_TOKEN_REFRESH_MARGIN
        } else {
            lifetime / 2
        };
        let issued_at = Instant::now();
        tracing::info!(
            expires_in_s = lifetime.as_secs(),
            generation,
            "service token issued by keystone"
        );
        Ok(ServiceToken {
            header,
            generation,
            issued_at,
            refresh_at: issued_at.checked_add(refresh_in).unwrap_or(issued_at),
        })
    }

    /// One `GET /v3/auth/tokens` of the `subject` token with `service`'s token.
    async fn check(
        &self,
        service: &ServiceToken,
        subject: &HeaderValue,
    ) -> Result<Checked, AuthError> {
        const OPERATION: &str = "validate a token";
        let response = self
            .client
            .get(self.tokens_url.clone())
            .header("x-auth-token", service.header.clone())
            .header("x-subject-token", subject.clone())
            .send()
            .await
            .map_err(|source| self.request_error(OPERATION, source))?;
        match response.status() {
            StatusCode::OK => {}
            // Keystone answers 404 for unknown, expired and revoked subject
            // tokens (and for malformed ones).
            StatusCode::NOT_FOUND => return Err(AuthError::Invalid),
            StatusCode::UNAUTHORIZED => return Ok(Checked::ServiceTokenRejected),
            StatusCode::FORBIDDEN => {
                return Err(KeystoneError::ValidationForbidden {
                    username: self.config.username.clone(),
                }
                .into());
            }
            s => {
                return Err(KeystoneError::UnexpectedStatus {
                    operation: OPERATION,
                    status: s.as_u16(),
                }
                .into());
            }
        }
        let body: ValidatedBody =
            response
                .json()
                .await
                .map_err(|source| KeystoneError::MalformedBody {
                    operation: OPERATION,
                    source,
                })?;
        let token = body.token;
        // Domain- and system-scoped tokens have no project either: Nest's
        // objects all belong to a project, so they cannot act on anything.
        let project = token.project.ok_or(AuthError::Unscoped)?;
        let caller = Caller {
            user_id: UserId::parse(&token.user.id).map_err(KeystoneError::BadId)?,
            project_id: ProjectId::parse(&project.id).map_err(KeystoneError::BadId)?,
            roles: token
                .roles
                .into_iter()
                .map(|r| r.name.to_lowercase())
                .collect(),
        };
        let lifetime = remaining_lifetime(&token.expires_at)?;
        Ok(Checked::Valid { caller, lifetime })
    }

    fn request_error(&self, operation: &'static str, source: reqwest::Error) -> KeystoneError {
        KeystoneError::Request {
            operation,
            url: self.tokens_url.to_string(),
            source,
        }
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ValidationCache> {
        // A panic elsewhere cannot leave the map half-updated in a way that
        // matters: at worst one entry is missing or stale within its TTL.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Authenticate for KeystoneAuth {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, AuthError>> {
        Box::pin(self.validate(token))
    }
}

/// Time left until `expires_at`, zero when already past (our clock may run
/// ahead of Keystone's; Keystone's 200 is trusted, but nothing is cached).
fn remaining_lifetime(expires_at: &str) -> Result<Duration, KeystoneError> {
    let expires =
        OffsetDateTime::parse(expires_at, &Rfc3339).map_err(|source| KeystoneError::BadExpiry {
            value: expires_at.to_owned(),
            source,
        })?;
    Ok(Duration::try_from(expires - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO))
}

/// Keystone's answer to a login; only what is used.
#[derive(serde::Deserialize)]
struct IssuedBody {
    token: IssuedToken,
}

#[derive(serde::Deserialize)]
struct IssuedToken {
    expires_at: String,
}

/// Keystone's answer to a validation; only what is used.
#[derive(serde::Deserialize)]
struct ValidatedBody {
    token: ValidatedToken,
}

#[derive(serde::Deserialize)]
struct ValidatedToken {
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

/// Recent successful validations, bounded, keyed by token hash.
struct ValidationCache {
    entries: HashMap<TokenHash, CacheEntry>,
    capacity: usize,
}

struct CacheEntry {
    caller: Caller,
    until: Instant,
}

impl ValidationCache {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
        }
    }

    fn get(&mut self, key: &TokenHash, now: Instant) -> Option<Caller> {
        match self.entries.get(key) {
            Some(entry) if now < entry.until => Some(entry.caller.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `caller` until `until`. When full, expired entries go first,
    /// then the one closest to expiry: the scan is O(n), but only runs when
    /// the cache is full of live entries.
    fn insert(&mut self, key: TokenHash, caller: Caller, until: Instant, now: Instant) {
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
        self.entries.insert(key, CacheEntry { caller, until });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    //! Against a fake Keystone on loopback that speaks just enough HTTP/1.1.
    //! The real one is exercised by `service/tests/keystone.rs`.

    use std::collections::{BTreeSet, HashSet};
    use std::sync::Arc;

    use serde_json::{Value, json};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    const SERVICE_PASSWORD: &str = "svc-pass";

    /// What the fake Keystone knows, and what it has been asked.
    #[derive(Default)]
    struct FakeState {
        logins: usize,
        validations: usize,
        targets: Vec<String>,
        /// Service tokens it accepts; clearing it revokes them.
        service_tokens: HashSet<String>,
        /// Answer 401 to every validation, whatever the service token.
        reject_all_service_tokens: bool,
        /// Subject token → the `token` object its validation returns.
        subjects: HashMap<String, Value>,
    }

    struct FakeKeystone {
        url: String,
        state: Arc<Mutex<FakeState>>,
        server: tokio::task::JoinHandle<()>,
    }

    impl Drop for FakeKeystone {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    impl FakeKeystone {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind loopback");
            let url = format!("http://{}/v3", listener.local_addr().expect("bound"));
            let state = Arc::new(Mutex::new(FakeState::default()));
            let server = tokio::spawn(serve(listener, Arc::clone(&state)));
            Self { url, state, server }
        }

        fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
            self.state.lock().expect("fake state lock")
        }

        fn add_subject(&self, token: &str, body: Value) {
            self.state().subjects.insert(token.to_owned(), body);
        }

        fn auth(&self, ttl: Duration) -> KeystoneAuth {
            let mut config = KeystoneConfig::new(
                &self.url,
                "nest",
                Secret::new(SERVICE_PASSWORD.to_owned()),
                "service",
            );
            config.cache_ttl = HumanDuration(ttl);
            config.request_timeout = HumanDuration(Duration::from_secs(5));
            KeystoneAuth::new(config).expect("valid config")
        }
    }

    /// One connection at a time; every answer closes its connection.
    async fn serve(listener: TcpListener, state: Arc<Mutex<FakeState>>) {
        while let Ok((stream, _)) = listener.accept().await {
            if let Err(e) = answer(stream, &state).await {
                eprintln!("fake keystone: {e}");
            }
        }
    }

    async fn answer(stream: TcpStream, state: &Mutex<FakeState>) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).await?;
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_lowercase(), value.trim().to_owned());
            }
        }
        let len = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).await?;
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default();
        let target = parts.next().unwrap_or_default();
        let (status, extra, reply) = {
            let mut state = state.lock().expect("fake state lock");
            respond(&mut state, method, target, &headers, &body)
        };
        let mut stream = reader.into_inner();
        let head = format!(
            "HTTP/1.1 {status} Fake\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n{extra}\r\n",
            reply.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await
    }

    fn respond(
        s: &mut FakeState,
        method: &str,
        target: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> (u16, String, String) {
        s.targets.push(format!("{method} {target}"));
        let error = |code: u16| {
            (
                code,
                String::new(),
                json!({"error": {"code": code}}).to_string(),
            )
        };
        match method {
            "POST" => {
                s.logins += 1;
                let request: Value = serde_json::from_slice(body).unwrap_or_default();
                let password = request
                    .pointer("/auth/identity/password/user/password")
                    .and_then(Value::as_str);
                if password != Some(SERVICE_PASSWORD) {
                    return error(401);
                }
                let token = format!("svc-token-{}", s.logins);
                s.service_tokens.insert(token.clone());
                let body = json!({"token": {"expires_at": expires_in(time::Duration::hours(1))}});
                (
                    201,
                    format!("x-subject-token: {token}\r\n"),
                    body.to_string(),
                )
            }
            "GET" => {
                s.validations += 1;
                let service_ok = headers
                    .get("x-auth-token")
                    .is_some_and(|t| s.service_tokens.contains(t));
                if !service_ok || s.reject_all_service_tokens {
                    return error(401);
                }
                match headers
                    .get("x-subject-token")
                    .and_then(|t| s.subjects.get(t))
                {
                    Some(token) => (200, String::new(), json!({"token": token}).to_string()),
                    None => error(404),
                }
            }
            _ => error(405),
        }
    }

    fn expires_in(d: time::Duration) -> String {
        (OffsetDateTime::now_utc() + d)
            .format(&Rfc3339)
            .expect("a current time formats")
    }

    /// A project-scoped validation body, shaped like Keystone 22's.
    fn scoped(user: &str, project: &str, roles: &[&str]) -> Value {
        json!({
            "methods": ["password"],
            "expires_at": expires_in(time::Duration::hours(1)),
            "user": {"id": user, "name": "someone", "domain": {"id": "default", "name": "Default"}},
            "project": {"id": project, "name": "proj", "domain": {"id": "default", "name": "Default"}},
            "roles": roles.iter().map(|r| json!({"id": format!("id-{r}"), "name": r})).collect::<Vec<_>>(),
        })
    }

    #[tokio::test]
    async fn valid_token_becomes_its_caller_with_lowercase_roles_and_is_cached() {
        let fake = FakeKeystone::start().await;
        fake.add_subject("user-token-1", scoped("u1", "p1", &["Member", "reader"]));
        let auth = fake.auth(DEFAULT_CACHE_TTL);
        for _ in 0..2 {
            let caller = auth
                .authenticate("user-token-1")
                .await
                .expect("valid token");
            assert_eq!(caller.user_id.as_str(), "u1");
            assert_eq!(caller.project_id.as_str(), "p1");
            assert_eq!(
                caller.roles,
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
        let auth = fake.auth(DEFAULT_CACHE_TTL);
        for _ in 0..2 {
            let err = auth.authenticate("bogus").await.expect_err("unknown token");
            assert!(matches!(err, AuthError::Invalid), "{err:?}");
            assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        }
        assert_eq!(fake.state().validations, 2);
    }

    #[tokio::test]
    async fn unscoped_token_is_refused_as_unscoped() {
        let fake = FakeKeystone::start().await;
        let mut body = scoped("u1", "p1", &[]);
        body.as_object_mut().expect("an object").remove("project");
        fake.add_subject("unscoped", body);
        let auth = fake.auth(DEFAULT_CACHE_TTL);
        let err = auth.authenticate("unscoped").await.expect_err("unscoped");
        assert!(matches!(err, AuthError::Unscoped), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    }

    #[tokio::test]
    async fn rejected_service_token_is_replaced_once_and_the_call_retried() {
        let fake = FakeKeystone::start().await;
        fake.add_subject("a", scoped("u1", "p1", &["member"]));
        fake.add_subject("b", scoped("u2", "p1", &["member"]));
        let mut auth = fake.auth(DEFAULT_CACHE_TTL);
        auth.min_refresh_age = Duration::ZERO;
        auth.authenticate("a").await.expect("valid token");
        fake.state().service_tokens.clear();
        let caller = auth.authenticate("b").await.expect("valid after re-login");
        assert_eq!(caller.user_id.as_str(), "u2");
        let state = fake.state();
        assert_eq!((state.logins, state.validations), (2, 3));
    }

    #[tokio::test]
    async fn a_401_with_a_fresh_service_token_means_the_user_token_is_invalid() {
        let fake = FakeKeystone::start().await;
        fake.state().reject_all_service_tokens = true;
        let mut auth = fake.auth(DEFAULT_CACHE_TTL);
        auth.min_refresh_age = Duration::ZERO;
        let err = auth.authenticate("whatever").await.expect_err("401 twice");
        assert!(matches!(err, AuthError::Invalid), "{err:?}");
        let state = fake.state();
        assert_eq!((state.logins, state.validations), (2, 2));
    }

    #[tokio::test]
    async fn a_401_just_after_login_does_not_cause_another_login() {
        let fake = FakeKeystone::start().await;
        fake.state().reject_all_service_tokens = true;
        let auth = fake.auth(DEFAULT_CACHE_TTL);
        let err = auth.authenticate("whatever").await.expect_err("401");
        assert!(matches!(err, AuthError::Invalid), "{err:?}");
        let state = fake.state();
        assert_eq!((state.logins, state.validations), (1, 1));
    }

    #[tokio::test]
    async fn concurrent_first_requests_share_one_login() {
        let fake = FakeKeystone::start().await;
        for i in 0..6 {
            fake.add_subject(&format!("t{i}"), scoped("u1", "p1", &["member"]));
        }
        let auth = fake.auth(DEFAULT_CACHE_TTL);
        let tokens: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
        let results =
            futures_util::future::join_all(tokens.iter().map(|t| auth.authenticate(t))).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(fake.state().logins, 1);
    }

    #[tokio::test]
    async fn refused_service_credentials_make_keystone_unavailable() {
        let fake = FakeKeystone::start().await;
        fake.add_subject("a", scoped("u1", "p1", &["member"]));
        let mut config = KeystoneConfig::new(
            &fake.url,
            "nest",
            Secret::new("wrong".to_owned()),
            "service",
        );
        config.request_timeout = HumanDuration(Duration::from_secs(5));
        let auth = KeystoneAuth::new(config).expect("valid config");
        let err = auth
            .authenticate("a")
            .await
            .expect_err("bad service password");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let AuthError::Unavailable(source) = &err else {
            panic!("expected Unavailable, got {err:?}");
        };
        assert!(
            source
                .to_string()
                .contains("refused the service credentials"),
            "{source}"
        );
        assert!(
            !format!("{err:?}").contains("wrong"),
            "password leaked: {err:?}"
        );
        assert_eq!(fake.state().validations, 0);
    }

    #[tokio::test]
    async fn unreachable_keystone_is_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        drop(listener);
        let config = KeystoneConfig::new(
            format!("http://{addr}/v3"),
            "nest",
            Secret::new(SERVICE_PASSWORD.to_owned()),
            "service",
        );
        let auth = KeystoneAuth::new(config).expect("valid config");
        let err = auth.authenticate("a").await.expect_err("nothing listens");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn keystone_that_never_answers_times_out_as_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        // Accepts and holds connections without ever answering.
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let mut config = KeystoneConfig::new(
            format!("http://{addr}/v3"),
            "nest",
            Secret::new(SERVICE_PASSWORD.to_owned()),
            "service",
        );
        config.request_timeout = HumanDuration(Duration::from_millis(200));
        let auth = KeystoneAuth::new(config).expect("valid config");
        let started = std::time::Instant::now();
        let err = auth.authenticate("a").await.expect_err("no answer");
        silent.abort();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_token_past_its_expiry_by_our_clock_is_not_cached() {
        let fake = FakeKeystone::start().await;
        let mut body = scoped("u1", "p1", &["member"]);
        body["expires_at"] = json!(expires_in(time::Duration::seconds(-5)));
        fake.add_subject("skewed", body);
        let auth = fake.auth(DEFAULT_CACHE_TTL);
        for _ in 0..2 {
            auth.authenticate("skewed")
                .await
                .expect("keystone said valid");
        }
        assert_eq!(fake.state().validations, 2);
    }

    #[tokio::test]
    async fn zero_ttl_disables_the_cache() {
        let fake = FakeKeystone::start().await;
        fake.add_subject("a", scoped("u1", "p1", &["member"]));
        let auth = fake.auth(Duration::ZERO);
        for _ in 0..2 {
            auth.authenticate("a").await.expect("valid token");
        }
        assert_eq!(fake.state().validations, 2);
    }

    #[tokio::test]
    async fn tokens_that_cannot_be_tokens_never_reach_keystone() {
        let fake = FakeKeystone::start().await;
        let auth = fake.auth(DEFAULT_CACHE_TTL);
        assert!(matches!(
            auth.authenticate("").await,
            Err(AuthError::Missing)
        ));
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        for bad in ["tok en", "tok\r\nX-Evil: 1", "tøken", long.as_str()] {
            assert!(
                matches!(auth.authenticate(bad).await, Err(AuthError::Invalid)),
                "{bad:?}"
            );
        }
        let state = fake.state();
        assert_eq!((state.logins, state.validations), (0, 0));
    }

    #[tokio::test]
    async fn an_unsafe_id_from_keystone_is_refused_as_unavailable() {
        let fake = FakeKeystone::start().await;
        fake.add_subject("a", scoped("../etc", "p1", &["member"]));
        let auth = fake.auth(DEFAULT_CACHE_TTL);
        let err = auth.authenticate("a").await.expect_err("bad id");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }

    fn caller(user: &str) -> Caller {
        Caller {
            user_id: UserId::parse(user).expect("valid id"),
            project_id: ProjectId::parse("p1").expect("valid id"),
            roles: BTreeSet::new(),
        }
    }

    #[test]
    fn cache_entries_end_at_their_deadline() {
        let mut cache = ValidationCache::new(10);
        let now = Instant::now();
        let key = TokenHash::of("a");
        cache.insert(key, caller("u1"), now + Duration::from_secs(1), now);
        assert!(cache.get(&key, now + Duration::from_millis(999)).is_some());
        assert!(cache.get(&key, now + Duration::from_secs(1)).is_none());
        assert_eq!(cache.len(), 0, "an expired entry is dropped when seen");
        cache.insert(key, caller("u1"), now, now);
        assert_eq!(cache.len(), 0, "an entry already expired is not kept");
    }

    #[test]
    fn full_cache_drops_expired_entries_then_the_one_closest_to_expiry() {
        let mut cache = ValidationCache::new(3);
        let now = Instant::now();
        let s = Duration::from_secs;
        cache.insert(TokenHash::of("a"), caller("a"), now + s(30), now);
        cache.insert(TokenHash::of("b"), caller("b"), now + s(10), now);
        cache.insert(TokenHash::of("c"), caller("c"), now + s(20), now);
        cache.insert(TokenHash::of("d"), caller("d"), now + s(30), now);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&TokenHash::of("b"), now).is_none());
        assert!(cache.get(&TokenHash::of("c"), now).is_some());
        // Later, "c" has expired: it goes first, and nothing live is evicted.
        let later = now + s(25);
        cache.insert(TokenHash::of("e"), caller("e"), later + s(30), later);
        assert_eq!(cache.len(), 3);
        for live in ["a", "d", "e"] {
            assert!(cache.get(&TokenHash::of(live), later).is_some(), "{live}");
        }
    }

    #[test]
    fn config_parses_with_defaults_and_redacts_the_password() {
        let config: KeystoneConfig = serde_json::from_value(json!({
            "auth_url": "http://127.0.0.1:5000/v3",
            "username": "nest",
            "password": "hunter2-secret",
            "project_name": "service",
        }))
        .expect("valid config");
        assert_eq!(config.user_domain_name, "Default");
        assert_eq!(config.project_domain_name, "Default");
        assert_eq!(config.cache_ttl.get(), DEFAULT_CACHE_TTL);
        assert_eq!(config.request_timeout.get(), DEFAULT_KEYSTONE_TIMEOUT);
        let printed = format!("{config:?}");
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");

        let config: KeystoneConfig = serde_json::from_value(json!({
            "auth_url": "http://k:5000", "username": "n", "password": "p",
            "project_name": "s", "cache_ttl": "1s", "request_timeout": "250ms",
        }))
        .expect("valid config");
        assert_eq!(config.cache_ttl.get(), Duration::from_secs(1));
        assert_eq!(config.request_timeout.get(), Duration::from_millis(250));

        let unknown = serde_json::from_value::<KeystoneConfig>(json!({
            "auth_url": "http://k:5000", "username": "n", "password": "p",
            "project_name": "s", "insecure": true,
        }));
        assert!(unknown.is_err());
    }

    #[test]
    fn auth_url_is_accepted_with_or_without_v3() {
        let url = |auth_url: &str| {
            KeystoneConfig::new(auth_url, "n", Secret::new("p".to_owned()), "s")
                .tokens_url()
                .expect("valid config")
                .to_string()
        };
        let expected = "http://k:5000/v3/auth/tokens?nocatalog";
        assert_eq!(url("http://k:5000/v3"), expected);
        assert_eq!(url("http://k:5000/v3/"), expected);
        assert_eq!(url("http://k:5000"), expected);
        assert_eq!(
            url("https://k/identity/"),
            "https://k/identity/v3/auth/tokens?nocatalog"
        );
    }

    #[test]
    fn every_config_problem_is_reported_at_once() {
        let mut config = KeystoneConfig::new("ftp://k", "", Secret::new(String::new()), "s");
        config.cache_ttl = HumanDuration(Duration::from_secs(600));
        config.request_timeout = HumanDuration(Duration::ZERO);
        let err = KeystoneAuth::new(config).expect_err("bad config");
        assert_eq!(err.kind(), ErrorKind::Invalid);
        let KeystoneError::Config(config_err) = err else {
            panic!("expected a config error, got {err:?}");
        };
        let keys: Vec<&str> = config_err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "auth_url",
                "username",
                "password",
                "cache_ttl",
                "request_timeout"
            ]
        );
    }
}
