//! The JSON API under `/api/v1`, for the parents' portal and app and for
//! the catering company's operators. Described by the OpenAPI 3 document
//! served at `/api/v1/openapi.json` (`src/api/openapi.json`; a test keeps
//! it and the router equal, route for route).
//!
//! - Parents and delegates log in (`POST /session`) and send
//!   `Authorization: Bearer <token>`; operators send the operator token
//!   (config or `MENSA_OPERATOR_TOKEN`), a separate secret.
//! - Every change goes through [`Store::apply`] with the adult as
//!   [`Actor`] and the channel `portal`, or `app` when the request carries
//!   `X-Mensa-Channel: app`.
//! - Errors are RFC 9457 problem details ([`error`]).
//! - The wall clock is the [`Clock`] in the state: tests set it by hand.
//!
//! One file per resource; no SQL here (the store is the only door).

pub mod address_limit;
pub mod auth;
pub mod children;
pub mod error;
pub mod health;
pub mod login_guard;
pub mod messages;
pub mod money;
pub mod operator;
pub mod session;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use serde::de::DeserializeOwned;

pub use error::ApiError;
pub use health::{EdgeCounters, Metrics};
pub use login_guard::{ClientAddr, LoginGuard, LoginLimits};

use crate::bookings::{Cents, Clock};
use crate::store::Store;

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The operators' bearer token; None: operator routes answer 401.
    pub operator_token: Option<String>,
    /// How long a parent's session lasts.
    pub session_ttl: chrono::Duration,
    /// How long a device token lets its device log in under its own
    /// count (each login replaces it with a new one).
    pub device_ttl: chrono::Duration,
    /// The limits on login attempts (`[http]` login settings).
    pub login: LoginLimits,
    /// The largest top-up one notice may ask for.
    pub max_top_up: Cents,
    /// Days from the notice to its due date.
    pub notice_due_days: u32,
    /// The largest request body read; larger ones get 413.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            operator_token: None,
            session_ttl: chrono::Duration::hours(12),
            device_ttl: chrono::Duration::days(180),
            login: LoginLimits::default(),
            max_top_up: Cents(50_000),
            notice_due_days: 30,
            max_body_bytes: DEFAULT_BODY_LIMIT,
        }
    }
}

/// What every handler is given.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<ApiConfig>,
    pub metrics: Arc<Metrics>,
    /// Set by `serve` once the SIP endpoint listens; cleared when a
    /// shutdown starts draining.
    pub sip_listening: Arc<AtomicBool>,
    /// The login limits at work (`config.login`).
    pub login: Arc<LoginGuard>,
}

impl AppState {
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: ApiConfig) -> AppState {
        let metrics = Arc::new(Metrics::default());
        let login = Arc::new(LoginGuard::new(config.login, metrics.hashing.clone()));
        AppState {
            store,
            clock,
            config: Arc::new(config),
            metrics,
            sip_listening: Arc::new(AtomicBool::new(false)),
            login,
        }
    }

    /// The same state with other login limits (new address buckets and
    /// hashing workers; the metrics stay shared).
    pub fn with_login_limits(mut self, limits: LoginLimits) -> AppState {
        if self.config.login != limits {
            let mut config = (*self.config).clone();
            config.login = limits;
            self.config = Arc::new(config);
            self.login = Arc::new(LoginGuard::new(limits, self.metrics.hashing.clone()));
        }
        self
    }
}

/// The prefix of every route.
pub const PREFIX: &str = "/api/v1";

/// The largest request body read by default (JSON bodies here are tiny).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The router and the list of its routes, built together so that the list
/// is true by construction (the OpenAPI test compares it with the document).
struct Routes {
    router: Router<AppState>,
    list: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        handler: MethodRouter<AppState>,
    ) -> Routes {
        self.router = self.router.route(path, handler);
        self.list.push((method, path));
        self
    }
}

fn routes() -> Routes {
    Routes {
        router: Router::new(),
        list: Vec::new(),
    }
    .add("GET", "/openapi.json", get(health::openapi))
    .add("GET", "/health", get(health::health))
    .add("GET", "/metrics", get(health::metrics))
    .add("POST", "/session", post(session::login))
    .add("DELETE", "/session", delete(session::logout))
    .add("GET", "/me", get(session::me))
    .add("GET", "/news", get(operator::news))
    .add("POST", "/news", post(operator::publish_news))
    .add(
        "GET",
        "/children/{user_code}/calendar",
        get(children::calendar),
    )
    .add(
        "PUT",
        "/children/{user_code}/days/{date}",
        put(children::change_day),
    )
    .add(
        "POST",
        "/children/{user_code}/suspension",
        post(children::suspend),
    )
    .add(
        "POST",
        "/children/{user_code}/reactivation",
        post(children::reactivate),
    )
    .add("PUT", "/children/{user_code}/diet", put(children::set_diet))
    .add("GET", "/children/{user_code}/ledger", get(money::ledger))
    .add("POST", "/children/{user_code}/top-ups", post(money::top_up))
    .add(
        "GET",
        "/children/{user_code}/payments",
        get(money::payments),
    )
    .add(
        "GET",
        "/children/{user_code}/statements/{year}",
        get(money::statement),
    )
    .add(
        "POST",
        "/payments/{notice_number}/receipt",
        post(money::receipt),
    )
    .add("GET", "/kitchen/{date}", get(operator::kitchen))
    .add(
        "GET",
        "/schools/{school_id}/closures",
        get(operator::list_closures),
    )
    .add(
        "POST",
        "/schools/{school_id}/closures",
        post(operator::add_closure),
    )
    .add(
        "DELETE",
        "/schools/{school_id}/closures/{closure_id}",
        delete(operator::remove_closure),
    )
    .add("GET", "/calls", get(operator::calls))
}

/// Every route as (method, path under [`PREFIX`]).
pub fn route_list() -> Vec<(&'static str, &'static str)> {
    routes().list
}

/// The API, ready to serve.
pub fn router(state: AppState) -> Router {
    let api = routes()
        .router
        .fallback(|| async { ApiError::NotFound("address") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .nest(PREFIX, api)
        .fallback(|| async { ApiError::NotFound("address") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            body_limit,
            announced_body_limit,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Request log and metrics. The log names the route template
/// (`/children/{user_code}/calendar`), never the filled-in path: user
/// codes, dates and notice numbers stay out of the logs.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(unmatched)".to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state.metrics.count_request(status);
    state.metrics.observe_duration(elapsed);
    tracing::info!(
        target: "mensa::api",
        %method,
        route,
        status,
        micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// A body announced larger than the limit is refused from its
/// `Content-Length`, before a byte of it is read (the extractors' limit
/// alone would wait for the body to reach the limit).
async fn announced_body_limit(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(n) if n > u64::try_from(limit).unwrap_or(u64::MAX) => {
            ApiError::PayloadTooLarge.into_response()
        }
        _ => next.run(request).await,
    }
}

/// A JSON object body whose rejections are problem details. Only an
/// object is accepted (serde would also take a struct as an array).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(ApiError::Invalid("the body must be a JSON object".into()));
        }
        serde_json::from_value(value)
            .map(Body)
            .map_err(|e| ApiError::Invalid(e.to_string()))
    }
}

/// Path parameters whose rejections are problem details.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(PathParams(value))
    }
}

/// Query parameters whose rejections are problem details.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(QueryParams(value))
    }
}

/// JSON with a status, for handlers.
pub fn json<T: serde::Serialize>(status: axum::http::StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}
