//! The cloud-config document as serde types, and how a checked bootstrap
//! becomes one.
//!
//! The types model only the two cloud-config modules Nest uses,
//! `write_files` and `runcmd`, with the field names cloud-init's schema
//! gives them (`cc_write_files`, `cc_runcmd`). `deny_unknown_fields` makes
//! [`parse`](crate::parse) refuse anything [`render`](crate::render) would
//! not produce.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::agent_config::AgentConfigFile;
use crate::error::RenderError;
use crate::paths::{
    AGENT_CONFIG_PATH, CA_CERTIFICATE_PATH, DEFAULT_AGENT_BINARY_PATH, DOWNLOAD_PATH,
    ENROLLMENT_TOKEN_PATH, FILE_OWNER, INSTALL_SCRIPT_PATH, STATE_DIR, SYSTEMD_UNIT_NAME,
    SYSTEMD_UNIT_PATH,
};
use crate::systemd;
use crate::validate::{ValidSource, Validated};

/// The typed cloud-config document that Nest's user-data holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    /// Files cloud-init writes early in boot (its `init` stage), in order.
    pub write_files: Vec<WriteFile>,
    /// Commands cloud-init runs once per instance, late in boot (its `final`
    /// stage, after the network is up), in order.
    pub runcmd: Vec<Command>,
}

/// One `write_files` entry: a whole text file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteFile {
    /// Absolute path of the file; parent directories are created as needed.
    pub path: String,
    /// The file's whole text, written as is (no encoding).
    pub content: String,
    /// The file's permission bits, written as cloud-init expects (`"0600"`).
    pub permissions: FileMode,
    /// `user:group` owning the file; always [`FILE_OWNER`] in rendered output.
    pub owner: String,
}

impl WriteFile {
    /// The file's permission bits as a number, for `chmod`-like calls
    /// (`0o600` for `"0600"`).
    pub fn mode(&self) -> u32 {
        self.permissions.bits()
    }
}

// By hand, because `content` may be the enrollment token.
impl fmt::Debug for WriteFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteFile")
            .field("path", &self.path)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .field("permissions", &self.permissions)
            .field("owner", &self.owner)
            .finish()
    }
}

/// Permission bits of a written file, serialized as a four-digit octal string.
///
/// A string, not a number, because cloud-init's schema requires one, and
/// because YAML 1.1 would read a bare `0600` as octal but JSON cannot even
/// write it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FileMode(u32);

impl FileMode {
    /// `0600`: the owner reads and writes; for secrets.
    pub const OWNER_ONLY: FileMode = FileMode(0o600);
    /// `0644`: everyone reads, the owner writes.
    pub const READABLE: FileMode = FileMode(0o644);
    /// `0755`: everyone reads and runs, the owner writes.
    pub const EXECUTABLE: FileMode = FileMode(0o755);

    /// The bits, `0o000` to `0o777`.
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileMode({:04o})", self.0)
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for FileMode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // Exactly what `Display` writes: "0" and three octal digits. No
        // setuid, setgid or sticky bits are ever rendered.
        let digits = text
            .strip_prefix('0')
            .filter(|d| d.len() == 3 && d.bytes().all(|b| (b'0'..=b'7').contains(&b)));
        digits
            .and_then(|d| u32::from_str_radix(d, 8).ok())
            .map(FileMode)
            .ok_or_else(|| {
                serde::de::Error::custom(format_args!(
                    "permissions must be \"0\" followed by three octal digits, not {text:?}"
                ))
            })
    }
}

/// One `runcmd` entry: a program and its arguments, never a shell string.
///
/// cloud-init quotes each element on its own before running the list, so an
/// element is always exactly one argument, whatever characters it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Command(Vec<String>);

impl Command {
    fn new(argv: &[&str]) -> Command {
        Command(argv.iter().map(|&arg| arg.to_owned()).collect())
    }

    /// The program followed by its arguments; never empty.
    pub fn argv(&self) -> &[String] {
        &self.0
    }
}

impl TryFrom<Vec<String>> for Command {
    type Error = &'static str;

    fn try_from(argv: Vec<String>) -> Result<Self, Self::Error> {
        if argv.is_empty() {
            return Err("a runcmd entry must name a program");
        }
        // A shell script, which is what cloud-init turns runcmd into, cannot
        // carry a NUL byte.
        if argv.iter().any(|arg| arg.contains('\0')) {
            return Err("a runcmd argument must not contain NUL");
        }
        Ok(Command(argv))
    }
}

impl From<Command> for Vec<String> {
    fn from(command: Command) -> Self {
        command.0
    }
}

/// Checks a downloaded agent's sha256 and installs it; written to
/// [`INSTALL_SCRIPT_PATH`] and run as
/// `install-agent EXPECTED_SHA256 DOWNLOADED_FILE DESTINATION`.
///
/// Fixed text: every value arrives as a positional argument and is only ever
/// expanded inside double quotes, so nothing from the user-data can become
/// shell code.
pub(crate) const INSTALL_SCRIPT: &str = r#"#!/bin/sh
# Written by nest-cloud-init. Checks the sha256 of a downloaded nest-agent
# and installs it; refuses (and deletes the download) on any mismatch.
set -eu
if [ "$#" -ne 3 ]; then
    echo "usage: $0 EXPECTED_SHA256 DOWNLOADED_FILE DESTINATION" >&2
    exit 2
fi
expected=$1
file=$2
dest=$3
if [ ! -f "$file" ]; then
    echo "nest-agent install: $file is missing; the download failed" >&2
    exit 1
fi
actual=$(sha256sum < "$file")
actual=${actual%% *}
if [ "$actual" != "$expected" ]; then
    rm -f -- "$file"
    echo "nest-agent install: download has sha256 $actual, expected $expected; not installed" >&2
    exit 1
fi
install -m 0755 -o root -g root "$file" "$dest"
rm -f -- "$file"
"#;

/// Builds the document for a checked bootstrap.
pub(crate) fn build(bootstrap: &Validated<'_>) -> Result<CloudConfig, RenderError> {
    let agent_config = AgentConfigFile::new(bootstrap).to_toml()?;
    let agent_path = bootstrap.agent_source.installed_path();

    let file = |path: &str, content: String, permissions: FileMode| WriteFile {
        path: path.to_owned(),
        content,
        permissions,
        owner: FILE_OWNER.to_owned(),
    };
    let mut write_files = vec![
        file(
            CA_CERTIFICATE_PATH,
            bootstrap.ca_certificate_pem.clone(),
            FileMode::READABLE,
        ),
        file(
            ENROLLMENT_TOKEN_PATH,
            format!("{}\n", bootstrap.enrollment_token),
            FileMode::OWNER_ONLY,
        ),
        file(AGENT_CONFIG_PATH, agent_config, FileMode::READABLE),
        file(
            SYSTEMD_UNIT_PATH,
            systemd::unit(agent_path),
            FileMode::READABLE,
        ),
    ];

    // The state directory will hold the agent's private key: make it private
    // before the agent (or a download) first writes to it.
    let mut runcmd = vec![Command::new(&[
        "install", "-d", "-m", "0700", "-o", "root", "-g", "root", STATE_DIR,
    ])];
    if let ValidSource::Download { url, sha256 } = &bootstrap.agent_source {
        write_files.push(file(
            INSTALL_SCRIPT_PATH,
            INSTALL_SCRIPT.to_owned(),
            FileMode::EXECUTABLE,
        ));
        // `--proto-redir` as well: by default curl follows a redirect to
        // plain HTTP even when the first URL was HTTPS.
        runcmd.push(Command::new(&[
            "curl",
            "-fsSL",
            "--proto",
            "=https",
            "--proto-redir",
            "=https",
            "--retry",
            "5",
            "--retry-connrefused",
            "-o",
            DOWNLOAD_PATH,
            url,
        ]));
        runcmd.push(Command::new(&[
            INSTALL_SCRIPT_PATH,
            sha256,
            DOWNLOAD_PATH,
            DEFAULT_AGENT_BINARY_PATH,
        ]));
    }
    runcmd.push(Command::new(&["systemctl", "daemon-reload"]));
    runcmd.push(Command::new(&[
        "systemctl",
        "enable",
        "--now",
        SYSTEMD_UNIT_NAME,
    ]));

    Ok(CloudConfig {
        write_files,
        runcmd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_mode_serializes_as_four_octal_digits() {
        let json = serde_json::to_string(&[
            FileMode::OWNER_ONLY,
            FileMode::READABLE,
            FileMode::EXECUTABLE,
        ]);
        assert_eq!(json.ok().as_deref(), Some(r#"["0600","0644","0755"]"#));
    }

    #[test]
    fn file_mode_accepts_only_what_it_writes() {
        let mode = |text: &str| {
            serde_json::from_str::<FileMode>(text)
                .ok()
                .map(FileMode::bits)
        };
        assert_eq!(mode(r#""0600""#), Some(0o600));
        assert_eq!(mode(r#""0000""#), Some(0));
        assert_eq!(mode(r#""0777""#), Some(0o777));
        for bad in [
            r#""600""#,
            r#""4755""#,
            r#""0800""#,
            r#""00600""#,
            r#""0o600""#,
            "384",
            r#""+644""#,
        ] {
            assert_eq!(mode(bad), None, "{bad}");
        }
    }

    #[test]
    fn command_refuses_empty_argv_and_nul() {
        assert!(serde_json::from_str::<Command>("[]").is_err());
        assert!(serde_json::from_str::<Command>(r#"["a\u0000b"]"#).is_err());
        assert!(serde_json::from_str::<Command>(r#""echo hi""#).is_err());
        let argv = serde_json::from_str::<Command>(r#"["echo","a b"]"#).map(|c| c.argv().to_vec());
        assert_eq!(argv.ok(), Some(vec!["echo".to_owned(), "a b".to_owned()]));
    }

    #[test]
    fn write_file_debug_hides_content() {
        let file = WriteFile {
            path: ENROLLMENT_TOKEN_PATH.into(),
            content: "very-secret\n".into(),
            permissions: FileMode::OWNER_ONLY,
            owner: FILE_OWNER.into(),
        };
        let printed = format!("{file:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
        assert!(
            printed.contains("<12 bytes>") && printed.contains("0600"),
            "{printed}"
        );
        assert_eq!(file.mode(), 0o600);
    }
}
