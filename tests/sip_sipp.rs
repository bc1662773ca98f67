//! Interop with sipp (Debian `sip-tester`): its built-in `uac` scenario and
//! the scenarios in `tests/sipp/`, against the endpoint on loopback,
//! answered by a stub call layer. They need sipp, so they are ignored by
//! default and run by `.ci/run` (which installs it):
//! `cargo test --test sip_sipp -- --ignored --skip sipp_load`.
#![allow(clippy::unwrap_used)] // test helpers may unwrap (STYLE.md)

mod demo;

use std::process::Stdio;
use std::time::Duration;

use demo::{calendar_day, serve_demo};
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
                | Event::Dtmf { .. }
                | Event::CallRefused { .. } => {}
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

/// The real binary: `mensa serve --demo` (no config file: loopback may
/// call, 800082653 routes to the default dialplan) answers sipp's `uac`,
/// with RTP ports from the pool, then stops gracefully on SIGTERM.
#[tokio::test]
#[ignore = "needs sipp (Debian sip-tester); .ci/run runs it"]
async fn sipp_uac_against_mensa_serve_demo() {
    use std::io::BufRead;
    if std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        panic!("sipp is not installed: apt-get install -y sip-tester");
    }
    let dir = tempfile::tempdir().unwrap();
    let low = 40_000 + (std::process::id() % 500) as u16 * 20;
    let ports = format!("{low}-{}", low + 19);
    let config = dir.path().join("mensa.toml");
    demo::write_config(&config, "");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mensa"))
        .args(["serve", "--demo", "--sip-listen", "127.0.0.1:0"])
        .arg("--config")
        .arg(&config)
        .args(["--rtp-ports", &ports, "--http-listen", "127.0.0.1:0"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("MENSA_DATABASE_URL")
        .env("RUST_LOG", "info")
        .env("TMPDIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let serving = stderr
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("mensa serving"))
        .expect("mensa serving");
    let sip = serving
        .split_whitespace()
        .find_map(|w| w.strip_prefix("sip="))
        .expect("sip= in the serving line")
        .to_owned();
    let output = tokio::process::Command::new("sipp")
        .arg(&sip)
        .args(["-sn", "uac", "-s", "800082653", "-m", "5", "-r", "10"])
        .args(["-i", "127.0.0.1", "-p", "0", "-nostdin", "-timeout", "30s"])
        .args(["-timeout_error", "-d", "200"])
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("sipp in time")
        .unwrap();
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        output.status.success(),
        "sipp uac against mensa serve --demo failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(status.success(), "mensa serve exited with {status:?}");
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

/// `mensa dtmf-pcap ARGS` (writes a pcap).
fn dtmf_pcap(args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mensa"))
        .arg("dtmf-pcap")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Calls the demo at Monday 2026-12-07 19:00 with sipp running `scenario`
/// from `dir` (which holds the scenario's pcaps), media on `media_port`;
/// returns 2026-12-10 of child 100234 after the call.
async fn call_the_demo(
    dir: &std::path::Path,
    scenario: &str,
    rtp: &str,
    media_port: u16,
) -> serde_json::Value {
    if std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        panic!("sipp is not installed: apt-get install -y sip-tester");
    }
    let db = dir.join("mensa.db");
    let server = serve_demo(&db, "2026-12-07 19:00", rtp);
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-10")["status"],
        "booked"
    );
    let output = tokio::process::Command::new("sipp")
        .arg(server.sip.to_string())
        .args(["-sf", scenario, "-s", "800082653", "-m", "1"])
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", "0"])
        .args(["-mp", &media_port.to_string()])
        .args(["-nostdin", "-timeout", "60s", "-timeout_error"])
        .current_dir(dir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .expect("sipp in time")
        .unwrap();
    let day = calendar_day(&db, "100234", "2026-12-10");
    server.stop();
    assert!(
        output.status.success(),
        "sipp {scenario} failed (play_pcap_audio needs root or CAP_NET_RAW): {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    day
}

/// A scenario of tests/sipp/ copied into `dir`, so that sipp finds the
/// pcaps written there (it looks next to the scenario first).
fn scenario_in(dir: &std::path::Path, name: &str) -> String {
    let to = dir.join(format!("{name}.xml"));
    std::fs::copy(scenario(name), &to).unwrap();
    to.display().to_string()
}

/// The pcaps in tests/sipp/ (used by the README's one-liner) are what
/// `mensa dtmf-pcap` writes today.
#[test]
fn committed_pcaps_are_what_dtmf_pcap_writes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, mode) in [("dtmf", "rfc4733"), ("dtmf_inband", "inband")] {
        let file = dir.path().join(format!("{name}.pcap"));
        dtmf_pcap(&["58213#1", file.to_str().unwrap(), "--mode", mode]);
        let committed = format!("{}/tests/sipp/{name}.pcap", env!("CARGO_MANIFEST_DIR"));
        assert!(
            std::fs::read(&file).unwrap() == std::fs::read(&committed).unwrap(),
            "{committed} is stale: mensa dtmf-pcap \"58213#1\" {committed} --mode {mode}"
        );
    }
}

/// Code, `#`, `1` as RFC 4733 events from `mensa dtmf-pcap`: Thursday
/// 2026-12-10 cancelled by phone.
#[tokio::test]
#[ignore = "needs sipp (Debian sip-tester); .ci/run runs it"]
async fn sipp_dtmf_pcap_rfc4733_cancels_thursday() {
    let dir = tempfile::tempdir().unwrap();
    let sf = scenario_in(dir.path(), "dtmf_call");
    dtmf_pcap(&["58213#1", dir.path().join("dtmf.pcap").to_str().unwrap()]);
    let day = call_the_demo(dir.path(), &sf, "51000-51019", 52000).await;
    assert_eq!(day["status"], "absent", "{day}");
    assert_eq!(day["channel"], "phone", "{day}");
}

/// The same keys as in-band PCMA tones (no telephone-event offered).
#[tokio::test]
#[ignore = "needs sipp (Debian sip-tester); .ci/run runs it"]
async fn sipp_dtmf_pcap_inband_pcma_cancels_thursday() {
    let dir = tempfile::tempdir().unwrap();
    let sf = scenario_in(dir.path(), "dtmf_call_inband");
    let pcap = dir.path().join("dtmf_inband.pcap");
    dtmf_pcap(&[
        "58213#1",
        pcap.to_str().unwrap(),
        "--mode",
        "inband",
        "--law",
        "pcma",
    ]);
    let day = call_the_demo(dir.path(), &sf, "51100-51119", 52100).await;
    assert_eq!(day["status"], "absent", "{day}");
    assert_eq!(day["channel"], "phone", "{day}");
}

/// sip-tester's one-key RFC 2833 pcap for `key`.
fn shipped_pcap(key: char) -> String {
    let name = match key {
        '#' => "pound".to_owned(),
        '*' => "star".to_owned(),
        k => k.to_string(),
    };
    format!("/usr/share/sip-tester/dtmf_2833_{name}.pcap")
}

/// What an RFC 4733 receiver makes of sip-tester's one-key pcaps played
/// one after another, 400 ms apart (as tests/sipp/dtmf_call_shipped.xml
/// does): the keys whose events it reports.
fn heard_from_shipped(keys: &str) -> String {
    use mensa::media::dtmf::DigitEvent;
    use mensa::media::dtmf::rfc4733::{EventHeader, EventReceiver};
    let mut rx = EventReceiver::new(8000);
    let t0 = std::time::Instant::now();
    let mut heard = String::new();
    for (i, key) in keys.chars().enumerate() {
        let file = std::fs::read(shipped_pcap(key)).expect("sip-tester's pcaps");
        let mut off = 24;
        let mut k = 0u64;
        while off < file.len() {
            let cap = u32::from_le_bytes(file[off + 8..off + 12].try_into().unwrap()) as usize;
            let rtp = &file[off + 16 + 42..off + 16 + cap];
            off += 16 + cap;
            let now = t0 + Duration::from_millis(400 * i as u64 + 20 * k);
            k += 1;
            rx.handle_timeout(now);
            let h = EventHeader {
                ssrc: u32::from_be_bytes(rtp[8..12].try_into().unwrap()),
                timestamp: u32::from_be_bytes(rtp[4..8].try_into().unwrap()),
                marker: rtp[1] & 0x80 != 0,
            };
            rx.handle_packet(now, h, &rtp[12..]);
            while let Some(e) = rx.poll_event() {
                if let DigitEvent::End { key, .. } = e {
                    heard.push(key.as_char());
                }
            }
        }
    }
    heard
}

/// Why the shipped pcaps cannot place the demo call: they are one
/// capture (one SSRC) whose event timestamps run 1 0 2 3 4 5 6 7 8 9 * #.
/// In that order every key comes through; out of it, a key whose
/// timestamp is older than the previous key's is a late event to a
/// correct receiver, and a repeated key is a duplicate.
#[test]
#[ignore = "needs sip-tester's pcaps (Debian sip-tester); .ci/run runs it"]
fn shipped_rfc2833_pcaps_work_only_in_capture_order() {
    assert_eq!(heard_from_shipped("1023456789*#"), "1023456789*#");
    assert_eq!(heard_from_shipped("2469#"), "2469#");
    // 58213#1: 2, 1 and 3 are older than 8; the last 1 is older than #.
    assert_eq!(heard_from_shipped("58213#1"), "58#");
    // A repeated key is the same event again.
    assert_eq!(heard_from_shipped("77"), "7");
}

/// The shipped one-key pcaps for 58213, #, 1 over sipp: the server hears
/// 5 8 # only (see the test above), asks for the code again, and nothing
/// changes. Kept so that the docs' advice (use mensa dtmf-pcap) stays true.
#[tokio::test]
#[ignore = "needs sipp (Debian sip-tester); .ci/run runs it"]
async fn sipp_shipped_rfc2833_pcaps_cannot_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let sf = scenario_in(dir.path(), "dtmf_call_shipped");
    let day = call_the_demo(dir.path(), &sf, "51200-51219", 52200).await;
    assert_eq!(day["status"], "booked", "{day}");
}

/// `mensa dtmf-pcap` refuses what it cannot write, naming the problem.
#[test]
fn dtmf_pcap_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.pcap");
    let file = file.to_str().unwrap();
    for (args, message) in [
        (vec!["12x", file], "'x' is not a DTMF key"),
        (vec!["", file], "no keys"),
        (vec!["12", file, "--payload-type", "8"], "96-127"),
        (vec!["12", "/nonexistent/dir/x.pcap"], "cannot write"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mensa"))
            .arg("dtmf-pcap")
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(!dir.path().join("x.pcap").exists());
}

/// In-band PCMU: the in-band scenario with PCMU offered first (so the
/// server answers PCMU) and the tones µ-law encoded.
#[tokio::test]
#[ignore = "needs sipp (Debian sip-tester); .ci/run runs it"]
async fn sipp_dtmf_pcap_inband_pcmu_cancels_thursday() {
    let dir = tempfile::tempdir().unwrap();
    let xml = std::fs::read_to_string(scenario("dtmf_call_inband")).unwrap();
    assert!(xml.contains("RTP/AVP 8 0\n"));
    let sf = dir.path().join("dtmf_call_inband_pcmu.xml");
    std::fs::write(&sf, xml.replace("RTP/AVP 8 0\n", "RTP/AVP 0 8\n")).unwrap();
    let pcap = dir.path().join("dtmf_inband.pcap");
    dtmf_pcap(&[
        "58213#1",
        pcap.to_str().unwrap(),
        "--mode",
        "inband",
        "--law",
        "pcmu",
    ]);
    let day = call_the_demo(dir.path(), sf.to_str().unwrap(), "51300-51319", 52300).await;
    assert_eq!(day["status"], "absent", "{day}");
    assert_eq!(day["channel"], "phone", "{day}");
}
