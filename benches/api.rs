//! Load benchmark of the JSON API (figures, not assertions): calendar
//! reads and day changes over real loopback HTTP/1.1 keep-alive
//! connections, on SQLite with 10,000 children (5,000 families).
//!
//! Five phases of `--seconds` each (default 10): reads and changes, each
//! closed-loop (as fast as `--connections` connections go, default 32) and
//! paced at `--rate` requests per second (default 2,000), then a paced mix
//! of four reads to one change. Latency is from the moment a request was
//! due to its last response byte, so a slow server cannot hide queueing
//! (no coordinated omission). The server runs on its own multi-threaded
//! runtime, the load on one thread of its own; both share the process and
//! the machine's cores.
//!
//! `cargo bench --bench api -- [--seconds N] [--rate R] [--connections C]
//! [--phases closed,paced,mix | reads-closed,changes-paced,...] [--no-group-commit] [--no-cache]`; the last
//! two measure the store as it was before those changes. Figures go to docs/benchmarks.md by hand.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use mensa::api::{ApiConfig, AppState};
use mensa::bookings::{
    CancelCode, Cents, ClassId, Clock, Closure, Diet, EnteSettings, FiscalCode, SchoolCalendar,
    SchoolId, UserCode, Weekdays,
};
use mensa::import::{AdultData, ChildData, ImportData, SchoolData};
use mensa::store::{Login, Store};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const FAMILIES: usize = 5_000;
const CHILDREN: usize = 10_000;

struct Fixed(DateTime<Utc>);

impl Clock for Fixed {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn fiscal(prefix: &str, i: usize) -> FiscalCode {
    let letters: String = [i / 676 % 26, i / 26 % 26, i % 26]
        .iter()
        .map(|&n| char::from(b'A' + u8::try_from(n).unwrap()))
        .collect();
    let first15 = format!("{prefix}{letters}80A01C{:03}", i % 1000);
    let check = mensa::bookings::fiscal_code::check_character(first15.as_bytes());
    FiscalCode::parse(&format!("{first15}{}", char::from(check))).unwrap()
}

fn data() -> ImportData {
    let calendar = SchoolCalendar {
        year_start: d("2026-09-14"),
        year_end: d("2027-06-09"),
        weekdays: Weekdays::MONDAY_TO_FRIDAY,
        closures: vec![Closure {
            from: d("2026-12-08"),
            to: d("2026-12-09"),
            reason: "Immacolata".into(),
        }],
    };
    let schools = (0..20)
        .map(|s| SchoolData {
            id: SchoolId::parse(&format!("school-{s}")).unwrap(),
            name: format!("School {s}"),
            calendar: calendar.clone(),
            classes: vec![],
        })
        .collect();
    let adults = (0..FAMILIES)
        .map(|i| AdultData {
            fiscal_code: fiscal("RSS", i),
            first_name: "Parent".into(),
            last_name: format!("P{i}"),
            email: None,
            phone: None,
            password: None,
            password_hash: None,
        })
        .collect();
    let children = (0..CHILDREN)
        .map(|i| ChildData {
            place: format!("child {i}"),
            user_code: UserCode::parse(&format!("{}", 1_000_000 + i)).unwrap(),
            cancel_code: CancelCode::parse(&format!("{}", 50_000_000 + i)).unwrap(),
            first_name: "Child".into(),
            last_name: format!("C{i}"),
            fiscal_code: fiscal("BNC", i),
            school: SchoolId::parse(&format!("school-{}", i % 20)).unwrap(),
            class: ClassId::parse("4B").unwrap(),
            parent: fiscal("RSS", i % FAMILIES),
            delegates: vec![],
            diet: Diet::none(),
            meal_price: None,
        })
        .collect();
    let mut ente = EnteSettings::with_name("Bench");
    ente.meal_price = Cents(450);
    ImportData {
        ente,
        schools,
        adults,
        children,
        news: vec![],
        warnings: vec![],
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Connection {
            reader: BufReader::new(stream),
        }
    }

    /// Sends a request and reads the whole response; returns the status.
    async fn send(&mut self, request: &[u8]) -> u16 {
        self.reader.get_mut().write_all(request).await.unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).await.unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).await.unwrap();
        status
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Read,
    /// Changes in December (`false`) or January (`true`): each phase of
    /// changes starts from days nobody changed yet.
    Change(bool),
    /// Four calendar reads to one change (February): a parent looks at the
    /// month, then changes a day.
    Mix,
}

/// The n-th request of connection `c` of `connections`: a random-looking
/// child among the connection's own (so no two connections change the same
/// child), and for changes a December service day, cancelled if it is
/// booked and booked again if cancelled: every change writes.
fn request(
    kind: Kind,
    n: u64,
    c: usize,
    connections: usize,
    absent: &mut std::collections::HashSet<(usize, usize)>,
) -> Vec<u8> {
    let mix = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    let per_connection = (CHILDREN / connections) as u64;
    let child = c + connections * usize::try_from(mix % per_connection).unwrap();
    let token = format!("bench-token-{}", child % FAMILIES);
    let code = 1_000_000 + child;
    let february = matches!(kind, Kind::Mix);
    let kind = match kind {
        Kind::Mix if n % 5 == 4 => Kind::Change(false),
        Kind::Mix => Kind::Read,
        other => other,
    };
    match kind {
        Kind::Mix => unreachable!("resolved above"),
        Kind::Read => format!(
            "GET /api/v1/children/{code}/calendar?month=2026-12 HTTP/1.1\r\nHost: b\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        )
        .into_bytes(),
        Kind::Change(january) => {
            let (month, days) = if february {
                (
                    "2027-02",
                    ["01", "02", "03", "04", "05", "08", "09", "10", "11"],
                )
            } else if january {
                (
                    "2027-01",
                    ["11", "12", "13", "14", "15", "18", "19", "20", "21"],
                )
            } else {
                (
                    "2026-12",
                    ["10", "11", "14", "15", "16", "17", "18", "21", "22"],
                )
            };
            let index = usize::try_from((mix >> 20) % days.len() as u64).unwrap();
            let status = if absent.insert((child, index)) {
                "absent"
            } else {
                absent.remove(&(child, index));
                "booked"
            };
            let body = format!("{{\"status\":\"{status}\"}}");
            format!(
                "PUT /api/v1/children/{code}/days/{month}-{} HTTP/1.1\r\nHost: b\r\n\
                 Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                days[index],
                body.len()
            )
            .into_bytes()
        }
    }
}

struct Outcome {
    latencies: Vec<Duration>,
    statuses: std::collections::BTreeMap<u16, usize>,
    elapsed: Duration,
    /// CPU time of the whole process (server and load) during the phase.
    cpu: Duration,
}

/// User + system CPU time of this process so far, from /proc (Linux; in
/// clock ticks of 10 ms, fine over phases of seconds). Less disturbed by
/// other programs on the machine than latency: it says what a request
/// costs, hence how many a quiet machine could serve.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line; the state (field
    // 3) is index 0 here.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

async fn phase(
    addr: SocketAddr,
    kind: Kind,
    connections: usize,
    seconds: u64,
    rate: Option<u64>,
) -> Outcome {
    let began = Instant::now();
    let cpu_before = process_cpu();
    let until = began + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            tokio::spawn(async move {
                let mut conn = Connection::open(addr).await;
                let mut latencies = Vec::new();
                let mut statuses = std::collections::BTreeMap::new();
                // Paced: each connection's share of the rate, evenly spaced.
                let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r as f64));
                let mut due = Instant::now()
                    + interval.map_or(Duration::ZERO, |i| i.mul_f64(c as f64 / connections as f64));
                let mut n = (c as u64) << 32;
                let mut absent = std::collections::HashSet::new();
                while due < until {
                    if interval.is_some() {
                        tokio::time::sleep_until(due.into()).await;
                    } else {
                        due = Instant::now();
                    }
                    let status = conn
                        .send(&request(kind, n, c, connections, &mut absent))
                        .await;
                    latencies.push(due.elapsed());
                    *statuses.entry(status).or_insert(0) += 1;
                    n += 1;
                    if let Some(i) = interval {
                        due += i;
                    }
                }
                (latencies, statuses)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        let (l, s) = t.await.unwrap();
        latencies.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_insert(0) += v;
        }
    }
    latencies.sort();
    Outcome {
        latencies,
        statuses,
        elapsed: began.elapsed(),
        cpu: process_cpu().saturating_sub(cpu_before),
    }
}

fn report(name: &str, o: &Outcome) {
    let pct = |p: f64| {
        let i = ((o.latencies.len() as f64 - 1.0) * p).round() as usize;
        o.latencies[i].as_secs_f64() * 1000.0
    };
    println!(
        "{name:<34} {:>7} requests {:>7.0} req/s  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  CPU {:>4.0} µs/request  statuses {:?}",
        o.latencies.len(),
        o.latencies.len() as f64 / o.elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
        o.cpu.as_secs_f64() * 1e6 / o.latencies.len().max(1) as f64,
        o.statuses
    );
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = arg(&args, "--seconds", 10);
    let connections = usize::try_from(arg(&args, "--connections", 32)).unwrap();
    let rate = arg(&args, "--rate", 2_000);
    // Which phases: any of closed, paced, mix (comma-separated).
    let phases = args
        .iter()
        .position(|a| a == "--phases")
        .and_then(|i| args.get(i + 1))
        .map_or("closed,paced,mix", String::as_str)
        .to_string();
    // The server on its own multi-threaded runtime (as `serve` runs it),
    // the load on one thread of its own, like a separate client.
    let server = tokio::runtime::Runtime::new().unwrap();
    let (addr, _dir) = server.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = Store::open(&url).await.unwrap();
        store
            .import(&data(), chrono::Utc::now())
            .await
            .unwrap()
            .unwrap();
        let settings = store.settings().await.unwrap();
        let now = settings
            .instant(NaiveDateTime::parse_from_str("2026-12-07 19:00", "%Y-%m-%d %H:%M").unwrap());
        for i in 0..FAMILIES {
            let cf = fiscal("RSS", i);
            let (adult, _) = store
                .login_credentials(Login::FiscalCode(&cf))
                .await
                .unwrap()
                .unwrap();
            let digest = mensa::api::auth::token_digest(&format!("bench-token-{i}"));
            store
                .create_session(adult.id, &digest, now, now + chrono::Duration::days(1))
                .await
                .unwrap();
        }
        let store = store.tuned(
            !args.iter().any(|a| a == "--no-group-commit"),
            !args.iter().any(|a| a == "--no-cache"),
        );
        let state = AppState::new(store.clone(), Arc::new(Fixed(now)), ApiConfig::default());
        let listener = mensa::runtime::http::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(mensa::runtime::http::serve(
            listener,
            state,
            std::future::pending(),
        ));
        (addr, dir)
    });
    println!(
        "SQLite, {CHILDREN} children, {FAMILIES} families; {connections} keep-alive connections; {seconds} s per phase"
    );
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client.block_on(async {
        for (group, key, name, kind, paced) in [
            (
                "closed",
                "reads-closed",
                "calendar reads, closed loop",
                Kind::Read,
                None,
            ),
            (
                "closed",
                "changes-closed",
                "day changes, closed loop",
                Kind::Change(false),
                None,
            ),
            (
                "paced",
                "reads-paced",
                "calendar reads, paced",
                Kind::Read,
                Some(rate),
            ),
            (
                "paced",
                "changes-paced",
                "day changes, paced",
                Kind::Change(true),
                Some(rate),
            ),
            (
                "mix",
                "mix",
                "4 reads : 1 change, paced",
                Kind::Mix,
                Some(rate),
            ),
        ] {
            if !phases.split(',').any(|p| p == group || p == key) {
                continue;
            }
            let outcome = phase(addr, kind, connections, seconds, paced).await;
            let name = match paced {
                Some(r) => format!("{name} at {r}/s"),
                None => name.to_string(),
            };
            report(&name, &outcome);
        }
    });
}
