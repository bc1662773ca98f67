//! Real loopback sockets through both modes. Where io_uring is unavailable
//! `UdpBatch::new(SendMode::Uring, _)` falls back to `send_to`, so the
//! `Uring` runs then test the fallback twice (they say so on stderr).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::*;

const MODES: [SendMode; 2] = [SendMode::Uring, SendMode::SendTo];

fn batch(mode: SendMode, slots: u32) -> UdpBatch {
    let b = UdpBatch::new(mode, slots);
    if b.mode() != mode {
        eprintln!("io_uring unavailable here: testing the fallback instead");
    }
    b
}

fn sender() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

fn receiver() -> (UdpSocket, SocketAddr) {
    let r = UdpSocket::bind("127.0.0.1:0").unwrap();
    r.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let a = r.local_addr().unwrap();
    (r, a)
}

/// Every datagram waiting on `r` (until 200 ms of silence), with its source.
fn drain(r: &UdpSocket) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok((n, from)) = r.recv_from(&mut buf) {
        out.push((from, buf[..n].to_vec()));
    }
    out
}

/// Sender `s`, sequence `q`: a recognisable 172-byte RTP-sized payload.
fn payload(s: u16, q: u16) -> Vec<u8> {
    let mut p = vec![0u8; 172];
    p[..2].copy_from_slice(&s.to_be_bytes());
    p[2..4].copy_from_slice(&q.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(4) {
        *b = (i as u16 ^ s ^ q) as u8;
    }
    p
}

#[test]
fn many_sockets_one_submit_every_datagram_intact_and_in_order() {
    for mode in MODES {
        let senders: Vec<UdpSocket> = (0..64).map(|_| sender()).collect();
        let receivers: Vec<(UdpSocket, SocketAddr)> = (0..8).map(|_| receiver()).collect();
        let mut b = batch(mode, 1024);
        // A tick's worth: 64 calls × 8 datagrams, interleaved across
        // sockets, each sender always to the same receiver.
        for q in 0..8u16 {
            for (s, socket) in senders.iter().enumerate() {
                let to = receivers[s % receivers.len()].1;
                b.send(socket, payload(s as u16, q), to, s as u64);
            }
        }
        if b.mode() == SendMode::Uring {
            assert_eq!(b.stats().sent, 0, "nothing leaves before the flush");
            assert_eq!(b.flush(), 512);
            assert_eq!(b.stats().submits, 1, "one io_uring_enter for the tick");
        } else {
            b.flush();
        }
        b.complete_all();
        assert_eq!(
            b.stats(),
            SendStats {
                sent: 512,
                submits: b.stats().submits,
                ..SendStats::default()
            }
        );
        assert_eq!(b.in_flight(), 0);

        let port_of: HashMap<SocketAddr, usize> = senders
            .iter()
            .enumerate()
            .map(|(i, s)| (s.local_addr().unwrap(), i))
            .collect();
        let mut next = vec![0u16; senders.len()];
        for (r, _) in &receivers {
            for (from, data) in drain(r) {
                let s = port_of[&from];
                assert_eq!(data, payload(s as u16, next[s]), "{mode:?}: sender {s}");
                next[s] += 1;
            }
        }
        assert!(next.iter().all(|&n| n == 8), "{mode:?}: {next:?}");
    }
}

#[test]
fn slots_are_recycled_when_a_tick_has_more_datagrams_than_slots() {
    for mode in MODES {
        let socket = sender();
        let (r, to) = receiver();
        let mut b = batch(mode, 4);
        for q in 0..100 {
            b.send(&socket, payload(7, q), to, 7);
        }
        b.flush();
        b.complete_all();
        assert_eq!(b.stats().sent, 100, "{mode:?}");
        let got: Vec<Vec<u8>> = drain(&r).into_iter().map(|(_, d)| d).collect();
        let want: Vec<Vec<u8>> = (0..100).map(|q| payload(7, q)).collect();
        assert_eq!(got, want, "{mode:?}");
    }
}

#[test]
fn a_full_receiver_drops_rather_than_blocks() {
    for mode in MODES {
        let socket = sender();
        let r = socket2::Socket::from(UdpSocket::bind("127.0.0.1:0").unwrap());
        // The kernel's minimum: a handful of datagrams.
        r.set_recv_buffer_size(1).unwrap();
        let r = UdpSocket::from(r);
        r.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let to = r.local_addr().unwrap();
        let mut b = batch(mode, 256);
        let total = 5000;
        for q in 0..total {
            b.send(&socket, payload(1, q), to, 1);
        }
        b.flush();
        b.complete_all();
        let st = b.stats();
        assert_eq!(
            st.sent + st.dropped + st.failed,
            u64::from(total),
            "{mode:?}: every datagram accounted for, none waiting: {st:?}"
        );
        let got = drain(&r);
        assert!(
            !got.is_empty() && got.len() < total as usize,
            "{mode:?}: the receiver kept {} of {total}",
            got.len()
        );
        // What arrived is intact and in order (the rest was dropped).
        let mut last = None;
        for (_, d) in got {
            let q = u16::from_be_bytes([d[2], d[3]]);
            assert_eq!(d, payload(1, q));
            assert!(last < Some(q));
            last = Some(q);
        }
    }
}

#[test]
fn a_failing_datagram_does_not_stop_the_others() {
    for mode in MODES {
        let socket = sender();
        let (r, to) = receiver();
        // An IPv6 destination from an IPv4 socket: refused by the kernel.
        let bad: SocketAddr = "[::1]:9".parse().unwrap();
        let mut b = batch(mode, 64);
        for q in 0..10 {
            b.send(&socket, payload(2, q), to, 2);
            b.send(&socket, payload(2, 1000 + q), bad, 2);
        }
        b.flush();
        b.complete_all();
        let st = b.stats();
        assert_eq!((st.sent, st.failed, st.dropped), (10, 10, 0), "{mode:?}");
        let got: Vec<Vec<u8>> = drain(&r).into_iter().map(|(_, d)| d).collect();
        let want: Vec<Vec<u8>> = (0..10).map(|q| payload(2, q)).collect();
        assert_eq!(got, want, "{mode:?}");
    }
}

#[test]
fn dropping_the_batch_sends_what_is_queued_and_waits_for_it() {
    for mode in MODES {
        let socket = sender();
        let (r, to) = receiver();
        let mut b = batch(mode, 64);
        for q in 0..20 {
            b.send(&socket, payload(3, q), to, 3);
        }
        drop(b);
        assert_eq!(drain(&r).len(), 20, "{mode:?}");
    }
}

#[test]
fn full_buffers_are_drops_other_errors_are_failures() {
    assert!(is_full(&io::Error::from_raw_os_error(libc::EAGAIN)));
    assert!(is_full(&io::Error::from_raw_os_error(libc::ENOBUFS)));
    assert!(!is_full(&io::Error::from_raw_os_error(libc::ECONNREFUSED)));
    let mut st = SendStats::default();
    let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
    count(
        &mut st,
        Err(io::Error::from_raw_os_error(libc::EAGAIN)),
        0,
        to,
    );
    count(
        &mut st,
        Err(io::Error::from_raw_os_error(libc::EINVAL)),
        0,
        to,
    );
    count(&mut st, Ok(()), 0, to);
    assert_eq!((st.sent, st.dropped, st.failed), (1, 1, 1));
}

#[test]
fn send_modes_parse_and_fallback_is_explicit() {
    assert_eq!(SendMode::parse("uring"), Some(SendMode::Uring));
    assert_eq!(SendMode::parse("sendto"), Some(SendMode::SendTo));
    assert_eq!(SendMode::parse("nope"), None);
    assert_eq!(UdpBatch::new(SendMode::SendTo, 8).mode(), SendMode::SendTo);
}

#[test]
fn recv_batch_reads_what_waits_in_one_call_and_says_when_empty() {
    let r = UdpSocket::bind("127.0.0.1:0").unwrap();
    r.set_nonblocking(true).unwrap();
    let to = r.local_addr().unwrap();
    let mut rb = RecvBatch::new();
    assert_eq!(
        rb.recv(&r).unwrap_err().kind(),
        io::ErrorKind::WouldBlock,
        "nothing waiting"
    );
    let a = sender();
    let b = sender();
    let total = RECV_BATCH + 5;
    for q in 0..total as u16 {
        let s = if q % 2 == 0 { &a } else { &b };
        s.send_to(&payload(q % 2, q), to).unwrap();
    }
    let mut got = Vec::new();
    loop {
        match rb.recv(&r) {
            Ok(n) => {
                assert_eq!(rb.datagrams().count(), n);
                got.extend(rb.datagrams().map(|(from, d)| (from, d.to_vec())));
                if n < RECV_BATCH {
                    break;
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got.len(), total, "a short batch means the socket is empty");
    for (q, (from, d)) in got.iter().enumerate() {
        let s = if q % 2 == 0 { &a } else { &b };
        assert_eq!(*from, s.local_addr().unwrap());
        assert_eq!(*d, payload(q as u16 % 2, q as u16));
    }
    assert_eq!(rb.recv(&r).unwrap_err().kind(), io::ErrorKind::WouldBlock);
}
