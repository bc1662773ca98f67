//! Portal and app logins: adults, their children and sessions (bearer
//! tokens stored as SHA-256). Login attempts are counted in `logins.rs`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::children::{CHILD_COLUMNS, child_from_row};
use super::rows::millis;
use super::{Child, Store, StoreError};
use crate::bookings::{FiscalCode, UserCode};

/// The store's key of an adult (parent or delegate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AdultId(pub i64);

/// Genitore or delegato, as the portal knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adult {
    pub id: AdultId,
    pub fiscal_code: FiscalCode,
    pub first_name: String,
    pub last_name: String,
}

/// What an adult is to a child: the parent pays, a delegate may only act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Parent,
    Delegate,
}

/// How a login names the adult: the manual's user code of a child (the
/// child's parent logs in), or the adult's own fiscal code.
#[derive(Debug, Clone, Copy)]
pub enum Login<'a> {
    UserCode(&'a UserCode),
    FiscalCode(&'a FiscalCode),
}

const ADULT_COLUMNS: &str = "a.id, a.fiscal_code, a.first_name, a.last_name, a.password_hash";

fn adult_from_row(row: &sqlx::any::AnyRow) -> Result<(Adult, Option<String>), StoreError> {
    let fiscal: String = row.try_get("fiscal_code")?;
    Ok((
        Adult {
            id: AdultId(row.try_get("id")?),
            fiscal_code: FiscalCode::parse(&fiscal)
                .map_err(|e| StoreError::Corrupt(format!("adult fiscal code: {e}")))?,
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
        },
        row.try_get("password_hash")?,
    ))
}

fn relation_from_row(row: &sqlx::any::AnyRow) -> Result<Relation, StoreError> {
    Ok(match row.try_get::<String, _>("relation")?.as_str() {
        "parent" => Relation::Parent,
        _ => Relation::Delegate,
    })
}

impl Store {
    /// The adult a login names and their argon2 password hash (None when
    /// they have no portal password yet).
    pub async fn login_credentials(
        &self,
        login: Login<'_>,
    ) -> Result<Option<(Adult, Option<String>)>, StoreError> {
        let (sql, value) = match login {
            Login::UserCode(code) => (
                format!(
                    "SELECT {ADULT_COLUMNS} FROM adults a \
                     JOIN children c ON c.parent_id = a.id WHERE c.user_code = $1"
                ),
                code.as_str(),
            ),
            Login::FiscalCode(code) => (
                format!("SELECT {ADULT_COLUMNS} FROM adults a WHERE a.fiscal_code = $1"),
                code.as_str(),
            ),
        };
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(adult_from_row).transpose()
    }

    pub async fn create_session(
        &self,
        adult: AdultId,
        token_sha256: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        // Expired sessions of anyone are swept here, not by a timer.
        sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_sha256, adult_id, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_sha256)
        .bind(adult.0)
        .bind(millis(now))
        .bind(millis(expires))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The adult of a session still valid at `now`.
    pub async fn session_adult(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Adult>, StoreError> {
        let sql = format!(
            "SELECT {ADULT_COLUMNS} FROM sessions s JOIN adults a ON a.id = s.adult_id \
             WHERE s.token_sha256 = $1 AND s.expires_at_ms > $2"
        );
        let row = sqlx::query(&sql)
            .bind(token_sha256)
            .bind(millis(now))
            .fetch_optional(&self.read)
            .await?;
        Ok(row
            .as_ref()
            .map(adult_from_row)
            .transpose()?
            .map(|(a, _)| a))
    }

    /// The adult of a session still valid at `now` (None: no such
    /// session), with the child whose user code is `code` if the adult may
    /// act for it (None: no such child, or another family's). One query:
    /// it runs on every request about a child.
    pub async fn session_child(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
        code: &UserCode,
    ) -> Result<Option<(Adult, Option<(Child, Relation)>)>, StoreError> {
        let sql = format!(
            "SELECT a.id AS adult_id, a.fiscal_code AS adult_fiscal_code, \
             a.first_name AS adult_first_name, a.last_name AS adult_last_name, \
             {CHILD_COLUMNS}, \
             CASE WHEN c.parent_id = a.id THEN 'parent' ELSE 'delegate' END AS relation \
             FROM sessions s JOIN adults a ON a.id = s.adult_id \
             LEFT JOIN children c ON c.user_code = $3 AND (c.parent_id = a.id OR EXISTS \
             (SELECT 1 FROM child_delegates d WHERE d.child_id = c.id AND d.adult_id = a.id)) \
             LEFT JOIN classes k ON k.school_id = c.school_id AND k.id = c.class_id \
             WHERE s.token_sha256 = $1 AND s.expires_at_ms > $2"
        );
        let row = sqlx::query(&sql)
            .bind(token_sha256)
            .bind(millis(now))
            .bind(code.as_str())
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let fiscal: String = row.try_get("adult_fiscal_code")?;
        let adult = Adult {
            id: AdultId(row.try_get("adult_id")?),
            fiscal_code: FiscalCode::parse(&fiscal)
                .map_err(|e| StoreError::Corrupt(format!("adult fiscal code: {e}")))?,
            first_name: row.try_get("adult_first_name")?,
            last_name: row.try_get("adult_last_name")?,
        };
        if row.try_get::<Option<i64>, _>("id")?.is_none() {
            return Ok(Some((adult, None)));
        }
        let relation = relation_from_row(&row)?;
        Ok(Some((adult, Some((child_from_row(&row)?, relation)))))
    }

    /// Ends a session; false if there was none.
    pub async fn delete_session(&self, token_sha256: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE token_sha256 = $1")
            .bind(token_sha256)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The child with `code` if `adult` is its parent or a delegate (one
    /// query: it runs on every request about a child).
    pub async fn child_of(
        &self,
        adult: AdultId,
        code: &UserCode,
    ) -> Result<Option<(Child, Relation)>, StoreError> {
        let sql = format!(
            "SELECT {CHILD_COLUMNS}, \
             CASE WHEN c.parent_id = $1 THEN 'parent' ELSE 'delegate' END AS relation \
             FROM children c \
             LEFT JOIN classes k ON k.school_id = c.school_id AND k.id = c.class_id \
             WHERE c.user_code = $2 AND (c.parent_id = $1 OR EXISTS \
             (SELECT 1 FROM child_delegates d WHERE d.child_id = c.id AND d.adult_id = $1))"
        );
        let row = sqlx::query(&sql)
            .bind(adult.0)
            .bind(code.as_str())
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some((child_from_row(&row)?, relation_from_row(&row)?)))
    }

    /// Every child `adult` may act for, by user code.
    pub async fn children_of(&self, adult: AdultId) -> Result<Vec<(Child, Relation)>, StoreError> {
        let codes = sqlx::query(
            "SELECT c.user_code FROM children c WHERE c.parent_id = $1 OR EXISTS \
             (SELECT 1 FROM child_delegates d WHERE d.child_id = c.id AND d.adult_id = $1) \
             ORDER BY c.user_code",
        )
        .bind(adult.0)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(codes.len());
        for row in &codes {
            let code: String = row.try_get("user_code")?;
            let code = UserCode::parse(&code)
                .map_err(|e| StoreError::Corrupt(format!("user code: {e}")))?;
            if let Some(found) = self.child_of(adult, &code).await? {
                out.push(found);
            }
        }
        Ok(out)
    }
}
