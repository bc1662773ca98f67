//! `GET /health`, `GET /metrics` (Prometheus text format) and the OpenAPI
//! document. Neither health nor metrics needs a token, and neither shows
//! personal data; serve them on an address only the monitoring reaches.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, json};
use crate::bookings::Channel;

/// The OpenAPI 3 document of the API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Counters shown by `/metrics`. The phone line's families (calls, DTMF
/// keys) are registered and stay at zero until the SIP runtime counts
/// into them through [`Metrics::call_started`] and friends.
#[derive(Debug, Default)]
pub struct Metrics {
    requests_by_status: Mutex<BTreeMap<u16, u64>>,
    operations_by_channel: Mutex<BTreeMap<&'static str, u64>>,
    calls_active: AtomicU64,
    calls_total: AtomicU64,
    dtmf_by_source: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn count_request(&self, status: u16) {
        if let Ok(mut m) = self.requests_by_status.lock() {
            *m.entry(status).or_default() += 1;
        }
    }

    /// An operation accepted by the core, by channel.
    pub fn count_operation(&self, channel: Channel) {
        if let Ok(mut m) = self.operations_by_channel.lock() {
            *m.entry(channel.as_str()).or_default() += 1;
        }
    }

    pub fn call_started(&self) {
        self.calls_active.fetch_add(1, Ordering::Relaxed);
        self.calls_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn call_ended(&self) {
        let _ = self
            .calls_active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// A DTMF key, by source: `rfc4733`, `inband` or `sip_info`.
    pub fn count_dtmf(&self, source: &'static str) {
        if let Ok(mut m) = self.dtmf_by_source.lock() {
            *m.entry(source).or_default() += 1;
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "mensa_api_requests_total",
            "counter",
            "API requests answered, by HTTP status.",
        );
        if let Ok(m) = self.requests_by_status.lock() {
            for (status, n) in m.iter() {
                let _ = writeln!(out, "mensa_api_requests_total{{status=\"{status}\"}} {n}");
            }
        }
        family(
            &mut out,
            "mensa_operations_total",
            "counter",
            "Changes accepted by the bookings core, by channel.",
        );
        if let Ok(m) = self.operations_by_channel.lock() {
            for channel in ["portal", "app", "phone", "operator", "system"] {
                let n = m.get(channel).copied().unwrap_or(0);
                let _ = writeln!(out, "mensa_operations_total{{channel=\"{channel}\"}} {n}");
            }
        }
        family(
            &mut out,
            "mensa_calls_active",
            "gauge",
            "Phone calls in progress.",
        );
        let _ = writeln!(
            out,
            "mensa_calls_active {}",
            self.calls_active.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "mensa_calls_total",
            "counter",
            "Phone calls answered.",
        );
        let _ = writeln!(
            out,
            "mensa_calls_total {}",
            self.calls_total.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "mensa_dtmf_keys_total",
            "counter",
            "DTMF keys received, by source.",
        );
        if let Ok(m) = self.dtmf_by_source.lock() {
            for source in ["rfc4733", "inband", "sip_info"] {
                let n = m.get(source).copied().unwrap_or(0);
                let _ = writeln!(out, "mensa_dtmf_keys_total{{source=\"{source}\"}} {n}");
            }
        }
        out
    }
}

pub async fn openapi() -> Response {
    let mut response = OPENAPI.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 200 when the store answers, else 503. `sip_listening` is false until
/// the SIP runtime exists and sets it.
pub async fn health(State(state): State<AppState>) -> Response {
    let store = state.store.ping().await;
    let sip = state.sip_listening.load(Ordering::Relaxed);
    let status = if store {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        &serde_json::json!({
            "status": if store { "ok" } else { "unavailable" },
            "store_reachable": store,
            "sip_listening": sip,
        }),
    )
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
