//! One simulated caller, sans-IO: a SIP UAC over UDP (RFC 3261 §17.1) for
//! one INVITE dialog, its 20 ms RTP stream, its keys, and its script.
//!
//! ```text
//!  new ──INVITE──► Calling ──1xx──► Proceeding ──2xx/ACK──► Confirmed ──script──► Terminating ──200──► Done
//!                   │ Timer A: INVITE again (T1, 2·T1, …)        │ server BYE: 200 OK        │ Timer E: BYE again
//!                   │ Timer B / setup timeout: Done(failed)      ▼                           │ Timer F: Done(failed)
//!                   └─ 3xx–6xx: ACK (§17.1.1.3), Done(failed)  Done
//! ```
//!
//! Contract (as every protocol object of the crate): the driver calls
//! [`LoadCall::handle_input`] or [`LoadCall::handle_timeout`], then drains
//! [`LoadCall::poll_transmit`] and [`LoadCall::poll_event`] until `None`
//! and re-arms its timer at [`LoadCall::poll_timeout`]. Time never goes
//! backwards; an early `handle_timeout` is harmless. Received RTP is
//! measured into a [`MediaStats`] the driver passes in: per-packet events
//! would cost more than the measurement itself at 250,000 packets/s.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::rtp::{self, FRAME, FRAME_SAMPLES, Receiver, ToneFrames};
use super::script::{Callers, Guesses, QUIET_LIMIT, Script, Step};
use super::stats::{FailReason, MediaStats};
use crate::media::dtmf::Key;
use crate::media::g711::Law;
use crate::sip::headers::HeaderName;
use crate::sip::message::{Message, Request, Response};
use crate::sip::print::ResponseBuilder;
use crate::sip::sdp::{Codec, SessionDescription, negotiate_answer};

/// RFC 3261 §17.1.1.1: T1, the RTT estimate; T2, the cap of non-INVITE
/// retransmission intervals.
pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);

/// How keys travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    /// RFC 4733 telephone-events in the RTP stream.
    Rfc4733,
    /// DTMF tone pairs in the G.711 audio.
    InBand,
}

/// What every call of a run shares.
pub struct CallConfig {
    pub target: SocketAddr,
    pub local_sip: SocketAddr,
    pub local_rtp: SocketAddr,
    /// The number called (Request-URI user).
    pub number: String,
    pub keys: KeyMode,
    /// Stream 20 ms frames for the whole call (else RTP only for keys).
    pub audio: bool,
    /// INVITE without a final answer this long fails (Timer B is 64·T1).
    pub setup_timeout: Duration,
    pub script: Script,
    pub tones: ToneFrames,
    /// Tells calls of different runs apart in Call-IDs.
    pub run_id: u32,
    /// The caller number of each call.
    pub callers: Callers,
    /// What `{guess}` types.
    pub guesses: Guesses,
}

/// Which socket a datagram leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Sip,
    Rtp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub channel: Channel,
    pub to: SocketAddr,
    pub payload: Vec<u8>,
}

/// What the driver feeds a call.
pub enum Input<'a> {
    Sip(&'a Message),
    /// A datagram from the call's remote RTP address, and when the kernel
    /// received it (at most `now`): spacing and lateness are measured on it.
    Rtp {
        data: &'a [u8],
        arrived: Instant,
    },
    /// The SIP socket reported the target unreachable.
    TransportError,
}

/// How a call ended, with what it counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub result: Result<(), FailReason>,
    pub answered: bool,
    pub pressed_1: bool,
    pub code: Option<String>,
    pub retransmissions_sent: u64,
    pub retransmissions_seen: u64,
    pub keys_sent: u64,
    /// Codes typed (`{code}` and `{guess}`), counted when their keys
    /// began: how far the call got before it ended.
    pub codes_typed: u32,
    pub rtp_sent: u64,
    pub rtp_expected: u64,
    pub rtp_lost: u64,
    /// 20 ms frames not sent because the driver was more than 60 ms late
    /// (the generator, not the server, fell behind).
    pub frames_skipped: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// 2xx to the INVITE; RTP from `remote_rtp` belongs to this call now.
    Answered {
        setup: Duration,
        remote_rtp: SocketAddr,
    },
    PromptToKey(Duration),
    KeyToPrompt(Duration),
    Ended(Ended),
}

enum Sip {
    /// §17.1.1.2: Timer A retransmits, Timer B (our setup timeout) ends.
    Calling {
        next: Instant,
        interval: Duration,
        give_up: Instant,
    },
    /// A provisional answer stops retransmissions; we still give up.
    Proceeding {
        give_up: Instant,
    },
    /// ACK sent; kept to answer a retransmitted 2xx (§13.2.2.4).
    Confirmed {
        ack: Vec<u8>,
    },
    /// Our BYE, a non-INVITE client transaction (§17.1.2.2: Timers E, F).
    Terminating {
        bye: Vec<u8>,
        next: Instant,
        interval: Duration,
        give_up: Instant,
    },
    Done,
}

/// The key being pressed: which, and how many 20 ms ticks since it began.
struct Pressing {
    keys: Vec<Key>,
    index: usize,
    tick: u32,
    event_ts: u32,
}

pub struct LoadCall {
    config: Arc<CallConfig>,
    sip: Sip,
    call_id: String,
    from: String,
    to: String,
    remote_target: String,
    branch: String,
    invite_sent: Instant,
    code: Option<String>,
    /// The call's index in its run (for its guesses).
    n: u64,
    // Media.
    law: Law,
    audio_pt: u8,
    event_pt: Option<u8>,
    remote_rtp: Option<SocketAddr>,
    ssrc: u32,
    seq: u16,
    media_start: Instant,
    next_frame: Option<Instant>,
    receiver: Receiver,
    // Script.
    step: usize,
    step_started: Instant,
    pressing: Option<Pressing>,
    last_speech: Option<Instant>,
    last_onset: Option<Instant>,
    last_key_end: Option<Instant>,
    /// `{guess}`es typed so far.
    guesses_typed: u32,
    // Counters and queues.
    ended: Ended,
    transmits: VecDeque<Transmit>,
    events: VecDeque<CallEvent>,
}

impl LoadCall {
    /// A call numbered `n` of its run, placed now (the INVITE is queued).
    pub fn new(config: Arc<CallConfig>, n: u64, code: Option<String>, now: Instant) -> LoadCall {
        let call_id = format!("load-{:08x}-{n}@mensa", config.run_id);
        let caller = config.callers.number(n);
        let host = config.local_sip.ip();
        let from = format!("<sip:{caller}@{host}>;tag=l{n:x}");
        let to = format!("<sip:{}@{}>", config.number, config.target);
        let remote_target = format!("sip:{}@{}", config.number, config.target);
        let branch = format!("z9hG4bK-{:x}-{n:x}", config.run_id);
        let mut call = LoadCall {
            sip: Sip::Calling {
                next: now + T1,
                interval: T1,
                give_up: now + config.setup_timeout,
            },
            call_id,
            from,
            to,
            remote_target,
            branch,
            invite_sent: now,
            code,
            n,
            law: Law::ALaw,
            audio_pt: 8,
            event_pt: None,
            remote_rtp: None,
            ssrc: (config.run_id ^ (n as u32).wrapping_mul(0x9E37_79B9)) | 1,
            seq: (n as u16).wrapping_mul(7919),
            media_start: now,
            next_frame: None,
            receiver: Receiver::default(),
            step: 0,
            step_started: now,
            pressing: None,
            last_speech: None,
            last_onset: None,
            last_key_end: None,
            guesses_typed: 0,
            ended: Ended {
                result: Err(FailReason::Unfinished),
                answered: false,
                pressed_1: false,
                code: None,
                retransmissions_sent: 0,
                retransmissions_seen: 0,
                keys_sent: 0,
                codes_typed: 0,
                rtp_sent: 0,
                rtp_expected: 0,
                rtp_lost: 0,
                frames_skipped: 0,
            },
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            config,
        };
        let invite = call.invite();
        call.send_sip(invite);
        call
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn is_done(&self) -> bool {
        matches!(self.sip, Sip::Done)
    }

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>, stats: &mut MediaStats) {
        match input {
            Input::Sip(Message::Response(r)) => self.on_response(now, r),
            Input::Sip(Message::Request(r)) => self.on_request(now, r),
            Input::Rtp { data, arrived } => self.on_rtp(now, arrived.min(now), data, stats),
            Input::TransportError => match self.sip {
                Sip::Calling { .. } => self.end(Err(FailReason::Transport)),
                Sip::Proceeding { .. }
                | Sip::Confirmed { .. }
                | Sip::Terminating { .. }
                | Sip::Done => {}
            },
        }
    }

    /// Ends a call still up when the run stops.
    pub fn abandon(&mut self) {
        if !self.is_done() {
            self.end(Err(FailReason::Unfinished));
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        // SIP timers.
        match &mut self.sip {
            Sip::Calling {
                next,
                interval,
                give_up,
            } => {
                if now >= *give_up {
                    // RFC 3261 §17.1.1.2, Timer B: the transaction times out.
                    return self.end(Err(FailReason::SetupTimeout));
                }
                if now >= *next {
                    // §17.1.1.2, Timer A: retransmit, doubling the interval.
                    *interval *= 2;
                    *next = now + *interval;
                    self.ended.retransmissions_sent += 1;
                    let invite = self.invite();
                    self.send_sip(invite);
                }
            }
            Sip::Proceeding { give_up } => {
                if now >= *give_up {
                    return self.end(Err(FailReason::SetupTimeout));
                }
            }
            Sip::Terminating {
                bye,
                next,
                interval,
                give_up,
            } => {
                if now >= *give_up {
                    // §17.1.2.2, Timer F.
                    return self.end(Err(FailReason::ByeTimeout));
                }
                if now >= *next {
                    // §17.1.2.2, Timer E: min(2·interval, T2).
                    *interval = (*interval * 2).min(T2);
                    *next = now + *interval;
                    let bye = bye.clone();
                    self.ended.retransmissions_sent += 1;
                    self.send_sip(bye);
                }
                return;
            }
            Sip::Confirmed { .. } => {}
            Sip::Done => return,
        }
        if !matches!(self.sip, Sip::Confirmed { .. }) {
            return;
        }
        // Media ticks, possibly several if the driver was late; past three
        // frames late, skip to the latest (as a phone whose CPU stalled),
        // rather than burst, and count it against the generator.
        while let Some(at) = self.next_frame.filter(|at| *at <= now) {
            let behind = now.saturating_duration_since(at);
            if behind > FRAME * 3 {
                let skip = (behind.as_micros() / FRAME.as_micros()) as u32;
                self.ended.frames_skipped += u64::from(skip);
                self.next_frame = Some(at + FRAME * skip);
                continue;
            }
            self.media_tick(at);
        }
        self.run_script(now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.sip {
            Sip::Calling { next, give_up, .. } => Some((*next).min(*give_up)),
            Sip::Proceeding { give_up } => Some(*give_up),
            Sip::Terminating { next, give_up, .. } => Some((*next).min(*give_up)),
            Sip::Done => None,
            Sip::Confirmed { .. } => {
                let script = self.script_deadline();
                match (self.next_frame, script) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }
}

// SIP.
impl LoadCall {
    fn invite(&self) -> Vec<u8> {
        let c = &self.config;
        // A phone that sends its keys in-band offers no telephone-event
        // (else a server would rightly expect RFC 4733 and may not listen
        // to the audio for tones).
        let (formats, event) = match c.keys {
            KeyMode::Rfc4733 => (
                "8 0 101",
                "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
            ),
            KeyMode::InBand => ("8 0", ""),
        };
        let sdp = format!(
            "v=0\r\no=- {ssrc} 1 IN IP4 {ip}\r\ns=mensa load\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {formats}\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:0 PCMU/8000\r\n{event}a=ptime:20\r\na=sendrecv\r\n",
            ssrc = self.ssrc,
            ip = c.local_rtp.ip(),
            port = c.local_rtp.port(),
        );
        format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:load@{me}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            uri = format_args!("sip:{}@{}", c.number, c.target),
            me = c.local_sip,
            branch = self.branch,
            from = self.from,
            to = self.to,
            call_id = self.call_id,
            len = sdp.len(),
        )
        .into_bytes()
    }

    fn request(&self, method: &str, uri: &str, branch: &str, cseq: u32) -> Vec<u8> {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            me = self.config.local_sip,
            from = self.from,
            to = self.to,
            call_id = self.call_id,
        )
        .into_bytes()
    }

    fn send_sip(&mut self, payload: Vec<u8>) {
        self.transmits.push_back(Transmit {
            channel: Channel::Sip,
            to: self.config.target,
            payload,
        });
    }

    fn on_response(&mut self, now: Instant, r: &Response) {
        match (r.cseq.method.as_str(), &self.sip) {
            ("INVITE", Sip::Calling { .. } | Sip::Proceeding { .. }) => match r.status {
                100..=199 => {
                    // §17.1.1.2: a provisional response stops Timer A.
                    let give_up = self.invite_sent + self.config.setup_timeout;
                    self.sip = Sip::Proceeding { give_up };
                }
                200..=299 => self.on_answer(now, r),
                status => {
                    // §17.1.1.3: ACK a final error in the same transaction.
                    if let Some(to) = r.headers.first(&HeaderName::To) {
                        self.to = to.to_owned();
                    }
                    let ack = self.request("ACK", &self.remote_target.clone(), &self.branch, 1);
                    self.send_sip(ack);
                    self.end(Err(match status {
                        503 => FailReason::Unavailable,
                        s => FailReason::Rejected(s),
                    }));
                }
            },
            ("INVITE", Sip::Confirmed { ack }) => {
                // §13.2.2.4: a retransmitted 2xx gets the same ACK again.
                if (200..300).contains(&r.status) {
                    self.ended.retransmissions_seen += 1;
                    let ack = ack.clone();
                    self.send_sip(ack);
                }
            }
            ("BYE", Sip::Terminating { .. }) => match r.status {
                100..=199 => {}
                200..=299 => self.end(Ok(())),
                s => self.end(Err(FailReason::ByeRejected(s))),
            },
            (_, Sip::Terminating { .. } | Sip::Confirmed { .. }) => {
                self.ended.retransmissions_seen += 1;
            }
            (_, Sip::Calling { .. } | Sip::Proceeding { .. } | Sip::Done) => {}
        }
    }

    fn on_answer(&mut self, now: Instant, r: &Response) {
        if let Some(to) = r.headers.first(&HeaderName::To) {
            self.to = to.to_owned();
        }
        if let Some(contact) = r.headers.first(&HeaderName::Contact) {
            let uri = contact
                .split_once('<')
                .and_then(|(_, rest)| rest.split_once('>'))
                .map_or(contact, |(uri, _)| uri);
            self.remote_target = uri.trim().to_owned();
        }
        // §13.2.2.4: the ACK of a 2xx is its own transaction.
        let ack = self.request(
            "ACK",
            &self.remote_target.clone(),
            &format!("{}-ack", self.branch),
            1,
        );
        self.send_sip(ack.clone());
        self.sip = Sip::Confirmed { ack };
        self.ended.answered = true;
        let negotiated = SessionDescription::parse(&r.body)
            .ok()
            .and_then(|sdp| negotiate_answer(&sdp).ok());
        let Some(n) = negotiated else {
            return self.hang_up(now, Some(FailReason::BadAnswer));
        };
        self.law = match n.codec {
            Codec::Pcma => Law::ALaw,
            Codec::Pcmu => Law::MuLaw,
        };
        self.audio_pt = n.codec_payload_type;
        self.event_pt = n.telephone_event.map(|(pt, _)| pt);
        self.remote_rtp = Some(n.remote_rtp);
        self.media_start = now;
        if self.config.audio || self.config.keys == KeyMode::InBand {
            self.next_frame = Some(now);
        }
        self.step = 0;
        self.step_started = now;
        self.events.push_back(CallEvent::Answered {
            setup: now - self.invite_sent,
            remote_rtp: n.remote_rtp,
        });
        self.run_script(now);
    }

    fn on_request(&mut self, now: Instant, r: &Request) {
        let ok = ResponseBuilder::new(&r.head, 200, None).to_bytes();
        match (r.method.as_str(), &self.sip) {
            ("BYE", Sip::Confirmed { .. }) => {
                self.send_sip(ok);
                let result = match self.script_step() {
                    Some(Step::AwaitBye { .. }) | None => Ok(()),
                    Some(_) => Err(FailReason::ServerHangUp),
                };
                self.end(result);
            }
            ("BYE", Sip::Terminating { .. }) => {
                // Both hung up at once: each BYE is answered 200.
                self.send_sip(ok);
                self.end(Ok(()));
            }
            ("BYE", Sip::Done) => {
                self.ended.retransmissions_seen += 1;
                self.send_sip(ok);
            }
            (_, _) => {
                let _ = now;
            }
        }
    }

    /// Sends our BYE (§15.1.1); `why` fails the call once the BYE is done.
    fn hang_up(&mut self, now: Instant, why: Option<FailReason>) {
        let bye = self.request(
            "BYE",
            &self.remote_target.clone(),
            &format!("{}-bye", self.branch),
            2,
        );
        self.send_sip(bye.clone());
        self.next_frame = None;
        self.pressing = None;
        if let Some(why) = why {
            self.ended.result = Err(why);
        }
        self.sip = Sip::Terminating {
            bye,
            next: now + T1,
            interval: T1,
            give_up: now + T1 * 64,
        };
    }

    fn end(&mut self, result: Result<(), FailReason>) {
        // A failure recorded before the BYE (no prompt, bad SDP) wins.
        let result = match (&self.ended.result, result) {
            (Err(FailReason::Unfinished), r) | (Ok(()), r) => r,
            (Err(earlier), Ok(())) => Err(earlier.clone()),
            (Err(_), Err(now)) => Err(now),
        };
        self.sip = Sip::Done;
        self.next_frame = None;
        let (expected, lost) = self.receiver.finish();
        let mut ended = self.ended.clone();
        ended.result = result;
        ended.rtp_expected = expected;
        ended.rtp_lost = lost;
        ended.code = self.code.clone();
        self.ended = ended.clone();
        self.events.push_back(CallEvent::Ended(ended));
    }
}

// Media and script.
impl LoadCall {
    fn on_rtp(&mut self, now: Instant, arrived: Instant, data: &[u8], stats: &mut MediaStats) {
        if !matches!(self.sip, Sip::Confirmed { .. } | Sip::Terminating { .. }) {
            return;
        }
        let Some(h) = rtp::parse(data) else { return };
        if h.payload_type != self.audio_pt {
            return;
        }
        self.receiver.record(arrived, h.seq, h.timestamp, stats);
        if self.config.script.listens() && rtp::is_speech(self.law, h.payload) {
            self.last_speech = Some(now);
            if matches!(self.script_step(), Some(Step::Speech { .. })) {
                self.last_onset = Some(now);
                if let Some(key_end) = self.last_key_end.take() {
                    self.events.push_back(CallEvent::KeyToPrompt(
                        now.saturating_duration_since(key_end),
                    ));
                }
                self.next_step(now);
            }
        }
    }

    fn script_step(&self) -> Option<&Step> {
        self.config.script.steps.get(self.step)
    }

    fn next_step(&mut self, now: Instant) {
        self.step += 1;
        self.step_started = now;
        self.run_script(now);
    }

    /// When the current step may end by itself.
    fn script_deadline(&self) -> Option<Instant> {
        let start = self.step_started;
        match self.script_step()? {
            Step::Speech { timeout } => Some(start + *timeout),
            Step::Quiet { silence } => Some(
                (self.last_speech.map_or(start, |s| s.max(start)) + *silence)
                    .min(start + QUIET_LIMIT),
            ),
            Step::Wait(d) => Some(start + *d),
            Step::AwaitBye { timeout } => Some(start + *timeout),
            // Driven by the media ticks.
            Step::Keys(_) => None,
            Step::Bye => Some(start),
        }
    }

    fn run_script(&mut self, now: Instant) {
        if !matches!(self.sip, Sip::Confirmed { .. }) {
            return;
        }
        let Some(step) = self.script_step().cloned() else {
            return self.hang_up(now, None);
        };
        let start = self.step_started;
        match step {
            Step::Speech { timeout } => {
                if now >= start + timeout {
                    self.hang_up(now, Some(FailReason::NoPrompt));
                }
            }
            Step::Quiet { silence } => {
                let quiet_since = self.last_speech.map_or(start, |s| s.max(start));
                if now >= quiet_since + silence {
                    self.next_step(now);
                } else if now >= start + QUIET_LIMIT {
                    self.hang_up(now, Some(FailReason::PromptNeverEnded));
                }
            }
            Step::Wait(d) => {
                if now >= start + d {
                    self.next_step(now);
                }
            }
            Step::Keys(keys) => {
                if self.pressing.is_none() {
                    let code = self.code.clone().unwrap_or_default();
                    let typed = keys.replace("{code}", &code);
                    // Each {guess} is the next guess of this call.
                    let per_call = self.config.script.guesses_per_call();
                    let mut parts = typed.split("{guess}");
                    let mut typed = parts.next().unwrap_or_default().to_string();
                    for rest in parts {
                        let k = u64::from(self.guesses_typed);
                        let seed = u64::from(self.config.run_id);
                        typed.push_str(&self.config.guesses.guess(seed, self.n, k, per_call));
                        typed.push_str(rest);
                        self.guesses_typed += 1;
                    }
                    let codes = keys.matches("{code}").count() + keys.matches("{guess}").count();
                    self.ended.codes_typed = self
                        .ended
                        .codes_typed
                        .saturating_add(u32::try_from(codes).unwrap_or(u32::MAX));
                    let keys: Vec<Key> = typed.chars().filter_map(Key::from_char).collect();
                    if let Some(onset) = self.last_onset {
                        self.events.push_back(CallEvent::PromptToKey(
                            now.saturating_duration_since(onset),
                        ));
                    }
                    if keys.is_empty() {
                        return self.next_step(now);
                    }
                    if self.code.is_some()
                        && self.config.script.cancels()
                        && keys.iter().any(|k| k.as_char() == '1')
                    {
                        self.ended.pressed_1 = true;
                    }
                    self.pressing = Some(Pressing {
                        keys,
                        index: 0,
                        tick: 0,
                        event_ts: 0,
                    });
                    // Keys go out on the 20 ms grid, from the next tick.
                    if self.next_frame.is_none() {
                        let since = now.saturating_duration_since(self.media_start);
                        let ticks = since.as_micros().div_ceil(FRAME.as_micros()) as u32;
                        self.next_frame = Some(self.media_start + FRAME * ticks);
                    }
                }
            }
            Step::Bye => self.hang_up(now, None),
            Step::AwaitBye { timeout } => {
                if now >= start + timeout {
                    self.hang_up(now, Some(FailReason::NoServerBye));
                }
            }
        }
    }

    /// One 20 ms tick at `at`: an audio frame and/or an event packet.
    fn media_tick(&mut self, at: Instant) {
        let Some(to) = self.remote_rtp else {
            self.next_frame = None;
            return;
        };
        let since = at.saturating_duration_since(self.media_start);
        let frame_no = (since.as_micros() / FRAME.as_micros()) as u32;
        let ts = frame_no.wrapping_mul(FRAME_SAMPLES).wrapping_add(self.ssrc);
        self.next_frame = Some(self.media_start + FRAME * (frame_no + 1));
        let mode = self.config.keys;
        let mut tone: Option<(Key, usize)> = None;
        let mut event: Option<(Key, bool, u16, u32, bool)> = None;
        let mut finished_keys = false;
        if let Some(p) = &mut self.pressing {
            if p.tick == 0 {
                p.event_ts = ts;
                self.ended.keys_sent += 1;
            }
            let key = p.keys[p.index];
            let on_ticks = (rtp::KEY_ON.as_millis() / FRAME.as_millis()) as u32;
            let period = on_ticks + (rtp::KEY_OFF.as_millis() / FRAME.as_millis()) as u32;
            if p.tick < on_ticks {
                tone = Some((key, p.tick as usize));
                event = Some((
                    key,
                    false,
                    ((p.tick + 1) * FRAME_SAMPLES) as u16,
                    p.event_ts,
                    p.tick == 0,
                ));
            } else if p.tick < on_ticks + 3 {
                // RFC 4733 §2.5.1.4: the end packet, sent three times.
                event = Some((
                    key,
                    true,
                    (on_ticks * FRAME_SAMPLES) as u16,
                    p.event_ts,
                    false,
                ));
            }
            if p.tick + 1 == on_ticks {
                self.last_key_end = Some(at + FRAME);
            }
            p.tick += 1;
            if p.tick >= period || (p.index + 1 == p.keys.len() && p.tick >= on_ticks + 3) {
                p.index += 1;
                p.tick = 0;
                finished_keys = p.index >= p.keys.len();
            }
        }
        if self.config.audio || mode == KeyMode::InBand {
            let payload: &[u8] = match (mode, tone) {
                (KeyMode::InBand, Some((key, i))) => self.config.tones.frame(key, self.law, i),
                _ => &SILENCE[usize::from(self.law == Law::MuLaw)],
            };
            let mut out = Vec::new();
            rtp::packet(
                &mut out,
                self.audio_pt,
                frame_no == 0,
                self.seq,
                ts,
                self.ssrc,
                payload,
            );
            self.seq = self.seq.wrapping_add(1);
            self.send_rtp(to, out);
        }
        if let (KeyMode::Rfc4733, Some((key, end, duration, event_ts, marker)), Some(pt)) =
            (mode, event, self.event_pt)
        {
            // RFC 4733 §2.3: event, E bit and volume (10 = −10 dBm0), duration.
            let block = [
                key.event_code(),
                if end { 0x80 | 10 } else { 10 },
                (duration >> 8) as u8,
                duration as u8,
            ];
            let mut out = Vec::new();
            rtp::packet(&mut out, pt, marker, self.seq, event_ts, self.ssrc, &block);
            self.seq = self.seq.wrapping_add(1);
            self.send_rtp(to, out);
        }
        if finished_keys {
            self.pressing = None;
            if !(self.config.audio || mode == KeyMode::InBand) {
                self.next_frame = None;
            }
            self.next_step(at);
        }
    }

    fn send_rtp(&mut self, to: SocketAddr, payload: Vec<u8>) {
        self.ended.rtp_sent += 1;
        self.transmits.push_back(Transmit {
            channel: Channel::Rtp,
            to,
            payload,
        });
    }
}

static SILENCE: [[u8; 160]; 2] = [[0xD5; 160], [0xFF; 160]];

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
