//! What goes wrong in an instance is reported, bounded and recovered from:
//! end to end through the real nest-service on the `local` driver.

use std::time::Duration;

use nest_tests::service::{ALPHA, ServiceOptions, ServiceProcess};
use reqwest::Method;
use serde_json::json;

const BOOT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_image_cannot_be_pulled_ends_in_error_with_the_pull_error() {
    let svc = ServiceProcess::start_with(ServiceOptions {
        scheduler_extra: "create_attempts = 3\ncreate_retry_delay = \"1s\"\n".into(),
        ..Default::default()
    })
    .await;
    // Nothing listens on port 9 of the instance's own loopback.
    let image = "127.0.0.1:9/nest-missing/app:1";
    let (code, view) = svc
        .call(
            ALPHA,
            Method::POST,
            "/v1/containers?run=true",
            Some(json!({"image": image, "name": "unpullable", "memory": "64"})),
        )
        .await;
    assert_eq!(code, 202, "{view}");
    let id = view["uuid"].as_str().expect("uuid").to_owned();

    // While it retries, its reason says what it waits for...
    let mut saw_retrying = None;
    let deadline = tokio::time::Instant::now() + BOOT;
    let last = loop {
        let (code, view) = svc
            .call(ALPHA, Method::GET, &format!("/v1/containers/{id}"), None)
            .await;
        assert_eq!(code, 200, "{view}");
        let reason = view["status_reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if view["status"] == "Creating" && reason.starts_with("retrying") {
            saw_retrying = Some(reason);
        }
        if view["status"] != "Creating" {
            break view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still Creating after {BOOT:?}: {view}\n{}",
            svc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let retrying = saw_retrying.expect("a retrying reason was shown");
    assert!(
        retrying.contains("tries failed") && retrying.contains(image),
        "{retrying}"
    );
    // ... and after the last try it ends in Error with the pull's reason.
    assert_eq!(last["status"], "Error", "{last}");
    let reason = last["status_reason"].as_str().expect("a reason");
    assert!(reason.contains(image), "{reason}");
    assert!(reason.contains("gave up after 3 tries"), "{reason}");
    assert!(
        reason.contains("connection refused") || reason.contains("dial tcp"),
        "the engine's own words: {reason}"
    );
    // Deleting it leaves nothing behind.
    let (code, body) = svc
        .call(ALPHA, Method::DELETE, &format!("/v1/containers/{id}"), None)
        .await;
    assert_eq!(code, 204, "{body}");
}

// ---- supervision: what dies in an instance is started again ----

/// The local driver's restart delay in these tests: long enough to see
/// the instance while its engine is down.
const RESTART_DELAY: Duration = Duration::from_secs(8);

/// The pid recorded in one of an instance's pid files (`<pid> <start>`).
fn recorded_pid(svc: &ServiceProcess, instance: &str, file: &str) -> i32 {
    let path = svc.instances_dir().join(instance).join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{} holds no pid: {text:?}", path.display()))
}

fn kill_9(pid: i32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid}");
}

/// `docker inspect` of a container on an instance's own engine.
fn engine_inspect(svc: &ServiceProcess, instance: &str, id: &str, format: &str) -> String {
    let socket = svc.instance_socket(instance);
    let out = std::process::Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(["inspect", "--format", format, &format!("nest-{id}")])
        .output()
        .expect("docker inspect");
    assert!(
        out.status.success(),
        "inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn run_sleeper(svc: &ServiceProcess) -> (String, String) {
    let image = svc.upload_test_image(ALPHA).await;
    let (code, view) = svc
        .call(
            ALPHA,
            Method::POST,
            "/v1/containers?run=true",
            Some(json!({"image": image, "name": "web", "command": ["sleep", "100000"], "memory": "64"})),
        )
        .await;
    assert_eq!(code, 202, "{view}");
    let id = view["uuid"].as_str().expect("uuid").to_owned();
    let view = svc.wait_status(ALPHA, &id, "Running", BOOT).await;
    (id, view["host"].as_str().expect("host").to_owned())
}

async fn host(svc: &ServiceProcess, host: &str) -> serde_json::Value {
    let (code, view) = svc
        .call(ALPHA, Method::GET, &format!("/v1/hosts/{host}"), None)
        .await;
    assert_eq!(code, 200, "{view}");
    view
}

async fn exec(svc: &ServiceProcess, id: &str) -> (u16, serde_json::Value) {
    svc.call(
        ALPHA,
        Method::POST,
        &format!("/v1/containers/{id}/execute"),
        Some(json!({"command": "echo alive"})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_is_started_again_and_its_container_is_untouched() {
    let svc = ServiceProcess::start().await;
    let (id, instance) = run_sleeper(&svc).await;
    let started_at = engine_inspect(&svc, &instance, &id, "{{.State.StartedAt}}");
    let agent = recorded_pid(&svc, &instance, "agent.pid");

    kill_9(agent);
    let killed = tokio::time::Instant::now();
    nest_tests::eventually(
        Duration::from_secs(20),
        "the agent to answer again",
        || async {
            let (code, _) = exec(&svc, &id).await;
            (code == 200 && recorded_pid(&svc, &instance, "agent.pid") != agent).then_some(())
        },
    )
    .await;
    let back_in = killed.elapsed();
    assert!(back_in < Duration::from_secs(15), "back after {back_in:?}");
    assert_eq!(host(&svc, &instance).await["status"], "Ready");
    let view = svc.wait_status(ALPHA, &id, "Running", BOOT).await;
    assert_eq!(view["status_reason"], serde_json::Value::Null, "{view}");
    assert_eq!(
        engine_inspect(&svc, &instance, &id, "{{.State.StartedAt}}"),
        started_at,
        "the container was not restarted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_engine_is_reported_then_recovered_with_live_restore() {
    let svc = ServiceProcess::start_with(ServiceOptions {
        extra: format!("restart_delay = \"{}s\"\n", RESTART_DELAY.as_secs()),
        ..Default::default()
    })
    .await;
    let (id, instance) = run_sleeper(&svc).await;
    let started_at = engine_inspect(&svc, &instance, &id, "{{.State.StartedAt}}");

    kill_9(recorded_pid(&svc, &instance, "dockerd.pid"));
    // While the engine is down: the instance is Degraded and the container
    // Unknown, each saying why; calls say the engine, not the agent, is away.
    let degraded = nest_tests::eventually(RESTART_DELAY, "the instance Degraded", || async {
        let view = host(&svc, &instance).await;
        (view["status"] == "Degraded").then_some(view)
    })
    .await;
    let view = svc.wait_status(ALPHA, &id, "Unknown", RESTART_DELAY).await;
    let reason = view["status_reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("engine does not answer"), "{view}");
    assert!(
        reason.contains("Connection refused"),
        "the agent's own words: {view}"
    );
    // A call refused meanwhile says what is wrong, never that the agent is
    // away: the container's state is Unknown, or the engine does not answer.
    let (code, answer) = exec(&svc, &id).await;
    let detail = answer["errors"][0]["detail"].as_str().unwrap_or_default();
    assert!(!detail.contains("not connected"), "{answer}");
    assert!(
        (code == 409 && detail.contains("Unknown")) || (code == 503 && detail.contains("engine")),
        "{answer}"
    );
    assert_eq!(degraded["status"], "Degraded");

    // The engine is started again; its container kept running through it.
    svc.wait_status(ALPHA, &id, "Running", BOOT).await;
    assert_eq!(host(&svc, &instance).await["status"], "Ready");
    let (code, answer) = exec(&svc, &id).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        engine_inspect(&svc, &instance, &id, "{{.State.StartedAt}}"),
        started_at,
        "live-restore kept the container running"
    );
}
