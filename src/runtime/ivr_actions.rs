//! The action runner of the phone line: runs an [`Action`] emitted by
//! a call session against the store, at the wall clock's `now`, and gives
//! back the [`ActionResult`] to feed to the session.
//!
//! Every operation goes through [`Store::apply`] (one transaction, audited
//! with the caller's number and the phone channel): when the runner
//! returns [`ActionResult::Applied`] the change is durable, so the caller
//! hears the confirmation only after it is (SPEC §6).
//!
//! ## Codes are counted before they are looked up
//!
//! A code typed goes to [`Store::admit_code`] first (docs/security.md,
//! "Cancel codes cannot be guessed in practice"): the caller number's
//! back-off, then, unless this number used this code successfully before
//! (a bound code, no guess), the line's and the trunk's budgets of wrong
//! codes, all in the database, shared by every node and kept across
//! restarts. Only an admitted code is looked up; a right one gives its
//! counts back and is bound to the number. Refused, the caller hears the
//! same "service temporarily unavailable" whatever the reason
//! ([`ActionResult::Throttled`]), and the code is never looked up, so the
//! answer says nothing about it. When the line's budget is spent the line
//! is *guarded* (only bound codes pass): `/metrics` raises
//! `mensa_code_guessing_alert` and the runner logs a warning.
//!
//! The line's budget is derived from the codes in use
//! ([`CodeSpace::default_budget_per_year`]) unless `[ivr]` sets one; the
//! runner reads the code space again every [`RULES_TTL`], so an import or a
//! reissue moves the budget within a minute.
//!
//! ## Loading dialplans
//!
//! [`load_dialplan`] reads and checks a dialplan file against a prompt
//! catalogue ([`prompt_catalogue`]); `mensa dialplan check` uses it, and
//! `serve` must (and must refuse to start on an error).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::api::Metrics;
use crate::bookings::guessing::{Backoff, Budget, CodeSpace, GuardRules};
use crate::bookings::{Actor, Channel, Clock, DayRequest, RuleContext, ServiceCalendar};
use crate::bookings::{CancelCode, PhoneNumber, SuspensionChange};
use crate::ivr::{
    Action, ActionResult, ChildRef, Dialplan, Lang, PhoneOperation, Problems, PromptCatalogue,
};
use crate::store::{Admission, Applied, ChildId, GuardRefusal, Operation, Store, StoreError};

/// How long the derived rules (the code space behind the line's budget)
/// are trusted before they are read again.
pub const RULES_TTL: Duration = Duration::from_secs(60);

/// The phone line's limits on codes typed (`[ivr]` of the serve config,
/// docs/deployment.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    /// A caller number's back-off.
    pub caller: Backoff,
    /// The line's wrong codes a year; `None`: derived from the codes in
    /// use ([`CodeSpace::default_budget_per_year`]).
    pub line_per_year: Option<u64>,
    /// How many of them may come at once; `None`: a day's share.
    pub line_burst: Option<u32>,
    /// Each trunk's share of the line's budget, in percent.
    pub trunk_percent: u8,
}

impl Default for GuardConfig {
    fn default() -> GuardConfig {
        GuardConfig {
            caller: Backoff::default(),
            line_per_year: None,
            line_burst: None,
            trunk_percent: 50,
        }
    }
}

impl GuardConfig {
    /// The rules for a line whose children hold `space`.
    pub fn rules(&self, space: &CodeSpace) -> GuardRules {
        let per_year = self
            .line_per_year
            .unwrap_or_else(|| space.default_budget_per_year());
        let burst = self
            .line_burst
            .unwrap_or_else(|| Budget::default_burst(per_year));
        let line = Budget::per_year(per_year, burst);
        GuardRules {
            caller: self.caller,
            trunk: line.share(self.trunk_percent),
            line,
        }
    }
}

/// Where a call comes from: the caller's number and the trunk (the
/// allow-list network its INVITE came from).
#[derive(Debug, Clone)]
pub struct CallFrom {
    pub caller: PhoneNumber,
    pub trunk: String,
}

impl CallFrom {
    pub fn new(caller: PhoneNumber, trunk: impl Into<String>) -> CallFrom {
        CallFrom {
            caller,
            trunk: trunk.into(),
        }
    }
}

/// Runs the phone line's actions. One per process, shared by every call.
pub struct IvrActions {
    store: Store,
    clock: Arc<dyn Clock>,
    guards: GuardConfig,
    /// The rules derived from the code space, and when.
    rules: Mutex<Option<(Instant, GuardRules)>>,
    metrics: Arc<Metrics>,
    /// The line is guarded (its budget spent), as this node last saw it.
    guarded: AtomicBool,
}

impl IvrActions {
    pub fn new(store: Store, clock: Arc<dyn Clock>, guards: GuardConfig) -> IvrActions {
        IvrActions {
            store,
            clock,
            guards,
            rules: Mutex::new(None),
            metrics: Arc::default(),
            guarded: AtomicBool::new(false),
        }
    }

    /// Counts codes and raises the alert in these metrics (`/metrics`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> IvrActions {
        self.metrics = metrics;
        self
    }

    /// Runs `action` for a call `from` a caller and trunk. Never fails:
    /// store errors are logged and answered with [`ActionResult::Failed`].
    pub async fn run(&self, from: &CallFrom, action: &Action) -> ActionResult {
        let now = self.clock.now();
        match self.try_run(from, action, now).await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(
                    caller = %from.caller,
                    ?action,
                    error = %e,
                    "phone action failed"
                );
                ActionResult::Failed
            }
        }
    }

    /// The rules now: the configured ones over the code space, read again
    /// every [`RULES_TTL`].
    pub async fn rules(&self) -> Result<GuardRules, StoreError> {
        let fresh = |at: &Instant| at.elapsed() < RULES_TTL;
        if let Some((at, rules)) = *self.rules.lock().unwrap_or_else(|e| e.into_inner())
            && fresh(&at)
        {
            return Ok(rules);
        }
        let rules = self.guards.rules(&self.store.code_space().await?);
        // A poisoned lock only means another call panicked while setting
        // it: the value is still usable.
        *self.rules.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), rules));
        self.metrics.set_code_budget(rules.line.per_year_rate());
        Ok(rules)
    }

    /// Reads whether the line is guarded from the store (every node sees
    /// the budget another spent), raises or clears the alert, and forgets
    /// counts that count nothing any more. `serve` runs it every few
    /// seconds ([`IvrActions::watch`]).
    pub async fn check_line(&self, sweep: bool) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let rules = self.rules().await?;
        let guarded = self.store.line_guarded(now, rules.line).await?;
        self.set_guarded(guarded, &rules);
        if sweep {
            let swept = self.store.sweep_code_guards(now).await?;
            tracing::debug!(swept, "code counts swept");
        }
        Ok(guarded)
    }

    /// [`IvrActions::check_line`] every `every`, sweeping once a minute.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut last_sweep: Option<Instant> = None;
        loop {
            let sweep = last_sweep.is_none_or(|at| at.elapsed() >= Duration::from_secs(60));
            if sweep {
                last_sweep = Some(Instant::now());
            }
            if let Err(e) = self.check_line(sweep).await {
                tracing::error!(error = %e, "cannot read the line's budget of wrong codes");
            }
            tokio::time::sleep(every).await;
        }
    }

    fn set_guarded(&self, guarded: bool, rules: &GuardRules) {
        self.metrics.set_code_guessing_alert(guarded);
        let was = self.guarded.swap(guarded, Ordering::Relaxed);
        match (was, guarded) {
            (false, true) => tracing::warn!(
                wrong_codes_per_year = rules.line.per_year_rate(),
                burst = rules.line.burst,
                "the line's budget of wrong cancel codes is spent: guarded mode, only codes \
                 a caller number used before are looked up (someone may be guessing codes)"
            ),
            (true, false) => {
                tracing::info!("the line's budget of wrong cancel codes has room again")
            }
            _ => {}
        }
    }

    async fn identify(
        &self,
        from: &CallFrom,
        code: &CancelCode,
        now: DateTime<Utc>,
    ) -> Result<ActionResult, StoreError> {
        let rules = self.rules().await?;
        let counted = match self
            .store
            .admit_code(&from.caller, &from.trunk, code, now, &rules)
            .await?
        {
            Admission::Refused(reason) => {
                self.metrics.count_code_refused(reason.as_str());
                if reason == GuardRefusal::Guarded {
                    self.set_guarded(true, &rules);
                }
                tracing::warn!(
                    caller = %from.caller,
                    trunk = %from.trunk,
                    reason = reason.as_str(),
                    "code refused before its lookup"
                );
                return Ok(ActionResult::Throttled);
            }
            Admission::Bound => None,
            Admission::Counted(counted) => {
                // The line's budget had room for this one.
                self.set_guarded(false, &rules);
                Some(counted)
            }
        };
        self.metrics.count_code_lookup();
        let Some(child) = self.store.child_by_cancel_code(code).await? else {
            if counted.is_some() {
                self.metrics.count_wrong_code();
            }
            tracing::info!(
                caller = %from.caller,
                code = %code.redacted(),
                "unknown cancel code"
            );
            return Ok(ActionResult::UnknownCode);
        };
        if let Some(counted) = counted
            && let Err(e) = self.store.code_was_right(&counted, code, now, &rules).await
        {
            // The caller typed the right code: go on. The counts stay
            // taken (the careful side) and the number is not bound.
            tracing::error!(error = %e, "a right code's counts were not given back");
        }
        let settings = self.store.settings().await?;
        let school = self.store.school_calendar(&child.school).await?;
        let rules = RuleContext {
            settings: &settings,
            calendar: ServiceCalendar::new(&school, child.class_weekdays),
            now,
        };
        Ok(ActionResult::Identified {
            child: ChildRef::new(child.id.0, code.clone()),
            target_day: rules.target_day(),
        })
    }

    async fn try_run(
        &self,
        from: &CallFrom,
        action: &Action,
        now: DateTime<Utc>,
    ) -> Result<ActionResult, StoreError> {
        match action {
            Action::CheckWindow => {
                let settings = self.store.settings().await?;
                Ok(ActionResult::Window {
                    open: settings.phone_window_open(now),
                    opens: settings.phone_window_opens,
                    cutoff: settings.cutoff,
                })
            }
            Action::IdentifyChild { code } => self.identify(from, code, now).await,
            Action::Apply { child, operation } => {
                let actor = Actor::PhoneCaller(from.caller.clone());
                let applied = self
                    .store
                    .apply(
                        ChildId(child.id()),
                        store_operation(*operation),
                        &actor,
                        Channel::Phone,
                        now,
                    )
                    .await?;
                Ok(match applied {
                    Ok(applied) => {
                        let (date, until) = first_day(&applied);
                        ActionResult::Applied { date, until }
                    }
                    Err(refusal) => ActionResult::Refused(refusal),
                })
            }
            Action::Balance { child } => {
                let Some(found) = self.store.child(ChildId(child.id())).await? else {
                    return Err(StoreError::Conflict(
                        "the child is no longer enrolled".into(),
                    ));
                };
                Ok(ActionResult::Balance(
                    self.store.ledger(&found).await?.balance_cents,
                ))
            }
        }
    }
}

/// Why a dialplan cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DialplanError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Catalogue { path: PathBuf, message: String },
    #[error("{path} is not a valid dialplan:\n{problems}")]
    Invalid { path: PathBuf, problems: Problems },
}

/// The prompt ids dialplans may name: the `<lang>/catalogue.toml` of a
/// prompt folder, or the catalogues built in.
pub fn prompt_catalogue(folder: Option<&Path>) -> Result<PromptCatalogue, DialplanError> {
    let Some(folder) = folder else {
        return Ok(PromptCatalogue::builtin());
    };
    let mut catalogue = PromptCatalogue::default();
    for lang in Lang::ALL {
        let path = folder.join(lang.code()).join("catalogue.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| DialplanError::Read {
            path: path.clone(),
            source,
        })?;
        catalogue
            .add(lang, &text)
            .map_err(|message| DialplanError::Catalogue { path, message })?;
    }
    Ok(catalogue)
}

/// Reads, parses and checks a dialplan file, ready to be shared by every
/// call; `serve` refuses to start on an error.
pub fn load_dialplan(
    path: &Path,
    catalogue: &PromptCatalogue,
) -> Result<Arc<Dialplan>, DialplanError> {
    let text = std::fs::read_to_string(path).map_err(|source| DialplanError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Dialplan::load(&text, catalogue)
        .map(Arc::new)
        .map_err(|problems| DialplanError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
}

fn store_operation(operation: PhoneOperation) -> Operation {
    let day = |date, request| Operation::Day { date, request };
    match operation {
        PhoneOperation::Cancel { date } => day(date, DayRequest::Absent),
        PhoneOperation::PlainMeal { date } => day(date, DayRequest::PlainMeal),
        PhoneOperation::Undo { date } => day(date, DayRequest::Booked),
        PhoneOperation::Suspend { from, until } => Operation::Suspend { from, until },
        PhoneOperation::Reactivate { from } => Operation::Reactivate { from },
    }
}

/// The day to speak in the confirmation, and the first day back of a
/// suspension.
fn first_day(applied: &Applied) -> (chrono::NaiveDate, Option<chrono::NaiveDate>) {
    match *applied {
        Applied::Day(change) => (change.date, None),
        Applied::Suspension(SuspensionChange::Start { from, until }) => (from, until),
        Applied::Suspension(
            SuspensionChange::End { resume, .. } | SuspensionChange::Remove { resume, .. },
        ) => (resume, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_budget_follows_the_codes_in_use_unless_set() {
        let config = GuardConfig::default();
        let five = config.rules(&CodeSpace::new([(5, 1_000)]));
        assert_eq!((five.line.per_year_rate(), five.line.burst), (50, 1));
        assert_eq!((five.trunk.per_year_rate(), five.trunk.burst), (25, 1));
        assert_eq!(five.caller, Backoff::default());
        // Reissued to 8 digits: a thousand times the room, a day's share
        // at once.
        let eight = config.rules(&CodeSpace::new([(8, 1_000)]));
        assert_eq!(
            (eight.line.per_year_rate(), eight.line.burst),
            (50_000, 137)
        );
        let set = GuardConfig {
            line_per_year: Some(12),
            line_burst: Some(6),
            trunk_percent: 100,
            ..config
        };
        let rules = set.rules(&CodeSpace::new([(5, 1_000)]));
        assert_eq!((rules.line.per_year_rate(), rules.line.burst), (12, 6));
        assert_eq!(rules.trunk, rules.line);
    }
}
