//! Images Nest holds itself (the embedded, file-backed store), one store
//! per project so that a project only ever sees and runs its own uploads,
//! and loading them into an instance's engine through the agent link.
//!
//! A uuid the project's store does not hold may name an image of the
//! cloud (a Glance image of `container_format = docker`, as Zun's
//! `image_driver=glance` runs): the driver downloads it with the project's
//! authority into a second store of the project's (`@glance/<project>`,
//! never listed as an upload), once, and it is loaded from there like any
//! stored image.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use nest_images::{FileImageStore, FileStoreConfig, ImageId, ImageRecord, ImageStore};
use tokio::io::AsyncReadExt;

use crate::agents::{
    AgentError, AgentLink, STDIN_CHUNK_BYTES, StreamEvent, StreamInput, StreamOpen,
};
use crate::domain::{InstanceId, ProjectId, RequestId};
use crate::driver::InstanceDriver;

/// Bytes read from an image file per stream frame.
const LOAD_CHUNK: usize = STDIN_CHUNK_BYTES;
/// Longest an image load may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(1800);

/// Why a stored image could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The store failed or has no such image.
    #[error("image store")]
    Store(#[from] nest_images::StoreError),
    /// Reading the stored archive failed.
    #[error("reading the stored image")]
    Read(#[source] std::io::Error),
    /// The relay or the agent refused or failed the load.
    #[error("loading the image into the instance: {0}")]
    Load(#[source] AgentError),
    /// The engine reported a failure.
    #[error("the instance's engine could not load the image: {0}")]
    Engine(String),
    /// The load did not finish in time.
    #[error("loading the image took longer than {0:?}")]
    Timeout(Duration),
    /// Neither the project's store nor the cloud has the image.
    #[error("image {0} could not be found")]
    NotFound(ImageId),
    /// The cloud's image could not be fetched.
    #[error("fetching the cloud's image {id}")]
    Cloud {
        /// The image.
        id: ImageId,
        /// Why.
        #[source]
        source: crate::driver::DriverError,
    },
    /// The stored image names nothing to run.
    #[error("the stored image {0} names no tag or image id to run")]
    NothingToRun(ImageId),
}

impl ImageError {
    /// The classification of this error.
    pub fn kind(&self) -> nest_core::ErrorKind {
        use nest_core::ErrorKind;
        match self {
            Self::Store(e) => e.kind(),
            Self::Load(e) => e.kind(),
            Self::Timeout(_) => ErrorKind::Timeout,
            Self::Engine(_) | Self::NothingToRun(_) => ErrorKind::Invalid,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Cloud { source, .. } => source.kind().error_kind(),
            Self::Read(_) => ErrorKind::Internal,
        }
    }
}

/// The image stores of every project, under one directory.
pub struct ProjectImages {
    root: PathBuf,
    stores: Mutex<HashMap<PathBuf, Arc<FileImageStore>>>,
    /// Where images the stores lack are fetched from (the `nova` driver's
    /// Glance); `None`: nowhere.
    cloud: Option<Arc<dyn InstanceDriver>>,
}

/// Where the copies of a project's cloud images live, beside its uploads
/// (`@` is in no project id, so no project's store is ever here).
const CLOUD_STORE_DIR: &str = "@glance";

impl ProjectImages {
    /// Stores under `root/<project id>/`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            stores: Mutex::new(HashMap::new()),
            cloud: None,
        }
    }

    /// Images the project's store lacks are fetched through `driver`
    /// ([`InstanceDriver::fetch_image`]).
    pub fn with_cloud(mut self, driver: Arc<dyn InstanceDriver>) -> Self {
        self.cloud = Some(driver);
        self
    }

    /// The store of `project`, opened on first use.
    ///
    /// # Errors
    /// [`ImageError::Store`] when its directory cannot be opened.
    pub async fn store(&self, project: &ProjectId) -> Result<Arc<FileImageStore>, ImageError> {
        // The project id's charset is safe as a directory name.
        self.open_store(self.root.join(project.as_str())).await
    }

    /// The store of `project`'s copies of cloud images.
    async fn cloud_store(&self, project: &ProjectId) -> Result<Arc<FileImageStore>, ImageError> {
        self.open_store(self.root.join(CLOUD_STORE_DIR).join(project.as_str()))
            .await
    }

    async fn open_store(&self, dir: PathBuf) -> Result<Arc<FileImageStore>, ImageError> {
        if let Some(store) = self
            .stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&dir)
        {
            return Ok(store.clone());
        }
        let store = Arc::new(FileImageStore::open(FileStoreConfig::new(dir.clone())).await?);
        Ok(self
            .stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(dir)
            .or_insert(store)
            .clone())
    }

    /// The copy of cloud image `id` for `project`, fetched through
    /// `cloud` the first time.
    async fn open_from_cloud(
        &self,
        cloud: &dyn InstanceDriver,
        project: &ProjectId,
        id: ImageId,
    ) -> Result<(ImageRecord, tokio::fs::File), ImageError> {
        let store = self.cloud_store(project).await?;
        let name = format!("glance-{id}");
        let copy = store
            .list()
            .await?
            .into_iter()
            .find(|r| r.name.as_deref() == Some(name.as_str()));
        let record = match copy {
            Some(record) => record,
            None => {
                let (sink, body) = tokio::io::duplex(LOAD_CHUNK);
                let image = id.to_string();
                let (fetched, stored) = tokio::join!(
                    cloud.fetch_image(project, &image, sink),
                    store.put(Some(name), body)
                );
                match fetched {
                    Ok(true) => {}
                    Ok(false) => return Err(ImageError::NotFound(id)),
                    Err(source) => return Err(ImageError::Cloud { id, source }),
                }
                let record = stored?;
                tracing::info!(image_id = %id, project_id = %project, "cloud image stored");
                record
            }
        };
        Ok(store.open(record.id).await?)
    }

    /// Streams a stored image of `project` (or, when the project's store
    /// has none, the cloud's image of that id) into
    /// `instance`'s engine and returns the reference to run it by.
    ///
    /// # Errors
    /// [`ImageError`] when the image is missing or the load fails.
    pub async fn load_into(
        &self,
        agents: &dyn AgentLink,
        project: &ProjectId,
        id: ImageId,
        instance: &InstanceId,
        request_id: &RequestId,
    ) -> Result<String, ImageError> {
        let store = self.store(project).await?;
        let (record, file) = match store.open(id).await {
            Ok(found) => found,
            Err(nest_images::StoreError::NotFound { .. }) => match &self.cloud {
                Some(cloud) => self.open_from_cloud(cloud.as_ref(), project, id).await?,
                None => return Err(ImageError::NotFound(id)),
            },
            Err(e) => return Err(e.into()),
        };
        let reference = run_reference(&record)?;
        tokio::time::timeout(LOAD_TIMEOUT, send(agents, instance, request_id, file))
            .await
            .map_err(|_| ImageError::Timeout(LOAD_TIMEOUT))??;
        tracing::info!(image_id = %id, instance_id = %instance, "stored image loaded");
        Ok(reference)
    }
}

fn run_reference(record: &ImageRecord) -> Result<String, ImageError> {
    record
        .run_reference()
        .map(str::to_owned)
        .ok_or(ImageError::NothingToRun(record.id))
}

async fn send(
    agents: &dyn AgentLink,
    instance: &InstanceId,
    request_id: &RequestId,
    mut file: tokio::fs::File,
) -> Result<(), ImageError> {
    let mut stream = agents
        .open_stream(request_id, instance, StreamOpen::LoadImage)
        .await
        .map_err(ImageError::Load)?;
    let mut buffer = vec![0u8; LOAD_CHUNK];
    loop {
        let n = file.read(&mut buffer).await.map_err(ImageError::Read)?;
        if n == 0 {
            break;
        }
        stream
            .send(StreamInput::Stdin(Bytes::copy_from_slice(&buffer[..n])))
            .await
            .map_err(ImageError::Load)?;
    }
    stream
        .send(StreamInput::CloseStdin)
        .await
        .map_err(ImageError::Load)?;
    while let Some(frame) = stream.next().await {
        match frame.map_err(ImageError::Load)? {
            StreamEvent::End { .. } => return Ok(()),
            StreamEvent::Failed { message, .. } => return Err(ImageError::Engine(message)),
            StreamEvent::Output { .. } | StreamEvent::Started => {}
        }
    }
    Err(ImageError::Engine(
        "the load stream ended without a result".into(),
    ))
}
