//! The `nova` driver against the real lab (issue #7's "Must show"): the
//! real `nest-service` with Keystone auth and `kind = "nova"`, the lab's
//! Nova, Neutron, Glance and Keystone, and the test hypervisor running the
//! servers as namespace guests with their own dockerd and agent.
//!
//! Needs root, the Docker engine and the lab (`../shared/openstack-lab/
//! up.sh`); fails loudly without them. Build the binaries first
//! (`cargo build --workspace --bins`).

use std::time::Duration;

use nest_tests::nova::{
    ADMIN, ALT_DEMO, CloudCleanup, DEMO, Hypervisor, ensure_driver_user, openstack, project_id,
    serial, service_options, token, unique_tag,
};
use nest_tests::service::{ServiceOptions, ServiceProcess};
use reqwest::Method;
use serde_json::{Value, json};

/// Create → Running on a new server: Nova's boot, the guest's dockerd and
/// the agent's enrollment.
const BOOT: Duration = Duration::from_secs(150);

async fn create(svc: &ServiceProcess, token: &str, body: Value) -> String {
    let (code, view) = svc
        .call(token, Method::POST, "/v1/containers?run=true", Some(body))
        .await;
    assert_eq!(code, 202, "create: {view}\n{}", svc.log_text());
    view["uuid"].as_str().expect("a uuid").to_owned()
}

async fn start(tag: &str, options: ServiceOptions) -> (CloudCleanup, Hypervisor, ServiceProcess) {
    ensure_driver_user();
    let cleanup = CloudCleanup {
        tag: tag.to_owned(),
    };
    let hypervisor = Hypervisor::start(tag).await;
    let svc = ServiceProcess::start_with(options).await;
    (cleanup, hypervisor, svc)
}

async fn delete_and_wait_gone(svc: &ServiceProcess, token: &str, id: &str) {
    let (code, body) = svc
        .call(
            token,
            Method::DELETE,
            &format!("/v1/containers/{id}?stop=true"),
            None,
        )
        .await;
    assert_eq!(code, 204, "delete: {body}");
    nest_tests::eventually(
        Duration::from_secs(60),
        "the container to be gone",
        || async {
            let (code, _) = svc
                .call(token, Method::GET, &format!("/v1/containers/{id}"), None)
                .await;
            (code == 404).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_runs_in_a_real_server_of_the_tenants_project_and_its_port_answers() {
    let _serial = serial().await;
    let tag = unique_tag();
    let mut options = service_options(&tag);
    options.idle_timeout = "3s".into();
    let (cleanup, hypervisor, svc) = start(&tag, options).await;
    let demo = token(DEMO).await;
    let alt = token(ALT_DEMO).await;

    let image = svc.upload_test_image(&demo).await;
    let id = create(
        &svc,
        &demo,
        json!({
            "image": image,
            "name": "web",
            "command": ["httpd", "-f", "-p", "8080"],
            "cpu": 0.5,
            "memory": "128",
            "ports": ["pub:8080:8080"],
        }),
    )
    .await;
    let view = svc.wait_status(&demo, &id, "Running", BOOT).await;
    let host = view["host"].as_str().expect("a host").to_owned();

    // A real server in demo's own project, as demo's CLI sees it.
    let servers = openstack(DEMO, &["server", "list", "--tags", &tag, "-f", "json"]);
    let servers = servers.as_array().expect("a server list");
    assert_eq!(servers.len(), 1, "{servers:?}\n{}", hypervisor.log_text());
    let server_id = servers[0]["ID"].as_str().expect("an id").to_owned();
    let shown = openstack(DEMO, &["server", "show", &server_id, "-f", "json"]);
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    assert_eq!(shown["project_id"], project_id("demo"), "{shown}");
    assert_eq!(
        shown["properties"]["nest_instance_id"], host,
        "the server carries Nest's instance id: {shown}"
    );
    // alt_demo sees neither the server nor the container.
    let alt_servers = openstack(ALT_DEMO, &["server", "list", "--tags", &tag, "-f", "json"]);
    assert_eq!(alt_servers, json!([]), "{alt_servers}");
    let (code, body) = svc
        .call(&alt, Method::GET, &format!("/v1/containers/{id}"), None)
        .await;
    assert_eq!(code, 404, "{body}");
    let (code, listed) = svc.call(&alt, Method::GET, "/v1/containers", None).await;
    assert_eq!(code, 200, "{listed}");
    assert_eq!(listed["containers"], json!([]), "{listed}");

    // `pub` is the server's floating address, and the port answers there.
    let floating = view["addresses"]["pub"][0]["addr"]
        .as_str()
        .unwrap_or_else(|| panic!("no pub address: {view}"))
        .to_owned();
    assert!(floating.starts_with("203.0.113."), "{view}");
    assert_eq!(
        view["published_ports"],
        json!([format!("{floating}:8080")]),
        "{view}"
    );
    let server_addresses = shown["addresses"].to_string();
    assert!(
        server_addresses.contains(&floating),
        "Nova shows the floating IP: {shown}"
    );
    let answer = reqwest::Client::new()
        .get(format!("http://{floating}:8080/"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the port answers at {floating}: {e}\n{}",
                hypervisor.log_text()
            )
        });
    assert_eq!(
        answer.status().as_u16(),
        404,
        "busybox httpd answers 404 for /"
    );

    // Delete: the empty instance is retired, the server deleted and its
    // floating IP released.
    delete_and_wait_gone(&svc, &demo, &id).await;
    nest_tests::eventually(
        Duration::from_secs(60),
        "the server to be deleted",
        || async { cleanup.servers().is_empty().then_some(()) },
    )
    .await;
    let fips = openstack(ADMIN, &["floating", "ip", "list", "--long", "-f", "json"]);
    assert!(
        !fips.to_string().contains(&floating),
        "the floating IP is released: {fips}"
    );
    drop(svc);
    drop(hypervisor);
}
