//! `mensa load` against the real `mensa serve --demo`: full IVR calls that
//! cancel with the demo's codes (RFC 4733 and in-band keys), checked in
//! the report, by `--store-check` and in `mensa calendar`; short calls;
//! and a closed port, which must fail fast with a reason, not hang.
//!
//! Monday 7 December 2026 at 19:00 (SPEC §3 R6's example): Luca (58213)
//! cancels Thursday 10, Giulia (77120, infanzia, open on the 8th) Tuesday 8,
//! Marco (40617, class 3A: Mondays and Wednesdays) Monday 14.
#![allow(clippy::unwrap_used)]

mod demo;

use std::net::UdpSocket;
use std::process::Command;

use demo::{calendar_day, serve_demo};
use serde_json::Value;

/// Runs `mensa load ARGS --json --quiet`; the exit status and the report.
fn load(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_mensa"))
        .arg("load")
        .args(args)
        .args(["--json", "--quiet"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn assert_clean(report: &Value, calls: u64) {
    assert_eq!(report["attempted"], calls, "{report:#}");
    assert_eq!(report["answered"], calls, "{report:#}");
    assert_eq!(report["completed"], calls, "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(report["rtp_lost"], 0, "{report:#}");
    assert!(report["rtp_received"].as_u64().unwrap() > 0, "{report:#}");
}

fn full_calls_cancel(keys: &str, rtp_ports: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mensa.db");
    let server = serve_demo(&db, "2026-12-07 19:00", rtp_ports);
    let target = server.sip.to_string();
    let (code, report) = load(&[
        "--target",
        &target,
        "--calls",
        "3",
        "--rate",
        "10",
        "--keys",
        keys,
        "--store-check",
        db.to_str().unwrap(),
    ]);
    assert_clean(&report, 3);
    assert_eq!(report["calls_pressing_1"], 3, "{report:#}");
    // 5 code digits, #, 1 per call.
    assert_eq!(report["keys_sent"], 21, "{report:#}");
    assert_eq!(report["key_to_prompt"]["count"], 6, "{report:#}");
    let check = &report["store_check"];
    assert_eq!(check["ok"], true, "{report:#}");
    assert_eq!(check["children_cancelled_once"], 3, "{report:#}");
    assert_eq!(code, 0);
    for (user, day) in [
        ("100234", "2026-12-10"),
        ("100235", "2026-12-08"),
        ("100236", "2026-12-14"),
    ] {
        let d = calendar_day(&db, user, day);
        assert_eq!(d["status"], "absent", "{user} {day}: {d}");
        assert_eq!(d["channel"], "phone", "{user} {day}: {d}");
    }
    server.stop();
}

#[test]
fn full_ivr_calls_cancel_with_rfc4733_keys() {
    full_calls_cancel("rfc4733", "42000-42099");
}

#[test]
fn full_ivr_calls_cancel_with_inband_keys() {
    full_calls_cancel("inband", "42100-42199");
}

#[test]
fn short_calls() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mensa.db");
    let server = serve_demo(&db, "2026-12-07 19:00", "42200-42399");
    let target = server.sip.to_string();
    let (code, report) = load(&[
        "--target",
        &target,
        "--script",
        "short",
        "--calls",
        "40",
        "--rate",
        "40",
        "--concurrent",
        "40",
    ]);
    assert_clean(&report, 40);
    assert_eq!(report["sip_retransmissions_sent"], 0, "{report:#}");
    assert_eq!(report["keys_sent"], 0, "{report:#}");
    assert!(report["setup_latency"]["p99_ms"].as_f64().unwrap() < 1000.0);
    assert_eq!(code, 0);
    server.stop();
}

#[test]
fn a_closed_port_fails_fast_by_reason() {
    // A port that was free a moment ago: nobody listens there.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let (code, report) = load(&[
        "--target",
        &target,
        "--calls",
        "5",
        "--rate",
        "50",
        "--setup-timeout",
        "2",
    ]);
    assert!(started.elapsed().as_secs() < 20, "it hung");
    assert_eq!(report["attempted"], 5, "{report:#}");
    assert_eq!(report["answered"], 0, "{report:#}");
    assert_eq!(report["failed"], 5, "{report:#}");
    // ICMP port unreachable comes back at once on loopback; without it,
    // the setup timeout.
    let reasons = report["failed_by_reason"].as_object().unwrap();
    let counted: u64 = ["transport", "setup_timeout"]
        .iter()
        .filter_map(|r| reasons.get(*r)?.as_u64())
        .sum();
    assert_eq!(counted, 5, "{report:#}");
    assert_eq!(code, 2);
}

#[test]
fn the_ceiling_mode_reports_packets_per_second() {
    let (code, report) = load(&["--ceiling", "0.3"]);
    assert_eq!(code, 0);
    assert!(
        report["batched_per_s"].as_f64().unwrap() > 1000.0,
        "{report}"
    );
    assert!(
        report["one_call_per_packet_per_s"].as_f64().unwrap() > 1000.0,
        "{report}"
    );
}
