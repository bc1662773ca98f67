//! `GET /health`, `GET /metrics` (Prometheus text format) and the OpenAPI
//! document. Neither health nor metrics needs a token, and neither shows
//! personal data; serve them on an address only the monitoring reaches.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::login_guard::Refused;
use super::{AppState, json};
use crate::bookings::Channel;
use crate::password::HashingCounters;

/// The OpenAPI 3 document of the API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Counters shown by `/metrics`. The voice line counts calls and phone
/// operations ([`Metrics::call_started`] and friends); the DTMF family is
/// registered but not fed yet (keys reach the IVR already merged).
#[derive(Debug, Default)]
pub struct Metrics {
    requests_by_status: Mutex<BTreeMap<u16, u64>>,
    /// Request durations: counts per bucket of [`BUCKETS`] (not cumulative;
    /// summed when rendered), then the sum in microseconds and the count.
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_micros: AtomicU64,
    duration_count: AtomicU64,
    operations_by_channel: Mutex<BTreeMap<&'static str, u64>>,
    calls_active: AtomicU64,
    calls_total: AtomicU64,
    dtmf_by_source: Mutex<BTreeMap<&'static str, u64>>,
    refused_calls: Mutex<BTreeMap<(u16, &'static str), u64>>,
    /// 1 while the node sheds new calls for load.
    shedding: AtomicU64,
    /// The call limit learned by shedding; 0: none.
    calls_limit: AtomicU64,
    /// The password verifier's own counters (`password::Hashing`).
    pub hashing: Arc<HashingCounters>,
    /// Logins refused before any work, by [`Refused`] (in `Refused::ALL`'s order).
    logins_refused: [AtomicU64; 3],
    /// Logins verified: right, wrong.
    logins_verified: [AtomicU64; 2],
    /// Cancel codes looked up by the phone line, and of them the wrong
    /// ones that were counted (`runtime::ivr_actions`).
    code_lookups: AtomicU64,
    code_wrong: AtomicU64,
    /// Codes refused before any lookup, by reason.
    code_refused: Mutex<BTreeMap<&'static str, u64>>,
    /// 1 while the line's budget of wrong codes is spent (guarded mode).
    code_alert: AtomicU64,
    /// The line's budget of wrong codes a year in force.
    code_budget: AtomicU64,
    edge: Mutex<EdgeCounters>,
}

/// What the network edge dropped or closed since the start (the SIP
/// endpoint's limits, SIP over TCP, the calls' RTP sources: see
/// docs/security.md), copied in by the call runtime every second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeCounters {
    /// SIP datagrams or messages from sources not allowed, not parsed.
    pub sip_not_allowed: u64,
    /// Of those, requests answered 403.
    pub sip_forbidden: u64,
    /// Requests dropped: their source had its transactions open.
    pub sip_source_transactions: u64,
    /// Requests dropped: the node had its transactions open.
    pub sip_transactions: u64,
    pub tcp_accepted: u64,
    pub tcp_not_allowed: u64,
    pub tcp_refused: u64,
    pub tcp_evicted: u64,
    pub tcp_idle: u64,
    pub tcp_slow_reader: u64,
    pub tcp_framing: u64,
    /// RTP from a source no call's SDP, signalling or allow-list names.
    pub rtp_implausible: u64,
    /// RTP from a plausible source that is not the call's latched one.
    pub rtp_not_latched: u64,
}

/// Upper bounds of the request duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

impl Metrics {
    /// A request answered after `elapsed`.
    pub fn observe_duration(&self, elapsed: std::time::Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|le| secs <= *le) {
            self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
        self.duration_count.fetch_add(1, Ordering::Relaxed);
    }

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

    /// An INVITE refused before a call existed, by status and reason
    /// (`runtime::calls::CallLogic::call_refused`).
    pub fn count_refused(&self, status: u16, reason: &'static str) {
        if let Ok(mut m) = self.refused_calls.lock() {
            *m.entry((status, reason)).or_default() += 1;
        }
    }

    /// Whether the node sheds new calls for load, and the call limit it
    /// learned (`runtime::calls::CallLogic::load_shedding`).
    pub fn set_load_shedding(&self, shedding: bool, limit: Option<usize>) {
        self.shedding.store(u64::from(shedding), Ordering::Relaxed);
        let limit = limit.map_or(0, |n| u64::try_from(n).unwrap_or(u64::MAX));
        self.calls_limit.store(limit, Ordering::Relaxed);
    }

    /// The edge's counters, totals since the start.
    pub fn set_edge(&self, counters: EdgeCounters) {
        if let Ok(mut e) = self.edge.lock() {
            *e = counters;
        }
    }

    /// A login refused before its password was verified.
    pub fn count_login_refused(&self, why: Refused) {
        let i = Refused::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.logins_refused[i].fetch_add(1, Ordering::Relaxed);
    }

    /// A login whose password was verified: right or wrong.
    pub fn count_login_verified(&self, right: bool) {
        self.logins_verified[usize::from(!right)].fetch_add(1, Ordering::Relaxed);
    }

    /// A cancel code looked up by the phone line.
    pub fn count_code_lookup(&self) {
        self.code_lookups.fetch_add(1, Ordering::Relaxed);
    }

    /// A code looked up, not found, and counted against the budgets.
    pub fn count_wrong_code(&self) {
        self.code_wrong.fetch_add(1, Ordering::Relaxed);
    }

    /// A code refused before its lookup: `caller_backoff`,
    /// `trunk_budget` or `guarded` (`store::GuardRefusal`).
    pub fn count_code_refused(&self, reason: &'static str) {
        if let Ok(mut m) = self.code_refused.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Whether the line's budget of wrong codes is spent.
    pub fn set_code_guessing_alert(&self, alert: bool) {
        self.code_alert.store(u64::from(alert), Ordering::Relaxed);
    }

    /// The line's budget of wrong codes a year in force.
    pub fn set_code_budget(&self, per_year: u64) {
        self.code_budget.store(per_year, Ordering::Relaxed);
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
        // A family of one unlabelled value.
        let single = |out: &mut String, name: &str, kind: &str, help: &str, value: &AtomicU64| {
            family(out, name, kind, help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
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
            "mensa_api_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its answer.",
        );
        let mut cumulative = 0;
        for (le, n) in BUCKETS.iter().zip(&self.duration_buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "mensa_api_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "mensa_api_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             mensa_api_request_duration_seconds_sum {}\n\
             mensa_api_request_duration_seconds_count {count}",
            self.duration_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
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
        single(
            &mut out,
            "mensa_calls_active",
            "gauge",
            "Phone calls in progress.",
            &self.calls_active,
        );
        single(
            &mut out,
            "mensa_calls_total",
            "counter",
            "Phone calls answered.",
            &self.calls_total,
        );
        family(
            &mut out,
            "mensa_calls_refused_total",
            "counter",
            "INVITEs refused before a call existed, by status and reason \
             (capacity, rate, overloaded, draining, rtp_ports, no_route, no_dialplan, request).",
        );
        if let Ok(m) = self.refused_calls.lock() {
            for ((status, reason), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "mensa_calls_refused_total{{status=\"{status}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
        single(
            &mut out,
            "mensa_shedding",
            "gauge",
            "1 while new calls get 503 because the node falls behind (load shedding).",
            &self.shedding,
        );
        single(
            &mut out,
            "mensa_calls_limit",
            "gauge",
            "Calls the node learned it carries on time after shedding; past it, new calls get 503. 0: no limit learned.",
            &self.calls_limit,
        );
        single(
            &mut out,
            "mensa_code_lookups_total",
            "counter",
            "Cancel codes the phone line looked up (admitted by the counts, or bound to the caller number).",
            &self.code_lookups,
        );
        single(
            &mut out,
            "mensa_code_wrong_total",
            "counter",
            "Cancel codes looked up and not found, counted against the caller, the trunk and the line.",
            &self.code_wrong,
        );
        family(
            &mut out,
            "mensa_code_refused_total",
            "counter",
            "Cancel codes refused before any lookup, by reason (caller_backoff, trunk_budget, guarded).",
        );
        if let Ok(m) = self.code_refused.lock() {
            for reason in ["caller_backoff", "trunk_budget", "guarded"] {
                let n = m.get(reason).copied().unwrap_or(0);
                let _ = writeln!(out, "mensa_code_refused_total{{reason=\"{reason}\"}} {n}");
            }
        }
        single(
            &mut out,
            "mensa_code_guessing_alert",
            "gauge",
            "1 while the line's budget of wrong cancel codes is spent: guarded mode, only codes a caller number used before are looked up. Someone may be guessing codes.",
            &self.code_alert,
        );
        single(
            &mut out,
            "mensa_code_budget_per_year",
            "gauge",
            "The line's budget of wrong cancel codes a year in force (derived from the codes in use unless [ivr] sets it).",
            &self.code_budget,
        );
        family(
            &mut out,
            "mensa_password_verifications_total",
            "counter",
            "argon2 password verifications run (the dummy ones for unknown logins included).",
        );
        let _ = writeln!(
            out,
            "mensa_password_verifications_total {}",
            self.hashing.verifications()
        );
        family(
            &mut out,
            "mensa_password_hashing",
            "gauge",
            "Password verifications running now (at most [http] login_hashing_permits).",
        );
        let _ = writeln!(out, "mensa_password_hashing {}", self.hashing.running());
        family(
            &mut out,
            "mensa_password_hashing_queued",
            "gauge",
            "Password verifications waiting for a hashing worker.",
        );
        let _ = writeln!(
            out,
            "mensa_password_hashing_queued {}",
            self.hashing.queued()
        );
        family(
            &mut out,
            "mensa_logins_refused_total",
            "counter",
            "Logins refused before any password was verified, by reason \
             (address: per-address limit, busy: hashing queue full, locked: too many attempts).",
        );
        for (why, n) in Refused::ALL.iter().zip(&self.logins_refused) {
            let _ = writeln!(
                out,
                "mensa_logins_refused_total{{reason=\"{}\"}} {}",
                why.as_str(),
                n.load(Ordering::Relaxed)
            );
        }
        family(
            &mut out,
            "mensa_logins_total",
            "counter",
            "Logins whose password was verified, by result.",
        );
        for (result, n) in ["ok", "bad_credentials"].iter().zip(&self.logins_verified) {
            let _ = writeln!(
                out,
                "mensa_logins_total{{result=\"{result}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
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
        self.render_edge(&mut out, family);
        out
    }

    fn render_edge(&self, out: &mut String, family: impl Fn(&mut String, &str, &str, &str)) {
        let e = self.edge.lock().map(|e| *e).unwrap_or_default();
        let labelled = |out: &mut String, name: &str, label: &str, values: &[(&str, u64)]| {
            for (value, n) in values {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
            }
        };
        family(
            out,
            "mensa_sip_dropped_total",
            "counter",
            "SIP dropped before any work: from a source not allowed (not parsed), or \
             over the transactions of its source or of the node (not answered).",
        );
        labelled(
            out,
            "mensa_sip_dropped_total",
            "reason",
            &[
                ("not_allowed", e.sip_not_allowed),
                ("source_transactions", e.sip_source_transactions),
                ("transactions", e.sip_transactions),
            ],
        );
        family(
            out,
            "mensa_sip_forbidden_total",
            "counter",
            "403s answered to sources not allowed (within max_forbidden_per_second).",
        );
        let _ = writeln!(out, "mensa_sip_forbidden_total {}", e.sip_forbidden);
        family(
            out,
            "mensa_sip_tcp_accepted_total",
            "counter",
            "SIP over TCP connections accepted.",
        );
        let _ = writeln!(out, "mensa_sip_tcp_accepted_total {}", e.tcp_accepted);
        family(
            out,
            "mensa_sip_tcp_closed_total",
            "counter",
            "SIP over TCP connections closed by the node, by reason: not_allowed and \
             refused at accept, evicted for a newcomer, idle, slow_reader (answers \
             unread), framing (too large, bad Content-Length).",
        );
        labelled(
            out,
            "mensa_sip_tcp_closed_total",
            "reason",
            &[
                ("not_allowed", e.tcp_not_allowed),
                ("refused", e.tcp_refused),
                ("evicted", e.tcp_evicted),
                ("idle", e.tcp_idle),
                ("slow_reader", e.tcp_slow_reader),
                ("framing", e.tcp_framing),
            ],
        );
        family(
            out,
            "mensa_rtp_rejected_total",
            "counter",
            "RTP packets dropped by the calls' source checks: implausible (no call's SDP, \
             signalling or allow-list names the source), not_latched (another source than \
             the call's, or key events that would have moved it).",
        );
        labelled(
            out,
            "mensa_rtp_rejected_total",
            "reason",
            &[
                ("implausible", e.rtp_implausible),
                ("not_latched", e.rtp_not_latched),
            ],
        );
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

/// 200 when the store answers, else 503. `sip_listening` is set by `serve`
/// once SIP listens, and cleared when a shutdown starts draining.
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
