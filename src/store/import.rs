//! Writing an import: everything in one transaction, upserts by natural
//! key (school id, fiscal code, user code), so re-importing updates and
//! never duplicates. Closures entered by operators survive a re-import;
//! the file's own closures replace the previous file's.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use super::codes::bind_registered_number;
use super::rows::date_text;
use super::{Store, StoreError};
use crate::bookings::codes::{CodeHash, CodeKey};
use crate::bookings::{LateRequestPolicy, PhoneNumber, UserCode};
use crate::import::{ImportData, Problem, code_problems};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub schools: usize,
    pub closures: usize,
    pub classes: usize,
    pub adults: usize,
    pub children_created: usize,
    pub children_updated: usize,
    pub news: usize,
    /// Cancel codes shorter than the ente's minimum (each one a warning
    /// of [`ImportData::warnings`]).
    pub short_cancel_codes: usize,
}

impl Store {
    /// Imports validated data. Problems found against the stored data (a
    /// code already used by a child not in the file) abort the import.
    pub async fn import(
        &self,
        data: &ImportData,
        now: DateTime<Utc>,
    ) -> Result<Result<ImportSummary, Vec<Problem>>, StoreError> {
        // Before the transaction: adopting the key may write (on SQLite the
        // write connection is the one the transaction would hold).
        let key = self.code_key().await?.clone();
        let mut tx = self.write.begin().await?;
        let problems = conflicts_with_stored(&mut tx, data, &key).await?;
        if !problems.is_empty() {
            tx.rollback().await?;
            return Ok(Err(problems));
        }
        let mut summary = ImportSummary {
            short_cancel_codes: data.warnings.len(),
            ..ImportSummary::default()
        };
        write_ente(&mut tx, data).await?;
        for school in &data.schools {
            sqlx::query(
                "INSERT INTO schools (id, name, year_start, year_end, weekdays) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
                 name = excluded.name, year_start = excluded.year_start, \
                 year_end = excluded.year_end, weekdays = excluded.weekdays",
            )
            .bind(school.id.as_str())
            .bind(&school.name)
            .bind(date_text(school.calendar.year_start)?)
            .bind(date_text(school.calendar.year_end)?)
            .bind(i64::from(school.calendar.weekdays.bits()))
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM closures WHERE school_id = $1 AND source = 'import'")
                .bind(school.id.as_str())
                .execute(&mut *tx)
                .await?;
            for closure in &school.calendar.closures {
                sqlx::query(
                    "INSERT INTO closures (school_id, date_from, date_to, reason, source) \
                     VALUES ($1, $2, $3, $4, 'import')",
                )
                .bind(school.id.as_str())
                .bind(date_text(closure.from)?)
                .bind(date_text(closure.to)?)
                .bind(&closure.reason)
                .execute(&mut *tx)
                .await?;
                summary.closures += 1;
            }
            for (class, rientri) in &school.classes {
                sqlx::query(
                    "INSERT INTO classes (school_id, id, weekdays) VALUES ($1, $2, $3) \
                     ON CONFLICT (school_id, id) DO UPDATE SET weekdays = excluded.weekdays",
                )
                .bind(school.id.as_str())
                .bind(class.as_str())
                .bind(rientri.map(|w| i64::from(w.bits())))
                .execute(&mut *tx)
                .await?;
                summary.classes += 1;
            }
            summary.schools += 1;
        }
        for adult in &data.adults {
            sqlx::query(
                "INSERT INTO adults (fiscal_code, first_name, last_name, email, phone, password_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (fiscal_code) DO UPDATE SET \
                 first_name = excluded.first_name, last_name = excluded.last_name, \
                 email = excluded.email, phone = excluded.phone, \
                 password_hash = COALESCE(excluded.password_hash, adults.password_hash)",
            )
            .bind(adult.fiscal_code.as_str())
            .bind(&adult.first_name)
            .bind(&adult.last_name)
            .bind(adult.email.as_deref())
            .bind(adult.phone.as_ref().map(|p| p.expose()))
            .bind(adult.password_hash.as_deref())
            .execute(&mut *tx)
            .await?;
            summary.adults += 1;
        }
        release_moving_cancel_codes(&mut tx, data, &key).await?;
        for child in &data.children {
            let existing = sqlx::query("SELECT id FROM children WHERE user_code = $1")
                .bind(child.user_code.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let parent = adult_id(&mut tx, child.parent.as_str()).await?;
            if existing.is_some() {
                summary.children_updated += 1;
            } else {
                summary.children_created += 1;
            }
            let id: i64 = sqlx::query(
                "INSERT INTO children (user_code, cancel_code, first_name, last_name, \
                 fiscal_code, school_id, class_id, parent_id, diet, meal_price_cents, \
                 cancel_code_digits) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (user_code) DO UPDATE SET cancel_code = excluded.cancel_code, \
                 cancel_code_digits = excluded.cancel_code_digits, \
                 first_name = excluded.first_name, last_name = excluded.last_name, \
                 fiscal_code = excluded.fiscal_code, school_id = excluded.school_id, \
                 class_id = excluded.class_id, parent_id = excluded.parent_id, \
                 diet = excluded.diet, meal_price_cents = excluded.meal_price_cents \
                 RETURNING id",
            )
            .bind(child.user_code.as_str())
            .bind(key.hash(&child.cancel_code).as_str())
            .bind(&child.first_name)
            .bind(&child.last_name)
            .bind(child.fiscal_code.as_str())
            .bind(child.school.as_str())
            .bind(child.class.as_str())
            .bind(parent)
            .bind(child.diet.as_str())
            .bind(child.meal_price.map(|c| c.0))
            .bind(i64::try_from(child.cancel_code.as_str().len()).unwrap_or(0))
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
            sqlx::query("DELETE FROM child_delegates WHERE child_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for delegate in &child.delegates {
                let adult = adult_id(&mut tx, delegate.as_str()).await?;
                sqlx::query(
                    "INSERT INTO child_delegates (child_id, adult_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(adult)
                .execute(&mut *tx)
                .await?;
            }
        }
        // A code that changed takes its bindings to caller numbers with it
        // (store::codes): the new code was used by nobody yet.
        sqlx::query(
            "DELETE FROM code_bindings WHERE code_hash NOT IN (SELECT cancel_code FROM children)",
        )
        .execute(&mut *tx)
        .await?;
        bind_registered_numbers(&mut tx, data, &key, now).await?;
        for news in &data.news {
            sqlx::query(
                "INSERT INTO news (date, title, body) VALUES ($1, $2, $3) \
                 ON CONFLICT (date, title) DO UPDATE SET body = excluded.body",
            )
            .bind(date_text(news.date)?)
            .bind(&news.title)
            .bind(&news.body)
            .execute(&mut *tx)
            .await?;
            summary.news += 1;
        }
        tx.commit().await?;
        self.settings_changed();
        Ok(Ok(summary))
    }
}

/// The phone numbers the file gives a child's parent and delegates are
/// bound to the child's code as if they had used it (store::codes): a
/// family calling from the number the office registered is taken even on
/// a guarded line, its first call included. It is no guess: the number
/// and the code came together from the office. Refreshed by each import;
/// a number the file no longer gives is forgotten once unused for the
/// bindings' time to live.
async fn bind_registered_numbers(
    conn: &mut AnyConnection,
    data: &ImportData,
    key: &CodeKey,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let phones: HashMap<&str, &PhoneNumber> = data
        .adults
        .iter()
        .filter_map(|a| Some((a.fiscal_code.as_str(), a.phone.as_ref()?)))
        .collect();
    for child in &data.children {
        let code = key.hash(&child.cancel_code);
        let adults = std::iter::once(&child.parent).chain(&child.delegates);
        for phone in adults.filter_map(|a| phones.get(a.as_str())) {
            bind_registered_number(conn, key, &code, phone.expose(), now).await?;
        }
    }
    Ok(())
}

/// Children of the file whose cancel code changes give theirs up first, so
/// that codes moving between children (two codes swapped) never meet the
/// unique index half-way. The checks before ensure the final state is unique.
async fn release_moving_cancel_codes(
    conn: &mut AnyConnection,
    data: &ImportData,
    key: &CodeKey,
) -> Result<(), StoreError> {
    for child in &data.children {
        sqlx::query(
            "UPDATE children SET cancel_code = '~' || user_code \
             WHERE user_code = $1 AND cancel_code <> $2",
        )
        .bind(child.user_code.as_str())
        .bind(key.hash(&child.cancel_code).as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn adult_id(conn: &mut AnyConnection, fiscal_code: &str) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT id FROM adults WHERE fiscal_code = $1")
        .bind(fiscal_code)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("adult {fiscal_code} vanished")))?;
    Ok(row.try_get("id")?)
}

async fn write_ente(conn: &mut AnyConnection, data: &ImportData) -> Result<(), StoreError> {
    let e = &data.ente;
    sqlx::query(
        "INSERT INTO ente (id, name, timezone, cutoff, phone_window_opens, meal_price_cents, \
         currency, helpdesk_phone, late_requests, low_balance_meals, pagopa_creditor, \
         pagopa_aux_digit, pagopa_segregation, cancel_code_min_digits) \
         VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, timezone = excluded.timezone, \
         cutoff = excluded.cutoff, phone_window_opens = excluded.phone_window_opens, \
         meal_price_cents = excluded.meal_price_cents, currency = excluded.currency, \
         helpdesk_phone = excluded.helpdesk_phone, late_requests = excluded.late_requests, \
         low_balance_meals = excluded.low_balance_meals, \
         pagopa_creditor = excluded.pagopa_creditor, \
         pagopa_aux_digit = excluded.pagopa_aux_digit, \
         pagopa_segregation = excluded.pagopa_segregation, \
         cancel_code_min_digits = excluded.cancel_code_min_digits",
    )
    .bind(&e.name)
    .bind(e.timezone.name())
    .bind(e.cutoff.format("%H:%M").to_string())
    .bind(e.phone_window_opens.format("%H:%M").to_string())
    .bind(e.meal_price.0)
    .bind(&e.currency)
    .bind(e.helpdesk_phone.as_deref())
    .bind(match e.late_requests {
        LateRequestPolicy::Refuse => "refuse",
        LateRequestPolicy::ApplyToNextServiceDay => "apply_to_next_service_day",
    })
    .bind(i64::from(e.low_balance_meals))
    .bind(e.pagopa.as_ref().map(|p| p.creditor_fiscal_code.clone()))
    .bind(e.pagopa.as_ref().map(|p| i64::from(p.aux_digit)))
    .bind(e.pagopa.as_ref().map(|p| p.segregation_code.clone()))
    .bind(i64::from(e.cancel_code_min_digits))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The file's codes checked together with the stored children that the
/// file does not mention (those keep their codes).
async fn conflicts_with_stored(
    conn: &mut AnyConnection,
    data: &ImportData,
    key: &CodeKey,
) -> Result<Vec<Problem>, StoreError> {
    let in_file: std::collections::HashSet<&str> =
        data.children.iter().map(|c| c.user_code.as_str()).collect();
    // Stored children first, so a clash is reported at the file's place.
    // The stored codes are keyed hashes: the file's are hashed to compare.
    let mut all: Vec<(String, UserCode, CodeHash)> = Vec::new();
    for row in sqlx::query("SELECT user_code, cancel_code FROM children")
        .fetch_all(&mut *conn)
        .await?
    {
        let user: String = row.try_get("user_code")?;
        if in_file.contains(user.as_str()) {
            continue;
        }
        let cancel: String = row.try_get("cancel_code")?;
        let (Ok(user), Some(cancel)) = (UserCode::parse(&user), CodeHash::from_stored(&cancel))
        else {
            return Err(StoreError::Corrupt(format!(
                "bad stored codes of child {user}"
            )));
        };
        all.push((format!("stored child {user}"), user, cancel));
    }
    all.extend(data.children.iter().map(|c| {
        (
            c.place.clone(),
            c.user_code.clone(),
            key.hash(&c.cancel_code),
        )
    }));
    // Problems between stored children only are not this file's.
    Ok(code_problems(&all, |user| key.hash_digits(user.as_str()))
        .into_iter()
        .filter(|p| !(p.place.starts_with("stored child") && p.message.contains("stored child")))
        .collect())
}
