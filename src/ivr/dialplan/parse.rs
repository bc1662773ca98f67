//! From TOML text to a [`Dialplan`]: serde reads a flat, permissive shape,
//! then each state is checked field by field for its kind, so that every
//! problem of the file is reported at once, with its line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::source::SourceLines;
use super::{
    ActionName, ActionState, Collect, Dialplan, HangUp, Item, Limits, Menu, Play, Problem,
    Problems, Slot, State, Variable,
};
use crate::ivr::actions::Key;
use crate::ivr::speech::{Lang, PromptId};

const DEFAULT_MAX_WRONG_CODES: u32 = 3;
const DEFAULT_MAX_CALL_SECONDS: u64 = 600;
const DEFAULT_FIRST_DIGIT_MS: u64 = 8_000;
const DEFAULT_INTER_DIGIT_MS: u64 = 4_000;
const DEFAULT_MENU_TIMEOUT_MS: u64 = 8_000;
const DEFAULT_TRIES: u32 = 3;
/// No codice disdetta or date is longer; a bound on what a caller can buffer.
const MAX_DIGITS: usize = 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDialplan {
    start: String,
    #[serde(default)]
    limits: RawLimits,
    states: BTreeMap<String, RawState>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_wrong_codes: Option<u32>,
    max_call_seconds: Option<u64>,
}

/// Every field any kind may have; which ones a kind allows is checked after.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    kind: String,
    play: Option<Vec<String>>,
    next: Option<String>,
    barge_in: Option<bool>,
    language_keys: Option<BTreeMap<String, String>>,
    into: Option<String>,
    max_digits: Option<usize>,
    terminator: Option<String>,
    allow_empty: Option<bool>,
    first_digit_timeout_ms: Option<u64>,
    inter_digit_timeout_ms: Option<u64>,
    timeout_ms: Option<u64>,
    tries: Option<u32>,
    no_input: Option<Vec<String>>,
    invalid: Option<Vec<String>>,
    on_no_input: Option<String>,
    keys: Option<BTreeMap<String, String>>,
    action: Option<String>,
    results: Option<BTreeMap<String, String>>,
}

impl RawState {
    /// The fields that are set, by name, to refuse those the kind ignores.
    fn set_fields(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        let mut add = |name, is_set: bool| {
            if is_set {
                set.push(name);
            }
        };
        add("play", self.play.is_some());
        add("next", self.next.is_some());
        add("barge_in", self.barge_in.is_some());
        add("language_keys", self.language_keys.is_some());
        add("into", self.into.is_some());
        add("max_digits", self.max_digits.is_some());
        add("terminator", self.terminator.is_some());
        add("allow_empty", self.allow_empty.is_some());
        add(
            "first_digit_timeout_ms",
            self.first_digit_timeout_ms.is_some(),
        );
        add(
            "inter_digit_timeout_ms",
            self.inter_digit_timeout_ms.is_some(),
        );
        add("timeout_ms", self.timeout_ms.is_some());
        add("tries", self.tries.is_some());
        add("no_input", self.no_input.is_some());
        add("invalid", self.invalid.is_some());
        add("on_no_input", self.on_no_input.is_some());
        add("keys", self.keys.is_some());
        add("action", self.action.is_some());
        add("results", self.results.is_some());
        set
    }
}

/// Collects the problems of one state.
struct Checker<'a> {
    state: &'a str,
    lines: &'a SourceLines,
    problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, detail: &str, message: String) {
        let place = if detail.is_empty() {
            format!("state `{}`", self.state)
        } else {
            format!("state `{}`, {detail}", self.state)
        };
        self.problems.push(Problem {
            line: self.lines.line(self.state, detail),
            place,
            message,
        });
    }

    fn items(&mut self, field: &str, raw: Option<&Vec<String>>) -> Vec<Item> {
        let mut items = Vec::new();
        for text in raw.into_iter().flatten() {
            if let Some(slot) = text.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                match Slot::ALL.iter().find(|(n, _)| *n == slot) {
                    Some((_, s)) => items.push(Item::Slot(*s)),
                    None => self.problem(
                        field,
                        format!(
                            "unknown slot {text:?} (known: {})",
                            Slot::ALL.map(|(n, _)| format!("{{{n}}}")).join(", ")
                        ),
                    ),
                }
            } else {
                match PromptId::parse(text) {
                    Ok(id) => items.push(Item::Prompt(id)),
                    Err(e) => self.problem(field, e.to_string()),
                }
            }
        }
        items
    }

    fn key(&mut self, field: &str, text: &str) -> Option<Key> {
        let mut chars = text.chars();
        match (chars.next().and_then(Key::from_char), chars.next()) {
            (Some(key), None) => Some(key),
            _ => {
                self.problem(field, format!("{text:?} is not a key (0-9, *, #, A-D)"));
                None
            }
        }
    }

    fn required(&mut self, field: &str, value: Option<&String>) -> String {
        match value {
            Some(v) => v.clone(),
            None => {
                self.problem("", format!("`{field}` is missing"));
                String::new()
            }
        }
    }

    fn timeout(&mut self, field: &str, ms: Option<u64>, default: u64) -> Duration {
        let ms = ms.unwrap_or(default);
        if !(100..=120_000).contains(&ms) {
            self.problem(field, format!("{ms} ms is not between 100 and 120000"));
        }
        Duration::from_millis(ms)
    }

    fn tries(&mut self, tries: Option<u32>) -> u32 {
        let tries = tries.unwrap_or(DEFAULT_TRIES);
        if !(1..=10).contains(&tries) {
            self.problem("tries", format!("{tries} is not between 1 and 10"));
        }
        tries
    }
}

impl Dialplan {
    /// Reads a dialplan's TOML text: syntax, fields, keys, slots and names
    /// of actions. [`Dialplan::validate`] checks the rest.
    pub fn parse(text: &str) -> Result<Dialplan, Problems> {
        let raw: RawDialplan = toml::from_str(text).map_err(|e| {
            Problems(vec![Problem {
                line: e.span().map(|s| line_at(text, s.start)),
                place: String::new(),
                message: e.message().to_string(),
            }])
        })?;
        let mut problems = Vec::new();
        let mut states = BTreeMap::new();
        let lines = SourceLines::scan(text);
        for (name, raw_state) in &raw.states {
            let mut check = Checker {
                state: name,
                lines: &lines,
                problems: &mut problems,
            };
            if let Some(state) = state(&mut check, raw_state) {
                states.insert(name.clone(), state);
            }
        }
        let limits = Limits {
            max_wrong_codes: raw
                .limits
                .max_wrong_codes
                .unwrap_or(DEFAULT_MAX_WRONG_CODES),
            max_call: Duration::from_secs(
                raw.limits
                    .max_call_seconds
                    .unwrap_or(DEFAULT_MAX_CALL_SECONDS),
            ),
        };
        if limits.max_wrong_codes == 0 || limits.max_call.is_zero() {
            problems.push(Problem {
                line: None,
                place: "limits".into(),
                message: "max_wrong_codes and max_call_seconds must be at least 1".into(),
            });
        }
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        Ok(Dialplan {
            start: raw.start,
            limits,
            states,
            lines,
        })
    }
}

fn state(check: &mut Checker<'_>, raw: &RawState) -> Option<State> {
    let allowed: &[&str] = match raw.kind.as_str() {
        "play" => &["play", "next", "barge_in", "language_keys"],
        "collect" => &[
            "play",
            "into",
            "max_digits",
            "terminator",
            "allow_empty",
            "first_digit_timeout_ms",
            "inter_digit_timeout_ms",
            "tries",
            "no_input",
            "next",
            "on_no_input",
        ],
        "menu" => &[
            "play",
            "keys",
            "timeout_ms",
            "tries",
            "no_input",
            "invalid",
            "on_no_input",
        ],
        "action" => &["action", "results"],
        "hangup" => &["play"],
        other => {
            check.problem(
                "",
                format!("unknown kind {other:?} (play, collect, menu, action, hangup)"),
            );
            return None;
        }
    };
    for field in raw.set_fields() {
        if !allowed.contains(&field) {
            check.problem(
                "",
                format!("`{field}` has no meaning in a `{}` state", raw.kind),
            );
        }
    }
    let prompts = check.items("play", raw.play.as_ref());
    let state = match raw.kind.as_str() {
        "play" => {
            let mut language_keys = BTreeMap::new();
            for (key, lang) in raw.language_keys.iter().flatten() {
                let place = format!("language key `{key}`");
                let key = check.key(&place, key);
                match lang.parse::<Lang>() {
                    Ok(lang) => {
                        if let Some(key) = key {
                            language_keys.insert(key, lang);
                        }
                    }
                    Err(e) => check.problem(&place, e.to_string()),
                }
            }
            State::Play(Play {
                prompts,
                next: check.required("next", raw.next.as_ref()),
                barge_in: raw.barge_in.unwrap_or(false),
                language_keys,
            })
        }
        "collect" => {
            let into = match raw.into.as_deref() {
                Some("code") => Variable::Code,
                Some("date") => Variable::Date,
                Some(other) => {
                    check.problem("into", format!("unknown variable {other:?} (code, date)"));
                    Variable::Code
                }
                None => {
                    check.problem("", "`into` is missing (code or date)".into());
                    Variable::Code
                }
            };
            let max_digits = raw.max_digits.unwrap_or(match into {
                Variable::Code => 12,
                Variable::Date => 4,
            });
            if !(1..=MAX_DIGITS).contains(&max_digits) {
                check.problem(
                    "max_digits",
                    format!("{max_digits} is not between 1 and {MAX_DIGITS}"),
                );
            }
            let terminator = match raw.terminator.as_deref() {
                None => Some(Key::HASH),
                Some("") => None,
                Some(t) => check.key("terminator", t),
            };
            State::Collect(Collect {
                into,
                max_digits,
                terminator,
                allow_empty: raw.allow_empty.unwrap_or(false),
                first_digit_timeout: check.timeout(
                    "first_digit_timeout_ms",
                    raw.first_digit_timeout_ms,
                    DEFAULT_FIRST_DIGIT_MS,
                ),
                inter_digit_timeout: check.timeout(
                    "inter_digit_timeout_ms",
                    raw.inter_digit_timeout_ms,
                    DEFAULT_INTER_DIGIT_MS,
                ),
                tries: check.tries(raw.tries),
                no_input: check.items("no_input", raw.no_input.as_ref()),
                next: check.required("next", raw.next.as_ref()),
                on_no_input: check.required("on_no_input", raw.on_no_input.as_ref()),
                prompts,
            })
        }
        "menu" => {
            let mut keys = BTreeMap::new();
            for (key, target) in raw.keys.iter().flatten() {
                if let Some(k) = check.key(&format!("key `{key}`"), key) {
                    keys.insert(k, target.clone());
                }
            }
            if keys.is_empty() {
                check.problem("", "a menu needs `keys`".into());
            }
            State::Menu(Menu {
                keys,
                timeout: check.timeout("timeout_ms", raw.timeout_ms, DEFAULT_MENU_TIMEOUT_MS),
                tries: check.tries(raw.tries),
                no_input: check.items("no_input", raw.no_input.as_ref()),
                invalid: check.items("invalid", raw.invalid.as_ref()),
                on_no_input: check.required("on_no_input", raw.on_no_input.as_ref()),
                prompts,
            })
        }
        "action" => {
            let name = check.required("action", raw.action.as_ref());
            let action = ActionName::ALL
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, a)| *a);
            let Some(action) = action else {
                if !name.is_empty() {
                    check.problem(
                        "action",
                        format!(
                            "unknown action {name:?} (known: {})",
                            ActionName::ALL.map(|(n, _)| n).join(", ")
                        ),
                    );
                }
                return None;
            };
            State::Action(ActionState {
                action,
                results: raw.results.clone().unwrap_or_default(),
            })
        }
        // Only the kinds matched above reach here.
        _ => State::HangUp(HangUp { prompts }),
    };
    Some(state)
}

/// The 1-based line of a byte offset.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}
