//! R11 credit: the ledger, pagoPA top-ups (payment notices), their
//! receipts (operators), and the yearly tax statement (730).
//!
//! A delegate may see the ledger (to know whether meals are covered) but
//! is not a payer: top-ups, payments and statements are the parent's (403).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use super::auth::{Operator, Parent};
use super::{ApiError, AppState, Body, PathParams, json};
use crate::bookings::Cents;
use crate::bookings::pagopa::NoticeNumber;
use crate::store::{Payment, PaymentStatus, StoreError};

pub async fn ledger(
    State(state): State<AppState>,
    parent: Parent,
    PathParams(code): PathParams<String>,
) -> Result<Response, ApiError> {
    let (child, _) = parent.child(&state, &code).await?;
    let ledger = state.store.ledger(&child).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "user_code": child.user_code,
            "balance_cents": ledger.balance_cents,
            "low_balance": ledger.low_balance,
            "entries": ledger.entries,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopUpBody {
    amount_cents: i64,
}

/// A payment notice as the portal shows and prints it.
#[derive(Serialize)]
pub struct NoticeView {
    notice_number: String,
    iuv: String,
    creditor_fiscal_code: String,
    amount_cents: Cents,
    due_date: NaiveDate,
    status: PaymentStatus,
    created_at: chrono::DateTime<chrono::Utc>,
    paid_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The text of the notice's QR code.
    qr_payload: String,
}

fn notice_view(p: &Payment) -> NoticeView {
    NoticeView {
        notice_number: p.notice_number.to_string(),
        iuv: p.notice_number.iuv().to_string(),
        creditor_fiscal_code: p.creditor_fiscal_code.clone(),
        amount_cents: p.amount_cents,
        due_date: p.due_date,
        status: p.status,
        created_at: p.created_at,
        paid_at: p.paid_at,
        qr_payload: p
            .notice_number
            .qr_payload(&p.creditor_fiscal_code, p.amount_cents),
    }
}

pub async fn top_up(
    State(state): State<AppState>,
    parent: Parent,
    PathParams(code): PathParams<String>,
    Body(body): Body<TopUpBody>,
) -> Result<Response, ApiError> {
    let child = parent.paid_child(&state, &code).await?;
    let max = state.config.max_top_up;
    if body.amount_cents < 1 || body.amount_cents > max.0 {
        return Err(ApiError::Invalid(format!(
            "amount_cents must be from 1 to {}",
            max.0
        )));
    }
    let settings = state.store.settings().await?;
    let now = state.clock.now();
    let today = settings.today(now);
    // Checked: only a clock at chrono's end has no date 30 days on, and the
    // store would refuse that date anyway.
    let due = today
        .checked_add_days(Days::new(u64::from(state.config.notice_due_days)))
        .ok_or(StoreError::UnstorableDate(today))?;
    let payment = state
        .store
        .create_payment_notice(&child, parent.adult.id, Cents(body.amount_cents), due, now)
        .await?
        .map_err(ApiError::Payments)?;
    Ok(json(StatusCode::CREATED, &notice_view(&payment)))
}

pub async fn payments(
    State(state): State<AppState>,
    parent: Parent,
    PathParams(code): PathParams<String>,
) -> Result<Response, ApiError> {
    let child = parent.paid_child(&state, &code).await?;
    let list = state.store.payments(child.id).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "user_code": child.user_code,
            "payments": list.iter().map(notice_view).collect::<Vec<_>>(),
        }),
    ))
}

/// `GET /children/{user_code}/statements/{year}`: payments received in the
/// ente's calendar year, for the 730 tax return.
pub async fn statement(
    State(state): State<AppState>,
    parent: Parent,
    PathParams((code, year)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let child = parent.paid_child(&state, &code).await?;
    // Not a number: 400; a number outside the child's reach (however many
    // digits): 422.
    let year = state.store.child_reach(&child).await?.parse_year(&year)?;
    let settings = state.store.settings().await?;
    let bounds = NaiveDate::from_ymd_opt(year, 1, 1)
        .zip(NaiveDate::from_ymd_opt(year.saturating_add(1), 1, 1))
        .ok_or_else(|| ApiError::BadRequest(format!("year {year} is out of range")))?;
    let from = settings.instant(bounds.0.and_time(chrono::NaiveTime::MIN));
    let to = settings.instant(bounds.1.and_time(chrono::NaiveTime::MIN));
    let received = state.store.payments_received(child.id, from, to).await?;
    let total: Cents = received.iter().map(|p| p.amount_cents).sum();
    let payers: std::collections::BTreeSet<String> = received
        .iter()
        .map(|p| p.payer_fiscal_code.as_str().to_owned())
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "year": year,
            "ente": settings.name,
            "creditor_fiscal_code": settings.pagopa.as_ref().map(|p| p.creditor_fiscal_code.clone()),
            "child": {
                "user_code": child.user_code,
                "fiscal_code": child.fiscal_code,
                "first_name": child.first_name,
                "last_name": child.last_name,
            },
            "payer_fiscal_codes": payers,
            "payments": received.iter().map(|p| serde_json::json!({
                "notice_number": p.notice_number,
                "payer_fiscal_code": p.payer_fiscal_code,
                "amount_cents": p.amount_cents,
                "paid_at": p.paid_at,
            })).collect::<Vec<_>>(),
            "total_cents": total,
        }),
    ))
}

/// `POST /payments/{notice_number}/receipt` (operators): the pagoPA
/// receipt. Repeating it changes nothing (`"credited": false`).
pub async fn receipt(
    State(state): State<AppState>,
    _operator: Operator,
    PathParams(notice): PathParams<String>,
) -> Result<Response, ApiError> {
    let notice = NoticeNumber::parse(&notice)
        .map_err(|e| ApiError::BadRequest(format!("notice number: {e}")))?;
    let receipt = state
        .store
        .record_receipt(&notice, state.clock.now())
        .await?
        .ok_or(ApiError::NotFound("payment notice"))?;
    let mut body = serde_json::to_value(notice_view(&receipt.payment)).unwrap_or_default();
    body["credited"] = serde_json::Value::Bool(receipt.credited);
    Ok(json(StatusCode::OK, &body))
}
