//! What a call session asks of the outside world, and what it is told
//! back: the session never awaits (STYLE.md). A database lookup or change
//! is an [`Action`] it emits; the runtime runs it (against the store, see
//! `runtime::ivr_actions`) and feeds the [`ActionResult`] back.
//!
//! Also the keypad [`Key`], as the session sees it once media has
//! de-duplicated it.

use std::fmt;

use chrono::{NaiveDate, NaiveTime};
use serde::Serialize;

use crate::bookings::{CancelCode, Cents, Refusal};

/// A keypad key: `0`–`9`, `*`, `#`, and the rarely seen `A`–`D`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Key(char);

impl Key {
    pub const STAR: Key = Key('*');
    pub const HASH: Key = Key('#');

    /// The key for a character, if it is one (`a`–`d` are taken as upper case).
    pub fn from_char(c: char) -> Option<Key> {
        let c = c.to_ascii_uppercase();
        matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(Key(c))
    }

    pub fn as_char(self) -> char {
        self.0
    }

    pub fn is_digit(self) -> bool {
        self.0.is_ascii_digit()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An identified child, as the session keeps it for the rest of the call:
/// the store's key, and the code it was found by (for lookups that need
/// the whole child, such as the credit). Never printed in clear: the
/// code's `Debug` is redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRef {
    id: i64,
    code: CancelCode,
}

impl ChildRef {
    pub fn new(id: i64, code: CancelCode) -> ChildRef {
        ChildRef { id, code }
    }

    /// The store's id of the child (`store::ChildId`).
    pub fn id(&self) -> i64 {
        self.id
    }

    pub fn code(&self) -> &CancelCode {
        &self.code
    }
}

/// A change the caller asked for (SPEC §4 keys 1–5), on dates the session
/// has already worked out (the target day, a DDMM date).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum PhoneOperation {
    /// `1`: disdetta of the target day.
    Cancel { date: NaiveDate },
    /// `2`: pasto in bianco on the target day.
    PlainMeal { date: NaiveDate },
    /// `5`: undo the cancellation or plain meal of the target day.
    Undo { date: NaiveDate },
    /// `3`: suspension from the target day, until the first day back.
    Suspend {
        from: NaiveDate,
        until: Option<NaiveDate>,
    },
    /// `4`: reactivation from a date (the target day by default).
    Reactivate { from: NaiveDate },
}

/// What the session asks the runtime to do. `Debug` shows codes redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// R5: is the phone window open now? Answered with [`ActionResult::Window`].
    CheckWindow,
    /// Find the child with this codice disdetta (subject to the caller's
    /// throttle) and its target day (R6).
    IdentifyChild { code: CancelCode },
    /// Apply an operation through the bookings core, durably.
    Apply {
        child: ChildRef,
        operation: PhoneOperation,
    },
    /// The child's credit (R11).
    Balance { child: ChildRef },
}

/// What the runtime found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionResult {
    /// For [`Action::CheckWindow`]: whether the window is open, and its
    /// hours to speak when it is not.
    Window {
        open: bool,
        opens: NaiveTime,
        cutoff: NaiveTime,
    },
    /// For [`Action::IdentifyChild`]: found; `target_day` is `None` when
    /// there is no service day ahead in the school year.
    Identified {
        child: ChildRef,
        target_day: Option<NaiveDate>,
    },
    /// For [`Action::IdentifyChild`]: no child has that code.
    UnknownCode,
    /// For [`Action::IdentifyChild`]: this caller number typed too many
    /// wrong codes recently; the code was not even looked up.
    Throttled,
    /// For [`Action::Apply`]: committed. `date` is the first day the change
    /// affects (the resume day of a reactivation), `until` the first day
    /// back of a suspension.
    Applied {
        date: NaiveDate,
        until: Option<NaiveDate>,
    },
    /// For [`Action::Apply`]: refused by the rules; nothing changed.
    Refused(Refusal),
    /// For [`Action::Balance`].
    Balance(Cents),
    /// Infrastructure failure (logged by the runtime, never spoken in detail).
    Failed,
}

/// The name of a refusal as a dialplan result key: the `kind` of its JSON
/// form (`already_absent`, `suspended`, ...).
pub fn refusal_key(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::AfterCutoff { .. } => "after_cutoff",
        Refusal::NoServiceThatDay { .. } => "no_service_that_day",
        Refusal::Suspended { .. } => "suspended",
        Refusal::AlreadyAbsent { .. } => "already_absent",
        Refusal::AlreadyPlainMeal { .. } => "already_plain_meal",
        Refusal::NothingToUndo { .. } => "nothing_to_undo",
        Refusal::NoServiceDayAhead => "no_service_day_ahead",
        Refusal::AlreadySuspended { .. } => "already_suspended",
        Refusal::ReturnNotAfterStart { .. } => "return_not_after_start",
        Refusal::NotSuspended => "not_suspended",
        Refusal::DayClosed { .. } => "day_closed",
        Refusal::OutOfReach { .. } => "out_of_reach",
    }
}

/// Every refusal key, for the dialplan check.
pub const REFUSAL_KEYS: [&str; 12] = [
    "after_cutoff",
    "no_service_that_day",
    "suspended",
    "already_absent",
    "already_plain_meal",
    "nothing_to_undo",
    "no_service_day_ahead",
    "already_suspended",
    "return_not_after_start",
    "not_suspended",
    "day_closed",
    "out_of_reach",
];

/// One refusal of each kind (dates are irrelevant): what a call may have
/// to say with `speech::refusal_prompt`.
pub static REFUSAL_SAMPLES: std::sync::LazyLock<Vec<Refusal>> = std::sync::LazyLock::new(|| {
    let date = NaiveDate::MIN;
    vec![
        Refusal::AfterCutoff { date },
        Refusal::NoServiceThatDay {
            date,
            reason: crate::bookings::NoService::OutsideSchoolYear,
        },
        Refusal::Suspended { date },
        Refusal::AlreadyAbsent { date },
        Refusal::AlreadyPlainMeal { date },
        Refusal::NothingToUndo { date },
        Refusal::NoServiceDayAhead,
        Refusal::AlreadySuspended { since: date },
        Refusal::ReturnNotAfterStart {
            from: date,
            until: date,
        },
        Refusal::NotSuspended,
        Refusal::DayClosed { date },
        Refusal::OutOfReach {
            date,
            reach: crate::bookings::Reach::FRAME,
        },
    ]
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse() {
        for c in "0123456789*#ABCD".chars() {
            assert_eq!(Key::from_char(c).map(Key::as_char), Some(c));
        }
        assert_eq!(Key::from_char('a'), Key::from_char('A'));
        for c in "EeX! ".chars() {
            assert_eq!(Key::from_char(c), None);
        }
    }

    #[test]
    fn codes_never_print_in_clear() {
        let code = CancelCode::parse("58213").unwrap();
        let child = ChildRef::new(7, code.clone());
        let printed = format!(
            "{:?} {:?} {:?}",
            Action::IdentifyChild { code },
            Action::Balance {
                child: child.clone()
            },
            ActionResult::Identified {
                child,
                target_day: None
            }
        );
        assert!(!printed.contains("58213"), "{printed}");
        assert!(printed.contains("****3"), "{printed}");
    }

    #[test]
    fn one_sample_of_each_refusal() {
        let kinds: std::collections::BTreeSet<&str> =
            REFUSAL_SAMPLES.iter().map(refusal_key).collect();
        assert_eq!(kinds.len(), REFUSAL_KEYS.len());
    }

    #[test]
    fn refusal_keys_match_the_json_kind() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 10).unwrap();
        for refusal in [
            Refusal::AfterCutoff { date: d },
            Refusal::Suspended { date: d },
            Refusal::AlreadyAbsent { date: d },
            Refusal::AlreadyPlainMeal { date: d },
            Refusal::NothingToUndo { date: d },
            Refusal::NoServiceDayAhead,
            Refusal::AlreadySuspended { since: d },
            Refusal::ReturnNotAfterStart { from: d, until: d },
            Refusal::NotSuspended,
            Refusal::DayClosed { date: d },
            Refusal::OutOfReach {
                date: d,
                reach: crate::bookings::Reach::FRAME,
            },
        ] {
            let json = serde_json::to_value(&refusal).unwrap();
            assert_eq!(json["kind"], refusal_key(&refusal));
            assert!(REFUSAL_KEYS.contains(&refusal_key(&refusal)));
        }
    }
}
