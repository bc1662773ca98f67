//! RFC 4733 telephone-event receiver (DTMF events 0–15 of §3.2), at any
//! negotiated payload type and clock rate.
//!
//! An event is identified by (SSRC, start timestamp, event code) (§2.5.1.1:
//! all packets of an event carry its start timestamp). From that:
//!
//! ```text
//!            first block of an unseen event                 E bit (§2.5.1.4)
//!   Idle ─────────────────────────────────────► Active ──────────────────► Idle
//!            (Begin)                             │  new event, new SSRC,   (End)
//!                                                │  or no packet for
//!                                                └─ `end_timeout`: End with the
//!                                                   last duration (§2.5.2.3)
//! ```
//!
//! * The marker bit is never required (it is lost with the first packet).
//! * Ended events are remembered, so retransmitted ends, late updates and
//!   duplicates never make a second digit; blocks older (wrap-safe) than the
//!   newest event of the stream are dropped.
//! * Long events (§2.5.1.3) arrive as segments whose timestamp moves on by
//!   0xFFFF: they continue the same digit, their durations add up. Legacy
//!   senders that let the 16-bit duration wrap on one timestamp are
//!   followed too.
//! * Several blocks in one payload (§2.5.1.5) are consecutive events: each
//!   starts where the previous one's duration ends.
//! * Unknown event codes are ignored; a payload shorter than one block is
//!   ignored.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{DigitEvent, Key};

/// Default time after the last packet of an event without an end bit
/// before it is considered ended.
pub const DEFAULT_END_TIMEOUT: Duration = Duration::from_millis(500);
const REMEMBERED: usize = 16;

/// One 4-octet event block (RFC 4733 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventBlock {
    pub code: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

/// The event blocks of a telephone-event payload; a trailing partial block
/// is ignored (peer input never panics).
pub fn parse_blocks(payload: &[u8]) -> impl Iterator<Item = EventBlock> + '_ {
    payload.chunks_exact(4).map(|b| EventBlock {
        code: b[0],
        end: b[1] & 0x80 != 0,
        volume: b[1] & 0x3F,
        duration: u16::from_be_bytes([b[2], b[3]]),
    })
}

/// The RTP header fields the receiver needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    pub ssrc: u32,
    pub timestamp: u32,
    pub marker: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    ssrc: u32,
    start: u32,
    code: u8,
}

struct Active {
    id: Identity,
    key: Key,
    begin: Instant,
    /// Start timestamp of the current segment (§2.5.1.3).
    segment_start: u32,
    /// Units of the completed segments and duration wraps.
    base: u64,
    last_duration: u16,
    last_seen: Instant,
}

impl Active {
    fn units(&self) -> u64 {
        self.base + u64::from(self.last_duration)
    }
}

/// Sans-IO RFC 4733 receiver for one call.
///
/// Contract: feed every packet of the negotiated telephone-event payload
/// type to [`handle_packet`](Self::handle_packet); call
/// [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout); drain
/// [`poll_event`](Self::poll_event) after each. Time never goes backwards.
pub struct EventReceiver {
    clock_rate: u32,
    end_timeout: Duration,
    current: Option<Active>,
    ended: VecDeque<Identity>,
    /// (SSRC, start) of the newest event seen: older blocks are stale.
    newest: Option<(u32, u32)>,
    events: VecDeque<DigitEvent>,
}

impl EventReceiver {
    /// `clock_rate` is the negotiated rate of telephone-event (8000, 16000…).
    pub fn new(clock_rate: u32) -> Self {
        EventReceiver {
            clock_rate: clock_rate.max(1),
            end_timeout: DEFAULT_END_TIMEOUT,
            current: None,
            ended: VecDeque::with_capacity(REMEMBERED),
            newest: None,
            events: VecDeque::new(),
        }
    }

    pub fn with_end_timeout(mut self, timeout: Duration) -> Self {
        self.end_timeout = timeout;
        self
    }

    /// One telephone-event packet: header fields and payload.
    pub fn handle_packet(&mut self, now: Instant, header: EventHeader, payload: &[u8]) {
        let mut start = header.timestamp;
        for block in parse_blocks(payload) {
            self.handle_block(now, header.ssrc, start, block);
            // §2.5.1.5: packed events are contiguous.
            start = start.wrapping_add(u32::from(block.duration));
        }
    }

    /// Close an event whose end never came.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(a) = &self.current
            && now >= a.last_seen + self.end_timeout
        {
            self.finish();
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current
            .as_ref()
            .map(|a| a.last_seen + self.end_timeout)
    }

    pub fn poll_event(&mut self) -> Option<DigitEvent> {
        self.events.pop_front()
    }

    fn handle_block(&mut self, now: Instant, ssrc: u32, start: u32, block: EventBlock) {
        let id = Identity {
            ssrc,
            start,
            code: block.code,
        };
        // §2.5.1.4: the end is sent three times; late updates may follow it
        // (checked first: a straggler from an old SSRC must not end the
        // new stream's event).
        if self.ended.contains(&id) {
            return;
        }
        match self.newest {
            // RFC 3550 §8.2: a new SSRC is a new stream (re-INVITE, failover).
            Some((s, _)) if s != ssrc => {
                self.finish();
                self.newest = None;
            }
            // §2.5.2.3: a block of an event older than the newest is late.
            Some((_, newest)) if is_before(start, newest) => return,
            Some(_) | None => {}
        }
        // §3.2: only the 16 DTMF events are keys; others are ignored.
        let Some(key) = Key::from_event_code(block.code) else {
            return;
        };
        let slack = self.clock_rate / 5;
        let same = self.current.as_ref().map(|a| {
            let since = start.wrapping_sub(a.segment_start);
            let segment = a.id.ssrc == ssrc
                && a.id.code == block.code
                && since != 0
                && (since == 0xFFFF
                    || (u32::from(a.last_duration) + slack >= 0xFFFF && since <= 0xFFFF + slack));
            (
                a.id == id || a.segment_start == start && a.id.code == block.code,
                segment,
            )
        });
        match same {
            Some((true, _)) => self.update(now, block),
            // §2.5.1.3: the next segment of a long event.
            Some((false, true)) => {
                if let Some(a) = &mut self.current {
                    a.base += u64::from(start.wrapping_sub(a.segment_start));
                    a.segment_start = start;
                    a.last_duration = 0;
                }
                self.newest = Some((ssrc, start));
                self.update(now, block);
            }
            // §2.5.2.3: a new event ends the previous one, end bit or not.
            Some((false, false)) | None => {
                self.finish();
                let back = self.units_to_duration(u64::from(block.duration));
                self.current = Some(Active {
                    id,
                    key,
                    begin: now.checked_sub(back).unwrap_or(now),
                    segment_start: start,
                    base: 0,
                    last_duration: block.duration,
                    last_seen: now,
                });
                self.newest = Some((ssrc, start));
                let begin = self.current.as_ref().map_or(now, |a| a.begin);
                self.events.push_back(DigitEvent::Begin { key, at: begin });
                if block.end {
                    self.finish();
                }
            }
        }
    }

    fn update(&mut self, now: Instant, block: EventBlock) {
        let Some(a) = &mut self.current else { return };
        a.last_seen = now;
        if block.duration >= a.last_duration {
            a.last_duration = block.duration;
        } else if a.last_duration - block.duration > 0x8000 {
            // Legacy RFC 2833 senders wrap the duration on the same timestamp.
            a.base += 0x1_0000;
            a.last_duration = block.duration;
        }
        // Else: a reordered, shorter update; keep the longest.
        if block.end {
            self.finish();
        }
    }

    /// Report the current event as ended and remember it.
    fn finish(&mut self) {
        let Some(a) = self.current.take() else { return };
        if self.ended.len() == REMEMBERED {
            self.ended.pop_front();
        }
        self.ended.push_back(a.id);
        if a.segment_start != a.id.start {
            // Later packets carry the segment's timestamp.
            if self.ended.len() == REMEMBERED {
                self.ended.pop_front();
            }
            self.ended.push_back(Identity {
                start: a.segment_start,
                ..a.id
            });
        }
        let duration = self.units_to_duration(a.units());
        self.events.push_back(DigitEvent::End {
            key: a.key,
            begin: a.begin,
            duration,
        });
    }

    fn units_to_duration(&self, units: u64) -> Duration {
        Duration::from_nanos(units.saturating_mul(1_000_000_000) / u64::from(self.clock_rate))
    }
}

/// RFC 3550 §A.1-style wrap-safe "a is before b" for 32-bit timestamps.
pub fn is_before(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

#[cfg(test)]
#[path = "rfc4733_tests.rs"]
mod tests;
