//! A console session over the service's websocket (`attach` and
//! interactive exec): this terminal's keys go up as binary frames, the
//! process's output comes down, a window resize is sent as
//! `{"resize": {"w": W, "h": H}}`, and the close frame's reason
//! `{"exit_code": N}` is the process's exit code.
//!
//! The websocket is opened by reqwest (HTTP/1.1 upgrade), so it goes
//! through the same TLS settings (`OS_CACERT`, `--insecure`) as every
//! other request.

use futures_util::{SinkExt, StreamExt};
use nest_api_types::zun::ConsoleExit;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::client::{Session, parse_url};
use crate::error::CliError;
use crate::terminal::{RawMode, stdin_is_terminal, window_size};

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The process exited with this code.
    Exited(i64),
    /// The session closed without saying how the process ended.
    Closed,
}

fn console_error(
    url: &str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> CliError {
    // The URL's token is a credential: keep it out of messages.
    let shown = url.split('?').next().unwrap_or(url).to_owned();
    CliError::Console {
        url: shown,
        source: source.into(),
    }
}

/// Runs a session on the websocket at `ws_url` with this terminal.
/// `tty` asks for raw mode and resizes (when stdin is a terminal).
pub async fn run(session: &Session, ws_url: &str, tty: bool) -> Result<Ending, CliError> {
    let http_url = ws_url
        .replacen("wss://", "https://", 1)
        .replacen("ws://", "http://", 1);
    let url = parse_url(&http_url)?;
    let client = crate::client::http_client(session.settings())?;
    let response = client
        .get(url)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", generate_key())
        .header("Sec-WebSocket-Protocol", "binary")
        .send()
        .await
        .map_err(|source| CliError::Unreachable {
            url: http_url.split('?').next().unwrap_or_default().to_owned(),
            source,
        })?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(console_error(
            ws_url,
            format!("the service answered {status}: {}", text.trim()),
        ));
    }
    let upgraded = response
        .upgrade()
        .await
        .map_err(|e| console_error(ws_url, e))?;
    let socket = WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await;
    let raw = if tty && stdin_is_terminal() {
        Some(RawMode::enable()?)
    } else {
        None
    };
    let ending = pump(socket, ws_url, tty).await;
    drop(raw);
    ending
}

fn resize_frame((w, h): (u16, u16)) -> Message {
    Message::text(format!(r#"{{"resize": {{"w": {w}, "h": {h}}}}}"#))
}

async fn pump<S>(socket: WebSocketStream<S>, ws_url: &str, tty: bool) -> Result<Ending, CliError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = socket.split();
    if tty && let Some(size) = window_size() {
        sink.send(resize_frame(size))
            .await
            .map_err(|e| console_error(ws_url, e))?;
    }
    let mut winch = signal(SignalKind::window_change()).map_err(CliError::Terminal)?;
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let mut buf = vec![0u8; 4096];
    let mut stdin_open = true;
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    stdout.write_all(&data).await.map_err(CliError::Terminal)?;
                    stdout.flush().await.map_err(CliError::Terminal)?;
                }
                Some(Ok(Message::Text(text))) => {
                    stdout.write_all(text.as_bytes()).await.map_err(CliError::Terminal)?;
                    stdout.flush().await.map_err(CliError::Terminal)?;
                }
                Some(Ok(Message::Close(frame))) => return closed(frame),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(console_error(ws_url, e)),
                None => return Ok(Ending::Closed),
            },
            read = stdin.read(&mut buf), if stdin_open => match read {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let chunk = bytes::Bytes::copy_from_slice(&buf[..n]);
                    sink.send(Message::Binary(chunk)).await.map_err(|e| console_error(ws_url, e))?;
                }
            },
            _ = winch.recv(), if tty => {
                if let Some(size) = window_size() {
                    sink.send(resize_frame(size)).await.map_err(|e| console_error(ws_url, e))?;
                }
            }
        }
    }
}

fn closed(
    frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>,
) -> Result<Ending, CliError> {
    let Some(frame) = frame else {
        return Ok(Ending::Closed);
    };
    if frame.code == CloseCode::Error {
        return Err(CliError::ConsoleFailed(frame.reason.to_string()));
    }
    Ok(serde_json::from_str::<ConsoleExit>(frame.reason.as_str())
        .map(|exit| Ending::Exited(exit.exit_code))
        .unwrap_or(Ending::Closed))
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    use super::*;

    #[test]
    fn the_close_reason_gives_the_exit_code() {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: r#"{"exit_code":3}"#.into(),
        };
        assert_eq!(closed(Some(frame)).ok(), Some(Ending::Exited(3)));
        assert_eq!(closed(None).ok(), Some(Ending::Closed));
        let failed = CloseFrame {
            code: CloseCode::Error,
            reason: "agent offline".into(),
        };
        assert!(closed(Some(failed)).is_err());
        assert_eq!(
            resize_frame((80, 24))
                .into_text()
                .ok()
                .map(|t| t.to_string()),
            Some(r#"{"resize": {"w": 80, "h": 24}}"#.to_owned())
        );
    }
}
