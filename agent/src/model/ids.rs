//! The identifiers the agent is handed: Nest's container uuid and network
//! id, and the ids of one session's commands and streams.

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

/// Nest's id of a user-defined network: exactly 32 lowercase hex digits.
///
/// It ends up in the engine network's name (`nest-<id>`) and in URL paths,
/// so nothing else is accepted, not even the same id in upper case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(String);

/// Length of a [`NetworkId`].
pub const NETWORK_ID_LEN: usize = 32;

/// Why a string is not a [`NetworkId`]. The message completes
/// "invalid `field`: ...".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("must be exactly {NETWORK_ID_LEN} lowercase hex digits")]
pub struct NetworkIdError;

impl NetworkId {
    /// Checks and wraps a network id.
    ///
    /// # Errors
    /// [`NetworkIdError`] for anything but 32 characters of `[0-9a-f]`.
    pub fn parse(id: &str) -> Result<Self, NetworkIdError> {
        if id.len() != NETWORK_ID_LEN || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(NetworkIdError);
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NetworkId {
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

    #[test]
    fn network_ids_are_exactly_32_lowercase_hex_digits() {
        let id = NetworkId::parse("0123456789abcdef0123456789abcdef").expect("valid");
        assert_eq!(id.to_string(), "0123456789abcdef0123456789abcdef");
        for bad in [
            "",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcdeg",
            "01234567-89ab-cdef-0123-456789abcdef",
            "../../containers/x/json?a=bbbbbbb",
        ] {
            assert_eq!(NetworkId::parse(bad), Err(NetworkIdError), "{bad:?}");
        }
    }
}
