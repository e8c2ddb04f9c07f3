//! Images Nest holds itself (the embedded, file-backed store), one store
//! per project so that a project only ever sees and runs its own uploads,
//! and loading them into an instance's engine through the agent link.

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
            Self::Read(_) => ErrorKind::Internal,
        }
    }
}

/// The image stores of every project, under one directory.
pub struct ProjectImages {
    root: PathBuf,
    stores: Mutex<HashMap<ProjectId, Arc<FileImageStore>>>,
}

impl ProjectImages {
    /// Stores under `root/<project id>/`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// The store of `project`, opened on first use.
    ///
    /// # Errors
    /// [`ImageError::Store`] when its directory cannot be opened.
    pub async fn store(&self, project: &ProjectId) -> Result<Arc<FileImageStore>, ImageError> {
        if let Some(store) = self
            .stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(project)
        {
            return Ok(store.clone());
        }
        // The project id's charset is safe as a directory name.
        let store = Arc::new(
            FileImageStore::open(FileStoreConfig::new(self.root.join(project.as_str()))).await?,
        );
        Ok(self
            .stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(project.clone())
            .or_insert(store)
            .clone())
    }

    /// Streams a stored image of `project` into `instance`'s engine and
    /// returns the reference to run it by.
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
        let (record, file) = store.open(id).await?;
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
