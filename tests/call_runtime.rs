//! The call runtime's duties around a call, over real sockets on loopback:
//! an exhausted RTP port range is a 503, silence from the caller ends the
//! call, a re-INVITE holds and moves the media, a late offer's media
//! follows the answer in the ACK, and a graceful shutdown
//! drains (503), lets calls go on for the grace period, then hangs up; a
//! node whose media falls behind sheds new calls (503) and keeps the
//! calls it has.
#![allow(clippy::unwrap_used)] // test code may unwrap (STYLE.md)

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mensa::media::prompts::PromptLibrary;
use mensa::media::session::SessionConfig;
use mensa::runtime::calls::{
    CallEvent, CallHandle, CallInfo, CallLogic, CallServer, CallsConfig, start,
};
use mensa::sip::config::EndpointConfig;

mod uac;
use uac::{Uac, media_port, offer};

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

/// As [`Idle`], and keeps what the runtime says of load shedding.
#[derive(Default)]
struct Shedding {
    said: std::sync::Mutex<Vec<(bool, Option<usize>)>>,
}

impl CallLogic for Shedding {
    fn has_dialplan(&self, _: &str) -> bool {
        true
    }
    fn start(&self, call: CallInfo, handle: CallHandle) {
        Idle.start(call, handle);
    }
    fn load_shedding(&self, shedding: bool, limit: Option<usize>) {
        self.said.lock().unwrap().push((shedding, limit));
    }
}

/// A runtime on loopback with `pairs` RTP port pairs from a range private
/// to this test (`slot`).
fn runtime(
    slot: u16,
    pairs: u16,
    inactivity: Duration,
) -> (tokio::runtime::Runtime, CallServer, (u16, u16)) {
    shedding_runtime(slot, pairs, inactivity, None, None, Arc::new(Idle))
}

/// The same, shedding new calls when frames leave later than `overload`
/// or the runtime's tasks run later than `lag`.
fn shedding_runtime(
    slot: u16,
    pairs: u16,
    inactivity: Duration,
    overload: Option<Duration>,
    lag: Option<Duration>,
    logic: Arc<dyn CallLogic>,
) -> (tokio::runtime::Runtime, CallServer, (u16, u16)) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Seven slots of up to ten pairs per test process.
    let low = 50_000 + (std::process::id() % 100) as u16 * 140 + slot * 20;
    let ports = (low, low + 2 * pairs - 1);
    let config = CallsConfig {
        sip_listen: "127.0.0.1:0".parse().unwrap(),
        media_ip: "127.0.0.1".parse().unwrap(),
        bind_ip: "127.0.0.1".parse().unwrap(),
        rtp_ports: ports,
        session: SessionConfig {
            inactivity_timeout: inactivity,
            ..SessionConfig::default()
        },
        tickers: 1,
        media_send: None,
        media_priority: None,
        overload_lateness: overload,
        overload_lag: lag,
        shutdown_grace: Duration::from_secs(1),
        sip_tcp: Default::default(),
    };
    let endpoint = EndpointConfig::demo("127.0.0.1:5060".parse().unwrap(), 5);
    let server = rt
        .block_on(start(
            config,
            endpoint,
            Arc::new(PromptLibrary::default()),
            logic,
        ))
        .unwrap();
    (rt, server, ports)
}

/// Datagrams arriving on `socket` within `wait`.
fn count_rtp(socket: &UdpSocket, wait: Duration) -> usize {
    let end = Instant::now() + wait;
    let mut n = 0;
    let mut buf = [0u8; 1500];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return n;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        if socket.recv_from(&mut buf).is_ok() {
            n += 1;
        }
    }
}

#[test]
fn exhausted_rtp_ports_are_a_503_and_come_back() {
    let (rt, server, (low, _)) = runtime(0, 1, Duration::from_secs(30));
    let mut a = Uac::new(server.sip_addr, "a");
    let ok = a.call(&offer(9000, 1, "sendrecv", "127.0.0.1"));
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(media_port(&ok), low);
    let mut b = Uac::new(server.sip_addr, "b");
    let busy = b.call(&offer(9002, 1, "sendrecv", "127.0.0.1"));
    assert!(busy.starts_with("SIP/2.0 503"), "{busy}");
    assert!(a.bye().starts_with("SIP/2.0 200"));
    // The pair is back once the media ticker has closed its sockets.
    std::thread::sleep(Duration::from_millis(100));
    let mut c = Uac::new(server.sip_addr, "c");
    let ok = c.call(&offer(9004, 1, "sendrecv", "127.0.0.1"));
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(media_port(&ok), low, "the pair came back");
    assert!(c.bye().starts_with("SIP/2.0 200"));
    rt.block_on(server.shutdown());
}

#[test]
fn no_rtp_from_the_caller_ends_the_call() {
    let (rt, server, _) = runtime(1, 2, Duration::from_secs(1));
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut a = Uac::new(server.sip_addr, "quiet");
    let ok = a.call(&offer(
        media.local_addr().unwrap().port(),
        1,
        "sendrecv",
        "127.0.0.1",
    ));
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let started = Instant::now();
    let bye = a.answer_request("BYE", Duration::from_secs(4));
    assert!(bye.is_some(), "a BYE after the inactivity timeout");
    assert!(started.elapsed() >= Duration::from_millis(800));
    // The ports went back (once the ticker closed the sockets).
    let mut stats = rt.block_on(server.stats()).unwrap();
    for _ in 0..100 {
        if stats.ports_free == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        stats = rt.block_on(server.stats()).unwrap();
    }
    assert_eq!((stats.calls, stats.ports_free), (0, 2));
    rt.block_on(server.shutdown());
}

#[test]
fn reinvite_holds_then_moves_the_media() {
    let (rt, server, _) = runtime(2, 2, Duration::from_secs(30));
    let first = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = first.local_addr().unwrap().port();
    let mut a = Uac::new(server.sip_addr, "hold");
    let ok = a.call(&offer(port, 1, "sendrecv", "127.0.0.1"));
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(count_rtp(&first, Duration::from_millis(300)) >= 10);
    // Hold: we may only receive.
    let held = a.reinvite(&offer(port, 2, "sendonly", "127.0.0.1"));
    assert!(held.starts_with("SIP/2.0 200"), "{held}");
    assert!(held.contains("a=recvonly"), "{held}");
    count_rtp(&first, Duration::from_millis(100)); // in flight
    assert_eq!(count_rtp(&first, Duration::from_millis(300)), 0, "silent");
    // Resume at another port.
    let second = UdpSocket::bind("127.0.0.1:0").unwrap();
    let resumed = a.reinvite(&offer(
        second.local_addr().unwrap().port(),
        3,
        "sendrecv",
        "127.0.0.1",
    ));
    assert!(resumed.starts_with("SIP/2.0 200"), "{resumed}");
    assert!(count_rtp(&second, Duration::from_millis(300)) >= 10);
    assert_eq!(count_rtp(&first, Duration::from_millis(100)), 0);
    assert!(a.bye().starts_with("SIP/2.0 200"));
    rt.block_on(server.shutdown());
}

#[test]
fn shutdown_drains_waits_for_the_grace_period_then_hangs_up() {
    let (rt, server, _) = runtime(3, 4, Duration::from_secs(30));
    let addr = server.sip_addr;
    let mut a = Uac::new(addr, "stays");
    assert!(
        a.call(&offer(9010, 1, "sendrecv", "127.0.0.1"))
            .starts_with("SIP/2.0 200")
    );
    let started = Instant::now();
    let shutdown = rt.spawn(server.shutdown());
    std::thread::sleep(Duration::from_millis(100));
    let ping = Uac::new(addr, "ping");
    ping.request("OPTIONS", 1, "", "");
    assert!(ping.final_response("OPTIONS").starts_with("SIP/2.0 503"));
    let mut late = Uac::new(addr, "late");
    let refused = late.call(&offer(9012, 1, "sendrecv", "127.0.0.1"));
    assert!(refused.starts_with("SIP/2.0 503"), "{refused}");
    // The call in progress goes on until the grace period (1 s) is over.
    assert!(a.answer_request("BYE", Duration::from_secs(3)).is_some());
    assert!(started.elapsed() >= Duration::from_millis(900));
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(3), shutdown)
            .await
            .expect("shutdown in time")
            .unwrap();
    });
}

#[test]
fn late_offer_media_follows_the_answer_in_the_ack() {
    let (rt, server, _) = runtime(4, 2, Duration::from_secs(30));
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut a = Uac::new(server.sip_addr, "late-offer");
    a.request("INVITE", 1, "", "");
    let ok = a.final_response("INVITE");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(
        ok.contains("m=audio ") && ok.contains("PCMA/8000"),
        "our offer: {ok}"
    );
    a.to_tag = ok
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .split(";tag=")
        .nth(1)
        .unwrap()
        .to_owned();
    // The media goes where the answer in the ACK says.
    let answer = format!(
        "v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n",
        media.local_addr().unwrap().port()
    );
    a.request("ACK", 1, "", &answer);
    assert!(count_rtp(&media, Duration::from_millis(300)) >= 10);
    assert!(a.bye().starts_with("SIP/2.0 200"));
    rt.block_on(server.shutdown());
}

/// Probes `addr` with OPTIONS every 0.5 s for up to 5 s; once it answers
/// 503 (the node sheds), places a call offering media on `port` and
/// returns its final response. None if the node never shed.
fn call_once_shedding(addr: SocketAddr, port: u16) -> Option<String> {
    for attempt in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        let ping = Uac::new(addr, &format!("ping{attempt}"));
        ping.request("OPTIONS", 1, "", "");
        if ping.final_response("OPTIONS").starts_with("SIP/2.0 503") {
            let mut late = Uac::new(addr, &format!("late{attempt}"));
            return Some(late.call(&offer(port, 1, "sendrecv", "127.0.0.1")));
        }
    }
    None
}

#[test]
fn media_falling_behind_sheds_new_calls_and_keeps_the_call_in_progress() {
    // A threshold no ticker can meet (1 ns): as soon as the first call's
    // frames are judged (half a second, 20 frames or more), the node is
    // "overloaded". What this checks is the wiring: the tickers' lateness
    // reaches the guard, the guard reaches SIP, SIP answers 503, and the
    // call in progress keeps its media.
    let logic = Arc::new(Shedding::default());
    let (rt, server, _) = shedding_runtime(
        5,
        4,
        Duration::from_secs(30),
        Some(Duration::from_nanos(1)),
        None,
        logic.clone(),
    );
    let addr = server.sip_addr;
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut a = Uac::new(addr, "first");
    let ok = a.call(&offer(
        media.local_addr().unwrap().port(),
        1,
        "sendrecv",
        "127.0.0.1",
    ));
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let refused =
        call_once_shedding(addr, 9020).expect("OPTIONS got 503 within 5 s of the first frames");
    assert!(refused.starts_with("SIP/2.0 503"), "{refused}");
    assert!(refused.contains("Retry-After:"), "{refused}");
    // The call in progress still hears its stream (50 frames a second),
    // counted after what queued up so far is thrown away.
    media.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1500];
    while media.recv_from(&mut buf).is_ok() {}
    media.set_nonblocking(false).unwrap();
    assert!(count_rtp(&media, Duration::from_millis(500)) >= 20);
    // The operators' gauges heard of it: shedding, and a limit learned at
    // the one call carried (there was never a calm window with more).
    assert_eq!(
        logic.said.lock().unwrap().last(),
        Some(&(true, Some(1))),
        "{:?}",
        logic.said.lock().unwrap()
    );
    assert!(a.bye().starts_with("SIP/2.0 200"));
    rt.block_on(server.shutdown());
}

#[test]
fn runtime_tasks_running_late_shed_new_calls() {
    // A lag threshold no runtime can meet (1 ns): the first window of the
    // lag probe (50 samples a half second) makes the node "overloaded". What
    // this checks is the wiring: the probe's lag reaches its guard, the
    // guard reaches SIP, and SIP answers 503 to OPTIONS and INVITE.
    let (rt, server, _) = shedding_runtime(
        6,
        1,
        Duration::from_secs(30),
        None,
        Some(Duration::from_nanos(1)),
        Arc::new(Idle),
    );
    let addr = server.sip_addr;
    let refused = call_once_shedding(addr, 9022).expect("OPTIONS got 503 within 5 s");
    assert!(refused.starts_with("SIP/2.0 503"), "{refused}");
    rt.block_on(server.shutdown());
}
