//! Every agent is its tenant's: end to end through the real nest-service
//! (embedded relay, `local` driver), a tenant who is root in its instance
//! takes its agent's real key and certificate and speaks the agent
//! protocol itself, with the project's own relay client code.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nest_relay::client::ClientTls;
use nest_relay::proto::{self, agent_message};
use nest_tests::service::{ALPHA, BETA, ServiceProcess};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const BOOT: Duration = Duration::from_secs(90);
/// How long the service may take to count what it dropped.
const COUNTED: Duration = Duration::from_secs(15);
/// A stream and command id no session hands out this early.
const FOREIGN_ID: u64 = 1 << 40;

/// Runs a container for `token`'s project and returns (uuid, instance).
async fn run(svc: &ServiceProcess, token: &str, image: &str, name: &str) -> (String, String) {
    let (code, view) = svc
        .call(
            token,
            Method::POST,
            "/v1/containers?run=true",
            Some(json!({
                "image": image,
                "name": name,
                "command": ["sh", "-c", format!("echo hello-{name}; exec sleep 1000")],
                "cpu": 0.1,
                "memory": "64",
            })),
        )
        .await;
    assert_eq!(code, 202, "create: {view}");
    let id = view["uuid"].as_str().expect("uuid").to_owned();
    let view = svc.wait_status(token, &id, "Running", BOOT).await;
    let host = view["host"].as_str().expect("host").to_owned();
    (id, host)
}

/// What a root user of `instance` can read in it: its agent's TLS material
/// and where its relay is.
fn stolen_identity(svc: &ServiceProcess, instance: &str) -> (ClientTls, String) {
    let root = svc.instances_dir().join(instance).join("root");
    let read = |path: &Path| {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    };
    let config = read(&root.join("etc/nest/agent.toml"));
    let relay_addr = config
        .lines()
        .find_map(|l| l.strip_prefix("relay_addr = "))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .expect("agent.toml names its relay");
    let state = root.join("var/lib/nest-agent");
    let tls = ClientTls {
        ca_pem: read(&root.join("etc/nest/ca.pem")),
        identity: Some((
            read(&state.join("agent-cert.pem")),
            read(&state.join("agent-key.pem")),
        )),
        server_name: None,
    };
    (tls, relay_addr)
}

/// An agent session played by hand.
struct RogueAgent {
    outbound: mpsc::Sender<proto::AgentMessage>,
    inbound: tonic::Streaming<proto::RelayMessage>,
}

impl RogueAgent {
    /// Opens a session with `tls`, saying hello with `inventory`, and waits
    /// for the relay's acknowledgement.
    async fn connect(tls: &ClientTls, relay: &str, inventory: Vec<proto::ContainerState>) -> Self {
        let channel = nest_relay::client::dial(relay, tls)
            .await
            .expect("the stolen certificate passes TLS");
        let mut client = proto::agent_relay_client::AgentRelayClient::new(channel);
        let (outbound, rx) = mpsc::channel(16);
        outbound
            .send(message(agent_message::Kind::Hello(proto::Hello {
                protocol_version: nest_relay::version::PROTOCOL_VERSION,
                agent_version: "rogue".into(),
                inventory,
                ..Default::default()
            })))
            .await
            .expect("queue hello");
        let mut inbound = client
            .connect(ReceiverStream::new(rx))
            .await
            .expect("the relay takes the session")
            .into_inner();
        let ack = inbound.message().await.expect("an answer");
        assert!(
            matches!(
                ack.and_then(|m| m.kind),
                Some(proto::relay_message::Kind::HelloAck(_))
            ),
            "the session starts"
        );
        Self { outbound, inbound }
    }

    async fn send(&self, kind: agent_message::Kind) {
        self.outbound.send(message(kind)).await.expect("queue");
    }
}

fn message(kind: agent_message::Kind) -> proto::AgentMessage {
    proto::AgentMessage { kind: Some(kind) }
}

fn state(uuid: &str, status: &str, exit_code: i64) -> proto::ContainerState {
    proto::ContainerState {
        uuid: uuid.to_owned(),
        docker_id: "0123456789ab".into(),
        status: status.into(),
        running: status == "running",
        exit_code,
        ..Default::default()
    }
}

/// The service's `nest_agent_scope_violations_total`, by kind.
async fn violations(svc: &ServiceProcess) -> BTreeMap<String, u64> {
    let text = reqwest::get(format!("{}/metrics", svc.url))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter_map(|l| l.strip_prefix("nest_agent_scope_violations_total{kind=\""))
        .filter_map(|l| {
            let (kind, rest) = l.split_once("\"} ")?;
            Some((kind.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

async fn show(svc: &ServiceProcess, token: &str, id: &str) -> Value {
    let (code, view) = svc
        .call(token, Method::GET, &format!("/v1/containers/{id}"), None)
        .await;
    assert_eq!(code, 200, "{view}");
    view
}

async fn host_status(svc: &ServiceProcess, token: &str, host: &str) -> String {
    let (code, view) = svc
        .call(token, Method::GET, &format!("/v1/hosts/{host}"), None)
        .await;
    assert_eq!(code, 200, "{view}");
    view["status"].as_str().expect("status").to_owned()
}

async fn exec_echo(svc: &ServiceProcess, token: &str, id: &str) {
    let (code, exec) = svc
        .call(
            token,
            Method::POST,
            &format!("/v1/containers/{id}/execute"),
            Some(json!({"command": "echo alive"})),
        )
        .await;
    assert_eq!(code, 200, "{exec}");
    assert_eq!(exec["output"], "alive\n", "{exec}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_agent_cannot_change_another_projects_containers() {
    let svc = ServiceProcess::start().await;
    let alpha_image = svc.upload_test_image(ALPHA).await;
    let beta_image = svc.upload_test_image(BETA).await;
    let (victim, victim_host) = run(&svc, ALPHA, &alpha_image, "victim").await;
    let (own, attacker_host) = run(&svc, BETA, &beta_image, "own").await;
    assert_ne!(victim_host, attacker_host);
    let before = show(&svc, ALPHA, &victim).await;

    // Beta's tenant, root in its instance, speaks as its agent: its
    // inventory, events, stream frames and results name alpha's container.
    let (tls, relay) = stolen_identity(&svc, &attacker_host);
    let rogue = RogueAgent::connect(
        &tls,
        &relay,
        vec![state(&own, "running", 0), state(&victim, "exited", 137)],
    )
    .await;
    for action in ["die", "destroy"] {
        rogue
            .send(agent_message::Kind::Event(proto::ContainerEvent {
                uuid: victim.clone(),
                docker_id: "0123456789ab".into(),
                action: action.into(),
                exit_code: Some(137),
                time_nanos: 1,
                state: (action == "die").then(|| state(&victim, "exited", 137)),
            }))
            .await;
    }
    rogue
        .send(agent_message::Kind::Stream(proto::StreamFrame {
            stream_id: FOREIGN_ID,
            output: Some(proto::StreamOutput {
                kind: Some(proto::stream_output::Kind::Chunk(proto::Chunk {
                    kind: proto::OutputKind::Stdout.into(),
                    data: b"forged output\n".to_vec(),
                })),
            }),
        }))
        .await;
    rogue
        .send(agent_message::Kind::Result(proto::CommandResult {
            command_id: FOREIGN_ID,
            outcome: Some(proto::command_result::Outcome::Output(
                proto::CommandOutput {
                    kind: Some(proto::command_output::Kind::Done(proto::Empty {})),
                },
            )),
        }))
        .await;

    // Every kind is dropped and counted...
    let counted = nest_tests::eventually(COUNTED, "the dropped messages counted", || async {
        let counts = violations(&svc).await;
        let all = [
            "container_event",
            "inventory",
            "stream_frame",
            "command_result",
        ];
        all.iter()
            .all(|k| counts.get(*k).is_some_and(|n| *n >= 1))
            .then_some(counts)
    })
    .await;
    assert_eq!(counted.get("container_event"), Some(&2), "{counted:?}");
    // ... and logged as a security event naming the instance.
    let log = svc.log_text();
    let events: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("agent_scope_violation"))
        .collect();
    assert!(
        events.iter().any(|l| l.contains(&attacker_host)),
        "{events:#?}"
    );
    assert!(
        events.iter().all(|l| !l.contains(&victim_host)),
        "{events:#?}"
    );

    // Alpha's container keeps its true status, and its instance its
    // agent: its logs hold nothing forged, and it still answers.
    drop(rogue);
    let after = show(&svc, ALPHA, &victim).await;
    assert_eq!(after["status"], "Running", "{after}");
    assert_eq!(after["status_reason"], before["status_reason"], "{after}");
    assert_eq!(host_status(&svc, ALPHA, &victim_host).await, "Ready");
    let (code, logs) = svc
        .call(
            ALPHA,
            Method::GET,
            &format!("/v1/containers/{victim}/logs"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{logs}");
    assert_eq!(logs, Value::String("hello-victim\n".into()));
    exec_echo(&svc, ALPHA, &victim).await;
    // Beta's real agent takes its instance back.
    nest_tests::eventually(BOOT, "beta's agent to answer again", || async {
        let (code, _) = svc
            .call(
                BETA,
                Method::POST,
                &format!("/v1/containers/{own}/execute"),
                Some(json!({"command": "true"})),
            )
            .await;
        (code == 200).then_some(())
    })
    .await;
    let own_view = show(&svc, BETA, &own).await;
    assert_eq!(own_view["status"], "Running", "{own_view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_connecting_twice_stays_ready() {
    let svc = ServiceProcess::start().await;
    let image = svc.upload_test_image(ALPHA).await;
    let (id, host) = run(&svc, ALPHA, &image, "web").await;
    let (tls, relay) = stolen_identity(&svc, &host);

    // A second session of the same instance replaces the agent's; the
    // agent soon replaces it in turn. Each replaced session's end must
    // leave the instance Ready.
    let mut second = RogueAgent::connect(&tls, &relay, vec![state(&id, "running", 0)]).await;
    let replaced = tokio::time::timeout(BOOT, async {
        while let Some(Ok(Some(_))) = Some(second.inbound.message().await) {}
    })
    .await;
    assert!(replaced.is_ok(), "the real agent takes its session back");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < deadline {
        assert_eq!(host_status(&svc, ALPHA, &host).await, "Ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    exec_echo(&svc, ALPHA, &id).await;
    let view = show(&svc, ALPHA, &id).await;
    assert_eq!(view["status"], "Running", "{view}");
}

// ---- the relay bounds what unauthenticated peers hold ----

/// The first-request deadline the flood test configures: long enough for
/// every handshake of the flood to finish before the first is closed.
const FIRST_REQUEST: Duration = Duration::from_secs(15);
/// Handshakes the flood runs at once (the machine's cores are few).
const FLOOD_CONCURRENCY: usize = 64;
/// Connections the flood holds open.
const FLOOD: usize = 2_000;
/// Loopback sources the flood comes from (each under the per-source cap).
const FLOOD_SOURCES: usize = 8;
/// The per-source cap the flood test configures.
const PER_SOURCE: usize = 256;

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Raises this process's soft open-file limit to its hard limit: the flood
/// needs a descriptor per connection, and so does the service it starts.
fn raise_fd_limit(needed: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    }
    assert!(
        hard >= needed,
        "the open-file limit ({hard}) is below the {needed} this test needs"
    );
}

/// One TLS connection without a client certificate, from `source`, that
/// never sends anything; returns how long the relay kept it open and
/// whether its handshake completed.
async fn silent_connection(
    source: std::net::Ipv4Addr,
    relay: std::net::SocketAddr,
    connector: tokio_rustls::TlsConnector,
    handshakes: std::sync::Arc<tokio::sync::Semaphore>,
) -> (Duration, bool) {
    use tokio::io::AsyncReadExt;
    let permit = handshakes.acquire_owned().await.expect("semaphore");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::new(source.into(), 0))
        .expect("bind a loopback source");
    let tcp = socket.connect(relay).await.expect("TCP connect");
    let opened = tokio::time::Instant::now();
    let name = rustls::pki_types::ServerName::try_from(nest_relay::identity::RELAY_SERVER_NAME)
        .expect("server name");
    let mut buf = [0u8; 64];
    let handshake = connector.connect(name, tcp).await;
    drop(permit);
    match handshake {
        Ok(mut tls) => {
            // Reads end (EOF or error) only when the relay closes it.
            while let Ok(n) = tls.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            (opened.elapsed(), true)
        }
        Err(_) => (opened.elapsed(), false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_connections_are_closed_within_the_deadline() {
    raise_fd_limit((FLOOD + PER_SOURCE) as u64 * 2 + 1024);
    let svc = ServiceProcess::start_with(nest_tests::service::ServiceOptions {
        extra: format!(
            "\n[relay.limits]\nfirst_request_timeout = \"{}s\"\nmax_connections_per_source = {PER_SOURCE}\n",
            FIRST_REQUEST.as_secs()
        ),
        ..Default::default()
    })
    .await;
    let image = svc.upload_test_image(ALPHA).await;
    let (id, host) = run(&svc, ALPHA, &image, "web").await;
    let (agent_tls, relay) = stolen_identity(&svc, &host);
    let port: u16 = relay
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("relay port");
    let relay = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let pid = svc.pid().expect("service pid");
    let baseline = open_fds(pid);

    let config = nest_relay::tls::client_config(&agent_tls.ca_pem, None).expect("TLS config");
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let handshakes = std::sync::Arc::new(tokio::sync::Semaphore::new(FLOOD_CONCURRENCY));
    let flood_started = tokio::time::Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..FLOOD {
        let source = std::net::Ipv4Addr::new(127, 0, 1, 1 + (i % FLOOD_SOURCES) as u8);
        flood.spawn(silent_connection(
            source,
            relay,
            connector.clone(),
            handshakes.clone(),
        ));
    }
    // A source over its cap gets the rest closed at once.
    let capped_source = std::net::Ipv4Addr::new(127, 0, 2, 1);
    let mut capped = tokio::task::JoinSet::new();
    for _ in 0..PER_SOURCE + 20 {
        capped.spawn(silent_connection(
            capped_source,
            relay,
            connector.clone(),
            handshakes.clone(),
        ));
    }
    // Every handshake is done once all permits are free again.
    nest_tests::eventually(FIRST_REQUEST, "the flood's handshakes", || async {
        (handshakes.available_permits() == FLOOD_CONCURRENCY && open_fds(pid) > baseline + FLOOD)
            .then_some(())
    })
    .await;
    let opened_in = flood_started.elapsed();

    // While they are held, the API and a real agent's commands are fine.
    let held = open_fds(pid);
    let started = tokio::time::Instant::now();
    let health = reqwest::get(format!("{}/healthz", svc.url))
        .await
        .expect("healthz answers during the flood");
    assert_eq!(health.status().as_u16(), 200);
    exec_echo(&svc, ALPHA, &id).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the API and the agent answered in {:?} (the flood opened in {opened_in:?})",
        started.elapsed()
    );

    let limit = FIRST_REQUEST + Duration::from_secs(2);
    let mut handshaken = 0;
    let all_closed = tokio::time::timeout(limit, async {
        while let Some(result) = flood.join_next().await {
            let (open_for, completed) = result.expect("connection task");
            assert!(open_for <= limit, "a connection stayed open {open_for:?}");
            handshaken += usize::from(completed);
        }
    })
    .await;
    assert!(
        all_closed.is_ok(),
        "{} connections still open after {limit:?}",
        flood.len()
    );
    assert!(
        handshaken >= FLOOD * 9 / 10,
        "only {handshaken} of {FLOOD} handshakes completed"
    );
    assert!(
        held >= baseline + handshaken / 2,
        "the service held the connections (fds {baseline} -> {held})"
    );
    let mut refused_at_once = 0;
    while let Some(result) = capped.join_next().await {
        let (open_for, _) = result.expect("connection task");
        assert!(open_for <= limit, "a connection stayed open {open_for:?}");
        refused_at_once += usize::from(open_for < Duration::from_secs(1));
    }
    assert!(
        refused_at_once >= 20,
        "connections over the per-source cap are closed at once ({refused_at_once})"
    );

    // Every descriptor comes back, and the agent still answers.
    nest_tests::eventually(Duration::from_secs(10), "fds back to baseline", || async {
        (open_fds(pid) <= baseline + 2).then_some(())
    })
    .await;
    exec_echo(&svc, ALPHA, &id).await;
    assert_eq!(host_status(&svc, ALPHA, &host).await, "Ready");
}

// ---- bad input is refused at the door ----

/// The Zun error of a 400, which must name `field`.
fn assert_names(code: u16, body: &Value, field: &str, what: &str) {
    assert_eq!(code, 400, "{what}: {body}");
    let detail = body["errors"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(field),
        "{what}: {field} not named in {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
    let svc = ServiceProcess::start().await;
    let image = svc.upload_test_image(ALPHA).await;
    let (id, _host) = run(&svc, ALPHA, &image, "web").await;
    let list = || async {
        let (code, list) = svc.call(ALPHA, Method::GET, "/v1/containers", None).await;
        assert_eq!(code, 200, "{list}");
        list["containers"].as_array().map_or(0, Vec::len)
    };
    let before = list().await;

    let many_args: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
    let many_labels: serde_json::Map<String, Value> = (0..10_000)
        .map(|i| (format!("k{i}"), Value::from("v")))
        .collect();
    let cases = [
        (json!({"environment": {"A=B": "x"}}), "environment"),
        (json!({"environment": {"": "x"}}), "environment"),
        (json!({"environment": {"A": "x\u{0}y"}}), "environment"),
        (json!({"labels": {"nest.instance": "x"}}), "labels"),
        (json!({"labels": many_labels}), "labels"),
        (json!({"workdir": "../.."}), "workdir"),
        (json!({"command": ["sh", "a\u{0}b"]}), "command"),
        (json!({"command": many_args}), "command"),
        (json!({"hostname": "not a host!"}), "hostname"),
        (json!({"hints": {"host": "somewhere"}}), "host"),
        (
            json!({"hints": {"colocate_with": "x"}}),
            "hints.colocate_with",
        ),
    ];
    for (extra, field) in cases {
        let mut body = json!({"image": image, "name": "bad", "memory": "64"});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (code, answer) = svc
            .call(ALPHA, Method::POST, "/v1/containers", Some(body))
            .await;
        if field == "host" {
            // Zun's policy: a host hint is an admin's choice.
            assert_eq!(code, 403, "host hint: {answer}");
        } else {
            assert_names(code, &answer, field, field);
        }
    }
    for ps_args in ["--help", "-o comm", "aux;id", "-p 1"] {
        let path = format!("/v1/containers/{id}/top?ps_args={ps_args}");
        let (code, answer) = svc.call(ALPHA, Method::GET, &path, None).await;
        assert_names(code, &answer, "ps_args", ps_args);
    }
    let (code, top) = svc
        .call(
            ALPHA,
            Method::GET,
            &format!("/v1/containers/{id}/top?ps_args=-o%20pid,comm"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{top}");
    assert_eq!(top["Titles"], json!(["PID", "COMMAND"]), "{top}");
    assert_eq!(list().await, before, "nothing was created");
    let view = show(&svc, ALPHA, &id).await;
    assert_eq!(view["status"], "Running", "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_enrollment_refusal_is_logged_in_its_own_words() {
    let svc = ServiceProcess::start().await;
    let image = svc.upload_test_image(ALPHA).await;
    let (_id, host) = run(&svc, ALPHA, &image, "web").await;
    let (tls, relay) = stolen_identity(&svc, &host);
    let anonymous = ClientTls {
        identity: None,
        ..tls
    };
    for token in ["0".repeat(64), "not-a-token".repeat(6)] {
        let key = rcgen::KeyPair::generate().expect("key");
        let csr_pem = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem");
        let channel = nest_relay::client::dial(&relay, &anonymous)
            .await
            .expect("TLS without a certificate, for enrollment");
        let refused = proto::agent_relay_client::AgentRelayClient::new(channel)
            .enroll(proto::EnrollRequest {
                token,
                csr_pem,
                protocol_version: nest_relay::version::PROTOCOL_VERSION,
                agent_version: "test".into(),
            })
            .await
            .expect_err("refused");
        assert!(
            matches!(
                refused.code(),
                tonic::Code::Unauthenticated | tonic::Code::InvalidArgument
            ),
            "{refused:?}"
        );
    }
    let log = svc.log_text();
    assert!(log.contains("the token is unknown"), "{log}");
    assert!(log.contains("the token is malformed"), "{log}");
}
