//! The voice line end to end: the real `mensa serve --demo` binary, a test
//! caller speaking SIP and RTP over loopback, and the effect checked with
//! `mensa calendar`, as a parent and a support operator would see it.
//!
//! SPEC §3 R6's example: Monday 7 December 2026 at 19:00, with Tuesday 8
//! and Wednesday 9 closed, "58213#1" cancels Thursday 10's meal.
#![allow(clippy::unwrap_used)]

mod caller;
mod demo;
mod uac;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use caller::{KeyPath, caller_media};
use demo::{calendar_day, http_get, serve_demo};
use serde_json::Value;
use uac::{Uac, media_port, offer};

/// A call from a fresh demo server at `now`: the caller types `keys` by
/// `path` during the greeting; returns the database and the audio heard.
/// What a test call left behind.
struct Outcome {
    dir: tempfile::TempDir,
    heard: Vec<Vec<u8>>,
    server_bye: Option<String>,
    /// `/api/v1/health` and `/api/v1/metrics` at the end of the call.
    health: String,
    metrics: String,
}

fn call(now: &str, rtp_ports: &str, path: KeyPath, keys: &str, run: Duration) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mensa.db");
    let server = serve_demo(&db, now, rtp_ports);
    let (sip, http) = (server.sip, server.http);
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut uac = Uac::new(sip, &format!("voice-line-{rtp_ports}"));
    let port = media.local_addr().unwrap().port();
    let sdp = if path == KeyPath::InBand {
        // A phone that only sends tones offers no telephone-event (with
        // one, in-band detection is off by default: conformance part D).
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\n"
        )
    } else {
        offer(port, 1, "sendrecv", "127.0.0.1")
    };
    let ok = uac.call(&sdp);
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    let server_rtp = SocketAddr::from(([127, 0, 0, 1], media_port(&ok)));
    let heard = caller_media(
        &mut uac,
        &media,
        server_rtp,
        path,
        keys,
        Duration::from_millis(500),
        run,
    );
    // Did the server hang up by itself (within a short wait)?
    let server_bye = uac.answer_request("BYE", Duration::from_millis(300));
    if server_bye.is_none() {
        uac.bye();
    }
    // The call's end reaches /metrics a moment after the BYE.
    std::thread::sleep(Duration::from_millis(300));
    let health = http_get(http, "/api/v1/health");
    let metrics = http_get(http, "/api/v1/metrics");
    server.stop();
    Outcome {
        dir,
        heard,
        server_bye,
        health,
        metrics,
    }
}

fn db_of(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("mensa.db")
}

#[test]
fn a_phone_cancellation_lands_on_thursday_and_shows_in_the_calendar() {
    let Outcome {
        dir,
        heard,
        health,
        metrics,
        ..
    } = call(
        "2026-12-07 19:00",
        "31000-31049",
        KeyPath::Rfc4733,
        "58213#1",
        Duration::from_secs(6),
    );
    let db = db_of(&dir);
    let day = calendar_day(&db, "100234", "2026-12-10");
    assert_eq!(day["status"], "absent", "{day}");
    assert_eq!(day["channel"], "phone", "{day}");
    // Nothing else changed: the next day is still booked.
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-11")["status"],
        "booked"
    );
    // The API saw it: SIP listening, one call over, one phone operation.
    assert!(health.contains("\"sip_listening\":true"), "{health}");
    for line in [
        "mensa_calls_total 1",
        "mensa_calls_active 0",
        "mensa_operations_total{channel=\"phone\"} 1",
        // 5 8 2 1 3 # 1, each counted once on the path that carried it.
        "mensa_dtmf_keys_total{source=\"rfc4733\"} 7",
        "mensa_dtmf_keys_total{source=\"inband\"} 0",
    ] {
        assert!(metrics.contains(line), "no {line:?} in {metrics}");
    }
    // The call left its record (R12), the code redacted.
    let out = Command::new(env!("CARGO_BIN_EXE_mensa"))
        .args(["calls", "--date", "2026-12-07", "--format", "json"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls: Value = serde_json::from_slice(&out.stdout).unwrap();
    let record = &calls["calls"][0];
    assert_eq!(record["called"], "800082653", "{calls}");
    assert_eq!(record["codes"][0]["code"], "****3", "{calls}");
    assert_eq!(record["codes"][0]["valid"], true, "{calls}");
    assert!(
        !calls.to_string().contains("58213"),
        "no code in clear: {calls}"
    );
    assert!(
        record["operations"].to_string().contains("2026-12-10"),
        "{calls}"
    );
    // The caller heard prompts: audio that is not all silence.
    let loud = heard
        .iter()
        .filter(|p| p.iter().any(|&b| b != 0xD5 && b != 0x55))
        .count();
    assert!(loud > 50, "{loud} non-silent packets of {}", heard.len());
}

#[test]
fn keys_as_in_band_tones_ask_for_a_plain_meal() {
    let Outcome { dir, metrics, .. } = call(
        "2026-12-07 19:00",
        "31050-31099",
        KeyPath::InBand,
        "58213#2",
        Duration::from_secs(6),
    );
    let day = calendar_day(&db_of(&dir), "100234", "2026-12-10");
    assert_eq!(day["status"], "plain_meal", "{day}");
    let inband = "mensa_dtmf_keys_total{source=\"inband\"} 7";
    assert!(metrics.contains(inband), "no {inband:?} in {metrics}");
}

#[test]
fn keys_as_sip_info_cancel_too() {
    let Outcome { dir, metrics, .. } = call(
        "2026-12-07 19:00",
        "31100-31149",
        KeyPath::SipInfo,
        "58213#1",
        Duration::from_secs(6),
    );
    let day = calendar_day(&db_of(&dir), "100234", "2026-12-10");
    assert_eq!(day["status"], "absent", "{day}");
    let info = "mensa_dtmf_keys_total{source=\"sip_info\"} 7";
    assert!(metrics.contains(info), "no {info:?} in {metrics}");
}

#[test]
fn outside_the_window_nothing_changes() {
    let Outcome {
        dir, server_bye, ..
    } = call(
        "2026-12-07 12:00",
        "31150-31199",
        KeyPath::Rfc4733,
        "58213#1",
        Duration::from_secs(15),
    );
    assert!(server_bye.is_some(), "the line says the hours and hangs up");
    let db = db_of(&dir);
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-07")["status"],
        "booked"
    );
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-10")["status"],
        "booked"
    );
}

#[test]
fn three_wrong_codes_end_the_call_and_change_nothing() {
    let Outcome {
        dir, server_bye, ..
    } = call(
        "2026-12-07 19:00",
        "31200-31249",
        KeyPath::Rfc4733,
        // Each wrong code, then a pause for "wrong code, try again".
        &format!("11111#{0}22222#{0}33333#", " ".repeat(25)),
        Duration::from_secs(20),
    );
    assert!(
        server_bye.is_some(),
        "after three wrong codes the line hangs up"
    );
    let db = db_of(&dir);
    // Marco's class 3A eats on Mondays and Wednesdays only.
    for (user, date) in [
        ("100234", "2026-12-10"),
        ("100235", "2026-12-10"),
        ("100236", "2026-12-14"),
    ] {
        assert_eq!(calendar_day(&db, user, date)["status"], "booked", "{user}");
    }
}

/// The first call record of the demo's Monday 7 December.
fn call_record(db: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mensa"))
        .args(["calls", "--date", "2026-12-07", "--format", "json"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls: Value = serde_json::from_slice(&out.stdout).unwrap();
    calls["calls"][0].clone()
}

/// The results of the call's operations, in order ("ok", a refusal...).
fn results(record: &Value) -> Vec<String> {
    record["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["operation"] != "end")
        .map(|o| o["result"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// 4 s of silence in a key string: the caller listens to a confirmation.
fn pause() -> String {
    " ".repeat(20)
}

#[test]
fn star_during_the_greeting_switches_to_english() {
    let Outcome { dir, .. } = call(
        "2026-12-07 19:00",
        "31250-31299",
        KeyPath::Rfc4733,
        "*58213#1",
        Duration::from_secs(7),
    );
    let db = db_of(&dir);
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-10")["status"],
        "absent"
    );
    let record = call_record(&db);
    let end = record["operations"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(end["language"], "en", "{record}");
}

#[test]
fn a_suspension_with_a_return_date() {
    // 3, then the first day back as DDMM: Monday 14 December.
    let Outcome { dir, .. } = call(
        "2026-12-07 19:00",
        "31300-31349",
        KeyPath::Rfc4733,
        "58213#31412",
        Duration::from_secs(8),
    );
    let db = db_of(&dir);
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-10")["status"],
        "suspended"
    );
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-11")["status"],
        "suspended"
    );
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-14")["status"],
        "booked"
    );
}

#[test]
fn an_open_suspension_then_a_reactivation_dated_on_a_closure() {
    // 3 then # (open), listen; then 4 and 23/12, a day of the Christmas
    // closure: meals again from Thursday 7 January.
    let keys = format!("58213#3#{}{}42312", pause(), pause());
    let Outcome { dir, .. } = call(
        "2026-12-07 19:00",
        "31350-31399",
        KeyPath::Rfc4733,
        &keys,
        Duration::from_secs(16),
    );
    let db = db_of(&dir);
    assert_eq!(results(&call_record(&db)), ["ok_open", "ok"]);
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-10")["status"],
        "suspended"
    );
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-22")["status"],
        "suspended"
    );
    assert_eq!(
        calendar_day(&db, "100234", "2027-01-07")["status"],
        "booked"
    );
}

#[test]
fn cancel_again_is_said_as_already_cancelled_and_undo_takes_it_back() {
    let keys = format!("58213#1{}1{}5", pause(), pause());
    let Outcome { dir, .. } = call(
        "2026-12-07 19:00",
        "31400-31449",
        KeyPath::Rfc4733,
        &keys,
        Duration::from_secs(16),
    );
    let db = db_of(&dir);
    assert_eq!(results(&call_record(&db)), ["ok", "already_absent", "ok"]);
    let day = calendar_day(&db, "100234", "2026-12-10");
    assert_eq!(day["status"], "booked", "undone: {day}");
}

#[test]
fn hanging_up_mid_prompt_changes_nothing_and_leaves_a_record() {
    // The code without # nor a choice, then the caller hangs up.
    let Outcome { dir, .. } = call(
        "2026-12-07 19:00",
        "31450-31499",
        KeyPath::Rfc4733,
        "58213",
        Duration::from_secs(2),
    );
    let db = db_of(&dir);
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-10")["status"],
        "booked"
    );
    let record = call_record(&db);
    assert!(results(&record).is_empty(), "{record}");
    let end = record["operations"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(end["ended_by"]["by"], "caller", "{record}");
    assert!(record["ended_at"].is_string(), "{record}");
}
