//! The identifiers the agent is handed: Nest's container uuid, and the ids
//! of one session's commands and streams.

use std::fmt;

/// Longest container uuid accepted; Nest's uuids are 36 characters.
pub const MAX_UUID_LEN: usize = 64;

/// Nest's uuid of a container: the only name the agent knows a container by.
///
/// It ends up in the engine's container name (`nest-<uuid>`) and in URL
/// paths, so it is held to the engine's name alphabet: ASCII letters,
/// digits, `-`, `_` and `.`, at most [`MAX_UUID_LEN`] of them. That also
/// keeps `/` and `?` out of request paths.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerUuid(String);

/// Why a string is not a [`ContainerUuid`]. The messages complete
/// "invalid `field`: ...".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContainerUuidError {
    /// The uuid is empty.
    #[error("must not be empty")]
    Empty,
    /// The uuid is longer than [`MAX_UUID_LEN`].
    #[error("is {0} characters long; at most {MAX_UUID_LEN} are allowed")]
    TooLong(usize),
    /// The uuid holds a character outside the engine's name alphabet.
    #[error("holds {0:?}; only ASCII letters, digits, '-', '_' and '.' are allowed")]
    BadCharacter(char),
}

impl ContainerUuid {
    /// Checks and wraps a container uuid.
    ///
    /// # Errors
    /// [`ContainerUuidError`] when it is empty, too long or holds a
    /// character outside `[A-Za-z0-9._-]`.
    pub fn parse(uuid: &str) -> Result<Self, ContainerUuidError> {
        if uuid.is_empty() {
            return Err(ContainerUuidError::Empty);
        }
        if uuid.len() > MAX_UUID_LEN {
            return Err(ContainerUuidError::TooLong(uuid.len()));
        }
        if let Some(bad) = uuid
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(ContainerUuidError::BadCharacter(bad));
        }
        Ok(Self(uuid.to_owned()))
    }

    /// The uuid as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The relay's id of one command within a session; its result names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommandId(pub u64);

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The relay's id of one multiplexed stream within a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId(pub u64);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_held_to_the_engine_name_alphabet() {
        let uuid = ContainerUuid::parse("6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00").expect("valid");
        assert_eq!(uuid.as_str(), "6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00");
        assert_eq!(ContainerUuid::parse(""), Err(ContainerUuidError::Empty));
        assert_eq!(
            ContainerUuid::parse("../x"),
            Err(ContainerUuidError::BadCharacter('/'))
        );
        assert_eq!(
            ContainerUuid::parse("a?b"),
            Err(ContainerUuidError::BadCharacter('?'))
        );
        assert_eq!(
            ContainerUuid::parse(&"a".repeat(MAX_UUID_LEN + 1)),
            Err(ContainerUuidError::TooLong(MAX_UUID_LEN + 1))
        );
    }
}
