//! Reconnect delays: the failures in a row since the last session, and the shared
//! [`h264_support::Backoff`] (exponential from `reconnect_backoff` to `reconnect_backoff_max`,
//! ±20 % jitter) for the delay, so that a fleet that lost its controller at once does not come
//! back at once.

use std::time::Duration;

/// The delay before each reconnect attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    delays: h264_support::Backoff,
    failures: u32,
}

impl Backoff {
    /// Delays from `base`, doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            delays: h264_support::Backoff::new(base, max),
            failures: 0,
        }
    }

    /// The delay before the next attempt; counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.delays.delay(self.failures)
    }

    /// Back to `base`, after a session was established.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failed attempts since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_failures_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000));
        for _ in 0..7 {
            let d = b.next_delay();
            assert!(d >= ms(100) && d <= ms(1000), "{d:?}");
        }
        assert_eq!(b.failures(), 7);
        b.reset();
        assert!(b.next_delay() <= ms(120));
        assert_eq!(b.failures(), 1);
    }
}
