//! The SIP sockets: UDP and TCP on one listen address driving the sans-IO
//! [`Endpoint`]. TCP connections, their limits and their framing are
//! `runtime::sip_tcp`'s; the endpoint checks every source against the
//! allow-list before it parses a byte (`sip::limits`, docs/security.md).
//!
//! ```text
//!  UDP socket ─────────────────────────┐
//!  sip_tcp: accept (allow-list, limits) │
//!    └ a task per connection (framed) ──┼─► driver task: Endpoint ─► sockets
//!  SipServer::command ──────────────────┘                        └─► SipServer events
//! ```
//!
//! One driver task owns the endpoint, so it needs no lock; `Instant::now()`
//! is read here and passed in, as STYLE.md asks.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use super::sip_tcp::{self, FromTcp, TcpConnection, TcpCounters, TcpLimits};
use crate::sip::dialog::CallId;
use crate::sip::endpoint::{Endpoint, Event, Input};
use crate::sip::limits::Dropped;
use crate::sip::transport::{Transmit, Transport};

/// What the call layer asks of the SIP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Answer {
        call: CallId,
        rtp: SocketAddr,
    },
    Reject {
        call: CallId,
        status: u16,
    },
    HangUp {
        call: CallId,
    },
    /// Graceful shutdown on (SIGTERM) or off.
    Drain(bool),
    /// Load shedding on or off (the media tickers fell behind).
    Overloaded(bool),
    /// The calls the node learned it can carry (`media::overload::CallLimit`).
    CallLimit(Option<usize>),
    /// The shutdown grace period is over: end every call.
    HangUpAll,
}

/// A running SIP endpoint: send commands, receive events.
#[derive(Debug)]
pub struct SipServer {
    pub local_addr: SocketAddr,
    pub commands: mpsc::UnboundedSender<Command>,
    pub events: mpsc::UnboundedReceiver<Event>,
    /// What was dropped for a limit, and what became of TCP connections.
    pub counters: SipCounters,
}

/// The endpoint's drops (copied out every [`PUBLISH_EVERY`]) and the TCP
/// counters, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct SipCounters {
    pub dropped: Arc<Mutex<Dropped>>,
    pub tcp: Arc<TcpCounters>,
}

/// How often the driver copies the endpoint's drops out and marks the TCP
/// connections that carry calls as active.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Binds UDP and TCP on `listen` (port 0: any, the same for both) and
/// spawns the driver.
pub async fn spawn(listen: SocketAddr, endpoint: Endpoint) -> io::Result<SipServer> {
    spawn_with(listen, endpoint, TcpLimits::default()).await
}

/// [`spawn`] with the TCP limits given.
pub async fn spawn_with(
    listen: SocketAddr,
    mut endpoint: Endpoint,
    tcp_limits: TcpLimits,
) -> io::Result<SipServer> {
    let udp = UdpSocket::bind(listen).await?;
    enlarge_receive_buffer(&udp);
    let local_addr = udp.local_addr()?;
    endpoint.listening_on(local_addr);
    let tcp = TcpListener::bind(local_addr).await?;
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let (tcp_tx, tcp_rx) = mpsc::channel(sip_tcp::TO_DRIVER_QUEUE);
    let counters = SipCounters::default();
    tokio::spawn(sip_tcp::accept(
        tcp,
        endpoint.allowed().to_vec(),
        tcp_limits,
        tcp_tx,
        counters.tcp.clone(),
    ));
    tokio::spawn(drive(
        endpoint,
        udp,
        tcp_rx,
        command_rx,
        event_tx,
        counters.dropped.clone(),
    ));
    Ok(SipServer {
        local_addr,
        commands: command_tx,
        events: event_rx,
        counters,
    })
}

async fn drive(
    mut endpoint: Endpoint,
    udp: UdpSocket,
    mut tcp_rx: mpsc::Receiver<FromTcp>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    dropped: Arc<Mutex<Dropped>>,
) {
    let mut connections: HashMap<SocketAddr, TcpConnection> = HashMap::new();
    let mut publish = tokio::time::interval(PUBLISH_EVERY);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 65_535];
    // One timer for the endpoint's deadline, moved only when the deadline
    // does: a fresh `sleep_until` per loop turn registered and removed a
    // timer-wheel entry for every datagram (measured: a visible share of
    // the driver at 1,000 short calls/s).
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        let deadline = endpoint.poll_timeout();
        if let Some(at) = deadline
            && armed != Some(at)
        {
            sleep.as_mut().reset(tokio::time::Instant::from_std(at));
            armed = Some(at);
        }
        tokio::select! {
            received = udp.recv_from(&mut buf) => {
                match received {
                    Ok((n, source)) => {
                        let bytes = buf.get(..n).unwrap_or_default();
                        endpoint.handle_input(Instant::now(), Input::Datagram { transport: Transport::Udp, source, bytes });
                    }
                    // ICMP errors surface here on some systems; the socket lives on.
                    Err(e) => tracing::debug!(error = %e, "UDP receive error"),
                }
                // Whatever else is already queued, before answering: one
                // wake-up of this task (and one drain below) for a burst
                // rather than one per datagram. Bounded, so timers and
                // commands still get their turn under a flood.
                for _ in 1..UDP_BURST {
                    match udp.try_recv_from(&mut buf) {
                        Ok((n, source)) => {
                            let bytes = buf.get(..n).unwrap_or_default();
                            endpoint.handle_input(Instant::now(), Input::Datagram { transport: Transport::Udp, source, bytes });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => tracing::debug!(error = %e, "UDP receive error"),
                    }
                }
            },
            Some(from_tcp) = tcp_rx.recv() => match from_tcp {
                FromTcp::Opened(peer, connection) => { connections.insert(peer, connection); }
                FromTcp::Closed(peer) => { connections.remove(&peer); }
                FromTcp::Message(source, bytes) => {
                    endpoint.handle_input(Instant::now(), Input::Datagram { transport: Transport::Tcp, source, bytes: &bytes });
                }
            },
            command = commands.recv() => {
                let Some(command) = command else { return };
                let now = Instant::now();
                let result = match command {
                    Command::Answer { call, rtp } => endpoint.answer(now, call, rtp),
                    Command::Reject { call, status } => endpoint.reject(now, call, status),
                    Command::HangUp { call } => endpoint.hang_up(now, call),
                    Command::Drain(on) => { endpoint.set_draining(on); Ok(()) }
                    Command::Overloaded(on) => { endpoint.set_overloaded(on); Ok(()) }
                    Command::CallLimit(limit) => { endpoint.set_call_limit(limit); Ok(()) }
                    Command::HangUpAll => { endpoint.hang_up_all(now); Ok(()) }
                };
                if let Err(e) = result {
                    tracing::debug!(?command, error = %e, "SIP command refused");
                }
            },
            () = &mut sleep, if deadline.is_some() => {
                armed = None;
                endpoint.handle_timeout(Instant::now());
            }
            _ = publish.tick() => {
                if let Ok(mut d) = dropped.lock() {
                    *d = endpoint.dropped();
                }
                // A connection that carries a call is not idle, however
                // quiet: our BYE will need it.
                for peer in endpoint.stream_peers() {
                    if let Some(connection) = connections.get(&peer) {
                        connection.touch();
                    }
                }
            }
        }
        while let Some(Transmit {
            transport,
            destination,
            bytes,
        }) = endpoint.poll_transmit()
        {
            match transport {
                Transport::Udp => {
                    if let Err(e) = udp.send_to(&bytes, destination).await {
                        tracing::debug!(%destination, error = %e, "UDP send failed");
                    }
                }
                // §18.2.2: over TCP, back on the connection the request came
                // on. Opening a new connection when it is gone is not done yet.
                Transport::Tcp => match connections.get(&destination) {
                    Some(connection) => {
                        if !connection.send(bytes) {
                            tracing::debug!(%destination, "SIP over TCP: the peer does not read; closing");
                        }
                    }
                    None => {
                        tracing::debug!(%destination, "no TCP connection for a SIP message; dropped")
                    }
                },
            }
        }
        while let Some(event) = endpoint.poll_event() {
            if events.send(event).is_err() {
                tracing::debug!("SIP events receiver gone");
            }
        }
    }
}

/// Datagrams read per wake-up of the driver, at most.
const UDP_BURST: usize = 64;

/// Receive buffer asked for the SIP socket. The default (~208 KiB) holds
/// about a hundred INVITEs; at 2,000 calls/s (6,000 requests/s) a 20 ms
/// stall of the driver filled it, and every datagram dropped there came
/// back as a retransmission 500 ms later (RFC 3261 Timer A/E), or a failed
/// call. 4 MiB rides out stalls of a few hundred milliseconds.
const SIP_RECEIVE_BUFFER: usize = 4 << 20;

/// Enlarges the SIP socket's receive buffer: forced past `rmem_max` when
/// the process may (`CAP_NET_ADMIN`), else up to `rmem_max`. A failure
/// keeps the default and is logged; it costs drops under bursts, not
/// correctness.
fn enlarge_receive_buffer(udp: &UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(udp, sockopt::RcvBufForce, &SIP_RECEIVE_BUFFER).is_err()
        && let Err(e) = setsockopt(udp, sockopt::RcvBuf, &SIP_RECEIVE_BUFFER)
    {
        tracing::warn!(error = %e, "SIP receive buffer left at the default");
    }
}
