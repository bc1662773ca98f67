//! R1 Service day: the school year, the service weekdays (the school's, or
//! the class's *rientri*) and the closures of the *calendario di utilizzo
//! del servizio mensa*.

use std::fmt;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Serialize;

/// A set of weekdays, e.g. `mon`–`fri`, or a class's rientri `mon`, `wed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Weekdays(u8);

impl Weekdays {
    pub const MONDAY_TO_FRIDAY: Weekdays = Weekdays(0b0001_1111);

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn with(self, day: Weekday) -> Weekdays {
        Weekdays(self.0 | (1 << day.num_days_from_monday()))
    }

    /// Parses names such as `["mon", "wed"]`: English (`mon`, `monday`) or
    /// Italian (`lun`, `lunedì`), any case. The error names the bad word.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Weekdays, String> {
        names.iter().try_fold(Weekdays::default(), |set, name| {
            parse_weekday(name.as_ref())
                .map(|d| set.with(d))
                .ok_or_else(|| name.as_ref().to_string())
        })
    }

    /// Lower-case three-letter English names, Monday first.
    pub fn names(self) -> Vec<&'static str> {
        const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        (0..7)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| NAMES[i])
            .collect()
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> Weekdays {
        Weekdays(bits & 0b0111_1111)
    }
}

fn parse_weekday(name: &str) -> Option<Weekday> {
    let lower = name.trim().to_lowercase();
    let day = match lower.as_str() {
        "mon" | "monday" | "lun" | "lunedì" | "lunedi" => Weekday::Mon,
        "tue" | "tuesday" | "mar" | "martedì" | "martedi" => Weekday::Tue,
        "wed" | "wednesday" | "mer" | "mercoledì" | "mercoledi" => Weekday::Wed,
        "thu" | "thursday" | "gio" | "giovedì" | "giovedi" => Weekday::Thu,
        "fri" | "friday" | "ven" | "venerdì" | "venerdi" => Weekday::Fri,
        "sat" | "saturday" | "sab" | "sabato" => Weekday::Sat,
        "sun" | "sunday" | "dom" | "domenica" => Weekday::Sun,
        _ => return None,
    };
    Some(day)
}

/// A range of days without service (holiday, strike, election, trip),
/// both ends included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Closure {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub reason: String,
}

impl Closure {
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.from <= date && date <= self.to
    }
}

/// A school's service calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchoolCalendar {
    pub year_start: NaiveDate,
    pub year_end: NaiveDate,
    pub weekdays: Weekdays,
    pub closures: Vec<Closure>,
}

/// Why a date has no service for a child (red in the portal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NoService {
    OutsideSchoolYear,
    NotAServiceWeekday,
    Closure { reason: String },
}

impl fmt::Display for NoService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoService::OutsideSchoolYear => f.write_str("outside the school year"),
            NoService::NotAServiceWeekday => f.write_str("no service on this weekday"),
            NoService::Closure { reason } => write!(f, "closure: {reason}"),
        }
    }
}

/// The calendar that applies to one child: the school's, narrowed to the
/// class's rientri weekdays where the class has them.
#[derive(Debug, Clone, Copy)]
pub struct ServiceCalendar<'a> {
    pub school: &'a SchoolCalendar,
    pub class_weekdays: Option<Weekdays>,
}

impl<'a> ServiceCalendar<'a> {
    pub fn new(school: &'a SchoolCalendar, class_weekdays: Option<Weekdays>) -> Self {
        ServiceCalendar {
            school,
            class_weekdays,
        }
    }

    /// R1: `Ok(())` on a service day, otherwise why not.
    pub fn service_on(&self, date: NaiveDate) -> Result<(), NoService> {
        if date < self.school.year_start || date > self.school.year_end {
            return Err(NoService::OutsideSchoolYear);
        }
        let weekdays = self.class_weekdays.unwrap_or(self.school.weekdays);
        if !weekdays.contains(date.weekday()) {
            return Err(NoService::NotAServiceWeekday);
        }
        if let Some(closure) = self.school.closures.iter().find(|c| c.contains(date)) {
            return Err(NoService::Closure {
                reason: closure.reason.clone(),
            });
        }
        Ok(())
    }

    pub fn is_service_day(&self, date: NaiveDate) -> bool {
        self.service_on(date).is_ok()
    }

    /// The first service day on or after `date`, within the school year.
    pub fn first_service_day_from(&self, date: NaiveDate) -> Option<NaiveDate> {
        let start = date.max(self.school.year_start);
        start
            .iter_days()
            .take_while(|d| *d <= self.school.year_end)
            .find(|d| self.is_service_day(*d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn school() -> SchoolCalendar {
        SchoolCalendar {
            year_start: d("2026-09-14"),
            year_end: d("2027-06-09"),
            weekdays: Weekdays::MONDAY_TO_FRIDAY,
            closures: vec![
                Closure {
                    from: d("2026-12-08"),
                    to: d("2026-12-09"),
                    reason: "Immacolata".into(),
                },
                Closure {
                    from: d("2026-12-23"),
                    to: d("2027-01-06"),
                    reason: "Vacanze di Natale".into(),
                },
            ],
        }
    }

    #[test]
    fn weekdays_parse_english_and_italian_and_name_the_bad_word() {
        let set = Weekdays::parse(&["mon", "Mercoledì"]).unwrap();
        assert_eq!(set.names(), vec!["mon", "wed"]);
        assert_eq!(Weekdays::parse(&["mon", "funday"]), Err("funday".into()));
    }

    #[test]
    fn service_days_follow_year_weekdays_and_closures() {
        let school = school();
        let cal = ServiceCalendar::new(&school, None);
        assert_eq!(cal.service_on(d("2026-09-14")), Ok(()), "first day");
        assert_eq!(cal.service_on(d("2027-06-09")), Ok(()), "last day");
        assert_eq!(
            cal.service_on(d("2026-09-11")),
            Err(NoService::OutsideSchoolYear)
        );
        assert_eq!(
            cal.service_on(d("2027-06-10")),
            Err(NoService::OutsideSchoolYear)
        );
        assert_eq!(
            cal.service_on(d("2026-12-12")),
            Err(NoService::NotAServiceWeekday)
        );
        assert!(matches!(
            cal.service_on(d("2026-12-09")),
            Err(NoService::Closure { .. })
        ));
    }

    #[test]
    fn a_closure_across_the_new_year_covers_both_years() {
        let school = school();
        let cal = ServiceCalendar::new(&school, None);
        for day in ["2026-12-23", "2026-12-31", "2027-01-01", "2027-01-06"] {
            assert!(!cal.is_service_day(d(day)), "{day}");
        }
        assert_eq!(
            cal.first_service_day_from(d("2026-12-23")),
            Some(d("2027-01-07"))
        );
    }

    #[test]
    fn class_rientri_narrow_the_weekdays() {
        let school = school();
        let rientri = Weekdays::parse(&["mon", "wed"]).unwrap();
        let cal = ServiceCalendar::new(&school, Some(rientri));
        assert!(cal.is_service_day(d("2026-11-30")), "monday");
        assert!(!cal.is_service_day(d("2026-12-01")), "tuesday");
        assert_eq!(
            cal.first_service_day_from(d("2026-12-01")),
            Some(d("2026-12-02"))
        );
    }

    #[test]
    fn no_service_day_left_after_the_last_one() {
        let school = school();
        let cal = ServiceCalendar::new(&school, None);
        assert_eq!(cal.first_service_day_from(d("2027-06-10")), None);
    }
}
