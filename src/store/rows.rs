//! Conversions between the stored forms (ISO date text, epoch
//! milliseconds, words) and the domain types. A stored value that does not
//! parse is reported as [`StoreError::Corrupt`], never a panic.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::StoreError;
use crate::bookings::{Channel, Weekdays};

pub fn date_text(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

pub fn parse_date(text: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| StoreError::Corrupt(format!("bad stored date {text:?}")))
}

pub fn parse_time(text: &str) -> Result<NaiveTime, StoreError> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .map_err(|_| StoreError::Corrupt(format!("bad stored time {text:?}")))
}

pub fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("bad stored instant {ms}")))
}

pub fn parse_channel(text: &str) -> Result<Channel, StoreError> {
    Channel::parse(text).ok_or_else(|| StoreError::Corrupt(format!("bad stored channel {text:?}")))
}

pub fn weekdays(bits: i64) -> Weekdays {
    Weekdays::from_bits(u8::try_from(bits & 0x7f).unwrap_or(0))
}

/// Reads a date column.
pub fn get_date(row: &AnyRow, column: &str) -> Result<NaiveDate, StoreError> {
    let text: String = row.try_get(column)?;
    parse_date(&text)
}

/// Reads a nullable date column.
pub fn get_opt_date(row: &AnyRow, column: &str) -> Result<Option<NaiveDate>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.as_deref().map(parse_date).transpose()
}
