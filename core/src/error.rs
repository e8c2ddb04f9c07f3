//! The classification every error that can reach a client carries. Each
//! protocol boundary maps it to its own codes in exactly one place: the
//! relay's `status.rs` and `convert.rs` for gRPC and the wire protocol, the
//! service's API error module for HTTP (Zun and Docker).

/// What kind of failure an error is, which decides how a caller sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request itself is wrong; retrying it unchanged cannot help.
    Invalid,
    /// The caller did not prove who it is.
    Unauthenticated,
    /// The caller is known but not allowed.
    Forbidden,
    /// The caller's quota (its Nova limits) would be exceeded; the message
    /// carries the quota owner's own words.
    OverQuota,
    /// The object does not exist (or belongs to someone else).
    NotFound,
    /// The object is in the wrong state, or already exists.
    Conflict,
    /// A dependency is down or unreachable; a retry may help.
    Unavailable,
    /// The operation did not finish in time.
    Timeout,
    /// A bug or an unexpected failure; details go to the log only.
    Internal,
}

impl ErrorKind {
    /// Every kind, for exhaustive tests of the mappings.
    pub const ALL: [Self; 9] = [
        Self::Invalid,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::OverQuota,
        Self::NotFound,
        Self::Conflict,
        Self::Unavailable,
        Self::Timeout,
        Self::Internal,
    ];

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Unavailable | Self::Timeout)
    }
}
