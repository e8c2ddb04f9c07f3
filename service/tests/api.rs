//! The Zun-compatible HTTP API, driven through the real router over the
//! real application (store over SQLite, scheduler, reconciler, `App`),
//! and, for the console websockets, a real listener on 127.0.0.1:0.
//!
//! Fakes stand only at the true seams: the authenticator ([`FakeAuth`],
//! Keystone's place), the agents and the instance driver (both from
//! [`TestService`]). Ownership, status changes and recorded actions are
//! the application's own; what the agents answer (processes, usage, logs,
//! echoed console input) is [`FakeAgents`]' canned behaviour.
//!
//! [`FakeAgents`]: nest_service::testing::FakeAgents

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use nest_core::ErrorKind;
use nest_core::testing::eventually;
use nest_service::api::{ApiConfig, ApiMetrics, ApiState, router};
use nest_service::auth::{AuthError, Authenticate, Caller};
use nest_service::domain::{ContainerId, ProjectId, RequestId, TtySize, UserId};
use nest_service::testing::{
    AgentCommand, FAKE_NETWORK, FAKE_USAGE, RecordedResize, TOP_TITLES, TestService,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower::ServiceExt as _;

const ALICE: &str = "token-alice";
const BOB: &str = "token-bob";
const ADMIN: &str = "token-admin";
const KEYSTONE_DOWN: &str = "token-keystone-down";
const HOST: &str = "nest.test:9517";
const KEYSTONE_URI: &str = "http://keystone.test:5000";
/// Longest wait for the background work (placement, boot, create, delete).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

// === fake authenticator ===

struct FakeAuth;

fn caller(user: &str, project: &str, role: &str) -> Caller {
    Caller {
        user_id: UserId::parse(user).expect("valid user"),
        project_id: ProjectId::parse(project).expect("valid project"),
        roles: BTreeSet::from([role.to_owned()]),
    }
}

impl Authenticate for FakeAuth {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Caller, AuthError>> {
        Box::pin(async move {
            match token {
                ALICE => Ok(caller("alice", "project-a", "member")),
                BOB => Ok(caller("bob", "project-b", "member")),
                ADMIN => Ok(caller("root", "project-admin", "admin")),
                KEYSTONE_DOWN => Err(AuthError::Unavailable("connection refused".into())),
                _ => Err(AuthError::Invalid),
            }
        })
    }
}

// === harness ===

/// The real service and the router over it; stopping it (or dropping it)
/// stops the service.
struct Harness {
    app: Router,
    svc: TestService,
}

async fn harness() -> Harness {
    let svc = TestService::start()
        .await
        .unwrap_or_else(|e| panic!("the test service starts: {e:#?}"));
    let config = ApiConfig {
        public_url: None,
        keystone_uri: Some(KEYSTONE_URI.into()),
        agent_binary: None,
    };
    let state = ApiState::new(
        svc.app().clone(),
        Arc::new(FakeAuth),
        config,
        ApiMetrics::new(),
    );
    Harness {
        app: router(state),
        svc,
    }
}

impl Harness {
    async fn stop(self) {
        self.svc.stop().await;
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a Zun error body and returns its single error.
    fn zun_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {:?}", self.body);
        assert_eq!(self.header("content-type"), Some("application/json"));
        let body = self.json();
        let shared: nest_api_types::zun::ErrorBody =
            serde_json::from_value(body.clone()).expect("the body is an ErrorBody");
        assert_eq!(serde_json::to_value(&shared).ok(), Some(body.clone()));
        let errors = body["errors"].as_array().expect("errors array");
        assert_eq!(errors.len(), 1);
        let e = errors[0].clone();
        assert_eq!(e["code"], code, "{e}");
        assert_eq!(e["status"], status);
        assert_eq!(
            e["request_id"].as_str(),
            self.header("x-openstack-request-id")
        );
        assert!(e["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(e["detail"].as_str().is_some_and(|t| !t.is_empty()));
        assert_eq!(e["links"], json!([]));
        e
    }
}

struct Call {
    builder: axum::http::request::Builder,
    body: Body,
}

fn call(method: &str, uri: &str) -> Call {
    Call {
        builder: Request::builder()
            .method(method)
            .uri(uri)
            .header("host", HOST),
        body: Body::empty(),
    }
}

impl Call {
    fn token(mut self, token: &str) -> Self {
        self.builder = self.builder.header("x-auth-token", token);
        self
    }
    fn version(mut self, version: &str) -> Self {
        self.builder = self.builder.header("openstack-api-version", version);
        self
    }
    fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }
    fn json(mut self, body: &Value) -> Self {
        self.builder = self.builder.header("content-type", "application/json");
        self.body = Body::from(body.to_string());
        self
    }
    fn raw(mut self, content_type: &str, body: &str) -> Self {
        self.builder = self.builder.header("content-type", content_type);
        self.body = Body::from(body.to_owned());
        self
    }
    async fn send(self, app: &Router) -> Reply {
        let request = self.builder.body(self.body).expect("valid request");
        let response = app
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("body reads");
        let reply = Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        let request_id = reply.header("x-openstack-request-id").unwrap_or_default();
        assert!(
            RequestId::from_client(request_id).is_some(),
            "request id on every response: {:?}",
            reply.headers
        );
        reply
    }
}

fn zunclient_body(name: &str) -> Value {
    json!({
        "image": "cirros:latest", "name": name, "command": ["sleep", "10000"],
        "cpu": 0.1, "memory": "100", "environment": {"A": "1"}, "labels": {},
        "hints": {}, "nets": [], "mounts": [], "auto_remove": false,
        "image_driver": "docker", "restart_policy": {"Name": "no"}, "workdir": "/",
        "interactive": false,
    })
}

async fn create(h: &Harness, token: &str, body: &Value) -> Value {
    let reply = call("POST", "/v1/containers")
        .token(token)
        .version("container 1.40")
        .json(body)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    reply.json()
}

async fn start(h: &Harness, token: &str, uuid: &str) {
    let reply = call("POST", &format!("/v1/containers/{uuid}/start"))
        .token(token)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
}

/// `GET /v1/containers/{uuid}` as `token`.
async fn show(h: &Harness, token: &str, uuid: &str) -> Reply {
    call("GET", &format!("/v1/containers/{uuid}"))
        .token(token)
        .version("container 1.40")
        .send(&h.app)
        .await
}

/// Polls the container (as its owner `token`) until its status, once the
/// agents' events so far are applied, is `status`; returns what the API
/// shows.
async fn settled(h: &Harness, token: &str, uuid: &str, status: &str) -> Value {
    eventually(
        SETTLE_TIMEOUT,
        &format!("container {uuid} {status}"),
        || async {
            h.svc.events_applied().await;
            let reply = show(h, token, uuid).await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            let body = reply.json();
            (body["status"] == status).then_some(body)
        },
    )
    .await
}

/// Creates a container as `token` and waits until it is `status`.
async fn created(h: &Harness, token: &str, body: &Value, status: &str) -> Value {
    let c = create(h, token, body).await;
    let uuid = c["uuid"].as_str().expect("uuid").to_owned();
    settled(h, token, &uuid, status).await
}

fn uuid_of(c: &Value) -> String {
    c["uuid"].as_str().expect("uuid").to_owned()
}

fn container_id(uuid: &str) -> ContainerId {
    ContainerId::parse(uuid).expect("a container uuid")
}

/// The containers `token` lists.
async fn listed(h: &Harness, token: &str) -> Vec<Value> {
    let reply = call("GET", "/v1/containers")
        .token(token)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json()["containers"]
        .as_array()
        .expect("a list")
        .clone()
}

/// Whether `s` is a time as Zun shows one:
/// `YYYY-MM-DD HH:MM:SS.ffffff+00:00`.
fn is_zun_time(s: &str) -> bool {
    let digits = |range: std::ops::Range<usize>| {
        s.get(range)
            .is_some_and(|part| part.chars().all(|c| c.is_ascii_digit()))
    };
    s.len() == 32
        && digits(0..4)
        && &s[4..5] == "-"
        && digits(5..7)
        && &s[7..8] == "-"
        && digits(8..10)
        && &s[10..11] == " "
        && digits(11..13)
        && &s[13..14] == ":"
        && digits(14..16)
        && &s[16..17] == ":"
        && digits(17..19)
        && &s[19..20] == "."
        && digits(20..26)
        && &s[26..] == "+00:00"
}

// === tests ===

#[tokio::test]
async fn version_documents_are_public_and_shaped_like_zuns() {
    let h = harness().await;
    let root = call("GET", "/").send(&h.app).await;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(
        root.header("openstack-api-version"),
        None,
        "no microversion headers on /"
    );
    let body = root.json();
    assert_eq!(body["name"], "OpenStack Zun API");
    let v = &body["versions"][0];
    assert_eq!(v["id"], "v1");
    assert_eq!(v["status"], "CURRENT");
    assert_eq!(
        (v["min_version"].as_str(), v["max_version"].as_str()),
        (Some("1.1"), Some("1.40"))
    );
    assert_eq!(
        v["links"],
        json!([{"href": "http://nest.test:9517/v1/", "rel": "self"}])
    );
    assert_eq!(body["default_version"], *v);

    let v1 = call("GET", "/v1/").send(&h.app).await;
    assert_eq!(v1.status, StatusCode::OK);
    assert_eq!(v1.header("openstack-api-version"), Some("container 1.1"));
    let body = v1.json();
    assert_eq!(body["id"], "v1");
    assert_eq!(
        body["media_types"][0]["type"],
        "application/vnd.openstack.zun.v1+json"
    );
    assert_eq!(
        body["containers"],
        json!([{"href": "http://nest.test:9517/v1/containers/", "rel": "self"},
               {"href": "http://nest.test:9517/containers/", "rel": "bookmark"}])
    );
    assert_eq!(body["links"][1]["rel"], "describedby");
    h.stop().await;
}

#[tokio::test]
async fn missing_or_invalid_token_gets_keystones_401_without_microversion_headers() {
    let h = harness().await;
    for request in [
        call("GET", "/v1/containers"),
        call("GET", "/v1/containers").token("wrong"),
        call("GET", "/v1/nope"),
    ] {
        let reply = request.send(&h.app).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Keystone uri=\"http://keystone.test:5000\"")
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("openstack-api-version"), None);
        assert_eq!(
            reply.json(),
            json!({"error": {"code": 401, "title": "Unauthorized",
                             "message": "The request you have made requires authentication."}})
        );
    }
    let reply = call("GET", "/v1/containers")
        .token(KEYSTONE_DOWN)
        .send(&h.app)
        .await;
    let e = reply.zun_error(503, "container.service-unavailable");
    assert!(
        !e["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("connection refused"),
        "cause stays in the log"
    );
    h.stop().await;
}

#[tokio::test]
async fn request_id_is_echoed_and_on_errors() {
    let h = harness().await;
    let mine = "req-11111111-2222-3333-4444-555555555555";
    let reply = call("GET", "/v1/containers")
        .token(ALICE)
        .header("x-openstack-request-id", mine)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"containers": [], "next": null}));
    assert_eq!(reply.header("x-openstack-request-id"), Some(mine));
    let reply = call("GET", "/v1/containers")
        .token(ALICE)
        .header("x-openstack-request-id", "req-not-a-uuid")
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_ne!(
        reply.header("x-openstack-request-id"),
        Some("req-not-a-uuid"),
        "ill-shaped ids are replaced"
    );
    // 404 of an unknown route and 405 of a wrong method, both in Zun's format.
    let reply = call("GET", "/v1/nothing/here")
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(404, "container.not-found");
    let reply = call("PUT", "/v1/containers")
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(405, "container.method-not-allowed");
    assert!(listed(&h, ALICE).await.is_empty(), "nothing was created");
    h.stop().await;
}

#[tokio::test]
async fn microversions_negotiate_and_echo() {
    let h = harness().await;
    let get = |v: Option<&'static str>| {
        let c = call("GET", "/v1/containers").token(ALICE);
        match v {
            Some(v) => c.version(v),
            None => c,
        }
    };
    let reply = get(None).send(&h.app).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["containers"], json!([]));
    assert_eq!(reply.header("openstack-api-version"), Some("container 1.1"));
    assert_eq!(
        reply.header("openstack-api-minimum-version"),
        Some("container 1.1")
    );
    assert_eq!(
        reply.header("openstack-api-maximum-version"),
        Some("container 1.40")
    );
    assert_eq!(reply.header("vary"), Some("OpenStack-API-Version"));
    let reply = get(Some("container 1.12")).send(&h.app).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("openstack-api-version"),
        Some("container 1.12")
    );
    let reply = get(Some("container latest")).send(&h.app).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("openstack-api-version"),
        Some("container 1.40")
    );

    let reply = get(Some("container 1.41")).send(&h.app).await;
    let e = reply.zun_error(406, "container.not-acceptable");
    assert!(
        e["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("[container 1.1, container 1.40]")
    );
    assert_eq!(
        reply.header("openstack-api-version"),
        Some("container 1.41")
    );
    assert_eq!(
        reply.header("openstack-api-maximum-version"),
        Some("container 1.40")
    );
    for bad in ["compute 2.1", "container 2.0", "container one"] {
        let reply = get(Some(bad)).send(&h.app).await;
        reply.zun_error(406, "container.not-acceptable");
        assert_eq!(
            reply.header("openstack-api-minimum-version"),
            Some("container 1.1")
        );
    }
    // A route that appeared in 1.4 is refused below it; errors keep the headers.
    let reply = call("GET", "/v1/hosts")
        .token(ALICE)
        .version("container 1.3")
        .send(&h.app)
        .await;
    reply.zun_error(406, "container.not-acceptable");
    assert_eq!(reply.header("openstack-api-version"), Some("container 1.3"));
    h.stop().await;
}

#[tokio::test]
async fn create_show_and_list_paginate_with_next() {
    let h = harness().await;
    let mut body = zunclient_body("web-1");
    body["ports"] = json!(["pub:222:22", "8080:80/udp"]);
    let reply = call("POST", "/v1/containers?run=true")
        .token(ALICE)
        .version("container 1.40")
        .json(&body)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let c = reply.json();
    let uuid = uuid_of(&c);
    assert_eq!(
        reply.header("location"),
        Some(format!("http://nest.test:9517/v1/containers/{uuid}").as_str())
    );
    assert_eq!(c["status"], "Creating");
    assert_eq!(c["status_reason"], "waiting for placement");
    assert_eq!(c["host"], Value::Null, "not placed yet");
    assert_eq!(c["addresses"], json!({}));
    assert_eq!(c["memory"], "100");
    assert_eq!(c["cpu"], 0.1);
    assert_eq!(c["command"], json!(["sleep", "10000"]));
    assert_eq!(
        c["restart_policy"],
        json!({"Name": "no", "MaximumRetryCount": "0"})
    );
    assert_eq!(c["project_id"], "project-a");
    assert_eq!(c["ports"], json!([22, 80]));
    assert_eq!(c["port_bindings"], json!(["pub:222:22/tcp", "8080:80/udp"]));
    let created_at = c["created_at"].as_str().unwrap_or_default();
    assert!(is_zun_time(created_at), "{c}");
    assert_eq!(
        c["links"],
        json!([{"href": format!("http://nest.test:9517/v1/containers/{uuid}"), "rel": "self"},
               {"href": format!("http://nest.test:9517/containers/{uuid}"), "rel": "bookmark"}])
    );
    // What osc will read: the shared type holds the whole body, no more.
    let view: nest_api_types::zun::ContainerView =
        serde_json::from_value(c.clone()).expect("the body is a ContainerView");
    assert_eq!(view.uuid, uuid);
    assert_eq!(serde_json::to_value(&view).ok(), Some(c.clone()));

    // Once placed and started, it shows the instance FakeDriver booted
    // and that instance's address.
    let running = settled(&h, ALICE, &uuid, "Running").await;
    let instances = h.svc.driver().instances();
    assert_eq!(instances.len(), 1, "{instances:?}");
    let instance = &instances[0];
    let address = instance.addresses[FAKE_NETWORK].to_string();
    assert_eq!(running["host"], instance.id.as_str());
    assert_eq!(
        running["addresses"][FAKE_NETWORK][0]["addr"],
        address.as_str()
    );
    assert_eq!(running["addresses"][FAKE_NETWORK][0]["version"], 4);
    assert_eq!(
        running["published_ports"],
        json!([format!("{address}:8080/udp")])
    );
    assert_eq!(running["created_at"], created_at);
    let view: nest_api_types::zun::ContainerView =
        serde_json::from_value(running.clone()).expect("the body is a ContainerView");
    assert_eq!(serde_json::to_value(&view).ok(), Some(running.clone()));

    for ident in [uuid.as_str(), "web-1"] {
        let reply = call("GET", &format!("/v1/containers/{ident}?all_projects=False"))
            .token(ALICE)
            .send(&h.app)
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["uuid"], uuid.as_str());
    }
    let web2 = create(&h, ALICE, &zunclient_body("web-2")).await;
    let web3 = create(&h, ALICE, &zunclient_body("web-3")).await;
    create(&h, BOB, &zunclient_body("other")).await;
    let ids = [uuid.clone(), uuid_of(&web2), uuid_of(&web3)];

    // The default order is the order of creation.
    let reply = call("GET", "/v1/containers?limit=2")
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let page = reply.json();
    let names: Vec<&str> = page["containers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["web-1", "web-2"]);
    assert_eq!(page["containers"][1]["uuid"], ids[1].as_str());
    let next = page["next"].as_str().expect("a full page has next");
    assert!(
        next.starts_with("http://nest.test:9517/v1/containers?limit=2&sort_key=id&sort_dir=asc"),
        "{next}"
    );
    assert!(next.ends_with(&format!("marker={}", ids[1])), "{next}");
    let path = next.trim_start_matches("http://nest.test:9517");
    let reply = call("GET", path).token(ALICE).send(&h.app).await;
    assert_eq!(reply.status, StatusCode::OK);
    let page = reply.json();
    assert_eq!(page["containers"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["containers"][0]["name"], "web-3");
    assert_eq!(page["containers"][0]["uuid"], ids[2].as_str());
    assert_eq!(page["next"], Value::Null);

    // Filters, sorting, and zunclient's spelling of paths.
    let reply = call("GET", "/containers/?name=web-2&sort_key=name&sort_dir=desc")
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let page = reply.json();
    assert_eq!(page["containers"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["containers"][0]["name"], "web-2");
    let reply = call("GET", "/v1/containers?sort_key=name&sort_dir=desc")
        .token(ALICE)
        .send(&h.app)
        .await;
    let names: Vec<String> = reply.json()["containers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names, ["web-3", "web-2", "web-1"]);
    let reply = call("GET", "/v1/containers?all_projects=1")
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(403, "container.policy-not-authorized");
    let reply = call("GET", "/v1/containers?all_projects=1")
        .token(ADMIN)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["containers"].as_array().map(Vec::len), Some(4));
    h.stop().await;
}

#[tokio::test]
async fn bad_list_parameters_are_refused() {
    let h = harness().await;
    let mine = created(&h, ALICE, &zunclient_body("mine"), "Created").await;
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("sort_dir=up", "sort_dir"),
        ("sort_key=secret", "sort_key"),
        ("marker=nope", "marker"),
    ] {
        let reply = call("GET", &format!("/v1/containers?{query}"))
            .token(ALICE)
            .send(&h.app)
            .await;
        let e = reply.zun_error(400, "container.invalid-parameter-value");
        assert!(
            e["title"].as_str().unwrap_or_default().contains(param),
            "{e}"
        );
    }
    let reply = call("GET", "/v1/containers?bogus=1&also=2")
        .token(ALICE)
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.invalid-parameter-value");
    assert_eq!(e["title"], "unknown parameters: also, bogus");
    let marker = ContainerId::generate();
    let reply = call("GET", &format!("/v1/containers?marker={marker}"))
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(404, "container.container-not-found");
    // Another project's container is no marker either.
    let theirs = create(&h, BOB, &zunclient_body("theirs")).await;
    let reply = call(
        "GET",
        &format!("/v1/containers?marker={}", uuid_of(&theirs)),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    reply.zun_error(404, "container.container-not-found");
    let listed = listed(&h, ALICE).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["uuid"], mine["uuid"]);
    h.stop().await;
}

#[tokio::test]
async fn unknown_field_is_rejected_in_zun_format_and_nothing_is_created() {
    let h = harness().await;
    let mut body = zunclient_body("x1");
    body["foo"] = json!(1);
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.40")
        .json(&body)
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.schema-validation-error");
    assert_eq!(
        e["title"],
        "additional properties are not allowed ('foo' was unexpected)"
    );
    assert!(listed(&h, ALICE).await.is_empty());

    let reply = call("POST", "/v1/containers?start=1")
        .token(ALICE)
        .json(&zunclient_body("x2"))
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.invalid-parameter-value");
    assert!(listed(&h, ALICE).await.is_empty());
    assert!(
        h.svc
            .agents()
            .calls()
            .iter()
            .all(|c| c.command == AgentCommand::Watch)
    );
    assert!(h.svc.driver().boots().is_empty(), "nothing was booted");
    h.stop().await;
}

#[tokio::test]
async fn malformed_bodies_and_media_types_are_refused() {
    let h = harness().await;
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .raw("application/json", "{\"image\": ")
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.invalid-parameter-value");
    assert!(
        e["detail"].as_str().unwrap_or_default().contains("EOF"),
        "{e}"
    );
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .raw("text/plain", "{}")
        .send(&h.app)
        .await;
    reply.zun_error(415, "container.unsupported-media-type");
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .raw("application/json", "[1]")
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.schema-validation-error");
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .json(&json!({"name": "abc"}))
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.schema-validation-error");
    assert!(
        e["title"]
            .as_str()
            .unwrap_or_default()
            .contains("'image' is a required property")
    );
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.40")
        .json(&json!({"image": "busybox", "cpu": "lots"}))
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.schema-validation-error");
    assert!(e["title"].as_str().unwrap_or_default().contains("'cpu'"));
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.40")
        .json(&json!({"image": "busybox", "environment": {"A": 1}}))
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.schema-validation-error");
    assert!(
        e["title"]
            .as_str()
            .unwrap_or_default()
            .contains("environment"),
        "{e}"
    );
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.39")
        .json(&json!({"image": "busybox", "entrypoint": ["sh"]}))
        .send(&h.app)
        .await;
    let e = reply.zun_error(400, "container.invalid-param-in-version");
    assert!(e["title"].as_str().unwrap_or_default().contains("1.40"));
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.40")
        .json(&json!({"image": "busybox", "mounts": [{"source": "a", "destination": "/b"}]}))
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.unsupported-parameter");
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.40")
        .json(&json!({"image": "busybox", "privileged": false}))
        .send(&h.app)
        .await;
    reply.zun_error(403, "container.policy-not-authorized");
    assert!(listed(&h, ALICE).await.is_empty());
    assert!(h.svc.driver().boots().is_empty(), "nothing was booted");
    h.stop().await;
}

#[tokio::test]
async fn agent_refusals_and_unknown_containers_render_in_zun_format() {
    let h = harness().await;
    let c = created(&h, ALICE, &zunclient_body("flaky"), "Created").await;
    let uuid = uuid_of(&c);
    let before = h
        .svc
        .store()
        .get_container(container_id(&uuid))
        .await
        .expect("recorded");

    h.svc
        .agents()
        .fail_next(ErrorKind::Unavailable, "the engine is restarting");
    let reply = call("POST", &format!("/v1/containers/{uuid}/start"))
        .token(ALICE)
        .version("container 1.40")
        .send(&h.app)
        .await;
    let e = reply.zun_error(503, "container.service-unavailable");
    assert_eq!(
        reply.header("openstack-api-version"),
        Some("container 1.40"),
        "microversion headers on errors"
    );
    let request_id = reply.header("x-openstack-request-id").unwrap_or_default();
    let last = h
        .svc
        .agents()
        .calls_for(container_id(&uuid))
        .pop()
        .expect("the start reached the agent");
    assert_eq!(last.request_id.as_str(), request_id);
    assert!(matches!(last.command, AgentCommand::Act { .. }), "{last:?}");
    assert!(e["title"].as_str().is_some_and(|t| !t.is_empty()), "{e}");
    let after = h
        .svc
        .store()
        .get_container(container_id(&uuid))
        .await
        .expect("recorded");
    assert_eq!(
        (after.status, after.desired_running, after.docker_id),
        (before.status, before.desired_running, before.docker_id),
        "the refused start changed nothing"
    );

    let unknown = ContainerId::generate();
    let reply = show(&h, ALICE, &unknown.to_string()).await;
    reply.zun_error(404, "container.container-not-found");
    let reply = call("POST", &format!("/v1/containers/{unknown}/start"))
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(404, "container.container-not-found");
    assert!(h.svc.agents().calls_for(unknown).is_empty());
    h.stop().await;
}

#[tokio::test]
async fn another_projects_container_is_not_found_on_every_route() {
    let h = harness().await;
    let body = json!({"image": "busybox", "name": "secret", "interactive": true,
                      "command": ["sleep", "10000"]});
    let reply = call("POST", "/v1/containers?run=true")
        .token(ALICE)
        .version("container 1.40")
        .json(&body)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let uuid = uuid_of(&reply.json());
    let id = container_id(&uuid);
    let shown = settled(&h, ALICE, &uuid, "Running").await;
    let record = h.svc.store().get_container(id).await.expect("recorded");
    let actions = h.svc.store().list_actions(id).await.expect("actions");
    let calls = h.svc.agents().calls_for(id);
    let request_id = "req-00000000-0000-0000-0000-000000000000";
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", String::new(), None),
        ("PATCH", String::new(), Some(json!({"cpu": 2}))),
        ("DELETE", "?force=True".into(), None),
        ("DELETE", String::new(), None),
        ("POST", "/start".into(), None),
        ("POST", "/stop?timeout=10".into(), None),
        ("POST", "/reboot?timeout=10".into(), None),
        ("POST", "/pause".into(), None),
        ("POST", "/unpause".into(), None),
        ("POST", "/kill?signal=None".into(), None),
        ("POST", "/execute?command=%22ls%22".into(), None),
        (
            "POST",
            format!("/execute_resize?exec_id={}&w=80&h=24", "a".repeat(64)),
            None,
        ),
        (
            "GET",
            "/logs?stdout=True&stderr=True&timestamps=False&tail=all".into(),
            None,
        ),
        ("GET", "/logs?follow=true".into(), None),
        ("GET", "/attach".into(), None),
        ("POST", "/resize?w=80&h=24".into(), None),
        ("GET", "/top?ps_args=None".into(), None),
        ("GET", "/stats".into(), None),
        ("GET", "/network_list".into(), None),
        ("GET", "/container_actions".into(), None),
        ("GET", format!("/container_actions/{request_id}"), None),
    ];
    let mut strangers = Vec::new();
    for ident in [uuid.as_str(), "secret"] {
        for (method, suffix, body) in &routes {
            let mut request = call(method, &format!("/v1/containers/{ident}{suffix}"))
                .token(BOB)
                .version("container 1.40");
            if let Some(body) = body {
                request = request.json(body);
            }
            let reply = request.send(&h.app).await;
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{method} {suffix}: {:?}",
                reply.body
            );
            reply.zun_error(404, "container.container-not-found");
            strangers.push(
                reply
                    .header("x-openstack-request-id")
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    // Nothing changed: the record, its actions, the engine, and what the
    // agent was asked (no call under any of the stranger's requests).
    assert_eq!(h.svc.store().get_container(id).await.ok(), Some(record));
    assert_eq!(h.svc.store().list_actions(id).await.ok(), Some(actions));
    assert_eq!(h.svc.agents().calls_for(id), calls);
    assert!(
        h.svc
            .agents()
            .calls()
            .iter()
            .all(|c| !strangers.contains(&c.request_id.as_str().to_owned()))
    );
    let engine = h.svc.agents().container(id).expect("still on its agent");
    assert_eq!(engine.state.status.to_string(), "Running");
    assert!(h.svc.agents().resizes().is_empty());
    // The owner still sees it as it was; an admin resolves it across
    // projects.
    let reply = show(&h, ALICE, &uuid).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), shown);
    let reply = show(&h, ADMIN, &uuid).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["uuid"], uuid.as_str());
    h.stop().await;
}

#[tokio::test]
async fn lifecycle_actions_answer_202_null_and_are_recorded() {
    let h = harness().await;
    let c = created(&h, ALICE, &zunclient_body("life"), "Created").await;
    let uuid = uuid_of(&c);
    let id = container_id(&uuid);
    let mut request_ids = Vec::new();
    for (path, status) in [
        ("start", "Running"),
        ("pause", "Paused"),
        ("unpause", "Running"),
        ("kill?signal=None", "Stopped"),
        ("start", "Running"),
        ("stop?timeout=10", "Stopped"),
    ] {
        // Action POSTs as zunclient sends them: JSON content type, no body.
        let reply = call("POST", &format!("/v1/containers/{uuid}/{path}"))
            .token(ALICE)
            .header("content-type", "application/json")
            .send(&h.app)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "{path}: {:?}",
            reply.body
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(&reply.body[..], b"null");
        let request_id = reply
            .header("x-openstack-request-id")
            .unwrap_or_default()
            .to_owned();
        let last = h.svc.agents().calls_for(id).pop().expect("a call");
        assert_eq!(last.request_id.as_str(), request_id, "{path}");
        assert!(matches!(last.command, AgentCommand::Act { .. }), "{last:?}");
        request_ids.push(request_id);
        // The engine's event of the action reaches the reconciler too;
        // the next action starts once it is applied.
        h.svc.events_applied().await;
        let shown = show(&h, ALICE, &uuid).await;
        assert_eq!(shown.status, StatusCode::OK);
        assert_eq!(shown.json()["status"], status, "after {path}");
        let engine = h.svc.agents().container(id).expect("on its agent");
        assert_eq!(engine.state.status.to_string(), status, "after {path}");
    }
    // Wrong state is a 409, and the status is unchanged.
    let calls = h.svc.agents().calls_for(id).len();
    let reply = call("POST", &format!("/v1/containers/{uuid}/pause"))
        .token(ALICE)
        .send(&h.app)
        .await;
    let e = reply.zun_error(409, "container.invalid-state-exception");
    assert!(
        e["title"]
            .as_str()
            .unwrap_or_default()
            .contains("in Stopped state"),
        "{e}"
    );
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/kill?signal=NOTASIG!"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    reply.zun_error(400, "container.invalid-parameter-value");
    assert_eq!(
        settled(&h, ALICE, &uuid, "Stopped").await["uuid"],
        uuid.as_str()
    );
    assert_eq!(h.svc.agents().calls_for(id).len(), calls, "no agent call");

    let reply = call("GET", &format!("/v1/containers/{uuid}/container_actions"))
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let actions = reply.json();
    let list = actions["containerActions"].as_array().expect("list");
    let kinds: Vec<&str> = list.iter().filter_map(|a| a["action"].as_str()).collect();
    // Newest first, as Zun lists them.
    assert_eq!(
        kinds,
        [
            "stop", "start", "kill", "unpause", "pause", "start", "create"
        ]
    );
    let first_start = &list[5];
    assert_eq!(first_start["request_id"], request_ids[0].as_str());
    assert_eq!(first_start["project_id"], "project-a");
    assert_eq!(first_start["user_id"], "alice");
    assert_eq!(
        first_start["start_time"].as_str().map(str::len),
        Some(26),
        "YYYY-MM-DDTHH:MM:SS.ffffff"
    );
    assert!(first_start.get("events").is_none());
    let reply = call(
        "GET",
        &format!("/v1/containers/{uuid}/container_actions/{}", request_ids[0]),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let one = reply.json();
    assert_eq!(one["action"], "start");
    assert_eq!(one["request_id"], request_ids[0].as_str());
    assert!(
        one["events"]
            .as_array()
            .is_some_and(|events| events.iter().all(|e| e.get("traceback").is_none())),
        "tracebacks are for admins: {one}"
    );
    let reply = call(
        "GET",
        &format!("/v1/containers/{uuid}/container_actions/{}", request_ids[0]),
    )
    .token(ADMIN)
    .send(&h.app)
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["action"], "start");
    let missing = "req-99999999-0000-0000-0000-000000000000";
    let reply = call(
        "GET",
        &format!("/v1/containers/{uuid}/container_actions/{missing}"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    reply.zun_error(404, "container.resource-not-found");

    // PATCH, then delete (octet-stream, as zunclient sends it) and 404 after.
    let reply = call("PATCH", &format!("/v1/containers/{uuid}"))
        .token(ALICE)
        .version("container 1.40")
        .json(&json!({"cpu": 0.2, "memory": "200", "name": "renamed"}))
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let patched = reply.json();
    assert_eq!(
        (
            patched["cpu"].clone(),
            patched["memory"].clone(),
            patched["name"].clone()
        ),
        (json!(0.2), json!("200"), json!("renamed"))
    );
    let engine = h.svc.agents().container(id).expect("on its agent");
    assert_eq!(
        (engine.resources.cpu, engine.resources.memory_mib),
        (0.2, 200),
        "the new limits reached the engine"
    );
    let reply = call("PATCH", &format!("/v1/containers/{uuid}"))
        .token(ALICE)
        .version("container 1.13")
        .json(&json!({"name": "again"}))
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.invalid-param-in-version");
    let reply = call("PATCH", &format!("/v1/containers/{uuid}"))
        .token(ALICE)
        .json(&json!({"image": "other"}))
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.schema-validation-error");
    let shown = show(&h, ALICE, &uuid).await.json();
    assert_eq!(
        (shown["name"].clone(), shown["image"].clone()),
        (json!("renamed"), json!("cirros:latest")),
        "the refused patches changed nothing"
    );
    let reply = call(
        "DELETE",
        &format!("/v1/containers/{uuid}?force=False&stop=False&all_projects=False"),
    )
    .token(ALICE)
    .version("container 1.40")
    .header("content-type", "application/octet-stream")
    .send(&h.app)
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.body.is_empty());
    eventually(SETTLE_TIMEOUT, "the container to go", || async {
        let reply = show(&h, ALICE, &uuid).await;
        (reply.status == StatusCode::NOT_FOUND).then_some(reply)
    })
    .await
    .zun_error(404, "container.container-not-found");
    assert_eq!(h.svc.agents().container(id), None, "gone from its engine");
    let reply = call("DELETE", &format!("/v1/containers/{uuid}?stop=True"))
        .token(ALICE)
        .version("container 1.11")
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.invalid-param-in-version");
    h.stop().await;
}

#[tokio::test]
async fn ambiguous_names_conflict() {
    let h = harness().await;
    let first = create(&h, ALICE, &zunclient_body("twin")).await;
    // Names are unique per project, so the second "twin" is refused
    // rather than left to make the name ambiguous.
    let reply = call("POST", "/v1/containers")
        .token(ALICE)
        .version("container 1.40")
        .json(&zunclient_body("twin"))
        .send(&h.app)
        .await;
    reply.zun_error(409, "container.container-already-exists");
    let mine = listed(&h, ALICE).await;
    assert_eq!(mine.len(), 1, "nothing was created: {mine:?}");
    assert_eq!(mine[0]["uuid"], first["uuid"]);
    // Another project's "twin" is its own, and each name resolves to the
    // caller's container.
    let theirs = create(&h, BOB, &zunclient_body("twin")).await;
    for (token, expected) in [(ALICE, &first), (BOB, &theirs)] {
        let reply = call("GET", "/v1/containers/twin")
            .token(token)
            .send(&h.app)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.json()["uuid"], expected["uuid"]);
    }
    // With all_projects a name is looked up in every project, as
    // `openstack appcontainer delete --force --all-projects <name>` needs:
    // without it an admin sees only its own project's names; with it, two
    // projects' "twin" conflict and a single one resolves.
    let reply = call("GET", "/v1/containers/twin?all_projects=False")
        .token(ADMIN)
        .send(&h.app)
        .await;
    reply.zun_error(404, "container.container-not-found");
    let reply = call("GET", "/v1/containers/twin?all_projects=True")
        .token(ADMIN)
        .send(&h.app)
        .await;
    reply.zun_error(409, "container.conflict");
    let only = create(&h, BOB, &zunclient_body("single")).await;
    let reply = call("GET", "/v1/containers/single?all_projects=True")
        .token(ADMIN)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json()["uuid"], only["uuid"]);
    // Only admins may ask (Zun's container:get_one_all_projects and
    // container:delete_all_projects), and a refusal changes nothing.
    for (method, path) in [
        ("GET", "/v1/containers/single?all_projects=True"),
        (
            "DELETE",
            "/v1/containers/single?force=True&all_projects=True",
        ),
        ("DELETE", "/v1/containers/single?all_projects=True"),
    ] {
        let reply = call(method, path).token(ALICE).send(&h.app).await;
        reply.zun_error(403, "container.policy-not-authorized");
    }
    let reply = call(
        "DELETE",
        "/v1/containers/single?force=True&stop=False&all_projects=True",
    )
    .token(ADMIN)
    .version("container 1.40")
    .header("content-type", "application/octet-stream")
    .send(&h.app)
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
    h.stop().await;
}

#[tokio::test]
async fn exec_logs_top_and_stats_answer_zuns_shapes() {
    let h = harness().await;
    let server = Server::start(h.app.clone()).await;
    let c = created(&h, ALICE, &zunclient_body("busy"), "Created").await;
    let uuid = uuid_of(&c);
    let id = container_id(&uuid);
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/execute?command=%22ls%22"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    reply.zun_error(409, "container.invalid-state-exception");
    assert!(
        h.svc
            .agents()
            .calls_for(id)
            .iter()
            .all(|c| !matches!(c.command, AgentCommand::Exec { .. })),
        "the refused exec reached no agent"
    );
    start(&h, ALICE, &uuid).await;

    // zunclient: the command in the query, each word double-quoted.
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/execute?command=%22echo%22%20%22a%20b%22"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"output": "echo a b\n", "exit_code": 0, "exec_id": null, "proxy_url": null})
    );
    let last = h.svc.agents().calls_for(id).pop().expect("a call");
    match last.command {
        AgentCommand::Exec { command, .. } => {
            assert_eq!(command.command, ["echo", "a b"]);
        }
        other => panic!("the exec reached the agent, got {other:?}"),
    }
    // tempest: the command in a JSON body.
    let reply = call("POST", &format!("/v1/containers/{uuid}/execute"))
        .token(ALICE)
        .json(&json!({"command": "echo hello"}))
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["output"], "echo hello\n");
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/execute?command=%22sh%22&interactive=True&run=False"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let exec = reply.json();
    let exec_id = exec["exec_id"].as_str().expect("exec id").to_owned();
    assert_eq!(exec_id.len(), 64);
    let url = exec["proxy_url"].as_str().expect("proxy url");
    assert!(
        url.starts_with(&format!(
            "ws://nest.test:9517/v1/containers/{uuid}/exec/ws?token="
        )),
        "{url}"
    );
    assert!(url.ends_with(&format!("&exec_id={exec_id}")));
    // The exec's console is live once its websocket is open: input echoes
    // through the agent, and a resize reaches the exec's stream.
    let url = url.replace("nest.test:9517", &server.addr.to_string());
    let (mut ws, _) = ws_connect(url, None).await.expect("websocket opens");
    ws.send(Message::Binary(Bytes::from_static(b"pwd\n")))
        .await
        .expect("send");
    let echoed = ws.next().await.expect("a frame").expect("no error");
    assert_eq!(echoed.into_data(), Bytes::from_static(b"pwd\n"));
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/execute_resize?exec_id={exec_id}&w=80&h=24"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    assert_eq!(
        (reply.status, &reply.body[..]),
        (StatusCode::OK, &b"null"[..])
    );
    let resized = RecordedResize {
        container: Some(id),
        size: TtySize {
            width: 80,
            height: 24,
        },
    };
    eventually(SETTLE_TIMEOUT, "the exec's resize", || async {
        h.svc.agents().resizes().contains(&resized).then_some(())
    })
    .await;
    ws.close(None).await.expect("close");
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/execute_resize?exec_id=XYZ&w=80&h=24"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    reply.zun_error(400, "container.invalid-parameter-value");
    let reply = call(
        "POST",
        &format!("/v1/containers/{uuid}/execute?command=%22unbalanced"),
    )
    .token(ALICE)
    .send(&h.app)
    .await;
    reply.zun_error(400, "container.invalid-parameter-value");

    let lines: String = (1..=7).map(|n| format!("line {n}\n")).collect();
    h.svc.agents().set_logs(id, lines.clone());
    let reply = call("GET", &format!("/v1/containers/{uuid}/logs?stdout=True&stderr=True&timestamps=False&tail=5&since=1700000000")).token(ALICE).send(&h.app).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!("line 3\nline 4\nline 5\nline 6\nline 7\n")
    );
    let last = h.svc.agents().calls_for(id).pop().expect("a call");
    match last.command {
        AgentCommand::OpenStream(open) => {
            let shown = format!("{open:?}");
            assert!(shown.contains("tail: Some(5)"), "{shown}");
            assert!(shown.contains("since: Some(1700000000)"), "{shown}");
        }
        other => panic!("the logs reached the agent, got {other:?}"),
    }
    let reply = call("GET", &format!("/v1/containers/{uuid}/logs?follow=true"))
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(&reply.body[..], lines.as_bytes());
    let reply = call("GET", &format!("/v1/containers/{uuid}/logs?tail=many"))
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.invalid-parameter-value");

    let reply = call("GET", &format!("/v1/containers/{uuid}/top?ps_args=None"))
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"Titles": TOP_TITLES,
               "Processes": [["root", "1", "0", "0", "00:00", "?", "00:00:00", "sleep 10000"]]})
    );
    let last = h.svc.agents().calls_for(id).pop().expect("a call");
    assert_eq!(
        last.command,
        AgentCommand::Top {
            container: id,
            ps_args: None
        }
    );
    let reply = call("GET", &format!("/v1/containers/{uuid}/stats"))
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let stats = reply.json();
    assert_eq!(stats["CONTAINER"], "busy");
    assert_eq!(stats["CPU %"], FAKE_USAGE.cpu_percent);
    assert_eq!(
        stats["BLOCK I/O(B)"],
        format!(
            "{}/{}",
            FAKE_USAGE.block_read_bytes, FAKE_USAGE.block_write_bytes
        )
    );
    assert_eq!(
        stats["NET I/O(B)"],
        format!(
            "{}/{}",
            FAKE_USAGE.network_rx_bytes, FAKE_USAGE.network_tx_bytes
        )
    );
    // 16 MiB used of the container's own 100 MiB.
    assert_eq!(stats["MEM USAGE(MiB)"], 16.0);
    assert_eq!(stats["MEM LIMIT(MiB)"], 100.0);
    assert_eq!(stats["MEM %"], 16.0);

    // Attach needs an interactive container.
    let reply = call("GET", &format!("/v1/containers/{uuid}/attach"))
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(400, "container.no-interactive-flag");
    assert_eq!(
        settled(&h, ALICE, &uuid, "Running").await["uuid"],
        uuid.as_str()
    );
    drop(server);
    h.stop().await;
}

#[tokio::test]
async fn hosts_show_the_projects_instances_from_1_4() {
    let h = harness().await;
    let c = created(&h, ALICE, &zunclient_body("h1"), "Created").await;
    let theirs = created(&h, BOB, &zunclient_body("h2"), "Created").await;
    let mine = c["host"].as_str().expect("placed").to_owned();
    let other = theirs["host"].as_str().expect("placed").to_owned();
    assert_ne!(mine, other, "one instance per project");
    let booted: Vec<String> = h
        .svc
        .driver()
        .instances()
        .iter()
        .map(|i| i.id.as_str().to_owned())
        .collect();
    assert!(
        booted.contains(&mine) && booted.contains(&other),
        "{booted:?}"
    );

    let body = eventually(SETTLE_TIMEOUT, "the instance to be ready", || async {
        let reply = call("GET", "/v1/hosts/")
            .token(ALICE)
            .version("container 1.40")
            .send(&h.app)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let body = reply.json();
        (body["hosts"][0]["status"] == "Ready").then_some(body)
    })
    .await;
    let hosts = body["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 1, "only the project's own: {hosts:?}");
    let host = &hosts[0];
    assert_eq!(host["uuid"], mine.as_str());
    assert_eq!(host["total_containers"], 1);
    assert_eq!(host["mem_used"], 100);
    assert_eq!(host["enable_cpu_pinning"], false);
    assert_eq!(body["next"], Value::Null);
    let reply = call("GET", &format!("/v1/hosts/{mine}"))
        .token(ALICE)
        .version("container 1.28")
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let one = reply.json();
    assert_eq!(one["uuid"], mine.as_str());
    assert!(one.get("enable_cpu_pinning").is_none());
    let reply = call("GET", &format!("/v1/hosts/{other}"))
        .token(ALICE)
        .version("container 1.40")
        .send(&h.app)
        .await;
    reply.zun_error(404, "container.compute-host-not-found");
    h.stop().await;
}

#[tokio::test]
async fn network_list_shows_the_instances_networks_from_1_13() {
    let h = harness().await;
    let c = created(&h, ALICE, &zunclient_body("n1"), "Created").await;
    let uuid = uuid_of(&c);
    let shown = eventually(SETTLE_TIMEOUT, "the container's addresses", || async {
        let body = show(&h, ALICE, &uuid).await.json();
        body["addresses"]
            .as_object()
            .is_some_and(|a| !a.is_empty())
            .then_some(body)
    })
    .await;
    let reply = call("GET", &format!("/v1/containers/{uuid}/network_list"))
        .token(ALICE)
        .version("container 1.40")
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let networks = reply.json()["networks"].clone();
    let addresses = shown["addresses"].as_object().expect("addresses");
    let expected: Vec<Value> = addresses
        .iter()
        .map(|(net, addrs)| {
            json!({"net_id": net, "port_id": null, "fixed_ips": addrs.as_array().expect("list")
                .iter()
                .map(|a| json!({"ip_address": a["addr"], "version": a["version"], "subnet_id": null}))
                .collect::<Vec<_>>()})
        })
        .collect();
    assert_eq!(networks, json!(expected));
    let reply = call("GET", "/v1/containers/n1/network_list")
        .token(ALICE)
        .version("container 1.12")
        .send(&h.app)
        .await;
    reply.zun_error(406, "container.not-acceptable");
    h.stop().await;
}

#[tokio::test]
async fn rename_by_post_is_served_up_to_1_13() {
    let h = harness().await;
    let c = created(&h, ALICE, &zunclient_body("old-name"), "Created").await;
    let uuid = uuid_of(&c);
    let reply = call("POST", "/v1/containers/old-name/rename?name=new-name")
        .token(ALICE)
        .version("container 1.13")
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json()["name"], "new-name");
    assert_eq!(show(&h, ALICE, &uuid).await.json()["name"], "new-name");
    // From 1.14 on Zun renames with PATCH only; a bad or missing name and
    // another project's container are refused; none of it renames.
    for (token, version, query, status, code) in [
        (
            ALICE,
            "container 1.14",
            "?name=x2",
            406,
            "container.not-acceptable",
        ),
        (
            ALICE,
            "container 1.13",
            "",
            400,
            "container.invalid-parameter-value",
        ),
        (
            ALICE,
            "container 1.13",
            "?name=-bad",
            400,
            "container.schema-validation-error",
        ),
        (
            BOB,
            "container 1.13",
            "?name=x3",
            404,
            "container.container-not-found",
        ),
    ] {
        let reply = call("POST", &format!("/v1/containers/{uuid}/rename{query}"))
            .token(token)
            .version(version)
            .send(&h.app)
            .await;
        reply.zun_error(status, code);
    }
    assert_eq!(show(&h, ALICE, &uuid).await.json()["name"], "new-name");
    h.stop().await;
}

#[tokio::test]
async fn zun_routes_nest_leaves_out_say_so_and_change_nothing() {
    let h = harness().await;
    let c = created(&h, ALICE, &zunclient_body("u1"), "Created").await;
    let uuid = uuid_of(&c);
    let id = container_id(&uuid);
    let record = h.svc.store().get_container(id).await.expect("recorded");
    let calls = h.svc.agents().calls_for(id);
    for (method, path, what) in [
        (
            "POST",
            format!("/v1/containers/{uuid}/rebuild?image=x"),
            "container rebuild",
        ),
        (
            "POST",
            format!("/v1/containers/{uuid}/commit?repository=r"),
            "container commit",
        ),
        (
            "GET",
            format!("/v1/containers/{uuid}/get_archive?path=/etc"),
            "copying files",
        ),
        (
            "POST",
            "/v1/containers/u1/network_detach?network=n".into(),
            "networks",
        ),
        (
            "POST",
            "/v1/containers/u1/add_security_group?name=default".into(),
            "security groups",
        ),
        ("POST", "/v1/images".into(), "pulling an image"),
        ("GET", "/v1/images/busybox/search".into(), "image search"),
        (
            "PUT",
            "/v1/services/disable?host=h&binary=zun-compute".into(),
            "changing a service",
        ),
        (
            "DELETE",
            "/v1/services?host=h&binary=zun-compute".into(),
            "changing a service",
        ),
        ("GET", "/v1/availability_zones".into(), "availability zone"),
        ("GET", "/v1/registries".into(), "registries"),
        ("GET", "/v1/capsules/".into(), "capsules"),
        ("GET", "/v1/quotas/alpha/defaults".into(), "quota defaults"),
    ] {
        let reply = call(method, &path)
            .token(ALICE)
            .version("container 1.40")
            .send(&h.app)
            .await;
        let e = reply.zun_error(400, "container.not-supported");
        let title = e["title"].as_str().unwrap_or_default();
        assert!(
            title.contains(what) && title.contains("is not supported by Nest: "),
            "{method} {path}: {title}"
        );
    }
    // Zun's image list answers the project's stored images (none here).
    let reply = call("GET", "/v1/images/")
        .token(ALICE)
        .version("container 1.40")
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json(), json!({"images": [], "next": null}));
    let reply = call("GET", &format!("/v1/images/{}", uuid))
        .token(ALICE)
        .send(&h.app)
        .await;
    reply.zun_error(404, "container.image-not-found");
    // Zun's service list is for admins (tempest's test_service_list), and
    // shows each instance's agent.
    let reply = call("GET", "/v1/services").token(ALICE).send(&h.app).await;
    reply.zun_error(403, "container.policy-not-authorized");
    let host = eventually(SETTLE_TIMEOUT, "the container's instance", || async {
        show(&h, ALICE, &uuid).await.json()["host"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    let services = eventually(SETTLE_TIMEOUT, "its agent to be up", || async {
        let reply = call("GET", "/v1/services").token(ADMIN).send(&h.app).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let body = reply.json();
        let up = body["services"].as_array().is_some_and(|l| {
            l.iter()
                .any(|s| s["host"] == host.as_str() && s["state"] == "up")
        });
        up.then_some(body)
    })
    .await;
    let agent = services["services"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["host"] == host.as_str()))
        .expect("the instance's agent")
        .clone();
    assert_eq!(agent["binary"], "nest-agent");
    assert_eq!(agent["disabled"], false);
    assert!(agent["id"].as_u64().is_some_and(|n| n >= 1), "{agent}");
    // Refusals need a token like every other route.
    let reply = call("GET", "/v1/services").send(&h.app).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.svc.store().get_container(id).await.ok(), Some(record));
    assert_eq!(h.svc.agents().calls_for(id), calls);
    h.stop().await;
}

#[tokio::test]
async fn openapi_and_metrics_are_served_without_auth() {
    let h = harness().await;
    let reply = call("GET", "/v1/containers")
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = call("GET", "/openapi.json").send(&h.app).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert!(doc["paths"]["/v1/containers"]["post"].is_object());
    assert!(doc["paths"]["/v1/containers/{container}/execute"]["post"].is_object());
    assert!(doc["components"]["schemas"]["ContainerView"].is_object());
    let reply = call("GET", "/metrics").send(&h.app).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&reply.body);
    assert!(text.contains("nest_api_requests_total"), "{text}");
    assert!(text.contains("route=\"/v1/containers\""), "{text}");
    let reply = call("GET", "/healthz").send(&h.app).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"status": "ok"}));
    h.stop().await;
}

// === console websocket over a real listener ===

/// A server on 127.0.0.1:0, stopped when dropped.
struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

type WsConnect = Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
>;

/// Opens a console websocket as a browser would, offering `binary` and
/// `base64`, from `origin` if given.
async fn ws_connect(url: String, origin: Option<&'static str>) -> WsConnect {
    let mut request = url.into_client_request().expect("ws request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "binary, base64".parse().expect("header"),
    );
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
    }
    tokio_tungstenite::connect_async(request).await
}

#[tokio::test]
async fn attach_websocket_negotiates_binary_and_its_token_is_single_use() {
    let h = harness().await;
    let server = Server::start(h.app.clone()).await;
    let body = json!({"image": "busybox", "interactive": true, "command": ["sh"]});
    let reply = call("POST", "/v1/containers?run=true")
        .token(ALICE)
        .version("container 1.40")
        .json(&body)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let uuid = uuid_of(&reply.json());
    let id = container_id(&uuid);
    settled(&h, ALICE, &uuid, "Running").await;
    let reply = call("GET", &format!("/v1/containers/{uuid}/attach"))
        .token(ALICE)
        .send(&h.app)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let url = reply.json().as_str().expect("a JSON string").to_owned();
    assert!(
        url.starts_with(&format!(
            "ws://nest.test:9517/v1/containers/{uuid}/attach/ws?token="
        )),
        "{url}"
    );
    let url = url.replace("nest.test:9517", &server.addr.to_string());
    let attaches = || {
        h.svc
            .agents()
            .calls_for(id)
            .into_iter()
            .filter(|c| matches!(c.command, AgentCommand::OpenStream(_)))
            .count()
    };

    // A page of another origin is refused before the token is spent.
    let refused = ws_connect(url.clone(), Some("http://evil.test")).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(attaches(), 0, "no stream was opened");

    let (mut ws, response) = ws_connect(url.clone(), None)
        .await
        .expect("websocket opens");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("binary")
    );
    assert_eq!(attaches(), 1);
    // Input goes to the container's agent and its echo comes back.
    ws.send(Message::Binary(Bytes::from_static(b"ls\n")))
        .await
        .expect("send");
    let echoed = ws.next().await.expect("a frame").expect("no error");
    assert_eq!(echoed.into_data(), Bytes::from_static(b"ls\n"));
    ws.send(Message::Text(r#"{"resize": {"w": 100, "h": 30}}"#.into()))
        .await
        .expect("send");
    let resized = RecordedResize {
        container: Some(id),
        size: TtySize {
            width: 100,
            height: 30,
        },
    };
    eventually(SETTLE_TIMEOUT, "the attach's resize", || async {
        h.svc.agents().resizes().contains(&resized).then_some(())
    })
    .await;
    ws.close(None).await.expect("close");

    let again = ws_connect(url, None).await;
    match again {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
        }
        other => panic!("a used token must be refused, got {other:?}"),
    }
    let bad = format!(
        "ws://{}/v1/containers/{uuid}/attach/ws?token={}",
        server.addr,
        "x".repeat(40)
    );
    assert!(ws_connect(bad, None).await.is_err());
    assert_eq!(attaches(), 1, "refused tokens open no stream");
    drop(server);
    h.stop().await;
}
