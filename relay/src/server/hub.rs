//! The relay's shared state: the live session of each instance, the watch
//! feed and the attached certificate signers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::session::Session;
use crate::convert::WireErrorKind;
use crate::proto::{self, signing_reply, signing_request, watch_event};
use nest_core::ErrorKind;
use nest_core::ids::InstanceId;

/// Watch events kept for slow watchers; one that falls further behind is
/// told to resync rather than making the relay remember more.
const WATCH_CAPACITY: usize = 4096;
/// Signing requests queued to one signer.
const SIGNER_QUEUE_CAPACITY: usize = 64;
/// How long an enrollment or renewal waits for the service to sign.
pub(crate) const SIGNING_TIMEOUT: Duration = Duration::from_secs(15);

/// What a signing request asks for.
pub(crate) enum SigningSubject {
    Enroll { token: String },
    Renew { instance: InstanceId },
}

struct Signer {
    id: u64,
    queue: mpsc::Sender<proto::SigningRequest>,
}

/// The relay's shared state.
pub(crate) struct Hub {
    sessions: Mutex<HashMap<InstanceId, Arc<Session>>>,
    watch: broadcast::Sender<proto::WatchEvent>,
    signers: Mutex<Vec<Signer>>,
    signing_pending: Mutex<HashMap<u64, oneshot::Sender<signing_reply::Outcome>>>,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics or awaits under these locks.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a signing request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SigningError {
    #[error("no certificate signer is attached; is nest-service connected to this relay?")]
    NoSigner,
    #[error("the certificate signer did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("{}", .0.message)]
    Refused(proto::Error),
}

impl SigningError {
    pub fn into_status(self) -> tonic::Status {
        let kind = match &self {
            Self::NoSigner => ErrorKind::Unavailable,
            Self::TimedOut(_) => ErrorKind::Timeout,
            Self::Refused(e) => ErrorKind::from_proto(e.kind),
        };
        crate::status::status(kind, self.to_string())
    }
}

impl Hub {
    pub fn new() -> Self {
        let (watch, _) = broadcast::channel(WATCH_CAPACITY);
        Self {
            sessions: Mutex::new(HashMap::new()),
            watch,
            signers: Mutex::new(Vec::new()),
            signing_pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// An id for a new agent session, unique across relays and restarts
    /// (watchers compare them to tell a new session from an old one).
    pub fn new_session_id(&self) -> u64 {
        let mut bytes = [0u8; 8];
        match aws_lc_rs::rand::fill(&mut bytes) {
            Ok(()) => u64::from_le_bytes(bytes),
            // Without randomness, time-based ids still differ across restarts.
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                (nanos as u64) ^ self.next_id()
            }
        }
    }

    /// The live session of `instance`, if any.
    pub fn session(&self, instance: &InstanceId) -> Option<Arc<Session>> {
        lock(&self.sessions).get(instance).cloned()
    }

    /// Makes `session` the live one for its instance; an older one is closed.
    pub fn register(&self, session: Arc<Session>) {
        let old = lock(&self.sessions).insert(session.instance.clone(), session.clone());
        if let Some(old) = old {
            tracing::info!(
                instance_id = %session.instance,
                old_session = old.id,
                new_session = session.id,
                "a newer session replaces the older one"
            );
            old.close();
        }
        self.publish(
            &session.instance,
            watch_event::Kind::Connected(session.connected()),
        );
    }

    /// Removes `session` if it is still the live one, and reports its end.
    pub fn unregister(&self, session: &Session, reason: &str) {
        {
            let mut sessions = lock(&self.sessions);
            if sessions.get(&session.instance).map(|s| s.id) == Some(session.id) {
                sessions.remove(&session.instance);
            }
        }
        session.close();
        self.publish(
            &session.instance,
            watch_event::Kind::Disconnected(proto::AgentDisconnected {
                reason: reason.to_owned(),
                session_id: session.id,
            }),
        );
    }

    /// Every live session, for a new watcher's first view and for shutdown.
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }

    pub fn publish(&self, instance: &InstanceId, kind: watch_event::Kind) {
        // No receivers is fine: nobody watches yet.
        let _ = self.watch.send(proto::WatchEvent {
            instance_id: instance.to_string(),
            kind: Some(kind),
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<proto::WatchEvent> {
        self.watch.subscribe()
    }

    /// Attaches a signer; the newest one answers requests.
    pub fn add_signer(&self, queue: mpsc::Sender<proto::SigningRequest>) -> u64 {
        let id = self.next_id();
        lock(&self.signers).push(Signer { id, queue });
        id
    }

    pub fn remove_signer(&self, id: u64) {
        lock(&self.signers).retain(|s| s.id != id);
    }

    /// Hands a signer's answer to the request waiting for it.
    pub fn signing_reply(&self, reply: proto::SigningReply) {
        let Some(outcome) = reply.outcome else {
            return;
        };
        if let Some(tx) = lock(&self.signing_pending).remove(&reply.request_id) {
            let _ = tx.send(outcome);
        }
    }

    /// Asks the attached signer to sign `csr_pem`.
    ///
    /// # Cancel safety
    /// Safe: a dropped request's answer is discarded.
    pub async fn sign(
        &self,
        subject: SigningSubject,
        csr_pem: String,
    ) -> Result<proto::SignedCertificate, SigningError> {
        let queue = lock(&self.signers)
            .last()
            .map(|s| s.queue.clone())
            .ok_or(SigningError::NoSigner)?;
        let request_id = self.next_id();
        let (tx, rx) = oneshot::channel();
        lock(&self.signing_pending).insert(request_id, tx);
        let result = self
            .sign_inner(queue, request_id, subject, csr_pem, rx)
            .await;
        lock(&self.signing_pending).remove(&request_id);
        result
    }

    async fn sign_inner(
        &self,
        queue: mpsc::Sender<proto::SigningRequest>,
        request_id: u64,
        subject: SigningSubject,
        csr_pem: String,
        rx: oneshot::Receiver<signing_reply::Outcome>,
    ) -> Result<proto::SignedCertificate, SigningError> {
        let kind = match subject {
            SigningSubject::Enroll { token } => signing_request::Kind::EnrollmentToken(token),
            SigningSubject::Renew { instance } => {
                signing_request::Kind::RenewInstanceId(instance.to_string())
            }
        };
        let request = proto::SigningRequest {
            request_id,
            csr_pem,
            kind: Some(kind),
        };
        let answer = tokio::time::timeout(SIGNING_TIMEOUT, async {
            queue
                .send(request)
                .await
                .map_err(|_| SigningError::NoSigner)?;
            rx.await.map_err(|_| SigningError::NoSigner)
        })
        .await
        .map_err(|_| SigningError::TimedOut(SIGNING_TIMEOUT))??;
        match answer {
            signing_reply::Outcome::Signed(signed) => Ok(signed),
            signing_reply::Outcome::Error(e) => Err(SigningError::Refused(e)),
        }
    }

    /// The capacity of a signer's queue.
    pub const fn signer_queue_capacity() -> usize {
        SIGNER_QUEUE_CAPACITY
    }
}
