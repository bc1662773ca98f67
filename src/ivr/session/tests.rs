//! The call of SPEC §4 on the default dialplan, in simulated time: the
//! tests play the caller, the media (prompt finished) and the action
//! runner (results constructed by hand).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime, TimeZone};

use super::*;
use crate::bookings::{NoService, PhoneNumber};
use crate::ivr::dialplan::PromptCatalogue;
use crate::ivr::record::{CodeOutcome, EndedBy};

fn plan() -> Arc<Dialplan> {
    static PLAN: OnceLock<Arc<Dialplan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let text = include_str!("../../../dialplans/default.toml");
        Arc::new(Dialplan::load(text, &PromptCatalogue::builtin()).unwrap())
    })
    .clone()
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Thursday 10 December 2026: the SPEC's Monday 19:00 example.
const THURSDAY: &str = "weekday_4 num_10 month_12";
const MENU: &str = "menu_day weekday_4 num_10 month_12 menu_options";

fn child() -> ChildRef {
    ChildRef::new(1, CancelCode::parse("58213").unwrap())
}

fn window_open() -> ActionResult {
    ActionResult::Window {
        open: true,
        opens: NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
        cutoff: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
    }
}

fn identified() -> ActionResult {
    ActionResult::Identified {
        child: child(),
        target_day: Some(d("2026-12-10")),
    }
}

/// A call under test: the session, simulated time, and what it did.
struct Call {
    session: Session,
    now: Instant,
    playing: Option<PlaybackId>,
}

/// What one step produced, in a form easy to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Play(Lang, String),
    Stop,
    Run(Action),
    HangUp,
}

impl Call {
    fn new() -> (Call, Vec<Out>) {
        let now = Instant::now();
        let started = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 18, 0, 0).unwrap();
        let session = Session::new(
            plan(),
            &PhoneNumber::new("+393331234567"),
            "800082653",
            started,
            now,
        );
        let mut call = Call {
            session,
            now,
            playing: None,
        };
        let out = call.drain();
        (call, out)
    }

    /// A call answered inside the window, the code asked for.
    fn at_code_prompt() -> Call {
        let (mut call, _) = Call::new();
        call.finish();
        assert_eq!(call.result(window_open()), [play("enter_code")]);
        call
    }

    /// A call at the main menu, the menu played to its end.
    fn at_menu() -> Call {
        let mut call = Call::at_code_prompt();
        call.keys("58213#");
        assert_eq!(call.result(identified()), [play(MENU)]);
        call.finish();
        call
    }

    fn drain(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        while let Some(event) = self.session.poll_event() {
            out.push(match event {
                Event::Play { id, lang, prompts } => {
                    self.playing = Some(id);
                    let text: Vec<&str> = prompts.iter().map(PromptId::as_str).collect();
                    Out::Play(lang, text.join(" "))
                }
                Event::StopPlayback => {
                    self.playing = None;
                    Out::Stop
                }
                Event::RunAction(a) => Out::Run(a),
                Event::HangUp => Out::HangUp,
            });
        }
        out
    }

    fn input(&mut self, input: Input) -> Vec<Out> {
        self.session.handle_input(self.now, input);
        self.drain()
    }

    fn keys(&mut self, keys: &str) -> Vec<Out> {
        let mut out = Vec::new();
        for c in keys.chars() {
            self.now += Duration::from_millis(150);
            out.extend(self.input(Input::Key(Key::from_char(c).unwrap())));
        }
        out
    }

    /// The current playback plays to its end.
    fn finish(&mut self) -> Vec<Out> {
        let id = self.playing.take().expect("nothing is playing");
        self.now += Duration::from_secs(3);
        self.input(Input::PromptFinished(id))
    }

    fn result(&mut self, result: ActionResult) -> Vec<Out> {
        self.now += Duration::from_millis(20);
        self.input(Input::ActionResult(result))
    }

    /// Time passes, the timers fire as the runtime would fire them.
    fn wait(&mut self, seconds: u64) -> Vec<Out> {
        let until = self.now + Duration::from_secs(seconds);
        let mut out = Vec::new();
        while let Some(t) = self.session.poll_timeout() {
            if t > until {
                break;
            }
            self.now = t;
            self.session.handle_timeout(t);
            out.extend(self.drain());
        }
        self.now = until;
        out
    }
}

fn play(text: &str) -> Out {
    Out::Play(Lang::It, text.to_string())
}

fn run(action: Action) -> Out {
    Out::Run(action)
}

fn apply(operation: PhoneOperation) -> Out {
    run(Action::Apply {
        child: child(),
        operation,
    })
}

fn applied(date: &str) -> ActionResult {
    ActionResult::Applied {
        date: d(date),
        until: None,
    }
}

#[test]
fn monday_evening_cancel_for_thursday() {
    let (mut call, out) = Call::new();
    assert_eq!(out, [play("ente_name greeting english_offer")]);
    assert_eq!(call.finish(), [run(Action::CheckWindow)]);
    assert_eq!(call.result(window_open()), [play("enter_code")]);
    assert_eq!(call.finish(), []);
    let code = CancelCode::parse("58213").unwrap();
    assert_eq!(call.keys("58213"), []);
    assert_eq!(call.keys("#"), [run(Action::IdentifyChild { code })]);
    assert_eq!(call.result(identified()), [play(MENU)]);
    assert_eq!(
        call.keys("1"),
        [
            Out::Stop,
            apply(PhoneOperation::Cancel {
                date: d("2026-12-10")
            })
        ]
    );
    assert_eq!(
        call.result(applied("2026-12-10")),
        [play(&format!(
            "cancel_done_pre {THURSDAY} cancel_done_post"
        ))]
    );
    assert_eq!(call.finish(), [play(MENU)]);
    assert_eq!(call.input(Input::CallerHungUp), []);
    assert!(call.session.is_ended());
    let end = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 18, 1, 0).unwrap();
    let record = call.session.finish(end);
    assert_eq!(record.codes.len(), 1);
    assert_eq!(record.codes[0].redacted, "****3");
    assert_eq!(record.codes[0].outcome, CodeOutcome::Known);
    assert_eq!(record.operations.len(), 1);
    assert_eq!(record.operations[0].result, "ok");
    assert_eq!(record.ended_by, Some(EndedBy::Caller("menu".into())));
    assert_eq!(record.ended_at, Some(end));
    assert_eq!(record.called, "800082653");
    // The code is nowhere in clear in what would be stored.
    let stored = serde_json::to_string(&record).unwrap();
    assert!(!stored.contains("58213"), "{stored}");
}

#[test]
fn each_operation_of_the_menu_says_what_was_done() {
    let target = d("2026-12-10");
    for (key, operation, confirmation) in [
        (
            "1",
            PhoneOperation::Cancel { date: target },
            format!("cancel_done_pre {THURSDAY} cancel_done_post"),
        ),
        (
            "2",
            PhoneOperation::PlainMeal { date: target },
            format!("plain_done_pre {THURSDAY} plain_done_post"),
        ),
        (
            "5",
            PhoneOperation::Undo { date: target },
            format!("undo_done_pre {THURSDAY} undo_done_post"),
        ),
    ] {
        let mut call = Call::at_menu();
        assert_eq!(call.keys(key), [apply(operation)], "key {key}");
        assert_eq!(call.result(applied("2026-12-10")), [play(&confirmation)]);
        assert_eq!(call.finish(), [play(MENU)], "key {key}: back to the menu");
    }
}

#[test]
fn suspension_with_and_without_a_return_date() {
    let from = d("2026-12-10");
    for (typed, until, confirmation) in [
        (
            "1412",
            Some(d("2026-12-14")),
            format!("suspend_done_from {THURSDAY} suspend_done_until weekday_1 num_14 month_12"),
        ),
        (
            "0801",
            Some(d("2027-01-08")),
            format!("suspend_done_from {THURSDAY} suspend_done_until weekday_5 num_8 month_1"),
        ),
        (
            "#",
            None,
            format!("suspend_done_from {THURSDAY} suspend_done_open"),
        ),
    ] {
        let mut call = Call::at_menu();
        assert_eq!(call.keys("3"), [play("ask_return_date")]);
        assert_eq!(
            call.keys(typed),
            [Out::Stop, apply(PhoneOperation::Suspend { from, until })],
            "{typed}"
        );
        let result = ActionResult::Applied { date: from, until };
        assert_eq!(call.result(result), [play(&confirmation)], "{typed}");
        assert_eq!(call.finish(), [play(MENU)]);
    }
}

#[test]
fn reactivation_on_a_closure_day_resumes_on_the_next_service_day() {
    let mut call = Call::at_menu();
    assert_eq!(call.keys("4"), [play("ask_reactivation_date")]);
    call.finish();
    // 23 December starts the Christmas holidays: the store answers with
    // the first service day after them.
    assert_eq!(
        call.keys("2312"),
        [apply(PhoneOperation::Reactivate {
            from: d("2026-12-23")
        })]
    );
    assert_eq!(
        call.result(applied("2027-01-07")),
        [play("reactivate_done_from weekday_4 num_7 month_1")]
    );
}

#[test]
fn reactivation_with_hash_is_from_the_target_day() {
    let mut call = Call::at_menu();
    call.keys("4");
    assert_eq!(
        call.keys("#"),
        [
            Out::Stop,
            apply(PhoneOperation::Reactivate {
                from: d("2026-12-10")
            })
        ]
    );
}

#[test]
fn refusals_are_spoken_then_the_menu_again() {
    let date = d("2026-12-10");
    for (key, refusal, said) in [
        ("1", Refusal::AlreadyAbsent { date }, "already_absent"),
        ("1", Refusal::Suspended { date }, "suspended"),
        ("2", Refusal::AlreadyPlainMeal { date }, "already_plain"),
        ("5", Refusal::NothingToUndo { date }, "nothing_to_undo"),
        ("1", Refusal::AfterCutoff { date }, "after_cutoff"),
        (
            "1",
            Refusal::NoServiceThatDay {
                date,
                reason: NoService::NotAServiceWeekday,
            },
            "no_service_that_day",
        ),
        ("4", Refusal::NotSuspended, "not_suspended"),
    ] {
        let mut call = Call::at_menu();
        call.keys(key);
        if key == "4" {
            call.keys("#");
        }
        assert_eq!(call.result(ActionResult::Refused(refusal)), [play(said)]);
        assert_eq!(call.finish(), [play(MENU)], "{said}");
        let record = call.session.record();
        assert_eq!(record.operations.len(), 1);
    }
}

#[test]
fn the_credit_is_spoken_with_its_sign() {
    for (cents, said) in [
        (1250, "credit_is num_12 euro and num_50 cents"),
        (-400, "credit_negative num_4 euro credit_topup"),
    ] {
        let mut call = Call::at_menu();
        assert_eq!(call.keys("6"), [run(Action::Balance { child: child() })]);
        assert_eq!(
            call.result(ActionResult::Balance(Cents(cents))),
            [play(said)]
        );
        assert_eq!(call.finish(), [play(MENU)]);
    }
}

#[test]
fn three_wrong_codes_end_the_call() {
    let mut call = Call::at_code_prompt();
    call.finish();
    for attempt in 1..=3 {
        let out = call.keys("11111#");
        assert!(
            matches!(out[..], [Out::Run(Action::IdentifyChild { .. })]),
            "{out:?}"
        );
        let out = call.result(ActionResult::UnknownCode);
        if attempt < 3 {
            assert_eq!(out, [play("code_unknown")]);
            assert_eq!(call.finish(), [play("enter_code")]);
            call.finish();
        } else {
            assert_eq!(out, [play("code_too_many")]);
            assert_eq!(call.finish(), [Out::HangUp]);
        }
    }
    assert!(call.session.is_ended());
    let record = call.session.record();
    assert_eq!(record.codes.len(), 3);
    assert!(
        record
            .codes
            .iter()
            .all(|c| c.outcome == CodeOutcome::Unknown)
    );
    assert_eq!(record.codes[0].redacted, "****1");
    assert_eq!(
        record.ended_by,
        Some(EndedBy::Dialplan("code_too_many".into()))
    );
}

#[test]
fn a_sequence_too_short_to_be_a_code_counts_as_a_wrong_code() {
    let mut call = Call::at_code_prompt();
    call.finish();
    assert_eq!(call.keys("12#"), [play("code_unknown")]);
    assert_eq!(call.session.record().codes[0].redacted, "invalid(2)");
    // An empty entry is not a code: the question is asked again.
    call.finish();
    call.finish();
    assert_eq!(call.keys("#"), [play("no_input enter_code")]);
}

#[test]
fn a_throttled_caller_is_told_and_hung_up_on() {
    let mut call = Call::at_code_prompt();
    call.keys("58213#");
    assert_eq!(call.result(ActionResult::Throttled), [play("throttled")]);
    assert_eq!(call.finish(), [Out::HangUp]);
    assert_eq!(
        call.session.record().codes[0].outcome,
        CodeOutcome::Throttled
    );
}

#[test]
fn outside_the_window_the_hours_are_said_and_the_call_ends() {
    let (mut call, _) = Call::new();
    call.finish();
    let closed = ActionResult::Window {
        open: false,
        opens: NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
        cutoff: NaiveTime::from_hms_opt(9, 30, 0).unwrap(),
    };
    assert_eq!(
        call.result(closed),
        [play(
            "closed_now closed_hours_from num_18 closed_hours_until num_9 and num_30 closed_hours_end"
        )]
    );
    // Keys do not cut the hours short.
    assert_eq!(call.keys("58213#"), []);
    assert_eq!(call.finish(), [Out::HangUp]);
    assert!(call.session.is_ended());
    assert!(call.session.record().codes.is_empty());
}

#[test]
fn star_during_the_greeting_switches_to_english() {
    let (mut call, _) = Call::new();
    assert_eq!(call.keys("*"), [Out::Stop, run(Action::CheckWindow)]);
    assert_eq!(
        call.result(window_open()),
        [Out::Play(Lang::En, "enter_code".into())]
    );
    call.keys("58213#");
    assert_eq!(
        call.result(identified()),
        [Out::Play(
            Lang::En,
            "menu_day weekday_4 day_10 month_12 menu_options".into()
        )]
    );
    assert_eq!(call.session.record().language, Lang::En);
}

#[test]
fn star_after_the_greeting_changes_nothing() {
    let mut call = Call::at_code_prompt();
    call.finish();
    call.keys("*58*213#");
    assert_eq!(call.session.lang(), Lang::It);
    let out = call.result(identified());
    assert_eq!(out, [play(MENU)]);
}

#[test]
fn the_whole_sequence_typed_during_the_greeting() {
    let (mut call, _) = Call::new();
    let code = CancelCode::parse("58213").unwrap();
    // The first key stops the greeting; the others are kept.
    assert_eq!(call.keys("58213#1"), [Out::Stop, run(Action::CheckWindow)]);
    // No prompt is played: the kept keys answer them.
    assert_eq!(
        call.result(window_open()),
        [run(Action::IdentifyChild { code })]
    );
    assert_eq!(
        call.result(identified()),
        [apply(PhoneOperation::Cancel {
            date: d("2026-12-10")
        })]
    );
    assert_eq!(
        call.result(applied("2026-12-10")),
        [play(&format!(
            "cancel_done_pre {THURSDAY} cancel_done_post"
        ))]
    );
    assert_eq!(call.finish(), [play(MENU)]);
}

#[test]
fn type_ahead_of_a_suspension_with_its_date() {
    let mut call = Call::at_code_prompt();
    call.keys("58213#31412");
    assert_eq!(
        call.result(identified()),
        [apply(PhoneOperation::Suspend {
            from: d("2026-12-10"),
            until: Some(d("2026-12-14"))
        })]
    );
}

#[test]
fn kept_keys_are_dropped_after_a_wrong_code() {
    let (mut call, _) = Call::new();
    call.keys("11111#1");
    call.result(window_open());
    assert_eq!(
        call.result(ActionResult::UnknownCode),
        [play("code_unknown")]
    );
    assert_eq!(call.finish(), [play("enter_code")]);
}

#[test]
fn the_caller_hangs_up_mid_prompt() {
    let mut call = Call::at_menu();
    call.keys("9");
    assert!(call.playing.is_some());
    assert_eq!(call.input(Input::CallerHungUp), []);
    assert!(call.session.is_ended());
    assert_eq!(call.session.poll_timeout(), None);
    assert_eq!(call.keys("1"), []);
    assert_eq!(call.wait(60), []);
    let record = call.session.record();
    assert_eq!(record.ended_by, Some(EndedBy::Caller("menu".into())));
}

#[test]
fn an_operation_in_flight_when_the_caller_hangs_up_is_recorded() {
    let mut call = Call::at_menu();
    call.keys("1");
    call.input(Input::CallerHungUp);
    assert_eq!(call.result(applied("2026-12-10")), []);
    assert_eq!(call.session.record().operations[0].result, "ok");
}

#[test]
fn silence_repeats_the_prompt_then_says_goodbye() {
    let mut call = Call::at_code_prompt();
    call.finish();
    assert_eq!(call.wait(7), []);
    assert_eq!(call.wait(1), [play("no_input enter_code")]);
    call.finish();
    assert_eq!(call.wait(8), [play("no_input enter_code")]);
    call.finish();
    assert_eq!(call.wait(8), [play("no_input_goodbye")]);
    assert_eq!(call.finish(), [Out::HangUp]);
    assert_eq!(
        call.session.record().ended_by,
        Some(EndedBy::Dialplan("silence_goodbye".into()))
    );
}

#[test]
fn silence_at_the_menu() {
    let mut call = Call::at_menu();
    assert_eq!(call.wait(8), [play(&format!("no_input {MENU}"))]);
    call.finish();
    assert_eq!(call.wait(8), [play(&format!("no_input {MENU}"))]);
    call.finish();
    assert_eq!(call.wait(8), [play("no_input_goodbye")]);
}

#[test]
fn a_pause_after_the_last_digit_ends_the_code() {
    let mut call = Call::at_code_prompt();
    call.finish();
    call.keys("58213");
    assert_eq!(call.wait(3), []);
    let code = CancelCode::parse("58213").unwrap();
    assert_eq!(call.wait(1), [run(Action::IdentifyChild { code })]);
}

#[test]
fn impossible_or_early_dates_are_refused_and_asked_again() {
    for (key, typed, said, asked) in [
        ("3", "3102", "date_invalid", "ask_return_date"),
        ("3", "0013", "date_invalid", "ask_return_date"),
        ("3", "12#", "date_invalid", "ask_return_date"),
        ("3", "0912", "date_too_early", "ask_return_date"),
        ("4", "3202", "date_invalid", "ask_reactivation_date"),
        ("4", "0112", "date_too_early", "ask_reactivation_date"),
    ] {
        let mut call = Call::at_menu();
        call.keys(key);
        call.finish();
        assert_eq!(call.keys(typed), [play(said)], "{typed}");
        assert_eq!(call.finish(), [play(asked)], "{typed}");
        assert!(call.session.record().operations.is_empty());
    }
}

#[test]
fn a_return_date_on_the_target_day_is_refused_by_the_rules() {
    let mut call = Call::at_menu();
    call.keys("3");
    call.keys("1012");
    let refusal = Refusal::ReturnNotAfterStart {
        from: d("2026-12-10"),
        until: d("2026-12-10"),
    };
    assert_eq!(
        call.result(ActionResult::Refused(refusal)),
        [play("date_invalid")]
    );
    assert_eq!(call.finish(), [play("ask_return_date")]);
}

#[test]
fn menu_keys_that_mean_nothing_repeat_the_menu() {
    let mut call = Call::at_menu();
    assert_eq!(call.keys("7"), [play(&format!("invalid_key {MENU}"))]);
    call.finish();
    assert_eq!(call.keys("9"), [play(MENU)]);
    call.finish();
    assert_eq!(call.keys("8"), [play("enter_code")]);
}

#[test]
fn a_key_that_means_nothing_stops_the_prompt_then_the_question_waits() {
    let mut call = Call::at_code_prompt();
    assert_eq!(call.keys("*"), [Out::Stop]);
    assert_eq!(call.wait(8), [play("no_input enter_code")]);
    let mut call = Call::at_menu();
    call.keys("9");
    assert_eq!(call.input(Input::KeyDown), [Out::Stop]);
    assert_eq!(call.wait(8), [play(&format!("no_input {MENU}"))]);
}

#[test]
fn a_key_down_stops_the_menu_at_once() {
    let mut call = Call::at_menu();
    call.keys("9");
    assert_eq!(call.input(Input::KeyDown), [Out::Stop]);
    assert_eq!(call.keys("1").len(), 1);
}

#[test]
fn a_late_prompt_finished_of_a_stopped_playback_is_ignored() {
    let mut call = Call::at_menu();
    call.keys("9");
    let stopped = call.playing.unwrap();
    call.keys("3");
    assert_eq!(call.input(Input::PromptFinished(stopped)), []);
    assert_eq!(call.session.state(), "ask_return_date");
}

#[test]
fn no_service_day_ahead_and_failures() {
    let mut call = Call::at_code_prompt();
    call.keys("58213#");
    let none = ActionResult::Identified {
        child: child(),
        target_day: None,
    };
    assert_eq!(call.result(none), [play("no_service_day_ahead goodbye")]);

    let mut call = Call::at_menu();
    call.keys("1");
    assert_eq!(
        call.result(ActionResult::Failed),
        [play("operation_failed")]
    );
    assert_eq!(call.finish(), [play(MENU)]);
    assert_eq!(call.session.record().operations[0].result, "failed");

    let (mut call, _) = Call::new();
    call.finish();
    assert_eq!(
        call.result(ActionResult::Failed),
        [play("operation_failed goodbye")]
    );
}

#[test]
fn the_call_ends_after_its_maximum_duration() {
    let mut call = Call::at_menu();
    for _ in 0..200 {
        call.keys("9");
        call.finish();
    }
    let out = call.wait(600);
    assert_eq!(out.last(), Some(&Out::HangUp));
    assert_eq!(call.session.record().ended_by, Some(EndedBy::MaxDuration));
}

#[test]
fn stray_results_and_inputs_after_the_end_are_ignored() {
    let mut call = Call::at_menu();
    assert_eq!(call.result(ActionResult::UnknownCode), []);
    call.input(Input::CallerHungUp);
    assert_eq!(call.input(Input::CallerHungUp), []);
    assert_eq!(call.input(Input::KeyDown), []);
}

#[test]
fn debug_output_never_shows_typed_digits() {
    let mut call = Call::at_code_prompt();
    call.finish();
    call.keys("5821");
    let shown = format!("{:?}", call.session);
    assert!(!shown.contains("5821"), "{shown}");
    assert!(shown.contains("ask_code"), "{shown}");
}

/// One step of a random call.
#[derive(Debug, Clone)]
enum Step {
    Key(char),
    KeyDown,
    Finish,
    StaleFinish(u64),
    Result(u8),
    Wait(u64),
    HangUp,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => proptest::sample::select("0123456789*#A".chars().collect::<Vec<_>>()).prop_map(Step::Key),
        1 => Just(Step::KeyDown),
        3 => Just(Step::Finish),
        1 => (0u64..20).prop_map(Step::StaleFinish),
        3 => (0u8..12).prop_map(Step::Result),
        2 => (0u64..20).prop_map(Step::Wait),
        1 => Just(Step::HangUp),
    ]
}

fn some_result(n: u8) -> ActionResult {
    let date = d("2026-12-10");
    match n {
        0 => window_open(),
        1 => ActionResult::Window {
            open: false,
            opens: NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
            cutoff: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        },
        2 => identified(),
        3 => ActionResult::UnknownCode,
        4 => ActionResult::Throttled,
        5 => applied("2026-12-10"),
        6 => ActionResult::Applied {
            date,
            until: Some(d("2026-12-14")),
        },
        7 => ActionResult::Refused(Refusal::AlreadyAbsent { date }),
        8 => ActionResult::Refused(Refusal::NotSuspended),
        9 => ActionResult::Balance(Cents(-123)),
        10 => ActionResult::Identified {
            child: child(),
            target_day: None,
        },
        _ => ActionResult::Failed,
    }
}

proptest::proptest! {
    /// Whatever the caller, the media and the runner do, the session never
    /// panics, never asks for a timer in the past of its last input, and a
    /// caller who then goes silent (with every action answered and every
    /// prompt played) is hung up on within the call's maximum duration.
    #[test]
    fn any_call_ends(steps in proptest::collection::vec(step(), 0..60)) {
        let (mut call, _) = Call::new();
        for step in steps {
            match step {
                Step::Key(c) => { call.keys(&c.to_string()); }
                Step::KeyDown => { call.input(Input::KeyDown); }
                Step::Finish => {
                    if call.playing.is_some() {
                        call.finish();
                    }
                }
                Step::StaleFinish(id) => { call.input(Input::PromptFinished(PlaybackId(id))); }
                Step::Result(n) => { call.result(some_result(n)); }
                Step::Wait(s) => { call.wait(s); }
                Step::HangUp => { call.input(Input::CallerHungUp); }
            }
            if let Some(t) = call.session.poll_timeout() {
                proptest::prop_assert!(t + Duration::from_secs(1) >= call.now);
            }
        }
        // Silence from now on: a question is asked at most three times,
        // each within 3 s of prompt and 8 s of waiting, then goodbye.
        let silent_since = call.now;
        for _ in 0..500 {
            if call.session.is_ended() {
                break;
            }
            if call.playing.is_some() {
                call.finish();
            } else if call.session.pending.is_some() {
                call.result(ActionResult::Failed);
            } else {
                call.wait(1);
            }
        }
        proptest::prop_assert!(call.session.is_ended(), "state {}", call.session.state());
        proptest::prop_assert!(
            call.now - silent_since < Duration::from_secs(60),
            "silence lasted {:?}", call.now - silent_since
        );
    }
}
