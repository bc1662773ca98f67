//! The call runtime: joins the SIP endpoint, the media engine and the call
//! logic (the IVR) inside `mensa serve`.
//!
//! ```text
//!  SIP driver (runtime::sip) ──events──►┐                 ┌──► MediaEngine (ticker threads)
//!                            ◄─commands─┤  call control   │      └─ MediaReport ──┐
//!  CallLogic::start(info, CallHandle)   │  task (this)    ◄────────────────────────┘
//!     CallHandle: events ◄──CallEvent───┤                 │
//!                 send() ──CallCommand──►                 └──► PortPool (RTP pairs)
//! ```
//!
//! * `IncomingCall` → a port pair from the pool (none left: 503) →
//!   `answer` with the advertised address.
//! * `CallEstablished` → `sdp::Negotiated` mapped onto `MediaParams`, the
//!   session started on its shard, then [`CallLogic::start`].
//! * `Dtmf` (SIP INFO) → the session's key merger; `MediaChanged` → the
//!   session renegotiates (hold, address, codec, new SSRC latches).
//! * media `Inactive` → SIP hang-up; `CallEnded` → media closed, ports
//!   back, [`CallEvent::Ended`] to the logic.
//! * Shutdown: [`CallServer::shutdown`] drains (new INVITEs and OPTIONS get
//!   503), waits for the calls to end up to the grace period, then hangs up
//!   the rest.
//!
//! ## The seam for the call logic: channels, one task per call
//!
//! [`CallLogic`] is a factory picked by nothing more than the route's
//! dialplan name: `start` receives the call's [`CallInfo`] and a
//! [`CallHandle`], and typically spawns a task that owns the IVR session:
//! `handle.recv().await` gives [`CallEvent`]s, `handle.send(CallCommand)`
//! plays, stops, hangs up. Channels rather than a trait object called
//! from the control task, because the logic awaits things the control
//! task must never wait for (store actions, its own timers: the IVR
//! session's `poll_timeout`), and a slow database must not hold up the
//! other calls' SIP. Pacing does not depend on it: frames are sent by the
//! media tickers whatever the logic task does.
//!
//! How the IVR plugs in (a sketch; `ivr::Session` as in docs/call-flow.md):
//!
//! ```text
//! struct Ivr { plans: HashMap<String, Arc<Dialplan>>, actions: IvrActions, clock: Arc<dyn Clock> }
//! impl CallLogic for Ivr {
//!     fn has_dialplan(&self, name: &str) -> bool { self.plans.contains_key(name) }
//!     fn start(&self, call: CallInfo, mut handle: CallHandle) {
//!         let plan = self.plans[&call.dialplan].clone();
//!         tokio::spawn(async move {
//!             let mut s = Session::new(plan, caller, &call.called, clock.now(), Instant::now());
//!             loop {
//!                 // drain s.poll_event(): Play{id, lang, prompts} → handle.send(CallCommand::Play
//!                 //   { id: id.0, lang, prompts }); StopPlayback → CallCommand::StopPlayback;
//!                 //   HangUp → CallCommand::HangUp; RunAction(a) → run it, feed ActionResult
//!                 // then select! { handle.recv() → KeyDown(_) → Input::KeyDown,
//!                 //   Key(k) → Input::Key(ivr::Key::from_char(k.as_char())),
//!                 //   PlayFinished(n) → Input::PromptFinished(PlaybackId(n)),
//!                 //   Ended(_) | None → Input::CallerHungUp, store the record, break;
//!                 //   sleep_until(s.poll_timeout()) → s.handle_timeout(Instant::now()) }
//!             }
//!         });
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use super::lag::LagProbe;
use super::media::{MediaCommand, MediaEngine, MediaReport};
use super::ports::PortPool;
use super::sip::{Command as SipCommand, SipServer, spawn_with as spawn_sip};
use super::sip_tcp::TcpLimits;
use super::udp_batch::{SendMode, SendStats};
use crate::api::EdgeCounters;
use crate::bookings::PhoneNumber;
use crate::ivr::{Lang, PromptId};
use crate::media::dtmf::Key;
use crate::media::dtmf::merge::{KeyEvent, Source};
use crate::media::g711::Law;
use crate::media::overload::{CallLimit, OverloadGuard};
use crate::media::pacing::Lateness;
use crate::media::playout::Prompt;
use crate::media::prompts::PromptLibrary;
use crate::media::session::{AudioCodec, MediaParams, SessionConfig, SessionSeed, TelephoneEvent};
use crate::sip::config::{EndpointConfig, IpNet};
use crate::sip::dialog::CallId;
use crate::sip::endpoint::{EndReason, Endpoint, Event as SipEvent};
use crate::sip::sdp::{Codec, Direction, Negotiated};

/// Who called whom, and which dialplan the route chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub id: CallId,
    /// Caller number (P-Asserted-Identity or From); personal data, shown
    /// redacted.
    pub caller: Option<PhoneNumber>,
    /// The number dialled (the route's key).
    pub called: String,
    /// The dialplan the route names.
    pub dialplan: String,
    /// The trunk the call came through: the allow-list network its INVITE's
    /// source matched (per-trunk budgets count on it).
    pub trunk: IpNet,
}

/// What the call logic hears about its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEvent {
    /// A key went down (RFC 4733 begin, tone onset, INFO): barge-in.
    KeyDown(Key),
    /// A key was pressed, once, whichever paths reported it; the path
    /// that heard it first.
    Key(Key, Source),
    /// The `Play` with this id played to its end.
    PlayFinished(u64),
    /// The call is over (the caller hung up, or after our `HangUp`);
    /// nothing follows and the handle's channel closes.
    Ended(EndReason),
}

/// What the call logic asks for.
#[derive(Debug, Clone)]
pub enum CallCommand {
    /// Play these prompts from `prompts/<lang>/` back to back as one
    /// stream; `PlayFinished(id)` at its end. Missing prompts are skipped
    /// (logged); when none is playable, `PlayFinished` comes at once.
    Play {
        id: u64,
        lang: Lang,
        prompts: Vec<PromptId>,
    },
    /// The same with audio already loaded (synthesised, or for tests).
    PlayAudio { id: u64, prompts: Vec<Arc<Prompt>> },
    /// Stop now (barge-in); no `PlayFinished` for what was playing.
    StopPlayback,
    /// End the call (BYE); `Ended(LocalHangup)` follows.
    HangUp,
}

/// The logic's end of one call.
#[derive(Debug)]
pub struct CallHandle {
    pub id: CallId,
    events: mpsc::UnboundedReceiver<CallEvent>,
    commands: mpsc::UnboundedSender<(CallId, CallCommand)>,
}

impl CallHandle {
    /// The next event; `None` after `Ended` (or when the runtime stopped).
    pub async fn recv(&mut self) -> Option<CallEvent> {
        self.events.recv().await
    }

    /// Non-blocking variant of [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Option<CallEvent> {
        self.events.try_recv().ok()
    }

    /// Queue a command (never blocks; ignored once the call is gone).
    pub fn send(&self, command: CallCommand) {
        let _ = self.commands.send((self.id, command));
    }
}

/// The call logic: one factory for all calls, choosing by `dialplan`.
pub trait CallLogic: Send + Sync + 'static {
    /// Whether calls routed to `dialplan` can be served; `false` → 404
    /// before the answer. Called on the control task: keep it cheap.
    fn has_dialplan(&self, dialplan: &str) -> bool;
    /// An established call. Called on the control task: spawn the work.
    fn start(&self, call: CallInfo, handle: CallHandle);
    /// An INVITE refused with `status` (e.g. 503) before any call existed,
    /// and why (`capacity`, `rate`, `overloaded`, `draining`, `rtp_ports`,
    /// `no_route`, `no_dialplan`, `request`): for the operators' counters.
    fn call_refused(&self, _status: u16, _reason: &'static str) {}
    /// The node started or stopped shedding new calls for load, or learned
    /// a new call limit (`media::overload`): for the operators' gauges.
    fn load_shedding(&self, _shedding: bool, _limit: Option<usize>) {}
    /// What the network edge dropped or closed so far (SIP limits, TCP,
    /// RTP sources), every second: for the operators' counters.
    fn edge_counters(&self, _counters: EdgeCounters) {}
}

/// What the runtime needs beyond the SIP endpoint's config.
#[derive(Debug, Clone)]
pub struct CallsConfig {
    /// UDP and TCP for SIP.
    pub sip_listen: SocketAddr,
    /// The IP in our SDP (never unspecified).
    pub media_ip: IpAddr,
    /// The IP RTP sockets bind to (the listen IP).
    pub bind_ip: IpAddr,
    /// Even `low`, RTP on even ports, RTCP on the odd one above.
    pub rtp_ports: (u16, u16),
    pub session: SessionConfig,
    /// Media ticker threads (0: one per core).
    pub tickers: usize,
    /// The media send path; `None`: io_uring where the kernel allows it.
    pub media_send: Option<SendMode>,
    /// Real-time (`SCHED_FIFO`) priority of the media tickers; `None`:
    /// normal scheduling.
    pub media_priority: Option<u8>,
    /// Shed new calls (503) when a second's send lateness p99 exceeds
    /// this (`media::overload`); `None`: never.
    pub overload_lateness: Option<Duration>,
    /// Shed new calls when a second's lag of the call runtime's tasks
    /// (`runtime::lag`) has a p99 over this; `None`: never.
    pub overload_lag: Option<Duration>,
    /// How long calls may go on after a shutdown starts.
    pub shutdown_grace: Duration,
    /// SIP over TCP: connections and idle time (`runtime::sip_tcp`).
    pub sip_tcp: TcpLimits,
}

/// The running call runtime.
pub struct CallServer {
    /// Where SIP listens (the real port when `sip_listen` had port 0).
    pub sip_addr: SocketAddr,
    control: mpsc::UnboundedSender<Control>,
    task: tokio::task::JoinHandle<()>,
}

enum Control {
    Shutdown,
    Stats(oneshot::Sender<Stats>),
}

/// A snapshot for logs and benchmarks.
#[derive(Debug, Clone)]
pub struct Stats {
    pub calls: usize,
    pub ports_free: usize,
    /// Per media ticker, up to a second old.
    pub lateness: Vec<Lateness>,
    /// How the tickers send, and what became of their datagrams (per
    /// ticker, up to a second old).
    pub send_mode: SendMode,
    pub sends: Vec<SendStats>,
}

impl CallServer {
    /// Graceful shutdown (SIGTERM): drain, let calls finish up to the grace
    /// period, hang up the rest, stop. Returns when done.
    pub async fn shutdown(self) {
        let _ = self.control.send(Control::Shutdown);
        let _ = self.task.await;
    }

    pub async fn stats(&self) -> Option<Stats> {
        let (tx, rx) = oneshot::channel();
        self.control.send(Control::Stats(tx)).ok()?;
        rx.await.ok()
    }
}

/// Binds SIP, starts the media tickers and the control task.
pub async fn start(
    config: CallsConfig,
    endpoint: EndpointConfig,
    prompts: Arc<PromptLibrary>,
    logic: Arc<dyn CallLogic>,
) -> io::Result<CallServer> {
    let pool = PortPool::new(config.rtp_ports.0, config.rtp_ports.1);
    if pool.capacity() < endpoint.max_concurrent_calls {
        tracing::warn!(
            rtp_pairs = pool.capacity(),
            max_concurrent_calls = endpoint.max_concurrent_calls,
            "the RTP port range is smaller than the call limit: calls beyond it get 503"
        );
    }
    super::open_files::raise_for(
        endpoint.max_concurrent_calls.min(pool.capacity()),
        config.sip_tcp.max_connections,
    );
    let sip = spawn_sip(
        config.sip_listen,
        Endpoint::new(endpoint),
        config.sip_tcp.clone(),
    )
    .await?;
    let sip_addr = sip.local_addr;
    let tickers = match config.tickers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let media = MediaEngine::start(
        tickers,
        config.session.clone(),
        report_tx,
        config.media_send,
        config.media_priority,
    )?;
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let overload =
        (config.overload_lateness.is_some() || config.overload_lag.is_some()).then(|| Overload {
            media: config.overload_lateness.map(|threshold| MediaOverload {
                guard: OverloadGuard::new(threshold, MEDIA_MIN_SAMPLES),
                seen: Lateness::default(),
                waited: false,
            }),
            runtime: config.overload_lag.map(|threshold| RuntimeOverload {
                guard: OverloadGuard::new(threshold, LAG_MIN_SAMPLES),
                probe: LagProbe::spawn(),
                seen: Lateness::default(),
            }),
            shedding: false,
            limit: CallLimit::default(),
        });
    let control = Controller {
        overload,
        pool,
        config,
        sip,
        media,
        prompts,
        logic,
        calls: HashMap::new(),
        closing: HashMap::new(),
        command_tx,
    };
    let task = tokio::spawn(control.run(control_rx, command_rx, report_rx));
    Ok(CallServer {
        sip_addr,
        control: control_tx,
        task,
    })
}

struct Call {
    info: CallInfo,
    port: u16,
    /// Where the INVITE came from (a plausible media source).
    signalling: IpAddr,
    /// Sockets held between the answer and the ACK.
    sockets: Option<(std::net::UdpSocket, std::net::UdpSocket)>,
    /// The logic's channel, once established.
    logic: Option<mpsc::UnboundedSender<CallEvent>>,
}

struct Controller {
    config: CallsConfig,
    sip: SipServer,
    media: MediaEngine,
    pool: PortPool,
    prompts: Arc<PromptLibrary>,
    logic: Arc<dyn CallLogic>,
    calls: HashMap<CallId, Call>,
    /// Ended calls whose sockets the media ticker is closing.
    closing: HashMap<CallId, u16>,
    command_tx: mpsc::UnboundedSender<(CallId, CallCommand)>,
    overload: Option<Overload>,
}

/// Load shedding, checked every half second: from the tickers' lateness,
/// and from the lag of the runtime's own tasks (SIP, IVR), which the
/// tickers at real-time priority leave waiting when the machine is
/// saturated. A trip also learns how many calls the node carries on time
/// (`media::overload::CallLimit`), so it does not climb straight back.
struct Overload {
    media: Option<MediaOverload>,
    runtime: Option<RuntimeOverload>,
    /// What SIP was last told: either guard overloaded.
    shedding: bool,
    limit: CallLimit,
}

struct MediaOverload {
    guard: OverloadGuard,
    /// All tickers' lateness at the last check.
    seen: Lateness,
    /// The last check found nothing new published.
    waited: bool,
}

struct RuntimeOverload {
    guard: OverloadGuard,
    probe: LagProbe,
    /// The probe's lag at the last check.
    seen: Lateness,
}

/// Half a second: on a ramp of 250 calls/s, a guard that judged whole
/// seconds (behind tickers that also published once a second) took up to
/// 500 calls too many before it tripped (docs/benchmarks.md, "Capacity").
const OVERLOAD_CHECK: Duration = Duration::from_millis(500);
/// Frames in a window below which the tickers' lateness says nothing (an
/// idle node; one call sends 25 per window).
const MEDIA_MIN_SAMPLES: u64 = 20;
/// The lag probe's samples in a window below which it says nothing: it
/// takes about 50 per window, the ones a lag kept from running included
/// (`runtime::lag`).
const LAG_MIN_SAMPLES: u64 = 20;
/// How often the edge's counters go to the call logic (`/metrics`).
const EDGE_REPORT: Duration = Duration::from_secs(1);
/// After `hang_up_all`, how long to wait for the BYEs' `CallEnded`.
const HANG_UP_WAIT: Duration = Duration::from_secs(5);

/// Feeds `window` to `guard` and logs a change: `late` when it trips,
/// "`what` on time again" when it clears.
fn judge(guard: &mut OverloadGuard, window: &Lateness, calls: usize, late: &str, what: &str) {
    match guard.observe(window) {
        Some(true) => tracing::warn!(
            calls,
            p99 = ?window.quantile(0.99),
            "{late}: new calls get 503 until it recovers"
        ),
        Some(false) => tracing::info!(calls, "{what} on time again"),
        None => {}
    }
}

impl Controller {
    async fn run(
        mut self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut commands: mpsc::UnboundedReceiver<(CallId, CallCommand)>,
        mut reports: mpsc::UnboundedReceiver<(CallId, MediaReport)>,
    ) {
        // Shutdown phases: grace deadline, then the hang-up deadline.
        let mut draining: Option<tokio::time::Instant> = None;
        let mut hung_up = false;
        let mut overload_check = tokio::time::interval(OVERLOAD_CHECK);
        overload_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut edge_report = tokio::time::interval(EDGE_REPORT);
        edge_report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if draining.is_some() && self.calls.is_empty() {
                break;
            }
            let deadline = async {
                match draining {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = self.sip.events.recv() => match event {
                    Some(event) => self.sip_event(event),
                    None => break,
                },
                Some((id, command)) = commands.recv() => self.logic_command(id, command),
                Some((id, report)) = reports.recv() => self.media_report(id, report),
                _ = overload_check.tick(), if self.overload.is_some() => self.check_overload(),
                _ = edge_report.tick() => self.report_edge(),
                message = control.recv() => match message {
                    Some(Control::Stats(reply)) => {
                        let _ = reply.send(Stats {
                            calls: self.calls.len(),
                            ports_free: self.pool.available(),
                            lateness: self.media.lateness(),
                            send_mode: self.media.send_mode(),
                            sends: self.media.send_stats(),
                        });
                    }
                    Some(Control::Shutdown) | None => {
                        if draining.is_none() {
                            tracing::info!(calls = self.calls.len(), grace = ?self.config.shutdown_grace, "draining: new calls get 503");
                            let _ = self.sip.commands.send(SipCommand::Drain(true));
                            draining = Some(tokio::time::Instant::now() + self.config.shutdown_grace);
                        }
                    }
                },
                () = deadline => {
                    if hung_up {
                        tracing::warn!(calls = self.calls.len(), "calls did not end after BYE; stopping anyway");
                        break;
                    }
                    tracing::info!(calls = self.calls.len(), "grace period over: hanging up");
                    let _ = self.sip.commands.send(SipCommand::HangUpAll);
                    hung_up = true;
                    draining = Some(tokio::time::Instant::now() + HANG_UP_WAIT);
                }
            }
        }
        for (id, call) in self.calls.drain() {
            self.media.send(id, MediaCommand::End);
            if let Some(logic) = call.logic {
                let _ = logic.send(CallEvent::Ended(EndReason::LocalHangup));
            }
        }
        // Let the last BYEs and RTCP BYEs leave before the sockets go.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    fn sip_event(&mut self, event: SipEvent) {
        match event {
            SipEvent::IncomingCall {
                call,
                called,
                dialplan,
                caller,
                media: _,
                source,
                trunk,
            } => {
                if !self.logic.has_dialplan(&dialplan) {
                    tracing::warn!(%call, %dialplan, "no such dialplan; 404");
                    self.logic.call_refused(404, "no_dialplan");
                    let _ = self
                        .sip
                        .commands
                        .send(SipCommand::Reject { call, status: 404 });
                    return;
                }
                let Some(pair) = self.pool.allocate(self.config.bind_ip, Instant::now()) else {
                    tracing::warn!(%call, "no free RTP port; 503");
                    self.logic.call_refused(503, "rtp_ports");
                    let _ = self
                        .sip
                        .commands
                        .send(SipCommand::Reject { call, status: 503 });
                    return;
                };
                let rtp = SocketAddr::new(self.config.media_ip, pair.port);
                self.calls.insert(
                    call,
                    Call {
                        info: CallInfo {
                            id: call,
                            caller,
                            called,
                            dialplan,
                            trunk,
                        },
                        port: pair.port,
                        signalling: source.ip(),
                        sockets: Some((pair.rtp, pair.rtcp)),
                        logic: None,
                    },
                );
                let _ = self.sip.commands.send(SipCommand::Answer { call, rtp });
            }
            SipEvent::CallRefused { status, reason } => {
                self.logic.call_refused(status, reason.label());
            }
            SipEvent::CallEstablished { call, media } => {
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                let Some((rtp, rtcp)) = c.sockets.take() else {
                    return;
                };
                let (sending, receiving) = directions(&media);
                self.media.send(
                    call,
                    MediaCommand::Start {
                        rtp,
                        rtcp,
                        params: media_params(&media, c.signalling),
                        seed: seed(),
                        sending,
                        receiving,
                    },
                );
                let (tx, rx) = mpsc::unbounded_channel();
                c.logic = Some(tx);
                let handle = CallHandle {
                    id: call,
                    events: rx,
                    commands: self.command_tx.clone(),
                };
                self.logic.start(c.info.clone(), handle);
            }
            SipEvent::MediaChanged { call, media } => {
                if let Some(c) = self.calls.get(&call)
                    && c.sockets.is_none()
                {
                    let (sending, receiving) = directions(&media);
                    self.media.send(
                        call,
                        MediaCommand::Renegotiate {
                            params: media_params(&media, c.signalling),
                            sending,
                            receiving,
                        },
                    );
                }
            }
            SipEvent::Dtmf {
                call,
                key,
                duration_ms,
            } => match Key::from_char(key) {
                Some(key) => self.media.send(
                    call,
                    MediaCommand::Info {
                        key,
                        duration: duration_ms.map(|ms| Duration::from_millis(u64::from(ms))),
                    },
                ),
                None => tracing::debug!(%call, "INFO key not a DTMF key"),
            },
            SipEvent::CallEnded { call, reason } => {
                if let Some(c) = self.calls.remove(&call) {
                    if c.sockets.is_none() {
                        // The pair goes back once the ticker closed it.
                        self.media.send(call, MediaCommand::End);
                        self.closing.insert(call, c.port);
                    } else {
                        self.pool.release(c.port, Instant::now());
                    }
                    if let Some(logic) = c.logic {
                        let _ = logic.send(CallEvent::Ended(reason));
                    }
                    tracing::debug!(%call, ?reason, "call ended");
                }
            }
        }
    }

    fn logic_command(&mut self, call: CallId, command: CallCommand) {
        if !self.calls.contains_key(&call) {
            return;
        }
        match command {
            CallCommand::Play { id, lang, prompts } => {
                let audio = prompts
                    .iter()
                    .filter_map(|p| {
                        let got = self.prompts.get(lang.code(), p.as_str());
                        if got.is_none() {
                            tracing::warn!(%call, prompt = %p.as_str(), %lang, "prompt missing; skipped");
                        }
                        got
                    })
                    .collect();
                self.media
                    .send(call, MediaCommand::Play { id, prompts: audio });
            }
            CallCommand::PlayAudio { id, prompts } => {
                self.media.send(call, MediaCommand::Play { id, prompts });
            }
            CallCommand::StopPlayback => self.media.send(call, MediaCommand::StopPlayback),
            CallCommand::HangUp => {
                let _ = self.sip.commands.send(SipCommand::HangUp { call });
            }
        }
    }

    /// Feeds the last half second's lateness and lag to the guards; tells
    /// SIP when the node starts or stops shedding new calls, and the call
    /// limit it learned.
    fn check_overload(&mut self) {
        let Some(overload) = &mut self.overload else {
            return;
        };
        let calls = self.calls.len();
        if let Some(media) = &mut overload.media {
            let mut all = Lateness::default();
            for shard in self.media.lateness() {
                all.merge(&shard);
            }
            if all.count() == media.seen.count() && calls > 0 && !media.waited {
                // The tickers publish on their own clock: wait for their
                // next copy rather than judge an empty window. Only once,
                // since calls on hold send nothing and must not freeze the
                // guard.
                media.waited = true;
            } else {
                media.waited = false;
                let window = all.since(&media.seen);
                media.seen = all;
                judge(
                    &mut media.guard,
                    &window,
                    calls,
                    "media falling behind",
                    "media",
                );
            }
        }
        if let Some(runtime) = &mut overload.runtime {
            let all = runtime.probe.lag();
            let window = all.since(&runtime.seen);
            runtime.seen = all;
            judge(
                &mut runtime.guard,
                &window,
                calls,
                "SIP and IVR tasks running late",
                "SIP and IVR tasks",
            );
        }
        let shedding = overload
            .media
            .as_ref()
            .is_some_and(|m| m.guard.is_overloaded())
            || overload
                .runtime
                .as_ref()
                .is_some_and(|r| r.guard.is_overloaded());
        if shedding != overload.shedding {
            overload.shedding = shedding;
            if !shedding {
                tracing::info!(
                    calls,
                    limit = ?overload.limit.limit(),
                    "taking new calls again"
                );
            }
            let _ = self.sip.commands.send(SipCommand::Overloaded(shedding));
            self.logic.load_shedding(shedding, overload.limit.limit());
        }
        let calm = overload
            .media
            .as_ref()
            .is_none_or(|m| m.guard.last_window_calm())
            && overload
                .runtime
                .as_ref()
                .is_none_or(|r| r.guard.last_window_calm());
        if let Some(limit) = overload.limit.observe(calls, shedding, calm) {
            if shedding {
                tracing::warn!(
                    calls,
                    limit,
                    "new calls limited to the last count carried on time"
                );
            } else {
                tracing::info!(calls, limit, "on time at the call limit: raised");
            }
            let _ = self.sip.commands.send(SipCommand::CallLimit(Some(limit)));
            self.logic.load_shedding(shedding, Some(limit));
        }
    }

    /// The SIP endpoint's drops, the TCP counters and the RTP rejected by
    /// the calls' source checks, to the logic's counters.
    fn report_edge(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let dropped = self
            .sip
            .counters
            .dropped
            .lock()
            .map(|d| *d)
            .unwrap_or_default();
        let tcp = &self.sip.counters.tcp;
        let rtp = self.media.rejected();
        self.logic.edge_counters(EdgeCounters {
            sip_not_allowed: dropped.not_allowed,
            sip_forbidden: dropped.forbidden,
            sip_source_transactions: dropped.source_transactions,
            sip_transactions: dropped.transactions,
            tcp_accepted: tcp.accepted.load(Relaxed),
            tcp_not_allowed: tcp.not_allowed.load(Relaxed),
            tcp_refused: tcp.refused.load(Relaxed),
            tcp_evicted: tcp.evicted.load(Relaxed),
            tcp_idle: tcp.idle.load(Relaxed),
            tcp_slow_reader: tcp.slow_reader.load(Relaxed),
            tcp_framing: tcp.framing.load(Relaxed),
            rtp_implausible: rtp.implausible,
            rtp_not_latched: rtp.not_latched,
        });
    }

    fn media_report(&mut self, call: CallId, report: MediaReport) {
        if report == MediaReport::Closed {
            if let Some(port) = self.closing.remove(&call) {
                self.pool.release(port, Instant::now());
            }
            return;
        }
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let event = match report {
            MediaReport::Key(KeyEvent::Down { key, .. }) => CallEvent::KeyDown(key),
            MediaReport::Key(KeyEvent::Pressed { key, source, .. }) => CallEvent::Key(key, source),
            MediaReport::PlayFinished(id) => CallEvent::PlayFinished(id),
            MediaReport::Inactive => {
                tracing::info!(%call, "no RTP from the caller; hanging up");
                let _ = self.sip.commands.send(SipCommand::HangUp { call });
                return;
            }
            MediaReport::Closed => return,
        };
        if let Some(logic) = &c.logic {
            let _ = logic.send(event);
        }
    }
}

/// `sdp::Negotiated` in media terms; `signalling`: where the call's
/// INVITE came from.
pub fn media_params(n: &Negotiated, signalling: IpAddr) -> MediaParams {
    let law = match n.codec {
        Codec::Pcma => Law::ALaw,
        Codec::Pcmu => Law::MuLaw,
    };
    MediaParams {
        codec: AudioCodec {
            law,
            payload_type: n.codec_payload_type,
        },
        telephone_event: n
            .telephone_event
            .map(|(payload_type, clock_rate)| TelephoneEvent {
                payload_type,
                clock_rate,
            }),
        ptime: Duration::from_millis(u64::from(n.ptime_ms.clamp(10, 120))),
        remote_rtp: n.remote_rtp,
        remote_rtcp: None,
        signalling: Some(signalling),
    }
}

/// (may we send, do we expect to receive), RFC 3264 §6.1 and §8.4.
fn directions(n: &Negotiated) -> (bool, bool) {
    let held = n.remote_rtp.ip().is_unspecified();
    match n.direction {
        Direction::SendRecv => (!held, true),
        Direction::SendOnly => (!held, false),
        Direction::RecvOnly => (false, true),
        Direction::Inactive => (false, false),
    }
}

/// Random SSRC, sequence and timestamp (RFC 3550 §5.1) and the NTP time now.
fn seed() -> SessionSeed {
    let r: u64 = rand::random();
    let ntp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| {
            // NTP era 0 starts 70 years before the Unix epoch.
            let secs = d.as_secs() + 2_208_988_800;
            (secs << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
        })
        .unwrap_or(0);
    SessionSeed {
        ssrc: r as u32,
        sequence: (r >> 32) as u16,
        timestamp: rand::random(),
        ntp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiated_to_media_params_and_directions() {
        let n = Negotiated {
            remote_rtp: "192.0.2.1:4000".parse().unwrap(),
            codec: Codec::Pcmu,
            codec_payload_type: 0,
            telephone_event: Some((96, 8000)),
            ptime_ms: 30,
            direction: Direction::SendRecv,
        };
        let p = media_params(&n, "198.51.100.7".parse().unwrap());
        assert_eq!(p.codec.law, Law::MuLaw);
        assert_eq!(p.telephone_event.map(|t| t.payload_type), Some(96));
        assert_eq!(p.ptime, Duration::from_millis(30));
        assert_eq!(directions(&n), (true, true));
        let held = Negotiated {
            remote_rtp: "0.0.0.0:4000".parse().unwrap(),
            ..n
        };
        assert_eq!(directions(&held), (false, true));
        let recvonly = Negotiated {
            direction: Direction::RecvOnly,
            ..n
        };
        assert_eq!(directions(&recvonly), (false, true));
    }
}
