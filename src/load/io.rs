//! Batched UDP for the load driver: `recvmmsg`/`sendmmsg` through nix's
//! safe wrappers, so a tick's packets cost one system call per socket
//! rather than one each (IPv4 only: the generator runs on loopback or a
//! test network).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg, setsockopt,
    sockopt,
};
use nix::sys::time::TimeSpec;

/// One socket with its preallocated batch buffers.
pub struct BatchSocket {
    pub socket: UdpSocket,
    recv_headers: MultiHeaders<SockaddrIn>,
    send_headers: MultiHeaders<SockaddrIn>,
    bufs: Vec<Vec<u8>>,
    batch: usize,
}

/// Datagrams received by one call: (length, source, when the kernel
/// received it if the socket was asked for timestamps) for each buffer used.
pub type Received = Vec<(usize, SocketAddr, Option<SystemTime>)>;

impl BatchSocket {
    /// Binds `addr` non-blocking with `batch` buffers of `size` bytes and
    /// large kernel buffers (forced when we may, as root).
    pub fn bind(addr: SocketAddr, batch: usize, size: usize) -> io::Result<BatchSocket> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let bytes = 16 << 20;
        if setsockopt(&socket, sockopt::RcvBufForce, &bytes).is_err() {
            let _ = setsockopt(&socket, sockopt::RcvBuf, &bytes);
        }
        if setsockopt(&socket, sockopt::SndBufForce, &bytes).is_err() {
            let _ = setsockopt(&socket, sockopt::SndBuf, &bytes);
        }
        Ok(BatchSocket {
            socket,
            recv_headers: MultiHeaders::preallocate(batch, None),
            send_headers: MultiHeaders::preallocate(batch, None),
            bufs: vec![vec![0; size]; batch],
            batch,
        })
    }

    /// Asks the kernel to stamp each datagram with when it arrived
    /// (`SO_TIMESTAMPNS`), so what a busy generator measures about the
    /// server's packet spacing is the server's, not the generator's own
    /// delay in reading them.
    pub fn stamp_arrivals(&mut self) -> io::Result<()> {
        setsockopt(&self.socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
        self.recv_headers = MultiHeaders::preallocate(self.batch, Some(nix::cmsg_space!(TimeSpec)));
        Ok(())
    }

    /// Reports ICMP errors (port unreachable) as receive errors.
    pub fn report_icmp(&self) {
        let _ = setsockopt(&self.socket, sockopt::Ipv4RecvErr, &true);
    }

    /// How many datagrams one [`BatchSocket::recv_batch`] takes at most.
    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Datagrams the kernel dropped on this socket because its receive
    /// buffer was full: the generator did not read in time. `None` where
    /// `/proc` does not say (not Linux, no procfs).
    pub fn drops(&self) -> Option<u64> {
        socket_drops(&self.socket)
    }

    /// Receives up to one batch without blocking; `got` lists what arrived,
    /// read with [`BatchSocket::datagram`]. `Ok(0)` when none is waiting.
    pub fn recv_batch(&mut self, got: &mut Received) -> io::Result<usize> {
        got.clear();
        let fd = self.socket.as_raw_fd();
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .iter_mut()
            .map(|b| [IoSliceMut::new(&mut b[..])])
            .collect();
        match recvmmsg(
            fd,
            &mut self.recv_headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(results) => {
                for r in results {
                    let from = r.address.map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |a| {
                        SocketAddr::V4(SocketAddrV4::from(a))
                    });
                    let arrived = r.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::ScmTimestampns(ts) => {
                                let since_epoch = Duration::new(
                                    u64::try_from(ts.tv_sec()).ok()?,
                                    u32::try_from(ts.tv_nsec()).ok()?,
                                );
                                Some(SystemTime::UNIX_EPOCH + since_epoch)
                            }
                            _ => None,
                        })
                    });
                    got.push((r.bytes, from, arrived));
                }
                Ok(got.len())
            }
            Err(Errno::EAGAIN) => Ok(0),
            Err(e) => Err(io::Error::from(e)),
        }
    }

    /// The `i`th datagram of the last [`BatchSocket::recv_batch`].
    pub fn datagram(&self, i: usize, len: usize) -> &[u8] {
        &self.bufs[i][..len.min(self.bufs[i].len())]
    }

    /// Sends every datagram of `out` in as few calls as the batch size
    /// allows; returns how many could not be sent (a full socket buffer
    /// or an error), which are dropped.
    pub fn send_all(&mut self, out: &[(SocketAddr, Vec<u8>)]) -> u64 {
        let fd = self.socket.as_raw_fd();
        let mut dropped = 0;
        let mut rest = out;
        while !rest.is_empty() {
            let n = rest.len().min(self.batch);
            let (now, later) = rest.split_at(n);
            let slices: Vec<[IoSlice<'_>; 1]> =
                now.iter().map(|(_, p)| [IoSlice::new(p)]).collect();
            let addrs: Vec<Option<SockaddrIn>> = now
                .iter()
                .map(|(a, _)| match a {
                    SocketAddr::V4(v4) => Some(SockaddrIn::from(*v4)),
                    SocketAddr::V6(_) => None,
                })
                .collect();
            let sent = match sendmmsg(
                fd,
                &mut self.send_headers,
                &slices,
                &addrs,
                [],
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(results) => results.count(),
                Err(Errno::EAGAIN | Errno::ENOBUFS) => 0,
                // An ICMP error queued by an earlier datagram surfaces here
                // (ECONNREFUSED): the datagram was not sent; go on.
                Err(_) => 0,
            };
            if sent == 0 {
                // Skip the first: it is the one the kernel refused.
                dropped += 1;
                rest = &rest[1..];
            } else {
                rest = &rest[sent..];
            }
            let _ = later;
        }
        dropped
    }
}

/// The kernel's count of datagrams dropped on `socket` (a full receive
/// buffer, mostly): the `drops` column of `/proc/net/udp`, found by the
/// socket's inode.
pub fn socket_drops(socket: &UdpSocket) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    let inode: u64 = link
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|table| udp_drops(&table, inode))
}

/// In a `/proc/net/udp` table, the `drops` of the socket with `inode`.
fn udp_drops(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        let this: u64 = fields.get(9)?.parse().ok()?;
        (this == inode).then(|| fields.get(12)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_read_from_the_kernel_table_by_inode() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
 1083: 0100007F:D2F0 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0\n\
 1201: 0100007F:EA66 00000000:0000 07 00000000:00034000 00:00000000 00000000     0        0 4343 2 0000000000000000 517\n";
        assert_eq!(udp_drops(table, 4343), Some(517));
        assert_eq!(udp_drops(table, 4242), Some(0));
        assert_eq!(udp_drops(table, 9999), None);
    }

    #[test]
    fn a_socket_not_read_in_time_counts_its_drops() {
        // A receiver with the smallest buffer, never read while 500
        // datagrams arrive: what it holds plus what it dropped is all.
        let receiver = BatchSocket::bind("127.0.0.1:0".parse().unwrap(), 64, 2048).unwrap();
        let _ = setsockopt(&receiver.socket, sockopt::RcvBuf, &1);
        let to = receiver.local_addr().unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = receiver.drops().expect("/proc/net/udp lists the socket");
        for i in 0..500u32 {
            sender.send_to(&i.to_be_bytes(), to).unwrap();
        }
        let mut receiver = receiver;
        let mut got = Received::new();
        let mut held = 0;
        while let Ok(n) = receiver.recv_batch(&mut got) {
            if n == 0 {
                break;
            }
            held += n as u64;
        }
        let dropped = receiver.drops().unwrap() - before;
        assert!(dropped > 0, "a 1-byte buffer cannot hold 500 datagrams");
        assert_eq!(held + dropped, 500);
    }
}
