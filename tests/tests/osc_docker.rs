//! The 2014 proposal's Docker client use case with the real docker CLI:
//! `eval "$(osc docker-env)"` points it at Nest's Docker endpoint with a
//! client certificate made for the caller, `docker run -p 222:22 -d foo
//! /usr/sbin/sshd -D` prints the container's id, `osc container-show`
//! shows the same ports, and ssh logs in.
//!
//! Needs the docker CLI, openssh-server and openssh-client (scripts/test.sh
//! installs them); fails, never skips, without them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nest_tests::service::{ALPHA, ServiceOptions, ServiceProcess};
use nest_tests::{TempDir, bin_path};
use serde_json::Value;

/// Runs a shell script with osc on the PATH and the dev token's env.
fn sh(svc: &ServiceProcess, script: &str) -> std::process::Output {
    let osc_dir = bin_path("osc")
        .parent()
        .expect("osc's directory")
        .display()
        .to_string();
    let mut command = Command::new("sh");
    command.arg("-c").arg(script);
    for (key, _) in std::env::vars() {
        if key.starts_with("OS_") || key.starts_with("NEST_") || key.starts_with("DOCKER_") {
            command.env_remove(key);
        }
    }
    command
        .env(
            "PATH",
            format!("{osc_dir}:{}", std::env::var("PATH").unwrap_or_default()),
        )
        .env("NEST_URL", &svc.url)
        .env("NEST_TOKEN", ALPHA)
        .output()
        .expect("run sh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proposal_docker_use_case_runs_sshd_reached_with_ssh() {
    let svc = ServiceProcess::start_with(ServiceOptions {
        extra: "network_name = \"pub\"\n\n[docker]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"
            .into(),
        ..Default::default()
    })
    .await;
    let dir = TempDir::new("osc-docker");
    let key = dir.path().join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (install openssh-client)");
    assert!(status.success());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/sshd-image.sh");
    let tar = dir.path().join("foo.tar");
    let built = Command::new(script)
        .arg(&tar)
        .arg(key.with_extension("pub"))
        .output()
        .expect("sshd-image.sh");
    assert!(built.status.success(), "{}", text(&built.stderr));
    let uploaded = sh(
        &svc,
        &format!("osc image-create {} --name foo", tar.display()),
    );
    assert!(uploaded.status.success(), "{}", text(&uploaded.stderr));

    // The use case, with the docker CLI as it ships.
    let certs = dir.path().join("docker-certs");
    let run = sh(
        &svc,
        &format!(
            "eval \"$(osc docker-env --dir {})\" && docker run -p 222:22 -d foo /usr/sbin/sshd -D",
            certs.display()
        ),
    );
    assert!(
        run.status.success(),
        "docker run failed: {}",
        text(&run.stderr)
    );
    let id = text(&run.stdout).trim().to_owned();
    assert!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()),
        "id: {id:?}"
    );
    for file in ["key.pem", "cert.pem", "ca.pem"] {
        assert!(certs.join(file).exists(), "{file} was not written");
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let shown = loop {
        let out = sh(&svc, &format!("osc container-show {id} -f json"));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let shown: Value = serde_json::from_slice(&out.stdout).expect("json");
        if shown["status"] == "Running" {
            break shown;
        }
        assert!(shown["status"] != "Error", "{shown}");
        assert!(tokio::time::Instant::now() < deadline, "{shown}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let address = shown["addresses"]["pub"][0]
        .as_str()
        .expect("address")
        .to_owned();
    let ports = sh(&svc, &format!("osc container-show {id} | grep ports"));
    assert_eq!(text(&ports.stdout), format!("ports: [{address}:222]\n"));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("ssh")
            .args(["-p", "222", "-i"])
            .arg(&key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("root@{address}"))
            .arg("cat /etc/motd; cat /proc/1/cmdline | tr '\\0' ' '")
            .output()
            .expect("ssh");
        if out.status.success() {
            let inside = text(&out.stdout);
            assert!(
                inside.starts_with("foo\n") && inside.contains("/usr/sbin/sshd -D"),
                "{inside}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ssh: {}",
            text(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let removed = sh(
        &svc,
        &format!(
            "eval \"$(osc docker-env --dir {})\" && docker rm -f {id}",
            certs.display()
        ),
    );
    assert!(removed.status.success(), "{}", text(&removed.stderr));
}
