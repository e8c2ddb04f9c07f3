//! The `local` driver's hold on host processes, cgroups and mounts: pid
//! files that survive a service restart, stopping a process with a grace
//! period, and sweeping up whatever an instance's dockerd left behind.
//!
//! A pid file holds the pid *and* the process's start time (field 22 of
//! `/proc/<pid>/stat`), so that a pid reused by an unrelated process after a
//! reboot or a crash is never signalled. Zombies count as stopped: after a
//! service restart the old children are no longer ours to reap.
//!
//! Everything here except [`stop`] is blocking and runs under
//! `spawn_blocking`.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Where cgroup hierarchies are mounted: v2 at the top, v1 one level down.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// How often a stopping process is looked at.
const POLL: Duration = Duration::from_millis(50);
/// How long a process may take to vanish after SIGKILL.
pub(super) const KILL_WAIT: Duration = Duration::from_secs(10);

/// A process as a pid file records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PidRecord {
    /// The process id.
    pub(super) pid: i32,
    /// Clock ticks after boot at which it started.
    pub(super) start_time: u64,
}

impl PidRecord {
    /// The running process `pid`, if it exists.
    pub(super) fn of(pid: u32) -> Option<Self> {
        let pid = i32::try_from(pid).ok()?;
        let (_, start_time) = stat(pid)?;
        Some(Self { pid, start_time })
    }

    /// Whether this very process still runs (and is not a zombie).
    pub(super) fn is_running(&self) -> bool {
        matches!(stat(self.pid), Some((state, start)) if start == self.start_time && !matches!(state, 'Z' | 'X'))
    }

    fn signal(&self, signal: Signal) {
        if self.is_running() {
            // ESRCH only: it exited between the check and the signal.
            let _ = kill(Pid::from_raw(self.pid), signal);
        }
    }
}

/// State letter and start time of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything,
    // so count fields after the last ')'.
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

/// Writes `record` to `path`.
pub(super) fn write_pid_file(path: &Path, record: PidRecord) -> io::Result<()> {
    std::fs::write(path, format!("{} {}\n", record.pid, record.start_time))
}

/// Reads a pid file; `None` when it is missing or malformed (a crash while
/// writing it), which means there is nothing to stop.
pub(super) fn read_pid_file(path: &Path) -> Option<PidRecord> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse::<i32>().ok().filter(|p| *p > 1)?;
    let start_time = words.next()?.parse().ok()?;
    Some(PidRecord { pid, start_time })
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL and waits up to
/// [`KILL_WAIT`]. Returns whether the process is gone.
///
/// # Cancel safety
/// Safe to cancel: the process is then left in whatever state it reached.
pub(super) async fn stop(record: PidRecord, grace: Duration) -> bool {
    record.signal(Signal::SIGTERM);
    if wait_gone(record, grace).await {
        return true;
    }
    tracing::warn!(
        pid = record.pid,
        ?grace,
        "process ignored SIGTERM; sending SIGKILL"
    );
    record.signal(Signal::SIGKILL);
    wait_gone(record, KILL_WAIT).await
}

async fn wait_gone(record: PidRecord, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !record.is_running() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Every running process whose network namespace is the one bound at
/// `netns` (a file under `/var/run/netns`); empty when that file is gone.
pub(super) fn processes_in_netns(netns: &Path) -> Vec<PidRecord> {
    let Ok(target) = std::fs::metadata(netns) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|ns| ns.dev() == target.dev() && ns.ino() == target.ino())
        })
        .filter_map(PidRecord::of)
        .filter(PidRecord::is_running)
        .collect()
}

/// SIGKILLs every process in `netns` and waits (bounded) until none is
/// left. Returns how many are still there.
pub(super) async fn kill_netns_processes(netns: PathBuf) -> usize {
    let deadline = tokio::time::Instant::now() + KILL_WAIT;
    loop {
        let path = netns.clone();
        let left = tokio::task::spawn_blocking(move || processes_in_netns(&path))
            .await
            .unwrap_or_default();
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left.len();
        }
        for record in left {
            record.signal(Signal::SIGKILL);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The cgroup directories named `name` at the top of every hierarchy:
/// `/sys/fs/cgroup/<name>` (v2) and `/sys/fs/cgroup/<controller>/<name>`
/// (v1). The instance's dockerd puts its containers under them
/// (`--cgroup-parent`).
pub(super) fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let root = Path::new(CGROUP_ROOT);
    let mut dirs = vec![root.join(name)];
    if let Ok(entries) = std::fs::read_dir(root) {
        dirs.extend(
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join(name)),
        );
    }
    dirs.retain(|dir| dir.is_dir());
    dirs
}

/// `dir` and every cgroup below it, deepest first.
fn cgroup_tree(dir: &Path) -> Vec<PathBuf> {
    let mut tree = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(Result::ok) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                tree.extend(cgroup_tree(&entry.path()));
            }
        }
    }
    tree.push(dir.to_owned());
    tree
}

/// SIGKILLs every process in the cgroups named `name`, in every hierarchy.
/// Returns how many were signalled.
pub(super) fn kill_cgroups(name: &str) -> usize {
    let mut signalled = 0;
    for dir in cgroup_dirs(name) {
        for group in cgroup_tree(&dir) {
            let Ok(procs) = std::fs::read_to_string(group.join("cgroup.procs")) else {
                continue;
            };
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                if pid > 1 && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                    signalled += 1;
                }
            }
        }
    }
    signalled
}

/// Removes the (empty) cgroups named `name`, deepest first.
pub(super) fn remove_cgroups(name: &str) -> io::Result<()> {
    for dir in cgroup_dirs(name) {
        for group in cgroup_tree(&dir) {
            match std::fs::remove_dir(&group) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Mount points in this process's mount namespace at or below any of
/// `prefixes`, deepest first.
pub(super) fn mounts_under(prefixes: &[&Path]) -> io::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|escaped| PathBuf::from(unescape_mount_path(escaped)))
        .filter(|mount| prefixes.iter().any(|prefix| mount.starts_with(prefix)))
        .collect();
    found.sort_by_key(|mount| std::cmp::Reverse(mount.components().count()));
    found.dedup();
    Ok(found)
}

/// Detaches every mount at or below `prefixes` (what dockerd left when it
/// was killed: shm, netns bind mounts).
pub(super) fn unmount_under(prefixes: &[&Path]) -> io::Result<()> {
    for mount in mounts_under(prefixes)? {
        match nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH) {
            // EINVAL: already detached along with its parent.
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
    Ok(())
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape_mount_path(escaped: &str) -> String {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes.get(i) == Some(&b'\\'))
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.extend(bytes.get(i));
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_running_and_a_wrong_start_time_is_not() {
        let me = PidRecord::of(std::process::id()).unwrap_or_else(|| panic!("no /proc/self"));
        assert!(me.is_running());
        let impostor = PidRecord {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!impostor.is_running(), "a reused pid must not match");
    }

    #[test]
    fn pid_files_round_trip_and_garbage_means_nothing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("x.pid");
        let record = PidRecord {
            pid: 4242,
            start_time: 99,
        };
        write_pid_file(&path, record).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_pid_file(&path), Some(record));
        std::fs::write(&path, "1 5\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_pid_file(&path), None, "never pid 1");
        std::fs::write(&path, "12").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_pid_file(&path), None);
        assert_eq!(read_pid_file(&dir.path().join("missing")), None);
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mount_path(r"/a\040b/c\\d"), r"/a b/c\\d");
        assert_eq!(unescape_mount_path(r"/x\011"), "/x\t");
        assert_eq!(unescape_mount_path(r"/trailing\"), r"/trailing\");
    }
}
