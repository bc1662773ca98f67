//! The wall clocks given to the rules: the system's, or one started at a
//! chosen instant that runs on from there (`--now`, for tests and demos);
//! and the guard that keeps the two from closing days on the same data.

use chrono::{DateTime, NaiveDate, Utc};

use crate::bookings::Clock;
use crate::store::ClosingClocks;

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that started at `start` when the process started, and runs at
/// the speed of real time from there.
#[derive(Debug, Clone, Copy)]
pub struct ShiftedClock {
    offset: chrono::Duration,
}

impl ShiftedClock {
    /// `start` is checked against the school calendar's reach by the
    /// caller (`serve`); the clock itself never panics whatever it is given.
    pub fn starting_at(start: DateTime<Utc>) -> ShiftedClock {
        ShiftedClock {
            offset: start.signed_duration_since(Utc::now()),
        }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        // Saturates at chrono's last instant instead of overflowing (a
        // start near it would otherwise panic on the next reading).
        let now = Utc::now();
        now.checked_add_signed(self.offset)
            .unwrap_or(if self.offset > chrono::Duration::zero() {
                DateTime::<Utc>::MAX_UTC
            } else {
                DateTime::<Utc>::MIN_UTC
            })
    }
}

/// Why `serve` will not start with the clock it was given on this data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockRefusal {
    /// `--now` on a database whose days were closed under the real clock.
    #[error(
        "this database has days closed under the real clock (the last on {last_real}): \
         a --now clock would close and charge every day up to its date, irreversibly. \
         Try --now on a copy of the database or with --demo; to run it on this data \
         anyway, add --now-on-real-data"
    )]
    RealClosings { last_real: NaiveDate },
    /// The real clock on a database a `--now` clock closed ahead of today.
    #[error(
        "this database has days closed under a --now clock ahead of the real date \
         (up to {last_shifted}): those meals are already charged and the real clock \
         would meet closed days it never closed. Keep serving it with --now (from \
         {last_shifted} on), or serve the real clock on a fresh database or a backup \
         from before the --now run"
    )]
    ShiftedAhead { last_shifted: NaiveDate },
}

/// `serve`'s guard against mixing clocks on one database (docs/cli.md).
/// `shifted`: the process runs under `--now`; `on_real_data`: the
/// operator said `--now-on-real-data`. A clock set by hand closes and
/// charges every day up to its date, so it may not run where the real
/// clock has closed days; and the real clock may not run where a clock
/// set by hand closed days that are still ahead of the real date.
pub fn check_clocks(
    shifted: bool,
    on_real_data: bool,
    closings: &ClosingClocks,
) -> Result<(), ClockRefusal> {
    match (shifted, closings) {
        (
            true,
            ClosingClocks {
                last_real: Some(last_real),
                ..
            },
        ) if !on_real_data => Err(ClockRefusal::RealClosings {
            last_real: *last_real,
        }),
        (
            false,
            ClosingClocks {
                last_shifted_ahead: Some(last_shifted),
                ..
            },
        ) => Err(ClockRefusal::ShiftedAhead {
            last_shifted: *last_shifted,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_clock_set_by_hand_needs_the_flag_on_real_closings() {
        let real = ClosingClocks {
            last_real: Some(d("2026-12-03")),
            last_shifted_ahead: None,
        };
        assert_eq!(
            check_clocks(true, false, &real),
            Err(ClockRefusal::RealClosings {
                last_real: d("2026-12-03")
            })
        );
        assert_eq!(check_clocks(true, true, &real), Ok(()));
        assert_eq!(check_clocks(false, false, &real), Ok(()));
        // A fresh database (the demo's) takes any clock.
        let fresh = ClosingClocks::default();
        assert_eq!(check_clocks(true, false, &fresh), Ok(()));
        assert_eq!(check_clocks(false, false, &fresh), Ok(()));
    }

    #[test]
    fn the_real_clock_is_refused_behind_a_clock_that_ran_ahead() {
        let ahead = ClosingClocks {
            last_real: None,
            last_shifted_ahead: Some(d("2026-12-10")),
        };
        let refused = check_clocks(false, false, &ahead).unwrap_err();
        assert!(refused.to_string().contains("--now"), "{refused}");
        assert!(refused.to_string().contains("2026-12-10"), "{refused}");
        // Under --now again it may go on.
        assert_eq!(check_clocks(true, false, &ahead), Ok(()));
    }

    #[test]
    fn a_shifted_clock_never_panics_at_chronos_ends() {
        for start in [DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
            let clock = ShiftedClock::starting_at(start);
            let _ = clock.now();
        }
    }
}
