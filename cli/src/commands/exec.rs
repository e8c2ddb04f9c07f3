//! `container-exec [-it]` and `container-attach`.

use nest_api_types::zun::ExecuteQuery;

use crate::client::Session;
use crate::console::{self, Ending};
use crate::error::CliError;

/// An exit code as a process's (0–255).
fn exit_byte(code: i64) -> u8 {
    u8::try_from(code.rem_euclid(256)).unwrap_or(1)
}

/// `container-exec`: exits with the command's own code.
pub async fn run(
    session: &Session,
    ident: &str,
    interactive: bool,
    tty: bool,
    command: &[String],
) -> Result<u8, CliError> {
    let line = shlex::try_join(command.iter().map(String::as_str))
        .map_err(|e| CliError::Usage(format!("cannot quote the command: {e}")))?;
    if !interactive && !tty {
        let view = session
            .execute(
                ident,
                &ExecuteQuery {
                    command: line,
                    run: Some(true),
                    interactive: None,
                },
            )
            .await?;
        print!("{}", view.output.unwrap_or_default());
        return Ok(exit_byte(view.exit_code.unwrap_or(0)));
    }
    let view = session
        .execute(
            ident,
            &ExecuteQuery {
                command: line,
                run: Some(false),
                interactive: Some(true),
            },
        )
        .await?;
    let url = view
        .proxy_url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| CliError::Api {
            status: 200,
            code: String::new(),
            message: "the service gave no console URL for the interactive exec".into(),
            request_id: None,
        })?;
    match console::run(session, &url, tty).await? {
        Ending::Exited(code) => Ok(exit_byte(code)),
        Ending::Closed => Ok(0),
    }
}

/// `container-attach` (and `container-create -it` without `--daemon`).
pub async fn attach(session: &Session, ident: &str) -> Result<u8, CliError> {
    let url = session.attach(ident).await?;
    match console::run(session, &url, true).await? {
        Ending::Exited(code) => Ok(exit_byte(code)),
        Ending::Closed => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes_wrap_like_a_shell() {
        assert_eq!(super::exit_byte(3), 3);
        assert_eq!(super::exit_byte(256 + 7), 7);
        assert_eq!(super::exit_byte(-1), 255);
    }
}
