//! The RTP port pool: even ports of the configured range for RTP, the odd
//! port above each for RTCP (RFC 3550 §11). A call takes a pair at the
//! INVITE and gives it back when it ends; an empty pool is a 503 for that
//! call, never a crash.
//!
//! Released pairs go to the back of the queue, so a port is reused as late
//! as possible and stray packets of a finished call rarely reach a new one.
//! A pair whose bind fails (another program holds it) is skipped and kept
//! in the pool for later.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

/// The two sockets of one call's media.
#[derive(Debug)]
pub struct PortPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    /// The even port.
    pub port: u16,
}

/// Free even ports of the range.
#[derive(Debug)]
pub struct PortPool {
    free: VecDeque<u16>,
    capacity: usize,
}

impl PortPool {
    /// Even ports `p` with `low <= p` and `p + 1 <= high`.
    pub fn new(low: u16, high: u16) -> PortPool {
        let first = low + low % 2;
        let free: VecDeque<u16> = (first..high).step_by(2).collect();
        PortPool {
            capacity: free.len(),
            free,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Binds the next free pair on `ip` (non-blocking sockets); `None` when
    /// every free pair failed to bind or none is left.
    pub fn allocate(&mut self, ip: IpAddr) -> Option<PortPair> {
        self.allocate_with(|port| bind_pair(ip, port))
    }

    /// [`PortPool::allocate`] with the binding given (tests inject errors).
    /// A port another program holds is skipped; running out of descriptors
    /// or memory stops at once: every other port would fail the same way,
    /// and trying them all would cost a failed `socket()` per free port,
    /// for each INVITE.
    fn allocate_with(
        &mut self,
        mut bind: impl FnMut(u16) -> io::Result<(UdpSocket, UdpSocket)>,
    ) -> Option<PortPair> {
        for _ in 0..self.free.len() {
            let port = self.free.pop_front()?;
            match bind(port) {
                Ok((rtp, rtcp)) => return Some(PortPair { rtp, rtcp, port }),
                Err(e) if out_of_resources(&e) => {
                    tracing::warn!(error = %e, "no socket for an RTP pair: out of descriptors or memory");
                    self.free.push_front(port);
                    return None;
                }
                Err(e) => {
                    tracing::debug!(port, error = %e, "RTP port pair busy; skipped");
                    self.free.push_back(port);
                }
            }
        }
        None
    }

    /// Gives a pair back (its sockets may still be closing elsewhere: the
    /// pair goes to the back of the queue).
    pub fn release(&mut self, port: u16) {
        debug_assert!(!self.free.contains(&port));
        self.free.push_back(port);
    }
}

/// The process or the system is out of descriptors (`EMFILE`, `ENFILE`:
/// see `runtime::open_files`) or buffers, not this port.
fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn bind_pair(ip: IpAddr, port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    let rtp = UdpSocket::bind(SocketAddr::new(ip, port))?;
    let rtcp = UdpSocket::bind(SocketAddr::new(ip, port + 1))?;
    rtp.set_nonblocking(true)?;
    rtcp.set_nonblocking(true)?;
    Ok((rtp, rtcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_pairs_exhaustion_and_reuse_last() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // Find a free stretch: a pool over a range the test binds itself.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        let (low, high) = (base.saturating_sub(40) & !1, base.saturating_sub(35));
        let mut pool = PortPool::new(low, high);
        assert_eq!(pool.capacity(), 3); // low, low+2, low+4 (low+5 ≤ high)
        let mut pairs = Vec::new();
        while let Some(p) = pool.allocate(ip) {
            assert_eq!(p.port % 2, 0);
            assert_eq!(p.rtcp.local_addr().unwrap().port(), p.port + 1);
            pairs.push(p);
        }
        assert!(pairs.len() <= 3);
        assert!(pool.allocate(ip).is_none(), "exhausted");
        if pairs.len() < 3 {
            return; // another program holds a port of the stretch
        }
        let first = pairs.remove(0);
        let port = first.port;
        drop(first);
        pool.release(port);
        assert_eq!(pool.allocate(ip).map(|p| p.port), Some(port));
    }

    #[test]
    fn a_busy_port_is_skipped_but_running_out_of_descriptors_stops_at_once() {
        let pair = || {
            let s = || UdpSocket::bind("127.0.0.1:0").unwrap();
            Ok((s(), s()))
        };
        let mut pool = PortPool::new(40_000, 40_009); // 5 pairs
        // The first port is held by another program: the next one is used.
        let got = pool.allocate_with(|port| {
            if port == 40_000 {
                Err(io::Error::from_raw_os_error(libc::EADDRINUSE))
            } else {
                pair()
            }
        });
        assert_eq!(got.map(|p| p.port), Some(40_002));
        assert_eq!(pool.available(), 4, "the busy port stays in the pool");
        // Out of descriptors: one attempt, nothing lost from the pool.
        let mut attempts = 0;
        let got = pool.allocate_with(|_| {
            attempts += 1;
            Err(io::Error::from_raw_os_error(libc::EMFILE))
        });
        assert!(got.is_none());
        assert_eq!(attempts, 1);
        assert_eq!(pool.available(), 4);
        // The port tried first is tried first again.
        let got = pool.allocate_with(|_| pair());
        assert_eq!(got.map(|p| p.port), Some(40_004));
    }
}
