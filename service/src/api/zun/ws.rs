//! The console websockets this service serves in place of zun-wsproxy:
//! `GET /v1/containers/{uuid}/attach/ws?token=T` and
//! `GET /v1/containers/{uuid}/exec/ws?token=T&exec_id=E`.
//!
//! The token, issued by `attach` or an interactive `execute`, is the only
//! credential (websocket clients send no `X-Auth-Token`); the backend
//! redeems it before the upgrade, so a bad token is an ordinary HTTP error.
//! The handshake selects subprotocol `binary`, which python-zunclient's
//! websocket-client requires, and refuses an `Origin` other than the
//! service's own (as zun-wsproxy does). Binary frames carry raw terminal
//! bytes both ways. Nest extension: a text frame that is exactly
//! `{"resize": {"w": W, "h": H}}` resizes the terminal; any other text
//! frame is input. No Docker socket is ever exposed: the backend pipes the
//! session through the relay. Output of every stream (stdout, stderr, tty)
//! goes to the client as binary frames; the session's end closes the
//! websocket. Nest extension: when the process exited, the close frame's
//! reason is `{"exit_code": N}` (code 1000); when the session failed, it is
//! the failure (code 1011). Clients that ignore close reasons (zunclient)
//! see an ordinary close.

use axum::extract::State;
use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code,
    rejection::WebSocketUpgradeRejection,
};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use bytes::Bytes;
use nest_api_types::zun::ConsoleExit;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::extract::{BaseUrl, QueryParams, ZunPath};
use crate::api::ApiState;
use crate::api::zun::error::ApiError;
use crate::app::{
    ConsoleInput, ConsoleIo, ConsoleOutput, ConsoleSession, ConsoleTarget, ConsoleToken, ExecId,
    TtySize,
};
use crate::domain::ContainerId;

/// Client-to-process messages buffered before the websocket stops being
/// read (back-pressure on a slow process; keystrokes are small).
const CONSOLE_INPUT_CAPACITY: usize = 64;
/// Process-to-client chunks buffered before the session waits for the
/// client (back-pressure on a slow terminal).
const CONSOLE_OUTPUT_CAPACITY: usize = 64;

/// Query of the console websockets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleQuery {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    exec_id: Option<String>,
    /// zun-wsproxy URLs carry the uuid again; accepted and checked.
    #[serde(default)]
    uuid: Option<String>,
}

/// Attach to a container's console.
#[utoipa::path(get, path = "/v1/containers/{container}/attach/ws", tag = "exec",
    params(("container" = String, Path, description = "uuid"), ("token" = String, Query)),
    responses((status = 101, description = "websocket, subprotocol binary"),
              (status = 403, description = "token refused")))]
pub async fn attach(
    State(state): State<ApiState>,
    base: BaseUrl,
    ZunPath(container): ZunPath<String>,
    QueryParams(query): QueryParams<ConsoleQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    if query.exec_id.is_some() {
        return Err(ApiError::UnknownParameters(vec!["exec_id".into()]));
    }
    open(
        state,
        base,
        &container,
        query,
        ConsoleTarget::Attach,
        &headers,
        upgrade,
    )
    .await
}

/// Attach to an interactive exec.
#[utoipa::path(get, path = "/v1/containers/{container}/exec/ws", tag = "exec",
    params(("container" = String, Path, description = "uuid"), ("token" = String, Query),
           ("exec_id" = String, Query)),
    responses((status = 101, description = "websocket, subprotocol binary"),
              (status = 403, description = "token refused")))]
pub async fn exec(
    State(state): State<ApiState>,
    base: BaseUrl,
    ZunPath(container): ZunPath<String>,
    QueryParams(query): QueryParams<ConsoleQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let exec_id = query
        .exec_id
        .as_deref()
        .ok_or_else(|| "is required".to_owned())
        .and_then(ExecId::parse)
        .map_err(|reason| ApiError::InvalidParameter {
            name: "exec_id".into(),
            reason,
        })?;
    let target = ConsoleTarget::Exec(exec_id);
    open(state, base, &container, query, target, &headers, upgrade).await
}

async fn open(
    state: ApiState,
    base: BaseUrl,
    container: &str,
    query: ConsoleQuery,
    target: ConsoleTarget,
    headers: &HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let invalid = |name: &str, reason: String| ApiError::InvalidParameter {
        name: name.to_owned(),
        reason,
    };
    let container =
        ContainerId::parse(container).map_err(|e| invalid("container", e.to_string()))?;
    if query
        .uuid
        .as_deref()
        .is_some_and(|u| u != container.to_string())
    {
        return Err(invalid("uuid", "does not match the path".into()));
    }
    let token = query
        .token
        .as_deref()
        .ok_or_else(|| "is required".to_owned())
        .and_then(ConsoleToken::parse)
        .map_err(|reason| invalid("token", reason))?;
    check_origin(headers, &base)?;
    let upgrade = upgrade.map_err(|_| ApiError::WebSocketRequired)?;
    let session = state.app().open_console(container, &token, target).await?;
    Ok(upgrade
        .protocols(["binary"])
        .on_upgrade(move |socket| pump(socket, session)))
}

/// Refuses a browser page of another origin (cross-site websocket
/// hijacking); clients that send no `Origin` are accepted.
fn check_origin(headers: &HeaderMap, base: &BaseUrl) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    let authority = |url: &str| {
        url.split_once("://")
            .map_or(url, |(_, rest)| rest)
            .trim_end_matches('/')
            .to_ascii_lowercase()
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    let origin_authority = authority(&origin);
    if host.as_deref() == Some(origin_authority.as_str())
        || authority(base.as_str()) == origin_authority
    {
        Ok(())
    } else {
        Err(ApiError::OriginNotAllowed(origin))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeFrame {
    resize: ResizeSize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeSize {
    w: u16,
    h: u16,
}

fn text_input(text: &str) -> ConsoleInput {
    match serde_json::from_str::<ResizeFrame>(text) {
        Ok(ResizeFrame {
            resize: ResizeSize { w, h },
        }) if w > 0 && h > 0 => ConsoleInput::Resize(TtySize {
            width: w,
            height: h,
        }),
        _ => ConsoleInput::Stdin(Bytes::copy_from_slice(text.as_bytes())),
    }
}

/// Pipes the websocket into and out of the session until either ends. The
/// session future is dropped (ending it) when the client goes away.
async fn pump(mut socket: WebSocket, session: Box<dyn ConsoleSession>) {
    let (input_tx, input_rx) = mpsc::channel(CONSOLE_INPUT_CAPACITY);
    let (output_tx, mut output_rx) = mpsc::channel::<ConsoleOutput>(CONSOLE_OUTPUT_CAPACITY);
    let run = session.run(ConsoleIo {
        input: input_rx,
        output: output_tx,
    });
    tokio::pin!(run);
    let mut input = Some(input_tx);
    // One message read from the client and not yet accepted by the session:
    // the socket is not read again until it is, so a session that is busy
    // writing output never deadlocks against a client that is typing.
    let mut pending: Option<ConsoleInput> = None;
    // How the session ended, told in the close frame.
    let mut ending: Option<CloseFrame> = None;
    loop {
        tokio::select! {
            result = &mut run => {
                if let Err(error) = result {
                    tracing::warn!(error = %error, "console session failed");
                }
                // Flush what the session wrote before it ended.
                while let Ok(frame) = output_rx.try_recv() {
                    if forward(&mut socket, &frame, &mut ending).await.is_err() {
                        return;
                    }
                }
                let _ = socket.send(Message::Close(ending)).await;
                return;
            }
            frame = output_rx.recv() => match frame {
                // The exit code and errors end the session, which closes
                // the socket below with them as the reason.
                Some(frame) => {
                    if forward(&mut socket, &frame, &mut ending).await.is_err() {
                        return;
                    }
                }
                // The session dropped its output: wait for it to finish.
                None => {
                    if let Err(error) = (&mut run).await {
                        tracing::warn!(error = %error, "console session failed");
                    }
                    let _ = socket.send(Message::Close(ending)).await;
                    return;
                }
            },
            permit = reserve(input.clone()), if pending.is_some() => match (permit, pending.take()) {
                (Some(permit), Some(item)) => {
                    permit.send(item);
                }
                // The session stopped reading input; keep relaying output.
                _ => input = None,
            },
            message = socket.recv(), if pending.is_none() => {
                let item = match message {
                    Some(Ok(Message::Binary(data))) => ConsoleInput::Stdin(data),
                    Some(Ok(Message::Text(text))) => text_input(text.as_str()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                };
                if input.is_some() {
                    pending = Some(item);
                }
            }
        }
    }
}

/// Sends output bytes to the client; keeps an exit code or a failure for
/// the close frame.
async fn forward(
    socket: &mut WebSocket,
    frame: &ConsoleOutput,
    ending: &mut Option<CloseFrame>,
) -> Result<(), axum::Error> {
    match frame {
        ConsoleOutput::Exit(code) => *ending = Some(exit_frame(*code)),
        ConsoleOutput::Error { message, .. } => {
            *ending = Some(CloseFrame {
                code: close_code::ERROR,
                reason: close_reason(message).into(),
            });
        }
        _ => {
            if let Some(chunk) = frame.data() {
                socket.send(Message::Binary(chunk.clone())).await?;
            }
        }
    }
    Ok(())
}

fn exit_frame(exit_code: i64) -> CloseFrame {
    let reason = serde_json::to_string(&ConsoleExit { exit_code })
        .unwrap_or_else(|_| format!("{{\"exit_code\": {exit_code}}}"));
    CloseFrame {
        code: close_code::NORMAL,
        reason: reason.into(),
    }
}

/// A close reason is at most 123 bytes (RFC 6455 §5.5); cut on a
/// character boundary.
fn close_reason(message: &str) -> String {
    const MAX: usize = 123;
    let mut end = message.len().min(MAX);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}

/// Waits for room in the session's input; `None` once it stopped reading.
async fn reserve(
    input: Option<mpsc::Sender<ConsoleInput>>,
) -> Option<mpsc::OwnedPermit<ConsoleInput>> {
    input?.reserve_owned().await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_close_frame_carries_the_exit_code_and_fits_the_limit() {
        let frame = exit_frame(42);
        assert_eq!(frame.code, close_code::NORMAL);
        let exit: ConsoleExit = serde_json::from_str(frame.reason.as_str()).expect("json");
        assert_eq!(exit.exit_code, 42);
        let long = "é".repeat(100);
        assert!(close_reason(&long).len() <= 123);
    }

    #[test]
    fn resize_frames_are_recognised_and_other_text_is_input() {
        assert_eq!(
            text_input(r#"{"resize": {"w": 80, "h": 24}}"#),
            ConsoleInput::Resize(TtySize {
                width: 80,
                height: 24
            })
        );
        assert_eq!(
            text_input("ls\n"),
            ConsoleInput::Stdin(Bytes::from_static(b"ls\n"))
        );
    }
}
