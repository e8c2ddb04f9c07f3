//! The `nova` driver against the lab (`../shared/openstack-lab`): a
//! service booting servers in the tenants' own projects, the test
//! hypervisor that runs those servers as namespace guests, the `openstack`
//! CLI as a tenant or admin sees it, and cleanup of whatever a test left in
//! the cloud.
//!
//! Each test gets its own server tag, so its hypervisor runs only its
//! servers and its cleanup deletes only what it made. One test runs at a
//! time ([`serial`]): the hypervisor's bridge holds the private subnet's
//! gateway address, which only one bridge may hold.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::service::ServiceOptions;
use crate::{START_TIMEOUT, TempDir, bin_path};

/// The lab's Keystone.
pub const AUTH_URL: &str = "http://127.0.0.1:5000/v3";
/// The hypervisor's bridge address: the private subnet's gateway, where
/// guests dial the relay.
pub const GATEWAY: &str = "198.51.100.1";
/// The service user the driver logs in as: the trustee of the tenants'
/// trusts, with no role beyond `member` of its own project.
pub const DRIVER_USER: (&str, &str) = ("nest-driver", "nest-driver-pass");

/// A lab user: name, password, project.
#[derive(Clone, Debug)]
pub struct User {
    /// Name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Project name.
    pub project: String,
}

impl User {
    fn of(name: &str, password: &str, project: &str) -> Self {
        Self {
            name: name.into(),
            password: password.into(),
            project: project.into(),
        }
    }
}

/// The lab's `demo`.
pub fn demo() -> User {
    User::of("demo", "demopass", "demo")
}
/// The lab's `alt_demo`.
pub fn alt_demo() -> User {
    User::of("alt_demo", "alt_demopass", "alt_demo")
}
/// The lab's `admin`.
pub fn admin() -> User {
    User::of("admin", "adminpass", "admin")
}

/// A project and its one member, made for one test (quota tests change
/// its quotas, never the lab's own projects'); deleted on drop.
pub struct TestProject {
    /// The member.
    pub user: User,
    /// The project's id.
    pub id: String,
}

impl TestProject {
    /// Creates project and user `<tag>-p` / `<tag>-u`.
    pub fn create(tag: &str) -> Self {
        let user = User::of(&format!("{tag}-u"), "nest-test-pass", &format!("{tag}-p"));
        let project = openstack(
            &admin(),
            &[
                "project",
                "create",
                "--domain",
                "Default",
                &user.project,
                "-f",
                "json",
            ],
        );
        openstack(
            &admin(),
            &[
                "user",
                "create",
                "--domain",
                "Default",
                "--project",
                &user.project,
                "--password",
                &user.password,
                &user.name,
                "-f",
                "json",
            ],
        );
        openstack(
            &admin(),
            &[
                "role",
                "add",
                "--user",
                &user.name,
                "--project",
                &user.project,
                "member",
            ],
        );
        Self {
            id: project["id"].as_str().expect("a project id").to_owned(),
            user,
        }
    }
}

impl Drop for TestProject {
    fn drop(&mut self) {
        let _ = try_openstack(&admin(), &["user", "delete", &self.user.name]);
        let _ = try_openstack(&admin(), &["project", "delete", &self.user.project]);
    }
}

/// Serializes the tests that use the hypervisor's bridge (an async lock:
/// it is held across the whole test).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A tag unique to this test: at most 20 characters.
pub fn unique_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("nt{}x{nanos:x}", std::process::id() % 100_000)
}

/// Runs `openstack <args> -f json` as `user`; returns the JSON (or
/// `Null` for commands that print nothing) and panics on failure.
pub fn openstack(user: &User, args: &[&str]) -> Value {
    let (ok, out) = try_openstack(user, args);
    assert!(ok, "openstack {args:?} as {} failed: {out}", user.name);
    serde_json::from_str(&out).unwrap_or(Value::Null)
}

/// Runs `openstack <args>` as `user`; returns whether it succeeded and its
/// output (stdout, or stderr on failure).
pub fn try_openstack(user: &User, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("openstack")
        .args(args)
        .env("OS_AUTH_URL", AUTH_URL)
        .env("OS_IDENTITY_API_VERSION", "3")
        .env("OS_USERNAME", &user.name)
        .env("OS_PASSWORD", &user.password)
        .env("OS_PROJECT_NAME", &user.project)
        .env("OS_USER_DOMAIN_NAME", "Default")
        .env("OS_PROJECT_DOMAIN_NAME", "Default")
        .env("OS_REGION_NAME", "RegionOne")
        .env("OS_INTERFACE", "public")
        .env("OS_COMPUTE_API_VERSION", "2.79")
        // The CLI is Debian's, next to the lab's Python (README, gotcha 3).
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .output()
        .unwrap_or_else(|e| panic!("run openstack (is python3-openstackclient installed?): {e}"));
    if out.status.success() {
        (true, String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        (false, String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A project's id.
pub fn project_id(project: &str) -> String {
    let shown = openstack(&admin(), &["project", "show", project, "-f", "json"]);
    shown["id"].as_str().expect("a project id").to_owned()
}

/// Creates the driver's service user unless it exists (idempotent; no
/// existing user or password is touched).
pub fn ensure_driver_user() {
    let (exists, _) = try_openstack(&admin(), &["user", "show", DRIVER_USER.0, "-f", "json"]);
    if !exists {
        openstack(
            &admin(),
            &[
                "user",
                "create",
                "--domain",
                "Default",
                "--project",
                "service",
                "--password",
                DRIVER_USER.1,
                DRIVER_USER.0,
                "-f",
                "json",
            ],
        );
    }
    // Idempotent: a role already held is fine.
    openstack(
        &admin(),
        &[
            "role",
            "add",
            "--user",
            DRIVER_USER.0,
            "--project",
            "service",
            "member",
        ],
    );
}

/// A scoped token of `user`, from Keystone.
pub async fn token(user: &User) -> String {
    let response = reqwest::Client::new()
        .post(format!("{AUTH_URL}/auth/tokens"))
        .json(&serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user.name, "domain": {"name": "Default"}, "password": user.password}}},
            "scope": {"project": {"name": user.project, "domain": {"name": "Default"}}}
        }}))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Keystone is not reachable at {AUTH_URL} ({e}): run ../shared/openstack-lab/up.sh"
            )
        });
    assert_eq!(response.status().as_u16(), 201, "{} logs in", user.name);
    response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .expect("a token")
        .to_owned()
}

/// Revokes `token` (Keystone's `DELETE /v3/auth/tokens`), as admin.
pub async fn revoke(token: &str) {
    let admin = self::token(&admin()).await;
    let response = reqwest::Client::new()
        .delete(format!("{AUTH_URL}/auth/tokens"))
        .header("x-auth-token", admin)
        .header("x-subject-token", token)
        .send()
        .await
        .expect("Keystone answers");
    assert_eq!(response.status().as_u16(), 204, "revoke a token");
}

/// The trust each project delegated to the service whose database is at
/// `database_url`, by project id.
pub async fn recorded_trusts(database_url: &str) -> Vec<(String, String)> {
    let store = nest_service::db::Store::connect(database_url)
        .await
        .expect("open the service's database");
    let recorded = store.authorities().await.expect("read the authorities");
    store.close().await;
    recorded
        .into_iter()
        .filter_map(|(project, authority)| match authority {
            nest_service::driver::TenantAuthority::Trust { trust_id } => {
                Some((project.to_string(), trust_id))
            }
            _ => None,
        })
        .collect()
}

/// Deletes trust `trust_id` as admin (`DELETE /v3/OS-TRUST/trusts/{id}`);
/// returns Keystone's status (204, or 404 when it was gone).
pub async fn delete_trust(trust_id: &str) -> u16 {
    let admin = token(&admin()).await;
    reqwest::Client::new()
        .delete(format!("{AUTH_URL}/OS-TRUST/trusts/{trust_id}"))
        .header("x-auth-token", admin)
        .send()
        .await
        .expect("Keystone answers")
        .status()
        .as_u16()
}

/// Deletes, as admin, the trusts recorded in the database at
/// `database_url`: what a test's service delegated ends with the test
/// (the service itself deletes the trusts it replaces).
pub fn delete_recorded_trusts(database_url: String) {
    let deleted = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            for (project, trust_id) in recorded_trusts(&database_url).await {
                let status = delete_trust(&trust_id).await;
                assert!(
                    matches!(status, 204 | 404),
                    "delete trust {trust_id} of project {project}: {status}"
                );
            }
        });
    });
    if deleted.join().is_err() {
        eprintln!("could not delete the trusts of a test's service");
    }
}

/// Options of a service with Keystone auth and the `nova` driver, its
/// servers tagged `tag` on the lab's private network with `pub` floating
/// IPs from `public`, and the relay advertised at the hypervisor's bridge.
/// The trusts it records are deleted when it is dropped.
pub fn service_options(tag: &str) -> ServiceOptions {
    ServiceOptions {
        auth: Some(format!(
            "mode = \"keystone\"\nauth_url = \"{AUTH_URL}\"\nusername = \"admin\"\n\
             password = \"adminpass\"\nproject_name = \"admin\"\ncache_ttl = \"0s\"\n"
        )),
        driver: Some(format!(
            "kind = \"nova\"\nregion = \"RegionOne\"\nflavor = \"m1.tiny\"\nimage = \"fake-image\"\n\
             boot_timeout = \"60s\"\nserver_tag = \"{tag}\"\n\
             networks = [{{ name = \"private\", network = \"private\" }}, {{ name = \"pub\", network = \"public\" }}]\n\
             [driver.auth]\nauth_url = \"{AUTH_URL}\"\nusername = \"{}\"\npassword = \"{}\"\n\
             project_name = \"service\"\n",
            DRIVER_USER.0, DRIVER_USER.1
        )),
        // A fixed port, as in a real deployment: agents keep dialling it
        // across a restart of the service.
        relay: Some(format!(
            "listen = \"0.0.0.0:{port}\"\nadvertise = \"{GATEWAY}:{port}\"",
            port = free_port()
        )),
        on_drop: Some(Box::new(delete_recorded_trusts)),
        ..ServiceOptions::default()
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `nest-test-hypervisor` for the servers tagged `tag`; stopped
/// (every guest, the bridge and the route removed) on drop.
pub struct Hypervisor {
    child: Option<Child>,
    log: PathBuf,
    run_dir: PathBuf,
    _dir: TempDir,
}

impl Hypervisor {
    /// Starts it and waits until its bridge is up.
    pub async fn start(tag: &str) -> Self {
        let dir = TempDir::new("nest-hv");
        let log = dir.path().join("hypervisor.log");
        let run_dir = PathBuf::from(format!("/run/{tag}"));
        let stderr = std::fs::File::create(&log).expect("hypervisor log");
        let mut child = Command::new(bin_path("nest-test-hypervisor"))
            .arg("--state-dir")
            .arg(dir.path().join("guests"))
            .arg("--run-dir")
            .arg(&run_dir)
            .arg("--agent-binary")
            .arg(bin_path("nest-agent"))
            .arg("--tag")
            .arg(tag)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("start nest-test-hypervisor");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "NEST_HYPERVISOR_READY" {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        let hypervisor = Self {
            child: Some(child),
            log,
            run_dir,
            _dir: dir,
        };
        assert!(
            ready,
            "the hypervisor did not start:\n{}",
            hypervisor.log_text()
        );
        hypervisor
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Hypervisor {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- nest-test-hypervisor ----\n{}", self.log_text());
        }
        let Some(child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            // SIGTERM: it deletes its guests, then exits.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let mut child = child;
        let waited = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                if tokio::time::timeout(Duration::from_secs(90), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            });
        });
        let _ = waited.join();
        // It removes it itself unless it was killed.
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// Deletes, on drop, every server tagged `tag` in any project and every
/// floating IP described `tag-…`: nothing a test made outlives it.
pub struct CloudCleanup {
    /// The test's tag.
    pub tag: String,
}

impl CloudCleanup {
    /// The servers tagged with the test's tag, in every project: (id,
    /// project id, status).
    pub fn servers(&self) -> Vec<(String, String, String)> {
        let listed = openstack(
            &admin(),
            &[
                "server",
                "list",
                "--all-projects",
                "--tags",
                &self.tag,
                "--long",
                "-f",
                "json",
            ],
        );
        listed
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| {
                        let field = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
                        (field("ID"), field("Project ID"), field("Status"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for CloudCleanup {
    fn drop(&mut self) {
        for (id, _, _) in self.servers() {
            let _ = try_openstack(&admin(), &["server", "delete", &id]);
        }
        let fips = openstack(
            &admin(),
            &["floating", "ip", "list", "--long", "-f", "json"],
        );
        for fip in fips.as_array().into_iter().flatten() {
            let described = fip["Description"].as_str().unwrap_or_default();
            if described.starts_with(&format!("{}-", self.tag))
                && let Some(id) = fip["ID"].as_str()
            {
                let _ = try_openstack(&admin(), &["floating", "ip", "delete", id]);
            }
        }
    }
}
