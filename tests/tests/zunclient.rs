//! python-zunclient (from PyPI), authenticated against the real Keystone of
//! ../shared/openstack-lab with Nest registered in its catalog as service
//! type `container`, drives run, list, show, logs, exec, stop, start and
//! delete against a real nest-service.
//!
//! Needs the lab (`../shared/openstack-lab/up.sh`) and zunclient in a
//! virtualenv (`scripts/test.sh` sets both up); fails, never skips, without
//! them.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nest_tests::service::{ServiceOptions, ServiceProcess};
use serde_json::{Value, json};

const KEYSTONE: &str = "http://127.0.0.1:5000/v3";

fn auth_url() -> String {
    std::env::var("OS_AUTH_URL").unwrap_or_else(|_| KEYSTONE.to_owned())
}

fn zun_binary() -> PathBuf {
    let path = PathBuf::from(
        std::env::var("NEST_ZUN_BIN").unwrap_or_else(|_| "/opt/nest-zunclient/bin/zun".into()),
    );
    assert!(
        path.exists(),
        "{} is missing: install python-zunclient in a virtualenv \
         (`python3 -m venv /opt/nest-zunclient && /opt/nest-zunclient/bin/pip install python-zunclient`; \
         scripts/test.sh does this) or set NEST_ZUN_BIN",
        path.display()
    );
    path
}

/// A project-scoped token from Keystone.
async fn token(http: &reqwest::Client, user: &str, password: &str, project: &str) -> String {
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
    response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .expect("X-Subject-Token")
        .to_owned()
}

/// Registers `url` as the public `container` endpoint; returns its id.
async fn register_endpoint(http: &reqwest::Client, admin: &str, url: &str) -> String {
    let base = auth_url();
    let services: Value = http
        .get(format!("{base}/services?type=container"))
        .header("X-Auth-Token", admin)
        .send()
        .await
        .expect("list services")
        .json()
        .await
        .expect("services JSON");
    let service_id = match services["services"][0]["id"].as_str() {
        Some(id) => id.to_owned(),
        None => {
            let created: Value = http
                .post(format!("{base}/services"))
                .header("X-Auth-Token", admin)
                .json(&json!({"service": {"type": "container", "name": "nest", "enabled": true}}))
                .send()
                .await
                .expect("create service")
                .json()
                .await
                .expect("service JSON");
            created["service"]["id"]
                .as_str()
                .expect("service id")
                .to_owned()
        }
    };
    // Endpoints left by an earlier, interrupted run would shadow ours.
    let endpoints: Value = http
        .get(format!("{base}/endpoints?service_id={service_id}"))
        .header("X-Auth-Token", admin)
        .send()
        .await
        .expect("list endpoints")
        .json()
        .await
        .expect("endpoints JSON");
    for old in endpoints["endpoints"].as_array().into_iter().flatten() {
        if let Some(id) = old["id"].as_str() {
            let _ = http
                .delete(format!("{base}/endpoints/{id}"))
                .header("X-Auth-Token", admin)
                .send()
                .await;
        }
    }
    let created: Value = http
        .post(format!("{base}/endpoints"))
        .header("X-Auth-Token", admin)
        .json(&json!({"endpoint": {
            "service_id": service_id, "interface": "public", "url": url, "region_id": "RegionOne"
        }}))
        .send()
        .await
        .expect("create endpoint")
        .json()
        .await
        .expect("endpoint JSON");
    created["endpoint"]["id"]
        .as_str()
        .expect("endpoint id")
        .to_owned()
}

/// Runs `zun <args>` as the demo user; returns stdout, failing on error.
fn zun(args: &[&str]) -> String {
    let out = Command::new(zun_binary())
        .args(args)
        .env("OS_AUTH_URL", auth_url())
        .env("OS_USERNAME", "demo")
        .env("OS_PASSWORD", "demopass")
        .env("OS_PROJECT_NAME", "demo")
        .env("OS_USER_DOMAIN_NAME", "Default")
        .env("OS_PROJECT_DOMAIN_NAME", "Default")
        .env("OS_REGION_NAME", "RegionOne")
        .env_remove("OS_TOKEN")
        .output()
        .expect("run zun");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "zun {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn status_of(name: &str) -> String {
    let shown = zun(&["show", name]);
    shown
        .lines()
        .find(|l| l.contains("| status "))
        .and_then(|l| l.split('|').nth(2))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

async fn wait_for(name: &str, status: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let now = status_of(name);
        if now == status {
            return;
        }
        assert!(now != "Error", "{name} failed: {}", zun(&["show", name]));
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} is {now}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_zunclient_drives_nest_through_the_keystone_catalog() {
    let http = reqwest::Client::new();
    let admin = token(&http, "admin", "adminpass", "admin").await;
    let svc = ServiceProcess::start_with(ServiceOptions {
        auth: Some(format!(
            "mode = \"keystone\"\nauth_url = \"{}\"\nusername = \"admin\"\npassword = \"adminpass\"\nproject_name = \"admin\"\n",
            auth_url()
        )),
        ..Default::default()
    })
    .await;
    let endpoint = register_endpoint(&http, &admin, &format!("{}/v1", svc.url)).await;

    let demo = token(&http, "demo", "demopass", "demo").await;
    let image = svc.upload_test_image(&demo).await;

    let run = zun(&[
        "run",
        "--name",
        "zc-web",
        &image,
        "sh",
        "-c",
        "echo started; sleep 3600",
    ]);
    assert!(run.contains("zc-web"), "{run}");
    wait_for("zc-web", "Running").await;
    let list = zun(&["list"]);
    assert!(
        list.contains("zc-web") && list.contains("Running"),
        "{list}"
    );
    let logs = zun(&["logs", "zc-web"]);
    assert!(logs.contains("started"), "{logs}");
    let exec = zun(&["exec", "zc-web", "echo", "hello-from-exec"]);
    assert!(exec.contains("hello-from-exec"), "{exec}");
    zun(&["stop", "zc-web"]);
    wait_for("zc-web", "Stopped").await;
    zun(&["start", "zc-web"]);
    wait_for("zc-web", "Running").await;
    zun(&["delete", "--stop", "zc-web"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while zun(&["list"]).contains("zc-web") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "zc-web was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let _ = http
        .delete(format!("{}/endpoints/{endpoint}", auth_url()))
        .header("X-Auth-Token", &admin)
        .send()
        .await;
}
