//! One call's RTP session (RFC 3550), sans-IO.
//!
//! * Sending: one packet every `ptime` at absolute deadlines
//!   (`start + n·ptime`, never "last send + ptime", so there is no drift);
//!   our SSRC; sequence numbers and timestamps continue across prompts and
//!   silence; timestamps count samples, never the wall clock (§5.1); the
//!   marker bit starts each talkspurt (RFC 3551 §4.1); between prompts the
//!   call sends silence frames, which trunks and SBCs want to see.
//! * Symmetric RTP (RFC 4961; latching as in RFC 7362 §4), strict: send to
//!   the SDP address until a plausible source has sent a run of packets in
//!   sequence, then to it; nobody else's packets are read ([`SourceLatch`],
//!   against RTP injection).
//! * Receiving: the negotiated audio payload type goes to G.711 decoding
//!   and the in-band detector (if the policy runs it), the negotiated
//!   telephone-event type to the RFC 4733 receiver, SIP INFO keys are fed
//!   in by the SIP layer; all three merge into one stream of [`KeyEvent`]s.
//! * RTCP (port + 1) is received and tolerated; a sender report with an
//!   SDES CNAME (§6.4.1, §6.5.1) goes out every `rtcp_interval`.
//! * No RTP from the caller for `inactivity_timeout` (default 30 s):
//!   [`MediaEvent::Inactive`], once. `close` sends a final report + BYE.
//!
//! ```text
//!   handle_input(now, Rtp|Rtcp|Info) ─┐            ┌─► poll_transmit() → Transmit
//!   handle_timeout(now) ──────────────┼─ session ──┼─► poll_event()    → MediaEvent
//!   play(prompt) / stop_playback() ───┘            └─► poll_timeout()  → next deadline
//! ```

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

use super::dtmf::Key;
use super::dtmf::inband::InbandDetector;
use super::dtmf::merge::{InbandMode, KeyEvent, KeyMerger, Source};
use super::dtmf::rfc4733::{EventHeader, EventReceiver};
use super::g711::Law;
use super::playout::{PlayId, Playout, Prompt};
use super::rtcp;
use super::source::{Admission, Header, PacketKind, RejectCounts, SourceLatch};
use crate::net::IpNet;

/// The audio codec negotiated in SDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioCodec {
    pub law: Law,
    pub payload_type: u8,
}

/// `telephone-event` as negotiated in SDP (RFC 4733 §7.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub payload_type: u8,
    pub clock_rate: u32,
}

/// What the SIP layer's offer/answer settled on, in media terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaParams {
    pub codec: AudioCodec,
    pub telephone_event: Option<TelephoneEvent>,
    /// Packet time (`a=ptime`), 20 ms by default.
    pub ptime: Duration,
    /// `c=`/`m=` address of the caller's RTP.
    pub remote_rtp: SocketAddr,
    /// `a=rtcp` if given, else RTP port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// Where the call's signalling came from: a plausible media source (a
    /// NATed phone sends from its public address, not its SDP's).
    pub signalling: Option<IpAddr>,
}

/// Per-deployment settings.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub inactivity_timeout: Duration,
    pub rtcp_interval: Duration,
    pub inband: InbandMode,
    /// RTCP CNAME (RFC 3550 §6.5.1), e.g. `mensa@host`.
    pub cname: String,
    /// Networks media may come from besides the SDP's and the signalling's
    /// address: the trunk allow-list and any media relays
    /// ([`SourceLatch`]). Empty: those two addresses only.
    pub media_sources: Arc<[IpNet]>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            inactivity_timeout: Duration::from_secs(30),
            rtcp_interval: Duration::from_secs(5),
            inband: InbandMode::Auto,
            cname: "mensa".into(),
            media_sources: Arc::from([]),
        }
    }
}

/// Random initial values (RFC 3550 §5.1) and the wall-clock anchor for
/// RTCP, chosen by the runtime (the session reads neither RNG nor clock).
#[derive(Clone, Copy, Debug)]
pub struct SessionSeed {
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    /// NTP time (RFC 3550 §4, 32.32 fixed point) at the `now` of `new`.
    pub ntp: u64,
}

/// Which socket a datagram goes out of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Rtp,
    Rtcp,
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub channel: Channel,
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
}

/// Input from the network or the SIP layer.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    Rtp {
        from: SocketAddr,
        data: &'a [u8],
    },
    Rtcp {
        from: SocketAddr,
        data: &'a [u8],
    },
    /// A key from a SIP INFO request (parsed by `crate::sip::info`).
    Info {
        key: Key,
        duration: Option<Duration>,
    },
}

/// What the session tells the IVR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    Key(KeyEvent),
    /// A queued prompt played to its end.
    PlayFinished(PlayId),
    /// No RTP from the caller for the inactivity timeout: end the call.
    Inactive,
}

/// Most frames sent in one `handle_timeout` after a stall; older deadlines
/// are skipped (their timestamps too, so the caller sees a gap, not a
/// squeeze).
const MAX_CATCH_UP: u32 = 3;
/// A sequence jump larger than this is a restart, not loss (RFC 3550 §A.1).
const MAX_DROPOUT: u16 = 100;
/// Packets at most this far behind are late; further is a restart.
const MAX_MISORDER: u16 = 100;

/// One call's RTP session. Contract: after any `handle_*`/`play`/`stop`,
/// drain `poll_transmit` and `poll_event` until `None`, then sleep until
/// `poll_timeout`; time never goes backwards; an early `handle_timeout`
/// is harmless.
pub struct RtpSession {
    params: MediaParams,
    config: SessionConfig,
    seed: SessionSeed,
    start: Instant,
    /// Origin of the frame deadlines (`grid + n·ptime`); moves only when
    /// the ptime changes.
    grid: Instant,
    frame_samples: u32,
    frames_due: u64,
    next_frame: Instant,
    sequence: Seq,
    timestamp: u32,
    in_talkspurt: bool,
    playout: Playout,
    destination: SocketAddr,
    rtcp_destination: SocketAddr,
    source: SourceLatch,
    last_rx: Instant,
    inactive_reported: bool,
    /// (SSRC, sequence number) of the last audio packet decoded.
    last_audio: Option<(u32, u16)>,
    inband: Option<InbandDetector>,
    events_in: Option<EventReceiver>,
    merger: KeyMerger,
    next_report: Instant,
    packets_sent: u32,
    octets_sent: u32,
    transmits: VecDeque<Transmit>,
    events: VecDeque<MediaEvent>,
    frame: Vec<u8>,
    decoded: Vec<i16>,
    closed: bool,
    /// False while the caller holds us (RFC 3264 §8.4): frames keep their
    /// clock but are not sent.
    sending: bool,
    /// False while the stream is inactive or sendonly on our side: no
    /// inactivity timeout (nothing is expected).
    receiving: bool,
}

impl RtpSession {
    pub fn new(
        now: Instant,
        params: MediaParams,
        config: SessionConfig,
        seed: SessionSeed,
    ) -> Self {
        let ptime_ms = params.ptime.as_millis().clamp(10, 120) as u32;
        let frame_samples = 8 * ptime_ms;
        let inband = config
            .inband
            .active(params.telephone_event.is_some())
            .then(InbandDetector::new);
        let events_in = params
            .telephone_event
            .map(|te| EventReceiver::new(te.clock_rate));
        let rtcp_destination = params.remote_rtcp.unwrap_or_else(|| {
            let mut a = params.remote_rtp;
            a.set_port(a.port().wrapping_add(1));
            a
        });
        RtpSession {
            destination: params.remote_rtp,
            rtcp_destination,
            start: now,
            grid: now,
            frame_samples,
            frames_due: 0,
            next_frame: now,
            sequence: Seq::from(seed.sequence),
            timestamp: seed.timestamp,
            in_talkspurt: false,
            playout: Playout::new(),
            source: SourceLatch::new(
                config.media_sources.clone(),
                params.remote_rtp,
                params.signalling,
            ),
            last_rx: now,
            inactive_reported: false,
            last_audio: None,
            inband,
            events_in,
            merger: KeyMerger::new(),
            next_report: now + config.rtcp_interval,
            packets_sent: 0,
            octets_sent: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            frame: vec![0; frame_samples as usize],
            decoded: Vec::with_capacity(frame_samples as usize),
            closed: false,
            sending: true,
            receiving: true,
            params,
            config,
            seed,
        }
    }

    /// Queue a prompt; it plays after those already queued.
    pub fn play(&mut self, prompt: Arc<Prompt>) -> PlayId {
        self.playout.enqueue(prompt)
    }

    /// Stop all playback at once (barge-in); the next frame is silence.
    pub fn stop_playback(&mut self) {
        self.playout.stop();
    }

    pub fn is_playing(&self) -> bool {
        self.playout.is_playing()
    }

    /// Where RTP goes now (the SDP address until latched).
    pub fn destination(&self) -> SocketAddr {
        self.destination
    }

    /// The source the session latched onto, if any.
    pub fn latched_source(&self) -> Option<SocketAddr> {
        self.source.latched()
    }

    /// Packets dropped so far because they came from the wrong source.
    pub fn rejected(&self) -> RejectCounts {
        self.source.rejected()
    }

    /// A re-INVITE or UPDATE changed the stream (RFC 3264 §8): codec,
    /// payload types, ptime, address, direction. Our SSRC, sequence numbers
    /// and timestamps continue (RFC 3550 §5.1) and queued prompts keep
    /// playing. A new remote address drops the latch (the caller moved);
    /// `sending: false` is hold (§8.4): frames keep their clock, unsent;
    /// `receiving: false` suspends the inactivity timeout.
    pub fn renegotiate(
        &mut self,
        now: Instant,
        params: MediaParams,
        sending: bool,
        receiving: bool,
    ) {
        if params.remote_rtp != self.params.remote_rtp {
            self.source.renegotiated(params.remote_rtp);
            self.destination = params.remote_rtp;
            self.rtcp_destination = params.remote_rtcp.unwrap_or_else(|| {
                let mut a = params.remote_rtp;
                a.set_port(a.port().wrapping_add(1));
                a
            });
        }
        if params.telephone_event != self.params.telephone_event {
            self.events_in = params
                .telephone_event
                .map(|te| EventReceiver::new(te.clock_rate));
        }
        let inband = self.config.inband.active(params.telephone_event.is_some());
        match (inband, self.inband.is_some()) {
            (true, false) => self.inband = Some(InbandDetector::new()),
            (false, true) => self.inband = None,
            (true, true) | (false, false) => {}
        }
        if params.ptime != self.params.ptime {
            // The new grid starts at the next frame's deadline.
            let ptime_ms = params.ptime.as_millis().clamp(10, 120) as u32;
            self.frame_samples = 8 * ptime_ms;
            self.frame.resize(self.frame_samples as usize, 0);
            self.grid = self.next_frame;
            self.frames_due = 0;
        }
        if self.params.codec != params.codec {
            self.last_audio = None;
        }
        self.params = params;
        if receiving && !self.receiving {
            self.last_rx = now;
            self.inactive_reported = false;
        }
        self.sending = sending;
        self.receiving = receiving;
        if !sending {
            self.in_talkspurt = false;
        }
    }

    /// The call is over: send a last report with an RTCP BYE (RFC 3550
    /// §6.6) and stop; the session then sends nothing and has no timeout.
    pub fn close(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.send_report(now);
        if let Some(last) = self.transmits.back_mut() {
            last.payload.extend_from_slice(&rtcp::bye(self.seed.ssrc));
        }
        self.playout.stop();
        self.closed = true;
    }

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Rtp { from, data } => self.handle_rtp(now, from, data),
            // RFC 3550 §6: received and tolerated; RTCP from the latched
            // host (on whatever port) is where our reports go.
            Input::Rtcp { from, data } => {
                if rtcp::looks_like_rtcp(data) && self.source.accepts_rtcp_from(from) {
                    self.rtcp_destination = from;
                }
            }
            Input::Info { key, duration } => {
                self.merger.handle_info(now, key, duration);
                self.drain_keys();
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        // Frames at absolute deadlines, with a bounded catch-up.
        let mut sent = 0;
        while self.next_frame <= now {
            if sent < MAX_CATCH_UP {
                self.send_frame();
                sent += 1;
            } else {
                // Skipped: time still moves on for the receiver.
                self.timestamp = self.timestamp.wrapping_add(self.frame_samples);
                self.in_talkspurt = false;
            }
            self.frames_due += 1;
            self.next_frame = self.grid + self.params.ptime * self.frames_due as u32;
        }
        if now >= self.next_report {
            self.send_report(now);
            while self.next_report <= now {
                self.next_report += self.config.rtcp_interval;
            }
        }
        if let Some(rx) = &mut self.events_in {
            rx.handle_timeout(now);
        }
        self.drain_keys();
        if !self.receiving {
            self.last_rx = now;
        }
        if !self.inactive_reported && now >= self.last_rx + self.config.inactivity_timeout {
            self.inactive_reported = true;
            self.events.push_back(MediaEvent::Inactive);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let mut t = self.next_frame.min(self.next_report);
        if !self.inactive_reported && self.receiving {
            t = t.min(self.last_rx + self.config.inactivity_timeout);
        }
        if let Some(e) = self
            .events_in
            .as_ref()
            .and_then(EventReceiver::poll_timeout)
        {
            t = t.min(e);
        }
        Some(t)
    }

    fn send_frame(&mut self) {
        let law = self.params.codec.law;
        let filled = self.playout.fill(law, &mut self.frame);
        for id in filled.finished {
            self.events.push_back(MediaEvent::PlayFinished(id));
        }
        if !self.sending {
            self.timestamp = self.timestamp.wrapping_add(self.frame_samples);
            return;
        }
        // RFC 3551 §4.1: marker on the first packet of a talkspurt.
        let marker = filled.audio && !self.in_talkspurt;
        self.in_talkspurt = filled.audio;
        let packet = RtpPacketBuilder::new()
            .payload_type(self.params.codec.payload_type & 0x7F)
            .ssrc(self.seed.ssrc)
            .sequence(self.sequence)
            .timestamp(self.timestamp)
            .marked(marker)
            .payload(&self.frame)
            .build();
        self.sequence = self.sequence.next();
        self.timestamp = self.timestamp.wrapping_add(self.frame_samples);
        match packet {
            Ok(payload) => {
                self.packets_sent = self.packets_sent.wrapping_add(1);
                self.octets_sent = self.octets_sent.wrapping_add(self.frame.len() as u32);
                self.transmits.push_back(Transmit {
                    channel: Channel::Rtp,
                    destination: self.destination,
                    payload,
                });
            }
            Err(e) => tracing::warn!(?e, "RTP packet not built"),
        }
    }

    fn send_report(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        let ntp = self.seed.ntp.wrapping_add(rtcp::duration_to_ntp(elapsed));
        // The RTP time of `now` on our sample clock (§6.4.1).
        let rtp_ts = self
            .seed
            .timestamp
            .wrapping_add((elapsed.as_micros() as u64 * 8 / 1000) as u32);
        let payload = rtcp::sender_report(
            self.seed.ssrc,
            ntp,
            rtp_ts,
            self.packets_sent,
            self.octets_sent,
            &self.config.cname,
        );
        self.transmits.push_back(Transmit {
            channel: Channel::Rtcp,
            destination: self.rtcp_destination,
            payload,
        });
    }

    fn handle_rtp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        // Before the header is read: a sprayer costs one comparison.
        if !self.source.plausible(from.ip()) {
            self.source.admit_implausible();
            return;
        }
        let Ok(rtp) = RtpReader::new(data) else {
            tracing::debug!(%from, len = data.len(), "not RTP, dropped");
            return;
        };
        let header = Header {
            ssrc: rtp.ssrc(),
            sequence: u16::from(rtp.sequence_number()),
            kind: self.kind_of(rtp.payload_type()),
        };
        match self.source.admit(now, from, header, data) {
            Admission::Accept => self.handle_stream(now, data),
            Admission::Latched { held } => {
                self.latch(from);
                for packet in &held {
                    self.handle_stream(now, packet);
                }
                self.handle_stream(now, data);
            }
            Admission::Held | Admission::Rejected(_) => {}
        }
    }

    fn kind_of(&self, payload_type: u8) -> PacketKind {
        if payload_type == self.params.codec.payload_type {
            PacketKind::Audio
        } else if self
            .params
            .telephone_event
            .is_some_and(|te| te.payload_type == payload_type)
        {
            PacketKind::Event
        } else {
            PacketKind::Other
        }
    }

    /// A packet of the latched source: audio to the in-band detector,
    /// telephone-events to the RFC 4733 receiver, anything else (comfort
    /// noise, a payload type not negotiated) only keeps the call alive
    /// (RFC 3551 §3).
    fn handle_stream(&mut self, now: Instant, data: &[u8]) {
        let Ok(rtp) = RtpReader::new(data) else {
            return;
        };
        self.last_rx = now;
        self.inactive_reported = false;
        match self.kind_of(rtp.payload_type()) {
            PacketKind::Audio => self.handle_audio(
                now,
                rtp.ssrc(),
                u16::from(rtp.sequence_number()),
                rtp.payload(),
            ),
            PacketKind::Event => {
                if let Some(rx) = &mut self.events_in {
                    let h = EventHeader {
                        ssrc: rtp.ssrc(),
                        timestamp: rtp.timestamp(),
                        marker: rtp.mark(),
                    };
                    rx.handle_packet(now, h, rtp.payload());
                }
            }
            PacketKind::Other => return,
        }
        self.drain_keys();
    }

    /// Our RTP and RTCP go where the latched source sends from.
    fn latch(&mut self, from: SocketAddr) {
        self.destination = from;
        let mut rtcp = from;
        rtcp.set_port(from.port().wrapping_add(1));
        self.rtcp_destination = rtcp;
        self.last_audio = None;
    }

    fn handle_audio(&mut self, now: Instant, ssrc: u32, seq: u16, payload: &[u8]) {
        let Some(det) = &mut self.inband else { return };
        // RFC 3550 §A.1: a new SSRC or a big jump is a new sequence space;
        // a packet slightly behind is late (the detector has moved on).
        if let Some((last_ssrc, last)) = self.last_audio
            && last_ssrc == ssrc
        {
            let d = seq.wrapping_sub(last);
            let behind = 0u16.wrapping_sub(d);
            if d == 0 || (d >= 0x8000 && behind <= MAX_MISORDER) {
                return;
            }
            if d > 1 && d <= MAX_DROPOUT {
                // Lost packets: neither tone nor silence for the detector.
                det.handle_lost(usize::from(d - 1) * payload.len());
            }
        }
        self.last_audio = Some((ssrc, seq));
        self.decoded.resize(payload.len(), 0);
        self.params
            .codec
            .law
            .decode_into(payload, &mut self.decoded);
        det.handle_samples(now, &self.decoded);
    }

    fn drain_keys(&mut self) {
        if let Some(det) = &mut self.inband {
            while let Some(e) = det.poll_event() {
                self.merger.handle(e_time(&e), Source::Inband, e);
            }
        }
        if let Some(rx) = &mut self.events_in {
            while let Some(e) = rx.poll_event() {
                self.merger.handle(e_time(&e), Source::TelephoneEvent, e);
            }
        }
        while let Some(k) = self.merger.poll_event() {
            self.events.push_back(MediaEvent::Key(k));
        }
    }
}

/// The latest instant an event speaks of (for the merger's bookkeeping).
fn e_time(e: &super::dtmf::DigitEvent) -> Instant {
    match *e {
        super::dtmf::DigitEvent::Begin { at, .. } => at,
        super::dtmf::DigitEvent::End {
            begin, duration, ..
        } => begin + duration,
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
