//! A fake Keystone on loopback for unit tests (here, and in other crates
//! with the `testing` feature): it speaks just enough HTTP/1.1, over plain
//! TCP or TLS, to issue tokens (password and application credential
//! logins, with a catalog unless `?nocatalog`), validate subject tokens, and
//! answer any other path as an OpenStack API would (200 with a valid token,
//! 401 without). It records what it was asked, so tests can count logins.
//!
//! The real Keystone is exercised by the conformance tests against the
//! OpenStack lab (`service/tests/keystone.rs`, `openstack/tests/`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nest_core::Secret;
use nest_core::duration::HumanDuration;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use url::Url;

use crate::config::SessionConfig;

/// The password of the fake's service user `nest`.
pub const SERVICE_PASSWORD: &str = "svc-pass";
/// A secret tests can give the application credentials they register.
pub const APPLICATION_CREDENTIAL_SECRET: &str = "app-cred-secret";
/// Time a call to the fake may take in [`FakeKeystone::config`].
pub const FAKE_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the fake Keystone knows, and what it has been asked.
pub struct FakeState {
    /// Logins (`POST /v3/auth/tokens`) received.
    pub logins: usize,
    /// Validations (`GET /v3/auth/tokens`) received.
    pub validations: usize,
    /// Calls to any other path received.
    pub api_calls: usize,
    /// `METHOD target` of every request, in order.
    pub targets: Vec<String>,
    /// The `X-Openstack-Request-Id` of every request that sent one.
    pub request_ids: Vec<String>,
    /// The body of every login, in order.
    pub login_bodies: Vec<Value>,
    /// Tokens it issued and still accepts; clearing it revokes them.
    pub service_tokens: HashSet<String>,
    /// Answer 401 to every validation and API call, whatever the token.
    pub reject_all_service_tokens: bool,
    /// Answer 403 to every validation with a valid service token, as
    /// Keystone does when the service user lacks the `service` role.
    pub forbid_validations: bool,
    /// Subject token → the `token` object its validation returns.
    pub subjects: HashMap<String, Value>,
    /// Application credential id → secret, accepted at login.
    pub application_credentials: HashMap<String, String>,
    /// Lifetime of the tokens it issues. Default: one hour.
    pub token_lifetime: time::Duration,
}

impl Default for FakeState {
    fn default() -> Self {
        Self {
            logins: 0,
            validations: 0,
            api_calls: 0,
            targets: Vec::new(),
            request_ids: Vec::new(),
            login_bodies: Vec::new(),
            service_tokens: HashSet::new(),
            reject_all_service_tokens: false,
            forbid_validations: false,
            subjects: HashMap::new(),
            application_credentials: HashMap::new(),
            token_lifetime: time::Duration::hours(1),
        }
    }
}

/// A fake Keystone serving on `127.0.0.1:<random port>` until dropped.
pub struct FakeKeystone {
    base: Url,
    state: Arc<Mutex<FakeState>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKeystone {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeKeystone {
    /// Starts a fake over plain HTTP.
    ///
    /// # Panics
    /// When loopback cannot be bound.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts a fake over HTTPS with `tls` (its certificate must name
    /// `127.0.0.1`).
    ///
    /// # Panics
    /// When loopback cannot be bound.
    pub async fn start_tls(tls: Arc<rustls::ServerConfig>) -> Self {
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = Url::parse(&format!("{scheme}://{addr}/")).expect("a loopback URL");
        let state = Arc::new(Mutex::new(FakeState::default()));
        let server = tokio::spawn(serve(listener, tls, Arc::clone(&state), base.clone()));
        Self {
            base,
            state,
            server,
        }
    }

    /// The identity endpoint, `<base>/v3`.
    pub fn auth_url(&self) -> String {
        self.url(&["v3"]).to_string()
    }

    /// `<base>/<segments…>`: the URL of a path the fake answers.
    pub fn url(&self, segments: &[&str]) -> Url {
        crate::catalog::join_segments(&self.base, segments)
    }

    /// A password session config for the fake's service user, with
    /// [`FAKE_REQUEST_TIMEOUT`].
    pub fn config(&self) -> SessionConfig {
        let mut config = SessionConfig::password(
            self.auth_url(),
            "nest",
            Secret::new(SERVICE_PASSWORD.to_owned()),
            "service",
        );
        config.request_timeout = HumanDuration(FAKE_REQUEST_TIMEOUT);
        config
    }

    /// What the fake knows and was asked; hold it briefly.
    ///
    /// # Panics
    /// When a thread panicked holding it.
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake state lock")
    }

    /// Makes `token` valid, validating to `body` (Keystone's `token` object).
    pub fn add_subject(&self, token: &str, body: Value) {
        self.state().subjects.insert(token.to_owned(), body);
    }
}

/// A project-scoped validation body, shaped like Keystone 22's.
pub fn scoped_token(user: &str, project: &str, roles: &[&str]) -> Value {
    json!({
        "methods": ["password"],
        "expires_at": expires_in(time::Duration::hours(1)),
        "user": {"id": user, "name": "someone", "domain": {"id": "default", "name": "Default"}},
        "project": {"id": project, "name": "proj", "domain": {"id": "default", "name": "Default"}},
        "roles": roles.iter().map(|r| json!({"id": format!("id-{r}"), "name": r})).collect::<Vec<_>>(),
    })
}

/// `now + d`, as Keystone writes `expires_at`.
///
/// # Panics
/// Never for a time within the next few centuries.
pub fn expires_in(d: time::Duration) -> String {
    (OffsetDateTime::now_utc() + d)
        .format(&Rfc3339)
        .expect("a current time formats")
}

/// One connection at a time; every answer closes its connection.
async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<Mutex<FakeState>>,
    base: Url,
) {
    while let Ok((stream, _)) = listener.accept().await {
        let answered = match &tls {
            None => answer(stream, &state, &base).await,
            Some(acceptor) => match acceptor.accept(stream).await {
                Ok(stream) => answer(stream, &state, &base).await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = answered {
            tracing::debug!(error = %e, "fake keystone: connection failed");
        }
    }
}

async fn answer<S>(stream: S, state: &Mutex<FakeState>, base: &Url) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
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
        respond(&mut state, base, method, target, &headers, &body)
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
    base: &Url,
    method: &str,
    target: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
) -> (u16, String, String) {
    s.targets.push(format!("{method} {target}"));
    if let Some(id) = headers.get("x-openstack-request-id") {
        s.request_ids.push(id.clone());
    }
    let request_id = format!("x-openstack-request-id: req-fake-{}\r\n", s.targets.len());
    let error = |code: u16| {
        (
            code,
            request_id.clone(),
            json!({"error": {"code": code}}).to_string(),
        )
    };
    let token_ok = |s: &FakeState| {
        !s.reject_all_service_tokens
            && headers
                .get("x-auth-token")
                .is_some_and(|t| s.service_tokens.contains(t))
    };
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("POST", "/v3/auth/tokens") => {
            s.logins += 1;
            let request: Value = serde_json::from_slice(body).unwrap_or_default();
            s.login_bodies.push(request.clone());
            let identity = request.pointer("/auth/identity");
            let password = identity
                .and_then(|i| i.pointer("/password/user/password"))
                .and_then(Value::as_str);
            let app_credential = identity
                .and_then(|i| i.get("application_credential"))
                .and_then(|a| Some((a.get("id")?.as_str()?, a.get("secret")?.as_str()?)));
            let accepted = password == Some(SERVICE_PASSWORD)
                || app_credential.is_some_and(|(id, secret)| {
                    s.application_credentials.get(id).map(String::as_str) == Some(secret)
                });
            if !accepted {
                return error(401);
            }
            let token = format!("svc-token-{}", s.logins);
            s.service_tokens.insert(token.clone());
            let mut issued = json!({
                "expires_at": expires_in(s.token_lifetime),
                "user": {"id": "nest-user-id", "name": "nest"},
                "project": {"id": "service-project-id", "name": "service"},
            });
            if !target.contains("nocatalog") {
                issued["catalog"] = catalog(base);
            }
            (
                201,
                format!("{request_id}x-subject-token: {token}\r\n"),
                json!({ "token": issued }).to_string(),
            )
        }
        ("GET", "/v3/auth/tokens") => {
            s.validations += 1;
            if !token_ok(s) {
                return error(401);
            }
            if s.forbid_validations {
                return error(403);
            }
            match headers
                .get("x-subject-token")
                .and_then(|t| s.subjects.get(t))
            {
                Some(token) => (200, request_id, json!({ "token": token }).to_string()),
                None => error(404),
            }
        }
        _ => {
            s.api_calls += 1;
            if !token_ok(s) {
                return error(401);
            }
            (200, request_id, "{}".to_owned())
        }
    }
}

/// A catalog with the fake itself as identity and `<base>/compute/v2.1` as
/// compute, in `RegionOne`.
fn catalog(base: &Url) -> Value {
    let endpoint = |segments: &[&str]| {
        let url = crate::catalog::join_segments(base, segments).to_string();
        json!([
            {"id": "e1", "interface": "public", "region_id": "RegionOne", "region": "RegionOne", "url": url},
            {"id": "e2", "interface": "internal", "region_id": "RegionOne", "region": "RegionOne", "url": url},
        ])
    };
    json!([
        {"type": "identity", "name": "keystone", "id": "s1", "endpoints": endpoint(&["v3"])},
        {"type": "compute", "name": "nova", "id": "s2", "endpoints": endpoint(&["compute", "v2.1"])},
    ])
}
