//! The lab's real Keystone (../shared/openstack-lab) for the tests that
//! drive Nest with OpenStack's own clients: project-scoped tokens, a
//! `nest-service` authenticating against it, and Nest registered in its
//! catalog as service type `container`.
//!
//! Each registration gets a region of its own, so that tests running at
//! the same time (or endpoints left by an interrupted run) never shadow
//! one another: a client finds its service by `OS_REGION_NAME`.

use serde_json::{Value, json};

use crate::service::{ServiceOptions, ServiceProcess};
use crate::unique;

const KEYSTONE: &str = "http://127.0.0.1:5000/v3";

/// Keystone's v3 URL: `OS_AUTH_URL`, or the lab's.
pub fn auth_url() -> String {
    std::env::var("OS_AUTH_URL").unwrap_or_else(|_| KEYSTONE.to_owned())
}

/// A token of `user` scoped to `project` (both in the Default domain), and
/// Keystone's token body.
pub async fn token(
    http: &reqwest::Client,
    user: &str,
    password: &str,
    project: &str,
) -> (String, Value) {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}
    }});
    let response = http
        .post(format!("{}/auth/tokens", auth_url()))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Keystone at {} is not reachable ({e}): run ../shared/openstack-lab/up.sh",
                auth_url()
            )
        });
    assert_eq!(response.status().as_u16(), 201, "password auth for {user}");
    let token = response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .expect("X-Subject-Token")
        .to_owned();
    (token, response.json().await.expect("token body"))
}

/// The `[auth]` section of a service that validates tokens with the lab's
/// Keystone, as its admin.
pub fn service_auth() -> String {
    format!(
        "mode = \"keystone\"\nauth_url = \"{}\"\nusername = \"admin\"\npassword = \"adminpass\"\nproject_name = \"admin\"\n",
        auth_url()
    )
}

/// Starts a `nest-service` that authenticates with Keystone.
pub async fn start_service() -> ServiceProcess {
    ServiceProcess::start_with(ServiceOptions {
        auth: Some(service_auth()),
        ..Default::default()
    })
    .await
}

/// A `container` endpoint in a region of its own; [`Catalog::remove`]
/// takes both away again.
pub struct Catalog {
    /// The region clients name in `OS_REGION_NAME`.
    pub region: String,
    endpoint: String,
    admin: String,
    http: reqwest::Client,
}

impl Catalog {
    /// Registers `url` (ending in `/v1`, as Zun's clients expect) as the
    /// public `container` endpoint of a new region.
    pub async fn register(url: &str) -> Self {
        let http = reqwest::Client::new();
        let (admin, _) = token(&http, "admin", "adminpass", "admin").await;
        let base = auth_url();
        let region = unique("nest-region");
        let made = http
            .post(format!("{base}/regions"))
            .header("X-Auth-Token", &admin)
            .json(&json!({"region": {"id": region}}))
            .send()
            .await
            .expect("create region");
        assert_eq!(made.status().as_u16(), 201, "create region");
        let services: Value = http
            .get(format!("{base}/services?type=container"))
            .header("X-Auth-Token", &admin)
            .send()
            .await
            .expect("list services")
            .json()
            .await
            .expect("services JSON");
        let service_id = match services["services"][0]["id"].as_str() {
            Some(id) => id.to_owned(),
            None => http
                .post(format!("{base}/services"))
                .header("X-Auth-Token", &admin)
                .json(&json!({"service": {"type": "container", "name": "nest", "enabled": true}}))
                .send()
                .await
                .expect("create service")
                .json::<Value>()
                .await
                .expect("service JSON")["service"]["id"]
                .as_str()
                .expect("service id")
                .to_owned(),
        };
        let endpoint: Value = http
            .post(format!("{base}/endpoints"))
            .header("X-Auth-Token", &admin)
            .json(&json!({"endpoint": {
                "service_id": service_id, "interface": "public", "url": url, "region_id": region
            }}))
            .send()
            .await
            .expect("create endpoint")
            .json()
            .await
            .expect("endpoint JSON");
        let endpoint = endpoint["endpoint"]["id"]
            .as_str()
            .expect("endpoint id")
            .to_owned();
        Self {
            region,
            endpoint,
            admin,
            http,
        }
    }

    /// The `OS_*` environment of a password login of `user` to `project`
    /// that finds this endpoint.
    pub fn env(&self, user: &str, password: &str, project: &str) -> Vec<(&'static str, String)> {
        vec![
            ("OS_AUTH_URL", auth_url()),
            ("OS_USERNAME", user.to_owned()),
            ("OS_PASSWORD", password.to_owned()),
            ("OS_PROJECT_NAME", project.to_owned()),
            ("OS_USER_DOMAIN_NAME", "Default".to_owned()),
            ("OS_PROJECT_DOMAIN_NAME", "Default".to_owned()),
            ("OS_REGION_NAME", self.region.clone()),
            ("OS_IDENTITY_API_VERSION", "3".to_owned()),
        ]
    }

    /// Removes the endpoint and its region.
    pub async fn remove(self) {
        let base = auth_url();
        let _ = self
            .http
            .delete(format!("{base}/endpoints/{}", self.endpoint))
            .header("X-Auth-Token", &self.admin)
            .send()
            .await;
        let _ = self
            .http
            .delete(format!("{base}/regions/{}", self.region))
            .header("X-Auth-Token", &self.admin)
            .send()
            .await;
    }
}
