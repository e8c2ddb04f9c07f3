//! The Docker endpoint's listener: TLS only (a plain-TCP Docker endpoint
//! would carry tenants' credentials in clear, and the CLI's detach keys
//! misbehave over plain tcp://, §1), HTTP/1.1 with upgrades for the
//! hijacked attach and exec. Each connection's client certificate is
//! judged once, right after the handshake and before any request is read
//! ([`ClientCertificateJudge::judge`]), and the verdict is put into its
//! requests as a [`ClientCertificate`]; which caller it stands for, or how
//! a refusal is said, is the router's business.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::ca::{ClientCertificate, ClientCertificateJudge};

/// Most connections served at once; more wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 1024;
/// Longest a client may take to finish the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` over `tls` until `cancel` fires, with
/// client certificates judged by `judge`; each connection is a task on
/// `tasks`, and in-flight requests get to finish (hijacked streams end
/// when the service's tasks are cancelled).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    judge: ClientCertificateJudge,
    router: Router,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    let acceptor = TlsAcceptor::from(tls);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = cancel.cancelled() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little
                    // rather than spin.
                    tracing::warn!(error = %e, "Docker endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let judge = judge.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "Docker endpoint: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "Docker endpoint: TLS handshake timed out");
                    return;
                }
            };
            let certificate: ClientCertificate = judge.judge(
                tls.get_ref().1.peer_certificates(),
                rustls_pki_types::UnixTime::now(),
            );
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(certificate.clone());
                    router.clone().oneshot(request.map(axum::body::Body::new))
                },
            );
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = builder
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "Docker endpoint: connection ended");
                    }
                }
                () = cancel.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}
