//! What each instance's agent supports, from the hello of its latest
//! session. An agent older than a `ContainerSpec` field ignores it: it
//! would run a networked container on the default bridge, where names do
//! not resolve, or drop a stop signal or an extra host without a word.
//! So a container that needs a feature never goes to an agent that did
//! not list it ([`required_features`]).
//!
//! Kept in memory: every session starts with a hello, and the relay's
//! watch feed replays the live sessions to a new watcher, so the record
//! is rebuilt after a restart. Until an instance's agent has been heard
//! from, its instance counts as capable for placement (a booting instance
//! gets this build's agent), but no container that needs a feature is
//! created on it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use nest_relay::version::{FEATURE_ENGINE_OPTIONS, FEATURE_HEALTHCHECK, FEATURE_NETWORKS};

use super::{Scheduler, lock};
use crate::domain::{ContainerSpec, InstanceId};

/// Longest agent release quoted in a reason; the agent chose it.
const MAX_VERSION_CHARS: usize = 64;

/// What one agent said it is.
#[derive(Clone, Debug)]
struct SeenAgent {
    version: String,
    features: BTreeSet<String>,
}

/// The agents heard from, by instance.
#[derive(Default)]
pub(super) struct AgentsSeen(Mutex<HashMap<InstanceId, SeenAgent>>);

/// Whether the agent of an instance may be given a container.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FeatureSupport {
    /// It listed every feature the container needs.
    Yes,
    /// Not heard from yet (booting, or this process just started).
    Unknown,
    /// It did not list one; the reason the container fails with.
    No(String),
}

/// A feature a container needs: its name in a hello, what it is called in
/// a reason, and what the tenant can do without it.
struct Needed {
    feature: &'static str,
    what: &'static str,
    instead: &'static str,
}

/// The agent features `spec` needs.
fn required_features(spec: &ContainerSpec) -> Vec<Needed> {
    let mut needed = Vec::new();
    if !spec.networks.is_empty() {
        needed.push(Needed {
            feature: FEATURE_NETWORKS,
            what: "user-defined network support",
            instead: "remove the network's containers there",
        });
    }
    let engine = &spec.engine;
    if engine.sets_runtime_options() {
        needed.push(Needed {
            feature: FEATURE_ENGINE_OPTIONS,
            what: "support for --stop-signal, --stop-timeout, --init, --read-only and --add-host",
            instead: "create the container without those options",
        });
    }
    if engine.healthcheck.is_some() {
        needed.push(Needed {
            feature: FEATURE_HEALTHCHECK,
            what: "healthcheck support",
            instead: "create the container without a healthcheck",
        });
    }
    needed
}

impl Scheduler {
    /// Records what the agent of `instance` said in the hello of its
    /// newest session.
    pub fn agent_connected(&self, instance: &InstanceId, version: &str, features: &[String]) {
        let version: String = version
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_VERSION_CHARS)
            .collect();
        let features = features.iter().cloned().collect();
        lock(&self.agents_seen.0).insert(instance.clone(), SeenAgent { version, features });
    }

    /// Whether a container with `spec` may go to `instance`'s agent.
    pub(super) fn feature_support(
        &self,
        instance: &InstanceId,
        spec: &ContainerSpec,
    ) -> FeatureSupport {
        let needed = required_features(spec);
        if needed.is_empty() {
            return FeatureSupport::Yes;
        }
        let seen = lock(&self.agents_seen.0);
        let Some(agent) = seen.get(instance) else {
            return FeatureSupport::Unknown;
        };
        let Some(missing) = needed.iter().find(|n| !agent.features.contains(n.feature)) else {
            return FeatureSupport::Yes;
        };
        let version = if agent.version.is_empty() {
            "unknown"
        } else {
            &agent.version
        };
        FeatureSupport::No(format!(
            "instance {instance} runs an agent without {} (agent version {version}); \
             upgrade its agent, or {}",
            missing.what, missing.instead
        ))
    }
}
