//! python-zunclient (from PyPI), authenticated against the real Keystone of
//! ../shared/openstack-lab with Nest registered in its catalog as service
//! type `container`, drives run, list, show, network-list, logs, exec,
//! stop, start and delete against a real nest-service.
//!
//! Needs the lab (`../shared/openstack-lab/up.sh`) and zunclient in a
//! virtualenv (`scripts/test.sh` sets both up); fails, never skips, without
//! them.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nest_tests::keystone::{self, Catalog};

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

/// Runs `zun <args>` with `env` (the demo user's login); returns stdout,
/// failing on error.
fn zun(env: &[(&'static str, String)], args: &[&str]) -> String {
    let out = Command::new(zun_binary())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v.as_str())))
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

fn status_of(env: &[(&'static str, String)], name: &str) -> String {
    let shown = zun(env, &["show", name]);
    shown
        .lines()
        .find(|l| l.contains("| status "))
        .and_then(|l| l.split('|').nth(2))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

async fn wait_for(env: &[(&'static str, String)], name: &str, status: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let now = status_of(env, name);
        if now == status {
            return;
        }
        assert!(
            now != "Error",
            "{name} failed: {}",
            zun(env, &["show", name])
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} is {now}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_zunclient_drives_nest_through_the_keystone_catalog() {
    let svc = keystone::start_service().await;
    let catalog = Catalog::register(&format!("{}/v1", svc.url)).await;
    let env = catalog.env("demo", "demopass", "demo");
    let env = env.as_slice();

    let http = reqwest::Client::new();
    let (demo, _) = keystone::token(&http, "demo", "demopass", "demo").await;
    let image = svc.upload_test_image(&demo).await;

    let run = zun(
        env,
        &[
            "run",
            "--name",
            "zc-web",
            &image,
            "sh",
            "-c",
            "echo started; sleep 3600",
        ],
    );
    assert!(run.contains("zc-web"), "{run}");
    wait_for(env, "zc-web", "Running").await;
    let list = zun(env, &["list"]);
    assert!(
        list.contains("zc-web") && list.contains("Running"),
        "{list}"
    );
    // The container's networks are its instance's (the route is ≥1.13).
    let networks = zun(env, &["network-list", "zc-web"]);
    assert!(networks.contains("10.248."), "{networks}");
    let logs = zun(env, &["logs", "zc-web"]);
    assert!(logs.contains("started"), "{logs}");
    let exec = zun(env, &["exec", "zc-web", "echo", "hello-from-exec"]);
    assert!(exec.contains("hello-from-exec"), "{exec}");
    zun(env, &["stop", "zc-web"]);
    wait_for(env, "zc-web", "Stopped").await;
    zun(env, &["start", "zc-web"]);
    wait_for(env, "zc-web", "Running").await;
    zun(env, &["delete", "--stop", "zc-web"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while zun(env, &["list"]).contains("zc-web") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "zc-web was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    catalog.remove().await;
}
