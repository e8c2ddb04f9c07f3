//! `container-logs [-f]`.

use nest_api_types::zun::LogsQuery;
use tokio::io::AsyncWriteExt;

use crate::client::Session;
use crate::error::CliError;

fn query(tail: Option<u32>, timestamps: bool, follow: bool) -> LogsQuery {
    LogsQuery {
        tail: tail.map(|n| n.to_string()),
        timestamps: timestamps.then_some(true),
        follow: follow.then_some(true),
        ..LogsQuery::default()
    }
}

/// `container-logs`.
pub async fn run(
    session: &Session,
    ident: &str,
    follow_output: bool,
    tail: Option<u32>,
    timestamps: bool,
) -> Result<u8, CliError> {
    if follow_output {
        follow(session, ident, tail, timestamps).await?;
    } else {
        let text = session.logs(ident, &query(tail, timestamps, false)).await?;
        print!("{text}");
    }
    Ok(0)
}

/// Streams the logs until the container stops (the service ends the
/// answer then) or the user interrupts.
pub async fn follow(
    session: &Session,
    ident: &str,
    tail: Option<u32>,
    timestamps: bool,
) -> Result<(), CliError> {
    let mut response = session
        .follow_logs(ident, &query(tail, timestamps, true))
        .await?;
    let mut stdout = tokio::io::stdout();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|source| CliError::Unreachable {
                url: session.root().to_owned(),
                source,
            })?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        stdout.write_all(&chunk).await.map_err(CliError::Terminal)?;
        stdout.flush().await.map_err(CliError::Terminal)?;
    }
}
