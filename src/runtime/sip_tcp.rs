//! SIP over TCP (RFC 3261 §18.3): the accept loop with its limits, and a
//! task per connection that frames messages ([`StreamFramer`]) for the
//! SIP driver (`runtime::sip`). The port faces the internet, so every
//! resource a peer can make us hold is bounded (docs/security.md):
//!
//! * **Source first.** An address outside the trunk allow-list is closed
//!   at accept, before a byte is read.
//! * **Connections.** At most `max_connections` in all and
//!   `max_per_source` per source. A source at its own limit loses its
//!   least recently active connection to its new one; a full node closes
//!   the least recently active connection of the source holding the most,
//!   when that is more than the newcomer holds, else refuses the newcomer.
//!   A flood of idle connections from a few sources therefore cannot keep
//!   a trunk out.
//! * **Idle.** A connection silent for `idle_timeout` is closed, unless a
//!   call runs on it (the driver marks those as active every second: our
//!   BYE must find its connection).
//! * **Writes.** At most [`WRITE_QUEUE`] messages wait for a peer that
//!   does not read (a pipelining peer); then its connection is closed.
//! * **Reads.** The framer holds at most one message (head 16 KiB, body
//!   64 KiB); the driver takes messages over a bounded channel, so a fast
//!   peer waits (TCP backpressure) rather than queueing without end.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

use crate::net::{IpNet, any_contains, unmapped};
use crate::sip::framing::{Frame, FramingError, StreamFramer};

/// Messages queued for a peer before it counts as not reading.
pub const WRITE_QUEUE: usize = 64;
/// Framed messages waiting for the driver, all connections together.
pub(super) const TO_DRIVER_QUEUE: usize = 1024;

/// The `[sip]` settings for TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub max_per_source: usize,
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> TcpLimits {
        TcpLimits {
            max_connections: 1024,
            max_per_source: 64,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// What happened to TCP connections since the start, for `/metrics`.
#[derive(Debug, Default)]
pub struct TcpCounters {
    pub accepted: AtomicU64,
    /// Closed at accept: the source is not in the allow-list.
    pub not_allowed: AtomicU64,
    /// Refused at accept: the node was full and the newcomer's source held
    /// as many as any other.
    pub refused: AtomicU64,
    /// Closed to make room for a newcomer.
    pub evicted: AtomicU64,
    pub idle: AtomicU64,
    /// Closed: the peer did not read its answers.
    pub slow_reader: AtomicU64,
    /// Closed: the stream could not be framed (too large, bad length).
    pub framing: AtomicU64,
}

/// The driver's handle on a connection: send on it, keep it alive.
#[derive(Debug, Clone)]
pub(super) struct TcpConnection {
    writer: mpsc::Sender<Vec<u8>>,
    shared: Arc<Shared>,
    counters: Arc<TcpCounters>,
}

impl TcpConnection {
    /// Queues `bytes` for the peer; a peer with [`WRITE_QUEUE`] messages
    /// unread is closed instead. False when nothing was queued.
    pub(super) fn send(&self, bytes: Vec<u8>) -> bool {
        match self.writer.try_send(bytes) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Counted once, however many answers follow before it closes.
                if !self.shared.closing.swap(true, Ordering::Relaxed) {
                    self.counters.slow_reader.fetch_add(1, Ordering::Relaxed);
                    self.shared.close.notify_one();
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// A call runs on this connection: it is not idle.
    pub(super) fn touch(&self) {
        self.shared.touch();
    }
}

/// What a connection task tells the driver.
pub(super) enum FromTcp {
    Opened(SocketAddr, TcpConnection),
    Message(SocketAddr, Vec<u8>),
    Closed(SocketAddr),
}

/// Shared by a connection's task, the driver and the accept loop.
#[derive(Debug)]
struct Shared {
    /// When the accept loop started; `last_active` counts from it.
    base: Instant,
    last_active_ms: AtomicU64,
    close: Notify,
    /// Set when the driver gave up on an unread peer.
    closing: AtomicBool,
}

impl Shared {
    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    fn last_active(&self) -> Instant {
        self.base + Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed))
    }
}

/// Accepts connections on `listener` until the driver is gone.
pub(super) async fn accept(
    listener: TcpListener,
    allowed: Vec<IpNet>,
    limits: TcpLimits,
    to_driver: mpsc::Sender<FromTcp>,
    counters: Arc<TcpCounters>,
) {
    let base = Instant::now();
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel::<(u64, IpAddr)>();
    let mut registry = Registry::default();
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            Some((id, source)) = closed_rx.recv() => registry.remove(id, source),
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors, mostly: wait rather than spin.
                        tracing::warn!(error = %e, "TCP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if to_driver.is_closed() {
                    return;
                }
                let source = unmapped(peer.ip());
                if !any_contains(&allowed, source) {
                    counters.not_allowed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "SIP over TCP from a source not allowed; closed");
                    continue;
                }
                match registry.make_room(source, &limits) {
                    Room::Free => {}
                    Room::Evicted(victim) => {
                        counters.evicted.fetch_add(1, Ordering::Relaxed);
                        victim.close.notify_one();
                    }
                    Room::Refused => {
                        counters.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, "SIP over TCP: connection limit; closed");
                        continue;
                    }
                }
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                let shared = Arc::new(Shared {
                    base,
                    last_active_ms: AtomicU64::new(0),
                    close: Notify::new(),
                    closing: AtomicBool::new(false),
                });
                shared.touch();
                next_id += 1;
                registry.add(next_id, source, shared.clone());
                let (writer, queued) = mpsc::channel(WRITE_QUEUE);
                let handle = TcpConnection {
                    writer,
                    shared,
                    counters: counters.clone(),
                };
                tokio::spawn(connection(
                    stream,
                    peer,
                    (handle, queued),
                    limits.idle_timeout,
                    to_driver.clone(),
                    Closed { id: next_id, source, tx: closed_tx.clone() },
                ));
            }
        }
    }
}

/// Tells the accept loop a connection is gone, however its task ends.
struct Closed {
    id: u64,
    source: IpAddr,
    tx: mpsc::UnboundedSender<(u64, IpAddr)>,
}

impl Drop for Closed {
    fn drop(&mut self) {
        let _ = self.tx.send((self.id, self.source));
    }
}

/// One connection: frames what it reads for the driver; writes what the
/// driver queued (`queued`) on a task of its own, so that a peer that does
/// not read blocks only that task.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    (handle, mut queued): (TcpConnection, mpsc::Receiver<Vec<u8>>),
    idle_timeout: Duration,
    to_driver: mpsc::Sender<FromTcp>,
    _closed: Closed,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    if to_driver
        .send(FromTcp::Opened(peer, handle.clone()))
        .await
        .is_err()
    {
        return;
    }
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = queued.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let shared = handle.shared.clone();
    let counters = handle.counters.clone();
    let mut framer = StreamFramer::new();
    let mut chunk = [0u8; 4096];
    'read: loop {
        let idle_at = shared.last_active() + idle_timeout;
        tokio::select! {
            read = reader.read(&mut chunk) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                shared.touch();
                framer.push(chunk.get(..n).unwrap_or_default());
                loop {
                    match framer.next_frame() {
                        Ok(None) => break,
                        Ok(Some(Frame::KeepAlive { pong })) => {
                            if pong && !handle.send(b"\r\n".to_vec()) {
                                break 'read;
                            }
                        }
                        Ok(Some(Frame::Message(message))) => {
                            if to_driver.send(FromTcp::Message(peer, message)).await.is_err() {
                                break 'read;
                            }
                        }
                        Err(error) => {
                            counters.framing.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, %error, "SIP over TCP cannot be framed; closing");
                            if let FramingError::BadLength { head, .. } = error {
                                // The endpoint answers 400 if it can (RFC
                                // 4475 §3.1.2.3); give it a moment to leave.
                                let _ = to_driver.send(FromTcp::Message(peer, head)).await;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            break 'read;
                        }
                    }
                }
            }
            () = shared.close.notified() => break,
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(idle_at)) => {
                if shared.last_active() + idle_timeout <= Instant::now() {
                    counters.idle.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "SIP over TCP idle; closing");
                    break;
                }
            }
        }
    }
    let _ = to_driver.send(FromTcp::Closed(peer)).await;
    // What is queued may still leave, briefly: a peer that does not read
    // gets no more than that.
    drop(handle);
    tokio::time::sleep(Duration::from_millis(20)).await;
    write_task.abort();
}

/// Open connections per source, with what the accept loop needs to close
/// one.
#[derive(Debug, Default)]
struct Registry {
    by_source: HashMap<IpAddr, Vec<(u64, Arc<Shared>)>>,
    total: usize,
}

/// Whether a newcomer may be accepted.
enum Room {
    Free,
    /// Accepted; this connection is closed for it (already out of the
    /// registry).
    Evicted(Arc<Shared>),
    Refused,
}

impl Registry {
    fn add(&mut self, id: u64, source: IpAddr, shared: Arc<Shared>) {
        self.by_source.entry(source).or_default().push((id, shared));
        self.total += 1;
    }

    fn remove(&mut self, id: u64, source: IpAddr) {
        if let Some(list) = self.by_source.get_mut(&source)
            && let Some(i) = list.iter().position(|(c, _)| *c == id)
        {
            list.swap_remove(i);
            self.total -= 1;
            if list.is_empty() {
                self.by_source.remove(&source);
            }
        }
    }

    fn count(&self, source: IpAddr) -> usize {
        self.by_source.get(&source).map_or(0, Vec::len)
    }

    /// See the module doc: the source's own oldest at its limit; the
    /// heaviest source's oldest when the node is full.
    fn make_room(&mut self, source: IpAddr, limits: &TcpLimits) -> Room {
        let own = self.count(source);
        if own >= limits.max_per_source {
            return self.evict_from(source);
        }
        if self.total < limits.max_connections {
            return Room::Free;
        }
        let heaviest = self
            .by_source
            .iter()
            .max_by_key(|(_, list)| list.len())
            .map(|(s, list)| (*s, list.len()));
        match heaviest {
            Some((victim, held)) if held > own + 1 => self.evict_from(victim),
            Some(_) | None => Room::Refused,
        }
    }

    /// Takes the least recently active connection of `source` out.
    fn evict_from(&mut self, source: IpAddr) -> Room {
        let Some(list) = self.by_source.get_mut(&source) else {
            return Room::Refused;
        };
        let Some(oldest) = (0..list.len()).min_by_key(|&i| list[i].1.last_active()) else {
            return Room::Refused;
        };
        let (_, shared) = list.swap_remove(oldest);
        self.total -= 1;
        if list.is_empty() {
            self.by_source.remove(&source);
        }
        Room::Evicted(shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(base: Instant, ms: u64) -> Arc<Shared> {
        Arc::new(Shared {
            base,
            last_active_ms: AtomicU64::new(ms),
            close: Notify::new(),
            closing: AtomicBool::new(false),
        })
    }

    #[test]
    fn a_full_node_gives_way_to_a_newcomer_at_the_heaviest_sources_expense() {
        let base = Instant::now();
        let limits = TcpLimits {
            max_connections: 4,
            max_per_source: 3,
            idle_timeout: Duration::from_secs(60),
        };
        let (a, b, trunk): (IpAddr, IpAddr, IpAddr) = (
            "127.0.0.2".parse().unwrap(),
            "127.0.0.3".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        );
        let mut r = Registry::default();
        for (id, ms) in [(1, 30), (2, 10), (3, 20)] {
            assert!(matches!(r.make_room(a, &limits), Room::Free));
            r.add(id, a, shared(base, ms));
        }
        // `a` at its own limit: its least recently active goes.
        let Room::Evicted(old) = r.make_room(a, &limits) else {
            panic!("a's own")
        };
        assert_eq!(old.last_active_ms.load(Ordering::Relaxed), 10);
        r.add(4, a, shared(base, 40));
        r.add(5, b, shared(base, 50));
        assert_eq!(r.total, 4);
        // Full: the trunk (none held) takes the place of a's oldest.
        let Room::Evicted(old) = r.make_room(trunk, &limits) else {
            panic!("room for the trunk")
        };
        assert_eq!(old.last_active_ms.load(Ordering::Relaxed), 20);
        r.add(6, trunk, shared(base, 60));
        // Now a holds 2, b 1, the trunk 1: b's second is refused rather
        // than taken from a source holding barely more.
        assert!(matches!(r.make_room(b, &limits), Room::Refused));
        r.remove(5, b);
        r.remove(5, b); // twice: ignored
        assert_eq!((r.total, r.count(b)), (3, 0));
    }
}
