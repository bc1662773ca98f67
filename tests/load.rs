//! `mensa load` against the real `mensa serve --demo`: full IVR calls that
//! cancel with the demo's codes (RFC 4733 and in-band keys), checked in
//! the report, by `--store-check` and in `mensa calendar`; short calls;
//! a closed port, which must fail fast with a reason, not hang; and a node
//! capped below the load, which refuses the excess with 503 while the
//! calls it took go on cleanly.
//!
//! Monday 7 December 2026 at 19:00 (SPEC §3 R6's example): Luca (58213)
//! cancels Thursday 10, Giulia (77120, infanzia, open on the 8th) Tuesday 8,
//! Marco (40617, class 3A: Mondays and Wednesdays) Monday 14.
#![allow(clippy::unwrap_used)]

mod demo;
mod uac;

use std::net::UdpSocket;
use std::process::Command;

use demo::{calendar_day, http_get, serve_demo, serve_demo_with, write_config};
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

#[test]
fn over_its_cap_a_node_answers_503_and_the_calls_it_took_stay_clean() {
    // A node capped at 12 calls; 40 full IVR calls arrive within 2 s, each
    // lasting ~20 s, with their own children (generated codes). The first
    // 12 are taken; the rest get 503 (and so does an OPTIONS probe, so a
    // dispatcher would move on); the 12 keep clean audio, every key
    // counts, and each cancels its child once.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mensa.db");
    let config = dir.path().join("mensa.toml");
    // The configured cap is what this tests (shedding stays off).
    write_config(
        &config,
        "[sip]\nmax_concurrent_calls = 12\nmax_calls_per_second = 1000\n",
    );
    let data = dir.path().join("load-data.toml");
    let generated = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/gen-load-data.py"
        ))
        .args(["40", "2026"])
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    std::fs::write(&data, &generated.stdout).unwrap();
    let server = serve_demo_with(
        &db,
        "2026-12-07 19:00",
        "42400-42599",
        &["--config", config.to_str().unwrap()],
    );
    let imported = Command::new(env!("CARGO_BIN_EXE_mensa"))
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .arg("import")
        .arg(&data)
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let target = server.sip.to_string();
    let generator = {
        let target = target.clone();
        let (db, data) = (db.clone(), data.clone());
        std::thread::spawn(move || {
            load(&[
                "--target",
                &target,
                "--calls",
                "40",
                "--rate",
                "20",
                "--concurrent",
                "40",
                "--codes",
                data.to_str().unwrap(),
                "--store-check",
                db.to_str().unwrap(),
            ])
        })
    };
    // While the 12 calls are up: the node says it is full.
    std::thread::sleep(std::time::Duration::from_secs(6));
    let probe = uac::Uac::new(server.sip, "probe");
    probe.request("OPTIONS", 1, "", "");
    let answer = probe.final_response("OPTIONS");
    assert!(answer.starts_with("SIP/2.0 503"), "{answer}");

    let (code, report) = generator.join().unwrap();
    assert_eq!(report["attempted"], 40, "{report:#}");
    assert_eq!(report["answered"], 12, "{report:#}");
    assert_eq!(report["completed"], 12, "{report:#}");
    assert_eq!(report["failed_by_reason"]["503"], 28, "{report:#}");
    assert_eq!(report["rtp_lost"], 0, "{report:#}");
    assert_eq!(report["calls_pressing_1"], 12, "{report:#}");
    let check = &report["store_check"];
    assert_eq!(check["ok"], true, "{report:#}");
    assert_eq!(check["children_cancelled_once"], 12, "{report:#}");
    // Failed calls (the 503s) make the run exit 2.
    assert_eq!(code, 2);
    // Operators see why: every refusal counted with its reason.
    let metrics = http_get(server.http, "/api/v1/metrics");
    assert!(
        metrics.contains("mensa_calls_refused_total{status=\"503\",reason=\"capacity\"} 28\n"),
        "{metrics}"
    );
    server.stop();
}
