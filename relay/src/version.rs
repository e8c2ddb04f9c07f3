//! Protocol versioning and the limits both peers must agree on.
//!
//! An agent and a relay of different releases tell each other apart by
//! `PROTOCOL_VERSION`, sent in `Hello`, `HelloAck` and `EnrollRequest`. A
//! relay accepts every version in `MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION`,
//! so agents can be upgraded after relays.

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The oldest protocol version this build still accepts from a peer.
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// This build's release, reported to peers for diagnostics.
pub const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// The feature an agent lists in its hello when it honours
/// `ContainerSpec.networks` (user-defined networks).
pub const FEATURE_NETWORKS: &str = "networks";

/// The feature an agent lists in its hello when it honours the
/// `ContainerSpec` engine options (`stop_signal`, `stop_timeout_seconds`,
/// `init`, `read_only`, `extra_hosts`).
pub const FEATURE_ENGINE_OPTIONS: &str = "engine-options";

/// The feature an agent lists in its hello when it honours
/// `ContainerSpec.healthcheck` and reports `ContainerState.health`.
pub const FEATURE_HEALTHCHECK: &str = "healthcheck";

/// What an agent of this build supports beyond protocol version 1, sent in
/// every hello.
pub const AGENT_FEATURES: &[&str] = &[
    FEATURE_NETWORKS,
    FEATURE_ENGINE_OPTIONS,
    FEATURE_HEALTHCHECK,
];

/// Most features a hello may list; the relay drops the rest.
pub const MAX_FEATURES: usize = 32;

/// Longest feature name, in bytes.
pub const MAX_FEATURE_LEN: usize = 64;

/// Whether `name` is a well-formed feature name: 1 to [`MAX_FEATURE_LEN`]
/// characters of `[a-z0-9_-]`.
pub fn is_feature_name(name: &str) -> bool {
    (1..=MAX_FEATURE_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Data frames a sender may have in flight per stream before the receiver
/// returns credit. 16 frames of at most `MAX_CHUNK_BYTES` bound what a relay
/// buffers for one stream to 512 KiB however slow its reader is.
pub const STREAM_WINDOW_FRAMES: u32 = 16;

/// Largest payload of one stream data frame.
pub const MAX_CHUNK_BYTES: usize = 32 * 1024;

/// Whether a peer speaking `version` can talk to this build.
pub fn is_supported(version: u32) -> bool {
    (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_supported_range_is_accepted() {
        assert!(is_supported(PROTOCOL_VERSION));
        assert!(!is_supported(0));
        assert!(!is_supported(PROTOCOL_VERSION + 1));
    }

    #[test]
    fn this_builds_features_are_well_formed() {
        assert!(AGENT_FEATURES.iter().all(|f| is_feature_name(f)));
        assert!(AGENT_FEATURES.len() <= MAX_FEATURES);
    }
}
