//! The trunk-facing UAS (RFC 3261 §8.2, §12-§15, RFC 4028, RFC 3581): fed
//! datagrams, it answers what a UAS must answer by itself and hands calls
//! to the call layer as [`Event`]s; the call layer answers with commands.
//!
//! ```text
//!             handle_input(now, Datagram) / handle_timeout(now)
//!                              │
//!   parse ─► access ─► transaction match (§17.2.3) ─► checks (§8.2.1-§8.2.3)
//!                              │                            │
//!                      retransmission:              out of dialog: INVITE,
//!                      last response again          OPTIONS, CANCEL, 405/501
//!                                                   in dialog: dialog_in.rs
//!   poll_transmit() ◄── responses, 2xx and BYE retransmissions
//!   poll_event()    ◄── IncomingCall, CallEstablished, MediaChanged, Dtmf, CallEnded
//!   answer / reject / hang_up (commands from the call layer)
//! ```
//!
//! Contract: after any `handle_*` or command, drain `poll_transmit` and
//! `poll_event` until `None`, then sleep until `poll_timeout`; `now` never
//! goes backwards; an early `handle_timeout` is harmless. Nothing a peer
//! sends panics or grows state without a timer that removes it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::config::{EndpointConfig, IpNet, Unauthorized};
use super::dialog::{CallId, Dialog, DialogState, Retransmit, SessionTimer};
use super::headers::HeaderName;
use super::limits::{Dropped, RatePerSource, SourceCounts, TokenBucket};
use super::message::{
    self, Framing, Message, Method, ParseError, Parsed, ReplyHead, Request, Response,
};
use super::print::ResponseBuilder;
use super::sdp::{LocalSession, Negotiated};
use super::tables::TransactionTable;
use super::transaction::{Matched, ServerTransaction, TransactionEvent, TransactionKey};
use super::transport::{Transmit, Transport, response_destination, stamp_top_via};
use super::uri::Uri;
use crate::bookings::PhoneNumber;

/// Methods we implement (RFC 3261 §20.5 Allow).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE";
/// Bodies we read (§20.1 Accept).
pub const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf";
/// Option tags we support (§20.37; RFC 4028 `timer`).
pub const SUPPORTED: &str = "timer";

/// Bytes from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// One UDP datagram, or one message the runtime framed off a TCP stream
    /// (with [`message::parse`] in stream mode).
    Datagram {
        transport: Transport,
        source: SocketAddr,
        bytes: &'a [u8],
    },
}

/// What the call layer hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A call to a routed number; answer with [`Endpoint::answer`] or
    /// refuse with [`Endpoint::reject`]. `media` is `None` for a late offer
    /// (INVITE without SDP): it comes with `CallEstablished`.
    IncomingCall {
        call: CallId,
        called: String,
        dialplan: String,
        caller: Option<PhoneNumber>,
        media: Option<Negotiated>,
        /// Where the INVITE came from: its host is a plausible source of
        /// the call's media (`media::source`).
        source: SocketAddr,
        /// The allow-list entry `source` matched: the trunk it came through.
        trunk: IpNet,
    },
    /// The ACK arrived: media may flow.
    CallEstablished { call: CallId, media: Negotiated },
    /// A re-INVITE or UPDATE changed the stream (hold, codec, address).
    MediaChanged { call: CallId, media: Negotiated },
    /// A key from a SIP INFO.
    Dtmf {
        call: CallId,
        key: char,
        duration_ms: Option<u32>,
    },
    /// The call is over; no more events for it.
    CallEnded { call: CallId, reason: EndReason },
    /// An INVITE refused before any call existed, for the operators'
    /// counters: its status and [`RefusedBecause`].
    CallRefused { status: u16, reason: RefusedBecause },
}

/// Why an INVITE got a final refusal from the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedBecause {
    /// 503: the node is draining for a shutdown.
    Draining,
    /// 503: the node sheds load (`Endpoint::set_overloaded`), or carries
    /// the calls it learned it can (`Endpoint::set_call_limit`).
    Overloaded,
    /// 503: `max_concurrent_calls` calls are up.
    Capacity,
    /// 503: more than `max_calls_per_second` INVITEs in the last second.
    Rate,
    /// 503: the source has its `max_calls_per_source` calls up.
    SourceCapacity,
    /// 503: the source sent more than `max_calls_per_second_per_source`.
    SourceRate,
    /// 404: no route for the number called.
    NoRoute,
    /// Anything else about the request itself: its body, its offer, its
    /// session timer (415, 406, 488, 422).
    Request,
}

impl RefusedBecause {
    /// The metric's label.
    pub fn label(self) -> &'static str {
        match self {
            RefusedBecause::Draining => "draining",
            RefusedBecause::Overloaded => "overloaded",
            RefusedBecause::Capacity => "capacity",
            RefusedBecause::Rate => "rate",
            RefusedBecause::SourceCapacity => "source_capacity",
            RefusedBecause::SourceRate => "source_rate",
            RefusedBecause::NoRoute => "no_route",
            RefusedBecause::Request => "request",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent BYE.
    RemoteHangup,
    /// CANCEL before the answer.
    Cancelled,
    /// Our 2xx was never ACKed (§13.3.1.4); we sent BYE.
    NoAck,
    /// The ACK of a late offer carried no usable answer; we sent BYE.
    NoAnswerInAck,
    /// RFC 4028: no refresh in time; we sent BYE.
    SessionExpired,
    /// [`Endpoint::hang_up`].
    LocalHangup,
    /// [`Endpoint::reject`] with this status.
    Rejected(u16),
    /// The call layer did not answer within `answer_timeout` (480 sent).
    AnswerTimeout,
}

/// A command the endpoint cannot carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no such call")]
    UnknownCall,
    #[error("the call is not in a state for this")]
    WrongState,
    #[error("a rejection needs a status from 300 to 699")]
    BadStatus,
}

/// What a timer entry points at. Entries are hints: the object's own
/// `poll_timeout` decides, so stale entries only cause an early wake-up.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerRef {
    Transaction(TransactionKey),
    Dialog(CallId),
}

/// The sans-IO SIP endpoint. See the module doc for the contract.
#[derive(Debug)]
pub struct Endpoint {
    pub(crate) config: EndpointConfig,
    /// ChaCha12, seeded with [`EndpointConfig::seed`].
    rng: StdRng,
    pub(crate) next_call: u64,
    pub(crate) draining: bool,
    /// Shedding load (the media tickers fell behind): like draining for new calls.
    pub(crate) overloaded: bool,
    /// The calls the node learned it can carry (`media::overload::CallLimit`):
    /// past it, new calls are refused as when overloaded.
    pub(crate) call_limit: Option<usize>,
    pub(crate) transactions: TransactionTable,
    /// Dialogs (calls) per source address, in step with `dialogs`.
    pub(crate) calls_by_source: SourceCounts,
    /// New calls per second per source.
    pub(crate) invites_by_source: RatePerSource,
    /// 403s to sources not allowed; created at the first.
    forbidden: Option<TokenBucket>,
    pub(crate) dropped: Dropped,
    pub(crate) dialogs: HashMap<CallId, Dialog>,
    /// (Call-ID, our tag) → call, for in-dialog requests (§12.2.2).
    pub(crate) by_tag: HashMap<(String, String), CallId>,
    /// Initial INVITE transaction → call, for CANCEL (§9.2).
    pub(crate) by_invite: HashMap<TransactionKey, CallId>,
    /// (Call-ID, From tag, CSeq) of each call's INVITE, for merged
    /// requests (§8.2.2.2).
    pub(crate) by_origin: HashMap<(String, String, u32), CallId>,
    pub(crate) recent_invites: VecDeque<Instant>,
    /// The last INVITE checked found `max_calls_per_second` reached.
    pub(crate) over_rate: bool,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    /// Deadlines of transactions and dialogs, earliest first, so that a
    /// timeout costs O(log n) and not a scan of every call.
    timers: BinaryHeap<Reverse<(Instant, TimerRef)>>,
    /// Dialogs changed since the last reschedule.
    pub(crate) touched: Vec<CallId>,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Endpoint {
        let invite_rate = config.max_calls_per_second_per_source;
        Endpoint {
            rng: StdRng::from_seed(config.seed),
            config,
            next_call: 1,
            draining: false,
            overloaded: false,
            call_limit: None,
            transactions: TransactionTable::default(),
            calls_by_source: SourceCounts::default(),
            invites_by_source: RatePerSource::new(invite_rate),
            forbidden: None,
            dropped: Dropped::default(),
            dialogs: HashMap::new(),
            by_tag: HashMap::new(),
            by_invite: HashMap::new(),
            by_origin: HashMap::new(),
            recent_invites: VecDeque::new(),
            over_rate: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
            touched: Vec::new(),
        }
    }

    /// The sockets are bound at `local`: when the advertised port is 0
    /// (listening on port 0, as tests do), peers must be told the port
    /// actually bound, in Contact and Via, or their in-dialog requests go
    /// nowhere.
    pub fn listening_on(&mut self, local: std::net::SocketAddr) {
        if self.config.advertise.port() == 0 {
            self.config.advertise.set_port(local.port());
        }
    }

    /// Graceful shutdown: new INVITEs and OPTIONS get 503; calls go on.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// Load shedding on or off (`media::overload`): new INVITEs and
    /// OPTIONS get 503 while on; calls in progress go on.
    pub fn set_overloaded(&mut self, overloaded: bool) {
        self.overloaded = overloaded;
    }

    /// The calls the node learned it can carry after shedding load
    /// (`media::overload::CallLimit`), or `None`: at that many calls, new
    /// INVITEs and OPTIONS get 503 as when overloaded. The configured
    /// `max_concurrent_calls` still applies too.
    pub fn set_call_limit(&mut self, limit: Option<usize>) {
        self.call_limit = limit;
    }

    /// End of a graceful shutdown's grace period: every call is ended as
    /// [`Endpoint::hang_up`] would.
    pub fn hang_up_all(&mut self, now: Instant) {
        let mut calls: Vec<CallId> = self.dialogs.keys().copied().collect();
        calls.sort();
        for call in calls {
            let _ = self.hang_up(now, call);
        }
    }

    /// The trunk allow-list.
    pub fn allowed(&self) -> &[IpNet] {
        &self.config.allowed
    }

    /// The peers of calls over TCP: their connections must stay open.
    pub fn stream_peers(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.dialogs
            .values()
            .filter(|d| d.transport == Transport::Tcp)
            .map(|d| d.peer)
    }

    /// Calls not yet fully ended (including those waiting for a BYE reply).
    pub fn active_calls(&self) -> usize {
        self.dialogs.len()
    }

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.handle_datagram(now, input);
        self.reschedule_dialogs();
    }

    fn handle_datagram(&mut self, now: Instant, input: Input<'_>) {
        let Input::Datagram {
            transport,
            source,
            bytes,
        } = input;
        // The allow-list before any parsing: a scanner or a flood from
        // outside costs a comparison, and is answered (403) only within a
        // budget, so a spoofed source gets no stream of echoes.
        if !self.config.is_allowed(source.ip()) {
            self.dropped.not_allowed += 1;
            if self.config.unauthorized == Unauthorized::Forbid
                && self
                    .forbidden
                    .get_or_insert_with(|| {
                        TokenBucket::new(self.config.max_forbidden_per_second, now)
                    })
                    .take(now)
            {
                self.forbid(transport, source, bytes);
            } else {
                // debug, not info: scanners would flood the log.
                tracing::debug!(%source, "SIP from a source not allowed; dropped");
            }
            return;
        }
        let framing = match transport {
            Transport::Udp => Framing::Datagram,
            Transport::Tcp => Framing::Stream,
        };
        match message::parse(bytes, framing) {
            Ok(Parsed {
                message: Message::Request(request),
                ..
            }) => {
                self.on_request(now, transport, source, *request);
            }
            Ok(Parsed {
                message: Message::Response(response),
                ..
            }) => self.on_response(now, *response),
            // §8.2 / RFC 4475: answer a malformed request when we can, statelessly.
            Err(ParseError::Reply {
                status,
                reason,
                mut head,
                ..
            }) => {
                tracing::debug!(%source, status, reason, "malformed SIP request");
                stamp_top_via(&mut head, source);
                let to_tag = self.random_tag();
                let bytes = ResponseBuilder::new(&head, status, Some(&to_tag))
                    .reason(reason)
                    .to_bytes();
                let destination = response_destination(&head.top_via, transport, source);
                self.transmits.push_back(Transmit {
                    transport,
                    destination,
                    bytes,
                });
            }
            Err(ParseError::Drop(why)) => tracing::debug!(%source, why, "SIP message dropped"),
            Err(ParseError::Incomplete) => {
                tracing::debug!(%source, "incomplete SIP message dropped")
            }
        }
    }

    /// What was dropped or refused for a limit since the start.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// 403 to a request from a source not allowed (RFC 3261 §8.2.1 lets a
    /// UAS refuse anyone); anything else it sent is dropped.
    fn forbid(&mut self, transport: Transport, source: SocketAddr, bytes: &[u8]) {
        let framing = match transport {
            Transport::Udp => Framing::Datagram,
            Transport::Tcp => Framing::Stream,
        };
        let Ok(Parsed {
            message: Message::Request(mut request),
            ..
        }) = message::parse(bytes, framing)
        else {
            return;
        };
        if request.method == Method::Ack {
            return;
        }
        stamp_top_via(&mut request.head, source);
        let tag = self.random_tag();
        let bytes = ResponseBuilder::new(&request.head, 403, Some(&tag)).to_bytes();
        let destination = response_destination(&request.head.top_via, transport, source);
        self.dropped.forbidden += 1;
        self.transmits.push_back(Transmit {
            transport,
            destination,
            bytes,
        });
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while self
            .timers
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= now)
        {
            if let Some(Reverse((_, timer))) = self.timers.pop() {
                due.push(timer);
            }
        }
        due.sort();
        due.dedup();
        for timer in due {
            match timer {
                TimerRef::Transaction(key) => {
                    if let Some(tx) = self.transactions.get_mut(&key)
                        && tx.poll_timeout().is_some_and(|at| at <= now)
                    {
                        tx.handle_timeout(now);
                    }
                    self.drain_transaction(&key);
                }
                TimerRef::Dialog(call) => {
                    if self
                        .dialogs
                        .get(&call)
                        .and_then(Dialog::poll_timeout)
                        .is_some_and(|at| at <= now)
                    {
                        self.dialog_timeout(now, call);
                    }
                    self.touched.push(call);
                }
            }
        }
        self.reschedule_dialogs();
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Answers an offered call with `200 OK`: SDP answer (or our offer, for
    /// a late offer) with our RTP address `rtp` as the runtime chose it
    /// (the IP as the peer must reach it, never `0.0.0.0`).
    pub fn answer(
        &mut self,
        now: Instant,
        call: CallId,
        rtp: SocketAddr,
    ) -> Result<(), CommandError> {
        let result = self.answer_call(now, call, rtp);
        self.touched.push(call);
        self.reschedule_dialogs();
        result
    }

    fn answer_call(
        &mut self,
        now: Instant,
        call: CallId,
        rtp: SocketAddr,
    ) -> Result<(), CommandError> {
        let session_id = (self.random() >> 1) & 0xFFFF_FFFF;
        let transport = self
            .dialogs
            .get(&call)
            .ok_or(CommandError::UnknownCall)?
            .transport;
        let contact = self.contact(transport);
        let dialog = self
            .dialogs
            .get_mut(&call)
            .ok_or(CommandError::UnknownCall)?;
        let DialogState::Offered { .. } = dialog.state else {
            return Err(CommandError::WrongState);
        };
        let mut local = LocalSession::new(session_id, rtp);
        let body = match &dialog.offer {
            Some((offer, index, negotiated)) => local.answer(offer, *index, negotiated),
            None => local.offer(),
        };
        dialog.sdp = Some(local);
        dialog.media = dialog.offer.as_ref().map(|(_, _, n)| *n);
        let mut response = ResponseBuilder::new(&dialog.invite_head, 200, Some(&dialog.local_tag))
            .header("Contact", contact)
            .header("Allow", ALLOW)
            .header("Supported", SUPPORTED);
        if let Some(timer) = dialog.timer {
            // RFC 4028 §9: echo the interval and who refreshes.
            let value = format!("{};refresher={}", timer.interval, timer.refresher.as_str());
            response = response.header("Session-Expires", value);
            if dialog.peer_has_timer {
                response = response.header("Require", "timer");
            }
            dialog.timer = Some(SessionTimer::new(now, timer.interval, timer.refresher));
        }
        let bytes = response.body("application/sdp", body).to_bytes();
        let destination =
            response_destination(&dialog.invite_head.top_via, dialog.transport, dialog.peer);
        dialog.pending_2xx = Some(Retransmit::new(
            now,
            bytes.clone(),
            destination,
            dialog.remote_cseq,
            dialog.transport,
        ));
        dialog.state = DialogState::WaitingAck;
        let key = dialog.invite_key.clone();
        self.by_invite.remove(&key);
        self.send_on(now, &key, 200, bytes);
        Ok(())
    }

    /// Refuses an offered call with a final status (300-699).
    pub fn reject(&mut self, now: Instant, call: CallId, status: u16) -> Result<(), CommandError> {
        let result = self.reject_call(now, call, status);
        self.touched.push(call);
        self.reschedule_dialogs();
        result
    }

    fn reject_call(&mut self, now: Instant, call: CallId, status: u16) -> Result<(), CommandError> {
        if !(300..=699).contains(&status) {
            return Err(CommandError::BadStatus);
        }
        let dialog = self.dialogs.get(&call).ok_or(CommandError::UnknownCall)?;
        let DialogState::Offered { .. } = dialog.state else {
            return Err(CommandError::WrongState);
        };
        self.end_offered(now, call, status, EndReason::Rejected(status));
        Ok(())
    }

    /// Ends a call from our side: BYE once confirmed (§15.1.1), or 480
    /// before the answer. Before the ACK, the BYE waits for it (§15).
    pub fn hang_up(&mut self, now: Instant, call: CallId) -> Result<(), CommandError> {
        let result = self.hang_up_call(now, call);
        self.touched.push(call);
        self.reschedule_dialogs();
        result
    }

    fn hang_up_call(&mut self, now: Instant, call: CallId) -> Result<(), CommandError> {
        let state = self
            .dialogs
            .get(&call)
            .ok_or(CommandError::UnknownCall)?
            .state;
        match state {
            DialogState::Offered { .. } => self.end_offered(now, call, 480, EndReason::LocalHangup),
            // §15: no BYE before the ACK (or its timeout) on our 2xx.
            DialogState::WaitingAck => {
                if let Some(d) = self.dialogs.get_mut(&call)
                    && !d.hangup_pending
                {
                    d.hangup_pending = true;
                    self.events.push_back(Event::CallEnded {
                        call,
                        reason: EndReason::LocalHangup,
                    });
                }
            }
            DialogState::Confirmed => self.send_bye(now, call, Some(EndReason::LocalHangup)),
            DialogState::Terminating | DialogState::Terminated => {}
        }
        Ok(())
    }

    // ---- requests -------------------------------------------------------

    fn on_request(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        mut request: Request,
    ) {
        stamp_top_via(&mut request.head, source);
        let key = TransactionKey::of(&request);
        if let Method::Ack = request.method {
            self.on_ack(now, &request, &key);
            return;
        }
        // §17.2.3: a retransmission belongs to its transaction.
        if let Some(tx) = self.transactions.get_mut(&key) {
            let _absorbed = tx.handle_request(now, &request.method);
            self.drain_transaction(&key);
            return;
        }
        // A new transaction: within the node's budget and the source's,
        // else dropped unanswered (a 503 would open one too).
        if self.transactions.len() >= self.config.max_transactions {
            self.dropped.transactions += 1;
            tracing::debug!(%source, "transaction limit reached; request dropped");
            return;
        }
        if self.transactions.opened_by(source.ip()) >= self.config.max_transactions_per_source {
            self.dropped.source_transactions += 1;
            tracing::debug!(%source, "the source's transaction limit reached; request dropped");
            return;
        }
        let destination = response_destination(&request.head.top_via, transport, source);
        self.transactions.insert(
            key.clone(),
            ServerTransaction::new(&request.method, transport, destination),
            source.ip(),
        );
        self.on_new_request(now, &request, transport, source, &key);
    }

    /// §8.2.1-§8.2.3 checks in RFC order, then per method.
    fn on_new_request(
        &mut self,
        now: Instant,
        r: &Request,
        transport: Transport,
        source: SocketAddr,
        key: &TransactionKey,
    ) {
        let reply = |status| Some((status, Vec::<(&str, String)>::new()));
        let refusal = if let Uri::Other { .. } = r.uri {
            reply(416) // §8.2.2.1 (RFC 4475 §3.3.2)
        } else if let Method::Extension(_) = r.method {
            Some((501, vec![("Allow", ALLOW.to_owned())])) // §8.2.1
        } else if r.cseq.method != r.method.as_str() {
            reply(400) // RFC 4475 §3.1.2.17
        } else if r.max_forwards == Some(0) && r.method != Method::Options {
            // A UAS need not check Max-Forwards; we refuse loops but let
            // OPTIONS probe us (RFC 3261 §11, RFC 4475 §3.3.11).
            reply(483)
        } else {
            // §8.2.2.3: Require with tags we do not know → 420 (not CANCEL).
            let unknown: Vec<&str> = r
                .headers
                .list(&HeaderName::Require)
                .filter(|t| !t.eq_ignore_ascii_case("timer"))
                .collect();
            (!unknown.is_empty() && r.method != Method::Cancel)
                .then(|| (420, vec![("Unsupported", unknown.join(", "))]))
        };
        if let Some((status, headers)) = refusal {
            self.respond(now, key, &r.head, status, &headers);
            return;
        }
        let in_dialog = r.to.tag().is_some();
        match &r.method {
            Method::Invite if in_dialog => self.on_in_dialog(now, r, key),
            Method::Invite => self.on_invite(now, r, transport, source, key),
            Method::Options => {
                // Kamailio's dispatcher and trunks probe with OPTIONS; 503
                // tells a balancer to move on.
                let status = if self.refusing_new_calls() { 503 } else { 200 };
                let headers = [
                    ("Allow", ALLOW.to_owned()),
                    ("Accept", ACCEPT.to_owned()),
                    ("Supported", SUPPORTED.to_owned()),
                ];
                self.respond(now, key, &r.head, status, &headers);
            }
            Method::Cancel => self.on_cancel(now, r, key),
            Method::Bye | Method::Info | Method::Update if in_dialog => {
                self.on_in_dialog(now, r, key)
            }
            // §12.2.2: no dialog for a mid-dialog method.
            Method::Bye | Method::Info | Method::Update => {
                self.respond(now, key, &r.head, 481, &[])
            }
            // Known methods we do not offer (§8.2.1): 405 with Allow.
            Method::Register
            | Method::Message
            | Method::Subscribe
            | Method::Notify
            | Method::Publish
            | Method::Refer
            | Method::Prack => self.respond(now, key, &r.head, 405, &[("Allow", ALLOW.to_owned())]),
            // ACK never gets here; extensions were answered 501 above.
            Method::Ack | Method::Extension(_) => {}
        }
    }

    fn on_ack(&mut self, now: Instant, r: &Request, key: &TransactionKey) {
        // §17.2.1: the ACK of a non-2xx belongs to the INVITE transaction.
        if let Some(tx) = self.transactions.get_mut(key) {
            let matched = tx.handle_request(now, &Method::Ack);
            self.drain_transaction(key);
            if matched == Matched::Absorbed {
                return;
            }
        }
        self.on_ack_2xx(now, r);
    }

    // ---- responses ------------------------------------------------------

    /// Responses matter only to our BYE and refreshing UPDATE (§17.1.2);
    /// anything else is stray and dropped (RFC 4475 §3.1.1.12, §3.3.10:
    /// never answer a response).
    fn on_response(&mut self, now: Instant, response: Response) {
        let Some(tag) = response.from.tag() else {
            return;
        };
        let Some(call) = self
            .by_tag
            .get(&(response.call_id.clone(), tag.to_owned()))
            .copied()
        else {
            return;
        };
        self.touched.push(call);
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        let seq = response.cseq.seq;
        let ours = |r: &Option<Retransmit>| r.as_ref().is_some_and(|r| r.cseq == seq);
        match (response.cseq.method.as_str(), response.status) {
            (_, 100..=199) => {}
            ("BYE", _) if ours(&dialog.bye) => {
                dialog.bye = None;
                dialog.state = DialogState::Terminated;
                self.remove_dialog(call);
            }
            // RFC 4028 §7.4: our refresh was accepted; the 2xx may change the interval.
            ("UPDATE", 200..=299) if ours(&dialog.refresh) => {
                dialog.refresh = None;
                let interval = response
                    .headers
                    .first(&HeaderName::SessionExpires)
                    .and_then(|v| v.split(';').next())
                    .and_then(|v| v.trim().parse::<u32>().ok());
                if let Some(timer) = dialog.timer {
                    let interval = interval
                        .unwrap_or(timer.interval)
                        .clamp(self.config.min_session_expires.min(86_400), 86_400);
                    dialog.timer = Some(SessionTimer::new(now, interval, timer.refresher));
                }
            }
            // RFC 4028 §10: a refresh that fails ends the session.
            ("UPDATE", _) if ours(&dialog.refresh) => {
                self.send_bye(now, call, Some(EndReason::SessionExpired))
            }
            _ => {}
        }
    }

    // ---- helpers --------------------------------------------------------

    pub(crate) fn at_capacity(&self) -> bool {
        self.dialogs.len() >= self.config.max_concurrent_calls
    }

    /// At the limit learned by shedding load.
    pub(crate) fn at_call_limit(&self) -> bool {
        self.call_limit
            .is_some_and(|limit| self.dialogs.len() >= limit)
    }

    /// Draining, shedding load or full: a new call would get 503.
    pub(crate) fn refusing_new_calls(&self) -> bool {
        self.draining || self.overloaded || self.at_capacity() || self.at_call_limit()
    }

    /// Our Contact for a dialog on `transport` (§8.1.1.8): over TCP the
    /// peer must come back over TCP, so say so.
    pub(crate) fn contact(&self, transport: Transport) -> String {
        match transport {
            Transport::Udp => format!("<sip:{}>", self.config.advertise),
            Transport::Tcp => format!("<sip:{};transport=tcp>", self.config.advertise),
        }
    }

    /// Sends a response on the request's transaction (§17.2).
    pub(crate) fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        head: &ReplyHead,
        status: u16,
        headers: &[(&str, String)],
    ) {
        let tag = self.random_tag();
        let mut builder = ResponseBuilder::new(head, status, Some(&tag));
        for (n, v) in headers {
            builder = builder.header(n, v.clone());
        }
        self.send_on(now, key, status, builder.to_bytes());
    }

    pub(crate) fn send_on(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        status: u16,
        bytes: Vec<u8>,
    ) {
        if let Some(tx) = self.transactions.get_mut(key) {
            tx.send_response(now, status, bytes);
        }
        self.drain_transaction(key);
    }

    pub(crate) fn drain_transaction(&mut self, key: &TransactionKey) {
        let Some(tx) = self.transactions.get_mut(key) else {
            return;
        };
        while let Some(t) = tx.poll_transmit() {
            self.transmits.push_back(t);
        }
        let mut over = false;
        while let Some(e) = tx.poll_event() {
            match e {
                TransactionEvent::AckTimeout => {
                    tracing::debug!("no ACK for a final error response (Timer H)")
                }
                TransactionEvent::Terminated => over = true,
            }
        }
        let next = tx.poll_timeout();
        if over {
            self.transactions.remove(key);
            self.by_invite.remove(key);
        } else if let Some(at) = next {
            self.timers
                .push(Reverse((at, TimerRef::Transaction(key.clone()))));
        }
    }

    /// Final error response to an INVITE not yet answered; the call ends.
    pub(crate) fn end_offered(
        &mut self,
        now: Instant,
        call: CallId,
        status: u16,
        reason: EndReason,
    ) {
        self.touched.push(call);
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        dialog.state = DialogState::Terminated;
        let (key, head, tag) = (
            dialog.invite_key.clone(),
            dialog.invite_head.clone(),
            dialog.local_tag.clone(),
        );
        let bytes = ResponseBuilder::new(&head, status, Some(&tag)).to_bytes();
        self.send_on(now, &key, status, bytes);
        self.by_invite.remove(&key);
        self.remove_dialog(call);
        self.events.push_back(Event::CallEnded { call, reason });
    }

    /// Our BYE (§15.1.1); the call ends for the call layer at once
    /// (`reason`), unless it was told already (`None`).
    pub(crate) fn send_bye(&mut self, now: Instant, call: CallId, reason: Option<EndReason>) {
        let branch = format!("z9hG4bK{:016x}", self.random());
        let advertise = self.config.advertise;
        self.touched.push(call);
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        let (cseq, bytes) = dialog.bye(advertise, &branch);
        dialog.pending_2xx = None;
        dialog.timer = None;
        dialog.refresh = None;
        dialog.state = DialogState::Terminating;
        dialog.bye = Some(Retransmit::new(
            now,
            bytes.clone(),
            dialog.peer,
            cseq,
            dialog.transport,
        ));
        self.transmits.push_back(Transmit {
            transport: dialog.transport,
            destination: dialog.peer,
            bytes,
        });
        if let Some(reason) = reason {
            self.events.push_back(Event::CallEnded { call, reason });
        }
    }

    /// A dialog to change; its deadline is rescheduled after the input.
    /// Test invariant: every pending deadline has a timer entry at or before it.
    #[cfg(test)]
    pub(crate) fn timers_cover_all_deadlines(&self) -> bool {
        let covered = |at: Instant, r: &TimerRef| {
            self.timers.iter().any(|Reverse((t, x))| x == r && *t <= at)
        };
        let tx_ok = self.transactions.iter().all(|(k, t)| {
            t.poll_timeout()
                .is_none_or(|at| covered(at, &TimerRef::Transaction(k.clone())))
        });
        let dialogs_ok = self.dialogs.iter().all(|(c, d)| {
            d.poll_timeout()
                .is_none_or(|at| covered(at, &TimerRef::Dialog(*c)))
        });
        tx_ok && dialogs_ok
    }

    fn reschedule_dialogs(&mut self) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort();
        touched.dedup();
        for call in touched.drain(..) {
            if let Some(at) = self.dialogs.get(&call).and_then(Dialog::poll_timeout) {
                self.timers.push(Reverse((at, TimerRef::Dialog(call))));
            }
        }
        self.touched = touched;
    }

    pub(crate) fn remove_dialog(&mut self, call: CallId) {
        if let Some(d) = self.dialogs.remove(&call) {
            self.calls_by_source.remove(d.peer.ip());
            self.by_tag.remove(&(d.call_id, d.local_tag));
            self.by_invite.remove(&d.invite_key);
            self.by_origin.remove(&d.origin);
        }
    }

    /// From a CSPRNG: tags and branches need secrecy as well as
    /// uniqueness. A tag is what makes an ACK or a BYE belong to a dialog;
    /// one an outsider can predict (splitmix64's state can be recovered
    /// from a few tags) lets them ACK a call they could only spoof.
    pub(crate) fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// 96 bits: more than RFC 3261 §19.3's "at least 32 bits", and the tag
    /// is the only secret of a dialog on UDP.
    pub(crate) fn random_tag(&mut self) -> String {
        format!("{:016x}{:08x}", self.random(), self.random() as u32)
    }
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
