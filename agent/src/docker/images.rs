//! Getting images onto the instance: pulling from a registry, and loading
//! an archive (`docker save` format) streamed in by the caller.
//!
//! Registry credentials pass through here; they are never logged and never
//! quoted in an error.

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptionsBuilder, ImportImageOptionsBuilder};
use futures_util::{Stream, StreamExt};
use nest_core::secret::Secret;
use tracing::instrument;

use super::error::DockerError;
use super::{DOCKER_CALL_TIMEOUT, Engine, LOAD_IMAGE_TIMEOUT, PULL_TIMEOUT, bounded, spec};
use crate::model::ImagePulled;

/// Tag pulled when a reference names none; without it the engine would pull
/// every tag of the repository.
const DEFAULT_TAG: &str = "latest";

impl Engine {
    /// Pulls `reference` from its registry, with `registry_auth` (the
    /// engine's `X-Registry-Auth` JSON; `None` or blank for none).
    ///
    /// # Errors
    /// `Invalid` for an empty reference or malformed credentials; for a
    /// failed pull ([`DockerError::Pull`]) `NotFound` when the registry has
    /// no such image, `Forbidden` when it refuses, `Unavailable` when it
    /// cannot be reached; `Timeout` after [`PULL_TIMEOUT`].
    #[instrument(skip_all, fields(image = %reference))]
    pub async fn pull_image(
        &self,
        reference: &str,
        registry_auth: Option<&Secret<String>>,
    ) -> Result<ImagePulled, DockerError> {
        spec::check_image("reference", reference)?;
        let credentials = parse_registry_auth(registry_auth)?;
        let (from_image, tag) = split_reference(reference);
        let mut options = CreateImageOptionsBuilder::default().from_image(from_image);
        if let Some(tag) = tag {
            options = options.tag(tag);
        }
        let docker = self.docker.clone().with_timeout(PULL_TIMEOUT);
        let target = format!("image {reference}");
        let pulled = bounded("pull", &target, PULL_TIMEOUT, async {
            let mut progress = docker.create_image(Some(options.build()), None, credentials);
            while let Some(step) = progress.next().await {
                step?;
            }
            Ok(())
        })
        .await;
        match pulled {
            Ok(()) => {}
            Err(DockerError::Engine { source, .. }) => {
                return Err(DockerError::Pull {
                    reference: reference.to_owned(),
                    source,
                });
            }
            Err(other) => return Err(other),
        }
        let local = match tag {
            Some(tag) => format!("{from_image}:{tag}"),
            None => reference.to_owned(),
        };
        let image = bounded(
            "inspect",
            &format!("image {local}"),
            DOCKER_CALL_TIMEOUT,
            self.docker.inspect_image(&local),
        )
        .await?;
        let image_id = image.id.ok_or_else(|| DockerError::Malformed {
            operation: "inspect",
            target: format!("image {local}"),
            missing: "the image id",
        })?;
        tracing::info!(image_id = %image_id, "image pulled");
        Ok(ImagePulled { image_id })
    }

    /// Loads an image archive (`docker save` format) and returns the
    /// engine's report (`Loaded image: name:tag`).
    ///
    /// The archive is streamed to the engine as it arrives; ending the
    /// stream early makes the load fail.
    ///
    /// # Errors
    /// `Invalid` ([`DockerError::Load`]) when the engine cannot read the
    /// archive; other engine failures as classified; `Timeout` after
    /// [`LOAD_IMAGE_TIMEOUT`].
    #[instrument(skip_all)]
    pub async fn load_image(
        &self,
        archive: impl Stream<Item = Vec<u8>> + Send + 'static,
    ) -> Result<String, DockerError> {
        let body = bollard::body_stream(archive.map(Into::into));
        // Quiet: without it the engine sends progress bars, not a report.
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        // The engine answers only once it has read the whole archive.
        let docker = self.docker.clone().with_timeout(LOAD_IMAGE_TIMEOUT);
        let report = bounded("load", "image archive", LOAD_IMAGE_TIMEOUT, async move {
            let mut report = String::new();
            let mut progress = docker.import_image(options, body, None);
            while let Some(step) = progress.next().await {
                if let Some(line) = step?.stream {
                    report.push_str(&line);
                }
            }
            Ok(report)
        })
        .await
        .map_err(|err| match err {
            DockerError::Engine { source, .. } => DockerError::Load { source },
            other => other,
        })?;
        tracing::info!(report = %report.trim_end(), "image archive loaded");
        Ok(report)
    }
}

/// Splits `reference` into what to pull and the tag to add, if it names
/// neither a tag nor a digest. Only the last path segment can hold a tag:
/// `registry:5000/app` names a registry port, not a tag.
fn split_reference(reference: &str) -> (&str, Option<&'static str>) {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains('@') || last.contains(':') {
        (reference, None)
    } else {
        (reference, Some(DEFAULT_TAG))
    }
}

/// Reads the engine's `X-Registry-Auth` JSON; blank means no credentials.
fn parse_registry_auth(
    auth: Option<&Secret<String>>,
) -> Result<Option<DockerCredentials>, DockerError> {
    let Some(auth) = auth.map(Secret::expose).filter(|a| !a.trim().is_empty()) else {
        return Ok(None);
    };
    serde_json::from_str(auth)
        .map(Some)
        .map_err(|err| DockerError::RegistryAuth {
            line: err.line(),
            column: err.column(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_references_get_latest() {
        assert_eq!(split_reference("busybox"), ("busybox", Some("latest")));
        assert_eq!(
            split_reference("registry:5000/team/app"),
            ("registry:5000/team/app", Some("latest"))
        );
        assert_eq!(split_reference("busybox:1"), ("busybox:1", None));
        assert_eq!(
            split_reference("app@sha256:abcd"),
            ("app@sha256:abcd", None)
        );
    }

    #[test]
    fn registry_auth_errors_do_not_quote_the_secret() {
        let auth = |json: &str| Secret::new(json.to_owned());
        let err = parse_registry_auth(Some(&auth(r#"{"password": 12345678}"#)))
            .expect_err("not a string");
        assert!(!err.to_string().contains("12345678"), "{err}");
        assert!(matches!(err, DockerError::RegistryAuth { .. }));
        let creds = parse_registry_auth(Some(&auth(r#"{"username":"u","password":"p"}"#)))
            .expect("valid")
            .expect("present");
        assert_eq!(creds.username.as_deref(), Some("u"));
        assert_eq!(parse_registry_auth(None).expect("none is fine"), None);
        assert_eq!(
            parse_registry_auth(Some(&auth("  "))).expect("blank is fine"),
            None
        );
    }
}
