//! The OpenStack client's Zun plugin (`openstack appcontainer`, installed
//! with python-zunclient from PyPI), logged in with a password to the
//! lab's real Keystone, finds Nest in the catalog as service type
//! `container` and drives a real nest-service: run, list, show, logs,
//! exec (with its exit code), stop, start, a refused call whose sentence
//! the user reads, an admin's show by name across projects and service
//! list, delete, and the project's stored images through `image
//! list/show/delete`.
//!
//! Needs the lab (`../shared/openstack-lab/up.sh`) and the client in a
//! virtualenv (`scripts/test.sh` sets both up); fails, never skips,
//! without them.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use nest_tests::keystone::{self, Catalog};

fn openstack_binary() -> PathBuf {
    let path = PathBuf::from(
        std::env::var("NEST_OPENSTACK_BIN")
            .unwrap_or_else(|_| "/opt/nest-zunclient/bin/openstack".into()),
    );
    assert!(
        path.exists(),
        "{} is missing: install python-openstackclient and python-zunclient in a virtualenv \
         (scripts/test.sh does this) or set NEST_OPENSTACK_BIN",
        path.display()
    );
    path
}

/// The demo user's `openstack appcontainer ...`, through the catalog.
struct Client {
    env: Vec<(&'static str, String)>,
}

impl Client {
    fn output(&self, args: &[&str]) -> Output {
        Command::new(openstack_binary())
            .arg("appcontainer")
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v.as_str())))
            .env_remove("OS_TOKEN")
            .env_remove("OS_CLOUD")
            .env_remove("OS_CONTAINER_API_VERSION")
            .output()
            .expect("run openstack")
    }

    /// Runs a command that must succeed; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "openstack appcontainer {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn field(&self, name: &str, field: &str) -> String {
        self.run(&["show", name, "-f", "value", "-c", field])
            .trim()
            .to_owned()
    }

    async fn wait_for(&self, name: &str, status: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let now = self.field(name, "status");
            if now == status {
                return;
            }
            assert!(
                now != "Error",
                "{name} failed: {}",
                self.run(&["show", name])
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} is {now}, not {status}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_appcontainer_drives_nest_through_the_keystone_catalog() {
    let svc = keystone::start_service().await;
    let catalog = Catalog::register(&format!("{}/v1", svc.url)).await;
    let http = reqwest::Client::new();
    let (demo, _) = keystone::token(&http, "demo", "demopass", "demo").await;
    let image = svc.upload_test_image(&demo).await;
    let client = Client {
        env: catalog.env("demo", "demopass", "demo"),
    };

    let run = client.run(&[
        "run",
        "--name",
        "ac-web",
        &image,
        "sh",
        "-c",
        "echo started; sleep 3600",
    ]);
    assert!(run.contains("ac-web"), "{run}");
    let id = client.field("ac-web", "uuid");
    client.wait_for("ac-web", "Running").await;

    let list = client.run(&["list", "-f", "value", "-c", "uuid", "-c", "status"]);
    assert!(list.contains(&format!("{id} Running")), "{list}");
    let address = client.field("ac-web", "addresses");
    assert!(
        address.parse::<std::net::IpAddr>().is_ok(),
        "addresses shows the instance's address: {address:?}"
    );

    let logs = client.run(&["logs", "ac-web"]);
    assert!(logs.contains("started"), "{logs}");
    let exec = client.run(&["exec", "ac-web", "echo", "hello-from-exec"]);
    assert!(exec.contains("hello-from-exec"), "{exec}");
    let failed = client.output(&["exec", "ac-web", "sh", "-c", "exit 3"]);
    assert_eq!(failed.status.code(), Some(3), "exec's exit code");

    client.run(&["stop", "ac-web"]);
    client.wait_for("ac-web", "Stopped").await;
    client.run(&["start", "ac-web"]);
    client.wait_for("ac-web", "Running").await;

    // A Zun feature Nest leaves out: the user reads why and what instead.
    let refused = client.output(&["rebuild", "--image", &image, "ac-web"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        said.contains("container rebuild is not supported by Nest")
            && said.contains("create it again")
            && said.contains("HTTP 400"),
        "{said}"
    );
    // ... and nothing changed.
    assert_eq!(client.field("ac-web", "status"), "Running");

    // A running container needs --stop; the plugin reports the 409.
    let plain = client.output(&["delete", "ac-web"]);
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("Running state")
            || String::from_utf8_lossy(&plain.stdout).contains("Running state"),
        "{plain:?}"
    );
    // An admin finds it by name with --all-projects.
    let admin = Client {
        env: catalog.env("admin", "adminpass", "admin"),
    };
    let seen = admin.run(&[
        "show",
        "--all-projects",
        "ac-web",
        "-f",
        "value",
        "-c",
        "uuid",
    ]);
    assert_eq!(seen.trim(), id);
    // ... and each instance's agent in the service list.
    let services = admin.run(&[
        "service", "list", "-f", "value", "-c", "Binary", "-c", "State",
    ]);
    assert!(services.contains("nest-agent up"), "{services}");
    // Not --wait: the plugin gives up after 30 s, and a loaded machine
    // may take longer to stop the container first.
    let deleted = client.run(&["delete", "--stop", "ac-web"]);
    assert!(deleted.contains("has been accepted"), "{deleted}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let list = client.run(&["list", "-f", "value", "-c", "uuid"]);
        if !list.contains(&id) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ac-web was not deleted: {list}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The project's stored images, in Zun's image view.
    let images = client.run(&["image", "list", "-f", "value", "-c", "uuid"]);
    assert!(images.contains(&image), "{images}");
    let shown = client.run(&["image", "show", &image, "-f", "value", "-c", "size"]);
    assert!(shown.trim().parse::<u64>().is_ok_and(|n| n > 0), "{shown}");
    client.run(&["image", "delete", &image]);
    let images = client.run(&["image", "list", "-f", "value", "-c", "uuid"]);
    assert!(!images.contains(&image), "{images}");

    catalog.remove().await;
}
