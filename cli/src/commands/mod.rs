//! One module per group of subcommands, each a thin adapter from the
//! parsed flags to [`crate::client::Session`] and [`crate::output`].
//! Every handler answers the exit code to end with.

pub mod containers;
pub mod create;
pub mod docker_env;
pub mod exec;
pub mod images;
pub mod instances;
pub mod logs;
pub mod quota;

use crate::args::Command;
use crate::client::Session;
use crate::error::CliError;

/// Runs a command that needs the service.
pub async fn dispatch(session: &Session, command: Command) -> Result<u8, CliError> {
    use Command as C;
    match command {
        C::ContainerCreate(args) => create::run(session, &args).await,
        C::ContainerList {
            all_projects,
            output,
        } => containers::list(session, all_projects, &output).await,
        C::ContainerShow { container, output } => {
            containers::show(session, &container, &output).await
        }
        C::ContainerDelete {
            containers: targets,
            force,
            stop,
        } => containers::delete(session, &targets, force, stop).await,
        C::ContainerStart(t) => containers::action(session, &t.containers, "start", None).await,
        C::ContainerStop(t) => containers::action(session, &t.containers, "stop", t.timeout).await,
        C::ContainerRestart(t) => {
            containers::action(session, &t.containers, "reboot", t.timeout).await
        }
        C::ContainerPause(t) => containers::action(session, &t.containers, "pause", None).await,
        C::ContainerUnpause(t) => containers::action(session, &t.containers, "unpause", None).await,
        C::ContainerKill { container, signal } => {
            containers::kill(session, &container, signal).await
        }
        C::ContainerLogs {
            container,
            follow,
            tail,
            timestamps,
        } => logs::run(session, &container, follow, tail, timestamps).await,
        C::ContainerExec {
            container,
            interactive,
            tty,
            command,
        } => exec::run(session, &container, interactive, tty, &command).await,
        C::ContainerAttach { container } => exec::attach(session, &container).await,
        C::ImageCreate { file, name, output } => {
            images::create(session, &file, name, &output).await
        }
        C::ImageList { output } => images::list(session, &output).await,
        C::ImageDelete { images: ids } => images::delete(session, &ids).await,
        C::InstanceList { output } => instances::list(session, &output).await,
        C::QuotaShow { project, output } => quota::show(session, project, &output).await,
        C::DockerEnv { dir, lifetime, .. } => docker_env::run(session, dir, lifetime).await,
        C::Completion { .. } => Ok(0),
    }
}
