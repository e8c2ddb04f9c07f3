//! The unchanged docker CLI pointed at a test service's Docker endpoint:
//! a client certificate issued through the Zun API (the key never leaves
//! the test), or a Keystone-style token in the docker config's
//! `HttpHeaders`, each in its own `DOCKER_CONFIG` so the machine's own
//! docker configuration never leaks in.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::TempDir;
use crate::service::ServiceProcess;

/// Longest one docker CLI command may take (a first `run` boots an
/// instance).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How the client authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// A client certificate issued for the caller, in `DOCKER_CERT_PATH`.
    Certificate,
    /// The token in `X-Auth-Token` (the docker config's `HttpHeaders`),
    /// without a client certificate.
    Token,
}

/// A docker CLI configuration for one caller.
pub struct DockerCli {
    dir: TempDir,
    host: String,
    /// The certificate's serial, when authenticated by one.
    pub serial: Option<String>,
}

/// The CA certificate the endpoint's server certificate chains to: the
/// service's CA, read from its state directory.
fn service_ca(svc: &ServiceProcess) -> String {
    std::fs::read_to_string(svc.state_dir().join("pki").join("ca.pem"))
        .expect("the service's CA certificate")
}

impl DockerCli {
    /// A client of `svc`'s Docker endpoint, authenticated as `token`'s
    /// caller: by a client certificate issued for it, or by the token.
    pub async fn new(svc: &ServiceProcess, token: &str, auth: Auth) -> Self {
        let docker = svc
            .docker
            .expect("the service has its Docker endpoint enabled");
        let dir = TempDir::new("docker-cli");
        let mut serial = None;
        let host;
        if auth == Auth::Certificate {
            let (view, key) = Self::issue(svc, token).await;
            std::fs::write(
                dir.path().join("cert.pem"),
                view["certificate"].as_str().expect("certificate"),
            )
            .expect("cert.pem");
            std::fs::write(dir.path().join("key.pem"), key).expect("key.pem");
            std::fs::write(
                dir.path().join("ca.pem"),
                view["ca_certificate"].as_str().expect("ca"),
            )
            .expect("ca.pem");
            host = view["docker_host"]
                .as_str()
                .expect("docker_host")
                .to_owned();
            serial = view["serial"].as_str().map(str::to_owned);
        } else {
            std::fs::write(dir.path().join("ca.pem"), service_ca(svc)).expect("ca.pem");
            std::fs::write(
                dir.path().join("config.json"),
                json!({"HttpHeaders": {"X-Auth-Token": token}}).to_string(),
            )
            .expect("config.json");
            host = format!("tcp://{docker}");
        }
        Self { dir, host, serial }
    }

    /// A client of `svc`'s Docker endpoint presenting `certificate_pem`
    /// (with its key), whoever issued it, and no token.
    pub fn with_certificate(svc: &ServiceProcess, certificate_pem: &str, key_pem: &str) -> Self {
        let cli = Self::without_credential(svc);
        std::fs::write(cli.path("cert.pem"), certificate_pem).expect("cert.pem");
        std::fs::write(cli.path("key.pem"), key_pem).expect("key.pem");
        cli
    }

    /// A client of `svc`'s Docker endpoint that trusts its CA and presents
    /// neither a certificate nor a token.
    pub fn without_credential(svc: &ServiceProcess) -> Self {
        let docker = svc
            .docker
            .expect("the service has its Docker endpoint enabled");
        let dir = TempDir::new("docker-cli");
        std::fs::write(dir.path().join("ca.pem"), service_ca(svc)).expect("ca.pem");
        Self {
            dir,
            host: format!("tcp://{docker}"),
            serial: None,
        }
    }

    /// Issues a client certificate for `token`'s caller; returns the view
    /// and the private key (PEM).
    pub async fn issue(svc: &ServiceProcess, token: &str) -> (Value, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("csr pem");
        let (code, view) = svc
            .call(
                token,
                reqwest::Method::POST,
                "/v1/nest/docker/certificates",
                Some(json!({"csr": csr})),
            )
            .await;
        assert_eq!(code, 201, "{view}");
        (view, key.serialize_pem())
    }

    /// `DOCKER_HOST` of this client.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Its `DOCKER_CERT_PATH` (and `DOCKER_CONFIG`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment the CLI runs with, nothing else.
    fn envs(&self) -> Vec<(&'static str, String)> {
        let dir = self.dir.path().display().to_string();
        vec![
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("HOME", dir.clone()),
            ("DOCKER_HOST", self.host.clone()),
            ("DOCKER_TLS_VERIFY", "1".to_owned()),
            ("DOCKER_CERT_PATH", dir.clone()),
            ("DOCKER_CONFIG", dir),
        ]
    }

    fn command_of(&self, program: &str, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(self.envs())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        self.command_of("docker", args)
    }

    /// Stores the test image ([`crate::docker::TEST_IMAGE`]) in Nest
    /// through `docker load`, saved from this machine's engine.
    pub async fn load_test_image(&self) {
        let image = crate::docker::TEST_IMAGE;
        crate::docker::ensure_test_image();
        let tar = self.path("image.tar");
        let saved = std::process::Command::new("docker")
            .args(["save", "-o"])
            .arg(&tar)
            .arg(image)
            .output()
            .expect("docker save on the machine's engine");
        assert!(saved.status.success(), "docker save {image}");
        let loaded = self.ok(&["load", "-i", &tar.to_string_lossy()]).await;
        assert!(
            loaded.contains(&format!("Loaded image: {image}")),
            "{loaded}"
        );
    }

    /// Runs `docker-compose args…` (Debian's docker-compose, which reads
    /// the same `DOCKER_*` variables) and returns its output.
    pub async fn compose(&self, args: &[&str]) -> Output {
        self.command_of("docker-compose", args)
            .output()
            .await
            .expect("docker-compose runs (Debian's docker-compose package)")
    }

    /// Runs `docker args…` and returns its output.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None).await
    }

    /// Runs `docker args…` allowing it `timeout` (instead of
    /// [`COMMAND_TIMEOUT`]) and returns its output.
    pub async fn run_within(&self, args: &[&str], timeout: Duration) -> Output {
        let child = self.command(args).spawn().expect("the docker CLI runs");
        tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("docker {args:?} did not finish within {timeout:?}"))
            .expect("docker output")
    }

    /// Runs `docker args…` with `stdin` piped in.
    pub async fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut command = self.command(args);
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().expect("the docker CLI runs");
        if let Some(data) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(data).await.expect("write stdin");
            drop(pipe);
        }
        tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("docker {args:?} did not finish"))
            .expect("docker output")
    }

    /// Runs `docker args…`, asserts success and returns its stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `docker` with `args` on a pseudo-terminal (util-linux
    /// `script`), typing each of `inputs` a second apart; returns the exit
    /// status and what the terminal showed.
    pub async fn run_in_pty(&self, args: &[&str], inputs: &[&[u8]]) -> (Option<i32>, String) {
        let line = std::iter::once("docker")
            .chain(args.iter().copied())
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let mut command = self.command_of("script", &["-qefc", &line, "/dev/null"]);
        command.env("TERM", "xterm").stdin(Stdio::piped());
        let mut child = command.spawn().expect("script(1) runs");
        let mut pipe = child.stdin.take().expect("stdin");
        for input in inputs {
            tokio::time::sleep(Duration::from_secs(1)).await;
            pipe.write_all(input).await.expect("write to the terminal");
        }
        let out = tokio::time::timeout(COMMAND_TIMEOUT, async move {
            let out = child.wait_with_output().await;
            drop(pipe);
            out
        })
        .await
        .unwrap_or_else(|_| panic!("docker {args:?} on a terminal did not finish"))
        .expect("script output");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Starts `docker args…` in the background (for `logs -f`, `events`).
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command(args).spawn().expect("the docker CLI runs")
    }

    /// A path inside the client's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
