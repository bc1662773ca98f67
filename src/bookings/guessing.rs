//! Guessing cancel codes on the phone line: the arithmetic of
//! docs/security.md ("Cancel codes cannot be guessed in practice") and the
//! rules that bound it.
//!
//! A guess is a code looked up that turns out wrong. With `n_L` children
//! holding codes of `L` digits, one guess of the best length hits *some*
//! child with probability `p = max_L n_L / 10^L` ([`CodeSpace::hit_chance`]),
//! so about `1/p` wrong codes find one; a *chosen* child takes about
//! `10^L / 2`. Three counts, kept by the store in the database (shared by
//! every node, surviving restarts) and counted *before* the code is looked
//! up, bound how many guesses the line lets through:
//!
//! - [`Backoff`], per caller number: a few wrong codes free, then a wait
//!   that doubles with each one, up to a cap; one wrong code is forgiven
//!   per `forgive` period. It bounds one number to a few dozen guesses a
//!   year, whatever the line's state.
//! - [`Budget`], for the whole line and for each trunk (a share of the
//!   line's): wrong codes per year, as a GCRA (a bucket of `burst` that
//!   refills one every `interval`). The line's budget is what makes "some
//!   child" take longer than a school year, since an attacker can use any
//!   number of caller numbers; a trunk's share keeps one carrier leg from
//!   spending all of it.
//!
//! When the line's budget is spent the line is *guarded*: a code this
//! caller number has used successfully before is still accepted (it is no
//! guess), any other code is refused without being looked up. The store
//! does that; these are the rules it applies (its SQL computes the same
//! functions, one statement per count, and the contract tests compare
//! them). Instants are milliseconds since the Unix epoch; every sum
//! saturates, so no clock makes them overflow.

use std::collections::BTreeMap;

/// A day and a year (365 days) in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
pub const YEAR_MS: i64 = 365 * DAY_MS;

/// The most wrong codes a budget may allow a year: beyond, the budget
/// means nothing (and the interval would be under 32 ms).
pub const MAX_PER_YEAR: u64 = 1_000_000;

/// How many children hold a code of each length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeSpace {
    by_digits: BTreeMap<u8, u64>,
}

impl CodeSpace {
    pub fn new(counts: impl IntoIterator<Item = (u8, u64)>) -> CodeSpace {
        let mut by_digits = BTreeMap::new();
        for (digits, n) in counts {
            if n > 0 {
                *by_digits.entry(digits).or_default() += n;
            }
        }
        CodeSpace { by_digits }
    }

    /// Children holding a code.
    pub fn children(&self) -> u64 {
        self.by_digits.values().sum()
    }

    /// The shortest code in use.
    pub fn shortest(&self) -> Option<u8> {
        self.by_digits.keys().next().copied()
    }

    /// Children whose code has fewer than `digits` digits.
    pub fn shorter_than(&self, digits: u8) -> u64 {
        self.by_digits.range(..digits).map(|(_, n)| n).sum()
    }

    /// The chance that one guess hits some child's code, guessing at the
    /// length that pays best: `max_L n_L / 10^L`.
    pub fn hit_chance(&self) -> f64 {
        self.by_digits
            .iter()
            .map(|(digits, n)| *n as f64 / 10f64.powi(i32::from(*digits)))
            .fold(0.0, f64::max)
    }

    /// The line's budget when the operator sets none: half the wrong codes
    /// that find some child on average, per year, so that spending all of
    /// it takes two years on average to find one (docs/security.md).
    pub fn default_budget_per_year(&self) -> u64 {
        // 1 / (2p) = min over the lengths of 10^L / (2 n_L), in integers
        // (in floating point 10^8 / 2,000 came out as 49,999).
        self.by_digits
            .iter()
            .map(|(digits, n)| {
                10u64
                    .checked_pow(u32::from(*digits))
                    .map_or(u64::MAX, |space| space / n.saturating_mul(2).max(1))
            })
            .min()
            .unwrap_or(MAX_PER_YEAR)
            .clamp(1, MAX_PER_YEAR)
    }

    /// Years to find some child's code when `per_year` wrong codes are
    /// let through a year (the mean of a geometric law: `1 / (p * rate)`).
    pub fn years_to_some_child(&self, per_year: u64) -> f64 {
        1.0 / (self.hit_chance() * per_year as f64)
    }
}

/// Years to find a chosen child's code of `digits` digits at `per_year`
/// wrong codes a year: half the code space, on average.
pub fn years_to_chosen_child(digits: u8, per_year: u64) -> f64 {
    10f64.powi(i32::from(digits)) / 2.0 / per_year as f64
}

/// A budget of wrong codes: at most `burst` at once, then one every
/// `interval_ms` (GCRA, the generic cell rate algorithm: one instant per
/// budget, the theoretical arrival time `tat`). Over any stretch of time
/// `t` it lets at most `burst + t / interval_ms` through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub interval_ms: i64,
    pub burst: u32,
}

impl Budget {
    /// `per_year` wrong codes a year, `burst` of them at once.
    pub fn per_year(per_year: u64, burst: u32) -> Budget {
        let per_year = per_year.clamp(1, MAX_PER_YEAR);
        Budget {
            interval_ms: YEAR_MS / i64::try_from(per_year).unwrap_or(1),
            burst: burst.max(1),
        }
    }

    /// A day's share of `per_year`, at least one: the default burst, so
    /// that a year lets through at most a day more than `per_year`.
    pub fn default_burst(per_year: u64) -> u32 {
        u32::try_from(per_year.div_ceil(365))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// `percent` of this budget (a trunk's share of the line's).
    pub fn share(self, percent: u8) -> Budget {
        let percent = i64::from(percent.clamp(1, 100));
        Budget {
            interval_ms: self.interval_ms.saturating_mul(100) / percent,
            burst: u32::try_from(i64::from(self.burst) * percent / 100)
                .unwrap_or(1)
                .max(1),
        }
    }

    /// Wrong codes a year at this rate.
    pub fn per_year_rate(self) -> u64 {
        u64::try_from(YEAR_MS / self.interval_ms.max(1)).unwrap_or(0)
    }

    /// How far ahead of `now` the `tat` may be for one more to pass.
    pub fn tolerance_ms(self) -> i64 {
        self.interval_ms
            .saturating_mul(i64::from(self.burst.saturating_sub(1)))
    }

    /// Whether one more may be counted at `now` (`tat`: none before the
    /// first).
    pub fn allows(self, tat: Option<i64>, now: i64) -> bool {
        tat.is_none_or(|tat| tat <= now.saturating_add(self.tolerance_ms()))
    }

    /// The `tat` after counting one at `now`.
    pub fn counted(self, tat: Option<i64>, now: i64) -> i64 {
        tat.unwrap_or(now).max(now).saturating_add(self.interval_ms)
    }

    /// The `tat` after giving one back (the code was right).
    pub fn refunded(self, tat: i64) -> i64 {
        tat.saturating_sub(self.interval_ms)
    }
}

/// A caller number's back-off: `free` wrong codes, then each one more
/// must wait `first_ms` after the last, doubled for each one beyond, up
/// to `max_ms`; one is forgiven every `forgive_ms`.
///
/// The count is kept as a `tat` like a [`Budget`]'s (each wrong code
/// adds `forgive_ms`), so the number not yet forgiven, the *level*, is
/// `ceil((tat - now) / forgive_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub free: u32,
    pub first_ms: i64,
    pub max_ms: i64,
    pub forgive_ms: i64,
}

/// A caller number's row: its `tat`, the last counted attempt, and the
/// one before it (restored when the last is given back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffState {
    pub tat: i64,
    pub last: i64,
    pub prev: i64,
}

impl Default for Backoff {
    /// Five wrong codes free (a bad evening: two calls of typos), then 1
    /// minute, 2, 4 … up to 14 days; one forgiven every 14 days. A number
    /// that guesses as fast as it may gets 46 guesses in its first year
    /// (the test `one_number_gets_a_few_dozen_guesses_a_year`).
    fn default() -> Backoff {
        Backoff {
            free: 5,
            first_ms: 60_000,
            max_ms: 14 * DAY_MS,
            forgive_ms: 14 * DAY_MS,
        }
    }
}

impl Backoff {
    /// Wrong codes not yet forgiven at `now`.
    pub fn level(self, tat: i64, now: i64) -> i64 {
        if tat <= now {
            return 0;
        }
        let forgive = self.forgive_ms.max(1);
        // ceil((tat - now) / forgive) without overflow: tat - now > 0.
        (tat.saturating_sub(now) - 1) / forgive + 1
    }

    /// The smallest `k` with `first_ms << k >= max_ms`: from that level on
    /// (`free + k`) the wait is `max_ms`.
    pub fn cap_shift(self) -> u32 {
        let mut k = 0;
        while k < 62 && self.first_ms.max(1).saturating_mul(1 << k) < self.max_ms {
            k += 1;
        }
        k
    }

    /// How long after the last attempt one more may come, at `level`.
    pub fn wait_ms(self, level: i64) -> i64 {
        let shift = level - i64::from(self.free);
        if shift < 0 {
            0
        } else if shift >= i64::from(self.cap_shift()) {
            self.max_ms
        } else {
            // shift < cap_shift <= 62: first << shift < max_ms.
            self.first_ms.saturating_mul(1 << shift)
        }
    }

    /// `(free - 1) * forgive`: a `tat` at most this far ahead is a level
    /// under `free`.
    pub fn free_tolerance_ms(self) -> i64 {
        self.forgive_ms
            .saturating_mul(i64::from(self.free.saturating_sub(1)))
    }

    /// Whether the number may try one more code at `now`.
    pub fn allows(self, state: Option<BackoffState>, now: i64) -> bool {
        let Some(s) = state else {
            return true;
        };
        s.tat <= now.saturating_add(self.free_tolerance_ms())
            || now >= s.last.saturating_add(self.wait_ms(self.level(s.tat, now)))
    }

    /// The row after counting one at `now`.
    pub fn counted(self, state: Option<BackoffState>, now: i64) -> BackoffState {
        match state {
            None => BackoffState {
                tat: now.saturating_add(self.forgive_ms),
                last: now,
                prev: now,
            },
            Some(s) => BackoffState {
                tat: s.tat.max(now).saturating_add(self.forgive_ms),
                last: now,
                prev: s.last,
            },
        }
    }

    /// The row after giving back the one counted at `counted_at` (the code
    /// was right). Exactly undone when nothing was counted since; else the
    /// later attempt's time stays (never earlier than the truth).
    pub fn refunded(self, state: BackoffState, counted_at: i64) -> BackoffState {
        BackoffState {
            tat: state.tat.saturating_sub(self.forgive_ms),
            last: if state.last == counted_at {
                state.prev
            } else {
                state.last
            },
            prev: state.prev,
        }
    }
}

/// Every rule the phone line applies to a code typed, as the store takes
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardRules {
    pub caller: Backoff,
    pub trunk: Budget,
    pub line: Budget,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;
    const MIN: i64 = 60_000;

    #[test]
    fn the_hit_chance_takes_the_length_that_pays_best() {
        let five = CodeSpace::new([(5, 5_000)]);
        assert!((five.hit_chance() - 0.05).abs() < 1e-12);
        assert_eq!(five.default_budget_per_year(), 10);
        assert!((five.years_to_some_child(10) - 2.0).abs() < 1e-9);
        // 4,990 children moved to 8 digits, 10 left on 5: the 5-digit ones
        // are still the best target (10 / 10^5 > 4,990 / 10^8).
        let mixed = CodeSpace::new([(5, 10), (8, 4_990)]);
        assert!((mixed.hit_chance() - 1e-4).abs() < 1e-12);
        assert_eq!(mixed.default_budget_per_year(), 5_000);
        assert_eq!(mixed.shorter_than(8), 10);
        assert_eq!(mixed.shortest(), Some(5));
        assert_eq!(mixed.children(), 5_000);
        assert_eq!(CodeSpace::default().default_budget_per_year(), MAX_PER_YEAR);
        assert!((years_to_chosen_child(5, 10) - 5_000.0).abs() < 1e-9);
    }

    /// The table of docs/security.md: the default budget per year for
    /// each size of ente and code length.
    #[test]
    fn the_table_of_the_security_page() {
        let table: [(u64, [u64; 4]); 3] = [
            (300, [166, 1_666, 16_666, 166_666]),
            (1_000, [50, 500, 5_000, 50_000]),
            (5_000, [10, 100, 1_000, 10_000]),
        ];
        for (n, budgets) in table {
            for (digits, budget) in (5..=8).zip(budgets) {
                let space = CodeSpace::new([(digits, n)]);
                assert_eq!(space.default_budget_per_year(), budget, "{n} {digits}");
                let some = space.years_to_some_child(budget);
                assert!((2.0..2.02).contains(&some), "{n} {digits}: {some}");
                // The chosen child: N years, whatever the length.
                let chosen = years_to_chosen_child(digits, budget);
                assert!((chosen / n as f64 - 1.0).abs() < 0.01, "{chosen}");
            }
        }
    }

    #[test]
    fn a_budget_lets_its_burst_through_then_one_per_interval() {
        let b = Budget::per_year(365, 3);
        assert_eq!(b.interval_ms, DAY_MS);
        let mut tat = None;
        for _ in 0..3 {
            assert!(b.allows(tat, T0));
            tat = Some(b.counted(tat, T0));
        }
        assert!(!b.allows(tat, T0));
        assert!(!b.allows(tat, T0 + DAY_MS - 1));
        assert!(b.allows(tat, T0 + DAY_MS));
        // A right code gives its place back, exactly.
        let reserved = b.counted(tat, T0 + DAY_MS);
        assert!(!b.allows(Some(reserved), T0 + DAY_MS));
        assert_eq!(b.refunded(reserved), tat.unwrap());
        // Idle for long: never more than the burst at once.
        let later = T0 + 100 * DAY_MS;
        let mut let_through = 0;
        while b.allows(tat, later) {
            tat = Some(b.counted(tat, later));
            let_through += 1;
        }
        assert_eq!(let_through, 3);
        assert_eq!(Budget::default_burst(10), 1);
        assert_eq!(Budget::default_burst(10_000), 28);
        let half = Budget::per_year(1_000, 10).share(50);
        assert_eq!((half.per_year_rate(), half.burst), (500, 5));
        assert_eq!(Budget::per_year(10, 1).share(50).burst, 1);
    }

    #[test]
    fn a_year_of_a_budget_is_its_rate_and_one_burst() {
        let b = Budget::per_year(20, 1);
        let (mut tat, mut now, mut n) = (None, T0, 0);
        while now < T0 + YEAR_MS {
            if b.allows(tat, now) {
                tat = Some(b.counted(tat, now));
                n += 1;
            }
            now += MIN * 10;
        }
        assert_eq!(n, 20);
    }

    #[test]
    fn the_back_off_doubles_after_the_free_codes_and_forgives_slowly() {
        let b = Backoff::default();
        let mut s = None;
        for _ in 0..5 {
            assert!(b.allows(s, T0));
            s = Some(b.counted(s, T0));
        }
        let state = s.unwrap();
        assert_eq!(b.level(state.tat, T0), 5);
        assert!(!b.allows(s, T0 + MIN - 1));
        assert!(b.allows(s, T0 + MIN));
        s = Some(b.counted(s, T0 + MIN));
        assert!(!b.allows(s, T0 + 3 * MIN - 1));
        assert!(b.allows(s, T0 + 3 * MIN));
        s = Some(b.counted(s, T0 + 3 * MIN));
        assert!(!b.allows(s, T0 + 7 * MIN - 1));
        // Three weeks later one is forgiven: the wait is back to 2 minutes.
        let later = T0 + 21 * DAY_MS;
        assert_eq!(b.level(s.unwrap().tat, later), 6);
        assert_eq!(b.wait_ms(6), 2 * MIN);
        // Level 5 + 15 and beyond: the cap.
        assert_eq!(b.cap_shift(), 15);
        assert_eq!(b.wait_ms(5 + 14), 16_384 * MIN);
        assert_eq!(b.wait_ms(5 + 15), 14 * DAY_MS);
        assert_eq!(b.wait_ms(1_000), 14 * DAY_MS);
        // Seven wrong codes are forgiven 98 days after the first.
        assert_eq!(b.level(s.unwrap().tat, T0 + 98 * DAY_MS - 1), 1);
        assert_eq!(b.level(s.unwrap().tat, T0 + 98 * DAY_MS), 0);
    }

    #[test]
    fn a_right_code_gives_back_only_what_it_took() {
        let b = Backoff::default();
        let mut s = None;
        for i in 0..5 {
            s = Some(b.counted(s, T0 + i));
        }
        let before = s.unwrap();
        // The 6th attempt, a minute on, turns out right: given back, the
        // row is as before, and the next attempt may come at once.
        let at = T0 + 4 + MIN;
        assert!(b.allows(s, at));
        let reserved = b.counted(s, at);
        assert!(!b.allows(Some(reserved), at + 1));
        let back = b.refunded(reserved, at);
        assert_eq!((back.tat, back.last), (before.tat, before.last));
        assert!(b.allows(Some(back), at + 1));
        // Farming: a right code between wrong ones buys nothing. A guesser
        // alternating its own child's code with guesses gets exactly the
        // guesses of one that only guesses.
        let guesses = |with_right_codes: bool| {
            let (mut s, mut now, mut n) = (None, T0, 0);
            while now < T0 + 30 * DAY_MS {
                if b.allows(s, now) {
                    if with_right_codes {
                        let r = b.counted(s, now);
                        s = Some(b.refunded(r, now));
                    }
                    if b.allows(s, now) {
                        s = Some(b.counted(s, now));
                        n += 1;
                    }
                }
                now += MIN;
            }
            n
        };
        assert_eq!(guesses(true), guesses(false));
        // A refund after a later count keeps the later time.
        let a = b.counted(Some(before), at);
        let later = b.counted(Some(a), at + 5);
        assert_eq!(b.refunded(later, at).last, at + 5);
    }

    /// "A few dozen a year": a number that tries the moment it may, all
    /// year, with the defaults.
    #[test]
    fn one_number_gets_a_few_dozen_guesses_a_year() {
        let b = Backoff::default();
        let (mut s, mut now, mut n) = (None, T0, 0);
        while now < T0 + YEAR_MS {
            if b.allows(s, now) {
                s = Some(b.counted(s, now));
                n += 1;
            }
            now += MIN;
        }
        assert_eq!(n, 46);
    }

    #[test]
    fn no_overflow_at_the_ends_of_time() {
        let b = Backoff::default();
        let s = b.counted(None, i64::MAX - 5);
        assert_eq!(s.tat, i64::MAX);
        assert!(b.allows(Some(s), i64::MAX));
        let s = b.counted(Some(s), i64::MIN);
        assert!(b.level(s.tat, i64::MIN) > 0);
        let g = Budget::per_year(1, 1);
        assert_eq!(g.counted(Some(i64::MAX), 0), i64::MAX);
        assert!(g.allows(Some(i64::MAX), i64::MAX));
        assert!(!g.allows(Some(i64::MAX), i64::MIN));
    }
}
