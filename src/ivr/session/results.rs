//! The session's side of actions: building an [`Action`] from what the
//! call knows, reading its [`ActionResult`] into a result key of the
//! dialplan (and into the call's data and record), and speaking slots.

use std::time::Instant;

use super::{Event, Session, redact_invalid};
use crate::bookings::{CancelCode, Cents};
use crate::ivr::actions::{Action, ActionResult, PhoneOperation, refusal_key};
use crate::ivr::ddmm::{self, DateEntryError};
use crate::ivr::dialplan::{ActionName, ActionState, Item, Slot};
use crate::ivr::record::{CodeOutcome, CodeTried, OperationRecord};
use crate::ivr::speech::{PromptId, refusal_prompt, say_date, say_euros, say_time};

impl Session {
    /// Emits the action of an `action` state, or follows a result found
    /// without asking (a typed sequence that is no code, a bad date).
    pub(super) fn run_action(&mut self, now: Instant, state: &ActionState) {
        let action = match self.build_action(state.action) {
            Ok(action) => action,
            Err(key) => {
                if state.action == ActionName::IdentifyChild && key == "unknown_code" {
                    // Counted like a code looked up and not found.
                    let key = self.result_key(ActionName::IdentifyChild, ActionResult::UnknownCode);
                    self.follow(now, state, &key);
                } else {
                    self.follow(now, state, key);
                }
                return;
            }
        };
        self.pending = Some(state.clone());
        self.events.push_back(Event::RunAction(action));
    }

    fn build_action(&mut self, name: ActionName) -> Result<Action, &'static str> {
        let vars = &mut self.vars;
        vars.operation = None;
        let target = vars.target_day;
        let child = vars.child.clone();
        let operation = match name {
            ActionName::CheckWindow => return Ok(Action::CheckWindow),
            ActionName::IdentifyChild => {
                let digits = vars.code_digits.take().unwrap_or_default();
                let redacted = redact_invalid(&digits);
                vars.code_redacted = Some(redacted.clone());
                return match CancelCode::parse(&digits) {
                    Ok(code) => Ok(Action::IdentifyChild { code }),
                    Err(_) => Err("unknown_code"),
                };
            }
            ActionName::SayBalance => {
                return child.map(|child| Action::Balance { child }).ok_or("failed");
            }
            ActionName::Cancel => target.map(|date| PhoneOperation::Cancel { date }),
            ActionName::PlainMeal => target.map(|date| PhoneOperation::PlainMeal { date }),
            ActionName::Undo => target.map(|date| PhoneOperation::Undo { date }),
            ActionName::Suspend => match (target, typed_date(vars.date_digits.take(), target)) {
                (Some(from), Ok(until)) => Some(PhoneOperation::Suspend { from, until }),
                (_, Err(e)) => return Err(e),
                (None, Ok(_)) => None,
            },
            ActionName::Reactivate => match (target, typed_date(vars.date_digits.take(), target)) {
                (Some(target), Ok(from)) => Some(PhoneOperation::Reactivate {
                    from: from.unwrap_or(target),
                }),
                (_, Err(e)) => return Err(e),
                (None, Ok(_)) => None,
            },
        };
        match (child, operation) {
            (Some(child), Some(operation)) => {
                vars.operation = Some(operation);
                Ok(Action::Apply { child, operation })
            }
            // No child identified yet: a dialplan that runs an operation
            // before `identify_child`.
            _ => {
                tracing::warn!(
                    action = name.name(),
                    "operation before a child is identified"
                );
                Err("failed")
            }
        }
    }

    /// The dialplan's result key for `result`, recording what it says.
    pub(super) fn result_key(&mut self, action: ActionName, result: ActionResult) -> String {
        let key = match (action, result) {
            (
                ActionName::CheckWindow,
                ActionResult::Window {
                    open,
                    opens,
                    cutoff,
                },
            ) => {
                self.vars.opens = Some(opens);
                self.vars.cutoff = Some(cutoff);
                if open { "open" } else { "closed" }
            }
            (ActionName::IdentifyChild, result) => {
                let outcome = match &result {
                    ActionResult::Identified { .. } => CodeOutcome::Known,
                    ActionResult::UnknownCode => CodeOutcome::Unknown,
                    ActionResult::Throttled => CodeOutcome::Throttled,
                    _ => CodeOutcome::Failed,
                };
                self.record.codes.push(CodeTried {
                    redacted: self.vars.code_redacted.take().unwrap_or_default(),
                    outcome,
                });
                match result {
                    ActionResult::Identified { child, target_day } => {
                        self.vars.child = Some(child);
                        self.vars.target_day = target_day;
                        if target_day.is_some() {
                            "ok"
                        } else {
                            "no_service_day_ahead"
                        }
                    }
                    ActionResult::UnknownCode => {
                        self.wrong_codes += 1;
                        if self.wrong_codes >= self.plan.limits().max_wrong_codes {
                            "too_many_codes"
                        } else {
                            "unknown_code"
                        }
                    }
                    ActionResult::Throttled => "throttled",
                    _ => "failed",
                }
            }
            (ActionName::SayBalance, ActionResult::Balance(amount)) => {
                self.vars.amount = Some(Cents(amount.0.saturating_abs()));
                if amount.0 < 0 { "negative" } else { "ok" }
            }
            (
                ActionName::Cancel
                | ActionName::PlainMeal
                | ActionName::Undo
                | ActionName::Suspend
                | ActionName::Reactivate,
                result,
            ) => {
                let key = match result {
                    ActionResult::Applied { date, until } => {
                        self.vars.date = Some(date);
                        self.vars.until = until;
                        match (action, until) {
                            (ActionName::Suspend, Some(_)) => "ok_until",
                            (ActionName::Suspend, None) => "ok_open",
                            _ => "ok",
                        }
                    }
                    ActionResult::Refused(refusal) => {
                        let key = refusal_key(&refusal);
                        self.vars.refusal = Some(refusal);
                        key
                    }
                    _ => "failed",
                };
                if let (Some(operation), Some(child)) =
                    (self.vars.operation.take(), self.vars.child.as_ref())
                {
                    self.record.operations.push(OperationRecord {
                        child: child.id(),
                        operation,
                        result: key.to_string(),
                    });
                }
                key
            }
            (action, result) => {
                if result != ActionResult::Failed {
                    tracing::warn!(action = action.name(), ?result, "result of another action");
                }
                "failed"
            }
        };
        key.to_string()
    }

    /// The prompt ids for `items`, slots spoken in the call's language. A
    /// slot with no value yet says nothing.
    pub(super) fn render<'a>(&self, items: impl Iterator<Item = &'a Item>) -> Vec<PromptId> {
        let lang = self.lang;
        let vars = &self.vars;
        let mut out = Vec::new();
        for item in items {
            match item {
                Item::Prompt(id) => out.push(id.clone()),
                Item::Slot(slot) => {
                    let said = match slot {
                        Slot::TargetDay => vars.target_day.map(|d| say_date(lang, d)),
                        Slot::Date => vars.date.map(|d| say_date(lang, d)),
                        Slot::Until => vars.until.map(|d| say_date(lang, d)),
                        Slot::Amount => vars.amount.map(|a| say_euros(lang, a)),
                        Slot::Opens => vars.opens.map(|t| say_time(lang, t)),
                        Slot::Cutoff => vars.cutoff.map(|t| say_time(lang, t)),
                        Slot::Refusal => vars.refusal.as_ref().map(|r| vec![refusal_prompt(r)]),
                    };
                    match said {
                        Some(ids) => out.extend(ids),
                        None => tracing::debug!(?slot, "slot without a value: not said"),
                    }
                }
            }
        }
        out
    }
}

/// A typed DDMM (or empty) date: `Ok(None)` for empty, else the date it
/// means for the target day, or the result key of why not.
fn typed_date(
    digits: Option<String>,
    target: Option<chrono::NaiveDate>,
) -> Result<Option<chrono::NaiveDate>, &'static str> {
    let digits = digits.unwrap_or_default();
    if digits.is_empty() {
        return Ok(None);
    }
    let Some(target) = target else {
        return Ok(None);
    };
    match ddmm::resolve(&digits, target) {
        Ok(date) => Ok(Some(date)),
        Err(DateEntryError::Invalid) => Err("date_invalid"),
        Err(DateEntryError::TooEarly) => Err("date_too_early"),
    }
}
