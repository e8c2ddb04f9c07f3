//! The tar work behind an upload: tell a `docker save` archive from a plain
//! root filesystem, check that the former is one `docker load` accepts, and
//! wrap the latter into such an archive.
//!
//! Everything here is blocking file and tar I/O on files the store already
//! wrote; callers run it inside `spawn_blocking`. Nothing here decides where
//! files live or when they become visible: that is the store's job.
//!
//! The docker archive written for a root filesystem is the "v1.2" layout
//! that `docker save` has written since Docker 1.10 (moby
//! `image/tarexport`), reduced to what `docker load` reads:
//!
//! ```text
//! <layer-sha256>/            directory entry
//! <layer-sha256>/layer.tar   the uploaded tar, byte for byte
//! <config-sha256>.json       image config: amd64/linux, Cmd ["/bin/sh"],
//!                            rootfs.diff_ids ["sha256:<layer-sha256>"]
//! manifest.json              [{"Config", "RepoTags": ["nest/image:<uuid>"], "Layers"}]
//! ```
//!
//! The legacy per-layer `VERSION` and `json` files and the `repositories`
//! file are left out: `docker load` reads them only when `manifest.json` is
//! missing.
//!
//! An upload is a `docker save` archive exactly when it has a top-level
//! `manifest.json`, which is also how `docker load` decides. A root
//! filesystem that has its own `/manifest.json` is therefore refused unless
//! that file is a valid docker manifest; such an image has to be uploaded as
//! a `docker save` archive.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ErrorKind;
use crate::reference::{ReferenceError, RegistryReference};

/// Repository under which converted root filesystems are tagged; the tag is
/// the image's uuid, so the agent can run `nest/image:<uuid>` after loading.
pub const CONVERTED_REPOSITORY: &str = "nest/image";

/// Largest `manifest.json` read, in bytes; real ones are a few hundred.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Largest image config read, in bytes; real ones are a few kilobytes, more
/// with long histories.
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// Command of a converted root filesystem when the container names none.
const DEFAULT_CMD: &str = "/bin/sh";

/// Docker's default `PATH` (moby `oci.DefaultPathEnv`), written into the
/// config so that `docker run <image> echo ok` finds `echo`.
const DEFAULT_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const MANIFEST_NAME: &str = "manifest.json";
const LAYER_FILE_NAME: &str = "layer.tar";
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

/// How much of an upload is read to recognise a compressed stream.
const MAGIC_LEN: usize = 6;

/// Why an upload is not a usable image archive, or converting it failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The upload holds no tar entries.
    #[error("the upload is empty: expected a docker save archive or a root filesystem tar")]
    Empty,
    /// The upload is a compressed stream; only plain tar is accepted.
    #[error("the upload is {format}-compressed; upload an uncompressed tar")]
    Compressed {
        /// The compression recognised (`gzip`, `bzip2`, `xz`, `zstd`).
        format: &'static str,
    },
    /// The upload does not parse as a tar archive.
    #[error("the upload is not a valid tar archive")]
    NotATar(#[source] io::Error),
    /// `manifest.json` is larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest.json is larger than {MAX_MANIFEST_BYTES} bytes")]
    ManifestTooLarge,
    /// `manifest.json` is not a `docker save` manifest.
    #[error("manifest.json is not a docker save manifest")]
    BadManifest(#[source] serde_json::Error),
    /// `manifest.json` lists no image.
    #[error("manifest.json lists no image")]
    EmptyManifest,
    /// The manifest names a path that is absolute or climbs out with `..`.
    #[error("manifest.json names `{path}`, which is not a plain relative path")]
    UnsafePath {
        /// The path as the manifest wrote it.
        path: String,
    },
    /// The manifest names a file the archive does not hold.
    #[error("manifest.json names `{path}`, which is not in the archive")]
    MissingEntry {
        /// The path as the manifest wrote it.
        path: String,
    },
    /// A `RepoTags` entry is not a valid reference.
    #[error("manifest.json has an invalid RepoTag `{tag}`")]
    BadRepoTag {
        /// The tag as written.
        tag: String,
        /// Why it does not parse.
        #[source]
        source: ReferenceError,
    },
    /// A `RepoTags` entry is not of the form `name:tag`.
    #[error("manifest.json RepoTag `{tag}` must have the form name:tag")]
    RepoTagWithoutTag {
        /// The tag as written.
        tag: String,
    },
    /// An image config is larger than [`MAX_CONFIG_BYTES`].
    #[error("image config `{path}` is larger than {MAX_CONFIG_BYTES} bytes")]
    ConfigTooLarge {
        /// The config's path in the archive.
        path: String,
    },
    /// An image config is not valid, or has no `rootfs`.
    #[error("image config `{path}` is not a valid image config")]
    BadConfig {
        /// The config's path in the archive.
        path: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// The config's `rootfs.diff_ids` and the manifest's `Layers` disagree,
    /// which `docker load` refuses.
    #[error("image config `{path}` lists {diff_ids} layers but manifest.json lists {layers}")]
    LayerCountMismatch {
        /// The config's path in the archive.
        path: String,
        /// Number of `rootfs.diff_ids` in the config.
        diff_ids: usize,
        /// Number of `Layers` in the manifest entry.
        layers: usize,
    },
    /// Reading the stored upload or writing the converted archive failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done (`read`, `write`, …).
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// An image config or manifest cannot be serialized (a bug).
    #[error("cannot encode the generated image metadata")]
    Encode(#[source] serde_json::Error),
}

impl ArchiveError {
    /// How a caller should see this error: everything about the upload's
    /// content is the uploader's mistake; file system failures are ours.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { .. } | Self::Encode(_) => ErrorKind::Internal,
            _ => ErrorKind::Invalid,
        }
    }
}

/// What an upload turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Upload {
    /// A `docker save` archive, to be stored as is.
    DockerArchive {
        /// Every `RepoTags` entry of every manifest entry.
        repo_tags: Vec<String>,
        /// `sha256:<hex>` of each manifest entry's config: Docker's image id.
        docker_image_ids: Vec<String>,
    },
    /// A tar without `manifest.json`, taken as a root filesystem.
    RootFilesystem,
}

/// The docker archive written for a root filesystem.
#[derive(Debug)]
pub(crate) struct Converted {
    /// Size of the archive in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the archive, lowercase hex.
    pub sha256: String,
    /// `sha256:<hex>` of the image config: the id Docker gives the image.
    pub docker_image_id: String,
}

/// One entry of `manifest.json`, spelled as moby's `tarexport.manifestItem`.
#[derive(Debug, Serialize, Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    /// `null` for an image saved by id.
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// The part of an image config that `docker load` checks against the
/// manifest.
#[derive(Debug, Deserialize)]
struct ConfigRootFs {
    rootfs: RootFs,
}

/// `rootfs` of an image config (moby `image.RootFS`).
#[derive(Debug, Serialize, Deserialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

/// The image config written for a root filesystem (OCI image config, with
/// Docker's capitalised `config` fields).
#[derive(Debug, Serialize)]
struct ImageConfig<'a> {
    architecture: &'static str,
    os: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    config: RunConfig,
    rootfs: RootFs,
    history: [History<'a>; 1],
}

#[derive(Debug, Serialize)]
struct RunConfig {
    #[serde(rename = "Env")]
    env: [&'static str; 1],
    #[serde(rename = "Cmd")]
    cmd: [&'static str; 1],
}

#[derive(Debug, Serialize)]
struct History<'a> {
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    created_by: &'a str,
}

/// Reads a stored upload and says what it is.
///
/// # Errors
///
/// [`ArchiveError`] of kind Invalid when the upload is not a tar, is
/// compressed or empty, or is a `docker save` archive that `docker load`
/// would refuse (bad manifest, missing config or layer, layer count
/// mismatch, bad tag).
pub(crate) fn inspect(path: &Path) -> Result<Upload, ArchiveError> {
    let mut file = File::open(path).map_err(|source| io_error("open", path, source))?;
    refuse_compressed(&mut file, path)?;

    // Errors while walking the tar are nearly always malformed input: the
    // file is one the store has just written and synced.
    let mut present = HashSet::new();
    let mut manifest = None;
    let mut entries_seen = 0_usize;
    let mut archive = tar::Archive::new(&mut file);
    for entry in archive.entries_with_seek().map_err(ArchiveError::NotATar)? {
        let mut entry = entry.map_err(ArchiveError::NotATar)?;
        entries_seen += 1;
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let Some(name) = normalize(&entry.path().map_err(ArchiveError::NotATar)?) else {
            continue;
        };
        if name == MANIFEST_NAME {
            // A later copy wins, as when `docker load` extracts the archive.
            manifest = Some(
                read_limited(&mut entry, MAX_MANIFEST_BYTES)
                    .map_err(ArchiveError::NotATar)?
                    .ok_or(ArchiveError::ManifestTooLarge)?,
            );
        }
        present.insert(name);
    }
    if entries_seen == 0 {
        return Err(ArchiveError::Empty);
    }
    let Some(manifest) = manifest else {
        return Ok(Upload::RootFilesystem);
    };

    let entries: Vec<ManifestEntry> =
        serde_json::from_slice(&manifest).map_err(ArchiveError::BadManifest)?;
    if entries.is_empty() {
        return Err(ArchiveError::EmptyManifest);
    }
    let mut repo_tags = Vec::new();
    let mut config_names = Vec::with_capacity(entries.len());
    for entry in &entries {
        config_names.push(require_entry(&entry.config, &present)?);
        for layer in &entry.layers {
            require_entry(layer, &present)?;
        }
        for tag in entry.repo_tags.iter().flatten() {
            validate_repo_tag(tag)?;
            repo_tags.push(tag.clone());
        }
    }

    let configs = read_entries(&mut file, path, &config_names.iter().cloned().collect())?;
    let mut docker_image_ids = Vec::with_capacity(entries.len());
    for (entry, name) in entries.iter().zip(&config_names) {
        let bytes = configs
            .get(name)
            .ok_or_else(|| ArchiveError::MissingEntry {
                path: entry.config.clone(),
            })?;
        let config: ConfigRootFs =
            serde_json::from_slice(bytes).map_err(|source| ArchiveError::BadConfig {
                path: entry.config.clone(),
                source,
            })?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(ArchiveError::LayerCountMismatch {
                path: entry.config.clone(),
                diff_ids: config.rootfs.diff_ids.len(),
                layers: entry.layers.len(),
            });
        }
        docker_image_ids.push(format!("sha256:{}", sha256_hex(bytes)));
    }
    Ok(Upload::DockerArchive {
        repo_tags,
        docker_image_ids,
    })
}

/// Writes to `out` (which must not exist) a docker archive whose single
/// layer is the root filesystem tar at `layer`, tagged `repo_tag`.
///
/// `layer_sha256` is the SHA-256 of `layer` in lowercase hex, computed while
/// the upload was received; it becomes the layer's diff id, which `docker
/// load` checks against the bytes.
///
/// # Errors
///
/// [`ArchiveError::Io`] when reading the layer or writing or syncing `out`
/// fails.
pub(crate) fn write_docker_archive(
    layer: &Path,
    layer_sha256: &str,
    repo_tag: &str,
    created: OffsetDateTime,
    out: &Path,
) -> Result<Converted, ArchiveError> {
    let config = ImageConfig {
        architecture: "amd64",
        os: "linux",
        created,
        config: RunConfig {
            env: [DEFAULT_PATH_ENV],
            cmd: [DEFAULT_CMD],
        },
        rootfs: RootFs {
            kind: "layers".to_owned(),
            diff_ids: vec![format!("sha256:{layer_sha256}")],
        },
        history: [History {
            created,
            created_by: "nest: imported root filesystem",
        }],
    };
    let config = serde_json::to_vec(&config).map_err(ArchiveError::Encode)?;
    let config_sha256 = sha256_hex(&config);
    let config_name = format!("{config_sha256}.json");
    let layer_name = format!("{layer_sha256}/{LAYER_FILE_NAME}");
    let manifest = serde_json::to_vec(&[ManifestEntry {
        config: config_name.clone(),
        repo_tags: Some(vec![repo_tag.to_owned()]),
        layers: vec![layer_name.clone()],
    }])
    .map_err(ArchiveError::Encode)?;

    let layer_file = File::open(layer).map_err(|source| io_error("open", layer, source))?;
    let layer_size = layer_file
        .metadata()
        .map_err(|source| io_error("stat", layer, source))?
        .len();
    let mtime = u64::try_from(created.unix_timestamp()).unwrap_or(0);

    let out_file = File::options()
        .write(true)
        .create_new(true)
        .mode(crate::file_store::PRIVATE_FILE_MODE)
        .open(out)
        .map_err(|source| io_error("create", out, source))?;
    let write = |source| io_error("write", out, source);
    let mut builder = tar::Builder::new(HashingWriter::new(BufWriter::new(out_file)));

    let mut header = new_header(tar::EntryType::Directory, DIR_MODE, 0, mtime);
    builder
        .append_data(&mut header, format!("{layer_sha256}/"), io::empty())
        .map_err(write)?;
    let mut header = new_header(tar::EntryType::Regular, FILE_MODE, layer_size, mtime);
    // `take` keeps the entry exactly as long as its header says, even if
    // the file changed under us.
    builder
        .append_data(&mut header, &layer_name, layer_file.take(layer_size))
        .map_err(write)?;
    for (name, bytes) in [(config_name.as_str(), &config), (MANIFEST_NAME, &manifest)] {
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let mut header = new_header(tar::EntryType::Regular, FILE_MODE, size, mtime);
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .map_err(write)?;
    }

    let mut hashing = builder.into_inner().map_err(write)?;
    hashing.flush().map_err(write)?;
    let HashingWriter {
        inner,
        digest,
        written,
    } = hashing;
    let out_file = inner.into_inner().map_err(|e| write(e.into_error()))?;
    out_file
        .sync_all()
        .map_err(|source| io_error("sync", out, source))?;
    Ok(Converted {
        size_bytes: written,
        sha256: hex(digest.finish().as_ref()),
        docker_image_id: format!("sha256:{config_sha256}"),
    })
}

/// SHA-256 of `data`, lowercase hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> ArchiveError {
    ArchiveError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn new_header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// Refuses gzip, bzip2, xz and zstd streams with a message that says so,
/// instead of a puzzling "not a tar"; then rewinds.
fn refuse_compressed(file: &mut File, path: &Path) -> Result<(), ArchiveError> {
    let mut magic = [0_u8; MAGIC_LEN];
    let mut len = 0;
    while len < MAGIC_LEN {
        let rest = magic.get_mut(len..).unwrap_or_default();
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(io_error("read", path, source)),
        }
    }
    let format = match magic {
        [0x1f, 0x8b, ..] => Some("gzip"),
        [b'B', b'Z', b'h', ..] => Some("bzip2"),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00] => Some("xz"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zstd"),
        _ => None,
    };
    if let Some(format) = format {
        return Err(ArchiveError::Compressed { format });
    }
    file.rewind()
        .map_err(|source| io_error("rewind", path, source))
}

/// A tar path as a plain relative `a/b` string, with `./` dropped; `None`
/// for absolute paths, `..`, empty and non-UTF-8 paths, which no manifest
/// can name.
fn normalize(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(part) => parts.push(part.to_str()?),
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Checks that a path named by the manifest is safe and present; returns
/// its normalized form.
fn require_entry(path: &str, present: &HashSet<String>) -> Result<String, ArchiveError> {
    let name = normalize(Path::new(path)).ok_or_else(|| ArchiveError::UnsafePath {
        path: path.to_owned(),
    })?;
    if present.contains(&name) {
        Ok(name)
    } else {
        Err(ArchiveError::MissingEntry {
            path: path.to_owned(),
        })
    }
}

/// `docker load` tags with each `RepoTags` entry, which must be `name:tag`.
fn validate_repo_tag(tag: &str) -> Result<(), ArchiveError> {
    let reference = RegistryReference::parse(tag).map_err(|source| ArchiveError::BadRepoTag {
        tag: tag.to_owned(),
        source,
    })?;
    if reference.tag().is_none() || reference.digest().is_some() {
        return Err(ArchiveError::RepoTagWithoutTag {
            tag: tag.to_owned(),
        });
    }
    Ok(())
}

/// Reads the named entries (up to [`MAX_CONFIG_BYTES`] each) in a second
/// pass, seeking over everything else.
fn read_entries(
    file: &mut File,
    path: &Path,
    wanted: &HashSet<String>,
) -> Result<HashMap<String, Vec<u8>>, ArchiveError> {
    file.rewind()
        .map_err(|source| io_error("rewind", path, source))?;
    let mut found = HashMap::new();
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries_with_seek().map_err(ArchiveError::NotATar)? {
        let mut entry = entry.map_err(ArchiveError::NotATar)?;
        let Some(name) = normalize(&entry.path().map_err(ArchiveError::NotATar)?) else {
            continue;
        };
        if !wanted.contains(&name) || entry.header().entry_type().is_dir() {
            continue;
        }
        let bytes = read_limited(&mut entry, MAX_CONFIG_BYTES)
            .map_err(ArchiveError::NotATar)?
            .ok_or_else(|| ArchiveError::ConfigTooLarge { path: name.clone() })?;
        found.insert(name, bytes);
    }
    Ok(found)
}

/// Reads all of `reader` if it holds at most `limit` bytes.
fn read_limited(reader: &mut impl Read, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    Ok((len <= limit).then_some(bytes))
}

/// Hashes and counts what passes through, so the archive's digest costs no
/// second read.
struct HashingWriter<W> {
    inner: W,
    digest: digest::Context,
    written: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            digest: digest::Context::new(&digest::SHA256),
            written: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let done = buf.get(..n).unwrap_or(buf);
        self.digest.update(done);
        self.written += u64::try_from(done.len()).unwrap_or(u64::MAX);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::testing;

    fn write_temp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn inspect_bytes(bytes: &[u8]) -> Result<Upload, ArchiveError> {
        let dir = tempfile::tempdir().unwrap();
        inspect(&write_temp(&dir, "upload", bytes))
    }

    #[test]
    fn tar_without_manifest_is_a_root_filesystem() {
        let tar = testing::tar_of(&[("./etc/hostname", b"x"), ("bin/true", b"")]).unwrap();
        assert_eq!(inspect_bytes(&tar).unwrap(), Upload::RootFilesystem);
    }

    #[test]
    fn docker_save_archive_is_recognised_with_tags_and_ids() {
        let archive = testing::docker_save_tar(&["example.com/a:1", "b:latest"]).unwrap();
        let Upload::DockerArchive {
            repo_tags,
            docker_image_ids,
        } = inspect_bytes(&archive.tar).unwrap()
        else {
            panic!("expected a docker archive")
        };
        assert_eq!(repo_tags, ["example.com/a:1", "b:latest"]);
        assert_eq!(docker_image_ids, [archive.docker_image_id]);
    }

    #[test]
    fn manifest_naming_a_missing_layer_is_refused() {
        let tar = testing::tar_of(&[
            (
                "manifest.json",
                br#"[{"Config":"c.json","RepoTags":null,"Layers":["l/layer.tar"]}]"#,
            ),
            (
                "c.json",
                br#"{"rootfs":{"type":"layers","diff_ids":["sha256:00"]}}"#,
            ),
        ])
        .unwrap();
        let err = inspect_bytes(&tar).unwrap_err();
        assert!(matches!(&err, ArchiveError::MissingEntry { path } if path == "l/layer.tar"));
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }

    #[test]
    fn manifest_naming_a_missing_config_is_refused() {
        let tar = testing::tar_of(&[(
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":[],"Layers":[]}]"#,
        )])
        .unwrap();
        assert!(matches!(
            inspect_bytes(&tar).unwrap_err(),
            ArchiveError::MissingEntry { .. }
        ));
    }

    #[test]
    fn manifest_with_unsafe_paths_is_refused() {
        for config in ["../c.json", "/c.json"] {
            let manifest = format!(r#"[{{"Config":"{config}","Layers":[]}}]"#);
            let tar = testing::tar_of(&[("manifest.json", manifest.as_bytes())]).unwrap();
            assert!(
                matches!(
                    inspect_bytes(&tar).unwrap_err(),
                    ArchiveError::UnsafePath { .. }
                ),
                "{config}"
            );
        }
    }

    #[test]
    fn layer_count_mismatch_is_refused() {
        let tar = testing::tar_of(&[
            (
                "manifest.json",
                br#"[{"Config":"c.json","Layers":["l/layer.tar"]}]"#,
            ),
            ("c.json", br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#),
            ("l/layer.tar", b""),
        ])
        .unwrap();
        assert!(matches!(
            inspect_bytes(&tar).unwrap_err(),
            ArchiveError::LayerCountMismatch {
                diff_ids: 0,
                layers: 1,
                ..
            }
        ));
    }

    #[test]
    fn config_without_rootfs_is_refused() {
        let tar = testing::tar_of(&[
            ("manifest.json", br#"[{"Config":"c.json","Layers":[]}]"#),
            ("c.json", br#"{"architecture":"amd64"}"#),
        ])
        .unwrap();
        assert!(matches!(
            inspect_bytes(&tar).unwrap_err(),
            ArchiveError::BadConfig { .. }
        ));
    }

    #[test]
    fn bad_manifests_are_refused() {
        for (manifest, want) in [
            (&b"not json"[..], "BadManifest"),
            (b"{}", "BadManifest"),
            (b"[]", "EmptyManifest"),
        ] {
            let tar = testing::tar_of(&[("manifest.json", manifest)]).unwrap();
            let err = inspect_bytes(&tar).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{err:?}");
        }
    }

    #[test]
    fn bad_repo_tags_are_refused() {
        for (tag, untagged) in [("UPPER:1", false), ("a", true), ("a b:1", false)] {
            let archive = testing::docker_save_tar(&[tag]).unwrap();
            match inspect_bytes(&archive.tar).unwrap_err() {
                ArchiveError::RepoTagWithoutTag { .. } => assert!(untagged, "{tag}"),
                ArchiveError::BadRepoTag { .. } => assert!(!untagged, "{tag}"),
                other => panic!("{tag}: {other:?}"),
            }
        }
    }

    #[test]
    fn non_tar_empty_and_compressed_uploads_are_refused() {
        assert!(matches!(
            inspect_bytes(b"").unwrap_err(),
            ArchiveError::Empty
        ));
        assert!(matches!(
            inspect_bytes(&[0; 1024]).unwrap_err(),
            ArchiveError::Empty
        ));
        let text = "this is not a tar archive\n".repeat(100);
        assert!(matches!(
            inspect_bytes(text.as_bytes()).unwrap_err(),
            ArchiveError::NotATar(_)
        ));
        assert!(matches!(
            inspect_bytes(b"short").unwrap_err(),
            ArchiveError::NotATar(_)
        ));
        let gzip = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0];
        let err = inspect_bytes(&gzip).unwrap_err();
        assert!(matches!(err, ArchiveError::Compressed { format: "gzip" }));
        assert!(err.to_string().contains("uncompressed"));
    }

    #[test]
    fn oversized_manifest_is_refused() {
        let big = vec![b' '; usize::try_from(MAX_MANIFEST_BYTES).unwrap() + 1];
        let tar = testing::tar_of(&[("manifest.json", &big)]).unwrap();
        assert!(matches!(
            inspect_bytes(&tar).unwrap_err(),
            ArchiveError::ManifestTooLarge
        ));
    }

    #[test]
    fn converted_archive_is_a_valid_docker_archive() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = testing::tar_of(&[("bin/true", b"")]).unwrap();
        let layer = write_temp(&dir, "layer", &rootfs);
        let out = dir.path().join("out.tar");
        let layer_sha = sha256_hex(&rootfs);
        let converted = write_docker_archive(
            &layer,
            &layer_sha,
            "nest/image:x",
            OffsetDateTime::UNIX_EPOCH,
            &out,
        )
        .unwrap();

        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(converted.size_bytes, u64::try_from(bytes.len()).unwrap());
        assert_eq!(converted.sha256, sha256_hex(&bytes));
        // Its own inspection accepts it, with the tag and id it was given.
        assert_eq!(
            inspect(&out).unwrap(),
            Upload::DockerArchive {
                repo_tags: vec!["nest/image:x".into()],
                docker_image_ids: vec![converted.docker_image_id.clone()],
            }
        );

        let files = testing::read_tar(&bytes).unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let config_hex = converted.docker_image_id.trim_start_matches("sha256:");
        let layer_name = format!("{layer_sha}/layer.tar");
        let config_name = format!("{config_hex}.json");
        assert_eq!(
            names,
            [
                layer_sha.as_str(),
                &layer_name,
                &config_name,
                "manifest.json"
            ]
        );
        let file = |name: &str| &files.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(file(&layer_name), &rootfs);
        let config: serde_json::Value = serde_json::from_slice(file(&config_name)).unwrap();
        assert_eq!(sha256_hex(file(&config_name)), config_hex);
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/sh"]));
        assert_eq!(
            config["rootfs"],
            serde_json::json!({"type": "layers", "diff_ids": [format!("sha256:{layer_sha}")]})
        );
        let manifest: serde_json::Value = serde_json::from_slice(file("manifest.json")).unwrap();
        assert_eq!(
            manifest,
            serde_json::json!([{
                "Config": config_name,
                "RepoTags": ["nest/image:x"],
                "Layers": [layer_name],
            }])
        );
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab]), "000fab");
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
