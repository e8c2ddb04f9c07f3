//! Running extra processes in a container: captured (run to completion,
//! output collected up to a limit) and interactive (an
//! [`InteractiveSession`]).

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures_util::StreamExt;
use tracing::instrument;

use super::error::DockerError;
use super::streams::{InteractiveSession, SessionControl, Target, chunk_stream, chunks};
use super::{
    DOCKER_CALL_TIMEOUT, EXEC_CAPTURE_TIMEOUT, EXIT_STATUS_TIMEOUT, Engine, Managed, bounded, spec,
};
use crate::log_fields::CONTAINER_ID;
use crate::model::{
    ContainerUuid, EnvVar, ExecCapture, ExecCaptured, ExecStream, OutputKind, TerminalSize,
};

/// What an exec runs, before it is checked.
struct ExecRequest<'a> {
    uuid: &'a ContainerUuid,
    command: &'a [String],
    env: &'a [EnvVar],
    workdir: Option<&'a str>,
    user: Option<&'a str>,
    tty: bool,
    stdin: bool,
}

impl Engine {
    /// Runs `req.command` in a running container and collects its stdout and
    /// stderr, keeping at most `limit_bytes` of the two together; what comes
    /// beyond is read and dropped, and `truncated` says so.
    ///
    /// # Errors
    /// `Invalid` for an empty command; `NotFound` for a container this
    /// agent does not own; `Conflict` when it is not running; `Timeout`
    /// when the command runs longer than [`EXEC_CAPTURE_TIMEOUT`] (the
    /// process is left running).
    #[instrument(skip_all, fields({ CONTAINER_ID } = %req.uuid))]
    pub async fn exec_capture(
        &self,
        req: ExecCapture,
        limit_bytes: usize,
    ) -> Result<ExecCaptured, DockerError> {
        let (managed, exec_id) = self
            .create_exec(ExecRequest {
                uuid: &req.uuid,
                command: &req.command,
                env: &req.env,
                workdir: req.workdir.as_deref(),
                user: req.user.as_deref(),
                tty: false,
                stdin: false,
            })
            .await?;
        let describe = format!("exec {exec_id} in container {}", managed.uuid);
        let collected = bounded("exec", &describe, EXEC_CAPTURE_TIMEOUT, async {
            let started = self
                .docker
                .start_exec(
                    &exec_id,
                    Some(StartExecOptions {
                        detach: false,
                        tty: false,
                        output_capacity: None,
                    }),
                )
                .await?;
            let StartExecResults::Attached { mut output, .. } = started else {
                // Only a detached start answers Detached; this one is not.
                return Ok(None);
            };
            let mut captured = ExecCaptured::default();
            let mut room = limit_bytes;
            while let Some(frame) = output.next().await {
                for chunk in chunks(frame?, false) {
                    let keep = chunk.data.len().min(room);
                    if keep < chunk.data.len() {
                        captured.truncated = true;
                    }
                    room -= keep;
                    let sink = if chunk.kind == OutputKind::Stderr {
                        &mut captured.stderr
                    } else {
                        &mut captured.stdout
                    };
                    sink.extend_from_slice(&chunk.data[..keep]);
                }
            }
            Ok(Some(captured))
        })
        .await?
        .ok_or_else(|| DockerError::Malformed {
            operation: "exec start",
            target: describe.clone(),
            missing: "an attached stream",
        })?;
        let control = SessionControl::new(
            self.clone(),
            Target::Exec {
                uuid: managed.uuid.clone(),
                exec_id: exec_id.clone(),
            },
        );
        let exit_code = control.exit_code().await?.ok_or(DockerError::Timeout {
            operation: "exec exit status",
            target: describe,
            after: EXIT_STATUS_TIMEOUT,
        })?;
        Ok(ExecCaptured {
            exit_code,
            ..collected
        })
    }

    /// Starts `req.command` in a running container with its stdin, stdout
    /// and stderr connected to the returned session, on a terminal of
    /// `req.size` (or the engine's default) when `req.tty` is set.
    ///
    /// # Errors
    /// `Invalid` for an empty command; `NotFound` for a container this
    /// agent does not own; `Conflict` when it is not running.
    #[instrument(skip_all, fields({ CONTAINER_ID } = %req.uuid, tty = req.tty))]
    pub async fn exec_interactive(
        &self,
        req: ExecStream,
    ) -> Result<InteractiveSession, DockerError> {
        let (managed, exec_id) = self
            .create_exec(ExecRequest {
                uuid: &req.uuid,
                command: &req.command,
                env: &req.env,
                workdir: req.workdir.as_deref(),
                user: req.user.as_deref(),
                tty: req.tty,
                stdin: req.stdin,
            })
            .await?;
        let describe = format!("exec {exec_id} in container {}", managed.uuid);
        let started = bounded(
            "exec start",
            &describe,
            DOCKER_CALL_TIMEOUT,
            self.docker.start_exec(
                &exec_id,
                Some(StartExecOptions {
                    detach: false,
                    tty: req.tty,
                    output_capacity: None,
                }),
            ),
        )
        .await?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(DockerError::Malformed {
                operation: "exec start",
                target: describe,
                missing: "an attached stream",
            });
        };
        let control = SessionControl::new(
            self.clone(),
            Target::Exec {
                uuid: managed.uuid.clone(),
                exec_id,
            },
        );
        // The size can only be set once the process exists, i.e. now. A
        // process that exits at once cannot be resized any more; that is no
        // reason to fail a session whose output is already there.
        let size: Option<TerminalSize> = req.size.filter(|_| req.tty);
        if let Some(size) = size
            && let Err(err) = control.resize(size).await
        {
            tracing::debug!(error = %err, "initial terminal resize failed");
        }
        Ok(InteractiveSession {
            output: chunk_stream(output, req.tty, "exec", describe),
            input,
            control,
        })
    }

    /// Checks an exec request, finds its container and creates the exec.
    async fn create_exec(&self, req: ExecRequest<'_>) -> Result<(Managed, String), DockerError> {
        if req.command.is_empty() {
            return Err(DockerError::invalid("command", "must not be empty"));
        }
        spec::check_workdir("workdir", req.workdir)?;
        let env = spec::env_strings("env", req.env)?;
        let managed = self.find(req.uuid).await?;
        let config = ExecConfig {
            attach_stdin: Some(req.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(req.tty),
            env: (!env.is_empty()).then_some(env),
            cmd: Some(req.command.to_vec()),
            user: req.user.map(str::to_owned),
            working_dir: req.workdir.map(str::to_owned),
            ..Default::default()
        };
        let created = bounded(
            "exec create",
            &managed.target(),
            DOCKER_CALL_TIMEOUT,
            self.docker.create_exec(&managed.id, config),
        )
        .await?;
        Ok((managed, created.id))
    }
}
