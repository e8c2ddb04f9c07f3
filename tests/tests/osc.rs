//! `osc`, the real binary, against a real nest-service on the `local`
//! driver: the 2014 proposal's OSC use case verbatim (an sshd container
//! reached with ssh at the address `container-show` prints), a real
//! terminal for `container-exec -it`, the progress of a create that boots
//! an instance, the output formats, the error messages and their exit
//! codes, and authentication through the lab's real Keystone (password,
//! application credential, `OS_CLOUD`) with project isolation.
//!
//! Needs openssh-server, openssh-client and tmux (scripts/test.sh installs
//! them) and, for the Keystone test, the lab; fails, never skips, without
//! them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use nest_tests::keystone::{self, Catalog, auth_url};
use nest_tests::service::{ALPHA, BETA, ServiceOptions, ServiceProcess};
use nest_tests::{TempDir, bin_path, unique};
use serde_json::{Value, json};

/// How long a create may take to boot an instance and start.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `osc` with exactly `env` for its OpenStack and Nest settings
/// (whatever the test process inherited is removed).
fn osc(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(bin_path("osc"));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("OS_") || key.starts_with("NEST_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("run osc")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `osc`, failing the test unless it succeeds; answers stdout.
fn osc_ok(env: &[(&str, &str)], args: &[&str]) -> String {
    let out = osc(env, args);
    assert!(
        out.status.success(),
        "osc {args:?} failed ({:?}):\n{}\n{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// An ssh key pair and the sshd image (scripts/sshd-image.sh) that
/// accepts it.
struct SshdImage {
    dir: TempDir,
}

impl SshdImage {
    fn build() -> Self {
        let dir = TempDir::new("osc-sshd");
        let key = dir.path().join("id_ed25519");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen (install openssh-client)");
        assert!(status.success(), "ssh-keygen failed");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/sshd-image.sh");
        let out = Command::new(script)
            .arg(dir.path().join("foo.tar"))
            .arg(key.with_extension("pub"))
            .output()
            .expect("run scripts/sshd-image.sh");
        assert!(
            out.status.success(),
            "sshd-image.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn tar(&self) -> PathBuf {
        self.dir.path().join("foo.tar")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    /// `ssh -p PORT ADDRESS COMMAND` with the image's key, retried while
    /// sshd comes up; answers stdout.
    async fn ssh(&self, address: &str, port: &str, command: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("ssh")
                .args(["-p", port, "-i"])
                .arg(self.key())
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
                .arg(command)
                .output()
                .expect("run ssh");
            if out.status.success() {
                return stdout(&out);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ssh -p {port} {address} failed: {}",
                stderr(&out)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Polls `osc container-show -f json` until the container has `status`.
async fn wait_status(env: &[(&str, &str)], id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
    loop {
        let shown = json_of(&osc_ok(env, &["container-show", id, "-f", "json"]));
        if shown["status"] == status {
            return shown;
        }
        assert!(shown["status"] != "Error", "{id} failed: {shown}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} is not {status}: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `command` in a fresh tmux session (a real pty, 80x24); for each
/// `(seen, keys)` step waits for `seen` on the screen and types `keys`
/// and Enter; then waits for `done` to appear; answers the screen.
async fn in_tmux(dir: &Path, command: &str, steps: &[(&str, &str)], done: &str) -> String {
    let socket = dir.join("tmux.sock");
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args(args)
            .output()
            .expect("run tmux (install tmux)")
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        "osc",
        "-x",
        "80",
        "-y",
        "24",
        command,
    ]);
    assert!(started.status.success(), "tmux: {}", stderr(&started));
    let wait_for = |text: String| {
        let tmux = &tmux;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let screen = stdout(&tmux(&["capture-pane", "-p", "-t", "osc"]));
                if screen.contains(&text) {
                    return screen;
                }
                if tokio::time::Instant::now() > deadline {
                    let _ = tmux(&["kill-server"]);
                    panic!("{text:?} never appeared on the terminal:\n{screen}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    for (seen, keys) in steps {
        wait_for((*seen).to_owned()).await;
        let sent = tmux(&["send-keys", "-t", "osc", keys, "Enter"]);
        assert!(sent.status.success(), "tmux send-keys: {}", stderr(&sent));
    }
    let screen = wait_for(done.to_owned()).await;
    let _ = tmux(&["kill-server"]);
    screen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proposal_osc_use_case_runs_sshd_reached_with_ssh() {
    let svc = ServiceProcess::start_with(ServiceOptions {
        // The local driver's instances are reachable on network `pub`,
        // the name the proposal's `--port pub:222:22` uses.
        extra: "network_name = \"pub\"\n".into(),
        ..Default::default()
    })
    .await;
    let env = [("NEST_URL", svc.url.as_str()), ("NEST_TOKEN", ALPHA)];
    let image = SshdImage::build();
    let tar = image.tar().display().to_string();
    let uuid = osc_ok(&env, &["image-create", &tar, "--name", "foo"])
        .trim()
        .to_owned();
    let listed = json_of(&osc_ok(&env, &["image-list", "-f", "json"]));
    assert_eq!(listed[0]["uuid"], uuid.as_str(), "{listed}");
    assert_eq!(listed[0]["name"], "foo");

    // The proposal, verbatim.
    let created = osc_ok(
        &env,
        &[
            "container-create",
            "--port",
            "pub:222:22",
            "--daemon",
            "--image",
            &uuid,
            "--cmd",
            "/usr/sbin/sshd -D",
        ],
    );
    let id = created.trim().to_owned();
    assert_eq!(
        id.len(),
        36,
        "container-create prints the uuid: {created:?}"
    );
    let shown = wait_status(&env, &id, "Running").await;
    let address = shown["addresses"]["pub"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no address on pub: {shown}"))
        .to_owned();
    let osc_path = bin_path("osc").display().to_string();
    let grep = Command::new("sh")
        .arg("-c")
        .arg(format!("\"{osc_path}\" container-show {id} | grep ports"))
        .env("NEST_URL", &svc.url)
        .env("NEST_TOKEN", ALPHA)
        .output()
        .expect("sh");
    assert_eq!(stdout(&grep), format!("ports: [{address}:222]\n"));
    let inside = image
        .ssh(
            &address,
            "222",
            "cat /etc/motd; id -u; cat /proc/1/cmdline | tr '\\0' ' '",
        )
        .await;
    // The motd of the image, root, and pid 1 is the container's sshd.
    assert!(
        inside.starts_with("foo\n0\n") && inside.contains("/usr/sbin/sshd -D"),
        "did not run inside the container: {inside:?}"
    );

    // A real terminal: `tty` names a device, the resize arrives, and osc
    // exits with the command's code.
    let dir = TempDir::new("osc-tty");
    let screen = in_tmux(
        dir.path(),
        &format!(
            "env NEST_URL={} NEST_TOKEN={ALPHA} {osc_path} container-exec -it {id} sh -c 'tty; sleep 1; echo size=$(stty size); exit 3'; echo osc-exit=$?; sleep 60",
            svc.url
        ),
        &[],
        "osc-exit=",
    )
    .await;
    assert!(
        screen.contains("/dev/pts/"),
        "tty printed no device:\n{screen}"
    );
    // The terminal's size reached the container's (tmux: 80 columns). The
    // command reads it after a second: the first resize travels beside the
    // exec's start, as with `docker exec -it`, and may land after it.
    assert!(
        screen
            .lines()
            .any(|l| l.starts_with("size=") && l.trim_end().ends_with(" 80")),
        "the window size was not passed on:\n{screen}"
    );
    assert!(
        screen.contains("osc-exit=3"),
        "exit code not passed on:\n{screen}"
    );
    let plain = osc(
        &env,
        &["container-exec", &id, "sh", "-c", "echo out; exit 5"],
    );
    assert_eq!(
        (plain.status.code(), stdout(&plain)),
        (Some(5), "out\n".into())
    );

    // Scripts: JSON, YAML, values and columns.
    let list = json_of(&osc_ok(&env, &["container-list", "-f", "json"]));
    assert_eq!(list[0]["uuid"], id.as_str());
    assert_eq!(list[0]["ports"], json!([format!("{address}:222")]));
    let value = osc_ok(
        &env,
        &[
            "container-show",
            &id,
            "-f",
            "value",
            "-c",
            "status",
            "-c",
            "uuid",
        ],
    );
    assert_eq!(value, format!("Running\n{id}\n"));
    let yaml = osc_ok(&env, &["container-show", &id, "-f", "yaml", "-c", "ports"]);
    assert!(yaml.contains(&format!("{address}:222")), "{yaml}");
    let table = osc_ok(&env, &["container-list"]);
    assert!(
        table.starts_with("+--") && table.contains("| Running"),
        "{table}"
    );
    let instances = json_of(&osc_ok(&env, &["instance-list", "-f", "json"]));
    assert_eq!(instances[0]["status"], "Ready", "{instances}");
    assert_eq!(instances[0]["addresses"]["pub"], address.as_str());
    assert_eq!(instances[0]["containers"], json!([shown["name"]]));

    // Quotas: the local driver enforces none, and says so.
    let quota = osc_ok(
        &[("NEST_PROJECT_ID", "alpha"), env[0], env[1]],
        &["quota-show", "-f", "json"],
    );
    let rows = json_of(&quota);
    let containers = rows
        .as_array()
        .and_then(|r| r.iter().find(|row| row["resource"] == "containers"))
        .unwrap_or_else(|| panic!("no containers row: {rows}"));
    assert_eq!(containers["in_use"], 1, "{rows}");
    let table = osc(
        &[("NEST_PROJECT_ID", "alpha"), env[0], env[1]],
        &["quota-show"],
    );
    assert!(
        stderr(&table).contains("limits: none"),
        "{}",
        stderr(&table)
    );
    let unknown_project = osc(&env, &["quota-show"]);
    assert_eq!(unknown_project.status.code(), Some(2));
    assert!(
        stderr(&unknown_project).contains("NEST_PROJECT_ID"),
        "{}",
        stderr(&unknown_project)
    );
    let completion = osc_ok(&[], &["completion", "bash"]);
    assert!(completion.contains("container-create"), "{completion}");

    // The other project sees nothing of it.
    let beta = [("NEST_URL", svc.url.as_str()), ("NEST_TOKEN", BETA)];
    let hidden = osc(&beta, &["container-show", &id]);
    assert_eq!(hidden.status.code(), Some(4), "{}", stderr(&hidden));
    assert!(
        stderr(&hidden).contains("could not be found"),
        "{}",
        stderr(&hidden)
    );
    assert_eq!(
        osc_ok(&beta, &["container-list", "-f", "json"]).trim(),
        "[]"
    );

    // Errors say what to do, with documented exit codes.
    let nothing = osc(&[], &["container-list"]);
    assert_eq!(nothing.status.code(), Some(3));
    assert!(
        stderr(&nothing).contains("no credentials"),
        "{}",
        stderr(&nothing)
    );
    assert!(stderr(&nothing).contains("hint:"), "{}", stderr(&nothing));
    let bad_column = osc(&env, &["container-list", "-c", "colour"]);
    assert_eq!(bad_column.status.code(), Some(2));
    assert!(
        stderr(&bad_column).contains("uuid, name"),
        "{}",
        stderr(&bad_column)
    );
    let bad_token = osc(
        &[("NEST_URL", svc.url.as_str()), ("NEST_TOKEN", "nope")],
        &["container-list"],
    );
    assert_eq!(bad_token.status.code(), Some(3), "{}", stderr(&bad_token));

    osc_ok(&env, &["container-delete", "--stop", &id]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let gone = osc(&env, &["container-show", &id]);
        if gone.status.code() == Some(4) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_boots_an_instance_shows_its_progress() {
    let svc = ServiceProcess::start().await;
    let env = [("NEST_URL", svc.url.as_str()), ("NEST_TOKEN", ALPHA)];
    let image = svc.upload_test_image(ALPHA).await;
    let out = osc(
        &env,
        &[
            "container-create",
            "--wait",
            "--daemon",
            "--name",
            "waited",
            "--image",
            &image,
            "--memory",
            "64M",
            "-f",
            "json",
            "--",
            "sleep",
            "3600",
        ],
    );
    let progress = stderr(&out);
    assert!(out.status.success(), "{progress}");
    assert!(progress.contains("booting instance "), "{progress}");
    assert!(
        progress.contains("container waited is running"),
        "{progress}"
    );
    let shown = json_of(&stdout(&out));
    assert_eq!(shown["status"], "Running", "--wait returned before it ran");
    assert_eq!(shown["memory"], "64");
    assert_eq!(shown["command"], json!(["sleep", "3600"]));

    // Attach: this terminal on an interactive container's shell.
    let console = osc_ok(
        &env,
        &[
            "container-create",
            "-i",
            "-t",
            "--daemon",
            "--wait",
            "--name",
            "console",
            "--image",
            &image,
            "--memory",
            "64M",
            "--",
            "sh",
        ],
    );
    assert_eq!(console.trim().len(), 36, "{console}");
    let dir = TempDir::new("osc-attach");
    let osc_path = bin_path("osc").display().to_string();
    let screen = in_tmux(
        dir.path(),
        &format!(
            "env NEST_URL={} NEST_TOKEN={ALPHA} {osc_path} container-attach console; echo attach-ended=$?; sleep 60",
            svc.url
        ),
        &[("", "echo hello-$((6 * 7))")],
        "hello-42",
    )
    .await;
    assert!(screen.contains("hello-42"), "{screen}");

    // In the foreground, create follows the output until the container ends.
    let foreground = osc(
        &env,
        &[
            "container-create",
            "--image",
            &image,
            "--memory",
            "64M",
            "--",
            "sh",
            "-c",
            "echo hello-from-osc; sleep 2; echo bye",
        ],
    );
    assert!(foreground.status.success(), "{}", stderr(&foreground));
    assert!(
        stdout(&foreground).contains("hello-from-osc\n") && stdout(&foreground).contains("bye"),
        "{}",
        stdout(&foreground)
    );
    let logs = osc_ok(&env, &["container-logs", "waited"]);
    assert_eq!(logs, "", "sleep prints nothing");

    let missing = osc(
        &env,
        &[
            "container-create",
            "--wait",
            "--daemon",
            "--image",
            "0b7c1f0e-4d9a-4f57-9d1e-3a0f2c9d8e71",
        ],
    );
    assert_ne!(missing.status.code(), Some(0));
    assert!(
        stderr(&missing).to_lowercase().contains("image"),
        "{}",
        stderr(&missing)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn osc_authenticates_through_keystone_and_projects_stay_apart() {
    let http = reqwest::Client::new();
    let svc = keystone::start_service().await;
    let catalog = Catalog::register(&format!("{}/v1", svc.url)).await;
    let region = catalog.region.clone();
    let auth = auth_url();
    let password = |user: &'static str, pass: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("OS_AUTH_URL", auth.clone()),
            ("OS_USERNAME", user.into()),
            ("OS_PASSWORD", pass.into()),
            ("OS_PROJECT_NAME", user.into()),
            ("OS_USER_DOMAIN_NAME", "Default".into()),
            ("OS_PROJECT_DOMAIN_NAME", "Default".into()),
            ("OS_REGION_NAME", region.clone()),
        ]
    };
    let as_refs = |v: &Vec<(&'static str, String)>| -> Vec<(&'static str, String)> { v.clone() };
    let run = |env: &Vec<(&'static str, String)>, args: &[&str]| {
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        osc(&pairs, args)
    };
    let demo = password("demo", "demopass");

    // Password: upload and create through the catalog's endpoint.
    let (demo_token, demo_body) = keystone::token(&http, "demo", "demopass", "demo").await;
    let image = svc.upload_test_image(&demo_token).await;
    let created = run(
        &demo,
        &[
            "container-create",
            "--daemon",
            "--name",
            "ks-web",
            "--image",
            &image,
            "--cmd",
            "sleep 3600",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let id = stdout(&created).trim().to_owned();
    let listed = run(&demo, &["container-list", "-f", "value", "-c", "uuid"]);
    assert_eq!(stdout(&listed).trim(), id, "{}", stderr(&listed));

    // An application credential of demo's.
    let user_id = demo_body["token"]["user"]["id"].as_str().expect("user id");
    let credential: Value = http
        .post(format!(
            "{}/users/{user_id}/application_credentials",
            auth_url()
        ))
        .header("X-Auth-Token", &demo_token)
        // The role named, not the token's: Keystone otherwise checks every
        // role the token carries, and once refused one the user never had.
        .json(&json!({"application_credential": {
            "name": unique("osc-ac"), "roles": [{"name": "member"}]}}))
        .send()
        .await
        .expect("create application credential")
        .json()
        .await
        .expect("application credential JSON");
    assert!(
        credential["application_credential"]["id"].is_string(),
        "Keystone created no application credential: {credential}"
    );
    let ac_id = credential["application_credential"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let ac_secret = credential["application_credential"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let app = vec![
        ("OS_AUTH_URL", auth.clone()),
        ("OS_APPLICATION_CREDENTIAL_ID", ac_id.clone()),
        ("OS_APPLICATION_CREDENTIAL_SECRET", ac_secret),
        ("OS_REGION_NAME", region.clone()),
    ];
    let shown = run(&app, &["container-show", &id, "-f", "json"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert_eq!(json_of(&stdout(&shown))["name"], "ks-web");

    // A token: re-scoped through Keystone, or used as is with an endpoint.
    let rescoped = vec![
        ("OS_AUTH_URL", auth.clone()),
        ("OS_TOKEN", demo_token.clone()),
        ("OS_PROJECT_NAME", "demo".to_owned()),
        ("OS_PROJECT_DOMAIN_NAME", "Default".to_owned()),
        ("OS_REGION_NAME", region.clone()),
    ];
    let via_token = run(&rescoped, &["container-list", "-f", "value", "-c", "uuid"]);
    assert_eq!(stdout(&via_token).trim(), id, "{}", stderr(&via_token));
    let direct = vec![
        ("OS_TOKEN", demo_token.clone()),
        ("OS_ENDPOINT", format!("{}/v1", svc.url)),
    ];
    let via_endpoint = run(
        &direct,
        &["container-show", "ks-web", "-f", "value", "-c", "uuid"],
    );
    assert_eq!(
        stdout(&via_endpoint).trim(),
        id,
        "{}",
        stderr(&via_endpoint)
    );

    // OS_CLOUD with a clouds.yaml.
    let dir = TempDir::new("osc-clouds");
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  lab:\n    auth:\n      auth_url: {auth}\n      username: demo\n      password: demopass\n      project_name: demo\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: {region}\n    interface: public\n"
        ),
    )
    .expect("write clouds.yaml");
    let cloud = vec![
        ("OS_CLOUD", "lab".to_owned()),
        ("OS_CLIENT_CONFIG_FILE", clouds.display().to_string()),
    ];
    let via_cloud = run(&cloud, &["container-list", "-f", "json"]);
    assert!(via_cloud.status.success(), "{}", stderr(&via_cloud));
    assert_eq!(json_of(&stdout(&via_cloud))[0]["uuid"], id.as_str());
    // A flag overrides the environment: a wrong password from the flag.
    let overridden = run(&cloud, &["--os-password", "wrong", "container-list"]);
    assert_eq!(overridden.status.code(), Some(3));
    assert!(
        stderr(&overridden).contains("refused the credentials"),
        "{}",
        stderr(&overridden)
    );

    // Another project's user: nothing listed, and a clear "not found".
    let alt = password("alt_demo", "alt_demopass");
    let alt_list = run(&alt, &["container-list", "-f", "json"]);
    assert!(alt_list.status.success(), "{}", stderr(&alt_list));
    assert_eq!(stdout(&alt_list).trim(), "[]");
    for target in [id.as_str(), "ks-web"] {
        let alt_show = run(&alt, &["container-show", target]);
        assert_eq!(alt_show.status.code(), Some(4), "{}", stderr(&alt_show));
        assert!(
            stderr(&alt_show).contains("could not be found"),
            "{}",
            stderr(&alt_show)
        );
    }
    let alt_delete = run(&alt, &["container-delete", &id]);
    assert_eq!(alt_delete.status.code(), Some(4));

    // No Nest in the catalog of that region.
    let mut elsewhere = as_refs(&demo);
    elsewhere.retain(|(k, _)| *k != "OS_REGION_NAME");
    elsewhere.push(("OS_REGION_NAME", "no-such-region".into()));
    let absent = run(&elsewhere, &["container-list"]);
    assert_eq!(absent.status.code(), Some(3));
    assert!(
        stderr(&absent).contains("no `container` service in the catalog"),
        "{}",
        stderr(&absent)
    );

    let deleted = run(&demo, &["container-delete", "--stop", &id]);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    catalog.remove().await;
    let _ = http
        .delete(format!(
            "{}/users/{user_id}/application_credentials/{ac_id}",
            auth_url()
        ))
        .header("X-Auth-Token", &demo_token)
        .send()
        .await;
}
