//! The engine's event feed, narrowed to this agent's containers and to the
//! lifecycle actions Nest tracks, each with the container's state read
//! right after it.
//!
//! The feed is a plain stream: it does not reconnect. When the engine
//! closes it (engine restart) the stream yields the error, if any, and ends;
//! the caller re-subscribes and reconciles with [`Engine::list`].

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::{Stream, StreamExt};

use super::error::DockerError;
use super::{
    Engine, LABEL_CONTAINER_UUID, LABEL_INSTANCE_ID, LABEL_MANAGED_BY, MANAGED_BY, container_name,
};
use crate::log_fields::CONTAINER_ID;
use crate::model::{ContainerEvent, ContainerUuid};

/// Engine actions passed on to Nest; the rest (exec_*, attach, resize, top,
/// ...) are the agent's own doing or irrelevant to a container's state.
const FORWARDED_ACTIONS: &[&str] = &[
    "create", "start", "die", "oom", "kill", "stop", "pause", "unpause", "restart", "destroy",
];
/// Health events carry the status in the action (`health_status: healthy`).
const HEALTH_STATUS_PREFIX: &str = "health_status";
/// The attribute of a `die` event that holds the exit code.
const EXIT_CODE_ATTRIBUTE: &str = "exitCode";
/// The attribute holding the container's engine name.
const NAME_ATTRIBUTE: &str = "name";

impl Engine {
    /// Lifecycle events of this agent's containers, as they happen.
    ///
    /// Each event but `destroy` carries the container's state, read when the
    /// event is passed on: it may already reflect a later event. A state
    /// that cannot be read is left out rather than failing the stream.
    ///
    /// # Cancel safety
    /// Dropping the stream closes the engine connection; events not yet
    /// read are lost, so a new subscription should be followed by a
    /// [`Engine::list`].
    pub fn events(
        &self,
    ) -> impl Stream<Item = Result<ContainerEvent, DockerError>> + Send + 'static {
        self.events_since(None)
    }

    /// Like [`Engine::events`], but first replays the events since `since`
    /// that the engine still holds (dockerd keeps the last 1000), so that a
    /// re-subscription does not miss what happened in between.
    ///
    /// # Cancel safety
    /// As [`Engine::events`].
    pub fn events_since(
        &self,
        since: Option<SystemTime>,
    ) -> impl Stream<Item = Result<ContainerEvent, DockerError>> + Send + 'static {
        let filters = HashMap::from([
            ("type", vec!["container".to_owned()]),
            // Several label filters must all match.
            (
                "label",
                vec![
                    format!("{LABEL_INSTANCE_ID}={}", self.instance_id),
                    format!("{LABEL_MANAGED_BY}={MANAGED_BY}"),
                ],
            ),
        ]);
        let mut options = EventsOptionsBuilder::default().filters(&filters);
        if let Some(since) = since {
            // The engine reads `seconds.nanoseconds`; a time before the
            // epoch means "everything it holds".
            let since = since.duration_since(UNIX_EPOCH).unwrap_or_default();
            options = options.since(&format!("{}.{:09}", since.as_secs(), since.subsec_nanos()));
        }
        let options = options.build();
        let engine = self.clone();
        self.docker
            .events(Some(options))
            .filter_map(move |message| {
                let engine = engine.clone();
                async move {
                    match message {
                        Ok(message) => engine.container_event(message).await.map(Ok),
                        Err(source) => Some(Err(DockerError::Engine {
                            operation: "events",
                            target: "engine".to_owned(),
                            source,
                        })),
                    }
                }
            })
    }

    /// The agent's event for one engine event, or `None` when it is not one
    /// Nest tracks or not about a container of this agent.
    async fn container_event(&self, message: EventMessage) -> Option<ContainerEvent> {
        if message.typ != Some(EventMessageTypeEnum::CONTAINER) {
            return None;
        }
        let action = message.action?;
        if !(FORWARDED_ACTIONS.contains(&action.as_str())
            || action.starts_with(HEALTH_STATUS_PREFIX))
        {
            return None;
        }
        let actor = message.actor?;
        let attributes = actor.attributes.unwrap_or_default();
        // A uuid this agent would refuse is one it cannot have created.
        let uuid = ContainerUuid::parse(attributes.get(LABEL_CONTAINER_UUID)?).ok()?;
        // The engine filtered on the labels; the name must match as well,
        // exactly as for every other operation.
        if attributes.get(NAME_ATTRIBUTE) != Some(&container_name(&uuid))
            || attributes.get(LABEL_INSTANCE_ID).map(String::as_str)
                != Some(self.instance_id.as_str())
        {
            return None;
        }
        let docker_id = actor.id.unwrap_or_default();
        let exit_code = if action == "die" {
            attributes
                .get(EXIT_CODE_ATTRIBUTE)
                .and_then(|code| code.parse::<i64>().ok())
        } else {
            None
        };
        let time_nanos = message
            .time_nano
            .or_else(|| message.time.map(|secs| secs.saturating_mul(1_000_000_000)))
            .unwrap_or(0);
        let state = if action == "destroy" || docker_id.is_empty() {
            None
        } else {
            match self.find_by_ref(&uuid, &docker_id).await {
                Ok(managed) => Some(managed.state()),
                Err(err) => {
                    tracing::debug!(
                        { CONTAINER_ID } = %uuid,
                        error = %err,
                        "container state unreadable after event {action}"
                    );
                    None
                }
            }
        };
        Some(ContainerEvent {
            uuid,
            docker_id,
            action,
            exit_code,
            time_nanos,
            state,
        })
    }
}
