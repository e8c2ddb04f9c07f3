//! Container events with history: what `docker events` shows, live and
//! replayed (`--since`, `--until`).
//!
//! One [`EventRecorder`], made with the app and subscribed to the store's
//! change feed before anything else starts, turns each change into
//! [`ContainerEvent`]s (the status→action translation lives here and
//! nowhere else) and appends them to an [`EventHistory`]: one bounded
//! ring per project ([`HISTORY_PER_PROJECT`] events, none older than
//! [`HISTORY_MAX_AGE`]). Appending and broadcasting happen under one
//! lock, and a subscriber takes its replay and subscribes under that same
//! lock, so history and live events meet with no gap and no duplicate;
//! sequence numbers let a subscriber that fell behind refill from the ring.
//!
//! The history is of this process's writes (the change feed is per
//! process), kept in memory: a restart starts it empty, and another
//! replica's changes are not in it. A project's ring holds only its own
//! containers' events, and subscribers read only their own project's.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{App, CallContext, ChangeKind, ContainerChange};
use crate::db::{ListQuery, Store};
use crate::domain::{Container, ContainerId, ContainerStatus, ProjectId};

/// Most events kept per project.
pub const HISTORY_PER_PROJECT: usize = 1000;
/// Events older than this are dropped from the history.
pub const HISTORY_MAX_AGE: Duration = Duration::from_secs(60 * 60);
/// Live events buffered per project for a slow subscriber before it lags
/// (it then refills from the ring, by sequence number).
const LIVE_EVENTS_CAPACITY: usize = 256;
/// How often aged events and idle projects are dropped, when nothing is
/// appended to push them out.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// What happened to a container, as `docker events` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventAction {
    /// It was created.
    Create,
    /// It started running.
    Start,
    /// It stopped running (exited, was stopped or killed, or failed).
    Die,
    /// It was paused.
    Pause,
    /// It was unpaused.
    Unpause,
    /// It is being restarted.
    Restart,
    /// It was renamed.
    Rename,
    /// It was deleted.
    Destroy,
}

impl EventAction {
    /// The action's name in Docker's events (API 1.45, `Action`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Start => "start",
            Self::Die => "die",
            Self::Pause => "pause",
            Self::Unpause => "unpause",
            Self::Restart => "restart",
            Self::Rename => "rename",
            Self::Destroy => "destroy",
        }
    }
}

/// The actions a status change from `before` to `now` shows: none for a
/// status written again or a change that is no transition a client sees.
pub fn actions_for(before: ContainerStatus, now: ContainerStatus) -> &'static [EventAction] {
    use ContainerStatus as S;
    use EventAction as A;
    match (before, now) {
        (b, n) if b == n => &[],
        (S::Paused, S::Running) => &[A::Unpause],
        (_, S::Running) => &[A::Start],
        (_, S::Paused) => &[A::Pause],
        (_, S::Restarting) => &[A::Restart],
        // Started and exited before its first report.
        (S::Creating | S::Created, S::Stopped) => &[A::Start, A::Die],
        (S::Running | S::Paused | S::Restarting, S::Stopped | S::Error) => &[A::Die],
        _ => &[],
    }
}

/// One container event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerEvent {
    /// Its place among all events of this process, from 1, increasing.
    pub seq: u64,
    /// When the change behind it was written.
    pub at: OffsetDateTime,
    /// What happened.
    pub action: EventAction,
    /// The container.
    pub container: ContainerId,
    /// Its name after the change.
    pub name: String,
    /// Its name before a rename.
    pub old_name: Option<String>,
    /// Its image, as its spec names it.
    pub image: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The exit code, for [`EventAction::Die`].
    pub exit_code: Option<i64>,
}

/// What the translation remembers of a container.
#[derive(Clone, Debug)]
struct Known {
    name: String,
    image: String,
    labels: BTreeMap<String, String>,
    /// The last status it was seen in (never `Unknown`: losing sight of a
    /// container is no transition of its own).
    status: ContainerStatus,
}

/// Turns changes into events, remembering each container's image, labels,
/// name and last status (deleted containers are forgotten).
#[derive(Debug, Default)]
struct Translator {
    known: HashMap<ContainerId, Known>,
}

impl Translator {
    /// Remembers a container as it is recorded.
    fn learn(&mut self, c: &Container) {
        self.known.insert(
            c.id,
            Known {
                name: c.name.clone(),
                image: c.spec.image.clone(),
                labels: c.spec.labels.clone(),
                status: c.status,
            },
        );
    }

    /// Remembers a container first seen through a change of its status
    /// (written by another process before): taken as just created, as its
    /// earlier life is not known here.
    fn learn_late(&mut self, c: &Container) {
        self.learn(c);
        if let Some(k) = self.known.get_mut(&c.id) {
            k.status = ContainerStatus::Creating;
        }
    }

    /// Whether `change` is about a container this translation has not
    /// seen, which must be read (see [`Self::learn_late`]) to be shown.
    fn needs_lookup(&self, change: &ContainerChange) -> bool {
        !matches!(
            change.kind,
            ChangeKind::Created { .. } | ChangeKind::Deleted
        ) && !self.known.contains_key(&change.container)
    }

    /// The events of one change (`seq` still 0), in order.
    fn translate(&mut self, change: &ContainerChange) -> Vec<ContainerEvent> {
        let id = change.container;
        let mut old_name = None;
        let mut exit_code = None;
        let actions: &[EventAction] = match &change.kind {
            ChangeKind::Created { image, labels } => {
                self.known.insert(
                    id,
                    Known {
                        name: change.name.clone(),
                        image: image.clone(),
                        labels: labels.clone(),
                        status: ContainerStatus::Creating,
                    },
                );
                &[EventAction::Create]
            }
            ChangeKind::Status { status, reason } => {
                let Some(known) = self.known.get_mut(&id) else {
                    return Vec::new();
                };
                if *status == ContainerStatus::Unknown {
                    return Vec::new();
                }
                let actions = actions_for(known.status, *status);
                known.status = *status;
                if actions.contains(&EventAction::Die) {
                    exit_code = Some(status.exit_code(reason.as_deref()));
                }
                actions
            }
            ChangeKind::Renamed => {
                let Some(known) = self.known.get_mut(&id) else {
                    return Vec::new();
                };
                if known.name == change.name {
                    return Vec::new();
                }
                old_name = Some(std::mem::replace(&mut known.name, change.name.clone()));
                &[EventAction::Rename]
            }
            ChangeKind::Deleted => &[EventAction::Destroy],
        };
        let Some(known) = self.known.get(&id) else {
            // Deleted before this process saw it: nothing to show it by.
            return Vec::new();
        };
        let events = actions
            .iter()
            .map(|&action| ContainerEvent {
                seq: 0,
                at: change.at,
                action,
                container: id,
                name: change.name.clone(),
                old_name: old_name.clone().filter(|_| action == EventAction::Rename),
                image: known.image.clone(),
                labels: known.labels.clone(),
                exit_code: exit_code.filter(|_| action == EventAction::Die),
            })
            .collect();
        if change.kind == ChangeKind::Deleted {
            self.known.remove(&id);
        }
        events
    }
}

/// How much history is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Most events kept per project.
    pub per_project: usize,
    /// Oldest event kept.
    pub max_age: Duration,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self {
            per_project: HISTORY_PER_PROJECT,
            max_age: HISTORY_MAX_AGE,
        }
    }
}

/// The recorded events of every project, and their live feeds.
#[derive(Debug)]
pub struct EventHistory {
    limits: HistoryLimits,
    rings: Mutex<Rings>,
}

#[derive(Debug, Default)]
struct Rings {
    /// The last sequence number given.
    last_seq: u64,
    /// Set at shutdown: live feeds end and nothing more is recorded.
    closed: bool,
    projects: HashMap<ProjectId, ProjectRing>,
}

#[derive(Debug)]
struct ProjectRing {
    events: VecDeque<Arc<ContainerEvent>>,
    live: broadcast::Sender<Arc<ContainerEvent>>,
}

impl ProjectRing {
    fn new() -> Self {
        Self {
            events: VecDeque::new(),
            live: broadcast::channel(LIVE_EVENTS_CAPACITY).0,
        }
    }

    fn evict(&mut self, limits: HistoryLimits, now: OffsetDateTime) {
        while self.events.len() > limits.per_project {
            self.events.pop_front();
        }
        let oldest = now - limits.max_age;
        while self.events.front().is_some_and(|e| e.at < oldest) {
            self.events.pop_front();
        }
    }
}

impl EventHistory {
    /// An empty history keeping at most `limits`.
    pub fn new(limits: HistoryLimits) -> Self {
        Self {
            limits,
            rings: Mutex::new(Rings::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rings> {
        super::lock(&self.rings)
    }

    /// Appends `event` to `project`'s ring with the next sequence number,
    /// drops what falls outside the limits at `now`, and sends it to the
    /// project's live subscribers, all under one lock.
    fn record(&self, project: &ProjectId, mut event: ContainerEvent, now: OffsetDateTime) {
        let mut rings = self.lock();
        if rings.closed {
            return;
        }
        rings.last_seq += 1;
        event.seq = rings.last_seq;
        let ring = rings
            .projects
            .entry(project.clone())
            .or_insert_with(ProjectRing::new);
        let event = Arc::new(event);
        ring.events.push_back(event.clone());
        ring.evict(self.limits, now);
        // Nobody listening is fine.
        let _ = ring.live.send(event);
    }

    /// Drops events older than the limit at `now`, and the rings of
    /// projects with no events and no subscribers.
    fn prune(&self, now: OffsetDateTime) {
        let limits = self.limits;
        self.lock().projects.retain(|_, ring| {
            ring.evict(limits, now);
            !ring.events.is_empty() || ring.live.receiver_count() > 0
        });
    }

    /// Ends every live feed and records nothing more (shutdown).
    fn close(&self) {
        let mut rings = self.lock();
        rings.closed = true;
        rings.projects.clear();
    }

    /// Follows `project`'s events: those kept at or after `replay_from`
    /// first (none when `None`), then live ones, with no gap and no
    /// duplicate between them.
    pub fn subscribe(
        self: &Arc<Self>,
        project: &ProjectId,
        replay_from: Option<OffsetDateTime>,
    ) -> EventSubscription {
        let mut rings = self.lock();
        let last_seq = rings.last_seq;
        let (pending, live) = if rings.closed {
            // The sender goes at once: the feed reads as closed.
            (VecDeque::new(), broadcast::channel(1).1)
        } else {
            let ring = rings
                .projects
                .entry(project.clone())
                .or_insert_with(ProjectRing::new);
            let pending = match replay_from {
                Some(from) => ring
                    .events
                    .iter()
                    .filter(|e| e.at >= from)
                    .cloned()
                    .collect(),
                None => VecDeque::new(),
            };
            (pending, ring.live.subscribe())
        };
        EventSubscription {
            history: self.clone(),
            project: project.clone(),
            pending,
            live,
            last_seq,
        }
    }

    /// `project`'s kept events after sequence number `seq`.
    fn after(&self, project: &ProjectId, seq: u64) -> VecDeque<Arc<ContainerEvent>> {
        self.lock()
            .projects
            .get(project)
            .map(|ring| {
                ring.events
                    .iter()
                    .filter(|e| e.seq > seq)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One subscriber's events: the replay, then live ones.
#[derive(Debug)]
pub struct EventSubscription {
    history: Arc<EventHistory>,
    project: ProjectId,
    /// Events at hand: the replay, or a refill after lagging.
    pending: VecDeque<Arc<ContainerEvent>>,
    live: broadcast::Receiver<Arc<ContainerEvent>>,
    /// The newest event given or covered by the replay; live events up
    /// to it are duplicates.
    last_seq: u64,
}

impl EventSubscription {
    /// The next event already at hand (the replay), without waiting.
    pub fn next_ready(&mut self) -> Option<Arc<ContainerEvent>> {
        let event = self.pending.pop_front()?;
        self.last_seq = self.last_seq.max(event.seq);
        Some(event)
    }

    /// The next event: the replay's, then live ones; `None` once the
    /// history closes (the service is stopping).
    ///
    /// # Cancel safety
    /// Safe: an event is only taken when it is returned.
    pub async fn next(&mut self) -> Option<Arc<ContainerEvent>> {
        loop {
            if let Some(event) = self.next_ready() {
                return Some(event);
            }
            match self.live.recv().await {
                Ok(event) if event.seq > self.last_seq => {
                    self.last_seq = event.seq;
                    return Some(event);
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // The ring still holds what was missed, unless it
                    // was pushed out meanwhile.
                    self.pending = self.history.after(&self.project, self.last_seq);
                    tracing::debug!(
                        missed,
                        refilled = self.pending.len(),
                        "events subscriber fell behind"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Records every container change as events, from the moment it is made.
#[derive(Debug)]
pub struct EventRecorder {
    store: Store,
    feed: broadcast::Receiver<ContainerChange>,
    history: Arc<EventHistory>,
    translator: Translator,
}

impl EventRecorder {
    /// Subscribes to `store`'s change feed now: make it before anything
    /// that writes containers starts, then [`Self::run`] it.
    pub fn new(store: Store, limits: HistoryLimits) -> Self {
        let feed = store.subscribe_changes();
        Self {
            store,
            feed,
            history: Arc::new(EventHistory::new(limits)),
            translator: Translator::default(),
        }
    }

    /// The history it records into.
    pub fn history(&self) -> Arc<EventHistory> {
        self.history.clone()
    }

    /// Records until `cancel`, then closes the history (live subscribers'
    /// streams end).
    pub async fn run(mut self, cancel: CancellationToken) {
        self.learn_all().await;
        let mut prune = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = prune.tick() => self.history.prune(OffsetDateTime::now_utc()),
                change = self.feed.recv() => match change {
                    Ok(change) => self.record(&change).await,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "container events were missed; re-reading containers");
                        self.learn_all().await;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        self.history.close();
    }

    async fn record(&mut self, change: &ContainerChange) {
        if self.translator.needs_lookup(change) {
            match self.store.get_container(change.container).await {
                Ok(c) => self.translator.learn_late(&c),
                Err(e) => {
                    tracing::debug!(container_id = %change.container, error = %crate::error_chain(&e), "no event for a container that cannot be read");
                    return;
                }
            }
        }
        let now = OffsetDateTime::now_utc();
        for event in self.translator.translate(change) {
            self.history.record(&change.project_id, event, now);
        }
    }

    /// Remembers every stored container as it now is, page by page.
    async fn learn_all(&mut self) {
        let mut query = ListQuery::new(None);
        loop {
            let page = match self.store.list_containers(&query).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain(&e), "could not read containers for events");
                    return;
                }
            };
            for c in &page.items {
                if c.status != ContainerStatus::Unknown {
                    self.translator.learn(c);
                }
            }
            match page.items.last() {
                Some(last) if page.has_more => query.marker = Some(last.id),
                _ => return,
            }
        }
    }
}

impl App {
    /// Follows the caller's project's container events: those kept at or
    /// after `replay_from` first (none when `None`), then live ones.
    pub fn container_events(
        &self,
        cx: &CallContext,
        replay_from: Option<OffsetDateTime>,
    ) -> EventSubscription {
        self.inner
            .events
            .subscribe(&cx.caller.project_id, replay_from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContainerStatus as S;
    use EventAction as A;

    fn project(name: &str) -> ProjectId {
        ProjectId::parse(name).expect("a valid project id")
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("a valid time")
    }

    fn event(name: &str, seconds: i64) -> ContainerEvent {
        ContainerEvent {
            seq: 0,
            at: at(seconds),
            action: A::Create,
            container: ContainerId::generate(),
            name: name.into(),
            old_name: None,
            image: "busybox".into(),
            labels: BTreeMap::new(),
            exit_code: None,
        }
    }

    fn names(events: impl IntoIterator<Item = Arc<ContainerEvent>>) -> Vec<String> {
        events.into_iter().map(|e| e.name.clone()).collect()
    }

    fn drain(sub: &mut EventSubscription) -> Vec<String> {
        names(std::iter::from_fn(|| sub.next_ready()))
    }

    fn change(id: ContainerId, name: &str, kind: ChangeKind, seconds: i64) -> ContainerChange {
        ContainerChange {
            container: id,
            project_id: project("alpha"),
            name: name.into(),
            kind,
            at: at(seconds),
        }
    }

    fn status(status: ContainerStatus, reason: Option<&str>) -> ChangeKind {
        ChangeKind::Status {
            status,
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn status_changes_translate_to_dockers_actions() {
        for s in ContainerStatus::ALL {
            assert_eq!(actions_for(s, s), &[] as &[EventAction], "{s:?}");
        }
        assert_eq!(actions_for(S::Creating, S::Running), [A::Start]);
        assert_eq!(actions_for(S::Stopped, S::Running), [A::Start]);
        assert_eq!(actions_for(S::Paused, S::Running), [A::Unpause]);
        assert_eq!(actions_for(S::Running, S::Paused), [A::Pause]);
        assert_eq!(actions_for(S::Running, S::Restarting), [A::Restart]);
        assert_eq!(actions_for(S::Running, S::Stopped), [A::Die]);
        assert_eq!(actions_for(S::Paused, S::Stopped), [A::Die]);
        assert_eq!(actions_for(S::Running, S::Error), [A::Die]);
        assert_eq!(actions_for(S::Creating, S::Stopped), [A::Start, A::Die]);
        assert_eq!(actions_for(S::Created, S::Stopped), [A::Start, A::Die]);
        // A create that failed, a delete begun: nothing a client follows.
        assert!(actions_for(S::Creating, S::Error).is_empty());
        assert!(actions_for(S::Stopped, S::Deleting).is_empty());
        assert!(actions_for(S::Creating, S::Created).is_empty());
    }

    #[test]
    fn a_containers_life_becomes_its_events_with_their_times() {
        let mut t = Translator::default();
        let id = ContainerId::generate();
        let labels = BTreeMap::from([("tier".to_owned(), "web".to_owned())]);
        let created = ChangeKind::Created {
            image: "busybox".into(),
            labels: labels.clone(),
        };
        let mut seen = Vec::new();
        for c in [
            change(id, "web", created, 1),
            change(id, "web", status(S::Running, None), 2),
            change(id, "web", status(S::Running, Some("again")), 3),
            change(id, "web", status(S::Unknown, None), 4),
            change(id, "web", status(S::Running, None), 5),
            change(id, "web", status(S::Paused, None), 6),
            change(id, "web", status(S::Running, None), 7),
            change(id, "front", ChangeKind::Renamed, 8),
            change(
                id,
                "front",
                status(S::Stopped, Some("exited with code 3")),
                9,
            ),
            change(id, "front", ChangeKind::Deleted, 10),
        ] {
            assert!(!t.needs_lookup(&c));
            seen.extend(t.translate(&c));
        }
        let actions: Vec<_> = seen.iter().map(|e| (e.action, e.at)).collect();
        assert_eq!(
            actions,
            [
                (A::Create, at(1)),
                (A::Start, at(2)),
                (A::Pause, at(6)),
                (A::Unpause, at(7)),
                (A::Rename, at(8)),
                (A::Die, at(9)),
                (A::Destroy, at(10)),
            ]
        );
        assert!(
            seen.iter()
                .all(|e| e.image == "busybox" && e.labels == labels)
        );
        assert_eq!(seen[4].old_name.as_deref(), Some("web"));
        assert_eq!(seen[4].name, "front");
        assert_eq!(seen[5].exit_code, Some(3));
        assert!(
            seen.iter()
                .filter(|e| e.action != A::Die)
                .all(|e| e.exit_code.is_none())
        );
        // Forgotten once deleted: a later status change must be looked up.
        assert!(t.needs_lookup(&change(id, "front", status(S::Running, None), 11)));
    }

    #[test]
    fn the_ring_keeps_at_most_its_count_and_age() {
        let limits = HistoryLimits {
            per_project: 3,
            max_age: Duration::from_secs(100),
        };
        let history = Arc::new(EventHistory::new(limits));
        let alpha = project("alpha");
        for (i, name) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            let seconds = i64::try_from(i).expect("small") * 10;
            history.record(&alpha, event(name, seconds), at(seconds));
        }
        let mut sub = history.subscribe(&alpha, Some(at(0)));
        assert_eq!(drain(&mut sub), ["c", "d", "e"]);
        // `since` picks from what is kept, inclusively.
        let mut sub = history.subscribe(&alpha, Some(at(30)));
        assert_eq!(drain(&mut sub), ["d", "e"]);
        // At 135 s, events older than 35 s are gone.
        history.prune(at(135));
        let mut sub = history.subscribe(&alpha, Some(at(0)));
        assert_eq!(drain(&mut sub), ["e"]);
        // Appending evicts by age too.
        history.record(&alpha, event("f", 200), at(200));
        let mut sub = history.subscribe(&alpha, Some(at(0)));
        assert_eq!(drain(&mut sub), ["f"]);
    }

    #[test]
    fn a_project_replays_only_its_own_events() {
        let history = Arc::new(EventHistory::new(HistoryLimits::default()));
        history.record(&project("alpha"), event("mine", 1), at(1));
        history.record(&project("beta"), event("theirs", 2), at(2));
        let mut sub = history.subscribe(&project("beta"), Some(at(0)));
        assert_eq!(drain(&mut sub), ["theirs"]);
        let mut sub = history.subscribe(&project("gamma"), Some(at(0)));
        assert!(drain(&mut sub).is_empty());
    }

    #[test]
    fn idle_projects_are_pruned_but_subscribed_ones_kept() {
        let limits = HistoryLimits {
            per_project: 10,
            max_age: Duration::from_secs(10),
        };
        let history = Arc::new(EventHistory::new(limits));
        history.record(&project("alpha"), event("old", 0), at(0));
        let _watching = history.subscribe(&project("beta"), None);
        history.prune(at(100));
        let rings = history.lock();
        assert!(!rings.projects.contains_key(&project("alpha")));
        assert!(rings.projects.contains_key(&project("beta")));
    }

    #[tokio::test]
    async fn replay_then_live_has_no_gap_and_no_duplicate() {
        let history = Arc::new(EventHistory::new(HistoryLimits::default()));
        let alpha = project("alpha");
        history.record(&alpha, event("one", 1), at(1));
        history.record(&alpha, event("two", 2), at(2));
        let mut sub = history.subscribe(&alpha, Some(at(0)));
        history.record(&alpha, event("three", 3), at(3));
        history.record(&project("beta"), event("other", 3), at(3));
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(sub.next().await.expect("an event"));
        }
        assert_eq!(names(seen.clone()), ["one", "two", "three"]);
        assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq));
        history.close();
        assert_eq!(sub.next().await, None);
        // After close, a subscription ends at once.
        assert_eq!(history.subscribe(&alpha, None).next().await, None);
    }

    #[tokio::test]
    async fn a_subscriber_that_lags_refills_from_the_ring() {
        let history = Arc::new(EventHistory::new(HistoryLimits::default()));
        let alpha = project("alpha");
        let mut sub = history.subscribe(&alpha, None);
        let count = LIVE_EVENTS_CAPACITY + 10;
        for i in 0..count {
            let seconds = i64::try_from(i).expect("small");
            history.record(&alpha, event(&format!("e{i}"), seconds), at(seconds));
        }
        let mut seen = Vec::new();
        for _ in 0..count {
            seen.push(sub.next().await.expect("an event").name.clone());
        }
        let expected: Vec<String> = (0..count).map(|i| format!("e{i}")).collect();
        assert_eq!(seen, expected);
        assert!(sub.next_ready().is_none());
    }
}
