//! The media engine: every call's [`RtpSession`] driven by a few ticker
//! threads (one per core by default), the way SEMS and FreeSWITCH's soft
//! timer do it — not a timer task per call (issue 4, "pacing at scale").
//!
//! ```text
//!            MediaEngine::send(shard of call, MediaCommand) ──► channel + mio Waker
//!  ticker thread (one per shard):
//!    loop { commands → sessions
//!           pacer.pop_due(now) → handle_timeout → poll_transmit → send_to
//!           epoll (mio) until the next deadline, rounded down to the ms,
//!             then a precise sleep for the rest
//!           readable RTP/RTCP sockets → handle_input → poll_transmit/poll_event }
//!    MediaReport ──► the call layer (tokio channel)
//! ```
//!
//! Deadlines are absolute (`start + n·ptime` inside the session, served by
//! [`Pacer`]), so a late wake-up never accumulates drift. Each call is
//! pinned to one shard (by call id), so a session is only ever touched by
//! one thread and needs no lock.
//!
//! Per call the engine keeps the session, its two sockets and a short queue
//! of playback ids: a few KiB (the in-band detector is the largest part).
//!
//! Send batching: `sendmmsg` batches datagrams of *one* socket; every call
//! here sends from its own socket (the port in its SDP, needed for
//! symmetric RTP through NATs), so a tick's packets cannot share one
//! `sendmmsg`. Batching across sockets needs io_uring; not done. Each
//! packet is one `send_to` on a non-blocking socket (a full buffer drops
//! the packet, logged at debug, rather than stalling every call of the
//! shard).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
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
use crate::sip::dialog::CallId;

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
    thread: Option<JoinHandle<()>>,
    lateness: Arc<Mutex<Lateness>>,
}

/// The ticker threads. Dropping it stops them.
pub struct MediaEngine {
    shards: Vec<Shard>,
}

impl MediaEngine {
    /// Starts `tickers` threads (at least one). `reports` receives every
    /// call's events.
    pub fn start(
        tickers: usize,
        config: SessionConfig,
        reports: mpsc::UnboundedSender<(CallId, MediaReport)>,
    ) -> io::Result<MediaEngine> {
        let mut shards = Vec::new();
        for i in 0..tickers.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let (tx, rx) = std_mpsc::channel();
            let lateness = Arc::new(Mutex::new(Lateness::default()));
            let ticker = Ticker {
                poll,
                commands: rx,
                reports: reports.clone(),
                config: config.clone(),
                calls: Vec::new(),
                free: Vec::new(),
                by_id: HashMap::new(),
                pacer: Pacer::new(),
                lateness: lateness.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || ticker.run())?;
            shards.push(Shard {
                commands: tx,
                waker,
                thread: Some(thread),
                lateness,
            });
        }
        Ok(MediaEngine { shards })
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
            if let Err(e) = shard.waker.wake() {
                tracing::error!(error = %e, "cannot wake a media ticker");
            }
        }
    }

    /// Send-time lateness of every frame so far, all tickers merged
    /// (a copy; for benchmarks and logs).
    pub fn lateness(&self) -> Vec<Lateness> {
        self.shards
            .iter()
            .map(|s| s.lateness.lock().map(|l| l.clone()).unwrap_or_default())
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
/// Largest RTP/RTCP datagram read (Ethernet MTU is plenty for G.711).
const MAX_DATAGRAM: usize = 2048;
/// Datagrams read from one socket per readiness event.
const MAX_READS_PER_WAKE: usize = 256;
/// Lateness is copied out for `MediaEngine::lateness` this often.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

struct Call {
    id: CallId,
    session: RtpSession,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// The last `PlayId` of each queued `Play`, with the caller's id.
    plays: VecDeque<(PlayId, u64)>,
}

struct Ticker {
    poll: Poll,
    commands: std_mpsc::Receiver<ShardCommand>,
    reports: mpsc::UnboundedSender<(CallId, MediaReport)>,
    config: SessionConfig,
    /// Slots; a call's slot `k` owns tokens `2k` (RTP) and `2k + 1` (RTCP).
    calls: Vec<Option<Call>>,
    free: Vec<usize>,
    by_id: HashMap<CallId, usize>,
    pacer: Pacer<usize>,
    lateness: Arc<Mutex<Lateness>>,
}

impl Ticker {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut published = Instant::now();
        loop {
            loop {
                match self.commands.try_recv() {
                    Ok(ShardCommand::Call(id, command)) => self.command(id, command),
                    Ok(ShardCommand::Stop) | Err(std_mpsc::TryRecvError::Disconnected) => {
                        return;
                    }
                    Err(std_mpsc::TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            while let Some(k) = self.pacer.pop_due(now) {
                if let Some(call) = self.calls.get_mut(k).and_then(Option::as_mut) {
                    call.session.handle_timeout(now);
                }
                self.flush(k);
            }
            if now >= published + PUBLISH_EVERY {
                if let Ok(mut l) = self.lateness.lock() {
                    *l = self.pacer.lateness().clone();
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
                self.receive(token.0 / 2, token.0 % 2 == 1, &mut buf);
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
                let now = Instant::now();
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
                if let Some(call) = self.call(k) {
                    call.session
                        .renegotiate(Instant::now(), params, sending, receiving);
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
                if let Some(call) = self.call(k) {
                    call.session
                        .handle_input(Instant::now(), Input::Info { key, duration });
                }
                self.flush(k);
            }
            (MediaCommand::End, Some(k)) => {
                if let Some(call) = self.call(k) {
                    call.session.close(Instant::now());
                }
                self.flush(k);
                self.pacer.remove(k);
                self.by_id.remove(&id);
                if let Some(mut call) = self.calls.get_mut(k).and_then(Option::take) {
                    let registry = self.poll.registry();
                    let _ = registry.deregister(&mut call.rtp);
                    let _ = registry.deregister(&mut call.rtcp);
                }
                self.free.push(k);
                let _ = self.reports.send((id, MediaReport::Closed));
            }
        }
    }

    fn call(&mut self, k: usize) -> Option<&mut Call> {
        self.calls.get_mut(k).and_then(Option::as_mut)
    }

    /// Reads every datagram waiting on a call's socket.
    fn receive(&mut self, k: usize, rtcp: bool, buf: &mut [u8]) {
        let Some(call) = self.calls.get_mut(k).and_then(Option::as_mut) else {
            return;
        };
        // Edge-triggered readiness: read until WouldBlock, but bounded so
        // a flood on one port cannot starve the other calls of the shard.
        let mut errors = 0;
        for _ in 0..MAX_READS_PER_WAKE {
            let socket = if rtcp { &call.rtcp } else { &call.rtp };
            match socket.recv_from(buf) {
                Ok((n, from)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    let input = if rtcp {
                        Input::Rtcp { from, data }
                    } else {
                        Input::Rtp { from, data }
                    };
                    call.session.handle_input(Instant::now(), input);
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
            if let Err(e) = socket.send_to(&t.payload, t.destination) {
                tracing::debug!(call = call.id.0, destination = %t.destination, error = %e, "RTP send failed");
            }
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
