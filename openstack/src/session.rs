//! [`Session`]: one Keystone v3 session, what every client of an OpenStack
//! service sends its calls through.
//!
//! A session logs in (`POST /v3/auth/tokens`) with its [`AuthMethod`] the
//! first time a token is needed, keeps the token (and its service catalog)
//! until shortly before it expires, and logs in again then. A call answered
//! 401 is retried once with a fresh token, as keystoneauth does: the token
//! may have been revoked, or Keystone's keys rotated past it. Every call
//! has a timeout, carries an `X-Openstack-Request-Id` (the caller's request
//! id, so that one id follows an API call into the cloud's logs) and has the
//! id the service answers with logged beside it.
//!
//! The token lives in an async mutex held across the login, so that
//! concurrent first calls wait for one login instead of each starting one.
//!
//! This module never logs a token, a password or a secret, and it follows
//! no redirects: `X-Auth-Token` is not one of the headers reqwest strips on
//! a cross-origin redirect, and OpenStack APIs do not redirect.

use std::sync::Arc;
use std::time::Duration;

use nest_core::RequestId;
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;
use url::Url;

use crate::auth::{AuthMethod, TenantAuthority};
use crate::catalog::{Catalog, Interface};
use crate::config::SessionConfig;
use crate::error::{OpenStackError, RemoteRequestId};

/// The header that carries a request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";
/// The header that carries the session's token.
pub const AUTH_TOKEN_HEADER: &str = "x-auth-token";
/// The header that carries the token being issued or validated.
pub const SUBJECT_TOKEN_HEADER: &str = "x-subject-token";
/// Default `User-Agent` of a session's calls.
pub const DEFAULT_USER_AGENT: &str = concat!("nest/", env!("CARGO_PKG_VERSION"));
/// How long before its expiry a token is replaced; keystoneauth uses the
/// same margin (`MIN_TOKEN_LIFE_SECONDS`).
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(120);
/// A token younger than this is not replaced on a 401: the 401 is then
/// taken to be about the request, not the token. This bounds logins (about
/// 0.3s of Keystone CPU each for a password) if a caller's requests ever
/// came back 401 for another reason, such as a bogus subject token.
pub const MIN_TOKEN_AGE_FOR_REFRESH: Duration = Duration::from_secs(5);

/// How a session is built, beyond its configuration.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// `User-Agent` of every call. Default: [`DEFAULT_USER_AGENT`].
    pub user_agent: String,
    /// Whether logins ask for the service catalog. A session that only
    /// validates tokens needs none, and Keystone's answer is then a few
    /// hundred bytes instead of several kilobytes. Default: `true`.
    pub catalog: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            catalog: true,
        }
    }
}

/// One call made through a [`Session`]: what it is for (in errors and
/// logs), how long it may take, and the request id it carries.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    service: &'static str,
    operation: &'static str,
    timeout: Option<Duration>,
    request_id: Option<&'a RequestId>,
}

impl<'a> Call<'a> {
    /// A call to `service` (`keystone`, `nova`, ...) to do `operation`
    /// (`boot a server`), with the session's timeout and a fresh request id.
    pub fn new(service: &'static str, operation: &'static str) -> Self {
        Self {
            service,
            operation,
            timeout: None,
            request_id: None,
        }
    }

    /// The whole call, from connecting to the end of the body, may take at
    /// most `timeout` (instead of the session's `request_timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The call carries `request_id` (the API request it serves) instead of
    /// a fresh one.
    pub fn request_id(mut self, request_id: &'a RequestId) -> Self {
        self.request_id = Some(request_id);
        self
    }

    /// The service called.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// What the call does.
    pub fn operation(&self) -> &'static str {
        self.operation
    }
}

/// A Keystone v3 session: credentials, the current token, its catalog.
///
/// # Example
///
/// ```no_run
/// use nest_core::Secret;
/// use nest_openstack::{
///     Call, Interface, Session, SessionConfig, SessionOptions, join_segments,
/// };
///
/// # async fn example() -> Result<(), nest_openstack::OpenStackError> {
/// let config = SessionConfig::password(
///     "http://127.0.0.1:5000/v3",
///     "nest",
///     Secret::new("password".to_owned()),
///     "service",
/// );
/// let session = Session::new(&config, SessionOptions::default()).await?;
/// let nova = session.endpoint("compute", Interface::Public, Some("RegionOne")).await?;
/// let flavors = join_segments(&nova, &["flavors"]);
/// let response = session
///     .send(&Call::new("nova", "list flavors"), |http| http.get(flavors.clone()))
///     .await?;
/// println!("{}", response.status());
/// # Ok(())
/// # }
/// ```
pub struct Session {
    transport: Arc<Transport>,
    method: AuthMethod,
    token: tokio::sync::Mutex<Option<Token>>,
    min_refresh_age: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("identity", &self.transport.identity.as_str())
            .field("principal", &self.method.principal())
            .finish_non_exhaustive()
    }
}

/// What sessions acting for different principals share.
struct Transport {
    client: reqwest::Client,
    /// The identity endpoint, its path ending in `/v3`.
    identity: Url,
    /// `POST` here to log in (`?nocatalog` when no catalog is wanted).
    login_url: Url,
    /// Whether logins ask for the catalog.
    catalog: bool,
    request_timeout: Duration,
}

/// The current token, and when to replace it.
#[derive(Clone)]
struct Token {
    /// Marked sensitive, so that header debug output hides it.
    header: HeaderValue,
    /// Counts logins, so that a caller can say "replace the one I used".
    generation: u64,
    issued_at: Instant,
    refresh_at: Instant,
    catalog: Arc<Catalog>,
    /// Who the token acts as, and in which project (none when unscoped).
    user_id: Arc<str>,
    project_id: Option<Arc<str>>,
}

impl Session {
    /// Checks `config` and builds the HTTP client (reading `ca_file`).
    /// Does not call Keystone: the first login happens with the first call.
    ///
    /// # Errors
    /// [`OpenStackError::Config`] with every config problem;
    /// [`OpenStackError::ReadCaFile`], [`OpenStackError::BadCaFile`] or
    /// [`OpenStackError::BuildClient`].
    pub async fn new(
        config: &SessionConfig,
        options: SessionOptions,
    ) -> Result<Self, OpenStackError> {
        let resolved = config.resolve()?;
        let client = http_client(config, &options).await?;
        let mut login_url = resolved.identity.clone();
        login_url.set_path(&format!("{}/auth/tokens", login_url.path()));
        if !options.catalog {
            login_url.set_query(Some("nocatalog"));
        }
        if resolved.identity.scheme() == "http"
            && !matches!(
                resolved.identity.host_str(),
                Some("127.0.0.1" | "localhost" | "[::1]")
            )
        {
            tracing::warn!(
                auth_url = %resolved.identity,
                "keystone is reached over plain http: credentials and tokens cross the network unencrypted"
            );
        }
        tracing::info!(
            auth_url = %resolved.identity,
            principal = %resolved.method.principal(),
            ca_file = ?config.ca_file,
            "keystone session configured"
        );
        Ok(Self {
            transport: Arc::new(Transport {
                client,
                identity: resolved.identity,
                login_url,
                catalog: options.catalog,
                request_timeout: config.request_timeout.get(),
            }),
            method: resolved.method,
            token: tokio::sync::Mutex::new(None),
            min_refresh_age: MIN_TOKEN_AGE_FOR_REFRESH,
        })
    }

    /// A session that acts for a tenant with `authority`: with a trust, this
    /// session's user logs in scoped to the trust; with an application
    /// credential, that credential logs in. It shares this session's HTTP
    /// client and settings and has its own token.
    ///
    /// # Errors
    /// [`OpenStackError::NoTenantAuthority`] for [`TenantAuthority::None`];
    /// [`OpenStackError::Delegation`] for a trust when this session does
    /// not log in with a password.
    pub fn for_tenant(&self, authority: &TenantAuthority) -> Result<Self, OpenStackError> {
        Ok(Self {
            transport: Arc::clone(&self.transport),
            method: self.method.for_tenant(authority)?,
            token: tokio::sync::Mutex::new(None),
            min_refresh_age: self.min_refresh_age,
        })
    }

    /// The identity endpoint, its path ending in `/v3`.
    pub fn identity_url(&self) -> &Url {
        &self.transport.identity
    }

    /// Who the session logs in as, for messages: never a secret.
    pub fn principal(&self) -> String {
        self.method.principal()
    }

    /// The shared HTTP client, for the calls that carry a token other than
    /// the session's (a user's own, to create a trust).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.transport.client
    }

    /// The time a call may take unless it says otherwise.
    pub fn request_timeout(&self) -> Duration {
        self.transport.request_timeout
    }

    /// The URL of the `service_type` endpoint (`compute`, `network`,
    /// `image`) on `interface` in `region`, from the current token's
    /// catalog (logging in first when there is no token yet).
    ///
    /// # Errors
    /// [`OpenStackError::EndpointNotFound`], [`OpenStackError::NoCatalog`],
    /// or why the login failed.
    ///
    /// # Cancel safety
    /// Safe to cancel, like [`Session::send`].
    pub async fn endpoint(
        &self,
        service_type: &str,
        interface: Interface,
        region: Option<&str>,
    ) -> Result<Url, OpenStackError> {
        if !self.transport.catalog {
            return Err(OpenStackError::NoCatalog);
        }
        let token = self.token(None, &RequestId::generate()).await?;
        token.catalog.endpoint(service_type, interface, region)
    }

    /// The Keystone id of the user the session's tokens act as (the trustee
    /// of tenants' trusts, for a service session), logging in first when
    /// there is no token yet.
    ///
    /// # Errors
    /// Why the login failed.
    pub async fn user_id(&self) -> Result<String, OpenStackError> {
        let token = self.token(None, &RequestId::generate()).await?;
        Ok(token.user_id.to_string())
    }

    /// The id of the project the session's tokens are scoped to (the
    /// trust's project, for a session acting for a tenant); `None` when
    /// unscoped.
    ///
    /// # Errors
    /// Why the login failed.
    pub async fn project_id(&self) -> Result<Option<String>, OpenStackError> {
        let token = self.token(None, &RequestId::generate()).await?;
        Ok(token.project_id.as_deref().map(str::to_owned))
    }

    /// Sends the request `build` makes, with the session's token, the call's
    /// timeout and request id. A 401 answer is retried once with a fresh
    /// token (unless the token was issued less than
    /// [`MIN_TOKEN_AGE_FOR_REFRESH`] ago); so `build` may be called twice.
    ///
    /// Returns every answer but a transport failure, the last 401 included:
    /// what a status means is the caller's to say.
    ///
    /// # Errors
    /// [`OpenStackError::Request`] when the service cannot be reached or
    /// does not answer in time; why a login failed.
    ///
    /// # Cancel safety
    /// Safe to cancel: a cancelled login leaves the previous token in
    /// place; a cancelled request may or may not have reached the service.
    #[tracing::instrument(
        name = "openstack_call",
        skip_all,
        fields(service = call.service, operation = call.operation)
    )]
    pub async fn send<B>(
        &self,
        call: &Call<'_>,
        build: B,
    ) -> Result<reqwest::Response, OpenStackError>
    where
        B: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let generated;
        let request_id = match call.request_id {
            Some(id) => id,
            None => {
                generated = RequestId::generate();
                &generated
            }
        };
        let token = self.token(None, request_id).await?;
        let response = self.send_with(&token, call, request_id, &build).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        match self.refresh(&token, request_id).await? {
            Some(fresh) => self.send_with(&fresh, call, request_id, &build).await,
            None => Ok(response),
        }
    }

    /// One attempt of [`Session::send`].
    async fn send_with<B>(
        &self,
        token: &Token,
        call: &Call<'_>,
        request_id: &RequestId,
        build: &B,
    ) -> Result<reqwest::Response, OpenStackError>
    where
        B: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let response = build(&self.transport.client)
            .header(AUTH_TOKEN_HEADER, token.header.clone())
            .header(REQUEST_ID_HEADER, request_id.as_str())
            .timeout(call.timeout.unwrap_or(self.transport.request_timeout))
            .send()
            .await
            .map_err(|source| request_error(call.operation, source))?;
        tracing::debug!(
            service = call.service,
            operation = call.operation,
            status = response.status().as_u16(),
            request_id = %request_id,
            openstack_request_id = ?RemoteRequestId::of(&response).0,
            "openstack call answered"
        );
        Ok(response)
    }

    /// Replaces `stale` after a 401, unless it is too young for the 401 to
    /// be about it (then `None`).
    async fn refresh(
        &self,
        stale: &Token,
        request_id: &RequestId,
    ) -> Result<Option<Token>, OpenStackError> {
        if stale.issued_at.elapsed() < self.min_refresh_age {
            return Ok(None);
        }
        tracing::warn!(
            principal = %self.method.principal(),
            "a token was rejected with 401; logging in again"
        );
        self.token(Some(stale.generation), request_id)
            .await
            .map(Some)
    }

    /// The current token, logging in when there is none, it is due for
    /// replacement, or it is the one of generation `replace`.
    async fn token(
        &self,
        replace: Option<u64>,
        request_id: &RequestId,
    ) -> Result<Token, OpenStackError> {
        let mut slot = self.token.lock().await;
        if let Some(current) = slot.as_ref() {
            let rejected = replace == Some(current.generation);
            if !rejected && Instant::now() < current.refresh_at {
                return Ok(current.clone());
            }
        }
        let generation = slot.as_ref().map_or(0, |t| t.generation.wrapping_add(1));
        let fresh = self.log_in(generation, request_id).await?;
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// One login with the session's credentials.
    async fn log_in(
        &self,
        generation: u64,
        request_id: &RequestId,
    ) -> Result<Token, OpenStackError> {
        const OPERATION: &str = "issue a token";
        let transport = &self.transport;
        let response = transport
            .client
            .post(transport.login_url.clone())
            .header(REQUEST_ID_HEADER, request_id.as_str())
            .timeout(transport.request_timeout)
            .json(&self.method.login_body())
            .send()
            .await
            .map_err(|source| request_error(OPERATION, source))?;
        let request = RemoteRequestId::of(&response);
        match response.status() {
            s if s.is_success() => {}
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) => {
                return Err(OpenStackError::CredentialsRejected {
                    principal: self.method.principal(),
                    status: s.as_u16(),
                    request,
                });
            }
            s => {
                return Err(OpenStackError::UnexpectedStatus {
                    service: "keystone",
                    operation: OPERATION,
                    status: s.as_u16(),
                    request,
                });
            }
        }
        let mut header = response
            .headers()
            .get(SUBJECT_TOKEN_HEADER)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or(OpenStackError::MissingSubjectToken)?;
        header.set_sensitive(true);
        let issued: IssuedBody =
            response
                .json()
                .await
                .map_err(|source| OpenStackError::MalformedBody {
                    service: "keystone",
                    operation: OPERATION,
                    source,
                })?;
        let lifetime = lifetime_until(parse_expiry(&issued.token.expires_at)?);
        let issued_at = Instant::now();
        tracing::info!(
            principal = %self.method.principal(),
            expires_in_s = lifetime.as_secs(),
            generation,
            keystone_request_id = ?request.0,
            "keystone issued a token"
        );
        Ok(Token {
            header,
            generation,
            issued_at,
            refresh_at: issued_at
                .checked_add(refresh_delay(lifetime))
                .unwrap_or(issued_at),
            catalog: Arc::new(issued.token.catalog),
            user_id: issued.token.user.id.into(),
            project_id: issued.token.project.map(|p| p.id.into()),
        })
    }

    /// Shortens the age below which a rejected token is kept, for tests
    /// that revoke tokens right after issuing them.
    #[cfg(test)]
    pub(crate) fn set_min_refresh_age(&mut self, age: Duration) {
        self.min_refresh_age = age;
    }
}

/// The HTTP client of a session: its timeouts, no redirects, and the
/// configured CAs (or the system's).
async fn http_client(
    config: &SessionConfig,
    options: &SessionOptions,
) -> Result<reqwest::Client, OpenStackError> {
    let timeout = config.request_timeout.get();
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(options.user_agent.as_str());
    if let Some(path) = &config.ca_file {
        let pem = tokio::fs::read(path)
            .await
            .map_err(|source| OpenStackError::ReadCaFile {
                path: path.clone(),
                source,
            })?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
            OpenStackError::BadCaFile {
                path: path.clone(),
                source: Some(source),
            }
        })?;
        if certificates.is_empty() {
            return Err(OpenStackError::BadCaFile {
                path: path.clone(),
                source: None,
            });
        }
        // Only the configured CAs, as `OS_CACERT` means: a private cloud's
        // endpoints are signed by its own CA, and trusting every public CA
        // beside it would only widen who can impersonate them.
        builder = builder.tls_certs_only(certificates);
    }
    builder.build().map_err(OpenStackError::BuildClient)
}

fn request_error(operation: &'static str, source: reqwest::Error) -> OpenStackError {
    OpenStackError::Request {
        operation,
        url: source
            .url()
            .map_or_else(|| "<unknown URL>".to_owned(), Url::to_string),
        source,
    }
}

/// When to replace a token that has `lifetime` left: [`TOKEN_REFRESH_MARGIN`]
/// before it expires, or halfway for a token too short-lived for that.
pub(crate) fn refresh_delay(lifetime: Duration) -> Duration {
    if lifetime > TOKEN_REFRESH_MARGIN * 2 {
        lifetime - TOKEN_REFRESH_MARGIN
    } else {
        lifetime / 2
    }
}

/// Parses Keystone's `expires_at`.
///
/// # Errors
/// [`OpenStackError::BadExpiry`] when it is not RFC 3339.
pub(crate) fn parse_expiry(expires_at: &str) -> Result<OffsetDateTime, OpenStackError> {
    OffsetDateTime::parse(expires_at, &Rfc3339).map_err(|source| OpenStackError::BadExpiry {
        value: expires_at.to_owned(),
        source,
    })
}

/// Time left until `expires`, zero when already past (our clock may run
/// ahead of Keystone's).
pub(crate) fn lifetime_until(expires: OffsetDateTime) -> Duration {
    Duration::try_from(expires - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO)
}

/// Keystone's answer to a login; only what is used.
#[derive(serde::Deserialize)]
struct IssuedBody {
    token: IssuedToken,
}

#[derive(serde::Deserialize)]
struct IssuedToken {
    expires_at: String,
    user: IssuedId,
    #[serde(default)]
    project: Option<IssuedId>,
    /// Absent with `?nocatalog`.
    #[serde(default)]
    catalog: Catalog,
}

#[derive(serde::Deserialize)]
struct IssuedId {
    id: String,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc as StdArc;

    use nest_core::ErrorKind;
    use nest_core::Secret;
    use nest_core::duration::HumanDuration;
    use serde_json::json;
    use tokio::net::TcpListener;

    use super::*;
    use crate::testing::{APPLICATION_CREDENTIAL_SECRET, FakeKeystone, SERVICE_PASSWORD};

    async fn session(fake: &FakeKeystone) -> Session {
        let mut s = Session::new(&fake.config(), SessionOptions::default())
            .await
            .expect("valid config");
        s.set_min_refresh_age(Duration::ZERO);
        s
    }

    #[tokio::test]
    async fn endpoints_come_from_the_login_catalog() {
        let fake = FakeKeystone::start().await;
        let session = session(&fake).await;
        let nova = session
            .endpoint("compute", Interface::Public, Some("RegionOne"))
            .await
            .expect("a compute endpoint");
        assert_eq!(nova, fake.url(&["compute", "v2.1"]));
        let err = session
            .endpoint("volumev3", Interface::Public, None)
            .await
            .expect_err("no block storage");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        let state = fake.state();
        assert_eq!(state.logins, 1, "one login serves every lookup");
        assert!(
            state.targets.iter().all(|t| !t.contains("nocatalog")),
            "{:?}",
            state.targets
        );
    }

    #[tokio::test]
    async fn a_session_without_catalog_asks_for_none_and_knows_no_endpoint() {
        let fake = FakeKeystone::start().await;
        let options = SessionOptions {
            catalog: false,
            ..SessionOptions::default()
        };
        let session = Session::new(&fake.config(), options)
            .await
            .expect("valid config");
        let err = session
            .endpoint("compute", Interface::Public, None)
            .await
            .expect_err("no catalog");
        assert!(matches!(err, OpenStackError::NoCatalog), "{err:?}");
        assert_eq!(fake.state().logins, 0, "no login for nothing");
        let url = fake.url(&["compute", "v2.1", "servers"]);
        session
            .send(&Call::new("nova", "list servers"), |http| {
                http.get(url.clone())
            })
            .await
            .expect("answered");
        assert_eq!(
            fake.state().targets[0],
            "POST /v3/auth/tokens?nocatalog".to_owned()
        );
    }

    #[tokio::test]
    async fn calls_carry_the_token_and_the_request_id_and_time_out() {
        let fake = FakeKeystone::start().await;
        let session = session(&fake).await;
        let url = fake.url(&["compute", "v2.1", "flavors"]);
        let request_id = RequestId::generate();
        let call = Call::new("nova", "list flavors").request_id(&request_id);
        let response = session
            .send(&call, |http| http.get(url.clone()))
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
        let state = fake.state();
        assert_eq!(state.api_calls, 1);
        assert_eq!(
            state.request_ids,
            [request_id.to_string(), request_id.to_string()],
            "the login and the call carry the caller's request id"
        );
    }

    #[tokio::test]
    async fn a_revoked_token_is_replaced_once_and_the_call_retried() {
        let fake = FakeKeystone::start().await;
        let session = session(&fake).await;
        let url = fake.url(&["compute", "v2.1", "servers"]);
        let call = Call::new("nova", "list servers");
        let send = || session.send(&call, |http| http.get(url.clone()));
        assert_eq!(send().await.expect("answered").status(), StatusCode::OK);
        fake.state().service_tokens.clear();
        assert_eq!(send().await.expect("answered").status(), StatusCode::OK);
        let state = fake.state();
        assert_eq!((state.logins, state.api_calls), (2, 3));
    }

    #[tokio::test]
    async fn a_401_with_a_fresh_token_is_returned_after_one_retry() {
        let fake = FakeKeystone::start().await;
        fake.state().reject_all_service_tokens = true;
        let session = session(&fake).await;
        let url = fake.url(&["compute", "v2.1", "servers"]);
        let response = session
            .send(&Call::new("nova", "list servers"), |http| {
                http.get(url.clone())
            })
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let state = fake.state();
        assert_eq!((state.logins, state.api_calls), (2, 2));
    }

    #[tokio::test]
    async fn a_token_is_replaced_before_it_expires() {
        let fake = FakeKeystone::start().await;
        // Keystone issues tokens that are already due for replacement.
        fake.state().token_lifetime = time::Duration::ZERO;
        let session = session(&fake).await;
        for _ in 0..2 {
            session
                .endpoint("compute", Interface::Public, None)
                .await
                .expect("a compute endpoint");
        }
        assert_eq!(fake.state().logins, 2);
        fake.state().token_lifetime = time::Duration::hours(1);
        for _ in 0..2 {
            session
                .endpoint("compute", Interface::Public, None)
                .await
                .expect("a compute endpoint");
        }
        assert_eq!(fake.state().logins, 3);
    }

    #[test]
    fn tokens_are_replaced_two_minutes_early_or_halfway() {
        let s = Duration::from_secs;
        assert_eq!(refresh_delay(s(24 * 3600)), s(24 * 3600 - 120));
        assert_eq!(refresh_delay(s(241)), s(121));
        assert_eq!(refresh_delay(s(200)), s(100));
        assert_eq!(refresh_delay(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn concurrent_first_calls_share_one_login() {
        let fake = FakeKeystone::start().await;
        let session = session(&fake).await;
        let lookups = (0..6).map(|_| session.endpoint("compute", Interface::Public, None));
        let results = futures_util::future::join_all(lookups).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(fake.state().logins, 1);
    }

    #[tokio::test]
    async fn refused_credentials_are_named_without_the_secret() {
        let fake = FakeKeystone::start().await;
        let mut config = fake.config();
        config.password = Some(Secret::new("wrong-password".to_owned()));
        let session = Session::new(&config, SessionOptions::default())
            .await
            .expect("valid config");
        let err = session
            .endpoint("compute", Interface::Public, None)
            .await
            .expect_err("bad password");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            err.to_string().starts_with(
                "keystone refused the service credentials of user \"nest\" (401, request req-fake-"
            ),
            "{err}"
        );
        assert!(!format!("{err:?}").contains("wrong-password"));
    }

    #[tokio::test]
    async fn a_tenant_session_logs_in_with_the_tenants_authority() {
        let fake = FakeKeystone::start().await;
        fake.state()
            .application_credentials
            .insert("ac-1".into(), APPLICATION_CREDENTIAL_SECRET.into());
        let service = session(&fake).await;
        let trust = service
            .for_tenant(&TenantAuthority::Trust {
                trust_id: "trust-1".into(),
            })
            .expect("a password session can use a trust");
        trust
            .endpoint("compute", Interface::Public, None)
            .await
            .expect("a trust-scoped login");
        let app = service
            .for_tenant(&TenantAuthority::ApplicationCredential {
                id: "ac-1".into(),
                secret: Secret::new(APPLICATION_CREDENTIAL_SECRET.into()),
            })
            .expect("any session can use an application credential");
        app.endpoint("compute", Interface::Public, None)
            .await
            .expect("an application credential login");
        let state = fake.state();
        assert_eq!(state.logins, 2);
        assert_eq!(
            state.login_bodies[0]["auth"]["scope"],
            json!({"OS-TRUST:trust": {"id": "trust-1"}})
        );
        assert_eq!(
            state.login_bodies[0]["auth"]["identity"]["password"]["user"]["password"],
            json!(SERVICE_PASSWORD)
        );
        assert_eq!(
            state.login_bodies[1]["auth"]["identity"]["methods"],
            json!(["application_credential"])
        );
        assert!(
            matches!(
                service.for_tenant(&TenantAuthority::None),
                Err(OpenStackError::NoTenantAuthority)
            ),
            "no authority, no tenant session"
        );
    }

    #[tokio::test]
    async fn unreachable_keystone_is_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        drop(listener);
        let config = SessionConfig::password(
            format!("http://{addr}/v3"),
            "nest",
            Secret::new(SERVICE_PASSWORD.to_owned()),
            "service",
        );
        let session = Session::new(&config, SessionOptions::default())
            .await
            .expect("valid config");
        let err = session
            .endpoint("compute", Interface::Public, None)
            .await
            .expect_err("nothing listens");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            err.to_string().contains("cannot issue a token at http://"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn keystone_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        // Accepts and holds connections without ever answering.
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let mut config = SessionConfig::password(
            format!("http://{addr}/v3"),
            "nest",
            Secret::new(SERVICE_PASSWORD.to_owned()),
            "service",
        );
        config.request_timeout = HumanDuration(Duration::from_millis(200));
        let session = Session::new(&config, SessionOptions::default())
            .await
            .expect("valid config");
        let started = std::time::Instant::now();
        let err = session
            .endpoint("compute", Interface::Public, None)
            .await
            .expect_err("no answer");
        silent.abort();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_private_ca_file_is_the_only_trust_for_tls() {
        let pki = TestPki::new();
        let fake = FakeKeystone::start_tls(pki.server_config()).await;
        let dir = tempfile::tempdir().expect("a temp dir");

        // Without the CA (the system's roots only), the certificate is refused.
        let untrusting = Session::new(&fake.config(), SessionOptions::default())
            .await
            .expect("a client with the system's roots");
        let err = untrusting
            .endpoint("compute", Interface::Public, None)
            .await
            .expect_err("an unknown CA");
        assert!(matches!(err, OpenStackError::Request { .. }), "{err:?}");
        assert_eq!(fake.state().logins, 0);

        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &pki.ca_pem).expect("write the CA");
        let mut config = fake.config();
        config.ca_file = Some(ca_file);
        let session = Session::new(&config, SessionOptions::default())
            .await
            .expect("a readable CA file");
        session
            .endpoint("compute", Interface::Public, None)
            .await
            .expect("the private CA is trusted");
        assert_eq!(fake.state().logins, 1);

        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "not a certificate").expect("write");
        config.ca_file = Some(not_pem);
        let err = Session::new(&config, SessionOptions::default())
            .await
            .expect_err("no certificate in the file");
        assert!(matches!(err, OpenStackError::BadCaFile { .. }), "{err:?}");
        config.ca_file = Some(dir.path().join("missing.pem"));
        let err = Session::new(&config, SessionOptions::default())
            .await
            .expect_err("no such file");
        assert!(matches!(err, OpenStackError::ReadCaFile { .. }), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }

    /// A CA and a certificate it signed for 127.0.0.1.
    struct TestPki {
        ca_pem: String,
        server_cert_der: Vec<u8>,
        server_key_der: Vec<u8>,
    }

    impl TestPki {
        fn new() -> Self {
            use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
            let ca_key = KeyPair::generate().expect("a CA key");
            let mut ca_params = CertificateParams::default();
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca = ca_params.self_signed(&ca_key).expect("a CA certificate");
            let issuer = Issuer::new(ca_params, ca_key);
            let key = KeyPair::generate().expect("a server key");
            let mut params = CertificateParams::default();
            params.subject_alt_names =
                vec![SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]))];
            let cert = params
                .signed_by(&key, &issuer)
                .expect("a server certificate");
            Self {
                ca_pem: ca.pem(),
                server_cert_der: cert.der().to_vec(),
                server_key_der: key.serialize_der(),
            }
        }

        fn server_config(&self) -> StdArc<rustls::ServerConfig> {
            let provider = StdArc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(
                    vec![self.server_cert_der.clone().into()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(self.server_key_der.clone().into()),
                )
                .expect("a server config");
            StdArc::new(config)
        }
    }
}
