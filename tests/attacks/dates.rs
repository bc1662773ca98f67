//! Dates (docs/security.md, "Dates: bad values never split the rules from
//! the store"): an outsider with a parent's login, and one with the
//! operators' token, throw dates no school calendar reaches at every route
//! that takes a date or a year, in paths, queries and bodies, over real
//! HTTP to a real `mensa serve --demo`. Each gets a 422 problem (a 400 for
//! what is no date at all), never a 5xx; the node keeps answering and
//! nothing was written.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

use super::demo::{DemoServer, serve_demo_with, write_config};

const OPERATOR: &str = "attack-dates-operator-token";
const LUCA: &str = "100234";

/// chrono's ends, the years whose ISO text no longer sorts as dates, one
/// too far for chrono at all, and the nearest ones outside the demo's
/// reach (its school years at `--now`, 2026-09-14 to 2027-06-30, a year
/// either side).
const FAR_DATES: [&str; 10] = [
    "+262142-12-31",
    "-262143-01-01",
    "0000-01-01",
    "9999-12-31",
    "+10000-01-01",
    "+262143-01-01",
    "-0001-12-31",
    "+99999999999999999999-01-01",
    "1999-12-31",
    "2029-01-01",
];

const FAR_YEARS: [&str; 9] = [
    "262142",
    "-262143",
    "0",
    "9999",
    "10000",
    "2029",
    "2147483648",
    "99999999999999999999999999999999",
    "-99999999999999999999999999999999",
];

struct Reply {
    status: u16,
    content_type: String,
    body: Value,
    text: String,
}

/// One HTTP/1.1 request on a fresh connection, read to the end.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} /api/v1{path} HTTP/1.1\r\nHost: mensa\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, text) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    Reply {
        status,
        content_type,
        body: serde_json::from_str(text).unwrap_or(Value::Null),
        text: text.to_string(),
    }
}

/// `text` in a query string: `+` would read as a space.
fn query_value(text: &str) -> String {
    text.replace('+', "%2B")
}

/// A 422 problem: `date-out-of-reach`, or `invalid-request` for a body
/// date the JSON reader cannot hold at all.
fn assert_refused(reply: &Reply, what: &str) {
    assert!(reply.status < 500, "{what}: 5xx: {}", reply.text);
    assert_eq!(reply.status, 422, "{what}: {}", reply.text);
    assert_eq!(
        reply.content_type, "application/problem+json",
        "{what}: {}",
        reply.text
    );
    let slug = reply.body["type"].as_str().unwrap_or_default();
    assert!(
        slug == "urn:mensa:problem:date-out-of-reach"
            || (what.starts_with("body") && slug == "urn:mensa:problem:invalid-request"),
        "{what}: {}",
        reply.text
    );
    assert!(
        !reply.body["detail_it"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
}

fn start(dir: &std::path::Path) -> DemoServer {
    let config = dir.join("mensa.toml");
    write_config(&config, "");
    serve_demo_with(
        &dir.join("mensa.db"),
        "2026-12-07 19:00",
        "47300-47319",
        &[
            "--config",
            config.to_str().unwrap(),
            "--operator-token",
            OPERATOR,
        ],
    )
}

/// What a bad date could have changed: the child's December, the
/// school's closures, the news.
fn snapshot(http_addr: SocketAddr, token: &str) -> Vec<Value> {
    [
        (format!("/children/{LUCA}/calendar?month=2026-12"), token),
        ("/schools/primaria-dante/closures".to_string(), OPERATOR),
        ("/news".to_string(), token),
    ]
    .iter()
    .map(|(path, token)| {
        let reply = http(http_addr, "GET", path, Some(token), None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        reply.body
    })
    .collect()
}

#[test]
fn far_dates_on_every_route_are_422_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let addr = server.http;
    let login = http(
        addr,
        "POST",
        "/session",
        None,
        Some(&json!({"user_code": LUCA, "password": "demo-password"})),
    );
    assert_eq!(login.status, 201, "{}", login.text);
    let token = login.body["token"].as_str().unwrap().to_string();
    let before = snapshot(addr, &token);

    for far in FAR_DATES {
        let month = &far[..far.len() - 3];
        let attacks: Vec<(String, &str, String, &str, Option<Value>)> = vec![
            (
                format!("path day {far}"),
                "PUT",
                format!("/children/{LUCA}/days/{far}"),
                &token,
                Some(json!({"status": "absent"})),
            ),
            (
                format!("query month {month}"),
                "GET",
                format!("/children/{LUCA}/calendar?month={}", query_value(month)),
                &token,
                None,
            ),
            (
                format!("body suspension from {far}"),
                "POST",
                format!("/children/{LUCA}/suspension"),
                &token,
                Some(json!({"from": far})),
            ),
            (
                format!("body suspension until {far}"),
                "POST",
                format!("/children/{LUCA}/suspension"),
                &token,
                Some(json!({"from": "2026-12-10", "until": far})),
            ),
            (
                format!("body reactivation {far}"),
                "POST",
                format!("/children/{LUCA}/reactivation"),
                &token,
                Some(json!({"from": far})),
            ),
            (
                format!("path kitchen {far}"),
                "GET",
                format!("/kitchen/{far}"),
                OPERATOR,
                None,
            ),
            (
                format!("query calls {far}"),
                "GET",
                format!("/calls?date={}", query_value(far)),
                OPERATOR,
                None,
            ),
            (
                format!("body closure from {far}"),
                "POST",
                "/schools/primaria-dante/closures".to_string(),
                OPERATOR,
                Some(json!({"from": far, "reason": "Sciopero"})),
            ),
            (
                format!("body closure to {far}"),
                "POST",
                "/schools/primaria-dante/closures".to_string(),
                OPERATOR,
                Some(json!({"from": "2026-12-10", "to": far, "reason": "Sciopero"})),
            ),
            (
                format!("body news {far}"),
                "POST",
                "/news".to_string(),
                OPERATOR,
                Some(json!({"date": far, "title": "Lontano", "body": "…"})),
            ),
        ];
        for (what, method, path, who, body) in &attacks {
            let reply = http(addr, method, path, Some(who), body.as_ref());
            assert_refused(&reply, what);
        }
    }
    for year in FAR_YEARS {
        let path = format!("/children/{LUCA}/statements/{year}");
        let reply = http(addr, "GET", &path, Some(&token), None);
        assert_refused(&reply, &format!("statement {year}"));
    }

    // The node is alive and answering, and nothing was written.
    assert_eq!(server.child.try_wait().unwrap(), None, "the server died");
    let health = http(addr, "GET", "/health", None, None);
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(snapshot(addr, &token), before);
    // An ordinary change still goes through.
    let day = http(
        addr,
        "PUT",
        &format!("/children/{LUCA}/days/2026-12-10"),
        Some(&token),
        Some(&json!({"status": "absent"})),
    );
    assert_eq!(day.status, 200, "{}", day.text);
    // And it stops gracefully.
    server.stop();
}
