//! What a peer may hold on the relay before it has proved anything.
//!
//! The relay listens where every instance, and so every tenant, can reach
//! it, and a TLS handshake needs no client certificate (enrollment comes
//! before an agent has one). So every connection is admitted against a
//! cap per source address and a cap in all, and then carries a deadline:
//! its first request must start within `first_request_timeout` of the
//! accept (TLS handshake and HTTP/2 preface included), and afterwards it
//! may sit with no request in flight for at most `idle_timeout`.
//!
//! The deadline lives in the connection's socket wrapper ([`Bounded`]),
//! under TLS: when it passes while the connection waits to read, the read
//! fails and the connection (and its descriptor) is dropped, however far
//! the peer got. Requests are seen by [`TrackRequests`], a layer on the
//! gRPC server that finds the connection by its peer address.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tonic::codegen::http;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use crate::config::ConnectionLimits;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics or awaits under these locks.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a connection was refused at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("its source address already holds {0} connections")]
    PerSource(usize),
    #[error("the relay already holds {0} connections")]
    Total(usize),
}

/// The relay's open connections.
pub(crate) struct Connections {
    first_request_timeout: Duration,
    idle_timeout: Duration,
    max_per_source: usize,
    max_total: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
    live: HashMap<SocketAddr, Arc<ConnState>>,
}

/// What one connection has done so far.
struct ConnState {
    accepted: Instant,
    first_request: AtomicBool,
    in_flight: AtomicUsize,
    last_active: Mutex<Instant>,
}

impl Connections {
    pub fn new(limits: &ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            first_request_timeout: limits.first_request_timeout.get(),
            idle_timeout: limits.idle_timeout.get(),
            max_per_source: limits.max_connections_per_source,
            max_total: limits.max_connections,
            table: Mutex::new(Table::default()),
        })
    }

    /// Admits a just-accepted connection from `peer`, or refuses it when
    /// its source or the relay is at its cap.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<Admission, Refusal> {
        let mut table = lock(&self.table);
        if table.total >= self.max_total {
            return Err(Refusal::Total(table.total));
        }
        let from_source = table.by_source.get(&peer.ip()).copied().unwrap_or(0);
        if from_source >= self.max_per_source {
            return Err(Refusal::PerSource(from_source));
        }
        let now = Instant::now();
        let state = Arc::new(ConnState {
            accepted: now,
            first_request: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_active: Mutex::new(now),
        });
        table.total += 1;
        *table.by_source.entry(peer.ip()).or_insert(0) += 1;
        table.live.insert(peer, state.clone());
        Ok(Admission {
            connections: self.clone(),
            peer,
            state,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        lock(&self.table).total
    }

    /// Notes a request starting on the connection from `peer`; the guard
    /// marks its end.
    fn request_started(&self, peer: SocketAddr) -> Option<RequestGuard> {
        let state = lock(&self.table).live.get(&peer).cloned()?;
        state.first_request.store(true, Ordering::Relaxed);
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        *lock(&state.last_active) = Instant::now();
        Some(RequestGuard { state })
    }

    /// When the connection must next be looked at, or why it must close.
    fn deadline(&self, state: &ConnState, now: Instant) -> Result<Instant, &'static str> {
        if !state.first_request.load(Ordering::Relaxed) {
            let due = state.accepted + self.first_request_timeout;
            return if now >= due {
                Err("no request within the first-request timeout")
            } else {
                Ok(due)
            };
        }
        if state.in_flight.load(Ordering::Relaxed) > 0 {
            // Looked at again later: the requests may have ended by then.
            return Ok(now + self.idle_timeout);
        }
        let due = *lock(&state.last_active) + self.idle_timeout;
        if now >= due {
            Err("no request in flight for the idle timeout")
        } else {
            Ok(due)
        }
    }
}

/// A connection's place in [`Connections`]; released when dropped.
pub(crate) struct Admission {
    connections: Arc<Connections>,
    peer: SocketAddr,
    state: Arc<ConnState>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut table = lock(&self.connections.table);
        table.total = table.total.saturating_sub(1);
        if let Some(n) = table.by_source.get_mut(&self.peer.ip()) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                table.by_source.remove(&self.peer.ip());
            }
        }
        if table
            .live
            .get(&self.peer)
            .is_some_and(|s| Arc::ptr_eq(s, &self.state))
        {
            table.live.remove(&self.peer);
        }
    }
}

/// Marks the end of a request (its response body was dropped).
struct RequestGuard {
    state: Arc<ConnState>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        *lock(&self.state.last_active) = Instant::now();
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's socket, closed (its reads fail) once its deadline passes.
pub(crate) struct Bounded<IO> {
    io: IO,
    admission: Admission,
    timer: Pin<Box<Sleep>>,
}

impl<IO> Bounded<IO> {
    pub fn new(io: IO, admission: Admission) -> Self {
        let first = admission.state.accepted + admission.connections.first_request_timeout;
        Self {
            io,
            admission,
            timer: Box::pin(tokio::time::sleep_until(first)),
        }
    }

    /// Called while the read waits: fails once the deadline has passed,
    /// and otherwise arms the timer to look again.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let connections = &self.admission.connections;
            match connections.deadline(&self.admission.state, Instant::now()) {
                Err(reason) => {
                    tracing::debug!(peer = %self.admission.peer, reason, "closing a connection");
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, reason)));
                }
                Ok(due) => {
                    if self.timer.deadline() != due {
                        self.timer.as_mut().reset(due);
                    }
                    if self.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Bounded<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(read) => Poll::Ready(read),
            Poll::Pending => self.check(cx),
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Bounded<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<IO: Connected> Connected for Bounded<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// The layer that tells [`Connections`] when requests start and end.
#[derive(Clone)]
pub(crate) struct TrackRequests {
    pub connections: Arc<Connections>,
}

impl<S> tower::Layer<S> for TrackRequests {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Tracked {
            inner,
            connections: self.connections.clone(),
        }
    }
}

/// A gRPC service whose requests are tracked per connection.
#[derive(Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
    connections: Arc<Connections>,
}

type TrackedFuture<E> =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Tracked<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let guard = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.get_ref().remote_addr())
            .and_then(|peer| self.connections.request_started(peer));
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(match guard {
                // The request lasts as long as its response body.
                Some(guard) => response.map(|body| tonic::body::Body::new(Guarded { body, guard })),
                None => response,
            })
        })
    }
}

/// A response body that holds its request's guard.
struct Guarded {
    body: tonic::body::Body,
    guard: RequestGuard,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let _ = &self.guard;
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nest_core::duration::HumanDuration;

    fn limits(per_source: usize, total: usize) -> ConnectionLimits {
        ConnectionLimits {
            first_request_timeout: HumanDuration(Duration::from_secs(2)),
            idle_timeout: HumanDuration(Duration::from_secs(5)),
            max_connections_per_source: per_source,
            max_connections: total,
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[tokio::test]
    async fn sources_and_the_total_are_capped_and_released() {
        let connections = Connections::new(&limits(2, 3));
        let a1 = connections.admit(addr("10.0.0.1:1")).expect("first");
        let _a2 = connections.admit(addr("10.0.0.1:2")).expect("second");
        assert_eq!(
            connections.admit(addr("10.0.0.1:3")).err(),
            Some(Refusal::PerSource(2))
        );
        let _b1 = connections
            .admit(addr("10.0.0.2:1"))
            .expect("another source");
        assert_eq!(
            connections.admit(addr("10.0.0.3:1")).err(),
            Some(Refusal::Total(3))
        );
        drop(a1);
        assert_eq!(connections.open(), 2);
        connections
            .admit(addr("10.0.0.1:4"))
            .expect("a released place is free again");
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_first_request_and_idleness() {
        let connections = Connections::new(&limits(8, 8));
        let peer = addr("10.0.0.1:1");
        let admission = connections.admit(peer).expect("admitted");
        let state = admission.state.clone();
        let start = Instant::now();
        assert_eq!(
            connections.deadline(&state, start),
            Ok(start + Duration::from_secs(2))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        let guard = connections.request_started(peer).expect("tracked");
        // While a request is in flight the connection never idles out.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(connections.deadline(&state, Instant::now()).is_ok());
        drop(guard);
        let ended = Instant::now();
        assert_eq!(
            connections.deadline(&state, ended),
            Ok(ended + Duration::from_secs(5))
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(connections.deadline(&state, Instant::now()).is_err());

        let late = addr("10.0.0.1:2");
        let other = connections.admit(late).expect("admitted");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(connections.deadline(&other.state, Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_socket_fails_its_read_at_the_deadline() {
        use tokio::io::AsyncReadExt;
        let connections = Connections::new(&limits(8, 8));
        let admission = connections.admit(addr("10.0.0.1:1")).expect("admitted");
        let (_peer, ours) = tokio::io::duplex(64);
        let mut bounded = Bounded::new(ours, admission);
        let mut buf = [0u8; 8];
        let started = Instant::now();
        let err = bounded.read(&mut buf).await.expect_err("the read fails");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        drop(bounded);
        assert_eq!(connections.open(), 0, "the place is released");
    }
}
