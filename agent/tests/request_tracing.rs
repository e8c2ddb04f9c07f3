//! One request id follows a command or a stream into the agent's logs: the
//! dispatcher and the stream multiplexer run each in a span carrying the
//! service's `request_id`, the relay's id and the `container_id`, with the
//! real Docker engine of this machine (`/var/run/docker.sock`) behind them.
//!
//! Each test acts as its own agent (a unique instance id) and asks about a
//! container that does not exist, so it creates nothing; it captures what
//! is logged with a subscriber of its own, on the test's one thread.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nest_agent::convert::ConvertError;
use nest_agent::docker::Engine;
use nest_agent::log_fields::{COMMAND_ID, CONTAINER_ID, REQUEST_ID, STREAM_ID};
use nest_agent::model::{
    Command, CommandId, CommandRequest, ContainerUuid, LogsRequest, Outbound, StreamId, StreamOpen,
    StreamOpenRequest, StreamOutput,
};
use nest_agent::session::commands::Dispatcher;
use nest_agent::session::streams::Streams;
use nest_core::ErrorKind;
use nest_core::ids::{InstanceId, RequestId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

const SOCKET: &str = "/var/run/docker.sock";
/// Longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(30);
/// Room for the messages one test sends towards the relay.
const OUTBOUND_CAPACITY: usize = 16;

/// The fields of one span or event, as text.
#[derive(Clone, Debug, Default)]
struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// One logged event: its message and the spans around it, outermost first.
#[derive(Clone, Debug)]
struct Logged {
    message: String,
    spans: Vec<(String, Fields)>,
}

impl Logged {
    /// The value of `field` on the span named `span` around this event.
    fn field(&self, span: &str, field: &str) -> Option<&str> {
        self.spans
            .iter()
            .find(|(name, _)| name == span)
            .and_then(|(_, fields)| fields.0.get(field))
            .map(String::as_str)
    }
}

/// Records every event with the fields of the spans it happened in.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Logged>>>);

impl Capture {
    /// The first event logged with `message`.
    fn find(&self, message: &str) -> Logged {
        let logged = self.0.lock().unwrap_or_else(|p| p.into_inner());
        logged
            .iter()
            .find(|l| l.message == message)
            .cloned()
            .unwrap_or_else(|| panic!("nothing logged as {message:?}; logged: {logged:#?}"))
    }
}

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let spans = ctx
            .event_scope(event)
            .into_iter()
            .flat_map(|scope| scope.from_root())
            .map(|span| {
                let fields = span.extensions().get::<Fields>().cloned();
                (span.name().to_owned(), fields.unwrap_or_default())
            })
            .collect();
        let logged = Logged {
            message: fields.0.remove("message").unwrap_or_default(),
            spans,
        };
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(logged);
    }
}

/// What one test needs to drive the session's dispatch: a real engine for
/// a fresh instance id, the queue towards the relay, and the task owners.
struct Rig {
    engine: Engine,
    out: mpsc::Sender<Outbound>,
    sent: mpsc::Receiver<Outbound>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Rig {
    async fn new(name: &str) -> Self {
        let instance = format!("test-tracing-{name}-{}", std::process::id());
        let instance = InstanceId::parse(&instance).expect("valid instance id");
        let engine = Engine::connect(Path::new(SOCKET), instance)
            .await
            .expect("engine reachable");
        let (out, sent) = mpsc::channel(OUTBOUND_CAPACITY);
        Self {
            engine,
            out,
            sent,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    async fn next_sent(&mut self) -> Outbound {
        tokio::time::timeout(WAIT, self.sent.recv())
            .await
            .expect("a message within the wait")
            .expect("the queue stays open")
    }

    /// Stops every task the test started.
    async fn stop(self) {
        self.cancel.cancel();
        self.tasks.close();
        tokio::time::timeout(WAIT, self.tasks.wait())
            .await
            .expect("tasks stop");
    }
}

fn missing_container() -> ContainerUuid {
    ContainerUuid::parse(&format!("missing-{}", std::process::id())).expect("valid uuid")
}

fn failure_of(outbound: Outbound, command: CommandId) -> ErrorKind {
    match outbound {
        Outbound::Result {
            command: answered,
            outcome: Err(failure),
        } if answered == command => failure.kind,
        other => panic!("expected a failed result for {command}, got {other:?}"),
    }
}

#[tokio::test]
async fn commands_are_logged_with_their_request_id_and_container() {
    let capture = Capture::default();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let mut rig = Rig::new("commands").await;
    let mut dispatcher = Dispatcher::new(
        rig.engine.clone(),
        rig.out.clone(),
        rig.tasks.clone(),
        rig.cancel.clone(),
    );
    let uuid = missing_container();
    let request = |id, command| CommandRequest {
        id: CommandId(id),
        request_id: Some(RequestId::generate()),
        timeout: WAIT,
        command,
    };

    // A read runs at once; a start goes through its container's queue; a
    // refused command is answered without reaching the engine.
    let inspect = request(1, Ok(Command::Inspect(uuid.clone())));
    let inspect_id = inspect.request_id.clone().expect("set above");
    dispatcher.dispatch(inspect);
    assert_eq!(
        failure_of(rig.next_sent().await, CommandId(1)),
        ErrorKind::NotFound
    );
    let start = request(2, Ok(Command::Start(uuid.clone())));
    let start_id = start.request_id.clone().expect("set above");
    dispatcher.dispatch(start);
    assert_eq!(
        failure_of(rig.next_sent().await, CommandId(2)),
        ErrorKind::NotFound
    );
    let refused = request(3, Err(ConvertError::EmptyCommand));
    let refused_id = refused.request_id.clone().expect("set above");
    dispatcher.dispatch(refused);
    assert_eq!(
        failure_of(rig.next_sent().await, CommandId(3)),
        ErrorKind::Invalid
    );

    let failed: Vec<Logged> = {
        let logged = capture.0.lock().unwrap_or_else(|p| p.into_inner());
        logged
            .iter()
            .filter(|l| l.message == "command failed")
            .cloned()
            .collect()
    };
    assert_eq!(failed.len(), 2, "{failed:#?}");
    for (logged, request_id, command_id, command) in [
        (&failed[0], &inspect_id, "1", "inspect"),
        (&failed[1], &start_id, "2", "start"),
    ] {
        assert_eq!(
            logged.field("command", REQUEST_ID),
            Some(request_id.as_str())
        );
        assert_eq!(logged.field("command", COMMAND_ID), Some(command_id));
        assert_eq!(logged.field("command", "command"), Some(command));
        assert_eq!(logged.field("command", CONTAINER_ID), Some(uuid.as_str()));
    }
    let refused = capture.find("command refused");
    assert_eq!(
        refused.field("command", REQUEST_ID),
        Some(refused_id.as_str())
    );
    assert_eq!(refused.field("command", CONTAINER_ID), None);
    rig.stop().await;
}

#[tokio::test]
async fn streams_are_logged_with_their_request_id_and_container() {
    let capture = Capture::default();
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    let mut rig = Rig::new("streams").await;
    let streams = Streams::new(
        rig.engine.clone(),
        rig.out.clone(),
        rig.tasks.clone(),
        rig.cancel.clone(),
    );
    let uuid = missing_container();
    let request_id = RequestId::generate();
    streams.open(StreamOpenRequest {
        id: StreamId(5),
        request_id: Some(request_id.clone()),
        open: Ok(StreamOpen::Logs(LogsRequest {
            uuid: uuid.clone(),
            stdout: true,
            stderr: true,
            tail: None,
            since: None,
            timestamps: false,
            follow: false,
        })),
    });
    match rig.next_sent().await {
        Outbound::Stream {
            stream: StreamId(5),
            output: StreamOutput::Failed(failure),
        } => assert_eq!(failure.kind, ErrorKind::NotFound, "{failure:?}"),
        other => panic!("expected the stream to fail, got {other:?}"),
    }

    let failed = capture.find("stream failed");
    assert_eq!(
        failed.field("stream", REQUEST_ID),
        Some(request_id.as_str())
    );
    assert_eq!(failed.field("stream", STREAM_ID), Some("5"));
    assert_eq!(failed.field("stream", "stream"), Some("logs"));
    assert_eq!(failed.field("stream", CONTAINER_ID), Some(uuid.as_str()));
    rig.stop().await;
}
