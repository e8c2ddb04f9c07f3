//! [`Image`]: the Glance v2 client: an image's record and its data.
//!
//! Nest reads images only: by id or name (to check a driver's configured
//! image), and the data of a `container_format = docker` image (a
//! `docker save` tarball) to load into an instance's engine.

use nest_core::RequestId;
use serde::Deserialize;
use url::Url;

use crate::catalog::{Interface, join_segments};
use crate::client::{self, Retry};
use crate::error::OpenStackError;
use crate::session::{Call, Session};

/// The Glance client, on a session and its image endpoint.
#[derive(Debug)]
pub struct Image<'a> {
    session: &'a Session,
    endpoint: Url,
}

/// An image's record; only what Nest reads.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ImageInfo {
    /// Id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// `queued`, `active`, ...
    pub status: String,
    /// `bare`, `docker`, ...
    #[serde(default)]
    pub container_format: Option<String>,
    /// Size of the data, bytes.
    #[serde(default)]
    pub size: Option<u64>,
}

#[derive(Deserialize)]
struct ImagesBody {
    images: Vec<ImageInfo>,
}

impl<'a> Image<'a> {
    /// The client on `session`'s image endpoint.
    ///
    /// # Errors
    /// Why the endpoint is unknown.
    pub async fn connect(
        session: &'a Session,
        interface: Interface,
        region: Option<&str>,
    ) -> Result<Self, OpenStackError> {
        let endpoint = session.endpoint("image", interface, region).await?;
        Ok(Self { session, endpoint })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let versioned = self.endpoint.path().trim_end_matches('/').ends_with("/v2");
        let mut all = if versioned { vec![] } else { vec!["v2"] };
        all.extend_from_slice(segments);
        join_segments(&self.endpoint, &all)
    }

    /// An image by id, `None` when the session cannot see it.
    ///
    /// # Errors
    /// [`OpenStackError`].
    pub async fn image(
        &self,
        id: &str,
        request_id: &RequestId,
    ) -> Result<Option<ImageInfo>, OpenStackError> {
        let call = Call::new("glance", "show an image").request_id(request_id);
        let url = self.url(&["images", id]);
        let response = client::send(self.session, &call, Retry::Idempotent, |http| {
            http.get(url.clone())
        })
        .await?;
        match client::json(&call, response).await {
            Ok(image) => Ok(Some(image)),
            Err(e) if e.kind() == nest_core::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An image by id or name; `None` when neither names one the session
    /// can see.
    ///
    /// # Errors
    /// [`OpenStackError`].
    pub async fn find_image(
        &self,
        name_or_id: &str,
        request_id: &RequestId,
    ) -> Result<Option<ImageInfo>, OpenStackError> {
        // Glance answers 400, not 404, for an id that is not a uuid.
        if uuid_like(name_or_id)
            && let Some(image) = self.image(name_or_id, request_id).await?
        {
            return Ok(Some(image));
        }
        let call = Call::new("glance", "list images").request_id(request_id);
        let mut url = self.url(&["images"]);
        url.query_pairs_mut().append_pair("name", name_or_id);
        let response = client::send(self.session, &call, Retry::Idempotent, |http| {
            http.get(url.clone())
        })
        .await?;
        let mut body: ImagesBody = client::json(&call, response).await?;
        Ok(body.images.pop())
    }

    /// Starts downloading an image's data: the answer, whose body the
    /// caller streams (`bytes_stream`, `chunk`). The call may take up to
    /// `timeout` in all.
    ///
    /// # Errors
    /// [`OpenStackError::Refused`] when Glance refuses (404: not visible).
    pub async fn download(
        &self,
        id: &str,
        timeout: std::time::Duration,
        request_id: &RequestId,
    ) -> Result<reqwest::Response, OpenStackError> {
        let call = Call::new("glance", "download an image")
            .request_id(request_id)
            .timeout(timeout);
        let url = self.url(&["images", id, "file"]);
        let response = client::send(self.session, &call, Retry::Idempotent, |http| {
            http.get(url.clone())
        })
        .await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(client::refusal(&call, response).await)
        }
    }
}

/// Whether `s` has a uuid's shape (Glance ids are uuids).
fn uuid_like(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_uuids_are_looked_up_by_id() {
        assert!(super::uuid_like("6f9a1c2e-4b7d-4e0f-9a3b-2c1d0e9f8a7b"));
        assert!(!super::uuid_like("fake-image"));
        assert!(!super::uuid_like("6f9a1c2e-4b7d-4e0f-9a3b-2c1d0e9f8a7bx"));
    }
}
