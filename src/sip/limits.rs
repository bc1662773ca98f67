//! Budgets per source address, so that one source cannot take the whole
//! node's: its concurrent calls, its new calls per second and its open
//! transactions (docs/security.md). A source is an IP address: a trunk's
//! SBC, or (behind an allow-list of networks) one of its hosts.
//!
//! The endpoint checks them before it does any work for a request: a
//! request over a transaction budget is dropped unanswered (answering
//! would itself open a transaction), an INVITE over a call budget gets
//! 503. Every drop is counted in [`Dropped`] for `/metrics`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::net::unmapped;

/// How many of something each source holds.
#[derive(Debug, Default)]
pub(crate) struct SourceCounts {
    by_source: HashMap<IpAddr, usize>,
}

impl SourceCounts {
    pub(crate) fn add(&mut self, source: IpAddr) {
        *self.by_source.entry(unmapped(source)).or_default() += 1;
    }

    pub(crate) fn remove(&mut self, source: IpAddr) {
        let source = unmapped(source);
        if let Some(n) = self.by_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.by_source.remove(&source);
            }
        }
    }

    pub(crate) fn of(&self, source: IpAddr) -> usize {
        self.by_source.get(&unmapped(source)).copied().unwrap_or(0)
    }
}

/// A token bucket: `rate` tokens per second, bursts of up to `rate`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(per_second: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            rate: f64::from(per_second),
            tokens: f64::from(per_second),
            last: now,
        }
    }

    /// Takes a token if one is left at `now`.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.last)
            .min(Duration::from_secs(60));
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.rate);
        self.last = self.last.max(now);
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.rate
    }
}

/// A token bucket per source. Full buckets (sources idle for a while) are
/// swept once many sources were seen, and past a hard cap a new source
/// gets no token, so memory stays bounded whatever the allow-list lets in.
#[derive(Debug)]
pub(crate) struct RatePerSource {
    per_second: u32,
    buckets: HashMap<IpAddr, TokenBucket>,
}

/// Sources tracked before full buckets are swept.
const SWEEP_ABOVE: usize = 4_096;
/// Sources tracked at most.
const MAX_TRACKED: usize = 16_384;

impl RatePerSource {
    pub(crate) fn new(per_second: u32) -> RatePerSource {
        RatePerSource {
            per_second,
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for `source` if one is left at `now`.
    pub(crate) fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let source = unmapped(source);
        if self.buckets.len() > SWEEP_ABOVE && !self.buckets.contains_key(&source) {
            self.buckets.retain(|_, b| !b.is_full(now));
            if self.buckets.len() >= MAX_TRACKED {
                return false;
            }
        }
        let per_second = self.per_second;
        self.buckets
            .entry(source)
            .or_insert_with(|| TokenBucket::new(per_second, now))
            .take(now)
    }
}

/// What the endpoint dropped or refused for a limit, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Datagrams (or framed TCP messages) from sources not allowed, not
    /// parsed.
    pub not_allowed: u64,
    /// Of those, the requests answered 403 (within `max_forbidden_per_second`).
    pub forbidden: u64,
    /// Requests dropped unanswered: their source had
    /// `max_transactions_per_source` transactions open.
    pub source_transactions: u64,
    /// Requests dropped unanswered: the node had `max_transactions` open.
    pub transactions: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_source() {
        let mut c = SourceCounts::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        c.add(a);
        c.add(a);
        c.add("::ffff:192.0.2.2".parse().unwrap());
        assert_eq!((c.of(a), c.of(b)), (2, 1));
        c.remove(a);
        c.remove(b);
        c.remove(b); // not held: ignored
        assert_eq!((c.of(a), c.of(b)), (1, 0));
        assert!(!c.by_source.contains_key(&b), "no entry left at zero");
    }

    #[test]
    fn a_bucket_per_source_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut r = RatePerSource::new(2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(r.allow(a, t0) && r.allow(a, t0));
        assert!(!r.allow(a, t0), "a burst of the rate, no more");
        assert!(r.allow(b, t0), "another source has its own");
        assert!(r.allow(a, t0 + Duration::from_millis(500)));
        assert!(!r.allow(a, t0 + Duration::from_millis(500)));
        // Many sources at once: tracked up to the cap, then refused.
        for i in 0..20_000u32 {
            r.allow(IpAddr::from((0x0A00_0000 + i).to_be_bytes()), t0);
        }
        assert_eq!(r.buckets.len(), MAX_TRACKED);
        assert!(!r.allow("203.0.113.1".parse().unwrap(), t0));
        // Once they are idle, a new source sweeps them away.
        let later = t0 + Duration::from_secs(10);
        assert!(r.allow("203.0.113.1".parse().unwrap(), later));
        assert!(r.buckets.len() < 10, "{}", r.buckets.len());
    }
}
