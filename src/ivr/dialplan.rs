//! Dialplans: the voice menus of a number, as data (`dialplans/*.toml`).
//!
//! A dialplan is a set of named states and a start state. Each state is
//! one of five kinds (docs/call-flow.md has the full format):
//!
//! | kind | does | leaves by |
//! |---|---|---|
//! | `play` | plays prompts | `next` when they end (or at a key, with `barge_in`) |
//! | `collect` | plays prompts, collects digits into `code` or `date` | `next` on input, `on_no_input` after `tries` silences |
//! | `menu` | plays prompts, waits for one key | `keys`, `on_no_input` after `tries` silences or wrong keys |
//! | `action` | runs a named action (check_window, identify_child, cancel, ...) | `results`: one target per result |
//! | `hangup` | plays prompts, then hangs up | (ends the call) |
//!
//! Prompts are catalogue ids (`prompts/<lang>/catalogue.toml`) or slots
//! spoken from the call's data: `{target_day}`, `{date}`, `{until}`,
//! `{amount}`, `{opens}`, `{cutoff}`, `{refusal}`.
//!
//! A dialplan is parsed once ([`Dialplan::parse`]), checked
//! ([`Dialplan::validate`]) and then shared read-only by every call
//! (`Arc<Dialplan>`).

mod flow;
mod parse;
mod source;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::actions::{Key, REFUSAL_KEYS};
use super::speech::{Lang, PromptId};

pub use validate::PromptCatalogue;

/// A parsed dialplan. Immutable; share it with `Arc`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialplan {
    start: String,
    limits: Limits,
    states: BTreeMap<String, State>,
    /// Where states and their keys are in the text, for messages.
    lines: source::SourceLines,
}

/// Call-wide limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wrong codes in one call before `identify_child` answers `too_many_codes`.
    pub max_wrong_codes: u32,
    /// The call is hung up after this long whatever happens.
    pub max_call: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Play(Play),
    Collect(Collect),
    Menu(Menu),
    Action(ActionState),
    HangUp(HangUp),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Play {
    pub prompts: Vec<Item>,
    pub next: String,
    /// A key stops the prompts and moves on (the key is kept for the next
    /// collection). Without it, keys are kept but the prompts play on.
    pub barge_in: bool,
    /// Keys that switch the language of the call while this state plays
    /// (the greeting's `*`). The key is consumed and the state moves on.
    pub language_keys: BTreeMap<Key, Lang>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Collect {
    pub prompts: Vec<Item>,
    pub into: Variable,
    pub max_digits: usize,
    pub terminator: Option<Key>,
    /// The terminator alone is an answer (an empty date: "open", "target day").
    pub allow_empty: bool,
    pub first_digit_timeout: Duration,
    pub inter_digit_timeout: Duration,
    /// Silences (or empty answers) before `on_no_input`.
    pub tries: u32,
    /// Said before the prompts are repeated after a silence.
    pub no_input: Vec<Item>,
    pub next: String,
    pub on_no_input: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    pub prompts: Vec<Item>,
    pub keys: BTreeMap<Key, String>,
    pub timeout: Duration,
    /// Silences or wrong keys before `on_no_input`.
    pub tries: u32,
    pub no_input: Vec<Item>,
    /// Said before the prompts are repeated after a key not in `keys`.
    pub invalid: Vec<Item>,
    pub on_no_input: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ActionState {
    pub action: ActionName,
    /// Result key → target state.
    pub results: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HangUp {
    pub prompts: Vec<Item>,
}

/// One thing to say: a catalogue prompt, or a slot filled from the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Prompt(PromptId),
    Slot(Slot),
}

/// Values spoken from the call's data, with `speech`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The child's target day (R6), from `identify_child`.
    TargetDay,
    /// The day the last operation affected.
    Date,
    /// The first day back of the last suspension.
    Until,
    /// The credit from `say_balance` (without its sign when negative).
    Amount,
    /// The phone window's opening time (R5), from `check_window`.
    Opens,
    /// The cutoff time (R3), from `check_window`.
    Cutoff,
    /// The sentence for the last refusal (`speech::refusal_prompt`).
    Refusal,
}

impl Slot {
    pub const ALL: [(&'static str, Slot); 7] = [
        ("target_day", Slot::TargetDay),
        ("date", Slot::Date),
        ("until", Slot::Until),
        ("amount", Slot::Amount),
        ("opens", Slot::Opens),
        ("cutoff", Slot::Cutoff),
        ("refusal", Slot::Refusal),
    ];
}

/// Where a `collect` state puts its digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variable {
    /// The codice disdetta, for `identify_child`.
    Code,
    /// A DDMM date (or empty), for `suspend` and `reactivate`.
    Date,
}

/// The named actions a dialplan may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionName {
    CheckWindow,
    IdentifyChild,
    Cancel,
    PlainMeal,
    Undo,
    Suspend,
    Reactivate,
    SayBalance,
}

impl ActionName {
    pub const ALL: [(&'static str, ActionName); 8] = [
        ("check_window", ActionName::CheckWindow),
        ("identify_child", ActionName::IdentifyChild),
        ("cancel", ActionName::Cancel),
        ("plain_meal", ActionName::PlainMeal),
        ("undo", ActionName::Undo),
        ("suspend", ActionName::Suspend),
        ("reactivate", ActionName::Reactivate),
        ("say_balance", ActionName::SayBalance),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| n)
    }

    /// The result keys the action can produce; each needs a target.
    /// Refusing actions also produce `refused`, and may map any refusal
    /// kind (`already_absent`, ...) to a target of its own.
    pub fn results(self) -> &'static [&'static str] {
        match self {
            ActionName::CheckWindow => &["open", "closed", "failed"],
            ActionName::IdentifyChild => &[
                "ok",
                "unknown_code",
                "too_many_codes",
                "throttled",
                "no_service_day_ahead",
                "failed",
            ],
            ActionName::Cancel | ActionName::PlainMeal | ActionName::Undo => {
                &["ok", "refused", "failed"]
            }
            ActionName::Suspend => &[
                "ok_until",
                "ok_open",
                "date_invalid",
                "date_too_early",
                "refused",
                "failed",
            ],
            ActionName::Reactivate => {
                &["ok", "date_invalid", "date_too_early", "refused", "failed"]
            }
            ActionName::SayBalance => &["ok", "negative", "failed"],
        }
    }

    pub fn can_refuse(self) -> bool {
        self.results().contains(&"refused")
    }

    /// A key this action's `results` may name.
    pub fn knows_result(self, key: &str) -> bool {
        self.results().contains(&key) || (self.can_refuse() && REFUSAL_KEYS.contains(&key))
    }
}

impl Dialplan {
    pub fn start(&self) -> &str {
        &self.start
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn state(&self, name: &str) -> Option<&State> {
        self.states.get(name)
    }

    pub fn states(&self) -> impl Iterator<Item = (&str, &State)> {
        self.states.iter().map(|(n, s)| (n.as_str(), s))
    }

    /// The line of a state's header in the source, if known.
    pub fn line_of(&self, state: &str) -> Option<usize> {
        self.lines.header(state)
    }

    /// The line of a place in a state ("next", "key `9`", "result `ok`"),
    /// else of the state's header.
    pub(crate) fn line_of_place(&self, state: &str, detail: &str) -> Option<usize> {
        self.lines.line(state, detail)
    }

    /// Every audio file a call of this dialplan may play in `lang`: the
    /// prompts it names and the fragments its slots are spoken with. The
    /// runtime checks at start that the prompt folder has them all.
    pub fn prompt_ids(&self, lang: Lang) -> std::collections::BTreeSet<PromptId> {
        let mut ids: std::collections::BTreeSet<PromptId> = self
            .states
            .values()
            .flat_map(State::items)
            .filter_map(|item| match item {
                Item::Prompt(id) => Some(id.clone()),
                Item::Slot(_) => None,
            })
            .collect();
        let says_refusals = self
            .states
            .values()
            .flat_map(State::items)
            .any(|item| *item == Item::Slot(Slot::Refusal));
        let says_values = self
            .states
            .values()
            .flat_map(State::items)
            .any(|item| matches!(item, Item::Slot(s) if *s != Slot::Refusal));
        if says_values {
            ids.extend(super::speech::fragment_ids(lang));
        }
        if says_refusals {
            ids.extend(
                super::actions::REFUSAL_SAMPLES
                    .iter()
                    .map(super::speech::refusal_prompt),
            );
        }
        ids
    }

    /// Parses and validates: what `serve` and `mensa dialplan check` use.
    pub fn load(text: &str, catalogue: &PromptCatalogue) -> Result<Dialplan, Problems> {
        let plan = Dialplan::parse(text)?;
        plan.validate(catalogue)?;
        Ok(plan)
    }
}

impl State {
    /// Every transition: (where, as said in messages; target state).
    pub fn transitions(&self) -> Vec<(String, &str)> {
        match self {
            State::Play(p) => vec![("next".into(), p.next.as_str())],
            State::Collect(c) => vec![
                ("next".into(), c.next.as_str()),
                ("on_no_input".into(), c.on_no_input.as_str()),
            ],
            State::Menu(m) => m
                .keys
                .iter()
                .map(|(k, t)| (format!("key `{k}`"), t.as_str()))
                .chain([("on_no_input".into(), m.on_no_input.as_str())])
                .collect(),
            State::Action(a) => a
                .results
                .iter()
                .map(|(r, t)| (format!("result `{r}`"), t.as_str()))
                .collect(),
            State::HangUp(_) => Vec::new(),
        }
    }

    /// Every item said in this state, with the field it is in.
    pub fn items_by_field(&self) -> Vec<(&'static str, &Item)> {
        let mut out: Vec<(&'static str, &Item)> = Vec::new();
        let (play, no_input, invalid): (&[Item], &[Item], &[Item]) = match self {
            State::Play(p) => (&p.prompts, &[], &[]),
            State::Collect(c) => (&c.prompts, &c.no_input, &[]),
            State::Menu(m) => (&m.prompts, &m.no_input, &m.invalid),
            State::Action(_) => (&[], &[], &[]),
            State::HangUp(h) => (&h.prompts, &[], &[]),
        };
        out.extend(play.iter().map(|i| ("play", i)));
        out.extend(no_input.iter().map(|i| ("no_input", i)));
        out.extend(invalid.iter().map(|i| ("invalid", i)));
        out
    }

    /// Every item said in this state.
    pub fn items(&self) -> Vec<&Item> {
        match self {
            State::Play(p) => p.prompts.iter().collect(),
            State::Collect(c) => c.prompts.iter().chain(&c.no_input).collect(),
            State::Menu(m) => m
                .prompts
                .iter()
                .chain(&m.no_input)
                .chain(&m.invalid)
                .collect(),
            State::Action(_) => Vec::new(),
            State::HangUp(h) => h.prompts.iter().collect(),
        }
    }
}

/// One thing wrong with a dialplan, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    /// `state `menu`, key `7``, or empty for the whole file.
    pub place: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.place.is_empty() {
            write!(f, "{}: ", self.place)?;
        }
        f.write_str(&self.message)
    }
}

/// Everything wrong with a dialplan (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
