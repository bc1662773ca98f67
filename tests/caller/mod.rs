//! A caller's side of a call for the tests that place real calls to
//! `mensa serve`: audio every 20 ms, keys typed as RFC 4733 events, in-band
//! tones or SIP INFO, and the audio heard back.
// Each test file uses a different part of this module; tests may unwrap.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::uac::{Uac, rtp, tone};

/// RFC 4733 event code of a key.
pub fn event_code(key: char) -> u8 {
    match key {
        '0'..='9' => key as u8 - b'0',
        '*' => 10,
        '#' => 11,
        _ => panic!("no key {key}"),
    }
}

/// How the caller's phone sends its keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum KeyPath {
    Rfc4733,
    InBand,
    SipInfo,
}

/// The two frequencies of a key (ITU-T Q.23).
pub fn key_tones(key: char) -> (f32, f32) {
    const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f32; 3] = [1209.0, 1336.0, 1477.0];
    let (r, c) = match key {
        '1'..='9' => (
            (key as usize - '1' as usize) / 3,
            (key as usize - '1' as usize) % 3,
        ),
        '*' => (3, 0),
        '0' => (3, 1),
        '#' => (3, 2),
        _ => panic!("no key {key}"),
    };
    (ROWS[r], COLS[c])
}

/// 20 ms of A-law audio: silence, or the tone pair of `key` at −10 dBm0.
pub fn audio_frame(key: Option<char>, first_sample: usize) -> Vec<u8> {
    let Some(key) = key else {
        return vec![0xD5; 160];
    };
    let (f1, f2) = key_tones(key);
    tone(f1, f2, 160, first_sample)
        .into_iter()
        .map(|v| mensa::media::g711::Law::ALaw.encode(v))
        .collect()
}

/// Plays the caller's side for `run`: audio every 20 ms, and the `keys`
/// (100 ms each, 100 ms apart, from `keys_at`; a space is a 200 ms pause)
/// by `path`. Returns the audio payloads the server sent.
pub fn caller_media(
    uac: &mut Uac,
    media: &UdpSocket,
    server_rtp: SocketAddr,
    path: KeyPath,
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
        // Key i sounds from keys_at + 200 ms·i for 100 ms.
        let ms = u64::from(20 * k);
        let (key, within) = match ms.checked_sub(keys_at.as_millis() as u64) {
            Some(since) if ((since / 200) as usize) < keys.len() => {
                (Some(keys[(since / 200) as usize]), since % 200)
            }
            _ => (None, 0),
        };
        // A space is a pause: the caller waits for the prompt.
        let key = key.filter(|k| *k != ' ');
        let sounding = key.filter(|_| within < 100);
        let tone = if path == KeyPath::InBand {
            sounding
        } else {
            None
        };
        let frame = audio_frame(tone, (within as usize) * 8);
        media
            .send_to(&rtp(8, seq, 160 * k, k == 0, &frame), server_rtp)
            .unwrap();
        seq = seq.wrapping_add(1);
        match (path, key) {
            (KeyPath::Rfc4733, Some(key)) if within <= 140 => {
                let ended = within >= 100;
                let duration = if ended { 800 } else { (within as u16 + 20) * 8 };
                let event_ts = 160 * (k - (within / 20) as u32);
                let block = [
                    event_code(key),
                    if ended { 0x8A } else { 0x0A },
                    (duration >> 8) as u8,
                    duration as u8,
                ];
                media
                    .send_to(&rtp(101, ev_seq, event_ts, within == 0, &block), server_rtp)
                    .unwrap();
                ev_seq = ev_seq.wrapping_add(1);
            }
            (KeyPath::SipInfo, Some(key)) if within == 0 => {
                uac.cseq += 1;
                let cseq = uac.cseq;
                uac.request(
                    "INFO",
                    cseq,
                    "Content-Type: application/dtmf-relay\r\n",
                    &format!("Signal={key}\r\nDuration=100\r\n"),
                );
            }
            _ => {}
        }
        k += 1;
    }
    got
}
