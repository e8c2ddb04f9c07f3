//! [`RelayAgents`]: the agent link over a relay's control API, with the
//! timeout of every call.
//!
//! Each call gets a span carrying its `request_id` (which the relay passes
//! on to the agent), `instance_id` and `container_id`. Building the wire
//! messages and reading the answers is `convert.rs`'s job; this file only
//! moves them, so it never looks inside a protocol type.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use nest_relay::client::{RelayClient, RelayError, RelayStream};
use tracing::instrument;

use super::convert;
use super::{
    AgentAction, AgentError, AgentFuture, AgentLink, AgentStream, CreateRequest, EngineState,
    EventFeed, ExecCommand, ExecOutput, ProcessTable, ResourceUsage, Resources, StreamEvent,
    StreamInput, StreamOpen,
};
use crate::domain::{ContainerId, InstanceId, RequestId};

/// How long creating a container may take on its agent (an image pull
/// included).
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a state action (start, stop, remove, ...) or a resource update
/// may take on the agent.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a read (inspect, list, top, stats) may take on the agent.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a captured exec may run.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(600);

impl From<RelayError> for AgentError {
    fn from(e: RelayError) -> Self {
        Self::Refused {
            kind: e.kind,
            message: e.message,
        }
    }
}

/// The agent link through one relay.
#[derive(Clone)]
pub struct RelayAgents {
    client: RelayClient,
}

impl RelayAgents {
    /// Drives agents through the relay `client` is connected to.
    pub fn new(client: RelayClient) -> Self {
        Self { client }
    }

    #[instrument(skip_all, fields(request_id = %request_id, instance_id = %instance, container_id = %request.container))]
    async fn create_on(
        &self,
        request_id: &RequestId,
        instance: &InstanceId,
        request: CreateRequest,
    ) -> Result<EngineState, AgentError> {
        let container = request.container;
        let output = self
            .client
            .execute(
                instance,
                request_id.as_str(),
                convert::create(request),
                CREATE_TIMEOUT,
            )
            .await?;
        convert::engine_state(container, output, "create")
    }

    #[instrument(skip_all, fields(request_id = %request_id, instance_id = %instance, container_id = %container, action = action.name()))]
    async fn act_on(
        &self,
        request_id: &RequestId,
        instance: &InstanceId,
        container: ContainerId,
        action: AgentAction,
    ) -> Result<Option<EngineState>, AgentError> {
        let output = self
            .client
            .execute(
                instance,
                request_id.as_str(),
                convert::act(container, action),
                ACTION_TIMEOUT,
            )
            .await?;
        Ok(convert::acted(container, output))
    }

    #[instrument(skip_all, fields(request_id = %request_id, instance_id = %instance, container_id = %container))]
    async fn inspect_on(
        &self,
        request_id: &RequestId,
        instance: &InstanceId,
        container: ContainerId,
    ) -> Result<EngineState, AgentError> {
        let output = self
            .client
            .execute(
                instance,
                request_id.as_str(),
                convert::inspect(container),
                QUERY_TIMEOUT,
            )
            .await?;
        convert::engine_state(container, output, "inspect")
    }

    #[instrument(skip_all, fields(request_id = %request_id, instance_id = %instance))]
    async fn list_on(
        &self,
        request_id: &RequestId,
        instance: &InstanceId,
    ) -> Result<Vec<EngineState>, AgentError> {
        let output = self
            .client
            .execute(
                instance,
                request_id.as_str(),
                convert::list(),
                QUERY_TIMEOUT,
            )
            .await?;
        convert::inventory(output)
    }

    #[instrument(skip_all, fields(request_id = %request_id, instance_id = %instance, container_id = %container))]
    async fn update_on(
        &self,
        request_id: &RequestId,
        instance: &InstanceId,
        container: ContainerId,
        resources: Resources,
    ) -> Result<EngineState, AgentError> {
        let output = self
            .client
            .execute(
                instance,
                request_id.as_str(),
                convert::update(container, resources),
                ACTION_TIMEOUT,
            )
            .await?;
        convert::engine_state(container, output, "update")
    }

    #[instrument(skip_all, fields(request_id = %request_id, instance_id = %instance, container_id = %container))]
    async fn top_on(
        &self,
        request_id: &RequestId,
        instance: &InstanceId,
        container: ContainerId,
        ps_args: Option<String>,
    ) -> Result<ProcessTable, AgentError> {
        let output = self
            .client
            .execute(
                instance,
                request_id.as_str(),
                convert::top(container, ps_args),
                QUERY_TIMEOUT,
            )
            .await?;
        convert::process_table(output)
    }

    #[instrument(skip_all, fields(request_id = %request_id, instance_id = %instance, container_id = %container))]
    async fn stats_on(
        &self,
        request_id: &RequestId,
        instance: &InstanceId,
        container: ContainerId,
    ) -> Result<ResourceUsage, AgentError> {
        let output = self
            .client
            .execute(
                instance,
                request_id.as_str(),
                convert::stats(container),
                QUERY_TIMEOUT,
            )
            .await?;
        convert::resource_usage(output)
    }

    #[instrument(skip_all, fields(request_id = %request_id, instance_id = %instance, container_id = %container))]
    async fn exec_on(
        &self,
        request_id: &RequestId,
        instance: &InstanceId,
        container: ContainerId,
        command: ExecCommand,
    ) -> Result<ExecOutput, AgentError> {
        let output = self
            .client
            .execute(
                instance,
                request_id.as_str(),
                convert::exec(container, command),
                EXEC_TIMEOUT,
            )
            .await?;
        convert::exec_output(output)
    }

    #[instrument(skip_all, fields(request_id = %request_id, instance_id = %instance, container_id = tracing::field::Empty))]
    async fn stream_on(
        &self,
        request_id: &RequestId,
        instance: &InstanceId,
        open: StreamOpen,
    ) -> Result<Box<dyn AgentStream>, AgentError> {
        if let Some(container) = open.container() {
            tracing::Span::current().record("container_id", tracing::field::display(container));
        }
        let stream = self
            .client
            .open_stream(instance, request_id.as_str(), convert::stream_open(open))
            .await?;
        Ok(Box::new(RelayAgentStream { stream }))
    }

    #[instrument(skip_all, fields(request_id = %request_id))]
    async fn watch_relay(&self, request_id: &RequestId) -> Result<EventFeed, AgentError> {
        let feed = self.client.watch().await?;
        Ok(feed
            .filter_map(|item| {
                std::future::ready(match item {
                    Ok(event) => convert::agent_event(event).map(Ok),
                    Err(status) => Some(Err(AgentError::from(RelayError::from(status)))),
                })
            })
            .boxed())
    }
}

impl AgentLink for RelayAgents {
    fn create<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        request: CreateRequest,
    ) -> AgentFuture<'a, EngineState> {
        self.create_on(request_id, instance, request).boxed()
    }

    fn act<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
        action: AgentAction,
    ) -> AgentFuture<'a, Option<EngineState>> {
        self.act_on(request_id, instance, container, action).boxed()
    }

    fn inspect<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
    ) -> AgentFuture<'a, EngineState> {
        self.inspect_on(request_id, instance, container).boxed()
    }

    fn list<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
    ) -> AgentFuture<'a, Vec<EngineState>> {
        self.list_on(request_id, instance).boxed()
    }

    fn update_resources<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
        resources: Resources,
    ) -> AgentFuture<'a, EngineState> {
        self.update_on(request_id, instance, container, resources)
            .boxed()
    }

    fn top<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
        ps_args: Option<String>,
    ) -> AgentFuture<'a, ProcessTable> {
        self.top_on(request_id, instance, container, ps_args)
            .boxed()
    }

    fn stats<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
    ) -> AgentFuture<'a, ResourceUsage> {
        self.stats_on(request_id, instance, container).boxed()
    }

    fn exec<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        container: ContainerId,
        command: ExecCommand,
    ) -> AgentFuture<'a, ExecOutput> {
        self.exec_on(request_id, instance, container, command)
            .boxed()
    }

    fn open_stream<'a>(
        &'a self,
        request_id: &'a RequestId,
        instance: &'a InstanceId,
        open: StreamOpen,
    ) -> AgentFuture<'a, Box<dyn AgentStream>> {
        self.stream_on(request_id, instance, open).boxed()
    }

    fn watch<'a>(&'a self, request_id: &'a RequestId) -> AgentFuture<'a, EventFeed> {
        self.watch_relay(request_id).boxed()
    }
}

/// A relay stream seen through the agent link's types.
struct RelayAgentStream {
    stream: RelayStream,
}

impl AgentStream for RelayAgentStream {
    fn send(&mut self, input: StreamInput) -> AgentFuture<'_, ()> {
        async move {
            match input {
                StreamInput::Stdin(data) => self.stream.send_stdin(&data).await?,
                StreamInput::Resize(size) => {
                    self.stream
                        .resize(u32::from(size.width), u32::from(size.height))
                        .await?;
                }
                StreamInput::CloseStdin => self.stream.close_stdin().await?,
            }
            Ok(())
        }
        .boxed()
    }

    fn next(&mut self) -> BoxFuture<'_, Option<Result<StreamEvent, AgentError>>> {
        async move {
            self.stream
                .next()
                .await
                .map(|frame| frame.map(convert::stream_event).map_err(AgentError::from))
        }
        .boxed()
    }
}
