//! The action runner of the phone line: runs an [`Action`] emitted by
//! a call session against the store, at the wall clock's `now`, and gives
//! back the [`ActionResult`] to feed to the session.
//!
//! Every operation goes through [`Store::apply`] (one transaction, audited
//! with the caller's number and the phone channel): when the runner
//! returns [`ActionResult::Applied`] the change is durable, so the caller
//! hears the confirmation only after it is (SPEC §6).
//!
//! ## The caller throttle
//!
//! Besides the session's own limit (three wrong codes end a call), the
//! runner counts wrong codes per caller number over a sliding window, in
//! memory ([`ThrottleConfig`]: by default 10 wrong codes in an hour).
//! Past the limit, `identify_child` answers [`ActionResult::Throttled`]
//! without looking the code up ("service temporarily unavailable"), until
//! the oldest wrong code leaves the window. Calls without a caller number
//! (anonymous) share one count. The counts are per process: behind a load
//! balancer each node counts its own calls, which bounds a guesser to the
//! limit times the number of nodes; a restart forgets them.
//!
//! ## Loading dialplans
//!
//! [`load_dialplan`] reads and checks a dialplan file against a prompt
//! catalogue ([`prompt_catalogue`]); `mensa dialplan check` uses it, and
//! `serve` must (and must refuse to start on an error).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::bookings::{Actor, Channel, Clock, DayRequest, RuleContext, ServiceCalendar};
use crate::bookings::{PhoneNumber, SuspensionChange};
use crate::ivr::{
    Action, ActionResult, ChildRef, Dialplan, Lang, PhoneOperation, Problems, PromptCatalogue,
};
use crate::store::{Applied, ChildId, Operation, Store, StoreError};

/// Limits of the caller throttle (part of the server's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Wrong codes from one number within `window` before it is refused.
    pub max_wrong_codes: u32,
    pub window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> ThrottleConfig {
        ThrottleConfig {
            max_wrong_codes: 10,
            window: Duration::hours(1),
        }
    }
}

/// Runs the phone line's actions. One per process, shared by every call.
pub struct IvrActions {
    store: Store,
    clock: Arc<dyn Clock>,
    throttle: CallerThrottle,
}

impl IvrActions {
    pub fn new(store: Store, clock: Arc<dyn Clock>, throttle: ThrottleConfig) -> IvrActions {
        IvrActions {
            store,
            clock,
            throttle: CallerThrottle::new(throttle),
        }
    }

    /// Runs `action` for a call from `caller`. Never fails: store errors
    /// are logged and answered with [`ActionResult::Failed`].
    pub async fn run(&self, caller: &PhoneNumber, action: &Action) -> ActionResult {
        let now = self.clock.now();
        match self.try_run(caller, action, now).await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!(
                    %caller,
                    ?action,
                    error = %e,
                    "phone action failed"
                );
                ActionResult::Failed
            }
        }
    }

    async fn try_run(
        &self,
        caller: &PhoneNumber,
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
            Action::IdentifyChild { code } => {
                if self.throttle.is_blocked(caller.expose(), now) {
                    tracing::warn!(%caller, "caller throttled");
                    return Ok(ActionResult::Throttled);
                }
                let Some(child) = self.store.child_by_cancel_code(code).await? else {
                    self.throttle.wrong_code(caller.expose(), now);
                    tracing::info!(
                        %caller,
                        code = %code.redacted(),
                        "unknown cancel code"
                    );
                    return Ok(ActionResult::UnknownCode);
                };
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
            Action::Apply { child, operation } => {
                let actor = Actor::PhoneCaller(caller.clone());
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
                let Some(found) = self.store.child_by_cancel_code(child.code()).await? else {
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

/// Wrong codes per caller number over a sliding window.
struct CallerThrottle {
    config: ThrottleConfig,
    wrong: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
}

/// Above this many numbers tracked, expired entries are swept.
const SWEEP_ABOVE: usize = 10_000;

impl CallerThrottle {
    fn new(config: ThrottleConfig) -> CallerThrottle {
        CallerThrottle {
            config,
            wrong: Mutex::new(HashMap::new()),
        }
    }

    fn key(caller: &str) -> String {
        let caller = caller.trim();
        if caller.is_empty() || caller.eq_ignore_ascii_case("anonymous") {
            "anonymous".into()
        } else {
            caller.to_string()
        }
    }

    fn is_blocked(&self, caller: &str, now: DateTime<Utc>) -> bool {
        // A poisoned lock only means another call panicked while counting:
        // the counts are still usable.
        let mut wrong = self.wrong.lock().unwrap_or_else(|e| e.into_inner());
        let Some(times) = wrong.get_mut(&Self::key(caller)) else {
            return false;
        };
        let since = now - self.config.window;
        while times.front().is_some_and(|t| *t <= since) {
            times.pop_front();
        }
        times.len() >= self.config.max_wrong_codes as usize
    }

    fn wrong_code(&self, caller: &str, now: DateTime<Utc>) {
        let mut wrong = self.wrong.lock().unwrap_or_else(|e| e.into_inner());
        if wrong.len() > SWEEP_ABOVE {
            let since = now - self.config.window;
            wrong.retain(|_, times| times.back().is_some_and(|t| *t > since));
        }
        let times = wrong.entry(Self::key(caller)).or_default();
        times.push_back(now);
        // Only the last `max` matter.
        while times.len() > self.config.max_wrong_codes as usize {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_slides() {
        let t = CallerThrottle::new(ThrottleConfig {
            max_wrong_codes: 2,
            window: Duration::hours(1),
        });
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(!t.is_blocked("+39333", t0));
        t.wrong_code("+39333", t0);
        t.wrong_code("+39333", t0 + Duration::minutes(10));
        assert!(t.is_blocked("+39333", t0 + Duration::minutes(11)));
        assert!(!t.is_blocked("+39334", t0 + Duration::minutes(11)));
        assert!(!t.is_blocked("+39333", t0 + Duration::minutes(61)));
        t.wrong_code("", t0);
        t.wrong_code("anonymous", t0);
        assert!(t.is_blocked("Anonymous", t0));
    }
}
