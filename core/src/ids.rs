//! Identifiers that cross process boundaries, as newtypes so that two of
//! them can never be swapped by accident: the instance an agent runs in,
//! and the request id that follows one API call through the service, the
//! relay and the agent.

use std::fmt;

/// Longest instance id accepted; Nova server ids are 36-character UUIDs.
pub const MAX_INSTANCE_ID_LEN: usize = 64;

/// The id of an instance (a Nova server id, or a `local` driver instance).
///
/// Only ASCII letters, digits, `-`, `_` and `.` are allowed, so that the id is
/// safe in certificate names, URIs, file names and log lines.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

/// Why a string is not a valid [`InstanceId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InstanceIdError {
    /// The id is empty.
    #[error("instance id is empty")]
    Empty,
    /// The id is longer than [`MAX_INSTANCE_ID_LEN`].
    #[error("instance id is {0} characters long; at most {MAX_INSTANCE_ID_LEN} are allowed")]
    TooLong(usize),
    /// The id holds a character outside `[A-Za-z0-9._-]`.
    #[error("instance id holds {0:?}; only ASCII letters, digits, '-', '_' and '.' are allowed")]
    BadCharacter(char),
}

impl InstanceId {
    /// Checks and wraps an instance id.
    ///
    /// # Errors
    /// [`InstanceIdError`] when the id is empty, too long or holds a
    /// character outside `[A-Za-z0-9._-]`.
    pub fn parse(id: &str) -> Result<Self, InstanceIdError> {
        if id.is_empty() {
            return Err(InstanceIdError::Empty);
        }
        if id.len() > MAX_INSTANCE_ID_LEN {
            return Err(InstanceIdError::TooLong(id.len()));
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(InstanceIdError::BadCharacter(bad));
        }
        if id.starts_with('.') {
            return Err(InstanceIdError::BadCharacter('.'));
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for InstanceId {
    type Err = InstanceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for InstanceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for InstanceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A request's id, `req-<uuid>`, echoed as `x-openstack-request-id` and
/// carried to the relay and agent for tracing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(format!("req-{}", uuid::Uuid::new_v4()))
    }

    /// Accepts a client-sent id if it has the `req-<uuid>` shape.
    pub fn from_client(s: &str) -> Option<Self> {
        let uuid = s.strip_prefix("req-")?;
        uuid::Uuid::parse_str(uuid).ok()?;
        Some(Self(s.to_owned()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_have_the_req_uuid_shape() {
        let id = RequestId::generate();
        assert_eq!(RequestId::from_client(id.as_str()), Some(id));
        assert_eq!(RequestId::from_client("req-nope"), None);
        assert_eq!(
            RequestId::from_client("0f3c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00"),
            None
        );
    }

    #[test]
    fn uuid_is_accepted() {
        let id = InstanceId::parse("6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00").expect("valid");
        assert_eq!(id.as_str(), "6f1c1c3e-2b7a-4d7e-9a52-0d1f3c2b1a00");
    }

    #[test]
    fn unsafe_characters_are_refused() {
        assert_eq!(InstanceId::parse(""), Err(InstanceIdError::Empty));
        assert_eq!(
            InstanceId::parse("a/b"),
            Err(InstanceIdError::BadCharacter('/'))
        );
        assert_eq!(
            InstanceId::parse("..x"),
            Err(InstanceIdError::BadCharacter('.'))
        );
        assert_eq!(
            InstanceId::parse("a b"),
            Err(InstanceIdError::BadCharacter(' '))
        );
        assert_eq!(
            InstanceId::parse(&"a".repeat(65)),
            Err(InstanceIdError::TooLong(65))
        );
    }
}
