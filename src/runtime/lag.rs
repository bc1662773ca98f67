//! How late the call runtime runs its tasks.
//!
//! The media tickers run at real-time priority, so on a saturated machine
//! frames still leave on time while SIP and the IVR (tokio tasks at normal
//! priority) wait: answers to INVITEs come late, callers retransmit, and a
//! key's reply takes seconds (docs/benchmarks.md, "Capacity"). The frames'
//! lateness cannot see that. This probe can: a task asks to wake every
//! [`PROBE_EVERY`] and records how much later than asked it ran. That is
//! what any task of the runtime waits before it runs, the SIP driver's and
//! the IVR sessions' included. The call runtime sheds new calls on it as it
//! does on the frames' lateness (`runtime::calls`, `media::overload`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::media::pacing::Lateness;

/// How often the probe asks to run: 100 samples a second, enough for a
/// p99 per second and nothing next to the calls' own work.
pub const PROBE_EVERY: Duration = Duration::from_millis(10);

/// A probe task on the current runtime; stopped when dropped.
pub struct LagProbe {
    lag: Arc<Mutex<Lateness>>,
    task: JoinHandle<()>,
}

impl LagProbe {
    pub fn spawn() -> LagProbe {
        let lag = Arc::new(Mutex::new(Lateness::default()));
        let task = tokio::spawn(probe(lag.clone()));
        LagProbe { lag, task }
    }

    /// Everything recorded so far (`Lateness::since` gives a window).
    pub fn lag(&self) -> Lateness {
        self.lag.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for LagProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn probe(lag: Arc<Mutex<Lateness>>) {
    loop {
        let due = Instant::now() + PROBE_EVERY;
        tokio::time::sleep_until(due).await;
        let late = Instant::now().saturating_duration_since(due);
        if let Ok(mut lag) = lag.lock() {
            record_with_missed(&mut lag, late);
        }
    }
}

/// Records a wake-up `late`, and the wake-ups it kept from happening: a
/// probe 100 ms late is also the probes that would have run 90, 80, ...
/// 10 ms late meanwhile. Without them a runtime that lags records *fewer*
/// samples the worse it lags (10 a second at 100 ms), and a window of lag
/// looks like a quiet window with too few samples to judge, which is when
/// the guard must trip (the coordinated-omission correction of latency
/// histograms).
fn record_with_missed(lag: &mut Lateness, late: Duration) {
    let mut missed = late;
    loop {
        lag.record(missed);
        if missed < PROBE_EVERY {
            break;
        }
        missed -= PROBE_EVERY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker blocked by a task that does not yield (here 60 ms of
    /// sleeping in place, as a saturated machine would) shows as lag.
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_shows_as_lag() {
        let probe = LagProbe::spawn();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = probe.lag();
        assert!(before.count() >= 1, "the probe runs");
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(60));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let window = probe.lag().since(&before);
        assert!(
            window.quantile(1.0) >= Duration::from_millis(40),
            "max lag {:?}",
            window.quantile(1.0)
        );
        // Blocked for 180 ms of 270, the probe still counts about one
        // sample per 10 ms, most of them late.
        assert!(window.count() >= 20, "{} samples", window.count());
        assert!(
            window.quantile(0.5) >= Duration::from_millis(5),
            "median lag {:?}",
            window.quantile(0.5)
        );
    }

    #[test]
    fn a_late_wake_up_counts_the_ones_it_kept_from_running() {
        let ms = Duration::from_millis;
        let mut lag = Lateness::default();
        record_with_missed(&mut lag, ms(2));
        assert_eq!(lag.count(), 1);
        record_with_missed(&mut lag, ms(45));
        // 45, 35, 25, 15, 5 ms.
        assert_eq!(lag.count(), 6);
        assert_eq!(lag.max(), ms(45));
        // The median of 2, 5, 15, 25, 35, 45 ms (10 µs buckets).
        assert!((ms(15)..ms(16)).contains(&lag.quantile(0.5)));
    }
}
