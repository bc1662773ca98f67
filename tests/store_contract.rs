//! The store contract: one suite, run against SQLite (always) and against
//! PostgreSQL (ignored unless asked for: `.ci/run` starts a server and runs
//! `cargo test --test store_contract -- --include-ignored` with
//! MENSA_TEST_POSTGRES_URL set).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use chrono::NaiveDate;
use common::{at, d, import_example, import_text};
use mensa::bookings::{Actor, Cents, Channel, DayRequest, DayStatus, Refusal, UserCode};
use mensa::store::{
    AdultId, Applied, AttemptKey, Child, ClosingOutcome, DeviceReservation, LockPolicy,
    LoginSuccess, Operation, Reservation, Store, StoreError,
};

/// Generates one test per contract case for each backend.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _dir) = crate::common::sqlite().await;
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: set MENSA_TEST_POSTGRES_URL (.ci/run does)"]
                async fn $case() {
                    let store = crate::common::postgres().await;
                    super::$case(store).await;
                }
            )*
        }
    };
}

contract!(
    reimport_updates_and_never_duplicates,
    import_refuses_codes_taken_by_stored_children,
    a_change_is_durable_and_visible_in_the_calendar,
    a_refusal_changes_nothing,
    the_cutoff_race_is_decided_by_the_instant,
    concurrent_writers_never_lose_an_update,
    concurrent_same_day_changes_apply_once,
    suspension_and_reactivation_round_trip,
    closing_charges_once_and_freezes_the_day,
    closing_waits_for_the_cutoff,
    a_change_racing_the_closing_is_never_both_absent_and_charged,
    catch_up_starts_from_the_first_day_of_service,
    the_frozen_day_matches_the_rules,
    sessions_are_found_until_they_expire_or_end,
    attempts_are_counted_before_the_verification_and_lock,
    concurrent_attempts_are_admitted_no_more_than_the_policy_says,
    a_device_is_judged_by_its_own_count,
    concurrent_attempts_on_a_device_are_admitted_no_more_than_the_policy_says,
    adults_act_for_their_children_and_delegated_ones_only,
    a_receipt_credits_the_ledger_once,
    concurrent_receipts_credit_once,
    operator_closures_survive_reimport_and_only_they_can_be_removed,
    news_is_published_once,
    calls_are_recorded_with_redacted_codes_and_listed_by_day,
    changes_queued_together_keep_their_own_outcomes,
    a_closure_shows_at_once_after_the_calendar_was_read,
    dates_the_store_cannot_compare_never_reach_it,
    closings_remember_the_clock_they_ran_under,
    retention_deletes_old_calls_and_redacts_who_acted,
    codes_are_stored_as_keyed_hashes_under_one_key,
    a_code_equal_to_a_stored_user_code_is_refused,
    the_counts_follow_the_rules_of_guessing,
    concurrent_guesses_cannot_all_pass_the_check,
    a_guarded_line_takes_bound_codes_only,
    counts_are_swept_and_bindings_bounded,
    reissue_gives_short_codes_new_ones_once,
    registered_numbers_are_bound_from_the_import,
);

#[path = "store_contract/codes.rs"]
mod codes;
use codes::{
    a_code_equal_to_a_stored_user_code_is_refused, a_guarded_line_takes_bound_codes_only,
    codes_are_stored_as_keyed_hashes_under_one_key, concurrent_guesses_cannot_all_pass_the_check,
    counts_are_swept_and_bindings_bounded, registered_numbers_are_bound_from_the_import,
    reissue_gives_short_codes_new_ones_once, the_counts_follow_the_rules_of_guessing,
};

async fn child(store: &Store, code: &str) -> Child {
    store
        .child_by_user_code(&UserCode::parse(code).unwrap())
        .await
        .unwrap()
        .unwrap()
}

fn caller() -> Actor {
    Actor::PhoneCaller("+393331234567".into())
}

async fn status(store: &Store, c: &Child, date: &str) -> DayStatus {
    let day = d(date);
    let days = store
        .calendar(c, day, day, at("2026-11-26 10:00"))
        .await
        .unwrap();
    days[0].status.clone()
}

async fn reimport_updates_and_never_duplicates(store: Store) {
    import_example(&store).await;
    let changed = common::EXAMPLE.replace("first_name = \"Luca\"", "first_name = \"Lucas\"");
    let data = mensa::import::parse(&changed).unwrap();
    let summary = store
        .import(&data, at("2026-11-26 10:00"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((summary.children_created, summary.children_updated), (0, 2));
    let luca = child(&store, "100234").await;
    assert_eq!(luca.first_name, "Lucas");
    let cal = store.school_calendar(&luca.school).await.unwrap();
    assert_eq!(cal.closures.len(), 4, "closures replaced, not added");
    // The password survives a re-import that omits it.
    let without = common::EXAMPLE.replace("password = \"demo-password\"", "");
    import_text(&store, &without).await;
    // Two children swap their cancel codes.
    let swapped = common::EXAMPLE
        .replace("cancel_code = \"58213\"", "cancel_code = \"SWAP\"")
        .replace("cancel_code = \"77120\"", "cancel_code = \"58213\"")
        .replace("cancel_code = \"SWAP\"", "cancel_code = \"77120\"");
    import_text(&store, &swapped).await;
    let holder = |code: &'static str| {
        let store = store.clone();
        async move {
            let code = mensa::bookings::CancelCode::parse(code).unwrap();
            store.child_by_cancel_code(&code).await.unwrap().unwrap()
        }
    };
    assert_eq!(holder("77120").await.user_code.as_str(), "100234");
    assert_eq!(holder("58213").await.user_code.as_str(), "100235");
    assert_eq!(child(&store, "100235").await.meal_price, Some(Cents(380)));
}

async fn import_refuses_codes_taken_by_stored_children(store: Store) {
    import_example(&store).await;
    // A file with only a new child whose cancel code is Luca's (stored).
    let text = common::EXAMPLE
        .split("[[children]]")
        .next()
        .unwrap()
        .to_string()
        + r#"
[[children]]
user_code = "200001"
cancel_code = "58213"
first_name = "Anna"
last_name = "Verdi"
fiscal_code = "RSSGLI20E52C034R"
school = "primaria-dante"
class = "1A"
parent = "RSSMRA80A01C034P"
"#;
    let data = mensa::import::parse(&text).unwrap();
    let problems = store
        .import(&data, at("2026-11-26 10:00"))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].message.contains("duplicate cancel code"),
        "{problems:?}"
    );
    assert!(
        store
            .child_by_user_code(&UserCode::parse("200001").unwrap())
            .await
            .unwrap()
            .is_none(),
        "nothing imported"
    );
}

async fn a_change_is_durable_and_visible_in_the_calendar(store: Store) {
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    // The SPEC's example: Monday 19:00, Tuesday and Wednesday closed.
    let op = Operation::Day {
        date: d("2026-12-10"),
        request: DayRequest::Absent,
    };
    let applied = store
        .apply(
            luca.id,
            op,
            &caller(),
            Channel::Phone,
            at("2026-12-07 19:00"),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(applied, Applied::Day(c) if c.date == d("2026-12-10")));
    let days = store
        .calendar(
            &luca,
            d("2026-12-10"),
            d("2026-12-10"),
            at("2026-12-07 19:00"),
        )
        .await
        .unwrap();
    assert_eq!(days[0].status, DayStatus::Absent);
    assert_eq!(days[0].changed.map(|(c, _)| c), Some(Channel::Phone));
    assert!(days[0].changeable);
    assert_eq!(status(&store, &luca, "2026-12-11").await, DayStatus::Booked);
}

async fn a_refusal_changes_nothing(store: Store) {
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    let op = Operation::Day {
        date: d("2026-12-01"),
        request: DayRequest::Absent,
    };
    let refusal = store
        .apply(
            luca.id,
            op,
            &caller(),
            Channel::Phone,
            at("2026-12-01 09:00"),
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::AfterCutoff {
            date: d("2026-12-01")
        }
    );
    assert_eq!(status(&store, &luca, "2026-12-01").await, DayStatus::Booked);
}

async fn the_cutoff_race_is_decided_by_the_instant(store: Store) {
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    let giulia = child(&store, "100235").await;
    let op = Operation::Day {
        date: d("2026-12-01"),
        request: DayRequest::Absent,
    };
    let who = caller();
    let (a, b) = tokio::join!(
        store.apply(
            luca.id,
            op,
            &who,
            Channel::Portal,
            at("2026-12-01 08:59:59.9")
        ),
        store.apply(
            giulia.id,
            op,
            &who,
            Channel::Portal,
            at("2026-12-01 09:00:00.0")
        ),
    );
    assert!(a.unwrap().is_ok(), "08:59:59.9 is before the cutoff");
    assert_eq!(
        b.unwrap().unwrap_err(),
        Refusal::AfterCutoff {
            date: d("2026-12-01")
        }
    );
}

async fn concurrent_writers_never_lose_an_update(store: Store) {
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    let store = Arc::new(store);
    // Twenty different days of the same child, from two channels at once.
    let dates: Vec<_> = d("2027-01-11")
        .iter_days()
        .take(40)
        .filter(|day| chrono::Datelike::weekday(day).num_days_from_monday() < 5)
        .take(20)
        .collect();
    let tasks: Vec<_> = dates
        .iter()
        .enumerate()
        .map(|(i, date)| {
            let store = store.clone();
            let (date, id) = (*date, luca.id);
            tokio::spawn(async move {
                let (request, channel) = if i % 2 == 0 {
                    (DayRequest::Absent, Channel::Phone)
                } else {
                    (DayRequest::PlainMeal, Channel::App)
                };
                store
                    .apply(
                        id,
                        Operation::Day { date, request },
                        &caller(),
                        channel,
                        at("2026-12-01 10:00"),
                    )
                    .await
                    .unwrap()
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for (i, date) in dates.iter().enumerate() {
        let expected = if i % 2 == 0 {
            DayStatus::Absent
        } else {
            DayStatus::PlainMeal
        };
        assert_eq!(
            status(&store, &luca, &date.to_string()).await,
            expected,
            "{date}"
        );
    }
}

async fn concurrent_same_day_changes_apply_once(store: Store) {
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    let op = Operation::Day {
        date: d("2026-12-10"),
        request: DayRequest::Absent,
    };
    let now = at("2026-12-07 19:00");
    let who = caller();
    let (a, b) = tokio::join!(
        store.apply(luca.id, op, &who, Channel::Phone, now),
        store.apply(luca.id, op, &who, Channel::Portal, now),
    );
    let results = [a.unwrap(), b.unwrap()];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results.contains(&Err(Refusal::AlreadyAbsent {
        date: d("2026-12-10")
    })));
}

async fn suspension_and_reactivation_round_trip(store: Store) {
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    let now = at("2026-12-03 19:00");
    let suspend = Operation::Suspend {
        from: d("2026-12-04"),
        until: None,
    };
    store
        .apply(luca.id, suspend, &caller(), Channel::Phone, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status(&store, &luca, "2026-12-21").await,
        DayStatus::Suspended
    );
    let again = store
        .apply(luca.id, suspend, &caller(), Channel::Phone, now)
        .await
        .unwrap();
    assert_eq!(
        again,
        Err(Refusal::AlreadySuspended {
            since: d("2026-12-04")
        })
    );
    // Reactivation dated on a closure (8th): meals again from the 10th.
    let reactivate = Operation::Reactivate {
        from: d("2026-12-08"),
    };
    let applied = store
        .apply(luca.id, reactivate, &caller(), Channel::Portal, now)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(applied, Applied::Suspension(mensa::bookings::SuspensionChange::End { resume, .. }) if resume == d("2026-12-10")),
        "{applied:?}"
    );
    assert_eq!(
        status(&store, &luca, "2026-12-07").await,
        DayStatus::Suspended
    );
    assert_eq!(status(&store, &luca, "2026-12-10").await, DayStatus::Booked);
}

async fn closing_charges_once_and_freezes_the_day(store: Store) {
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    let giulia = child(&store, "100235").await;
    // Giulia: plain meal on Tuesday 1st (charged at her own price); Luca absent.
    for (c, request) in [
        (&luca, DayRequest::Absent),
        (&giulia, DayRequest::PlainMeal),
    ] {
        let op = Operation::Day {
            date: d("2026-12-01"),
            request,
        };
        store
            .apply(c.id, op, &caller(), Channel::Portal, at("2026-11-30 20:00"))
            .await
            .unwrap()
            .unwrap();
    }
    let after = at("2026-12-01 09:00:01");
    let first = store.close_day(d("2026-12-01"), after).await.unwrap();
    assert_eq!(
        first,
        ClosingOutcome::Closed {
            date: d("2026-12-01"),
            meals_charged: 1,
            total_cents: Cents(380)
        }
    );
    assert_eq!(
        store.close_day(d("2026-12-01"), after).await.unwrap(),
        ClosingOutcome::AlreadyClosed {
            date: d("2026-12-01")
        }
    );
    let ledger = store.ledger(&giulia).await.unwrap();
    assert_eq!(ledger.balance_cents, Cents(-380));
    assert_eq!(ledger.entries.len(), 1, "charged once");
    assert_eq!(store.ledger(&luca).await.unwrap().entries.len(), 0);
    let report = store.kitchen_report(d("2026-12-01")).await.unwrap();
    assert!(report.is_final);
    assert_eq!(
        (
            report.totals.meals,
            report.totals.plain_meals,
            report.totals.absences
        ),
        (1, 1, 1)
    );
    assert_eq!(report.totals.diets.get("celiac"), Some(&1));
    // The next day is still a live preview.
    let tomorrow = store.kitchen_report(d("2026-12-02")).await.unwrap();
    assert!(!tomorrow.is_final);
    assert_eq!(tomorrow.totals.meals, 2);
}

async fn closing_waits_for_the_cutoff(store: Store) {
    import_example(&store).await;
    assert_eq!(
        store
            .close_day(d("2026-12-01"), at("2026-12-01 08:59"))
            .await
            .unwrap(),
        ClosingOutcome::NotYet {
            date: d("2026-12-01")
        }
    );
}

async fn a_change_racing_the_closing_is_never_both_absent_and_charged(store: Store) {
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    let store = Arc::new(store);
    // Ten days; on each, a change whose clock says 08:59:59 (a node whose
    // clock is a little behind) races the closing at 09:00:01.
    let days: Vec<_> = [
        "2027-01-11",
        "2027-01-12",
        "2027-01-13",
        "2027-01-14",
        "2027-01-15",
        "2027-01-18",
        "2027-01-19",
        "2027-01-20",
        "2027-01-21",
        "2027-01-22",
    ]
    .iter()
    .map(|s| d(s))
    .collect();
    for day in &days {
        let local = day.format("%Y-%m-%d").to_string();
        let change = {
            let store = store.clone();
            let (id, day, now) = (luca.id, *day, at(&format!("{local} 08:59:59")));
            tokio::spawn(async move {
                let op = Operation::Day {
                    date: day,
                    request: DayRequest::Absent,
                };
                store
                    .apply(id, op, &caller(), Channel::Phone, now)
                    .await
                    .unwrap()
            })
        };
        let closing = {
            let store = store.clone();
            let (day, now) = (*day, at(&format!("{local} 09:00:01")));
            tokio::spawn(async move { store.close_day(day, now).await.unwrap() })
        };
        let (change, closing) = (change.await.unwrap(), closing.await.unwrap());
        assert!(matches!(closing, ClosingOutcome::Closed { .. }));
        let charged = store
            .ledger(&luca)
            .await
            .unwrap()
            .entries
            .iter()
            .any(|e| e.date == Some(*day));
        let absent = status(&store, &luca, &local).await == DayStatus::Absent;
        match change {
            Ok(_) => assert!(absent && !charged, "{day}: the change won, no charge"),
            Err(Refusal::AfterCutoff { .. }) => {
                assert!(!absent && charged, "{day}: the closing won, charged")
            }
            Err(other) => panic!("{day}: unexpected {other:?}"),
        }
    }
}

async fn catch_up_starts_from_the_first_day_of_service(store: Store) {
    import_example(&store).await;
    // The service first ran on Thursday 3 December at 10:00.
    assert_eq!(
        store.mark_service_started(d("2026-12-03")).await.unwrap(),
        d("2026-12-03")
    );
    // A later start does not move it.
    assert_eq!(
        store.mark_service_started(d("2026-12-20")).await.unwrap(),
        d("2026-12-03")
    );
    // Down from Friday morning until Monday 7 at 10:00.
    let due = store.days_to_close(at("2026-12-07 10:00")).await.unwrap();
    assert_eq!(
        due,
        vec![
            d("2026-12-03"),
            d("2026-12-04"),
            d("2026-12-05"),
            d("2026-12-06"),
            d("2026-12-07")
        ]
    );
    let outcomes = mensa::runtime::scheduler::close_due_days(&store, at("2026-12-07 10:00"))
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 5);
    assert!(
        store
            .days_to_close(at("2026-12-07 10:00"))
            .await
            .unwrap()
            .is_empty()
    );
    let luca = child(&store, "100234").await;
    // Thu 3, Fri 4, Mon 7 charged; never September to November.
    assert_eq!(store.ledger(&luca).await.unwrap().entries.len(), 3);
}

/// The closing freezes statuses in SQL; the live preview computes them with
/// the rules in Rust. Over a varied week both must give the same report.
async fn the_frozen_day_matches_the_rules(store: Store) {
    let extra = r#"
[[children]]
user_code = "100300"
cancel_code = "61001"
first_name = "Sara"
last_name = "Rossi"
fiscal_code = "RSSGLI20E52C034R"
school = "primaria-dante"
class = "3A"
parent = "RSSMRA80A01C034P"
diet = "no-pork"

[[children]]
user_code = "100301"
cancel_code = "61002"
first_name = "Piero"
last_name = "Rossi"
fiscal_code = "RSSGLI20E52C034R"
school = "infanzia-rodari"
class = "A"
parent = "RSSMRA80A01C034P"
diet = "vegetarian"
meal_price_cents = 300
"#;
    import_text(&store, &format!("{}{extra}", common::EXAMPLE)).await;
    let (luca, giulia, sara, piero) = (
        child(&store, "100234").await,
        child(&store, "100235").await,
        child(&store, "100300").await,
        child(&store, "100301").await,
    );
    let before = at("2026-11-29 20:00");
    let day = |date: &str, request| Operation::Day {
        date: d(date),
        request,
    };
    let ops = [
        (&luca, day("2026-11-30", DayRequest::Absent)),
        (&luca, day("2026-12-02", DayRequest::PlainMeal)),
        (&giulia, day("2026-12-01", DayRequest::PlainMeal)),
        (&sara, day("2026-12-02", DayRequest::Absent)),
        (
            &piero,
            Operation::Suspend {
                from: d("2026-12-01"),
                until: Some(d("2026-12-03")),
            },
        ),
        (
            &giulia,
            Operation::Suspend {
                from: d("2026-12-04"),
                until: None,
            },
        ),
    ];
    for (c, op) in ops {
        store
            .apply(c.id, op, &caller(), Channel::Portal, before)
            .await
            .unwrap()
            .unwrap();
    }
    for date in [
        "2026-11-30",
        "2026-12-01",
        "2026-12-02",
        "2026-12-03",
        "2026-12-04",
        "2026-12-05",
        "2026-12-08",
        "2026-12-23",
    ] {
        let preview = store.kitchen_report(d(date)).await.unwrap();
        assert!(!preview.is_final);
        let closed = store
            .close_day(d(date), at(&format!("{date} 09:30")))
            .await
            .unwrap();
        assert!(
            matches!(closed, ClosingOutcome::Closed { .. }),
            "{date}: {closed:?}"
        );
        let frozen = store.kitchen_report(d(date)).await.unwrap();
        assert!(frozen.is_final);
        assert_eq!(frozen.schools, preview.schools, "{date}");
        assert_eq!(frozen.totals, preview.totals, "{date}");
    }
    // Charges follow the frozen statuses, at each child's price.
    let charged = |ledger: mensa::bookings::ledger::Ledger| {
        ledger
            .entries
            .iter()
            .map(|e| (e.date.unwrap().to_string(), e.amount_cents.0))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        charged(store.ledger(&luca).await.unwrap()),
        [
            ("2026-12-01".to_string(), -450),
            ("2026-12-02".into(), -450),
            ("2026-12-03".into(), -450),
            ("2026-12-04".into(), -450)
        ]
    );
    assert_eq!(
        charged(store.ledger(&sara).await.unwrap()),
        [("2026-11-30".to_string(), -450)],
        "3A eats on Mondays and Wednesdays; absent on Wednesday 2nd"
    );
    assert_eq!(
        charged(store.ledger(&piero).await.unwrap()),
        [
            ("2026-11-30".to_string(), -300),
            ("2026-12-03".into(), -300),
            ("2026-12-04".into(), -300),
            ("2026-12-08".into(), -300)
        ],
        "the infanzia has no closure on the 8th"
    );
    assert_eq!(
        charged(store.ledger(&giulia).await.unwrap()),
        [
            ("2026-11-30".to_string(), -380),
            ("2026-12-01".into(), -380),
            ("2026-12-02".into(), -380),
            ("2026-12-03".into(), -380)
        ]
    );
}

// ------------------------------------------------------- API store parts

async fn mario(store: &Store) -> mensa::store::Adult {
    let cf = mensa::bookings::FiscalCode::parse("RSSMRA80A01C034P").unwrap();
    let (adult, hash) = store
        .login_credentials(mensa::store::Login::FiscalCode(&cf))
        .await
        .unwrap()
        .unwrap();
    assert!(hash.unwrap().starts_with("$argon2id$"));
    adult
}

async fn laura(store: &Store) -> mensa::store::Adult {
    let cf = mensa::bookings::FiscalCode::parse("BNCLRA85M41C034U").unwrap();
    let (adult, _) = store
        .login_credentials(mensa::store::Login::FiscalCode(&cf))
        .await
        .unwrap()
        .unwrap();
    adult
}

async fn sessions_are_found_until_they_expire_or_end(store: Store) {
    import_example(&store).await;
    let adult = mario(&store).await;
    let now = at("2026-12-07 10:00");
    let expires = at("2026-12-07 22:00");
    store
        .create_session(adult.id, "digest-1", now, expires)
        .await
        .unwrap();
    let found = store.session_adult("digest-1", now).await.unwrap().unwrap();
    assert_eq!(found, adult);
    assert!(
        store
            .session_adult("digest-2", now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session_adult("digest-1", expires)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.delete_session("digest-1").await.unwrap());
    assert!(!store.delete_session("digest-1").await.unwrap());
    assert!(
        store
            .session_adult("digest-1", now)
            .await
            .unwrap()
            .is_none()
    );
    // The user code logs in the child's parent.
    let code = UserCode::parse("100234").unwrap();
    let (by_code, _) = store
        .login_credentials(mensa::store::Login::UserCode(&code))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_code, adult);
}

fn policy(attempts_before_lock: u32) -> LockPolicy {
    LockPolicy {
        attempts_before_lock,
        first_lock: std::time::Duration::from_secs(60),
        max_lock: std::time::Duration::from_secs(240),
    }
}

fn admitted(attempts: i64, locked_until: Option<&str>) -> Reservation {
    Reservation::Admitted {
        attempts,
        locked_until: locked_until.map(at),
    }
}

async fn attempts_are_counted_before_the_verification_and_lock(store: Store) {
    import_example(&store).await;
    let adult = mario(&store).await;
    let key = AttemptKey::adult(adult.id);
    let p = policy(3);
    let now = at("2026-12-07 10:00");
    let reserve = |t: &str| {
        let (store, key) = (store.clone(), key.clone());
        let t = at(t);
        async move { store.reserve_login_attempt(&key, t, &p).await.unwrap() }
    };
    assert_eq!(reserve("2026-12-07 10:00").await, admitted(1, None));
    assert_eq!(reserve("2026-12-07 10:00").await, admitted(2, None));
    // The third is admitted and locks.
    assert_eq!(
        reserve("2026-12-07 10:00").await,
        admitted(3, Some("2026-12-07 10:01"))
    );
    // Locked: refused and not counted, so the lock does not grow.
    for _ in 0..3 {
        assert_eq!(
            reserve("2026-12-07 10:00:30").await,
            Reservation::Locked {
                until: at("2026-12-07 10:01")
            }
        );
    }
    // Another adult, and an unknown login, have their own counts.
    let other = AttemptKey::unknown("user:999999");
    assert_eq!(
        store.reserve_login_attempt(&other, now, &p).await.unwrap(),
        admitted(1, None)
    );
    // After the lock one more is admitted, and locks twice as long, up to
    // the cap.
    assert_eq!(
        reserve("2026-12-07 10:01").await,
        admitted(4, Some("2026-12-07 10:03"))
    );
    assert_eq!(
        reserve("2026-12-07 10:03").await,
        admitted(5, Some("2026-12-07 10:07"))
    );
    assert_eq!(
        reserve("2026-12-07 10:07").await,
        admitted(6, Some("2026-12-07 10:11"))
    );
    // A right password clears the count.
    succeed(
        &store,
        adult.id,
        "s1",
        "d1",
        None,
        Some(&key),
        "2026-12-07 10:11",
    )
    .await;
    assert_eq!(reserve("2026-12-07 10:11").await, admitted(1, None));
    // Attempts a day apart start a new count.
    reserve("2026-12-07 10:11").await;
    assert_eq!(reserve("2026-12-08 10:11:01").await, admitted(1, None));
}

async fn concurrent_attempts_are_admitted_no_more_than_the_policy_says(store: Store) {
    import_example(&store).await;
    let adult = mario(&store).await;
    let now = at("2026-12-07 10:00");
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let key = AttemptKey::adult(adult.id);
            store.reserve_login_attempt(&key, now, &policy(5)).await
        }));
    }
    let mut counted = Vec::new();
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Reservation::Admitted { attempts, .. } => counted.push(attempts),
            Reservation::Locked { until } => assert_eq!(until, at("2026-12-07 10:01")),
        }
    }
    counted.sort();
    assert_eq!(counted, vec![1, 2, 3, 4, 5]);
}

async fn succeed(
    store: &Store,
    adult: AdultId,
    session: &str,
    device: &str,
    replaces: Option<&str>,
    clears: Option<&AttemptKey>,
    t: &str,
) {
    let now = at(t);
    store
        .login_succeeded(
            &LoginSuccess {
                adult,
                session_sha256: session,
                session_expires: now + chrono::Duration::hours(12),
                device_sha256: device,
                device_expires: now + chrono::Duration::days(180),
                replaces_device: replaces,
                clears,
            },
            now,
        )
        .await
        .unwrap();
}

async fn a_device_is_judged_by_its_own_count(store: Store) {
    import_example(&store).await;
    let mario = mario(&store).await;
    let laura = laura(&store).await;
    let p = policy(2);
    let now = at("2026-12-07 10:00");
    succeed(
        &store,
        mario.id,
        "s1",
        "phone",
        None,
        None,
        "2026-12-07 10:00",
    )
    .await;
    assert!(store.session_adult("s1", now).await.unwrap().is_some());
    let device = |digest: &'static str, adult: AdultId, t: &'static str| {
        let store = store.clone();
        async move {
            store
                .reserve_device_attempt(digest, adult, at(t), &p)
                .await
                .unwrap()
        }
    };
    // Only Mario's own device token counts as his.
    assert_eq!(
        device("phone", laura.id, "2026-12-07 10:00").await,
        DeviceReservation::NotTrusted
    );
    assert_eq!(
        device("guess", mario.id, "2026-12-07 10:00").await,
        DeviceReservation::NotTrusted
    );
    // An attacker locks Mario's count for untrusted clients...
    let key = AttemptKey::adult(mario.id);
    for _ in 0..2 {
        store.reserve_login_attempt(&key, now, &p).await.unwrap();
    }
    assert!(matches!(
        store.reserve_login_attempt(&key, now, &p).await.unwrap(),
        Reservation::Locked { .. }
    ));
    // ... his phone still gets in, by its own count, which locks too.
    assert_eq!(
        device("phone", mario.id, "2026-12-07 10:00").await,
        DeviceReservation::Admitted(admitted(1, None))
    );
    assert_eq!(
        device("phone", mario.id, "2026-12-07 10:00").await,
        DeviceReservation::Admitted(admitted(2, Some("2026-12-07 10:01")))
    );
    assert_eq!(
        device("phone", mario.id, "2026-12-07 10:00:30").await,
        DeviceReservation::Locked {
            until: at("2026-12-07 10:01")
        }
    );
    assert_eq!(
        device("phone", mario.id, "2026-12-07 10:01").await,
        DeviceReservation::Admitted(admitted(3, Some("2026-12-07 10:03")))
    );
    // A login from it replaces the token and leaves the attacker's count
    // as it is.
    succeed(
        &store,
        mario.id,
        "s2",
        "phone-2",
        Some("phone"),
        None,
        "2026-12-07 10:03",
    )
    .await;
    assert_eq!(
        device("phone", mario.id, "2026-12-07 10:03").await,
        DeviceReservation::NotTrusted
    );
    assert_eq!(
        device("phone-2", mario.id, "2026-12-07 10:03").await,
        DeviceReservation::Admitted(admitted(1, None))
    );
    assert!(matches!(
        store
            .reserve_login_attempt(&key, at("2026-12-07 10:00:59"), &p)
            .await
            .unwrap(),
        Reservation::Locked { .. }
    ));
    // Devices expire, and an adult keeps the ten newest.
    assert_eq!(
        device("phone-2", mario.id, "2027-06-06 10:03").await,
        DeviceReservation::NotTrusted
    );
    for n in 0..12 {
        let t = format!("2026-12-07 11:{n:02}");
        let digest = format!("laptop-{n}");
        succeed(&store, mario.id, &format!("s-{n}"), &digest, None, None, &t).await;
    }
    assert_eq!(
        store
            .device_count(mario.id, at("2026-12-07 12:00"))
            .await
            .unwrap(),
        mensa::store::MAX_DEVICES_PER_ADULT
    );
    assert_eq!(
        device("laptop-0", mario.id, "2026-12-07 12:00").await,
        DeviceReservation::NotTrusted
    );
    assert!(matches!(
        device("laptop-11", mario.id, "2026-12-07 12:00").await,
        DeviceReservation::Admitted(_)
    ));
}

async fn concurrent_attempts_on_a_device_are_admitted_no_more_than_the_policy_says(store: Store) {
    import_example(&store).await;
    let adult = mario(&store).await;
    succeed(
        &store,
        adult.id,
        "s1",
        "phone",
        None,
        None,
        "2026-12-07 10:00",
    )
    .await;
    let now = at("2026-12-07 10:00");
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .reserve_device_attempt("phone", adult.id, now, &policy(3))
                .await
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            DeviceReservation::Admitted(_) => admitted += 1,
            DeviceReservation::Locked { .. } => {}
            DeviceReservation::NotTrusted => panic!("the device is Mario's"),
        }
    }
    assert_eq!(admitted, 3);
}

async fn adults_act_for_their_children_and_delegated_ones_only(store: Store) {
    import_example(&store).await;
    let adult = mario(&store).await;
    let laura = mensa::bookings::FiscalCode::parse("BNCLRA85M41C034U").unwrap();
    let (laura, _) = store
        .login_credentials(mensa::store::Login::FiscalCode(&laura))
        .await
        .unwrap()
        .unwrap();
    let relations = |list: Vec<(Child, mensa::store::Relation)>| {
        list.into_iter()
            .map(|(c, r)| (c.user_code.to_string(), r))
            .collect::<Vec<_>>()
    };
    use mensa::store::Relation::{Delegate, Parent};
    assert_eq!(
        relations(store.children_of(adult.id).await.unwrap()),
        [("100234".to_string(), Parent), ("100235".into(), Parent)]
    );
    assert_eq!(
        relations(store.children_of(laura.id).await.unwrap()),
        [("100234".to_string(), Delegate)]
    );
    let giulia = UserCode::parse("100235").unwrap();
    assert!(store.child_of(laura.id, &giulia).await.unwrap().is_none());
    assert!(store.child_of(adult.id, &giulia).await.unwrap().is_some());

    // The API's one query for a session and the route's child agrees.
    let now = at("2026-12-07 10:00");
    let expires = at("2026-12-07 22:00");
    store
        .create_session(laura.id, "laura", now, expires)
        .await
        .unwrap();
    let luca = UserCode::parse("100234").unwrap();
    let (who, found) = store
        .session_child("laura", now, &luca)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(who, laura);
    let (child, relation) = found.unwrap();
    assert_eq!(
        (child.user_code.to_string(), relation),
        ("100234".into(), Delegate)
    );
    assert_eq!(
        child,
        store.child_of(laura.id, &luca).await.unwrap().unwrap().0
    );
    // Another family's child: the adult, no child.
    let (who, found) = store
        .session_child("laura", now, &giulia)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((who, found), (laura, None));
    let nobody = UserCode::parse("999999").unwrap();
    let (_, found) = store
        .session_child("laura", now, &nobody)
        .await
        .unwrap()
        .unwrap();
    assert!(found.is_none());
    // No session: nothing, whatever the child.
    for token_now in [("laura", expires), ("other", now)] {
        let (token, when) = token_now;
        assert!(
            store
                .session_child(token, when, &luca)
                .await
                .unwrap()
                .is_none()
        );
    }
}

async fn issue_notice(store: &Store, amount: i64) -> mensa::store::Payment {
    let adult = mario(store).await;
    let luca = child(store, "100234").await;
    store
        .create_payment_notice(
            &luca,
            adult.id,
            Cents(amount),
            d("2027-01-06"),
            at("2026-12-07 10:00"),
        )
        .await
        .unwrap()
        .unwrap()
}

async fn a_receipt_credits_the_ledger_once(store: Store) {
    import_example(&store).await;
    let first = issue_notice(&store, 2500).await;
    let second = issue_notice(&store, 1000).await;
    assert_eq!(first.notice_number.as_str(), "301000000000000144");
    assert_ne!(first.notice_number, second.notice_number);
    assert_eq!(first.status, mensa::store::PaymentStatus::Pending);
    let luca = child(&store, "100234").await;
    for (i, t) in ["2026-12-08 11:00", "2026-12-08 12:00", "2026-12-09 08:00"]
        .iter()
        .enumerate()
    {
        let receipt = store
            .record_receipt(&first.notice_number, at(t))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(receipt.credited, i == 0);
        assert_eq!(receipt.payment.paid_at, Some(at("2026-12-08 11:00")));
    }
    assert_eq!(
        store.ledger(&luca).await.unwrap().balance_cents,
        Cents(2500)
    );
    let unknown = mensa::bookings::pagopa::NoticeNumber::parse("300000000000000003").unwrap();
    assert!(
        store
            .record_receipt(&unknown, at("2026-12-08 11:00"))
            .await
            .unwrap()
            .is_none()
    );
    let payments = store.payments(luca.id).await.unwrap();
    assert_eq!(payments.len(), 2);
    let paid = store
        .payments_received(luca.id, at("2026-01-01 00:00"), at("2027-01-01 00:00"))
        .await
        .unwrap();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].payer_fiscal_code.as_str(), "RSSMRA80A01C034P");
}

async fn concurrent_receipts_credit_once(store: Store) {
    import_example(&store).await;
    let notice = issue_notice(&store, 2500).await.notice_number;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, notice) = (store.clone(), notice.clone());
            tokio::spawn(async move {
                store
                    .record_receipt(&notice, at("2026-12-08 11:00"))
                    .await
                    .unwrap()
                    .unwrap()
                    .credited
            })
        })
        .collect();
    let mut credited = 0;
    for t in tasks {
        credited += usize::from(t.await.unwrap());
    }
    assert_eq!(credited, 1);
    let luca = child(&store, "100234").await;
    assert_eq!(
        store.ledger(&luca).await.unwrap().balance_cents,
        Cents(2500)
    );
}

async fn operator_closures_survive_reimport_and_only_they_can_be_removed(store: Store) {
    import_example(&store).await;
    let school = mensa::bookings::SchoolId::parse("primaria-dante").unwrap();
    let strike = store
        .add_operator_closure(&school, d("2026-12-10"), d("2026-12-10"), "Sciopero")
        .await
        .unwrap()
        .unwrap();
    let nowhere = mensa::bookings::SchoolId::parse("nowhere").unwrap();
    assert!(
        store
            .add_operator_closure(&nowhere, d("2026-12-10"), d("2026-12-10"), "x")
            .await
            .unwrap()
            .is_none()
    );
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    assert!(matches!(
        status(&store, &luca, "2026-12-10").await,
        DayStatus::NoService(_)
    ));
    let refused = store
        .apply(
            luca.id,
            Operation::Day {
                date: d("2026-12-10"),
                request: DayRequest::Absent,
            },
            &caller(),
            Channel::Phone,
            at("2026-12-09 19:00"),
        )
        .await
        .unwrap();
    assert!(
        matches!(refused, Err(Refusal::NoServiceThatDay { .. })),
        "{refused:?}"
    );
    let calendar = store.school_calendar(&school).await.unwrap();
    let imported = calendar.closures.len() - 1;
    assert_eq!(imported, 4);
    for id in 1..strike.id {
        assert!(
            !store.remove_operator_closure(&school, id).await.unwrap(),
            "imported {id}"
        );
    }
    assert!(
        store
            .remove_operator_closure(&school, strike.id)
            .await
            .unwrap()
    );
    assert_eq!(status(&store, &luca, "2026-12-10").await, DayStatus::Booked);
}

async fn news_is_published_once(store: Store) {
    import_example(&store).await;
    let news = store
        .add_news(d("2026-12-07"), "Sciopero", "Chiuso il 10.")
        .await
        .unwrap();
    assert!(news.is_some());
    assert!(
        store
            .add_news(d("2026-12-07"), "Sciopero", "Again")
            .await
            .unwrap()
            .is_none()
    );
    let all = store.news().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].title, "Sciopero");
}

async fn calls_are_recorded_with_redacted_codes_and_listed_by_day(store: Store) {
    import_example(&store).await;
    use mensa::store::{CallRecord, CodeAttempt};
    let call = CallRecord {
        caller: "+393331234567".into(),
        called: "800082653".into(),
        started_at: at("2026-12-09 23:59"),
        ended_at: None,
        codes: vec![CodeAttempt::redacted("58213", true)],
        operations: serde_json::json!([{"operation": "absent", "result": "done"}]),
    };
    let id = store.record_call(&call).await.unwrap();
    let listed = store
        .calls(at("2026-12-09 00:00"), at("2026-12-10 00:00"))
        .await
        .unwrap();
    assert_eq!(listed, vec![(id, call.clone())]);
    assert_eq!(listed[0].1.codes[0].code, "****3");
    assert!(
        store
            .calls(at("2026-12-10 00:00"), at("2026-12-11 00:00"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Many changes at once (on SQLite they share a group commit): each
/// success is committed, each refusal and error changes nothing and does
/// not undo the others.
async fn changes_queued_together_keep_their_own_outcomes(store: Store) {
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    let giulia = child(&store, "100235").await;
    let store = Arc::new(store);
    let days: Vec<_> = d("2027-01-11")
        .iter_days()
        .take(21)
        .filter(|day| chrono::Datelike::weekday(day).num_days_from_monday() < 5)
        .collect();
    let now = at("2026-12-01 10:00");
    let mut tasks = Vec::new();
    for (i, day) in days.iter().enumerate() {
        let (store, day) = (store.clone(), *day);
        let (id, giulia_id) = (luca.id, giulia.id);
        tasks.push(tokio::spawn(async move {
            let op = |request| Operation::Day { date: day, request };
            let who = caller();
            match i % 3 {
                // A success for Luca.
                0 => store.apply(id, op(DayRequest::Absent), &who, Channel::App, now),
                // A refusal: nothing to undo for Giulia.
                1 => store.apply(giulia_id, op(DayRequest::Booked), &who, Channel::App, now),
                // An error: no such child.
                _ => store.apply(
                    mensa::store::ChildId(999_999),
                    op(DayRequest::Absent),
                    &who,
                    Channel::App,
                    now,
                ),
            }
            .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let outcome = task.await.unwrap();
        match i % 3 {
            0 => assert!(matches!(outcome, Ok(Ok(_))), "{i}: {outcome:?}"),
            1 => assert!(
                matches!(outcome, Ok(Err(Refusal::NothingToUndo { .. }))),
                "{i}: {outcome:?}"
            ),
            _ => assert!(outcome.is_err(), "{i}: {outcome:?}"),
        }
    }
    for (i, day) in days.iter().enumerate() {
        let date = day.to_string();
        let expected = if i % 3 == 0 {
            DayStatus::Absent
        } else {
            DayStatus::Booked
        };
        assert_eq!(status(&store, &luca, &date).await, expected, "{date}");
        assert_eq!(
            status(&store, &giulia, &date).await,
            DayStatus::Booked,
            "{date}"
        );
    }
}

/// The calendar read before a closure is added does not hide the closure
/// afterwards (the store's read cache is cleared by the change).
async fn a_closure_shows_at_once_after_the_calendar_was_read(store: Store) {
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    let school = mensa::bookings::SchoolId::parse("primaria-dante").unwrap();
    assert_eq!(status(&store, &luca, "2026-12-11").await, DayStatus::Booked);
    let before = store.school_calendar(&school).await.unwrap().closures.len();
    let strike = store
        .add_operator_closure(&school, d("2026-12-11"), d("2026-12-11"), "Sciopero")
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        status(&store, &luca, "2026-12-11").await,
        DayStatus::NoService(_)
    ));
    assert_eq!(
        store.school_calendar(&school).await.unwrap().closures.len(),
        before + 1
    );
    assert!(
        store
            .remove_operator_closure(&school, strike.id)
            .await
            .unwrap()
    );
    assert_eq!(status(&store, &luca, "2026-12-11").await, DayStatus::Booked);
}

/// A SQLite store with the example imported, Luca and Giulia, and
/// `inject(luca)`'s statements run on the database (triggers that make
/// Luca's changes fail).
async fn sqlite_with_injected(
    inject: impl Fn(&Child) -> Vec<String>,
) -> (Arc<Store>, tempfile::TempDir, Child, Child) {
    use sqlx::Connection;
    let (store, dir) = common::sqlite().await;
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    let giulia = child(&store, "100235").await;
    let url = format!("sqlite://{}", dir.path().join("mensa.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for sql in inject(&luca) {
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    (Arc::new(store), dir, luca, giulia)
}

/// Absences asked all at once (so that they share group commits) for
/// the weekdays of four weeks from 2027-01-11, Giulia and Luca in turn:
/// who, which day, and what the store answered, in the order asked.
async fn alternating_absences(
    store: &Arc<Store>,
    giulia: &Child,
    luca: &Child,
) -> Vec<(
    Child,
    NaiveDate,
    Result<Result<Applied, Refusal>, StoreError>,
)> {
    let tasks: Vec<_> = d("2027-01-11")
        .iter_days()
        .take(28)
        .filter(|day| chrono::Datelike::weekday(day).num_days_from_monday() < 5)
        .enumerate()
        .map(|(i, date)| {
            let store = store.clone();
            let who = if i % 2 == 0 { giulia } else { luca }.clone();
            tokio::spawn(async move {
                let op = Operation::Day {
                    date,
                    request: DayRequest::Absent,
                };
                let now = at("2026-12-01 10:00");
                let outcome = store.apply(who.id, op, &caller(), Channel::App, now).await;
                (who, date, outcome)
            })
        })
        .collect();
    let mut answered = Vec::new();
    for task in tasks {
        answered.push(task.await.unwrap());
    }
    answered
}

/// SQLite's group commit without savepoints: a change that fails with an
/// error after it wrote part of itself (here its mark is written, then
/// its audit row is refused by a trigger the test adds) leaves nothing,
/// and the changes that shared its transaction still commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_error_after_a_partial_write_undoes_only_that_change() {
    let (store, _dir, luca, giulia) = sqlite_with_injected(|luca| {
        vec![format!(
            "CREATE TRIGGER injected_failure BEFORE INSERT ON audit WHEN NEW.child_id = {} \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            luca.id.0
        )]
    })
    .await;
    for (who, date, outcome) in alternating_absences(&store, &giulia, &luca).await {
        let shown = status(&store, &who, &date.to_string()).await;
        if who.id == giulia.id {
            assert!(matches!(outcome, Ok(Ok(_))), "{date}: {outcome:?}");
            assert_eq!(shown, DayStatus::Absent, "{date}");
        } else {
            assert!(outcome.is_err(), "{date}: {outcome:?}");
            assert_eq!(shown, DayStatus::Booked, "{date}");
        }
    }
}

/// SQLite's group commit when the `COMMIT` itself fails (here a deferred
/// foreign key, checked only at commit, that a trigger the test adds
/// breaks for one child's changes): whatever each caller is told holds.
/// A success is in the calendar, a failure is not, and the child whose
/// changes break the commit has nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_failed_commit_answers_every_caller_truthfully() {
    let (store, _dir, luca, giulia) = sqlite_with_injected(|luca| {
        vec![
            "CREATE TABLE trap_parent (id INTEGER PRIMARY KEY)".to_string(),
            "CREATE TABLE trap (p BIGINT REFERENCES trap_parent(id) \
             DEFERRABLE INITIALLY DEFERRED)"
                .to_string(),
            format!(
                "CREATE TRIGGER injected_commit_failure AFTER INSERT ON audit \
                 WHEN NEW.child_id = {} BEGIN INSERT INTO trap VALUES (42); END",
                luca.id.0
            ),
        ]
    })
    .await;
    let now = at("2026-12-01 10:00");
    for (who, date, outcome) in alternating_absences(&store, &giulia, &luca).await {
        let shown = status(&store, &who, &date.to_string()).await;
        match outcome {
            Ok(Ok(_)) => assert_eq!(shown, DayStatus::Absent, "{date}: told it succeeded"),
            Err(_) => assert_eq!(shown, DayStatus::Booked, "{date}: told it failed"),
            Ok(Err(refusal)) => panic!("{date}: unexpected refusal {refusal:?}"),
        }
        if who.id == luca.id {
            assert_eq!(
                shown,
                DayStatus::Booked,
                "{date}: Luca's changes cannot commit"
            );
        }
    }
    // The writer is left healthy: the next change commits.
    let op = Operation::Day {
        date: d("2027-02-15"),
        request: DayRequest::Absent,
    };
    let outcome = store
        .apply(giulia.id, op, &caller(), Channel::App, now)
        .await;
    assert!(matches!(outcome, Ok(Ok(_))), "{outcome:?}");
    assert_eq!(
        status(&store, &giulia, "2027-02-15").await,
        DayStatus::Absent
    );
}

/// Issue 13: a date whose ISO text would not sort as a date is refused at
/// the store's edge (`UnstorableDate`) by every method that takes one, and
/// a change asking for it is refused by the rules (out of the child's
/// reach) without an error, whatever the date: nothing is written.
async fn dates_the_store_cannot_compare_never_reach_it(store: Store) {
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    let now = at("2026-12-03 19:00");
    let far = [
        NaiveDate::MAX,
        NaiveDate::MIN,
        d("-0001-12-31"),
        d("+10000-01-01"),
    ];
    for date in far.into_iter().chain([d("0000-01-01"), d("9999-12-31")]) {
        let operations = [
            Operation::Day {
                date,
                request: DayRequest::Absent,
            },
            Operation::Suspend {
                from: date,
                until: None,
            },
            Operation::Suspend {
                from: d("2026-12-04"),
                until: Some(date),
            },
            Operation::Reactivate { from: date },
        ];
        for op in operations {
            let outcome = store
                .apply(luca.id, op, &caller(), Channel::Portal, now)
                .await
                .unwrap();
            assert!(
                matches!(outcome, Err(Refusal::OutOfReach { .. })),
                "{op:?}: {outcome:?}"
            );
        }
    }
    for date in far {
        let unstorable = |r: Result<(), StoreError>| {
            assert!(
                matches!(r, Err(StoreError::UnstorableDate(x)) if x == date),
                "{date}: {r:?}"
            );
        };
        unstorable(store.kitchen_report(date).await.map(drop));
        unstorable(store.close_day(date, now).await.map(drop));
        unstorable(store.calendar(&luca, date, date, now).await.map(drop));
        unstorable(store.child_days(luca.id, date, date).await.map(drop));
        unstorable(store.add_news(date, "t", "b").await.map(drop));
        unstorable(
            store
                .add_operator_closure(&luca.school, date, date, "r")
                .await
                .map(drop),
        );
    }
    // Nothing was written: no suspension, no mark, no news, no closure.
    assert_eq!(status(&store, &luca, "2026-12-10").await, DayStatus::Booked);
    let days = store
        .child_days(luca.id, d("2000-01-01"), d("2199-12-31"))
        .await
        .unwrap();
    assert!(days.marks.is_empty() && days.suspensions.is_empty());
    assert!(store.news().await.unwrap().iter().all(|n| n.title != "t"));
    let closures = store.closures(&luca.school).await.unwrap().unwrap();
    assert!(closures.iter().all(|c| c.reason != "r"));
}

/// Issue 13: each closing records the clock it ran under, which `serve`'s
/// guard reads (`runtime::clock::check_clocks`).
async fn closings_remember_the_clock_they_ran_under(store: Store) {
    use mensa::bookings::ClockKind;
    use mensa::store::ClosingClocks;
    import_example(&store).await;
    let real_now = at("2026-12-04 12:00");
    assert_eq!(
        store.closings_by_clock(real_now).await.unwrap(),
        ClosingClocks::default()
    );
    store
        .close_day(d("2026-12-01"), at("2026-12-01 09:30"))
        .await
        .unwrap();
    // A clock set by hand, ahead of the real date, closes the 10th.
    let shifted = store.clone().under_clock(ClockKind::Shifted);
    shifted
        .close_day(d("2026-12-10"), at("2026-12-10 09:30"))
        .await
        .unwrap();
    assert_eq!(
        store.closings_by_clock(real_now).await.unwrap(),
        ClosingClocks {
            last_real: Some(d("2026-12-01")),
            last_shifted_ahead: Some(d("2026-12-10")),
        }
    );
    // Once the real date has passed it, that closing is no longer ahead.
    assert_eq!(
        store
            .closings_by_clock(at("2026-12-11 12:00"))
            .await
            .unwrap()
            .last_shifted_ahead,
        None
    );
}

/// `[privacy]`: call records go after their retention, and who made a
/// change is reduced to its redacted form after theirs, in the audit, the
/// day marks and the suspensions; what was done stays. Twice is once.
async fn retention_deletes_old_calls_and_redacts_who_acted(store: Store) {
    use mensa::store::{CallRecord, CodeAttempt, Retained, Retention};
    import_example(&store).await;
    let luca = child(&store, "100234").await;
    let call = |started: &str| CallRecord {
        caller: "+393331234567".into(),
        called: "800082653".into(),
        started_at: at(started),
        ended_at: None,
        codes: vec![CodeAttempt::redacted("58213", true)],
        operations: serde_json::json!([]),
    };
    store.record_call(&call("2026-12-01 19:00")).await.unwrap();
    store.record_call(&call("2026-12-09 19:00")).await.unwrap();
    // An old change by phone (a mark), an old suspension by a parent, and
    // a recent change by phone.
    let cancel = |date: &str| Operation::Day {
        date: d(date),
        request: DayRequest::Absent,
    };
    store
        .apply(
            luca.id,
            cancel("2026-12-02"),
            &caller(),
            Channel::Phone,
            at("2026-12-01 19:00"),
        )
        .await
        .unwrap()
        .unwrap();
    let parent = Actor::Parent(mensa::bookings::FiscalCode::parse("RSSMRA80A01H501U").unwrap());
    let suspend = Operation::Suspend {
        from: d("2026-12-14"),
        until: Some(d("2026-12-16")),
    };
    store
        .apply(
            luca.id,
            suspend,
            &parent,
            Channel::Portal,
            at("2026-12-01 19:05"),
        )
        .await
        .unwrap()
        .unwrap();
    store
        .apply(
            luca.id,
            cancel("2026-12-10"),
            &caller(),
            Channel::Phone,
            at("2026-12-09 19:00"),
        )
        .await
        .unwrap()
        .unwrap();
    let retention = Retention {
        call_records: chrono::Duration::days(5),
        personal_data: chrono::Duration::days(5),
    };
    let now = at("2026-12-10 08:00");
    let first = store.apply_retention(now, &retention).await.unwrap();
    // One call; the audit rows of the two old changes, the mark and the
    // suspension.
    assert_eq!(
        first,
        Retained {
            calls_deleted: 1,
            actors_redacted: 4
        }
    );
    let calls = store
        .calls(at("2026-12-01 00:00"), at("2026-12-11 00:00"))
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1.started_at, at("2026-12-09 19:00"));
    let mut actors = store.actors_of(luca.id).await.unwrap();
    actors.sort();
    assert_eq!(
        actors,
        [
            "parent:RSS*************",
            "parent:RSS*************",
            "phone:+393331234567",
            "phone:+393331234567",
            "phone:…567",
            "phone:…567",
        ]
    );
    // What was done stays: the day is still absent, by phone.
    assert_eq!(status(&store, &luca, "2026-12-02").await, DayStatus::Absent);
    assert_eq!(
        store.apply_retention(now, &retention).await.unwrap(),
        Retained::default()
    );
}
