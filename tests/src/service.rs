//! A real `nest-service` (embedded relay, SQLite or PostgreSQL, dev auth,
//! the `local` driver) for end-to-end tests, and a small client for its
//! Zun-compatible API.
//!
//! Each service gets its own state directory, bridge and subnet, so tests
//! run side by side. Dropping the service kills it and deletes every
//! instance its driver booted (processes, namespaces, directories).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{START_TIMEOUT, TempDir, bin_path, unique};

/// Dev tokens the test service accepts: (token, user, project, roles).
pub const TOKENS: [(&str, &str, &str, &str); 3] = [
    ("token-alpha-0123456789abcdef", "alice", "alpha", "member"),
    ("token-beta-0123456789abcdefg", "bob", "beta", "member"),
    ("token-admin-0123456789abcdef", "root", "admin", "admin"),
];
/// The token of project `alpha`.
pub const ALPHA: &str = TOKENS[0].0;
/// The token of project `beta`.
pub const BETA: &str = TOKENS[1].0;

/// A subnet and bridge reserved for one service, released on drop.
struct NetworkLease {
    marker: PathBuf,
    bridge: String,
    subnet: String,
}

impl NetworkLease {
    /// Claims the first free `10.248.N.0/24` by creating a marker directory
    /// (atomic), so concurrent tests never share a bridge.
    fn claim() -> Self {
        let root = std::env::temp_dir().join("nest-test-networks");
        std::fs::create_dir_all(&root).expect("network lease dir");
        let start = std::process::id() as usize % 250;
        for offset in 0..250 {
            let n = (start + offset) % 250 + 1;
            let marker = root.join(n.to_string());
            // A lease whose test process died (killed by a timeout) is stale.
            let owner = std::fs::read_to_string(marker.join("pid")).ok();
            if owner.is_some_and(|pid| !Path::new(&format!("/proc/{}", pid.trim())).exists()) {
                let _ = std::fs::remove_dir_all(&marker);
            }
            if std::fs::create_dir(&marker).is_ok() {
                let _ = std::fs::write(marker.join("pid"), std::process::id().to_string());
                return Self {
                    marker,
                    bridge: format!("ntb{n}"),
                    subnet: format!("10.248.{n}.0/24"),
                };
            }
        }
        panic!("no free test subnet under {}", root.display());
    }
}

impl NetworkLease {
    /// The bridge's address (the subnet's first).
    fn gateway(&self) -> String {
        self.subnet.replacen(".0/24", ".1", 1)
    }
}

impl Drop for NetworkLease {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        let _ = std::fs::remove_dir_all(&self.marker);
    }
}

/// How to run a test service.
pub struct ServiceOptions {
    /// `NEST_DATABASE_URL` (default: SQLite in the state directory).
    pub database_url: Option<String>,
    /// Seconds an empty instance is kept.
    pub idle_timeout: String,
    /// Concurrent boots per project.
    pub max_boots_per_project: usize,
    /// Empty instances kept per project.
    pub warm_pool: usize,
    /// A stand-alone relay the service should use instead of its embedded
    /// one (agents dial the same port on the bridge gateway).
    pub external_relay: Option<SocketAddr>,
    /// `api.public_url`.
    pub public_url: Option<String>,
    /// TOML appended to the config (extra sections such as `[agent]`).
    pub extra: String,
    /// TOML lines added to the `[scheduler]` section.
    pub scheduler_extra: String,
    /// The `[auth]` section's body instead of the dev tokens in [`TOKENS`]
    /// (e.g. Keystone settings).
    pub auth: Option<String>,
    /// The `[driver]` section's body instead of the `local` driver on the
    /// service's own bridge (e.g. `kind = "nova"` and its settings).
    pub driver: Option<String>,
    /// The `[relay]` section's `listen` and `advertise` lines instead of
    /// an embedded relay on port 0 advertised at the bridge gateway.
    pub relay: Option<String>,
    /// Run when the service is dropped, once it is stopped, with its
    /// database URL: to remove what it made outside this machine (the
    /// nova tests' Keystone trusts).
    pub on_drop: Option<Box<dyn FnOnce(String) + Send>>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            database_url: None,
            idle_timeout: "10m".into(),
            max_boots_per_project: 2,
            warm_pool: 0,
            external_relay: None,
            public_url: None,
            extra: String::new(),
            scheduler_extra: String::new(),
            auth: None,
            driver: None,
            relay: None,
            on_drop: None,
        }
    }
}

/// A running `nest-service`.
pub struct ServiceProcess {
    child: Option<Child>,
    /// The API's base URL, `http://127.0.0.1:port`.
    pub url: String,
    /// The Docker endpoint's address, when `[docker]` is enabled.
    pub docker: Option<SocketAddr>,
    config: PathBuf,
    log: PathBuf,
    options_db: Option<String>,
    on_drop: Option<Box<dyn FnOnce(String) + Send>>,
    state: TempDir,
    network: NetworkLease,
    http: reqwest::Client,
}

impl ServiceProcess {
    /// Starts a service with default options.
    pub async fn start() -> Self {
        Self::start_with(ServiceOptions::default()).await
    }

    /// Starts a service.
    pub async fn start_with(options: ServiceOptions) -> Self {
        let mut service = Self::prepare(options);
        service.spawn().await;
        service
    }

    /// Writes a service's config without starting it (see [`Self::spawn`]).
    pub fn prepare(options: ServiceOptions) -> Self {
        crate::init();
        let state = TempDir::new("nest-svc");
        let network = NetworkLease::claim();
        let tokens: Vec<String> = TOKENS
            .iter()
            .map(|(token, user, project, role)| {
                format!(
                    "  {{ token = \"{token}\", user_id = \"{user}\", project_id = \"{project}\", roles = [\"{role}\"] }},"
                )
            })
            .collect();
        let auth = options
            .auth
            .clone()
            .unwrap_or_else(|| format!("mode = \"dev\"\ntokens = [\n{}\n]", tokens.join("\n")));
        let relay = match options.external_relay {
            None => options
                .relay
                .clone()
                .unwrap_or_else(|| "listen = \"0.0.0.0:0\"".to_owned()),
            Some(external) => format!(
                "external = \"{external}\"\nadvertise = \"{}:{}\"",
                network.gateway(),
                external.port()
            ),
        };
        let config = state.path().join("service.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{state}\"\nshutdown_grace = \"3s\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n{public_url}\n[relay]\n{relay}\nheartbeat_interval = \"2s\"\n\n[auth]\n{auth}\n\n[scheduler]\nidle_timeout = \"{idle}\"\nmax_boots_per_project = {boots}\nwarm_pool = {warm}\n{scheduler_extra}\n[driver]\n{driver}\n{extra}\n",
                state = state.path().join("state").display(),
                idle = options.idle_timeout,
                boots = options.max_boots_per_project,
                warm = options.warm_pool,
                public_url = options
                    .public_url
                    .as_ref()
                    .map(|u| format!("public_url = \"{u}\"\n"))
                    .unwrap_or_default(),
                extra = options.extra,
                scheduler_extra = options.scheduler_extra,
                driver = options.driver.clone().unwrap_or_else(|| format!(
                    "kind = \"local\"\nbridge = \"{bridge}\"\nsubnet = \"{subnet}\"\nrun_dir = \"/run/nt{id}\"",
                    bridge = network.bridge,
                    subnet = network.subnet,
                    id = &network.bridge[3..],
                )),
            ),
        )
        .expect("write service config");
        let log = state.path().join(format!("{}.log", unique("service")));
        Self {
            child: None,
            url: String::new(),
            docker: None,
            config,
            log,
            options_db: options.database_url,
            on_drop: options.on_drop,
            state,
            network,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("http client"),
        }
    }

    /// Starts the service and waits until its API answers.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("service log");
        let mut command = Command::new(bin_path("nest-service"));
        command
            .arg("--config")
            .arg(&self.config)
            .env(
                "RUST_LOG",
                std::env::var("NEST_TEST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        if let Some(url) = &self.options_db {
            command.env("NEST_DATABASE_URL", url);
        }
        let mut child = command.spawn().expect("start nest-service");
        let stdout = child.stdout.take().expect("service stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut docker = None;
        let addr = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.strip_prefix("NEST_DOCKER_LISTENING=") {
                    docker = addr.parse::<SocketAddr>().ok();
                }
                if let Some(addr) = line.strip_prefix("NEST_API_LISTENING=") {
                    return addr.parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(addr) = addr else {
            panic!("nest-service did not start:\n{}", self.log_text());
        };
        self.url = format!("http://{addr}");
        self.docker = docker;
        self.child = Some(child);
        // Ready once the API answers.
        let url = format!("{}/healthz", self.url);
        crate::eventually(START_TIMEOUT, "the API to answer", || {
            let http = self.http.clone();
            let url = url.clone();
            async move {
                http.get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            }
        })
        .await;
    }

    /// Issues a stand-alone relay's certificate from this service's CA into
    /// `<state>/relay/` (`ca.pem`, `relay.pem`, `relay-key.pem`).
    pub fn issue_relay_certificate(&self) -> PathBuf {
        let out = self.state.path().join("relay");
        let status = std::process::Command::new(bin_path("nest-service"))
            .arg("--config")
            .arg(&self.config)
            .arg("issue-relay-certificate")
            .arg("--out")
            .arg(&out)
            .args(["--ip", "127.0.0.1", "--ip", &self.network.gateway()])
            .status()
            .expect("run nest-service issue-relay-certificate");
        assert!(status.success(), "issue-relay-certificate failed");
        out
    }

    /// A directory of this service's, for logs of helpers it runs.
    pub fn dir(&self) -> &std::path::Path {
        self.state.path()
    }

    /// The service's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The service's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILLs the service (instances and their agents keep running).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts the service again on the same state (new API port).
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// The service's database URL (`NEST_DATABASE_URL`, or the default
    /// SQLite file in its state directory).
    pub fn database_url(&self) -> String {
        self.options_db.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.state_dir().join("nest.db").display()
            )
        })
    }

    /// The service's `state_dir`, which the service creates itself.
    pub fn state_dir(&self) -> PathBuf {
        self.state.path().join("state")
    }

    /// The directory the local driver keeps instances in.
    pub fn instances_dir(&self) -> PathBuf {
        self.state.path().join("state/local/instances")
    }

    /// The local driver's settings, as the service has them.
    pub fn driver_config(&self) -> nest_service::driver::LocalDriverConfig {
        let mut config =
            nest_service::driver::LocalDriverConfig::new(self.state.path().join("state/local"));
        config.bridge = self.network.bridge.clone();
        config.subnet = self.network.subnet.clone();
        config.run_dir = PathBuf::from(format!("/run/nt{}", &self.network.bridge[3..]));
        config
    }

    /// The Docker socket of one instance's engine.
    pub fn instance_socket(&self, instance: &str) -> PathBuf {
        let driver =
            nest_service::driver::LocalDriver::new(self.driver_config()).expect("local driver");
        driver.docker_socket(&nest_core::ids::InstanceId::parse(instance).expect("instance id"))
    }

    /// The instances the driver really has.
    pub async fn driver_instances(&self) -> Vec<String> {
        use nest_service::driver::InstanceDriver;
        let driver =
            nest_service::driver::LocalDriver::new(self.driver_config()).expect("local driver");
        let mut ids: Vec<String> = driver
            .list()
            .await
            .expect("list instances")
            .instances
            .into_iter()
            .map(|i| i.to_string())
            .collect();
        ids.sort();
        ids
    }

    /// Sends a request with `token` and returns status and JSON body.
    pub async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("X-Auth-Token", token)
            .header("OpenStack-API-Version", "container 1.40");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Uploads the test image for `token`'s project; returns its uuid.
    pub async fn upload_test_image(&self, token: &str) -> String {
        crate::docker::ensure_test_image();
        let tar = self.state.path().join("image.tar");
        let out = std::process::Command::new("docker")
            .args(["save", "-o"])
            .arg(&tar)
            .arg(crate::docker::TEST_IMAGE)
            .output()
            .expect("docker save");
        assert!(out.status.success(), "docker save failed");
        let body = tokio::fs::read(&tar).await.expect("read image tar");
        let response = self
            .http
            .post(format!("{}/v1/nest/images?name=busybox", self.url))
            .header("X-Auth-Token", token)
            .body(body)
            .send()
            .await
            .expect("upload image");
        assert_eq!(response.status().as_u16(), 201, "image upload");
        let value: Value = response.json().await.expect("upload answer");
        value["uuid"].as_str().expect("image uuid").to_owned()
    }

    /// Waits until a container reaches `status` (or fails the test with
    /// its last view when it ends in another final state).
    pub async fn wait_status(
        &self,
        token: &str,
        id: &str,
        status: &str,
        timeout: Duration,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (code, view) = self
                .call(
                    token,
                    reqwest::Method::GET,
                    &format!("/v1/containers/{id}"),
                    None,
                )
                .await;
            assert_eq!(code, 200, "show {id}: {view}");
            if view["status"] == status {
                return view;
            }
            if view["status"] == "Error" && status != "Error" {
                panic!("container {id} failed: {view}\n{}", self.log_text());
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "container {id} not {status} after {timeout:?}: {view}\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        if let Some(on_drop) = self.on_drop.take() {
            on_drop(self.database_url());
        }
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!(
                "---- last lines of nest-service ({}) ----",
                self.log.display()
            );
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
        // Delete every instance the driver booted, from its on-disk state.
        let config = self.driver_config();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                use nest_service::driver::InstanceDriver;
                let Ok(driver) = nest_service::driver::LocalDriver::new(config) else {
                    return;
                };
                if let Ok(listing) = driver.list().await {
                    for id in listing.instances {
                        let _ = driver.delete(&id).await;
                    }
                }
            });
        });
        let _ = cleanup.join();
        let _ = std::fs::remove_dir_all(format!("/run/nt{}", &self.network.bridge[3..]));
    }
}
