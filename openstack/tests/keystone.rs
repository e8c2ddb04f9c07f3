//! Conformance of the [`Session`] against a real Keystone and Nova: the ones
//! `../shared/openstack-lab/up.sh` brings up (users admin/demo, compute in
//! `RegionOne`). Every test fails, loudly, when Keystone is not reachable;
//! none passes without it.
//!
//! `OS_AUTH_URL` (default `http://127.0.0.1:5000/v3`), `OS_USERNAME`,
//! `OS_PASSWORD` and `OS_PROJECT_NAME` (default admin/adminpass/admin) name
//! the Keystone and the user that acts as Nest's service user; the lab's
//! `demo` user (`demopass`) plays the tenant.

use std::time::Duration;

use nest_core::Secret;
use nest_core::duration::HumanDuration;
use nest_openstack::{
    Call, Interface, OpenStackError, Session, SessionConfig, SessionOptions, TenantAuthority,
    join_segments,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const DEFAULT_AUTH_URL: &str = "http://127.0.0.1:5000/v3";
/// Time any one call to the lab may take in these tests.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// The lab's region (README, "Env for the admin").
const REGION: &str = "RegionOne";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The lab's Keystone, and plain HTTP for setting things up.
struct Lab {
    auth_url: String,
    http: reqwest::Client,
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
        Self { auth_url, http }
    }

    /// The service user's session config.
    fn service_config(&self) -> SessionConfig {
        let mut config = SessionConfig::password(
            &self.auth_url,
            env_or("OS_USERNAME", "admin"),
            Secret::new(env_or("OS_PASSWORD", "adminpass")),
            env_or("OS_PROJECT_NAME", "admin"),
        );
        config.request_timeout = HumanDuration(CALL_TIMEOUT);
        config
    }

    async fn service_session(&self) -> Session {
        Session::new(&self.service_config(), SessionOptions::default())
            .await
            .expect("the config is valid")
    }

    /// The demo user's token (scoped to its project), id and project id.
    async fn demo(&self) -> Demo {
        let response = self
            .http
            .post(format!("{}/auth/tokens", self.auth_url))
            .json(&json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "demo", "domain": {"name": "Default"}, "password": "demopass"}}},
                "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}
            }}))
            .send()
            .await
            .expect("demo logs in");
        assert_eq!(response.status(), StatusCode::CREATED, "demo's login");
        let token = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .expect("a token")
            .to_owned();
        let body: Value = response.json().await.expect("a token body");
        let id = |pointer: &str| {
            body.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no {pointer} in {body}"))
                .to_owned()
        };
        Demo {
            user_id: id("/token/user/id"),
            project_id: id("/token/project/id"),
            token,
        }
    }

    /// A call as demo; returns the status and the JSON body.
    async fn as_demo(
        &self,
        demo: &Demo,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.auth_url))
            .header("x-auth-token", &demo.token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// The lab's `demo` user, logged in.
struct Demo {
    user_id: String,
    project_id: String,
    token: String,
}

/// Deletes a Keystone object when the test ends, even on panic.
struct Delete {
    url: String,
    token: String,
}

impl Drop for Delete {
    fn drop(&mut self) {
        let (url, token) = (self.url.clone(), self.token.clone());
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
            eprintln!("could not delete {}: {outcome:?}", self.url);
        }
    }
}

/// `GET <compute>/servers` through `session`: what a Nova client will do.
async fn list_servers(session: &Session) -> reqwest::Response {
    let nova = session
        .endpoint("compute", Interface::Public, Some(REGION))
        .await
        .expect("a compute endpoint");
    let servers = join_segments(&nova, &["servers"]);
    session
        .send(&Call::new("nova", "list servers"), |http| {
            http.get(servers.clone())
        })
        .await
        .expect("nova answers")
}

#[tokio::test]
async fn the_service_session_finds_nova_in_the_catalog_and_calls_it() {
    let lab = Lab::connect().await;
    let session = lab.service_session().await;

    let nova = session
        .endpoint("compute", Interface::Public, Some(REGION))
        .await
        .expect("a compute endpoint");
    assert!(nova.path().ends_with("/v2.1"), "{nova}");
    let flavors = join_segments(&nova, &["flavors"]);
    let response = session
        .send(&Call::new("nova", "list flavors"), |http| {
            http.get(flavors.clone())
        })
        .await
        .expect("nova answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().contains_key("x-openstack-request-id"),
        "nova names its answer"
    );
    let body: Value = response.json().await.expect("a flavor list");
    let names: Vec<&str> = body["flavors"]
        .as_array()
        .expect("flavors")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(names.contains(&"m1.tiny"), "{names:?}");

    let err = session
        .endpoint("compute", Interface::Public, Some("NoSuchRegion"))
        .await
        .expect_err("no such region");
    assert!(
        matches!(err, OpenStackError::EndpointNotFound { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_refused_login_names_keystones_request_id_and_never_the_password() {
    let lab = Lab::connect().await;
    let mut config = lab.service_config();
    config.password = Some(Secret::new("not-the-password".to_owned()));
    let session = Session::new(&config, SessionOptions::default())
        .await
        .expect("the config is valid");
    let err = session
        .endpoint("compute", Interface::Public, None)
        .await
        .expect_err("a wrong password");
    assert!(
        matches!(err, OpenStackError::CredentialsRejected { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("request req-"), "{err}");
    assert!(!format!("{err:?}").contains("not-the-password"));
}

#[tokio::test]
async fn a_tenants_application_credential_acts_in_its_project() {
    let lab = Lab::connect().await;
    let demo = lab.demo().await;
    let name = format!("nest-test-{}", uuid::Uuid::new_v4().simple());
    let (status, body) = lab
        .as_demo(
            &demo,
            reqwest::Method::POST,
            &format!("/users/{}/application_credentials", demo.user_id),
            json!({"application_credential": {"name": name}}),
        )
        .await;
    assert_eq!(status, 201, "create an application credential: {body}");
    let id = body["application_credential"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let secret = body["application_credential"]["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    let _cleanup = Delete {
        url: format!(
            "{}/users/{}/application_credentials/{id}",
            lab.auth_url, demo.user_id
        ),
        token: demo.token.clone(),
    };

    // As the tenant's own session config...
    let mut config =
        SessionConfig::application_credential(&lab.auth_url, &id, Secret::new(secret.clone()));
    config.request_timeout = HumanDuration(CALL_TIMEOUT);
    let own = Session::new(&config, SessionOptions::default())
        .await
        .expect("the config is valid");
    assert_eq!(list_servers(&own).await.status(), StatusCode::OK);

    // ...and as the authority a boot request carries.
    let service = lab.service_session().await;
    let tenant = service
        .for_tenant(&TenantAuthority::ApplicationCredential {
            id,
            secret: Secret::new(secret),
        })
        .expect("any session can use an application credential");
    assert_eq!(list_servers(&tenant).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_trust_lets_the_service_user_act_in_the_trustors_project() {
    let lab = Lab::connect().await;
    let demo = lab.demo().await;
    let service = lab.service_session().await;
    // The trustee's id: a Keystone call through the service's own session.
    let service_user = env_or("OS_USERNAME", "admin");
    let mut users = join_segments(service.identity_url(), &["users"]);
    users.query_pairs_mut().append_pair("name", &service_user);
    let response = service
        .send(&Call::new("keystone", "find the service user"), |http| {
            http.get(users.clone())
        })
        .await
        .expect("keystone answers");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("a user list");
    let trustee = body["users"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no user {service_user}: {body}"))
        .to_owned();

    let (status, body) = lab
        .as_demo(
            &demo,
            reqwest::Method::POST,
            "/OS-TRUST/trusts",
            json!({"trust": {
                "trustor_user_id": demo.user_id,
                "trustee_user_id": trustee,
                "project_id": demo.project_id,
                "roles": [{"name": "member"}],
                "impersonation": true,
            }}),
        )
        .await;
    assert_eq!(status, 201, "create a trust: {body}");
    let trust_id = body["trust"]["id"].as_str().expect("an id").to_owned();
    let _cleanup = Delete {
        url: format!("{}/OS-TRUST/trusts/{trust_id}", lab.auth_url),
        token: demo.token.clone(),
    };

    let tenant = service
        .for_tenant(&TenantAuthority::Trust { trust_id })
        .expect("a password session can use a trust");
    assert_eq!(list_servers(&tenant).await.status(), StatusCode::OK);
}
