//! The call record (R12): who called which number, when, the codes tried
//! (redacted) and the operations with their results. Assembled by the
//! session as the call goes; the runtime stamps the wall-clock times and
//! stores it (`Store::record_call`, on the API branch; `mensa calls`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::actions::PhoneOperation;
use super::speech::Lang;

/// Everything a finished call leaves behind, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    /// The caller's number as the trunk gave it (personal data: store it,
    /// do not log it).
    pub caller: String,
    /// The number called (which route, which dialplan).
    pub called: String,
    pub started_at: DateTime<Utc>,
    /// Set when the call ends ([`super::Session::finish`]).
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "lang_code")]
    pub language: Lang,
    /// Each code typed, redacted (`CancelCode::redacted`), with what it gave.
    pub codes: Vec<CodeTried>,
    pub operations: Vec<OperationRecord>,
    pub ended_by: Option<EndedBy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeTried {
    /// `****3`; a typed sequence that is not a code at all is `invalid(N)`
    /// with its length.
    pub redacted: String,
    pub outcome: CodeOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeOutcome {
    Known,
    Unknown,
    /// Not looked up: the caller number is throttled.
    Throttled,
    /// The lookup failed (database).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationRecord {
    /// The child's store id.
    pub child: i64,
    pub operation: PhoneOperation,
    /// `ok`, a refusal kind (`already_absent`...), or `failed`.
    pub result: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", content = "state", rename_all = "snake_case")]
pub enum EndedBy {
    /// The caller hung up (in this state).
    Caller(String),
    /// The dialplan hung up in this `hangup` state.
    Dialplan(String),
    /// The dialplan's `max_call_seconds` passed.
    MaxDuration,
    /// The engine met a state it could not run (a bug or an unchecked
    /// dialplan); logged.
    Error(String),
}

fn lang_code<S: serde::Serializer>(lang: &Lang, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(lang.code())
}

impl CallRecord {
    pub fn new(caller: &str, called: &str, started_at: DateTime<Utc>) -> CallRecord {
        CallRecord {
            caller: caller.to_string(),
            called: called.to_string(),
            started_at,
            ended_at: None,
            language: Lang::It,
            codes: Vec::new(),
            operations: Vec::new(),
            ended_by: None,
        }
    }
}
