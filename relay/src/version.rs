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
}
