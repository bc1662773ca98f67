//! The call session: one sans-IO state machine per call, running a
//! [`Dialplan`] (SPEC §4).
//!
//! ```text
//!  keys, prompt finished,        ┌─────────┐   Play / StopPlayback (media)
//!  action results, caller BYE ──►│ Session │──► RunAction (store, via runtime)
//!  handle_timeout(now) ─────────►└─────────┘   HangUp (SIP BYE)
//! ```
//!
//! Contract: after [`Session::new`] and after every `handle_*`, drain
//! [`Session::poll_event`] until `None`, then arm a timer for
//! [`Session::poll_timeout`]. Time never goes backwards; an early
//! `handle_timeout` is harmless. The session never awaits: an
//! [`Action`] is run by the caller and its [`ActionResult`] fed back with
//! [`Input::ActionResult`]; keys arriving meanwhile are kept.
//!
//! Keys: a key typed during a prompt of a `collect` or `menu` stops the
//! prompt (barge-in) and counts. Keys typed while nothing asks for them
//! (during the greeting, a confirmation, an action) are kept in order and
//! consumed by the next `collect` or `menu` (type-ahead), so "58213#1"
//! typed during the greeting cancels the target day's meal. A prompt is
//! not played when typed-ahead keys already answer it. After a wrong key,
//! a wrong code or a bad date the kept keys are dropped: they were typed
//! for a question that is no longer asked.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use super::actions::{Action, ActionResult, ChildRef, Key, PhoneOperation};
use super::dialplan::{ActionState, Dialplan, Item, State};
use super::record::{CallRecord, EndedBy};
use super::speech::{Lang, PromptId};
use crate::bookings::{CancelCode, Cents, PhoneNumber, Refusal};

mod keys;
mod results;

/// Identifies one `Play`, so that a late `PromptFinished` of a stopped
/// playback is told apart from the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlaybackId(pub u64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A key pressed, once (media has merged RFC 4733, in-band and INFO).
    Key(Key),
    /// A key's tone has begun (RFC 4733 start of event): stops a prompt of
    /// a `collect` or `menu` at once; the key itself counts on [`Input::Key`].
    KeyDown,
    /// The playback finished playing to its end.
    PromptFinished(PlaybackId),
    /// The result of the last [`Event::RunAction`].
    ActionResult(ActionResult),
    /// The caller hung up (BYE or CANCEL).
    CallerHungUp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Play these prompts back to back as one stream, in `lang`'s folder;
    /// report [`Input::PromptFinished`] with `id` at its end.
    Play {
        id: PlaybackId,
        lang: Lang,
        prompts: Vec<PromptId>,
    },
    /// Stop the current playback now (no `PromptFinished` is expected).
    StopPlayback,
    /// Run this action and feed back its result.
    RunAction(Action),
    /// End the call (send BYE). Nothing follows.
    HangUp,
}

/// A bound on state changes per input, against a dialplan looping
/// through states that never wait.
const MAX_STEPS_PER_INPUT: u32 = 64;
/// Result keys after which typed-ahead keys still make sense.
const SUCCESS_KEYS: [&str; 5] = ["open", "ok", "ok_until", "ok_open", "negative"];
/// Keys kept for type-ahead; more are dropped.
const MAX_TYPE_AHEAD: usize = 32;

pub struct Session {
    plan: Arc<Dialplan>,
    lang: Lang,
    state: String,
    /// Incremented at every state entry: tells a loop it has left its state.
    entered: u64,
    type_ahead: VecDeque<Key>,
    /// Digits of the `collect` in progress.
    digits: String,
    /// Silences and wrong keys in the current state.
    tries: u32,
    playing: Option<PlaybackId>,
    next_playback: u64,
    /// The action emitted and not yet answered.
    pending: Option<ActionState>,
    timer: Option<Instant>,
    deadline: Instant,
    steps: u32,
    vars: Vars,
    wrong_codes: u32,
    events: VecDeque<Event>,
    record: CallRecord,
    ended: bool,
}

/// What the call has learnt so far: the slots' values and the typed data.
#[derive(Default)]
struct Vars {
    code_digits: Option<String>,
    date_digits: Option<String>,
    child: Option<ChildRef>,
    target_day: Option<NaiveDate>,
    date: Option<NaiveDate>,
    until: Option<NaiveDate>,
    amount: Option<Cents>,
    opens: Option<NaiveTime>,
    cutoff: Option<NaiveTime>,
    refusal: Option<Refusal>,
    /// The operation in flight, for the call record.
    operation: Option<PhoneOperation>,
    /// The code in flight, redacted, for the call record.
    code_redacted: Option<String>,
}

impl Session {
    /// A new call from `caller` to `called`, answered at `started_at` (wall
    /// clock, for the record) and `now`. Queues the first events.
    pub fn new(
        plan: Arc<Dialplan>,
        caller: &PhoneNumber,
        called: &str,
        started_at: DateTime<Utc>,
        now: Instant,
    ) -> Session {
        let start = plan.start().to_string();
        let mut session = Session {
            deadline: now + plan.limits().max_call,
            plan,
            lang: Lang::It,
            state: start.clone(),
            entered: 0,
            type_ahead: VecDeque::new(),
            digits: String::new(),
            tries: 0,
            playing: None,
            next_playback: 0,
            pending: None,
            timer: None,
            steps: 0,
            vars: Vars::default(),
            wrong_codes: 0,
            events: VecDeque::new(),
            record: CallRecord::new(caller, called, started_at),
            ended: false,
        };
        session.enter(now, start);
        session
    }

    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.steps = 0;
        match input {
            Input::Key(key) => self.on_key(now, key),
            Input::KeyDown => {
                if self.asks_for_keys() && self.playing.is_some() {
                    self.stop_playback();
                    // Should the key itself never come, the question waits
                    // for an answer as if it had been said.
                    self.wait_for_input(now);
                }
            }
            Input::PromptFinished(id) => self.on_prompt_finished(now, id),
            Input::ActionResult(result) => self.on_action_result(now, result),
            Input::CallerHungUp => {
                if !self.ended {
                    self.end(EndedBy::Caller(self.state.clone()));
                }
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.steps = 0;
        if self.ended {
            return;
        }
        if now >= self.deadline {
            if self.playing.is_some() {
                self.stop_playback();
            }
            self.hang_up(EndedBy::MaxDuration);
            return;
        }
        if self.timer.is_some_and(|t| now >= t) {
            self.timer = None;
            let plan = Arc::clone(&self.plan);
            match plan.state(&self.state) {
                Some(State::Collect(_)) if !self.digits.is_empty() => self.finish_collect(now),
                Some(State::Collect(_) | State::Menu(_)) => self.retry(now, Retry::NoInput),
                Some(State::Play(_) | State::Action(_) | State::HangUp(_)) | None => {}
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next instant [`Session::handle_timeout`] must be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        Some(self.timer.map_or(self.deadline, |t| t.min(self.deadline)))
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The current state's name.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The call record so far.
    pub fn record(&self) -> &CallRecord {
        &self.record
    }

    /// The call record, stamped with the end of the call.
    pub fn finish(&self, ended_at: DateTime<Utc>) -> CallRecord {
        let mut record = self.record.clone();
        record.ended_at = Some(ended_at);
        if record.ended_by.is_none() {
            record.ended_by = Some(EndedBy::Caller(self.state.clone()));
        }
        record
    }

    fn on_prompt_finished(&mut self, now: Instant, id: PlaybackId) {
        if self.ended || self.playing != Some(id) {
            return;
        }
        self.playing = None;
        let plan = Arc::clone(&self.plan);
        match plan.state(&self.state) {
            Some(State::Play(play)) => self.enter(now, play.next.clone()),
            Some(State::HangUp(_)) => self.hang_up(EndedBy::Dialplan(self.state.clone())),
            Some(State::Collect(c)) => {
                let wait = if self.digits.is_empty() {
                    c.first_digit_timeout
                } else {
                    c.inter_digit_timeout
                };
                self.timer = Some(now + wait);
            }
            Some(State::Menu(m)) => self.timer = Some(now + m.timeout),
            Some(State::Action(_)) | None => {}
        }
    }

    fn on_action_result(&mut self, now: Instant, result: ActionResult) {
        let Some(action) = self.pending.take() else {
            tracing::debug!("action result with no action pending: dropped");
            return;
        };
        let key = self.result_key(action.action, result);
        if self.ended {
            // The caller hung up meanwhile: the result is in the record.
            return;
        }
        self.follow(now, &action, &key);
    }

    /// Moves to the target of `key` (or of `refused` for a refusal kind).
    fn follow(&mut self, now: Instant, action: &ActionState, key: &str) {
        // Keys typed ahead were meant for a call that went well.
        if !SUCCESS_KEYS.contains(&key) {
            self.type_ahead.clear();
        }
        let target = action.results.get(key).or_else(|| {
            self.vars
                .refusal
                .as_ref()
                .filter(|r| super::actions::refusal_key(r) == key)
                .and_then(|_| action.results.get("refused"))
        });
        match target {
            Some(target) => self.enter(now, target.clone()),
            None => self.fail(format!(
                "action `{}` gave `{key}`, which has no target",
                action.action.name()
            )),
        }
    }

    fn enter(&mut self, now: Instant, name: String) {
        self.steps += 1;
        if self.steps > MAX_STEPS_PER_INPUT {
            self.fail(format!(
                "more than {MAX_STEPS_PER_INPUT} states without waiting"
            ));
            return;
        }
        let plan = Arc::clone(&self.plan);
        let Some(state) = plan.state(&name) else {
            self.fail(format!("unknown state `{name}`"));
            return;
        };
        self.state = name;
        self.entered += 1;
        self.tries = 0;
        self.digits.clear();
        self.timer = None;
        match state {
            State::Play(play) => {
                if !self.play(&play.prompts, &[]) {
                    self.enter(now, play.next.clone());
                }
            }
            State::HangUp(hang_up) => {
                if !self.play(&hang_up.prompts, &[]) {
                    self.hang_up(EndedBy::Dialplan(self.state.clone()));
                }
            }
            State::Collect(_) | State::Menu(_) => {
                if self.drain_type_ahead(now) {
                    self.prompt(now, &[]);
                }
            }
            State::Action(action) => self.run_action(now, action),
        }
    }

    fn play(&mut self, first: &[Item], then: &[Item]) -> bool {
        let prompts = self.render(first.iter().chain(then));
        if prompts.is_empty() {
            return false;
        }
        self.next_playback += 1;
        let id = PlaybackId(self.next_playback);
        self.playing = Some(id);
        self.events.push_back(Event::Play {
            id,
            lang: self.lang,
            prompts,
        });
        true
    }

    fn stop_playback(&mut self) {
        self.playing = None;
        self.events.push_back(Event::StopPlayback);
    }

    fn hang_up(&mut self, by: EndedBy) {
        self.events.push_back(Event::HangUp);
        self.end(by);
    }

    fn end(&mut self, by: EndedBy) {
        self.ended = true;
        self.timer = None;
        self.playing = None;
        self.type_ahead.clear();
        self.record.ended_by = Some(by);
    }

    fn fail(&mut self, why: String) {
        tracing::error!(state = %self.state, "dialplan error: {why}; hanging up");
        if self.playing.is_some() {
            self.stop_playback();
        }
        self.hang_up(EndedBy::Error(why));
    }
}

/// Never shows typed digits (they may be a code).
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state)
            .field("lang", &self.lang)
            .field("playing", &self.playing)
            .field("pending", &self.pending.as_ref().map(|a| a.action))
            .field("type_ahead", &self.type_ahead.len())
            .field("ended", &self.ended)
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
enum Retry {
    NoInput,
    Invalid,
}

/// The redacted form of typed digits that are not a code at all.
fn redact_invalid(digits: &str) -> String {
    CancelCode::parse(digits).map_or_else(
        |_| format!("invalid({})", digits.len()),
        |c| c.redacted().to_string(),
    )
}

#[cfg(test)]
mod tests;
