//! A child's calendar and its changes (R4, R7, R8, R9), and operators'
//! special diets (R13). Changes go through [`Store::apply`], the one door
//! every channel uses, so the phone line and the portal see each other's
//! changes at once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::auth::{ChannelOf, Operator, Parent};
use super::messages::{no_service_en, no_service_it};
use super::{ApiError, AppState, Body, PathParams, QueryParams, json};
use crate::bookings::{
    DayRequest, DayStatus, Diet, EnteSettings, MarkKind, NoService, Refusal, SuspensionChange,
    UserCode,
};
use crate::store::{Applied, CalendarDay, Child, Operation};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonthQuery {
    /// YYYY-MM; the current month of the ente when absent.
    month: Option<String>,
}

#[derive(Serialize)]
struct DayView {
    date: NaiveDate,
    status: &'static str,
    changeable: bool,
    last_change: Option<ChangeView>,
    no_service: Option<NoServiceView>,
}

#[derive(Serialize)]
struct ChangeView {
    channel: &'static str,
    /// Local time of the ente, with its offset.
    at: String,
}

#[derive(Serialize)]
struct NoServiceView {
    #[serde(flatten)]
    reason: NoService,
    text: String,
    text_it: String,
}

fn day_view(settings: &EnteSettings, day: &CalendarDay) -> DayView {
    DayView {
        date: day.date,
        status: day.status.word(),
        changeable: day.changeable,
        last_change: day.changed.map(|(channel, at)| ChangeView {
            channel: channel.as_str(),
            at: at.with_timezone(&settings.timezone).to_rfc3339(),
        }),
        no_service: match &day.status {
            DayStatus::NoService(why) => Some(NoServiceView {
                reason: why.clone(),
                text: no_service_en(why),
                text_it: no_service_it(why),
            }),
            _ => None,
        },
    }
}

pub async fn calendar(
    State(state): State<AppState>,
    parent: Parent,
    PathParams(code): PathParams<String>,
    QueryParams(query): QueryParams<MonthQuery>,
) -> Result<Response, ApiError> {
    let (child, _) = parent.child(&state, &code).await?;
    let settings = state.store.settings().await?;
    let now = state.clock.now();
    let (first, last) = match &query.month {
        // A month the parent names must overlap the child's reach.
        Some(month) => state.store.child_reach(&child).await?.parse_month(month)?,
        None => {
            let first = settings
                .today(now)
                .with_day(1)
                .unwrap_or(settings.today(now));
            let last = first
                .checked_add_months(chrono::Months::new(1))
                .and_then(|d| d.pred_opt())
                .ok_or_else(|| ApiError::BadRequest("month out of range".into()))?;
            (first, last)
        }
    };
    let days = state.store.calendar(&child, first, last, now).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "user_code": child.user_code,
            "month": first.format("%Y-%m").to_string(),
            "days": days.iter().map(|d| day_view(&settings, d)).collect::<Vec<_>>(),
        }),
    ))
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WantedStatus {
    Absent,
    PlainMeal,
    Booked,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayBody {
    status: WantedStatus,
}

/// The day after a change, as the calendar now shows it.
async fn day_after(
    state: &AppState,
    child: &Child,
    date: NaiveDate,
    changed: bool,
) -> Result<Response, ApiError> {
    let settings = state.store.settings().await?;
    let now = state.clock.now();
    let days = state.store.calendar(child, date, date, now).await?;
    let day = days.first().ok_or(ApiError::NotFound("day"))?;
    let mut body = serde_json::to_value(day_view(&settings, day)).unwrap_or_default();
    body["changed"] = serde_json::Value::Bool(changed);
    Ok(json(StatusCode::OK, &body))
}

/// `PUT /children/{user_code}/days/{date}`: idempotent. Asking for the
/// status the day already has answers 200 with `"changed": false`.
pub async fn change_day(
    State(state): State<AppState>,
    parent: Parent,
    ChannelOf(channel): ChannelOf,
    PathParams((code, date)): PathParams<(String, String)>,
    Body(body): Body<DayBody>,
) -> Result<Response, ApiError> {
    let (child, relation) = parent.child(&state, &code).await?;
    // Checked here for the path's own answer (malformed: 400); the rules
    // check the reach again inside the change's transaction.
    let date = state.store.child_reach(&child).await?.parse_date(&date)?;
    let request = match body.status {
        WantedStatus::Absent => DayRequest::Absent,
        WantedStatus::PlainMeal => DayRequest::PlainMeal,
        WantedStatus::Booked => DayRequest::Booked,
    };
    let now = state.clock.now();
    let outcome = state
        .store
        .apply(
            child.id,
            Operation::Day { date, request },
            &parent.actor(relation),
            channel,
            now,
        )
        .await?;
    match outcome {
        Ok(Applied::Day(change)) => {
            state.metrics.count_operation(channel);
            // What the calendar now shows, known without reading it back:
            // the mark written (or none after an undo), by this request.
            let settings = state.store.settings().await?;
            let status = match change.mark {
                Some(MarkKind::Absent) => DayStatus::Absent,
                Some(MarkKind::PlainMeal) => DayStatus::PlainMeal,
                None => DayStatus::Booked,
            };
            let day = CalendarDay {
                date: change.date,
                changeable: settings.is_open(change.date, now),
                // Stored to the millisecond: answer what a read will show.
                changed: change.mark.map(|_| {
                    let stored = DateTime::from_timestamp_millis(now.timestamp_millis());
                    (channel, stored.unwrap_or(now))
                }),
                status,
            };
            let mut body = serde_json::to_value(day_view(&settings, &day)).unwrap_or_default();
            body["changed"] = serde_json::Value::Bool(true);
            Ok(json(StatusCode::OK, &body))
        }
        Ok(Applied::Suspension(_)) => day_after(&state, &child, date, true).await,
        Err(
            Refusal::AlreadyAbsent { date }
            | Refusal::AlreadyPlainMeal { date }
            | Refusal::NothingToUndo { date },
        ) => day_after(&state, &child, date, false).await,
        Err(refusal) => Err(ApiError::Refused(refusal)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspensionBody {
    from: NaiveDate,
    /// The first day back; null or absent for an open suspension.
    #[serde(default)]
    until: Option<NaiveDate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactivationBody {
    from: NaiveDate,
}

#[derive(Serialize)]
struct SuspensionView {
    user_code: UserCode,
    #[serde(flatten)]
    change: SuspensionChange,
}

async fn apply_suspension(
    state: &AppState,
    parent: &Parent,
    channel: crate::bookings::Channel,
    code: &str,
    operation: Operation,
) -> Result<Response, ApiError> {
    let (child, relation) = parent.child(state, code).await?;
    let outcome = state
        .store
        .apply(
            child.id,
            operation,
            &parent.actor(relation),
            channel,
            state.clock.now(),
        )
        .await?;
    match outcome {
        Ok(Applied::Suspension(change)) => {
            state.metrics.count_operation(channel);
            Ok(json(
                StatusCode::OK,
                &SuspensionView {
                    user_code: child.user_code,
                    change,
                },
            ))
        }
        Ok(Applied::Day(_)) => Err(ApiError::NotFound("suspension")),
        Err(refusal) => Err(ApiError::Refused(refusal)),
    }
}

pub async fn suspend(
    State(state): State<AppState>,
    parent: Parent,
    ChannelOf(channel): ChannelOf,
    PathParams(code): PathParams<String>,
    Body(body): Body<SuspensionBody>,
) -> Result<Response, ApiError> {
    let operation = Operation::Suspend {
        from: body.from,
        until: body.until,
    };
    apply_suspension(&state, &parent, channel, &code, operation).await
}

pub async fn reactivate(
    State(state): State<AppState>,
    parent: Parent,
    ChannelOf(channel): ChannelOf,
    PathParams(code): PathParams<String>,
    Body(body): Body<ReactivationBody>,
) -> Result<Response, ApiError> {
    let operation = Operation::Reactivate { from: body.from };
    apply_suspension(&state, &parent, channel, &code, operation).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DietBody {
    diet: String,
}

/// `PUT /children/{user_code}/diet` (operators): R13.
pub async fn set_diet(
    State(state): State<AppState>,
    operator: Operator,
    PathParams(code): PathParams<String>,
    Body(body): Body<DietBody>,
) -> Result<Response, ApiError> {
    let diet = Diet::parse(&body.diet).map_err(ApiError::Invalid)?;
    let code = UserCode::parse(&code).map_err(|_| ApiError::NotFound("child"))?;
    let child = state
        .store
        .child_by_user_code(&code)
        .await?
        .ok_or(ApiError::NotFound("child"))?;
    state
        .store
        .set_diet(&child, &diet, &operator.actor(), state.clock.now())
        .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"user_code": child.user_code, "diet": diet}),
    ))
}
