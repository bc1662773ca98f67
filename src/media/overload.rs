//! Load shedding: when the media tickers fall behind, stop taking calls.
//!
//! The call cap (`[sip] max_concurrent_calls`) is what an operator measured;
//! this guard is for when the measurement was wrong or the machine is
//! shared: if frames left late in the last [`TRIP_WINDOWS`] windows (send
//! lateness p99 over the threshold), the node is *overloaded* and new
//! INVITEs and OPTIONS get 503 (a Kamailio dispatcher then sends traffic
//! elsewhere) while the calls in progress go on. It clears once the
//! lateness stays under half the threshold for [`CALM_WINDOWS`] windows in
//! a row, so a node at its edge does not flap between taking and refusing
//! calls every second. The same rule judges the lag of the runtime's own
//! tasks (`runtime::lag`).
//!
//! Clearing alone would let the node climb straight back to the load that
//! overloaded it (measured: shed at 2,964 calls, cleared, shed again at
//! 3,921, and every call in progress heard the losses). So a trip also
//! *learns* a [`CallLimit`]: the calls up at the last calm window before
//! it. After clearing, the node takes calls up to that limit only, and
//! raises it slowly while it carries that many calls on time.
//!
//! Sans-IO: the runtime feeds one window's [`Lateness`] (e.g. every half
//! second, `Lateness::since` the previous snapshot) and applies what it
//! returns.

use std::time::Duration;

use super::pacing::Lateness;

/// Windows under half the threshold before new calls are taken again
/// (5 s at the call runtime's half-second windows).
pub const CALM_WINDOWS: u32 = 10;
/// Windows in a row over the threshold before the node sheds: one stall
/// of a ticker (measured on this VM at 1,000 calls: 16 ms, once in a
/// minute) makes a half-second window's p99 late on its own; falling
/// behind lasts.
pub const TRIP_WINDOWS: u32 = 2;

/// Whether the node sheds new calls, from a lateness (frames', tasks').
#[derive(Debug, Clone)]
pub struct OverloadGuard {
    threshold: Duration,
    /// A window with fewer samples says nothing (an idle node, a first
    /// call) and counts as calm.
    min_samples: u64,
    overloaded: bool,
    calm: u32,
    /// Windows over the threshold in a row.
    late: u32,
    last_calm: bool,
}

impl OverloadGuard {
    /// Overloaded when a window of at least `min_samples` has its p99
    /// over `threshold`.
    pub fn new(threshold: Duration, min_samples: u64) -> OverloadGuard {
        OverloadGuard {
            threshold,
            min_samples,
            overloaded: false,
            calm: 0,
            late: 0,
            last_calm: true,
        }
    }

    pub fn is_overloaded(&self) -> bool {
        self.overloaded
    }

    /// The last window was calm: under half the threshold, or too small
    /// to judge.
    pub fn last_window_calm(&self) -> bool {
        self.last_calm
    }

    /// Feeds one window; `Some(state)` when the state changes.
    pub fn observe(&mut self, window: &Lateness) -> Option<bool> {
        if window.count() < self.min_samples {
            // Nothing sent, nothing late: counts as calm.
            return self.calm_window();
        }
        let p99 = window.quantile(0.99);
        if p99 > self.threshold {
            self.calm = 0;
            self.last_calm = false;
            self.late += 1;
            return (!self.overloaded && self.late >= TRIP_WINDOWS).then(|| {
                self.overloaded = true;
                true
            });
        }
        self.late = 0;
        if p99 <= self.threshold / 2 {
            return self.calm_window();
        }
        // Between half and the whole threshold: hold the current state.
        self.calm = 0;
        self.last_calm = false;
        None
    }

    fn calm_window(&mut self) -> Option<bool> {
        self.late = 0;
        self.last_calm = true;
        if !self.overloaded {
            return None;
        }
        self.calm += 1;
        (self.calm >= CALM_WINDOWS).then(|| {
            self.overloaded = false;
            self.calm = 0;
            false
        })
    }
}

/// Calm windows at the limit before it is raised (5 s at half-second
/// windows).
pub const RAISE_AFTER: u32 = 10;
/// A raise adds 5 % of the limit, at least [`RAISE_MIN`] calls: a node that
/// carries its limit on time probes upward (+130 calls per 5 s at 2,600;
/// from a limit learned in a cold start, 10 calls per 5 s), and a trip
/// brings it back to its last calm count if that was too much.
const RAISE_PERCENT: usize = 5;
const RAISE_MIN: usize = 10;

/// The number of calls a node learned it can carry: none until its guards
/// first trip, then the calls up at the last calm window before the trip.
#[derive(Debug, Clone, Default)]
pub struct CallLimit {
    limit: Option<usize>,
    /// Calls up at the last window when every guard was calm and the
    /// node was taking calls.
    last_calm_calls: usize,
    calm_at_limit: u32,
}

impl CallLimit {
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// Feeds one window: `calls` up now, whether the node sheds now (any
    /// guard overloaded), whether every guard found the window calm.
    /// `Some(limit)` when the limit changes.
    pub fn observe(&mut self, calls: usize, shedding: bool, calm: bool) -> Option<usize> {
        if shedding {
            self.calm_at_limit = 0;
            let learned = self.last_calm_calls.max(1);
            return match self.limit {
                Some(limit) if limit <= learned => None,
                _ => {
                    self.limit = Some(learned);
                    self.limit
                }
            };
        }
        if !calm {
            self.calm_at_limit = 0;
            return None;
        }
        self.last_calm_calls = calls;
        let limit = self.limit?;
        // At the limit (within 5 %) and on time: it may be too low.
        if calls.saturating_mul(20) < limit.saturating_mul(19) {
            self.calm_at_limit = 0;
            return None;
        }
        self.calm_at_limit += 1;
        if self.calm_at_limit < RAISE_AFTER {
            return None;
        }
        self.calm_at_limit = 0;
        let raised = limit.saturating_add((limit / 100 * RAISE_PERCENT).max(RAISE_MIN));
        self.limit = Some(raised);
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(samples: u64, late: Duration) -> Lateness {
        let mut l = Lateness::default();
        for _ in 0..samples {
            l.record(late);
        }
        l
    }

    #[test]
    fn sheds_when_late_twice_in_a_row_and_takes_calls_again_only_after_calm_windows() {
        let ms = Duration::from_millis;
        let mut g = OverloadGuard::new(ms(10), 50);
        assert_eq!(g.observe(&window(1000, ms(1))), None);
        // One late window is a stall, not falling behind.
        assert_eq!(g.observe(&window(1000, ms(25))), None);
        assert_eq!(g.observe(&window(1000, ms(1))), None);
        assert_eq!(g.observe(&window(1000, ms(25))), None);
        assert!(!g.is_overloaded());
        assert_eq!(g.observe(&window(1000, ms(25))), Some(true));
        assert_eq!(g.observe(&window(1000, ms(25))), None, "already overloaded");
        assert!(g.is_overloaded());
        // Calm, then a window between half and the threshold: start over.
        for _ in 0..CALM_WINDOWS - 1 {
            assert_eq!(g.observe(&window(1000, ms(1))), None);
        }
        assert_eq!(g.observe(&window(1000, ms(7))), None);
        assert!(g.is_overloaded());
        for _ in 0..CALM_WINDOWS - 1 {
            assert_eq!(g.observe(&window(1000, ms(1))), None);
        }
        assert_eq!(g.observe(&window(1000, ms(1))), Some(false));
        assert!(!g.is_overloaded());
    }

    #[test]
    fn a_few_late_frames_or_an_idle_node_do_not_count() {
        let ms = Duration::from_millis;
        let mut g = OverloadGuard::new(ms(10), 50);
        // 5 late frames in 1000: the p99 is on time.
        let mut w = window(995, ms(1));
        w.merge(&window(5, ms(100)));
        assert_eq!(g.observe(&w), None);
        // Too few frames to judge, even if all late.
        assert_eq!(g.observe(&window(10, ms(100))), None);
        assert!(!g.is_overloaded());
    }

    #[test]
    fn the_calm_flag_follows_the_last_window() {
        let ms = Duration::from_millis;
        let mut g = OverloadGuard::new(ms(10), 50);
        assert!(g.last_window_calm());
        g.observe(&window(1000, ms(7)));
        assert!(!g.last_window_calm(), "between half and the threshold");
        g.observe(&window(1000, ms(2)));
        assert!(g.last_window_calm());
        g.observe(&window(1000, ms(30)));
        assert!(!g.last_window_calm());
    }

    #[test]
    fn a_trip_learns_the_last_calm_count_and_a_second_trip_lowers_it() {
        let mut l = CallLimit::default();
        // Ramping up on time: no limit.
        for calls in [100, 1000, 2000, 2600] {
            assert_eq!(l.observe(calls, false, true), None);
        }
        // A window late but not yet over: not calm, nothing learned.
        assert_eq!(l.observe(2800, false, false), None);
        // Trip at 2,950: the limit is the last calm count.
        assert_eq!(l.observe(2950, true, false), Some(2600));
        assert_eq!(l.observe(2950, true, false), None, "learned once per trip");
        // Cleared, calls ended: below the limit, nothing changes.
        assert_eq!(l.observe(1500, false, true), None);
        assert_eq!(l.limit(), Some(2600));
        // Calm at 2,400 this time, then a trip: lower.
        assert_eq!(l.observe(2400, false, true), None);
        assert_eq!(l.observe(2500, true, false), Some(2400));
        // A trip never raises it.
        assert_eq!(l.observe(3000, false, true), None);
        assert_eq!(l.observe(3100, true, false), None);
        assert_eq!(l.limit(), Some(2400));
    }

    #[test]
    fn a_limit_carried_on_time_is_raised_slowly() {
        let mut l = CallLimit::default();
        l.observe(1000, false, true);
        assert_eq!(l.observe(1200, true, false), Some(1000));
        // Below 95 % of the limit: never raised, however long.
        for _ in 0..3 * RAISE_AFTER {
            assert_eq!(l.observe(900, false, true), None);
        }
        // At the limit: raised by 5 % after RAISE_AFTER calm windows; a
        // window that is not calm starts the count again.
        for _ in 0..RAISE_AFTER - 1 {
            assert_eq!(l.observe(990, false, true), None);
        }
        assert_eq!(l.observe(990, false, false), None);
        for _ in 0..RAISE_AFTER - 1 {
            assert_eq!(l.observe(1000, false, true), None);
        }
        assert_eq!(l.observe(1000, false, true), Some(1050));
        // A node that tripped before any calm window keeps one call, and
        // grows by at least 10.
        let mut cold = CallLimit::default();
        assert_eq!(cold.observe(50, true, false), Some(1));
        for _ in 0..RAISE_AFTER - 1 {
            assert_eq!(cold.observe(1, false, true), None);
        }
        assert_eq!(cold.observe(1, false, true), Some(11));
    }
}
