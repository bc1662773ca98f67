//! RTP injection (docs/security.md, "RTP: only the caller's media reaches
//! a call"; the class of flaw known as RTP Bleed, CVE-2017-14099). A
//! parent's call runs on a real `mensa serve --demo` whose trunk is
//! 127.0.0.1 while two outsiders spray every port of the RTP range with
//! RFC 4733 events for `3 #` (suspend, open-ended) and with audio, in
//! perfect sequence:
//!
//! * from 127.0.0.2, an address neither the call's SDP, its signalling
//!   nor the allow-list names, from before the call starts;
//! * from 127.0.0.1 itself (the trunk's host, as a spoofer would pick),
//!   once the call is in progress.
//!
//! The call's keys and outcome are unchanged (Thursday cancelled, nothing
//! suspended, one code and one operation in its record), neither sprayer
//! hears a single datagram, and `/metrics` counts what was dropped.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::caller::{KeyPath, caller_media, event_code};
use super::demo::{calendar_day, http_get, serve_demo_with, write_config};
use super::uac::{Uac, media_port, offer, rtp};

const PORTS: (u16, u16) = (32_000, 32_039);

/// Sprays every port of the range from `from` until `stop`, after
/// `delay`: for each port a whole press of `3` then of `#` (begin,
/// updates, three ends, sequence numbers in a row) and a run of audio.
/// Returns how many datagrams came back to it.
fn sprayer(from: &str, delay: Duration, stop: Arc<AtomicBool>) -> JoinHandle<usize> {
    let socket = UdpSocket::bind(from).unwrap();
    socket.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let mut heard = 0;
        let mut buf = [0u8; 2048];
        let mut seq = 0u16;
        let mut ts = 0u32;
        while !stop.load(Ordering::Relaxed) {
            for port in PORTS.0..=PORTS.1 {
                let to = SocketAddr::from(([127, 0, 0, 1], port));
                for key in ['3', '#'] {
                    for i in 0..8u16 {
                        let end = i >= 5;
                        let duration = (160 * (i.min(5) + 1)).to_be_bytes();
                        let block = [
                            event_code(key),
                            if end { 0x8A } else { 0x0A },
                            duration[0],
                            duration[1],
                        ];
                        let _ = socket.send_to(&rtp(101, seq, ts, i == 0, &block), to);
                        seq = seq.wrapping_add(1);
                    }
                    ts = ts.wrapping_add(1600);
                }
                for _ in 0..4 {
                    let _ = socket.send_to(&rtp(8, seq, ts, false, &[0xD5; 160]), to);
                    seq = seq.wrapping_add(1);
                    ts = ts.wrapping_add(160);
                }
            }
            while socket.recv_from(&mut buf).is_ok() {
                heard += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        while socket.recv_from(&mut buf).is_ok() {
            heard += 1;
        }
        heard
    })
}

#[test]
fn sprayed_keys_never_reach_a_call_and_the_sprayers_hear_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mensa.db");
    let config = dir.path().join("mensa.toml");
    write_config(&config, "[sip]\nallowed = [\"127.0.0.1/32\"]\n");
    let ports = format!("{}-{}", PORTS.0, PORTS.1);
    let server = serve_demo_with(
        &db,
        "2026-12-07 19:00",
        &ports,
        &["--config", config.to_str().unwrap()],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let outsider = sprayer("127.0.0.2:0", Duration::ZERO, stop.clone());

    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut uac = Uac::new(server.sip, "rtp-spray");
    let ok = uac.call(&offer(
        media.local_addr().unwrap().port(),
        1,
        "sendrecv",
        "127.0.0.1",
    ));
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    let server_rtp = SocketAddr::from(([127, 0, 0, 1], media_port(&ok)));
    // The call is learned from its first packets; a spoofer of the
    // trunk's own host joins once it is in progress.
    let spoofer = sprayer("127.0.0.1:0", Duration::from_millis(300), stop.clone());
    let heard = caller_media(
        &mut uac,
        &media,
        server_rtp,
        KeyPath::Rfc4733,
        "58213#1",
        Duration::from_millis(500),
        Duration::from_secs(6),
    );
    if uac
        .answer_request("BYE", Duration::from_millis(300))
        .is_none()
    {
        uac.bye();
    }
    stop.store(true, Ordering::Relaxed);
    let (outsider_heard, spoofer_heard) = (outsider.join().unwrap(), spoofer.join().unwrap());
    std::thread::sleep(Duration::from_millis(1200)); // a report of the edge's counters
    let metrics = http_get(server.http, "/api/v1/metrics");
    server.stop();

    assert_eq!(
        (outsider_heard, spoofer_heard),
        (0, 0),
        "the sprayers heard us"
    );
    assert!(
        heard.len() > 100,
        "the caller heard the call: {}",
        heard.len()
    );
    // The outcome is the caller's: Thursday cancelled, nothing suspended.
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-10")["status"],
        "absent"
    );
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-11")["status"],
        "booked"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mensa"))
        .args(["calls", "--date", "2026-12-07", "--format", "json"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    let calls: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let record = &calls["calls"][0];
    assert_eq!(record["codes"].as_array().unwrap().len(), 1, "{calls}");
    let operations = record["operations"].as_array().unwrap();
    let asked: Vec<&str> = operations
        .iter()
        .filter_map(|o| o["operation"].as_str())
        .filter(|o| *o != "end")
        .collect();
    assert_eq!(asked, ["cancel"], "{calls}");
    // The node saw and dropped both.
    let counter = |reason: &str| -> u64 {
        let line = format!("mensa_rtp_rejected_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line} in {metrics}"))
    };
    assert!(counter("implausible") > 1000, "{metrics}");
    assert!(counter("not_latched") > 100, "{metrics}");
}
