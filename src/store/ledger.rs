//! R11 Credit: a child's ledger and balance.

use sqlx::Row;

use super::children::load_settings;
use super::rows::{from_millis, get_opt_date};
use super::{Child, Store, StoreError};
use crate::bookings::Cents;
use crate::bookings::ledger::{EntryKind, Ledger, LedgerEntry};

impl Store {
    /// Every entry of the child's ledger, oldest first, with the balance.
    pub async fn ledger(&self, child: &Child) -> Result<Ledger, StoreError> {
        let mut conn = self.read.acquire().await?;
        let settings = load_settings(&mut conn).await?;
        let entries = sqlx::query(
            "SELECT at_ms, kind, amount_cents, date, description FROM ledger \
             WHERE child_id = $1 ORDER BY at_ms, id",
        )
        .bind(child.id.0)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(LedgerEntry {
                at: from_millis(r.try_get("at_ms")?)?,
                kind: EntryKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("bad ledger kind {kind:?}")))?,
                amount_cents: Cents(r.try_get("amount_cents")?),
                date: get_opt_date(r, "date")?,
                description: r.try_get("description")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let price = child.meal_price.unwrap_or(settings.meal_price);
        Ok(Ledger::from_entries(
            entries,
            price,
            settings.low_balance_meals,
        ))
    }
}
