//! Helpers for tests across the tree (behind the `testing` feature): the
//! one bounded poll that replaces fixed sleeps.

use std::future::Future;
use std::time::Duration;

/// How often [`eventually`] checks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Some`, for at most `timeout`.
///
/// # Panics
/// When the deadline passes, naming `what` and the timeout.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
