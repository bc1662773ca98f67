//! The real `mensa serve --demo` for integration tests: start it on
//! loopback with free ports, learn its addresses from the "mensa serving"
//! line, and read a child's day with `mensa calendar --format json`.
// Each test file uses a different part of this module; tests may unwrap.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A running `mensa serve --demo`.
pub struct DemoServer {
    pub child: Child,
    pub sip: SocketAddr,
    pub http: SocketAddr,
}

/// `mensa serve --demo --now NOW` on the SQLite file `db`, SIP and HTTP on
/// free loopback ports, RTP on `rtp_ports` ("LOW-HIGH").
pub fn serve_demo(db: &Path, now: &str, rtp_ports: &str) -> DemoServer {
    let config = db.with_extension("toml");
    write_config(&config, "");
    serve_demo_with(db, now, rtp_ports, &["--config", config.to_str().unwrap()])
}

/// Writes a serve config at `path`: `sections` (TOML), then load shedding
/// off, so a test that places calls cannot get a 503 because the test
/// machine is busy (shedding has its own tests).
pub fn write_config(path: &Path, sections: &str) {
    std::fs::write(
        path,
        format!("{sections}[media]\noverload_lateness_ms = 0\noverload_lag_ms = 0\n"),
    )
    .unwrap();
}

/// The same with more arguments for `serve` (e.g. `--config FILE`).
pub fn serve_demo_with(db: &Path, now: &str, rtp_ports: &str, extra: &[&str]) -> DemoServer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mensa"))
        .args(["serve", "--demo", "--now", now])
        .args(extra)
        .args(["--sip-listen", "127.0.0.1:0", "--rtp-ports", rtp_ports])
        .args(["--http-listen", "127.0.0.1:0"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut before = Vec::new();
    let serving = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| {
            before.push(l.clone());
            l.contains("mensa serving")
        })
        .unwrap_or_else(|| panic!("serve did not report serving:\n{}", before.join("\n")));
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let field = |name: &str| -> SocketAddr {
        serving
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {serving}"))
            .parse()
            .unwrap()
    };
    DemoServer {
        child,
        sip: field("sip="),
        http: field("http="),
    }
}

/// A test that panics before `stop` must not leave its server running.
impl Drop for DemoServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl DemoServer {
    /// SIGTERM, then wait: the server must stop gracefully.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "mensa serve exited with {status:?}");
    }
}

/// One day of a child in `mensa calendar --format json` on the SQLite `db`.
pub fn calendar_day(db: &Path, user_code: &str, date: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mensa"))
        .args(["calendar", "--user-code", user_code, "--format", "json"])
        .args(["--month", &date[..7]])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cal: Value = serde_json::from_slice(&out.stdout).unwrap();
    cal["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == date)
        .unwrap()
        .clone()
}

/// A plain HTTP/1.1 GET on loopback; the whole response as text.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: mensa\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
