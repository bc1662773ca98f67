//! The media engine: every call's [`RtpSession`] driven by a few ticker
//! threads (one per core by default), the way SEMS and FreeSWITCH's soft
//! timer do it — not a timer task per call (issue 4, "pacing at scale").
//!
//! ```text
//!            MediaEngine::send(shard of call, MediaCommand) ──► channel + mio Waker
//!  ticker thread (one per shard):
//!    loop { commands → sessions
//!           pacer.pop_due(now + EARLY) → handle_timeout → poll_transmit → batch.send
//!           batch.flush: the tick's datagrams, all sockets, one io_uring_enter
//!           epoll (mio) until the next deadline, rounded down to the ms,
//!             then a precise sleep for the rest
//!           readable RTP/RTCP sockets → handle_input → poll_transmit/poll_event }
//!    MediaReport ──► the call layer (tokio channel)
//! ```
//!
//! Deadlines are absolute (`start + n·ptime` inside the session, served by
//! [`Pacer`]), so a late wake-up never accumulates drift. A wake-up serves
//! every deadline up to `EARLY` (0.5 ms) ahead, so tickers wake less
//! often with more packets per batch; packets leave up to that much early,
//! never late by design (docs/decisions.md). Each call is
//! pinned to one shard (by call id), so a session is only ever touched by
//! one thread and needs no lock.
//!
//! Per call the engine keeps the session, its two sockets and a short queue
//! of playback ids: a few KiB (the in-band detector is the largest part).
//!
//! Send batching: every call sends from its own socket (the port in its
//! SDP, needed for symmetric RTP through NATs), so `sendmmsg`, which
//! batches datagrams of *one* socket, cannot batch a tick. Each shard
//! hands its tick's datagrams, whatever their socket, to the kernel with
//! one `io_uring_enter` ([`super::udp_batch`]); where io_uring is not
//! available it falls back to one `send_to` per packet, chosen once at
//! start and logged (`[media] send` forces either). Either way sockets
//! are non-blocking: a full buffer drops the packet (logged at debug)
//! rather than stalling every call of the shard. The lateness the engine
//! publishes runs from a frame's deadline to its hand-over to the kernel.
//!
//! Receiving: each readable socket is read with `recvmmsg` (up to
//! [`RECV_BATCH`] datagrams per call; a short batch means the socket is
//! empty), so a lone RTP packet costs one syscall instead of a `recv_from`
//! plus the one that finds the socket empty. Readiness still comes from
//! epoll, one event per readable socket.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::mpsc;

use crate::media::dtmf::Key;
use crate::media::dtmf::merge::KeyEvent;
use crate::media::pacing::{Lateness, Pacer};
use crate::media::playout::{PlayId, Prompt};
use crate::media::session::{
    Channel, Input, MediaEvent, MediaParams, RtpSession, SessionConfig, SessionSeed,
};
use crate::media::source::RejectCounts;
use crate::sip::dialog::CallId;

use super::udp_batch::{DEFAULT_SLOTS, RECV_BATCH, RecvBatch, SendMode, SendStats, UdpBatch};

/// What the call layer asks of a call's media.
pub enum MediaCommand {
    /// Start the session on these sockets (bound by the port pool).
    Start {
        rtp: std::net::UdpSocket,
        rtcp: std::net::UdpSocket,
        params: MediaParams,
        seed: SessionSeed,
        sending: bool,
        receiving: bool,
    },
    /// A re-INVITE or UPDATE changed the stream.
    Renegotiate {
        params: MediaParams,
        sending: bool,
        receiving: bool,
    },
    /// Queue these prompts as one stream; report `PlayFinished(id)` at its
    /// end (at once when the list is empty).
    Play { id: u64, prompts: Vec<Arc<Prompt>> },
    /// Barge-in: stop now; no `PlayFinished` for what was queued.
    StopPlayback,
    /// A key from SIP INFO, merged with the media paths.
    Info {
        key: Key,
        duration: Option<Duration>,
    },
    /// The call is over: RTCP BYE, close the sockets.
    End,
}

/// What a call's media tells the call layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaReport {
    Key(KeyEvent),
    PlayFinished(u64),
    /// No RTP for the inactivity timeout: hang up.
    Inactive,
    /// After `End`: the sockets are closed, the ports may be bound again.
    Closed,
}

enum ShardCommand {
    Call(CallId, MediaCommand),
    Stop,
}

struct Shard {
    commands: std_mpsc::Sender<ShardCommand>,
    waker: Arc<Waker>,
    /// Set by `send` when it woke the ticker, cleared by the ticker just
    /// before it drains its commands: a burst of commands (a call's Start
    /// and first Play, many calls ending at once) costs one wake-up —
    /// one eventfd write and one early return from epoll — not one each.
    wake_pending: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    published: Arc<Mutex<Published>>,
}

/// A ticker's figures, copied out every `PUBLISH_EVERY`.
#[derive(Clone, Default)]
struct Published {
    lateness: Lateness,
    sends: SendStats,
    /// RTP the calls' source checks dropped, ended calls included.
    rejected: RejectCounts,
}

/// The ticker threads. Dropping it stops them.
pub struct MediaEngine {
    shards: Vec<Shard>,
    mode: SendMode,
}

/// Puts the calling ticker thread under `SCHED_FIFO` at `priority`
/// (1–99). Measured (docs/benchmarks.md, capacity): with the server, its
/// tokio workers and a load generator on two cores, a ticker woken for its
/// deadline waited for a core up to a scheduler time slice, and callers
/// heard a packet-spacing jitter p99 of 3.1 ms at 1,000 calls; at
/// real-time priority, 0.7 ms. The tickers sleep between deadlines and
/// their work is bounded by the call cap, and the kernel keeps 5 % of
/// each core for other threads (`sched_rt_runtime_us`), so SIP and the
/// IVR are not starved. Needs `CAP_SYS_NICE` or an `RLIMIT_RTPRIO`
/// (systemd: `LimitRTPRIO=`); without, the ticker stays at normal
/// priority and says so once.
fn raise_priority(ticker: usize, priority: u8) {
    use thread_priority::{
        RealtimeThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let result = ThreadPriorityValue::try_from(priority)
        .map_err(|e| format!("{e:?}"))
        .and_then(|value| {
            set_thread_priority_and_policy(
                thread_native_id(),
                ThreadPriority::Crossplatform(value),
                ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
            )
            .map_err(|e| format!("{e:?}"))
        });
    match result {
        Ok(()) if ticker == 0 => {
            tracing::info!(
                priority,
                "media tickers run at real-time priority (SCHED_FIFO)"
            );
        }
        Ok(()) => {}
        Err(error) if ticker == 0 => tracing::warn!(
            %error,
            "media tickers stay at normal priority (real-time needs CAP_SYS_NICE or RLIMIT_RTPRIO)"
        ),
        Err(_) => {}
    }
}

impl MediaEngine {
    /// Starts `tickers` threads (at least one). `reports` receives every
    /// call's events. `send`: the send path; `None` uses io_uring where the
    /// kernel allows it, else one `send_to` per packet. The choice is made
    /// once here and logged. `realtime_priority`: run the tickers under
    /// `SCHED_FIFO` at this priority (see [`raise_priority`]).
    pub fn start(
        tickers: usize,
        config: SessionConfig,
        reports: mpsc::UnboundedSender<(CallId, MediaReport)>,
        send: Option<SendMode>,
        realtime_priority: Option<u8>,
    ) -> io::Result<MediaEngine> {
        let mode = match send {
            Some(SendMode::SendTo) => {
                tracing::info!("media sends one sendto per packet (configured)");
                SendMode::SendTo
            }
            Some(SendMode::Uring) | None => SendMode::detect(),
        };
        Self::start_with(tickers, config, reports, mode, realtime_priority)
    }

    /// As [`MediaEngine::start`], with the send path chosen by the caller
    /// (`Uring` still falls back to `SendTo` if a ring cannot be set up).
    pub fn start_with(
        tickers: usize,
        config: SessionConfig,
        reports: mpsc::UnboundedSender<(CallId, MediaReport)>,
        mode: SendMode,
        realtime_priority: Option<u8>,
    ) -> io::Result<MediaEngine> {
        let mut shards = Vec::new();
        for i in 0..tickers.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = std_mpsc::channel();
            let published = Arc::new(Mutex::new(Published::default()));
            let wake_pending = Arc::new(AtomicBool::new(false));
            let pending = wake_pending.clone();
            let reports = reports.clone();
            let config = config.clone();
            let out = published.clone();
            let thread = std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || {
                    if let Some(priority) = realtime_priority {
                        raise_priority(i, priority);
                    }
                    // Built on its own thread: the batch holds raw
                    // pointers for the kernel and is not `Send`.
                    let ticker = Ticker {
                        batch: UdpBatch::new(mode, DEFAULT_SLOTS),
                        received: RecvBatch::new(),
                        poll,
                        commands: rx,
                        wake_pending: pending,
                        reports,
                        config,
                        calls: Vec::new(),
                        free: Vec::new(),
                        ended: Vec::new(),
                        by_id: HashMap::new(),
                        pacer: Pacer::new(),
                        due: Vec::new(),
                        clock: Instant::now(),
                        lateness: Lateness::default(),
                        rejected_ended: RejectCounts::default(),
                        published: out,
                    };
                    ticker.run()
                })?;
            shards.push(Shard {
                commands: tx,
                waker,
                wake_pending,
                thread: Some(thread),
                published,
            });
        }
        Ok(MediaEngine { shards, mode })
    }

    /// The send path chosen at start.
    pub fn send_mode(&self) -> SendMode {
        self.mode
    }

    /// Sends a command to the shard that owns `call`.
    pub fn send(&self, call: CallId, command: MediaCommand) {
        let n = self.shards.len() as u64;
        if let Some(shard) = self.shards.get((call.0 % n.max(1)) as usize) {
            if shard
                .commands
                .send(ShardCommand::Call(call, command))
                .is_err()
            {
                tracing::error!(call = call.0, "media ticker gone");
            }
            // SeqCst pairs with the ticker's clear-then-drain: either the
            // ticker clears the flag after this command was queued (and
            // drains it), or this swap sees the flag cleared and wakes it.
            if !shard.wake_pending.swap(true, Ordering::SeqCst)
                && let Err(e) = shard.waker.wake()
            {
                tracing::error!(error = %e, "cannot wake a media ticker");
            }
        }
    }

    /// Send lateness of every frame so far, one per ticker: from the
    /// frame's deadline to its hand-over to the kernel (after the tick's
    /// `io_uring_enter`, or its `send_to`). A copy, up to 250 ms old; for
    /// the overload guard, benchmarks and logs.
    pub fn lateness(&self) -> Vec<Lateness> {
        self.shards
            .iter()
            .map(|s| {
                s.published
                    .lock()
                    .map(|p| p.lateness.clone())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// RTP dropped by the calls' source checks so far, all tickers (up to
    /// 250 ms old).
    pub fn rejected(&self) -> RejectCounts {
        self.shards
            .iter()
            .map(|s| s.published.lock().map(|p| p.rejected).unwrap_or_default())
            .fold(RejectCounts::default(), |a, b| a.plus(b))
    }

    /// What became of the datagrams sent so far, one per ticker (a copy,
    /// up to 250 ms old).
    pub fn send_stats(&self) -> Vec<SendStats> {
        self.shards
            .iter()
            .map(|s| s.published.lock().map(|p| p.sends).unwrap_or_default())
            .collect()
    }
}

impl Drop for MediaEngine {
    fn drop(&mut self) {
        for shard in &mut self.shards {
            let _ = shard.commands.send(ShardCommand::Stop);
            let _ = shard.waker.wake();
        }
        for shard in &mut self.shards {
            if let Some(t) = shard.thread.take() {
                let _ = t.join();
            }
        }
    }
}

const WAKER: Token = Token(usize::MAX);
/// Datagrams read from one socket per readiness event.
const MAX_READS_PER_WAKE: usize = 256;
/// A wake-up also serves the deadlines of the next `EARLY`: packets leave
/// up to this much before their time (2.5 % of a 20 ms ptime, far inside
/// any jitter buffer) and the tickers wake several times less often, with
/// more packets per `io_uring_enter` (docs/benchmarks.md: −20 to −30 % CPU).
const EARLY: Duration = Duration::from_micros(500);
/// Lateness is copied out for `MediaEngine::lateness` this often: twice
/// per overload check (`runtime::calls`), so each check sees fresh figures.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

struct Call {
    id: CallId,
    session: RtpSession,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// The last `PlayId` of each queued `Play`, with the caller's id.
    plays: VecDeque<(PlayId, u64)>,
}

struct Ticker {
    /// First, so it is dropped (sending what is queued, waiting for what
    /// is in flight) while the calls' sockets are still open.
    batch: UdpBatch,
    /// Buffers for reading a readable socket with one `recvmmsg`.
    received: RecvBatch,
    poll: Poll,
    commands: std_mpsc::Receiver<ShardCommand>,
    /// See `Shard::wake_pending`.
    wake_pending: Arc<AtomicBool>,
    reports: mpsc::UnboundedSender<(CallId, MediaReport)>,
    config: SessionConfig,
    /// Slots; a call's slot `k` owns tokens `2k` (RTP) and `2k + 1` (RTCP).
    calls: Vec<Option<Call>>,
    free: Vec<usize>,
    /// Calls that ended in this tick: their sockets close after its submit.
    ended: Vec<Call>,
    by_id: HashMap<CallId, usize>,
    pacer: Pacer,
    /// Sessions' time: see `Ticker::now`.
    clock: Instant,
    /// Deadlines served in this tick, for the send lateness.
    due: Vec<Instant>,
    /// Deadline → handed to the kernel.
    lateness: Lateness,
    /// RTP dropped by the source checks of calls that ended.
    rejected_ended: RejectCounts,
    published: Arc<Mutex<Published>>,
}

impl Ticker {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut published = Instant::now();
        loop {
            // Cleared before draining, never after: a command queued
            // after this point finds the flag clear and wakes us.
            self.wake_pending.store(false, Ordering::SeqCst);
            loop {
                match self.commands.try_recv() {
                    Ok(ShardCommand::Call(id, command)) => self.command(id, command),
                    Ok(ShardCommand::Stop) | Err(std_mpsc::TryRecvError::Disconnected) => {
                        self.batch.complete_all();
                        return;
                    }
                    Err(std_mpsc::TryRecvError::Empty) => break,
                }
            }
            let now = self.now();
            while let Some(deadline) = self.pacer.next_deadline() {
                let Some(k) = self.pacer.pop_due(now + EARLY) else {
                    break;
                };
                // Served early, a session sees its deadline as the time;
                // the ticker's clock moves there so that no session is
                // ever handed an earlier time afterwards.
                let t = self.advance(deadline);
                if let Some(call) = self.calls.get_mut(k).and_then(Option::as_mut) {
                    call.session.handle_timeout(t);
                }
                self.flush(k);
                self.due.push(deadline);
            }
            // The tick's datagrams (and any queued by commands or input
            // since the last tick) leave with one io_uring_enter.
            self.batch.flush();
            self.close_ended();
            let sent = Instant::now();
            for deadline in self.due.drain(..) {
                self.lateness
                    .record(sent.saturating_duration_since(deadline));
            }
            if now >= published + PUBLISH_EVERY {
                let rejected = self
                    .calls
                    .iter()
                    .flatten()
                    .fold(self.rejected_ended, |a, c| a.plus(c.session.rejected()));
                if let Ok(mut p) = self.published.lock() {
                    p.lateness.clone_from(&self.lateness);
                    p.sends = self.batch.stats();
                    p.rejected = rejected;
                }
                published = now;
            }
            // epoll waits whole milliseconds (mio rounds up): wait the
            // whole ones, then sleep the rest precisely.
            let wait = self
                .pacer
                .next_deadline()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(100));
            let coarse = Duration::from_millis(wait.as_millis() as u64);
            if let Err(e) = self.poll.poll(&mut events, Some(coarse)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "media poll failed");
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            if events.is_empty() && coarse.is_zero() && !wait.is_zero() {
                std::thread::sleep(wait);
            }
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    continue;
                }
                self.receive(token.0 / 2, token.0 % 2 == 1);
            }
        }
    }

    fn command(&mut self, id: CallId, command: MediaCommand) {
        let slot = self.by_id.get(&id).copied();
        match (command, slot) {
            (
                MediaCommand::Start {
                    rtp,
                    rtcp,
                    params,
                    seed,
                    sending,
                    receiving,
                },
                None,
            ) => {
                let now = self.now();
                let mut session = RtpSession::new(now, params.clone(), self.config.clone(), seed);
                if !sending || !receiving {
                    session.renegotiate(now, params, sending, receiving);
                }
                let k = self.free.pop().unwrap_or(self.calls.len());
                let mut rtp = UdpSocket::from_std(rtp);
                let mut rtcp = UdpSocket::from_std(rtcp);
                let registry = self.poll.registry();
                if let Err(e) = registry
                    .register(&mut rtp, Token(2 * k), Interest::READABLE)
                    .and_then(|()| {
                        registry.register(&mut rtcp, Token(2 * k + 1), Interest::READABLE)
                    })
                {
                    tracing::error!(call = id.0, error = %e, "cannot poll the RTP sockets");
                }
                let call = Call {
                    id,
                    session,
                    rtp,
                    rtcp,
                    plays: VecDeque::new(),
                };
                if k == self.calls.len() {
                    self.calls.push(Some(call));
                } else if let Some(s) = self.calls.get_mut(k) {
                    *s = Some(call);
                }
                self.by_id.insert(id, k);
                self.flush(k);
            }
            (MediaCommand::Start { .. }, Some(_)) => {
                tracing::warn!(call = id.0, "media started twice; ignored");
            }
            (_, None) => tracing::debug!(call = id.0, "media command for no session"),
            (
                MediaCommand::Renegotiate {
                    params,
                    sending,
                    receiving,
                },
                Some(k),
            ) => {
                let now = self.now();
                if let Some(call) = self.call(k) {
                    call.session.renegotiate(now, params, sending, receiving);
                }
                self.flush(k);
            }
            (MediaCommand::Play { id: play, prompts }, Some(k)) => {
                if let Some(call) = self.call(k) {
                    let last = prompts.into_iter().map(|p| call.session.play(p)).last();
                    match last {
                        Some(last) => call.plays.push_back((last, play)),
                        None => {
                            let _ = self.reports.send((id, MediaReport::PlayFinished(play)));
                        }
                    }
                }
            }
            (MediaCommand::StopPlayback, Some(k)) => {
                if let Some(call) = self.call(k) {
                    call.session.stop_playback();
                    call.plays.clear();
                }
            }
            (MediaCommand::Info { key, duration }, Some(k)) => {
                let now = self.now();
                if let Some(call) = self.call(k) {
                    call.session
                        .handle_input(now, Input::Info { key, duration });
                }
                self.flush(k);
            }
            (MediaCommand::End, Some(k)) => {
                let now = self.now();
                if let Some(call) = self.call(k) {
                    call.session.close(now);
                }
                self.flush(k);
                self.pacer.remove(k);
                self.by_id.remove(&id);
                // The RTCP BYE is queued: the sockets are closed after the
                // tick's submit (`close_ended`), never while a queued send
                // names them (udp_batch, invariant 2), and without waiting
                // for the sends in flight.
                if let Some(mut call) = self.calls.get_mut(k).and_then(Option::take) {
                    self.rejected_ended = self.rejected_ended.plus(call.session.rejected());
                    let registry = self.poll.registry();
                    let _ = registry.deregister(&mut call.rtp);
                    let _ = registry.deregister(&mut call.rtcp);
                    self.ended.push(call);
                }
                self.free.push(k);
            }
        }
    }

    /// Closes the sockets of the calls that ended and tells the call layer
    /// their ports are free. Called after the tick's submit, so nothing
    /// queued names them any more (or, should a submit have stopped short,
    /// after waiting for it: udp_batch, invariant 2).
    fn close_ended(&mut self) {
        if self.ended.is_empty() {
            return;
        }
        if !self.batch.all_submitted() {
            self.batch.complete_all();
        }
        for call in self.ended.drain(..) {
            let id = call.id;
            drop(call);
            let _ = self.reports.send((id, MediaReport::Closed));
        }
    }

    /// The time handed to sessions: the system clock, but never earlier
    /// than a deadline already served early (sessions' time never goes
    /// backwards).
    fn now(&mut self) -> Instant {
        self.clock = self.clock.max(Instant::now());
        self.clock
    }

    /// Moves the ticker's clock to `t` if it is ahead; returns the clock.
    fn advance(&mut self, t: Instant) -> Instant {
        self.clock = self.clock.max(t);
        self.clock
    }

    fn call(&mut self, k: usize) -> Option<&mut Call> {
        self.calls.get_mut(k).and_then(Option::as_mut)
    }

    /// Reads every datagram waiting on a call's socket.
    fn receive(&mut self, k: usize, rtcp: bool) {
        let now = self.now();
        let Some(call) = self.calls.get_mut(k).and_then(Option::as_mut) else {
            return;
        };
        // Edge-triggered readiness: read until the socket is empty (a
        // short batch), but bounded so a flood on one port cannot starve
        // the other calls of the shard.
        let mut errors = 0;
        for _ in 0..MAX_READS_PER_WAKE / RECV_BATCH {
            let socket = if rtcp { &call.rtcp } else { &call.rtp };
            match self.received.recv(socket) {
                Ok(n) => {
                    for (from, data) in self.received.datagrams() {
                        let input = if rtcp {
                            Input::Rtcp { from, data }
                        } else {
                            Input::Rtp { from, data }
                        };
                        call.session.handle_input(now, input);
                    }
                    if n < RECV_BATCH {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP port unreachable and the like: reported once, the
                // datagrams behind it are still there.
                Err(e) => {
                    tracing::debug!(call = call.id.0, error = %e, "RTP receive error");
                    errors += 1;
                    if errors > 4 {
                        break;
                    }
                }
            }
        }
        self.flush(k);
    }

    /// Sends what the session queued, reports its events, reschedules it.
    fn flush(&mut self, k: usize) {
        let Some(call) = self.calls.get_mut(k).and_then(Option::as_mut) else {
            return;
        };
        while let Some(t) = call.session.poll_transmit() {
            if !sendable(t.destination) {
                continue;
            }
            let socket = match t.channel {
                Channel::Rtp => &call.rtp,
                Channel::Rtcp => &call.rtcp,
            };
            self.batch.send(socket, t.payload, t.destination, call.id.0);
        }
        while let Some(event) = call.session.poll_event() {
            let report = match event {
                MediaEvent::Key(k) => Some(MediaReport::Key(k)),
                MediaEvent::Inactive => Some(MediaReport::Inactive),
                MediaEvent::PlayFinished(pid) => {
                    if call.plays.front().is_some_and(|(last, _)| *last == pid) {
                        call.plays
                            .pop_front()
                            .map(|(_, id)| MediaReport::PlayFinished(id))
                    } else {
                        None
                    }
                }
            };
            if let Some(report) = report {
                let _ = self.reports.send((call.id, report));
            }
        }
        match call.session.poll_timeout() {
            Some(t) => self.pacer.schedule(k, t),
            None => self.pacer.remove(k),
        }
    }
}

/// Not to `0.0.0.0` (hold, RFC 3264 §8.4) nor to port 0 (a rejected stream).
fn sendable(to: SocketAddr) -> bool {
    !to.ip().is_unspecified() && to.port() != 0
}
