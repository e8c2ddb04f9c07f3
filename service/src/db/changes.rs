//! The feed of container changes this process writes: every insert,
//! status change, rename and delete of a container row is announced on a
//! bounded broadcast channel once its statement succeeded, with the time
//! it did. What waits for a container (`docker wait`, server-side `--rm`)
//! and the event recorder behind `docker events` (`app::events`)
//! subscribe here instead of polling the database in a loop.
//!
//! The feed is a hint, not a log: a subscriber that falls behind is told
//! how much it missed (and re-reads the database), and changes written by
//! another replica on the same PostgreSQL never appear here, so waiters
//! also re-read on a slow timer.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::domain::{ContainerId, ContainerStatus, ProjectId};

/// Changes kept for slow subscribers before they are told they lagged.
pub const CHANGE_FEED_CAPACITY: usize = 1024;

/// One change of a container row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerChange {
    /// The container.
    pub container: ContainerId,
    /// Its project (subscribers show each project only its own).
    pub project_id: ProjectId,
    /// Its name after the change.
    pub name: String,
    /// What changed.
    pub kind: ChangeKind,
    /// When: the moment its statement succeeded (events carry it).
    pub at: OffsetDateTime,
}

/// What happened to a container row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// It was stored.
    Created {
        /// The image it runs, as its spec names it.
        image: String,
        /// Its labels.
        labels: BTreeMap<String, String>,
    },
    /// Its status was set.
    Status {
        /// The new status.
        status: ContainerStatus,
        /// Why, as recorded.
        reason: Option<String>,
    },
    /// It was renamed.
    Renamed,
    /// Its row was deleted.
    Deleted,
}

/// The sending side, held by the [`super::Store`].
#[derive(Clone, Debug)]
pub(super) struct ChangeFeed(broadcast::Sender<ContainerChange>);

impl ChangeFeed {
    pub(super) fn new() -> Self {
        Self(broadcast::channel(CHANGE_FEED_CAPACITY).0)
    }

    /// Announces a change; nobody listening is fine.
    pub(super) fn send(&self, change: ContainerChange) {
        let _ = self.0.send(change);
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<ContainerChange> {
        self.0.subscribe()
    }
}
