//! Batched UDP sends across many sockets: every datagram a media tick
//! produces, whatever call (socket) it leaves from, handed to the kernel
//! with one `io_uring_enter` (issue 4, "pacing at scale").
//!
//! `sendmmsg` batches datagrams of *one* socket; each call sends from its
//! own port (the one in its SDP, for symmetric RTP), so a tick's packets
//! leave from as many sockets as there are due calls. io_uring takes a
//! `SendMsg` entry per datagram, each naming its own socket:
//!
//! ```text
//!   send(socket, payload, to) ──► free slot ◄─ payload, address, iovec, msghdr
//!                                 SQE SendMsg(fd, &slot.msg, MSG_DONTWAIT)
//!   flush()  ──► one io_uring_enter for every queued SQE
//!            ──► reap the CQEs present (never waits): slot freed,
//!                 sent / dropped (EAGAIN, ENOBUFS) / failed
//! ```
//!
//! `MSG_DONTWAIT` makes the kernel complete a send that finds the socket
//! buffer full at once with `EAGAIN` instead of parking it until the socket
//! is writable: the packet is dropped (logged at debug) and the shard never
//! stalls, exactly as a non-blocking `send_to` would.
//!
//! Where io_uring is unavailable (old kernel, `io_uring_disabled`, seccomp
//! in some containers: ENOSYS, EPERM), [`SendMode::SendTo`] sends each
//! datagram at once with `send_to`, with the same counters and the same
//! drop-on-full behaviour. [`SendMode::detect`] chooses once, at start.
//!
//! # The unsafe part and its invariant
//!
//! This is the one module of the crate allowed `unsafe` (docs/decisions.md,
//! "Batched RTP sends through io_uring"). Pushing an SQE hands the kernel
//! raw pointers: the `msghdr`, through it the destination address and the
//! `iovec`, through that the payload bytes. The invariant:
//!
//! 1. **Buffers.** A slot (payload `Vec`, address, iovec, msghdr) lives in
//!    a boxed slice allocated once and never resized, so its address is
//!    stable; it is owned by the kernel from the push of its SQE until its
//!    CQE is reaped, and is neither written nor reused (not on the free
//!    list) in between. [`UdpBatch`]'s `Drop` waits for every in-flight
//!    CQE, and leaks the slots if it cannot, so the memory is never freed
//!    under the kernel.
//! 2. **File descriptors.** An SQE names its socket by number. It must be
//!    submitted before that socket may be closed (a closed number can be
//!    reused by another socket at once, by any thread). Callers close a
//!    socket only when nothing is queued ([`UdpBatch::all_submitted`],
//!    true after a [`UdpBatch::flush`] that handed everything over, and
//!    after [`UdpBatch::complete_all`]): once submitted, a request holds
//!    its own reference to the file until it completes, so closing the
//!    descriptor then cannot make it send from another socket.
//!
//! Receiving has its half here too: [`RecvBatch`] reads a readable socket
//! with one `recvmmsg` (synchronous: the kernel keeps no pointer after the
//! call, so its only invariant is that the buffers it is given are as long
//! as it is told).
//!
//! Tests: the unit tests below send over real loopback sockets through both
//! modes (many sockets and one submit, order and content per socket, a full
//! receiver, an erroring datagram among good ones, a slot table smaller
//! than the batch so slots are recycled mid-batch, drop with sends in
//! flight).

#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{IoUring, opcode, types};
use socket2::{SockAddr, SockAddrStorage};

/// How a shard's datagrams reach the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendMode {
    /// One `io_uring_enter` per tick for every datagram of the tick.
    Uring,
    /// One `send_to` per datagram (the fallback).
    SendTo,
}

impl SendMode {
    /// io_uring if this kernel lets the process use it (and has
    /// `IORING_OP_SENDMSG`), else `SendTo`. Logs the choice.
    pub fn detect() -> SendMode {
        // On a throwaway thread: tearing a ring down queues kernel task
        // work on the thread that created it, which interrupts a blocking
        // syscall there with EINTR (a socket read with a timeout does not
        // restart). The caller's thread must not pay for our probe.
        let probed = std::thread::Builder::new()
            .name("io_uring-probe".into())
            .spawn(probe)
            .map_err(io::Error::other)
            .and_then(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(io::Error::other("io_uring probe panicked")))
            });
        match probed {
            Ok(()) => {
                tracing::info!("media sends batched through io_uring, one submit per tick");
                SendMode::Uring
            }
            Err(e) => {
                tracing::info!(error = %e, "io_uring unavailable; media sends one sendto per packet");
                SendMode::SendTo
            }
        }
    }

    /// `"uring"` or `"sendto"`.
    pub fn parse(s: &str) -> Option<SendMode> {
        match s {
            "uring" | "io_uring" => Some(SendMode::Uring),
            "sendto" | "send_to" => Some(SendMode::SendTo),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SendMode::Uring => "io_uring",
            SendMode::SendTo => "sendto",
        }
    }
}

fn probe() -> io::Result<()> {
    let ring = IoUring::new(8)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    if probe.is_supported(opcode::SendMsg::CODE) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "IORING_OP_SENDMSG not supported",
        ))
    }
}

/// A socket the batch can send from: its descriptor for io_uring, its
/// `send_to` for the fallback.
pub trait Datagram: AsRawFd {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;
}

impl Datagram for std::net::UdpSocket {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        std::net::UdpSocket::send_to(self, buf, to)
    }
}

impl Datagram for mio::net::UdpSocket {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        mio::net::UdpSocket::send_to(self, buf, to)
    }
}

/// What happened to the datagrams whose outcome is known so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendStats {
    /// Accepted by the kernel.
    pub sent: u64,
    /// Socket buffer full (EAGAIN, ENOBUFS): dropped, as a late RTP packet
    /// would be useless anyway.
    pub dropped: u64,
    /// Any other error (unreachable, bad address...).
    pub failed: u64,
    /// `io_uring_enter` calls (0 in `SendTo` mode).
    pub submits: u64,
}

/// Sends datagrams from many sockets, batched per [`UdpBatch::flush`].
///
/// Contract: call `flush` at the end of every tick (until then, io_uring
/// datagrams are only queued); close a socket that was passed to `send`
/// only when `all_submitted` (after a `flush`, or `complete_all`), and drop
/// the batch before such sockets (module doc, invariant 2).
pub struct UdpBatch {
    ring: Option<Ring>,
    stats: SendStats,
}

/// Default number of slots: datagrams in flight at once per shard. A tick
/// of 5,000 calls over 2 shards spread over 20 ms is ~150 datagrams.
pub const DEFAULT_SLOTS: u32 = 1024;

impl UdpBatch {
    /// A batch in `mode` with room for `slots` datagrams in flight (a
    /// power of two is best: the ring rounds up). If the ring cannot be
    /// set up, falls back to `SendTo` and logs why.
    pub fn new(mode: SendMode, slots: u32) -> UdpBatch {
        let ring = match mode {
            SendMode::SendTo => None,
            SendMode::Uring => match Ring::new(slots.max(1)) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot set up io_uring; one sendto per packet");
                    None
                }
            },
        };
        UdpBatch {
            ring,
            stats: SendStats::default(),
        }
    }

    pub fn mode(&self) -> SendMode {
        if self.ring.is_some() {
            SendMode::Uring
        } else {
            SendMode::SendTo
        }
    }

    /// Sends `payload` from `socket` to `to`: queued until the next
    /// `flush` with io_uring, at once with `send_to`. `tag` (the call id)
    /// only names the datagram in logs.
    pub fn send(&mut self, socket: &impl Datagram, payload: Vec<u8>, to: SocketAddr, tag: u64) {
        if let Some(ring) = &mut self.ring {
            match ring.queue(socket.as_raw_fd(), payload, to, tag, &mut self.stats) {
                Ok(()) => return,
                // No slot even after waiting: send this one directly.
                Err(payload) => {
                    let r = socket.send_to(&payload, to);
                    count(&mut self.stats, r.map(|_| ()), tag, to);
                    return;
                }
            }
        }
        let r = socket.send_to(&payload, to);
        count(&mut self.stats, r.map(|_| ()), tag, to);
    }

    /// Submits every queued datagram with one `io_uring_enter` and reaps
    /// the completions already there, without waiting. Returns how many
    /// were submitted (0 in `SendTo` mode).
    pub fn flush(&mut self) -> usize {
        match &mut self.ring {
            Some(ring) => {
                let n = ring.submit(&mut self.stats);
                ring.reap(&mut self.stats);
                n
            }
            None => 0,
        }
    }

    /// Submits what is queued and waits until every datagram in flight is
    /// done: afterwards no socket passed to `send` is referenced by the
    /// kernel on our behalf, and may be closed.
    pub fn complete_all(&mut self) {
        if let Some(ring) = &mut self.ring {
            ring.submit(&mut self.stats);
            ring.wait_all(&mut self.stats);
        }
    }

    /// True when every datagram given to `send` has been handed to the
    /// kernel (always in `SendTo` mode): the sockets they name may be
    /// closed now, even if some are still in flight (invariant 2).
    pub fn all_submitted(&self) -> bool {
        self.ring.as_ref().is_none_or(|r| r.queued == 0)
    }

    /// Datagrams queued or in flight (0 in `SendTo` mode).
    pub fn in_flight(&self) -> usize {
        self.ring.as_ref().map_or(0, |r| r.in_flight)
    }

    pub fn stats(&self) -> SendStats {
        self.stats
    }
}

/// One datagram handed to the kernel: everything its SQE points at.
struct Slot {
    payload: Vec<u8>,
    to: SockAddr,
    iov: libc::iovec,
    msg: libc::msghdr,
    tag: u64,
    dest: Option<SocketAddr>,
}

impl Slot {
    fn empty() -> Slot {
        Slot {
            payload: Vec::new(),
            to: SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0))),
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            // SAFETY: `msghdr` is a plain C struct of integers and raw
            // pointers (plus private padding on some libcs, hence not a
            // struct literal); all-zero is its valid empty value (null
            // pointers, zero lengths), as C code initialises it.
            msg: unsafe { std::mem::zeroed() },
            tag: 0,
            dest: None,
        }
    }
}

struct Ring {
    ring: IoUring,
    /// Allocated once, never resized: the kernel holds pointers into it
    /// (invariant 1).
    slots: Box<[Slot]>,
    free: Vec<u32>,
    /// Pushed to the submission queue and not yet submitted.
    queued: usize,
    /// Pushed and not yet reaped (includes `queued`).
    in_flight: usize,
}

impl Ring {
    fn new(slots: u32) -> io::Result<Ring> {
        let ring = match IoUring::builder().setup_submit_all().build(slots) {
            Ok(r) => r,
            // SUBMIT_ALL is Linux 5.18; without it a failing SQE stops
            // the submit and `submit` loops over the rest.
            Err(_) => IoUring::new(slots)?,
        };
        // The ring rounds up to a power of two; one slot per SQE, so a
        // free slot always means room in the submission queue.
        let n = ring.params().sq_entries();
        let slots: Box<[Slot]> = (0..n).map(|_| Slot::empty()).collect();
        let free = (0..n).rev().collect();
        Ok(Ring {
            ring,
            slots,
            free,
            queued: 0,
            in_flight: 0,
        })
    }

    /// Queues one datagram; gives the payload back if no slot can be had.
    fn queue(
        &mut self,
        fd: RawFd,
        payload: Vec<u8>,
        to: SocketAddr,
        tag: u64,
        stats: &mut SendStats,
    ) -> Result<(), Vec<u8>> {
        if self.free.is_empty() {
            // A full table within one tick: submit what we have, take
            // back what completed (sends on non-blocking sockets complete
            // inside the submit), and wait only if nothing did.
            self.submit(stats);
            self.reap(stats);
            if self.free.is_empty() {
                self.wait_one(stats);
            }
        }
        let Some(i) = self.free.pop() else {
            return Err(payload);
        };
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return Err(payload);
        };
        slot.payload = payload;
        slot.to = SockAddr::from(to);
        slot.tag = tag;
        slot.dest = Some(to);
        slot.iov = libc::iovec {
            iov_base: slot.payload.as_ptr() as *mut libc::c_void,
            iov_len: slot.payload.len(),
        };
        slot.msg.msg_name = slot.to.as_ptr() as *mut libc::c_void;
        slot.msg.msg_namelen = slot.to.len();
        slot.msg.msg_iov = &mut slot.iov;
        slot.msg.msg_iovlen = 1;
        let entry = opcode::SendMsg::new(types::Fd(fd), &slot.msg)
            .flags(libc::MSG_DONTWAIT as u32)
            .build()
            .user_data(u64::from(i));
        // SAFETY: the entry points at `slot.msg`, which points at
        // `slot.to`, `slot.iov` and through it at `slot.payload`'s heap
        // bytes. All live in `self.slots`, allocated once and never
        // resized, and slot `i` was just taken off the free list: nothing
        // writes to it or frees it until its CQE (user_data `i`) is reaped
        // in `reap`/`wait_*`, and `Drop` waits for every in-flight CQE
        // (invariant 1). `fd` is open now and the caller keeps it open
        // until `complete_all` (invariant 2).
        let pushed = unsafe { self.ring.submission().push(&entry) };
        if pushed.is_err() {
            // Cannot happen (one slot per SQE, module doc); be safe anyway.
            let payload = std::mem::take(&mut slot.payload);
            slot.dest = None;
            self.free.push(i);
            return Err(payload);
        }
        self.queued += 1;
        self.in_flight += 1;
        Ok(())
    }

    /// One `io_uring_enter` for everything queued (a few more only if the
    /// kernel stopped early, without SUBMIT_ALL). Returns how many.
    fn submit(&mut self, stats: &mut SendStats) -> usize {
        let mut total = 0;
        for _ in 0..8 {
            if self.ring.submission().is_empty() {
                break;
            }
            stats.submits += 1;
            match self.ring.submit() {
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EBUSY/EAGAIN: completions must be reaped first.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.reap(stats),
                Err(e) => {
                    tracing::error!(error = %e, "io_uring submit failed");
                    break;
                }
            }
        }
        self.queued = self.ring.submission().len();
        total
    }

    /// Takes every completion present, without waiting.
    fn reap(&mut self, stats: &mut SendStats) {
        for cqe in self.ring.completion() {
            let i = cqe.user_data() as u32;
            let Some(slot) = self.slots.get_mut(i as usize) else {
                continue;
            };
            // The kernel is done with slot `i`: it may be reused.
            slot.payload = Vec::new();
            let to = slot.dest.take();
            let result = cqe.result();
            let outcome = if result >= 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(-result))
            };
            if let Some(to) = to {
                count(stats, outcome, slot.tag, to);
            }
            self.free.push(i);
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }

    fn wait_one(&mut self, stats: &mut SendStats) {
        if self.in_flight > self.queued && self.ring.submit_and_wait(1).is_ok() {
            self.reap(stats);
        }
    }

    /// Waits for every submitted datagram's completion.
    fn wait_all(&mut self, stats: &mut SendStats) -> bool {
        for _ in 0..1000 {
            self.reap(stats);
            if self.in_flight <= self.queued {
                return self.queued == 0;
            }
            let want = self.in_flight - self.queued;
            match self.ring.submit_and_wait(want) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!(error = %e, "io_uring wait failed");
                    return false;
                }
            }
        }
        false
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Submitted entries must complete before the slots are freed; if
        // that cannot be confirmed, leak the slots (invariant 1). Queued
        // ones are submitted too: the owner drops the batch before the
        // sockets (or has called `complete_all`), so their fds are open.
        let mut stats = SendStats::default();
        self.submit(&mut stats);
        if self.in_flight > 0 && !self.wait_all(&mut stats) {
            std::mem::forget(std::mem::take(&mut self.slots));
        }
    }
}

/// Datagrams read by one [`RecvBatch::recv`].
pub const RECV_BATCH: usize = 16;
/// Largest datagram read (Ethernet MTU is plenty for G.711 RTP).
pub const MAX_DATAGRAM: usize = 2048;

/// Reads a socket's waiting datagrams with one `recvmmsg`, instead of a
/// `recv_from` per datagram plus the one that finds the socket empty.
///
/// After an edge-triggered readiness event the socket must be read until
/// it is empty: when `recv` returns fewer than [`RECV_BATCH`] datagrams it
/// is (recvmmsg with `MSG_DONTWAIT` stops at the first `EAGAIN`), so a lone
/// RTP packet costs one syscall instead of two.
pub struct RecvBatch {
    bufs: Box<[[u8; MAX_DATAGRAM]]>,
    names: Box<[SockAddrStorage]>,
    /// Index in `bufs`, source, length.
    got: Vec<(usize, SocketAddr, usize)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![[0u8; MAX_DATAGRAM]; RECV_BATCH].into_boxed_slice(),
            names: (0..RECV_BATCH).map(|_| SockAddrStorage::zeroed()).collect(),
            got: Vec::with_capacity(RECV_BATCH),
        }
    }

    /// Reads up to [`RECV_BATCH`] datagrams waiting on `socket` without
    /// blocking: `Ok(n)` with `n >= 1`, or `WouldBlock` when none waits.
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.got.clear();
        let mut iovs: [libc::iovec; RECV_BATCH] = std::array::from_fn(|_| libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        });
        // SAFETY: `mmsghdr` is a plain C struct of integers and raw
        // pointers (plus private padding on some libcs); all-zero is its
        // valid empty value.
        let mut msgs: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
        for (((buf, name), iov), msg) in self
            .bufs
            .iter_mut()
            .zip(self.names.iter_mut())
            .zip(iovs.iter_mut())
            .zip(msgs.iter_mut())
        {
            iov.iov_base = buf.as_mut_ptr() as *mut libc::c_void;
            iov.iov_len = buf.len();
            msg.msg_hdr.msg_name = (name as *mut SockAddrStorage).cast();
            msg.msg_hdr.msg_namelen = name.size_of();
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every pointer in `msgs` (names, iovecs, and through them
        // the buffers) points into `self.bufs`, `self.names` or `iovs`,
        // which outlive this call and are not otherwise touched during it;
        // the lengths given are those of those buffers. `recvmmsg` is
        // synchronous: the kernel keeps no pointer after it returns.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                RECV_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        for (i, (msg, name)) in msgs
            .iter()
            .zip(self.names.iter_mut())
            .take(n as usize)
            .enumerate()
        {
            let storage = std::mem::replace(name, SockAddrStorage::zeroed());
            // SAFETY: the kernel wrote the sender's address into `storage`
            // and its length into `msg_namelen` (never more than the
            // storage's size, which it was given).
            let from = unsafe { SockAddr::new(storage, msg.msg_hdr.msg_namelen) }.as_socket();
            let len = (msg.msg_len as usize).min(MAX_DATAGRAM);
            // A datagram without an IP source cannot be RTP: skipped.
            if let Some(from) = from {
                self.got.push((i, from, len));
            }
        }
        Ok(n as usize)
    }

    /// The datagrams of the last `recv`: source and bytes.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.got.iter().map(|&(i, from, len)| {
            let data = self.bufs.get(i).and_then(|b| b.get(..len));
            (from, data.unwrap_or_default())
        })
    }
}

fn count(stats: &mut SendStats, outcome: io::Result<()>, tag: u64, to: SocketAddr) {
    match outcome {
        Ok(()) => stats.sent += 1,
        Err(e) if is_full(&e) => {
            stats.dropped += 1;
            tracing::debug!(call = tag, destination = %to, error = %e, "socket buffer full; RTP packet dropped");
        }
        Err(e) => {
            stats.failed += 1;
            tracing::debug!(call = tag, destination = %to, error = %e, "RTP send failed");
        }
    }
}

/// A full socket or device queue: the packet is dropped, not retried.
fn is_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS)
}

#[cfg(test)]
#[path = "udp_batch_tests.rs"]
mod tests;
