//! The per-client rate limit: a token bucket per IP address (IPv6 by /64,
//! since one client usually holds a whole /64), refilled evenly over the
//! minute. Memory is bounded: idle clients are swept, and past
//! [`MAX_CLIENTS`] new clients share one bucket.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most clients tracked one by one; beyond that they share one bucket (so a
/// flood from many addresses cannot grow memory without bound).
pub(crate) const MAX_CLIENTS: usize = 100_000;
/// Sweeping starts at this many clients.
const FIRST_SWEEP: usize = 1024;
/// A full table is swept at most this often.
const SWEEP_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    Ip(IpAddr),
    /// Everyone beyond [`MAX_CLIENTS`].
    Overflow,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
struct State {
    buckets: HashMap<Client, Bucket>,
    next_sweep: usize,
    last_sweep: Option<Instant>,
}

/// Allows each client `per_minute` requests per minute, in bursts of up to
/// `per_minute`. Zero disables the limit.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_minute: u32,
    state: Mutex<State>,
}

impl RateLimiter {
    pub(crate) fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            state: Mutex::new(State {
                buckets: HashMap::new(),
                next_sweep: FIRST_SWEEP,
                last_sweep: None,
            }),
        }
    }

    /// Takes one request from `ip`'s bucket: `Err(seconds)` to wait when
    /// it is empty.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut client = Client::Ip(key(ip));
        if !state.buckets.contains_key(&client) {
            // A full table is swept at most once a second, so a flood of new
            // addresses cannot make every request scan it.
            let full_table = state.buckets.len() >= MAX_CLIENTS;
            let due = state.buckets.len() >= state.next_sweep
                && (!full_table
                    || state
                        .last_sweep
                        .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_PAUSE));
            if due {
                let full = |b: &Bucket| {
                    b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * per_second
                        >= capacity
                };
                state.buckets.retain(|_, b| !full(b));
                state.next_sweep = (state.buckets.len() * 2).clamp(FIRST_SWEEP, MAX_CLIENTS);
                state.last_sweep = Some(now);
            }
            if state.buckets.len() >= MAX_CLIENTS {
                client = Client::Overflow;
            }
        }
        let bucket = state.buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.last = bucket.last.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - bucket.tokens) / per_second).ceil() as u64).max(1))
        }
    }

    #[cfg(test)]
    fn clients(&self) -> usize {
        self.state.lock().unwrap().buckets.len()
    }
}

/// The address a client is counted by: IPv4 (also when mapped into IPv6),
/// or the /64 of an IPv6 address.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_refill() {
        let l = RateLimiter::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(ip("192.0.2.1"), t0), Ok(()));
        }
        assert_eq!(l.check(ip("192.0.2.1"), t0), Err(20));
        // Others are not affected.
        assert_eq!(l.check(ip("192.0.2.2"), t0), Ok(()));
        // One request comes back every 20 seconds.
        assert_eq!(
            l.check(ip("192.0.2.1"), t0 + Duration::from_secs(10)),
            Err(10)
        );
        assert_eq!(
            l.check(ip("192.0.2.1"), t0 + Duration::from_secs(20)),
            Ok(())
        );
        assert!(
            l.check(ip("192.0.2.1"), t0 + Duration::from_secs(20))
                .is_err()
        );
        // Never more than the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.check(ip("192.0.2.1"), later), Ok(()));
        }
        assert!(l.check(ip("192.0.2.1"), later).is_err());
    }

    #[test]
    fn ipv6_by_prefix_and_mapped_ipv4() {
        let l = RateLimiter::new(2);
        let t0 = Instant::now();
        assert_eq!(l.check(ip("2001:db8:1:2::1"), t0), Ok(()));
        assert_eq!(l.check(ip("2001:db8:1:2:ffff::9"), t0), Ok(()));
        assert!(l.check(ip("2001:db8:1:2::3"), t0).is_err());
        assert_eq!(l.check(ip("2001:db8:1:3::1"), t0), Ok(()));
        assert_eq!(l.check(ip("192.0.2.7"), t0), Ok(()));
        assert_eq!(l.check(ip("::ffff:192.0.2.7"), t0), Ok(()));
        assert!(l.check(ip("192.0.2.7"), t0).is_err());
    }

    #[test]
    fn zero_disables() {
        let l = RateLimiter::new(0);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(l.check(ip("192.0.2.1"), t0), Ok(()));
        }
    }

    #[test]
    fn idle_clients_are_swept() {
        let l = RateLimiter::new(60);
        let t0 = Instant::now();
        for i in 0..FIRST_SWEEP as u32 {
            l.check(IpAddr::V4(i.into()), t0).unwrap();
        }
        assert_eq!(l.clients(), FIRST_SWEEP);
        // A minute later they are all full again: the next new client sweeps them.
        l.check(ip("198.51.100.1"), t0 + Duration::from_secs(61))
            .unwrap();
        assert_eq!(l.clients(), 1);
    }
}
