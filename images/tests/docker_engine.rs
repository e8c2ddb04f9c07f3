//! ENGINE TESTS: stored images against the real Docker engine.
//!
//! They drive the `docker` CLI against the engine on this machine
//! (`/var/run/docker.sock`, Debian's docker.io) and need Debian's
//! `busybox-static`. They FAIL, never skip, when either is missing: a green
//! run must mean the archives really load. Every image a test loads is
//! removed when the test ends, even on panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nest_images::{FileImageStore, FileStoreConfig, ImageRecord, ImageStore, testing};

/// Longest any one docker command may take (loading busybox on vfs takes a
/// second or two).
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);

/// How often a running docker command is checked for exit.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Runs `docker args…` to completion within [`DOCKER_TIMEOUT`]; returns
/// stdout, or panics with stderr on failure.
fn docker(args: &[&str]) -> String {
    try_docker(args).unwrap_or_else(|e| panic!("docker {}: {e}", args.join(" ")))
}

fn try_docker(args: &[&str]) -> Result<String, String> {
    let mut child = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the docker CLI: {e}"))?;
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let status = wait_with_deadline(&mut child)?;
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!("{status}: {stderr}"))
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut out = String::new();
        let _ = pipe.read_to_string(&mut out);
        out
    })
}

fn wait_with_deadline(child: &mut Child) -> Result<std::process::ExitStatus, String> {
    let deadline = Instant::now() + DOCKER_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {DOCKER_TIMEOUT:?}"));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Fails the test (does not skip it) when no engine answers.
fn require_docker() {
    if let Err(e) = try_docker(&["version", "--format", "{{.Server.Version}}"]) {
        panic!("engine tests need a running Docker engine and the docker CLI: {e}");
    }
}

/// Removes the named images when dropped.
struct LoadedImages(Vec<String>);

impl Drop for LoadedImages {
    fn drop(&mut self) {
        for image in &self.0 {
            // Best effort: the image may never have been loaded.
            let _ = try_docker(&["rmi", "--force", image]);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn archive_path(store: &FileImageStore, record: &ImageRecord) -> String {
    store
        .dir()
        .join(format!("{}.tar", record.id))
        .display()
        .to_string()
}

fn stored_bytes(
    rt: &tokio::runtime::Runtime,
    store: &FileImageStore,
    record: &ImageRecord,
) -> Vec<u8> {
    rt.block_on(async {
        use tokio::io::AsyncReadExt;
        let (_, mut file) = store.open(record.id).await.unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await.unwrap();
        bytes
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn put_busybox(rt: &tokio::runtime::Runtime, store: &FileImageStore) -> ImageRecord {
    let rootfs = testing::busybox_rootfs_tar().expect("busybox root filesystem");
    rt.block_on(store.put(Some("busybox".into()), rootfs.as_slice()))
        .unwrap()
}

fn open_store(rt: &tokio::runtime::Runtime, dir: &Path) -> FileImageStore {
    rt.block_on(FileImageStore::open(FileStoreConfig::new(dir)))
        .unwrap()
}

#[test]
fn engine_converted_root_filesystem_loads_and_runs() {
    require_docker();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&rt, dir.path());

    let record = put_busybox(&rt, &store);
    let tag = format!("nest/image:{}", record.id);
    assert_eq!(record.repo_tags, std::slice::from_ref(&tag));
    let _cleanup = LoadedImages(vec![tag.clone()]);

    let loaded = docker(&["load", "-i", &archive_path(&store, &record)]);
    assert!(loaded.contains(&format!("Loaded image: {tag}")), "{loaded}");
    // Docker's image id is the digest of the config Nest wrote.
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    assert_eq!(id.trim(), record.docker_image_ids[0]);
    let config = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Os}}/{{.Architecture}} {{json .Config.Cmd}}",
        &tag,
    ]);
    assert_eq!(config.trim(), r#"linux/amd64 ["/bin/sh"]"#);

    let out = docker(&["run", "--rm", &tag, "echo", "ok"]);
    assert_eq!(out, "ok\n");
    // The default command is the shell.
    let out = docker(&["run", "--rm", &tag, "sh", "-c", "echo from-sh"]);
    assert_eq!(out, "from-sh\n");
}

#[test]
fn engine_docker_save_archive_is_stored_as_is_and_loads() {
    require_docker();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&rt, dir.path());

    // Make a real image in the engine, then `docker save` it under a tag of
    // its own.
    let converted = put_busybox(&rt, &store);
    let converted_tag = format!("nest/image:{}", converted.id);
    let saved_tag = format!("nest-test/saved:{}", converted.id);
    let _cleanup = LoadedImages(vec![converted_tag.clone(), saved_tag.clone()]);
    docker(&["load", "-i", &archive_path(&store, &converted)]);
    docker(&["tag", &converted_tag, &saved_tag]);
    let saved_path = dir.path().join("saved.tar").display().to_string();
    docker(&["save", "-o", &saved_path, &saved_tag]);
    docker(&["rmi", &converted_tag, &saved_tag]);
    let saved = std::fs::read(&saved_path).unwrap();

    let record = rt
        .block_on(store.put(Some("saved".into()), saved.as_slice()))
        .unwrap();
    assert_eq!(record.repo_tags, std::slice::from_ref(&saved_tag));
    assert_eq!(record.sha256, sha256_hex(&saved));
    assert_eq!(stored_bytes(&rt, &store, &record), saved, "stored as is");
    assert_eq!(record.docker_image_ids, converted.docker_image_ids);

    let loaded = docker(&["load", "-i", &archive_path(&store, &record)]);
    assert!(
        loaded.contains(&format!("Loaded image: {saved_tag}")),
        "{loaded}"
    );
    let out = docker(&["run", "--rm", &saved_tag, "echo", "ok"]);
    assert_eq!(out, "ok\n");
}
