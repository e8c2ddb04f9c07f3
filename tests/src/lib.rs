//! The end-to-end test harness: starts the real `nest-relay` and `nest-agent`
//! binaries as separate processes against the real Docker engine, with a
//! test CA and real mutual TLS, and plays the service's side through
//! `nest_relay::client::RelayClient` (the service holds the CA and the
//! enrollment tokens, so this harness does too).
//!
//! Everything a test starts is stopped in `Drop`, even when it panics; each
//! test gets its own temporary directory, removed afterwards. When a test
//! panics, the logs of the processes it started are printed.
//!
//! # Layout
//! - [`TempDir`], [`bin_path`], [`eventually`]: small helpers;
//! - [`TestPki`]: a CA with relay and service certificates on disk;
//! - [`RelayProcess`], [`AgentProcess`]: the real binaries;
//! - [`TestService`]: the service side: control client, signer and a
//!   watch feed that survives relay restarts;
//! - [`bench`]: statistics and sample counts for the benchmarks;
//! - [`docker`]: the test image and direct engine checks;
//! - [`docker_client`]: the docker CLI against a service's Docker endpoint;
//! - [`keystone`]: the lab's Keystone: tokens, and Nest in its catalog;
//! - [`service`]: a real `nest-service` with the `local` driver, and an
//!   HTTP client for its API;
//! - [`nova`]: the `nova` driver against the lab, with the test
//!   hypervisor (`src/bin/nest-test-hypervisor.rs`) running its servers.

pub mod bench;
pub mod docker;
pub mod docker_client;
pub mod keystone;
pub mod nova;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use nest_core::ids::InstanceId;
use nest_pki::{
    CertificateAuthority, IssueRequest, IssuedCertificate, MemoryTokenStore, Signer, TokenStore,
    Validity,
};
use nest_relay::client::{ClientTls, RelayClient};
use nest_relay::identity::PeerIdentity;
use nest_relay::proto;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long a test waits for a process to come up.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Installs the process-wide TLS provider once, as every binary does.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A unique id for names in one test run.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The path of one of the workspace's binaries, next to the test executable
/// (`target/<profile>/`), or under `$NEST_BIN_DIR` when set.
pub fn bin_path(name: &str) -> PathBuf {
    let dir = match std::env::var_os("NEST_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("current exe");
            // target/<profile>/deps/<test> -> target/<profile>
            exe.parent()
                .and_then(Path::parent)
                .expect("test binary lives in target/<profile>/deps")
                .to_owned()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, \
         or `--release` for benchmarks)",
        path.display()
    );
    path
}

pub use nest_core::testing::eventually;

/// A test CA with the relay's and the service's certificates on disk.
pub struct TestPki {
    /// The CA, for issuing more certificates in tests.
    pub ca: Arc<CertificateAuthority>,
    /// Where the files live.
    pub dir: TempDir,
    /// The service's certificate and key.
    pub service: IssuedCertificate,
}

impl TestPki {
    /// A new CA, a relay certificate (for `relay.nest`) and a service
    /// certificate, written to a fresh directory.
    pub fn new() -> Self {
        init();
        let dir = TempDir::new("nest-pki");
        let ca = Arc::new(CertificateAuthority::generate("Nest test CA").expect("CA"));
        let relay = ca
            .issue(&IssueRequest {
                identity: PeerIdentity::relay("test-relay").expect("relay identity"),
                dns_names: vec![],
                ip_addresses: vec![],
                validity: Validity::starting_now(Duration::from_secs(3600)),
            })
            .expect("relay certificate");
        let service = ca
            .issue(&IssueRequest {
                identity: PeerIdentity::service("test-service").expect("service identity"),
                dns_names: vec![],
                ip_addresses: vec![],
                validity: Validity::starting_now(Duration::from_secs(3600)),
            })
            .expect("service certificate");
        write(&dir.path().join("ca.pem"), ca.certificate_pem());
        write(&dir.path().join("relay.pem"), &relay.certificate_pem);
        write(
            &dir.path().join("relay-key.pem"),
            relay.private_key_pem.expose(),
        );
        Self { ca, dir, service }
    }

    /// The CA certificate file.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// TLS material for dialling the relay as the service.
    pub fn service_tls(&self) -> ClientTls {
        self.tls_with(Some(&self.service))
    }

    /// TLS material for dialling the relay with any identity (or none).
    pub fn tls_with(&self, identity: Option<&IssuedCertificate>) -> ClientTls {
        ClientTls {
            ca_pem: self.ca.certificate_pem().to_owned(),
            identity: identity.map(|c| {
                (
                    c.certificate_pem.clone(),
                    c.private_key_pem.expose().clone(),
                )
            }),
            server_name: None,
        }
    }

    /// A certificate for `identity` valid for `validity`.
    pub fn issue(&self, identity: PeerIdentity, validity: Validity) -> IssuedCertificate {
        self.ca
            .issue(&IssueRequest {
                identity,
                dns_names: vec![],
                ip_addresses: vec![],
                validity,
            })
            .expect("issue certificate")
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A child process that is killed on drop and whose log is shown if the
/// test fails.
struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn pid(&self) -> i32 {
        self.child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .expect("process is running")
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} {} failed", self.name);
    }

    async fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {timeout:?}", self.name))
            .expect("wait for child")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "---- last lines of {} ({}) ----",
                self.name,
                self.log.display()
            );
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn spawn(name: &str, binary: &str, config: &Path, log: &Path) -> Child {
    let log_file = std::fs::File::create(log).expect("create log file");
    Command::new(bin_path(binary))
        .arg("--config")
        .arg(config)
        .env(
            "RUST_LOG",
            std::env::var("NEST_TEST_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"))
}

/// A running `nest-relay`.
pub struct RelayProcess {
    process: Process,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl RelayProcess {
    /// Starts a relay with the test PKI on `listen` (port 0 for any).
    pub async fn start(pki: &TestPki, listen: SocketAddr) -> Self {
        Self::start_with(pki, listen, "1s").await
    }

    /// Starts a relay with a given heartbeat interval.
    pub async fn start_with(pki: &TestPki, listen: SocketAddr, heartbeat: &str) -> Self {
        let dir = pki.dir.path();
        Self::start_from(
            dir,
            &pki.ca_path(),
            &dir.join("relay.pem"),
            &dir.join("relay-key.pem"),
            listen,
            heartbeat,
        )
        .await
    }

    /// Starts a relay with certificate files from anywhere (e.g. issued by
    /// `nest-service issue-relay-certificate`), logging into `dir`.
    pub async fn start_from(
        dir: &Path,
        ca: &Path,
        cert: &Path,
        key: &Path,
        listen: SocketAddr,
        heartbeat: &str,
    ) -> Self {
        let name = unique("relay");
        let config = dir.join(format!("{name}.toml"));
        write(
            &config,
            &format!(
                "listen = \"{listen}\"\nca_certificate = \"{}\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\nheartbeat_interval = \"{heartbeat}\"\nshutdown_grace = \"3s\"\n",
                ca.display(),
                cert.display(),
                key.display(),
            ),
        );
        let log = dir.join(format!("{name}.log"));
        let mut child = spawn("nest-relay", "nest-relay", &config, &log);
        let stdout = child.stdout.take().expect("relay stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.strip_prefix("NEST_RELAY_LISTENING=") {
                    return addr.parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("nest-relay did not start listening:\n{log}")
        });
        Self {
            process: Process {
                name: "nest-relay".to_owned(),
                child,
                log,
            },
            addr,
        }
    }

    /// `host:port` to dial.
    pub fn dial_addr(&self) -> String {
        self.addr.to_string()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        self.process.signal("TERM");
        self.process.wait(Duration::from_secs(15)).await
    }

    /// The relay's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.process.pid())
    }
}

/// Resident memory of a process, in KiB, from /proc.
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A running `nest-agent`.
pub struct AgentProcess {
    process: Process,
    config: PathBuf,
    dir: PathBuf,
    /// The instance this agent is.
    pub instance: InstanceId,
}

impl AgentProcess {
    /// Writes an agent config for `instance` (with `token` as its enrollment
    /// token) in a new state directory under `dir`, and starts the agent.
    pub fn start(
        dir: &Path,
        pki: &TestPki,
        relay_addr: &str,
        instance: &InstanceId,
        token: &str,
    ) -> Self {
        let agent_dir = dir.join(format!("agent-{instance}"));
        std::fs::create_dir_all(&agent_dir).expect("agent dir");
        let token_file = agent_dir.join("enrollment-token");
        write(&token_file, token);
        let config = agent_dir.join("agent.toml");
        write(
            &config,
            &format!(
                "relay_addr = \"{relay_addr}\"\ninstance_id = \"{instance}\"\nca_certificate = \"{}\"\nenrollment_token_file = \"{}\"\nstate_dir = \"{}\"\ndocker_socket = \"{}\"\n",
                pki.ca_path().display(),
                token_file.display(),
                agent_dir.join("state").display(),
                docker::SOCKET,
            ),
        );
        let process = Self::spawn_process(&agent_dir, &config);
        Self {
            process,
            config,
            dir: agent_dir,
            instance: instance.clone(),
        }
    }

    fn spawn_process(dir: &Path, config: &Path) -> Process {
        let log = dir.join(format!("{}.log", unique("agent")));
        Process {
            name: "nest-agent".to_owned(),
            child: spawn("nest-agent", "nest-agent", config, &log),
            log,
        }
    }

    /// SIGKILLs the agent and waits for it to die.
    pub async fn kill(&mut self) {
        self.process.signal("KILL");
        self.process.wait(Duration::from_secs(10)).await;
    }

    /// Starts the agent again with the same config and state.
    pub fn restart(&mut self) {
        self.process = Self::spawn_process(&self.dir, &self.config);
    }

    /// Waits for the agent to exit by itself and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        self.process.wait(timeout).await
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.process.log).unwrap_or_default()
    }

    /// The agent's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }
}

/// What the service side has seen on the relay's watch feed.
#[derive(Default)]
pub struct Seen {
    /// Every event, in order (across relay restarts).
    pub events: Vec<proto::WatchEvent>,
}

impl Seen {
    /// Container events of one container, as (action, exit code).
    pub fn container_actions(&self, uuid: &str) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                Some(proto::watch_event::Kind::Container(c)) if c.uuid == uuid => {
                    Some(c.action.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Sessions (instance, session id) announced so far.
    pub fn connected(&self) -> Vec<(String, u64, &proto::AgentConnected)> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                Some(proto::watch_event::Kind::Connected(c)) => {
                    Some((e.instance_id.clone(), c.session_id, c))
                }
                _ => None,
            })
            .collect()
    }
}

/// The service's side of the relay, for tests: a control client, a signer
/// answering enrollments, and a watch feed. Both loops redial the relay
/// when it restarts.
pub struct TestService {
    /// The control client (redialled lazily after relay restarts).
    pub client: RelayClient,
    /// The enrollment token store.
    pub tokens: Arc<MemoryTokenStore>,
    seen: Arc<Mutex<Seen>>,
    changed: Arc<Notify>,
    cancel: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
}

impl TestService {
    /// Attaches to the relay at `addr` with agent certificates living
    /// `agent_lifetime`.
    pub async fn attach(pki: &TestPki, addr: &str, agent_lifetime: Duration) -> Self {
        let tls = pki.service_tls();
        let channel = nest_relay::client::dial_lazy(addr, &tls).expect("service channel");
        let client = RelayClient::from_channel(channel);
        let tokens = Arc::new(MemoryTokenStore::new());
        let signer = Arc::new(Signer::new(
            pki.ca.clone(),
            tokens.clone() as Arc<dyn TokenStore>,
            agent_lifetime,
        ));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let changed = Arc::new(Notify::new());
        let cancel = CancellationToken::new();
        let tasks = tokio_util::task::TaskTracker::new();
        let watch_ready = Arc::new(Notify::new());
        {
            let client = client.clone();
            let cancel = cancel.clone();
            tasks.spawn(async move {
                while !cancel.is_cancelled() {
                    let _ = client.serve_signing(signer.clone(), cancel.clone()).await;
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            });
        }
        {
            let client = client.clone();
            let cancel = cancel.clone();
            let seen = seen.clone();
            let changed = changed.clone();
            let ready = watch_ready.clone();
            tasks.spawn(async move {
                while !cancel.is_cancelled() {
                    if let Ok(mut feed) = client.watch().await {
                        ready.notify_one();
                        loop {
                            let next = tokio::select! {
                                () = cancel.cancelled() => return,
                                next = feed.message() => next,
                            };
                            match next {
                                Ok(Some(event)) => {
                                    seen.lock().expect("seen lock").events.push(event);
                                    changed.notify_waiters();
                                }
                                _ => break,
                            }
                        }
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            });
        }
        // Wait until the watch is live so no early event is missed.
        tokio::time::timeout(START_TIMEOUT, watch_ready.notified())
            .await
            .expect("watch attached to the relay");
        Self {
            client,
            tokens,
            seen,
            changed,
            cancel,
            tasks,
        }
    }

    /// A fresh enrollment token for `instance`.
    pub fn token_for(&self, instance: &InstanceId) -> String {
        self.tokens
            .issue(instance, Duration::from_secs(600))
            .expect("issue token")
            .as_str()
            .to_owned()
    }

    /// Waits until `check` finds what it looks for in the watch feed.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Seen) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(found) = check(&self.seen.lock().expect("seen lock")) {
                return found;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let seen = self.seen.lock().expect("seen lock");
                panic!(
                    "timed out after {timeout:?} waiting for {what}; saw {} events: {:#?}",
                    seen.events.len(),
                    seen.events.iter().rev().take(10).collect::<Vec<_>>()
                );
            }
        }
    }

    /// Waits for a session of `instance` other than those in `known`.
    pub async fn wait_connected(
        &self,
        instance: &InstanceId,
        known: &HashSet<u64>,
        timeout: Duration,
    ) -> proto::AgentConnected {
        self.wait_for(timeout, &format!("a session of {instance}"), |seen| {
            seen.connected()
                .into_iter()
                .find(|(id, session, _)| id == instance.as_str() && !known.contains(session))
                .map(|(_, _, c)| c.clone())
        })
        .await
    }

    /// A snapshot of everything seen.
    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().expect("seen lock"))
    }

    /// The number of events seen so far.
    pub fn event_count(&self) -> usize {
        self.seen(|s| s.events.len())
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.tasks.close();
    }
}

/// Loopback with any free port.
pub fn any_loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub mod service;
