//! End to end through the real nest-service: the Zun API, the embedded
//! relay, the `local` driver booting instances (network namespace, dockerd,
//! agent from user-data), on SQLite and on PostgreSQL.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use nest_tests::service::{ALPHA, BETA, ServiceOptions, ServiceProcess};
use reqwest::Method;
use serde_json::{Value, json};

const BOOT: Duration = Duration::from_secs(90);

async fn create(svc: &ServiceProcess, token: &str, body: Value) -> String {
    let (code, view) = svc
        .call(token, Method::POST, "/v1/containers?run=true", Some(body))
        .await;
    assert_eq!(code, 202, "create: {view}");
    assert_eq!(view["status"], "Creating", "{view}");
    view["uuid"].as_str().expect("uuid").to_owned()
}

/// A database URL for this test: SQLite by default, a fresh PostgreSQL
/// database when `postgres` (from `NEST_TEST_POSTGRES_URL`).
fn postgres_database() -> String {
    let base = std::env::var("NEST_TEST_POSTGRES_URL").expect(
        "NEST_TEST_POSTGRES_URL is not set: run `scripts/postgres-for-tests.sh` as root and \
         export the URL it prints (scripts/test.sh does this)",
    );
    let name = nest_tests::unique("e2e").replace('-', "_");
    let out = std::process::Command::new("psql")
        .arg(&base)
        .args(["-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "create database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("unexpected NEST_TEST_POSTGRES_URL {base}"),
    }
}

async fn first_container_runs_on_a_booted_instance(svc: ServiceProcess) {
    let image = svc.upload_test_image(ALPHA).await;
    let id = create(
        &svc,
        ALPHA,
        json!({
            "image": image,
            "name": "web",
            "command": ["httpd", "-f", "-p", "8080"],
            "cpu": 0.5,
            "memory": "128",
            "ports": ["8080:8080"],
        }),
    )
    .await;
    let view = svc.wait_status(ALPHA, &id, "Running", BOOT).await;
    // Show names the instance, its address and the published port.
    let host = view["host"].as_str().expect("host").to_owned();
    let addr = view["addresses"]["local"][0]["addr"]
        .as_str()
        .expect("address")
        .to_owned();
    assert!(addr.starts_with("10.248."), "{view}");
    assert_eq!(
        view["published_ports"],
        json!([format!("{addr}:8080")]),
        "{view}"
    );
    assert_eq!(view["ports"], json!([8080]), "{view}");
    // The port answers from the host (busybox httpd: 404 for /).
    let answer = reqwest::get(format!("http://{addr}:8080/"))
        .await
        .expect("the published port answers from the host");
    assert_eq!(answer.status().as_u16(), 404);
    // The hosts view shows the project's instance.
    let (code, hosts) = svc.call(ALPHA, Method::GET, "/v1/hosts", None).await;
    assert_eq!(code, 200, "{hosts}");
    assert_eq!(hosts["hosts"][0]["uuid"], host, "{hosts}");
    // Exec, logs, stop, start, delete.
    let (code, exec) = svc
        .call(
            ALPHA,
            Method::POST,
            &format!("/v1/containers/{id}/execute"),
            Some(json!({"command": "sh -c \"echo hi; exit 3\""})),
        )
        .await;
    assert_eq!(code, 200, "{exec}");
    assert_eq!(exec["output"], "hi\n");
    assert_eq!(exec["exit_code"], 3);
    let (code, _) = svc
        .call(
            ALPHA,
            Method::POST,
            "/v1/containers/web/stop?timeout=1",
            None,
        )
        .await;
    assert_eq!(code, 202);
    svc.wait_status(ALPHA, &id, "Stopped", BOOT).await;
    let (code, _) = svc
        .call(
            ALPHA,
            Method::POST,
            &format!("/v1/containers/{id}/start"),
            None,
        )
        .await;
    assert_eq!(code, 202);
    svc.wait_status(ALPHA, &id, "Running", BOOT).await;
    // Forced delete is admin-only: refused, and the container is untouched.
    let (code, body) = svc
        .call(
            ALPHA,
            Method::DELETE,
            &format!("/v1/containers/{id}?force=true"),
            None,
        )
        .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["errors"][0]["detail"], "policy doesn't allow container:delete_force to be performed",
        "{body}"
    );
    svc.wait_status(ALPHA, &id, "Running", BOOT).await;
    let (code, body) = svc
        .call(
            ALPHA,
            Method::DELETE,
            &format!("/v1/containers/{id}?stop=true"),
            None,
        )
        .await;
    assert_eq!(code, 204, "{body}");
    nest_tests::eventually(BOOT, "the container to be gone", || async {
        let (code, _) = svc
            .call(ALPHA, Method::GET, &format!("/v1/containers/{id}"), None)
            .await;
        (code == 404).then_some(())
    })
    .await;
    // Gone from the instance's engine too.
    let socket = svc.instance_socket(&host);
    let out = std::process::Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(["ps", "-aq"])
        .output()
        .expect("docker ps on the instance");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_on_an_empty_system_boots_an_instance_and_runs_there() {
    first_container_runs_on_a_booted_instance(ServiceProcess::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_on_an_empty_system_boots_an_instance_and_runs_there_on_postgres() {
    let svc = ServiceProcess::start_with(ServiceOptions {
        database_url: Some(postgres_database()),
        ..Default::default()
    })
    .await;
    first_container_runs_on_a_booted_instance(svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_pack_instances_and_projects_stay_apart() {
    let svc = ServiceProcess::start().await;
    let image_alpha = svc.upload_test_image(ALPHA).await;
    let image_beta = svc.upload_test_image(BETA).await;

    // 20 containers of 256 MiB: 8 fit in a 2 GiB instance, so 3 instances.
    let creates = (0..20).map(|i| {
        let svc = &svc;
        let image = image_alpha.clone();
        async move {
            create(
                svc,
                ALPHA,
                json!({
                    "image": image,
                    "command": ["sleep", "3600"],
                    "cpu": 0.1,
                    "memory": "256",
                    "ports": [format!("{}:80", 9000 + i)],
                }),
            )
            .await
        }
    });
    let ids = futures_util::future::join_all(creates).await;
    let mut hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut bookings = HashSet::new();
    for id in &ids {
        let view = svc.wait_status(ALPHA, id, "Running", BOOT * 2).await;
        let host = view["host"].as_str().expect("host").to_owned();
        // published_ports are "<instance address>:<host port>".
        for published in view["published_ports"].as_array().expect("published ports") {
            let port = published
                .as_str()
                .and_then(|p| p.rsplit_once(':'))
                .expect("addr:port")
                .1;
            assert!(
                bookings.insert((host.clone(), port.to_owned())),
                "host port {port} booked twice on {host}"
            );
        }
        hosts.entry(host).or_default().push(id.clone());
    }
    assert_eq!(hosts.len(), 3, "20 × 256 MiB fit on 3 instances: {hosts:?}");

    // Two more that want host port 9000, already taken on one instance:
    // neither shares it, and they don't share an instance with each other.
    let mut again = Vec::new();
    for _ in 0..2 {
        again.push(
            create(
                &svc,
                ALPHA,
                json!({"image": image_alpha, "command": ["sleep", "3600"], "cpu": 0.1, "memory": "64", "ports": ["9000:80"]}),
            )
            .await,
        );
    }
    for id in &again {
        let view = svc.wait_status(ALPHA, id, "Running", BOOT).await;
        let host = view["host"].as_str().expect("host").to_owned();
        assert!(
            bookings.insert((host.clone(), "9000".to_owned())),
            "host port 9000 booked twice on {host}"
        );
    }

    // Another project never shares an instance with the first.
    let beta = create(
        &svc,
        BETA,
        json!({"image": image_beta, "command": ["sleep", "3600"], "memory": "64", "cpu": 0.1}),
    )
    .await;
    let view = svc.wait_status(BETA, &beta, "Running", BOOT).await;
    let beta_host = view["host"].as_str().expect("host");
    assert!(!hosts.contains_key(beta_host), "projects share an instance");

    // Every route answers 404 to beta for alpha's containers, and nothing
    // changes.
    let victim = &ids[0];
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/containers/{victim}"), None),
        (
            Method::PATCH,
            format!("/v1/containers/{victim}"),
            Some(json!({"name": "stolen"})),
        ),
        (
            Method::DELETE,
            format!("/v1/containers/{victim}?force=true"),
            None,
        ),
        (Method::POST, format!("/v1/containers/{victim}/start"), None),
        (Method::POST, format!("/v1/containers/{victim}/stop"), None),
        (
            Method::POST,
            format!("/v1/containers/{victim}/reboot"),
            None,
        ),
        (Method::POST, format!("/v1/containers/{victim}/pause"), None),
        (
            Method::POST,
            format!("/v1/containers/{victim}/unpause"),
            None,
        ),
        (Method::POST, format!("/v1/containers/{victim}/kill"), None),
        (
            Method::POST,
            format!("/v1/containers/{victim}/execute"),
            Some(json!({"command": "true"})),
        ),
        (Method::GET, format!("/v1/containers/{victim}/logs"), None),
        (Method::GET, format!("/v1/containers/{victim}/attach"), None),
        (Method::GET, format!("/v1/containers/{victim}/top"), None),
        (Method::GET, format!("/v1/containers/{victim}/stats"), None),
        (
            Method::GET,
            format!("/v1/containers/{victim}/container_actions"),
            None,
        ),
    ];
    for (method, path, body) in routes {
        let (code, answer) = svc.call(BETA, method.clone(), &path, body).await;
        assert_eq!(code, 404, "{method} {path} answered {answer}");
        assert!(
            answer.to_string().contains("container-not-found"),
            "{method} {path}: {answer}"
        );
    }
    let (code, list) = svc.call(BETA, Method::GET, "/v1/containers", None).await;
    assert_eq!(code, 200);
    let listed: BTreeSet<&str> = list["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["uuid"].as_str())
        .collect();
    assert_eq!(listed, BTreeSet::from([beta.as_str()]));
    let view = svc.wait_status(ALPHA, victim, "Running", BOOT).await;
    assert_ne!(view["name"], "stolen", "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_killed_during_a_burst_loses_and_duplicates_nothing() {
    let mut svc = ServiceProcess::start().await;
    let image = svc.upload_test_image(ALPHA).await;
    // A burst of creates; the service dies while they are being placed.
    let mut accepted = Vec::new();
    for i in 0..12 {
        let id = create(
            &svc,
            ALPHA,
            json!({
                "image": image,
                "name": format!("burst-{i}"),
                "command": ["sleep", "3600"],
                "cpu": 0.1,
                "memory": "128",
            }),
        )
        .await;
        accepted.push(id);
        if i == 7 {
            svc.kill().await;
            break;
        }
    }
    svc.restart().await;
    // Every accepted container runs, once.
    let mut hosts = BTreeSet::new();
    for id in &accepted {
        let view = svc.wait_status(ALPHA, id, "Running", BOOT * 2).await;
        hosts.insert(view["host"].as_str().expect("host").to_owned());
    }
    let (code, list) = svc.call(ALPHA, Method::GET, "/v1/containers", None).await;
    assert_eq!(code, 200);
    let mut listed: Vec<String> = list["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .filter_map(|c| c["uuid"].as_str().map(str::to_owned))
        .collect();
    listed.sort();
    let mut expected = accepted.clone();
    expected.sort();
    assert_eq!(listed, expected, "no accepted container lost or duplicated");
    // No orphans: the engines hold exactly these containers, and the
    // driver exactly the instances in use.
    nest_tests::eventually(BOOT, "no orphan instances", || async {
        let instances = svc.driver_instances().await;
        (instances.iter().cloned().collect::<BTreeSet<_>>() == hosts).then_some(())
    })
    .await;
    let mut on_engines = Vec::new();
    for host in &hosts {
        let socket = svc.instance_socket(host);
        let out = std::process::Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(["ps", "-a", "--format", "{{.Label \"nest.container.uuid\"}}"])
            .output()
            .expect("docker ps on an instance");
        assert!(out.status.success());
        on_engines.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned),
        );
    }
    on_engines.sort();
    assert_eq!(
        on_engines, expected,
        "each container exists once on the engines"
    );
}

async fn instances_after_emptying(warm_pool: usize) -> (usize, usize) {
    let svc = ServiceProcess::start_with(ServiceOptions {
        idle_timeout: "2s".into(),
        warm_pool,
        ..Default::default()
    })
    .await;
    let image = svc.upload_test_image(ALPHA).await;
    let id = create(
        &svc,
        ALPHA,
        json!({"image": image, "command": ["sleep", "3600"], "cpu": 0.1, "memory": "64"}),
    )
    .await;
    svc.wait_status(ALPHA, &id, "Running", BOOT).await;
    let before = svc.driver_instances().await.len();
    let (code, _) = svc
        .call(
            ALPHA,
            Method::DELETE,
            &format!("/v1/containers/{id}?stop=true"),
            None,
        )
        .await;
    assert_eq!(code, 204);
    nest_tests::eventually(BOOT, "the container to be gone", || async {
        let (code, _) = svc
            .call(ALPHA, Method::GET, &format!("/v1/containers/{id}"), None)
            .await;
        (code == 404).then_some(())
    })
    .await;
    // Retired within the idle timeout (2s) plus a few scheduler passes;
    // with a warm pool, wait that long and check it is still there.
    let after = if warm_pool == 0 {
        nest_tests::eventually(
            Duration::from_secs(30),
            "the idle instance to be deleted",
            || async { svc.driver_instances().await.is_empty().then_some(0) },
        )
        .await
    } else {
        tokio::time::sleep(Duration::from_secs(8)).await;
        svc.driver_instances().await.len()
    };
    // The record goes just after the driver's delete returns: the hosts
    // view agrees within a moment, and stays so.
    nest_tests::eventually(
        Duration::from_secs(10),
        "the hosts view to agree with the driver",
        || async {
            let (_, hosts) = svc.call(ALPHA, Method::GET, "/v1/hosts", None).await;
            (hosts["hosts"].as_array().map(Vec::len) == Some(after)).then_some(())
        },
    )
    .await;
    (before, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_left_empty_past_its_idle_timeout_is_deleted() {
    assert_eq!(instances_after_emptying(0).await, (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warm_pool_keeps_an_empty_instance() {
    assert_eq!(instances_after_emptying(1).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stand_alone_relay_carries_the_agents_instead_of_the_embedded_one() {
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut svc = ServiceProcess::prepare(ServiceOptions {
        external_relay: Some(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
        ..Default::default()
    });
    let certs = svc.issue_relay_certificate();
    let relay = nest_tests::RelayProcess::start_from(
        svc.dir(),
        &certs.join("ca.pem"),
        &certs.join("relay.pem"),
        &certs.join("relay-key.pem"),
        std::net::SocketAddr::from(([0, 0, 0, 0], port)),
        "2s",
    )
    .await;
    svc.spawn().await;
    assert!(
        svc.log_text().contains("using a stand-alone relay"),
        "the service must not embed a relay: {}",
        svc.log_text()
    );
    let image = svc.upload_test_image(ALPHA).await;
    let id = create(
        &svc,
        ALPHA,
        json!({"image": image, "command": ["sleep", "3600"], "cpu": 0.1, "memory": "64"}),
    )
    .await;
    svc.wait_status(ALPHA, &id, "Running", BOOT).await;
    let (code, exec) = svc
        .call(
            ALPHA,
            Method::POST,
            &format!("/v1/containers/{id}/execute"),
            Some(json!({"command": "echo through-the-relay"})),
        )
        .await;
    assert_eq!(code, 200, "{exec}");
    assert_eq!(exec["output"], "through-the-relay\n");
    drop(svc);
    drop(relay);
}

/// Reads websocket frames until `want` shows up in what was received.
async fn read_console<S>(socket: &mut S, want: &str) -> String
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(frame) = socket.next().await {
            let data = match frame.expect("websocket frame") {
                tokio_tungstenite::tungstenite::Message::Binary(data) => data.to_vec(),
                tokio_tungstenite::tungstenite::Message::Text(text) => text.as_bytes().to_vec(),
                tokio_tungstenite::tungstenite::Message::Close(_) => break,
                _ => continue,
            };
            seen.push_str(&String::from_utf8_lossy(&data));
            if seen.contains(want) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{want:?} never arrived; got {seen:?}");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_exec_and_attach_run_over_the_services_own_websockets() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let svc = ServiceProcess::start().await;
    let image = svc.upload_test_image(ALPHA).await;
    let id = create(
        &svc,
        ALPHA,
        json!({"image": image, "command": ["cat"], "interactive": true, "tty": true,
               "cpu": 0.1, "memory": "64"}),
    )
    .await;
    svc.wait_status(ALPHA, &id, "Running", BOOT).await;

    // Interactive exec: the answer is a websocket URL on the service itself.
    let (code, exec) = svc
        .call(
            ALPHA,
            Method::POST,
            &format!("/v1/containers/{id}/execute?run=false&interactive=true"),
            Some(json!({"command": "sh"})),
        )
        .await;
    assert_eq!(code, 200, "{exec}");
    let url = exec["proxy_url"].as_str().expect("proxy_url").to_owned();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    let (mut shell, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("open the exec websocket");
    shell
        .send(Message::Binary(b"echo sum-$((40+2))\n".to_vec().into()))
        .await
        .expect("type");
    let seen = read_console(&mut shell, "sum-42").await;
    assert!(
        seen.contains("echo sum-$((40+2))"),
        "the tty echoes: {seen:?}"
    );
    shell
        .send(Message::Binary(b"exit\n".to_vec().into()))
        .await
        .expect("exit");
    drop(shell);
    // The token was single-use.
    let again = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(again.is_err(), "a console token must not open twice");

    // Attach: cat echoes what is typed back through the container's tty.
    let (code, attach) = svc
        .call(
            ALPHA,
            Method::GET,
            &format!("/v1/containers/{id}/attach"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{attach}");
    let url = attach.as_str().expect("attach URL").to_owned();
    let (mut console, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("open the attach websocket");
    console
        .send(Message::Binary(b"through-attach\n".to_vec().into()))
        .await
        .expect("type");
    read_console(&mut console, "through-attach").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_resizes_the_running_container_within_its_instance() {
    let svc = ServiceProcess::start().await;
    let image = svc.upload_test_image(ALPHA).await;
    let id = create(
        &svc,
        ALPHA,
        json!({"image": image, "command": ["sleep", "3600"], "cpu": 0.5, "memory": "128"}),
    )
    .await;
    let view = svc.wait_status(ALPHA, &id, "Running", BOOT).await;
    let host = view["host"].as_str().expect("host").to_owned();
    let limits = || {
        let out = std::process::Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", svc.instance_socket(&host).display()))
            .args([
                "inspect",
                "--format",
                "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
                &format!("nest-{id}"),
            ])
            .output()
            .expect("docker inspect on the instance");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(limits(), format!("{} 500000000", 128 * 1024 * 1024));

    let (code, view) = svc
        .call(
            ALPHA,
            Method::PATCH,
            &format!("/v1/containers/{id}"),
            Some(json!({"memory": "256", "cpu": 1.0})),
        )
        .await;
    assert_eq!(code, 200, "{view}");
    assert_eq!(view["memory"], "256", "{view}");
    assert_eq!(limits(), format!("{} 1000000000", 256 * 1024 * 1024));

    // More than the instance offers (2 GiB): refused, nothing changes.
    let (code, body) = svc
        .call(
            ALPHA,
            Method::PATCH,
            &format!("/v1/containers/{id}"),
            Some(json!({"memory": "4096"})),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("instance offers"), "{body}");
    let view = svc.wait_status(ALPHA, &id, "Running", BOOT).await;
    assert_eq!(view["memory"], "256", "{view}");
    assert_eq!(limits(), format!("{} 1000000000", 256 * 1024 * 1024));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_can_download_the_agent_from_the_service() {
    let svc = ServiceProcess::start_with(ServiceOptions {
        // Behind a TLS-terminating proxy in production; cloud-init only
        // downloads over HTTPS.
        public_url: Some("https://nest.example".into()),
        extra: "[agent]\nsource = \"download\"\n".into(),
        ..Default::default()
    })
    .await;
    let http = reqwest::Client::new();
    let binary = http
        .get(format!("{}/v1/nest/agent", svc.url))
        .send()
        .await
        .expect("download the agent");
    assert_eq!(binary.status().as_u16(), 200);
    let bytes = binary.bytes().await.expect("agent bytes");
    let served_sha = http
        .get(format!("{}/v1/nest/agent.sha256", svc.url))
        .send()
        .await
        .expect("agent sha256")
        .text()
        .await
        .expect("sha text");
    let on_disk = std::fs::read(nest_tests::bin_path("nest-agent")).expect("read nest-agent");
    assert_eq!(bytes.len(), on_disk.len(), "the whole binary is served");
    let digest = |data: &[u8]| -> String {
        let out = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().expect("stdin").write_all(data)?;
                child.wait_with_output()
            })
            .expect("sha256sum");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(served_sha.trim(), digest(&on_disk));
    assert_eq!(digest(&bytes), digest(&on_disk));

    // A booted instance's user-data carries the download and its check
    // (the local driver itself plays systemd and runs the agent it has).
    let image = svc.upload_test_image(ALPHA).await;
    let id = create(
        &svc,
        ALPHA,
        json!({"image": image, "command": ["sleep", "3600"], "cpu": 0.1, "memory": "64"}),
    )
    .await;
    let view = svc.wait_status(ALPHA, &id, "Running", BOOT).await;
    let host = view["host"].as_str().expect("host");
    let script = svc
        .instances_dir()
        .join(host)
        .join("root")
        .join(nest_cloud_init::INSTALL_SCRIPT_PATH.trim_start_matches('/'));
    assert!(script.exists(), "{} missing", script.display());
}

/// The mode bits of `path` (permissions only).
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_dir_database_and_stored_images_a_fresh_service_creates_are_private() {
    let svc = ServiceProcess::start().await;
    let state = svc.state_dir();
    assert_eq!(mode_of(&state), 0o700, "state_dir");
    assert_eq!(mode_of(&state.join("nest.db")), 0o600, "nest.db");
    svc.upload_test_image(ALPHA).await;
    let images = state.join("images");
    assert_eq!(mode_of(&images), 0o700, "images/");
    let mut files = 0;
    for project in std::fs::read_dir(&images).expect("images/ reads") {
        let project = project.expect("entry").path();
        assert_eq!(mode_of(&project), 0o700, "{}", project.display());
        for file in std::fs::read_dir(&project).expect("project dir reads") {
            let file = file.expect("entry").path();
            assert_eq!(mode_of(&file), 0o600, "{}", file.display());
            files += 1;
        }
    }
    assert!(files >= 2, "an archive and its record were stored");
    for name in ["nest.db-wal", "nest.db-shm"] {
        let path = state.join(name);
        if path.exists() {
            assert_eq!(mode_of(&path), 0o600, "{name}");
        }
    }
    assert!(
        !svc.log_text().contains("readable by other users"),
        "no warning for what the service made itself"
    );
}
