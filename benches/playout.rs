//! Playout engine at scale: N simultaneous RTP sessions (default 5000)
//! playing a shared prompt, paced by one ticker thread per core over the
//! sans-IO `Pacer`, each call sending real UDP from its own RTP and RTCP
//! sockets (as the runtime does) to a sink on loopback. Prints CPU per
//! stream, send lateness (deadline → datagram handed to the kernel)
//! p50/p99/max and memory per call, for each send path.
//!
//! `cargo bench --bench playout -- [streams] [seconds] [both|uring|sendto|shared|nosend] [early µs]`
//!
//! `both` (the default) runs `sendto` (one syscall per packet) and then
//! `uring` (runtime::udp_batch: one io_uring_enter per tick), each for
//! `seconds`; `nosend` builds every packet and skips the syscall.
//! `shared` is not the engine but a measure of a design it does not use:
//! each ticker sends its tick's packets from *one* socket with `sendmmsg`
//! (docs/benchmarks.md, "the one lever that would").
//!
//! `early` (default 500, as `runtime::media`): each wake-up also serves the
//! deadlines of the next `early` µs (sent up to that much before their
//! deadline, never after), so a ticker wakes less often with more packets
//! per wake; 0 serves exactly what is due (the engine before).

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mensa::load::io::BatchSocket;
use mensa::media::g711::Law;
use mensa::media::pacing::{Lateness, Pacer};
use mensa::media::playout::Prompt;
use mensa::media::session::{
    AudioCodec, Channel, MediaParams, RtpSession, SessionConfig, SessionSeed, TelephoneEvent,
};
use mensa::runtime::udp_batch::{DEFAULT_SLOTS, SendMode, UdpBatch};

fn proc_field(file: &str, index: usize) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            // /proc/self/stat: skip past the command name in parentheses.
            let s = s.rsplit(')').next().unwrap_or(&s).to_string();
            s.split_whitespace().nth(index).and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resident set size in bytes.
fn rss() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    pages * 4096
}

/// User + system CPU time of the process.
fn cpu_time() -> Duration {
    // Fields 14 and 15 (utime, stime) are 12 and 13 after the ')'.
    let ticks = proc_field("/proc/self/stat", 11) + proc_field("/proc/self/stat", 12);
    Duration::from_millis(ticks * 10)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Send(SendMode),
    /// One socket per ticker, a tick's packets in `sendmmsg` batches.
    Shared,
    NoSend,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let streams: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let paths = match args.get(2).map(String::as_str) {
        None | Some("both") => vec![Path::Send(SendMode::SendTo), Path::Send(SendMode::Uring)],
        Some("nosend") => vec![Path::NoSend],
        Some("shared") => vec![Path::Shared],
        Some(m) => match SendMode::parse(m) {
            Some(mode) => vec![Path::Send(mode)],
            None => {
                eprintln!("usage: playout [streams] [seconds] [both|uring|sendto|shared|nosend]");
                std::process::exit(2);
            }
        },
    };
    if paths.contains(&Path::Send(SendMode::Uring)) && SendMode::detect() != SendMode::Uring {
        println!("io_uring unavailable here: the uring run falls back to sendto");
    }
    let early = Duration::from_micros(args.get(3).and_then(|a| a.parse().ok()).unwrap_or(500));
    let tickers = std::thread::available_parallelism().map_or(2, |n| n.get());

    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    let sink_addr = sink.local_addr().expect("sink address");
    // The sink only holds the port open: the kernel drops what overflows
    // its buffer, so the figures are the sender's alone.

    // A 3 s prompt, shared by every call.
    let tone: Vec<i16> = (0..24_000)
        .map(|i| ((i as f32 * 0.37).sin() * 6000.0) as i16)
        .collect();
    let prompt = Arc::new(Prompt::from_samples("bench", &tone));

    for path in paths {
        run(streams, seconds, tickers, path, early, sink_addr, &prompt);
    }
    drop(sink);
}

/// One call of the bench: its session and its two sockets.
struct Stream {
    session: RtpSession,
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

fn run(
    streams: usize,
    seconds: u64,
    tickers: usize,
    path: Path,
    early: Duration,
    sink_addr: std::net::SocketAddr,
    prompt: &Arc<Prompt>,
) {
    let socket = || {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind a call's socket");
        s.set_nonblocking(true).expect("non-blocking");
        s
    };
    let rss_before = rss();
    let start = Instant::now() + Duration::from_millis(200);
    let mut shards: Vec<Vec<Stream>> = (0..tickers).map(|_| Vec::new()).collect();
    for i in 0..streams {
        let params = MediaParams {
            codec: AudioCodec {
                law: Law::ALaw,
                payload_type: 8,
            },
            telephone_event: Some(TelephoneEvent {
                payload_type: 101,
                clock_rate: 8000,
            }),
            ptime: Duration::from_millis(20),
            remote_rtp: sink_addr,
            remote_rtcp: Some(sink_addr),
            signalling: None,
        };
        let seed = SessionSeed {
            ssrc: i as u32,
            sequence: i as u16,
            timestamp: i as u32 * 7,
            ntp: 0,
        };
        // Spread call starts over one ptime, as real arrivals are.
        let t = start + Duration::from_micros((i as u64 * 20_000) / streams as u64);
        let mut s = RtpSession::new(t, params, SessionConfig::default(), seed);
        for _ in 0..(seconds / 3 + 1) {
            s.play(prompt.clone());
        }
        shards[i % tickers].push(Stream {
            session: s,
            rtp: socket(),
            rtcp: socket(),
        });
    }
    let rss_after = rss();
    let cpu0 = cpu_time();

    let handles: Vec<_> = shards
        .into_iter()
        .map(|mut calls| {
            std::thread::spawn(move || {
                let mode = match path {
                    Path::Send(mode) => mode,
                    Path::Shared | Path::NoSend => SendMode::SendTo,
                };
                let mut batch = UdpBatch::new(mode, DEFAULT_SLOTS);
                let mut shared = (path == Path::Shared).then(|| {
                    BatchSocket::bind("127.0.0.1:0".parse().expect("address"), 64, 2048)
                        .expect("bind the shared socket")
                });
                let mut tick_out: Vec<(std::net::SocketAddr, Vec<u8>)> = Vec::new();
                let mut shared_sent = 0u64;
                let per_packet = batch.mode() == SendMode::SendTo;
                let mut pacer = Pacer::new();
                for (k, c) in calls.iter().enumerate() {
                    if let Some(t) = c.session.poll_timeout() {
                        pacer.schedule(k, t);
                    }
                }
                let end = start + Duration::from_secs(seconds);
                let mut late = Lateness::default();
                let mut built = 0u64;
                let mut due = Vec::new();
                while let Some(next) = pacer.next_deadline() {
                    if next > end {
                        break;
                    }
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    let now = Instant::now();
                    while let Some(deadline) = pacer.next_deadline() {
                        let Some(k) = pacer.pop_due(now + early) else {
                            break;
                        };
                        let c = &mut calls[k];
                        // A session served early sees its deadline as the
                        // time (never earlier than before: deadlines and
                        // `now` only grow).
                        c.session.handle_timeout(now.max(deadline));
                        while let Some(tx) = c.session.poll_transmit() {
                            built += 1;
                            if path == Path::NoSend {
                                late.record(Instant::now().saturating_duration_since(deadline));
                                continue;
                            }
                            if shared.is_some() {
                                tick_out.push((tx.destination, tx.payload));
                                due.push(deadline);
                                continue;
                            }
                            let socket = match tx.channel {
                                Channel::Rtp => &c.rtp,
                                Channel::Rtcp => &c.rtcp,
                            };
                            batch.send(socket, tx.payload, tx.destination, k as u64);
                            if per_packet {
                                late.record(Instant::now().saturating_duration_since(deadline));
                            } else {
                                due.push(deadline);
                            }
                        }
                        while c.session.poll_event().is_some() {}
                        if let Some(t) = c.session.poll_timeout() {
                            pacer.schedule(k, t);
                        }
                    }
                    batch.flush();
                    if let Some(socket) = &mut shared {
                        // `send_all` returns what the kernel refused.
                        let refused = socket.send_all(&tick_out);
                        shared_sent += tick_out.len() as u64 - refused;
                        tick_out.clear();
                    }
                    let sent = Instant::now();
                    for deadline in due.drain(..) {
                        late.record(sent.saturating_duration_since(deadline));
                    }
                }
                batch.complete_all();
                let mut st = batch.stats();
                st.sent += shared_sent;
                (late, built, st, batch.mode())
            })
        })
        .collect();
    let mut all = Vec::new();
    let (mut built, mut sent, mut dropped, mut failed, mut submits) = (0, 0, 0, 0, 0);
    let mut used = None;
    for h in handles {
        let (l, b, st, mode) = h.join().expect("ticker thread");
        built += b;
        sent += st.sent;
        dropped += st.dropped;
        failed += st.failed;
        submits += st.submits;
        used = Some(mode);
        all.push(l);
    }
    let cpu = cpu_time().saturating_sub(cpu0);

    let how = match (path, used) {
        (Path::NoSend, _) => "packets built, not sent".to_string(),
        (Path::Shared, _) => "one socket per ticker, sendmmsg per tick".to_string(),
        (_, Some(SendMode::Uring)) => "io_uring, one submit per tick".to_string(),
        (_, _) => "one sendto per packet".to_string(),
    };
    let early = if early.is_zero() {
        String::new()
    } else {
        format!(", deadlines served up to {early:?} early")
    };
    println!("playout: {streams} streams, {seconds} s, {tickers} ticker threads, {how}{early}");
    let expected = streams as u64 * seconds * 50;
    println!("  packets built {built} (RTP due: {expected}, plus RTCP)");
    if path != Path::NoSend {
        println!(
            "  sent {sent}, dropped (buffer full) {dropped}, failed {failed}, io_uring_enter calls {submits}"
        );
    }
    let per_stream = cpu.as_secs_f64() / (streams as f64 * seconds as f64);
    println!(
        "  CPU (whole process): {:.2} s = {:.1} µs per stream-second ({:.3} % of a core per stream)",
        cpu.as_secs_f64(),
        per_stream * 1e6,
        per_stream * 100.0
    );
    for (i, l) in all.iter().enumerate() {
        println!(
            "  ticker {i}: send lateness p50 {:?} p99 {:?} max {:?} over {} packets",
            l.quantile(0.5),
            l.quantile(0.99),
            l.max(),
            l.count()
        );
    }
    println!(
        "  memory: {:.1} KiB per call (RSS growth creating the sessions and sockets)",
        rss_after.saturating_sub(rss_before) as f64 / 1024.0 / streams as f64
    );
}
