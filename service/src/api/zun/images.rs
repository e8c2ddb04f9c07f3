//! `/v1/nest/images`: a Nest extension for images Nest stores itself, so
//! that containers can run without any registry. Upload a `docker save`
//! tarball or a root filesystem tarball as the request body; run it by
//! naming the returned uuid as a container's `image`. The bodies are
//! [`nest_api_types::zun::images`]'s.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use futures_util::TryStreamExt;
use nest_api_types::zun::{ImageCollection, ImageView};
use serde::Deserialize;

use super::containers::NoParams;
use super::extract::{QueryParams, RequestContext, ZunPath};
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::StoredImage;

/// Query of an upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// A name for the image, shown in lists.
    #[serde(default)]
    name: Option<String>,
}

fn view(image: StoredImage) -> ImageView {
    ImageView {
        uuid: image.id,
        name: image.name,
        size: image.size_bytes,
        sha256: image.sha256,
        created_at: image.created_at,
        repo_tags: image.repo_tags,
    }
}

/// Stores an image uploaded as the request body (an uncompressed tar).
#[utoipa::path(post, path = "/v1/nest/images", tag = "images",
    params(UploadQuery),
    responses((status = 201, body = ImageView), (status = 400, description = "not an image tarball")))]
pub async fn upload(
    State(state): State<ApiState>,
    cx: RequestContext,
    QueryParams(query): QueryParams<UploadQuery>,
    body: Body,
) -> Result<(StatusCode, Json<ImageView>), ApiError> {
    if let Some(name) = &query.name
        && (name.is_empty() || name.len() > 255 || name.chars().any(char::is_control))
    {
        return Err(ApiError::InvalidParameter {
            name: "name".into(),
            reason: "must be 1 to 255 printable characters".into(),
        });
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let image = state
        .app()
        .upload_image(&cx.call, query.name, Box::pin(reader))
        .await?;
    Ok((StatusCode::CREATED, Json(view(image))))
}

/// Lists the caller's project's stored images.
#[utoipa::path(get, path = "/v1/nest/images", tag = "images",
    responses((status = 200, body = ImageCollection)))]
pub async fn list(
    State(state): State<ApiState>,
    cx: RequestContext,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<Json<ImageCollection>, ApiError> {
    let images = state.app().list_images(&cx.call).await?;
    Ok(Json(ImageCollection {
        images: images.into_iter().map(view).collect(),
    }))
}

/// Deletes a stored image.
#[utoipa::path(delete, path = "/v1/nest/images/{image}", tag = "images",
    params(("image" = String, Path, description = "image uuid")),
    responses((status = 204), (status = 404, description = "no such image")))]
pub async fn delete(
    State(state): State<ApiState>,
    cx: RequestContext,
    ZunPath(image): ZunPath<String>,
    QueryParams(NoParams {}): QueryParams<NoParams>,
) -> Result<StatusCode, ApiError> {
    state.app().delete_image(&cx.call, &image).await?;
    Ok(StatusCode::NO_CONTENT)
}
