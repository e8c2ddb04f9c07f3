//! The names of the fields the agent's spans and log lines carry, in one
//! place and spelled as in every other Nest process, so that one request
//! id can be followed from the API through the relay into the agent.
//!
//! Use them as `{ log_fields::REQUEST_ID } = value` in `tracing` macros and
//! `#[instrument(fields(...))]`.

/// The API request that caused a command or stream (`req-<uuid>`).
pub const REQUEST_ID: &str = "request_id";
/// Nest's uuid of the container a line is about.
pub const CONTAINER_ID: &str = "container_id";
/// The instance this agent runs in.
pub const INSTANCE_ID: &str = "instance_id";
/// The engine's id of a container.
pub const DOCKER_ID: &str = "docker_id";
/// The relay's id of a command within a session.
pub const COMMAND_ID: &str = "command_id";
/// The relay's id of a stream within a session.
pub const STREAM_ID: &str = "stream_id";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_as_in_every_nest_process() {
        assert_eq!(
            [REQUEST_ID, CONTAINER_ID, INSTANCE_ID, DOCKER_ID],
            ["request_id", "container_id", "instance_id", "docker_id"]
        );
    }
}
