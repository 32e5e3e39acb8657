//! Login throttling: token buckets of login attempts, one per peer (an IPv4 address, or an
//! IPv6 /64, what one host usually holds) and one for the whole console. Each attempt takes a
//! token from both before the token it carries is checked; a login that succeeds gives them
//! back, so only failures count. An empty bucket refuses the attempt (HTTP 429 with
//! `Retry-After`) without checking anything. A peer gets [`PEER_BURST`] failures at once, then
//! one every [`PEER_EVERY`]; the console [`GLOBAL_BURST`], then one every [`GLOBAL_EVERY`], so
//! many addresses together cannot guess faster either (at the price that, while someone
//! floods the login, a mistyped token waits too; a correct one is never slowed unless a
//! bucket is already empty).
//!
//! # Concurrency
//! One `std::sync::Mutex` around the buckets, held for a few statements and never across an
//! `.await`. At most [`MAX_PEERS`] peers are tracked; past it, buckets that have refilled are
//! dropped, and a peer that still finds no room is held to the global bucket alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins a peer may make at once.
pub const PEER_BURST: f64 = 5.0;
/// A peer's next failed login after that, one per this.
pub const PEER_EVERY: Duration = Duration::from_secs(12);
/// Failed logins the whole console accepts at once.
pub const GLOBAL_BURST: f64 = 60.0;
/// The console's next failed login after that, one per this.
pub const GLOBAL_EVERY: Duration = Duration::from_secs(1);
/// Peers tracked at most.
pub const MAX_PEERS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Self {
            tokens: burst,
            at: now,
        }
    }

    /// Refills for the time since the last look.
    fn refill(&mut self, burst: f64, every: Duration, now: Instant) {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() / every.as_secs_f64();
        self.tokens = (self.tokens + gained).min(burst);
        self.at = now;
    }

    /// How long until a token is there (zero when one is).
    fn wait(&self, every: Duration) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            every.mul_f64(1.0 - self.tokens)
        }
    }
}

#[derive(Debug)]
struct State {
    peers: HashMap<IpAddr, Bucket>,
    global: Bucket,
}

/// The console's login buckets.
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<State>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                peers: HashMap::new(),
                global: Bucket::full(GLOBAL_BURST, Instant::now()),
            }),
        }
    }
}

/// The key of a peer: its IPv4 address, or its IPv6 /64 (an IPv4-mapped one as IPv4).
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a token for a login attempt from `ip`; `Err(wait)` when the peer or the console
    /// has none (the attempt is refused unchecked, and may be retried after `wait`).
    pub fn begin(&self, ip: IpAddr) -> Result<(), Duration> {
        self.begin_at(ip, Instant::now())
    }

    /// Gives back the token of an attempt that succeeded.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut s = self.lock();
        if let Some(b) = s.peers.get_mut(&peer_key(ip)) {
            b.tokens = (b.tokens + 1.0).min(PEER_BURST);
        }
        s.global.tokens = (s.global.tokens + 1.0).min(GLOBAL_BURST);
    }

    fn begin_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = peer_key(ip);
        let mut guard = self.lock();
        let s = &mut *guard;
        s.global.refill(GLOBAL_BURST, GLOBAL_EVERY, now);
        if !s.peers.contains_key(&key) && s.peers.len() >= MAX_PEERS {
            s.peers.retain(|_, b| {
                b.refill(PEER_BURST, PEER_EVERY, now);
                b.tokens < PEER_BURST
            });
        }
        let mut untracked = Bucket::full(PEER_BURST, now);
        let peer = if s.peers.len() < MAX_PEERS || s.peers.contains_key(&key) {
            s.peers
                .entry(key)
                .or_insert_with(|| Bucket::full(PEER_BURST, now))
        } else {
            &mut untracked
        };
        peer.refill(PEER_BURST, PEER_EVERY, now);
        let wait = peer.wait(PEER_EVERY).max(s.global.wait(GLOBAL_EVERY));
        if !wait.is_zero() {
            return Err(wait);
        }
        peer.tokens -= 1.0;
        s.global.tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_peer_gets_its_burst_then_waits_and_successes_do_not_count() {
        let t = Throttle::default();
        let now = Instant::now();
        let a = ip("192.0.2.7");
        for _ in 0..PEER_BURST as usize {
            t.begin_at(a, now).unwrap();
        }
        let wait = t.begin_at(a, now).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= PEER_EVERY, "{wait:?}");
        // Another peer is not held back by the first one's failures.
        t.begin_at(ip("192.0.2.8"), now).unwrap();
        // After one refill period, one more attempt.
        t.begin_at(a, now + PEER_EVERY).unwrap();
        assert!(t.begin_at(a, now + PEER_EVERY).is_err());
        // Successful logins give their token back: they never run a peer dry.
        let b = ip("192.0.2.9");
        for _ in 0..20 {
            t.begin_at(b, now).unwrap();
            t.succeeded(b);
        }
    }

    #[test]
    fn one_ipv6_host_is_one_peer_and_the_console_has_a_ceiling() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..PEER_BURST as usize {
            t.begin_at(ip(&format!("2001:db8:1:2::{i:x}")), now)
                .unwrap();
        }
        assert!(t.begin_at(ip("2001:db8:1:2::ffff"), now).is_err());
        assert_eq!(peer_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        // Many addresses together: the global bucket runs dry.
        let mut refused = 0;
        for i in 0..(GLOBAL_BURST as usize + 10) {
            if t.begin_at(ip(&format!("198.51.100.{}", i % 250)), now)
                .is_err()
            {
                refused += 1;
            }
        }
        assert!(refused >= 10, "{refused}");
    }
}
