//! Load shedding: when the media tickers fall behind, stop taking calls.
//!
//! The call cap (`[sip] max_concurrent_calls`) is what an operator measured;
//! this guard is for when the measurement was wrong or the machine is
//! shared: if frames left late in the last window (send lateness p99 over
//! the threshold), the node is *overloaded* and new INVITEs and OPTIONS get
//! 503 (a Kamailio dispatcher then sends traffic elsewhere) while the
//! calls in progress go on. It clears once the lateness stays under half
//! the threshold for [`CALM_WINDOWS`] windows in a row, so a node at its
//! edge does not flap between taking and refusing calls every second.
//!
//! Sans-IO: the runtime feeds one window's [`Lateness`] (e.g. each second,
//! `Lateness::since` the previous snapshot) and applies what it returns.

use std::time::Duration;

use super::pacing::Lateness;

/// Windows under half the threshold before new calls are taken again.
pub const CALM_WINDOWS: u32 = 5;
/// A window with fewer frames says nothing (an idle node, a first call).
const MIN_SAMPLES: u64 = 50;

/// Whether the node sheds new calls, from the tickers' lateness.
#[derive(Debug, Clone)]
pub struct OverloadGuard {
    threshold: Duration,
    overloaded: bool,
    calm: u32,
}

impl OverloadGuard {
    /// Overloaded when a window's p99 exceeds `threshold`.
    pub fn new(threshold: Duration) -> OverloadGuard {
        OverloadGuard {
            threshold,
            overloaded: false,
            calm: 0,
        }
    }

    pub fn is_overloaded(&self) -> bool {
        self.overloaded
    }

    /// Feeds one window; `Some(state)` when the state changes.
    pub fn observe(&mut self, window: &Lateness) -> Option<bool> {
        if window.count() < MIN_SAMPLES {
            // Nothing sent, nothing late: counts as calm.
            return self.calm_window();
        }
        let p99 = window.quantile(0.99);
        if p99 > self.threshold {
            self.calm = 0;
            return (!self.overloaded).then(|| {
                self.overloaded = true;
                true
            });
        }
        if p99 <= self.threshold / 2 {
            return self.calm_window();
        }
        // Between half and the whole threshold: hold the current state.
        self.calm = 0;
        None
    }

    fn calm_window(&mut self) -> Option<bool> {
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
    fn sheds_at_once_and_takes_calls_again_only_after_calm_windows() {
        let ms = Duration::from_millis;
        let mut g = OverloadGuard::new(ms(10));
        assert_eq!(g.observe(&window(1000, ms(1))), None);
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
        let mut g = OverloadGuard::new(ms(10));
        // 5 late frames in 1000: the p99 is on time.
        let mut w = window(995, ms(1));
        w.merge(&window(5, ms(100)));
        assert_eq!(g.observe(&w), None);
        // Too few frames to judge, even if all late.
        assert_eq!(g.observe(&window(10, ms(100))), None);
        assert!(!g.is_overloaded());
    }
}
