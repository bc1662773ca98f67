use std::time::{Duration, Instant};

use super::*;
use crate::media::dtmf::inband::InbandDetector;
use crate::media::dtmf::rfc4733::{EventHeader, EventReceiver, parse_blocks};
use crate::media::dtmf::{DigitEvent, Key};

struct Rtp {
    at_us: u64,
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: Vec<u8>,
}

fn checksum_ok(bytes: &[u8]) -> bool {
    checksum(bytes) == 0
}

/// Parses the pcap back, checking every header on the way.
fn parse(file: &[u8]) -> Vec<Rtp> {
    assert_eq!(&file[..4], &0xa1b2_c3d4_u32.to_le_bytes());
    assert_eq!(u32::from_le_bytes(file[20..24].try_into().unwrap()), 1);
    let mut off = 24;
    let mut out = Vec::new();
    while off < file.len() {
        let word = |i: usize| u32::from_le_bytes(file[off + i..off + i + 4].try_into().unwrap());
        let (sec, usec, cap, len) = (word(0), word(4), word(8) as usize, word(12) as usize);
        assert_eq!(cap, len);
        let f = &file[off + 16..off + 16 + cap];
        off += 16 + cap;
        assert_eq!(&f[12..14], &[0x08, 0x00], "IPv4");
        let ip = &f[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(ip[9], 17, "UDP");
        assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), cap - 14);
        assert!(checksum_ok(ip));
        let udp = &f[34..];
        assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
        let mut pseudo = ip[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 17, udp[4], udp[5]]);
        pseudo.extend_from_slice(udp);
        assert!(checksum_ok(&pseudo), "UDP checksum");
        assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 20000);
        let r = &udp[8..];
        assert_eq!(r[0], 0x80);
        out.push(Rtp {
            at_us: (u64::from(sec) - 1_796_000_000) * 1_000_000 + u64::from(usec),
            pt: r[1] & 0x7F,
            marker: r[1] & 0x80 != 0,
            seq: u16::from_be_bytes([r[2], r[3]]),
            ts: u32::from_be_bytes(r[4..8].try_into().unwrap()),
            ssrc: u32::from_be_bytes(r[8..12].try_into().unwrap()),
            payload: r[12..].to_vec(),
        });
    }
    out
}

fn keys(s: &str) -> Vec<Key> {
    parse_keys(s).unwrap()
}

fn typed(events: impl IntoIterator<Item = DigitEvent>) -> String {
    events
        .into_iter()
        .filter_map(|e| match e {
            DigitEvent::End { key, .. } => Some(key.as_char()),
            DigitEvent::Begin { .. } => None,
        })
        .collect()
}

#[test]
fn parse_keys_refuses_what_is_not_a_key() {
    assert_eq!(parse_keys("58x"), Err(NotAKey('x')));
    assert_eq!(keys("12#*ab").len(), 6);
}

#[test]
fn rfc4733_packets_continue_across_keys_and_each_press_has_its_own_event() {
    let pcap = DtmfPcap::new(keys("77"), Mode::Rfc4733 { payload_type: 101 });
    let p = parse(&pcap.build());
    // 50 lead-in, per key 5 updates + 2 end retransmissions + 3 silence, 50 tail.
    assert_eq!(p.len(), 50 + 2 * 10 + 50);
    for (i, r) in p.iter().enumerate() {
        assert_eq!(r.seq, 1000 + i as u16, "one sequence space");
        assert_eq!(r.at_us, 20_000 * i as u64, "one packet every 20 ms");
        assert_eq!(r.ssrc, pcap.ssrc);
    }
    let events: Vec<&Rtp> = p.iter().filter(|r| r.pt == 101).collect();
    assert_eq!(events.len(), 14);
    let starts: Vec<u32> = events.iter().map(|r| r.ts).collect();
    // Key 1 starts in slot 50, key 2 in slot 60.
    assert_eq!(starts[..7], [8000 + 50 * 160; 7]);
    assert_eq!(starts[7..], [8000 + 60 * 160; 7]);
    for press in events.chunks(7) {
        let blocks: Vec<_> = press
            .iter()
            .flat_map(|r| parse_blocks(&r.payload).collect::<Vec<_>>())
            .collect();
        assert!(blocks.iter().all(|b| b.code == 7 && b.volume == 10));
        assert_eq!(
            blocks.iter().map(|b| b.duration).collect::<Vec<_>>(),
            [160, 320, 480, 640, 800, 800, 800]
        );
        assert_eq!(blocks.iter().filter(|b| b.end).count(), 3);
        assert!(press[0].marker);
        assert!(press[1..].iter().all(|r| !r.marker));
    }
    // Audio frames carry the running clock and PCMA silence.
    for (i, r) in p.iter().enumerate().filter(|(_, r)| r.pt == 8) {
        assert_eq!(r.ts, 8000 + 160 * i as u32);
        assert_eq!(r.payload, [0xD5; 160]);
    }
}

#[test]
fn rfc4733_receiver_gets_the_whole_sequence_back_repeated_keys_included() {
    let pcap = DtmfPcap::new(keys("58213#1"), Mode::Rfc4733 { payload_type: 101 });
    let mut rx = EventReceiver::new(8000);
    let t0 = Instant::now();
    let mut got = Vec::new();
    for r in parse(&pcap.build()) {
        let now = t0 + Duration::from_micros(r.at_us);
        rx.handle_timeout(now);
        if r.pt == 101 {
            let h = EventHeader {
                ssrc: r.ssrc,
                timestamp: r.ts,
                marker: r.marker,
            };
            rx.handle_packet(now, h, &r.payload);
        }
        got.extend(std::iter::from_fn(|| rx.poll_event()));
    }
    assert_eq!(typed(got), "58213#1");

    let mut rx = EventReceiver::new(8000);
    let mut got = Vec::new();
    let pcap = DtmfPcap::new(keys("7700"), Mode::Rfc4733 { payload_type: 96 });
    for r in parse(&pcap.build()).iter().filter(|r| r.pt == 96) {
        let now = t0 + Duration::from_micros(r.at_us);
        let h = EventHeader {
            ssrc: r.ssrc,
            timestamp: r.ts,
            marker: r.marker,
        };
        rx.handle_packet(now, h, &r.payload);
        got.extend(std::iter::from_fn(|| rx.poll_event()));
    }
    assert_eq!(typed(got), "7700");
}

fn detect(pcap: &DtmfPcap) -> String {
    let law = pcap.law;
    let mut det = InbandDetector::new();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut pcm = [0i16; 160];
    for r in parse(&pcap.build()) {
        assert_eq!(r.pt, pcap.audio_payload_type());
        assert_eq!(r.payload.len(), 160);
        law.decode_into(&r.payload, &mut pcm);
        det.handle_samples(t0 + Duration::from_micros(r.at_us), &pcm);
        got.extend(std::iter::from_fn(|| det.poll_event()));
    }
    typed(got)
}

#[test]
fn inband_pcma_and_pcmu_decode_back_to_the_keys() {
    for law in [Law::ALaw, Law::MuLaw] {
        let mut pcap = DtmfPcap::new(keys("58213#1"), Mode::Inband);
        pcap.law = law;
        assert_eq!(detect(&pcap), "58213#1", "{law:?}");
        pcap.keys = keys("7700*#ABCD9");
        assert_eq!(detect(&pcap), "7700*#ABCD9", "{law:?}");
    }
}

#[test]
fn inband_tones_are_at_minus_10_dbm0_each_and_silence_between() {
    let pcap = DtmfPcap::new(keys("1"), Mode::Inband);
    let p = parse(&pcap.build());
    // 50 lead-in, 5 tone, 5 gap, 50 tail.
    assert_eq!(p.len(), 110);
    assert!(p[..50].iter().all(|r| r.payload == [0xD5; 160]));
    assert!(p[55..].iter().all(|r| r.payload == [0xD5; 160]));
    let mut pcm = [0i16; 160];
    let mut power = 0.0f64;
    for r in &p[50..55] {
        Law::ALaw.decode_into(&r.payload, &mut pcm);
        power += pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
    }
    let mean = power / 800.0;
    // Two tones at −10 dBm0: each 0.1 × (22 826² / 2).
    let expected = 2.0 * 0.1 * 22_826f64.powi(2) / 2.0;
    let db = 10.0 * (mean / expected).log10();
    assert!(db.abs() < 0.3, "{db} dB off");
}
