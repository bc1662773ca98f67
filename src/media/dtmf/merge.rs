//! One stream of key presses per call from three sources (conformance
//! part D).
//!
//! Policy, as professional IVRs do it: when telephone-event is negotiated,
//! in-band detection is off (phones that send events often leak the tone
//! into the audio too) unless configured `Always`; SIP INFO is always
//! accepted. Whatever is active, a press seen by several sources is
//! reported once: a report from another source for the same key whose
//! time span overlaps a press already reported (within a small slack, more
//! for INFO which rides the signalling path) is the same press.
//!
//! ```text
//!  source Begin ──► overlaps a press of another source? ── yes ─► attach (silent)
//!                                  │ no
//!                                  ▼
//!                            new press: Down ──► first End of any of its sources: Pressed
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{DigitEvent, Key};

/// Where a key report came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// RFC 4733 telephone-event packets.
    TelephoneEvent,
    /// Tones in the audio.
    Inband,
    /// SIP INFO bodies.
    Info,
}

impl Source {
    /// The label of the `mensa_dtmf_keys_total{source}` metric.
    pub fn label(self) -> &'static str {
        match self {
            Source::TelephoneEvent => "rfc4733",
            Source::Inband => "inband",
            Source::Info => "sip_info",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Source::TelephoneEvent => 1,
            Source::Inband => 2,
            Source::Info => 4,
        }
    }
}

/// When to run the in-band detector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InbandMode {
    /// Only when telephone-event was not negotiated (the default).
    #[default]
    Auto,
    /// Always, alongside telephone-events.
    Always,
    /// Never.
    Never,
}

impl InbandMode {
    /// Whether in-band detection runs on a call.
    pub fn active(self, telephone_event_negotiated: bool) -> bool {
        match self {
            InbandMode::Auto => !telephone_event_negotiated,
            InbandMode::Always => true,
            InbandMode::Never => false,
        }
    }
}

/// A key press as the IVR sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEvent {
    /// A key went down: stop the prompt (barge-in).
    Down { key: Key, at: Instant },
    /// A key was pressed (and released): count it.
    Pressed {
        key: Key,
        begin: Instant,
        duration: Duration,
        /// The path that heard the press first (the metric counts it there).
        source: Source,
    },
}

/// Slack between two media-path reports (RTP events vs tones) of a press.
const MEDIA_SLACK: Duration = Duration::from_millis(40);
/// Slack for INFO, which rides SIP and may come well before or after.
const INFO_SLACK: Duration = Duration::from_millis(300);
/// Span assumed for an INFO press without `Duration=`.
const INFO_DEFAULT: Duration = Duration::from_millis(100);
const FORGET_AFTER: Duration = Duration::from_secs(2);

struct Press {
    key: Key,
    /// The source that opened the press.
    first: Source,
    sources: u8,
    /// Sources that reported the end.
    ended: u8,
    begin: Instant,
    end: Option<Instant>,
    reported: bool,
}

/// Merges the DTMF sources of one call. Feed each source's events with
/// [`handle`](Self::handle) (INFO with [`handle_info`](Self::handle_info)),
/// then drain [`poll_event`](Self::poll_event).
#[derive(Default)]
pub struct KeyMerger {
    presses: VecDeque<Press>,
    events: VecDeque<KeyEvent>,
}

impl KeyMerger {
    pub fn new() -> Self {
        Self::default()
    }

    /// An event from the RFC 4733 receiver or the in-band detector.
    pub fn handle(&mut self, now: Instant, source: Source, event: DigitEvent) {
        self.forget(now);
        match event {
            DigitEvent::Begin { key, at } => {
                if self.attach(source, key, at, at).is_none() {
                    self.open(source, key, at);
                }
            }
            DigitEvent::End {
                key,
                begin,
                duration,
            } => {
                let end = begin + duration;
                // The press this source began, else another source's.
                let bit = source.bit();
                let own = self
                    .presses
                    .iter()
                    .rposition(|p| p.key == key && p.sources & bit != 0 && p.ended & bit == 0);
                let idx = match own.or_else(|| self.attach(source, key, begin, end)) {
                    Some(i) => i,
                    None => self.open(source, key, begin),
                };
                self.close(idx, source, end, duration);
            }
        }
    }

    /// A key from a SIP INFO request received at `now`.
    pub fn handle_info(&mut self, now: Instant, key: Key, duration: Option<Duration>) {
        let d = duration.unwrap_or(INFO_DEFAULT);
        let begin = now.checked_sub(d).unwrap_or(now);
        self.handle(
            now,
            Source::Info,
            DigitEvent::End {
                key,
                begin,
                duration: d,
            },
        );
    }

    pub fn poll_event(&mut self) -> Option<KeyEvent> {
        self.events.pop_front()
    }

    /// Attach a report spanning `begin..=end` to an overlapping press of
    /// the same key from another source; its index.
    fn attach(&mut self, source: Source, key: Key, begin: Instant, end: Instant) -> Option<usize> {
        let idx = self.presses.iter().rposition(|p| {
            let slack = if source == Source::Info || p.sources & Source::Info.bit() != 0 {
                INFO_SLACK
            } else {
                MEDIA_SLACK
            };
            let p_end = p.end.unwrap_or(end.max(p.begin));
            p.key == key
                && p.sources & source.bit() == 0
                && begin <= p_end + slack
                && p.begin <= end + slack
        })?;
        self.presses[idx].sources |= source.bit();
        Some(idx)
    }

    fn open(&mut self, source: Source, key: Key, at: Instant) -> usize {
        self.presses.push_back(Press {
            key,
            first: source,
            sources: source.bit(),
            ended: 0,
            begin: at,
            end: None,
            reported: false,
        });
        self.events.push_back(KeyEvent::Down { key, at });
        self.presses.len() - 1
    }

    fn close(&mut self, idx: usize, source: Source, end: Instant, duration: Duration) {
        let Some(p) = self.presses.get_mut(idx) else {
            return;
        };
        p.ended |= source.bit();
        if p.reported {
            return;
        }
        p.reported = true;
        p.end = Some(end.max(p.begin));
        self.events.push_back(KeyEvent::Pressed {
            key: p.key,
            begin: p.begin,
            duration,
            source: p.first,
        });
    }

    fn forget(&mut self, now: Instant) {
        while let Some(p) = self.presses.front() {
            match p.end {
                Some(end) if end + FORGET_AFTER < now => {
                    self.presses.pop_front();
                }
                Some(_) | None => break,
            }
        }
    }
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
