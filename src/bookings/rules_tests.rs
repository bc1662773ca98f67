//! Table-driven tests of the rules of SPEC §3 with the worked examples of
//! the manual, the window edges, both daylight-saving changes of the
//! 2026/27 school year, and the R7 suspension cases.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::*;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn settings() -> EnteSettings {
    EnteSettings::with_name("Comune di Prova")
}

/// A local time of the ente ("2026-12-07 19:00") as the instant it is.
fn at(local: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
    settings().instant(naive)
}

fn school() -> SchoolCalendar {
    SchoolCalendar {
        year_start: d("2026-09-14"),
        year_end: d("2027-06-09"),
        weekdays: Weekdays::MONDAY_TO_FRIDAY,
        closures: vec![
            Closure {
                from: d("2026-11-02"),
                to: d("2026-11-02"),
                reason: "Commemorazione dei defunti".into(),
            },
            Closure {
                from: d("2026-12-08"),
                to: d("2026-12-09"),
                reason: "Immacolata; elezioni".into(),
            },
            Closure {
                from: d("2026-12-23"),
                to: d("2027-01-06"),
                reason: "Vacanze di Natale".into(),
            },
        ],
    }
}

fn ctx<'a>(settings: &'a EnteSettings, school: &'a SchoolCalendar, now: &str) -> RuleContext<'a> {
    RuleContext {
        settings,
        calendar: ServiceCalendar::new(school, None),
        now: at(now),
    }
}

#[test]
fn target_day_worked_examples_and_edges() {
    let s = settings();
    let school = school();
    // (local now, expected target day); SPEC §3 R6 and the list.
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "2026-12-07 19:00",
            Some("2026-12-10"),
            "Monday evening, Tue+Wed closed → Thursday",
        ),
        (
            "2026-12-07 18:30",
            Some("2026-12-10"),
            "the manual's Monday 18:30",
        ),
        (
            "2026-12-04 19:00",
            Some("2026-12-07"),
            "Friday evening → Monday",
        ),
        (
            "2026-12-05 08:00",
            Some("2026-12-07"),
            "Saturday 08:00 → Monday",
        ),
        (
            "2026-12-01 08:59",
            Some("2026-12-01"),
            "Tuesday 08:59 → Tuesday",
        ),
        (
            "2026-12-01 09:00",
            Some("2026-12-02"),
            "Tuesday 09:00: Tuesday closed for changes",
        ),
        (
            "2026-12-01 17:59",
            Some("2026-12-02"),
            "afternoon: next day",
        ),
        ("2026-12-01 18:00", Some("2026-12-02"), "window opening"),
        (
            "2026-12-22 19:00",
            Some("2027-01-07"),
            "Christmas closure across the New Year",
        ),
        (
            "2026-09-13 19:00",
            Some("2026-09-14"),
            "evening before the first school day",
        ),
        (
            "2026-09-01 10:00",
            Some("2026-09-14"),
            "before the school year: its first day",
        ),
        ("2027-06-08 19:00", Some("2027-06-09"), "last school day"),
        ("2027-06-09 09:00", None, "no service day left in the year"),
        (
            "2026-10-24 19:00",
            Some("2026-10-26"),
            "Saturday of the autumn DST change",
        ),
        (
            "2026-10-26 08:59",
            Some("2026-10-26"),
            "Monday after the autumn change, 08:59 CET",
        ),
        (
            "2026-10-26 09:00",
            Some("2026-10-27"),
            "Monday after the autumn change, 09:00 CET",
        ),
        (
            "2027-03-27 20:00",
            Some("2027-03-29"),
            "Saturday of the spring DST change",
        ),
        (
            "2027-03-29 08:59",
            Some("2027-03-29"),
            "Monday after the spring change, 08:59 CEST",
        ),
        (
            "2027-03-29 09:00",
            Some("2027-03-30"),
            "Monday after the spring change, 09:00 CEST",
        ),
    ];
    for (now, expected, why) in cases {
        let got = ctx(&s, &school, now).target_day();
        assert_eq!(got, expected.map(d), "{now}: {why}");
    }
}

#[test]
fn cutoff_instants_follow_daylight_saving() {
    let s = settings();
    // 09:00 CET = 08:00 UTC; 09:00 CEST = 07:00 UTC.
    assert_eq!(
        s.cutoff_of(d("2026-10-23")).to_rfc3339(),
        "2026-10-23T07:00:00+00:00"
    );
    assert_eq!(
        s.cutoff_of(d("2026-10-26")).to_rfc3339(),
        "2026-10-26T08:00:00+00:00"
    );
    assert_eq!(
        s.cutoff_of(d("2027-03-26")).to_rfc3339(),
        "2027-03-26T08:00:00+00:00"
    );
    assert_eq!(
        s.cutoff_of(d("2027-03-29")).to_rfc3339(),
        "2027-03-29T07:00:00+00:00"
    );
}

#[test]
fn times_that_do_not_exist_or_repeat_resolve_sensibly() {
    let s = settings();
    // 2027-03-28 02:30 does not exist in Rome: the first instant after the gap.
    let gap = NaiveDateTime::parse_from_str("2027-03-28 02:30", "%Y-%m-%d %H:%M").unwrap();
    assert_eq!(s.instant(gap).to_rfc3339(), "2027-03-28T01:00:00+00:00");
    // 2026-10-25 02:30 happens twice: the first one (CEST).
    let twice = NaiveDateTime::parse_from_str("2026-10-25 02:30", "%Y-%m-%d %H:%M").unwrap();
    assert_eq!(s.instant(twice).to_rfc3339(), "2026-10-25T00:30:00+00:00");
}

#[test]
fn phone_window_edges() {
    let s = settings();
    let cases = [
        ("2026-12-01 17:59", false),
        ("2026-12-01 18:00", true),
        ("2026-12-01 23:59", true),
        ("2026-12-02 00:00", true),
        ("2026-12-02 08:59", true),
        ("2026-12-02 09:00", false),
        ("2026-12-02 12:00", false),
        ("2026-10-25 02:30", true),
        ("2026-10-25 08:59", true),
        ("2026-10-25 09:00", false),
        ("2027-03-28 08:59", true),
        ("2027-03-28 17:59", false),
    ];
    for (now, open) in cases {
        assert_eq!(s.phone_window_open(at(now)), open, "{now}");
    }
}

#[test]
fn phone_window_follows_the_ente_settings() {
    let mut s = settings();
    s.cutoff = "08:30:00".parse().unwrap();
    s.phone_window_opens = "20:00:00".parse().unwrap();
    assert!(s.phone_window_open(at("2026-12-02 08:29")));
    assert!(!s.phone_window_open(at("2026-12-02 08:30")));
    assert!(!s.phone_window_open(at("2026-12-02 19:59")));
    assert!(s.phone_window_open(at("2026-12-02 20:00")));
}

fn mark(kind: MarkKind) -> days::DayMark {
    days::DayMark {
        kind,
        channel: Channel::Phone,
        at: at("2026-12-01 19:00"),
    }
}

fn suspension(from: &str, until: Option<&str>) -> days::Suspension {
    days::Suspension {
        from: d(from),
        until: until.map(d),
        channel: Channel::Portal,
        at: at("2026-11-20 10:00"),
    }
}

#[test]
fn day_changes_before_and_after_the_cutoff() {
    let s = settings();
    let school = school();
    let days = ChildDays::default();
    let c = ctx(&s, &school, "2026-12-01 08:59");
    let change = c
        .plan_day_change(&days, d("2026-12-01"), DayRequest::Absent)
        .unwrap();
    assert_eq!(change.date, d("2026-12-01"));
    assert_eq!(change.mark, Some(MarkKind::Absent));

    let late = ctx(&s, &school, "2026-12-01 09:00");
    assert_eq!(
        late.plan_day_change(&days, d("2026-12-01"), DayRequest::Absent),
        Err(Refusal::AfterCutoff {
            date: d("2026-12-01")
        })
    );
    // Months ahead is fine (R4).
    assert!(
        late.plan_day_change(&days, d("2027-05-03"), DayRequest::PlainMeal)
            .is_ok()
    );
}

#[test]
fn a_late_request_may_apply_to_the_next_service_day_by_setting() {
    let mut s = settings();
    s.late_requests = LateRequestPolicy::ApplyToNextServiceDay;
    let school = school();
    let c = ctx(&s, &school, "2026-12-07 09:30");
    let change = c
        .plan_day_change(&ChildDays::default(), d("2026-12-07"), DayRequest::Absent)
        .unwrap();
    assert_eq!(change.date, d("2026-12-10"), "Tue and Wed are closed");
}

#[test]
fn no_service_days_cannot_be_changed() {
    let s = settings();
    let school = school();
    let c = ctx(&s, &school, "2026-12-01 10:00");
    let refusal = c
        .plan_day_change(&ChildDays::default(), d("2026-12-08"), DayRequest::Absent)
        .unwrap_err();
    assert!(
        matches!(refusal, Refusal::NoServiceThatDay { .. }),
        "{refusal:?}"
    );
}

#[test]
fn undo_and_nothing_to_do() {
    let s = settings();
    let school = school();
    let mut days = ChildDays::default();
    days.marks.insert(d("2026-12-02"), mark(MarkKind::Absent));
    let c = ctx(&s, &school, "2026-12-01 19:00");
    assert_eq!(
        c.plan_day_change(&days, d("2026-12-02"), DayRequest::Absent),
        Err(Refusal::AlreadyAbsent {
            date: d("2026-12-02")
        })
    );
    let undo = c
        .plan_day_change(&days, d("2026-12-02"), DayRequest::Booked)
        .unwrap();
    assert_eq!((undo.mark, undo.previous), (None, Some(MarkKind::Absent)));
    assert_eq!(
        c.plan_day_change(&days, d("2026-12-03"), DayRequest::Booked),
        Err(Refusal::NothingToUndo {
            date: d("2026-12-03")
        })
    );
    // Absent → plain meal replaces the mark.
    let plain = c
        .plan_day_change(&days, d("2026-12-02"), DayRequest::PlainMeal)
        .unwrap();
    assert_eq!(plain.mark, Some(MarkKind::PlainMeal));
}

#[test]
fn undo_after_the_cutoff_is_refused() {
    let s = settings();
    let school = school();
    let mut days = ChildDays::default();
    days.marks.insert(d("2026-12-02"), mark(MarkKind::Absent));
    let c = ctx(&s, &school, "2026-12-02 09:01");
    assert_eq!(
        c.plan_day_change(&days, d("2026-12-02"), DayRequest::Booked),
        Err(Refusal::AfterCutoff {
            date: d("2026-12-02")
        })
    );
}

#[test]
fn statuses_of_a_child_with_exceptions() {
    let school = school();
    let cal = ServiceCalendar::new(&school, None);
    let mut days = ChildDays::default();
    days.marks.insert(d("2026-12-01"), mark(MarkKind::Absent));
    days.marks
        .insert(d("2026-12-02"), mark(MarkKind::PlainMeal));
    days.suspensions
        .push(suspension("2026-12-14", Some("2026-12-16")));
    assert_eq!(days.status_on(&cal, d("2026-11-30")), DayStatus::Booked);
    assert_eq!(days.status_on(&cal, d("2026-12-01")), DayStatus::Absent);
    assert_eq!(days.status_on(&cal, d("2026-12-02")), DayStatus::PlainMeal);
    assert_eq!(days.status_on(&cal, d("2026-12-14")), DayStatus::Suspended);
    assert_eq!(days.status_on(&cal, d("2026-12-15")), DayStatus::Suspended);
    assert_eq!(days.status_on(&cal, d("2026-12-16")), DayStatus::Booked);
    assert!(matches!(
        days.status_on(&cal, d("2026-12-08")),
        DayStatus::NoService(_)
    ));
}

#[test]
fn suspension_with_and_without_a_return_date() {
    let s = settings();
    let school = school();
    let c = ctx(&s, &school, "2026-12-03 19:00");
    let none = ChildDays::default();
    // Open suspension from the target day (Friday 4th).
    assert_eq!(
        c.plan_suspension(&none, d("2026-12-04"), None),
        Ok(SuspensionChange::Start {
            from: d("2026-12-04"),
            until: None
        })
    );
    // With a return date on a closure: back on the next service day.
    assert_eq!(
        c.plan_suspension(&none, d("2026-12-04"), Some(d("2026-12-08"))),
        Ok(SuspensionChange::Start {
            from: d("2026-12-04"),
            until: Some(d("2026-12-10"))
        })
    );
    // Starting on a weekend starts on the next service day.
    assert_eq!(
        c.plan_suspension(&none, d("2026-12-05"), None),
        Ok(SuspensionChange::Start {
            from: d("2026-12-07"),
            until: None
        })
    );
    // Return not after the start.
    assert!(matches!(
        c.plan_suspension(&none, d("2026-12-04"), Some(d("2026-12-04"))),
        Err(Refusal::ReturnNotAfterStart { .. })
    ));
    // Starting on a day already closed.
    assert_eq!(
        c.plan_suspension(&none, d("2026-12-03"), None),
        Err(Refusal::AfterCutoff {
            date: d("2026-12-03")
        })
    );
    // Overlapping an existing open suspension.
    let mut days = ChildDays::default();
    days.suspensions.push(suspension("2026-11-23", None));
    assert_eq!(
        c.plan_suspension(&days, d("2026-12-10"), None),
        Err(Refusal::AlreadySuspended {
            since: d("2026-11-23")
        })
    );
    // A day change inside it is refused as suspended.
    assert_eq!(
        c.plan_day_change(&days, d("2026-12-04"), DayRequest::Absent),
        Err(Refusal::Suspended {
            date: d("2026-12-04")
        })
    );
}

#[test]
fn reactivation_cases() {
    let s = settings();
    let school = school();
    let c = ctx(&s, &school, "2026-12-03 19:00");
    let mut days = ChildDays::default();
    days.suspensions.push(suspension("2026-11-23", None));
    // Reactivation dated on a closure resumes on the next service day.
    assert_eq!(
        c.plan_reactivation(&days, d("2026-12-08")),
        Ok(SuspensionChange::End {
            from: d("2026-11-23"),
            resume: d("2026-12-10")
        })
    );
    // From the target day.
    assert_eq!(
        c.plan_reactivation(&days, d("2026-12-04")),
        Ok(SuspensionChange::End {
            from: d("2026-11-23"),
            resume: d("2026-12-04")
        })
    );
    // Not retroactive.
    assert_eq!(
        c.plan_reactivation(&days, d("2026-12-03")),
        Err(Refusal::AfterCutoff {
            date: d("2026-12-03")
        })
    );
    // Not suspended at all.
    assert_eq!(
        c.plan_reactivation(&ChildDays::default(), d("2026-12-04")),
        Err(Refusal::NotSuspended)
    );
    // A future suspension reactivated on its first day never starts.
    let mut future = ChildDays::default();
    future
        .suspensions
        .push(suspension("2026-12-14", Some("2026-12-18")));
    assert_eq!(
        c.plan_reactivation(&future, d("2026-12-12")),
        Ok(SuspensionChange::Remove {
            from: d("2026-12-14"),
            resume: d("2026-12-14")
        })
    );
    // Before it with service days in between: nothing is suspended then.
    assert_eq!(
        c.plan_reactivation(&future, d("2026-12-10")),
        Err(Refusal::NotSuspended)
    );
    // After its return date: not suspended either.
    assert_eq!(
        c.plan_reactivation(&future, d("2026-12-18")),
        Err(Refusal::NotSuspended)
    );
}

#[test]
fn suspension_and_reactivation_with_no_service_day_left() {
    let s = settings();
    let school = school();
    let c = ctx(&s, &school, "2027-06-09 10:00");
    assert_eq!(
        c.plan_suspension(&ChildDays::default(), d("2027-06-10"), None),
        Err(Refusal::NoServiceDayAhead)
    );
}

#[test]
fn dates_outside_the_reach_are_refused_before_any_rule() {
    let s = settings();
    let school = school();
    let c = ctx(&s, &school, "2026-12-01 10:00");
    let reach = Reach::of_school(&school);
    let none = ChildDays::default();
    let out = |date: &str| Refusal::OutOfReach {
        date: d(date),
        reach,
    };
    // The example: a return date whose text sorts before 2026.
    assert_eq!(
        c.plan_suspension(&none, d("2026-12-04"), Some(d("+10000-01-01"))),
        Err(out("+10000-01-01"))
    );
    for far in [
        "+262142-12-31",
        "-262143-01-01",
        "0000-01-01",
        "9999-12-31",
        "2028-06-10",
    ] {
        assert_eq!(
            c.plan_day_change(&none, d(far), DayRequest::Absent),
            Err(out(far)),
            "{far}"
        );
        assert_eq!(
            c.plan_suspension(&none, d(far), None),
            Err(out(far)),
            "{far}"
        );
        assert_eq!(c.plan_reactivation(&none, d(far)), Err(out(far)), "{far}");
    }
    // A year after the school year is still in reach: the rules answer.
    assert_eq!(
        c.plan_day_change(&none, d("2028-06-09"), DayRequest::Absent),
        Err(Refusal::NoServiceThatDay {
            date: d("2028-06-09"),
            reason: NoService::OutsideSchoolYear
        })
    );
}

#[test]
fn kitchen_report_counts_per_school_and_class() {
    use closing::{Attendance, KitchenReport};
    let a = |school: &str, class: &str, diet: &str, status: DayStatus| Attendance {
        school: SchoolId::parse(school).unwrap(),
        class: ClassId::parse(class).unwrap(),
        diet: Diet::parse(diet).unwrap(),
        status,
    };
    let rows = vec![
        a("dante", "4B", "none", DayStatus::Booked),
        a("dante", "4B", "celiac", DayStatus::Booked),
        a("dante", "4B", "celiac", DayStatus::PlainMeal),
        a("dante", "4B", "vegetarian", DayStatus::Absent),
        a("dante", "3A", "none", DayStatus::Suspended),
        a(
            "rodari",
            "B",
            "none",
            DayStatus::NoService(NoService::NotAServiceWeekday),
        ),
    ];
    let report = KitchenReport::build(d("2026-12-01"), true, &rows);
    assert_eq!(report.totals.meals, 3);
    assert_eq!(report.totals.plain_meals, 1);
    assert_eq!(report.totals.absences, 2);
    assert_eq!(report.totals.diets.get("celiac"), Some(&2));
    assert_eq!(
        report.totals.diets.get("vegetarian"),
        None,
        "absent: not cooked"
    );
    assert_eq!(
        report.schools.len(),
        1,
        "a school with no service that day is left out"
    );
    assert_eq!(report.schools[0].classes.len(), 2);
}

#[test]
fn ledger_balance_and_low_balance() {
    use ledger::{EntryKind, Ledger, LedgerEntry};
    let e = |kind, cents| LedgerEntry {
        at: at("2026-12-01 09:00"),
        kind,
        amount_cents: Cents(cents),
        date: None,
        description: String::new(),
    };
    let l = Ledger::from_entries(
        vec![e(EntryKind::TopUp, 2000), e(EntryKind::Meal, -450)],
        Cents(450),
        5,
    );
    assert_eq!(l.balance_cents, Cents(1550));
    assert!(l.low_balance, "1550 covers 3 meals, fewer than 5");
    let l = Ledger::from_entries(vec![e(EntryKind::Meal, -450)], Cents(450), 0);
    assert_eq!(l.balance_cents, Cents(-450), "may go below zero");
}

mod properties {
    use chrono::{Datelike, Duration};
    use proptest::prelude::*;

    use super::*;

    /// Anywhere in `min..=max`, a third of the time within `edge` of
    /// either end, where chrono's arithmetic overflows (uniform draws
    /// over ±262,000 years would almost never land there).
    fn near_the_ends(min: i64, max: i64, edge: i64) -> impl Strategy<Value = i64> {
        prop_oneof![min..=max, min..=min + edge, max - edge..=max]
    }

    proptest! {
        /// R6 for any instant of the school year: the target day is a
        /// service day whose cutoff is still ahead, and no service day with
        /// an open cutoff comes before it.
        #[test]
        fn target_day_is_the_first_open_service_day(minutes in 0i64..(300 * 24 * 60), rientri in any::<bool>()) {
            let s = settings();
            let school = school();
            let class = rientri.then(|| Weekdays::parse(&["mon", "wed"]).unwrap());
            let now = at("2026-09-01 00:00") + Duration::minutes(minutes);
            let rules = RuleContext { settings: &s, calendar: ServiceCalendar::new(&school, class), now };
            let first_open = s.first_open_date(now);
            match rules.target_day() {
                Some(day) => {
                    prop_assert!(rules.calendar.is_service_day(day));
                    prop_assert!(s.is_open(day, now));
                    prop_assert!(first_open.iter_days().take_while(|d| *d < day).all(|d| !rules.calendar.is_service_day(d)));
                }
                None => prop_assert!(first_open.iter_days().take_while(|d| *d <= school.year_end).all(|d| !rules.calendar.is_service_day(d))),
            }
        }

        /// R3 and R9 for any instant and any day: a change is planned only
        /// for a service day whose cutoff is ahead, and undoing it is
        /// allowed exactly when the change was.
        #[test]
        fn changes_only_on_open_service_days(minutes in 0i64..(300 * 24 * 60), offset in 0u64..60, absent in any::<bool>()) {
            let s = settings();
            let school = school();
            let now = at("2026-09-01 00:00") + Duration::minutes(minutes);
            let rules = RuleContext { settings: &s, calendar: ServiceCalendar::new(&school, None), now };
            let date = s.today(now) + chrono::Days::new(offset);
            let request = if absent { DayRequest::Absent } else { DayRequest::PlainMeal };
            let mut days = ChildDays::default();
            match rules.plan_day_change(&days, date, request) {
                Ok(change) => {
                    prop_assert_eq!(change.date, date);
                    prop_assert!(rules.calendar.is_service_day(date) && s.is_open(date, now));
                    days.marks.insert(date, days::DayMark { kind: change.mark.unwrap(), channel: Channel::Portal, at: now });
                    let undo = rules.plan_day_change(&days, date, DayRequest::Booked).unwrap();
                    prop_assert_eq!(undo.mark, None);
                }
                Err(Refusal::AfterCutoff { .. }) => prop_assert!(!s.is_open(date, now)),
                Err(Refusal::NoServiceThatDay { .. }) => prop_assert!(!rules.calendar.is_service_day(date)),
                Err(other) => prop_assert!(false, "unexpected refusal {other:?}"),
            }
        }

        /// The whole of chrono's range, for the clock and for the date: the
        /// calendar, the target day, the cutoff, the window and every plan
        /// answer without a panic, and a date outside the child's reach is
        /// refused as such whatever the clock says.
        #[test]
        fn any_instant_and_any_date_never_panic(
            secs in near_the_ends(DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp(), 3 * 86_400),
            day in near_the_ends(NaiveDate::MIN.num_days_from_ce().into(), NaiveDate::MAX.num_days_from_ce().into(), 3),
            rientri in any::<bool>(),
        ) {
            let day = i32::try_from(day).unwrap();
            let s = settings();
            let school = school();
            let class = rientri.then(|| Weekdays::parse(&["mon", "wed"]).unwrap());
            let now = DateTime::from_timestamp(secs, 0).unwrap();
            let date = NaiveDate::from_num_days_from_ce_opt(day).unwrap();
            let rules = RuleContext { settings: &s, calendar: ServiceCalendar::new(&school, class), now };
            let _ = s.local(now);
            let _ = s.first_open_date(now);
            let _ = s.phone_window_open(now);
            let _ = s.is_open(date, now);
            let _ = s.cutoff_of(date);
            let _ = rules.calendar.service_on(date);
            let _ = rules.calendar.first_service_day_from(date);
            let _ = ChildDays::default().status_on(&rules.calendar, date);
            if let Some(target) = rules.target_day() {
                prop_assert!(rules.calendar.is_service_day(target));
            }
            let none = ChildDays::default();
            let plans = [
                rules.plan_day_change(&none, date, DayRequest::Absent).map(|_| ()),
                rules.plan_suspension(&none, date, None).map(|_| ()),
                rules.plan_suspension(&none, school.year_start, Some(date)).map(|_| ()),
                rules.plan_reactivation(&none, date).map(|_| ()),
            ];
            if !Reach::of_school(&school).contains(date) {
                for plan in plans {
                    prop_assert!(matches!(plan, Err(Refusal::OutOfReach { .. })), "{date}: {plan:?}");
                }
            }
        }
    }
}
