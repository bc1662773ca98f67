//! The real call runtime with N simultaneous established calls on
//! loopback: SIP INVITE/ACK from a load generator in the same process (one
//! UDP socket), every call's RTP paced by the media ticker threads and sent
//! to a sink, optionally RTP from the "callers" too. Prints the tickers'
//! send lateness (deadline → datagram handed to the kernel), CPU of the
//! media threads and of the whole process, and memory per call.
//!
//! `cargo bench --bench calls -- [calls] [seconds] [rtp] [sendto|uring]`
//! (`rtp`: the generator also sends each call a packet every 20 ms).
//! The media engine sends through io_uring where the kernel allows it;
//! `sendto` (or `uring`) among the arguments forces the send path.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mensa::media::prompts::PromptLibrary;
use mensa::media::session::SessionConfig;
use mensa::runtime::calls::{CallEvent, CallHandle, CallInfo, CallLogic, CallsConfig, start};
use mensa::runtime::udp_batch::SendMode;
use mensa::sip::config::EndpointConfig;

/// Listens until the call ends.
struct Idle;

impl CallLogic for Idle {
    fn has_dialplan(&self, _: &str) -> bool {
        true
    }
    fn start(&self, _call: CallInfo, mut handle: CallHandle) {
        tokio::spawn(async move {
            while let Some(e) = handle.recv().await {
                if matches!(e, CallEvent::Ended(_)) {
                    break;
                }
            }
        });
    }
}

/// utime + stime of a /proc stat line, in clock ticks (10 ms).
fn stat_ticks(stat: &str) -> u64 {
    let rest = stat.rsplit(')').next().unwrap_or(stat);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum()
}

/// CPU of the whole process, and of the threads whose name starts with
/// `media-`.
fn cpu() -> (Duration, Duration) {
    let all = std::fs::read_to_string("/proc/self/stat")
        .map(|s| stat_ticks(&s))
        .unwrap_or(0);
    let mut media = 0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.starts_with("media-") {
                media += std::fs::read_to_string(t.path().join("stat"))
                    .map(|s| stat_ticks(&s))
                    .unwrap_or(0);
            }
        }
    }
    (
        Duration::from_millis(all * 10),
        Duration::from_millis(media * 10),
    )
}

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

fn request(method: &str, i: usize, cseq: u32, to_tag: &str, me: SocketAddr, body: &str) -> String {
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:800082653@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bKb{i}{method}{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:3331234567@127.0.0.1>;tag=g{i}\r\n\
         To: <sip:800082653@127.0.0.1>{to_tag}\r\nCall-ID: bench-{i}@127.0.0.1\r\n\
         CSeq: {cseq} {method}\r\nContact: <sip:3331234567@{me}>\r\n\
         {ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn field<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| l.strip_prefix(prefix))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // Numbers: calls, then seconds; words: "rtp" (the callers stream
    // audio too), "sendto" or "uring" (force the media send path).
    let numbers: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let calls = numbers.first().map_or(1000, |n| *n as usize);
    let seconds = numbers.get(1).copied().unwrap_or(10);
    let caller_rtp = args.iter().any(|a| a == "rtp");
    let media_send = args.iter().find_map(|a| SendMode::parse(a));

    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let config = CallsConfig {
        sip_listen: "127.0.0.1:0".parse().expect("addr"),
        media_ip: "127.0.0.1".parse().expect("ip"),
        bind_ip: "127.0.0.1".parse().expect("ip"),
        rtp_ports: (20_000, 29_999),
        session: SessionConfig {
            inactivity_timeout: Duration::from_secs(3600),
            ..SessionConfig::default()
        },
        tickers: 0,
        media_send,
        media_priority: None,
        overload_lateness: None,
        overload_lag: None,
        shutdown_grace: Duration::from_secs(1),
        sip_tcp: Default::default(),
    };
    let mut endpoint = EndpointConfig::demo("127.0.0.1:5060".parse().expect("addr"), 3);
    endpoint.max_concurrent_calls = 20_000;
    endpoint.max_calls_per_second = 20_000;
    let rss0 = rss();
    let server = rt
        .block_on(start(
            config,
            endpoint,
            Arc::new(PromptLibrary::default()),
            Arc::new(Idle),
        ))
        .expect("runtime");

    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    let sink_port = sink.local_addr().expect("sink").port();
    let sip = UdpSocket::bind("127.0.0.1:0").expect("sip");
    let me = sip.local_addr().expect("me");
    sip.set_nonblocking(true).expect("nonblocking");
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {sink_port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n"
    );
    // Set up the calls at about 1000 per second.
    let setup = Instant::now();
    let mut answered: HashMap<usize, (String, u16)> = HashMap::new();
    let mut buf = vec![0u8; 8192];
    let mut sent = 0;
    while answered.len() < calls && setup.elapsed() < Duration::from_secs(60) {
        let due = (setup.elapsed().as_millis() as usize).min(calls);
        while sent < due {
            let invite = request("INVITE", sent, 1, "", me, &sdp);
            let _ = sip.send_to(invite.as_bytes(), server.sip_addr);
            sent += 1;
        }
        while let Ok((n, _)) = sip.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]);
            if !m.starts_with("SIP/2.0 200") || !m.contains("CSeq: 1 INVITE") {
                continue;
            }
            let i = field(&m, "Call-ID: bench-")
                .and_then(|c| c.split('@').next())
                .and_then(|c| c.parse::<usize>().ok());
            let tag = field(&m, "To: ").and_then(|t| t.split(";tag=").nth(1));
            let port = field(&m, "m=audio ")
                .and_then(|l| l.split_whitespace().next())
                .and_then(|p| p.parse::<u16>().ok());
            if let (Some(i), Some(tag), Some(port)) = (i, tag, port) {
                let ack = request("ACK", i, 1, tag, me, "");
                let _ = sip.send_to(ack.as_bytes(), server.sip_addr);
                answered.insert(i, (tag.to_owned(), port));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let setup_time = setup.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let rss1 = rss();
    let (cpu0, media0) = cpu();
    let before = rt.block_on(server.stats()).expect("stats");

    // Hold the calls, optionally sending each one RTP every 20 ms.
    let run = Instant::now();
    let ports: Vec<u16> = answered.values().map(|(_, p)| *p).collect();
    let mut tick = 0u32;
    let silence = {
        let mut p = vec![0x80, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&[0xD5; 160]);
        p
    };
    while run.elapsed() < Duration::from_secs(seconds) {
        if caller_rtp {
            let mut pkt = silence.clone();
            pkt[2..4].copy_from_slice(&(tick as u16).to_be_bytes());
            pkt[4..8].copy_from_slice(&(tick * 160).to_be_bytes());
            for p in &ports {
                let _ = sink.send_to(&pkt, SocketAddr::from(([127, 0, 0, 1], *p)));
            }
        }
        tick += 1;
        let next = run + Duration::from_millis(20 * u64::from(tick));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        while sip.recv_from(&mut buf).is_ok() {}
    }
    let (cpu1, media1) = cpu();
    let after = rt.block_on(server.stats()).expect("stats");
    let secs = run.elapsed().as_secs_f64();

    println!(
        "calls: {} established of {calls} in {:.1} s; {seconds} s held; caller RTP: {}",
        answered.len(),
        setup_time.as_secs_f64(),
        if caller_rtp { "yes" } else { "no" }
    );
    let mode = after.send_mode;
    println!(
        "  runtime: {} calls, {} RTP pairs free; {} media ticker threads sending with {}",
        after.calls,
        after.ports_free,
        after.lateness.len(),
        mode.name()
    );
    let (sent, dropped, failed) = after.sends.iter().fold((0, 0, 0), |(s, d, f), x| {
        (s + x.sent, d + x.dropped, f + x.failed)
    });
    println!("  datagrams: {sent} sent, {dropped} dropped (buffer full), {failed} failed");
    let media_cpu = (media1 - media0).as_secs_f64();
    let all_cpu = (cpu1 - cpu0).as_secs_f64();
    println!(
        "  CPU: media tickers {:.1} % of a core ({:.1} µs per call-second); whole process \
         (with the load generator) {:.1} %",
        media_cpu / secs * 100.0,
        media_cpu / secs / answered.len().max(1) as f64 * 1e6,
        all_cpu / secs * 100.0
    );
    for (i, (l, b)) in after.lateness.iter().zip(&before.lateness).enumerate() {
        println!(
            "  ticker {i}: send lateness p50 {:?} p99 {:?} max {:?} over {} frames ({} during setup)",
            l.quantile(0.5),
            l.quantile(0.99),
            l.max(),
            l.count(),
            b.count()
        );
    }
    println!(
        "  memory: {:.1} KiB per call (RSS growth with the calls up, SIP dialogs included)",
        rss1.saturating_sub(rss0) as f64 / 1024.0 / answered.len().max(1) as f64
    );
    for (i, (tag, _)) in &answered {
        let bye = request("BYE", *i, 2, tag, me, "");
        let _ = sip.send_to(bye.as_bytes(), server.sip_addr);
    }
    std::thread::sleep(Duration::from_millis(500));
    rt.block_on(server.shutdown());
}
