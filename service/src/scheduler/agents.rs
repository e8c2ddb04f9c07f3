//! What each instance's agent supports, from the hello of its latest
//! session: an agent older than `ContainerSpec.networks` ignores the
//! field and would run a networked container on the default bridge, where
//! names do not resolve, so such containers never go to it.
//!
//! Kept in memory: every session starts with a hello, and the relay's
//! watch feed replays the live sessions to a new watcher, so the record
//! is rebuilt after a restart. Until an instance's agent has been heard
//! from, its instance counts as capable for placement (a booting instance
//! gets this build's agent), but no networked container is created on it.

use std::collections::HashMap;
use std::sync::Mutex;

use nest_relay::version::FEATURE_NETWORKS;

use super::{Scheduler, lock};
use crate::domain::InstanceId;

/// Longest agent release quoted in a reason; the agent chose it.
const MAX_VERSION_CHARS: usize = 64;

/// What one agent said it is.
#[derive(Clone, Debug)]
struct SeenAgent {
    version: String,
    networks: bool,
}

/// The agents heard from, by instance.
#[derive(Default)]
pub(super) struct AgentsSeen(Mutex<HashMap<InstanceId, SeenAgent>>);

/// Whether the agent of an instance may be given containers with
/// user-defined networks.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NetworkSupport {
    /// It said it supports them.
    Yes,
    /// Not heard from yet (booting, or this process just started).
    Unknown,
    /// It did not say so; the reason a networked container fails with.
    No(String),
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
        let networks = features.iter().any(|f| f == FEATURE_NETWORKS);
        lock(&self.agents_seen.0).insert(instance.clone(), SeenAgent { version, networks });
    }

    /// Whether containers with networks may go to `instance`'s agent.
    pub(super) fn network_support(&self, instance: &InstanceId) -> NetworkSupport {
        match lock(&self.agents_seen.0).get(instance) {
            None => NetworkSupport::Unknown,
            Some(agent) if agent.networks => NetworkSupport::Yes,
            Some(agent) => NetworkSupport::No(format!(
                "instance {instance} runs an agent without user-defined network support \
                 (agent version {}); upgrade its agent, or remove the network's containers there",
                if agent.version.is_empty() {
                    "unknown"
                } else {
                    &agent.version
                }
            )),
        }
    }
}
