//! What an agent supports, end to end through the real nest-service
//! (embedded relay, `local` driver, Docker endpoint): the real agent
//! lists "networks" and gets networked containers; an agent older than
//! user-defined networks (played by hand with the instance's real
//! certificate, as that release would speak: a hello without features)
//! keeps getting plain containers, and a container of a network that
//! lives on its instance ends in `Error` saying what to do.

use std::path::Path;
use std::time::Duration;

use nest_relay::client::ClientTls;
use nest_relay::proto::{self, agent_message, command, command_output, relay_message};
use nest_tests::docker_client::{Auth, DockerCli};
use nest_tests::service::{ALPHA, ServiceOptions, ServiceProcess};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const BOOT: Duration = Duration::from_secs(120);
const IMAGE: &str = nest_tests::docker::TEST_IMAGE;
/// The release the old agent says it is.
const OLD_RELEASE: &str = "0.9.0";

async fn service() -> ServiceProcess {
    ServiceProcess::start_with(ServiceOptions {
        // The driver's supervisor must not restart the agent the test
        // stops (the line belongs to `[driver]`).
        extra: "restart_delay = \"1h\"\n\n[docker]\nenabled = true\nlisten = \"127.0.0.1:0\"\n\
                certificate_lifetime = \"1h\"\n"
            .into(),
        ..Default::default()
    })
    .await
}

/// The Zun view of the project's container named `name`.
async fn by_name(svc: &ServiceProcess, name: &str) -> Value {
    let (code, list) = svc.call(ALPHA, Method::GET, "/v1/containers", None).await;
    assert_eq!(code, 200, "{list}");
    list["containers"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no container named {name}: {list}"))
}

async fn host_status(svc: &ServiceProcess, host: &str) -> String {
    let (code, view) = svc
        .call(ALPHA, Method::GET, &format!("/v1/hosts/{host}"), None)
        .await;
    assert_eq!(code, 200, "{view}");
    view["status"].as_str().unwrap_or_default().to_owned()
}

/// The agent's TLS material and relay address, as root in the instance
/// reads them.
fn instance_identity(svc: &ServiceProcess, instance: &str) -> (ClientTls, String) {
    let root = svc.instances_dir().join(instance).join("root");
    let read = |path: &Path| {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    };
    let relay_addr = read(&root.join("etc/nest/agent.toml"))
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

/// Stops the real agent of `instance` (the supervisor is told to wait an
/// hour before starting it again).
fn stop_agent(svc: &ServiceProcess, instance: &str) {
    let path = svc.instances_dir().join(instance).join("agent.pid");
    let text = std::fs::read_to_string(&path).expect("the agent's pid file");
    let pid = text.split_whitespace().next().expect("a pid").to_owned();
    let status = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid}");
}

fn running(uuid: &str) -> proto::ContainerState {
    proto::ContainerState {
        uuid: uuid.to_owned(),
        docker_id: format!("{:0>64}", uuid.replace('-', "")),
        status: "running".into(),
        running: true,
        ..Default::default()
    }
}

/// An agent of a release before features: its hello lists none. It
/// heartbeats and answers every command as if its engine did it, so the
/// containers it is given run.
struct OldAgent {
    task: tokio::task::JoinHandle<()>,
}

impl OldAgent {
    async fn connect(tls: &ClientTls, relay: &str, inventory: Vec<proto::ContainerState>) -> Self {
        let channel = nest_relay::client::dial(relay, tls)
            .await
            .expect("the instance's certificate passes TLS");
        let mut client = proto::agent_relay_client::AgentRelayClient::new(channel);
        let (out, rx) = mpsc::channel(64);
        let hello = proto::Hello {
            protocol_version: nest_relay::version::PROTOCOL_VERSION,
            agent_version: OLD_RELEASE.into(),
            inventory: inventory.clone(),
            docker_version: "24.0.0".into(),
            docker_api_version: "1.43".into(),
            ..Default::default()
        };
        send(&out, agent_message::Kind::Hello(hello)).await;
        let mut inbound = client
            .connect(ReceiverStream::new(rx))
            .await
            .expect("the relay takes the session")
            .into_inner();
        let ack = inbound.message().await.expect("an answer");
        assert!(
            matches!(
                ack.and_then(|m| m.kind),
                Some(relay_message::Kind::HelloAck(_))
            ),
            "the session starts"
        );
        let task = tokio::spawn(async move {
            let mut known = inventory;
            let mut beat = tokio::time::interval(Duration::from_millis(500));
            let mut seq = 0;
            loop {
                let message = tokio::select! {
                    _ = beat.tick() => {
                        seq += 1;
                        send(&out, agent_message::Kind::Heartbeat(proto::Heartbeat { seq, sent_at_ms: 0 })).await;
                        continue;
                    }
                    message = inbound.message() => message,
                };
                let Ok(Some(proto::RelayMessage {
                    kind: Some(relay_message::Kind::Command(request)),
                })) = message
                else {
                    if matches!(message, Ok(None) | Err(_)) {
                        return;
                    }
                    continue;
                };
                let output = answer(request.command.and_then(|c| c.kind), &mut known);
                send(
                    &out,
                    agent_message::Kind::Result(proto::CommandResult {
                        command_id: request.command_id,
                        outcome: Some(proto::command_result::Outcome::Output(
                            proto::CommandOutput { kind: Some(output) },
                        )),
                    }),
                )
                .await;
            }
        });
        Self { task }
    }
}

impl Drop for OldAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn send(out: &mpsc::Sender<proto::AgentMessage>, kind: agent_message::Kind) {
    // The session may have ended; the test's assertions say so.
    let _ = out.send(proto::AgentMessage { kind: Some(kind) }).await;
}

/// What an engine that does everything asked would answer.
fn answer(
    kind: Option<command::Kind>,
    known: &mut Vec<proto::ContainerState>,
) -> command_output::Kind {
    let container = |uuid: &str| command_output::Kind::Container(running(uuid));
    match kind {
        Some(command::Kind::Create(create)) => {
            let uuid = create.spec.map(|s| s.uuid).unwrap_or_default();
            known.push(running(&uuid));
            container(&uuid)
        }
        Some(
            command::Kind::Start(r)
            | command::Kind::Inspect(r)
            | command::Kind::Pause(r)
            | command::Kind::Unpause(r),
        ) => container(&r.uuid),
        Some(command::Kind::List(_)) => command_output::Kind::List(proto::ContainerList {
            containers: known.clone(),
        }),
        Some(command::Kind::Ping(_)) => command_output::Kind::Pong(proto::Pong {
            agent_version: OLD_RELEASE.into(),
            ..Default::default()
        }),
        _ => command_output::Kind::Done(proto::Empty {}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_network_support_gets_no_networked_containers() {
    let svc = service().await;
    let cli = DockerCli::new(&svc, ALPHA, Auth::Certificate).await;
    cli.load_test_image().await;
    cli.ok(&["network", "create", "back"]).await;
    cli.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "back",
        IMAGE,
        "sleep",
        "1000",
    ])
    .await;
    let db = by_name(&svc, "db").await;
    let db_id = db["uuid"].as_str().expect("uuid").to_owned();
    let db = svc.wait_status(ALPHA, &db_id, "Running", BOOT).await;
    let host = db["host"].as_str().expect("host").to_owned();
    // The real agent's features reached the service.
    let log = svc.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("agent connected") && l.contains(&host) && l.contains("networks")),
        "no line says the agent of {host} lists networks:\n{log}"
    );

    // The instance's agent is replaced by one of an older release.
    stop_agent(&svc, &host);
    nest_tests::eventually(BOOT, "the instance to lose its agent", || async {
        (host_status(&svc, &host).await == "Unreachable").then_some(())
    })
    .await;
    let (tls, relay) = instance_identity(&svc, &host);
    let old = OldAgent::connect(&tls, &relay, vec![running(&db_id)]).await;
    nest_tests::eventually(BOOT, "the instance to be ready again", || async {
        (host_status(&svc, &host).await == "Ready").then_some(())
    })
    .await;

    // A plain container still goes there and runs.
    let (code, plain) = svc
        .call(
            ALPHA,
            Method::POST,
            "/v1/containers?run=true",
            Some(json!({
                "image": "docker.io/library/busybox:latest",
                "name": "plain",
                "command": ["sleep", "1000"],
                "memory": "64",
            })),
        )
        .await;
    assert_eq!(code, 202, "{plain}");
    let plain_id = plain["uuid"].as_str().expect("uuid").to_owned();
    let plain = svc.wait_status(ALPHA, &plain_id, "Running", BOOT).await;
    assert_eq!(plain["host"], host.as_str(), "{plain}");

    // A container of the network that lives there fails, saying why and
    // what to do, and is never sent to the old agent.
    let out = cli
        .run(&[
            "create",
            "--name",
            "web",
            "--network",
            "back",
            IMAGE,
            "sleep",
            "1000",
        ])
        .await;
    let web = by_name(&svc, "web").await;
    let web_id = web["uuid"].as_str().expect("uuid").to_owned();
    let web = svc.wait_status(ALPHA, &web_id, "Error", BOOT).await;
    let expected = format!(
        "instance {host} runs an agent without user-defined network support \
         (agent version {OLD_RELEASE}); upgrade its agent, or remove the network's containers there"
    );
    assert_eq!(web["status_reason"], expected.as_str(), "{web} {out:?}");
    assert_eq!(
        web["host"],
        Value::Null,
        "the container was never placed: {web}"
    );
    drop(old);
}
