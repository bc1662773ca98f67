//! Endpoint tests: the RFC 4475 corpus answers, and call scenarios in
//! simulated time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::sip::config::IpNet;
use crate::sip::corpus;
use crate::sip::transaction::T1;

const PEER: &str = "192.0.2.1:5060";

fn config() -> EndpointConfig {
    let mut c = EndpointConfig::demo("198.51.100.7:5060".parse().unwrap(), 42);
    c.allowed = vec![
        IpNet::parse("0.0.0.0/0").unwrap(),
        IpNet::parse("::/0").unwrap(),
    ];
    c.default_route = Some("default".into());
    c
}

struct Harness {
    ep: Endpoint,
    t0: Instant,
    now: Instant,
    events: Vec<Event>,
}

impl Harness {
    fn new(config: EndpointConfig) -> Harness {
        let t0 = Instant::now();
        Harness {
            ep: Endpoint::new(config),
            t0,
            now: t0,
            events: Vec::new(),
        }
    }

    fn drain(&mut self) -> Vec<Transmit> {
        assert!(
            self.ep.timers_cover_all_deadlines(),
            "a deadline without a timer entry"
        );
        self.events
            .extend(std::iter::from_fn(|| self.ep.poll_event()));
        std::iter::from_fn(|| self.ep.poll_transmit()).collect()
    }

    fn send_from(&mut self, source: &str, bytes: &[u8]) -> Vec<Transmit> {
        let source: SocketAddr = source.parse().unwrap();
        self.ep.handle_input(
            self.now,
            Input::Datagram {
                transport: Transport::Udp,
                source,
                bytes,
            },
        );
        self.drain()
    }

    fn send(&mut self, text: &str) -> Vec<Transmit> {
        self.send_from(PEER, text.as_bytes())
    }

    /// Runs timers up to `now + d`; returns what was sent, with offsets from t0.
    fn advance(&mut self, d: Duration) -> Vec<(Duration, Transmit)> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(at) = self.ep.poll_timeout().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.ep.handle_timeout(self.now);
            for t in self.drain() {
                out.push((self.now - self.t0, t));
            }
        }
        self.now = end;
        out
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

fn text(t: &Transmit) -> String {
    String::from_utf8_lossy(&t.bytes).into_owned()
}

fn status(t: &Transmit) -> u16 {
    text(t).get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn statuses(ts: &[Transmit]) -> Vec<u16> {
    ts.iter().map(status).collect()
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

fn to_tag(t: &Transmit) -> String {
    let to = header(&text(t), "To").unwrap().to_owned();
    to.split(";tag=").nth(1).unwrap().to_owned()
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

/// A request from the caller; `extra` ends with CRLF when not empty.
fn request(method: &str, branch: &str, cseq: u32, to_tag: &str, extra: &str, body: &str) -> String {
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    format!(
        "{method} sip:800082653@198.51.100.7 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\nFrom: \"Mamma\" <sip:3331234567@192.0.2.1>;tag=caller1\r\n\
         To: <sip:800082653@198.51.100.7>{to_tag}\r\nCall-ID: c1@192.0.2.1\r\nCSeq: {cseq} {method}\r\n\
         Contact: <sip:3331234567@192.0.2.1:5060>\r\n{extra}{}Content-Length: {}\r\n\r\n{body}",
        if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        },
        body.len()
    )
}

fn invite(extra: &str, body: &str) -> String {
    request("INVITE", "inv1", 1, "", extra, body)
}

/// INVITE, answered; returns the call and our To tag.
fn answered_call(h: &mut Harness, extra: &str, body: &str) -> (CallId, String) {
    let out = h.send(&invite(extra, body));
    assert_eq!(statuses(&out), vec![100]);
    let Some(Event::IncomingCall { call, .. }) = h.take_events().pop() else {
        panic!("no call")
    };
    h.ep.answer(h.now, call, "198.51.100.7:20000".parse().unwrap())
        .unwrap();
    let out = h.drain();
    assert_eq!(statuses(&out), vec![200]);
    (call, to_tag(&out[0]))
}

fn established_call(h: &mut Harness) -> (CallId, String) {
    let (call, tag) = answered_call(h, "", SDP);
    assert!(h.send(&request("ACK", "ack1", 1, &tag, "", "")).is_empty());
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::CallEstablished { .. }]
    ));
    (call, tag)
}

#[test]
fn torture_corpus_answers() {
    // (file, first response status, or 0 for silence). Choices within RFC
    // 4475 are in docs/decisions.md; wsinv has a To tag, so it is a
    // request inside a dialog we do not have: 481 (RFC 3261 §12.2.2).
    let expected: &[(&str, u16)] = &[
        ("archive-only/test", 0),
        ("badaspec", 400),
        ("badbranch", 200),
        ("baddate", 100),
        ("baddn", 400),
        ("badinv01", 400),
        ("badvers", 505),
        ("bcast", 0),
        ("bext01", 420),
        ("bigcode", 0),
        ("clerr", 400),
        ("cparam01", 405),
        ("cparam02", 405),
        ("dblreq", 405),
        ("esc01", 100),
        ("esc02", 501),
        ("escnull", 405),
        ("escruri", 100),
        ("insuf", 0),
        ("intmeth", 501),
        ("inv2543", 100),
        ("invut", 415),
        ("longreq", 100),
        ("ltgtruri", 400),
        ("lwsdisp", 200),
        ("lwsruri", 400),
        ("lwsstart", 400),
        ("mcl01", 400),
        ("mismatch01", 400),
        ("mismatch02", 501),
        ("mpart01", 405),
        ("multi01", 400),
        ("ncl", 400),
        ("noreason", 0),
        ("novelsc", 416),
        ("quotbal", 400),
        ("regaut01", 405),
        ("regbadct", 405),
        ("regescrt", 405),
        ("scalar02", 400),
        ("scalarlg", 0),
        ("sdp01", 406),
        ("semiuri", 200),
        ("transports", 200),
        ("trws", 400),
        ("unkscm", 416),
        ("unksm2", 405),
        ("unreason", 0),
        ("variants/baddn-terminated", 400),
        ("wsinv", 481),
        ("zeromf", 200),
    ];
    let names = corpus::all();
    assert_eq!(names.len(), expected.len());
    for name in names {
        let want = expected
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name}: no expectation"))
            .1;
        let mut h = Harness::new(config());
        let out = h.send_from("192.0.2.1:5060", &corpus::read(&name));
        let got = out.first().map_or(0, status);
        assert_eq!(got, want, "{name}: {:?}", out.first().map(text));
        assert!(out.len() <= 1, "{name}: one response");
        if want == 100 {
            assert!(
                matches!(h.take_events().as_slice(), [Event::IncomingCall { .. }]),
                "{name}"
            );
        }
        if let Some(t) = out.first() {
            let r = text(t);
            assert!(
                header(&r, "Call-ID").is_some() && header(&r, "CSeq").is_some(),
                "{name}"
            );
            assert_ne!(t.destination.ip().to_string(), "255.255.255.255", "{name}");
        }
        // Nothing stays behind but timers that end.
        // 30 s answer timeout (480), then Timer H (32 s).
        h.advance(Duration::from_secs(70));
        assert!(h.ep.transactions.is_empty(), "{name}: transactions leak");
        assert_eq!(h.ep.active_calls(), 0, "{name}: dialogs leak");
    }
}

#[test]
fn torture_responses_go_where_rfc_3261_18_2_2_says() {
    let mut h = Harness::new(config());
    let out = h.send_from("192.0.2.1:40000", &corpus::read("quotbal"));
    assert_eq!(
        out[0].destination,
        "192.0.2.1:5050".parse().unwrap(),
        "Via port, no rport"
    );
    let out = h.send_from("127.0.0.1:40001", &corpus::read("mpart01"));
    assert_eq!(
        out[0].destination,
        "127.0.0.1:40001".parse().unwrap(),
        "rport: the source port"
    );
    assert!(text(&out[0]).contains("rport=40001;received=127.0.0.1"));
    let out = h.send_from("192.0.2.1:40002", &corpus::read("dblreq"));
    assert_eq!(out.len(), 1, "the trailing INVITE never starts a call");
    assert!(h.take_events().is_empty());
}

#[test]
fn basic_call_with_2xx_retransmission_until_ack_then_bye() {
    let mut h = Harness::new(config());
    let out = h.send(&invite("", SDP));
    assert_eq!(statuses(&out), vec![100]);
    assert_eq!(out[0].destination, PEER.parse().unwrap());
    let events = h.take_events();
    let [
        Event::IncomingCall {
            call,
            called,
            dialplan,
            caller,
            media: Some(media),
            source,
            trunk,
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(*source, PEER.parse().unwrap());
    assert_eq!(
        trunk.to_string(),
        "0.0.0.0/0",
        "the allow-list entry it matched"
    );
    assert_eq!(
        (
            called.as_str(),
            dialplan.as_str(),
            caller.as_ref().map(|c| c.expose())
        ),
        ("800082653", "default", Some("3331234567"))
    );
    assert_eq!(
        (media.codec_payload_type, media.telephone_event),
        (8, Some((101, 8000)))
    );
    let call = *call;
    h.ep.answer(h.now, call, "198.51.100.7:20000".parse().unwrap())
        .unwrap();
    let out = h.drain();
    let ok = text(&out[0]);
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"));
    assert!(
        ok.contains("m=audio 20000 RTP/AVP 8 101\r\n")
            && ok.contains("Content-Type: application/sdp")
    );
    assert!(
        header(&ok, "Contact")
            .unwrap()
            .contains("198.51.100.7:5060")
    );
    let tag = to_tag(&out[0]);
    // Retransmitted INVITE: the 200 again, no second call.
    assert_eq!(statuses(&h.send(&invite("", SDP))), vec![200]);
    assert!(h.take_events().is_empty());
    // §13.3.1.4: 2xx at 0.5 s, 1.5 s... until the ACK.
    let sent = h.advance(Duration::from_millis(1600));
    assert_eq!(
        sent.iter()
            .map(|(at, _)| at.as_millis())
            .collect::<Vec<_>>(),
        vec![500, 1500]
    );
    assert!(h.send(&request("ACK", "ack1", 1, &tag, "", "")).is_empty());
    assert!(
        matches!(h.take_events().as_slice(), [Event::CallEstablished { media, .. }] if media.codec_payload_type == 8)
    );
    assert!(
        h.advance(Duration::from_secs(5)).is_empty(),
        "no more 2xx after the ACK"
    );
    let out = h.send(&request("BYE", "bye1", 2, &tag, "", ""));
    assert_eq!(statuses(&out), vec![200]);
    assert_eq!(
        h.take_events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::RemoteHangup
        }]
    );
    assert_eq!(
        statuses(&h.send(&request("BYE", "bye1", 2, &tag, "", ""))),
        vec![200],
        "retransmitted BYE"
    );
    h.advance(Duration::from_secs(40));
    assert_eq!((h.ep.active_calls(), h.ep.transactions.len()), (0, 0));
}

#[test]
fn retransmitted_2xx_follows_the_via_port_without_rport() {
    let mut h = Harness::new(config());
    let out = h.send_from("192.0.2.1:40000", invite("", SDP).as_bytes());
    assert_eq!(out[0].destination, PEER.parse().unwrap());
    let Some(Event::IncomingCall { call, .. }) = h.take_events().pop() else {
        panic!()
    };
    h.ep.answer(h.now, call, "198.51.100.7:20000".parse().unwrap())
        .unwrap();
    assert_eq!(h.drain()[0].destination, PEER.parse().unwrap());
    let sent = h.advance(Duration::from_secs(1));
    assert_eq!(sent[0].1.destination, PEER.parse().unwrap());
}

#[test]
fn caller_from_p_asserted_identity() {
    let mut h = Harness::new(config());
    let anonymous = invite("p-asserted-identity: <tel:+393339876543>\r\n", SDP)
        .replace(
            "\"Mamma\" <sip:3331234567@",
            "\"Anonymous\" <sip:anonymous@",
        )
        .replace("bKinv1", "bKanon")
        .replace("c1@", "anon@");
    h.send(&anonymous);
    let events = h.take_events();
    assert!(
        matches!(events.as_slice(), [Event::IncomingCall { caller: Some(c), .. }] if c.expose() == "+393339876543"),
        "{events:?}"
    );
}

#[test]
fn merged_request_gets_482() {
    let mut h = Harness::new(config());
    assert_eq!(statuses(&h.send(&invite("", SDP))), vec![100]);
    // §8.2.2.2: the same INVITE on another branch (a looped fork).
    assert_eq!(
        statuses(&h.send(&invite("", SDP).replace("bKinv1", "bKfork"))),
        vec![482]
    );
    assert_eq!(h.take_events().len(), 1, "one call only");
}

#[test]
fn contact_says_tcp_on_tcp() {
    let mut h = Harness::new(config());
    let source = PEER.parse().unwrap();
    let bytes = invite("", SDP)
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .into_bytes();
    h.ep.handle_input(
        h.now,
        Input::Datagram {
            transport: Transport::Tcp,
            source,
            bytes: &bytes,
        },
    );
    assert_eq!(statuses(&h.drain()), vec![100]);
    let Some(Event::IncomingCall { call, .. }) = h.take_events().pop() else {
        panic!()
    };
    h.ep.answer(h.now, call, "198.51.100.7:20000".parse().unwrap())
        .unwrap();
    let ok = h.drain();
    assert_eq!(
        header(&text(&ok[0]), "Contact"),
        Some("<sip:198.51.100.7:5060;transport=tcp>")
    );
    assert_eq!(
        (ok[0].transport, ok[0].destination),
        (Transport::Tcp, source)
    );
    assert!(
        h.advance(Duration::from_secs(5)).is_empty(),
        "no 2xx retransmission over TCP"
    );
}

#[test]
fn lost_ack_ends_with_bye() {
    let mut h = Harness::new(config());
    let (call, _) = answered_call(&mut h, "", SDP);
    let sent = h.advance(Duration::from_secs(33));
    let (last_at, bye) = sent
        .iter()
        .find(|(_, t)| text(t).starts_with("BYE"))
        .unwrap();
    assert_eq!(*last_at, 64 * T1);
    assert!(text(bye).starts_with("BYE sip:3331234567@192.0.2.1:5060 SIP/2.0\r\n"));
    assert_eq!(sent.iter().filter(|(_, t)| status(t) == 200).count(), 10);
    assert_eq!(
        h.take_events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::NoAck
        }]
    );
    // The BYE is answered: the dialog is gone.
    let bye = text(bye);
    let cseq = header(&bye, "CSeq").unwrap();
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: c1@192.0.2.1\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n",
        header(&bye, "Via").unwrap(),
        header(&bye, "From").unwrap(),
        header(&bye, "To").unwrap()
    );
    assert!(h.send(&ok).is_empty());
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn cancel_before_answer_and_racing_the_200() {
    let mut h = Harness::new(config());
    h.send(&invite("", SDP));
    let Some(Event::IncomingCall { call, .. }) = h.take_events().pop() else {
        panic!()
    };
    let out = h.send(&request("CANCEL", "inv1", 1, "", "", ""));
    assert_eq!(statuses(&out), vec![200, 487]);
    assert_eq!(
        h.take_events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::Cancelled
        }]
    );
    assert!(
        h.send(&request("ACK", "inv1", 1, &to_tag(&out[1]), "", ""))
            .is_empty(),
        "ACK of the 487 absorbed"
    );
    assert_eq!(
        h.ep.answer(h.now, call, "198.51.100.7:20000".parse().unwrap()),
        Err(CommandError::UnknownCall)
    );
    assert!(
        h.advance(Duration::from_secs(10)).is_empty(),
        "ACK stopped Timer G"
    );

    let mut h = Harness::new(config());
    let (_, _) = answered_call(&mut h, "", SDP);
    assert_eq!(
        statuses(&h.send(&request("CANCEL", "inv1", 1, "", "", ""))),
        vec![200],
        "too late: no 487"
    );
    assert!(h.take_events().is_empty());
    assert_eq!(
        statuses(&h.send(&request("CANCEL", "nothing", 1, "", "", ""))),
        vec![481]
    );
}

#[test]
fn requests_outside_any_dialog() {
    let mut h = Harness::new(config());
    assert_eq!(
        statuses(&h.send(&request("BYE", "b", 2, "nosuch", "", ""))),
        vec![481]
    );
    assert_eq!(
        statuses(&h.send(&request("INFO", "i", 2, "", "", ""))),
        vec![481]
    );
    let out = h.send(&request("OPTIONS", "o", 1, "", "", ""));
    let r = text(&out[0]);
    assert_eq!(status(&out[0]), 200);
    assert_eq!(
        (header(&r, "Allow"), header(&r, "Supported")),
        (Some(ALLOW), Some("timer"))
    );
    assert!(header(&r, "Accept").unwrap().contains("application/sdp"));
    let out = h.send(&request("SUBSCRIBE", "s", 1, "", "", ""));
    assert_eq!(
        (status(&out[0]), header(&text(&out[0]), "Allow")),
        (405, Some(ALLOW))
    );
    assert_eq!(
        statuses(&h.send(
            &request("INVITE", "mf", 1, "", "", "").replace("Max-Forwards: 70", "Max-Forwards: 0")
        )),
        vec![483]
    );
    h.ep.set_draining(true);
    assert_eq!(
        statuses(&h.send(&request("OPTIONS", "o2", 2, "", "", ""))),
        vec![503]
    );
    assert_eq!(
        statuses(&h.send(&request("INVITE", "d", 1, "", "", ""))),
        vec![503]
    );
}

/// Every refused INVITE is reported with its reason, for the operators'
/// counters (`mensa_calls_refused_total`).
#[test]
fn refused_invites_say_why() {
    let mut c = EndpointConfig::demo("198.51.100.7:5060".parse().unwrap(), 1);
    c.allowed.push(IpNet::parse("192.0.2.0/24").unwrap());
    c.max_concurrent_calls = 1;
    c.max_calls_per_second = 2;
    let refused = |h: &mut Harness| -> Vec<(u16, RefusedBecause)> {
        h.take_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::CallRefused { status, reason } => Some((status, reason)),
                _ => None,
            })
            .collect()
    };
    let mut h = Harness::new(c.clone());
    let nowhere = invite("", SDP)
        .replace(
            "sip:800082653@198.51.100.7 SIP",
            "sip:0612345@198.51.100.7 SIP",
        )
        .replace("To: <sip:800082653", "To: <sip:0612345");
    assert_eq!(statuses(&h.send(&nowhere)), vec![404]);
    assert_eq!(refused(&mut h), vec![(404, RefusedBecause::NoRoute)]);
    let call = |i: u32| {
        request("INVITE", &format!("r{i}"), 1, "", "", SDP).replace("c1@", &format!("r{i}@"))
    };
    assert_eq!(statuses(&h.send(&call(1))), vec![100]);
    assert_eq!(statuses(&h.send(&call(2))), vec![503]);
    assert_eq!(refused(&mut h), vec![(503, RefusedBecause::Capacity)]);

    let mut h = Harness::new(c.clone());
    h.ep.set_overloaded(true);
    assert_eq!(statuses(&h.send(&call(3))), vec![503]);
    assert_eq!(refused(&mut h), vec![(503, RefusedBecause::Overloaded)]);
    h.ep.set_overloaded(false);
    h.ep.set_draining(true);
    assert_eq!(statuses(&h.send(&call(4))), vec![503]);
    assert_eq!(refused(&mut h), vec![(503, RefusedBecause::Draining)]);

    c.max_concurrent_calls = 10;
    let mut h = Harness::new(c);
    for i in 5..7 {
        assert_eq!(statuses(&h.send(&call(i))), vec![100]);
    }
    assert_eq!(statuses(&h.send(&call(7))), vec![503]);
    assert_eq!(refused(&mut h), vec![(503, RefusedBecause::Rate)]);
}

#[test]
fn access_routes_and_limits() {
    let mut c = EndpointConfig::demo("198.51.100.7:5060".parse().unwrap(), 1);
    c.max_concurrent_calls = 1;
    let mut h = Harness::new(c.clone());
    assert_eq!(
        statuses(&h.send(&invite("", SDP))),
        vec![403],
        "only loopback by default"
    );
    c.unauthorized = crate::sip::config::Unauthorized::Drop;
    assert!(Harness::new(c.clone()).send(&invite("", SDP)).is_empty());
    c.allowed.push(IpNet::parse("192.0.2.0/24").unwrap());
    let mut h = Harness::new(c.clone());
    let unknown = invite("", SDP).replace(
        "sip:800082653@198.51.100.7 SIP",
        "sip:0612345@198.51.100.7 SIP",
    );
    assert_eq!(
        statuses(
            &h.send(
                &unknown
                    .replace("To: <sip:800082653", "To: <sip:0612345")
                    .replace("bKinv1", "bKunk")
            )
        ),
        vec![404]
    );
    assert_eq!(statuses(&h.send(&invite("", SDP))), vec![100]);
    assert_eq!(
        statuses(&h.send(&request("INVITE", "second", 1, "", "", SDP).replace("c1@", "c2@"))),
        vec![503]
    );
    assert_eq!(
        statuses(&h.send(&request("OPTIONS", "o", 1, "", "", ""))),
        vec![503],
        "at capacity"
    );
    c.max_concurrent_calls = 10;
    c.max_calls_per_second = 2;
    let mut h = Harness::new(c);
    let calls: Vec<u16> = (0..3)
        .flat_map(|i| {
            statuses(
                &h.send(
                    &request("INVITE", &format!("r{i}"), 1, "", "", SDP)
                        .replace("c1@", &format!("r{i}@")),
                ),
            )
        })
        .collect();
    assert_eq!(calls, vec![100, 100, 503]);
    h.advance(Duration::from_secs(1));
    assert_eq!(
        statuses(&h.send(&request("INVITE", "r9", 1, "", "", SDP).replace("c1@", "r9@"))),
        vec![100]
    );
}

#[test]
fn sip_i_multipart_offer_is_read() {
    let mut h = Harness::new(config());
    let body = format!(
        "--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n\
         --unique-boundary-1\r\nContent-Type: application/ISUP;version=itu-t92+\r\n\
         Content-Disposition: signal;handling=optional\r\n\r\n\x01\x00\x49\x00\r\n--unique-boundary-1--\r\n"
    );
    let msg = invite("", &body).replacen(
        "Content-Type: application/sdp",
        "Content-Type: multipart/mixed;boundary=unique-boundary-1\r\nMIME-Version: 1.0",
        1,
    );
    assert_eq!(statuses(&h.send(&msg)), vec![100]);
    let events = h.take_events();
    assert!(
        matches!(events.as_slice(), [Event::IncomingCall { media: Some(m), .. }] if m.codec_payload_type == 8),
        "{events:?}"
    );
    let no_sdp = msg
        .replace("application/sdp\r\n\r\nv=0", "application/xyz\r\n\r\nv=0")
        .replace("bKinv1", "bKnosdp")
        .replace("c1@", "c2@");
    assert_eq!(statuses(&h.send(&no_sdp)), vec![415]);
}

#[test]
fn offer_problems() {
    let mut h = Harness::new(config());
    let g729 = SDP.replace("RTP/AVP 8 0 101", "RTP/AVP 18");
    assert_eq!(statuses(&h.send(&invite("", &g729))), vec![488]);
    assert_eq!(
        statuses(&h.send(&request("INVITE", "x", 1, "", "", "garbage"))),
        vec![488]
    );
}

#[test]
fn late_offer_gets_our_offer_and_the_answer_comes_in_the_ack() {
    let mut h = Harness::new(config());
    let out = h.send(&invite("", ""));
    assert_eq!(statuses(&out), vec![100]);
    let Some(Event::IncomingCall {
        call, media: None, ..
    }) = h.take_events().pop()
    else {
        panic!()
    };
    h.ep.answer(h.now, call, "198.51.100.7:20000".parse().unwrap())
        .unwrap();
    let out = h.drain();
    assert!(text(&out[0]).contains("m=audio 20000 RTP/AVP 8 0 101\r\n"));
    let tag = to_tag(&out[0]);
    let answer = SDP.replace("RTP/AVP 8 0 101", "RTP/AVP 0");
    assert!(
        h.send(&request("ACK", "a", 1, &tag, "", &answer))
            .is_empty()
    );
    let events = h.take_events();
    assert!(
        matches!(events.as_slice(), [Event::CallEstablished { media, .. }] if media.codec_payload_type == 0),
        "{events:?}"
    );

    // An ACK without an answer ends the call.
    let mut h = Harness::new(config());
    h.send(&invite("", ""));
    let Some(Event::IncomingCall { call, .. }) = h.take_events().pop() else {
        panic!()
    };
    h.ep.answer(h.now, call, "198.51.100.7:20000".parse().unwrap())
        .unwrap();
    let tag = to_tag(&h.drain()[0]);
    let out = h.send(&request("ACK", "a", 1, &tag, "", ""));
    assert!(text(&out[0]).starts_with("BYE "));
    assert_eq!(
        h.take_events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::NoAnswerInAck
        }]
    );
}

#[test]
fn reinvite_hold_keeps_session_id_and_bumps_version() {
    let mut h = Harness::new(config());
    let (call, tag) = answered_call(&mut h, "", SDP);
    h.send(&request("ACK", "ack1", 1, &tag, "", ""));
    h.take_events();
    let hold = SDP.replace("c=IN IP4 192.0.2.1", "c=IN IP4 192.0.2.1\r\na=sendonly");
    let out = h.send(&request("INVITE", "re1", 2, &tag, "", &hold));
    assert_eq!(statuses(&out), vec![200]);
    let body = text(&out[0]);
    let o_line = body
        .lines()
        .find(|l| l.starts_with("o="))
        .unwrap()
        .to_owned();
    assert!(body.contains("a=recvonly"), "{body}");
    let events = h.take_events();
    assert!(
        matches!(events.as_slice(), [Event::MediaChanged { call: c, media }] if *c == call && media.direction == crate::sip::sdp::Direction::RecvOnly)
    );
    // A second re-INVITE before the ACK of the first: 491 (§14.2).
    assert_eq!(
        statuses(&h.send(&request("INVITE", "re2", 3, &tag, "", SDP))),
        vec![491]
    );
    h.send(&request("ACK", "ack2", 2, &tag, "", ""));
    // Unhold: version + 1 again, same session id.
    let out = h.send(&request("INVITE", "re3", 4, &tag, "", SDP));
    let body = text(&out[0]);
    let o2 = body.lines().find(|l| l.starts_with("o=")).unwrap();
    let (v1, v2): (u64, u64) = (
        o_line.split(' ').nth(2).unwrap().parse().unwrap(),
        o2.split(' ').nth(2).unwrap().parse().unwrap(),
    );
    assert_eq!(o_line.split(' ').nth(1), o2.split(' ').nth(1));
    assert_eq!(v2, v1 + 1);
    // Out-of-order CSeq → 500.
    assert_eq!(
        statuses(&h.send(&request("INFO", "old", 3, &tag, "", ""))),
        vec![500]
    );
}

#[test]
fn session_timers() {
    let mut h = Harness::new(config());
    let out = h.send(&invite("Session-Expires: 60\r\nSupported: timer\r\n", SDP));
    assert_eq!(statuses(&out), vec![422]);
    assert_eq!(header(&text(&out[0]), "Min-SE"), Some("90"));

    let mut h = Harness::new(config());
    let out = h.send(&invite("Session-Expires: 120\r\nSupported: timer\r\n", SDP));
    assert_eq!(statuses(&out), vec![100]);
    let Some(Event::IncomingCall { call, .. }) = h.take_events().pop() else {
        panic!()
    };
    h.ep.answer(h.now, call, "198.51.100.7:20000".parse().unwrap())
        .unwrap();
    let out = h.drain();
    assert_eq!(
        header(&text(&out[0]), "Session-Expires"),
        Some("120;refresher=uac")
    );
    assert_eq!(header(&text(&out[0]), "Require"), Some("timer"));
    let tag = to_tag(&out[0]);
    h.send(&request("ACK", "a", 1, &tag, "", ""));
    h.take_events();
    // A refresh by UPDATE at 70 s moves the expiry.
    h.advance(Duration::from_secs(70));
    let out = h.send(&request(
        "UPDATE",
        "u1",
        2,
        &tag,
        "Session-Expires: 120;refresher=uac\r\nSupported: timer\r\n",
        "",
    ));
    assert_eq!(statuses(&out), vec![200]);
    assert!(
        h.advance(Duration::from_secs(70))
            .iter()
            .all(|(_, t)| !text(t).starts_with("BYE"))
    );
    // No refresh: BYE at 120 - 32 = 88 s after the last one.
    let sent = h.advance(Duration::from_secs(30));
    let (at, bye) = sent
        .iter()
        .find(|(_, t)| text(t).starts_with("BYE"))
        .unwrap();
    assert_eq!(*at, Duration::from_secs(70 + 88));
    assert!(text(bye).contains("CSeq: "));
    assert_eq!(
        h.take_events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::SessionExpired
        }]
    );
}

/// The peer's response to a request we sent.
fn reply_to(t: &Transmit, status: u16) -> String {
    let req = text(t);
    format!(
        "SIP/2.0 {status} Whatever\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        header(&req, "Via").unwrap(),
        header(&req, "From").unwrap(),
        header(&req, "To").unwrap(),
        header(&req, "Call-ID").unwrap(),
        header(&req, "CSeq").unwrap()
    )
}

#[test]
fn we_refresh_with_update_when_asked_and_end_when_it_fails() {
    let mut h = Harness::new(config());
    let extra = "Session-Expires: 90;refresher=uas\r\nSupported: timer\r\nAllow: INVITE, ACK, BYE, UPDATE\r\n";
    h.send(&invite(extra, SDP));
    let Some(Event::IncomingCall { call, .. }) = h.take_events().pop() else {
        panic!()
    };
    h.ep.answer(h.now, call, "198.51.100.7:20000".parse().unwrap())
        .unwrap();
    let ok = h.drain();
    assert_eq!(
        header(&text(&ok[0]), "Session-Expires"),
        Some("90;refresher=uas")
    );
    let tag = to_tag(&ok[0]);
    h.send(&request("ACK", "a", 1, &tag, "", ""));
    h.take_events();
    let sent = h.advance(Duration::from_secs(46));
    let (at, update) = sent
        .iter()
        .find(|(_, t)| text(t).starts_with("UPDATE "))
        .unwrap();
    assert_eq!(*at, Duration::from_secs(45));
    assert_eq!(
        header(&text(update), "Session-Expires"),
        Some("90;refresher=uas")
    );
    assert!(h.send(&reply_to(update, 200)).is_empty());
    let sent = h.advance(Duration::from_secs(45));
    let (at, update) = sent
        .iter()
        .find(|(_, t)| text(t).starts_with("UPDATE "))
        .unwrap();
    assert_eq!(*at, Duration::from_secs(46 + 45));
    let out = h.send(&reply_to(update, 481));
    assert!(text(&out[0]).starts_with("BYE "));
    assert_eq!(
        h.take_events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::SessionExpired
        }]
    );
}

#[test]
fn no_timer_when_nobody_can_refresh() {
    // A proxy asked for a timer, the UAC does not know RFC 4028 nor allows UPDATE.
    let mut h = Harness::new(config());
    h.send(&invite(
        "Session-Expires: 1800\r\nAllow: INVITE, ACK, BYE\r\n",
        SDP,
    ));
    let Some(Event::IncomingCall { call, .. }) = h.take_events().pop() else {
        panic!()
    };
    h.ep.answer(h.now, call, "198.51.100.7:20000".parse().unwrap())
        .unwrap();
    let ok = text(&h.drain()[0]);
    assert_eq!(
        (header(&ok, "Session-Expires"), header(&ok, "Require")),
        (None, None)
    );
}

#[test]
fn info_dtmf_and_hang_up() {
    let mut h = Harness::new(config());
    let (call, tag) = established_call(&mut h);
    let info = request("INFO", "i1", 2, &tag, "", "").replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\nSignal=5\r\nDuration=160\r\n",
    );
    assert_eq!(statuses(&h.send(&info)), vec![200]);
    assert_eq!(
        h.take_events(),
        vec![Event::Dtmf {
            call,
            key: '5',
            duration_ms: Some(160)
        }]
    );
    let bad = info
        .replace("i1", "i2")
        .replace("CSeq: 2", "CSeq: 3")
        .replace("Signal=5", "Signal=x");
    assert_eq!(statuses(&h.send(&bad)), vec![400]);
    assert!(h.take_events().is_empty());
    h.ep.hang_up(h.now, call).unwrap();
    let out = h.drain();
    assert!(text(&out[0]).starts_with("BYE sip:3331234567@192.0.2.1:5060 SIP/2.0\r\n"));
    assert_eq!(
        h.take_events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::LocalHangup
        }]
    );
    // Timer E resends the unanswered BYE; Timer F forgets the dialog.
    let sent = h.advance(Duration::from_secs(40));
    assert!(sent.len() >= 5);
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn hang_up_before_the_ack_waits_for_it() {
    let mut h = Harness::new(config());
    let (call, tag) = answered_call(&mut h, "", SDP);
    h.ep.hang_up(h.now, call).unwrap();
    assert!(h.drain().is_empty(), "§15: no BYE before the ACK");
    assert_eq!(
        h.take_events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::LocalHangup
        }]
    );
    let out = h.send(&request("ACK", "a", 1, &tag, "", ""));
    assert!(text(&out[0]).starts_with("BYE "));
    assert!(h.take_events().is_empty());
}

#[test]
fn draining_then_hang_up_all() {
    let mut h = Harness::new(config());
    let (call, _) = established_call(&mut h);
    h.ep.set_draining(true);
    assert_eq!(
        statuses(&h.send(&request("INVITE", "new", 1, "", "", SDP).replace("c1@", "c9@"))),
        vec![503]
    );
    assert_eq!(
        h.take_events(),
        vec![Event::CallRefused {
            status: 503,
            reason: RefusedBecause::Draining
        }]
    );
    assert_eq!(h.ep.active_calls(), 1, "the call in progress goes on");
    h.ep.hang_up_all(h.now);
    assert!(text(&h.drain()[0]).starts_with("BYE "));
    assert_eq!(
        h.take_events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::LocalHangup
        }]
    );
}

#[test]
fn unanswered_call_times_out_with_480() {
    let mut h = Harness::new(config());
    h.send(&invite("", SDP));
    let Some(Event::IncomingCall { call, .. }) = h.take_events().pop() else {
        panic!()
    };
    let sent = h.advance(Duration::from_secs(31));
    assert_eq!(status(&sent[0].1), 480);
    assert_eq!(
        h.take_events(),
        vec![Event::CallEnded {
            call,
            reason: EndReason::AnswerTimeout
        }]
    );
    assert_eq!(
        h.ep.reject(h.now, call, 486),
        Err(CommandError::UnknownCall)
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

    #[test]
    fn endpoint_survives_mutated_corpus(file in 0usize..51, edits in proptest::collection::vec((0usize..4000, proptest::prelude::any::<u8>()), 0..6)) {
        let names = corpus::all();
        let mut bytes = corpus::read(&names[file % names.len()]);
        for (at, b) in edits {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        let mut h = Harness::new(config());
        h.send_from(PEER, &bytes);
        h.send_from(PEER, &bytes);
        h.advance(Duration::from_secs(100));
    }
}

/// A new call's INVITE (its own Call-ID and branch), beside the one of
/// `established_call`.
fn new_invite(n: u32) -> String {
    request("INVITE", &format!("n{n}"), 1, "", "", SDP).replace("c1@", &format!("c{n}@"))
}

#[test]
fn overloaded_sheds_new_calls_and_probes_until_cleared() {
    let mut h = Harness::new(config());
    let (_call, _) = established_call(&mut h);
    h.ep.set_overloaded(true);
    let refused = h.send(&new_invite(7));
    assert_eq!(statuses(&refused), vec![503]);
    assert_eq!(
        h.take_events(),
        vec![Event::CallRefused {
            status: 503,
            reason: RefusedBecause::Overloaded
        }]
    );
    assert!(
        text(&refused[0]).contains("Retry-After: 5"),
        "{}",
        text(&refused[0])
    );
    assert_eq!(
        statuses(&h.send(&request("OPTIONS", "o1", 1, "", "", ""))),
        vec![503]
    );
    assert_eq!(h.ep.active_calls(), 1, "the call in progress goes on");
    h.ep.set_overloaded(false);
    assert_eq!(
        statuses(&h.send(&request("OPTIONS", "o2", 2, "", "", ""))),
        vec![200]
    );
    let _ = h.send(&new_invite(8));
    assert!(
        matches!(h.take_events().as_slice(), [Event::IncomingCall { .. }]),
        "calls are taken again"
    );
}

#[test]
fn a_learned_call_limit_refuses_past_it_and_lifts_when_raised() {
    let mut h = Harness::new(config());
    let (_call, _) = established_call(&mut h);
    h.ep.set_call_limit(Some(1));
    assert_eq!(statuses(&h.send(&new_invite(7))), vec![503]);
    assert_eq!(
        h.take_events(),
        vec![Event::CallRefused {
            status: 503,
            reason: RefusedBecause::Overloaded
        }]
    );
    assert_eq!(
        statuses(&h.send(&request("OPTIONS", "o1", 1, "", "", ""))),
        vec![503],
        "a dispatcher probing sees the node full"
    );
    h.ep.set_call_limit(Some(2));
    assert_eq!(
        statuses(&h.send(&request("OPTIONS", "o2", 2, "", "", ""))),
        vec![200]
    );
    let _ = h.send(&new_invite(8));
    assert!(
        matches!(h.take_events().as_slice(), [Event::IncomingCall { .. }]),
        "a call under the raised limit is taken"
    );
    assert_eq!(statuses(&h.send(&new_invite(9))), vec![503]);
    assert_eq!(h.ep.active_calls(), 2);
}

#[test]
fn listening_on_port_zero_advertises_the_port_bound() {
    let mut c = config();
    c.advertise = "198.51.100.7:0".parse().unwrap();
    let mut h = Harness::new(c);
    h.ep.listening_on("0.0.0.0:40123".parse().unwrap());
    let out = h.send(&invite("", SDP));
    assert_eq!(statuses(&out), vec![100]);
    let Some(Event::IncomingCall { call, .. }) = h.take_events().pop() else {
        panic!("no call")
    };
    h.ep.answer(h.now, call, "198.51.100.7:20000".parse().unwrap())
        .unwrap();
    let ok = text(&h.drain()[0]);
    assert!(ok.contains("Contact: <sip:198.51.100.7:40123>"), "{ok}");
    // A configured port is kept whatever the socket.
    let mut h = Harness::new(config());
    h.ep.listening_on("0.0.0.0:40123".parse().unwrap());
    h.send(&invite("", SDP));
    let Some(Event::IncomingCall { call, .. }) = h.take_events().pop() else {
        panic!("no call")
    };
    h.ep.answer(h.now, call, "198.51.100.7:20000".parse().unwrap())
        .unwrap();
    assert!(text(&h.drain()[0]).contains("Contact: <sip:198.51.100.7:5060>"));
}

/// A source outside the allow-list costs no parse: nothing comes of it but
/// a 403 within `max_forbidden_per_second`, then silence; every datagram
/// is counted.
#[test]
fn sources_not_allowed_are_refused_within_a_budget_then_dropped() {
    let mut c = EndpointConfig::demo("198.51.100.7:5060".parse().unwrap(), 1);
    c.max_forbidden_per_second = 3;
    let mut h = Harness::new(c);
    let options = |i: u32| request("OPTIONS", &format!("o{i}"), i, "", "", "");
    let answers: Vec<u16> = (0..10)
        .flat_map(|i| statuses(&h.send(&options(i))))
        .collect();
    assert_eq!(
        answers,
        vec![403, 403, 403],
        "a burst of the budget, no more"
    );
    // Bytes that do not even parse are dropped too, counted, unanswered.
    assert!(h.send_from(PEER, b"\x00\x01garbage").is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(
        statuses(&h.send(&options(11))),
        vec![403],
        "the budget refills"
    );
    assert_eq!(
        h.ep.dropped(),
        crate::sip::limits::Dropped {
            not_allowed: 12,
            forbidden: 4,
            ..Default::default()
        }
    );
    assert!(h.ep.transactions.is_empty(), "no state for them");
    assert!(h.take_events().is_empty());
}

/// One source cannot hold every transaction: past its budget its new
/// requests are dropped unanswered, its retransmissions are still
/// absorbed, and another source is answered.
#[test]
fn a_source_cannot_take_every_transaction() {
    let mut c = config();
    c.max_transactions = 8;
    c.max_transactions_per_source = 5;
    let mut h = Harness::new(c);
    let options = |i: u32| request("OPTIONS", &format!("t{i}"), i, "", "", "");
    let from_peer: Vec<u16> = (0..8)
        .flat_map(|i| statuses(&h.send(&options(i))))
        .collect();
    assert_eq!(from_peer, vec![200; 5]);
    assert_eq!(h.ep.dropped().source_transactions, 3);
    // A retransmission of an open one is answered again, statelessly for us.
    assert_eq!(statuses(&h.send(&options(0))), vec![200]);
    let other = "192.0.2.99:5060";
    let from_other: Vec<u16> = (10..14)
        .flat_map(|i| statuses(&h.send_from(other, options(i).as_bytes())))
        .collect();
    assert_eq!(from_other, vec![200; 3], "the node's budget: 8 in all");
    assert_eq!(h.ep.dropped().transactions, 1);
    // Timer J frees them (32 s on UDP): budgets come back.
    h.advance(Duration::from_secs(33));
    assert!(h.ep.transactions.is_empty());
    assert_eq!(statuses(&h.send(&options(20))), vec![200]);
}

/// Calls and new calls per second are budgeted per source: one trunk at
/// its limits leaves the others theirs (503 with its own reason).
#[test]
fn calls_and_call_rate_are_budgeted_per_source() {
    let mut c = config();
    c.max_calls_per_source = 2;
    c.max_calls_per_second_per_source = 3;
    let mut h = Harness::new(c);
    let call = |i: u32| {
        request("INVITE", &format!("s{i}"), 1, "", "", SDP).replace("c1@", &format!("s{i}@"))
    };
    let refused = |h: &mut Harness| -> Vec<RefusedBecause> {
        h.take_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::CallRefused { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    };
    assert_eq!(statuses(&h.send(&call(1))), vec![100]);
    assert_eq!(statuses(&h.send(&call(2))), vec![100]);
    assert_eq!(statuses(&h.send(&call(3))), vec![503]);
    assert_eq!(refused(&mut h), vec![RefusedBecause::SourceCapacity]);
    let other = "192.0.2.77:5060";
    assert_eq!(
        statuses(&h.send_from(other, call(4).as_bytes())),
        vec![100],
        "another source has its own budget"
    );
    // The rate: the other source's fourth new call in a second.
    for i in 5..7 {
        let out = h.send_from(other, call(i).as_bytes());
        let call_id = match h.take_events().pop() {
            Some(Event::IncomingCall { call, .. }) => call,
            e => panic!("{e:?} {out:?}"),
        };
        h.ep.reject(h.now, call_id, 486).unwrap();
        h.drain();
    }
    assert_eq!(statuses(&h.send_from(other, call(7).as_bytes())), vec![503]);
    assert_eq!(refused(&mut h), vec![RefusedBecause::SourceRate]);
    h.advance(Duration::from_secs(1));
    assert_eq!(statuses(&h.send_from(other, call(8).as_bytes())), vec![100]);
}

/// Tags come from a CSPRNG seeded per endpoint: long, and nothing about
/// one endpoint's tags tells another's.
#[test]
fn tags_are_long_and_unrelated_across_seeds() {
    let tags = |seed: u64| {
        let mut c = EndpointConfig::demo("198.51.100.7:5060".parse().unwrap(), seed);
        c.max_forbidden_per_second = 100;
        let mut h = Harness::new(c);
        (0..5)
            .map(|i| to_tag(&h.send(&request("OPTIONS", &format!("g{i}"), i, "", "", ""))[0]))
            .collect::<Vec<String>>()
    };
    let (a, b) = (tags(1), tags(2));
    assert!(a.iter().all(|t| t.len() >= 24), "{a:?}");
    assert!(a.iter().all(|t| !b.contains(t)));
    let mut unique = a.clone();
    unique.dedup();
    assert_eq!(unique.len(), a.len());
}
