//! SIP floods (docs/security.md, "SIP: the allow-list and the limits come
//! before the work") against a real `mensa serve --demo`:
//!
//! * an outsider's UDP flood gets a few 403s, then silence; its TCP
//!   connections are closed before a byte is read;
//! * connections from allowed sources beyond their share are closed (the
//!   heaviest source's least active first), idle ones time out, a peer
//!   that pipelines requests and never reads its answers is cut off, a
//!   head that never ends is refused, and the trunk is still answered;
//! * (`--ignored`, run by `.ci/run`) 3,500 idle TCP connections and a
//!   pipelining peer at the default limits, while sipp places a call from
//!   the trunk over TCP: answered, and the node's memory stays bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::demo::{DemoServer, http_get, serve_demo_with, write_config};

fn options(branch: &str, from: SocketAddr, transport: &str) -> String {
    format!(
        "OPTIONS sip:800082653@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {from};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:scan@{from}>;tag=s{branch}\r\n\
         To: <sip:800082653@127.0.0.1>\r\nCall-ID: {branch}@attack\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A TCP connection to `to` from the loopback address `from_ip`.
fn connect_from(from_ip: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from_ip.parse().unwrap(), 0).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// Whether the server closed `stream` (EOF or reset) within `wait`,
/// having sent nothing.
fn closed_silently(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

/// The answer to one request on `stream`, or None within `wait`.
fn answer(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

fn metric(metrics: &str, line: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in {metrics}"))
}

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// Sends `count` OPTIONS back to back on one connection from `from_ip`
/// and never reads an answer; returns when the server has cut it off (a
/// write fails) or after `limit`.
fn pipeline_without_reading(from_ip: &str, to: SocketAddr, count: usize, limit: Duration) -> bool {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    // A small window: our unread answers fill the server's buffers soon.
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .bind(&SocketAddr::new(from_ip.parse().unwrap(), 0).into())
        .unwrap();
    socket.connect(&to.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_write_timeout(Some(limit)).unwrap();
    let me = stream.local_addr().unwrap();
    let start = Instant::now();
    for i in 0..count {
        if stream
            .write_all(options(&format!("p{i}"), me, "TCP").as_bytes())
            .is_err()
        {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
    }
    // Everything went out: wait for the cut, still without reading.
    std::thread::sleep(Duration::from_secs(1));
    stream.write_all(b"\r\n\r\n").is_err() || stream.write_all(b"\r\n\r\n").is_err()
}

fn serve(dir: &tempfile::TempDir, sip: &str, ports: &str) -> DemoServer {
    let config = dir.path().join("mensa.toml");
    write_config(&config, &format!("[sip]\n{sip}"));
    serve_demo_with(
        &dir.path().join("mensa.db"),
        "2026-12-07 19:00",
        ports,
        &["--config", config.to_str().unwrap()],
    )
}

#[test]
fn floods_and_hoarders_are_cut_off_and_the_trunk_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(
        &dir,
        "allowed = [\"127.0.0.1/32\", \"127.0.0.2/31\"]\n\
         max_forbidden_per_second = 5\n\
         tcp_max_connections = 32\n\
         tcp_max_connections_per_source = 8\n\
         tcp_idle_timeout_secs = 2\n",
        "32100-32139",
    );
    let rss_before = rss_kib(server.child.id());

    // An outsider over UDP: a burst of the 403 budget, then nothing.
    let outsider = UdpSocket::bind("127.0.0.9:0").unwrap();
    let me = outsider.local_addr().unwrap();
    for i in 0..300 {
        outsider
            .send_to(options(&format!("u{i}"), me, "UDP").as_bytes(), server.sip)
            .unwrap();
    }
    outsider
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut forbidden = 0;
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = outsider.recv_from(&mut buf) {
        assert!(buf[..n].starts_with(b"SIP/2.0 403"));
        forbidden += 1;
    }
    assert!(
        (1..=8).contains(&forbidden),
        "{forbidden} answers to a flood"
    );
    // Over TCP it is closed before anything is read.
    let mut tcp = connect_from("127.0.0.9", server.sip).unwrap();
    let _ = tcp.write_all(options("t0", me, "TCP").as_bytes());
    assert!(closed_silently(&mut tcp, Duration::from_secs(2)));

    // Allowed sources hoarding connections: 60 from two addresses.
    let mut hoard: Vec<TcpStream> = (0..60)
        .filter_map(|i| {
            connect_from(
                if i % 2 == 0 { "127.0.0.2" } else { "127.0.0.3" },
                server.sip,
            )
            .ok()
        })
        .collect();
    // The trunk still gets a connection and an answer.
    let mut trunk = connect_from("127.0.0.1", server.sip).unwrap();
    let trunk_addr = trunk.local_addr().unwrap();
    trunk
        .write_all(options("trunk1", trunk_addr, "TCP").as_bytes())
        .unwrap();
    let reply = answer(&mut trunk, Duration::from_secs(3)).expect("the trunk is answered");
    assert!(reply.starts_with("SIP/2.0 200 OK"), "{reply}");
    // At most 8 per source are left open, the rest were closed.
    let open = hoard
        .iter_mut()
        .map(|s| closed_silently(s, Duration::from_millis(50)))
        .filter(|closed| !closed)
        .count();
    assert!(open <= 16, "{open} of the hoarders' connections open");

    // A head that never ends is refused, not buffered.
    let mut endless = connect_from("127.0.0.2", server.sip).unwrap();
    let _ = endless.write_all(b"OPTIONS sip:800082653@127.0.0.1 SIP/2.0\r\nX-Pad: ");
    let _ = endless.write_all(&vec![b'a'; 20_000]);
    assert!(closed_silently(&mut endless, Duration::from_secs(3)));

    // A peer that pipelines requests and never reads is cut off.
    assert!(
        pipeline_without_reading("127.0.0.3", server.sip, 200_000, Duration::from_secs(60)),
        "the non-reader was never cut off"
    );

    // A connection that says nothing is closed once idle; the trunk's,
    // which spoke, is open until then too.
    let mut idle = connect_from("127.0.0.2", server.sip).unwrap();
    let opened = Instant::now();
    assert!(closed_silently(&mut idle, Duration::from_secs(6)));
    assert!(
        opened.elapsed() >= Duration::from_millis(1500),
        "closed too early"
    );
    hoard.clear();

    std::thread::sleep(Duration::from_millis(1200)); // a report of the edge's counters
    let metrics = http_get(server.http, "/api/v1/metrics");
    assert!(metric(&metrics, "mensa_sip_dropped_total{reason=\"not_allowed\"} ") >= 300);
    assert_eq!(metric(&metrics, "mensa_sip_forbidden_total "), forbidden);
    assert!(
        metric(
            &metrics,
            "mensa_sip_tcp_closed_total{reason=\"not_allowed\"} "
        ) >= 1
    );
    assert!(metric(&metrics, "mensa_sip_tcp_closed_total{reason=\"evicted\"} ") >= 40);
    assert!(metric(&metrics, "mensa_sip_tcp_closed_total{reason=\"framing\"} ") >= 1);
    assert!(
        metric(
            &metrics,
            "mensa_sip_tcp_closed_total{reason=\"slow_reader\"} "
        ) >= 1
    );
    assert!(metric(&metrics, "mensa_sip_tcp_closed_total{reason=\"idle\"} ") >= 1);
    let grown = rss_kib(server.child.id()).saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "the node grew by {grown} KiB");
    server.stop();
}

/// Raises this process's open-file limit to its hard limit (3,500
/// connections need as many descriptors).
fn raise_open_files() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

#[test]
#[ignore = "heavy, and needs sipp (Debian sip-tester); .ci/run runs it"]
fn thousands_of_idle_connections_and_a_non_reader_leave_the_trunk_its_call() {
    raise_open_files();
    let dir = tempfile::tempdir().unwrap();
    // The default limits (1,024 connections, 64 per source).
    let server = serve(&dir, "", "32200-32299");
    let rss_before = rss_kib(server.child.id());
    let sip = server.sip;
    // 3,500 idle connections from 55 loopback addresses, held open.
    let hoarders = std::thread::spawn(move || {
        let mut held = Vec::new();
        for i in 0..3_500u32 {
            let from = format!("127.0.0.{}", 10 + i % 55);
            if let Ok(s) = connect_from(&from, sip) {
                held.push(s);
            }
        }
        held
    });
    let non_reader = std::thread::spawn(move || {
        pipeline_without_reading("127.0.0.8", sip, 400_000, Duration::from_secs(120))
    });
    let held = hoarders.join().unwrap();
    assert!(held.len() > 3_000, "{} connections made", held.len());
    // The trunk's call over TCP, by sipp: answered, carried, hung up.
    let sipp = Command::new("sipp")
        .arg(sip.to_string())
        .args(["-sn", "uac", "-s", "800082653", "-m", "1", "-t", "t1"])
        .args(["-i", "127.0.0.1", "-p", "0", "-nostdin", "-timeout", "30s"])
        .args(["-timeout_error", "-d", "2000", "-trace_err"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("sipp is not installed: apt-get install -y sip-tester");
    assert!(
        sipp.status.success(),
        "sipp's call failed: {}",
        String::from_utf8_lossy(&sipp.stderr)
    );
    assert!(
        non_reader.join().unwrap(),
        "the non-reader was never cut off"
    );
    let grown = rss_kib(server.child.id()).saturating_sub(rss_before);
    std::thread::sleep(Duration::from_millis(1200));
    let metrics = http_get(server.http, "/api/v1/metrics");
    eprintln!(
        "{} connections made by the test, node RSS {rss_before} KiB before, +{grown} KiB during",
        held.len()
    );
    drop(held);
    assert!(grown < 128 * 1024, "the node grew by {grown} KiB");
    // Past 1,024 the newcomers were refused, or took an idle one's place.
    let turned_away = metric(&metrics, "mensa_sip_tcp_closed_total{reason=\"evicted\"} ")
        + metric(&metrics, "mensa_sip_tcp_closed_total{reason=\"refused\"} ");
    assert!(turned_away >= 2_400, "{turned_away}");
    assert!(
        metric(
            &metrics,
            "mensa_sip_tcp_closed_total{reason=\"slow_reader\"} "
        ) >= 1
    );
    server.stop();
}
