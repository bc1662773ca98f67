//! Cost of the sans-IO SIP core, single thread, no sockets: parse and print
//! per message, and a whole call setup + teardown through the `Endpoint`.
//! Run: `cargo bench --bench sip_core` (prints figures; see docs/benchmarks.md).

use std::hint::black_box;
use std::time::{Duration, Instant};

use mensa::sip::config::EndpointConfig;
use mensa::sip::endpoint::{Endpoint, Event, Input};
use mensa::sip::message::{Framing, Message, parse};
use mensa::sip::print::ResponseBuilder;
use mensa::sip::transport::Transport;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n";

fn request(method: &str, n: u64, cseq: u32, to_tag: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} sip:800082653@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{n}-{method};rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Carrier\" <sip:3331234567@127.0.0.1:5070>;tag={n}\r\n\
         To: <sip:800082653@127.0.0.1:5060>{to_tag}\r\nCall-ID: {n}-bench@127.0.0.1\r\n\
         CSeq: {cseq} {method}\r\nContact: <sip:3331234567@127.0.0.1:5070>\r\n\
         Supported: timer\r\nUser-Agent: bench\r\n{}Content-Length: {}\r\n\r\n{body}",
        if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        },
        body.len()
    )
    .into_bytes()
}

fn per_op(label: &str, iterations: u64, elapsed: Duration) {
    let ns = elapsed.as_nanos() as f64 / iterations as f64;
    println!("{label:<40} {ns:>10.0} ns/op  {:>10.0} ops/s", 1e9 / ns);
}

fn main() {
    let invite = request("INVITE", 1, 1, "", SDP);
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        black_box(parse(black_box(&invite), Framing::Datagram).ok());
    }
    per_op(
        &format!("parse INVITE with SDP ({} B)", invite.len()),
        n,
        t.elapsed(),
    );

    let Ok(parsed) = parse(&invite, Framing::Datagram) else {
        return;
    };
    let Message::Request(req) = parsed.message else {
        return;
    };
    let t = Instant::now();
    for _ in 0..n {
        let r = ResponseBuilder::new(&req.head, 200, Some("abcdef"))
            .header("Contact", "<sip:127.0.0.1:5060>");
        black_box(
            r.body("application/sdp", SDP.as_bytes().to_vec())
                .to_bytes(),
        );
    }
    per_op("print 200 OK with SDP", n, t.elapsed());

    let mut config = EndpointConfig::demo(
        "127.0.0.1:5060"
            .parse()
            .unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 5060))),
        1,
    );
    config.max_concurrent_calls = usize::MAX;
    config.max_calls_per_second = u32::MAX;
    let mut ep = Endpoint::new(config);
    let source = std::net::SocketAddr::from(([127, 0, 0, 1], 5070));
    let rtp = std::net::SocketAddr::from(([127, 0, 0, 1], 20000));
    let calls = 50_000u64;
    let start = Instant::now();
    for i in 0..calls {
        let now = start + Duration::from_micros(i * 100);
        let feed = |ep: &mut Endpoint, bytes: &[u8]| {
            ep.handle_input(
                now,
                Input::Datagram {
                    transport: Transport::Udp,
                    source,
                    bytes,
                },
            );
            let mut tag = None;
            while let Some(t) = ep.poll_transmit() {
                let text = String::from_utf8_lossy(&t.bytes);
                if let Some(rest) = text
                    .split(";tag=")
                    .nth(1)
                    .filter(|_| text.starts_with("SIP/2.0 200"))
                {
                    tag = rest.split("\r\n").next().map(str::to_owned);
                }
            }
            tag
        };
        let invite = request("INVITE", i, 1, "", SDP);
        feed(&mut ep, &invite);
        let Some(Event::IncomingCall { call, .. }) = ep.poll_event() else {
            return;
        };
        let _ = ep.answer(now, call, rtp);
        let mut tag = None;
        while let Some(t) = ep.poll_transmit() {
            let text = String::from_utf8_lossy(&t.bytes).into_owned();
            tag = text
                .split("To: ")
                .nth(1)
                .and_then(|to| to.split(";tag=").nth(1))
                .and_then(|x| x.split("\r\n").next())
                .map(str::to_owned);
        }
        let to_tag = format!(";tag={}", tag.unwrap_or_default());
        feed(&mut ep, &request("ACK", i, 1, &to_tag, ""));
        feed(&mut ep, &request("BYE", i, 2, &to_tag, ""));
        while ep.poll_event().is_some() {}
        ep.handle_timeout(now);
    }
    per_op(
        "call: INVITE/100/200/ACK/BYE/200 (core)",
        calls,
        start.elapsed(),
    );
    println!("left: {} calls", ep.active_calls());
}
