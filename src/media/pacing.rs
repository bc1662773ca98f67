//! Shared pacing: many calls driven from a few tickers (the way SEMS and
//! FreeSWITCH's soft timer do it), instead of one timer task per call.
//!
//! A [`Pacer`] is one ticker's schedule, sans-IO: each call is entered with
//! its next absolute deadline (the session's `poll_timeout`, which for an
//! RTP session is `start + n·ptime`, so lateness never accumulates); the
//! runtime's ticker task sleeps until [`Pacer::next_deadline`], takes every
//! due call with [`Pacer::pop_due`], runs it, and reschedules it. The
//! runtime spreads calls over a few pacers (one per core) by call id.
//!
//! A binary heap with lazy deletion: rescheduling pushes a new entry and
//! remembers the call's current generation in a table indexed by its slot;
//! stale entries are skipped when they surface. O(log n) per frame, no
//! allocation and no hashing in steady state.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// One ticker's schedule of calls, each named by its slot: a small integer
/// the ticker chose itself (its index in the ticker's table of calls),
/// never peer input, so the pacer can index a table by it.
pub struct Pacer {
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    /// Per slot, the generation and deadline of its live heap entry
    /// (generation 0: not scheduled).
    current: Vec<(u64, Instant)>,
    scheduled: usize,
    generation: u64,
    lateness: Lateness,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

impl Pacer {
    pub fn new() -> Self {
        Pacer {
            heap: BinaryHeap::new(),
            current: Vec::new(),
            scheduled: 0,
            generation: 0,
            lateness: Lateness::default(),
        }
    }

    /// Enter or move a call's next deadline. The same deadline again (a
    /// call rescheduled after a received packet) changes nothing.
    pub fn schedule(&mut self, slot: usize, deadline: Instant) {
        if slot >= self.current.len() {
            self.current.resize(slot + 1, (0, deadline));
        }
        let Some(entry) = self.current.get_mut(slot) else {
            return;
        };
        match entry.0 {
            0 => self.scheduled += 1,
            _ if entry.1 == deadline => return,
            _ => {}
        }
        self.generation += 1;
        *entry = (self.generation, deadline);
        self.heap.push(Reverse((deadline, self.generation, slot)));
    }

    /// Forget a call (hung up).
    pub fn remove(&mut self, slot: usize) {
        if let Some(entry) = self.current.get_mut(slot)
            && entry.0 != 0
        {
            entry.0 = 0;
            self.scheduled -= 1;
        }
    }

    /// The earliest live deadline (drops stale heap entries on the way).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((t, g, slot))) = self.heap.peek() {
            if self.current.get(*slot).is_some_and(|(live, _)| live == g) {
                return Some(*t);
            }
            self.heap.pop();
        }
        None
    }

    /// A call whose deadline is at or before `now`; it leaves the
    /// schedule until rescheduled. Records how late it was taken.
    pub fn pop_due(&mut self, now: Instant) -> Option<usize> {
        let t = self.next_deadline()?;
        if t > now {
            return None;
        }
        let Reverse((t, _, slot)) = self.heap.pop()?;
        self.remove(slot);
        self.lateness.record(now.saturating_duration_since(t));
        Some(slot)
    }

    pub fn len(&self) -> usize {
        self.scheduled
    }

    pub fn is_empty(&self) -> bool {
        self.scheduled == 0
    }

    /// Lateness of the deadlines served so far.
    pub fn lateness(&self) -> &Lateness {
        &self.lateness
    }
}

/// A histogram of lateness in 10 µs buckets up to 100 ms (+ overflow), for
/// p50/p99/max without storing samples.
#[derive(Clone, Debug)]
pub struct Lateness {
    buckets: Vec<u64>,
    count: u64,
    max: Duration,
}

const BUCKET: Duration = Duration::from_micros(10);
const BUCKETS: usize = 10_001;

impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            buckets: vec![0; BUCKETS],
            count: 0,
            max: Duration::ZERO,
        }
    }
}

impl Lateness {
    pub fn record(&mut self, late: Duration) {
        let i = (late.as_micros() / BUCKET.as_micros()).min(BUCKETS as u128 - 1) as usize;
        self.buckets[i] += 1;
        self.count += 1;
        self.max = self.max.max(late);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    /// Adds `other`'s samples: several tickers as one figure.
    pub fn merge(&mut self, other: &Lateness) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// The samples recorded since `earlier`, an older snapshot of this
    /// same histogram: the lateness of one window. Its `max` is the upper
    /// edge of its highest bucket (the exact maximum is not kept per
    /// window).
    pub fn since(&self, earlier: &Lateness) -> Lateness {
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .zip(&earlier.buckets)
            .map(|(now, then)| now.saturating_sub(*then))
            .collect();
        let max = buckets
            .iter()
            .rposition(|n| *n > 0)
            .map_or(Duration::ZERO, |i| (BUCKET * (i as u32 + 1)).min(self.max));
        Lateness {
            count: buckets.iter().sum(),
            buckets,
            max,
        }
    }

    /// Upper edge of the bucket holding quantile `q` (0..=1).
    pub fn quantile(&self, q: f64) -> Duration {
        let want = (self.count as f64 * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return BUCKET * (i as u32 + 1);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_due_calls_in_deadline_order_and_skips_stale_entries() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut p = Pacer::new();
        p.schedule(1, ms(20));
        p.schedule(2, ms(10));
        p.schedule(3, ms(30));
        p.schedule(3, ms(5)); // moved earlier: the 30 ms entry is stale
        p.remove(2);
        assert_eq!(p.next_deadline(), Some(ms(5)));
        assert_eq!(p.pop_due(ms(4)), None);
        assert_eq!(p.pop_due(ms(25)), Some(3));
        assert_eq!(p.pop_due(ms(25)), Some(1));
        assert_eq!(p.pop_due(ms(100)), None);
        assert!(p.is_empty());
        assert_eq!(p.lateness().count(), 2);
        assert_eq!(p.lateness().max(), Duration::from_millis(20));
        // The same deadline again is one entry; after a removal it is live
        // again.
        p.schedule(4, ms(40));
        p.schedule(4, ms(40));
        assert_eq!(p.len(), 1);
        p.remove(4);
        assert!(p.is_empty());
        p.schedule(4, ms(40));
        assert_eq!(p.pop_due(ms(40)), Some(4));
        assert_eq!(p.pop_due(ms(40)), None);
        assert!(p.is_empty());
    }

    #[test]
    fn a_window_is_the_difference_of_two_snapshots() {
        let ms = Duration::from_millis;
        let mut a = Lateness::default();
        for _ in 0..100 {
            a.record(ms(30));
        }
        let before = a.clone();
        for _ in 0..99 {
            a.record(Duration::from_micros(50));
        }
        a.record(ms(2));
        let window = a.since(&before);
        assert_eq!(window.count(), 100);
        // The old 30 ms samples are not in the window.
        assert_eq!(window.quantile(0.99), Duration::from_micros(60));
        assert_eq!(window.max(), Duration::from_micros(2010));
        let mut other = Lateness::default();
        other.record(ms(40));
        let mut both = window.clone();
        both.merge(&other);
        assert_eq!((both.count(), both.max()), (101, ms(40)));
        assert_eq!(Lateness::default().since(&Lateness::default()).count(), 0);
    }

    #[test]
    fn lateness_quantiles() {
        let mut l = Lateness::default();
        for us in 0..1000u64 {
            l.record(Duration::from_micros(us));
        }
        l.record(Duration::from_secs(1));
        assert_eq!(l.count(), 1001);
        assert_eq!(l.quantile(0.5), Duration::from_micros(510));
        assert_eq!(l.quantile(0.99), Duration::from_micros(1000));
        assert_eq!(l.max(), Duration::from_secs(1));
    }

    #[test]
    fn many_calls_paced_without_drift() {
        use crate::media::g711::Law;
        use crate::media::session::*;
        let t0 = Instant::now();
        let mut calls: Vec<RtpSession> = (0..200u32)
            .map(|i| {
                let params = MediaParams {
                    codec: AudioCodec {
                        law: Law::ALaw,
                        payload_type: 8,
                    },
                    telephone_event: None,
                    ptime: Duration::from_millis(20),
                    remote_rtp: "192.0.2.1:4000".parse().unwrap(),
                    remote_rtcp: None,
                    signalling: None,
                };
                let seed = SessionSeed {
                    ssrc: i,
                    sequence: 0,
                    timestamp: 0,
                    ntp: 0,
                };
                let start = t0 + Duration::from_micros(u64::from(i) * 97);
                RtpSession::new(start, params, SessionConfig::default(), seed)
            })
            .collect();
        let mut p = Pacer::new();
        for (i, c) in calls.iter().enumerate() {
            p.schedule(i, c.poll_timeout().unwrap());
        }
        // A ticker waking every millisecond, for 2 s of simulated time.
        let mut sent = vec![0u32; calls.len()];
        for tick in 0..=2000u64 {
            let now = t0 + Duration::from_millis(tick);
            while let Some(i) = p.pop_due(now) {
                calls[i].handle_timeout(now);
                while calls[i].poll_transmit().is_some() {
                    sent[i] += 1;
                }
                while calls[i].poll_event().is_some() {}
                p.schedule(i, calls[i].poll_timeout().unwrap());
            }
        }
        // Every call: one frame per 20 ms (+ RTCP), none lost or doubled.
        for (i, n) in sent.iter().enumerate() {
            let start_ms = (i as u64 * 97).div_ceil(1000);
            let frames = (2000 - start_ms) / 20 + 1;
            assert_eq!(u64::from(*n), frames, "call {i}");
        }
        assert!(p.lateness().max() < Duration::from_millis(1));
    }
}
