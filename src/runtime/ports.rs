//! The RTP port pool: even ports of the configured range for RTP, the odd
//! port above each for RTCP (RFC 3550 §11). A call takes a pair at the
//! INVITE and gives it back when it ends; an empty pool is a 503 for that
//! call, never a crash.
//!
//! * **Unpredictable.** A call gets a pair drawn at random (a CSPRNG) from
//!   the free ones, so the port of the next call cannot be told from the
//!   last ones an outsider saw in our SDP (docs/security.md).
//! * **Quarantined after use.** A released pair rests for [`QUARANTINE`]
//!   before it can be drawn again: a finished call's relay may go on
//!   sending for a moment, and its packets (plausible, in sequence) must
//!   not reach the next call on that port. When every free pair is
//!   resting, the one that has rested longest is used rather than a 503.
//! * A pair whose bind fails (another program holds it) is skipped and
//!   kept for later; running out of descriptors stops at once.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How long a released pair rests before it is drawn again.
pub const QUARANTINE: Duration = Duration::from_secs(10);

/// The two sockets of one call's media.
#[derive(Debug)]
pub struct PortPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    /// The even port.
    pub port: u16,
}

/// The even ports of the range: free, or resting after a call.
#[derive(Debug)]
pub struct PortPool {
    free: Vec<u16>,
    /// Released pairs with the end of their rest, oldest first.
    resting: VecDeque<(u16, Instant)>,
    capacity: usize,
    rng: StdRng,
}

impl PortPool {
    /// Even ports `p` with `low <= p` and `p + 1 <= high`, drawn with OS
    /// randomness.
    pub fn new(low: u16, high: u16) -> PortPool {
        PortPool::with_rng(low, high, StdRng::from_entropy())
    }

    fn with_rng(low: u16, high: u16, rng: StdRng) -> PortPool {
        let first = low + low % 2;
        let free: Vec<u16> = (first..high).step_by(2).collect();
        PortPool {
            capacity: free.len(),
            free,
            resting: VecDeque::new(),
            rng,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Pairs not in use (resting ones included).
    pub fn available(&self) -> usize {
        self.free.len() + self.resting.len()
    }

    /// Binds a free pair drawn at random on `ip` (non-blocking sockets);
    /// `None` when every pair failed to bind or none is left.
    pub fn allocate(&mut self, ip: IpAddr, now: Instant) -> Option<PortPair> {
        self.allocate_with(now, |port| bind_pair(ip, port))
    }

    /// [`PortPool::allocate`] with the binding given (tests inject errors).
    /// A port another program holds is skipped (and rests); running out of
    /// descriptors or memory stops at once: every other port would fail
    /// the same way, and trying them all would cost a failed `socket()`
    /// per free port, for each INVITE.
    fn allocate_with(
        &mut self,
        now: Instant,
        mut bind: impl FnMut(u16) -> io::Result<(UdpSocket, UdpSocket)>,
    ) -> Option<PortPair> {
        while self.resting.front().is_some_and(|(_, until)| *until <= now) {
            if let Some((port, _)) = self.resting.pop_front() {
                self.free.push(port);
            }
        }
        for _ in 0..self.available() {
            let port = if self.free.is_empty() {
                // Everything rests: the longest rested is the safest.
                self.resting.pop_front()?.0
            } else {
                let i = self.rng.gen_range(0..self.free.len());
                self.free.swap_remove(i)
            };
            match bind(port) {
                Ok((rtp, rtcp)) => return Some(PortPair { rtp, rtcp, port }),
                Err(e) if out_of_resources(&e) => {
                    tracing::warn!(error = %e, "no socket for an RTP pair: out of descriptors or memory");
                    self.free.push(port);
                    return None;
                }
                Err(e) => {
                    tracing::debug!(port, error = %e, "RTP port pair busy; skipped");
                    self.resting.push_back((port, now + QUARANTINE));
                }
            }
        }
        None
    }

    /// Gives a pair back (its sockets may still be closing elsewhere): it
    /// rests for [`QUARANTINE`] from `now`.
    pub fn release(&mut self, port: u16, now: Instant) {
        debug_assert!(!self.free.contains(&port));
        self.resting.push_back((port, now + QUARANTINE));
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

    fn pair() -> io::Result<(UdpSocket, UdpSocket)> {
        let s = || UdpSocket::bind("127.0.0.1:0").unwrap();
        Ok((s(), s()))
    }

    #[test]
    fn even_pairs_bound_for_real_and_exhaustion() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // Find a free stretch: a pool over a range the test binds itself.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port() & !1;
        drop(probe);
        let (low, high) = (base.saturating_sub(40) & !1, base.saturating_sub(35));
        let mut pool = PortPool::new(low, high);
        assert_eq!(pool.capacity(), 3); // low, low+2, low+4 (low+5 ≤ high)
        let now = Instant::now();
        let mut pairs = Vec::new();
        while let Some(p) = pool.allocate(ip, now) {
            assert_eq!(p.port % 2, 0);
            assert!((low..high).contains(&p.port));
            assert_eq!(p.rtcp.local_addr().unwrap().port(), p.port + 1);
            pairs.push(p);
        }
        assert!(pairs.len() <= 3);
        assert!(pool.allocate(ip, now).is_none(), "exhausted");
    }

    #[test]
    fn the_next_port_cannot_be_told_from_the_last_ones() {
        let now = Instant::now();
        let order = |seed: u64| {
            let mut pool = PortPool::with_rng(20_000, 29_999, StdRng::seed_from_u64(seed));
            (0..100)
                .map(|_| pool.allocate_with(now, |_| pair()).unwrap().port)
                .collect::<Vec<u16>>()
        };
        let (a, b) = (order(1), order(2));
        assert_ne!(a, b, "another seed, another order");
        // Not a walk through the range: few steps of one pair up or down.
        let adjacent = a.windows(2).filter(|w| w[0].abs_diff(w[1]) == 2).count();
        assert!(adjacent < 5, "{a:?}");
        // Spread over the range, not bunched at its start.
        assert!(a.iter().any(|&p| p > 25_000), "{a:?}");
    }

    #[test]
    fn a_released_pair_rests_before_it_is_drawn_again() {
        let t0 = Instant::now();
        let mut pool = PortPool::with_rng(40_000, 40_005, StdRng::seed_from_u64(3)); // 3 pairs
        let first = pool.allocate_with(t0, |_| pair()).unwrap().port;
        pool.release(first, t0);
        let mut drawn = Vec::new();
        for _ in 0..2 {
            drawn.push(pool.allocate_with(t0, |_| pair()).unwrap().port);
        }
        assert!(!drawn.contains(&first), "resting: {drawn:?}");
        // Every free pair taken: the resting one rather than a 503.
        assert_eq!(
            pool.allocate_with(t0, |_| pair()).map(|p| p.port),
            Some(first)
        );
        pool.release(first, t0);
        for port in drawn {
            pool.release(port, t0 + Duration::from_secs(1));
        }
        // After its rest it is free again, the others still rest.
        let later = t0 + QUARANTINE;
        assert_eq!(
            pool.allocate_with(later, |_| pair()).map(|p| p.port),
            Some(first)
        );
    }

    #[test]
    fn a_busy_port_is_skipped_but_running_out_of_descriptors_stops_at_once() {
        let now = Instant::now();
        let mut pool = PortPool::with_rng(40_000, 40_009, StdRng::seed_from_u64(4)); // 5 pairs
        // The first port drawn is held by another program: another is used.
        let mut busy = None;
        let got = pool.allocate_with(now, |port| {
            if busy.is_none() {
                busy = Some(port);
                Err(io::Error::from_raw_os_error(libc::EADDRINUSE))
            } else {
                pair()
            }
        });
        let got = got.map(|p| p.port);
        assert!(got.is_some() && got != busy);
        assert_eq!(pool.available(), 4, "the busy port stays in the pool");
        // Out of descriptors: one attempt, nothing lost from the pool.
        let mut attempts = 0;
        let got = pool.allocate_with(now, |_| {
            attempts += 1;
            Err(io::Error::from_raw_os_error(libc::EMFILE))
        });
        assert!(got.is_none());
        assert_eq!(attempts, 1);
        assert_eq!(pool.available(), 4);
    }
}
