//! Clients of the relay: the mTLS channel both the agent and the service
//! dial, and `RelayClient`, the service's handle for driving agents.
//!
//! ```no_run
//! # async fn demo(ca: &str, cert: &str, key: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use nest_relay::client::{ClientTls, RelayClient};
//! use nest_core::InstanceId;
//! use nest_relay::proto::{command, Ping};
//! let tls = ClientTls {
//!     ca_pem: ca.into(),
//!     identity: Some((cert.into(), key.into())),
//!     server_name: None,
//! };
//! let relay = RelayClient::connect("127.0.0.1:7443", &tls).await?;
//! let instance = InstanceId::parse("6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00")?;
//! let pong = relay
//!     .execute(&instance, "req-1", command::Kind::Ping(Ping {}), std::time::Duration::from_secs(5))
//!     .await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::identity::RELAY_SERVER_NAME;
use nest_core::ErrorKind;
use nest_core::InstanceId;
use nest_core::process::error_chain;

use crate::convert::WireErrorKind;
use crate::proto::relay_control_client::RelayControlClient;
use crate::proto::{self, signing_reply, signing_request, stream_client_message, stream_input};
use crate::signing::{SigningAuthority, SigningRefusal};
use crate::version::MAX_CHUNK_BYTES;

/// How long dialling a relay (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Input frames queued per stream before `send_*` waits.
const STREAM_INPUT_CAPACITY: usize = 8;
/// Signing replies queued towards the relay.
const SIGNING_REPLY_CAPACITY: usize = 16;

/// TLS material for dialling a relay.
#[derive(Clone)]
pub struct ClientTls {
    /// Nest's CA certificate, PEM: the relay's certificate must chain to it.
    pub ca_pem: String,
    /// This peer's certificate and private key, PEM; `None` only to enroll.
    pub identity: Option<(String, String)>,
    /// Name the relay's certificate must carry; `None` means
    /// [`RELAY_SERVER_NAME`], which every relay certificate has.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// An error from the relay or from an agent behind it, classified.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RelayError {
    /// What kind of failure it is.
    pub kind: ErrorKind,
    /// What the relay or agent said.
    pub message: String,
}

impl RelayError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    fn from_status(status: &tonic::Status) -> Self {
        // tonic reports a broken connection (refused handshake, reset) as
        // Unknown with the transport error as source: that is an outage of
        // the path to the relay, not an error of the call.
        if let Some(source) = std::error::Error::source(status)
            && matches!(status.code(), tonic::Code::Unknown | tonic::Code::Cancelled)
        {
            return Self {
                kind: ErrorKind::Unavailable,
                message: format!(
                    "connection to the relay failed: {}: {}",
                    status.message(),
                    error_chain(source)
                ),
            };
        }
        Self {
            kind: crate::status::kind_of(status.code()),
            message: status.message().to_owned(),
        }
    }

    fn transport(e: &tonic::transport::Error) -> Self {
        Self {
            kind: ErrorKind::Unavailable,
            message: format!("cannot reach the relay: {}", error_chain(e)),
        }
    }
}

impl From<tonic::Status> for RelayError {
    fn from(status: tonic::Status) -> Self {
        Self::from_status(&status)
    }
}

/// Opens an mTLS channel to the relay at `addr` (`host:port`), verifying the
/// relay by name (by default [`RELAY_SERVER_NAME`]) whatever address is dialled.
///
/// # Errors
/// [`RelayError`] of kind `Invalid` for a bad address or TLS material,
/// `Unavailable` when the relay cannot be reached.
pub async fn dial(addr: &str, tls: &ClientTls) -> Result<Channel, RelayError> {
    let endpoint = endpoint(addr, tls)?;
    endpoint
        .connect()
        .await
        .map_err(|e| RelayError::transport(&e))
}

/// Like [`dial`], but connects on first use, so a relay that is down does not
/// fail construction.
///
/// # Errors
/// [`RelayError`] of kind `Invalid` for a bad address or TLS material.
pub fn dial_lazy(addr: &str, tls: &ClientTls) -> Result<Channel, RelayError> {
    Ok(endpoint(addr, tls)?.connect_lazy())
}

fn endpoint(addr: &str, tls: &ClientTls) -> Result<Endpoint, RelayError> {
    let invalid = |message: String| RelayError {
        kind: ErrorKind::Invalid,
        message,
    };
    let mut config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .domain_name(tls.server_name.as_deref().unwrap_or(RELAY_SERVER_NAME));
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|e| invalid(format!("relay address {addr:?}: {}", error_chain(&e))))?
        .tls_config(config)
        .map_err(|e| invalid(format!("relay TLS settings: {}", error_chain(&e))))
        .map(|e| {
            e.connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10))
                .keep_alive_while_idle(true)
        })
}

/// The service's handle on a relay.
#[derive(Clone)]
pub struct RelayClient {
    control: RelayControlClient<Channel>,
}

impl RelayClient {
    /// Connects to the relay at `addr` with a service certificate.
    ///
    /// # Errors
    /// [`RelayError`] when the relay cannot be reached or the TLS material
    /// is unusable.
    pub async fn connect(addr: &str, tls: &ClientTls) -> Result<Self, RelayError> {
        Ok(Self::from_channel(dial(addr, tls).await?))
    }

    /// Wraps an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        let control = RelayControlClient::new(channel)
            .max_decoding_message_size(8 * 1024 * 1024)
            .max_encoding_message_size(8 * 1024 * 1024);
        Self { control }
    }

    /// Sends one command to the agent of `instance` and waits for its output.
    ///
    /// # Errors
    /// [`RelayError`] classified by kind: `Unavailable` when the instance has
    /// no live session, `Timeout` past `timeout`, or the agent's own error.
    pub async fn execute(
        &self,
        instance: &InstanceId,
        request_id: &str,
        command: proto::command::Kind,
        timeout: Duration,
    ) -> Result<proto::command_output::Kind, RelayError> {
        let request = proto::ExecuteRequest {
            instance_id: instance.to_string(),
            request_id: request_id.to_owned(),
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            command: Some(proto::Command {
                kind: Some(command),
            }),
        };
        let mut control = self.control.clone();
        let mut request = tonic::Request::new(request);
        // The relay stops waiting first, so its precise error wins.
        request.set_timeout(timeout + Duration::from_secs(5));
        let response = control.execute(request).await?.into_inner();
        response
            .output
            .and_then(|o| o.kind)
            .ok_or_else(|| RelayError {
                kind: ErrorKind::Internal,
                message: "the agent returned an empty result".to_owned(),
            })
    }

    /// Opens a byte stream (logs, exec, attach, image load) to `instance`.
    ///
    /// # Errors
    /// [`RelayError`] when the relay refuses the stream.
    pub async fn open_stream(
        &self,
        instance: &InstanceId,
        request_id: &str,
        open: proto::stream_open::Kind,
    ) -> Result<RelayStream, RelayError> {
        let (tx, rx) = mpsc::channel(STREAM_INPUT_CAPACITY);
        let first = proto::StreamClientMessage {
            kind: Some(stream_client_message::Kind::Open(proto::StreamTarget {
                instance_id: instance.to_string(),
                request_id: request_id.to_owned(),
                open: Some(proto::StreamOpen { kind: Some(open) }),
            })),
        };
        tx.send(first).await.map_err(|_| RelayError {
            kind: ErrorKind::Internal,
            message: "stream input closed before opening".to_owned(),
        })?;
        let mut control = self.control.clone();
        let output = control
            .open_stream(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(RelayStream {
            input: Some(tx),
            output,
        })
    }

    /// Follows agents connecting and disconnecting and their container
    /// events. The first events describe every live session.
    ///
    /// # Errors
    /// [`RelayError`] when the relay refuses the watch.
    pub async fn watch(&self) -> Result<tonic::Streaming<proto::WatchEvent>, RelayError> {
        let mut control = self.control.clone();
        Ok(control.watch(proto::WatchRequest {}).await?.into_inner())
    }

    /// Answers the relay's enrollment and renewal requests with `signer`
    /// until `shutdown` is cancelled or the relay goes away.
    ///
    /// # Errors
    /// [`RelayError`] when the relay refuses or drops the signing stream.
    pub async fn serve_signing(
        &self,
        signer: Arc<dyn SigningAuthority>,
        shutdown: CancellationToken,
    ) -> Result<(), RelayError> {
        let (tx, rx) = mpsc::channel(SIGNING_REPLY_CAPACITY);
        let mut control = self.control.clone();
        let mut requests = control
            .serve_signing(ReceiverStream::new(rx))
            .await?
            .into_inner();
        loop {
            let request = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                request = requests.message() => request?,
            };
            let Some(request) = request else {
                return Err(RelayError {
                    kind: ErrorKind::Unavailable,
                    message: "the relay closed the signing stream".to_owned(),
                });
            };
            let signer = signer.clone();
            // Signing is CPU work; keep it off the async workers.
            let reply = tokio::task::spawn_blocking(move || sign(signer.as_ref(), request))
                .await
                .map_err(|e| RelayError {
                    kind: ErrorKind::Internal,
                    message: format!("signing task failed: {e}"),
                })?;
            if tx.send(reply).await.is_err() {
                return Ok(());
            }
        }
    }
}

fn sign(signer: &dyn SigningAuthority, request: proto::SigningRequest) -> proto::SigningReply {
    let refused = |e: SigningRefusal| e.kind.error(e.message);
    let outcome = match request.kind {
        Some(signing_request::Kind::EnrollmentToken(token)) => {
            signer.enroll(&token, &request.csr_pem).map_err(refused)
        }
        Some(signing_request::Kind::RenewInstanceId(id)) => InstanceId::parse(&id)
            .map_err(|e| ErrorKind::Invalid.error(e.to_string()))
            .and_then(|instance| signer.renew(&instance, &request.csr_pem).map_err(refused)),
        None => Err(ErrorKind::Invalid.error("signing request names no subject")),
    };
    let outcome = match outcome {
        Ok(signed) => signing_reply::Outcome::Signed(proto::SignedCertificate {
            certificate_pem: signed.certificate_pem,
            ca_certificate_pem: signed.ca_certificate_pem,
            instance_id: signed.instance_id.to_string(),
        }),
        Err(e) => {
            tracing::info!(request_id = request.request_id, error = %e.message, "signing refused");
            signing_reply::Outcome::Error(e)
        }
    };
    proto::SigningReply {
        request_id: request.request_id,
        outcome: Some(outcome),
    }
}

/// One open stream: send input, read output until its end.
pub struct RelayStream {
    input: Option<mpsc::Sender<proto::StreamClientMessage>>,
    output: tonic::Streaming<proto::StreamServerMessage>,
}

impl RelayStream {
    async fn send_input(&self, kind: stream_input::Kind) -> Result<(), RelayError> {
        let input = self.input.as_ref().ok_or_else(|| RelayError {
            kind: ErrorKind::Invalid,
            message: "stream input is already closed".to_owned(),
        })?;
        input
            .send(proto::StreamClientMessage {
                kind: Some(stream_client_message::Kind::Input(proto::StreamInput {
                    kind: Some(kind),
                })),
            })
            .await
            .map_err(|_| RelayError {
                kind: ErrorKind::Unavailable,
                message: "the stream has ended".to_owned(),
            })
    }

    /// Sends bytes to the stream's stdin, split into frames of at most
    /// `MAX_CHUNK_BYTES`. Waits while the agent's window is full.
    ///
    /// # Errors
    /// [`RelayError`] when the stream has ended.
    pub async fn send_stdin(&self, data: &[u8]) -> Result<(), RelayError> {
        for chunk in data.chunks(MAX_CHUNK_BYTES) {
            self.send_input(stream_input::Kind::Stdin(chunk.to_vec()))
                .await?;
        }
        Ok(())
    }

    /// Resizes the stream's terminal.
    ///
    /// # Errors
    /// [`RelayError`] when the stream has ended.
    pub async fn resize(&self, width: u32, height: u32) -> Result<(), RelayError> {
        self.send_input(stream_input::Kind::Resize(proto::Resize { width, height }))
            .await
    }

    /// Signals end of stdin; output keeps flowing.
    ///
    /// # Errors
    /// [`RelayError`] when the stream has ended.
    pub async fn close_stdin(&mut self) -> Result<(), RelayError> {
        self.send_input(stream_input::Kind::CloseStdin(proto::Empty {}))
            .await?;
        self.input = None;
        Ok(())
    }

    /// The next output frame; `None` after the stream's end.
    ///
    /// # Cancel safety
    /// Safe: no frame is lost when the future is dropped.
    pub async fn next(&mut self) -> Option<Result<proto::stream_output::Kind, RelayError>> {
        match self.output.message().await {
            Ok(Some(message)) => message.output.and_then(|o| o.kind).map(Ok),
            Ok(None) => None,
            Err(status) => Some(Err(RelayError::from_status(&status))),
        }
    }
}
