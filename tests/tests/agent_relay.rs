//! End to end through the real binaries: service side → nest-relay →
//! nest-agent → dockerd, over mutual TLS.

use std::collections::HashSet;
use std::time::Duration;

use nest_core::ErrorKind;
use nest_core::ids::InstanceId;
use nest_relay::client::{RelayClient, RelayError, RelayStream};
use nest_relay::proto::{self, command, command_output, stream_open, stream_output};
use nest_tests::docker::{self, Cleanup, TEST_IMAGE};
use nest_tests::{AgentProcess, RelayProcess, TestPki, TestService, any_loopback, unique};

const TIMEOUT: Duration = Duration::from_secs(30);
const AGENT_CERT_LIFETIME: Duration = Duration::from_secs(3600);

/// A relay, the service side and one enrolled, connected agent.
struct Rig {
    // Field order is drop order: agents before the relay.
    agent: AgentProcess,
    service: TestService,
    relay: RelayProcess,
    pki: TestPki,
    _cleanup: Cleanup,
}

impl Rig {
    async fn start() -> Self {
        docker::ensure_test_image();
        let pki = TestPki::new();
        let relay = RelayProcess::start(&pki, any_loopback()).await;
        let service = TestService::attach(&pki, &relay.dial_addr(), AGENT_CERT_LIFETIME).await;
        let instance = InstanceId::parse(&unique("inst")).expect("instance id");
        let cleanup = Cleanup(vec![instance.to_string()]);
        let token = service.token_for(&instance);
        let agent =
            AgentProcess::start(pki.dir.path(), &pki, &relay.dial_addr(), &instance, &token);
        let connected = service
            .wait_connected(&instance, &HashSet::new(), TIMEOUT)
            .await;
        // What the agent supports reaches the service through the relay.
        assert_eq!(
            connected.features,
            nest_relay::version::AGENT_FEATURES,
            "{connected:?}"
        );
        Self {
            agent,
            service,
            relay,
            pki,
            _cleanup: cleanup,
        }
    }

    fn instance(&self) -> &InstanceId {
        &self.agent.instance
    }

    async fn exec(&self, kind: command::Kind) -> Result<command_output::Kind, RelayError> {
        self.service
            .client
            .execute(self.instance(), &unique("req"), kind, TIMEOUT)
            .await
    }

    async fn container(&self, kind: command::Kind) -> proto::ContainerState {
        match self.exec(kind).await {
            Ok(command_output::Kind::Container(state)) => state,
            other => panic!("expected a container state, got {other:?}"),
        }
    }

    async fn run(&self, uuid: &str, command: &[&str]) -> proto::ContainerState {
        self.container(command::Kind::Create(proto::CreateContainer {
            spec: Some(proto::ContainerSpec {
                uuid: uuid.to_owned(),
                image: TEST_IMAGE.to_owned(),
                command: command.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            }),
            start: true,
            pull_missing: false,
        }))
        .await
    }
}

fn refs(uuid: &str) -> proto::ContainerRef {
    proto::ContainerRef {
        uuid: uuid.to_owned(),
    }
}

/// Reads a stream's output until `done` says enough or the stream ends.
async fn read_until(
    stream: &mut RelayStream,
    mut done: impl FnMut(&[u8]) -> bool,
) -> (Vec<u8>, Option<stream_output::Kind>) {
    let mut seen = Vec::new();
    let result = tokio::time::timeout(TIMEOUT, async {
        while let Some(frame) = stream.next().await {
            match frame.expect("stream frame") {
                stream_output::Kind::Chunk(chunk) => {
                    seen.extend_from_slice(&chunk.data);
                    if done(&seen) {
                        return None;
                    }
                }
                stream_output::Kind::Started(_) => {}
                last => return Some(last),
            }
        }
        None
    })
    .await;
    match result {
        Ok(last) => (seen, last),
        Err(_) => panic!(
            "stream did not produce what was expected within {TIMEOUT:?}; got {:?}",
            String::from_utf8_lossy(&seen)
        ),
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_runs_streams_logs_execs_and_reports_every_state_change() {
    let rig = Rig::start().await;
    let uuid = unique("c");

    let state = rig
        .run(
            &uuid,
            &[
                "sh",
                "-c",
                "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.2; done",
            ],
        )
        .await;
    assert!(state.running, "container should run: {state:?}");
    assert_eq!(state.uuid, uuid);
    let docker_id = state.docker_id.clone();
    assert_eq!(
        docker::inspect(&docker_id, "{{.State.Running}}").as_deref(),
        Some("true"),
        "the engine itself must have it running"
    );

    // Logs follow: lines written after the stream opened arrive while the
    // container runs.
    let mut logs = rig
        .service
        .client
        .open_stream(
            rig.instance(),
            "req-logs",
            stream_open::Kind::Logs(proto::LogsStream {
                uuid: uuid.clone(),
                stdout: true,
                stderr: true,
                follow: true,
                ..Default::default()
            }),
        )
        .await
        .expect("open logs");
    let (first, _) = read_until(&mut logs, |seen| contains(seen, "line-2")).await;
    let (later, _) = read_until(&mut logs, |seen| contains(seen, "line-8")).await;
    assert!(
        contains(&first, "line-0"),
        "{}",
        String::from_utf8_lossy(&first)
    );
    assert!(contains(&later, "line-8"));
    drop(logs);

    // Captured exec: stdout, stderr and the exit code, apart.
    let captured = match rig
        .exec(command::Kind::Exec(proto::ExecCapture {
            uuid: uuid.clone(),
            command: vec![
                "sh".into(),
                "-c".into(),
                "echo out; echo err >&2; exit 7".into(),
            ],
            ..Default::default()
        }))
        .await
        .expect("exec")
    {
        command_output::Kind::Exec(c) => c,
        other => panic!("expected exec output, got {other:?}"),
    };
    assert_eq!(captured.exit_code, 7);
    assert_eq!(String::from_utf8_lossy(&captured.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&captured.stderr), "err\n");

    // Interactive exec with a tty: what is typed is echoed, and runs.
    let mut shell = rig
        .service
        .client
        .open_stream(
            rig.instance(),
            "req-exec",
            stream_open::Kind::Exec(proto::ExecStream {
                uuid: uuid.clone(),
                command: vec!["sh".into()],
                tty: true,
                stdin: true,
                width: 80,
                height: 24,
                ..Default::default()
            }),
        )
        .await
        .expect("open exec");
    shell.resize(100, 30).await.expect("resize");
    shell
        .send_stdin(b"echo typed-$((6*7)); stty size 2>/dev/null; exit 3\n")
        .await
        .expect("type");
    let (output, last) = read_until(&mut shell, |_| false).await;
    assert!(
        contains(&output, "echo typed-$((6*7))"),
        "the tty must echo what was typed: {:?}",
        String::from_utf8_lossy(&output)
    );
    assert!(
        contains(&output, "typed-42"),
        "the typed command must run: {:?}",
        String::from_utf8_lossy(&output)
    );
    match last {
        Some(stream_output::Kind::End(end)) => assert_eq!(end.exit_code, Some(3)),
        other => panic!("exec must end with its exit code, got {other:?}"),
    }

    // Stop, start, kill, remove: each is a state change the agent reports.
    let stopped = rig
        .container(command::Kind::Stop(proto::StopContainer {
            uuid: uuid.clone(),
            timeout_seconds: Some(1),
        }))
        .await;
    assert!(!stopped.running);
    rig.service
        .wait_for(TIMEOUT, "die event after stop", |seen| {
            seen.container_actions(&uuid)
                .iter()
                .any(|a| a == "die")
                .then_some(())
        })
        .await;
    let started = rig.container(command::Kind::Start(refs(&uuid))).await;
    assert!(started.running);
    let killed = rig
        .container(command::Kind::Kill(proto::KillContainer {
            uuid: uuid.clone(),
            signal: "SIGKILL".into(),
        }))
        .await;
    assert_eq!(killed.uuid, uuid);
    assert!(matches!(
        rig.exec(command::Kind::Remove(proto::RemoveContainer {
            uuid: uuid.clone(),
            force: true,
        }))
        .await,
        Ok(command_output::Kind::Done(_))
    ));
    assert_eq!(
        docker::inspect(&docker_id, "{{.Id}}"),
        None,
        "the engine must no longer have it"
    );
    let actions = rig
        .service
        .wait_for(TIMEOUT, "destroy event", |seen| {
            let actions = seen.container_actions(&uuid);
            actions.iter().any(|a| a == "destroy").then_some(actions)
        })
        .await;
    for expected in ["start", "die", "stop", "kill", "destroy"] {
        assert!(
            actions.iter().any(|a| a == expected),
            "no {expected} event among {actions:?}"
        );
    }
    let starts = actions.iter().filter(|a| *a == "start").count();
    assert!(starts >= 2, "both starts reported: {actions:?}");

    // A removed container is gone for every command.
    let err = rig
        .exec(command::Kind::Inspect(refs(&uuid)))
        .await
        .expect_err("inspect of a removed container");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_and_restarted_reports_same_containers_without_restarting_them() {
    let mut rig = Rig::start().await;
    let uuids = [unique("keep"), unique("keep")];
    let mut started_at = Vec::new();
    for uuid in &uuids {
        let state = rig.run(uuid, &["sleep", "3600"]).await;
        assert!(state.running);
        started_at
            .push(docker::inspect(&state.docker_id, "{{.State.StartedAt}}").expect("started at"));
    }
    let before: HashSet<u64> = rig
        .service
        .seen(|s| s.connected().into_iter().map(|(_, id, _)| id).collect());

    rig.agent.kill().await;
    rig.agent.restart();
    let hello = rig
        .service
        .wait_connected(rig.instance(), &before, TIMEOUT)
        .await;

    let reported: HashSet<&str> = hello.inventory.iter().map(|c| c.uuid.as_str()).collect();
    for (uuid, started) in uuids.iter().zip(&started_at) {
        assert!(
            reported.contains(uuid.as_str()),
            "{uuid} missing from {reported:?}"
        );
        let state = hello
            .inventory
            .iter()
            .find(|c| &c.uuid == uuid)
            .expect("in inventory");
        assert!(state.running, "{uuid} must still run");
        assert_eq!(
            &state.started_at, started,
            "{uuid} must not have been restarted"
        );
        assert_eq!(
            docker::inspect(&state.docker_id, "{{.State.StartedAt}}").as_ref(),
            Some(started),
            "the engine agrees: never restarted"
        );
    }
    // And the new session works.
    let state = rig.container(command::Kind::Inspect(refs(&uuids[0]))).await;
    assert!(state.running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_agent_is_back_within_5s_of_the_relay_listening_again() {
    docker::ensure_test_image();
    let pki = TestPki::new();
    let relay = RelayProcess::start(&pki, any_loopback()).await;
    let addr = relay.addr;
    let service = TestService::attach(&pki, &relay.dial_addr(), AGENT_CERT_LIFETIME).await;
    let mut agents = Vec::new();
    for _ in 0..3 {
        let instance = InstanceId::parse(&unique("inst")).expect("id");
        let token = service.token_for(&instance);
        agents.push(AgentProcess::start(
            pki.dir.path(),
            &pki,
            &relay.dial_addr(),
            &instance,
            &token,
        ));
    }
    for agent in &agents {
        service
            .wait_connected(&agent.instance, &HashSet::new(), TIMEOUT)
            .await;
    }
    let before: HashSet<u64> =
        service.seen(|s| s.connected().into_iter().map(|(_, id, _)| id).collect());

    let status = relay.stop().await;
    assert!(
        status.success(),
        "relay must exit cleanly on SIGTERM: {status:?}"
    );
    // Stay down long enough for the agents' backoff to grow.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let relay = RelayProcess::start(&pki, addr).await;
    let listening = tokio::time::Instant::now();
    for agent in &agents {
        service
            .wait_connected(&agent.instance, &before, Duration::from_secs(10))
            .await;
    }
    let back = listening.elapsed();
    assert!(
        back <= Duration::from_secs(5),
        "agents took {back:?} to return after the relay listened again"
    );
    // Commands flow again through the new relay.
    for agent in &agents {
        let pong = service
            .client
            .execute(
                &agent.instance,
                "req-ping",
                command::Kind::Ping(proto::Ping {}),
                TIMEOUT,
            )
            .await
            .expect("ping after relay restart");
        assert!(matches!(pong, command_output::Kind::Pong(_)));
    }
    drop(agents);
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_stream_reader_stalls_only_its_stream_and_the_relay_buffers_little() {
    let rig = Rig::start().await;
    let uuid = unique("flood");
    // 400,000 lines of 58 bytes (about 22 MiB), then idle. Whole lines
    // only: the engine holds back a last partial line until stdout closes.
    let state = rig
        .run(
            &uuid,
            &[
                "sh",
                "-c",
                "yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU | head -n 400000; sleep 3600",
            ],
        )
        .await;
    assert!(state.running);
    let rss_before = rig.relay.rss_kib();
    let mut logs = rig
        .service
        .client
        .open_stream(
            rig.instance(),
            "req-flood",
            stream_open::Kind::Logs(proto::LogsStream {
                uuid: uuid.clone(),
                stdout: true,
                follow: true,
                ..Default::default()
            }),
        )
        .await
        .expect("open logs");
    // Don't read for a while: the agent must stop at its window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_stalled = rig.relay.rss_kib();
    // Meanwhile other commands on the same agent are not held up.
    let started = tokio::time::Instant::now();
    rig.exec(command::Kind::Ping(proto::Ping {}))
        .await
        .expect("ping while a stream is stalled");
    assert!(started.elapsed() < Duration::from_secs(2));

    const EXPECTED: usize = 400_000 * 58;
    let mut total = 0usize;
    // With lines joined into frames the 22 MiB take about 15 s on two
    // busy cores (debug build); one frame per line took 56 s on an idle
    // machine and over 100 s in a full run, which this deadline catches.
    let read = tokio::time::timeout(Duration::from_secs(45), async {
        while total < EXPECTED {
            match logs.next().await {
                Some(Ok(stream_output::Kind::Chunk(c))) => total += c.data.len(),
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("stream failed: {e}"),
                None => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "read only {total} bytes in time");
    assert_eq!(total, EXPECTED, "every byte arrives, in order and once");
    let grown_kib = rss_stalled.saturating_sub(rss_before);
    assert!(
        grown_kib < 16 * 1024,
        "relay grew by {grown_kib} KiB while its reader stalled (before {rss_before}, stalled {rss_stalled})"
    );
}

/// Output frames of a stream until its end: (kind, bytes) per frame.
async fn frames_until_end(stream: &mut RelayStream) -> Vec<(i32, Vec<u8>)> {
    let mut frames = Vec::new();
    let ended = tokio::time::timeout(TIMEOUT, async {
        while let Some(frame) = stream.next().await {
            match frame.expect("stream frame") {
                stream_output::Kind::Chunk(c) => frames.push((c.kind, c.data)),
                stream_output::Kind::Started(_) => {}
                stream_output::Kind::End(_) => return true,
                other => panic!("stream failed: {other:?}"),
            }
        }
        false
    })
    .await;
    assert_eq!(
        ended,
        Ok(true),
        "the stream ends with End within {TIMEOUT:?}"
    );
    frames
}

/// Consecutive frames of one output joined: what a reader of the two
/// outputs sees, whatever the framing.
fn runs(frames: impl IntoIterator<Item = (i32, Vec<u8>)>) -> Vec<(i32, Vec<u8>)> {
    let mut runs: Vec<(i32, Vec<u8>)> = Vec::new();
    for (kind, data) in frames {
        match runs.last_mut() {
            Some((last, bytes)) if *last == kind => bytes.extend_from_slice(&data),
            _ => runs.push((kind, data)),
        }
    }
    runs
}

/// The engine's own log of a container, read with bollard: (kind, bytes)
/// per engine frame, in the wire's output kinds.
async fn engine_log_frames(docker_id: &str, tail: Option<&str>) -> Vec<(i32, Vec<u8>)> {
    use bollard::container::LogOutput;
    use futures_util::StreamExt;
    let engine =
        bollard::Docker::connect_with_unix(docker::SOCKET, 60, bollard::API_DEFAULT_VERSION)
            .expect("the engine's socket");
    let mut options = bollard::query_parameters::LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .timestamps(true);
    if let Some(tail) = tail {
        options = options.tail(tail);
    }
    let mut frames = Vec::new();
    let mut log = engine.logs(docker_id, Some(options.build()));
    while let Some(frame) = log.next().await {
        match frame.expect("engine log frame") {
            LogOutput::StdOut { message } => {
                frames.push((proto::OutputKind::Stdout as i32, message.to_vec()));
            }
            LogOutput::StdErr { message } => {
                frames.push((proto::OutputKind::Stderr as i32, message.to_vec()));
            }
            other => panic!("unexpected engine output {other:?}"),
        }
    }
    frames
}

fn logs_of(uuid: &str, tail: Option<u64>) -> stream_open::Kind {
    stream_open::Kind::Logs(proto::LogsStream {
        uuid: uuid.to_owned(),
        stdout: true,
        stderr: true,
        timestamps: true,
        tail,
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_fewer_frames_keep_the_engines_bytes_streams_order_and_timestamps() {
    let rig = Rig::start().await;
    let uuid = unique("burst");
    // Blocks of lines on one output, the outputs taking turns: the
    // engine's log then has long runs on one output that can be joined,
    // and turns between them whose order must hold. (Line by line, the
    // engine's two pipes interleave as its timing falls.)
    const BLOCKS: usize = 60;
    const LINES: usize = 50;
    let script = format!(
        "i=0; while [ $i -lt {BLOCKS} ]; do j=0; \
         while [ $j -lt {LINES} ]; do echo out-$i-$j; j=$((j+1)); done; j=0; \
         while [ $j -lt {LINES} ]; do echo err-$i-$j >&2; j=$((j+1)); done; \
         i=$((i+1)); done; sleep 3600"
    );
    let state = rig.run(&uuid, &["sh", "-c", &script]).await;
    assert!(state.running);
    let written = nest_tests::eventually(TIMEOUT, "the engine to log every line", || async {
        let frames = engine_log_frames(&state.docker_id, None).await;
        (frames.len() == 2 * BLOCKS * LINES).then_some(frames)
    })
    .await;

    let mut logs = rig
        .service
        .client
        .open_stream(rig.instance(), "req-burst", logs_of(&uuid, None))
        .await
        .expect("open logs");
    let frames = frames_until_end(&mut logs).await;
    // Lines the engine had ready together went out joined: of the engine's
    // frames that follow one of the same output, most joined it.
    let engine_runs = runs(written.clone()).len();
    let joinable = written.len() - engine_runs;
    let joined = written.len().saturating_sub(frames.len());
    assert!(
        joinable * 2 > written.len(),
        "the engine's log has {engine_runs} runs in {} frames: the blocks must stay mostly whole",
        written.len()
    );
    assert!(
        joined * 2 > joinable,
        "{} frames for {} engine frames in {engine_runs} runs: ready lines must be joined",
        frames.len(),
        written.len()
    );
    assert!(
        frames
            .iter()
            .all(|(_, data)| data.len() <= nest_relay::version::MAX_CHUNK_BYTES)
    );
    // ...yet each output reads exactly as from the engine, in the same
    // order between stdout and stderr, every line with its own timestamp.
    let (ours, engines) = (runs(frames), runs(written));
    assert!(
        ours == engines,
        "the outputs differ from the engine's own log"
    );
    let lines: Vec<&[u8]> = ours
        .iter()
        .flat_map(|(_, data)| data.split(|b| *b == b'\n'))
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(lines.len(), 2 * BLOCKS * LINES);
    for line in &lines {
        let text = String::from_utf8_lossy(line);
        let (stamp, rest) = text.split_once(' ').expect("a timestamp, then the line");
        assert!(
            stamp.len() > 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{text:?} starts with its timestamp"
        );
        assert!(
            rest.starts_with("out-") || rest.starts_with("err-"),
            "{text:?}"
        );
    }

    // The engine applies `tail`; joining frames does not change it.
    let mut tail = rig
        .service
        .client
        .open_stream(rig.instance(), "req-tail", logs_of(&uuid, Some(5)))
        .await
        .expect("open logs with tail");
    let ours = runs(frames_until_end(&mut tail).await);
    let engines = runs(engine_log_frames(&state.docker_id, Some("5")).await);
    assert_eq!(ours, engines);
    let last: usize = ours
        .iter()
        .map(|(_, d)| d.iter().filter(|b| **b == b'\n').count())
        .sum();
    assert_eq!(last, 5, "tail 5 is five lines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followed_logs_of_a_slow_writer_arrive_line_by_line_at_once() {
    use time::format_description::well_known::Rfc3339;
    /// Between two lines: longer than any delay a loaded machine adds, so
    /// two lines in one frame mean one was held back.
    const INTERVAL: &str = "2";
    /// Longest time from the engine's stamp on a line to its arrival here.
    const PROMPT: Duration = Duration::from_millis(1500);
    const LINES: usize = 4;
    let rig = Rig::start().await;
    let uuid = unique("slow");
    let script = format!("i=0; while true; do echo tick-$i; i=$((i+1)); sleep {INTERVAL}; done");
    let state = rig.run(&uuid, &["sh", "-c", &script]).await;
    assert!(state.running);
    let mut logs = rig
        .service
        .client
        .open_stream(
            rig.instance(),
            "req-slow",
            stream_open::Kind::Logs(proto::LogsStream {
                uuid: uuid.clone(),
                stdout: true,
                timestamps: true,
                follow: true,
                ..Default::default()
            }),
        )
        .await
        .expect("open logs");
    let mut frames = Vec::new();
    let read = tokio::time::timeout(TIMEOUT, async {
        // The first frame may hold the lines written before the open.
        while frames.len() < LINES + 1 {
            match logs.next().await {
                Some(Ok(stream_output::Kind::Chunk(c))) => {
                    frames.push((time::OffsetDateTime::now_utc(), c.data));
                }
                Some(Ok(stream_output::Kind::Started(_))) => {}
                other => panic!("the follow ended early: {other:?}"),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{} frames in {TIMEOUT:?}", frames.len());
    for (arrived, data) in &frames[1..] {
        let text = String::from_utf8_lossy(data);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "one line per frame: {text:?}");
        let (stamp, line) = lines[0].split_once(' ').expect("timestamp and line");
        assert!(line.starts_with("tick-"), "{text:?}");
        let written = time::OffsetDateTime::parse(stamp, &Rfc3339).expect("the engine's timestamp");
        let late = *arrived - written;
        assert!(late < PROMPT, "{line} arrived {late} after it was written");
    }
}

// ---- refusals ----

async fn connect_as_agent(client: tonic::transport::Channel) -> Result<(), tonic::Status> {
    let mut agent = proto::agent_relay_client::AgentRelayClient::new(client);
    let hello = proto::AgentMessage {
        kind: Some(proto::agent_message::Kind::Hello(proto::Hello {
            protocol_version: nest_relay::version::PROTOCOL_VERSION,
            agent_version: "test".into(),
            ..Default::default()
        })),
    };
    let mut inbound = agent
        .connect(tokio_stream::iter(vec![hello]))
        .await?
        .into_inner();
    inbound.message().await.map(|_| ())
}

async fn ping_as(client: &RelayClient, instance: &InstanceId) -> Result<(), RelayError> {
    client
        .execute(
            instance,
            "req-x",
            command::Kind::Ping(proto::Ping {}),
            TIMEOUT,
        )
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_without_client_certificate_is_refused() {
    let rig = Rig::start().await;
    let tls = rig.pki.tls_with(None);
    let channel = nest_relay::client::dial(&rig.relay.dial_addr(), &tls)
        .await
        .expect("TLS without a client certificate is allowed for enrollment");
    let status = connect_as_agent(channel.clone())
        .await
        .expect_err("a session needs a certificate");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let err = ping_as(&RelayClient::from_channel(channel), rig.instance())
        .await
        .expect_err("control needs a certificate");
    assert_eq!(err.kind, ErrorKind::Unauthenticated, "{err}");
    // Nothing changed: the real agent's session is still the only one.
    assert_eq!(rig.service.seen(|s| s.connected().len()), 1);
    ping_as(&rig.service.client, rig.instance())
        .await
        .expect("real agent unaffected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_another_ca_is_refused() {
    let rig = Rig::start().await;
    let other = TestPki::new();
    let events_before = rig.service.event_count();
    // A service certificate from another CA.
    let tls = rig.pki.tls_with(Some(&other.service));
    let result = async {
        let channel = nest_relay::client::dial(&rig.relay.dial_addr(), &tls).await?;
        ping_as(&RelayClient::from_channel(channel), rig.instance()).await
    }
    .await;
    let err = result.expect_err("a foreign CA's certificate must be refused");
    assert_eq!(
        err.kind,
        ErrorKind::Unavailable,
        "refused at the TLS handshake: {err}"
    );
    // An agent certificate from another CA for the same instance cannot
    // take over the real agent's session.
    let impostor = other.issue(
        nest_relay::identity::PeerIdentity::agent(rig.instance()),
        nest_pki::Validity::starting_now(Duration::from_secs(600)),
    );
    let tls = rig.pki.tls_with(Some(&impostor));
    let attempt = async {
        let channel = nest_relay::client::dial(&rig.relay.dial_addr(), &tls)
            .await
            .map_err(|e| tonic::Status::unavailable(e.message))?;
        connect_as_agent(channel).await
    }
    .await;
    assert!(attempt.is_err(), "the impostor's session must fail");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rig.service.event_count(),
        events_before,
        "no session came or went"
    );
    ping_as(&rig.service.client, rig.instance())
        .await
        .expect("real agent unaffected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_is_refused() {
    let rig = Rig::start().await;
    let events_before = rig.service.event_count();
    let expired = rig.pki.issue(
        nest_relay::identity::PeerIdentity::agent(rig.instance()),
        nest_pki::Validity::ended_ago(Duration::from_secs(60)),
    );
    let tls = rig.pki.tls_with(Some(&expired));
    let attempt = async {
        let channel = nest_relay::client::dial(&rig.relay.dial_addr(), &tls)
            .await
            .map_err(|e| tonic::Status::unavailable(e.message))?;
        connect_as_agent(channel).await
    }
    .await;
    let status = attempt.expect_err("an expired certificate must be refused");
    assert!(
        matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        ),
        "refused at the TLS layer, not by an RPC: {status:?}"
    );
    let expired_service = rig.pki.issue(
        nest_relay::identity::PeerIdentity::service("old").expect("identity"),
        nest_pki::Validity::ended_ago(Duration::from_secs(60)),
    );
    let tls = rig.pki.tls_with(Some(&expired_service));
    let result = async {
        let channel = nest_relay::client::dial(&rig.relay.dial_addr(), &tls).await?;
        ping_as(&RelayClient::from_channel(channel), rig.instance()).await
    }
    .await;
    assert_eq!(
        result.expect_err("expired service certificate").kind,
        ErrorKind::Unavailable
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rig.service.event_count(),
        events_before,
        "no session came or went"
    );
    ping_as(&rig.service.client, rig.instance())
        .await
        .expect("real agent unaffected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_token_is_refused_on_second_use() {
    let rig = Rig::start().await;
    let instance = InstanceId::parse(&unique("inst")).expect("id");
    let _cleanup = Cleanup(vec![instance.to_string()]);
    let token = rig.service.token_for(&instance);

    let enroll = |token: String| {
        let tls = rig.pki.tls_with(None);
        let addr = rig.relay.dial_addr();
        async move {
            let key = rcgen::KeyPair::generate().expect("key");
            let csr = rcgen::CertificateParams::new(Vec::<String>::new())
                .expect("params")
                .serialize_request(&key)
                .expect("csr")
                .pem()
                .expect("pem");
            let channel = nest_relay::client::dial(&addr, &tls).await.expect("dial");
            proto::agent_relay_client::AgentRelayClient::new(channel)
                .enroll(proto::EnrollRequest {
                    token,
                    csr_pem: csr,
                    protocol_version: nest_relay::version::PROTOCOL_VERSION,
                    agent_version: "test".into(),
                })
                .await
        }
    };
    let first = enroll(token.clone())
        .await
        .expect("first use enrolls")
        .into_inner();
    assert_eq!(first.instance_id, instance.as_str());
    let second = enroll(token.clone())
        .await
        .expect_err("second use is refused");
    assert_eq!(second.code(), tonic::Code::Unauthenticated, "{second:?}");

    // A real agent handed the used token fails to enroll and says why.
    let mut agent = AgentProcess::start(
        rig.pki.dir.path(),
        &rig.pki,
        &rig.relay.dial_addr(),
        &instance,
        &token,
    );
    let status = agent.wait_exit(TIMEOUT).await;
    assert!(!status.success(), "the agent must stop, not retry forever");
    assert!(agent.log().contains("enrollment"), "{}", agent.log());
    assert!(
        !agent.state_dir().join("agent-cert.pem").exists(),
        "no certificate was stored"
    );
    let connected: Vec<String> = rig
        .service
        .seen(|s| s.connected().into_iter().map(|(i, _, _)| i).collect());
    assert!(
        !connected.contains(&instance.to_string()),
        "no session for the refused agent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_certificate_cannot_act_as_the_service_nor_the_reverse() {
    let rig = Rig::start().await;
    let agent_cert = rig.pki.issue(
        nest_relay::identity::PeerIdentity::agent(rig.instance()),
        nest_pki::Validity::starting_now(Duration::from_secs(600)),
    );
    let tls = rig.pki.tls_with(Some(&agent_cert));
    let channel = nest_relay::client::dial(&rig.relay.dial_addr(), &tls)
        .await
        .expect("a valid agent certificate passes TLS");
    let as_service = RelayClient::from_channel(channel);
    let err = ping_as(&as_service, rig.instance())
        .await
        .expect_err("an agent certificate cannot send commands");
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err}");
    let err = as_service.watch().await.expect_err("nor watch");
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err}");

    let events_before = rig.service.event_count();
    let channel = nest_relay::client::dial(&rig.relay.dial_addr(), &rig.pki.service_tls())
        .await
        .expect("service dials");
    let status = connect_as_agent(channel)
        .await
        .expect_err("a service certificate cannot open an agent session");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rig.service.event_count(),
        events_before,
        "no session came or went"
    );
    ping_as(&rig.service.client, rig.instance())
        .await
        .expect("real agent unaffected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_renews_its_certificate_over_the_live_session_before_expiry() {
    docker::ensure_test_image();
    let pki = TestPki::new();
    let relay = RelayProcess::start(&pki, any_loopback()).await;
    // Short-lived certificates: renewal is due two thirds in, after 8s.
    let lifetime = Duration::from_secs(12);
    let service = TestService::attach(&pki, &relay.dial_addr(), lifetime).await;
    let instance = InstanceId::parse(&unique("inst")).expect("id");
    let token = service.token_for(&instance);
    let mut agent =
        AgentProcess::start(pki.dir.path(), &pki, &relay.dial_addr(), &instance, &token);
    let first = service
        .wait_connected(&instance, &HashSet::new(), TIMEOUT)
        .await;
    let cert_path = agent.state_dir().join("agent-cert.pem");
    let original = std::fs::read_to_string(&cert_path).expect("enrolled certificate");

    let renewed = nest_tests::eventually(Duration::from_secs(20), "a renewed certificate", || {
        let path = cert_path.clone();
        let original = original.clone();
        async move {
            let now = std::fs::read_to_string(&path).ok()?;
            (now != original).then_some(now)
        }
    })
    .await;
    assert!(renewed.starts_with("-----BEGIN CERTIFICATE-----"));
    // Renewed over the live session: no reconnect happened.
    let sessions = service.seen(|s| {
        s.connected()
            .into_iter()
            .filter(|(id, _, _)| id == instance.as_str())
            .count()
    });
    assert_eq!(sessions, 1, "renewal must not need a new session");
    // The agent logs the renewal just after it writes the file.
    nest_tests::eventually(
        Duration::from_secs(5),
        "the renewal in the agent's log",
        || {
            let logged = agent.log().contains("agent certificate renewed");
            async move { logged.then_some(()) }
        },
    )
    .await;

    // Once the original certificate has expired, a restarted agent gets in
    // with the renewed one (it has no token left to enroll again).
    tokio::time::sleep(Duration::from_secs(6)).await;
    agent.kill().await;
    agent.restart();
    let known: HashSet<u64> = [first.session_id].into_iter().collect();
    service.wait_connected(&instance, &known, TIMEOUT).await;
}
