//! The Docker engine side of the tests: the local test image (no registry
//! is reachable, so it is built from Debian's busybox-static) and direct
//! checks of what the engine really has, independent of Nest.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// The engine's socket.
pub const SOCKET: &str = "/var/run/docker.sock";
/// The image every test container runs.
pub const TEST_IMAGE: &str = "nest-test/busybox:1";
/// Applets linked into the test image.
const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "ls", "top", "ps", "id", "env", "hostname", "true", "false",
    "yes", "head", "wc", "nc", "httpd", "printf", "seq", "tr", "dd",
];

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run docker {args:?}: {e} (is the docker CLI installed?)"))
}

/// Writes the test image's root filesystem (Debian's static busybox and
/// its applet links) as a plain tar at `tar`: what a tenant uploads when
/// it has no Docker archive.
pub fn write_test_rootfs(tar: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: install Debian's busybox-static"
    );
    let root = super::TempDir::new("nest-rootfs");
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).expect("rootfs bin");
    std::fs::create_dir_all(root.path().join("tmp")).expect("rootfs tmp");
    std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet link");
    }
    let status = Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .arg("-cf")
        .arg(tar)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar of the test rootfs failed");
}

/// Builds and imports the test image unless the engine has it.
///
/// # Panics
/// When the engine or `/bin/busybox` (Debian's busybox-static) is missing.
pub fn ensure_test_image() {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *built {
        return;
    }
    if docker(&["image", "inspect", TEST_IMAGE]).status.success() {
        *built = true;
        return;
    }
    let dir = super::TempDir::new("nest-rootfs-tar");
    let tar = dir.path().join("rootfs.tar");
    write_test_rootfs(&tar);
    let out = docker(&[
        "import",
        "--change",
        "ENV PATH=/bin",
        "--change",
        "CMD [\"/bin/sh\"]",
        tar.to_str().expect("utf-8 path"),
        TEST_IMAGE,
    ]);
    assert!(
        out.status.success(),
        "docker import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    *built = true;
}

/// A field of `docker inspect` for a container, e.g. `{{.State.StartedAt}}`.
pub fn inspect(container: &str, format: &str) -> Option<String> {
    let out = docker(&["inspect", "--format", format, container]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Removes every container labelled with `instance` when dropped, so a
/// failing test leaves nothing behind.
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for instance in &self.0 {
            let out = docker(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=nest.instance.id={instance}"),
            ]);
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = docker(&["rm", "-f", id]);
            }
        }
    }
}
