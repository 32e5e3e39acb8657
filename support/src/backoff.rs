//! The retry delay: exponential from a base, capped, with jitter.
//!
//! Failure `n` (1-based) waits `base × 2^(n-1)`, capped at `max`, times a random factor in
//! 0.8–1.2, and the result is kept inside `[base, max]`. The jitter is a decision, not an
//! accident: ±20 % spreads out a fleet (or a folder of files) that failed at the same moment,
//! so its retries do not all land at once, while a delay never drops below what the operator
//! set as the base nor rises above the cap. Delays are a function of the failure count, so a
//! count kept in a journal (job attempts) and one kept in memory (reconnects, e-mail
//! delivery) give the same schedule.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with ±20 % jitter inside `[base, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

/// The jitter factor's range.
const JITTER: std::ops::RangeInclusive<f64> = 0.8..=1.2;

impl Backoff {
    /// Delays from `base`, doubling up to `max` (a `max` below `base` counts as `base`).
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
        }
    }

    /// The first delay.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The delay after the `failures`-th failure in a row (1 for the first; 0 counts as 1).
    pub fn delay(&self, failures: u32) -> Duration {
        self.scaled(failures, rand::rng().random_range(JITTER))
    }

    /// The delay for a given jitter factor (the deterministic part, for tests).
    fn scaled(&self, failures: u32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        let raw = self.base.as_secs_f64() * f64::from(1u32 << doublings);
        let capped = raw.min(self.max.as_secs_f64());
        let secs = (capped * jitter).clamp(self.base.as_secs_f64(), self.max.as_secs_f64());
        Duration::from_secs_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::new(MS(100), MS(1000));
        let exact: Vec<Duration> = (1..=7).map(|n| b.scaled(n, 1.0)).collect();
        assert_eq!(
            exact,
            [100, 200, 400, 800, 1000, 1000, 1000].map(MS),
            "{exact:?}"
        );
        assert_eq!(b.scaled(0, 1.0), MS(100));
    }

    #[test]
    fn jitter_stays_inside_base_and_cap() {
        let b = Backoff::new(MS(100), MS(1000));
        assert_eq!(b.scaled(1, 0.8), MS(100), "never below the base");
        assert_eq!(b.scaled(3, 0.8), MS(320));
        assert_eq!(b.scaled(3, 1.2), MS(480));
        assert_eq!(b.scaled(9, 1.2), MS(1000), "never above the cap");
        for n in 0..100 {
            let d = b.delay(n);
            let exact = b.scaled(n, 1.0);
            assert!(d >= MS(100) && d <= MS(1000), "{n}: {d:?}");
            assert!(
                d.as_secs_f64() >= exact.as_secs_f64() * 0.8 - 1e-9,
                "{n}: {d:?}"
            );
            assert!(
                d.as_secs_f64() <= exact.as_secs_f64() * 1.2 + 1e-9,
                "{n}: {d:?}"
            );
        }
    }

    #[test]
    fn never_overflows_and_a_low_cap_is_the_base() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(
            b.delay(u32::MAX).max(Duration::from_secs(30)),
            Duration::from_secs(30)
        );
        let b = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(
            (b.base(), b.max()),
            (Duration::from_secs(5), Duration::from_secs(5))
        );
        assert_eq!(b.delay(4), Duration::from_secs(5));
    }
}
