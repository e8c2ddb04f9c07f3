//! Checks rendered user-data with the real consumers: Debian's `cloud-init`
//! (`cloud-init schema --config-file`), PyYAML's `safe_load` (which is how
//! cloud-init reads cloud-config) and `/bin/sh` running the install script.
//!
//! These tools are required, not optional: a missing one fails the test with
//! the command that installs it (`.ci/run` installs them the same way).
//! Debian's python3 is used by full path, because the `python3` first on
//! `PATH` may be another interpreter without the `yaml` module.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nest_cloud_init::{
    AgentBootstrap, AgentSource, CloudConfig, EnrollmentToken, FileMode, INSTALL_SCRIPT_PATH,
    UserData, WriteFile, parse, render,
};

const INSTALL_HINT: &str = "install with: DEBIAN_FRONTEND=noninteractive apt-get install -y \
                            --no-install-recommends cloud-init python3-yaml";

/// Debian's interpreter, which has the `yaml` module that cloud-init uses.
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBkTCB+6ADAgECAhRuZXN0LWNsb3VkLWluaXQtdGVzdDANBgkqhkiG9w0BAQsF\n\
ADAUMRIwEAYDVQQDDAlOZXN0IFRlc3Q=\n\
-----END CERTIFICATE-----\n";

fn baked() -> AgentBootstrap {
    AgentBootstrap {
        instance_id: "6f9a1c2e-4b7d-4e0f-9a3b-2c1d0e9f8a7b".into(),
        relay_addr: "[2001:db8::7]:7443".into(),
        relay_server_name: Some("relay.nest.internal".into()),
        ca_certificate_pem: format!("{CA_PEM}{CA_PEM}"),
        enrollment_token: EnrollmentToken::new("5f".repeat(32)),
        docker_socket: Some("/run/docker.sock".into()),
        agent_source: AgentSource::default(),
    }
}

fn download() -> AgentBootstrap {
    AgentBootstrap {
        relay_server_name: None,
        docker_socket: None,
        agent_source: AgentSource::Download {
            url: "https://downloads.nest.example/nest-agent?version=0.1.0&arch=x86_64".into(),
            sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
        },
        ..baked()
    }
}

/// Valid inputs whose values YAML 1.1 would read as something else if they
/// were written unquoted.
fn yaml_lookalikes() -> Vec<AgentBootstrap> {
    [
        "no", "yes", "off", "0755", "1e3", "null", "~", ".inf", "0x1F",
    ]
    .into_iter()
    .filter(|id| {
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
    })
    .map(|id| AgentBootstrap {
        instance_id: id.into(),
        ..download()
    })
    .collect()
}

/// A document made through the public types with strings that would break
/// any templated YAML, encoded by the same code as `render`.
fn hostile() -> UserData {
    let nasty = "\"\n- path: /etc/shadow\n  content: x\n}]\u{0}\t\u{7f}\u{85}\u{2028}\u{feff}\u{fffe} é 雪 \u{1F600} #x '$(reboot)` ---";
    let document = CloudConfig {
        write_files: vec![WriteFile {
            path: "/etc/nest/hostile".into(),
            content: nasty.into(),
            permissions: FileMode::OWNER_ONLY,
            owner: "root:root".into(),
        }],
        runcmd: vec![
            vec!["echo".to_owned(), nasty.replace('\0', "")]
                .try_into()
                .unwrap_or_else(|e| panic!("{e}")),
        ],
    };
    document.to_user_data().unwrap_or_else(|e| panic!("{e}"))
}

fn all_cases() -> Vec<(String, UserData)> {
    let mut cases = vec![
        ("baked".to_owned(), render(&baked())),
        ("download".to_owned(), render(&download())),
    ];
    for bootstrap in yaml_lookalikes() {
        cases.push((
            format!("instance_id={}", bootstrap.instance_id),
            render(&bootstrap),
        ));
    }
    let mut cases: Vec<(String, UserData)> = cases
        .into_iter()
        .map(|(name, rendered)| {
            (
                name.clone(),
                rendered.unwrap_or_else(|e| panic!("{name}: {e}")),
            )
        })
        .collect();
    cases.push(("hostile".to_owned(), hostile()));
    cases
}

/// A file under this test's target tmp dir, removed on drop (even on panic).
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nest-cloud-init");
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempFile(dir.join(format!("{}-{name}", std::process::id())))
    }

    fn with_contents(name: &str, contents: &[u8]) -> TempFile {
        let file = TempFile::new(name);
        fs::write(&file.0, contents).unwrap_or_else(|e| panic!("write {}: {e}", file.0.display()));
        file
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e}; {INSTALL_HINT}");
        })
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `cloud-init` from `PATH`, or a failure that says how to install it.
fn cloud_init() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("cloud-init"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("the cloud-init binary is missing; {INSTALL_HINT}"))
}

#[test]
fn rendered_user_data_passes_cloud_init_schema() {
    let cloud_init = cloud_init();
    for (name, user_data) in all_cases() {
        let file = TempFile::with_contents(&format!("{name}.yaml"), user_data.as_bytes());
        let output = Command::new(&cloud_init)
            .args(["schema", "--config-file"])
            .arg(&file.0)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", cloud_init.display()));
        assert!(
            output.status.success(),
            "{name}: cloud-init schema refused\n{}\n{}",
            describe(&output),
            user_data.as_str()
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("Valid cloud-config"),
            "{name}: {}",
            describe(&output)
        );
    }
}

#[test]
fn cloud_init_schema_catches_a_broken_document() {
    // Proves the check above can fail: permissions as a number is a schema error.
    let broken = "#cloud-config\n{\"write_files\": [{\"path\": \"/x\", \"content\": \"\", \"permissions\": 384}], \"runcmd\": []}\n";
    let file = TempFile::with_contents("broken.yaml", broken.as_bytes());
    let output = Command::new(cloud_init())
        .args(["schema", "--config-file"])
        .arg(&file.0)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cloud-init: {e}"));
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        describe(&output).contains("permissions"),
        "{}",
        describe(&output)
    );
}

/// Loads the file with PyYAML's `safe_load`, as cloud-init does, both whole
/// (the header is a YAML comment) and without the header, and compares with
/// `json.loads` of the body.
const PYYAML_EQUALS_JSON: &str = r##"
import json, sys, yaml
text = open(sys.argv[1], encoding="utf-8").read()
header = "#cloud-config\n"
assert text.startswith(header), "missing header"
body = text[len(header):]
from_json = json.loads(body)
for name, source in (("body", body), ("whole", text)):
    from_yaml = yaml.safe_load(source)
    if from_yaml != from_json:
        print(name, "differs:\nyaml:", repr(from_yaml), "\njson:", repr(from_json))
        sys.exit(1)
print("equal")
"##;

#[test]
fn pyyaml_reads_rendered_user_data_exactly_as_json() {
    let probe = run(DEBIAN_PYTHON, &["-c", "import yaml"]);
    assert!(
        probe.status.success(),
        "{DEBIAN_PYTHON} has no yaml module; {INSTALL_HINT}\n{}",
        describe(&probe)
    );
    for (name, user_data) in all_cases() {
        let file = TempFile::with_contents(&format!("{name}.pyyaml"), user_data.as_bytes());
        let path = file.0.to_string_lossy().into_owned();
        let output = run(DEBIAN_PYTHON, &["-c", PYYAML_EQUALS_JSON, &path]);
        assert!(
            output.status.success(),
            "{name}: {}\n{}",
            describe(&output),
            user_data.as_str()
        );
    }
}

fn install_script() -> TempFile {
    let user_data = render(&download()).unwrap_or_else(|e| panic!("{e}"));
    let document = parse(user_data.as_str()).unwrap_or_else(|e| panic!("{e}"));
    let script = document
        .write_files
        .iter()
        .find(|f| f.path == INSTALL_SCRIPT_PATH)
        .unwrap_or_else(|| panic!("no install script in {document:?}"));
    TempFile::with_contents("install-agent", script.content.as_bytes())
}

fn sha256_of(path: &Path) -> String {
    let output = run("sha256sum", &[&path.to_string_lossy()]);
    assert!(output.status.success(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn install_script_installs_only_a_matching_download() {
    // The script installs with `-o root -g root`, as cloud-init runs it; CI
    // runs as root too.
    let uid = run("id", &["-u"]);
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test must run as root, like cloud-init"
    );

    let script = install_script();
    let script_path = script.0.to_string_lossy().into_owned();
    let dest = TempFile::new("installed-agent");
    let dest_path = dest.0.to_string_lossy().into_owned();

    let download = TempFile::with_contents("download-good", b"#!/bin/sh\necho fake agent\n");
    let good_sha = sha256_of(&download.0);
    let download_path = download.0.to_string_lossy().into_owned();
    let output = run(
        "/bin/sh",
        &[&script_path, &good_sha, &download_path, &dest_path],
    );
    assert!(output.status.success(), "{}", describe(&output));
    let mode = fs::metadata(&dest.0).map(|m| m.permissions().mode() & 0o7777);
    assert_eq!(mode.ok(), Some(0o755));
    assert_eq!(
        fs::read(&dest.0).ok().as_deref(),
        Some(&b"#!/bin/sh\necho fake agent\n"[..])
    );
    assert!(
        !download.0.exists(),
        "the download must be removed once installed"
    );

    fs::remove_file(&dest.0).unwrap_or_else(|e| panic!("{e}"));
    let tampered = TempFile::with_contents("download-bad", b"#!/bin/sh\necho evil\n");
    let tampered_path = tampered.0.to_string_lossy().into_owned();
    let output = run(
        "/bin/sh",
        &[&script_path, &good_sha, &tampered_path, &dest_path],
    );
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not installed"),
        "{}",
        describe(&output)
    );
    assert!(
        !dest.0.exists(),
        "a mismatching download must not be installed"
    );
    assert!(
        !tampered.0.exists(),
        "a mismatching download must be deleted"
    );

    let missing = run(
        "/bin/sh",
        &[&script_path, &good_sha, &tampered_path, &dest_path],
    );
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));
    assert!(!dest.0.exists());
}
