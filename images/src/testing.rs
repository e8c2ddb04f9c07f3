//! Fixture archives for tests of this crate and of crates that use it
//! (feature `testing`). Everything here is blocking and in memory; call it
//! from synchronous tests or `spawn_blocking`.

use std::io::{self, Read};

use crate::archive::sha256_hex;

/// Where Debian's `busybox-static` installs its statically linked binary.
pub const BUSYBOX_PATH: &str = "/bin/busybox";

/// A `docker save`-shaped archive built in memory.
#[derive(Debug, Clone)]
pub struct SavedArchive {
    /// The archive's bytes.
    pub tar: Vec<u8>,
    /// `sha256:<hex>` of its image config: the id Docker gives the image.
    pub docker_image_id: String,
}

/// A tar holding regular files with the given paths and contents.
///
/// # Errors
///
/// Only if a path cannot be put in a tar header.
pub fn tar_of(files: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = file_header(data.len(), 0o644)?;
        builder.append_data(&mut header, path, *data)?;
    }
    builder.into_inner()
}

/// A root filesystem tar holding Debian's static busybox as `bin/busybox`,
/// with `bin/sh` and `bin/echo` linking to it: enough for
/// `docker run <image> echo ok`.
///
/// # Errors
///
/// When [`BUSYBOX_PATH`] cannot be read (install `busybox-static`).
pub fn busybox_rootfs_tar() -> io::Result<Vec<u8>> {
    let busybox = std::fs::read(BUSYBOX_PATH).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read {BUSYBOX_PATH} (is busybox-static installed?): {e}"),
        )
    })?;
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    builder.append_data(&mut dir, "bin/", io::empty())?;
    let mut header = file_header(busybox.len(), 0o755)?;
    builder.append_data(&mut header, "bin/busybox", busybox.as_slice())?;
    for applet in ["sh", "echo"] {
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_mode(0o777);
        link.set_size(0);
        builder.append_link(&mut link, format!("bin/{applet}"), "busybox")?;
    }
    builder.into_inner()
}

/// A minimal `docker save` archive: one image with one small layer, tagged
/// with `repo_tags` (which are not validated here, so tests can pass bad
/// ones).
///
/// # Errors
///
/// Only if building the tar fails.
pub fn docker_save_tar(repo_tags: &[&str]) -> io::Result<SavedArchive> {
    let layer = tar_of(&[("hello.txt", b"hello\n")])?;
    let layer_hex = sha256_hex(&layer);
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_hex}")]},
    })
    .to_string();
    let config_hex = sha256_hex(config.as_bytes());
    let config_name = format!("{config_hex}.json");
    let layer_name = format!("{layer_hex}/layer.tar");
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": repo_tags,
        "Layers": [layer_name],
    }])
    .to_string();
    let tar = tar_of(&[
        (&layer_name, &layer),
        (&config_name, config.as_bytes()),
        ("manifest.json", manifest.as_bytes()),
    ])?;
    Ok(SavedArchive {
        tar,
        docker_image_id: format!("sha256:{config_hex}"),
    })
}

/// Every entry of a tar as (path as stored, without a trailing `/`;
/// contents).
///
/// # Errors
///
/// When `bytes` is not a tar.
pub fn read_tar(bytes: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = String::from_utf8_lossy(&entry.path_bytes())
            .trim_end_matches('/')
            .to_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        out.push((path, data));
    }
    Ok(out)
}

fn file_header(len: usize, mode: u32) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(mode);
    header.set_size(u64::try_from(len).map_err(io::Error::other)?);
    Ok(header)
}
