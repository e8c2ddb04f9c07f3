//! The embedded image store: held images as files in one directory under
//! the service's state directory, for one machine, development and CI
//! (production will put images in Glance behind the same trait).
//!
//! Each image is `<uuid>.tar` (a `docker load`-able archive) plus
//! `<uuid>.json` (its [`ImageRecord`]); the record is the commit point. An
//! upload streams into a hidden temp file in the same directory, is hashed
//! and size-checked as it arrives, synced, checked (and converted if it is a
//! root filesystem), and only then renamed into place, archive first and
//! record last. A crash at any point therefore leaves at worst hidden temp
//! files or an archive without a record, which [`FileImageStore::open`]
//! removes. One store (one process) owns a directory.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::archive::{self, CONVERTED_REPOSITORY, Upload, hex};
use crate::store::{ImageFormat, ImageId, ImageRecord, ImageStore, StoreError};

/// Largest upload accepted by default: 8 GiB, in bytes.
pub const DEFAULT_MAX_IMAGE_SIZE: u64 = 8 << 30;

/// Longest image name, in characters; Glance's limit for image names.
pub const MAX_NAME_CHARS: usize = 255;
/// Mode of the store's directory: the service's user only.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every file the store writes: images hold tenants' data.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// How much of an upload is read, hashed and written at a time: large enough
/// to keep syscalls few, small enough that hashing one chunk on the async
/// runtime takes microseconds.
const UPLOAD_CHUNK_BYTES: usize = 64 * 1024;

/// Temp files start with `.` and end with this, so no listing or lookup
/// ever sees one and [`FileImageStore::open`] can find them all.
const TEMP_SUFFIX: &str = ".tmp";
const ARCHIVE_EXTENSION: &str = "tar";
const RECORD_EXTENSION: &str = "json";

/// Settings of the file-backed image store.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStoreConfig {
    /// Directory holding the images; created if missing. Required.
    pub dir: PathBuf,
    /// Largest upload accepted, in bytes. Default: [`DEFAULT_MAX_IMAGE_SIZE`]
    /// (8 GiB).
    #[serde(default = "default_max_image_size")]
    pub max_image_size: u64,
}

fn default_max_image_size() -> u64 {
    DEFAULT_MAX_IMAGE_SIZE
}

impl FileStoreConfig {
    /// Settings for a store in `dir` with every other setting at its
    /// default.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_image_size: DEFAULT_MAX_IMAGE_SIZE,
        }
    }
}

/// Images held as `<uuid>.tar` plus `<uuid>.json` in one directory.
#[derive(Clone, Debug)]
pub struct FileImageStore {
    dir: PathBuf,
    max_image_size: u64,
}

impl FileImageStore {
    /// Opens (creating if needed) the store directory and removes what an
    /// earlier crash may have left: temp files and archives without a
    /// record.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] when the directory cannot be created, read or
    /// cleaned.
    pub async fn open(config: FileStoreConfig) -> Result<Self, StoreError> {
        // Stored images are the tenant's data: readable by the service only.
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR_MODE)
            .create(&config.dir)
            .await
            .map_err(|source| io_error("create", &config.dir, source))?;
        let dir = config.dir.clone();
        tokio::task::spawn_blocking(move || remove_leftovers(&dir))
            .await
            .map_err(StoreError::Background)??;
        Ok(Self {
            dir: config.dir,
            max_image_size: config.max_image_size,
        })
    }

    /// The directory this store keeps its files in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Streams `body` into a new file at `path`, enforcing the size limit,
    /// and returns its size and SHA-256 (hex). The file is synced.
    async fn receive<R>(&self, body: &mut R, path: &Path) -> Result<(u64, String), StoreError>
    where
        R: AsyncRead + Unpin + Send,
    {
        let mut file = tokio::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE_MODE)
            .open(path)
            .await
            .map_err(|source| io_error("create", path, source))?;
        let mut digest = digest::Context::new(&digest::SHA256);
        let mut buf = vec![0_u8; UPLOAD_CHUNK_BYTES];
        let mut total: u64 = 0;
        loop {
            let n = body.read(&mut buf).await.map_err(StoreError::ReadUpload)?;
            if n == 0 {
                break;
            }
            // `get` rather than indexing: a reader reporting more than it
            // was given must not panic the service.
            let chunk = buf.get(..n).unwrap_or_default();
            total = total.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
            if total > self.max_image_size {
                return Err(StoreError::TooLarge {
                    limit_bytes: self.max_image_size,
                });
            }
            digest.update(chunk);
            file.write_all(chunk)
                .await
                .map_err(|source| io_error("write", path, source))?;
        }
        file.flush()
            .await
            .map_err(|source| io_error("write", path, source))?;
        file.sync_all()
            .await
            .map_err(|source| io_error("sync", path, source))?;
        Ok((total, hex(digest.finish().as_ref())))
    }
}

impl ImageStore for FileImageStore {
    type Archive = tokio::fs::File;

    #[tracing::instrument(skip_all, fields(image_id = tracing::field::Empty))]
    async fn put<R>(&self, name: Option<String>, mut body: R) -> Result<ImageRecord, StoreError>
    where
        R: AsyncRead + Unpin + Send,
    {
        if let Some(name) = &name {
            validate_name(name)?;
        }
        let id = ImageId::generate();
        tracing::Span::current().record("image_id", tracing::field::display(id));
        let upload = RemoveOnDrop::new(self.dir.join(format!(".upload-{id}{TEMP_SUFFIX}")));
        let (size_bytes, sha256) = self.receive(&mut body, upload.path()).await?;
        let received = Received {
            id,
            name,
            upload,
            size_bytes,
            sha256,
            created_at: OffsetDateTime::now_utc(),
        };
        // The guard moves into the blocking task, so dropping this future
        // while the task runs cannot delete a file the task still uses.
        let dir = self.dir.clone();
        let record = tokio::task::spawn_blocking(move || commit(&dir, received))
            .await
            .map_err(StoreError::Background)??;
        tracing::info!(
            size_bytes = record.size_bytes,
            repo_tags = ?record.repo_tags,
            "image stored"
        );
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(image_id = %id))]
    async fn get(&self, id: ImageId) -> Result<ImageRecord, StoreError> {
        let path = record_path(&self.dir, id);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound { id });
            }
            Err(source) => return Err(io_error("read", &path, source)),
        };
        serde_json::from_slice(&bytes).map_err(|source| StoreError::CorruptRecord { path, source })
    }

    #[tracing::instrument(skip_all)]
    async fn list(&self) -> Result<Vec<ImageRecord>, StoreError> {
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|source| io_error("list", &self.dir, source))?;
        let mut records = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|source| io_error("list", &self.dir, source))?
        {
            let Some(id) = file_id(&entry.file_name(), RECORD_EXTENSION) else {
                continue;
            };
            match self.get(id).await {
                Ok(record) => records.push(record),
                // Deleted since the directory was read.
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        records.sort_by_key(|r| (r.created_at, r.id));
        Ok(records)
    }

    #[tracing::instrument(skip_all, fields(image_id = %id))]
    async fn delete(&self, id: ImageId) -> Result<(), StoreError> {
        // The record goes first: once it is gone the image is invisible,
        // and an archive left by a crash here is removed on the next open.
        let record = record_path(&self.dir, id);
        match tokio::fs::remove_file(&record).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound { id });
            }
            Err(source) => return Err(io_error("remove", &record, source)),
        }
        let archive = archive_path(&self.dir, id);
        match tokio::fs::remove_file(&archive).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error("remove", &archive, source)),
        }
        tracing::info!("image deleted");
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(image_id = %id))]
    async fn open(&self, id: ImageId) -> Result<(ImageRecord, tokio::fs::File), StoreError> {
        let record = self.get(id).await?;
        let path = archive_path(&self.dir, id);
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok((record, file)),
            // Deleted between reading the record and opening the archive.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound { id }),
            Err(source) => Err(io_error("open", &path, source)),
        }
    }
}

/// An upload that has been received and synced, waiting to be checked and
/// committed.
struct Received {
    id: ImageId,
    name: Option<String>,
    upload: RemoveOnDrop,
    size_bytes: u64,
    sha256: String,
    created_at: OffsetDateTime,
}

/// Checks the upload, converts it if it is a root filesystem, and moves the
/// archive and then the record into place. Blocking.
fn commit(dir: &Path, received: Received) -> Result<ImageRecord, StoreError> {
    let Received {
        id,
        name,
        upload,
        size_bytes,
        sha256,
        created_at,
    } = received;
    let final_archive = archive_path(dir, id);
    let (archive, size_bytes, sha256, repo_tags, docker_image_ids) =
        match archive::inspect(upload.path())? {
            Upload::DockerArchive {
                repo_tags,
                docker_image_ids,
            } => {
                let archive = rename_into_place(upload, &final_archive)?;
                (archive, size_bytes, sha256, repo_tags, docker_image_ids)
            }
            Upload::RootFilesystem => {
                let converted = RemoveOnDrop::new(dir.join(format!(".archive-{id}{TEMP_SUFFIX}")));
                let repo_tag = format!("{CONVERTED_REPOSITORY}:{id}");
                let written = archive::write_docker_archive(
                    upload.path(),
                    &sha256,
                    &repo_tag,
                    created_at,
                    converted.path(),
                )?;
                let archive = rename_into_place(converted, &final_archive)?;
                // The raw upload is no longer needed; its guard removes it.
                drop(upload);
                (
                    archive,
                    written.size_bytes,
                    written.sha256,
                    vec![repo_tag],
                    vec![written.docker_image_id],
                )
            }
        };
    // The archive's directory entry must be durable before the record's,
    // so that no crash leaves a record without its archive.
    sync_dir(dir)?;

    let record = ImageRecord {
        id,
        name,
        size_bytes,
        sha256,
        format: ImageFormat::DockerArchive,
        created_at,
        repo_tags,
        docker_image_ids,
    };
    write_record(dir, &record)?;
    // Committed: the archive stays.
    archive.disarm();
    Ok(record)
}

/// Writes the record through a synced temp file and renames it into place:
/// the commit point of an upload.
fn write_record(dir: &Path, record: &ImageRecord) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(record).map_err(StoreError::SerializeRecord)?;
    let temp = RemoveOnDrop::new(dir.join(format!(".record-{}{TEMP_SUFFIX}", record.id)));
    {
        use std::io::Write as _;
        let mut file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(PRIVATE_FILE_MODE)
            .open(temp.path())
            .map_err(|source| io_error("create", temp.path(), source))?;
        file.write_all(&bytes)
            .map_err(|source| io_error("write", temp.path(), source))?;
        file.sync_all()
            .map_err(|source| io_error("sync", temp.path(), source))?;
    }
    let record = rename_into_place(temp, &record_path(dir, record.id))?;
    sync_dir(dir)?;
    record.disarm();
    Ok(())
}

/// Renames the guarded file to `to`; the returned guard now owns `to`, so a
/// later failure still removes it.
fn rename_into_place(from: RemoveOnDrop, to: &Path) -> Result<RemoveOnDrop, StoreError> {
    std::fs::rename(from.path(), to).map_err(|source| io_error("rename", from.path(), source))?;
    from.disarm();
    Ok(RemoveOnDrop::new(to.to_owned()))
}

/// Makes renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| io_error("sync", dir, source))
}

/// Removes temp files and archives without a record. Blocking.
fn remove_leftovers(dir: &Path) -> Result<(), StoreError> {
    let list_error = |source| io_error("list", dir, source);
    let mut records = HashSet::new();
    let mut archives = Vec::new();
    let mut leftovers = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        let name = entry.file_name();
        if let Some(id) = file_id(&name, RECORD_EXTENSION) {
            records.insert(id);
        } else if let Some(id) = file_id(&name, ARCHIVE_EXTENSION) {
            archives.push(id);
        } else if name
            .to_str()
            .is_some_and(|n| n.starts_with('.') && n.ends_with(TEMP_SUFFIX))
        {
            leftovers.push(entry.path());
        }
    }
    leftovers.extend(
        archives
            .into_iter()
            .filter(|id| !records.contains(id))
            .map(|id| archive_path(dir, id)),
    );
    for path in leftovers {
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::warn!(path = %path.display(), "removed leftover of an interrupted upload")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_error("remove", &path, source)),
        }
    }
    Ok(())
}

/// The image id of a file named `<uuid>.<extension>`.
fn file_id(name: &std::ffi::OsStr, extension: &str) -> Option<ImageId> {
    let (stem, ext) = name.to_str()?.split_once('.')?;
    (ext == extension).then(|| stem.parse().ok()).flatten()
}

fn archive_path(dir: &Path, id: ImageId) -> PathBuf {
    dir.join(format!("{id}.{ARCHIVE_EXTENSION}"))
}

fn record_path(dir: &Path, id: ImageId) -> PathBuf {
    dir.join(format!("{id}.{RECORD_EXTENSION}"))
}

fn validate_name(name: &str) -> Result<(), StoreError> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(StoreError::InvalidName {
            reason: "longer than 255 characters",
        });
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::InvalidName {
            reason: "contains control characters",
        });
    }
    Ok(())
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Removes a file when dropped unless disarmed, so that every early return,
/// error or cancelled upload cleans up after itself.
#[derive(Debug)]
struct RemoveOnDrop {
    path: PathBuf,
    armed: bool,
}

impl RemoveOnDrop {
    fn new(path: PathBuf) -> Self {
        Self { path, armed: true }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the file.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // `Drop` cannot await. An unlink is one short metadata syscall, and
        // skipping it would leave the file until the next open; so this is
        // the one blocking call allowed on the async path (a dropped upload).
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove temp file")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::io::ReadBuf;

    use super::*;
    use crate::ErrorKind;
    use crate::archive::sha256_hex;
    use crate::testing;

    async fn store_in(dir: &tempfile::TempDir) -> FileImageStore {
        FileImageStore::open(FileStoreConfig::new(dir.path()))
            .await
            .unwrap()
    }

    /// Every file name in the store directory, sorted.
    fn files(dir: &tempfile::TempDir) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn rootfs() -> Vec<u8> {
        testing::tar_of(&[("bin/true", b""), ("etc/hostname", b"nest\n")]).unwrap()
    }

    async fn read_all(mut file: tokio::fs::File) -> Vec<u8> {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await.unwrap();
        bytes
    }

    #[tokio::test]
    async fn root_filesystem_is_stored_as_a_docker_archive() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir).await;
        let record = store
            .put(Some("my rootfs".into()), rootfs().as_slice())
            .await
            .unwrap();

        assert_eq!(record.name.as_deref(), Some("my rootfs"));
        assert_eq!(record.format, ImageFormat::DockerArchive);
        assert_eq!(record.repo_tags, [format!("nest/image:{}", record.id)]);
        assert_eq!(record.run_reference(), Some(record.repo_tags[0].as_str()));
        assert_eq!(
            files(&dir),
            [format!("{}.json", record.id), format!("{}.tar", record.id)]
        );

        let (opened, file) = store.open(record.id).await.unwrap();
        assert_eq!(opened, record);
        let bytes = read_all(file).await;
        assert_eq!(u64::try_from(bytes.len()).unwrap(), record.size_bytes);
        assert_eq!(sha256_hex(&bytes), record.sha256);
        let names: Vec<String> = testing::read_tar(&bytes)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(names.contains(&"manifest.json".to_owned()), "{names:?}");
        assert!(
            names.contains(&format!("{}/layer.tar", sha256_hex(&rootfs()))),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn docker_save_archive_is_stored_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir).await;
        let saved = testing::docker_save_tar(&["example.com/team/app:1.0"]).unwrap();
        let record = store.put(None, saved.tar.as_slice()).await.unwrap();

        assert_eq!(record.repo_tags, ["example.com/team/app:1.0"]);
        assert_eq!(
            record.docker_image_ids,
            std::slice::from_ref(&saved.docker_image_id)
        );
        assert_eq!(record.sha256, sha256_hex(&saved.tar));
        let (_, file) = store.open(record.id).await.unwrap();
        assert_eq!(read_all(file).await, saved.tar);
    }

    #[tokio::test]
    async fn untagged_docker_save_archive_runs_by_image_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir).await;
        let saved = testing::docker_save_tar(&[]).unwrap();
        let record = store.put(None, saved.tar.as_slice()).await.unwrap();
        assert!(record.repo_tags.is_empty());
        assert_eq!(record.run_reference(), Some(saved.docker_image_id.as_str()));
    }

    #[tokio::test]
    async fn get_list_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir).await;
        let first = store
            .put(Some("a".into()), rootfs().as_slice())
            .await
            .unwrap();
        let second = store
            .put(Some("b".into()), rootfs().as_slice())
            .await
            .unwrap();

        assert_eq!(store.get(first.id).await.unwrap(), first);
        let listed = store.list().await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.contains(&first) && listed.contains(&second));

        store.delete(first.id).await.unwrap();
        assert_eq!(store.list().await.unwrap(), std::slice::from_ref(&second));
        assert_eq!(
            files(&dir),
            [format!("{}.json", second.id), format!("{}.tar", second.id)]
        );
        for err in [
            store.get(first.id).await.unwrap_err(),
            store.open(first.id).await.unwrap_err(),
            store.delete(first.id).await.unwrap_err(),
        ] {
            assert!(
                matches!(err, StoreError::NotFound { id } if id == first.id),
                "{err:?}"
            );
            assert_eq!(err.kind(), ErrorKind::NotFound);
        }
    }

    #[tokio::test]
    async fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let record = store_in(&dir)
            .await
            .put(None, rootfs().as_slice())
            .await
            .unwrap();
        let reopened = store_in(&dir).await;
        assert_eq!(reopened.list().await.unwrap(), [record]);
    }

    #[tokio::test]
    async fn reopening_removes_leftovers_of_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let kept = store_in(&dir)
            .await
            .put(None, rootfs().as_slice())
            .await
            .unwrap();
        // What a crash at each step of an upload can leave behind.
        let orphan = ImageId::generate();
        for name in [
            format!(".upload-{orphan}.tmp"),
            format!(".archive-{orphan}.tmp"),
            format!(".record-{orphan}.tmp"),
            format!("{orphan}.tar"),
        ] {
            std::fs::write(dir.path().join(name), b"partial").unwrap();
        }
        std::fs::write(dir.path().join("unrelated.txt"), b"not ours").unwrap();

        let store = store_in(&dir).await;
        assert_eq!(
            files(&dir),
            [
                format!("{}.json", kept.id),
                format!("{}.tar", kept.id),
                "unrelated.txt".into()
            ]
        );
        assert_eq!(store.list().await.unwrap(), [kept]);
    }

    /// Refusals: the error is Invalid and the directory is left empty.
    async fn assert_refused(
        store: &FileImageStore,
        dir: &tempfile::TempDir,
        body: &[u8],
    ) -> StoreError {
        let err = store.put(None, body).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err:?}");
        assert!(files(dir).is_empty(), "{:?}", files(dir));
        assert!(store.list().await.unwrap().is_empty());
        err
    }

    #[tokio::test]
    async fn upload_over_the_size_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let body = rootfs();
        let limit = u64::try_from(body.len()).unwrap() - 1;
        let store = FileImageStore::open(FileStoreConfig {
            dir: dir.path().to_owned(),
            max_image_size: limit,
        })
        .await
        .unwrap();
        let err = assert_refused(&store, &dir, &body).await;
        assert!(matches!(err, StoreError::TooLarge { limit_bytes } if limit_bytes == limit));

        // Exactly at the limit is fine.
        let store = FileImageStore::open(FileStoreConfig {
            dir: dir.path().to_owned(),
            max_image_size: limit + 1,
        })
        .await
        .unwrap();
        store.put(None, body.as_slice()).await.unwrap();
    }

    #[tokio::test]
    async fn bad_uploads_are_refused_and_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir).await;
        let not_tar = "plain text, not a tar\n".repeat(64);
        let missing_layer = testing::tar_of(&[(
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["a:1"],"Layers":["l/layer.tar"]}]"#,
        )])
        .unwrap();
        for body in [
            &b""[..],
            not_tar.as_bytes(),
            &[0x1f, 0x8b, 8, 0],
            &missing_layer,
        ] {
            let err = assert_refused(&store, &dir, body).await;
            assert!(matches!(err, StoreError::Archive(_)), "{err:?}");
        }
    }

    #[tokio::test]
    async fn bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir).await;
        for name in ["a\nb".to_owned(), "x".repeat(MAX_NAME_CHARS + 1)] {
            let err = store
                .put(Some(name), rootfs().as_slice())
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::InvalidName { .. }), "{err:?}");
        }
        assert!(files(&dir).is_empty());
    }

    /// Yields `data`, then fails or stays pending forever.
    struct Broken {
        data: Vec<u8>,
        then_fail: bool,
    }

    impl AsyncRead for Broken {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if !self.data.is_empty() {
                let n = self.data.len().min(buf.remaining());
                buf.put_slice(&self.data[..n]);
                self.data.drain(..n);
                Poll::Ready(Ok(()))
            } else if self.then_fail {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "client went away",
                )))
            } else {
                Poll::Pending
            }
        }
    }

    #[tokio::test]
    async fn failed_body_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir).await;
        let body = Broken {
            data: rootfs(),
            then_fail: true,
        };
        let err = store.put(None, body).await.unwrap_err();
        assert!(matches!(err, StoreError::ReadUpload(_)), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_upload_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir).await;
        let body = Broken {
            data: rootfs(),
            then_fail: false,
        };
        // The body never ends; the (paused, auto-advancing) clock fires the
        // timeout once the upload is stuck waiting for more.
        let put = tokio::time::timeout(Duration::from_secs(60), store.put(None, body));
        assert!(put.await.is_err(), "the upload should still be waiting");
        assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    }
}
