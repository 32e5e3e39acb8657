//! Deduplication and rate limiting of alerts by key: a key is mailed at most once per window;
//! what is held back is counted and reported with the next message for that key.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// Above this many remembered keys, keys whose window has passed with nothing to report are
/// forgotten.
const PRUNE_ABOVE: usize = 1024;

/// What to do with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Mail it; `suppressed` alerts with its key were held back since `since` (the previous
    /// message for the key).
    Send {
        /// How many alerts with this key were held back.
        suppressed: u64,
        /// When the previous message for this key was sent (when `suppressed > 0`).
        since: Option<SystemTime>,
    },
    /// Hold it back: the key was mailed within the window. `count` is how many are held back
    /// now, this one included.
    Suppress {
        /// Alerts with this key held back so far.
        count: u64,
    },
}

#[derive(Debug)]
struct KeyState {
    sent_at: Instant,
    sent_wall: SystemTime,
    suppressed: u64,
}

/// Per-key memory of the last message.
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    keys: HashMap<String, KeyState>,
}

impl Dedup {
    /// A deduplicator with `window` (zero: every alert is sent).
    pub fn new(window: Duration) -> Dedup {
        Dedup {
            window,
            keys: HashMap::new(),
        }
    }

    /// Decides about an alert with `key` raised at `now` (`wall` is the same moment on the
    /// wall clock).
    pub fn check(&mut self, key: &str, now: Instant, wall: SystemTime) -> Decision {
        if self.keys.len() > PRUNE_ABOVE {
            let window = self.window;
            self.keys
                .retain(|_, s| s.suppressed > 0 || now.duration_since(s.sent_at) < window);
        }
        match self.keys.get_mut(key) {
            Some(state) if now.duration_since(state.sent_at) < self.window => {
                state.suppressed += 1;
                Decision::Suppress {
                    count: state.suppressed,
                }
            }
            Some(state) => {
                let decision = Decision::Send {
                    suppressed: state.suppressed,
                    since: (state.suppressed > 0).then_some(state.sent_wall),
                };
                *state = KeyState {
                    sent_at: now,
                    sent_wall: wall,
                    suppressed: 0,
                };
                decision
            }
            None => {
                let state = KeyState {
                    sent_at: now,
                    sent_wall: wall,
                    suppressed: 0,
                };
                self.keys.insert(key.to_owned(), state);
                Decision::Send {
                    suppressed: 0,
                    since: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND: Decision = Decision::Send {
        suppressed: 0,
        since: None,
    };

    #[test]
    fn a_key_is_sent_once_per_window_and_the_rest_is_counted() {
        let mut d = Dedup::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH;
        assert_eq!(d.check("a", t0, w0), SEND);
        assert_eq!(d.check("b", t0, w0), SEND, "keys are independent");
        let later = t0 + Duration::from_secs(30);
        assert_eq!(d.check("a", later, w0), Decision::Suppress { count: 1 });
        assert_eq!(d.check("a", later, w0), Decision::Suppress { count: 2 });
        let after = t0 + Duration::from_secs(61);
        let expected = Decision::Send {
            suppressed: 2,
            since: Some(w0),
        };
        assert_eq!(d.check("a", after, w0), expected);
        assert_eq!(
            d.check("a", after + Duration::from_secs(61), w0),
            SEND,
            "the count starts again"
        );
    }

    #[test]
    fn a_zero_window_sends_everything() {
        let mut d = Dedup::new(Duration::ZERO);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(d.check("a", t0, SystemTime::UNIX_EPOCH), SEND);
        }
    }

    #[test]
    fn forgotten_keys_keep_their_counts() {
        let mut d = Dedup::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH;
        d.check("noisy", t0, w0);
        d.check("noisy", t0, w0);
        for n in 0..=PRUNE_ABOVE {
            d.check(&format!("k{n}"), t0, w0);
        }
        let later = t0 + Duration::from_secs(2);
        d.check("trigger-prune", later, w0);
        assert!(d.keys.len() < PRUNE_ABOVE, "expired keys are pruned");
        let expected = Decision::Send {
            suppressed: 1,
            since: Some(w0),
        };
        assert_eq!(d.check("noisy", later, w0), expected);
    }
}
