//! The voice line end to end: the real `mensa serve --demo` binary, a test
//! caller speaking SIP and RTP over loopback, and the effect checked with
//! `mensa calendar`, as a parent and a support operator would see it.
//!
//! SPEC §3 R6's example: Monday 7 December 2026 at 19:00, with Tuesday 8
//! and Wednesday 9 closed, "58213#1" cancels Thursday 10's meal.
#![allow(clippy::unwrap_used)]

mod uac;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use uac::{Uac, media_port, offer};

/// `mensa serve --demo` on loopback with its clock at `now`; returns the
/// process and the SIP address it listens on.
fn serve(db: &Path, now: &str, rtp_ports: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mensa"))
        .args(["serve", "--demo", "--now", now])
        .args(["--sip-listen", "127.0.0.1:0", "--rtp-ports", rtp_ports])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let serving = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("mensa serving"))
        .expect("serve reports serving");
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let sip = serving
        .split_whitespace()
        .find_map(|w| w.strip_prefix("sip="))
        .expect("the SIP address in the serving line")
        .parse()
        .unwrap();
    (child, sip)
}

fn calendar_day(db: &Path, user_code: &str, date: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mensa"))
        .args(["calendar", "--user-code", user_code, "--format", "json"])
        .args(["--month", &date[..7]])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cal: Value = serde_json::from_slice(&out.stdout).unwrap();
    cal["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == date)
        .unwrap()
        .clone()
}

fn rtp(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x1234_5678_u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// RFC 4733 event code of a key.
fn event_code(key: char) -> u8 {
    match key {
        '0'..='9' => key as u8 - b'0',
        '*' => 10,
        '#' => 11,
        _ => panic!("no key {key}"),
    }
}

/// Plays the caller's side for `run`: A-law silence every 20 ms, and the
/// `keys` as RFC 4733 events (100 ms each, 100 ms apart) from `keys_at`.
/// Returns the audio packets the server sent.
fn caller_media(
    media: &UdpSocket,
    server_rtp: SocketAddr,
    keys: &str,
    keys_at: Duration,
    run: Duration,
) -> Vec<Vec<u8>> {
    media.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1500];
    let (mut seq, mut ev_seq) = (1000u16, 9000u16);
    let keys: Vec<char> = keys.chars().collect();
    let mut k = 0u32;
    while start.elapsed() < run {
        let due = start + Duration::from_millis(20 * u64::from(k));
        while Instant::now() < due {
            while let Ok((n, from)) = media.recv_from(&mut buf) {
                if from == server_rtp && n > 12 && buf[1] & 0x7f == 8 {
                    got.push(buf[12..n].to_vec());
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let ts = 160 * k;
        media
            .send_to(&rtp(8, seq, ts, k == 0, &[0xD5; 160]), server_rtp)
            .unwrap();
        seq = seq.wrapping_add(1);
        // Key i sounds from keys_at + 200 ms·i for 100 ms.
        let ms = u64::from(20 * k);
        let since = ms.checked_sub(keys_at.as_millis() as u64);
        if let Some(since) = since {
            let i = (since / 200) as usize;
            let within = since % 200;
            if i < keys.len() && within <= 140 {
                let ended = within >= 100;
                let duration = if ended { 800 } else { (within as u16 + 20) * 8 };
                let event_ts = 160 * (k - (within / 20) as u32);
                let block = [
                    event_code(keys[i]),
                    if ended { 0x8A } else { 0x0A },
                    (duration >> 8) as u8,
                    duration as u8,
                ];
                media
                    .send_to(&rtp(101, ev_seq, event_ts, within == 0, &block), server_rtp)
                    .unwrap();
                ev_seq = ev_seq.wrapping_add(1);
            }
        }
        k += 1;
    }
    got
}

#[test]
fn a_phone_cancellation_lands_on_thursday_and_shows_in_the_calendar() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mensa.db");
    let (mut server, sip) = serve(&db, "2026-12-07 19:00", "31000-31099");
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-10")["status"],
        "booked"
    );

    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut uac = Uac::new(sip, "voice-line-1");
    let ok = uac.call(&offer(
        media.local_addr().unwrap().port(),
        1,
        "sendrecv",
        "127.0.0.1",
    ));
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    let server_rtp = SocketAddr::from(([127, 0, 0, 1], media_port(&ok)));

    // The whole sequence typed during the greeting (type-ahead), then time
    // for the action and the confirmation.
    let heard = caller_media(
        &media,
        server_rtp,
        "58213#1",
        Duration::from_millis(500),
        Duration::from_secs(6),
    );
    let day = calendar_day(&db, "100234", "2026-12-10");
    uac.bye();
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let status = server.wait().unwrap();

    assert_eq!(day["status"], "absent", "{day}");
    assert_eq!(day["channel"], "phone", "{day}");
    // Nothing else changed: the next day is still booked.
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-11")["status"],
        "booked"
    );
    // The caller heard prompts: audio that is not all silence.
    let loud = heard
        .iter()
        .filter(|p| p.iter().any(|&b| b != 0xD5 && b != 0x55))
        .count();
    assert!(loud > 50, "{loud} non-silent packets of {}", heard.len());
    assert!(status.success(), "{status:?}");
}

#[test]
fn outside_the_window_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mensa.db");
    let (mut server, sip) = serve(&db, "2026-12-07 12:00", "31100-31199");
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut uac = Uac::new(sip, "voice-line-2");
    let ok = uac.call(&offer(
        media.local_addr().unwrap().port(),
        1,
        "sendrecv",
        "127.0.0.1",
    ));
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    let server_rtp = SocketAddr::from(([127, 0, 0, 1], media_port(&ok)));
    caller_media(
        &media,
        server_rtp,
        "58213#1",
        Duration::from_millis(500),
        Duration::from_secs(4),
    );
    // The line said the opening hours and hung up by itself.
    let bye = uac.answer_request("BYE", Duration::from_secs(20));
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    server.wait().unwrap();
    assert!(bye.is_some(), "the server hangs up after the hours message");
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-07")["status"],
        "booked"
    );
    assert_eq!(
        calendar_day(&db, "100234", "2026-12-10")["status"],
        "booked"
    );
}
