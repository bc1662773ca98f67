//! The checks of `mensa dialplan check` and of `serve` at start: every
//! prompt exists, every target state exists, every action result has a
//! target, every state is reachable from the start and can reach a
//! hang-up, every collection and menu has a timeout path.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Deserialize;

use super::{Dialplan, Item, Problem, Problems, State};
use crate::ivr::speech::{Lang, PromptId};

/// The prompt ids a dialplan may name: the `[prompts]` and `[fragments]`
/// of the catalogues, in every language.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptCatalogue {
    ids: BTreeMap<PromptId, BTreeSet<Lang>>,
}

#[derive(Deserialize)]
struct CatalogueFile {
    #[serde(default)]
    prompts: BTreeMap<String, String>,
    #[serde(default)]
    fragments: BTreeMap<String, String>,
}

impl PromptCatalogue {
    /// The catalogues shipped in `prompts/`, built into the program.
    pub fn builtin() -> PromptCatalogue {
        let mut catalogue = PromptCatalogue::default();
        for (lang, text) in [
            (Lang::It, include_str!("../../../prompts/it/catalogue.toml")),
            (Lang::En, include_str!("../../../prompts/en/catalogue.toml")),
        ] {
            // The shipped catalogues are checked by speech's tests.
            if let Err(e) = catalogue.add(lang, text) {
                tracing::error!(%lang, "built-in prompt catalogue: {e}");
            }
        }
        catalogue
    }

    /// Adds a language's `catalogue.toml` (e.g. from a configured prompt folder).
    pub fn add(&mut self, lang: Lang, text: &str) -> Result<(), String> {
        let file: CatalogueFile = toml::from_str(text).map_err(|e| e.to_string())?;
        for id in file.prompts.keys().chain(file.fragments.keys()) {
            let id = PromptId::parse(id).map_err(|e| e.to_string())?;
            self.ids.entry(id).or_default().insert(lang);
        }
        Ok(())
    }

    fn languages(&self) -> BTreeSet<Lang> {
        self.ids.values().flatten().copied().collect()
    }

    /// The languages missing `id` (all of them when it is unknown).
    fn missing(&self, id: &PromptId) -> Vec<Lang> {
        let has = self.ids.get(id);
        self.languages()
            .into_iter()
            .filter(|l| has.is_none_or(|h| !h.contains(l)))
            .collect()
    }
}

impl Dialplan {
    /// Everything wrong with the dialplan's meaning; `Ok` when it can run.
    pub fn validate(&self, catalogue: &PromptCatalogue) -> Result<(), Problems> {
        let mut problems = Vec::new();
        let mut problem = |state: &str, detail: &str, message: String| {
            let place = if detail.is_empty() {
                format!("state `{state}`")
            } else {
                format!("state `{state}`, {detail}")
            };
            problems.push(Problem {
                line: self.line_of_place(state, detail),
                place,
                message,
            });
        };
        if self.state(self.start()).is_none() {
            let start = self.start();
            problem(
                start,
                "",
                format!("the start state `{start}` does not exist"),
            );
        }
        for (name, state) in self.states() {
            for (field, item) in state.items_by_field() {
                if let Item::Prompt(id) = item {
                    let missing = catalogue.missing(id);
                    if !missing.is_empty() {
                        let langs: Vec<&str> = missing.iter().map(|l| l.code()).collect();
                        problem(
                            name,
                            field,
                            format!(
                                "unknown prompt `{id}` (not in the {} catalogue)",
                                langs.join(", ")
                            ),
                        );
                    }
                }
            }
            for (place, target) in state.transitions() {
                if self.state(target).is_none() {
                    problem(name, &place, format!("unknown target state `{target}`"));
                }
            }
            if let State::Action(a) = state {
                for key in a.action.results() {
                    let covered = a.results.contains_key(*key);
                    if !covered {
                        problem(
                            name,
                            "",
                            format!(
                                "action `{}` has no target for result `{key}`",
                                a.action.name()
                            ),
                        );
                    }
                }
                for key in a.results.keys() {
                    if !a.action.knows_result(key) {
                        problem(
                            name,
                            &format!("result `{key}`"),
                            format!(
                                "action `{}` never gives this result (it gives: {})",
                                a.action.name(),
                                a.action.results().join(", ")
                            ),
                        );
                    }
                }
            }
        }
        // Reachable from the start.
        let reachable = self.reachable_from(self.start());
        for (name, _) in self.states() {
            if !reachable.contains(name) {
                problem(name, "", "unreachable from the start state".into());
            }
        }
        // Able to end: every state must lead to a hang-up.
        let mut ending: BTreeSet<&str> = self
            .states()
            .filter(|(_, s)| matches!(s, State::HangUp(_)))
            .map(|(n, _)| n)
            .collect();
        loop {
            let before = ending.len();
            for (name, state) in self.states() {
                if state.transitions().iter().any(|(_, t)| ending.contains(t)) {
                    ending.insert(name);
                }
            }
            if ending.len() == before {
                break;
            }
        }
        // With a target missing, every state leading to it would be a dead
        // end too: report the missing target only.
        let targets_known = self
            .states()
            .all(|(_, s)| s.transitions().iter().all(|(_, t)| self.state(t).is_some()));
        for (name, _) in self.states().filter(|_| targets_known) {
            if !ending.contains(name) {
                problem(
                    name,
                    "",
                    "dead end: no path from here to a `hangup` state".into(),
                );
            }
        }
        if targets_known && self.state(self.start()).is_some() {
            for (state, message) in self.values_used_too_early() {
                problem(&state, "", message);
            }
        }
        problems.sort_by_key(|p| p.line);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Problems(problems))
        }
    }

    fn reachable_from<'a>(&'a self, start: &'a str) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([start]);
        while let Some(name) = queue.pop_front() {
            let Some(state) = self.state(name) else {
                continue;
            };
            if seen.insert(name) {
                queue.extend(state.transitions().into_iter().map(|(_, t)| t));
            }
        }
        seen
    }
}
