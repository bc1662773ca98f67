//! The loopback ceiling: how many small UDP datagrams per second this
//! machine moves from one socket to another, with batched system calls
//! (`sendmmsg`/`recvmmsg`) and with one call per datagram, so that a
//! server's figures can be given as a share of what the machine can do.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::io::BatchSocket;

/// Datagrams per second received, each way of sending.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ceiling {
    pub payload_bytes: usize,
    pub seconds_each: f64,
    pub batched_per_s: f64,
    pub one_call_per_packet_per_s: f64,
}

/// Blasts 172-byte datagrams (an RTP G.711 frame) over loopback for
/// `each` per mode, a sender thread and a receiver thread.
pub fn measure(each: Duration) -> io::Result<Ceiling> {
    const SIZE: usize = 172;
    let batched = blast(each, SIZE, true)?;
    let single = blast(each, SIZE, false)?;
    Ok(Ceiling {
        payload_bytes: SIZE,
        seconds_each: each.as_secs_f64(),
        batched_per_s: batched,
        one_call_per_packet_per_s: single,
    })
}

fn blast(each: Duration, size: usize, batched: bool) -> io::Result<f64> {
    let local: SocketAddr = "127.0.0.1:0".parse().map_err(io::Error::other)?;
    let mut rx = BatchSocket::bind(local, 64, 2048)?;
    let to = rx.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || -> io::Result<()> {
            let mut tx = BatchSocket::bind(local, 64, 16)?;
            let plain = UdpSocket::bind(local)?;
            let batch: Vec<(SocketAddr, Vec<u8>)> =
                (0..64).map(|_| (to, vec![0x80; size])).collect();
            while !stop.load(Ordering::Relaxed) {
                if batched {
                    tx.send_all(&batch);
                } else {
                    for (a, p) in &batch {
                        let _ = plain.send_to(p, a);
                    }
                }
            }
            Ok(())
        })
    };
    let counter = received.clone();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut plain_buf = vec![0u8; 2048];
    let plain = rx.socket.try_clone()?;
    while start.elapsed() < each {
        if batched {
            match rx.recv_batch(&mut got) {
                Ok(0) => std::thread::yield_now(),
                Ok(n) => {
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        } else {
            match plain.recv_from(&mut plain_buf) {
                Ok(_) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => return Err(e),
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    Ok(received.load(Ordering::Relaxed) as f64 / elapsed)
}
