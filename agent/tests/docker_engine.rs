//! `nest_agent::docker` against the real Docker engine of this machine
//! (`/var/run/docker.sock`, Debian's 20.10, API 1.41).
//!
//! Each test acts as its own agent (a unique instance id) on containers
//! with unique uuids, and removes them in `Drop` even when it fails. The
//! test image `nest-test/busybox:1` is built from the host's busybox-static
//! when missing, since no registry is reachable.

use nest_core::testing::eventually;
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU16;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, RemoveImageOptions,
    TagImageOptionsBuilder,
};
use futures_util::{Stream, StreamExt};
use nest_agent::docker::{DockerError, Engine, MAX_CHUNK_BYTES};
use nest_agent::model::{
    AttachStream, Chunk, ContainerEvent, ContainerSpec, ContainerUuid, CreateContainer,
    EngineStatus, EnvVar, ExecCapture, ExecCaptured, ExecStream, Label, LogsRequest, NetworkAlias,
    NetworkAttachment, NetworkId, OutputKind, PortBinding, Protocol, TerminalSize,
};
use nest_core::ErrorKind;
use nest_core::ids::InstanceId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SOCKET: &str = "/var/run/docker.sock";
const IMAGE: &str = "nest-test/busybox:1";
/// Applets linked into the test image.
const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "ls", "top", "ps", "id", "env", "hostname", "true", "false",
    "yes", "head", "wc", "nc", "httpd", "printf", "mkdir", "pwd", "stty", "kill",
];
/// Longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(30);
/// Interval between polls of `eventually`.
const POLL: Duration = Duration::from_millis(100);

static SEQ: AtomicU64 = AtomicU64::new(0);
/// Serializes building the test image between the tests of this binary.
static IMAGE_BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A name no other test (or test run) uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A container uuid no other test (or test run) uses.
fn unique_uuid(prefix: &str) -> ContainerUuid {
    ContainerUuid::parse(&unique(prefix)).expect("valid container uuid")
}

/// A non-zero port or terminal dimension.
fn nz(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).expect("non-zero")
}

/// Builds `nest-test/busybox:1` from the host's busybox when missing.
async fn ensure_image() {
    tokio::task::spawn_blocking(|| {
        let _guard = IMAGE_BUILD.lock().unwrap_or_else(|p| p.into_inner());
        let present = std::process::Command::new("docker")
            .args(["image", "inspect", IMAGE])
            .output()
            .expect("docker CLI runs");
        if present.status.success() {
            return;
        }
        let dir = std::env::temp_dir().join(unique("nest-busybox-rootfs"));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("rootfs dir");
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet link");
        }
        std::fs::create_dir_all(dir.join("tmp")).expect("tmp dir");
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -C '{}' -c . | docker import - {IMAGE} >/dev/null",
                dir.display()
            ))
            .status()
            .expect("tar | docker import runs");
        std::fs::remove_dir_all(&dir).expect("remove rootfs dir");
        assert!(status.success(), "docker import failed");
    })
    .await
    .expect("image build task");
}

/// Removes the named engine containers when dropped, even on panic. Drop
/// cannot await, so it uses the docker CLI.
struct Cleanup(Vec<String>);

impl Cleanup {
    fn container(uuid: &impl Display) -> Self {
        Self(vec![format!("nest-{uuid}")])
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", "-v", name])
                .output();
        }
    }
}

/// A network id no other test (or test run) uses.
fn unique_network() -> NetworkId {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let id = format!(
        "{:08x}{:08x}{:08x}{:08x}",
        now.as_secs() & 0xffff_ffff,
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff,
        now.subsec_nanos()
    );
    NetworkId::parse(&id).expect("valid network id")
}

fn on_network(network: &NetworkId, aliases: &[&str]) -> NetworkAttachment {
    NetworkAttachment {
        network: network.clone(),
        aliases: aliases
            .iter()
            .map(|a| NetworkAlias::parse(a).expect("valid alias"))
            .collect(),
    }
}

/// Removes the named engine networks when dropped, even on panic; declare
/// it before the containers' [`Cleanup`], so that it runs after it.
struct NetworkCleanup(Vec<String>);

impl NetworkCleanup {
    fn of(networks: &[&NetworkId]) -> Self {
        Self(networks.iter().map(|n| format!("nest-{n}")).collect())
    }
}

impl Drop for NetworkCleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = std::process::Command::new("docker")
                .args(["network", "rm", name])
                .output();
        }
    }
}

/// The labels of the engine network `nest-<id>`, or `None` when there is
/// no such network.
fn engine_network(id: &NetworkId) -> Option<std::collections::HashMap<String, String>> {
    let out = std::process::Command::new("docker")
        .args(["network", "inspect", "-f", "{{json .Labels}}"])
        .arg(format!("nest-{id}"))
        .output()
        .expect("docker CLI runs");
    out.status.success().then(|| {
        let labels: Option<std::collections::HashMap<String, String>> =
            serde_json::from_slice(&out.stdout).expect("labels are JSON");
        labels.unwrap_or_default()
    })
}

/// An engine for a fresh instance id, with the test image in place.
async fn engine() -> Engine {
    ensure_image().await;
    let id = InstanceId::parse(&unique("test-instance")).expect("valid instance id");
    Engine::connect(Path::new(SOCKET), id)
        .await
        .expect("engine reachable")
}

fn spec(uuid: &ContainerUuid, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        ..ContainerSpec::new(uuid.clone(), IMAGE)
    }
}

fn run(spec: ContainerSpec) -> CreateContainer {
    CreateContainer {
        spec,
        start: true,
        pull_missing: false,
    }
}

fn capture(uuid: &ContainerUuid, command: &[&str]) -> ExecCapture {
    ExecCapture {
        uuid: uuid.clone(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        env: Vec::new(),
        workdir: None,
        user: None,
    }
}

fn logs_of(uuid: &ContainerUuid) -> LogsRequest {
    LogsRequest {
        uuid: uuid.clone(),
        stdout: false,
        stderr: false,
        tail: None,
        since: None,
        timestamps: false,
        follow: false,
    }
}

fn attach_to(uuid: &ContainerUuid) -> AttachStream {
    AttachStream {
        uuid: uuid.clone(),
        stdin: false,
        stdout: false,
        stderr: false,
        logs: false,
    }
}

/// Reads `output` until the text read so far satisfies `done`.
async fn read_until(
    output: &mut (impl Stream<Item = Result<Chunk, DockerError>> + Unpin),
    what: &str,
    done: impl Fn(&str) -> bool,
) -> (String, Vec<Chunk>) {
    let mut text = String::new();
    let mut chunks = Vec::new();
    tokio::time::timeout(WAIT, async {
        while !done(&text) {
            let chunk = output
                .next()
                .await
                .unwrap_or_else(|| panic!("output ended before {what}: {text:?}"))
                .expect("output chunk");
            assert!(chunk.data.len() <= MAX_CHUNK_BYTES);
            text.push_str(&String::from_utf8_lossy(&chunk.data));
            chunks.push(chunk);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    (text, chunks)
}

/// Every chunk of a finite stream.
async fn read_all(output: impl Stream<Item = Result<Chunk, DockerError>>) -> Vec<Chunk> {
    tokio::time::timeout(WAIT, output.map(|c| c.expect("chunk")).collect::<Vec<_>>())
        .await
        .expect("stream ends")
}

fn text_of(chunks: &[Chunk], kind: OutputKind) -> String {
    chunks
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| String::from_utf8_lossy(&c.data).into_owned())
        .collect()
}

async fn exec(engine: &Engine, uuid: &ContainerUuid, script: &str) -> ExecCaptured {
    engine
        .exec_capture(capture(uuid, &["sh", "-c", script]), 1 << 20)
        .await
        .expect("exec runs")
}

/// Asserts that an operation on a container that is not ours was refused
/// as not found.
fn not_found<T>(what: &str, result: Result<T, DockerError>) {
    match result {
        Err(err) => assert_eq!(err.kind(), ErrorKind::NotFound, "{what}: {err}"),
        Ok(_) => panic!("{what} reached a container that is not ours"),
    }
}

#[tokio::test]
async fn ping_reports_the_negotiated_api_version() {
    let engine = engine().await;
    let pong = engine.ping().await.expect("ping");
    assert_eq!(pong.docker_api_version, engine.api_version());
    assert_eq!(pong.docker_api_version, "1.41");
    assert!(!pong.docker_version.is_empty());
    assert_eq!(pong.agent_version, env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn published_port_zero_gets_a_real_host_port_that_serves_http() {
    let engine = engine().await;
    let uuid = unique_uuid("http");
    let _cleanup = Cleanup::container(&uuid);
    let mut s = spec(
        &uuid,
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo hello-nest > /www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    );
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    s.ports.push(PortBinding {
        host_ip: Some(localhost),
        host_port: 0,
        container_port: nz(8080),
        protocol: Protocol::Tcp,
    });
    let state = engine.create(run(s)).await.expect("create and start");
    assert!(state.running, "{state:?}");
    assert_eq!(state.status, Some(EngineStatus::Running));
    assert_eq!(state.name, format!("nest-{uuid}"));
    assert_eq!(state.ports.len(), 1, "{:?}", state.ports);
    let port = state.ports[0].host_port;
    assert_ne!(port, 0);
    assert_eq!(state.ports[0].container_port, nz(8080));
    assert_eq!(state.ports[0].host_ip, Some(localhost));

    let body = eventually(WAIT, "httpd to answer", || async move {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
            .await
            .ok()?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.ok()?;
        answer.contains("hello-nest").then_some(answer)
    })
    .await;
    assert!(body.starts_with("HTTP/1."), "{body}");
}

#[tokio::test]
async fn env_workdir_hostname_labels_and_command_are_honoured() {
    let engine = engine().await;
    let uuid = unique_uuid("env");
    let _cleanup = Cleanup::container(&uuid);
    let mut s = spec(&uuid, &["sleep", "300"]);
    s.env.push(EnvVar {
        name: "GREETING".to_owned(),
        value: "hello world".to_owned(),
    });
    s.workdir = Some("/srv/app".to_owned());
    s.hostname = Some("nesthost".to_owned());
    s.labels.push(Label {
        key: "team".to_owned(),
        value: "blue".to_owned(),
    });
    let state = engine.create(run(s)).await.expect("create and start");
    assert_eq!(state.labels.get("team").map(String::as_str), Some("blue"));
    assert_eq!(
        state.labels.get("nest.container.uuid").map(String::as_str),
        Some(uuid.as_str())
    );

    let out = exec(
        &engine,
        &uuid,
        "echo \"$GREETING\"; pwd; hostname; cat /proc/1/cmdline",
    )
    .await;
    assert_eq!(out.exit_code, 0);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello world\n/srv/app\nnesthost\nsleep\u{0}300\u{0}"
    );
    assert!(out.stderr.is_empty());
}

#[tokio::test]
async fn exec_capture_separates_streams_reports_exit_code_and_truncates() {
    let engine = engine().await;
    let uuid = unique_uuid("exec");
    let _cleanup = Cleanup::container(&uuid);
    engine
        .create(run(spec(&uuid, &["sleep", "300"])))
        .await
        .expect("create and start");

    let out = exec(&engine, &uuid, "echo out; echo err >&2; exit 7").await;
    assert_eq!(out.exit_code, 7);
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert!(!out.truncated);

    let big = engine
        .exec_capture(capture(&uuid, &["sh", "-c", "yes | head -c 200000"]), 1000)
        .await
        .expect("exec runs");
    assert!(big.truncated);
    assert_eq!(big.stdout.len(), 1000);
    assert_eq!(big.exit_code, 0);

    let err = engine
        .exec_capture(capture(&uuid, &[]), 1000)
        .await
        .expect_err("empty command");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

#[tokio::test]
async fn lifecycle_operations_change_the_engine_state() {
    let engine = engine().await;
    let uuid = unique_uuid("life");
    let _cleanup = Cleanup::container(&uuid);
    // PID 1 ignores signals it does not handle, so the script traps TERM.
    let script = "trap 'exit 42' TERM; while true; do sleep 1; done";
    let state = engine
        .create(CreateContainer {
            spec: spec(&uuid, &["sh", "-c", script]),
            start: false,
            pull_missing: false,
        })
        .await
        .expect("create");
    assert_eq!(state.status, Some(EngineStatus::Created));
    assert!(!state.running);
    assert_eq!(state.started_at, None);

    let state = engine.start(&uuid).await.expect("start");
    assert_eq!(state.status, Some(EngineStatus::Running));
    assert!(state.pid.is_some_and(|pid| pid > 0));
    assert!(state.started_at.is_some());
    // Starting a running container is not an error (the engine says 304).
    engine.start(&uuid).await.expect("start again");

    let state = engine.pause(&uuid).await.expect("pause");
    assert_eq!(state.status, Some(EngineStatus::Paused));
    let err = engine.pause(&uuid).await.expect_err("already paused");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let state = engine.unpause(&uuid).await.expect("unpause");
    assert_eq!(state.status, Some(EngineStatus::Running));

    let secs = Duration::from_secs;
    let state = engine.stop(&uuid, Some(secs(5))).await.expect("stop");
    assert_eq!(state.status, Some(EngineStatus::Exited));
    assert!(!state.running);
    assert_eq!(state.exit_code, 42, "TERM was trapped");
    engine.stop(&uuid, Some(secs(5))).await.expect("stop again");

    let state = engine.restart(&uuid, Some(secs(1))).await.expect("restart");
    assert_eq!(state.status, Some(EngineStatus::Running));

    // The restarted shell may not have set its trap yet, and PID 1 ignores
    // an untrapped TERM: send it again until the trap answers.
    let state = eventually(WAIT, "the trap to exit", || async {
        let s = engine.inspect(&uuid).await.expect("inspect");
        if s.status == Some(EngineStatus::Exited) {
            return Some(s);
        }
        if let Err(err) = engine.kill(&uuid, Some("SIGTERM")).await {
            assert_eq!(err.kind(), ErrorKind::Conflict, "kill with TERM: {err}");
        }
        None
    })
    .await;
    assert_eq!(state.exit_code, 42);
    let err = engine.kill(&uuid, None).await.expect_err("not running");
    assert_eq!(err.kind(), ErrorKind::Conflict);

    engine.start(&uuid).await.expect("start again");
    let state = engine
        .kill(&uuid, None)
        .await
        .expect("kill with the default");
    let state = if state.running {
        eventually(WAIT, "SIGKILL to land", || async {
            let s = engine.inspect(&uuid).await.expect("inspect");
            (!s.running).then_some(s)
        })
        .await
    } else {
        state
    };
    assert_eq!(state.exit_code, 137);

    let listed = engine.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].uuid, uuid);

    engine.remove(&uuid, true).await.expect("remove");
    engine
        .remove(&uuid, true)
        .await
        .expect("remove is idempotent");
    let err = engine.inspect(&uuid).await.expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(engine.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn containers_not_created_by_this_agent_are_not_found() {
    let engine = engine().await;
    let docker = Docker::connect_with_unix(SOCKET, 30, bollard::API_DEFAULT_VERSION)
        .expect("socket")
        .negotiate_version()
        .await
        .expect("version");

    // Same name pattern, no labels: created by hand, outside Nest.
    let foreign = unique_uuid("foreign");
    let _cleanup_foreign = Cleanup::container(&foreign);
    docker
        .create_container(
            Some(
                CreateContainerOptionsBuilder::default()
                    .name(&format!("nest-{foreign}"))
                    .build(),
            ),
            bollard::models::ContainerCreateBody {
                image: Some(IMAGE.to_owned()),
                cmd: Some(vec!["sleep".to_owned(), "300".to_owned()]),
                ..Default::default()
            },
        )
        .await
        .expect("foreign create");

    // Created by another agent (another instance id) on the same engine.
    let other_agent = self::engine().await;
    let others = unique_uuid("others");
    let _cleanup_others = Cleanup::container(&others);
    other_agent
        .create(run(spec(&others, &["sleep", "300"])))
        .await
        .expect("other agent's create");

    for uuid in [&foreign, &others] {
        not_found("inspect", engine.inspect(uuid).await);
        not_found("start", engine.start(uuid).await);
        let second = Some(Duration::from_secs(1));
        not_found("stop", engine.stop(uuid, second).await);
        not_found("restart", engine.restart(uuid, second).await);
        not_found("kill", engine.kill(uuid, None).await);
        not_found("pause", engine.pause(uuid).await);
        not_found("unpause", engine.unpause(uuid).await);
        not_found("top", engine.top(uuid, None).await);
        not_found("stats", engine.stats(uuid).await);
        not_found(
            "exec",
            engine.exec_capture(capture(uuid, &["true"]), 10).await,
        );
        not_found("logs", engine.logs(logs_of(uuid)).await);
        not_found("attach", engine.attach(attach_to(uuid)).await);
        // Removing what is not ours is a no-op, and the container survives.
        engine.remove(uuid, true).await.expect("remove is a no-op");
        let still_there = docker
            .inspect_container(&format!("nest-{uuid}"), None::<InspectContainerOptions>)
            .await
            .expect("the container is untouched");
        assert!(still_there.state.and_then(|s| s.status).is_some());
    }
    assert!(engine.list().await.expect("list").is_empty());
    let theirs = other_agent.list().await.expect("other agent's list");
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].uuid, others);
}

#[tokio::test]
async fn logs_replay_split_streams_honour_tail_and_follow_new_lines() {
    let engine = engine().await;
    let uuid = unique_uuid("logs");
    let _cleanup = Cleanup::container(&uuid);
    engine
        .create(run(spec(
            &uuid,
            &["sh", "-c", "echo one; echo two >&2; exec sleep 300"],
        )))
        .await
        .expect("create and start");

    let request = |follow: bool, tail: Option<u64>| LogsRequest {
        stdout: true,
        stderr: true,
        tail,
        follow,
        ..logs_of(&uuid)
    };
    let chunks = eventually(WAIT, "both lines in the log", || async {
        let output = engine.logs(request(false, None)).await.expect("logs");
        let chunks = read_all(output).await;
        (text_of(&chunks, OutputKind::Stderr) == "two\n").then_some(chunks)
    })
    .await;
    assert_eq!(text_of(&chunks, OutputKind::Stdout), "one\n");

    let only_stderr = read_all(
        engine
            .logs(LogsRequest {
                stdout: false,
                ..request(false, None)
            })
            .await
            .expect("logs"),
    )
    .await;
    assert_eq!(text_of(&only_stderr, OutputKind::Stderr), "two\n");
    assert_eq!(text_of(&only_stderr, OutputKind::Stdout), "");

    let last = read_all(engine.logs(request(false, Some(1))).await.expect("logs")).await;
    assert_eq!(last.len(), 1, "{last:?}");

    let mut followed = engine.logs(request(true, Some(0))).await.expect("follow");
    // The stream only subscribes once polled, so keep writing until a line
    // written after the subscription shows up.
    let (text, chunks) = tokio::time::timeout(WAIT, async {
        let mut n = 0u32;
        loop {
            n += 1;
            exec(&engine, &uuid, &format!("echo three-{n} > /proc/1/fd/1")).await;
            if let Ok(Some(chunk)) = tokio::time::timeout(POLL * 5, followed.next()).await {
                let chunk = chunk.expect("chunk");
                break (
                    String::from_utf8_lossy(&chunk.data).into_owned(),
                    vec![chunk],
                );
            }
        }
    })
    .await
    .expect("a followed line");
    assert!(text.starts_with("three-"), "{text:?}");
    assert_eq!(chunks[0].kind, OutputKind::Stdout);
}

#[tokio::test]
async fn interactive_exec_with_tty_runs_typed_commands_and_resizes() {
    let engine = engine().await;
    let uuid = unique_uuid("tty");
    let _cleanup = Cleanup::container(&uuid);
    engine
        .create(run(spec(&uuid, &["sleep", "300"])))
        .await
        .expect("create and start");

    let mut session = engine
        .exec_interactive(ExecStream {
            uuid: uuid.clone(),
            command: vec!["sh".to_owned()],
            tty: true,
            stdin: true,
            env: Vec::new(),
            workdir: None,
            user: None,
            size: Some(TerminalSize {
                width: nz(80),
                height: nz(24),
            }),
        })
        .await
        .expect("exec");
    session
        .input
        .write_all(b"echo hi-$((6*7))\n")
        .await
        .expect("type");
    session.input.flush().await.expect("flush");
    let (_, chunks) = read_until(&mut session.output, "the echo", |t| t.contains("hi-42")).await;
    assert!(chunks.iter().all(|c| c.kind == OutputKind::Console));

    session.input.write_all(b"stty size\n").await.expect("type");
    read_until(&mut session.output, "the initial size", |t| {
        t.contains("24 80")
    })
    .await;
    session
        .resize(TerminalSize {
            width: nz(100),
            height: nz(40),
        })
        .await
        .expect("resize");
    session.input.write_all(b"stty size\n").await.expect("type");
    read_until(&mut session.output, "the new size", |t| {
        t.contains("40 100")
    })
    .await;

    session.input.write_all(b"exit 3\n").await.expect("type");
    read_all(&mut session.output).await;
    assert_eq!(session.exit_code().await.expect("exit code"), Some(3));
}

#[tokio::test]
async fn attach_with_stdin_reaches_an_open_stdin_container() {
    let engine = engine().await;
    let uuid = unique_uuid("attach");
    let _cleanup = Cleanup::container(&uuid);
    let mut s = spec(&uuid, &["cat"]);
    s.open_stdin = true;
    engine.create(run(s)).await.expect("create and start");

    let mut session = engine
        .attach(AttachStream {
            stdin: true,
            stdout: true,
            stderr: true,
            ..attach_to(&uuid)
        })
        .await
        .expect("attach");
    session
        .input
        .write_all(b"ping-nest\n")
        .await
        .expect("write");
    session.input.flush().await.expect("flush");
    let (text, chunks) = read_until(&mut session.output, "the echo", |t| {
        t.contains("ping-nest\n")
    })
    .await;
    assert_eq!(text, "ping-nest\n");
    assert_eq!(chunks[0].kind, OutputKind::Stdout);

    // cat is PID 1 and ignores TERM, so the stop ends in SIGKILL.
    engine
        .stop(&uuid, Some(Duration::from_secs(1)))
        .await
        .expect("stop");
    read_all(&mut session.output).await;
    assert_eq!(session.exit_code().await.expect("exit code"), Some(137));
}

#[tokio::test]
async fn load_image_restores_a_saved_archive_under_its_tag() {
    let engine = engine().await;
    let docker = Docker::connect_with_unix(SOCKET, 120, bollard::API_DEFAULT_VERSION)
        .expect("socket")
        .negotiate_version()
        .await
        .expect("version");
    let tag = unique("load");
    let reference = format!("nest-test/busybox:{tag}");
    docker
        .tag_image(
            IMAGE,
            Some(
                TagImageOptionsBuilder::default()
                    .repo("nest-test/busybox")
                    .tag(&tag)
                    .build(),
            ),
        )
        .await
        .expect("tag");
    let archive: Vec<Vec<u8>> = docker
        .export_image(&reference)
        .map(|part| part.expect("docker save").to_vec())
        .collect()
        .await;
    docker
        .remove_image(&reference, None::<RemoveImageOptions>, None)
        .await
        .expect("untag");
    assert!(
        docker.inspect_image(&reference).await.is_err(),
        "tag removed"
    );

    let report = engine
        .load_image(futures_util::stream::iter(archive))
        .await
        .expect("load");
    assert!(report.contains(&reference), "{report}");
    docker.inspect_image(&reference).await.expect("tag is back");
    docker
        .remove_image(&reference, None::<RemoveImageOptions>, None)
        .await
        .expect("untag again");

    let err = engine
        .load_image(futures_util::stream::iter(vec![b"not a tar".to_vec()]))
        .await
        .expect_err("garbage");
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
}

#[tokio::test]
async fn events_report_start_and_die_with_the_exit_code() {
    let engine = engine().await;
    let uuid = unique_uuid("events");
    let _cleanup = Cleanup::container(&uuid);
    // Replaying from just before the create makes the subscription race-free.
    let since = SystemTime::now() - Duration::from_secs(1);
    let state = engine
        .create(run(spec(&uuid, &["sh", "-c", "exit 3"])))
        .await
        .expect("create and start");
    assert_eq!(state.uuid, uuid);

    let mut events = Box::pin(engine.events_since(Some(since)));
    let mut seen: Vec<ContainerEvent> = Vec::new();
    tokio::time::timeout(WAIT, async {
        while !seen.iter().any(|e| e.action == "die") {
            let event = events
                .next()
                .await
                .expect("event feed open")
                .expect("event");
            seen.push(event);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no die event; saw {seen:?}"));
    let actions: Vec<&str> = seen.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["create", "start", "die"], "{seen:?}");
    assert!(
        seen.iter()
            .all(|e| e.uuid == uuid && !e.docker_id.is_empty())
    );
    assert!(seen.iter().all(|e| e.time_nanos > 0));
    let die = &seen[2];
    assert_eq!(die.exit_code, Some(3));
    let after = die.state.as_ref().expect("state after die");
    assert_eq!(after.exit_code, 3);
    assert!(!after.running);

    // The live feed sees later events too.
    engine.remove(&uuid, true).await.expect("remove");
    let destroy = tokio::time::timeout(WAIT, async {
        loop {
            let event = events
                .next()
                .await
                .expect("event feed open")
                .expect("event");
            if event.action == "destroy" {
                break event;
            }
        }
    })
    .await
    .expect("destroy event");
    assert_eq!(destroy.uuid, uuid);
    assert!(destroy.state.is_none());
}

#[tokio::test]
async fn stats_and_top_report_a_busy_container() {
    let engine = engine().await;
    let uuid = unique_uuid("stats");
    let _cleanup = Cleanup::container(&uuid);
    let mut s = spec(&uuid, &["sh", "-c", "while :; do :; done"]);
    s.memory_bytes = 64 * 1024 * 1024;
    s.cpu_millis = 500;
    engine.create(run(s)).await.expect("create and start");

    let stats = eventually(WAIT, "CPU use to show", || async {
        let stats = engine.stats(&uuid).await.expect("stats");
        (stats.cpu_percent > 0.0).then_some(stats)
    })
    .await;
    assert!(stats.cpu_percent <= 100.0 * 64.0, "{stats:?}");
    assert!(stats.memory_usage_bytes > 0, "{stats:?}");
    assert_eq!(stats.memory_limit_bytes, 64 * 1024 * 1024);
    assert!(stats.pids >= 1, "{stats:?}");

    let top = engine.top(&uuid, None).await.expect("top");
    assert!(top.titles.iter().any(|t| t == "PID"), "{top:?}");
    assert!(
        top.processes
            .iter()
            .any(|row| row.iter().any(|c| c.contains("while"))),
        "{top:?}"
    );
}

#[tokio::test]
async fn invalid_specs_and_missing_images_create_nothing() {
    let engine = engine().await;
    let uuid = unique_uuid("invalid");
    let _cleanup = Cleanup::container(&uuid);

    // Malformed uuids, ports and missing specs cannot be built as the
    // agent's types: the wire conversion refuses them (its unit tests).
    let mut reserved_label = spec(&uuid, &["true"]);
    reserved_label.labels.push(Label {
        key: "nest.instance.id".to_owned(),
        value: "someone-else".to_owned(),
    });
    let mut no_image = spec(&uuid, &["true"]);
    no_image.image = String::new();
    let mut huge_cpu = spec(&uuid, &["true"]);
    huge_cpu.cpu_millis = u64::MAX;
    let mut relative_workdir = spec(&uuid, &["true"]);
    relative_workdir.workdir = Some("srv".to_owned());
    let mut bad_env = spec(&uuid, &["true"]);
    bad_env.env.push(EnvVar {
        name: "A=B".to_owned(),
        value: String::new(),
    });
    for bad in [
        reserved_label,
        no_image,
        huge_cpu,
        relative_workdir,
        bad_env,
    ] {
        let err = engine.create(run(bad)).await.expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    }

    let mut missing = spec(&uuid, &["true"]);
    missing.image = "nest-test/no-such-image:1".to_owned();
    let err = engine
        .create(run(missing.clone()))
        .await
        .expect_err("missing image");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("missing"), "{err}");

    // No registry is reachable here, so the pull fails as retryable.
    let err = engine
        .create(CreateContainer {
            spec: missing,
            start: true,
            pull_missing: true,
        })
        .await
        .expect_err("pull fails");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");

    assert!(engine.list().await.expect("list").is_empty());
    let err = engine.inspect(&uuid).await.expect_err("nothing created");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// A container serving `/` with `body` on port 8080.
fn http_server(uuid: &ContainerUuid, body: &str) -> ContainerSpec {
    spec(
        uuid,
        &[
            "sh",
            "-c",
            &format!(
                "mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 8080 -h /www"
            ),
        ],
    )
}

/// What `wget` in `from` fetches from `host`:8080, once it answers (no
/// `-T`: this busybox's wget crashes with it).
async fn fetch_from(engine: &Engine, from: &ContainerUuid, host: &str) -> String {
    let script = format!("busybox wget -qO- http://{host}:8080/");
    eventually(WAIT, &format!("{host} to answer"), || {
        let script = script.clone();
        async move {
            let out = exec(engine, from, &script).await;
            (out.exit_code == 0).then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        }
    })
    .await
}

#[tokio::test]
async fn containers_on_one_network_reach_each_other_by_alias_and_name() {
    let engine = engine().await;
    let shared = unique_network();
    let own = unique_network();
    let _networks = NetworkCleanup::of(&[&shared, &own]);
    let a = unique_uuid("net-a");
    let b = unique_uuid("net-b");
    let _cleanup = Cleanup(vec![format!("nest-{a}"), format!("nest-{b}")]);

    // a is on the shared network only, as its primary one, and publishes
    // its port: a user network binds the instance's address as the default
    // bridge does.
    let mut a_spec = http_server(&a, "hello-from-a");
    a_spec.name = Some("web".to_owned());
    a_spec.networks = vec![on_network(&shared, &["www", "frontend"])];
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    a_spec.ports.push(PortBinding {
        host_ip: Some(localhost),
        host_port: 0,
        container_port: nz(8080),
        protocol: Protocol::Tcp,
    });
    let a_state = engine.create(run(a_spec)).await.expect("create a");
    assert!(a_state.running, "{a_state:?}");
    let labels = engine_network(&shared).expect("the shared network was made");
    assert_eq!(labels["nest.managed-by"], "nest-agent");
    assert_eq!(labels["nest.network.id"], shared.as_str());

    // b is on its own network first and joins the shared one second, which
    // the engine can only do by a connect before the start.
    let mut b_spec = http_server(&b, "hello-from-b");
    b_spec.name = Some("worker".to_owned());
    b_spec.networks = vec![on_network(&own, &[]), on_network(&shared, &["client"])];
    let b_state = engine.create(run(b_spec)).await.expect("create b");
    assert!(b_state.running, "{b_state:?}");
    assert!(engine_network(&own).is_some(), "b's own network was made");

    for host in ["www", "frontend", "web", &format!("nest-{a}")] {
        let body = fetch_from(&engine, &b, host).await;
        assert_eq!(body.trim(), "hello-from-a", "b fetching {host}");
    }
    for host in ["client", "worker", &format!("nest-{b}")] {
        let body = fetch_from(&engine, &a, host).await;
        assert_eq!(body.trim(), "hello-from-b", "a fetching {host}");
    }
    // b is on its two networks and nothing else: not on the default bridge.
    let inspect = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{json .NetworkSettings.Networks}}"])
        .arg(format!("nest-{b}"))
        .output()
        .expect("docker CLI runs");
    let networks: std::collections::HashMap<String, serde_json::Value> =
        serde_json::from_slice(&inspect.stdout).expect("networks are JSON");
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    let mut expected = [format!("nest-{own}"), format!("nest-{shared}")];
    expected.sort();
    assert_eq!(names, expected.iter().collect::<Vec<_>>());

    let port = a_state.ports[0].host_port;
    assert_eq!(a_state.ports[0].host_ip, Some(localhost));
    let answer = eventually(WAIT, "a's published port to answer", || async move {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        conn.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.ok()?;
        answer.contains("hello-from-a").then_some(answer)
    })
    .await;
    assert!(answer.starts_with("HTTP/1."), "{answer}");

    // Removing the first of two keeps the shared network for the other.
    engine.remove(&a, true).await.expect("remove a");
    assert!(engine_network(&shared).is_some(), "b still needs it");
    assert_eq!(
        fetch_from(&engine, &b, "client").await.trim(),
        "hello-from-b"
    );
    // Removing the last removes both of its networks.
    engine.remove(&b, true).await.expect("remove b");
    assert!(
        engine_network(&shared).is_none(),
        "the shared network stayed"
    );
    assert!(engine_network(&own).is_none(), "b's own network stayed");
}

#[tokio::test]
async fn a_stopped_container_keeps_its_network_and_restarts_on_it() {
    let engine = engine().await;
    let network = unique_network();
    let _networks = NetworkCleanup::of(&[&network]);
    let a = unique_uuid("net-stop-a");
    let b = unique_uuid("net-stop-b");
    let _cleanup = Cleanup(vec![format!("nest-{a}"), format!("nest-{b}")]);
    let mut created = spec(&a, &["sleep", "300"]);
    created.networks = vec![on_network(&network, &[])];
    let state = engine
        .create(CreateContainer {
            spec: created,
            start: false,
            pull_missing: false,
        })
        .await
        .expect("create a, not started");
    assert!(!state.running);
    let mut other = http_server(&b, "still-here");
    other.networks = vec![on_network(&network, &["svc"])];
    engine.create(run(other)).await.expect("create b");
    engine
        .stop(&b, Some(Duration::from_secs(1)))
        .await
        .expect("stop b");
    // The engine would let the network go under a created or stopped
    // container; the agent must not.
    engine.remove(&b, false).await.expect("remove b");
    assert!(engine_network(&network).is_some(), "a was never started");
    engine.start(&a).await.expect("a starts on its network");
    engine.remove(&a, true).await.expect("remove a");
    assert!(engine_network(&network).is_none());
}

#[tokio::test]
async fn a_hand_made_network_of_the_same_name_is_refused_and_left_alone() {
    let engine = engine().await;
    let foreign = unique_network();
    let fresh = unique_network();
    let _networks = NetworkCleanup::of(&[&foreign, &fresh]);
    let uuid = unique_uuid("net-foreign");
    let _cleanup = Cleanup::container(&uuid);
    let made = std::process::Command::new("docker")
        .args(["network", "create"])
        .arg(format!("nest-{foreign}"))
        .output()
        .expect("docker CLI runs");
    assert!(made.status.success(), "{made:?}");

    // Also when it comes second: nothing is made for the first one either.
    for networks in [
        vec![on_network(&foreign, &[])],
        vec![on_network(&fresh, &[]), on_network(&foreign, &["x"])],
    ] {
        let mut s = spec(&uuid, &["sleep", "300"]);
        s.networks = networks;
        let err = engine.create(run(s)).await.expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(
            err.to_string().contains(&format!("nest-{foreign}")),
            "the error names the network: {err}"
        );
        assert!(engine_network(&fresh).is_none(), "nothing was made");
        let err = engine.inspect(&uuid).await.expect_err("nothing created");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
    assert_eq!(
        engine_network(&foreign),
        Some(std::collections::HashMap::new()),
        "the hand-made network is untouched"
    );
}

#[tokio::test]
async fn invalid_attachments_and_specs_make_no_network() {
    let engine = engine().await;
    let network = unique_network();
    let _networks = NetworkCleanup::of(&[&network]);
    let uuid = unique_uuid("net-invalid");
    let _cleanup = Cleanup::container(&uuid);

    let with = |edit: &dyn Fn(&mut ContainerSpec)| {
        let mut s = spec(&uuid, &["sleep", "300"]);
        s.networks = vec![on_network(&network, &["www"])];
        edit(&mut s);
        s
    };
    let bad = [
        with(&|s| s.networks.push(on_network(&network, &[]))),
        with(&|s| {
            s.networks = (0..9).map(|_| on_network(&unique_network(), &[])).collect();
        }),
        with(&|s| {
            s.networks[0].aliases = (0..33)
                .map(|i| NetworkAlias::parse(&format!("a{i}")).expect("valid alias"))
                .collect();
        }),
        with(&|s| s.workdir = Some("relative".to_owned())),
    ];
    for s in bad {
        let err = engine.create(run(s)).await.expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    }
    let mut missing = with(&|_| {});
    missing.image = "nest-test/no-such-image:1".to_owned();
    let err = engine.create(run(missing)).await.expect_err("no image");
    assert!(matches!(err, DockerError::ImageMissing { .. }), "{err}");
    assert!(engine_network(&network).is_none(), "a network was left");
    let err = engine.inspect(&uuid).await.expect_err("nothing created");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// Makes the engine network `nest-<id>` by hand with `labels`.
fn hand_made_network(id: &NetworkId, labels: &[String]) {
    let mut command = std::process::Command::new("docker");
    command.args(["network", "create"]);
    for label in labels {
        command.arg("--label").arg(label);
    }
    let made = command
        .arg(format!("nest-{id}"))
        .output()
        .expect("docker CLI runs");
    assert!(made.status.success(), "{made:?}");
}

#[tokio::test]
async fn the_sweep_removes_old_empty_nest_networks_only() {
    let engine = engine().await;
    let left = unique_network();
    let used = unique_network();
    let foreign = unique_network();
    let mislabelled = unique_network();
    let _networks = NetworkCleanup::of(&[&left, &used, &foreign, &mislabelled]);
    let uuid = unique_uuid("net-sweep");
    let _cleanup = Cleanup::container(&uuid);
    // What a crash between a container's removal and its network's leaves.
    let managed = "nest.managed-by=nest-agent".to_owned();
    hand_made_network(&left, &[managed.clone(), format!("nest.network.id={left}")]);
    // Not Nest's: no labels, or the labels of another network.
    hand_made_network(&foreign, &[]);
    hand_made_network(&mislabelled, &[managed, format!("nest.network.id={left}")]);
    let mut s = spec(&uuid, &["sleep", "300"]);
    s.networks = vec![on_network(&used, &[])];
    engine
        .create(CreateContainer {
            spec: s,
            start: false,
            pull_missing: false,
        })
        .await
        .expect("create on a network");

    // Younger than the grace: kept, in case its container is on its way.
    // (Another test's network gets its container within that grace.)
    let grace = Duration::from_secs(5);
    engine.remove_unused_networks(grace).await.expect("sweep");
    assert!(engine_network(&left).is_some());
    tokio::time::sleep(grace + Duration::from_millis(200)).await;
    let removed = engine.remove_unused_networks(grace).await.expect("sweep");
    assert!(removed >= 1, "{removed}");
    assert!(engine_network(&left).is_none(), "the leftover stayed");
    assert!(engine_network(&used).is_some(), "a used network went");
    assert!(engine_network(&foreign).is_some(), "a foreign network went");
    assert!(
        engine_network(&mislabelled).is_some(),
        "a mislabelled network went"
    );
}
