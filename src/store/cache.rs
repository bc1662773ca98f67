//! What every calendar read needs and almost nothing changes: the ente's
//! settings and each school's calendar (year, weekdays, closures), kept in
//! the process.
//!
//! Invalidation:
//! - In this process, every store method that writes the ente, a school or
//!   a closure (import, an operator's closure added or removed, the first
//!   day of service) clears the cache after its commit and before it
//!   returns: the operator's next request, and the next phone call,
//!   already see the new closure.
//! - Another process (a second `serve` on the same PostgreSQL, or `mensa
//!   import` beside `serve` on SQLite) cannot clear this one's cache, so an
//!   entry is trusted for [`TTL`] at most: its changes show here within
//!   that time.
//! - A load that raced a clear never fills the cache with what it read
//!   before the clear (the generation check in [`Cache::put_settings`] and
//!   [`Cache::put_school`]).
//!
//! `Store::apply` does not use the cache: it reads the settings and the
//! school inside its own transaction, so a change is always judged against
//! committed data, from any process (docs/decisions.md).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::bookings::{EnteSettings, SchoolCalendar, SchoolId};

/// How long an entry is trusted without asking the database again: the
/// most another process's import or closure can take to show here.
pub const TTL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct Cache {
    inner: RwLock<Inner>,
    /// Only the benchmark's comparison turns it off (`Store::tuned`).
    disabled: bool,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every clear; a load started under an older generation
    /// does not fill the cache.
    generation: u64,
    settings: Option<(Instant, Arc<EnteSettings>)>,
    schools: HashMap<SchoolId, (Instant, Arc<SchoolCalendar>)>,
}

impl Cache {
    /// The generation to hand back to `put_*` after loading.
    pub(super) fn generation(&self) -> u64 {
        self.read().generation
    }

    pub(super) fn disabled() -> Cache {
        Cache {
            disabled: true,
            ..Cache::default()
        }
    }

    pub(super) fn settings(&self, now: Instant) -> Option<Arc<EnteSettings>> {
        if self.disabled {
            return None;
        }
        let inner = self.read();
        let (at, settings) = inner.settings.as_ref()?;
        fresh(*at, now).then(|| settings.clone())
    }

    pub(super) fn school(&self, id: &SchoolId, now: Instant) -> Option<Arc<SchoolCalendar>> {
        if self.disabled {
            return None;
        }
        let inner = self.read();
        let (at, calendar) = inner.schools.get(id)?;
        fresh(*at, now).then(|| calendar.clone())
    }

    pub(super) fn put_settings(&self, generation: u64, at: Instant, settings: Arc<EnteSettings>) {
        let mut inner = self.write();
        if inner.generation == generation {
            inner.settings = Some((at, settings));
        }
    }

    pub(super) fn put_school(
        &self,
        generation: u64,
        at: Instant,
        id: SchoolId,
        calendar: Arc<SchoolCalendar>,
    ) {
        let mut inner = self.write();
        if inner.generation == generation {
            inner.schools.insert(id, (at, calendar));
        }
    }

    /// Forgets everything; called after a commit that changed the ente, a
    /// school or a closure.
    pub(super) fn clear(&self) {
        let mut inner = self.write();
        inner.generation += 1;
        inner.settings = None;
        inner.schools.clear();
    }

    // A panic while holding the lock cannot leave the maps half-written
    // (each update is one assignment), so a poisoned lock is still usable.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn fresh(at: Instant, now: Instant) -> bool {
    now.saturating_duration_since(at) < TTL
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bookings::Weekdays;

    fn calendar() -> Arc<SchoolCalendar> {
        let d = |s: &str| s.parse().unwrap();
        Arc::new(SchoolCalendar {
            year_start: d("2026-09-14"),
            year_end: d("2027-06-09"),
            weekdays: Weekdays::MONDAY_TO_FRIDAY,
            closures: vec![],
        })
    }

    #[test]
    fn entries_expire_and_a_load_that_raced_a_clear_is_dropped() {
        let cache = Cache::default();
        let t0 = Instant::now();
        let id = SchoolId::parse("s1").unwrap();
        let g = cache.generation();
        cache.put_school(g, t0, id.clone(), calendar());
        assert!(cache.school(&id, t0 + Duration::from_millis(999)).is_some());
        assert!(cache.school(&id, t0 + TTL).is_none(), "expired");

        // A load starts, a closure is added and the cache cleared, the
        // load ends: what it read may predate the closure, so it is not kept.
        let g = cache.generation();
        cache.clear();
        cache.put_school(g, t0, id.clone(), calendar());
        assert!(cache.school(&id, t0).is_none());
        let settings = Arc::new(EnteSettings::with_name("x"));
        cache.put_settings(g, t0, settings.clone());
        assert!(cache.settings(t0).is_none());
        cache.put_settings(cache.generation(), t0, settings);
        assert!(cache.settings(t0).is_some());
    }
}
