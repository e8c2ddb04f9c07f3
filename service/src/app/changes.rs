//! The caller's project's container changes as they happen, from the
//! database's change feed: what `docker wait` follows (`docker events`
//! follows the recorded events of `events.rs`).

use tokio::sync::broadcast;

use super::{App, CallContext};
pub use crate::db::{ChangeKind, ContainerChange};
use crate::domain::ProjectId;

/// A subscription to one project's container changes.
#[derive(Debug)]
pub struct ProjectChanges {
    project: ProjectId,
    feed: broadcast::Receiver<ContainerChange>,
}

/// What [`ProjectChanges::next`] gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeEvent {
    /// A change of one of the project's containers.
    Change(ContainerChange),
    /// Changes were missed (the subscriber was too slow): re-read what
    /// matters from the database.
    Missed(u64),
    /// The feed is gone (the service is stopping).
    Closed,
}

impl ProjectChanges {
    /// The next change of the project's containers.
    ///
    /// # Cancel safety
    /// Safe: a change is only taken from the feed when it is returned.
    pub async fn next(&mut self) -> ChangeEvent {
        loop {
            match self.feed.recv().await {
                Ok(change) if change.project_id == self.project => {
                    return ChangeEvent::Change(change);
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => return ChangeEvent::Missed(n),
                Err(broadcast::error::RecvError::Closed) => return ChangeEvent::Closed,
            }
        }
    }
}

impl App {
    /// Subscribes to the changes of the caller's project's containers
    /// written from now on (by this process; see [`crate::db::ContainerChange`]).
    pub fn project_changes(&self, cx: &CallContext) -> ProjectChanges {
        ProjectChanges {
            project: cx.caller.project_id.clone(),
            feed: self.store().subscribe_changes(),
        }
    }
}
