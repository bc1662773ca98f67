//! `--store-check`: after a run against our own server, every completed
//! call that pressed `1` after a cancel code must have left exactly one
//! cancellation, read from the server's store (its SQLite file while it
//! runs, or any URL `Store::open` takes): the call records (R12) written
//! since the run began, and each named child's successful cancels.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};

use super::stats::StoreCheck;
use crate::bookings::CancelCode;
use crate::store::{Store, StoreError};

/// A database URL from `--store-check`: a URL as is, a path as SQLite.
pub fn store_url(arg: &str) -> String {
    if arg.contains("://") {
        arg.to_owned()
    } else {
        format!("sqlite://{arg}")
    }
}

/// The id of the newest call record (0 if none): calls of the run are
/// those after it.
pub async fn last_call_id(store: &Store) -> Result<i64, StoreError> {
    let (from, to) = all_time();
    Ok(store.calls(from, to).await?.last().map_or(0, |(id, _)| *id))
}

/// Compares the run's cancelling calls (`codes`, one per call) with the
/// call records stored after `since`.
pub async fn check(store: &Store, since: i64, codes: &[String]) -> Result<StoreCheck, StoreError> {
    let mut expected: BTreeMap<i64, u64> = BTreeMap::new();
    let mut problems = Vec::new();
    for code in codes.iter().collect::<BTreeSet<_>>() {
        let child = match CancelCode::parse(code) {
            Ok(c) => store.child_by_cancel_code(&c).await?,
            Err(_) => None,
        };
        match child {
            Some(child) => {
                let n = codes.iter().filter(|c| *c == code).count() as u64;
                *expected.entry(child.id.0).or_default() += n;
            }
            None => problems.push(format!(
                "code ****{} names no child",
                code.chars().last().unwrap_or('?')
            )),
        }
    }
    let (from, to) = all_time();
    let mut ok_cancels: BTreeMap<i64, u64> = BTreeMap::new();
    let mut cancel_operations = 0u64;
    for (_, record) in store
        .calls(from, to)
        .await?
        .into_iter()
        .filter(|(id, _)| *id > since)
    {
        for op in record.operations.as_array().into_iter().flatten() {
            if op.get("operation").and_then(|o| o.as_str()) != Some("cancel") {
                continue;
            }
            cancel_operations += 1;
            if op.get("result").and_then(|r| r.as_str()) == Some("ok")
                && let Some(child) = op.get("child").and_then(|c| c.as_i64())
            {
                *ok_cancels.entry(child).or_default() += 1;
            }
        }
    }
    let mut check = StoreCheck {
        calls_pressing_1: codes.len() as u64,
        cancel_operations,
        children_expected: expected.len() as u64,
        ..StoreCheck::default()
    };
    for child in expected.keys() {
        match ok_cancels.get(child).copied().unwrap_or(0) {
            0 => {
                check.children_not_cancelled += 1;
                problems.push(format!(
                    "child {child}: no successful cancellation recorded"
                ));
            }
            1 => check.children_cancelled_once += 1,
            n => {
                check.children_cancelled_twice_or_more += 1;
                problems.push(format!("child {child}: {n} successful cancellations"));
            }
        }
    }
    for child in ok_cancels.keys().filter(|c| !expected.contains_key(c)) {
        problems.push(format!(
            "child {child}: cancelled by a call the run did not count"
        ));
    }
    if cancel_operations != check.calls_pressing_1 {
        problems.push(format!(
            "{} calls pressed 1, the store recorded {} cancel operations",
            check.calls_pressing_1, cancel_operations
        ));
    }
    check.ok = problems.is_empty();
    check.problems = problems;
    Ok(check)
}

fn all_time() -> (DateTime<Utc>, DateTime<Utc>) {
    let from = Utc.timestamp_opt(0, 0).single().unwrap_or_default();
    let to = Utc
        .timestamp_opt(32_503_680_000, 0)
        .single()
        .unwrap_or_default();
    (from, to)
}
