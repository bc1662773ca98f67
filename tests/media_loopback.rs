//! Media end to end over real UDP sockets on loopback (no SIP: the INFO key
//! is handed to the session as the SIP layer would). A test caller sends
//! RFC 4733 events, then in-band tones, then an INFO key while the server
//! plays a prompt; the server must hear exactly those keys, and the caller
//! must receive the prompt intact, with continuous numbering and steady
//! 20 ms spacing.

mod uac;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mensa::media::dtmf::Key;
use mensa::media::dtmf::merge::{InbandMode, KeyEvent};
use mensa::media::g711::Law;
use mensa::media::playout::Prompt;
use mensa::media::session::{
    AudioCodec, Channel, Input, MediaEvent, MediaParams, RtpSession, SessionConfig, SessionSeed,
    TelephoneEvent,
};
use uac::{rtp, tone};

/// The 1.5 s prompt starts once the caller's source is learned (8 packets
/// from an address other than the SDP's: 160 ms), with room for a busy
/// machine.
const RUN: Duration = Duration::from_millis(3200);

#[test]
fn keys_from_three_paths_and_an_intact_steady_prompt() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    // The prompt: 1.5 s of a sweep, so any reordering or gap would show.
    let samples: Vec<i16> = (0..12_000)
        .map(|i| ((i as f32 * (0.05 + i as f32 * 2e-5)).sin() * 9000.0) as i16)
        .collect();
    let prompt = Arc::new(Prompt::from_samples("sweep", &samples));
    let want = prompt.encoded(Law::ALaw)[..samples.len()].to_vec();

    let (info_tx, info_rx) = mpsc::channel::<Key>();
    let (ev_tx, ev_rx) = mpsc::channel::<MediaEvent>();
    let start = Instant::now();
    let srv = std::thread::spawn(move || {
        let params = MediaParams {
            codec: AudioCodec {
                law: Law::ALaw,
                payload_type: 8,
            },
            telephone_event: Some(TelephoneEvent {
                payload_type: 101,
                clock_rate: 8000,
            }),
            ptime: Duration::from_millis(20),
            // As in SDP; the session latches onto the real source, whose
            // host is the SDP's (the same loopback address).
            remote_rtp: "127.0.0.1:9".parse().unwrap(),
            remote_rtcp: None,
            signalling: None,
        };
        let config = SessionConfig {
            inband: InbandMode::Always,
            ..SessionConfig::default()
        };
        let seed = SessionSeed {
            ssrc: 0xC0FFEE,
            sequence: 65_000,
            timestamp: 1234,
            ntp: 0,
        };
        let sdp = params.remote_rtp;
        let mut s = RtpSession::new(Instant::now(), params, config, seed);
        // The prompt starts once the caller's source is learned (a run of
        // packets in sequence, media::source): before, frames go to the
        // SDP's address, here a dead one.
        let mut prompt = Some(prompt);
        let mut buf = [0u8; 1500];
        while start.elapsed() < RUN {
            let now = Instant::now();
            let wake = s.poll_timeout().unwrap_or(now + Duration::from_millis(5));
            let wait = wake
                .saturating_duration_since(now)
                .max(Duration::from_micros(200));
            server.set_read_timeout(Some(wait)).unwrap();
            if let Ok((n, from)) = server.recv_from(&mut buf) {
                s.handle_input(
                    Instant::now(),
                    Input::Rtp {
                        from,
                        data: &buf[..n],
                    },
                );
            }
            while let Ok(key) = info_rx.try_recv() {
                s.handle_input(
                    Instant::now(),
                    Input::Info {
                        key,
                        duration: None,
                    },
                );
            }
            if s.destination() != sdp
                && let Some(prompt) = prompt.take()
            {
                s.play(prompt);
            }
            s.handle_timeout(Instant::now());
            while let Some(t) = s.poll_transmit() {
                if t.channel == Channel::Rtp {
                    server.send_to(&t.payload, t.destination).unwrap();
                }
            }
            while let Some(e) = s.poll_event() {
                ev_tx.send(e).unwrap();
            }
        }
    });

    // The caller: one audio packet every 20 ms (silence or a tone), events
    // for "1", the tone of "2", then an INFO "3"; records what arrives.
    caller.set_nonblocking(true).unwrap();
    let mut got: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 1500];
    let (mut seq, mut ts) = (100u16, 0u32);
    let mut ev_seq = 5000u16;
    let mut info_sent = false;
    let mut k = 0u32;
    while start.elapsed() < RUN - Duration::from_millis(150) {
        let due = start + Duration::from_millis(20 * u64::from(k));
        while Instant::now() < due {
            while let Ok((n, _)) = caller.recv_from(&mut buf) {
                got.push((Instant::now(), buf[..n].to_vec()));
            }
            std::thread::sleep(Duration::from_micros(300));
        }
        let ms = 20 * k;
        // In-band "2" (697 + 1336 Hz) from 700 to 800 ms.
        let pcm = if (700..800).contains(&ms) {
            tone(697.0, 1336.0, 160, (ms as usize - 700) * 8)
        } else {
            vec![0; 160]
        };
        let payload: Vec<u8> = pcm.iter().map(|&v| Law::ALaw.encode(v)).collect();
        caller
            .send_to(&rtp(8, seq, ts, k == 0, &payload), server_addr)
            .unwrap();
        // RFC 4733 "1" from 300 to 400 ms (event timestamp 2400), end ×3.
        if (300..=440).contains(&ms) {
            let end = ms >= 400;
            let d = if end {
                800
            } else {
                ((ms - 300 + 20) * 8) as u16
            };
            let block = [1, if end { 0x8A } else { 0x0A }, (d >> 8) as u8, d as u8];
            caller
                .send_to(&rtp(101, ev_seq, 2400, ms == 300, &block), server_addr)
                .unwrap();
            ev_seq = ev_seq.wrapping_add(1);
        }
        if ms >= 1100 && !info_sent {
            info_tx.send(Key::from_char('3').unwrap()).unwrap();
            info_sent = true;
        }
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(160);
        k += 1;
    }
    srv.join().unwrap();
    // Arrival times are only meaningful for packets read while polling.
    let live = got.len();
    while let Ok((n, _)) = caller.recv_from(&mut buf) {
        got.push((Instant::now(), buf[..n].to_vec()));
    }

    // The keys: exactly "123", each once, each with a Down before it.
    let events: Vec<MediaEvent> = ev_rx.try_iter().collect();
    let pressed: String = events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Key(KeyEvent::Pressed { key, .. }) => Some(key.as_char()),
            _ => None,
        })
        .collect();
    let downs = events
        .iter()
        .filter(|e| matches!(e, MediaEvent::Key(KeyEvent::Down { .. })))
        .count();
    assert_eq!(pressed, "123", "{events:?}");
    assert_eq!(downs, 3);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, MediaEvent::PlayFinished(_)))
    );

    // What the caller heard: continuous numbering, the prompt intact.
    assert!(got.len() >= 100, "{} packets", got.len());
    let mut stream = Vec::new();
    for w in got.windows(2) {
        let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        assert_eq!(seq(&w[1].1), seq(&w[0].1).wrapping_add(1));
        assert_eq!(ts(&w[1].1), ts(&w[0].1).wrapping_add(160));
    }
    let first = got
        .iter()
        .position(|(_, p)| p[1] & 0x80 != 0)
        .expect("a marker");
    for (_, p) in &got[first..] {
        stream.extend_from_slice(&p[12..]);
    }
    assert_eq!(&stream[..want.len()], &want[..], "prompt intact");
    // Steady spacing: arrival k is within a few ms of first + k·20 ms
    // (loose bound: the test machine is shared; benches measure this).
    let t0 = got[0].0;
    let mut worst = Duration::ZERO;
    for (i, (t, _)) in got[..live].iter().enumerate() {
        let ideal = t0 + Duration::from_millis(20 * i as u64);
        let off = if *t > ideal { *t - ideal } else { ideal - *t };
        worst = worst.max(off);
    }
    eprintln!("{live} packets timed: worst offset from the 20 ms grid {worst:?}");
    assert!(
        worst < Duration::from_millis(60),
        "spacing drifted by {worst:?}"
    );
    let span = got[live - 1].0 - t0;
    let ideal = Duration::from_millis(20 * (live as u64 - 1));
    let drift = span.abs_diff(ideal);
    assert!(drift < Duration::from_millis(40), "drift {drift:?}");
}
