//! The wall clocks given to the rules: the system's, or one started at a
//! chosen instant that runs on from there (`--now`, for tests and demos).

use chrono::{DateTime, Utc};

use crate::bookings::Clock;

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
    pub fn starting_at(start: DateTime<Utc>) -> ShiftedClock {
        ShiftedClock {
            offset: start - Utc::now(),
        }
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}
