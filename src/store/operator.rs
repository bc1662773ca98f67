//! What the catering company's operators change beside the day changes:
//! closures entered at short notice (source 'operator', which a re-import
//! keeps), special diets (R13), news; and the phone line's call records
//! (R12), written by the IVR and read by operators.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::rows::{date_text, from_millis, get_date, millis};
use super::statements::Statements;
use super::{Child, Store, StoreError};
use crate::bookings::pii::CodeDigits;
use crate::bookings::{Actor, Channel, Diet, PhoneNumber, Pii, SchoolId};

/// A closure entered by an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorClosure {
    pub id: i64,
    pub school: SchoolId,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub reason: String,
}

/// A closure of a school's calendar with its key and where it came from
/// (`import` or `operator`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosureRow {
    pub id: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub reason: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct News {
    pub id: i64,
    pub date: NaiveDate,
    pub title: String,
    pub body: String,
}

/// One code typed during a call, as stored: redacted, and whether it was a
/// child's cancel code. The IVR's record comes already redacted
/// (`ivr::CallRecord::codes_for_storage`): build this from its parts; use
/// [`CodeAttempt::redacted`] only for digits as typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeAttempt {
    pub code: String,
    pub valid: bool,
}

impl CodeAttempt {
    /// Keeps only what [`Pii`]'s `CodeDigits` shows: the length and the
    /// last digit of what was typed.
    pub fn redacted(typed: &str, valid: bool) -> CodeAttempt {
        CodeAttempt {
            code: Pii::<CodeDigits>::new(typed).to_string(),
            valid,
        }
    }
}

/// A phone call (R12): who called which number, when, the codes typed and
/// the operations asked with their results (free-form JSON from the IVR).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    /// In clear for the operators who list calls; redacted in `Debug`.
    #[serde(serialize_with = "crate::bookings::pii::exposed")]
    pub caller: PhoneNumber,
    pub called: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub codes: Vec<CodeAttempt>,
    pub operations: serde_json::Value,
}

impl Store {
    /// Adds a closure to a school's calendar; None if there is no such school.
    pub async fn add_operator_closure(
        &self,
        school: &SchoolId,
        from: NaiveDate,
        to: NaiveDate,
        reason: &str,
    ) -> Result<Option<OperatorClosure>, StoreError> {
        let (from_text, to_text) = (date_text(from)?, date_text(to)?);
        let mut tx = self.write.begin().await?;
        let exists = sqlx::query("SELECT id FROM schools WHERE id = $1")
            .bind(school.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            tx.rollback().await?;
            return Ok(None);
        }
        let id: i64 = sqlx::query(
            "INSERT INTO closures (school_id, date_from, date_to, reason, source) \
             VALUES ($1, $2, $3, $4, 'operator') RETURNING id",
        )
        .bind(school.as_str())
        .bind(from_text)
        .bind(to_text)
        .bind(reason)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        tx.commit().await?;
        // Effective at once for the calendar and the phone line.
        self.settings_changed();
        Ok(Some(OperatorClosure {
            id,
            school: school.clone(),
            from,
            to,
            reason: reason.to_string(),
        }))
    }

    /// Every closure of a school, by start date; None if no such school.
    pub async fn closures(&self, school: &SchoolId) -> Result<Option<Vec<ClosureRow>>, StoreError> {
        let exists = sqlx::query("SELECT id FROM schools WHERE id = $1")
            .bind(school.as_str())
            .fetch_optional(&self.read)
            .await?
            .is_some();
        if !exists {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT id, date_from, date_to, reason, source FROM closures \
             WHERE school_id = $1 ORDER BY date_from, id",
        )
        .bind(school.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ClosureRow {
                    id: r.try_get("id")?,
                    from: get_date(r, "date_from")?,
                    to: get_date(r, "date_to")?,
                    reason: r.try_get("reason")?,
                    source: r.try_get("source")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map(Some)
    }

    /// Removes an operator's closure; imported ones are left alone (false).
    pub async fn remove_operator_closure(
        &self,
        school: &SchoolId,
        id: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM closures WHERE id = $1 AND school_id = $2 AND source = 'operator'",
        )
        .bind(id)
        .bind(school.as_str())
        .execute(&self.write)
        .await?;
        self.settings_changed();
        Ok(done.rows_affected() > 0)
    }

    /// R13: sets a child's special diet, with an audit record.
    pub async fn set_diet(
        &self,
        child: &Child,
        diet: &Diet,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE children SET diet = $1, version = version + 1 WHERE id = $2")
            .bind(diet.as_str())
            .bind(child.id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO audit (at_ms, actor, channel, child_id, action, detail) \
             VALUES ($1, $2, $3, $4, 'diet', $5)",
        )
        .bind(millis(now))
        .bind(actor.audit_form())
        .bind(Channel::Operator.as_str())
        .bind(child.id.0)
        .bind(serde_json::json!({"from": child.diet, "to": diet}).to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Publishes news; None if news with that date and title exists.
    pub async fn add_news(
        &self,
        date: NaiveDate,
        title: &str,
        body: &str,
    ) -> Result<Option<News>, StoreError> {
        let row = sqlx::query(
            "INSERT INTO news (date, title, body) VALUES ($1, $2, $3) \
             ON CONFLICT (date, title) DO NOTHING RETURNING id",
        )
        .bind(date_text(date)?)
        .bind(title)
        .bind(body)
        .fetch_optional(&self.write)
        .await?;
        Ok(match row {
            Some(r) => Some(News {
                id: r.try_get("id")?,
                date,
                title: title.to_string(),
                body: body.to_string(),
            }),
            None => None,
        })
    }

    /// All news, newest first.
    pub async fn news(&self) -> Result<Vec<News>, StoreError> {
        sqlx::query("SELECT id, date, title, body FROM news ORDER BY date DESC, id DESC")
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| {
                Ok(News {
                    id: r.try_get("id")?,
                    date: get_date(r, "date")?,
                    title: r.try_get("title")?,
                    body: r.try_get("body")?,
                })
            })
            .collect()
    }

    /// R12: stores a call record (the IVR calls this when a call ends).
    pub async fn record_call(&self, call: &CallRecord) -> Result<i64, StoreError> {
        // SQLite: in the group commit's next batch, as thousands of calls
        // may end in a second of the morning peak.
        if let Some(writer) = &self.writer {
            return writer.record_call(call.clone()).await;
        }
        let mut conn = self.write.acquire().await?;
        insert_call(&mut conn, self.backend, call).await
    }

    /// The calls started in `[from, to)`, oldest first.
    pub async fn calls(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(i64, CallRecord)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, caller, called, started_at_ms, ended_at_ms, codes, operations FROM calls \
             WHERE started_at_ms >= $1 AND started_at_ms < $2 ORDER BY started_at_ms, id",
        )
        .bind(millis(from))
        .bind(millis(to))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let codes: String = r.try_get("codes")?;
                let operations: String = r.try_get("operations")?;
                let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("call: {e}"));
                Ok((
                    r.try_get("id")?,
                    CallRecord {
                        caller: PhoneNumber::new(r.try_get::<String, _>("caller")?),
                        called: r.try_get("called")?,
                        started_at: from_millis(r.try_get("started_at_ms")?)?,
                        ended_at: r
                            .try_get::<Option<i64>, _>("ended_at_ms")?
                            .map(from_millis)
                            .transpose()?,
                        codes: serde_json::from_str(&codes).map_err(corrupt)?,
                        operations: serde_json::from_str(&operations).map_err(corrupt)?,
                    },
                ))
            })
            .collect()
    }
}

/// Inserts a call record on `conn` (the write pool's, or the writer's
/// transaction); its id.
pub(super) async fn insert_call(
    conn: &mut sqlx::AnyConnection,
    backend: super::Backend,
    call: &CallRecord,
) -> Result<i64, StoreError> {
    let rows = insert_call_statement(call)?.run(conn, backend).await?;
    call_id(rows.first())
}

/// The statement of [`insert_call`]; it returns the id as `call_id`.
pub(super) fn insert_call_statement(call: &CallRecord) -> Result<Statements, StoreError> {
    let codes = serde_json::to_string(&call.codes)
        .map_err(|e| StoreError::Corrupt(format!("call codes: {e}")))?;
    let mut statements = Statements::new();
    statements.push(
        "INSERT INTO calls (caller, called, started_at_ms, ended_at_ms, codes, operations) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id AS call_id",
        vec![
            call.caller.expose().into(),
            call.called.as_str().into(),
            millis(call.started_at).into(),
            call.ended_at.map(millis).into(),
            codes.into(),
            call.operations.to_string().into(),
        ],
    );
    Ok(statements)
}

/// The id in a row [`insert_call_statement`] returned.
pub(super) fn call_id(row: Option<&sqlx::any::AnyRow>) -> Result<i64, StoreError> {
    let row = row.ok_or_else(|| StoreError::Corrupt("a call insert returned no id".into()))?;
    Ok(row.try_get("call_id")?)
}
