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
    CloudCleanup, Hypervisor, TestProject, admin, alt_demo, delete_trust, demo, ensure_driver_user,
    openstack, project_id, recorded_trusts, revoke, serial, service_options, token, try_openstack,
    unique_tag,
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
    let demo_token = token(&demo()).await;
    let alt_token = token(&alt_demo()).await;

    let image = svc.upload_test_image(&demo_token).await;
    let id = create(
        &svc,
        &demo_token,
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
    let view = svc.wait_status(&demo_token, &id, "Running", BOOT).await;
    let host = view["host"].as_str().expect("a host").to_owned();

    // A real server in demo's own project, as demo's CLI sees it.
    let servers = openstack(&demo(), &["server", "list", "--tags", &tag, "-f", "json"]);
    let servers = servers.as_array().expect("a server list");
    assert_eq!(servers.len(), 1, "{servers:?}\n{}", hypervisor.log_text());
    let server_id = servers[0]["ID"].as_str().expect("an id").to_owned();
    let shown = openstack(&demo(), &["server", "show", &server_id, "-f", "json"]);
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    assert_eq!(shown["project_id"], project_id("demo"), "{shown}");
    assert_eq!(
        shown["properties"]["nest_instance_id"], host,
        "the server carries Nest's instance id: {shown}"
    );
    // alt_demo sees neither the server nor the container.
    let alt_servers = openstack(
        &alt_demo(),
        &["server", "list", "--tags", &tag, "-f", "json"],
    );
    assert_eq!(alt_servers, json!([]), "{alt_servers}");
    let (code, body) = svc
        .call(
            &alt_token,
            Method::GET,
            &format!("/v1/containers/{id}"),
            None,
        )
        .await;
    assert_eq!(code, 404, "{body}");
    let (code, listed) = svc
        .call(&alt_token, Method::GET, "/v1/containers", None)
        .await;
    assert_eq!(code, 200, "{listed}");
    assert_eq!(listed["containers"], json!([]), "{listed}");
    let (code, hosts) = svc.call(&alt_token, Method::GET, "/v1/hosts", None).await;
    assert_eq!(code, 200, "{hosts}");
    assert!(!hosts.to_string().contains(&host), "{hosts}");
    let (code, quotas) = svc
        .call(
            &alt_token,
            Method::GET,
            &format!("/v1/quotas/{}", project_id("demo")),
            None,
        )
        .await;
    assert_eq!(code, 403, "{quotas}");

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
    delete_and_wait_gone(&svc, &demo_token, &id).await;
    nest_tests::eventually(
        Duration::from_secs(60),
        "the server to be deleted",
        || async { cleanup.servers().is_empty().then_some(()) },
    )
    .await;
    let fips = openstack(
        &admin(),
        &["floating", "ip", "list", "--long", "-f", "json"],
    );
    assert!(
        !fips.to_string().contains(&floating),
        "the floating IP is released: {fips}"
    );
    drop(svc);
    drop(hypervisor);
}

/// The id of the Nova server of a container's instance, as `user` sees it.
fn server_of(user: &nest_tests::nova::User, tag: &str, view: &Value) -> String {
    let host = view["host"].as_str().expect("a host");
    let servers = openstack(
        user,
        &[
            "server",
            "list",
            "--tags",
            &format!("{tag}-{host}"),
            "-f",
            "json",
        ],
    );
    servers[0]["ID"]
        .as_str()
        .unwrap_or_else(|| panic!("no server for {host}: {servers}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn novas_quota_bounds_the_tenant_and_a_trust_outlives_the_token() {
    let _serial = serial().await;
    let tag = unique_tag();
    let project = TestProject::create(&tag);
    let user = project.user.clone();
    openstack(&admin(), &["quota", "set", "--instances", "1", &project.id]);
    let mut options = service_options(&tag);
    options.idle_timeout = "3s".into();
    let (cleanup, hypervisor, mut svc) = start(&tag, options).await;
    let token1 = token(&user).await;
    let image = svc.upload_test_image(&token1).await;
    // 400 MiB each: one container per m1.tiny (512 MiB) server.
    let body = |name: &str| json!({"image": image, "name": name, "command": ["sleep", "3600"], "cpu": 0.5, "memory": "400"});

    let first = create(&svc, &token1, body("first")).await;
    let first_view = svc.wait_status(&token1, &first, "Running", BOOT).await;

    // The second instance Nest needs is over Nova's quota of 1.
    let second = create(&svc, &token1, body("second")).await;
    let refused = svc.wait_status(&token1, &second, "Error", BOOT).await;
    let reason = refused["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("Quota exceeded for instances"),
        "Nova's own words: {refused}"
    );
    let (code, listed) = svc.call(&token1, Method::GET, "/v1/containers", None).await;
    assert_eq!(code, 200, "{listed}");
    assert!(
        listed["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .all(|c| c["status"] != "Creating"),
        "nothing stuck in Creating: {listed}"
    );
    nest_tests::eventually(Duration::from_secs(30), "no leaked server", || async {
        (cleanup.servers().len() == 1).then_some(())
    })
    .await;

    // The quotas are Nova's numbers.
    let (code, quotas) = svc
        .call(
            &token1,
            Method::GET,
            &format!("/v1/quotas/{}?usages=True", project.id),
            None,
        )
        .await;
    assert_eq!(code, 200, "{quotas}");
    assert_eq!(
        quotas["instances"],
        json!({"limit": 1, "in_use": 1}),
        "{quotas}"
    );
    assert_eq!(quotas["cores"]["in_use"], 1, "{quotas}");
    assert_eq!(quotas["ram"]["in_use"], 512, "{quotas}");
    assert_eq!(quotas["source"], "nova", "{quotas}");
    let (code, refusal) = svc
        .call(
            &token1,
            Method::PUT,
            &format!("/v1/quotas/{}", project.id),
            Some(json!({"containers": 5})),
        )
        .await;
    assert_eq!(code, 400, "{refusal}");
    assert!(
        refusal.to_string().contains("openstack quota set"),
        "{refusal}"
    );
    let (code, _) = svc
        .call(&token1, Method::GET, "/v1/quotas/some-other-project", None)
        .await;
    assert_eq!(code, 403, "another project's quotas");

    // Raising the quota in Nova lets the next create succeed.
    openstack(&admin(), &["quota", "set", "--instances", "3", &project.id]);
    let third = create(&svc, &token1, body("third")).await;
    let third_view = svc.wait_status(&token1, &third, "Running", BOOT).await;
    assert_ne!(third_view["host"], first_view["host"], "{third_view}");

    // A server deleted behind Nest's back: its container turns to Error
    // within one reconcile period (30s), and nothing re-creates it.
    let behind = server_of(&user, &tag, &third_view);
    openstack(&user, &["server", "delete", &behind]);
    let lost = svc
        .wait_status(&token1, &third, "Error", Duration::from_secs(75))
        .await;
    assert!(
        lost["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("instance deleted"),
        "{lost}"
    );

    // The user's token is revoked and the service restarted: the trust
    // still boots and deletes in the project.
    revoke(&token1).await;
    svc.restart().await;
    let token2 = token(&user).await;
    let fourth = create(&svc, &token2, body("fourth")).await;
    let fourth_view = svc.wait_status(&token2, &fourth, "Running", BOOT).await;
    assert_ne!(fourth_view["host"], first_view["host"], "{fourth_view}");
    let log = svc.log_text();
    assert!(
        log.contains("(trust "),
        "the boot logged in through the trust:\n{log}"
    );
    for id in [&first, &second, &third, &fourth] {
        delete_and_wait_gone(&svc, &token2, id).await;
    }
    nest_tests::eventually(Duration::from_secs(60), "every server deleted", || async {
        cleanup.servers().is_empty().then_some(())
    })
    .await;
    drop(svc);
    drop(hypervisor);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_of_a_server_without_nests_metadata_or_in_another_project_is_refused() {
    let _serial = serial().await;
    let tag = unique_tag();
    // The hypervisor runs only the servers this test hands it (tag
    // `<tag>h`), not the ones Nest boots.
    let handed = format!("{tag}h");
    ensure_driver_user();
    let cleanup = CloudCleanup { tag: tag.clone() };
    let hypervisor = Hypervisor::start(&handed).await;
    let svc = ServiceProcess::start_with(service_options(&tag)).await;
    let demo_token = token(&demo()).await;
    let image = svc.upload_test_image(&demo_token).await;
    let body = |name: &str| json!({"image": image, "name": name, "command": ["sleep", "3600"], "cpu": 0.5, "memory": "400"});
    let first = create(&svc, &demo_token, body("first")).await;
    let second = create(&svc, &demo_token, body("second")).await;
    nest_tests::eventually(BOOT, "two ACTIVE servers", || async {
        let servers = cleanup.servers();
        (servers.len() == 2 && servers.iter().all(|(_, _, status)| status == "ACTIVE"))
            .then_some(servers)
    })
    .await;
    let view = |id: String| {
        let svc = &svc;
        let demo_token = &demo_token;
        async move {
            let (code, view) = svc
                .call(
                    demo_token,
                    Method::GET,
                    &format!("/v1/containers/{id}"),
                    None,
                )
                .await;
            assert_eq!(code, 200, "{view}");
            view
        }
    };
    let first_server = server_of(&demo(), &tag, &view(first.clone()).await);
    let second_view = view(second.clone()).await;
    let second_host = second_view["host"].as_str().expect("a host").to_owned();
    let second_server = server_of(&demo(), &tag, &second_view);

    // A server of the right project whose Nest metadata was removed.
    openstack(
        &demo(),
        &[
            "server",
            "unset",
            "--property",
            "nest_instance_id",
            &first_server,
        ],
    );
    openstack(&demo(), &["server", "set", "--tag", &handed, &first_server]);
    nest_tests::eventually(BOOT, "the first refusal", || async {
        svc.log_text()
            .contains("does not carry nest_instance_id")
            .then_some(())
    })
    .await;

    // The second server's user data (its one-time token) in a server of
    // another project, the real one gone.
    let shown = openstack(&admin(), &["server", "show", &second_server, "-f", "json"]);
    let user_data = shown["OS-EXT-SRV-ATTR:user_data"]
        .as_str()
        .unwrap_or_else(|| panic!("admin reads the user data: {shown}"));
    let decoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(user_data)
            .expect("base64 user data")
    };
    let dir = nest_tests::TempDir::new("nest-impostor");
    let file = dir.path().join("user-data");
    std::fs::write(&file, decoded).expect("write the user data");
    openstack(&demo(), &["server", "delete", "--wait", &second_server]);
    let instance_tag = format!("{tag}-{second_host}");
    openstack(
        &alt_demo(),
        &[
            "server",
            "create",
            "--flavor",
            "m1.tiny",
            "--image",
            "fake-image",
            "--network",
            "private",
            "--tag",
            &tag,
            "--tag",
            &handed,
            "--tag",
            &instance_tag,
            "--property",
            &format!("nest_instance_id={second_host}"),
            "--user-data",
            file.to_str().expect("a path"),
            "--wait",
            "-f",
            "json",
            "impostor",
        ],
    );
    nest_tests::eventually(BOOT, "the second refusal", || async {
        svc.log_text()
            .contains(&format!(
                "0 servers of project {} are tagged",
                project_id("demo")
            ))
            .then_some(())
    })
    .await;
    // Neither container ever ran, and neither instance became ready.
    for id in [&first, &second] {
        let shown = view(id.clone()).await;
        assert_ne!(shown["status"], "Running", "{shown}");
    }
    let (code, hosts) = svc.call(&demo_token, Method::GET, "/v1/hosts", None).await;
    assert_eq!(code, 200, "{hosts}");
    assert!(
        !hosts.to_string().contains("\"Ready\""),
        "no instance is ready: {hosts}"
    );
    let impostors = openstack(
        &alt_demo(),
        &["server", "list", "--tags", &instance_tag, "-f", "json"],
    );
    for server in impostors.as_array().into_iter().flatten() {
        if let Some(id) = server["ID"].as_str() {
            let _ = try_openstack(&alt_demo(), &["server", "delete", id]);
        }
    }
    drop(svc);
    drop(hypervisor);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_glance_image_of_container_format_docker_runs_as_a_container() {
    let _serial = serial().await;
    let tag = unique_tag();
    let mut options = service_options(&tag);
    options.idle_timeout = "3s".into();
    let (cleanup, hypervisor, svc) = start(&tag, options).await;
    let demo_token = token(&demo()).await;

    // A `docker save` tarball uploaded to Glance as demo's private image.
    nest_tests::docker::ensure_test_image();
    let dir = nest_tests::TempDir::new("nest-glance");
    let tar = dir.path().join("busybox.tar");
    let saved = std::process::Command::new("docker")
        .args(["save", "-o"])
        .arg(&tar)
        .arg(nest_tests::docker::TEST_IMAGE)
        .status()
        .expect("docker save");
    assert!(saved.success(), "docker save");
    let name = format!("{tag}-busybox");
    let created = openstack(
        &demo(),
        &[
            "image",
            "create",
            "--container-format",
            "docker",
            "--disk-format",
            "raw",
            "--private",
            "--file",
            tar.to_str().expect("a path"),
            &name,
            "-f",
            "json",
        ],
    );
    let image = created["id"].as_str().expect("an image id").to_owned();
    let _image_cleanup = DeleteImage(image.clone());

    let id = create(
        &svc,
        &demo_token,
        json!({"image": image, "name": "from-glance", "command": ["sleep", "3600"], "cpu": 0.5, "memory": "128"}),
    )
    .await;
    svc.wait_status(&demo_token, &id, "Running", BOOT).await;
    let (code, exec) = svc
        .call(
            &demo_token,
            Method::POST,
            &format!("/v1/containers/{id}/execute"),
            Some(json!({"command": "sh -c \"echo from glance\""})),
        )
        .await;
    assert_eq!(code, 200, "{exec}");
    assert_eq!(exec["output"], "from glance\n", "{exec}");
    assert!(
        svc.log_text().contains("Glance image downloaded"),
        "the image came from Glance"
    );
    // alt_demo cannot run demo's private image.
    let alt_token = token(&alt_demo()).await;
    let alt = create(
        &svc,
        &alt_token,
        json!({"image": image, "name": "stolen", "command": ["sleep", "3600"], "cpu": 0.5, "memory": "128"}),
    )
    .await;
    let refused = svc.wait_status(&alt_token, &alt, "Error", BOOT).await;
    assert!(
        refused["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("could not be found"),
        "{refused}"
    );
    for (token, id) in [(&demo_token, &id), (&alt_token, &alt)] {
        delete_and_wait_gone(&svc, token, id).await;
    }
    nest_tests::eventually(Duration::from_secs(60), "every server deleted", || async {
        cleanup.servers().is_empty().then_some(())
    })
    .await;
    drop(svc);
    drop(hypervisor);
}

/// The trust the service records for `project`.
async fn trust_of(svc: &ServiceProcess, project: &str) -> String {
    recorded_trusts(&svc.database_url())
        .await
        .into_iter()
        .find(|(p, _)| p == project)
        .map(|(_, trust)| trust)
        .unwrap_or_else(|| panic!("project {project} delegated no trust"))
}

/// The `status_reason` the hosts API shows for instance `host`, as admin
/// sees it (a call of the project's own users would renew its trust).
async fn host_reason(svc: &ServiceProcess, admin_token: &str, host: &str) -> Option<String> {
    let (code, hosts) = svc.call(admin_token, Method::GET, "/v1/hosts", None).await;
    assert_eq!(code, 200, "{hosts}");
    let shown = hosts["hosts"]
        .as_array()
        .and_then(|all| all.iter().find(|h| h["uuid"] == host))
        .unwrap_or_else(|| panic!("no host {host}: {hosts}"));
    assert_eq!(shown["status"], "Ready", "{shown}");
    shown["status_reason"].as_str().map(str::to_owned)
}

/// The Prometheus text of `/metrics`.
async fn metrics_text(svc: &ServiceProcess) -> String {
    reqwest::get(format!("{}/metrics", svc.url))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("a body")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_trust_leaves_its_project_as_it_is_and_the_others_swept_until_renewed() {
    let _serial = serial().await;
    let tag = unique_tag();
    let mut options = service_options(&tag);
    // No floating IPs: this test is about listings, not addresses.
    options.driver = options
        .driver
        .map(|d| d.replace(r#", { name = "pub", network = "public" }"#, ""));
    let (cleanup, hypervisor, svc) = start(&tag, options).await;
    let demo_token = token(&demo()).await;
    let alt_token = token(&alt_demo()).await;
    let admin_token = token(&admin()).await;
    let demo_project = project_id("demo");
    let body = |image: &str, name: &str| json!({"image": image, "name": name, "command": ["sleep", "3600"], "cpu": 0.5, "memory": "128"});
    let demo_image = svc.upload_test_image(&demo_token).await;
    let alt_image = svc.upload_test_image(&alt_token).await;
    let kept = create(&svc, &demo_token, body(&demo_image, "kept")).await;
    let swept = create(&svc, &alt_token, body(&alt_image, "swept")).await;
    let kept_view = svc.wait_status(&demo_token, &kept, "Running", BOOT).await;
    let swept_view = svc.wait_status(&alt_token, &swept, "Running", BOOT).await;
    let kept_host = kept_view["host"].as_str().expect("a host").to_owned();

    // demo's trust is deleted in Keystone, as an admin (or demo) can.
    let revoked = trust_of(&svc, &demo_project).await;
    assert_eq!(delete_trust(&revoked).await, 204, "delete demo's trust");

    // Within a reconcile period, demo's instance says why Nest cannot
    // reach OpenStack for it, and what demo's users can do.
    let reason = nest_tests::eventually(
        Duration::from_secs(75),
        "demo's instance to show the refused trust",
        || async { host_reason(&svc, &admin_token, &kept_host).await },
    )
    .await;
    assert!(
        reason.starts_with("cannot reach OpenStack for this project: the trust it delegated"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("Keystone has no trust {revoked} any more")),
        "{reason}"
    );
    assert!(
        reason.contains("users must run any container command"),
        "{reason}"
    );

    // alt_demo's server deleted behind Nest's back: its container turns
    // to Error within one reconcile period, while demo goes unjudged.
    let alt_server = server_of(&alt_demo(), &tag, &swept_view);
    openstack(&alt_demo(), &["server", "delete", &alt_server]);
    let lost = svc
        .wait_status(&alt_token, &swept, "Error", Duration::from_secs(75))
        .await;
    assert!(
        lost["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("instance deleted"),
        "{lost}"
    );
    let (code, still) = svc
        .call(
            &admin_token,
            Method::GET,
            &format!("/v1/containers/{kept}"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{still}");
    assert_eq!(
        still["status"], "Running",
        "demo's container as it was: {still}"
    );
    assert_eq!(
        trust_of(&svc, &demo_project).await,
        revoked,
        "no call of demo's users yet: nothing renewed"
    );
    let metrics = metrics_text(&svc).await;
    assert!(
        metrics.contains(r#"nest_project_listing_failures_total{cause="delegation_refused"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("nest_unreachable_projects 1"), "{metrics}");
    let log = svc.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot list this project's instances"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning for the outage, not one per sweep:\n{log}"
    );
    assert!(
        warnings[0].contains(&demo_project) && warnings[0].contains("delegation_refused"),
        "the warning names the project and the cause: {}",
        warnings[0]
    );

    // Any call of demo's users renews the trust (and withdraws the old).
    let (code, listed) = svc
        .call(&demo_token, Method::GET, "/v1/containers", None)
        .await;
    assert_eq!(code, 200, "{listed}");
    let renewed = trust_of(&svc, &demo_project).await;
    assert_ne!(renewed, revoked, "a new trust is recorded");
    assert_eq!(
        host_reason(&svc, &admin_token, &kept_host).await,
        None,
        "nothing to say once renewed"
    );
    assert!(
        svc.log_text()
            .contains("the project's refused delegation was replaced"),
        "{}",
        svc.log_text()
    );

    // The sweep covers demo again: its server deleted behind Nest's back
    // is noticed within one reconcile period.
    let demo_server = server_of(&demo(), &tag, &kept_view);
    openstack(&demo(), &["server", "delete", &demo_server]);
    let lost = svc
        .wait_status(&demo_token, &kept, "Error", Duration::from_secs(75))
        .await;
    assert!(
        lost["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("instance deleted"),
        "{lost}"
    );
    assert!(
        metrics_text(&svc)
            .await
            .contains("nest_unreachable_projects 0")
    );
    for (token, id) in [(&demo_token, &kept), (&alt_token, &swept)] {
        delete_and_wait_gone(&svc, token, id).await;
    }
    nest_tests::eventually(Duration::from_secs(60), "every server deleted", || async {
        cleanup.servers().is_empty().then_some(())
    })
    .await;
    // Dropping the service deletes the trusts it recorded (demo's renewed
    // one and alt_demo's), so that the run leaves none in the lab.
    let left = recorded_trusts(&svc.database_url()).await;
    drop(svc);
    for (project, trust) in left {
        assert_eq!(
            delete_trust(&trust).await,
            404,
            "trust {trust} of project {project} was deleted with the service"
        );
    }
    drop(hypervisor);
}

/// Deletes a Glance image on drop.
struct DeleteImage(String);

impl Drop for DeleteImage {
    fn drop(&mut self) {
        let _ = try_openstack(&admin(), &["image", "delete", &self.0]);
    }
}
