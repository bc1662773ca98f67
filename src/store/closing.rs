//! R10 Closing: freeze a day, charge each present child once, and make the
//! kitchen report final. Idempotent: the day's row is closed once, and a
//! unique index allows one meal charge per child and day.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::children::load_settings;
use super::rows::{self, date_text, get_date, millis};
use super::{Store, StoreError};
use crate::bookings::closing::{Attendance, KitchenReport};
use crate::bookings::days::DayStatus;
use crate::bookings::{
    Cents, ClassId, Diet, MarkKind, NoService, SchoolCalendar, SchoolId, ServiceCalendar,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ClosingOutcome {
    Closed {
        date: NaiveDate,
        meals_charged: u64,
        total_cents: Cents,
    },
    AlreadyClosed {
        date: NaiveDate,
    },
    /// The day's cutoff is still ahead: nothing is frozen yet.
    NotYet {
        date: NaiveDate,
    },
}

/// Which clocks the closings ran under ([`Store::closings_by_clock`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClosingClocks {
    /// The last day closed under the real clock.
    pub last_real: Option<NaiveDate>,
    /// The last day closed under a clock set by hand, at an instant that
    /// is still in the real future.
    pub last_shifted_ahead: Option<NaiveDate>,
}

/// One child as the closing sees it.
struct ChildRow {
    id: i64,
    school: SchoolId,
    class: ClassId,
    class_weekdays: Option<i64>,
    diet: Diet,
}

impl Store {
    /// R10: closes `date` if its cutoff has passed at `now`.
    pub async fn close_day(
        &self,
        date: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<ClosingOutcome, StoreError> {
        let day = date_text(date)?;
        let mut tx = self.write.begin().await?;
        let settings = load_settings(&mut tx).await?;
        if settings.is_open(date, now) {
            return Ok(ClosingOutcome::NotYet { date });
        }
        // Close the day's row first: this waits for changes still holding
        // it, and makes a second closing find it closed. It says which
        // clock closed it, for `serve`'s guard against mixing clocks
        // (`runtime::clock::check_clocks`).
        let closed = sqlx::query(
            "INSERT INTO days (date, closed_at_ms, clock) VALUES ($1, $2, $3) \
             ON CONFLICT (date) DO UPDATE SET closed_at_ms = excluded.closed_at_ms, \
             clock = excluded.clock WHERE days.closed_at_ms IS NULL",
        )
        .bind(&day)
        .bind(millis(now))
        .bind(self.clock.as_str())
        .execute(&mut *tx)
        .await?;
        if closed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(ClosingOutcome::AlreadyClosed { date });
        }
        freeze_attendance(&mut tx, date).await?;
        let charges = sqlx::query(
            "INSERT INTO ledger (child_id, at_ms, kind, amount_cents, date, description) \
             SELECT a.child_id, $1, 'meal', -COALESCE(c.meal_price_cents, $2), a.date, $3 \
             FROM attendance a JOIN children c ON c.id = a.child_id \
             WHERE a.date = $4 AND a.status IN ('booked', 'plain_meal') \
             ON CONFLICT (child_id, date) WHERE kind = 'meal' DO NOTHING",
        )
        .bind(millis(now))
        .bind(settings.meal_price.0)
        .bind(format!("Pasto del {}", date.format("%d/%m/%Y")))
        .bind(&day)
        .execute(&mut *tx)
        .await?;
        let total = sqlx::query(
            "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) AS total FROM ledger \
             WHERE date = $1 AND kind = 'meal'",
        )
        .bind(&day)
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>("total")?;
        tx.commit().await?;
        let (charged, total) = (charges.rows_affected(), Cents(-total));
        Ok(ClosingOutcome::Closed {
            date,
            meals_charged: charged,
            total_cents: total,
        })
    }

    /// The kitchen report of `date`: final (from the frozen statuses) once
    /// the day is closed, a live preview before.
    pub async fn kitchen_report(&self, date: NaiveDate) -> Result<KitchenReport, StoreError> {
        let day = date_text(date)?;
        let mut conn = self.read.acquire().await?;
        let closed = sqlx::query("SELECT closed_at_ms FROM days WHERE date = $1")
            .bind(&day)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get::<Option<i64>, _>("closed_at_ms"))
            .transpose()?
            .flatten()
            .is_some();
        let rows = if closed {
            frozen_attendance(&mut conn, date).await?
        } else {
            statuses_on(&mut conn, date).await?
        };
        Ok(KitchenReport::build(date, closed, &rows))
    }

    /// Days whose cutoff has passed and that are not closed yet, from the
    /// day the service first ran (never before: a municipality that starts
    /// in December is not charged for September).
    pub async fn days_to_close(&self, now: DateTime<Utc>) -> Result<Vec<NaiveDate>, StoreError> {
        let mut conn = self.read.acquire().await?;
        let settings = load_settings(&mut conn).await?;
        let started: Option<String> =
            sqlx::query("SELECT service_started_on FROM ente WHERE id = 1")
                .fetch_one(&mut *conn)
                .await?
                .try_get("service_started_on")?;
        let Some(started) = started else {
            return Ok(Vec::new());
        };
        let started = rows::parse_date(&started)?;
        let closed: HashSet<NaiveDate> =
            sqlx::query("SELECT date FROM days WHERE closed_at_ms IS NOT NULL AND date >= $1")
                .bind(date_text(started)?)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| get_date(r, "date"))
                .collect::<Result<_, _>>()?;
        let today = settings.today(now);
        Ok(started
            .iter_days()
            .take_while(|d| *d <= today)
            .filter(|d| !settings.is_open(*d, now) && !closed.contains(d))
            .collect())
    }

    /// Which clocks the closings of this database ran under, as `serve`'s
    /// guard needs them (`runtime::clock::check_clocks`): the last day
    /// closed under the real clock, and the last day closed under a clock
    /// set by hand at an instant still ahead of `real_now` (such a clock
    /// ran ahead of the real date). Closings made before the clock was
    /// recorded count as the migration `0003_clock` judged them.
    pub async fn closings_by_clock(
        &self,
        real_now: DateTime<Utc>,
    ) -> Result<ClosingClocks, StoreError> {
        let mut conn = self.read.acquire().await?;
        let last = |rows: Option<sqlx::any::AnyRow>| -> Result<Option<NaiveDate>, StoreError> {
            match rows {
                Some(r) => rows::get_opt_date(&r, "last"),
                None => Ok(None),
            }
        };
        let real = sqlx::query(
            "SELECT MAX(date) AS last FROM days \
             WHERE closed_at_ms IS NOT NULL AND clock = 'real'",
        )
        .fetch_optional(&mut *conn)
        .await?;
        let shifted = sqlx::query(
            "SELECT MAX(date) AS last FROM days \
             WHERE closed_at_ms > $1 AND clock = 'shifted'",
        )
        .bind(millis(real_now))
        .fetch_optional(&mut *conn)
        .await?;
        Ok(ClosingClocks {
            last_real: last(real)?,
            last_shifted_ahead: last(shifted)?,
        })
    }

    /// Records the day the service first ran, once; later calls keep it.
    pub async fn mark_service_started(&self, today: NaiveDate) -> Result<NaiveDate, StoreError> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "UPDATE ente SET service_started_on = $1 WHERE id = 1 AND service_started_on IS NULL",
        )
        .bind(date_text(today)?)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT service_started_on FROM ente WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotImported)?;
        let started: Option<String> = row.try_get("service_started_on")?;
        tx.commit().await?;
        self.settings_changed();
        match started {
            Some(started) => rows::parse_date(&started),
            None => Ok(today),
        }
    }
}

/// Freezes every child's status on `date` into `attendance`, in one
/// set-based statement (a closing of 100,000 children must take well under
/// two seconds). It is the SQL twin of [`statuses_on`], which the live
/// kitchen report uses: whether the school has service that day (school
/// year, closures) is decided here in Rust by [`ServiceCalendar`], the
/// weekday (the class's rientri or the school's weekdays) and the status
/// (R2, R7, R8) in SQL. The contract suite checks that both agree.
async fn freeze_attendance(conn: &mut AnyConnection, date: NaiveDate) -> Result<(), StoreError> {
    let schools = load_all_schools(conn).await?;
    let every_day = crate::bookings::Weekdays::from_bits(0x7f);
    let open: Vec<&SchoolId> = schools
        .iter()
        .filter(|(_, cal)| ServiceCalendar::new(cal, Some(every_day)).is_service_day(date))
        .map(|(id, _)| id)
        .collect();
    if open.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (0..open.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "INSERT INTO attendance (date, child_id, status, school_id, class_id, diet) \
         SELECT $1, c.id, \
           CASE WHEN EXISTS (SELECT 1 FROM suspensions p WHERE p.child_id = c.id \
                  AND p.date_from <= $1 AND (p.date_until IS NULL OR p.date_until > $1)) \
                THEN 'suspended' \
                ELSE COALESCE(m.kind, 'booked') END, \
           c.school_id, c.class_id, c.diet \
         FROM children c \
         JOIN schools s ON s.id = c.school_id \
         LEFT JOIN classes k ON k.school_id = c.school_id AND k.id = c.class_id \
         LEFT JOIN day_marks m ON m.child_id = c.id AND m.date = $1 \
         WHERE (COALESCE(k.weekdays, s.weekdays) & $2) <> 0 AND c.school_id IN ({}) \
         ON CONFLICT (date, child_id) DO NOTHING",
        placeholders.join(", ")
    );
    let weekday_bit = 1i64 << chrono::Datelike::weekday(&date).num_days_from_monday();
    let mut query = sqlx::query(&sql).bind(date_text(date)?).bind(weekday_bit);
    for school in open {
        query = query.bind(school.as_str());
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Every child's status on `date`, computed by the rules from the stored
/// exceptions (children without service that day are left out).
async fn statuses_on(
    conn: &mut AnyConnection,
    date: NaiveDate,
) -> Result<Vec<Attendance>, StoreError> {
    let day = date_text(date)?;
    let schools = load_all_schools(conn).await?;
    let children: Vec<ChildRow> = sqlx::query(
        "SELECT c.id, c.school_id, c.class_id, c.diet, k.weekdays \
         FROM children c LEFT JOIN classes k ON k.school_id = c.school_id AND k.id = c.class_id",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        let corrupt = |e: String| StoreError::Corrupt(e);
        Ok(ChildRow {
            id: r.try_get("id")?,
            school: SchoolId::parse(&r.try_get::<String, _>("school_id")?)
                .map_err(|e| corrupt(e.to_string()))?,
            class: ClassId::parse(&r.try_get::<String, _>("class_id")?)
                .map_err(|e| corrupt(e.to_string()))?,
            class_weekdays: r.try_get("weekdays")?,
            diet: Diet::parse(&r.try_get::<String, _>("diet")?).map_err(corrupt)?,
        })
    })
    .collect::<Result<_, StoreError>>()?;
    let marks: HashMap<i64, MarkKind> =
        sqlx::query("SELECT child_id, kind FROM day_marks WHERE date = $1")
            .bind(&day)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .filter_map(|r| {
                let kind: String = r.try_get("kind").ok()?;
                Some((r.try_get("child_id").ok()?, MarkKind::parse(&kind)?))
            })
            .collect();
    let suspended: HashSet<i64> = sqlx::query(
        "SELECT child_id FROM suspensions \
         WHERE date_from <= $1 AND (date_until IS NULL OR date_until > $1)",
    )
    .bind(&day)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get("child_id"))
    .collect::<Result<_, _>>()?;

    let mut out = Vec::with_capacity(children.len());
    for child in children {
        let Some(school) = schools.get(&child.school) else {
            return Err(StoreError::Corrupt(format!(
                "unknown school {}",
                child.school
            )));
        };
        let calendar = ServiceCalendar::new(school, child.class_weekdays.map(rows::weekdays));
        let status = match calendar.service_on(date) {
            Err(_) => continue,
            Ok(()) if suspended.contains(&child.id) => DayStatus::Suspended,
            Ok(()) => match marks.get(&child.id) {
                Some(MarkKind::Absent) => DayStatus::Absent,
                Some(MarkKind::PlainMeal) => DayStatus::PlainMeal,
                None => DayStatus::Booked,
            },
        };
        let attendance = Attendance {
            school: child.school,
            class: child.class,
            diet: child.diet,
            status,
        };
        out.push(attendance);
    }
    Ok(out)
}

async fn load_all_schools(
    conn: &mut AnyConnection,
) -> Result<HashMap<SchoolId, SchoolCalendar>, StoreError> {
    let ids: Vec<String> = sqlx::query("SELECT id FROM schools")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut schools = HashMap::new();
    for id in ids {
        let id = SchoolId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let calendar = super::children::load_school(conn, &id).await?;
        schools.insert(id, calendar);
    }
    Ok(schools)
}

async fn frozen_attendance(
    conn: &mut AnyConnection,
    date: NaiveDate,
) -> Result<Vec<Attendance>, StoreError> {
    sqlx::query("SELECT status, school_id, class_id, diet FROM attendance WHERE date = $1")
        .bind(date_text(date)?)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            let corrupt = |e: String| StoreError::Corrupt(e);
            let status: String = r.try_get("status")?;
            Ok(Attendance {
                school: SchoolId::parse(&r.try_get::<String, _>("school_id")?)
                    .map_err(|e| corrupt(e.to_string()))?,
                class: ClassId::parse(&r.try_get::<String, _>("class_id")?)
                    .map_err(|e| corrupt(e.to_string()))?,
                diet: Diet::parse(&r.try_get::<String, _>("diet")?).map_err(corrupt)?,
                status: match status.as_str() {
                    "booked" => DayStatus::Booked,
                    "plain_meal" => DayStatus::PlainMeal,
                    "absent" => DayStatus::Absent,
                    "suspended" => DayStatus::Suspended,
                    _ => DayStatus::NoService(NoService::NotAServiceWeekday),
                },
            })
        })
        .collect()
}
