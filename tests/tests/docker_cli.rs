//! The real docker CLI against a real `nest-service` (local driver, real
//! instances with their own engines) through Nest's Docker endpoint: the
//! commands of the support matrix in docs/docker.md, the same containers
//! seen through the Zun API, project isolation and the refusals.

use std::time::Duration;

use nest_tests::docker_client::{Auth, DockerCli};
use nest_tests::service::{ALPHA, BETA, ServiceOptions, ServiceProcess};
use reqwest::Method;
use serde_json::Value;

const BOOT: Duration = Duration::from_secs(120);
const IMAGE: &str = nest_tests::docker::TEST_IMAGE;

async fn service() -> ServiceProcess {
    ServiceProcess::start_with(ServiceOptions {
        extra:
            "\n[docker]\nenabled = true\nlisten = \"127.0.0.1:0\"\ncertificate_lifetime = \"1h\"\n"
                .into(),
        ..Default::default()
    })
    .await
}

fn text(out: &std::process::Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_run_publishes_a_port_and_the_cli_drives_the_container() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    let version = cli
        .ok(&["version", "--format", "{{.Server.APIVersion}}"])
        .await;
    assert_eq!(version.trim(), "1.45");
    cli.load_test_image().await;
    let images = cli
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .await;
    assert!(images.contains(IMAGE), "{images}");

    // The 2014 use case: run -d -p prints the id; the port answers.
    let id = cli
        .ok(&[
            "run",
            "-d",
            "-p",
            "8080:8080",
            "--name",
            "web",
            IMAGE,
            "httpd",
            "-f",
            "-p",
            "8080",
        ])
        .await;
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    // The full id, and the uuid it begins with, both name it.
    for full in [&id[..], &id[..32]] {
        let name = cli.ok(&["inspect", "-f", "{{.Name}}", full]).await;
        assert_eq!(name.trim(), "/web", "{full}");
    }
    let port = cli.ok(&["port", "web", "8080"]).await;
    let address = port.trim().to_owned();
    assert!(
        address.starts_with("10.248.") && address.ends_with(":8080"),
        "{address}"
    );
    let answer = reqwest::get(format!("http://{address}/"))
        .await
        .expect("the published port answers from the host");
    assert_eq!(answer.status().as_u16(), 404);
    let ps = cli.ok(&["ps"]).await;
    assert!(
        ps.contains(&id[..12]) && ps.contains(&format!("{address}->8080/tcp")),
        "{ps}"
    );
    assert_eq!(cli.ok(&["ps", "-q"]).await.trim(), &id[..12]);
    let filtered = cli
        .ok(&[
            "ps",
            "-q",
            "--filter",
            "name=web",
            "--filter",
            "status=running",
        ])
        .await;
    assert_eq!(filtered.trim(), &id[..12]);
    assert!(
        cli.ok(&["ps", "-q", "--filter", "status=exited"])
            .await
            .trim()
            .is_empty()
    );
    let inspect: Value =
        serde_json::from_str(&cli.ok(&["inspect", "web"]).await).expect("inspect JSON");
    assert_eq!(inspect[0]["State"]["Status"], "running", "{inspect}");
    assert_eq!(
        inspect[0]["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostIp"],
        address.trim_end_matches(":8080")
    );

    // The same container through the Zun API.
    let (code, list) = svc.call(ALPHA, Method::GET, "/v1/containers", None).await;
    assert_eq!(code, 200, "{list}");
    let zun = &list["containers"][0];
    assert_eq!(
        zun["uuid"].as_str().map(|u| u.replace('-', "")),
        Some(id[..32].to_owned()),
        "{list}"
    );
    assert_eq!(zun["name"], "web");

    // exec: output and exit code.
    let out = cli
        .run(&["exec", "web", "sh", "-c", "echo hi; echo oops >&2; exit 3"])
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");

    // stop, start, rm -f.
    assert_eq!(cli.ok(&["stop", "-t", "1", "web"]).await.trim(), "web");
    let state = cli.ok(&["inspect", "-f", "{{.State.Status}}", "web"]).await;
    assert_eq!(state.trim(), "exited");
    cli.ok(&["start", "web"]).await;
    assert_eq!(
        cli.ok(&["inspect", "-f", "{{.State.Status}}", "web"])
            .await
            .trim(),
        "running"
    );
    cli.ok(&["rm", "-f", "web"]).await;
    assert!(cli.ok(&["ps", "-aq"]).await.trim().is_empty());
    let (_, list) = svc.call(ALPHA, Method::GET, "/v1/containers", None).await;
    assert_eq!(list["containers"], serde_json::json!([]), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attached_run_pipes_stdin_and_rm_removes_the_container() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Token).await;
    cli.load_test_image().await;
    let out = cli
        .run_with_stdin(&["run", "-i", "--rm", IMAGE, "cat"], Some(b"hi\n"))
        .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = cli
        .run(&["run", "--rm", IMAGE, "sh", "-c", "echo bye; exit 7"])
        .await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bye\n");
    nest_tests::eventually(BOOT, "the --rm containers to be gone", || async {
        cli.ok(&["ps", "-aq"]).await.trim().is_empty().then_some(())
    })
    .await;
}

/// The names `docker ps -a` shows, sorted.
async fn names(cli: &DockerCli) -> Vec<String> {
    let out = cli.ok(&["ps", "-a", "--format", "{{.Names}}"]).await;
    let mut names: Vec<String> = out.lines().map(str::to_owned).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_prune_removes_the_projects_stopped_containers_only() {
    let svc = service().await;
    let alpha = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    let beta = DockerCli::new(&svc, BETA, Auth::Certificate).await;
    alpha.load_test_image().await;
    alpha
        .ok(&["run", "-d", "--name", "up", IMAGE, "sleep", "600"])
        .await;
    let done = alpha.ok(&["run", "--name", "done", IMAGE, "true"]).await;
    assert!(done.trim().is_empty(), "{done}");
    alpha
        .ok(&[
            "create", "--name", "kept", "--label", "keep=1", IMAGE, "true",
        ])
        .await;

    // Another project's prune sees none of them.
    let out = beta.ok(&["container", "prune", "-f"]).await;
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    assert!(!out.contains("Deleted Containers"), "{out}");
    assert_eq!(names(&alpha).await, ["done", "kept", "up"]);

    // label! keeps the labelled one; the running one is never pruned.
    let done_id = alpha.ok(&["inspect", "-f", "{{.Id}}", "done"]).await;
    let out = alpha
        .ok(&["container", "prune", "-f", "--filter", "label!=keep=1"])
        .await;
    assert!(
        out.contains("Deleted Containers:") && out.contains(done_id.trim()),
        "{out}"
    );
    nest_tests::eventually(BOOT, "the exited container to go", || async {
        (names(&alpha).await == ["kept", "up"]).then_some(())
    })
    .await;
    // until: nothing was created a day before now.
    let out = alpha
        .ok(&["container", "prune", "-f", "--filter", "until=24h"])
        .await;
    assert!(!out.contains("Deleted Containers"), "{out}");
    let out = alpha
        .run(&["container", "prune", "-f", "--filter", "until=soon"])
        .await;
    assert!(
        !out.status.success() && text(&out).contains("invalid until filter"),
        "{}",
        text(&out)
    );
    let out = alpha
        .run(&["container", "prune", "-f", "--filter", "name=kept"])
        .await;
    assert!(
        !out.status.success() && text(&out).contains("invalid filter 'name'"),
        "{}",
        text(&out)
    );
    alpha.ok(&["container", "prune", "-f"]).await;
    nest_tests::eventually(BOOT, "the created container to go", || async {
        (names(&alpha).await == ["up"]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_signal_timeout_init_read_only_and_extra_hosts_reach_the_engine() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    cli.load_test_image().await;
    cli.ok(&[
        "run",
        "-d",
        "--name",
        "opts",
        "--init",
        "--read-only",
        "--add-host",
        "db.internal:10.9.8.7",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "30",
        IMAGE,
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 0' USR1; echo ready; while :; do sleep 1; done",
    ])
    .await;
    nest_tests::eventually(BOOT, "the container to be ready", || async {
        cli.ok(&["logs", "opts"])
            .await
            .contains("ready")
            .then_some(())
    })
    .await;
    let shown = cli
        .ok(&[
            "inspect",
            "-f",
            "{{.Config.StopSignal}} {{.Config.StopTimeout}} {{.HostConfig.Init}} \
             {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.ExtraHosts}}",
            "opts",
        ])
        .await;
    assert_eq!(shown.trim(), "SIGUSR1 30 true true [db.internal:10.9.8.7]");
    let hosts = cli.ok(&["exec", "opts", "cat", "/etc/hosts"]).await;
    assert!(
        hosts
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["10.9.8.7", "db.internal"]),
        "{hosts}"
    );
    let write = cli
        .run(&["exec", "opts", "sh", "-c", "echo x > /written"])
        .await;
    assert!(
        !write.status.success() && text(&write).contains("Read-only file system"),
        "{}",
        text(&write)
    );
    // With --init, PID 1 is the engine's init, the shell its child.
    let pid1 = cli.ok(&["exec", "opts", "cat", "/proc/1/cmdline"]).await;
    assert!(pid1.contains("init"), "{pid1:?}");
    // docker stop sends the container's stop signal: the trap answers it
    // well within the 30 s before a kill, and the exit code is the trap's.
    let started = std::time::Instant::now();
    cli.ok(&["stop", "opts"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    let logs = cli.ok(&["logs", "opts"]).await;
    assert!(logs.contains("got-usr1"), "{logs}");
    let code = cli
        .ok(&["inspect", "-f", "{{.State.ExitCode}}", "opts"])
        .await;
    assert_eq!(code.trim(), "0");

    // Bad values are refused at the door.
    for (args, needle) in [
        (vec!["--stop-signal", "NOPE!"], "StopSignal"),
        (vec!["--stop-timeout", "99999"], "StopTimeout"),
        (vec!["--add-host", "bad..name:10.0.0.1"], "ExtraHosts"),
    ] {
        let mut argv = vec!["run", "-d"];
        argv.extend(args);
        argv.extend([IMAGE, "true"]);
        let out = cli.run(&argv).await;
        assert!(
            !out.status.success() && text(&out).contains(needle),
            "{}",
            text(&out)
        );
    }
    assert_eq!(
        cli.ok(&["ps", "-a", "--format", "{{.Names}}"]).await.trim(),
        "opts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthcheck_runs_on_the_engine_and_its_verdict_shows() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    cli.load_test_image().await;
    cli.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test \"$(cat /tmp/state)\" = ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        IMAGE,
        "sleep",
        "3600",
    ])
    .await;
    let health = || async {
        cli.ok(&["inspect", "-f", "{{.State.Health.Status}}", "hc"])
            .await
            .trim()
            .to_owned()
    };
    // Failing checks, one retry: unhealthy.
    nest_tests::eventually(BOOT, "the container to be unhealthy", || async {
        (health().await == "unhealthy").then_some(())
    })
    .await;
    cli.ok(&["exec", "hc", "sh", "-c", "echo ok > /tmp/state"])
        .await;
    nest_tests::eventually(BOOT, "the container to be healthy", || async {
        (health().await == "healthy").then_some(())
    })
    .await;
    let status = cli.ok(&["ps", "--format", "{{.Status}}"]).await;
    assert!(status.trim().ends_with("(healthy)"), "{status}");
    let test = cli
        .ok(&["inspect", "-f", "{{json .Config.Healthcheck.Test}}", "hc"])
        .await;
    assert_eq!(
        test.trim(),
        r#"["CMD-SHELL","test \"$(cat /tmp/state)\" = ok"]"#
    );
    cli.ok(&["exec", "hc", "sh", "-c", "echo bad > /tmp/state"])
        .await;
    nest_tests::eventually(BOOT, "the container to be unhealthy again", || async {
        (health().await == "unhealthy").then_some(())
    })
    .await;
    let out = cli
        .run(&[
            "run",
            "-d",
            "--health-cmd",
            "true",
            "--health-interval",
            "1ns",
            IMAGE,
            "true",
        ])
        .await;
    assert!(
        !out.status.success() && text(&out).contains("interval"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_root_filesystem_shows_and_runs_under_its_upload_name() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    let dir = nest_tests::TempDir::new("nest-upload");
    let tar = dir.path().join("rootfs.tar");
    nest_tests::docker::write_test_rootfs(&tar);
    let body = std::fs::read(&tar).expect("the rootfs tar");
    let uploaded = reqwest::Client::new()
        .post(format!("{}/v1/nest/images?name=tiny", svc.url))
        .header("X-Auth-Token", ALPHA)
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(uploaded.status().as_u16(), 201);

    // Nest's internal tag for a converted root filesystem stays inside.
    let images = cli
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .await;
    assert_eq!(images.trim(), "tiny:latest");
    let out = cli
        .ok(&["run", "--name", "tt", "tiny", "echo", "ran"])
        .await;
    assert_eq!(out.trim(), "ran");
    let image = cli.ok(&["ps", "-a", "--format", "{{.Image}}"]).await;
    assert_eq!(image.trim(), "tiny:latest");
    let removed = cli.run(&["rmi", "tiny"]).await;
    assert!(
        text(&removed).contains("Untagged: tiny:latest"),
        "{}",
        text(&removed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_use_dockers_error_body_and_change_nothing() {
    let svc = service().await;
    let alpha = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    alpha.load_test_image().await;
    alpha
        .ok(&["create", "--name", "kept", IMAGE, "sleep", "600"])
        .await;

    // Another project sees nothing of alpha's.
    let beta = DockerCli::new(&svc, BETA, Auth::Certificate).await;
    assert!(beta.ok(&["ps", "-aq"]).await.trim().is_empty());
    for args in [
        vec!["inspect", "--type", "container", "kept"],
        vec!["start", "kept"],
        vec!["rm", "-f", "kept"],
        vec!["logs", "kept"],
        vec!["stop", "kept"],
        vec!["restart", "kept"],
        vec!["kill", "kept"],
        vec!["pause", "kept"],
        vec!["unpause", "kept"],
        vec!["wait", "kept"],
        vec!["exec", "kept", "true"],
        vec!["attach", "kept"],
        vec!["top", "kept"],
        vec!["stats", "--no-stream", "kept"],
        vec!["port", "kept"],
        vec!["rename", "kept", "stolen"],
        vec!["update", "-m", "64m", "kept"],
    ] {
        let out = beta.run(&args).await;
        // `rm -f` of a missing container exits 0 in the CLI itself.
        assert!(
            !out.status.success() || args[0] == "rm",
            "{args:?}: {}",
            text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("No such container: kept"),
            "{args:?}: {}",
            text(&out)
        );
    }

    // A bad token and a revoked certificate are refused.
    let bad = DockerCli::new(&svc, "token-nobody-0123456789abcdef", Auth::Token).await;
    let out = bad.run(&["ps"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authentication failed"),
        "{}",
        text(&out)
    );
    let serial = alpha.serial.clone().expect("a serial");
    let (code, body) = svc
        .call(
            ALPHA,
            Method::DELETE,
            &format!("/v1/nest/docker/certificates/{serial}"),
            None,
        )
        .await;
    assert_eq!(code, 204, "{body}");
    let out = alpha.run(&["ps"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the client certificate was revoked at"),
        "{}",
        text(&out)
    );

    // Bad input: 4xx with Docker's body, and nothing created.
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    let out = cli.run(&["run", "-d", "--privileged", IMAGE, "true"]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("HostConfig.Privileged is not supported by Nest"),
        "{}",
        text(&out)
    );
    let out = cli.run(&["run", "-d", "-m", "100g", IMAGE, "true"]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("outside what Nest runs"),
        "{}",
        text(&out)
    );
    let out = cli.run(&["kill", "-s", "NOPE!", "kept"]).await;
    assert!(!out.status.success(), "{}", text(&out));
    let out = cli
        .run(&["run", "-d", "--pull", "never", "nosuch/image:1", "true"])
        .await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such image: nosuch/image:1"),
        "{}",
        text(&out)
    );
    // The raw API: malformed JSON and an unknown field with a value Nest
    // cannot honour answer 400, with Docker's body and content type.
    for body in [
        "{\"Image\": ",
        "{\"Image\": \"i\", \"HostConfig\": {\"Runtime\": \"runsc\"}}",
    ] {
        let (json, status) = curl(&cli, "POST", "/containers/create", body).await;
        let answer = format!("{status}: {json}");
        assert_eq!(status, "400 application/json", "{answer}");
        let value: Value = serde_json::from_str(&json).expect("a JSON body");
        assert!(
            value["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    let out = cli.run(&["build", "."]).await;
    assert!(!out.status.success());
    // Volumes are refused by name, and a known path with a method it does
    // not take answers Docker's JSON too.
    let out = cli.run(&["volume", "create", "v1"]).await;
    assert!(
        !out.status.success() && text(&out).contains("managing volumes (containers keep their data in their own filesystem) is not supported"),
        "{}",
        text(&out)
    );
    let (json, status) = curl(&cli, "PUT", "/containers/json", "{}").await;
    assert_eq!(status, "404 application/json", "{json}");
    assert!(json.contains("page not found"), "{json}");
    assert_eq!(
        cli.ok(&["ps", "-a", "--format", "{{.Names}}"]).await.trim(),
        "kept"
    );
}

/// A client key pair and a certificate for it signed by `ca` for `user`
/// with `validity`: (certificate PEM, key PEM).
fn user_certificate(
    ca: &nest_pki::CertificateAuthority,
    user: &str,
    validity: nest_pki::Validity,
) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("csr pem");
    let signed = ca.sign_user_csr(&csr, user, validity).expect("signed");
    (signed.certificate_pem, key.serialize_pem())
}

/// Issue #8: "No certificate, a certificate of another CA, an expired or
/// revoked one, or a bad token: refused, with the Docker error body": the
/// handshake lets them through, and every request answers 401 with a
/// message the CLI prints, naming the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_certificates_are_refused_with_dockers_body_and_change_nothing() {
    let svc = service().await;
    let alpha = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    alpha.load_test_image().await;
    alpha
        .ok(&["create", "--name", "kept", IMAGE, "sleep", "600"])
        .await;
    let listed = || async {
        alpha
            .ok(&["ps", "-a", "--format", "{{.ID}} {{.Names}}"])
            .await
    };
    let before = listed().await;
    assert!(before.contains(" kept"), "{before}");

    // Nest's own CA, from the service's state directory, to sign
    // certificates the API would not issue.
    let nest_ca = nest_pki::CertificateAuthority::load_or_create(&svc.state_dir().join("pki"))
        .expect("the service's CA");
    let hour = Duration::from_secs(3600);
    let now = time::OffsetDateTime::now_utc();
    let another_ca = nest_pki::CertificateAuthority::generate("Nest CA").expect("a CA");
    let cases: Vec<(&str, DockerCli, &str)> = vec![
        (
            "no certificate and no token",
            DockerCli::without_credential(&svc),
            "authentication required: present a client certificate issued by Nest",
        ),
        (
            "another CA's certificate",
            {
                let (cert, key) =
                    user_certificate(&another_ca, "alice", nest_pki::Validity::starting_now(hour));
                DockerCli::with_certificate(&svc, &cert, &key)
            },
            "authentication failed: the client certificate was not issued by Nest's \
             certificate authority; get one with `osc docker-env`",
        ),
        (
            "an expired certificate",
            {
                let (cert, key) =
                    user_certificate(&nest_ca, "alice", nest_pki::Validity::ended_ago(hour));
                DockerCli::with_certificate(&svc, &cert, &key)
            },
            "authentication failed: the client certificate expired at ",
        ),
        (
            "a certificate not yet valid",
            {
                let validity = nest_pki::Validity::new(
                    now + time::Duration::HOUR,
                    now + 2 * time::Duration::HOUR,
                )
                .expect("validity");
                let (cert, key) = user_certificate(&nest_ca, "alice", validity);
                DockerCli::with_certificate(&svc, &cert, &key)
            },
            "authentication failed: the client certificate is not valid before ",
        ),
        (
            "a certificate of Nest's CA never issued for the endpoint",
            {
                let (cert, key) =
                    user_certificate(&nest_ca, "alice", nest_pki::Validity::starting_now(hour));
                DockerCli::with_certificate(&svc, &cert, &key)
            },
            "authentication failed: the client certificate was not issued for the Docker \
             endpoint",
        ),
        (
            "a bad token",
            DockerCli::new(&svc, "token-nobody-0123456789abcdef", Auth::Token).await,
            "authentication failed: the token in X-Auth-Token is invalid, expired or revoked",
        ),
        (
            "a revoked certificate",
            {
                let revoked = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
                // It worked before its revocation.
                revoked.ok(&["ps", "-a"]).await;
                let serial = revoked.serial.clone().expect("a serial");
                let (code, body) = svc
                    .call(
                        ALPHA,
                        Method::DELETE,
                        &format!("/v1/nest/docker/certificates/{serial}"),
                        None,
                    )
                    .await;
                assert_eq!(code, 204, "{body}");
                revoked
            },
            "authentication failed: the client certificate was revoked at ",
        ),
    ];
    for (what, cli, message) in &cases {
        for args in [
            vec!["ps", "-a"],
            vec!["rm", "-f", "kept"],
            vec!["run", "-d", "--name", "intruder", IMAGE, "true"],
            vec!["rename", "kept", "stolen"],
        ] {
            let out = cli.run(&args).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{what}: {args:?}: {}", text(&out));
            assert!(stderr.contains(message), "{what}: {args:?}: {}", text(&out));
            // A Docker body, not a TLS alert.
            assert!(!stderr.contains("tls:"), "{what}: {args:?}: {}", text(&out));
        }
    }
    // The raw answer: 401, Docker's body and content type.
    let (_, cli, message) = &cases[1];
    let (json, status) = curl(cli, "GET", "/containers/json", "").await;
    let answer = format!("{status}: {json}");
    assert_eq!(status, "401 application/json", "{answer}");
    let value: Value = serde_json::from_str(&json).expect("a JSON body");
    assert!(
        value["message"]
            .as_str()
            .is_some_and(|m| m.contains(message)),
        "{answer}"
    );

    // Nothing changed, and a good certificate still works.
    assert_eq!(listed().await, before);
}

/// `curl` through `cli`'s certificate: the answer's body and its
/// `"<status> <content type>"`.
async fn curl(cli: &DockerCli, method: &str, path: &str, body: &str) -> (String, String) {
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{content_type}",
            "-X",
            method,
        ])
        .args(["-H", "Content-Type: application/json", "--data", body])
        .arg("--cacert")
        .arg(cli.path("ca.pem"))
        .arg("--cert")
        .arg(cli.path("cert.pem"))
        .arg("--key")
        .arg(cli.path("key.pem"))
        .arg(format!(
            "{}/v1.45{path}",
            cli.host().replacen("tcp://", "https://", 1)
        ))
        .output()
        .await
        .expect("curl runs");
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    let (json, status) = answer.rsplit_once('\n').expect("status line");
    (json.to_owned(), status.to_owned())
}

/// `docker exec -u/-e/-w` reach the process, captured, attached and on a
/// terminal alike; bad values answer 400 with Docker's body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_as_the_user_with_the_environment_and_workdir_asked_for() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    cli.load_test_image().await;
    cli.ok(&["run", "-d", "--name", "box", IMAGE, "sleep", "600"])
        .await;

    assert_eq!(
        cli.ok(&["exec", "-u", "65534", "box", "id", "-u"]).await,
        "65534\n"
    );
    assert_eq!(
        cli.ok(&["exec", "-u", "65534:65533", "box", "id", "-g"])
            .await,
        "65533\n"
    );
    assert_eq!(
        cli.ok(&["exec", "-e", "A=B", "box", "sh", "-c", "echo $A"])
            .await,
        "B\n"
    );
    assert_eq!(
        cli.ok(&["exec", "-w", "/tmp", "box", "pwd"]).await,
        "/tmp\n"
    );
    // Together, on a terminal.
    let (code, screen) = cli
        .run_in_pty(
            &[
                "exec",
                "-it",
                "-u",
                "65534",
                "-e",
                "A=B",
                "-w",
                "/tmp",
                "box",
                "sh",
                "-c",
                "echo \"$(id -u) $A $(pwd)\"",
            ],
            &[],
        )
        .await;
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("65534 B /tmp"), "{screen}");
    // Detached: what it writes, where it writes it (the image's /tmp
    // is root's).
    cli.ok(&["exec", "box", "sh", "-c", "mkdir /w && chown 65534 /w"])
        .await;
    cli.ok(&[
        "exec",
        "-d",
        "-u",
        "65534",
        "-w",
        "/w",
        "-e",
        "F=made",
        "box",
        "sh",
        "-c",
        "echo \"$(id -u) $F $(pwd)\" > f",
    ])
    .await;
    nest_core::testing::eventually(
        Duration::from_secs(20),
        "the detached exec's file",
        || async {
            let out = cli.run(&["exec", "box", "cat", "/w/f"]).await;
            (String::from_utf8_lossy(&out.stdout) == "65534 made /w\n").then_some(())
        },
    )
    .await;

    // Bad values: the CLI prints Docker's message.
    let long_user = "u".repeat(300);
    for (args, message) in [
        (
            vec!["exec", "-w", "relative", "box", "pwd"],
            "invalid input for field 'workdir': must be an absolute path",
        ),
        (
            vec!["exec", "-w", "/tmp/../etc", "box", "pwd"],
            "invalid input for field 'workdir': must be a normalised path",
        ),
        (
            vec!["exec", "-u", "root; rm -rf /", "box", "id"],
            "invalid input for field 'User': must be a name or uid[:gid]",
        ),
        (
            vec!["exec", "-u", long_user.as_str(), "box", "id"],
            "invalid input for field 'User': must be a name or uid[:gid] of at most 255 bytes",
        ),
    ] {
        let out = cli.run(&args).await;
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{args:?}: {}",
            text(&out)
        );
    }
    // No argv carries NUL, and the CLI refuses an empty name itself: the
    // raw API, 400 with Docker's body.
    let id = cli.ok(&["inspect", "-f", "{{.Id}}", "box"]).await;
    for (env, message) in [
        (
            "\"A=x\\u0000y\"",
            "invalid input for field 'environment.A': must not contain NUL",
        ),
        (
            "\"=x\"",
            "invalid input for field 'environment': \"\" is not a variable name: it must be \
             non-empty, without '=' or NUL",
        ),
    ] {
        let (json, status) = curl(
            &cli,
            "POST",
            &format!("/containers/{}/exec", id.trim()),
            &format!("{{\"Cmd\": [\"id\"], \"Env\": [{env}]}}"),
        )
        .await;
        assert_eq!(status, "400 application/json", "{json}");
        let value: Value = serde_json::from_str(&json).expect("a JSON body");
        assert_eq!(value["message"], message, "{json}");
    }
    // The container is as it was.
    assert_eq!(
        cli.ok(&["ps", "--format", "{{.Names}} {{.State}}"]).await,
        "box running\n"
    );
}

/// Reads `child`'s stdout until a line satisfies `done`, within `BOOT`.
async fn read_until(
    child: &mut tokio::process::Child,
    what: &str,
    done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    use tokio::io::AsyncBufReadExt;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    read_more(&mut lines, &mut seen, what, done).await;
    seen
}

type StdoutLines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// Appends lines to `seen` until they satisfy `done`, within `BOOT`.
async fn read_more(
    lines: &mut StdoutLines,
    seen: &mut Vec<String>,
    what: &str,
    mut done: impl FnMut(&[String]) -> bool,
) {
    let found = tokio::time::timeout(BOOT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push(line);
            if done(seen) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "{what}: saw {seen:?}");
}

/// Now as the docker CLI writes `--since`: unix seconds and nanoseconds.
fn unix_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_exec_tty_attach_detach_and_events_work() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    cli.load_test_image().await;

    // docker events sees a container's create, start and die; `--since`
    // covers what happens before its subscription is in place.
    let since = unix_now();
    let mut events = cli.spawn(&[
        "events",
        "--since",
        &since,
        "--filter",
        "type=container",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let out = cli.run(&["run", "--name", "brief", IMAGE, "true"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let seen = read_until(&mut events, "events of brief", |seen| {
        seen.iter().any(|l| l == "die brief")
    })
    .await;
    let actions: Vec<&str> = seen
        .iter()
        .filter(|l| l.ends_with(" brief"))
        .map(|l| l.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(actions, ["create", "start", "die"], "{seen:?}");
    let _ = events.kill().await;

    // docker logs -f streams lines as they come.
    cli.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        IMAGE,
        "sh",
        "-c",
        "i=0; while true; do echo line$i; i=$((i+1)); sleep 1; done",
    ])
    .await;
    let mut follow = cli.spawn(&["logs", "-f", "ticker"]);
    let lines = read_until(&mut follow, "followed log lines", |seen| seen.len() >= 3).await;
    assert_eq!(lines[..3], ["line0", "line1", "line2"]);
    let _ = follow.kill().await;
    let tail = cli.ok(&["logs", "--tail", "1", "ticker"]).await;
    assert_eq!(tail.lines().count(), 1, "{tail}");

    // exec -it gets a real terminal, and its exit code.
    let (code, screen) = cli
        .run_in_pty(&["exec", "-it", "ticker", "busybox", "tty"], &[])
        .await;
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("/dev/pts/"), "{screen}");
    let (code, screen) = cli
        .run_in_pty(&["exec", "-it", "ticker", "sh", "-c", "exit 5"], &[])
        .await;
    assert_eq!(code, Some(5), "{screen}");

    // attach to an interactive container, then detach with the keys.
    cli.ok(&["run", "-dit", "--name", "shell", IMAGE, "sh"])
        .await;
    let (_, screen) = cli
        .run_in_pty(
            &["attach", "--detach-keys", "ctrl-x", "shell"],
            &[b"echo hello-$((40+2))\n", b"\x18"],
        )
        .await;
    assert!(screen.contains("hello-42"), "{screen}");
    let state = cli
        .ok(&["inspect", "-f", "{{.State.Status}}", "shell"])
        .await;
    assert_eq!(state.trim(), "running", "detaching leaves it running");

    // A container made through the Zun API is docker's too.
    let image = svc.upload_test_image(ALPHA).await;
    let (code, body) = svc
        .call(
            ALPHA,
            Method::POST,
            "/v1/containers?run=true",
            Some(serde_json::json!({"image": image, "name": "from-zun", "command": ["sleep", "600"]})),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let uuid = body["uuid"].as_str().expect("uuid").replace('-', "");
    nest_tests::eventually(BOOT, "the Zun container to run", || async {
        let state = cli
            .run(&["inspect", "-f", "{{.Id}} {{.State.Status}}", "from-zun"])
            .await;
        let state = String::from_utf8_lossy(&state.stdout).into_owned();
        let (docker, status) = state.trim().split_once(' ')?;
        (docker.len() == 64 && docker.starts_with(&uuid) && status == "running").then_some(())
    })
    .await;
    let names = cli.ok(&["ps", "--format", "{{.Names}}"]).await;
    assert!(names.lines().any(|n| n == "from-zun"), "{names}");
}

/// `docker events --since/--until` replays the project's history: a
/// finished and removed container's life with an end, then live events
/// after the replay with nothing twice; another project's replay holds
/// none of it; bad times answer 400 with Docker's body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_since_and_until_replay_the_projects_history() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    cli.load_test_image().await;
    const FORMAT: &str = "{{.Action}} {{.Actor.Attributes.name}}";
    let before = unix_now();
    let out = cli
        .run(&["run", "--name", "gone", IMAGE, "sh", "-c", "exit 3"])
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    cli.ok(&["rm", "gone"]).await;
    nest_tests::eventually(BOOT, "the removed container to be gone", || async {
        cli.ok(&["ps", "-aq"]).await.trim().is_empty().then_some(())
    })
    .await;
    let after = unix_now();
    let life = ["create gone", "start gone", "die gone", "destroy gone"];

    // A closed window: the replay, in order, and the CLI exits by itself.
    let window = ["events", "--since", &before, "--until", &after];
    let replay = cli.ok(&[&window[..], &["--format", FORMAT]].concat()).await;
    assert_eq!(replay.lines().collect::<Vec<_>>(), life, "{replay}");
    let died = cli
        .ok(&[
            &window[..],
            &[
                "--filter",
                "event=die",
                "--format",
                "{{.Actor.Attributes.exitCode}} {{.Type}}",
            ],
        ]
        .concat())
        .await;
    assert_eq!(died, "3 container\n");

    // No end: the replay, then a new container's events live, once each.
    let mut follow = cli.spawn(&["events", "--since", &before, "--format", FORMAT]);
    let stdout = follow.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut seen = Vec::new();
    read_more(&mut lines, &mut seen, "the replay", |s| {
        s.len() >= life.len()
    })
    .await;
    assert_eq!(seen, life);
    let out = cli.run(&["run", "--name", "later", IMAGE, "true"]).await;
    assert!(out.status.success(), "{}", text(&out));
    read_more(&mut lines, &mut seen, "the live events", |s| {
        s.iter().any(|l| l == "die later")
    })
    .await;
    assert_eq!(
        seen,
        [&life[..], &["create later", "start later", "die later"]].concat()
    );
    let _ = follow.kill().await;

    // The CLI's relative `--since`: the last ten minutes. (Its relative
    // `--until 0s` is whole seconds, cutting off this second's events.)
    let now = unix_now();
    let recent = ["events", "--since", "10m", "--until", &now];
    let all = cli.ok(&[&recent[..], &["--format", FORMAT]].concat()).await;
    assert_eq!(all.lines().collect::<Vec<_>>(), seen, "{all}");

    // Another project's certificate: the same replay holds none of it.
    let beta = DockerCli::new(&svc, BETA, Auth::Certificate).await;
    let theirs = beta
        .ok(&["events", "--since", &before, "--until", &unix_now()])
        .await;
    assert_eq!(theirs, "", "beta saw alpha's events");
    let theirs = beta
        .ok(&["events", "--since", "10m", "--until", "0s"])
        .await;
    assert_eq!(theirs, "", "beta saw alpha's events");

    // Bad times: 400 with Docker's body, and the history is unchanged.
    for (query, message) in [
        ("since=yesterday", "invalid value for 'since'"),
        ("since=1.2.3", "invalid value for 'since'"),
        ("until=-5", "invalid value for 'until'"),
        ("since=1700000000.1234567890", "invalid value for 'since'"),
        ("since=200&until=100", "cannot be after `until`"),
    ] {
        let (json, status) = curl(&cli, "GET", &format!("/events?{query}"), "").await;
        assert_eq!(status, "400 application/json", "{query}: {json}");
        let body: Value = serde_json::from_str(&json).expect("Docker's error body");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains(message)),
            "{query}: {json}"
        );
    }
    let again = cli.ok(&[&window[..], &["--format", FORMAT]].concat()).await;
    assert_eq!(again, replay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn osc_docker_env_sets_up_the_plain_docker_cli() {
    let svc = service().await;
    let dir = nest_tests::TempDir::new("docker-env");
    let certs = dir.path().join("certs");
    let out = tokio::process::Command::new(nest_tests::bin_path("osc"))
        .args(["docker-env", "--dir"])
        .arg(&certs)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("NEST_URL", &svc.url)
        .env("NEST_TOKEN", ALPHA)
        .env("NEST_PROJECT_ID", "alpha")
        .output()
        .await
        .expect("osc runs");
    assert!(out.status.success(), "{}", text(&out));
    let exports = String::from_utf8_lossy(&out.stdout).into_owned();
    // What nest-up writes into nestrc: the export lines, sourced by a shell.
    let script = format!(
        "{}\ndocker version --format '{{{{.Server.APIVersion}}}}' && docker info --format '{{{{.Name}}}}'",
        exports
            .lines()
            .filter(|l| l.starts_with("export "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let out = tokio::process::Command::new("sh")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("DOCKER_CONFIG", dir.path())
        .output()
        .await
        .expect("sh runs");
    assert!(out.status.success(), "{exports}\n{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1.45\nnest (alpha)\n");
}

/// docker-py (the Python client compose v1 and many tools use) against the
/// endpoint: run, list, logs, exec, stop, remove, and the events of it all
/// replayed with `since` and `until`. `NEST_DOCKER_PY` names
/// the Python with docker-py (scripts/test.sh makes a venv from PyPI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_py_runs_lists_logs_execs_stops_and_removes() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    cli.load_test_image().await;
    let python = std::env::var("NEST_DOCKER_PY").unwrap_or_else(|_| "python3".into());
    let script = format!(
        r#"
import docker, sys, time
client = docker.from_env()
t0 = time.time()
c = client.containers.run("{IMAGE}", ["sh", "-c", "echo hello-from-py; sleep 600"], detach=True, name="py1")
assert any(x.name == "py1" for x in client.containers.list()), "listed"
for _ in range(100):
    if b"hello-from-py" in c.logs():
        break
    time.sleep(0.1)
assert c.logs() == b"hello-from-py\n", c.logs()
code, out = c.exec_run(["sh", "-c", "echo exec-ok; exit 4"])
assert (code, out) == (4, b"exec-ok\n"), (code, out)
c.stop(timeout=1)
c.reload()
assert c.status == "exited", c.status
c.remove()
assert client.containers.list(all=True) == [], client.containers.list(all=True)
# The history, with an end a second ahead: the generator ends by itself.
evs = list(client.events(since=t0, until=time.time() + 1, decode=True, filters={{"container": "py1"}}))
assert [e["Action"] for e in evs] == ["create", "start", "die", "destroy"], evs
stamps = [e["timeNano"] for e in evs]
assert stamps == sorted(stamps) and stamps[0] >= int(t0 * 1e9), evs
assert all(e["time"] == e["timeNano"] // 10**9 for e in evs), evs
print("docker-py ok")
"#
    );
    let out = tokio::process::Command::new(&python)
        .args(["-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", cli.dir())
        .env("DOCKER_HOST", cli.host())
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", cli.dir())
        .output()
        .await
        .expect("python with docker-py runs");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "docker-py ok\n");
}

/// Polls `check` every half second until it answers, or panics after
/// `within` with the last thing it saw.
async fn wait_for(
    within: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<(), String>,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let last = match check().await {
            Ok(()) => return,
            Err(last) => last,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {within:?}; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_defined_networks_resolve_names_and_stay_in_their_project() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    cli.load_test_image().await;
    let id = cli.ok(&["network", "create", "back"]).await;
    assert_eq!(id.trim().len(), 32, "{id}");
    let ls = cli
        .ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"])
        .await;
    assert!(
        ls.contains("back bridge") && ls.contains("bridge bridge"),
        "{ls}"
    );
    let out = cli.run(&["network", "create", "back"]).await;
    assert!(
        !out.status.success() && text(&out).contains("already exists"),
        "{}",
        text(&out)
    );

    cli.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "back",
        "--network-alias",
        "database",
        IMAGE,
        "sh",
        "-c",
        "busybox mkdir -p /srv && echo hello-from-db > /srv/index.html && exec httpd -f -p 8080 -h /srv",
    ])
    .await;
    cli.ok(&[
        "run",
        "-d",
        "--name",
        "app",
        "--network",
        "back",
        IMAGE,
        "sleep",
        "600",
    ])
    .await;
    // Both resolve: the alias and the name, from the other container.
    for target in ["database", "db"] {
        let url = format!("http://{target}:8080/");
        wait_for(BOOT, &format!("app to reach {target}"), async || {
            let out = cli
                .run(&["exec", "app", "busybox", "wget", "-qO-", &url])
                .await;
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            if said == "hello-from-db\n" {
                Ok(())
            } else {
                Err(text(&out))
            }
        })
        .await;
    }
    let instances = cli
        .ok(&["inspect", "--format", "{{.Nest.Instance}}", "db", "app"])
        .await;
    let instances: Vec<&str> = instances.lines().collect();
    assert_eq!(instances.len(), 2);
    assert_eq!(
        instances[0], instances[1],
        "a network's containers share an instance"
    );
    let mode = cli
        .ok(&["inspect", "--format", "{{.HostConfig.NetworkMode}}", "db"])
        .await;
    assert_eq!(mode.trim(), "back");
    let aliases = cli
        .ok(&[
            "inspect",
            "--format",
            "{{json .NetworkSettings.Networks.back.Aliases}}",
            "db",
        ])
        .await;
    assert!(aliases.contains("\"database\""), "{aliases}");
    let on_back = cli.ok(&["ps", "-q", "--filter", "network=back"]).await;
    assert_eq!(on_back.lines().count(), 2, "{on_back}");
    let inspected = cli
        .ok(&[
            "network",
            "inspect",
            "back",
            "--format",
            "{{len .Containers}}",
        ])
        .await;
    assert_eq!(inspected.trim(), "2");

    // Another project sees none of it.
    let beta = DockerCli::new(&svc, BETA, Auth::Certificate).await;
    let out = beta.run(&["network", "inspect", "back"]).await;
    assert!(
        !out.status.success() && text(&out).contains("not found"),
        "{}",
        text(&out)
    );
    let out = beta.run(&["network", "rm", "back"]).await;
    assert!(
        !out.status.success() && text(&out).contains("not found"),
        "{}",
        text(&out)
    );
    let out = beta
        .run(&["run", "-d", "--network", "back", IMAGE, "true"])
        .await;
    assert!(
        !out.status.success()
            && text(&out).contains("network back not found")
            && !text(&out).contains("Unable to find image"),
        "{}",
        text(&out)
    );
    assert!(!beta.ok(&["network", "ls"]).await.contains("back"));

    // What Nest cannot honour is refused by name, and creates nothing.
    for (args, needle) in [
        (
            &["network", "create", "--driver", "overlay", "o1"][..],
            "driver",
        ),
        (
            &["network", "create", "--subnet", "10.9.0.0/24", "s1"][..],
            "IPAM",
        ),
        (&["network", "create", "--internal", "i1"][..], "internal"),
        (
            &["network", "create", "bad name"][..],
            "invalid network name",
        ),
        (&["network", "create", "host"][..], "pre-defined"),
        (
            &["run", "-d", "--network", "host", IMAGE, "true"][..],
            "network mode",
        ),
        (
            &[
                "run",
                "-d",
                "--network",
                "back",
                "--ip",
                "10.1.2.3",
                IMAGE,
                "true",
            ][..],
            "IPAMConfig",
        ),
        (
            &["network", "connect", "back", "app", "--alias", "new"][..],
            "not supported",
        ),
        (
            &["network", "disconnect", "back", "app"][..],
            "not supported",
        ),
    ] {
        let out = cli.run(args).await;
        assert!(
            !out.status.success() && text(&out).contains(needle),
            "{args:?}: {}",
            text(&out)
        );
    }
    let ls = cli.ok(&["network", "ls", "--format", "{{.Name}}"]).await;
    for name in ["o1", "s1", "i1"] {
        assert!(!ls.lines().any(|l| l == name), "{ls}");
    }
    assert_eq!(cli.ok(&["ps", "-aq"]).await.lines().count(), 2);

    // In use: refused, naming the containers; then removed.
    let out = cli.run(&["network", "rm", "back"]).await;
    assert!(
        !out.status.success() && text(&out).contains("in use") && text(&out).contains("db"),
        "{}",
        text(&out)
    );
    cli.ok(&["rm", "-f", "db", "app"]).await;
    cli.ok(&["network", "rm", "back"]).await;
    let ls = cli.ok(&["network", "ls", "--format", "{{.Name}}"]).await;
    assert!(!ls.lines().any(|l| l == "back"), "{ls}");
    let pruned = cli.ok(&["network", "create", "spare"]).await;
    assert!(!pruned.is_empty());
    let out = cli.ok(&["network", "prune", "-f"]).await;
    assert!(out.contains("spare"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_up_ps_logs_and_down_with_two_services() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    cli.load_test_image().await;
    let file = cli.path("docker-compose.yml");
    std::fs::write(
        &file,
        format!(
            r#"version: "3.8"
services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", "busybox mkdir -p /srv && echo hello-from-web > /srv/index.html && exec httpd -f -p 8080 -h /srv"]
  client:
    image: {IMAGE}
    depends_on: [web]
    command: ["sh", "-c", "echo client-started; until busybox wget -qO- http://web:8080/; do sleep 1; done; echo client-reached-web; exec sleep 600"]
"#
        ),
    )
    .expect("write the compose file");
    let file = file.to_string_lossy().into_owned();
    let compose = |args: &[&str]| {
        let mut all = vec!["-p", "shop", "-f", file.as_str()];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    let run = async |args: &[&str]| {
        let args = compose(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli.compose(&args).await
    };

    let up = run(&["up", "-d"]).await;
    assert!(up.status.success(), "{}", text(&up));
    let said = text(&up);
    assert!(
        said.contains("shop_default") && said.contains("shop_web_1"),
        "{said}"
    );

    wait_for(
        BOOT,
        "the client to reach web by its service name",
        async || {
            let logs = run(&["logs", "--no-color", "client"]).await;
            let said = text(&logs);
            if said.contains("hello-from-web") && said.contains("client-reached-web") {
                Ok(())
            } else {
                let ps = cli.run(&["ps", "-a"]).await;
                Err(format!("{said}\n{}", text(&ps)))
            }
        },
    )
    .await;
    let ps = run(&["ps"]).await;
    let listed = text(&ps);
    assert!(ps.status.success(), "{listed}");
    for name in ["shop_web_1", "shop_client_1"] {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(name) && l.contains("Up")),
            "{name} up: {listed}"
        );
    }
    // The same containers through the plain CLI, on compose's network.
    let on_network = cli
        .ok(&[
            "ps",
            "--filter",
            "network=shop_default",
            "--format",
            "{{.Names}}",
        ])
        .await;
    assert_eq!(on_network.lines().count(), 2, "{on_network}");
    // A second up changes nothing (compose finds what it made).
    let again = run(&["up", "-d"]).await;
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("up-to-date"), "{}", text(&again));

    let down = run(&["down"]).await;
    assert!(down.status.success(), "{}", text(&down));
    assert_eq!(cli.ok(&["ps", "-aq"]).await.trim(), "");
    let ls = cli.ok(&["network", "ls", "--format", "{{.Name}}"]).await;
    assert!(!ls.lines().any(|l| l == "shop_default"), "{ls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_stats_rename_update_pause_kill_wait_and_images_work() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    cli.load_test_image().await;
    cli.ok(&["run", "-d", "--name", "busy", IMAGE, "sleep", "600"])
        .await;
    let top = cli.ok(&["top", "busy"]).await;
    assert!(top.contains("sleep 600"), "{top}");
    let stats = cli
        .ok(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.MemUsage}}",
            "busy",
        ])
        .await;
    assert!(stats.starts_with("busy "), "{stats}");
    cli.ok(&["rename", "busy", "renamed"]).await;
    cli.ok(&["update", "-m", "128m", "--cpus", "0.5", "renamed"])
        .await;
    let limits = cli
        .ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
            "renamed",
        ])
        .await;
    assert_eq!(limits.trim(), "134217728 500000000");
    cli.ok(&["pause", "renamed"]).await;
    assert_eq!(
        cli.ok(&["inspect", "-f", "{{.State.Status}}", "renamed"])
            .await
            .trim(),
        "paused"
    );
    cli.ok(&["unpause", "renamed"]).await;
    cli.ok(&["restart", "-t", "0", "renamed"]).await;
    assert_eq!(
        cli.ok(&["inspect", "-f", "{{.State.Status}}", "renamed"])
            .await
            .trim(),
        "running"
    );
    // kill -s with a signal the process dies of; docker wait reports it.
    let waiter = cli.spawn(&["wait", "renamed"]);
    cli.ok(&["kill", "-s", "KILL", "renamed"]).await;
    let code = tokio::time::timeout(BOOT, waiter.wait_with_output())
        .await
        .expect("docker wait returns")
        .expect("docker wait output");
    assert_eq!(String::from_utf8_lossy(&code.stdout).trim(), "137");
    let info = cli
        .ok(&["info", "--format", "{{.Containers}} {{.ContainersStopped}}"])
        .await;
    assert_eq!(info.trim(), "1 1");
    let df = cli
        .ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
        .await;
    assert!(
        df.contains("Images 1") && df.contains("Containers 1"),
        "{df}"
    );
    cli.ok(&["rm", "renamed"]).await;
    cli.ok(&["rmi", IMAGE]).await;
    assert!(cli.ok(&["images", "-q"]).await.trim().is_empty());
}

/// A compose file of the 2.x format with what real ones hold beside
/// images and commands: a healthcheck that another service waits for
/// (`condition: service_healthy`), and init, stop_signal,
/// stop_grace_period, read_only and extra_hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_waits_for_a_healthy_service_and_passes_engine_options() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    cli.load_test_image().await;
    let file = cli.path("docker-compose.yml");
    std::fs::write(
        &file,
        format!(
            r#"version: "2.4"
services:
  db:
    image: {IMAGE}
    command: ["sh", "-c", "sleep 2; echo up > /tmp/ready; exec sleep 600"]
    init: true
    stop_signal: SIGINT
    stop_grace_period: 5s
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/ready"]
      interval: 1s
      retries: 30
  app:
    image: {IMAGE}
    read_only: true
    extra_hosts: ["db.internal:10.1.2.3"]
    depends_on:
      db:
        condition: service_healthy
    command: ["sh", "-c", "echo app-started; cat /etc/hosts; exec sleep 600"]
"#
        ),
    )
    .expect("write the compose file");
    let file = file.to_string_lossy().into_owned();
    let run = async |args: &[&str]| {
        let mut all = vec!["-p", "health", "-f", file.as_str()];
        all.extend_from_slice(args);
        cli.compose(&all).await
    };

    // up returns once db is healthy and app is started.
    let up = run(&["up", "-d"]).await;
    assert!(up.status.success(), "{}", text(&up));
    let db = cli
        .ok(&["inspect", "-f", "{{.State.Health.Status}} {{.HostConfig.Init}} {{.Config.StopSignal}} {{.Config.StopTimeout}}", "health_db_1"])
        .await;
    assert_eq!(db.trim(), "healthy true SIGINT 5");
    wait_for(BOOT, "app to start after db was healthy", async || {
        let logs = run(&["logs", "--no-color", "app"]).await;
        let said = text(&logs);
        if said.contains("app-started") && said.contains("db.internal") {
            Ok(())
        } else {
            Err(said)
        }
    })
    .await;
    let app = cli
        .ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.ExtraHosts}}",
            "health_app_1",
        ])
        .await;
    assert_eq!(app.trim(), "true [db.internal:10.1.2.3]");
    let ps = run(&["ps"]).await;
    assert!(text(&ps).contains("(healthy)"), "{}", text(&ps));
    let down = run(&["down"]).await;
    assert!(down.status.success(), "{}", text(&down));
    wait_for(BOOT, "down to remove both", async || {
        let left = cli.ok(&["ps", "-aq"]).await;
        if left.trim().is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    })
    .await;
}
