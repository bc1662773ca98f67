//! The one error type of the API, answered as RFC 9457 problem details
//! (`application/problem+json`):
//!
//! ```json
//! {"type": "urn:mensa:problem:after-cutoff", "title": "Too late to change this day",
//!  "status": 409, "detail": "...English...", "detail_it": "...Italian...",
//!  "refusal": {"kind": "after_cutoff", "date": "2026-12-10"}}
//! ```
//!
//! `type` is stable (clients switch on it); `detail` is English and
//! `detail_it` Italian, both written for a parent; `refusal` carries the
//! core's refusal where there is one. Database errors are logged and
//! answered as a bare 500: their text never leaves the server.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::messages;
use crate::bookings::pagopa::NoticeError;
use crate::bookings::{DateError, OutOfReach, Reach, Refusal};
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Peer fault: the request cannot be read (bad JSON syntax, bad path or
    /// query parameter).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Peer fault: well-formed JSON of the wrong shape (types, unknown or
    /// missing fields, values out of range).
    #[error("invalid body: {0}")]
    Invalid(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("payload too large")]
    PayloadTooLarge,
    /// No or an unknown bearer token.
    #[error("unauthorized")]
    Unauthorized,
    #[error("wrong login or password")]
    BadCredentials,
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: i64 },
    /// Too many login attempts from the client's address (per node).
    #[error("too many requests from this address; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: i64 },
    /// Every place to verify a password is taken: answered at once.
    #[error("busy; retry in {retry_after_secs} s")]
    Busy { retry_after_secs: i64 },
    /// A delegate may act for a child but does not pay for it.
    #[error("not the payer")]
    NotThePayer,
    #[error("not found: {0}")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Peer fault: a date, month or year outside the school calendar's
    /// reach (`bookings::reach`), or too far for any calendar.
    #[error("{0}")]
    OutOfReach(#[from] OutOfReach),
    /// A business refusal of the core.
    #[error("refused: {0}")]
    Refused(Refusal),
    #[error("news already published")]
    DuplicateNews,
    #[error("payments unavailable: {0}")]
    Payments(NoticeError),
    /// The request was not answered within the server's request timeout
    /// (`runtime::http::HttpLimits`). A change may still have been made.
    #[error("request timed out")]
    Timeout,
    /// Infrastructure failure: logged, never echoed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// Status, type slug, title, English and Italian detail.
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String, String) {
        use StatusCode as S;
        match self {
            ApiError::BadRequest(d) => (
                S::BAD_REQUEST,
                "malformed-request",
                "Malformed request",
                d.clone(),
                format!("La richiesta non è leggibile: {d}"),
            ),
            ApiError::Invalid(d) => (
                S::UNPROCESSABLE_ENTITY,
                "invalid-request",
                "Invalid request",
                d.clone(),
                format!("La richiesta non è valida: {d}"),
            ),
            ApiError::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "Send the body as application/json.".into(),
                "Inviare il contenuto come application/json.".into(),
            ),
            ApiError::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                "The request body is too large.".into(),
                "Il contenuto della richiesta è troppo grande.".into(),
            ),
            ApiError::Unauthorized => (
                S::UNAUTHORIZED,
                "unauthorized",
                "Login required",
                "Log in again: the session is missing or has expired.".into(),
                "Accedere di nuovo: la sessione manca o è scaduta.".into(),
            ),
            ApiError::BadCredentials => (
                S::UNAUTHORIZED,
                "bad-credentials",
                "Wrong login or password",
                "The code or the password is not right.".into(),
                "Il codice o la password non sono corretti.".into(),
            ),
            ApiError::TooManyAttempts { retry_after_secs } => (
                S::TOO_MANY_REQUESTS,
                "too-many-attempts",
                "Too many wrong passwords",
                format!(
                    "Too many wrong passwords for this login: try again in {} minute(s).",
                    minutes(*retry_after_secs)
                ),
                format!(
                    "Troppe password errate per questo accesso: riprovare tra {} minuti.",
                    minutes(*retry_after_secs)
                ),
            ),
            ApiError::RateLimited { retry_after_secs } => (
                S::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many login attempts from this address",
                format!(
                    "Too many login attempts from this network: try again in {} second(s).",
                    retry_after_secs.max(&1)
                ),
                format!(
                    "Troppi tentativi di accesso da questa rete: riprovare tra {} secondi.",
                    retry_after_secs.max(&1)
                ),
            ),
            ApiError::Busy { .. } => (
                S::SERVICE_UNAVAILABLE,
                "busy",
                "Too many logins at once",
                "The service is checking many logins right now: try again in a moment.".into(),
                "Il servizio sta verificando molti accessi in questo momento: riprovare tra \
                 qualche istante."
                    .into(),
            ),
            ApiError::NotThePayer => (
                S::FORBIDDEN,
                "not-the-payer",
                "Only the parent who pays can do this",
                "A delegate can change the child's days but not pay or see payments.".into(),
                "Un delegato può modificare le giornate ma non pagare né vedere i pagamenti."
                    .into(),
            ),
            ApiError::NotFound(what) => (
                S::NOT_FOUND,
                "not-found",
                "Not found",
                format!("No such {what}."),
                format!("Risorsa non trovata ({what})."),
            ),
            ApiError::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "This address does not take that method.".into(),
                "Questo indirizzo non accetta questo metodo.".into(),
            ),
            ApiError::OutOfReach(e) => {
                let m = messages::out_of_reach(&e.asked, &e.reach);
                (m.status, m.slug, m.title, m.en, m.it)
            }
            ApiError::Refused(r) => {
                let m = messages::refusal(r);
                (m.status, m.slug, m.title, m.en, m.it)
            }
            // The store's edge refused a date it could not compare: a
            // boundary let it through unchecked (logged below), but it came
            // with the request, so the caller hears what it did wrong.
            ApiError::Store(StoreError::UnstorableDate(date)) => {
                let m = messages::out_of_reach(&date.to_string(), &Reach::FRAME);
                (m.status, m.slug, m.title, m.en, m.it)
            }
            ApiError::DuplicateNews => (
                S::CONFLICT,
                "duplicate-news",
                "News already published",
                "News with this date and title already exists.".into(),
                "Esiste già una notizia con questa data e questo titolo.".into(),
            ),
            ApiError::Payments(_) => (
                S::SERVICE_UNAVAILABLE,
                "payments-unavailable",
                "Top-ups are not available",
                "Top-ups are not available now: call the helpdesk.".into(),
                "Le ricariche non sono disponibili ora: chiamare l'assistenza.".into(),
            ),
            ApiError::Timeout => (
                S::SERVICE_UNAVAILABLE,
                "timeout",
                "The request took too long",
                "The service is busy and did not answer in time. A change may or may not have been \
                 made: look at the calendar, or send the same request again."
                    .into(),
                "Il servizio è occupato e non ha risposto in tempo. La modifica potrebbe essere \
                 stata registrata o no: controllare il calendario o ripetere la stessa richiesta."
                    .into(),
            ),
            ApiError::Store(_) => (
                S::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "Something went wrong on our side; nothing was changed. Try again later.".into(),
                "Si è verificato un errore nel sistema; nulla è stato modificato. Riprovare più tardi."
                    .into(),
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

fn minutes(secs: i64) -> i64 {
    (secs.max(1) + 59) / 60
}

/// A problem body with its stable type URI.
pub fn problem_body(status: StatusCode, slug: &str, title: &str, en: &str, it: &str) -> Value {
    json!({
        "type": format!("urn:mensa:problem:{slug}"),
        "title": title,
        "status": status.as_u16(),
        "detail": en,
        "detail_it": it,
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title, en, it) = self.parts();
        let mut body = problem_body(status, slug, title, &en, &it);
        match &self {
            ApiError::Refused(r) => {
                body["refusal"] = serde_json::to_value(r).unwrap_or(Value::Null);
            }
            ApiError::Store(e @ StoreError::UnstorableDate(_)) => {
                tracing::warn!(error = %e, "a date reached the store unchecked; answered as 422");
            }
            ApiError::Store(e) => tracing::error!(error = %e, "store failure answered as 500"),
            ApiError::Payments(e) => tracing::error!(error = %e, "payment notice not issued"),
            _ => {}
        }
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            ApiError::Unauthorized | ApiError::BadCredentials => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyAttempts { retry_after_secs }
            | ApiError::RateLimited { retry_after_secs }
            | ApiError::Busy { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(&1).to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        match r {
            JsonRejection::JsonDataError(e) => ApiError::Invalid(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

/// A date, month or year typed in a path or a query: malformed is 400
/// (`malformed-request`), out of reach is 422 (`date-out-of-reach`).
impl From<DateError> for ApiError {
    fn from(e: DateError) -> ApiError {
        match e {
            DateError::Malformed { .. } => ApiError::BadRequest(e.to_string()),
            DateError::OutOfReach(e) => ApiError::OutOfReach(e),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::BadRequest(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::BadRequest(r.body_text())
    }
}
