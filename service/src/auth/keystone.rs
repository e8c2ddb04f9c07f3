//! Keystone v3 token validation: the production [`Authenticate`].
//!
//! An adapter, and only that: the conversation with Keystone (the service
//! login and its refresh, the validation call, the cache) is
//! [`nest_openstack::TokenValidator`]'s. This module turns what it answers
//! into the service's [`Caller`] (checking that the ids Keystone returns
//! are safe to store) and its refusals into [`AuthError`].
//!
//! The `[auth]` section (`mode = "keystone"`) is a [`KeystoneConfig`]: the
//! Keystone session's keys (`auth_url`, `username`, `password`, ...) and
//! `cache_ttl`, checked at config load.

use futures_util::future::BoxFuture;
use nest_core::ErrorKind;
use nest_openstack::{OpenStackError, SessionOptions, TokenValidator, ValidationError};

use super::{AuthError, Authenticate, Caller};
use crate::domain::{InvalidValue, ProjectId, UserId};

pub use nest_openstack::config::DEFAULT_DOMAIN_NAME;
pub use nest_openstack::config::DEFAULT_REQUEST_TIMEOUT as DEFAULT_KEYSTONE_TIMEOUT;
pub use nest_openstack::validate::{DEFAULT_CACHE_TTL, MAX_CACHE_TTL, MAX_CACHED_TOKENS};

/// Settings for Keystone v3 authentication (keystonemiddleware's
/// `[keystone_authtoken]`): the service user's session and `cache_ttl`.
pub type KeystoneConfig = nest_openstack::ValidatorConfig;

/// `User-Agent` of the service's calls to Keystone.
const USER_AGENT: &str = concat!("nest-service/", env!("CARGO_PKG_VERSION"));

/// Why Keystone authentication could not be set up or used. Reaches clients
/// only inside [`AuthError::Unavailable`], as a 503.
#[derive(Debug, thiserror::Error)]
pub enum KeystoneError {
    /// The configuration or the session is not usable.
    #[error("cannot set up keystone authentication")]
    Setup(#[source] OpenStackError),
    /// A user or project id from Keystone is not one Nest can store safely.
    #[error("keystone returned an unusable {what} id")]
    UnusableId {
        /// Which id (`user`, `project`).
        what: &'static str,
        /// Why it is refused.
        #[source]
        source: InvalidValue,
    },
}

impl KeystoneError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Setup(e) => e.kind(),
            Self::UnusableId { .. } => ErrorKind::Unavailable,
        }
    }
}

impl From<KeystoneError> for AuthError {
    fn from(e: KeystoneError) -> Self {
        AuthError::Unavailable(Box::new(e))
    }
}

/// [`Authenticate`] by Keystone v3 token validation.
#[derive(Debug)]
pub struct KeystoneAuth {
    validator: TokenValidator,
}

impl KeystoneAuth {
    /// Checks `config` and builds the validator's session. Does not call
    /// Keystone: the first login happens with the first token to validate.
    ///
    /// # Errors
    /// [`KeystoneError::Setup`] with every config problem, or why the HTTP
    /// client could not be built (an unreadable `ca_file`, for instance).
    pub async fn new(config: &KeystoneConfig) -> Result<Self, KeystoneError> {
        // Validation needs no catalog: the login answer stays small.
        let options = SessionOptions {
            user_agent: USER_AGENT.to_owned(),
            catalog: false,
        };
        let validator = TokenValidator::new(config, options)
            .await
            .map_err(KeystoneError::Setup)?;
        tracing::info!(?config, "keystone auth configured");
        Ok(Self { validator })
    }

    async fn caller(&self, token: &str) -> Result<Caller, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let validated = self.validator.validate(token).await.map_err(refusal)?;
        let unusable = |what| move |source| KeystoneError::UnusableId { what, source };
        Ok(Caller {
            user_id: UserId::parse(&validated.user_id).map_err(unusable("user"))?,
            project_id: ProjectId::parse(&validated.project_id).map_err(unusable("project"))?,
            roles: validated.roles,
        })
    }
}

/// The service's reading of a validation failure: the token's fault, or
/// Keystone's (then the innermost cause is kept, for the log).
fn refusal(e: ValidationError) -> AuthError {
    match e {
        ValidationError::Invalid => AuthError::Invalid,
        ValidationError::Unscoped => AuthError::Unscoped,
        ValidationError::Keystone(e) => AuthError::Unavailable(Box::new(e)),
        e @ ValidationError::NotAllowed { .. } => AuthError::Unavailable(Box::new(e)),
    }
}

impl Authenticate for KeystoneAuth {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, AuthError>> {
        Box::pin(self.caller(token))
    }
}

#[cfg(test)]
mod tests {
    //! The mapping onto the service's types, against the fake Keystone of
    //! `nest_openstack::testing`; the conversation itself is tested there.
    //! The real Keystone is exercised by `service/tests/keystone.rs`.

    use std::collections::BTreeSet;
    use std::time::Duration;

    use nest_core::Secret;
    use nest_core::duration::HumanDuration;
    use nest_openstack::testing::{FakeKeystone, SERVICE_PASSWORD, scoped_token};
    use tokio::net::TcpListener;

    use super::*;

    async fn auth(fake: &FakeKeystone) -> KeystoneAuth {
        KeystoneAuth::new(&KeystoneConfig::new(fake.config()))
            .await
            .expect("valid config")
    }

    #[tokio::test]
    async fn valid_token_becomes_its_caller_with_lowercase_roles_and_is_cached() {
        let fake = FakeKeystone::start().await;
        fake.add_subject(
            "user-token-1",
            scoped_token("u1", "p1", &["Member", "reader"]),
        );
        let auth = auth(&fake).await;
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
    async fn unknown_and_unscoped_tokens_are_unauthenticated() {
        let fake = FakeKeystone::start().await;
        let mut body = scoped_token("u1", "p1", &[]);
        body.as_object_mut().expect("an object").remove("project");
        fake.add_subject("unscoped", body);
        let auth = auth(&fake).await;
        let err = auth.authenticate("bogus").await.expect_err("unknown token");
        assert!(matches!(err, AuthError::Invalid), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        let err = auth.authenticate("unscoped").await.expect_err("unscoped");
        assert!(matches!(err, AuthError::Unscoped), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    }

    #[tokio::test]
    async fn an_empty_token_is_missing_and_never_reaches_keystone() {
        let fake = FakeKeystone::start().await;
        let auth = auth(&fake).await;
        assert!(matches!(
            auth.authenticate("").await,
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            auth.authenticate("tok\r\nX-Evil: 1").await,
            Err(AuthError::Invalid)
        ));
        let state = fake.state();
        assert_eq!((state.logins, state.validations), (0, 0));
    }

    #[tokio::test]
    async fn refused_service_credentials_make_keystone_unavailable() {
        let fake = FakeKeystone::start().await;
        fake.add_subject("a", scoped_token("u1", "p1", &["member"]));
        let mut config = KeystoneConfig::new(fake.config());
        config.session.password = Some(Secret::new("wrong".to_owned()));
        let auth = KeystoneAuth::new(&config).await.expect("valid config");
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
        let config = KeystoneConfig::new(nest_openstack::SessionConfig::password(
            format!("http://{addr}/v3"),
            "nest",
            Secret::new(SERVICE_PASSWORD.to_owned()),
            "service",
        ));
        let auth = KeystoneAuth::new(&config).await.expect("valid config");
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
        let mut config = KeystoneConfig::new(nest_openstack::SessionConfig::password(
            format!("http://{addr}/v3"),
            "nest",
            Secret::new(SERVICE_PASSWORD.to_owned()),
            "service",
        ));
        config.session.request_timeout = HumanDuration(Duration::from_millis(200));
        let auth = KeystoneAuth::new(&config).await.expect("valid config");
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
    async fn an_unsafe_id_from_keystone_is_refused_as_unavailable() {
        let fake = FakeKeystone::start().await;
        fake.add_subject("a", scoped_token("../etc", "p1", &["member"]));
        let auth = auth(&fake).await;
        let err = auth.authenticate("a").await.expect_err("bad id");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let AuthError::Unavailable(source) = &err else {
            panic!("expected Unavailable, got {err:?}");
        };
        assert_eq!(source.to_string(), "keystone returned an unusable user id");
    }

    #[tokio::test]
    async fn a_config_with_problems_is_refused_as_invalid() {
        let mut config = KeystoneConfig::new(nest_openstack::SessionConfig::password(
            "ftp://k",
            "n",
            Secret::new("p".to_owned()),
            "s",
        ));
        config.cache_ttl = HumanDuration(Duration::from_secs(600));
        let err = KeystoneAuth::new(&config).await.expect_err("bad config");
        assert_eq!(err.kind(), ErrorKind::Invalid);
        let text = format!("{:?}", err);
        for key in ["auth_url", "cache_ttl"] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
    }
}
