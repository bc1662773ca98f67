//! Operators' resources: the kitchen report, closures at short notice,
//! news, and the phone line's call records. `GET /news` is the parents'.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{NaiveDate, NaiveTime};
use serde::Deserialize;

use super::auth::{Operator, Parent};
use super::{ApiError, AppState, Body, PathParams, QueryParams, json};
use crate::bookings::SchoolId;
use crate::store::StoreError;

pub async fn kitchen(
    State(state): State<AppState>,
    _operator: Operator,
    PathParams(date): PathParams<String>,
) -> Result<Response, ApiError> {
    let date = state.store.reach().await?.parse_date(&date)?;
    let report = state.store.kitchen_report(date).await?;
    Ok(json(StatusCode::OK, &report))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosureBody {
    from: NaiveDate,
    /// The last day closed; the same as `from` when absent.
    #[serde(default)]
    to: Option<NaiveDate>,
    reason: String,
}

pub async fn add_closure(
    State(state): State<AppState>,
    _operator: Operator,
    PathParams(school): PathParams<String>,
    Body(body): Body<ClosureBody>,
) -> Result<Response, ApiError> {
    let school = SchoolId::parse(&school).map_err(|_| ApiError::NotFound("school"))?;
    let reach = state
        .store
        .school_reach(&school)
        .await?
        .ok_or(ApiError::NotFound("school"))?;
    reach.check(body.from)?;
    let to = reach.check(body.to.unwrap_or(body.from))?;
    let reason = body.reason.trim();
    if to < body.from {
        return Err(ApiError::Invalid("\"to\" is before \"from\"".into()));
    }
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(ApiError::Invalid(
            "reason must be 1 to 200 characters".into(),
        ));
    }
    let closure = state
        .store
        .add_operator_closure(&school, body.from, to, reason)
        .await?
        .ok_or(ApiError::NotFound("school"))?;
    Ok(json(StatusCode::CREATED, &closure))
}

/// `GET /schools/{school_id}/closures` (operators): every closure, with
/// its id (to remove an operator's) and its source.
pub async fn list_closures(
    State(state): State<AppState>,
    _operator: Operator,
    PathParams(school): PathParams<String>,
) -> Result<Response, ApiError> {
    let school = SchoolId::parse(&school).map_err(|_| ApiError::NotFound("school"))?;
    let closures = state
        .store
        .closures(&school)
        .await?
        .ok_or(ApiError::NotFound("school"))?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "school": school, "closures": closures }),
    ))
}

pub async fn remove_closure(
    State(state): State<AppState>,
    _operator: Operator,
    PathParams((school, id)): PathParams<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let school = SchoolId::parse(&school).map_err(|_| ApiError::NotFound("closure"))?;
    if state.store.remove_operator_closure(&school, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("closure"))
    }
}

pub async fn news(State(state): State<AppState>, _parent: Parent) -> Result<Response, ApiError> {
    let news = state.store.news().await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "news": news })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewsBody {
    /// Today of the ente when absent.
    #[serde(default)]
    date: Option<NaiveDate>,
    title: String,
    body: String,
}

pub async fn publish_news(
    State(state): State<AppState>,
    _operator: Operator,
    Body(body): Body<NewsBody>,
) -> Result<Response, ApiError> {
    let (title, text) = (body.title.trim(), body.body.trim());
    if title.is_empty() || title.chars().count() > 200 || text.is_empty() {
        return Err(ApiError::Invalid(
            "title (1 to 200 characters) and body are required".into(),
        ));
    }
    let date = match body.date {
        Some(d) => state.store.reach().await?.check(d)?,
        None => state.store.settings().await?.today(state.clock.now()),
    };
    let news = state
        .store
        .add_news(date, title, text)
        .await?
        .ok_or(ApiError::DuplicateNews)?;
    Ok(json(StatusCode::CREATED, &news))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsQuery {
    /// YYYY-MM-DD, read against the ente's reach (malformed: 400).
    date: String,
}

/// `GET /calls?date=YYYY-MM-DD`: the calls started that local day.
pub async fn calls(
    State(state): State<AppState>,
    _operator: Operator,
    QueryParams(query): QueryParams<CallsQuery>,
) -> Result<Response, ApiError> {
    let date = state.store.reach().await?.parse_date(&query.date)?;
    let settings = state.store.settings().await?;
    // In reach, so the next day exists; checked all the same.
    let next = date.succ_opt().ok_or(StoreError::UnstorableDate(date))?;
    let from = settings.instant(date.and_time(NaiveTime::MIN));
    let to = settings.instant(next.and_time(NaiveTime::MIN));
    let calls = state.store.calls(from, to).await?;
    let calls: Vec<_> = calls
        .into_iter()
        .map(|(id, c)| {
            let mut v = serde_json::to_value(&c).unwrap_or_default();
            v["id"] = serde_json::Value::from(id);
            v
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "date": date, "calls": calls }),
    ))
}
