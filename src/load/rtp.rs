//! The caller's RTP (RFC 3550): packets it sends (G.711 frames, RFC 4733
//! events, in-band DTMF tones precomputed once), and what it measures of
//! the server's stream (spacing, lateness, loss from sequence numbers,
//! speech or silence).

use std::time::{Duration, Instant};

use super::stats::MediaStats;
use crate::media::dtmf::Key;
use crate::media::g711::Law;

/// 20 ms at 8 kHz.
pub const FRAME_SAMPLES: u32 = 160;
pub const FRAME: Duration = Duration::from_millis(20);
/// How long a key is held, and the pause after it.
pub const KEY_ON: Duration = Duration::from_millis(100);
pub const KEY_OFF: Duration = Duration::from_millis(100);

/// A decoded sample above this (about −42 dBm0) is speech, not silence.
const SPEECH_LEVEL: i16 = 256;

/// An RTP header (version 2, no CSRC, no extension) and payload.
pub fn packet(
    out: &mut Vec<u8>,
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) {
    out.clear();
    out.reserve(12 + payload.len());
    out.push(0x80);
    out.push(pt | if marker { 0x80 } else { 0 });
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The fields of a received packet we use; `None` if it is not RTP.
pub struct Header<'a> {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub payload: &'a [u8],
}

pub fn parse(data: &[u8]) -> Option<Header<'_>> {
    // rtp-rs, as the server's session reads RTP: version, CSRCs, the
    // header extension and padding are checked there.
    let packet = rtp_rs::RtpReader::new(data).ok()?;
    Some(Header {
        payload_type: packet.payload_type(),
        seq: u16::from(packet.sequence_number()),
        timestamp: packet.timestamp(),
        payload: packet.payload(),
    })
}

/// Whether a G.711 frame carries speech.
pub fn is_speech(law: Law, payload: &[u8]) -> bool {
    payload
        .iter()
        .any(|&c| law.decode(c).unsigned_abs() > SPEECH_LEVEL as u16)
}

/// The in-band tones of every key, as five 20 ms frames per law (ITU-T
/// Q.23 pairs at −10 dBm0 each), built once per run.
pub struct ToneFrames {
    frames: Vec<[Vec<u8>; 2]>,
}

impl ToneFrames {
    pub fn new() -> ToneFrames {
        const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
        const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
        let keys = "123A456B789C*0#D";
        let amp = 22_826.0 * 10f32.powf(-10.0 / 20.0);
        let n = (KEY_ON.as_millis() as usize) * 8;
        let frames = (0..16u8)
            .map(|code| {
                let c = Key::from_event_code(code).map(Key::as_char).unwrap_or('0');
                let at = keys.find(c).unwrap_or(13);
                let (f1, f2) = (ROWS[at / 4], COLS[at % 4]);
                let samples: Vec<i16> = (0..n)
                    .map(|i| {
                        let t = i as f32 / 8000.0;
                        (amp * ((std::f32::consts::TAU * f1 * t).sin()
                            + (std::f32::consts::TAU * f2 * t).sin()))
                            as i16
                    })
                    .collect();
                let enc = |law: Law| samples.iter().map(|&s| law.encode(s)).collect();
                [enc(Law::ALaw), enc(Law::MuLaw)]
            })
            .collect();
        ToneFrames { frames }
    }

    /// Frame `i` (0..5) of `key`'s tone in `law`.
    pub fn frame(&self, key: Key, law: Law, i: usize) -> &[u8] {
        let all =
            &self.frames[usize::from(key.event_code()).min(15)][usize::from(law == Law::MuLaw)];
        let at = (i * FRAME_SAMPLES as usize).min(all.len() - FRAME_SAMPLES as usize);
        &all[at..at + FRAME_SAMPLES as usize]
    }
}

impl Default for ToneFrames {
    fn default() -> Self {
        Self::new()
    }
}

/// One received stream, as measured.
#[derive(Debug, Clone, Default)]
pub struct Receiver {
    started: bool,
    base_seq: u64,
    highest: u64,
    received: u64,
    last_arrival: Option<Instant>,
    /// min over packets of (arrival − timestamp time), the stream's zero.
    origin: Option<Instant>,
    first_ts: u32,
}

impl Receiver {
    /// Records a packet of the audio payload type.
    pub fn record(&mut self, now: Instant, seq: u16, ts: u32, stats: &mut MediaStats) {
        stats.packets += 1;
        if !self.started {
            self.started = true;
            self.base_seq = u64::from(seq);
            self.highest = u64::from(seq);
            self.received = 1;
            self.first_ts = ts;
            self.last_arrival = Some(now);
            self.origin = Some(now);
            stats.lateness.record(0);
            return;
        }
        // Extend the 16-bit sequence number (RFC 3550 Appendix A.1).
        let cycle = self.highest & !0xffff;
        let mut ext = cycle | u64::from(seq);
        if ext + 0x8000 < self.highest {
            ext += 0x1_0000;
        } else if ext > self.highest + 0x8000 && ext >= 0x1_0000 {
            ext -= 0x1_0000;
        }
        if ext > self.highest {
            self.highest = ext;
            self.received += 1;
        } else {
            stats.duplicates_or_reordered += 1;
            return;
        }
        if let Some(last) = self.last_arrival {
            let gap = now.saturating_duration_since(last);
            stats.spacing.record_duration(gap);
            stats
                .jitter
                .record(gap.as_micros().abs_diff(FRAME.as_micros()) as u64);
        }
        self.last_arrival = Some(now);
        // Lateness against the RTP clock: when the timestamp says the
        // frame is due, from the earliest-arriving frame on.
        let media_time =
            Duration::from_micros(u64::from(ts.wrapping_sub(self.first_ts)) * 1000 / 8);
        let zero = now.checked_sub(media_time).unwrap_or(now);
        let origin = match self.origin {
            Some(o) if o <= zero => o,
            _ => zero,
        };
        self.origin = Some(origin);
        stats
            .lateness
            .record_duration(zero.saturating_duration_since(origin));
    }

    /// (expected, lost) at the end of the call.
    pub fn finish(&self) -> (u64, u64) {
        if !self.started {
            return (0, 0);
        }
        let expected = self.highest - self.base_seq + 1;
        (expected, expected.saturating_sub(self.received))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_spacing() {
        let t0 = Instant::now();
        let mut stats = MediaStats::default();
        let mut r = Receiver::default();
        for (i, seq) in [65534u16, 65535, 0, 2, 3].iter().enumerate() {
            let ts = 160 * u32::from(seq.wrapping_sub(65534));
            r.record(t0 + FRAME * (i as u32), *seq, ts, &mut stats);
        }
        r.record(t0 + FRAME * 6, 3, 0, &mut stats);
        assert_eq!(r.finish(), (6, 1));
        assert_eq!(stats.duplicates_or_reordered, 1);
        assert_eq!(stats.spacing.quantile(0.5), Some(20_000));
        // The packet with seq 2 came 20 ms after seq 0, its clock says 40:
        // it was early, the origin moves, nothing is late by more than 20 ms.
        assert!(stats.lateness.summary().unwrap().max_ms <= 20.0);
    }

    #[test]
    fn rtp_round_trip_and_speech() {
        let mut out = Vec::new();
        packet(&mut out, 8, true, 7, 320, 0xABCD, &[0xD5; 160]);
        let h = parse(&out).unwrap();
        assert_eq!(
            (h.payload_type, h.seq, h.timestamp, h.payload.len()),
            (8, 7, 320, 160)
        );
        assert!(!is_speech(Law::ALaw, h.payload));
        let tones = ToneFrames::new();
        let one = tones.frame(Key::from_char('1').unwrap(), Law::ALaw, 0);
        assert_eq!(one.len(), 160);
        assert!(is_speech(Law::ALaw, one));
        assert!(parse(&[0x80, 8]).is_none());
    }
}
