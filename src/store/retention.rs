//! How long personal data is kept (GDPR art. 5(1)(e), storage limitation):
//! phone call records are deleted after [`Retention::call_records`]; the
//! audit and the day marks and suspensions keep what was done, when and
//! through which channel for good, but who did it (a caller's number, a
//! parent's fiscal code) is reduced to its redacted form ([`Pii`]) after
//! [`Retention::personal_data`]. `serve` applies it once a day
//! (`runtime::scheduler`).

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use super::rows::millis;
use super::{ChildId, Store, StoreError};
use crate::bookings::Pii;
use crate::bookings::pii::{Initials, PhoneDigits};

/// The retention settings (`[privacy]` of the serve config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Call records (caller, number called, codes redacted, operations).
    pub call_records: Duration,
    /// Who made a change, in the audit and on the marks.
    pub personal_data: Duration,
}

impl Default for Retention {
    /// 90 days of call records (what a parent's "I did call" needs); two
    /// years of who did what (a school year and the following 730 tax
    /// statement's questions).
    fn default() -> Retention {
        Retention {
            call_records: Duration::days(90),
            personal_data: Duration::days(730),
        }
    }
}

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    pub calls_deleted: u64,
    /// Audit rows, day marks and suspensions whose actor was redacted.
    pub actors_redacted: u64,
}

/// Tables whose `actor` names who made a change, with its instant.
const ACTOR_TABLES: [(&str, &str); 3] = [
    ("audit", "id"),
    ("suspensions", "id"),
    ("day_marks", "child_id, date"),
];
/// Rows redacted per statement batch.
const BATCH: i64 = 500;

impl Store {
    /// Deletes call records and redacts actors older than `retention`
    /// allows at `now`. Idempotent: a redacted actor is not touched again.
    pub async fn apply_retention(
        &self,
        now: DateTime<Utc>,
        retention: &Retention,
    ) -> Result<Retained, StoreError> {
        let calls_before = now
            .checked_sub_signed(retention.call_records)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let calls_deleted = sqlx::query("DELETE FROM calls WHERE started_at_ms < $1")
            .bind(millis(calls_before))
            .execute(&self.write)
            .await?
            .rows_affected();
        let actors_before = millis(
            now.checked_sub_signed(retention.personal_data)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        );
        let mut actors_redacted = 0;
        for (table, key) in ACTOR_TABLES {
            loop {
                let done = self.redact_actors(table, key, actors_before).await?;
                actors_redacted += done;
                if done < BATCH as u64 {
                    break;
                }
            }
        }
        Ok(Retained {
            calls_deleted,
            actors_redacted,
        })
    }

    /// One batch of `table`'s actors older than `before_ms`, redacted in
    /// one transaction; how many.
    async fn redact_actors(
        &self,
        table: &str,
        key: &str,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        // A redacted actor has a '*' or a '…' in it; clear ones never do
        // (fiscal codes are letters and digits, numbers digits and '+').
        let select = format!(
            "SELECT {key}, actor FROM {table} WHERE at_ms < $1 \
             AND (actor LIKE 'phone:%' OR actor LIKE 'parent:%' OR actor LIKE 'delegate:%') \
             AND actor NOT LIKE '%*%' AND actor NOT LIKE '%…%' LIMIT $2"
        );
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(&select)
            .bind(before_ms)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let actor: String = row.try_get("actor")?;
            let redacted = redacted_actor(&actor);
            if table == "day_marks" {
                let child: i64 = row.try_get("child_id")?;
                let date: String = row.try_get("date")?;
                sqlx::query("UPDATE day_marks SET actor = $1 WHERE child_id = $2 AND date = $3")
                    .bind(redacted)
                    .bind(child)
                    .bind(date)
                    .execute(&mut *tx)
                    .await?;
            } else {
                let id: i64 = row.try_get("id")?;
                sqlx::query(&format!("UPDATE {table} SET actor = $1 WHERE id = $2"))
                    .bind(redacted)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }
}

impl Store {
    /// Who acted for `child`, as stored: the actors of its audit rows, day
    /// marks and suspensions, oldest first (what a data subject's access
    /// request asks for, GDPR art. 15, and what retention reduces).
    pub async fn actors_of(&self, child: ChildId) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT actor, at_ms FROM audit WHERE child_id = $1 \
             UNION ALL SELECT actor, at_ms FROM day_marks WHERE child_id = $1 \
             UNION ALL SELECT actor, at_ms FROM suspensions WHERE child_id = $1 \
             ORDER BY at_ms",
        )
        .bind(child.0)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("actor")?))
            .collect()
    }
}

/// `phone:+393331234567` → `phone:…567`, `parent:RSSMRA80A01H501U` →
/// `parent:RSS*************`: what logs show of them.
fn redacted_actor(actor: &str) -> String {
    match actor.split_once(':') {
        Some(("phone", number)) => format!("phone:{}", Pii::<PhoneDigits>::new(number)),
        Some((role @ ("parent" | "delegate"), code)) => {
            format!("{role}:{}", Pii::<Initials>::new(code))
        }
        _ => actor.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_keep_their_role_and_lose_their_identity() {
        assert_eq!(redacted_actor("phone:+393331234567"), "phone:…567");
        assert_eq!(redacted_actor("phone:"), "phone:…");
        assert_eq!(
            redacted_actor("parent:RSSMRA80A01H501U"),
            "parent:RSS*************"
        );
        assert_eq!(
            redacted_actor("delegate:BNCLRA85B41F205X"),
            "delegate:BNC*************"
        );
        assert_eq!(redacted_actor("operator:api"), "operator:api");
        assert_eq!(redacted_actor("system"), "system");
    }
}
