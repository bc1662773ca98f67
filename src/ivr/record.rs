//! The call record (R12): who called which number, when, the codes tried
//! (redacted) and the operations with their results. Assembled by the
//! session as the call goes; the runtime stamps the wall-clock times and
//! stores it (`Store::record_call`, on the API branch; `mensa calls`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::actions::PhoneOperation;
use super::speech::Lang;
use crate::bookings::PhoneNumber;

/// Everything a finished call leaves behind, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    /// The caller's number as the trunk gave it: stored in clear, shown
    /// redacted.
    #[serde(serialize_with = "crate::bookings::pii::exposed")]
    pub caller: PhoneNumber,
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
    /// The codes as the `calls` table stores them (API branch:
    /// `store::CodeAttempt { code, valid }`): redacted, and whether each
    /// was a child's code.
    pub fn codes_for_storage(&self) -> Vec<(String, bool)> {
        self.codes
            .iter()
            .map(|c| (c.redacted.clone(), c.outcome == CodeOutcome::Known))
            .collect()
    }

    /// The operations as the `calls` table stores them (a JSON list): each
    /// operation with its child and result, then how the call ended and
    /// in which language.
    pub fn operations_json(&self) -> serde_json::Value {
        let mut list: Vec<serde_json::Value> = self
            .operations
            .iter()
            .map(|o| {
                let mut value = serde_json::to_value(o.operation).unwrap_or_default();
                if let Some(map) = value.as_object_mut() {
                    map.insert("child".into(), o.child.into());
                    map.insert("result".into(), o.result.clone().into());
                }
                value
            })
            .collect();
        list.push(serde_json::json!({
            "operation": "end",
            "ended_by": self.ended_by,
            "language": self.language.code(),
        }));
        serde_json::Value::Array(list)
    }

    pub fn new(caller: &PhoneNumber, called: &str, started_at: DateTime<Utc>) -> CallRecord {
        CallRecord {
            caller: caller.clone(),
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

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};
    use serde_json::json;

    use super::*;

    #[test]
    fn the_stored_form() {
        let start = Utc.with_ymd_and_hms(2026, 12, 7, 18, 0, 0).unwrap();
        let mut record = CallRecord::new(&PhoneNumber::new("+393331234567"), "800082653", start);
        record.codes.push(CodeTried {
            redacted: "****1".into(),
            outcome: CodeOutcome::Unknown,
        });
        record.codes.push(CodeTried {
            redacted: "****3".into(),
            outcome: CodeOutcome::Known,
        });
        record.operations.push(OperationRecord {
            child: 7,
            operation: PhoneOperation::Cancel {
                date: NaiveDate::from_ymd_opt(2026, 12, 10).unwrap(),
            },
            result: "ok".into(),
        });
        record.ended_by = Some(EndedBy::Caller("menu".into()));
        assert_eq!(
            record.codes_for_storage(),
            [("****1".to_string(), false), ("****3".to_string(), true)]
        );
        assert_eq!(
            record.operations_json(),
            json!([
                {"operation": "cancel", "date": "2026-12-10", "child": 7, "result": "ok"},
                {"operation": "end", "ended_by": {"by": "caller", "state": "menu"}, "language": "it"}
            ])
        );
    }
}
