//! Reconnect delays: exponential from `reconnect_backoff` to `reconnect_backoff_max`, with
//! jitter so that a fleet that lost its controller at once does not come back at once.

use std::time::Duration;

use rand::Rng;

/// The delay before each reconnect attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// Delays from `base`, doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            failures: 0,
        }
    }

    /// The delay before the next attempt: `base × 2^failures`, capped at `max`, then scaled by a
    /// random factor in 0.5-1.0 ("equal jitter": never zero, never above the cap).
    pub fn next_delay(&mut self) -> Duration {
        let raw = self
            .base
            .saturating_mul(2u32.saturating_pow(self.failures.min(20)));
        self.failures = self.failures.saturating_add(1);
        let capped = raw.min(self.max);
        capped.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
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
    fn doubles_with_jitter_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000));
        for (attempt, cap) in [100, 200, 400, 800, 1000, 1000, 1000]
            .into_iter()
            .enumerate()
        {
            let d = b.next_delay();
            assert!(d >= ms(cap / 2) && d <= ms(cap), "attempt {attempt}: {d:?}");
        }
        assert_eq!(b.failures(), 7);
        b.reset();
        assert!(b.next_delay() <= ms(100));
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }
}
