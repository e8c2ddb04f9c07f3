//! Forwarding the engine's container events to the relay.
//!
//! One long-lived task watches the engine's event feed (for this agent's
//! containers only) and queues events in a bounded buffer that the current
//! session drains. While no session is up the buffer fills and further
//! events are dropped and counted: the inventory sent on reconnect tells the
//! service the state they would have described.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use nest_core::backoff::Backoff;
use nest_core::process::error_chain;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::docker::Engine;
use crate::log_fields::{CONTAINER_ID, DOCKER_ID};
use crate::model::ContainerEvent;

/// Events held while the relay is unreachable.
pub const EVENT_BUFFER: usize = 1024;

/// Events dropped because the buffer was full, for diagnostics.
#[derive(Clone, Default)]
pub struct DroppedEvents(Arc<AtomicU64>);

impl DroppedEvents {
    /// How many events were dropped so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Watches the engine's events until `cancel`, reconnecting to the engine
/// with backoff when its feed breaks.
pub async fn watch(
    engine: Engine,
    buffer: mpsc::Sender<ContainerEvent>,
    dropped: DroppedEvents,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        let mut events = Box::pin(engine.events());
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return,
                next = events.next() => next,
            };
            match next {
                Some(Ok(event)) => {
                    backoff.reset();
                    tracing::debug!(
                        { CONTAINER_ID } = %event.uuid,
                        { DOCKER_ID } = %event.docker_id,
                        action = %event.action,
                        "container event"
                    );
                    if buffer.try_send(event).is_err() {
                        let total = dropped.0.fetch_add(1, Ordering::Relaxed) + 1;
                        if total.is_power_of_two() {
                            tracing::warn!(
                                dropped = total,
                                "event buffer full; dropping events until the relay is back"
                            );
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %error_chain(&e), "engine event feed failed");
                    break;
                }
                None => {
                    tracing::warn!("engine event feed ended");
                    break;
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}
