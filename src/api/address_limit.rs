//! Login attempts per client address: a token bucket per address (IPv4 by
//! address, IPv6 by /64, the block one host is usually given), checked
//! before the database and before any hashing. In memory, per node: with
//! N nodes behind a balancer an address gets up to N times the rate (the
//! per-account count in the database is what holds across nodes).
//!
//! Memory is bounded whatever addresses are sprayed: at most
//! [`MAX_ADDRESSES`] buckets. When full, buckets that have refilled (the
//! same as never seen) go first; if that frees nothing, the eighth least
//! recently used go, as nginx's `limit_req` zones do. An attacker who owns
//! more addresses than that gains nothing the addresses did not already
//! give them.
//!
//! Sans-IO: the caller passes `now` (a monotonic `Instant`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The most addresses remembered at once (about 40 bytes each).
pub const MAX_ADDRESSES: usize = 65_536;

/// Token buckets by client address; see the module doc.
#[derive(Debug)]
pub struct AddressLimiter {
    burst: f64,
    per_second: f64,
    capacity: usize,
    buckets: HashMap<u128, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl AddressLimiter {
    /// `burst` attempts at once, refilled at `per_minute`; `per_minute`
    /// 0: no limit.
    pub fn new(burst: u32, per_minute: u32) -> AddressLimiter {
        AddressLimiter::with_capacity(burst, per_minute, MAX_ADDRESSES)
    }

    fn with_capacity(burst: u32, per_minute: u32, capacity: usize) -> AddressLimiter {
        AddressLimiter {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_minute) / 60.0,
            capacity: capacity.max(8),
            buckets: HashMap::new(),
        }
    }

    /// Takes one attempt for `ip` at `now`; `Err(wait)`: none left, the
    /// next comes after `wait`.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let key = key(ip);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.capacity {
            self.make_room(now);
        }
        let (burst, rate) = (self.burst, self.per_second);
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn make_room(&mut self, now: Instant) {
        let (burst, rate) = (self.burst, self.per_second);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
        });
        if self.buckets.len() < self.capacity {
            return;
        }
        let mut ages: Vec<(Instant, u128)> = self.buckets.iter().map(|(k, b)| (b.at, *k)).collect();
        let evict = (self.capacity / 8).max(1);
        ages.select_nth_unstable(evict - 1);
        for (_, key) in &ages[..evict] {
            self.buckets.remove(key);
        }
    }
}

/// IPv4 (and IPv4-mapped IPv6) by address, tagged apart from IPv6; IPv6
/// by its /64.
fn key(ip: IpAddr) -> u128 {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        IpAddr::V4(_) => ip,
    };
    match ip {
        IpAddr::V4(v4) => (1u128 << 127) | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6) & !u128::from(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut limiter = AddressLimiter::new(3, 60); // one a second
        for _ in 0..3 {
            assert!(limiter.check(ip("192.0.2.1"), t0).is_ok());
        }
        let wait = limiter.check(ip("192.0.2.1"), t0).unwrap_err();
        assert!(wait > Duration::from_millis(990) && wait <= Duration::from_secs(1));
        // Another address has its own bucket; the mapped form is the same.
        assert!(limiter.check(ip("192.0.2.2"), t0).is_ok());
        assert!(limiter.check(ip("::ffff:192.0.2.1"), t0).is_err());
        let t1 = t0 + Duration::from_millis(1500);
        assert!(limiter.check(ip("192.0.2.1"), t1).is_ok());
        assert!(limiter.check(ip("192.0.2.1"), t1).is_err());
        // Refilled up to the burst, no further.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(limiter.check(ip("192.0.2.1"), t2).is_ok());
        }
        assert!(limiter.check(ip("192.0.2.1"), t2).is_err());
    }

    #[test]
    fn ipv6_is_limited_by_its_64() {
        let t0 = Instant::now();
        let mut limiter = AddressLimiter::new(1, 1);
        assert!(limiter.check(ip("2001:db8:1:2::1"), t0).is_ok());
        assert!(limiter.check(ip("2001:db8:1:2:ffff::9"), t0).is_err());
        assert!(limiter.check(ip("2001:db8:1:3::1"), t0).is_ok());
    }

    #[test]
    fn no_rate_no_limit() {
        let mut limiter = AddressLimiter::new(1, 0);
        for _ in 0..100 {
            assert!(limiter.check(ip("192.0.2.1"), Instant::now()).is_ok());
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn sprayed_addresses_never_grow_it_past_its_capacity() {
        let t0 = Instant::now();
        let mut limiter = AddressLimiter::with_capacity(2, 1, 64);
        // The one that keeps guessing from one address stays limited
        // while a spray of single attempts churns the rest.
        let guesser = ip("198.51.100.7");
        limiter.check(guesser, t0).unwrap();
        limiter.check(guesser, t0).unwrap();
        for n in 0..10_000u32 {
            let t = t0 + Duration::from_millis(u64::from(n));
            let _ = limiter.check(IpAddr::V4(n.into()), t);
            assert!(limiter.len() <= 64);
            if n % 7 == 0 {
                // Recently used: never the least recently used eighth.
                assert!(limiter.check(guesser, t).is_err(), "at {n}");
            }
        }
    }
}
