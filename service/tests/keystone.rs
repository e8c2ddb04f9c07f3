//! Conformance of `KeystoneAuth` (over `nest_openstack`'s validator) and
//! the policy against a real Keystone: the one
//! `../shared/openstack-lab/up.sh` brings up (Keystone 22, fernet tokens,
//! users admin/demo/alt_demo). Every test fails, loudly, when
//! Keystone is not reachable; none passes without it.
//!
//! `OS_AUTH_URL` (default `http://127.0.0.1:5000/v3`), `OS_USERNAME`,
//! `OS_PASSWORD` and `OS_PROJECT_NAME` (default admin/adminpass/admin) name
//! the Keystone and the user that acts as Nest's service user.
//!
//! Keystone cannot issue a short-lived token on request (fernet lifetime is
//! global, 24h in the lab), so an expired token is not tested as such: a
//! bogus token and a revoked one stand in for it, and both answer 404 just
//! as an expired one does.

use std::collections::BTreeSet;
use std::time::Duration;

use nest_core::ErrorKind;
use nest_core::duration::HumanDuration;
use nest_openstack::SessionConfig;
use nest_service::auth::keystone::{KeystoneAuth, KeystoneConfig};
use nest_service::auth::policy::{Action, PolicyError, authorize};
use nest_service::auth::{AuthError, Authenticate, Caller, Secret};
use nest_service::domain::ProjectId;
use serde_json::{Value, json};

const DEFAULT_AUTH_URL: &str = "http://127.0.0.1:5000/v3";
/// Time any one call to Keystone may take in these tests.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for a revoked token to leave a 1s cache.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(15);

/// The lab's Keystone, with an admin token for setting things up.
struct Lab {
    auth_url: String,
    service_user: (String, String, String),
    http: reqwest::Client,
    admin_token: String,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl Lab {
    /// Connects, or fails the test saying how to start Keystone.
    async fn connect() -> Self {
        let auth_url = env_or("OS_AUTH_URL", DEFAULT_AUTH_URL)
            .trim_end_matches('/')
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .expect("an HTTP client builds");
        let reachable = match http.get(&auth_url).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("it answered {}", r.status())),
            Err(e) => Err(format!("{e}")),
        };
        if let Err(why) = reachable {
            panic!(
                "Keystone is not reachable at {auth_url} ({why}). These conformance tests need \
                 the real one: run `bash ../shared/openstack-lab/up.sh` from the workspace root \
                 (about 3 minutes the first time), or set OS_AUTH_URL, then run them again."
            );
        }
        let service_user = (
            env_or("OS_USERNAME", "admin"),
            env_or("OS_PASSWORD", "adminpass"),
            env_or("OS_PROJECT_NAME", "admin"),
        );
        let mut lab = Self {
            auth_url,
            service_user,
            http,
            admin_token: String::new(),
        };
        let (user, password, project) = lab.service_user.clone();
        lab.admin_token = lab
            .issue_token(&user, &password, Some(&project))
            .await
            .expect("the admin user logs in");
        lab
    }

    /// A password login, project-scoped when `project` is given.
    async fn issue_token(
        &self,
        user: &str,
        password: &str,
        project: Option<&str>,
    ) -> Result<String, String> {
        let mut auth = json!({
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": {"name": "Default"}, "password": password}}
            }
        });
        if let Some(project) = project {
            auth["scope"] = json!({"project": {"name": project, "domain": {"name": "Default"}}});
        }
        let response = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.auth_url))
            .json(&json!({ "auth": auth }))
            .send()
            .await
            .map_err(|e| format!("login of {user}: {e}"))?;
        if response.status() != reqwest::StatusCode::CREATED {
            return Err(format!("login of {user}: {}", response.status()));
        }
        response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| format!("login of {user}: no X-Subject-Token"))
    }

    /// An admin API call; returns the status and the JSON body (if any).
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.auth_url))
            .header("x-auth-token", &self.admin_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The id of the named user or project (`kind` = "users" or "projects").
    async fn id_of(&self, kind: &str, name: &str) -> String {
        let (status, body) = self
            .admin(reqwest::Method::GET, &format!("/{kind}?name={name}"), None)
            .await;
        assert_eq!(status, 200, "list {kind}: {body}");
        body[kind][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no {kind} named {name}: {body}"))
            .to_owned()
    }

    /// `KeystoneAuth` with the lab's admin as service user.
    async fn keystone_auth(&self, cache_ttl: Duration, password: &str) -> KeystoneAuth {
        let (user, _, project) = &self.service_user;
        let mut session = SessionConfig::password(
            &self.auth_url,
            user,
            Secret::new(password.to_owned()),
            project,
        );
        session.request_timeout = HumanDuration(CALL_TIMEOUT);
        let mut config = KeystoneConfig::new(session);
        config.cache_ttl = HumanDuration(cache_ttl);
        KeystoneAuth::new(&config)
            .await
            .expect("the config is valid")
    }

    async fn service_auth(&self, cache_ttl: Duration) -> KeystoneAuth {
        let password = self.service_user.1.clone();
        self.keystone_auth(cache_ttl, &password).await
    }
}

/// A user made for one test, deleted when the test ends, even on panic.
struct TempUser {
    auth_url: String,
    admin_token: String,
    id: String,
    name: String,
    password: String,
}

impl TempUser {
    /// Creates a user holding only `role` on `project_id`, with no default
    /// project (so that an unscoped login stays unscoped).
    async fn create(lab: &Lab, role: &str, project_id: &str) -> Self {
        let name = format!("nest-test-{role}-{}", uuid::Uuid::new_v4().simple());
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let (status, body) = lab
            .admin(
                reqwest::Method::POST,
                "/users",
                Some(json!({"user": {"name": name, "password": password, "domain_id": "default"}})),
            )
            .await;
        assert_eq!(status, 201, "create user: {body}");
        let user = Self {
            auth_url: lab.auth_url.clone(),
            admin_token: lab.admin_token.clone(),
            id: body["user"]["id"].as_str().expect("a user id").to_owned(),
            name,
            password,
        };
        let role_id = lab.id_of("roles", role).await;
        let (status, body) = lab
            .admin(
                reqwest::Method::PUT,
                &format!("/projects/{project_id}/users/{}/roles/{role_id}", user.id),
                None,
            )
            .await;
        assert_eq!(status, 204, "assign {role}: {body}");
        user
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let url = format!("{}/users/{}", self.auth_url, self.id);
        let token = self.admin_token.clone();
        // Drop cannot await, and the test's runtime may be gone or busy:
        // delete from a thread with its own small runtime.
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let client = reqwest::Client::builder()
                    .timeout(CALL_TIMEOUT)
                    .build()
                    .map_err(|e| e.to_string())?;
                let response = client
                    .delete(&url)
                    .header("x-auth-token", token)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                match response.status().as_u16() {
                    204 | 404 => Ok(()),
                    s => Err(format!("DELETE {url}: {s}")),
                }
            })
        })
        .join();
        if !matches!(outcome, Ok(Ok(()))) {
            eprintln!("could not delete test user {}: {outcome:?}", self.name);
        }
    }
}

fn roles(caller: &Caller) -> Vec<&str> {
    caller.roles.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn demo_token_authenticates_to_demos_user_and_project_as_member() {
    let lab = Lab::connect().await;
    let auth = lab.service_auth(Duration::from_secs(30)).await;
    let token = lab
        .issue_token("demo", "demopass", Some("demo"))
        .await
        .expect("demo logs in");

    let caller = auth.authenticate(&token).await.expect("a valid demo token");

    assert_eq!(caller.user_id.as_str(), lab.id_of("users", "demo").await);
    assert_eq!(
        caller.project_id.as_str(),
        lab.id_of("projects", "demo").await
    );
    // Keystone's implied roles: member implies reader.
    assert!(caller.roles.contains("member"), "{:?}", roles(&caller));
    assert!(!caller.is_admin());
    assert!(!caller.is_read_only());
    assert_eq!(authorize(&caller, Action::ContainerCreate, None), Ok(()));
    assert_eq!(
        authorize(&caller, Action::ContainerDelete, Some(&caller.project_id)),
        Ok(())
    );
    assert_eq!(
        authorize(&caller, Action::ContainerListAllProjects, None),
        Err(PolicyError::Forbidden {
            action: Action::ContainerListAllProjects
        })
    );
}

#[tokio::test]
async fn another_projects_member_gets_not_found() {
    let lab = Lab::connect().await;
    let auth = lab.service_auth(Duration::from_secs(30)).await;
    let demo = lab
        .issue_token("demo", "demopass", Some("demo"))
        .await
        .expect("demo logs in");
    let alt = lab
        .issue_token("alt_demo", "alt_demopass", Some("alt_demo"))
        .await
        .expect("alt_demo logs in");
    let demo = auth.authenticate(&demo).await.expect("a valid token");
    let alt = auth.authenticate(&alt).await.expect("a valid token");
    assert_ne!(demo.project_id, alt.project_id);
    for action in [
        Action::ContainerGet,
        Action::ContainerDelete,
        Action::ContainerExec,
    ] {
        assert_eq!(
            authorize(&alt, action, Some(&demo.project_id)),
            Err(PolicyError::NotFound),
            "{action}"
        );
    }
}

#[tokio::test]
async fn bogus_tokens_are_invalid() {
    let lab = Lab::connect().await;
    let auth = lab.service_auth(Duration::from_secs(30)).await;
    let real = lab
        .issue_token("demo", "demopass", Some("demo"))
        .await
        .expect("demo logs in");
    // One byte changed in a real fernet token: well-formed, but its HMAC fails.
    let mut tampered = real.into_bytes();
    let last = tampered.len() - 10;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ASCII stays ASCII");

    for token in [
        "not-a-token",
        "gAAAAABbogusbogusbogusbogus",
        tampered.as_str(),
    ] {
        let err = auth.authenticate(token).await.expect_err("a bogus token");
        assert!(matches!(err, AuthError::Invalid), "{token}: {err:?}");
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    }
}

#[tokio::test]
async fn revoked_token_is_refused_once_the_cache_ttl_has_passed() {
    let lab = Lab::connect().await;
    let ttl = Duration::from_secs(1);
    let auth = lab.service_auth(ttl).await;
    let token = lab
        .issue_token("demo", "demopass", Some("demo"))
        .await
        .expect("demo logs in");
    auth.authenticate(&token)
        .await
        .expect("valid before revocation");

    let response = lab
        .http
        .delete(format!("{}/auth/tokens", lab.auth_url))
        .header("x-auth-token", &lab.admin_token)
        .header("x-subject-token", &token)
        .send()
        .await
        .expect("revocation request");
    assert_eq!(response.status().as_u16(), 204, "revocation");

    // Without a cache, the revocation bites at once.
    let uncached = lab.service_auth(Duration::ZERO).await;
    let err = uncached.authenticate(&token).await.expect_err("revoked");
    assert!(matches!(err, AuthError::Invalid), "{err:?}");

    // With one, it bites within the TTL: the known window, bounded by cache_ttl.
    let revoked_at = std::time::Instant::now();
    loop {
        match auth.authenticate(&token).await {
            Err(AuthError::Invalid) => break,
            Ok(_) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
        assert!(
            revoked_at.elapsed() < REVOCATION_DEADLINE,
            "a revoked token was still accepted {:?} after revocation with a {ttl:?} cache",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        revoked_at.elapsed() <= ttl + CALL_TIMEOUT,
        "refused only after {:?}",
        revoked_at.elapsed()
    );
}

#[tokio::test]
async fn reader_only_user_may_read_but_not_write_and_unscoped_login_is_refused() {
    let lab = Lab::connect().await;
    let auth = lab.service_auth(Duration::from_secs(30)).await;
    let demo_project = lab.id_of("projects", "demo").await;
    let reader = TempUser::create(&lab, "reader", &demo_project).await;
    let token = lab
        .issue_token(&reader.name, &reader.password, Some("demo"))
        .await
        .expect("the reader logs in");

    let caller = auth
        .authenticate(&token)
        .await
        .expect("a valid reader token");

    assert_eq!(caller.user_id.as_str(), reader.id);
    assert_eq!(caller.project_id.as_str(), demo_project);
    assert_eq!(caller.roles, BTreeSet::from(["reader".to_owned()]));
    assert!(caller.is_read_only());
    let own = ProjectId::parse(&demo_project).expect("a Keystone project id");
    for read in [
        Action::ContainerList,
        Action::ContainerGet,
        Action::ContainerLogs,
    ] {
        assert_eq!(authorize(&caller, read, Some(&own)), Ok(()), "{read}");
    }
    for write in [
        Action::ContainerCreate,
        Action::ContainerUpdate,
        Action::ContainerDelete,
        Action::ContainerAction,
        Action::ContainerExec,
    ] {
        let err = authorize(&caller, write, Some(&own)).expect_err("a write by a reader");
        assert_eq!(err.kind(), ErrorKind::Forbidden, "{write}");
    }

    // The same user without a project scope (it has no default project).
    let unscoped = lab
        .issue_token(&reader.name, &reader.password, None)
        .await
        .expect("an unscoped login");
    let err = auth.authenticate(&unscoped).await.expect_err("unscoped");
    assert!(matches!(err, AuthError::Unscoped), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
}

#[tokio::test]
async fn admin_token_is_admin() {
    let lab = Lab::connect().await;
    let auth = lab.service_auth(Duration::from_secs(30)).await;
    let caller = auth
        .authenticate(&lab.admin_token)
        .await
        .expect("a valid admin token");
    assert!(caller.is_admin(), "{:?}", roles(&caller));
    assert_eq!(
        authorize(&caller, Action::ContainerListAllProjects, None),
        Ok(())
    );
    let elsewhere = ProjectId::parse("someone-elses-project").expect("a valid id");
    assert_eq!(
        authorize(&caller, Action::ContainerDelete, Some(&elsewhere)),
        Ok(())
    );
}

#[tokio::test]
async fn wrong_service_password_makes_keystone_unavailable_not_the_user_invalid() {
    let lab = Lab::connect().await;
    let auth = lab
        .keystone_auth(Duration::from_secs(30), "not-the-password")
        .await;
    let token = lab
        .issue_token("demo", "demopass", Some("demo"))
        .await
        .expect("demo logs in");
    let err = auth
        .authenticate(&token)
        .await
        .expect_err("bad service login");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert!(!format!("{err:?}").contains("not-the-password"));
}
