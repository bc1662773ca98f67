//! Server transactions stepped by hand in simulated time.

use super::*;
use crate::sip::corpus;
use crate::sip::message::{Framing, Message, parse};

fn dest() -> SocketAddr {
    "192.0.2.1:5060".parse().unwrap()
}

fn drain(t: &mut ServerTransaction) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| t.poll_transmit())
        .map(|t| t.bytes)
        .collect()
}

fn events(t: &mut ServerTransaction) -> Vec<TransactionEvent> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

/// Steps to each deadline until `end`, returning the send times (offsets).
fn run_until(t: &mut ServerTransaction, start: Instant, end: Duration) -> Vec<Duration> {
    let mut sent = Vec::new();
    while let Some(at) = t.poll_timeout() {
        if at > start + end {
            break;
        }
        t.handle_timeout(at);
        for _ in drain(t) {
            sent.push(at - start);
        }
    }
    sent
}

#[test]
fn invite_error_response_retransmits_g_until_h() {
    let t0 = Instant::now();
    let mut t = ServerTransaction::new(&Method::Invite, Transport::Udp, dest());
    t.send_response(t0, 100, b"100".to_vec());
    t.send_response(t0, 486, b"486".to_vec());
    assert_eq!(drain(&mut t), vec![b"100".to_vec(), b"486".to_vec()]);
    let sent = run_until(&mut t, t0, Duration::from_secs(40));
    let ms: Vec<u128> = sent.iter().map(Duration::as_millis).collect();
    // Timer G: 0.5, 1.5, 3.5, 7.5, then every T2 = 4 s, until Timer H at 32 s.
    assert_eq!(
        ms,
        vec![
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(
        events(&mut t),
        vec![TransactionEvent::AckTimeout, TransactionEvent::Terminated]
    );
    assert!(t.is_terminated());
}

#[test]
fn ack_stops_retransmissions_then_timer_i() {
    let t0 = Instant::now();
    let mut t = ServerTransaction::new(&Method::Invite, Transport::Udp, dest());
    t.send_response(t0, 487, b"487".to_vec());
    drain(&mut t);
    t.handle_timeout(t0 + T1);
    assert_eq!(drain(&mut t).len(), 1);
    assert_eq!(
        t.handle_request(t0 + T1 * 2, &Method::Ack),
        Matched::Absorbed
    );
    assert_eq!(
        t.handle_request(t0 + T1 * 3, &Method::Ack),
        Matched::Absorbed
    );
    assert_eq!(t.poll_timeout(), Some(t0 + T1 * 2 + T4));
    t.handle_timeout(t0 + T1 * 2 + T4);
    assert!(drain(&mut t).is_empty());
    assert_eq!(events(&mut t), vec![TransactionEvent::Terminated]);
}

#[test]
fn reliable_transport_has_no_timer_g_and_no_wait() {
    let t0 = Instant::now();
    let mut t = ServerTransaction::new(&Method::Invite, Transport::Tcp, dest());
    t.send_response(t0, 404, b"404".to_vec());
    drain(&mut t);
    assert_eq!(t.poll_timeout(), Some(t0 + 64 * T1), "only Timer H");
    t.handle_request(t0, &Method::Ack);
    assert!(t.is_terminated(), "Timer I is 0 over TCP");
    let mut n = ServerTransaction::new(&Method::Options, Transport::Tcp, dest());
    n.send_response(t0, 200, b"200".to_vec());
    assert!(n.is_terminated(), "Timer J is 0 over TCP");
}

#[test]
fn accepted_state_absorbs_and_ends_with_timer_l() {
    let t0 = Instant::now();
    let mut t = ServerTransaction::new(&Method::Invite, Transport::Udp, dest());
    t.send_response(t0, 100, b"100".to_vec());
    // A retransmitted INVITE before the answer gets the 100 again.
    assert_eq!(t.handle_request(t0, &Method::Invite), Matched::Absorbed);
    assert_eq!(drain(&mut t), vec![b"100".to_vec(), b"100".to_vec()]);
    t.send_response(t0, 200, b"200".to_vec());
    // The dialog resends the 2xx through the transaction while Accepted.
    t.send_response(t0 + T1, 200, b"200".to_vec());
    assert_eq!(drain(&mut t).len(), 2);
    assert_eq!(
        t.handle_request(t0 + T1, &Method::Invite),
        Matched::Absorbed
    );
    assert_eq!(drain(&mut t), vec![b"200".to_vec()]);
    assert_eq!(
        t.handle_request(t0 + T1, &Method::Ack),
        Matched::PassAckToTu
    );
    // A late 487 (CANCEL raced the 200) is not sent.
    t.send_response(t0 + T1, 487, b"487".to_vec());
    assert!(drain(&mut t).is_empty());
    t.handle_timeout(t0 + 64 * T1 - Duration::from_millis(1));
    assert!(!t.is_terminated());
    t.handle_timeout(t0 + 64 * T1);
    assert_eq!(events(&mut t), vec![TransactionEvent::Terminated]);
}

#[test]
fn non_invite_trying_proceeding_completed_timer_j() {
    let t0 = Instant::now();
    let mut t = ServerTransaction::new(&Method::Bye, Transport::Udp, dest());
    assert_eq!(t.handle_request(t0, &Method::Bye), Matched::Absorbed);
    assert!(drain(&mut t).is_empty(), "nothing to resend in Trying");
    t.send_response(t0, 200, b"200".to_vec());
    t.handle_request(t0 + T1, &Method::Bye);
    assert_eq!(drain(&mut t).len(), 2);
    t.send_response(t0 + T1, 500, b"500".to_vec());
    assert!(drain(&mut t).is_empty(), "one final response only");
    assert_eq!(t.poll_timeout(), Some(t0 + 64 * T1));
    t.handle_timeout(t0 + 64 * T1);
    assert!(t.is_terminated());
}

fn key(text: &[u8]) -> TransactionKey {
    let Message::Request(r) = parse(text, Framing::Datagram).unwrap().message else {
        panic!()
    };
    TransactionKey::of(&r)
}

#[test]
fn matching_by_branch_and_rfc2543_fallback() {
    let base = "sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx1\r\nFrom: <sip:c@d>;tag=f\r\nTo: <sip:a@b>TOTAG\r\nCall-ID: k\r\nCSeq: 1 METHOD\r\n\r\n";
    let msg = |m: &str, to_tag: &str| {
        format!("{m} {}", base.replace("TOTAG", to_tag).replace("METHOD", m))
    };
    let invite = key(msg("INVITE", "").as_bytes());
    assert_eq!(
        key(msg("ACK", ";tag=ours").as_bytes()),
        invite,
        "ACK of a non-2xx"
    );
    assert_ne!(key(msg("CANCEL", "").as_bytes()), invite);
    assert_eq!(key(msg("CANCEL", "").as_bytes()).as_invite(), invite);
    let other_host = msg("INVITE", "").replace("192.0.2.1:5060", "192.0.2.2:5060");
    assert_ne!(
        key(other_host.as_bytes()),
        invite,
        "same branch, other sent-by"
    );

    let wsinv = key(&corpus::read("wsinv"));
    assert!(matches!(wsinv, TransactionKey::Legacy { cseq: 9, .. }));
    let inv2543 = key(&corpus::read("inv2543"));
    assert!(matches!(
        inv2543,
        TransactionKey::Legacy { from_tag: None, .. }
    ));
    let badbranch = key(&corpus::read("badbranch"));
    assert!(
        matches!(badbranch, TransactionKey::Legacy { .. }),
        "bare cookie is no RFC 3261 branch"
    );
}
