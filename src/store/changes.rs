//! Changes to a child's days, from every channel, through one door:
//! [`Store::apply`]. Each is [`apply_in`]: lock the child, load, ask the
//! rules, check the day is not closed, write, audit (R12); then commit
//! (on SQLite, with the operations queued beside it: `store::writer`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::children::{load_child_days, load_for_change};
use super::rows::{date_text, millis};
use super::{Backend, ChildId, Store, StoreError};
use crate::bookings::{
    Actor, Channel, DayChange, DayRequest, Refusal, RuleContext, ServiceCalendar, SuspensionChange,
};

/// What a parent, a caller or an operator asks for a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum Operation {
    /// R4, R8, R9 on one day.
    Day {
        date: NaiveDate,
        request: DayRequest,
    },
    /// R7: a suspension from `from`, with the first day back if known.
    Suspend {
        from: NaiveDate,
        until: Option<NaiveDate>,
    },
    /// R7: meals again from `from` (or the next service day after it).
    Reactivate { from: NaiveDate },
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Applied {
    Day(DayChange),
    Suspension(SuspensionChange),
}

impl Applied {
    /// The first day the change affects.
    fn first_day(&self) -> NaiveDate {
        match *self {
            Applied::Day(c) => c.date,
            Applied::Suspension(SuspensionChange::Start { from, .. }) => from,
            Applied::Suspension(SuspensionChange::End { resume, .. }) => resume,
            Applied::Suspension(SuspensionChange::Remove { from, .. }) => from,
        }
    }
}

impl Store {
    /// Applies `operation` to `child` at `now`, durably, or says why not.
    /// When this returns `Ok(Ok(_))` the change is committed.
    ///
    /// On SQLite the operation goes to the group-commit writer
    /// ([`super::writer`]): it runs in its own savepoint inside a
    /// transaction shared with the operations queued beside it, and is
    /// answered only after that transaction's `COMMIT` returned. On
    /// PostgreSQL it is a transaction of its own. Either way the steps and
    /// the locks are those of [`apply_in`].
    pub async fn apply(
        &self,
        child: ChildId,
        operation: Operation,
        actor: &Actor,
        channel: Channel,
        now: DateTime<Utc>,
    ) -> Result<Result<Applied, Refusal>, StoreError> {
        if let Some(writer) = &self.writer {
            return writer
                .apply(super::writer::Pending {
                    child,
                    operation,
                    actor: actor.clone(),
                    channel,
                    now,
                })
                .await;
        }
        let mut tx = self.write.begin().await?;
        match apply_in(&mut tx, self.backend, child, operation, actor, channel, now).await? {
            Ok(applied) => {
                tx.commit().await?;
                Ok(Ok(applied))
            }
            Err(refusal) => {
                tx.rollback().await?;
                Ok(Err(refusal))
            }
        }
    }
}

/// One change inside the caller's transaction (or savepoint): lock the
/// child, load, ask the rules, check the day is not closed, write, audit.
/// On a refusal or an error the caller rolls back what this wrote.
pub(super) async fn apply_in(
    conn: &mut AnyConnection,
    backend: Backend,
    child: ChildId,
    operation: Operation,
    actor: &Actor,
    channel: Channel,
    now: DateTime<Utc>,
) -> Result<Result<Applied, Refusal>, StoreError> {
    // Lock the child first (write lock on SQLite, row lock on PostgreSQL).
    let locked = sqlx::query("UPDATE children SET version = version + 1 WHERE id = $1")
        .bind(child.0)
        .execute(&mut *conn)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "no child with id {}",
            child.0
        )));
    }
    let applied = match plan(conn, child, operation, now).await? {
        Ok(applied) => applied,
        Err(refusal) => return Ok(Err(refusal)),
    };
    // The closing of a day and a late change never both win (R10): the
    // change holds a shared lock on the day's row, the closing an
    // exclusive one, and whoever comes second sees the other's result.
    if day_is_closed(conn, backend, applied.first_day()).await? {
        return Ok(Err(Refusal::AfterCutoff {
            date: applied.first_day(),
        }));
    }
    write(conn, child, &applied, actor, channel, now).await?;
    let detail = serde_json::to_string(&applied).unwrap_or_default();
    sqlx::query(
        "INSERT INTO audit (at_ms, actor, channel, child_id, action, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(millis(now))
    .bind(actor.audit_form())
    .bind(channel.as_str())
    .bind(child.0)
    .bind(action_word(&operation))
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    Ok(Ok(applied))
}

fn action_word(operation: &Operation) -> &'static str {
    match operation {
        Operation::Day {
            request: DayRequest::Absent,
            ..
        } => "absent",
        Operation::Day {
            request: DayRequest::PlainMeal,
            ..
        } => "plain_meal",
        Operation::Day {
            request: DayRequest::Booked,
            ..
        } => "undo",
        Operation::Suspend { .. } => "suspend",
        Operation::Reactivate { .. } => "reactivate",
    }
}

async fn plan(
    conn: &mut AnyConnection,
    child: ChildId,
    operation: Operation,
    now: DateTime<Utc>,
) -> Result<Result<Applied, Refusal>, StoreError> {
    let (settings, record, school) = load_for_change(conn, child).await?;
    let first_open = settings.first_open_date(now);
    let (from, to) = match operation {
        Operation::Day { date, .. } => (date.min(first_open), date.max(first_open)),
        Operation::Suspend { from, .. } | Operation::Reactivate { from } => (from, from),
    };
    // A late request may move to a later day: load the marks up to the
    // end of the school year in that case.
    let to = to.max(school.year_end);
    let days = load_child_days(conn, child, from, to).await?;
    let rules = RuleContext {
        settings: &settings,
        calendar: ServiceCalendar::new(&school, record.class_weekdays),
        now,
    };
    Ok(match operation {
        Operation::Day { date, request } => rules
            .plan_day_change(&days, date, request)
            .map(Applied::Day),
        Operation::Suspend { from, until } => rules
            .plan_suspension(&days, from, until)
            .map(Applied::Suspension),
        Operation::Reactivate { from } => rules
            .plan_reactivation(&days, from)
            .map(Applied::Suspension),
    })
}

async fn day_is_closed(
    conn: &mut AnyConnection,
    backend: Backend,
    date: NaiveDate,
) -> Result<bool, StoreError> {
    match backend {
        // The row must exist for the shared lock to hold it.
        Backend::Postgres => {
            sqlx::query("INSERT INTO days (date) VALUES ($1) ON CONFLICT (date) DO NOTHING")
                .bind(date_text(date))
                .execute(&mut *conn)
                .await?;
        }
        // The change already holds the database's write lock (the version
        // bump), so the closing, in this process or another, runs wholly
        // before or after it: reading the row, or its absence, is enough,
        // and saves a round trip.
        Backend::Sqlite => {}
    }
    let sql = format!(
        "SELECT closed_at_ms FROM days WHERE date = $1{}",
        backend.for_share()
    );
    let row = sqlx::query(&sql)
        .bind(date_text(date))
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<Option<i64>, _>("closed_at_ms")?.is_some(),
        None => false,
    })
}

async fn write(
    conn: &mut AnyConnection,
    child: ChildId,
    applied: &Applied,
    actor: &Actor,
    channel: Channel,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    match *applied {
        Applied::Day(DayChange {
            date,
            mark: Some(kind),
            ..
        }) => {
            sqlx::query(
                "INSERT INTO day_marks (child_id, date, kind, channel, actor, at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (child_id, date) DO UPDATE SET kind = excluded.kind, \
                 channel = excluded.channel, actor = excluded.actor, at_ms = excluded.at_ms",
            )
            .bind(child.0)
            .bind(date_text(date))
            .bind(kind.as_str())
            .bind(channel.as_str())
            .bind(actor.audit_form())
            .bind(millis(now))
            .execute(&mut *conn)
            .await?;
        }
        Applied::Day(DayChange {
            date, mark: None, ..
        }) => {
            sqlx::query("DELETE FROM day_marks WHERE child_id = $1 AND date = $2")
                .bind(child.0)
                .bind(date_text(date))
                .execute(&mut *conn)
                .await?;
        }
        Applied::Suspension(SuspensionChange::Start { from, until }) => {
            sqlx::query(
                "INSERT INTO suspensions (child_id, date_from, date_until, channel, actor, at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(child.0)
            .bind(date_text(from))
            .bind(until.map(date_text))
            .bind(channel.as_str())
            .bind(actor.audit_form())
            .bind(millis(now))
            .execute(&mut *conn)
            .await?;
        }
        Applied::Suspension(SuspensionChange::End { from, resume }) => {
            sqlx::query(
                "UPDATE suspensions SET date_until = $1, channel = $2, actor = $3, at_ms = $4 \
                 WHERE child_id = $5 AND date_from = $6",
            )
            .bind(date_text(resume))
            .bind(channel.as_str())
            .bind(actor.audit_form())
            .bind(millis(now))
            .bind(child.0)
            .bind(date_text(from))
            .execute(&mut *conn)
            .await?;
        }
        Applied::Suspension(SuspensionChange::Remove { from, .. }) => {
            sqlx::query("DELETE FROM suspensions WHERE child_id = $1 AND date_from = $2")
                .bind(child.0)
                .bind(date_text(from))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}
