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

/// A stored image in Zun's image view (`GET /v1/images`, zun-api.md
/// §2.5), for `openstack appcontainer image list/show`. Zun lists the
/// images pulled on its compute hosts, to admins; Nest answers the
/// caller's project's stored images, as `/v1/nest/images` does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZunImageView {
    /// Name the image by this uuid in a container's `image` to run it.
    pub uuid: String,
    /// `[self, bookmark]`.
    pub links: Vec<super::Link>,
    /// The engine's image id (none: a stored image is loaded on each
    /// instance that runs it).
    pub image_id: Option<String>,
    /// The name given at upload, or the archive's first repository.
    pub repo: Option<String>,
    /// The tag of that name (`latest` when it has none).
    pub tag: Option<String>,
    /// Size of the stored archive, bytes.
    pub size: u64,
    /// The project the image belongs to.
    pub project_id: String,
    /// Always null in Nest.
    pub image_pull_policy: Option<String>,
    /// Always null in Nest (images are not bound to one instance).
    pub host: Option<String>,
}

/// `GET /v1/images`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZunImageCollection {
    /// The images.
    pub images: Vec<ZunImageView>,
    /// Always null: one page holds them all.
    pub next: Option<String>,
}
