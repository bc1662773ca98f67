//! What the call knows in each state, whatever the path to it: a slot
//! said or an operation run before the action that gives its value is a
//! mistake of the dialplan (the caller would hear nothing in its place,
//! or the operation would fail). A forward "must" analysis over the state
//! graph: the facts on entering a state are those true on every path to it.

use std::collections::BTreeMap;

use super::{ActionName, Dialplan, Item, Slot, State};

/// A value the call learns from an action result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fact {
    /// `check_window` answered: `{opens}`, `{cutoff}`.
    Window,
    /// `identify_child` found the child: `{target_day}`, the operations.
    Child,
    /// An operation was applied: `{date}`.
    Date,
    /// A suspension with a return date: `{until}`.
    Until,
    /// `say_balance` answered: `{amount}`.
    Amount,
    /// Something was refused: `{refusal}`.
    Refusal,
}

const ALL: u8 = 0b11_1111;

fn bit(fact: Fact) -> u8 {
    1 << (fact as u8)
}

/// The facts an action result establishes.
fn gained(action: ActionName, result: &str) -> u8 {
    let refused = action.can_refuse() && !result.starts_with("ok") && result != "failed";
    let refused = refused && !result.starts_with("date_");
    let facts = match (action, result) {
        (ActionName::CheckWindow, "open" | "closed") => bit(Fact::Window),
        (ActionName::IdentifyChild, "ok") => bit(Fact::Child),
        (ActionName::SayBalance, "ok" | "negative") => bit(Fact::Amount),
        (ActionName::Suspend, "ok_until") => bit(Fact::Date) | bit(Fact::Until),
        (_, "ok" | "ok_open") if action.can_refuse() => bit(Fact::Date),
        _ => 0,
    };
    if refused {
        facts | bit(Fact::Refusal)
    } else {
        facts
    }
}

fn needed_by_slot(slot: Slot) -> Fact {
    match slot {
        Slot::TargetDay => Fact::Child,
        Slot::Date => Fact::Date,
        Slot::Until => Fact::Until,
        Slot::Amount => Fact::Amount,
        Slot::Opens | Slot::Cutoff => Fact::Window,
        Slot::Refusal => Fact::Refusal,
    }
}

fn slot_name(slot: Slot) -> &'static str {
    Slot::ALL
        .iter()
        .find(|(_, s)| *s == slot)
        .map_or("?", |(n, _)| n)
}

fn source(fact: Fact) -> &'static str {
    match fact {
        Fact::Window => "`check_window`",
        Fact::Child => "`identify_child` finds the child",
        Fact::Date => "an operation is applied",
        Fact::Until => "a suspension with a return date is applied",
        Fact::Amount => "`say_balance`",
        Fact::Refusal => "a refusal",
    }
}

impl Dialplan {
    /// (state, message) for each value used before it can be known. Call
    /// only once every target state exists.
    pub(super) fn values_used_too_early(&self) -> Vec<(String, String)> {
        // Facts on entry, starting from "everything" except at the start.
        let mut known: BTreeMap<&str, u8> = self.states().map(|(n, _)| (n, ALL)).collect();
        known.insert(self.start(), 0);
        loop {
            let mut next: BTreeMap<&str, u8> = self.states().map(|(n, _)| (n, ALL)).collect();
            next.insert(self.start(), 0);
            for (name, state) in self.states() {
                let here = known.get(name).copied().unwrap_or(0);
                let edges: Vec<(&str, u8)> = match state {
                    State::Action(a) => a
                        .results
                        .iter()
                        .map(|(r, t)| (t.as_str(), here | gained(a.action, r)))
                        .collect(),
                    other => other
                        .transitions()
                        .into_iter()
                        .map(|(_, t)| (t, here))
                        .collect(),
                };
                for (target, facts) in edges {
                    if let Some(entry) = next.get_mut(target) {
                        *entry &= facts;
                    }
                }
            }
            if next == known {
                break;
            }
            known = next;
        }
        let mut found = Vec::new();
        for (name, state) in self.states() {
            let here = known.get(name).copied().unwrap_or(0);
            for item in state.items() {
                if let Item::Slot(slot) = item {
                    let fact = needed_by_slot(*slot);
                    if here & bit(fact) == 0 {
                        found.push((
                            name.to_string(),
                            format!(
                                "{{{}}} may be said before {} (on some path to here)",
                                slot_name(*slot),
                                source(fact)
                            ),
                        ));
                    }
                }
            }
            if let State::Action(a) = state {
                let needs_child = !matches!(
                    a.action,
                    ActionName::CheckWindow | ActionName::IdentifyChild
                );
                if needs_child && here & bit(Fact::Child) == 0 {
                    found.push((
                        name.to_string(),
                        format!(
                            "action `{}` may run before {}",
                            a.action.name(),
                            source(Fact::Child)
                        ),
                    ));
                }
            }
        }
        found
    }
}
