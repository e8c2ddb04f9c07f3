//! The periodic sweep: compares the database with what the driver really
//! has, project by project.
//!
//! - An instance the driver has but no record knows is deleted.
//! - A recorded instance the driver no longer has fails its containers
//!   ("instance deleted") and is forgotten.
//! - A project whose listing failed (its trust revoked, its cloud down) is
//!   judged not at all: its instances are neither confirmed nor denied, so
//!   nothing of it changes. It is recorded as unreachable (what the hosts
//!   API shows beside its instances, and what lets one of its users' next
//!   calls replace a refused delegation), counted in
//!   [`crate::metrics::PROJECT_LISTING_FAILURES_TOTAL`], and logged once
//!   per change of cause, not at every sweep.

use std::collections::{BTreeMap, HashSet};

use crate::db::{DbError, Store};
use crate::domain::{ContainerStatus, InstanceId, InstanceStatus, ProjectId, UnreachableCause};
use crate::driver::{DriverError, DriverErrorKind, InstanceDriver};
use crate::metrics::Metrics;

/// One sweep. A driver that cannot list at all skips it whole.
///
/// # Errors
/// [`DbError`] when the database fails; the sweep stops there and the next
/// one starts over.
pub(super) async fn sweep(
    store: &Store,
    driver: &dyn InstanceDriver,
    metrics: &Metrics,
) -> Result<(), DbError> {
    let listing = match driver.list().await {
        Ok(listing) => listing,
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), "cannot list instances; skipping the sweep");
            return Ok(());
        }
    };
    record_reachability(store, metrics, &listing.unlisted).await?;
    let existing: HashSet<&InstanceId> = listing.instances.iter().collect();
    let recorded = store.list_instances(None).await?;
    let recorded_ids: HashSet<&InstanceId> = recorded.iter().map(|i| &i.id).collect();
    for orphan in existing.difference(&recorded_ids) {
        tracing::warn!(instance_id = %orphan, "deleting an instance no container record knows");
        if let Err(e) = driver.delete(orphan).await {
            tracing::warn!(instance_id = %orphan, error = %crate::error_chain(&e), "could not delete an orphan instance");
        }
    }
    for instance in &recorded {
        // A booting instance may not be listed yet; an unlisted project's
        // instances are neither there nor gone.
        if instance.status == InstanceStatus::Booting
            || existing.contains(&instance.id)
            || listing.unlisted.contains_key(&instance.project_id)
        {
            continue;
        }
        tracing::warn!(instance_id = %instance.id, project_id = %instance.project_id, "an instance vanished; failing its containers");
        for container in store.containers_on_instance(&instance.id).await? {
            if container.status == ContainerStatus::Deleting {
                store.delete_container(container.id).await?;
                continue;
            }
            store
                .set_status_any(
                    container.id,
                    ContainerStatus::Error,
                    Some(&format!(
                        "instance deleted: its instance {} no longer exists",
                        instance.id
                    )),
                )
                .await?;
            store.unbind_container(container.id).await?;
        }
        store.delete_instance(&instance.id).await?;
    }
    Ok(())
}

/// What a failed listing of a project means for it.
fn cause_of(e: &DriverError) -> UnreachableCause {
    match e.kind() {
        DriverErrorKind::DelegationRefused => UnreachableCause::DelegationRefused,
        DriverErrorKind::OverQuota
        | DriverErrorKind::Unavailable
        | DriverErrorKind::Invalid
        | DriverErrorKind::Internal => UnreachableCause::CloudUnavailable,
    }
}

/// The reason shown beside each of an unreachable project's instances:
/// what failed and what its users can do.
pub fn unreachable_reason(cause: UnreachableCause, e: &DriverError) -> String {
    match cause {
        UnreachableCause::DelegationRefused => {
            let refusal = std::error::Error::source(e)
                .map(crate::error_chain)
                .unwrap_or_else(|| e.to_string());
            format!(
                "cannot reach OpenStack for this project: the trust it delegated to Nest was \
                 refused ({refusal}); the project's users must run any container command \
                 (e.g. `osc container-list`) to renew it"
            )
        }
        UnreachableCause::CloudUnavailable => format!(
            "cannot reach OpenStack for this project: {}; Nest leaves its instances as they \
             are and tries again at the next sweep",
            crate::error_chain(e)
        ),
    }
}

/// Records which projects could not be listed, and logs each change.
async fn record_reachability(
    store: &Store,
    metrics: &Metrics,
    unlisted: &BTreeMap<ProjectId, DriverError>,
) -> Result<(), DbError> {
    for (project, e) in unlisted {
        let cause = cause_of(e);
        metrics.project_listing_failed(cause);
        let reason = unreachable_reason(cause, e);
        let before = store.mark_unreachable(project, cause, &reason).await?;
        // The reason's words change with every answer (request ids); the
        // cause is the state.
        if before.map(|b| b.cause) != Some(cause) {
            tracing::warn!(
                project_id = %project,
                cause = cause.as_str(),
                error = %crate::error_chain(e),
                "cannot list this project's instances; the sweep leaves them as they are until it can"
            );
        }
    }
    for marked in store.unreachable_projects().await? {
        if !unlisted.contains_key(&marked.project_id)
            && store.clear_unreachable(&marked.project_id).await?
        {
            tracing::info!(project_id = %marked.project_id, since = %marked.since, "this project's instances are listed again");
        }
    }
    metrics.set_unreachable_projects(unlisted.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::domain::{Container, ContainerId, Instance, UserId};
    use crate::driver::{BootRequest, BootedInstance, Listing, Reason};

    /// Answers each listing with what the test set; deletes are recorded.
    #[derive(Default)]
    struct ScriptedDriver {
        /// Instances listed, by project.
        listed: Mutex<BTreeMap<ProjectId, Vec<InstanceId>>>,
        /// Projects whose listing fails, with the error's kind.
        failing: Mutex<BTreeMap<ProjectId, DriverErrorKind>>,
        deleted: Mutex<Vec<InstanceId>>,
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().expect("no test panics under this lock")
    }

    fn error_of(project: &ProjectId, kind: DriverErrorKind) -> DriverError {
        match kind {
            DriverErrorKind::DelegationRefused => DriverError::DelegationRefused {
                project: project.clone(),
                source: Box::new(Reason("keystone answered 404".into())),
            },
            _ => DriverError::Unavailable {
                what: "OpenStack".into(),
                source: Box::new(Reason("nova answered 503".into())),
            },
        }
    }

    impl InstanceDriver for ScriptedDriver {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn boot(&self, _: BootRequest) -> BoxFuture<'_, Result<BootedInstance, DriverError>> {
            Box::pin(async { Err(DriverError::invalid("boot", "not in these tests")) })
        }
        fn delete<'a>(&'a self, id: &'a InstanceId) -> BoxFuture<'a, Result<(), DriverError>> {
            lock(&self.deleted).push(id.clone());
            Box::pin(async { Ok(()) })
        }
        fn list(&self) -> BoxFuture<'_, Result<Listing, DriverError>> {
            let failing = lock(&self.failing).clone();
            let mut listing = Listing::default();
            for (project, ids) in lock(&self.listed).iter() {
                match failing.get(project) {
                    Some(kind) => {
                        listing
                            .unlisted
                            .insert(project.clone(), error_of(project, *kind));
                    }
                    None => listing.instances.extend(ids.iter().cloned()),
                }
            }
            Box::pin(async move { Ok(listing) })
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        driver: ScriptedDriver,
        metrics: Metrics,
    }

    fn id(s: &str) -> InstanceId {
        InstanceId::parse(s).expect("a valid id")
    }

    fn project(s: &str) -> ProjectId {
        ProjectId::parse(s).expect("a valid project")
    }

    impl Fixture {
        async fn new() -> Self {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let url = format!("sqlite://{}/nest.db?mode=rwc", dir.path().display());
            let store = Store::connect(&url).await.expect("SQLite opens");
            Self {
                _dir: dir,
                store,
                driver: ScriptedDriver::default(),
                metrics: Metrics::new(),
            }
        }

        /// A Ready instance of `owner`, listed by the driver, holding one
        /// Running container; returns the container.
        async fn running(&self, owner: &str, instance: &str) -> ContainerId {
            let owner = project(owner);
            let instance = Instance {
                id: id(instance),
                project_id: owner.clone(),
                driver: "scripted".into(),
                status: InstanceStatus::Ready,
                status_reason: None,
                vcpus: 2.0,
                memory_mib: 2048,
                addresses: BTreeMap::new(),
                created_at: crate::db::utc_now(),
                empty_since: None,
            };
            self.store
                .insert_instance(&instance)
                .await
                .expect("inserted");
            let now = crate::db::utc_now();
            let container = Container {
                id: ContainerId::generate(),
                name: format!("web-{instance}", instance = instance.id),
                project_id: owner.clone(),
                user_id: UserId::parse("alice").expect("a valid user id"),
                spec: crate::domain::ContainerSpec {
                    image: "busybox".into(),
                    cpu: 0.5,
                    memory_mib: 64,
                    ..Default::default()
                },
                status: ContainerStatus::Creating,
                status_reason: None,
                desired_running: true,
                instance_id: None,
                docker_id: None,
                created_at: now.clone(),
                updated_at: now,
                health: None,
            };
            self.store
                .insert_container(&container)
                .await
                .expect("inserted");
            self.store
                .bind_container(container.id, &instance.id, &[])
                .await
                .expect("bound");
            self.store
                .set_status_any(container.id, ContainerStatus::Running, None)
                .await
                .expect("running");
            lock(&self.driver.listed)
                .entry(owner)
                .or_default()
                .push(instance.id);
            container.id
        }

        /// The server of `instance` is deleted behind Nest's back.
        fn vanish(&self, owner: &str, instance: &str) {
            if let Some(ids) = lock(&self.driver.listed).get_mut(&project(owner)) {
                ids.retain(|i| *i != id(instance));
            }
        }

        fn fail(&self, owner: &str, kind: DriverErrorKind) {
            lock(&self.driver.failing).insert(project(owner), kind);
        }

        fn answer(&self, owner: &str) {
            lock(&self.driver.failing).remove(&project(owner));
        }

        async fn sweep(&self) {
            sweep(&self.store, &self.driver, &self.metrics)
                .await
                .expect("the sweep runs");
        }

        async fn status(&self, c: ContainerId) -> (ContainerStatus, Option<String>) {
            let c = self.store.get_container(c).await.expect("recorded");
            (c.status, c.status_reason)
        }
    }

    #[tokio::test]
    async fn a_project_whose_listing_fails_is_left_alone_while_the_others_are_judged() {
        let f = Fixture::new().await;
        let demo = f.running("demo", "i-demo").await;
        let alt = f.running("alt", "i-alt").await;
        f.fail("demo", DriverErrorKind::DelegationRefused);
        // Both servers deleted behind Nest's back; only alt's can be seen.
        f.vanish("demo", "i-demo");
        f.vanish("alt", "i-alt");
        f.sweep().await;

        let (status, reason) = f.status(alt).await;
        assert_eq!(status, ContainerStatus::Error);
        assert!(
            reason
                .as_deref()
                .unwrap_or_default()
                .contains("instance deleted"),
            "{reason:?}"
        );
        assert_eq!(f.status(demo).await, (ContainerStatus::Running, None));
        let kept = f.store.get_instance(&id("i-demo")).await.expect("kept");
        assert_eq!(kept.status, InstanceStatus::Ready);
        assert!(
            f.store.get_instance(&id("i-alt")).await.is_err(),
            "forgotten"
        );
        let marked = f
            .store
            .unreachable_project(&project("demo"))
            .await
            .expect("reads")
            .expect("demo is marked");
        assert_eq!(marked.cause, UnreachableCause::DelegationRefused);
        assert!(
            marked
                .reason
                .starts_with("cannot reach OpenStack for this project: the trust it delegated"),
            "{}",
            marked.reason
        );
        assert!(
            marked.reason.contains("keystone answered 404"),
            "{}",
            marked.reason
        );
        assert!(
            marked.reason.contains("run any container command"),
            "{}",
            marked.reason
        );
        assert_eq!(
            f.store
                .unreachable_project(&project("alt"))
                .await
                .expect("reads"),
            None
        );
        assert!(lock(&f.driver.deleted).is_empty(), "no orphan deleted");

        // Once demo answers again, its vanished server is noticed.
        f.answer("demo");
        f.sweep().await;
        let (status, reason) = f.status(demo).await;
        assert_eq!(status, ContainerStatus::Error, "{reason:?}");
        assert_eq!(f.store.unreachable_projects().await.expect("reads"), []);
    }

    #[tokio::test]
    async fn an_unlisted_projects_instances_are_not_taken_for_orphans_and_others_are() {
        let f = Fixture::new().await;
        f.running("demo", "i-demo").await;
        f.fail("demo", DriverErrorKind::Unavailable);
        // A server of alt no record knows.
        lock(&f.driver.listed)
            .entry(project("alt"))
            .or_default()
            .push(id("i-stray"));
        f.sweep().await;
        assert_eq!(*lock(&f.driver.deleted), [id("i-stray")]);
        let marked = f
            .store
            .unreachable_project(&project("demo"))
            .await
            .expect("reads")
            .expect("marked");
        assert_eq!(marked.cause, UnreachableCause::CloudUnavailable);
        assert!(
            marked.reason.contains("nova answered 503"),
            "{}",
            marked.reason
        );
    }

    #[tokio::test]
    async fn failures_are_counted_every_sweep_and_the_gauge_follows() {
        let f = Fixture::new().await;
        f.running("demo", "i-demo").await;
        f.running("alt", "i-alt").await;
        f.fail("demo", DriverErrorKind::DelegationRefused);
        f.fail("alt", DriverErrorKind::Unavailable);
        f.sweep().await;
        f.sweep().await;
        let text = f.metrics.render();
        assert!(
            text.contains(r#"nest_project_listing_failures_total{cause="delegation_refused"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"nest_project_listing_failures_total{cause="cloud_unavailable"} 2"#),
            "{text}"
        );
        assert!(text.contains("nest_unreachable_projects 2"), "{text}");
        f.answer("alt");
        f.sweep().await;
        assert!(f.metrics.render().contains("nest_unreachable_projects 1"));
    }

    #[tokio::test]
    async fn a_marked_project_keeps_its_first_failure_time_until_the_cause_changes() {
        let f = Fixture::new().await;
        f.running("demo", "i-demo").await;
        f.fail("demo", DriverErrorKind::DelegationRefused);
        f.sweep().await;
        let first = f
            .store
            .unreachable_project(&project("demo"))
            .await
            .expect("reads")
            .expect("marked");
        f.sweep().await;
        let second = f
            .store
            .unreachable_project(&project("demo"))
            .await
            .expect("reads")
            .expect("marked");
        assert_eq!(first.since, second.since, "one outage, not one per sweep");
        f.fail("demo", DriverErrorKind::Unavailable);
        f.sweep().await;
        let third = f
            .store
            .unreachable_project(&project("demo"))
            .await
            .expect("reads")
            .expect("marked");
        assert_eq!(third.cause, UnreachableCause::CloudUnavailable);
        assert_ne!(third.since, first.since, "a new cause is a new state");
    }
}
