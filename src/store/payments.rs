//! R11 top-ups through pagoPA: payment notices (avvisi di pagamento),
//! pending until their receipt, which credits the ledger exactly once
//! (the ledger's unique `reference` is `pagopa:<notice number>`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::children::load_settings;
use super::rows::{from_millis, get_date, millis};
use super::sessions::AdultId;
use super::{Child, ChildId, Store, StoreError};
use crate::bookings::pagopa::{NoticeError, NoticeNumber};
use crate::bookings::{Cents, FiscalCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Paid,
}

/// A payment notice and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    pub notice_number: NoticeNumber,
    #[serde(skip)]
    pub child: ChildId,
    /// The parent who asked for it: the payer of the tax statement.
    pub payer_fiscal_code: FiscalCode,
    pub amount_cents: Cents,
    pub creditor_fiscal_code: String,
    pub due_date: NaiveDate,
    pub created_at: DateTime<Utc>,
    pub status: PaymentStatus,
    pub paid_at: Option<DateTime<Utc>>,
}

/// What a receipt did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub payment: Payment,
    /// True the first time: the ledger was credited by this call.
    pub credited: bool,
}

const PAYMENT_COLUMNS: &str = "p.notice_number, p.child_id, a.fiscal_code AS payer, \
     p.amount_cents, p.creditor, p.due_date, p.created_at_ms, p.status, p.paid_at_ms";

fn payment_from_row(row: &AnyRow) -> Result<Payment, StoreError> {
    let notice: String = row.try_get("notice_number")?;
    let payer: String = row.try_get("payer")?;
    let status: String = row.try_get("status")?;
    Ok(Payment {
        notice_number: NoticeNumber::parse(&notice)
            .map_err(|e| StoreError::Corrupt(format!("notice number {notice:?}: {e}")))?,
        child: ChildId(row.try_get("child_id")?),
        payer_fiscal_code: FiscalCode::parse(&payer)
            .map_err(|e| StoreError::Corrupt(format!("payer: {e}")))?,
        amount_cents: Cents(row.try_get("amount_cents")?),
        creditor_fiscal_code: row.try_get("creditor")?,
        due_date: get_date(row, "due_date")?,
        created_at: from_millis(row.try_get("created_at_ms")?)?,
        status: match status.as_str() {
            "paid" => PaymentStatus::Paid,
            "pending" => PaymentStatus::Pending,
            other => return Err(StoreError::Corrupt(format!("payment status {other:?}"))),
        },
        paid_at: row
            .try_get::<Option<i64>, _>("paid_at_ms")?
            .map(from_millis)
            .transpose()?,
    })
}

impl Store {
    /// Issues a payment notice for a top-up of `child` asked by `payer`.
    /// The IUV base is the payment's row id, so notices never repeat.
    pub async fn create_payment_notice(
        &self,
        child: &Child,
        payer: AdultId,
        amount: Cents,
        due_date: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Result<Payment, NoticeError>, StoreError> {
        let mut tx = self.write.begin().await?;
        let settings = load_settings(&mut tx).await?;
        let Some(pagopa) = settings.pagopa else {
            return Ok(Err(NoticeError::NotConfigured));
        };
        let id: i64 = sqlx::query(
            "INSERT INTO payments (child_id, payer_id, amount_cents, creditor, due_date, \
             created_at_ms, status) VALUES ($1, $2, $3, $4, $5, $6, 'pending') RETURNING id",
        )
        .bind(child.id.0)
        .bind(payer.0)
        .bind(amount.0)
        .bind(&pagopa.creditor_fiscal_code)
        .bind(super::rows::date_text(due_date)?)
        .bind(millis(now))
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let base = u64::try_from(id).unwrap_or(u64::MAX);
        let notice = match NoticeNumber::issue(&pagopa, base) {
            Ok(n) => n,
            Err(e) => {
                tx.rollback().await?;
                return Ok(Err(e));
            }
        };
        sqlx::query("UPDATE payments SET notice_number = $1 WHERE id = $2")
            .bind(notice.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p JOIN adults a ON a.id = p.payer_id \
             WHERE p.id = $1"
        );
        let payment = payment_from_row(&sqlx::query(&sql).bind(id).fetch_one(&mut *tx).await?)?;
        tx.commit().await?;
        Ok(Ok(payment))
    }

    /// Every notice of a child, newest first.
    pub async fn payments(&self, child: ChildId) -> Result<Vec<Payment>, StoreError> {
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p JOIN adults a ON a.id = p.payer_id \
             WHERE p.child_id = $1 AND p.notice_number IS NOT NULL \
             ORDER BY p.created_at_ms DESC, p.id DESC"
        );
        sqlx::query(&sql)
            .bind(child.0)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(payment_from_row)
            .collect()
    }

    /// The payments of a child received in `[from, to)`, oldest first.
    pub async fn payments_received(
        &self,
        child: ChildId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Payment>, StoreError> {
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p JOIN adults a ON a.id = p.payer_id \
             WHERE p.child_id = $1 AND p.status = 'paid' AND p.paid_at_ms >= $2 \
             AND p.paid_at_ms < $3 ORDER BY p.paid_at_ms, p.id"
        );
        sqlx::query(&sql)
            .bind(child.0)
            .bind(millis(from))
            .bind(millis(to))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(payment_from_row)
            .collect()
    }

    /// Records the pagoPA receipt of a notice: marks it paid and credits
    /// the ledger, once however often it is repeated. None: no such notice.
    pub async fn record_receipt(
        &self,
        notice: &NoticeNumber,
        now: DateTime<Utc>,
    ) -> Result<Option<Receipt>, StoreError> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "UPDATE payments SET status = 'paid', paid_at_ms = COALESCE(paid_at_ms, $1) \
             WHERE notice_number = $2 RETURNING id, child_id, amount_cents",
        )
        .bind(millis(now))
        .bind(notice.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let id: i64 = row.try_get("id")?;
        let credited = sqlx::query(
            "INSERT INTO ledger (child_id, at_ms, kind, amount_cents, reference, description) \
             VALUES ($1, $2, 'top_up', $3, $4, $5) \
             ON CONFLICT (reference) WHERE reference IS NOT NULL DO NOTHING",
        )
        .bind(row.try_get::<i64, _>("child_id")?)
        .bind(millis(now))
        .bind(row.try_get::<i64, _>("amount_cents")?)
        .bind(format!("pagopa:{notice}"))
        .bind(format!("Ricarica pagoPA, avviso {notice}"))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments p JOIN adults a ON a.id = p.payer_id \
             WHERE p.id = $1"
        );
        let payment = payment_from_row(&sqlx::query(&sql).bind(id).fetch_one(&mut *tx).await?)?;
        tx.commit().await?;
        Ok(Some(Receipt { payment, credited }))
    }
}
