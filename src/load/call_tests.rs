//! The caller machine in simulated time: retransmissions, 503, the
//! server's BYE, our BYE, keys.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::sip::message::{Framing, parse};

fn config(script: &str, audio: bool) -> Arc<CallConfig> {
    Arc::new(CallConfig {
        target: "127.0.0.1:5060".parse().unwrap(),
        local_sip: "127.0.0.1:40000".parse().unwrap(),
        local_rtp: "127.0.0.1:40002".parse().unwrap(),
        number: "800082653".into(),
        keys: KeyMode::Rfc4733,
        audio,
        setup_timeout: Duration::from_secs(32),
        script: Script::parse(script).unwrap(),
        tones: ToneFrames::new(),
        run_id: 7,
        callers: Callers::EachCall,
        guesses: Guesses::default(),
    })
}

fn drain(call: &mut LoadCall) -> (Vec<Transmit>, Vec<CallEvent>) {
    let mut tx = Vec::new();
    while let Some(t) = call.poll_transmit() {
        tx.push(t);
    }
    let mut ev = Vec::new();
    while let Some(e) = call.poll_event() {
        ev.push(e);
    }
    (tx, ev)
}

fn sip_lines(tx: &[Transmit]) -> Vec<String> {
    tx.iter()
        .filter(|t| t.channel == Channel::Sip)
        .map(|t| {
            String::from_utf8_lossy(&t.payload)
                .lines()
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The server's answer to the request in `sent`.
fn answer(sent: &Transmit, status: u16, with_sdp: bool) -> Message {
    let Message::Request(req) = parse(&sent.payload, Framing::Datagram).unwrap().message else {
        panic!("not a request")
    };
    let mut b = ResponseBuilder::new(&req.head, status, Some("srv1"))
        .header("Contact", "<sip:800082653@127.0.0.1:5060>");
    if with_sdp {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 20000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
                   a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n";
        b = b.body("application/sdp", sdp.as_bytes().to_vec());
    }
    parse(&b.to_bytes(), Framing::Datagram).unwrap().message
}

fn ended(ev: &[CallEvent]) -> Option<&Ended> {
    ev.iter().find_map(|e| match e {
        CallEvent::Ended(e) => Some(e),
        _ => None,
    })
}

#[test]
fn timer_a_retransmits_then_timer_b_gives_up() {
    let t0 = Instant::now();
    let mut call = LoadCall::new(config("short", false), 1, None, t0);
    let (tx, _) = drain(&mut call);
    assert_eq!(
        sip_lines(&tx),
        vec!["INVITE sip:800082653@127.0.0.1:5060 SIP/2.0"]
    );
    let mut sent_at = Vec::new();
    let mut now = t0;
    while !call.is_done() {
        now = call.poll_timeout().unwrap();
        call.handle_timeout(now);
        let (tx, ev) = drain(&mut call);
        if !tx.is_empty() {
            sent_at.push((now - t0).as_millis());
        }
        if let Some(e) = ended(&ev) {
            assert_eq!(e.result, Err(FailReason::SetupTimeout));
            assert_eq!(e.retransmissions_sent, 6);
        }
    }
    // RFC 3261 §17.1.1.2: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s, gone at 32 s.
    assert_eq!(sent_at, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!((now - t0).as_secs(), 32);
}

#[test]
fn trying_stops_retransmissions_and_503_is_acked() {
    let t0 = Instant::now();
    let mut call = LoadCall::new(config("short", false), 2, None, t0);
    let (tx, _) = drain(&mut call);
    let mut stats = MediaStats::default();
    call.handle_input(t0, Input::Sip(&answer(&tx[0], 100, false)), &mut stats);
    call.handle_timeout(t0 + Duration::from_secs(2));
    assert!(drain(&mut call).0.is_empty(), "no INVITE after 100 Trying");
    call.handle_input(
        t0 + Duration::from_secs(3),
        Input::Sip(&answer(&tx[0], 503, false)),
        &mut stats,
    );
    let (tx2, ev) = drain(&mut call);
    assert_eq!(
        sip_lines(&tx2),
        vec!["ACK sip:800082653@127.0.0.1:5060 SIP/2.0"]
    );
    let ack = String::from_utf8_lossy(&tx2[0].payload).into_owned();
    assert!(
        ack.contains(&call.branch) && ack.contains("tag=srv1"),
        "{ack}"
    );
    assert_eq!(ended(&ev).unwrap().result, Err(FailReason::Unavailable));
    assert!(call.is_done());
}

#[test]
fn short_call_answers_streams_and_hangs_up_with_bye_retransmitted() {
    let t0 = Instant::now();
    let mut call = LoadCall::new(config("short", true), 3, None, t0);
    let invite = drain(&mut call).0.remove(0);
    let mut stats = MediaStats::default();
    let t1 = t0 + Duration::from_millis(30);
    call.handle_input(t1, Input::Sip(&answer(&invite, 200, true)), &mut stats);
    let (tx, ev) = drain(&mut call);
    assert!(sip_lines(&tx)[0].starts_with("ACK sip:800082653@127.0.0.1:5060"));
    assert_eq!(
        ev[0],
        CallEvent::Answered {
            setup: Duration::from_millis(30),
            remote_rtp: "127.0.0.1:20000".parse().unwrap()
        }
    );
    // RFC 3261 §13.2.2.4: a retransmitted 200 is ACKed again.
    call.handle_input(t1, Input::Sip(&answer(&invite, 200, true)), &mut stats);
    let (tx, _) = drain(&mut call);
    assert_eq!(sip_lines(&tx).len(), 1);
    assert!(sip_lines(&tx)[0].starts_with("ACK "));
    // 1 s of 20 ms frames, then BYE.
    let mut rtp = 0;
    let mut bye = None;
    while bye.is_none() {
        let now = call.poll_timeout().unwrap();
        call.handle_timeout(now);
        for t in drain(&mut call).0 {
            match t.channel {
                Channel::Rtp => rtp += 1,
                Channel::Sip => bye = Some((now, t)),
            }
        }
    }
    let (bye_at, bye) = bye.unwrap();
    assert_eq!(rtp, 51, "frames at 0, 20, ... 1000 ms");
    assert_eq!(bye_at - t1, Duration::from_secs(1));
    assert!(String::from_utf8_lossy(&bye.payload).starts_with("BYE sip:800082653@127.0.0.1:5060"));
    // Timer E: the BYE again after T1.
    call.handle_timeout(bye_at + T1);
    assert_eq!(sip_lines(&drain(&mut call).0).len(), 1);
    call.handle_input(
        bye_at + T1,
        Input::Sip(&answer(&bye, 200, false)),
        &mut stats,
    );
    let e = ended(&drain(&mut call).1).unwrap().clone();
    assert_eq!(e.result, Ok(()));
    assert_eq!(
        (e.retransmissions_sent, e.retransmissions_seen, e.rtp_sent),
        (1, 1, 51)
    );
}

fn server_bye(call: &LoadCall) -> Message {
    let text = format!(
        "BYE sip:load@127.0.0.1:40000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsrv\r\n\
         From: <sip:800082653@127.0.0.1>;tag=srv1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        call.from, call.call_id
    );
    parse(text.as_bytes(), Framing::Datagram).unwrap().message
}

#[test]
fn server_bye_is_answered_and_judged_by_the_script() {
    for (script, expect) in [
        ("await-bye", Ok(())),
        ("wait:5000,bye", Err(FailReason::ServerHangUp)),
    ] {
        let t0 = Instant::now();
        let mut call = LoadCall::new(config(script, false), 4, None, t0);
        let (tx, _) = drain(&mut call);
        let mut stats = MediaStats::default();
        call.handle_input(t0, Input::Sip(&answer(&tx[0], 200, true)), &mut stats);
        let _ = drain(&mut call);
        call.handle_input(
            t0 + Duration::from_secs(1),
            Input::Sip(&server_bye(&call)),
            &mut stats,
        );
        let (tx, ev) = drain(&mut call);
        assert_eq!(sip_lines(&tx), vec!["SIP/2.0 200 OK"]);
        assert_eq!(ended(&ev).unwrap().result, expect, "{script}");
    }
}

#[test]
fn rfc4733_keys_without_audio() {
    let t0 = Instant::now();
    let mut call = LoadCall::new(
        config("keys:{code}#1,bye", false),
        5,
        Some("58213".into()),
        t0,
    );
    let (tx, _) = drain(&mut call);
    let mut stats = MediaStats::default();
    call.handle_input(t0, Input::Sip(&answer(&tx[0], 200, true)), &mut stats);
    let _ = drain(&mut call);
    let mut events: Vec<(u8, bool)> = Vec::new();
    let mut bye = false;
    while !bye {
        let now = call.poll_timeout().unwrap();
        call.handle_timeout(now);
        for t in drain(&mut call).0 {
            match t.channel {
                Channel::Rtp => {
                    assert_eq!(t.payload[1] & 0x7f, 101);
                    events.push((t.payload[12], t.payload[13] & 0x80 != 0));
                }
                Channel::Sip => bye = true,
            }
        }
    }
    // 7 keys: 5 packets while held, 3 end packets each.
    assert_eq!(events.len(), 7 * 8);
    let ends: Vec<u8> = events
        .iter()
        .filter(|e| e.1)
        .map(|e| e.0)
        .step_by(3)
        .collect();
    assert_eq!(ends, vec![5, 8, 2, 1, 3, 11, 1]);
    assert!(call.ended.pressed_1);
}

#[test]
fn a_late_driver_skips_frames_instead_of_bursting() {
    let t0 = Instant::now();
    let mut call = LoadCall::new(config("wait:5000,bye", true), 6, None, t0);
    let invite = drain(&mut call).0.remove(0);
    let mut stats = MediaStats::default();
    call.handle_input(t0, Input::Sip(&answer(&invite, 200, true)), &mut stats);
    let _ = drain(&mut call);
    call.handle_timeout(t0);
    assert_eq!(drain(&mut call).0.len(), 1, "the first frame");
    // 200 ms late: one frame now, not ten.
    call.handle_timeout(t0 + Duration::from_millis(220));
    assert_eq!(drain(&mut call).0.len(), 1);
    assert_eq!(call.ended.frames_skipped, 10);
    assert_eq!(call.poll_timeout(), Some(t0 + Duration::from_millis(240)));
}
