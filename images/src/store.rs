//! The image store seam: the [`ImageStore`] trait, the types it traffics in
//! and its error. Implementations decide where the bytes live (files here,
//! Glance later); callers see only records and a reader of a `docker
//! load`-able archive.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::AsyncRead;
use uuid::Uuid;

use crate::ErrorKind;
use crate::archive::ArchiveError;

/// The id of an image held by Nest (a Glance-style uuid).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(Uuid);

impl ImageId {
    /// A fresh random (v4) id for a new image.
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    /// Wraps an existing uuid, such as one Glance assigned.
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The underlying uuid.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for ImageId {
    /// The canonical form: lowercase and hyphenated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for ImageId {
    type Err = ParseImageIdError;

    /// Accepts only the canonical form (`6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00`),
    /// so that one image has exactly one spelling in references and file names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let canonical = s.len() == 36
            && s.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            });
        if !canonical {
            return Err(ParseImageIdError);
        }
        Uuid::parse_str(s).map(Self).map_err(|_| ParseImageIdError)
    }
}

/// A string is not a canonical lowercase hyphenated uuid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a lowercase hyphenated uuid")]
pub struct ParseImageIdError;

/// How a held image's bytes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    /// The archive `docker save` writes and `docker load` reads: a tar with
    /// `manifest.json`, image configs and one `layer.tar` per layer.
    DockerArchive,
}

/// What Nest knows about one held image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image's id, which tenants write as `image: <uuid>`.
    pub id: ImageId,
    /// The name given at upload, for people; not unique, not a reference.
    pub name: Option<String>,
    /// Size of the stored archive in bytes (for a converted root
    /// filesystem, slightly more than the upload).
    pub size_bytes: u64,
    /// SHA-256 of the stored archive, as 64 lowercase hex digits; the agent
    /// can check what it received against it.
    pub sha256: String,
    /// How the stored bytes are laid out.
    pub format: ImageFormat,
    /// When the upload completed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The `name:tag`s `docker load` gives the loaded image(s): those of a
    /// `docker save` archive, or `nest/image:<uuid>` for a converted root
    /// filesystem. May be empty for an untagged `docker save` archive.
    pub repo_tags: Vec<String>,
    /// The ids (`sha256:<hex>` of each image config) Docker gives the loaded
    /// image(s), one per manifest entry; they name an image even when it has
    /// no tag.
    pub docker_image_ids: Vec<String>,
}

impl ImageRecord {
    /// What the agent hands `docker run` after loading this image: its first
    /// tag, or else its Docker image id.
    pub fn run_reference(&self) -> Option<&str> {
        self.repo_tags
            .first()
            .or_else(|| self.docker_image_ids.first())
            .map(String::as_str)
    }
}

/// Where Nest keeps the images it holds.
///
/// Methods return `impl Future + Send` rather than using `async-trait`, so
/// the trait is used through generics (`S: ImageStore`), not `dyn`.
///
/// ```no_run
/// use nest_images::{FileImageStore, FileStoreConfig, ImageStore};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = FileImageStore::open(FileStoreConfig::new("/var/lib/nest/images")).await?;
/// let upload = tokio::fs::File::open("rootfs.tar").await?;
/// let record = store.put(Some("my-rootfs".to_owned()), upload).await?;
/// let (record, archive) = store.open(record.id).await?;
/// // Stream `archive` to the agent, which runs `docker load` and then
/// // `record.run_reference()`.
/// # let _ = (record, archive);
/// # Ok(())
/// # }
/// ```
pub trait ImageStore: Send + Sync {
    /// A reader of one image's `docker load`-able archive.
    type Archive: AsyncRead + Unpin + Send + 'static;

    /// Stores an uploaded image: a `docker save` archive (kept as is) or a
    /// root filesystem tar (converted to a docker archive). The image is
    /// visible to the other methods only once it is complete.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Invalid`] for an upload that is not a usable image (not
    /// a tar, compressed, empty, too large, a manifest naming missing
    /// files, a bad name), with nothing stored; [`ErrorKind::Internal`] when
    /// the store itself fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stores nothing and leaves no partial image
    /// visible.
    fn put<R>(
        &self,
        name: Option<String>,
        body: R,
    ) -> impl Future<Output = Result<ImageRecord, StoreError>> + Send
    where
        R: AsyncRead + Unpin + Send;

    /// The record of one image.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when there is no such image.
    fn get(&self, id: ImageId) -> impl Future<Output = Result<ImageRecord, StoreError>> + Send;

    /// Every held image, oldest first.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Internal`] when the store cannot be read.
    fn list(&self) -> impl Future<Output = Result<Vec<ImageRecord>, StoreError>> + Send;

    /// Removes an image. Readers that already opened it keep their data.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when there is no such image.
    fn delete(&self, id: ImageId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An image's record and a reader of its archive.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] when there is no such image.
    fn open(
        &self,
        id: ImageId,
    ) -> impl Future<Output = Result<(ImageRecord, Self::Archive), StoreError>> + Send;
}

/// Why an image store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No image has this id.
    #[error("image {id} not found")]
    NotFound {
        /// The id that was asked for.
        id: ImageId,
    },
    /// The upload is larger than the store accepts.
    #[error("image upload exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        /// The configured limit, in bytes.
        limit_bytes: u64,
    },
    /// The name given for the image is unusable.
    #[error("image name is invalid: {reason}")]
    InvalidName {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The upload's body could not be read (the client went away, or its
    /// stream failed).
    #[error("reading the image upload failed")]
    ReadUpload(#[source] io::Error),
    /// The upload is not a usable image archive.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A file operation of the store failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What the store was doing (`create`, `rename`, …).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// A stored record cannot be read back.
    #[error("image record {} is corrupt", path.display())]
    CorruptRecord {
        /// The record file.
        path: PathBuf,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A stored record cannot be serialized (a bug).
    #[error("cannot serialize image record")]
    SerializeRecord(#[source] serde_json::Error),
    /// The blocking task that checks and commits an upload panicked or was
    /// cancelled at shutdown.
    #[error("image store background task failed")]
    Background(#[source] tokio::task::JoinError),
}

impl StoreError {
    /// How a caller should see this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::TooLarge { .. } | Self::InvalidName { .. } | Self::ReadUpload(_) => {
                ErrorKind::Invalid
            }
            Self::Archive(e) => e.kind(),
            Self::Io { .. }
            | Self::CorruptRecord { .. }
            | Self::SerializeRecord(_)
            | Self::Background(_) => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn image_id_round_trips_in_canonical_form() {
        let s = "6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00";
        let id: ImageId = s.parse().unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{s}\""));
    }

    #[test]
    fn image_id_refuses_other_spellings() {
        for s in [
            "6F1C1C3E-2B7A-4D7E-9A52-0D1F3C2B1A00",
            "6f1c1c3e2b7a4d7e9a520d1f3c2b1a00",
            "{6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00}",
            "urn:uuid:6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00",
            "6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a0g",
            "",
        ] {
            assert_eq!(s.parse::<ImageId>(), Err(ParseImageIdError), "{s:?}");
        }
    }

    #[test]
    fn record_serializes_format_and_time_readably() {
        let record = ImageRecord {
            id: "6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00".parse().unwrap(),
            name: None,
            size_bytes: 1,
            sha256: "00".repeat(32),
            format: ImageFormat::DockerArchive,
            created_at: OffsetDateTime::UNIX_EPOCH,
            repo_tags: vec![],
            docker_image_ids: vec!["sha256:ab".into()],
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["format"], "docker-archive");
        assert_eq!(json["created_at"], "1970-01-01T00:00:00Z");
        let back: ImageRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
        assert_eq!(record.run_reference(), Some("sha256:ab"));
    }

    #[test]
    fn error_kinds() {
        let id = ImageId::generate();
        assert_eq!(StoreError::NotFound { id }.kind(), ErrorKind::NotFound);
        assert_eq!(
            StoreError::TooLarge { limit_bytes: 1 }.kind(),
            ErrorKind::Invalid
        );
        assert_eq!(
            StoreError::from(ArchiveError::Empty).kind(),
            ErrorKind::Invalid
        );
        let io = StoreError::Io {
            action: "create",
            path: PathBuf::from("/x"),
            source: io::Error::other("disk"),
        };
        assert_eq!(io.kind(), ErrorKind::Internal);
    }
}
