//! The `local` instance driver on the real host: a bridge, network
//! namespaces, one real dockerd per instance and the real `nest-agent`,
//! started from user-data rendered by `nest_cloud_init::render`.
//!
//! Needs root, `dockerd`, `nsenter`, `unshare`, `ip`, the `docker` CLI,
//! Debian's static `/bin/busybox`, and the `nest-agent` binary (`cargo build
//! -p nest-agent`; looked for in `target/<profile>/`, or `$NEST_BIN_DIR`).
//! When any is missing the test fails; it never skips.
//!
//! No relay runs: the agent starts, connects to its engine and keeps
//! retrying enrollment, which is all this test needs from it. The test uses
//! its own bridge and subnet so that a service running on this machine is
//! not disturbed, and its guard deletes every instance, the bridge and the
//! state directory even when an assertion fails.

use nest_core::testing::eventually;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nest_cloud_init::testing::{SAMPLE_CA_PEM, SAMPLE_TOKEN};
use nest_cloud_init::{AgentBootstrap, AgentSource, EnrollmentToken};
use nest_service::domain::{InstanceId, ProjectId};
use nest_service::driver::{
    BootRequest, BootedInstance, DriverErrorKind, InstanceDriver, LocalDriver, LocalDriverConfig,
    TenantAuthority,
};

/// The image the instance's engine runs, made from busybox like the
/// end-to-end harness's (`tests/src/docker.rs`).
const TEST_IMAGE: &str = "nest-test/busybox:1";
/// Applets linked into the test image.
const APPLETS: &[&str] = &["sh", "mkdir", "echo", "cat", "sleep", "httpd"];
/// Port the test container publishes on its instance.
const PUBLISHED_PORT: u16 = 8080;
/// Longest wait for anything the test polls.
const WAIT: Duration = Duration::from_secs(60);
/// Longest wait for one `docker` CLI call (an import, a run).
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);
/// Nothing listens here: the agent's enrollment is refused and retried.
const UNUSED_RELAY_PORT: u16 = 9;

/// Waits (at most [`WAIT`]) until the log at `path` holds `needle`, and
/// returns it; on timeout, fails showing the whole log.
async fn wait_for_log(path: &Path, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = tokio::fs::read_to_string(path).await.unwrap_or_default();
        if log.contains(needle) {
            return log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} has no {needle:?} after {WAIT:?}:\n{log}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Fails (never skips) when the host cannot run the driver.
fn require_host() -> PathBuf {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the local driver test must run as root"
    );
    for program in ["dockerd", "nsenter", "unshare", "ip", "docker"] {
        assert!(on_path(program), "{program} is not installed");
    }
    assert!(
        Path::new("/bin/busybox").is_file(),
        "/bin/busybox is missing: install Debian's busybox-static"
    );
    let dir = match std::env::var_os("NEST_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.to_owned()))
            .unwrap_or_else(|| panic!("cannot find target/<profile>")),
    };
    let agent = dir.join("nest-agent");
    assert!(
        agent.is_file(),
        "{} is missing: run `cargo build -p nest-agent` first",
        agent.display()
    );
    agent
}

/// Owns the driver, the bridge and the state directory; deletes every
/// instance it was told about when dropped, even on panic.
struct Fixture {
    driver: Arc<LocalDriver>,
    config: LocalDriverConfig,
    instances: Mutex<Vec<InstanceId>>,
    _state: tempfile::TempDir,
}

impl Fixture {
    fn new(agent: PathBuf) -> Self {
        let state = tempfile::Builder::new()
            .prefix("nest-local-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        // A bridge and subnet of this fixture's own (at most five fixtures
        // per test process).
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = (std::process::id() % 50) * 5 + NEXT.fetch_add(1, Ordering::Relaxed) % 5;
        let config = LocalDriverConfig {
            run_dir: state.path().join("run"),
            bridge: format!("nestt{n}"),
            subnet: format!("10.248.{n}.0/24"),
            agent_binary: agent,
            vcpus: 1.5,
            memory_mib: 512,
            network_name: "testnet".into(),
            ..LocalDriverConfig::new(state.path())
        };
        let driver = LocalDriver::new(config.clone()).unwrap_or_else(|e| panic!("driver: {e}"));
        Self {
            driver: Arc::new(driver),
            config,
            instances: Mutex::new(Vec::new()),
            _state: state,
        }
    }

    fn will_boot(&self, id: &InstanceId) {
        self.instances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(id.clone());
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let ids = std::mem::take(
            &mut *self
                .instances
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let driver = self.driver.clone();
        // A runtime of its own: this may run inside the test's runtime.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            for id in ids {
                if let Err(e) = runtime.block_on(driver.delete(&id)) {
                    eprintln!("cleanup: deleting {id}: {e:?}");
                }
            }
        });
        let _ = cleanup.join();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.config.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

fn instance_id() -> InstanceId {
    InstanceId::parse(&uuid::Uuid::new_v4().to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn boot_request(fixture: &Fixture, id: &InstanceId, ca_pem: &str) -> BootRequest {
    let relay = format!("{}:{UNUSED_RELAY_PORT}", fixture.driver.gateway_address());
    let bootstrap = AgentBootstrap {
        instance_id: id.to_string(),
        relay_addr: relay,
        relay_server_name: None,
        ca_certificate_pem: ca_pem.to_owned(),
        enrollment_token: EnrollmentToken::new(SAMPLE_TOKEN),
        docker_socket: None,
        agent_source: AgentSource::default(),
    };
    let user_data = nest_cloud_init::render(&bootstrap).unwrap_or_else(|e| panic!("render: {e}"));
    BootRequest {
        instance_id: id.clone(),
        project_id: ProjectId::parse("local-test").unwrap_or_else(|e| panic!("{e}")),
        user_data: user_data.as_str().to_owned(),
        flavor: None,
        image: None,
        network: None,
        authority: TenantAuthority::None,
    }
}

/// Runs the docker CLI against `socket`.
async fn docker(socket: &Path, args: &[&str]) -> std::process::Output {
    let host = format!("unix://{}", socket.display());
    let run = tokio::process::Command::new("docker")
        .arg("-H")
        .arg(&host)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(DOCKER_TIMEOUT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("docker {args:?}: {e}"),
        Err(_) => panic!("docker {args:?} took more than {DOCKER_TIMEOUT:?}"),
    }
}

async fn docker_ok(socket: &Path, args: &[&str]) -> String {
    let out = docker(socket, args).await;
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Builds the busybox image into the engine at `socket`.
async fn import_test_image(socket: &Path, scratch: &Path) {
    let root = scratch.join("rootfs");
    let bin = root.join("bin");
    let tar = scratch.join("rootfs.tar");
    let (bin2, root2) = (bin.clone(), root.clone());
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&bin2)?;
        std::fs::create_dir_all(root2.join("tmp"))?;
        std::fs::copy("/bin/busybox", bin2.join("busybox"))?;
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", bin2.join(applet))?;
        }
        Ok::<(), std::io::Error>(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|e| panic!("test rootfs: {e}"));
    let status = tokio::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .await
        .unwrap_or_else(|e| panic!("tar: {e}"));
    assert!(status.success(), "tar of the test rootfs failed");
    docker_ok(
        socket,
        &[
            "import",
            "--change",
            "ENV PATH=/bin",
            "--change",
            "CMD [\"/bin/sh\"]",
            tar.to_str().unwrap_or_else(|| panic!("utf-8 path")),
            TEST_IMAGE,
        ],
    )
    .await;
}

/// The body of `GET /` at `addr`, if it answers.
async fn http_get(addr: (IpAddr, u16)) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        Some(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .ok()
        .flatten()
}

/// Whether `pid` runs (a zombie does not).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The pid in one of the driver's pid files (`pid start_time`).
fn pid_in(file: &Path) -> i32 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {}", file.display()))
}

fn address(booted: &BootedInstance) -> IpAddr {
    *booted
        .addresses
        .get("testnet")
        .unwrap_or_else(|| panic!("no testnet address in {:?}", booted.addresses))
}

/// What an instance was made of, to check that delete removed it.
struct Traces {
    dir: PathBuf,
    socket: PathBuf,
    netns: PathBuf,
    pids: Vec<i32>,
}

async fn traces(driver: &LocalDriver, id: &InstanceId) -> Traces {
    let dir = driver.instance_dir(id);
    let pids = vec![
        pid_in(&dir.join("agent.pid")),
        pid_in(&dir.join("dockerd.pid")),
    ];
    Traces {
        socket: driver.docker_socket(id),
        netns: Path::new("/var/run/netns").join(driver.namespace(id)),
        dir,
        pids,
    }
}

fn assert_gone(traces: &Traces) {
    for pid in &traces.pids {
        assert!(!running(*pid), "process {pid} survived delete");
    }
    for path in [&traces.dir, &traces.socket, &traces.netns] {
        assert!(!path.exists(), "{} survived delete", path.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn local_instances_run_an_engine_and_the_agent_and_delete_cleanly() {
    let agent = require_host();
    let fixture = Fixture::new(agent);
    let driver = fixture.driver.clone();
    assert_eq!(driver.name(), "local");
    let ca = nest_pki::CertificateAuthority::generate("Nest local driver test CA")
        .unwrap_or_else(|e| panic!("CA: {e}"));
    let (a, b) = (instance_id(), instance_id());
    fixture.will_boot(&a);
    fixture.will_boot(&b);

    // Two boots at once: they race for the bridge and for addresses.
    let (booted_a, booted_b) = tokio::join!(
        driver.boot(boot_request(&fixture, &a, ca.certificate_pem())),
        driver.boot(boot_request(&fixture, &b, ca.certificate_pem())),
    );
    let booted_a = booted_a.unwrap_or_else(|e| panic!("boot a: {e:?}"));
    let booted_b = booted_b.unwrap_or_else(|e| panic!("boot b: {e:?}"));
    assert_eq!((&booted_a.id, &booted_b.id), (&a, &b));
    assert_eq!((booted_a.vcpus, booted_a.memory_mib), (1.5, 512));
    let (ip_a, ip_b) = (address(&booted_a), address(&booted_b));
    assert_ne!(ip_a, ip_b, "two instances got the same address");
    for ip in [ip_a, ip_b] {
        let IpAddr::V4(v4) = ip else {
            panic!("{ip} is not IPv4")
        };
        assert_eq!(v4.octets()[..3], driver.gateway_address().octets()[..3]);
        assert!(v4.octets()[3] >= 2, "{ip} is not an instance address");
    }
    let mut listed = driver
        .list()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .instances;
    listed.sort();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(listed, both);

    // A second boot of the same id is refused and changes nothing.
    let again = driver
        .boot(boot_request(&fixture, &a, ca.certificate_pem()))
        .await;
    assert_eq!(
        again.map(|_| ()).map_err(|e| e.kind()),
        Err(DriverErrorKind::Invalid)
    );

    // Each instance's own engine answers on its socket.
    let socket_a = driver.docker_socket(&a);
    for id in [&a, &b] {
        let version = docker_ok(
            &driver.docker_socket(id),
            &["version", "--format", "{{.Server.Version}}"],
        )
        .await;
        assert!(!version.is_empty());
    }

    // The agent started, read its config at the in-guest path, and reached
    // the instance's engine through the socket bound at /var/run/docker.sock.
    let dir_a = driver.instance_dir(&a);
    let agent_log = dir_a.join("agent.log");
    let log = wait_for_log(&agent_log, "connected to the docker engine").await;
    let starting = log
        .lines()
        .find(|line| line.contains("nest-agent starting"))
        .unwrap_or_else(|| panic!("no start line in:\n{log}"));
    assert!(starting.contains(&format!("instance_id={a}")), "{starting}");
    assert!(
        starting.contains(&format!(
            "relay={}:{UNUSED_RELAY_PORT}",
            driver.gateway_address()
        )),
        "{starting}"
    );
    // As seen from the agent's mount namespace, /etc/nest is the instance's.
    let agent_pid = pid_in(&dir_a.join("agent.pid"));
    assert!(running(agent_pid), "the agent is not running:\n{log}");
    let seen = tokio::fs::read_to_string(format!("/proc/{agent_pid}/root/etc/nest/agent.toml"))
        .await
        .unwrap_or_else(|e| panic!("agent.toml in the agent's namespace: {e}"));
    assert!(seen.contains(&format!("instance_id = \"{a}\"")), "{seen}");
    let host_view = tokio::fs::read_to_string("/etc/nest/agent.toml")
        .await
        .unwrap_or_default();
    assert!(
        !host_view.contains(a.as_str()),
        "the instance's files leaked onto the host's /etc/nest"
    );
    // The agent made its key in the instance's state directory.
    let key = dir_a.join("root/var/lib/nest-agent/agent-key.pem");
    eventually(WAIT, "the agent's key", || {
        let key = key.clone();
        async move { tokio::fs::try_exists(&key).await.ok()?.then_some(()) }
    })
    .await;

    // A container published on a port of instance a answers from the host
    // at the instance's address.
    let scratch = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    import_test_image(&socket_a, scratch.path()).await;
    let published = format!("{PUBLISHED_PORT}:{PUBLISHED_PORT}");
    let serve = format!(
        "mkdir -p /www && echo hello-from-{a} > /www/index.html && exec httpd -f -p {PUBLISHED_PORT} -h /www"
    );
    let container = docker_ok(
        &socket_a,
        &[
            "run", "-d", "-p", &published, TEST_IMAGE, "sh", "-c", &serve,
        ],
    )
    .await;
    let body = eventually(WAIT, "the published port to answer", || {
        http_get((ip_a, PUBLISHED_PORT))
    })
    .await;
    assert!(
        body.lines().next().is_some_and(|l| l.contains(" 200 ")),
        "{body}"
    );
    assert!(body.contains(&format!("hello-from-{a}")), "{body}");
    // The host's own engine knows nothing of it.
    let host_ps = tokio::process::Command::new("docker")
        .args(["ps", "-q", "--no-trunc"])
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        !host_ps.contains(&container),
        "the container ran on the host's engine"
    );
    let container_pid: i32 = docker_ok(
        &socket_a,
        &["inspect", "--format", "{{.State.Pid}}", &container],
    )
    .await
    .parse()
    .unwrap_or_else(|e| panic!("container pid: {e}"));
    assert!(running(container_pid));
    // Instance b does not answer on that port: it is another machine.
    assert_eq!(http_get((ip_b, PUBLISHED_PORT)).await, None);

    // After a "restart", a fresh driver with the same configuration finds
    // the instances on disk and deletes one.
    let restarted = LocalDriver::new(fixture.config.clone()).unwrap_or_else(|e| panic!("{e}"));
    let mut listed = restarted
        .list()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .instances;
    listed.sort();
    assert_eq!(listed, both);
    let mut traces_a = traces(&restarted, &a).await;
    traces_a.pids.push(container_pid);
    restarted
        .delete(&a)
        .await
        .unwrap_or_else(|e| panic!("delete a: {e:?}"));
    assert_gone(&traces_a);
    assert_eq!(http_get((ip_a, PUBLISHED_PORT)).await, None);
    restarted
        .delete(&a)
        .await
        .unwrap_or_else(|e| panic!("second delete of a: {e:?}"));
    assert_eq!(
        driver.list().await.ok().map(|l| l.instances),
        Some(vec![b.clone()])
    );

    // b was untouched by a's delete.
    let traces_b = traces(&driver, &b).await;
    assert!(traces_b.pids.iter().all(|pid| running(*pid)));
    driver
        .delete(&b)
        .await
        .unwrap_or_else(|e| panic!("delete b: {e:?}"));
    assert_gone(&traces_b);
    driver
        .delete(&b)
        .await
        .unwrap_or_else(|e| panic!("second delete of b: {e:?}"));
    assert_eq!(
        driver.list().await.ok().map(|l| l.instances),
        Some(Vec::new())
    );
    let leases = std::fs::read_dir(fixture.config.state_dir.join("leases"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(leases, 0, "an address lease survived delete");
}

#[tokio::test]
async fn boot_refuses_user_data_it_cannot_apply_and_leaves_nothing() {
    let agent = require_host();
    let fixture = Fixture::new(agent);
    let id = instance_id();
    fixture.will_boot(&id);
    let mut req = boot_request(&fixture, &id, SAMPLE_CA_PEM);
    req.user_data = "#!/bin/sh\necho not cloud-config\n".into();
    let refused = fixture.driver.boot(req).await;
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.kind()),
        Err(DriverErrorKind::Invalid)
    );
    assert_eq!(
        fixture.driver.list().await.ok().map(|l| l.instances),
        Some(Vec::new())
    );
    assert!(!fixture.driver.instance_dir(&id).exists());
}

#[tokio::test]
async fn a_boot_that_fails_midway_leaves_nothing_behind() {
    let agent = require_host();
    let mut fixture = Fixture::new(agent);
    // An "engine" that exits at once: the boot fails after the namespace,
    // lease and files exist.
    fixture.config.dockerd_binary = PathBuf::from("/bin/false");
    fixture.driver = Arc::new(
        LocalDriver::new(fixture.config.clone()).unwrap_or_else(|e| panic!("driver: {e}")),
    );
    let driver = fixture.driver.clone();
    let id = instance_id();
    fixture.will_boot(&id);
    let failed = driver
        .boot(boot_request(&fixture, &id, SAMPLE_CA_PEM))
        .await
        .map(|_| ())
        .map_err(|e| e.kind());
    assert!(
        matches!(
            failed,
            Err(DriverErrorKind::Unavailable | DriverErrorKind::Internal)
        ),
        "{failed:?}"
    );
    assert_eq!(
        driver.list().await.ok().map(|l| l.instances),
        Some(Vec::new())
    );
    for path in [
        driver.instance_dir(&id),
        driver.docker_socket(&id),
        Path::new("/var/run/netns").join(driver.namespace(&id)),
    ] {
        assert!(!path.exists(), "{} survived a failed boot", path.display());
    }
    let leases = std::fs::read_dir(fixture.config.state_dir.join("leases"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(leases, 0, "the failed boot kept its address");
}
