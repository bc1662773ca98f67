//! The school calendar's reach: the dates anyone may name.
//!
//! Every date that comes from outside (an API body, path or query, a CLI
//! flag, the import file, a DDMM date on the phone, `--now`) must lie in
//! the reach of the school calendar it is about, or it is refused with a
//! clear error before anything is computed or stored:
//!
//! - **a child's reach** ([`Reach::of_school`]): from one year before its
//!   school's year starts to one year after it ends. A parent plans months
//!   ahead (R4) and looks back at last year's statement; nobody has a
//!   reason to name a date further away;
//! - **the ente's reach** ([`Reach::of_schools`]), for what is about no
//!   child (the kitchen report, a closing, the calls of a day, news, the
//!   clock of `--now`): from a year before the earliest school year's
//!   start to a year after the latest one's end;
//! - both are always inside [`Reach::FRAME`], 2000-01-01 to 2199-12-31: the
//!   reach when no school exists yet, and the bounds of any school year
//!   ([`school_year_problem`]).
//!
//! Why it matters: the store keeps dates as ISO text and compares them as
//! text (docs/decisions.md), which is only sound for four-digit years;
//! and date arithmetic (`+ Duration`, `succ`, month steps) panics or fails
//! near chrono's limits (±262,000 years). A frame of two centuries keeps
//! every date far from both, so the rules never meet an extreme date.
//!
//! The parsers here read dates, months and years as typed, and say apart a
//! text that is no date at all ([`DateError::Malformed`]: the caller's
//! 400, or a parse error) from a date out of reach, including one too far
//! for chrono to hold (`+262143-01-01`, a year of eleven digits):
//! [`DateError::OutOfReach`], a 422 in the API.

use chrono::{Datelike, Months, NaiveDate};
use serde::Serialize;

use super::calendar::SchoolCalendar;

/// A span of dates, both ends included, that inputs may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reach {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

/// A date (or month, or year) outside the reach: `asked` as given (a date
/// in ISO form, `2026-13` for a month, `99999` for a year).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{asked} is outside the school calendar's reach, {} to {}", reach.first, reach.last)]
pub struct OutOfReach {
    pub asked: String,
    pub reach: Reach,
}

/// Why a typed date, month or year was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not a date of the expected shape, or no such day (`2026-02-30`).
    #[error("{text:?} is not {expected}")]
    Malformed {
        text: String,
        expected: &'static str,
    },
    #[error(transparent)]
    OutOfReach(#[from] OutOfReach),
}

/// `2000-01-01`..=`2199-12-31`: see the module doc.
const FRAME_FIRST: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(d) => d,
    None => panic!("2000-01-01 is a date"),
};
const FRAME_LAST: NaiveDate = match NaiveDate::from_ymd_opt(2199, 12, 31) {
    Some(d) => d,
    None => panic!("2199-12-31 is a date"),
};

/// The margin on each side of a school year.
const MARGIN: Months = Months::new(12);

/// The longest school year accepted: a service calendar runs within one
/// year (September to June, or a summer service up to August).
const LONGEST_YEAR: Months = Months::new(12);

impl Reach {
    /// Where every date must lie, whatever the schools.
    pub const FRAME: Reach = Reach {
        first: FRAME_FIRST,
        last: FRAME_LAST,
    };

    /// A child's reach: a year before its school's year starts to a year
    /// after it ends (within [`Reach::FRAME`]).
    pub fn of_school(school: &SchoolCalendar) -> Reach {
        Reach::around(school.year_start, school.year_end)
    }

    /// The ente's reach: a year before the earliest school year starts to
    /// a year after the latest ends; [`Reach::FRAME`] when there is no
    /// school yet.
    pub fn of_schools<'a>(schools: impl IntoIterator<Item = &'a SchoolCalendar>) -> Reach {
        Reach::of_school_years(schools.into_iter().map(|s| (s.year_start, s.year_end)))
    }

    /// [`Reach::of_schools`] from each school's (start, end) of year.
    pub fn of_school_years(years: impl IntoIterator<Item = (NaiveDate, NaiveDate)>) -> Reach {
        let span = years
            .into_iter()
            .fold(None, |span, (start, end)| match span {
                None => Some((start, end)),
                Some((first, last)) => Some((start.min(first), end.max(last))),
            });
        match span {
            Some((first, last)) => Reach::around(first, last),
            None => Reach::FRAME,
        }
    }

    fn around(start: NaiveDate, end: NaiveDate) -> Reach {
        let first = start
            .checked_sub_months(MARGIN)
            .map_or(FRAME_FIRST, |d| d.max(FRAME_FIRST));
        let last = end
            .checked_add_months(MARGIN)
            .map_or(FRAME_LAST, |d| d.min(FRAME_LAST));
        Reach { first, last }
    }

    pub fn contains(&self, date: NaiveDate) -> bool {
        self.first <= date && date <= self.last
    }

    /// The nearest date inside the reach (for a bound of a search, never
    /// for an input: inputs are checked).
    pub fn clamp(&self, date: NaiveDate) -> NaiveDate {
        date.max(self.first).min(self.last)
    }

    /// `date` if it lies in the reach.
    pub fn check(&self, date: NaiveDate) -> Result<NaiveDate, OutOfReach> {
        if self.contains(date) {
            Ok(date)
        } else {
            Err(self.refuse(date.to_string()))
        }
    }

    /// `YYYY-MM-DD` (chrono's ISO form: a sign before a year of five digits
    /// or more), in the reach.
    pub fn parse_date(&self, text: &str) -> Result<NaiveDate, DateError> {
        let text = text.trim();
        match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) => Ok(self.check(date)?),
            Err(_) => Err(self.unparsed(text, "a date YYYY-MM-DD", 3)),
        }
    }

    /// `YYYY-MM`: the first and last day of a month that overlaps the reach.
    pub fn parse_month(&self, text: &str) -> Result<(NaiveDate, NaiveDate), DateError> {
        let text = text.trim();
        let first = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
            .map_err(|_| self.unparsed(text, "a month YYYY-MM", 2))?;
        let last = first
            .checked_add_months(Months::new(1))
            .and_then(|d| d.pred_opt())
            .ok_or_else(|| self.refuse(text.to_string()))?;
        if last < self.first || first > self.last {
            return Err(self.refuse(text.to_string()).into());
        }
        Ok((first, last))
    }

    /// A calendar year that overlaps the reach (`2026`).
    pub fn parse_year(&self, text: &str) -> Result<i32, DateError> {
        let text = text.trim();
        let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DateError::Malformed {
                text: shorten(text),
                expected: "a year",
            });
        }
        // Too many digits for an i32 is a year out of reach, not a typo.
        let year = text
            .parse::<i32>()
            .map_err(|_| self.refuse(shorten(text)))?;
        if year < self.first.year() || year > self.last.year() {
            return Err(self.refuse(year.to_string()).into());
        }
        Ok(year)
    }

    fn refuse(&self, asked: String) -> OutOfReach {
        OutOfReach {
            asked,
            reach: *self,
        }
    }

    /// A text chrono did not take: out of reach when it has the shape of a
    /// date (`parts` numbers joined by `-`, an optional sign before the
    /// year) whose year lies outside the frame, malformed otherwise
    /// (`2026-02-30` has the shape but a year in the frame: no such day).
    fn unparsed(&self, text: &str, expected: &'static str, parts: usize) -> DateError {
        let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
        let fields: Vec<&str> = unsigned.split('-').collect();
        let shaped = fields.len() == parts
            && fields
                .iter()
                .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
            && fields[1..].iter().all(|f| f.len() == 2);
        let year_in_frame = fields[0].len() <= 4
            && !text.starts_with('-')
            && fields[0]
                .parse::<i32>()
                .is_ok_and(|y| (FRAME_FIRST.year()..=FRAME_LAST.year()).contains(&y));
        if shaped && !year_in_frame {
            DateError::OutOfReach(self.refuse(shorten(text)))
        } else {
            DateError::Malformed {
                text: shorten(text),
                expected,
            }
        }
    }
}

/// What is wrong with a school year, if anything: it must lie in
/// [`Reach::FRAME`], end on or after its start, and last at most a year.
pub fn school_year_problem(start: NaiveDate, end: NaiveDate) -> Option<String> {
    let frame = Reach::FRAME;
    if !frame.contains(start) || !frame.contains(end) {
        return Some(format!(
            "the school year {start}..{end} must lie between {} and {}",
            frame.first, frame.last
        ));
    }
    if end < start {
        return Some("year_end is before year_start".into());
    }
    if start
        .checked_add_months(LONGEST_YEAR)
        .is_none_or(|limit| end >= limit)
    {
        return Some(format!(
            "the school year {start}..{end} is longer than a year"
        ));
    }
    None
}

/// A peer's text in an error message: at most 40 characters.
fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bookings::Weekdays;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn school(start: &str, end: &str) -> SchoolCalendar {
        SchoolCalendar {
            year_start: d(start),
            year_end: d(end),
            weekdays: Weekdays::MONDAY_TO_FRIDAY,
            closures: vec![],
        }
    }

    #[test]
    fn a_childs_reach_is_its_school_year_and_a_year_each_side() {
        let reach = Reach::of_school(&school("2026-09-14", "2027-06-30"));
        assert_eq!(
            (reach.first, reach.last),
            (d("2025-09-14"), d("2028-06-30"))
        );
        assert!(reach.contains(d("2025-09-14")));
        assert!(!reach.contains(d("2025-09-13")));
        assert!(reach.contains(d("2028-06-30")));
        assert!(!reach.contains(d("2028-07-01")));
        let refused = reach.check(d("2028-07-01")).unwrap_err();
        assert_eq!(refused.asked, "2028-07-01");
        assert_eq!(refused.reach, reach);
    }

    #[test]
    fn the_entes_reach_spans_every_school_and_is_the_frame_without_one() {
        let a = school("2026-09-14", "2027-06-09");
        let b = school("2025-09-15", "2026-06-30");
        let reach = Reach::of_schools([&a, &b]);
        assert_eq!(
            (reach.first, reach.last),
            (d("2024-09-15"), d("2028-06-09"))
        );
        assert_eq!(Reach::of_schools([]), Reach::FRAME);
        // Near the frame's edges the reach stops at the frame.
        let edge = Reach::of_school(&school("2000-03-01", "2000-06-30"));
        assert_eq!(edge.first, d("2000-01-01"));
        let edge = Reach::of_school(&school("2199-09-01", "2199-12-31"));
        assert_eq!(edge.last, d("2199-12-31"));
    }

    #[test]
    fn dates_parse_in_reach_and_extremes_are_out_of_reach_not_malformed() {
        let reach = Reach::of_school(&school("2026-09-14", "2027-06-30"));
        assert_eq!(reach.parse_date("2026-12-10"), Ok(d("2026-12-10")));
        assert_eq!(reach.parse_date(" 2026-12-10 "), Ok(d("2026-12-10")));
        for far in [
            "+262142-12-31",
            "-262143-01-01",
            "0000-01-01",
            "9999-12-31",
            "+10000-01-01",
            "+262143-01-01",
            "-0001-01-01",
            "+99999999999999999999-01-01",
            "1999-12-31",
            "2028-07-01",
        ] {
            assert!(
                matches!(reach.parse_date(far), Err(DateError::OutOfReach(_))),
                "{far}: {:?}",
                reach.parse_date(far)
            );
        }
        for bad in ["2026-02-30", "2026-13-01", "tomorrow", "", "2026-12", "-"] {
            assert!(
                matches!(reach.parse_date(bad), Err(DateError::Malformed { .. })),
                "{bad}: {:?}",
                reach.parse_date(bad)
            );
        }
    }

    #[test]
    fn months_overlapping_the_reach_are_whole_months() {
        let reach = Reach::of_school(&school("2026-09-14", "2027-06-30"));
        assert_eq!(
            reach.parse_month("2025-09"),
            Ok((d("2025-09-01"), d("2025-09-30"))),
            "the month the reach begins in"
        );
        assert_eq!(
            reach.parse_month("2028-06"),
            Ok((d("2028-06-01"), d("2028-06-30")))
        );
        for far in [
            "2025-08",
            "2028-07",
            "+262142-12",
            "-262143-01",
            "+10000-01",
            "0000-01",
        ] {
            assert!(
                matches!(reach.parse_month(far), Err(DateError::OutOfReach(_))),
                "{far}: {:?}",
                reach.parse_month(far)
            );
        }
        for bad in ["2026-13", "2026", "2026-12-01", "december"] {
            assert!(
                matches!(reach.parse_month(bad), Err(DateError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn years_overlapping_the_reach() {
        let reach = Reach::of_school(&school("2026-09-14", "2027-06-30"));
        assert_eq!(reach.parse_year("2025"), Ok(2025));
        assert_eq!(reach.parse_year("2028"), Ok(2028));
        for far in ["2024", "2029", "1999", "-5", "99999999999", "+262142", "0"] {
            assert!(
                matches!(reach.parse_year(far), Err(DateError::OutOfReach(_))),
                "{far}"
            );
        }
        for bad in ["twenty", "", "20 26", "+", "2026.0"] {
            assert!(
                matches!(reach.parse_year(bad), Err(DateError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn school_years_must_be_in_the_frame_ordered_and_at_most_a_year() {
        assert_eq!(school_year_problem(d("2026-09-14"), d("2027-06-30")), None);
        assert_eq!(school_year_problem(d("2026-09-01"), d("2027-08-31")), None);
        assert!(school_year_problem(d("2026-09-01"), d("2027-09-01")).is_some());
        assert!(school_year_problem(d("2027-06-30"), d("2026-09-14")).is_some());
        assert!(school_year_problem(d("1999-09-14"), d("2000-06-30")).is_some());
        assert!(school_year_problem(d("2026-09-14"), d("+10000-01-01")).is_some());
        assert!(school_year_problem(NaiveDate::MIN, NaiveDate::MAX).is_some());
    }

    #[test]
    fn peer_text_in_messages_is_shortened() {
        let long = format!("+{}-01-01", "9".repeat(100));
        let Err(DateError::OutOfReach(e)) = Reach::FRAME.parse_date(&long) else {
            panic!("out of reach");
        };
        assert!(e.asked.chars().count() <= 41, "{}", e.asked);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Any date chrono has, a third of the time within a month of
        /// either end (where its arithmetic overflows).
        fn any_date() -> impl Strategy<Value = NaiveDate> {
            let (min, max) = (
                NaiveDate::MIN.num_days_from_ce(),
                NaiveDate::MAX.num_days_from_ce(),
            );
            prop_oneof![min..=max, min..=min + 31, max - 31..=max]
                .prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).unwrap())
        }

        proptest! {
            /// Whatever the school year stored, the reach lies in the frame
            /// and the checks never panic.
            #[test]
            fn any_school_year_gives_a_reach_inside_the_frame(a in any_date(), b in any_date(), x in any_date()) {
                let reach = Reach::of_school(&school_of(a, b));
                prop_assert!(reach.first >= Reach::FRAME.first);
                prop_assert!(reach.last <= Reach::FRAME.last);
                prop_assert_eq!(reach.check(x).is_ok(), reach.contains(x));
                let _ = reach.parse_date(&x.to_string());
                let _ = reach.parse_month(&x.format("%Y-%m").to_string());
                let _ = reach.parse_year(&x.year().to_string());
                let _ = school_year_problem(a, b);
            }

            /// Every date chrono prints parses back to itself or is refused
            /// as out of reach: never malformed, never a panic.
            #[test]
            fn printed_dates_read_back_or_are_out_of_reach(x in any_date()) {
                match Reach::FRAME.parse_date(&x.to_string()) {
                    Ok(date) => prop_assert_eq!(date, x),
                    Err(e) => prop_assert!(matches!(e, DateError::OutOfReach(_)), "{x}: {e:?}"),
                }
            }
        }

        fn school_of(a: NaiveDate, b: NaiveDate) -> SchoolCalendar {
            SchoolCalendar {
                year_start: a.min(b),
                year_end: a.max(b),
                weekdays: Weekdays::MONDAY_TO_FRIDAY,
                closures: vec![],
            }
        }
    }
}
