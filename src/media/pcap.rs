//! A caller's key sequence as a pcap file (libpcap format, link type
//! Ethernet, IPv4/UDP/RTP), for sipp's `play_pcap_audio` (sipp keeps the
//! RTP packets as they are and rewrites only the UDP ports; it reads link
//! types Ethernet and Linux cooked).
//!
//! Why not the one-key RFC 2833 pcaps that sip-tester ships: they are cut
//! from one capture (one SSRC), so a repeated key replays the very same
//! packets, which a correct receiver drops as duplicates; and played in
//! another order than captured, a key's event timestamp is older than the
//! previous key's, with sequence numbers a few dozen behind: late packets
//! (RFC 3550 §A.1) of an earlier event, dropped too (tests/sip_sipp.rs,
//! docs/testing-calls.md). Here one stream carries the whole sequence:
//!
//! ```text
//!  lead-in silence │ key 1: tone │ gap (silence) │ key 2: tone │ gap │ … │ tail
//!  20 ms G.711 frames, one sequence space, one RTP clock (8 kHz)
//! ```
//!
//! * [`Mode::Rfc4733`]: per key, event packets every 20 ms carrying the
//!   key's start timestamp (marker on the first, growing duration), the
//!   last with the E bit sent three times (§2.5.1.4), each packet with its
//!   own sequence number; G.711 silence frames fill the lead-in and gaps.
//! * [`Mode::Inband`]: the key's two Q.23 tones at −10 dBm0 each for the
//!   tone time, G.711 silence between.
//!
//! Sans-IO: [`DtmfPcap::build`] returns the bytes; the CLI writes them.

use std::f32::consts::PI;
use std::net::SocketAddrV4;
use std::time::Duration;

use super::dtmf::Key;
use super::g711::Law;

/// pcap link type: Ethernet (LINKTYPE_ETHERNET).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Samples per 20 ms frame at 8 kHz.
const FRAME: u32 = 160;
const FRAME_MS: u32 = 20;
/// Peak of a 0 dBm0 sine (ITU-T G.711).
const DBM0_PEAK: f32 = 22_826.0;
/// Each tone of a pair: −10 dBm0.
const TONE_DBM0: f32 = -10.0;

/// How the keys travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// RFC 4733 telephone-events at this payload type.
    Rfc4733 { payload_type: u8 },
    /// DTMF tones in the G.711 audio (ITU-T Q.23).
    Inband,
}

/// What to write; [`DtmfPcap::new`] gives the usual values.
#[derive(Clone, Debug)]
pub struct DtmfPcap {
    pub keys: Vec<Key>,
    pub mode: Mode,
    pub law: Law,
    /// Silence before the first key (the greeting starts meanwhile).
    pub lead_in: Duration,
    /// How long each key is held.
    pub tone: Duration,
    /// Pause after each key.
    pub gap: Duration,
    /// Silence after the last key (keeps the stream alive while the server
    /// acts and confirms).
    pub tail: Duration,
    pub ssrc: u32,
    pub first_sequence: u16,
    pub first_timestamp: u32,
    /// Addresses in the packets (sipp replaces the ports, not the payload).
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    /// Capture time of the first packet, seconds since the Unix epoch.
    pub start_seconds: u32,
}

/// A key sequence with a character that is not a keypad key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a DTMF key (0-9, *, #, A-D)")]
pub struct NotAKey(pub char);

/// Parses "58213#1" into keys.
pub fn parse_keys(keys: &str) -> Result<Vec<Key>, NotAKey> {
    keys.chars()
        .map(|c| Key::from_char(c).ok_or(NotAKey(c)))
        .collect()
}

impl DtmfPcap {
    /// 1 s lead-in, 100 ms tones, 100 ms gaps, 1 s tail, PCMA.
    pub fn new(keys: Vec<Key>, mode: Mode) -> DtmfPcap {
        DtmfPcap {
            keys,
            mode,
            law: Law::ALaw,
            lead_in: Duration::from_millis(1000),
            tone: Duration::from_millis(100),
            gap: Duration::from_millis(100),
            tail: Duration::from_millis(1000),
            ssrc: 0x6d65_6e73,
            first_sequence: 1000,
            first_timestamp: 8000,
            source: SocketAddrV4::new([192, 0, 2, 1].into(), 6000),
            destination: SocketAddrV4::new([192, 0, 2, 2].into(), 20000),
            start_seconds: 1_796_000_000,
        }
    }

    /// The G.711 payload type of [`law`](Self::law) (RFC 3551: PCMU 0, PCMA 8).
    pub fn audio_payload_type(&self) -> u8 {
        match self.law {
            Law::ALaw => 8,
            Law::MuLaw => 0,
        }
    }

    /// The whole pcap file.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Global header (libpcap): magic, v2.4, UTC, accuracy, snaplen, link type.
        out.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65_535u32.to_le_bytes());
        out.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        for (slot, rtp) in self.rtp_packets().iter().enumerate() {
            let at_ms = u64::try_from(slot).unwrap_or(u64::MAX) * u64::from(FRAME_MS);
            self.frame(&mut out, at_ms, rtp);
        }
        out
    }

    /// The RTP packets, one per 20 ms slot.
    pub fn rtp_packets(&self) -> Vec<Vec<u8>> {
        let slots = |d: Duration| {
            u32::try_from(d.as_millis().div_ceil(u128::from(FRAME_MS))).unwrap_or(u32::MAX)
        };
        let tone_slots = slots(self.tone).max(1);
        // The E-bit retransmissions fill the first two slots of the gap.
        let gap_slots = match self.mode {
            Mode::Rfc4733 { .. } => slots(self.gap).max(2),
            Mode::Inband => slots(self.gap).max(1),
        };
        let mut w = Writer {
            pcap: self,
            seq: self.first_sequence,
            slot: 0,
            out: Vec::new(),
            talkspurt: true,
        };
        for _ in 0..slots(self.lead_in) {
            w.silence();
        }
        for &key in &self.keys {
            match self.mode {
                Mode::Rfc4733 { payload_type } => {
                    let start = w.timestamp();
                    for i in 1..=tone_slots {
                        let end = i == tone_slots;
                        w.event(payload_type, key, start, i * FRAME, end, i == 1);
                    }
                    for _ in 0..2 {
                        w.event(payload_type, key, start, tone_slots * FRAME, true, false);
                    }
                    w.talkspurt = true;
                    for _ in 2..gap_slots {
                        w.silence();
                    }
                }
                Mode::Inband => {
                    let (low, high) = tone_pair(key);
                    for i in 0..tone_slots {
                        w.tone(low, high, i * FRAME);
                    }
                    for _ in 0..gap_slots {
                        w.silence();
                    }
                }
            }
        }
        for _ in 0..slots(self.tail) {
            w.silence();
        }
        w.out
    }

    /// One pcap record: Ethernet, IPv4, UDP around `rtp`.
    fn frame(&self, out: &mut Vec<u8>, at_ms: u64, rtp: &[u8]) {
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let frame_len = 14 + ip_len;
        let at_us = at_ms * 1000;
        let seconds = u64::from(self.start_seconds) + at_us / 1_000_000;
        out.extend_from_slice(&u32::try_from(seconds).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&u32::try_from(at_us % 1_000_000).unwrap_or(0).to_le_bytes());
        let len = u32::try_from(frame_len).unwrap_or(u32::MAX).to_le_bytes();
        out.extend_from_slice(&len); // captured
        out.extend_from_slice(&len); // on the wire
        // Ethernet: locally administered MACs, type IPv4.
        out.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
        let ip_start = out.len();
        let src = self.source.ip().octets();
        let dst = self.destination.ip().octets();
        out.extend_from_slice(&[0x45, 0]);
        out.extend_from_slice(&u16::try_from(ip_len).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        out.extend_from_slice(&src);
        out.extend_from_slice(&dst);
        let sum = checksum(&out[ip_start..]);
        out[ip_start + 10..ip_start + 12].copy_from_slice(&sum.to_be_bytes());
        let udp_len16 = u16::try_from(udp_len).unwrap_or(u16::MAX);
        let mut udp = Vec::with_capacity(udp_len);
        udp.extend_from_slice(&self.source.port().to_be_bytes());
        udp.extend_from_slice(&self.destination.port().to_be_bytes());
        udp.extend_from_slice(&udp_len16.to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(rtp);
        // RFC 768: checksum over the pseudo-header and the datagram.
        let mut pseudo = Vec::with_capacity(12 + udp.len());
        pseudo.extend_from_slice(&src);
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&udp_len16.to_be_bytes());
        pseudo.extend_from_slice(&udp);
        let sum = match checksum(&pseudo) {
            0 => 0xFFFF,
            s => s,
        };
        udp[6..8].copy_from_slice(&sum.to_be_bytes());
        out.extend_from_slice(&udp);
    }
}

/// The low and high Q.23 frequencies of a key.
pub fn tone_pair(key: Key) -> (f32, f32) {
    const LOW: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const HIGH: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let (row, col) = key.row_col();
    (LOW[row & 3], HIGH[col & 3])
}

struct Writer<'a> {
    pcap: &'a DtmfPcap,
    seq: u16,
    slot: u32,
    out: Vec<Vec<u8>>,
    /// The next audio packet starts a talkspurt (RFC 3551 §4.1 marker).
    talkspurt: bool,
}

impl Writer<'_> {
    fn timestamp(&self) -> u32 {
        self.pcap
            .first_timestamp
            .wrapping_add(self.slot.wrapping_mul(FRAME))
    }

    fn push(&mut self, payload_type: u8, marker: bool, timestamp: u32, payload: &[u8]) {
        let mut p = Vec::with_capacity(12 + payload.len());
        p.push(0x80);
        p.push(payload_type & 0x7F | if marker { 0x80 } else { 0 });
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&timestamp.to_be_bytes());
        p.extend_from_slice(&self.pcap.ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        self.out.push(p);
        self.seq = self.seq.wrapping_add(1);
        self.slot += 1;
    }

    fn silence(&mut self) {
        let frame = [self.pcap.law.silence(); FRAME as usize];
        let marker = std::mem::take(&mut self.talkspurt);
        let ts = self.timestamp();
        self.push(self.pcap.audio_payload_type(), marker, ts, &frame);
    }

    fn tone(&mut self, low: f32, high: f32, first_sample: u32) {
        let peak = DBM0_PEAK * 10f32.powf(TONE_DBM0 / 20.0);
        let law = self.pcap.law;
        let mut frame = [0u8; FRAME as usize];
        for (i, code) in frame.iter_mut().enumerate() {
            // Exact in f32: sample numbers stay far below 2^24.
            let n = (first_sample as f32) + i as f32;
            let t = n / 8000.0;
            let x = peak * ((2.0 * PI * low * t).sin() + (2.0 * PI * high * t).sin());
            // |x| ≤ 2 × 7218: within i16.
            *code = law.encode(x as i16);
        }
        let marker = std::mem::take(&mut self.talkspurt);
        let ts = self.timestamp();
        self.push(self.pcap.audio_payload_type(), marker, ts, &frame);
    }

    /// RFC 4733 §2.3 event block; volume 10 (−10 dBm0).
    fn event(&mut self, pt: u8, key: Key, start: u32, duration: u32, end: bool, marker: bool) {
        let d = u16::try_from(duration).unwrap_or(u16::MAX).to_be_bytes();
        let block = [
            key.event_code(),
            if end { 0x80 } else { 0 } | 10,
            d[0],
            d[1],
        ];
        self.push(pt, marker, start, &block);
    }
}

/// RFC 1071 Internet checksum.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
#[path = "pcap_tests.rs"]
mod tests;
