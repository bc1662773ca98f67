//! Benchmarks of the bookings core (figures, not assertions):
//!
//! - the target-day computation (R6), per call;
//! - the closing (R10) of one day for 100,000 children, on SQLite and,
//!   when MENSA_BENCH_POSTGRES_URL names a server, on PostgreSQL.
//!
//! `cargo bench --bench bookings` (add `-- --children N` to change the size).
//! Results go to docs/benchmarks.md by hand, with the machine they ran on.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{Duration as Days, NaiveDate, NaiveDateTime};
use mensa::bookings::{Actor, CancelCode, Channel};
use mensa::bookings::{
    Cents, ClassId, Closure, DayRequest, Diet, EnteSettings, FiscalCode, RuleContext,
    SchoolCalendar, SchoolId, ServiceCalendar, UserCode, Weekdays,
};
use mensa::import::{AdultData, ChildData, ImportData, SchoolData};
use mensa::store::{Operation, Store};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn school_calendar() -> SchoolCalendar {
    SchoolCalendar {
        year_start: d("2026-09-14"),
        year_end: d("2027-06-09"),
        weekdays: Weekdays::MONDAY_TO_FRIDAY,
        closures: vec![
            Closure {
                from: d("2026-11-02"),
                to: d("2026-11-02"),
                reason: "Ognissanti".into(),
            },
            Closure {
                from: d("2026-12-08"),
                to: d("2026-12-09"),
                reason: "Immacolata".into(),
            },
            Closure {
                from: d("2026-12-23"),
                to: d("2027-01-06"),
                reason: "Natale".into(),
            },
            Closure {
                from: d("2027-04-01"),
                to: d("2027-04-06"),
                reason: "Pasqua".into(),
            },
        ],
    }
}

fn bench_target_day() {
    let settings = EnteSettings::with_name("bench");
    let school = school_calendar();
    let rientri = Weekdays::parse(&["mon", "wed"]).unwrap();
    let start = settings
        .instant(NaiveDateTime::parse_from_str("2026-09-01 00:00", "%Y-%m-%d %H:%M").unwrap());
    let n = 1_000_000u32;
    let began = Instant::now();
    let mut found = 0u32;
    for i in 0..n {
        // Every 17 minutes across the school year, half with class rientri.
        let now = start + Days::minutes(i64::from(i % 26_000) * 17);
        let calendar = ServiceCalendar::new(&school, (i % 2 == 0).then_some(rientri));
        let rules = RuleContext {
            settings: &settings,
            calendar,
            now,
        };
        if settings.phone_window_open(now) && black_box(rules.target_day()).is_some() {
            found += 1;
        }
    }
    let elapsed = began.elapsed();
    println!(
        "target day (window check + R6): {n} calls in {:.3} s = {:.0} ns/call ({found} in window)",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / f64::from(n)
    );
}

/// 100,000 children in 40 schools, 1,000 families' worth of parents.
fn data(children: usize) -> ImportData {
    let mut ente = EnteSettings::with_name("Bench");
    ente.meal_price = Cents(450);
    let schools: Vec<SchoolData> = (0..40)
        .map(|s| SchoolData {
            id: SchoolId::parse(&format!("school-{s}")).unwrap(),
            name: format!("School {s}"),
            calendar: school_calendar(),
            classes: vec![(
                ClassId::parse("3A").unwrap(),
                Some(Weekdays::parse(&["mon", "wed"]).unwrap()),
            )],
        })
        .collect();
    let parent = FiscalCode::parse("RSSMRA80A01C034P").unwrap();
    let adults = vec![AdultData {
        fiscal_code: parent.clone(),
        first_name: "Mario".into(),
        last_name: "Rossi".into(),
        email: None,
        phone: None,
        password: None,
        password_hash: None,
    }];
    let diets = [
        "none",
        "none",
        "none",
        "none",
        "celiac",
        "vegetarian",
        "no-pork",
    ];
    let children = (0..children)
        .map(|i| ChildData {
            place: format!("child {i}"),
            user_code: UserCode::parse(&format!("{:07}", 1_000_000 + i)).unwrap(),
            cancel_code: CancelCode::parse(&format!("{:08}", 50_000_000 + i)).unwrap(),
            first_name: "Child".into(),
            last_name: format!("N{i}"),
            fiscal_code: FiscalCode::parse("RSSLCU18D12C034G").unwrap(),
            school: SchoolId::parse(&format!("school-{}", i % 40)).unwrap(),
            class: ClassId::parse(["1A", "2B", "3A", "4B", "5C"][i % 5]).unwrap(),
            parent: parent.clone(),
            delegates: vec![],
            diet: Diet::parse(diets[i % diets.len()]).unwrap(),
            meal_price: (i % 10 == 0).then_some(Cents(380)),
        })
        .collect();
    ImportData {
        ente,
        schools,
        adults,
        children,
        news: vec![],
        warnings: vec![],
    }
}

async fn bench_closing(name: &str, store: Store, children: usize) {
    let data = data(children);
    let began = Instant::now();
    store
        .import(&data, chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    let import = began.elapsed();
    // 10 % absent and 2 % plain meals on Wednesday 2 December.
    let day = d("2026-12-02");
    let before = EnteSettings::with_name("bench")
        .instant(NaiveDateTime::parse_from_str("2026-12-01 19:00", "%Y-%m-%d %H:%M").unwrap());
    let who = Actor::PhoneCaller("bench".into());
    let began = Instant::now();
    let mut changes = 0u32;
    for (i, child) in data.children.iter().enumerate().filter(|(i, _)| i % 50 < 6) {
        let c = store
            .child_by_user_code(&child.user_code)
            .await
            .unwrap()
            .unwrap();
        let request = if i % 50 == 0 {
            DayRequest::PlainMeal
        } else {
            DayRequest::Absent
        };
        let op = Operation::Day { date: day, request };
        store
            .apply(c.id, op, &who, Channel::Phone, before)
            .await
            .unwrap()
            .unwrap();
        changes += 1;
    }
    let change_time = began.elapsed();
    let after = EnteSettings::with_name("bench")
        .instant(NaiveDateTime::parse_from_str("2026-12-02 09:00", "%Y-%m-%d %H:%M").unwrap());
    let began = Instant::now();
    let outcome = store.close_day(day, after).await.unwrap();
    let closing = began.elapsed();
    let began = Instant::now();
    let report = store.kitchen_report(day).await.unwrap();
    let report_time = began.elapsed();
    println!(
        "{name}: {children} children imported in {:.1} s",
        import.as_secs_f64()
    );
    println!(
        "{name}: {changes} day changes (lookup + apply, one transaction each) in {:.2} s = {:.2} ms each",
        change_time.as_secs_f64(),
        ms(change_time) / f64::from(changes)
    );
    println!(
        "{name}: closing one day: {:.3} s ({outcome:?})",
        closing.as_secs_f64()
    );
    println!(
        "{name}: final kitchen report: {:.3} s ({} meals, {} plain, {} absences)",
        report_time.as_secs_f64(),
        report.totals.meals,
        report.totals.plain_meals,
        report.totals.absences
    );
    store.close().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let children = args
        .iter()
        .position(|a| a == "--children")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    bench_target_day();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        bench_closing("sqlite", Store::open(&url).await.unwrap(), children).await;
        if let Ok(admin) = std::env::var("MENSA_BENCH_POSTGRES_URL") {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query("DROP DATABASE IF EXISTS mensa_bench")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("CREATE DATABASE mensa_bench")
                .execute(&mut conn)
                .await
                .unwrap();
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap();
            let store = Store::open(&format!("{base}/mensa_bench")).await.unwrap();
            bench_closing("postgres", store, children).await;
        } else {
            println!("postgres: skipped (set MENSA_BENCH_POSTGRES_URL to run it)");
        }
    });
}
