//! Dates typed on the keypad as DDMM (SPEC §4 step 6).
//!
//! A DDMM date means its next occurrence on or after the target day. One
//! exception: a date that falls in the month before the target day (up to
//! [`TOO_EARLY_DAYS`] back) is taken as what the caller meant, a date in
//! the past, and refused as "before the first service day", rather than
//! read as the same day next year, which nobody typing it means.

use chrono::{Datelike, NaiveDate};

/// How far before the target day a DDMM date is read as "too early"
/// rather than as next year's date.
pub const TOO_EARLY_DAYS: i64 = 31;

/// Why a DDMM entry was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateEntryError {
    /// Not four digits, or no such day (3102, 0013, 2902 in a common year).
    Invalid,
    /// Before the target day.
    TooEarly,
}

/// The date meant by `digits` (DDMM) for a call whose target day is `target`.
pub fn resolve(digits: &str, target: NaiveDate) -> Result<NaiveDate, DateEntryError> {
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateEntryError::Invalid);
    }
    let (dd, mm) = digits.split_at(2);
    let (Ok(day), Ok(month)) = (dd.parse::<u32>(), mm.parse::<u32>()) else {
        return Err(DateEntryError::Invalid);
    };
    let in_year = |year: i32| NaiveDate::from_ymd_opt(year, month, day);
    let candidates = [
        in_year(target.year() - 1),
        in_year(target.year()),
        in_year(target.year() + 1),
    ];
    // A date just before the target day is a date in the past.
    let recent_past = candidates
        .iter()
        .flatten()
        .any(|d| *d < target && (target - *d).num_days() <= TOO_EARLY_DAYS);
    if recent_past {
        return Err(DateEntryError::TooEarly);
    }
    candidates
        .into_iter()
        .flatten()
        .find(|d| *d >= target)
        // No such day (3102), or 29 February with no leap year near.
        .ok_or(DateEntryError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn table() {
        use DateEntryError::*;
        let target = d("2026-12-10");
        for (typed, expected) in [
            ("1012", Ok(d("2026-12-10"))),
            ("1412", Ok(d("2026-12-14"))),
            ("3112", Ok(d("2026-12-31"))),
            ("0801", Ok(d("2027-01-08"))),
            ("3006", Ok(d("2027-06-30"))),
            ("0912", Err(TooEarly)),
            ("1011", Err(TooEarly)),
            ("0911", Err(TooEarly)),
            ("0811", Ok(d("2027-11-08"))),
            ("3102", Err(Invalid)),
            ("0013", Err(Invalid)),
            ("0000", Err(Invalid)),
            ("3204", Err(Invalid)),
            ("2902", Err(Invalid)),
            ("123", Err(Invalid)),
            ("12345", Err(Invalid)),
            ("", Err(Invalid)),
            ("12*4", Err(Invalid)),
        ] {
            assert_eq!(resolve(typed, target), expected, "{typed}");
        }
        // A leap day exists next year.
        assert_eq!(resolve("2902", d("2027-12-10")), Ok(d("2028-02-29")));
        // Across the new year: target 5 January, 2812 is a week back.
        assert_eq!(resolve("2812", d("2027-01-05")), Err(TooEarly));
        assert_eq!(resolve("0701", d("2027-01-05")), Ok(d("2027-01-07")));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Issue 13: whatever the target day, even at chrono's ends, a
            /// DDMM date resolves without a panic to a date within a year
            /// after it: always inside the school calendar's reach of a
            /// target day in the school year (`bookings::reach`), which the
            /// rules check again.
            #[test]
            fn any_target_and_any_digits_resolve_within_a_year(
                day in prop_oneof![
                    NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce(),
                    NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MIN.num_days_from_ce() + 400,
                    NaiveDate::MAX.num_days_from_ce() - 400..=NaiveDate::MAX.num_days_from_ce(),
                ],
                digits in "[0-9]{4}",
            ) {
                let target = NaiveDate::from_num_days_from_ce_opt(day).unwrap();
                if let Ok(date) = resolve(&digits, target) {
                    prop_assert!(date >= target);
                    prop_assert!((date - target).num_days() <= 366);
                }
            }
        }
    }
}
