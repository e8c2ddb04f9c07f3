//! The one retry delay schedule in Nest: exponential, jittered, capped.
//!
//! Jitter spreads reconnects out so that a relay restart is not met by every
//! agent at the same instant. Randomness comes from aws-lc-rs, already in the
//! tree for TLS.

use std::time::Duration;

/// Default first delay: well under a second, so a blip heals quickly.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Default cap: a long outage costs a retry every couple of minutes at most.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(120);
/// Growth per attempt.
const FACTOR: f64 = 1.6;
/// Each delay is scaled by a random factor in `[1 - JITTER, 1 + JITTER]`.
const JITTER: f64 = 0.25;

/// Delays for successive attempts of one operation.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A schedule starting at `initial` and never exceeding `max` (plus jitter).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The delay before the next attempt; each call grows the next one.
    pub fn next_delay(&mut self) -> Duration {
        let exp = FACTOR.powi(i32::try_from(self.attempt).unwrap_or(i32::MAX));
        self.attempt = self.attempt.saturating_add(1);
        let base = self.initial.as_secs_f64() * exp;
        let capped = base.min(self.max.as_secs_f64());
        let scale = 1.0 - JITTER + 2.0 * JITTER * random_unit();
        Duration::from_secs_f64(capped * scale)
    }

    /// Starts again from the first delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX)
    }
}

/// A uniform random number in `[0, 1)`; 0.5 if the system RNG fails, which
/// only loses jitter, never correctness.
fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    // 53 random bits make every double in [0, 1) equally likely.
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_jittered_and_capped() {
        let mut b = Backoff::new(Duration::from_millis(250), Duration::from_secs(120));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(187) && first <= Duration::from_millis(313));
        let mut last = first;
        for _ in 0..40 {
            last = b.next_delay();
        }
        assert!(last <= Duration::from_secs(150), "{last:?}");
        assert!(last >= Duration::from_secs(90), "{last:?}");
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(400));
    }
}
