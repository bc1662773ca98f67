//! The bookings core: the pure rules of SPEC §3 (R1–R13).
//!
//! Nothing here does I/O or reads the system clock: every rule is a
//! function of the data and of `now`, passed in. Times are interpreted in
//! the ente's time zone ([`EnteSettings::timezone`], default Europe/Rome).
//!
//! | rule | where |
//! |---|---|
//! | R1 service day | [`calendar::ServiceCalendar::service_on`] |
//! | R2 automatic booking | [`days::ChildDays::status_on`] (only exceptions are stored) |
//! | R3 cutoff | [`settings::EnteSettings::is_open`] |
//! | R4, R8, R9 day changes | [`days::RuleContext::plan_day_change`] |
//! | R5 phone window | [`settings::EnteSettings::phone_window_open`] |
//! | R6 target day | [`days::RuleContext::target_day`] |
//! | R7 suspension | [`days::RuleContext::plan_suspension`], [`days::RuleContext::plan_reactivation`] |
//! | R10 closing | [`closing`] |
//! | R11 credit | [`ledger`] |
//! | R12 audit | [`Actor`], [`Channel`] (stored by the store with every change) |
//! | R13 special diets | [`Diet`], counted in [`closing::KitchenReport`] |
//! | dates anyone may name | [`reach::Reach`] (the school calendar's reach) |
//! | codes at rest, new codes | [`codes`] (keyed hashes, CSPRNG) |
//! | guessing codes on the phone | [`guessing`] (the arithmetic, back-off, budgets) |

pub mod calendar;
pub mod closing;
pub mod codes;
pub mod days;
pub mod fiscal_code;
pub mod guessing;
pub mod ids;
pub mod ledger;
pub mod pagopa;
pub mod pii;
pub mod reach;
pub mod settings;

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use calendar::{Closure, NoService, SchoolCalendar, ServiceCalendar, Weekdays};
pub use days::{
    ChildDays, DayChange, DayRequest, DayStatus, MarkKind, RuleContext, SuspensionChange,
};
pub use ids::{CancelCode, Cents, ClassId, FiscalCode, IdError, SchoolId, UserCode};
pub use pii::{Password, PhoneNumber, Pii};
pub use reach::{DateError, OutOfReach, Reach};
pub use settings::{EnteSettings, LateRequestPolicy};

/// The wall clock the rules are given. Only the runtime reads the system
/// clock; tests and `--now` use a clock set by hand.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Which clock a process runs under: the system's, or one set by hand
/// (`serve --now`). The store records it with each closing (R10), because
/// a closing made under a clock set by hand charges real meals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    #[default]
    Real,
    Shifted,
}

impl ClockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::Real => "real",
            ClockKind::Shifted => "shifted",
        }
    }
}

/// The channel a change came through (R12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Portal,
    App,
    Phone,
    Operator,
    System,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Portal => "portal",
            Channel::App => "app",
            Channel::Phone => "phone",
            Channel::Operator => "operator",
            Channel::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "portal" => Some(Channel::Portal),
            "app" => Some(Channel::App),
            "phone" => Some(Channel::Phone),
            "operator" => Some(Channel::Operator),
            "system" => Some(Channel::System),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a change (R12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Parent(FiscalCode),
    Delegate(FiscalCode),
    Operator(String),
    /// The caller's number as the trunk gave it (may be anonymous).
    PhoneCaller(PhoneNumber),
    System,
}

impl Actor {
    /// The form stored in the audit log: `parent:RSSMRA80A01C034P`, in
    /// clear (the audit must say who; its retention is a setting).
    pub fn audit_form(&self) -> String {
        match self {
            Actor::Parent(cf) => format!("parent:{}", cf.as_str()),
            Actor::Delegate(cf) => format!("delegate:{}", cf.as_str()),
            Actor::Operator(name) => format!("operator:{name}"),
            Actor::PhoneCaller(number) => format!("phone:{}", number.expose()),
            Actor::System => "system".into(),
        }
    }
}

/// A special diet (R13), entered by operators from the office's certificate.
/// `none` means the ordinary menu; any other word is a kind counted apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Diet(String);

impl Diet {
    pub fn none() -> Diet {
        Diet("none".into())
    }

    /// Lower-case words with `-` or `_`, e.g. `celiac`, `no-pork`.
    pub fn parse(s: &str) -> Result<Diet, String> {
        let s = s.trim().to_lowercase();
        let ok = !s.is_empty()
            && s.len() <= 40
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(Diet(s))
        } else {
            Err(format!(
                "diet {s:?} must be a lower-case word such as \"celiac\""
            ))
        }
    }

    pub fn is_special(&self) -> bool {
        self.0 != "none"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A business refusal: a value, not an error. The IVR maps it to a prompt,
/// the API to a status and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    #[error("the cutoff for {date} has passed")]
    AfterCutoff { date: NaiveDate },
    #[error("there is no service on {date} ({reason})")]
    NoServiceThatDay { date: NaiveDate, reason: NoService },
    #[error("the service is suspended on {date}")]
    Suspended { date: NaiveDate },
    #[error("the meal of {date} is already cancelled")]
    AlreadyAbsent { date: NaiveDate },
    #[error("a plain meal is already booked on {date}")]
    AlreadyPlainMeal { date: NaiveDate },
    #[error("there is nothing to undo on {date}")]
    NothingToUndo { date: NaiveDate },
    #[error("there is no service day ahead in this school year")]
    NoServiceDayAhead,
    #[error("the service is already suspended from {since}")]
    AlreadySuspended { since: NaiveDate },
    #[error("the return date {until} is not after the start {from}")]
    ReturnNotAfterStart { from: NaiveDate, until: NaiveDate },
    #[error("the service is not suspended")]
    NotSuspended,
    #[error("the day {date} is already closed")]
    DayClosed { date: NaiveDate },
    /// The date asked for is outside the child's school calendar's reach
    /// ([`reach::Reach::of_school`]): nothing is planned for it.
    #[error("{date} is outside the school calendar's reach, {} to {}", reach.first, reach.last)]
    OutOfReach { date: NaiveDate, reach: Reach },
}

#[cfg(test)]
mod rules_tests;
