//! Does a flood of wrong logins slow the phone line? Starts the real
//! `mensa serve --demo`, places IVR calls with `mensa load` (keys only,
//! its key→prompt figures) first alone, then again while many HTTP clients
//! send wrong passwords as fast as the server answers, each request from
//! another loopback address (127.0.x.y) so the per-address limit does not
//! simply stop them. Prints key→prompt p50/p99 for both runs, what the
//! flood got, and the server's own login metrics (verifications run,
//! logins refused by reason) and CPU.
//!
//! `cargo bench --bench login_flood -- [seconds] [flood clients] [addresses] [http setting]...`
//! defaults 30 s of calls, 64 clients, 4,000 addresses; each further
//! argument is a line of the server's `[http]` section, e.g.
//! `login_hashing_permits=2`. Run it `nice`d on a shared machine.
//! `MENSA_BENCH_ROUNDS=N` alternates N runs of each; with
//! `MENSA_BENCH_FLOOD_ELSEWHERE=1` the flood goes to a second node on the
//! same machine (the control: the calls' node then shares only the CPUs).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const MENSA: &str = env!("CARGO_BIN_EXE_mensa");

struct Server {
    child: Child,
    sip: SocketAddr,
    http: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path, http: &[String]) -> Server {
    let config = dir.join("mensa.toml");
    // Shedding off: the figures are the calls' latency, not refusals.
    std::fs::write(
        &config,
        format!(
            "[http]\n{}\n[media]\noverload_lateness_ms = 0\noverload_lag_ms = 0\n",
            http.join("\n")
        ),
    )
    .expect("write the config");
    let mut child = Command::new(MENSA)
        .args(["serve", "--demo", "--now", "2026-12-07 19:00"])
        .arg("--config")
        .arg(&config)
        .args([
            "--sip-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .args(["--rtp-ports", "46000-47999"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("mensa.db").display()))
        // The request log at info, as in production; MENSA_BENCH_LOG=off
        // measures without it (the "serving" line, which says where the
        // server listens, stays).
        .env(
            "RUST_LOG",
            match std::env::var("MENSA_BENCH_LOG").as_deref() {
                Ok("off") => "warn,mensa::cli=info",
                _ => "info",
            },
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mensa serve");
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let serving = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("mensa serving"))
        .expect("mensa serve reports serving");
    // The request log goes on (as in production), read and dropped.
    std::thread::spawn(move || for _ in lines {});
    let field = |name: &str| -> SocketAddr {
        serving
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {serving}"))
    };
    Server {
        sip: field("sip="),
        http: field("http="),
        child,
    }
}

/// Whether `chrt` can run a program under SCHED_FIFO here (root, or
/// CAP_SYS_NICE).
fn realtime_allowed() -> bool {
    Command::new("chrt")
        .args(["-f", "10", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `mensa load`: IVR calls, keys only, for `seconds`; its JSON report.
/// Under `chrt -f 10` where allowed, so that the instrument's own thread
/// is not the one the flood delays (docs/load.md, GENERATOR_RT).
fn calls(sip: SocketAddr, seconds: u64) -> Value {
    let mut command = if realtime_allowed() {
        let mut c = Command::new("chrt");
        c.args(["-f", "10", MENSA]);
        c
    } else {
        Command::new(MENSA)
    };
    let out = command
        .args(["load", "--target", &sip.to_string()])
        .args(["--concurrent", "100", "--rate", "5", "--no-audio"])
        .args(["--duration", &seconds.to_string(), "--json", "--quiet"])
        .output()
        .expect("run mensa load");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("mensa load: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// The flood: `clients` threads, each sending wrong logins back to back,
/// one connection per request, each from the next of `addresses`
/// loopback addresses. Answers counted by status.
struct Flood {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    by_status: Arc<Mutex<BTreeMap<u16, u64>>>,
    started: Instant,
}

fn flood(http: SocketAddr, clients: usize, addresses: u32) -> Flood {
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let by_status = Arc::new(Mutex::new(BTreeMap::new()));
    let threads = (0..clients)
        .map(|_| {
            let (stop, next, by_status) = (stop.clone(), next.clone(), by_status.clone());
            std::thread::spawn(move || {
                let mut local: BTreeMap<u16, u64> = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let a = u32::try_from(n % u64::from(addresses)).unwrap_or(0);
                    let from = Ipv4Addr::new(127, 0, (1 + a / 250) as u8, (2 + a % 250) as u8);
                    // The demo's three children and invented codes.
                    let code = match n % 4 {
                        0 => "100234".to_string(),
                        1 => "100236".to_string(),
                        _ => format!("{}", 700_000 + n % 100_000),
                    };
                    let status = guess(http, from, &code, n).unwrap_or(0);
                    *local.entry(status).or_default() += 1;
                }
                let mut all = by_status.lock().expect("not poisoned");
                for (s, n) in local {
                    *all.entry(s).or_default() += n;
                }
            })
        })
        .collect();
    Flood {
        stop,
        threads,
        by_status,
        started: Instant::now(),
    }
}

impl Flood {
    fn finish(self) -> (BTreeMap<u16, u64>, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let by_status = self.by_status.lock().expect("not poisoned").clone();
        (by_status, self.started.elapsed())
    }
}

/// One wrong login from `from`; the answer's status.
fn guess(http: SocketAddr, from: Ipv4Addr, code: &str, n: u64) -> Option<u16> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    socket
        .bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
        .ok()?;
    socket.connect(&http.into()).ok()?;
    let mut stream: TcpStream = socket.into();
    let body = format!(r#"{{"user_code": "{code}", "password": "guess-{n}"}}"#);
    write!(
        stream,
        "POST /api/v1/session HTTP/1.1\r\nHost: mensa\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The server's `/metrics` as (name with labels → value).
fn metrics(http: SocketAddr) -> BTreeMap<String, f64> {
    let mut stream = TcpStream::connect(http).expect("connect for /metrics");
    let _ = write!(
        stream,
        "GET /api/v1/metrics HTTP/1.1\r\nHost: mensa\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with("mensa_"))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// CPU seconds of the process `pid`, and of its threads named `prefix…`.
fn cpu(pid: u32, prefix: &str) -> (f64, f64) {
    let ticks = |path: String| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| {
                let rest = s.rsplit(')').next().unwrap_or("").to_string();
                rest.split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .unwrap_or(0)
    };
    let all = ticks(format!("/proc/{pid}/stat"));
    let mut named = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.starts_with(prefix) {
                named += ticks(t.path().join("stat").display().to_string());
            }
        }
    }
    (all as f64 / 100.0, named as f64 / 100.0)
}

fn summary(report: &Value, name: &str) -> String {
    let s = &report[name];
    format!(
        "p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms  (n={})",
        s["p50_ms"].as_f64().unwrap_or(f64::NAN),
        s["p99_ms"].as_f64().unwrap_or(f64::NAN),
        s["max_ms"].as_f64().unwrap_or(f64::NAN),
        s["count"]
    )
}

/// Nanoseconds the threads of `pid` named `prefix…` waited for a CPU
/// while runnable (the second field of their /proc schedstat).
fn run_delay(pid: u32, prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            stat.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// One run of calls; `flood_with`: (the server to flood, clients,
/// addresses).
fn run(label: &str, server: &Server, seconds: u64, flood_with: Option<(&Server, usize, u32)>) {
    let before = metrics(server.http);
    let cpu_before = cpu(server.child.id(), "mensa-hashing");
    let own_before = cpu(std::process::id(), "");
    let waited_before = run_delay(server.child.id(), "tokio-rt-worker");
    let flooded_before = flood_with.map(|(target, ..)| metrics(target.http));
    let began = Instant::now();
    let flood =
        flood_with.map(|(target, clients, addresses)| flood(target.http, clients, addresses));
    let report = calls(server.sip, seconds);
    let flooded = flood.map(Flood::finish);
    let wall = began.elapsed().as_secs_f64();
    let waited = run_delay(server.child.id(), "tokio-rt-worker") - waited_before;
    let cpu_after = cpu(server.child.id(), "mensa-hashing");
    let own_after = cpu(std::process::id(), "");
    // The login figures of the flooded server (the calls' own, or another).
    let (before, after) = match (flooded_before, flood_with) {
        (Some(b), Some((target, ..))) => (b, metrics(target.http)),
        _ => (before, metrics(server.http)),
    };
    let delta = |name: &str| {
        after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
    };
    println!("== {label}");
    println!(
        "  calls: {} attempted, {} completed, {} failed {}",
        report["attempted"], report["completed"], report["failed"], report["failed_by_reason"]
    );
    println!("  key→prompt   {}", summary(&report, "key_to_prompt"));
    println!("  setup        {}", summary(&report, "setup_latency"));
    println!("  rx jitter    {}", summary(&report, "rx_jitter"));
    if let Some((by_status, elapsed)) = flooded {
        let total: u64 = by_status.values().sum();
        println!(
            "  flood: {total} logins in {:.1} s ({:.0}/s), by status {by_status:?}",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
    }
    println!(
        "  server: {:.0} password verifications run; refused before any work: locked {:.0}, \
         per-address {:.0}, hashing busy {:.0}",
        delta("mensa_password_verifications_total"),
        delta("mensa_logins_refused_total{reason=\"locked\"}"),
        delta("mensa_logins_refused_total{reason=\"address\"}"),
        delta("mensa_logins_refused_total{reason=\"busy\"}"),
    );
    println!(
        "  server CPU: {:.0} % of one core over {wall:.0} s, of which hashing threads {:.0} %",
        100.0 * (cpu_after.0 - cpu_before.0) / wall,
        100.0 * (cpu_after.1 - cpu_before.1) / wall,
    );
    println!(
        "  the calls' server's runtime workers waited for a CPU {:.0} ms per second",
        waited as f64 / 1e6 / wall
    );
    println!(
        "  flood clients' CPU: {:.0} % of one core; load average at the end: {}",
        100.0 * (own_after.0 - own_before.0) / wall,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let number =
        |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let seconds = number(0, 30);
    let clients = usize::try_from(number(1, 64)).unwrap_or(64);
    let addresses = u32::try_from(number(2, 4000)).unwrap_or(4000).max(1);
    let http: Vec<String> = args
        .iter()
        .filter(|a| a.contains('='))
        .map(|a| a.replacen('=', " = ", 1))
        .collect();
    let rounds: usize = std::env::var("MENSA_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let elsewhere = std::env::var_os("MENSA_BENCH_FLOOD_ELSEWHERE").is_some();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let server = serve(dir.path(), &http);
    // The control: the same flood on another node on this machine, so
    // that the calls' node shares only the CPUs with it.
    let other_dir = tempfile::tempdir().expect("a temporary folder");
    let other = elsewhere.then(|| serve(other_dir.path(), &http));
    println!(
        "login flood vs the phone line: {seconds} s of IVR calls (up to 100 at once, 5 new a \
         second, keys only) per run, the generator {}; flood {clients} clients from {addresses} \
         addresses{}; [http] {http:?}",
        if realtime_allowed() {
            "under SCHED_FIFO"
        } else {
            "at normal priority"
        },
        if elsewhere { " on another node" } else { "" }
    );
    for round in 1..=rounds {
        run(&format!("calls alone ({round})"), &server, seconds, None);
        run(
            &format!("calls during a login flood ({round})"),
            &server,
            seconds,
            Some((other.as_ref().unwrap_or(&server), clients, addresses)),
        );
    }
}
