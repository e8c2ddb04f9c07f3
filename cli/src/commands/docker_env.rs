//! `docker-env`: a client certificate for Nest's Docker endpoint, made
//! the way `docker-machine env` does it. The key pair is generated here
//! and never leaves this machine; Nest signs a CSR.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nest_api_types::zun::CreateDockerCertificateBody;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use crate::client::Session;
use crate::error::CliError;

fn write_private(path: &Path, contents: &str, mode: u32) -> Result<(), CliError> {
    let fail = |source| CliError::File {
        what: "cannot write",
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(fail)?;
    file.write_all(contents.as_bytes()).map_err(fail)
}

fn default_dir(project: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("osc").join("docker").join(project)
}

/// Quotes a value for a POSIX shell.
fn quoted(text: &str) -> String {
    shlex::try_quote(text)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| format!("'{}'", text.replace('\'', "'\\''")))
}

/// `docker-env --unset`.
pub fn unset() -> u8 {
    println!("unset DOCKER_HOST DOCKER_TLS_VERIFY DOCKER_CERT_PATH");
    0
}

/// `docker-env`.
pub async fn run(
    session: &Session,
    dir: Option<PathBuf>,
    lifetime: Option<String>,
) -> Result<u8, CliError> {
    let key = KeyPair::generate().map_err(CliError::Csr)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(CliError::Csr)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "osc docker-env");
    params.distinguished_name = name;
    let csr = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(CliError::Csr)?;
    let issued = match session
        .create_docker_certificate(&CreateDockerCertificateBody { csr, lifetime })
        .await
    {
        Err(CliError::Api {
            status: 404, code, ..
        }) if !code.contains("container-not") => {
            return Err(CliError::Api {
                status: 404,
                code,
                message: "this Nest service has no Docker endpoint (POST \
                          /v1/nest/docker/certificates answered 404); ask the operator to \
                          enable [docker] in its configuration"
                    .into(),
                request_id: None,
            });
        }
        other => other?,
    };
    let dir = dir.unwrap_or_else(|| default_dir(&issued.project_id));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|source| CliError::File {
            what: "cannot create",
            path: dir.clone(),
            source,
        })?;
    let missing = |what: &str| CliError::BadAnswer {
        url: format!("{}/v1/nest/docker/certificates", session.root()),
        status: 201,
        source: format!("the answer has no {what}").into(),
    };
    write_private(&dir.join("key.pem"), &key.serialize_pem(), 0o600)?;
    write_private(
        &dir.join("cert.pem"),
        issued
            .certificate
            .as_deref()
            .ok_or_else(|| missing("certificate"))?,
        0o644,
    )?;
    write_private(
        &dir.join("ca.pem"),
        issued
            .ca_certificate
            .as_deref()
            .ok_or_else(|| missing("ca_certificate"))?,
        0o644,
    )?;
    let dir_text = dir.display().to_string();
    println!("export DOCKER_HOST={}", quoted(&issued.docker_host));
    println!("export DOCKER_TLS_VERIFY=1");
    println!("export DOCKER_CERT_PATH={}", quoted(&dir_text));
    println!(
        "# certificate {} expires {}",
        issued.serial, issued.expires_at
    );
    println!("# Run this command to configure your shell:");
    println!("# eval \"$(osc docker-env)\"");
    Ok(0)
}
