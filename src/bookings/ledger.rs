//! R11 Credit: the balance is the sum of the ledger (top-ups minus meal
//! charges plus adjustments). It may go below zero: a child is never left
//! without a meal; the family is told (low balance).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::ids::Cents;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A meal charged at the closing of its day (negative amount).
    Meal,
    /// A top-up (ricarica) paid through pagoPA (positive amount).
    TopUp,
    /// A correction entered by an operator (either sign).
    Adjustment,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Meal => "meal",
            EntryKind::TopUp => "top_up",
            EntryKind::Adjustment => "adjustment",
        }
    }

    pub fn parse(s: &str) -> Option<EntryKind> {
        match s {
            "meal" => Some(EntryKind::Meal),
            "top_up" => Some(EntryKind::TopUp),
            "adjustment" => Some(EntryKind::Adjustment),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    pub at: DateTime<Utc>,
    pub kind: EntryKind,
    pub amount_cents: Cents,
    /// The meal's day, for meal charges.
    pub date: Option<NaiveDate>,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ledger {
    pub balance_cents: Cents,
    pub low_balance: bool,
    pub entries: Vec<LedgerEntry>,
}

impl Ledger {
    /// Builds the ledger from its entries; `low_balance` when the credit
    /// covers fewer than `low_balance_meals` meals at `meal_price`.
    pub fn from_entries(
        entries: Vec<LedgerEntry>,
        meal_price: Cents,
        low_balance_meals: u32,
    ) -> Ledger {
        let balance: Cents = entries.iter().map(|e| e.amount_cents).sum();
        let threshold = meal_price.0.saturating_mul(i64::from(low_balance_meals));
        Ledger {
            balance_cents: balance,
            low_balance: balance.0 < threshold,
            entries,
        }
    }
}
