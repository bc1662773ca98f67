//! Changes to a child's days, from every channel, through one door:
//! [`Store::apply`]. Each is [`apply_in`]: lock the child, load, ask the
//! rules, check the day is not closed, write, audit (R12); then commit
//! (on SQLite, with the operations queued beside it: `store::writer`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::children::{ForChange, load_for_change};
use super::rows::{date_text, millis, opt_date_text};
use super::statements::{Arg, Statements};
use super::{Backend, ChildId, Store, StoreError};
use crate::bookings::{
    Actor, Channel, ChildDays, DayChange, DayRequest, Reach, Refusal, RuleContext, ServiceCalendar,
    SuspensionChange,
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
    /// ([`super::writer`]): it runs inside a transaction shared with the
    /// operations queued beside it, and is answered only after that
    /// transaction's `COMMIT` returned. On PostgreSQL it is a transaction
    /// of its own. Either way the steps and the locks are those of
    /// [`apply_in`].
    pub async fn apply(
        &self,
        child: ChildId,
        operation: Operation,
        actor: &Actor,
        channel: Channel,
        now: DateTime<Utc>,
    ) -> Result<Result<Applied, Refusal>, StoreError> {
        let change = Change {
            child,
            operation,
            actor: actor.clone(),
            channel,
            now,
        };
        if let Some(writer) = &self.writer {
            return writer.apply(change).await;
        }
        let mut tx = super::begin_write(&self.write, self.backend).await?;
        match apply_in(&mut tx, self.backend, &change).await? {
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

/// One change inside the caller's transaction: lock the child, load, ask
/// the rules, check the day is not closed, write and audit. A refusal has
/// written nothing; after an error the caller rolls back.
///
/// On SQLite the transaction began `IMMEDIATE`, so it holds the
/// database's write lock before anything is read; the loads are one round
/// trip and the writes another ([`Statements`]). (The group-commit writer
/// goes further and sends one change's writes with the next one's loads:
/// `store::writer`.) On PostgreSQL the child's row is locked first, then
/// the same statements run one by one.
pub(super) async fn apply_in(
    conn: &mut AnyConnection,
    backend: Backend,
    change: &Change,
) -> Result<Result<Applied, Refusal>, StoreError> {
    let child = change.child;
    if backend == Backend::Postgres {
        // Two channels changing the same child at once queue here, and
        // neither reads before the other committed.
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
    }
    let loaded = load_for_change(conn, backend, child, change.loads_from()).await?;
    let (applied, writes) = match change.decide(&loaded)? {
        Ok(decided) => decided,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if backend == Backend::Postgres && day_is_locked_closed(conn, applied.first_day()).await? {
        return Ok(Err(Refusal::AfterCutoff {
            date: applied.first_day(),
        }));
    }
    writes.run(conn, backend).await?;
    Ok(Ok(applied))
}

/// A change asked for, with who asks, through which channel, and when.
pub(super) struct Change {
    pub child: ChildId,
    pub operation: Operation,
    pub actor: Actor,
    pub channel: Channel,
    pub now: DateTime<Utc>,
}

impl Change {
    /// The first date [`load_for_change`] must load for it. Kept inside
    /// [`Reach::FRAME`]: a date asked for outside it is refused by the
    /// rules (outside the child's reach, which the frame holds) before
    /// they look at a mark, so loading from the frame's edge changes
    /// nothing, and the load's parameter is always a date the store can
    /// compare.
    pub(super) fn loads_from(&self) -> NaiveDate {
        Reach::FRAME.clamp(days_needed_from(self.operation, self.now))
    }

    /// The rules' answer on what was loaded, and the statements that write
    /// it with its audit row (R12): nothing is written yet. An error only
    /// when a date to write cannot be stored (`rows::date_text`).
    pub(super) fn decide(
        &self,
        loaded: &ForChange,
    ) -> Result<Result<(Applied, Statements), Refusal>, StoreError> {
        let applied = match plan(loaded, self.operation, self.now) {
            Ok(applied) => applied,
            Err(refusal) => return Ok(Err(refusal)),
        };
        // The closing of a day and a late change never both win (R10). On
        // SQLite the transaction holds the database's write lock since its
        // BEGIN, so the closing, in this process or another, ran wholly
        // before it or will run wholly after: the closed days loaded with
        // the child are the truth. PostgreSQL checks again under a lock
        // (`day_is_locked_closed`).
        if loaded.closed_days.contains(&applied.first_day()) {
            return Ok(Err(Refusal::AfterCutoff {
                date: applied.first_day(),
            }));
        }
        let mut writes = Statements::new();
        write(
            &mut writes,
            self.child,
            &applied,
            &self.actor,
            self.channel,
            self.now,
        )?;
        writes.push(
            "INSERT INTO audit (at_ms, actor, channel, child_id, action, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                millis(self.now).into(),
                self.actor.audit_form().into(),
                self.channel.as_str().into(),
                self.child.0.into(),
                action_word(&self.operation).into(),
                serde_json::to_string(&applied).unwrap_or_default().into(),
            ],
        );
        Ok(Ok((applied, writes)))
    }
}

/// The earliest date whose marks the rules may need: the asked date, or
/// for a day change the first date still open, which is at least the
/// ente's local today and so never before yesterday in UTC (time zones
/// are less than a day from UTC). [`plan`] trims to the exact range.
fn days_needed_from(operation: Operation, now: DateTime<Utc>) -> NaiveDate {
    match operation {
        Operation::Day { date, .. } => {
            let yesterday = now.date_naive().pred_opt().unwrap_or(now.date_naive());
            date.min(yesterday)
        }
        Operation::Suspend { from, .. } | Operation::Reactivate { from } => from,
    }
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

fn plan(loaded: &ForChange, operation: Operation, now: DateTime<Utc>) -> Result<Applied, Refusal> {
    let ForChange {
        settings,
        child: record,
        school,
        ..
    } = loaded;
    let first_open = settings.first_open_date(now);
    let (from, to) = match operation {
        Operation::Day { date, .. } => (date.min(first_open), date.max(first_open)),
        Operation::Suspend { from, .. } | Operation::Reactivate { from } => (from, from),
    };
    // A late request may move to a later day: the marks up to the end of
    // the school year count in that case.
    let to = to.max(school.year_end);
    let days = ChildDays {
        marks: loaded
            .days
            .marks
            .range(from..=to)
            .map(|(date, mark)| (*date, mark.clone()))
            .collect(),
        suspensions: loaded.days.suspensions.clone(),
    };
    let rules = RuleContext {
        settings,
        calendar: ServiceCalendar::new(school, record.class_weekdays),
        now,
    };
    match operation {
        Operation::Day { date, request } => rules
            .plan_day_change(&days, date, request)
            .map(Applied::Day),
        Operation::Suspend { from, until } => rules
            .plan_suspension(&days, from, until)
            .map(Applied::Suspension),
        Operation::Reactivate { from } => rules
            .plan_reactivation(&days, from)
            .map(Applied::Suspension),
    }
}

/// PostgreSQL: the change takes a shared lock on the day's row, the
/// closing an exclusive one, and whoever comes second sees the other's
/// result. The row must exist for the lock to hold it.
async fn day_is_locked_closed(
    conn: &mut AnyConnection,
    date: NaiveDate,
) -> Result<bool, StoreError> {
    let day = date_text(date)?;
    sqlx::query("INSERT INTO days (date) VALUES ($1) ON CONFLICT (date) DO NOTHING")
        .bind(&day)
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query("SELECT closed_at_ms FROM days WHERE date = $1 FOR SHARE")
        .bind(&day)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<Option<i64>, _>("closed_at_ms")?.is_some(),
        None => false,
    })
}

/// The statement that writes `applied`.
fn write(
    statements: &mut Statements,
    child: ChildId,
    applied: &Applied,
    actor: &Actor,
    channel: Channel,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (id, channel, actor, at) = (
        Arg::from(child.0),
        Arg::from(channel.as_str()),
        Arg::from(actor.audit_form()),
        Arg::from(millis(now)),
    );
    match *applied {
        Applied::Day(DayChange {
            date,
            mark: Some(kind),
            ..
        }) => statements.push(
            "INSERT INTO day_marks (child_id, date, kind, channel, actor, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (child_id, date) DO UPDATE SET kind = excluded.kind, \
             channel = excluded.channel, actor = excluded.actor, at_ms = excluded.at_ms",
            vec![
                id,
                date_text(date)?.into(),
                kind.as_str().into(),
                channel,
                actor,
                at,
            ],
        ),
        Applied::Day(DayChange {
            date, mark: None, ..
        }) => statements.push(
            "DELETE FROM day_marks WHERE child_id = $1 AND date = $2",
            vec![id, date_text(date)?.into()],
        ),
        Applied::Suspension(SuspensionChange::Start { from, until }) => statements.push(
            "INSERT INTO suspensions (child_id, date_from, date_until, channel, actor, at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                id,
                date_text(from)?.into(),
                opt_date_text(until)?.into(),
                channel,
                actor,
                at,
            ],
        ),
        Applied::Suspension(SuspensionChange::End { from, resume }) => statements.push(
            "UPDATE suspensions SET date_until = $1, channel = $2, actor = $3, at_ms = $4 \
             WHERE child_id = $5 AND date_from = $6",
            vec![
                date_text(resume)?.into(),
                channel,
                actor,
                at,
                id,
                date_text(from)?.into(),
            ],
        ),
        Applied::Suspension(SuspensionChange::Remove { from, .. }) => statements.push(
            "DELETE FROM suspensions WHERE child_id = $1 AND date_from = $2",
            vec![id, date_text(from)?.into()],
        ),
    }
    Ok(())
}
