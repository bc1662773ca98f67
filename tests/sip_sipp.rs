//! Interop with sipp (Debian `sip-tester`): its built-in `uac` scenario and
//! the scenarios in `tests/sipp/`, against the endpoint on loopback,
//! answered by a stub call layer. They need sipp, so they are ignored by
//! default and run by `.ci/run` (which installs it):
//! `cargo test --test sip_sipp -- --ignored --skip sipp_load`.
#![allow(clippy::unwrap_used)] // test helpers may unwrap (STYLE.md)

use std::process::Stdio;
use std::time::Duration;

use mensa::runtime::sip::{Command, spawn};
use mensa::sip::config::EndpointConfig;
use mensa::sip::endpoint::{EndReason, Endpoint, Event};

/// Calls to this number ring until cancelled (for the CANCEL scenario).
const NEVER_ANSWERED: &str = "0240709125";

/// Runs sipp with `args` against a fresh endpoint; returns how each call
/// ended on our side. Fails when sipp is not installed.
async fn run_sipp(args: &[&str]) -> Vec<EndReason> {
    if std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        panic!("sipp is not installed: apt-get install -y sip-tester");
    }
    let mut config = EndpointConfig::demo("127.0.0.1:5060".parse().unwrap(), 9);
    config.max_calls_per_second = 10_000;
    config.max_concurrent_calls = 10_000;
    let mut server = spawn("127.0.0.1:0".parse().unwrap(), Endpoint::new(config))
        .await
        .unwrap();
    let commands = server.commands.clone();
    let (ended_tx, mut ended_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = server.events.recv().await {
            match event {
                Event::IncomingCall { call, called, .. } if called != NEVER_ANSWERED => {
                    let _ = commands.send(Command::Answer {
                        call,
                        rtp: "127.0.0.1:20000".parse().unwrap(),
                    });
                }
                Event::CallEnded { reason, .. } => {
                    let _ = ended_tx.send(reason);
                }
                Event::IncomingCall { .. }
                | Event::CallEstablished { .. }
                | Event::MediaChanged { .. }
                | Event::Dtmf { .. } => {}
            }
        }
    });
    let target = server.local_addr.to_string();
    let output = tokio::process::Command::new("sipp")
        .arg(&target)
        .args(args)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-nostdin",
            "-timeout",
            "120s",
            "-timeout_error",
            "-d",
            "100",
        ])
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(150), output)
        .await
        .expect("sipp in time")
        .unwrap();
    assert!(
        output.status.success(),
        "sipp {args:?} failed: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut ended = Vec::new();
    while let Ok(Some(reason)) =
        tokio::time::timeout(Duration::from_millis(200), ended_rx.recv()).await
    {
        ended.push(reason);
    }
    ended
}

fn scenario(name: &str) -> String {
    format!("{}/tests/sipp/{name}.xml", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
#[ignore = "needs sipp (Debian sip-tester); .ci/run runs it"]
async fn sipp_uac_over_udp() {
    let args = [
        "-sn",
        "uac",
        "-s",
        "800082653",
        "-m",
        "10",
        "-r",
        "20",
        "-t",
        "u1",
    ];
    let ended = run_sipp(&args).await;
    assert_eq!(ended, vec![EndReason::RemoteHangup; 10]);
}

#[tokio::test]
#[ignore = "needs sipp (Debian sip-tester); .ci/run runs it"]
async fn sipp_uac_over_tcp() {
    let args = [
        "-sn",
        "uac",
        "-s",
        "800082653",
        "-m",
        "10",
        "-r",
        "20",
        "-t",
        "t1",
    ];
    let ended = run_sipp(&args).await;
    assert_eq!(ended, vec![EndReason::RemoteHangup; 10]);
}

#[tokio::test]
#[ignore = "needs sipp (Debian sip-tester); .ci/run runs it"]
async fn sipp_options() {
    let sf = scenario("options");
    run_sipp(&["-sf", &sf, "-s", "800082653", "-m", "3"]).await;
}

#[tokio::test]
#[ignore = "needs sipp (Debian sip-tester); .ci/run runs it"]
async fn sipp_cancel() {
    let sf = scenario("cancel");
    let ended = run_sipp(&["-sf", &sf, "-s", NEVER_ANSWERED, "-m", "3"]).await;
    assert_eq!(ended, vec![EndReason::Cancelled; 3]);
}

#[tokio::test]
#[ignore = "needs sipp (Debian sip-tester); .ci/run runs it"]
async fn sipp_lost_ack() {
    let sf = scenario("lost_ack");
    let ended = run_sipp(&["-sf", &sf, "-s", "800082653", "-m", "2"]).await;
    assert_eq!(ended, vec![EndReason::RemoteHangup; 2]);
}

#[tokio::test]
#[ignore = "needs sipp (Debian sip-tester); .ci/run runs it"]
async fn sipp_reinvite() {
    let sf = scenario("reinvite");
    let ended = run_sipp(&["-sf", &sf, "-s", "800082653", "-m", "2"]).await;
    assert_eq!(ended, vec![EndReason::RemoteHangup; 2]);
}

/// Load figure for docs/benchmarks.md, not a pass/fail test: run with
/// `cargo test --release --test sip_sipp -- --ignored --nocapture sipp_load`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by hand"]
async fn sipp_load() {
    let rate = std::env::var("SIPP_RATE").unwrap_or_else(|_| "1000".into());
    let calls = std::env::var("SIPP_CALLS").unwrap_or_else(|_| "20000".into());
    let args = [
        "-sn",
        "uac",
        "-s",
        "800082653",
        "-m",
        &calls,
        "-r",
        &rate,
        "-t",
        "u1",
        "-max_socket",
        "1",
    ];
    let started = std::time::Instant::now();
    let ended = run_sipp(&args).await;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} calls at -r {rate}: {secs:.1} s, {:.0} calls/s",
        ended.len(),
        ended.len() as f64 / secs
    );
}
