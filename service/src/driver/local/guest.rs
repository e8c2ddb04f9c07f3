//! What the `local` driver does in cloud-init's place: reads the user-data
//! with `nest_cloud_init::parse`, writes its `write_files` under the
//! instance's root directory, and works out which host directories the
//! agent must see at which in-guest paths.
//!
//! The agent runs in a private mount namespace where these directories are
//! bind-mounted over their in-guest paths (`/etc/nest`, the agent's state
//! directory) and the instance's dockerd socket over the agent's
//! `docker_socket`. Nothing is bound over the host's own files outside that
//! namespace; the host only gets empty mount points where none existed.
//!
//! `runcmd` is not run: its commands create the state directory, may
//! download the agent, and start it with systemd. The driver creates the
//! directory itself and starts its configured agent binary, playing
//! systemd's part.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nest_cloud_init::{AGENT_CONFIG_PATH, STATE_DIR, WriteFile};

use crate::driver::DriverError;

/// The agent's Docker socket when its configuration names none; the same
/// default as `nest-agent` (`DEFAULT_DOCKER_SOCKET` there).
pub(super) const DEFAULT_GUEST_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The keys of the agent's TOML that decide what it opens; every other key
/// is the agent's business.
#[derive(serde::Deserialize)]
struct AgentFiles {
    ca_certificate: String,
    enrollment_token_file: String,
    #[serde(default)]
    state_dir: Option<String>,
    #[serde(default)]
    docker_socket: Option<String>,
}

/// The user-data, checked and turned into the work the driver does.
#[derive(Debug)]
pub(super) struct GuestPlan {
    files: Vec<WriteFile>,
    /// In-guest directories holding the agent's configuration, CA and token.
    config_dirs: Vec<PathBuf>,
    /// The agent's in-guest state directory.
    state_dir: PathBuf,
    /// The agent's in-guest Docker socket.
    docker_socket: PathBuf,
}

/// One bind mount in the agent's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bind {
    /// What is mounted: a path on the host.
    pub(super) source: PathBuf,
    /// Where the agent sees it: an in-guest path.
    pub(super) target: PathBuf,
}

fn invalid(reason: impl Into<String>) -> DriverError {
    DriverError::invalid("user-data", reason)
}

/// An absolute path below `/` without `..` (so it stays under the root).
fn guest_path(path: &str) -> Result<PathBuf, DriverError> {
    let p = Path::new(path);
    let normal = p.is_absolute()
        && !path.contains('\0')
        && p.components()
            .skip(1)
            .all(|c| matches!(c, Component::Normal(_)))
        && p.components().count() > 1;
    if normal {
        Ok(p.to_owned())
    } else {
        Err(invalid(format!(
            "{path:?} is not an absolute path without `..`"
        )))
    }
}

/// `guest` as a path below the instance's `root` directory.
pub(super) fn under_root(root: &Path, guest: &Path) -> PathBuf {
    root.join(guest.strip_prefix("/").unwrap_or(guest))
}

impl GuestPlan {
    /// Parses and checks user-data; touches nothing.
    pub(super) fn parse(user_data: &str) -> Result<Self, DriverError> {
        let document = nest_cloud_init::parse(user_data).map_err(|e| DriverError::Invalid {
            what: "user-data",
            source: Box::new(e),
        })?;
        for file in &document.write_files {
            guest_path(&file.path)?;
        }
        let config = document
            .write_files
            .iter()
            .find(|f| f.path == AGENT_CONFIG_PATH)
            .ok_or_else(|| invalid(format!("it writes no {AGENT_CONFIG_PATH}")))?;
        let agent: AgentFiles =
            toml::from_str(&config.content).map_err(|e| DriverError::Invalid {
                what: "user-data's agent configuration",
                source: Box::new(e),
            })?;
        let mut config_dirs = BTreeSet::new();
        for file in [
            AGENT_CONFIG_PATH,
            &agent.ca_certificate,
            &agent.enrollment_token_file,
        ] {
            let path = guest_path(file)?;
            if let Some(dir) = path.parent().filter(|d| *d != Path::new("/")) {
                config_dirs.insert(dir.to_owned());
            }
        }
        let state_dir = guest_path(agent.state_dir.as_deref().unwrap_or(STATE_DIR))?;
        let docker_socket = guest_path(
            agent
                .docker_socket
                .as_deref()
                .unwrap_or(DEFAULT_GUEST_DOCKER_SOCKET),
        )?;
        Ok(Self {
            files: document.write_files,
            config_dirs: config_dirs.into_iter().collect(),
            state_dir,
            docker_socket,
        })
    }

    /// Writes every `write_files` entry under `root` with its mode, and
    /// creates the agent's state directory (mode 0700), as `runcmd` would.
    /// Blocking. Files are owned by the service's user (root).
    pub(super) fn write(&self, root: &Path) -> io::Result<()> {
        for file in &self.files {
            let path = under_root(root, Path::new(&file.path));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(file.mode())
                .open(&path)?;
            io::Write::write_all(&mut out, file.content.as_bytes())?;
            // `mode` above is filtered by the umask; this is exact.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode()))?;
        }
        let state = under_root(root, &self.state_dir);
        std::fs::create_dir_all(&state)?;
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700))?;
        for dir in &self.config_dirs {
            std::fs::create_dir_all(under_root(root, dir))?;
        }
        Ok(())
    }

    /// The bind mounts that show the agent its files and `docker_socket`
    /// (the instance's dockerd socket on the host) at their in-guest paths.
    pub(super) fn binds(&self, root: &Path, docker_socket: &Path) -> Vec<Bind> {
        let mut binds: Vec<Bind> = self
            .config_dirs
            .iter()
            .chain([&self.state_dir])
            .map(|dir| Bind {
                source: under_root(root, dir),
                target: dir.clone(),
            })
            .collect();
        binds.push(Bind {
            source: docker_socket.to_owned(),
            target: self.docker_socket.clone(),
        });
        binds
    }

    /// Makes sure every bind target exists on the host, creating empty
    /// directories (and an empty file for the socket) where nothing is.
    /// Never replaces or changes anything that exists, such as the host's
    /// own `/var/run/docker.sock`. Blocking.
    pub(super) fn ensure_mount_points(&self) -> io::Result<()> {
        for dir in self.config_dirs.iter().chain([&self.state_dir]) {
            if !dir.exists() {
                std::fs::create_dir_all(dir)?;
            }
        }
        if !self.docker_socket.exists() {
            if let Some(parent) = self.docker_socket.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&self.docker_socket)
            {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nest_cloud_init::testing::sample_bootstrap;

    fn sample_plan() -> GuestPlan {
        let user_data =
            nest_cloud_init::render(&sample_bootstrap()).unwrap_or_else(|e| panic!("render: {e}"));
        GuestPlan::parse(user_data.as_str()).unwrap_or_else(|e| panic!("plan: {e}"))
    }

    #[test]
    fn rendered_user_data_binds_config_state_and_socket() {
        let plan = sample_plan();
        let binds = plan.binds(Path::new("/i/root"), Path::new("/run/i/docker.sock"));
        let shown: Vec<(&str, &str)> = binds
            .iter()
            .map(|b| {
                (
                    b.source.to_str().unwrap_or_default(),
                    b.target.to_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("/i/root/etc/nest", "/etc/nest"),
                ("/i/root/var/lib/nest-agent", "/var/lib/nest-agent"),
                // The sample sets docker_socket = "/run/docker.sock".
                ("/run/i/docker.sock", "/run/docker.sock"),
            ]
        );
    }

    #[test]
    fn files_land_under_root_with_their_modes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let plan = sample_plan();
        plan.write(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or_else(|e| panic!("{p}: {e}"))
        };
        assert_eq!(mode("etc/nest/agent.toml"), 0o644);
        assert_eq!(mode("etc/nest/enrollment-token"), 0o600);
        assert_eq!(mode("var/lib/nest-agent"), 0o700);
        let token = std::fs::read_to_string(dir.path().join("etc/nest/enrollment-token"))
            .unwrap_or_default();
        assert_eq!(token.trim_end(), nest_cloud_init::testing::SAMPLE_TOKEN);
    }

    #[test]
    fn foreign_user_data_is_refused() {
        assert!(GuestPlan::parse("#!/bin/sh\nrm -rf /\n").is_err());
        assert!(GuestPlan::parse("#cloud-config\n{\"write_files\": [], \"runcmd\": []}").is_err());
    }

    #[test]
    fn only_normalized_absolute_paths_are_accepted() {
        for bad in ["etc/x", "/", "/etc/../x", "/../etc", ""] {
            assert!(guest_path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(guest_path("/etc/nest/agent.toml").is_ok());
    }
}
