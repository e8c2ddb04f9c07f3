//! `/v1/nest/images`, a Nest extension: the images Nest stores itself, so
//! that containers can run without any registry. Name an image's `uuid`
//! as a container's `image` to run it.

use serde::{Deserialize, Serialize};

/// A stored image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageView {
    /// Name the image by this uuid in a container's `image` to run it.
    pub uuid: String,
    /// The name given at upload, if any.
    pub name: Option<String>,
    /// Size of the stored archive, bytes.
    pub size: u64,
    /// SHA-256 of the stored archive, 64 lowercase hex digits.
    pub sha256: String,
    /// When it was stored, RFC 3339.
    pub created_at: String,
    /// The `name:tag`s Docker gives the loaded image: those of a `docker
    /// save` archive, `nest/image:<uuid>` for a root filesystem; may be
    /// empty.
    pub repo_tags: Vec<String>,
}

/// The stored images of the caller's project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageCollection {
    /// The images.
    pub images: Vec<ImageView>,
}
