//! The service's metrics registry, which `GET /metrics` renders: the API's
//! request metrics (recorded by `api::metrics`), the counters of the
//! service's own security events, and the sweep's per-project listing
//! failures (both recorded by the reconciler).
//!
//! The recorder is owned by whoever builds the service rather than
//! installed globally, so that two services can run in one test process.

use std::sync::Arc;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::domain::UnreachableCause;

/// Counter of agent messages dropped because they named something their
/// instance is not entitled to, by kind (see [`Violation`]).
pub const AGENT_SCOPE_VIOLATIONS_TOTAL: &str = "nest_agent_scope_violations_total";

/// Counter of project listings that failed at a sweep (one per project
/// per sweep), by `cause` ([`UnreachableCause::as_str`]): while it grows,
/// the sweep judges none of those projects' instances.
pub const PROJECT_LISTING_FAILURES_TOTAL: &str = "nest_project_listing_failures_total";

/// Gauge of the projects whose instances the last sweep could not list.
pub const UNREACHABLE_PROJECTS: &str = "nest_unreachable_projects";

/// What an agent sent beyond its instance's scope; the `kind` label of
/// [`AGENT_SCOPE_VIOLATIONS_TOTAL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Violation {
    /// A container event about a container recorded elsewhere.
    ContainerEvent,
    /// An inventory entry naming a container recorded elsewhere.
    Inventory,
    /// A stream frame or credit for a stream its session never opened.
    StreamFrame,
    /// A result for a command its session was never sent.
    CommandResult,
    /// Anything else the relay refused from an agent.
    Other,
}

impl Violation {
    /// The kind's label value, as the relay reports it too.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContainerEvent => "container_event",
            Self::Inventory => "inventory",
            Self::StreamFrame => "stream_frame",
            Self::CommandResult => "command_result",
            Self::Other => "other",
        }
    }

    /// The kind a relay named; unknown words are [`Violation::Other`].
    pub fn from_relay(word: &str) -> Self {
        match word {
            "container_event" => Self::ContainerEvent,
            "inventory" => Self::Inventory,
            "stream_frame" => Self::StreamFrame,
            "command_result" => Self::CommandResult,
            _ => Self::Other,
        }
    }
}

/// The service's metrics registry. Cheap to clone; clones share counts.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            recorder: Arc::new(PrometheusBuilder::new().build_recorder()),
        }
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }

    /// Runs `f` with this registry as the `metrics` macros' recorder.
    pub(crate) fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        metrics::with_local_recorder(&*self.recorder, f)
    }

    /// Counts `count` agent messages of `kind` dropped as out of scope.
    pub fn agent_scope_violations(&self, kind: Violation, count: u64) {
        self.with(|| {
            metrics::counter!(AGENT_SCOPE_VIOLATIONS_TOTAL, "kind" => kind.as_str())
                .increment(count);
        });
    }

    /// Counts one project whose listing failed at a sweep, for `cause`.
    pub fn project_listing_failed(&self, cause: UnreachableCause) {
        self.with(|| {
            metrics::counter!(PROJECT_LISTING_FAILURES_TOTAL, "cause" => cause.as_str())
                .increment(1);
        });
    }

    /// Sets how many projects the last sweep could not list.
    pub fn set_unreachable_projects(&self, count: usize) {
        self.with(|| {
            metrics::gauge!(UNREACHABLE_PROJECTS).set(u32::try_from(count).unwrap_or(u32::MAX));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_counted_by_kind() {
        let metrics = Metrics::new();
        metrics.agent_scope_violations(Violation::ContainerEvent, 2);
        metrics.agent_scope_violations(Violation::ContainerEvent, 1);
        metrics.agent_scope_violations(Violation::from_relay("stream_frame"), 4);
        let text = metrics.render();
        assert!(
            text.contains(r#"nest_agent_scope_violations_total{kind="container_event"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"nest_agent_scope_violations_total{kind="stream_frame"} 4"#),
            "{text}"
        );
    }

    #[test]
    fn relay_words_round_trip() {
        for kind in [
            Violation::ContainerEvent,
            Violation::Inventory,
            Violation::StreamFrame,
            Violation::CommandResult,
            Violation::Other,
        ] {
            assert_eq!(Violation::from_relay(kind.as_str()), kind);
        }
        assert_eq!(Violation::from_relay("nonsense"), Violation::Other);
    }
}
