//! The phone line's action runner against a real SQLite store with the
//! reference data, and whole calls of the default dialplan driven through
//! it (no sockets: the media side is simulated by finishing each prompt).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveTime, Utc};
use common::{at, d, import_example};
use mensa::bookings::guessing::{Backoff, DAY_MS};
use mensa::bookings::{CancelCode, Cents, Clock, DayStatus, PhoneNumber, Refusal, UserCode};
use mensa::ivr::record::CodeOutcome;
use mensa::ivr::{
    Action, ActionResult, ChildRef, Dialplan, Event, Input, PhoneOperation, PromptCatalogue,
    Session,
};
use mensa::runtime::ivr_actions::{CallFrom, GuardConfig, IvrActions};
use mensa::store::Store;

/// A parent calling from a phone the office does not know (the import
/// binds the one it does, +393331234567, to the children's codes).
const CALLER: &str = "+393339990000";
const TRUNK: &str = "127.0.0.0/8";

fn caller() -> CallFrom {
    from(CALLER)
}

fn from(number: &str) -> CallFrom {
    CallFrom::new(PhoneNumber::new(number), TRUNK)
}

/// Four wrong codes free per number, then an hour's wait; the line's
/// budget derived from the codes (the example's two: 25,000 a year).
fn guards() -> GuardConfig {
    GuardConfig {
        caller: Backoff {
            free: 4,
            first_ms: 3_600_000,
            max_ms: 14 * DAY_MS,
            forgive_ms: 14 * DAY_MS,
        },
        ..GuardConfig::default()
    }
}

/// A wall clock set by hand.
struct Hand(Mutex<DateTime<Utc>>);

impl Clock for Hand {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

struct Line {
    store: Store,
    clock: Arc<Hand>,
    actions: IvrActions,
    _dir: tempfile::TempDir,
}

async fn line(local_now: &str) -> Line {
    line_with(local_now, guards()).await
}

async fn line_with(local_now: &str, guards: GuardConfig) -> Line {
    let (store, dir) = common::sqlite().await;
    import_example(&store).await;
    let clock = Arc::new(Hand(Mutex::new(at(local_now))));
    let actions = IvrActions::new(store.clone(), clock.clone(), guards);
    Line {
        store,
        clock,
        actions,
        _dir: dir,
    }
}

impl Line {
    fn set(&self, local: &str) {
        *self.clock.0.lock().unwrap() = at(local);
    }

    async fn luca(&self) -> ChildRef {
        let code = CancelCode::parse("58213").unwrap();
        match self
            .actions
            .run(&caller(), &Action::IdentifyChild { code })
            .await
        {
            ActionResult::Identified { child, .. } => child,
            other => panic!("{other:?}"),
        }
    }

    async fn apply(&self, child: &ChildRef, operation: PhoneOperation) -> ActionResult {
        let action = Action::Apply {
            child: child.clone(),
            operation,
        };
        self.actions.run(&caller(), &action).await
    }

    async fn status(&self, date: &str) -> DayStatus {
        let child = self
            .store
            .child_by_user_code(&UserCode::parse("100234").unwrap())
            .await
            .unwrap()
            .unwrap();
        let day = d(date);
        let days = self
            .store
            .calendar(&child, day, day, at("2026-12-01 10:00"))
            .await
            .unwrap();
        days[0].status.clone()
    }

    /// Places a whole call: the first burst of keys typed during the
    /// greeting, each next one when the session waits for an answer with
    /// its question played; every prompt plays to its end. After the last
    /// burst the caller hangs up at the menu, or stays silent elsewhere.
    /// Returns the prompts heard.
    async fn call(&self, bursts: &[&str]) -> (Vec<String>, Session) {
        let text = include_str!("../dialplans/default.toml");
        let plan = Arc::new(Dialplan::load(text, &PromptCatalogue::builtin()).unwrap());
        let mut now = Instant::now();
        let mut session = Session::new(plan, &caller().caller, "800082653", self.clock.now(), now);
        let mut heard = Vec::new();
        let mut bursts = bursts.iter();
        let mut greeting = true;
        for _ in 0..200 {
            let mut next = Vec::new();
            while let Some(event) = session.poll_event() {
                next.push(event);
            }
            let mut inputs = Vec::new();
            for event in next {
                match event {
                    Event::Play { id, prompts, .. } => {
                        let said: Vec<&str> = prompts.iter().map(|p| p.as_str()).collect();
                        heard.push(said.join(" "));
                        inputs.push(Input::PromptFinished(id));
                    }
                    Event::StopPlayback => {
                        inputs.retain(|i| !matches!(i, Input::PromptFinished(_)));
                    }
                    Event::RunAction(action) => {
                        inputs.push(Input::ActionResult(
                            self.actions.run(&caller(), &action).await,
                        ));
                    }
                    Event::HangUp => return (heard, session),
                }
            }
            let waiting = inputs.is_empty()
                && matches!(session.state(), s if s.starts_with("ask_") || s == "menu");
            if greeting || waiting {
                greeting = false;
                if let Some(burst) = bursts.next() {
                    for c in burst.chars() {
                        let key = mensa::ivr::Key::from_char(c).unwrap();
                        session.handle_input(now, Input::Key(key));
                    }
                    // A key stops what was playing.
                    if !burst.is_empty() {
                        inputs.retain(|i| !matches!(i, Input::PromptFinished(_)));
                    }
                    now = continue_with(&mut session, now, inputs);
                    continue;
                }
                if session.state() == "menu" {
                    session.handle_input(now, Input::CallerHungUp);
                    return (heard, session);
                }
            }
            if inputs.is_empty() {
                now += Duration::from_secs(10);
                session.handle_timeout(now);
            }
            now = continue_with(&mut session, now, inputs);
        }
        panic!("the call did not end: {heard:#?}");
    }
}

fn continue_with(session: &mut Session, mut now: Instant, inputs: Vec<Input>) -> Instant {
    for input in inputs {
        now += Duration::from_millis(500);
        session.handle_input(now, input);
    }
    now
}

#[tokio::test]
async fn the_window_and_its_hours() {
    let line = line("2026-12-07 19:00").await;
    let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
    let eighteen = NaiveTime::from_hms_opt(18, 0, 0).unwrap();
    for (local, open) in [
        ("2026-12-07 19:00", true),
        ("2026-12-07 17:59", false),
        ("2026-12-07 18:00", true),
        ("2026-12-08 08:59", true),
        ("2026-12-08 09:00", false),
    ] {
        line.set(local);
        assert_eq!(
            line.actions.run(&caller(), &Action::CheckWindow).await,
            ActionResult::Window {
                open,
                opens: eighteen,
                cutoff: nine
            },
            "{local}"
        );
    }
}

#[tokio::test]
async fn monday_evening_identifies_thursday_and_cancels_it_durably() {
    let line = line("2026-12-07 19:00").await;
    let code = CancelCode::parse("58213").unwrap();
    let found = line
        .actions
        .run(&caller(), &Action::IdentifyChild { code })
        .await;
    let ActionResult::Identified { child, target_day } = found else {
        panic!("{found:?}");
    };
    assert_eq!(target_day, Some(d("2026-12-10")));
    let date = d("2026-12-10");
    assert_eq!(
        line.apply(&child, PhoneOperation::Cancel { date }).await,
        ActionResult::Applied { date, until: None }
    );
    assert_eq!(line.status("2026-12-10").await, DayStatus::Absent);
    assert_eq!(
        line.apply(&child, PhoneOperation::Cancel { date }).await,
        ActionResult::Refused(Refusal::AlreadyAbsent { date })
    );
    assert_eq!(
        line.apply(&child, PhoneOperation::Undo { date }).await,
        ActionResult::Applied { date, until: None }
    );
    assert_eq!(line.status("2026-12-10").await, DayStatus::Booked);
    assert_eq!(
        line.apply(&child, PhoneOperation::PlainMeal { date }).await,
        ActionResult::Applied { date, until: None }
    );
    assert_eq!(line.status("2026-12-10").await, DayStatus::PlainMeal);
}

#[tokio::test]
async fn suspension_and_reactivation_on_a_closure_day() {
    let line = line("2026-12-07 19:00").await;
    let child = line.luca().await;
    let from = d("2026-12-10");
    assert_eq!(
        line.apply(&child, PhoneOperation::Suspend { from, until: None })
            .await,
        ActionResult::Applied {
            date: from,
            until: None
        }
    );
    assert_eq!(line.status("2026-12-15").await, DayStatus::Suspended);
    assert_eq!(
        line.apply(&child, PhoneOperation::Cancel { date: from })
            .await,
        ActionResult::Refused(Refusal::Suspended { date: from })
    );
    // 23 December: the Christmas holidays begin; meals again on 7 January.
    assert_eq!(
        line.apply(
            &child,
            PhoneOperation::Reactivate {
                from: d("2026-12-23")
            }
        )
        .await,
        ActionResult::Applied {
            date: d("2027-01-07"),
            until: None
        }
    );
    assert_eq!(line.status("2026-12-22").await, DayStatus::Suspended);
    assert_eq!(line.status("2027-01-07").await, DayStatus::Booked);
}

#[tokio::test]
async fn suspension_with_a_return_date() {
    let line = line("2026-12-07 19:00").await;
    let child = line.luca().await;
    let (from, until) = (d("2026-12-10"), Some(d("2026-12-14")));
    assert_eq!(
        line.apply(&child, PhoneOperation::Suspend { from, until })
            .await,
        ActionResult::Applied { date: from, until }
    );
    assert_eq!(line.status("2026-12-11").await, DayStatus::Suspended);
    assert_eq!(line.status("2026-12-14").await, DayStatus::Booked);
}

#[tokio::test]
async fn the_credit() {
    let line = line("2026-12-07 19:00").await;
    let child = line.luca().await;
    assert_eq!(
        line.actions
            .run(&caller(), &Action::Balance { child })
            .await,
        ActionResult::Balance(Cents(0))
    );
}

#[tokio::test]
async fn wrong_codes_back_the_caller_number_off_for_an_hour() {
    let line = line("2026-12-07 19:00").await;
    let wrong = Action::IdentifyChild {
        code: CancelCode::parse("99999").unwrap(),
    };
    let right = Action::IdentifyChild {
        code: CancelCode::parse("58213").unwrap(),
    };
    for _ in 0..4 {
        assert_eq!(
            line.actions.run(&caller(), &wrong).await,
            ActionResult::UnknownCode
        );
    }
    assert_eq!(
        line.actions.run(&caller(), &right).await,
        ActionResult::Throttled
    );
    assert!(matches!(
        line.actions.run(&from("+390612345678"), &right).await,
        ActionResult::Identified { .. }
    ));
    line.set("2026-12-07 20:01");
    assert!(matches!(
        line.actions.run(&caller(), &right).await,
        ActionResult::Identified { .. }
    ));
}

#[tokio::test]
async fn a_whole_call_typed_in_one_burst_cancels_thursday() {
    let line = line("2026-12-07 19:00").await;
    let (heard, session) = line.call(&["58213#1"]).await;
    assert_eq!(
        heard,
        [
            "ente_name greeting english_offer",
            "cancel_done_pre weekday_4 num_10 month_12 cancel_done_post",
            "menu_day weekday_4 num_10 month_12 menu_options",
        ]
    );
    assert_eq!(line.status("2026-12-10").await, DayStatus::Absent);
    let record = session.finish(line.clock.now());
    assert_eq!(record.codes[0].outcome, CodeOutcome::Known);
    assert_eq!(record.operations[0].result, "ok");
}

#[tokio::test]
async fn a_call_outside_the_window_changes_nothing() {
    let line = line("2026-12-07 12:00").await;
    let (heard, _) = line.call(&["58213#1"]).await;
    assert_eq!(
        heard,
        [
            "ente_name greeting english_offer",
            "closed_now closed_hours_from num_18 closed_hours_until num_9 closed_hours_end",
        ]
    );
    assert_eq!(line.status("2026-12-10").await, DayStatus::Booked);
}

#[tokio::test]
async fn a_call_suspending_until_a_date_then_a_second_one_reactivating() {
    let line = line("2026-12-07 19:00").await;
    let (heard, _) = line.call(&["58213#31412"]).await;
    assert_eq!(
        heard[1],
        "suspend_done_from weekday_4 num_10 month_12 suspend_done_until weekday_1 num_14 month_12"
    );
    assert_eq!(line.status("2026-12-11").await, DayStatus::Suspended);
    // In English, a cancellation on a suspended day: "press 4 to reactivate".
    let (heard, session) = line.call(&["*58213#1"]).await;
    assert_eq!(
        heard[1..],
        [
            "suspended",
            "menu_day weekday_4 day_10 month_12 menu_options"
        ]
    );
    assert_eq!(session.lang(), mensa::ivr::Lang::En);
    assert_eq!(session.record().operations[0].result, "suspended");
    // 4 then # reactivates from the target day: the suspension never starts.
    let (heard, _) = line.call(&["58213#4#"]).await;
    assert_eq!(heard[1], "reactivate_done_from weekday_4 num_10 month_12");
    assert_eq!(line.status("2026-12-11").await, DayStatus::Booked);
}

#[tokio::test]
async fn three_wrong_codes_end_the_call_and_then_the_number_is_throttled() {
    let line = line("2026-12-07 19:00").await;
    let (heard, session) = line.call(&["11111#", "22222#", "33333#"]).await;
    assert_eq!(
        heard,
        [
            "ente_name greeting english_offer",
            "code_unknown",
            "enter_code",
            "code_unknown",
            "enter_code",
            "code_too_many",
        ]
    );
    assert_eq!(session.record().codes.len(), 3);
    // The number's back-off lets 4 through: one more wrong code, then
    // refused for an hour.
    let (heard, _) = line.call(&["44444#"]).await;
    assert_eq!(heard[1], "code_unknown");
    let (heard, session) = line.call(&["58213#1"]).await;
    assert_eq!(heard[1..], ["throttled"]);
    assert_eq!(session.record().codes[0].outcome, CodeOutcome::Throttled);
    assert_eq!(line.status("2026-12-10").await, DayStatus::Booked);
}

#[tokio::test]
async fn cancel_then_undo_then_credit_in_one_call_in_english() {
    let line = line("2026-12-07 19:00").await;
    let (heard, session) = line.call(&["*", "58213#", "1", "1", "5", "6"]).await;
    let menu = "menu_day weekday_4 day_10 month_12 menu_options";
    assert_eq!(
        heard,
        [
            "ente_name greeting english_offer",
            "enter_code",
            menu,
            "cancel_done_pre weekday_4 day_10 month_12 cancel_done_post",
            menu,
            "already_absent",
            menu,
            "undo_done_pre weekday_4 day_10 month_12 undo_done_post",
            menu,
            "credit_is num_0 euros",
            menu,
        ]
    );
    assert_eq!(line.status("2026-12-10").await, DayStatus::Booked);
    let results: Vec<&str> = session
        .record()
        .operations
        .iter()
        .map(|o| o.result.as_str())
        .collect();
    assert_eq!(results, ["ok", "already_absent", "ok"]);
}

#[tokio::test]
async fn a_wrong_code_then_silence() {
    let line = line("2026-12-07 19:00").await;
    let (heard, session) = line.call(&["11111#"]).await;
    // The wrong code is said so; the caller types nothing more: the code
    // prompt repeats, then goodbye.
    assert_eq!(heard[1], "code_unknown");
    assert_eq!(heard.last().unwrap(), "no_input_goodbye");
    assert_eq!(session.record().codes.len(), 1);
}

/// The line's budget spent: no code is looked up any more, the answer is
/// the same for a right and a wrong code, the alert is up; a parent
/// calling from the number they used keeps their child's code.
#[tokio::test]
async fn a_spent_line_is_guarded_but_a_number_keeps_the_codes_it_used() {
    let guards = GuardConfig {
        line_per_year: Some(1),
        line_burst: Some(2),
        trunk_percent: 100,
        ..guards()
    };
    let line = line_with("2026-12-07 19:00", guards).await;
    let metrics = Arc::new(mensa::api::Metrics::default());
    let actions = IvrActions::new(line.store.clone(), line.clock.clone(), guards)
        .with_metrics(metrics.clone());
    let identify = |c: &str| Action::IdentifyChild {
        code: CancelCode::parse(c).unwrap(),
    };
    // The parent's first call: 58213 is now bound to their number.
    assert!(matches!(
        actions.run(&caller(), &identify("58213")).await,
        ActionResult::Identified { .. }
    ));
    for n in ["+393330000001", "+393330000002"] {
        assert_eq!(
            actions.run(&from(n), &identify("11111")).await,
            ActionResult::UnknownCode
        );
    }
    assert!(actions.check_line(false).await.unwrap(), "guarded");
    for code in ["11112", "77120"] {
        assert_eq!(
            actions.run(&from("+393330000003"), &identify(code)).await,
            ActionResult::Throttled,
            "{code}"
        );
    }
    assert!(matches!(
        actions.run(&caller(), &identify("58213")).await,
        ActionResult::Identified { .. }
    ));
    // The number the office registered for the family: taken at its first
    // call, written as the trunk writes it.
    assert!(matches!(
        actions
            .run(&from("0039 333 1234567"), &identify("77120"))
            .await,
        ActionResult::Identified { .. }
    ));
    let shown = metrics.render();
    for expected in [
        "mensa_code_guessing_alert 1",
        "mensa_code_lookups_total 5",
        "mensa_code_wrong_total 2",
        "mensa_code_refused_total{reason=\"guarded\"} 2",
        "mensa_code_refused_total{reason=\"caller_backoff\"} 0",
        "mensa_code_budget_per_year 1",
    ] {
        assert!(shown.contains(expected), "{expected} in\n{shown}");
    }
    // A year on, the line has room again and the alert clears.
    line.set("2027-12-08 19:00");
    assert!(!actions.check_line(true).await.unwrap());
    assert!(metrics.render().contains("mensa_code_guessing_alert 0"));
}

/// A clock gone wild (chrono's first and last instants): codes are still
/// counted and looked up, nothing overflows or panics.
#[tokio::test]
async fn codes_at_the_ends_of_time() {
    for end in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
        let line = line("2026-12-07 19:00").await;
        *line.clock.0.lock().unwrap() = end;
        let identify = |c: &str| Action::IdentifyChild {
            code: CancelCode::parse(c).unwrap(),
        };
        assert_eq!(
            line.actions.run(&caller(), &identify("11111")).await,
            ActionResult::UnknownCode,
            "{end}"
        );
        assert!(
            matches!(
                line.actions.run(&caller(), &identify("58213")).await,
                ActionResult::Identified { .. }
            ),
            "{end}"
        );
        assert!(!line.actions.check_line(true).await.unwrap());
    }
}

/// What a caller hears never tells a code that exists from one that does
/// not: a sequence too short to be a code and an unknown code get the same
/// prompt; on a spent line a right code and a wrong one get the same
/// answer, before any lookup.
#[tokio::test]
async fn no_answer_tells_a_code_that_exists_from_one_that_does_not() {
    let line = line("2026-12-07 19:00").await;
    let (heard, _) = line.call(&["123#", "11111#", "22222#"]).await;
    assert_eq!(
        heard[1..],
        [
            "code_unknown",
            "enter_code",
            "code_unknown",
            "enter_code",
            "code_too_many"
        ]
    );
    let guards = GuardConfig {
        line_per_year: Some(1),
        line_burst: Some(1),
        trunk_percent: 100,
        ..guards()
    };
    let spent = line_with("2026-12-07 19:00", guards).await;
    let (first, _) = spent.call(&["11111#"]).await;
    assert_eq!(first[1], "code_unknown", "the line's one wrong code");
    let (right, record) = spent.call(&["58213#1"]).await;
    let (wrong, _) = spent.call(&["11112#"]).await;
    assert_eq!(right, wrong);
    assert_eq!(right[1..], ["throttled"]);
    assert_eq!(record.record().codes[0].outcome, CodeOutcome::Throttled);
    assert_eq!(spent.status("2026-12-10").await, DayStatus::Booked);
}
