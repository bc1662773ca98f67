//! Conversions between the stored forms (ISO date text, epoch
//! milliseconds, words) and the domain types. A stored value that does not
//! parse is reported as [`StoreError::Corrupt`], never a panic.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::StoreError;
use crate::bookings::{Channel, Weekdays};

/// The one way a date goes into SQL, as a value written or a query
/// parameter: its ISO text, which the database compares as text
/// (docs/decisions.md). That is only sound for years 0000 to 9999: chrono
/// prints `-0001-…` and `+10000-…` beyond them, and `"+10000-01-01" <
/// "2026-…"` as text. Such a date is refused here, before any SQL, as
/// [`StoreError::UnstorableDate`], whoever forgot to check it against the
/// school calendar's reach (`bookings::reach`, which every boundary does).
pub fn date_text(date: NaiveDate) -> Result<String, StoreError> {
    if (0..=9999).contains(&date.year()) {
        Ok(date.format("%Y-%m-%d").to_string())
    } else {
        Err(StoreError::UnstorableDate(date))
    }
}

/// A nullable date for SQL ([`date_text`]).
pub fn opt_date_text(date: Option<NaiveDate>) -> Result<Option<String>, StoreError> {
    date.map(date_text).transpose()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The reason for the check: beyond four-digit years the text no
    /// longer sorts as the dates do.
    #[test]
    fn only_dates_whose_text_sorts_as_a_date_pass_the_edge() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let storable = [
            d(0, 1, 1),
            d(1999, 12, 31),
            d(2026, 12, 10),
            d(9999, 12, 31),
        ];
        let texts: Vec<String> = storable.iter().map(|x| date_text(*x).unwrap()).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted, "text order is date order");
        for far in [
            d(-1, 12, 31),
            d(10000, 1, 1),
            NaiveDate::MIN,
            NaiveDate::MAX,
        ] {
            assert!(
                matches!(date_text(far), Err(StoreError::UnstorableDate(x)) if x == far),
                "{far}"
            );
            assert!(opt_date_text(Some(far)).is_err());
        }
        // What goes wrong without the edge: +10000 sorts before 2026.
        assert!(d(10000, 1, 1).to_string() < d(2026, 1, 1).to_string());
        assert_eq!(opt_date_text(None).unwrap(), None);
    }
}
