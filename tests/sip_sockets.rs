//! The SIP endpoint over real UDP and TCP sockets on loopback.
#![allow(clippy::unwrap_used)] // test helpers may unwrap (STYLE.md)

use std::net::SocketAddr;
use std::time::Duration;

use mensa::runtime::sip::{Command, spawn};
use mensa::sip::config::EndpointConfig;
use mensa::sip::endpoint::{Endpoint, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

fn request(
    method: &str,
    branch: &str,
    transport: &str,
    me: SocketAddr,
    to_tag: &str,
    body: &str,
) -> String {
    format!(
        "{method} sip:800082653@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} {me};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:3331234567@127.0.0.1>;tag=c1\r\nTo: <sip:800082653@127.0.0.1>{to_tag}\r\n\
         Call-ID: {branch}@127.0.0.1\r\nCSeq: 1 {method}\r\nContact: <sip:3331234567@{me}>\r\n{}Content-Length: {}\r\n\r\n{body}",
        if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        },
        body.len()
    )
}

async fn recv(udp: &UdpSocket) -> String {
    let mut buf = vec![0u8; 4096];
    let (n, _) = timeout(Duration::from_secs(2), udp.recv_from(&mut buf))
        .await
        .expect("a reply in time")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn udp_options_and_a_call() {
    let config = EndpointConfig::demo("127.0.0.1:5060".parse().unwrap(), 7);
    let mut server = spawn("127.0.0.1:0".parse().unwrap(), Endpoint::new(config))
        .await
        .unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = udp.local_addr().unwrap();
    udp.send_to(
        request("OPTIONS", "o1", "UDP", me, "", "").as_bytes(),
        server.local_addr,
    )
    .await
    .unwrap();
    assert!(recv(&udp).await.starts_with("SIP/2.0 200 OK\r\n"));

    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8\r\n";
    udp.send_to(
        request("INVITE", "i1", "UDP", me, "", sdp).as_bytes(),
        server.local_addr,
    )
    .await
    .unwrap();
    assert!(recv(&udp).await.starts_with("SIP/2.0 100 Trying\r\n"));
    let Some(Event::IncomingCall { call, .. }) =
        timeout(Duration::from_secs(2), server.events.recv())
            .await
            .unwrap()
    else {
        panic!("no call")
    };
    server
        .commands
        .send(Command::Answer {
            call,
            rtp: "127.0.0.1:20000".parse().unwrap(),
        })
        .unwrap();
    let ok = recv(&udp).await;
    assert!(
        ok.starts_with("SIP/2.0 200 OK\r\n") && ok.contains("m=audio 20000 RTP/AVP 8"),
        "{ok}"
    );
    let tag = ok
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .split(";tag=")
        .nth(1)
        .unwrap()
        .to_owned();
    let ack = request("ACK", "a1", "UDP", me, &format!(";tag={tag}"), "")
        .replace("a1@127.0.0.1", "i1@127.0.0.1");
    udp.send_to(ack.as_bytes(), server.local_addr)
        .await
        .unwrap();
    assert!(matches!(
        timeout(Duration::from_secs(2), server.events.recv())
            .await
            .unwrap(),
        Some(Event::CallEstablished { .. })
    ));
    server.commands.send(Command::HangUp { call }).unwrap();
    assert!(recv(&udp).await.starts_with("BYE sip:3331234567@"));
}

#[tokio::test]
async fn tcp_framing_and_keep_alive() {
    let config = EndpointConfig::demo("127.0.0.1:5060".parse().unwrap(), 8);
    let server = spawn("127.0.0.1:0".parse().unwrap(), Endpoint::new(config))
        .await
        .unwrap();
    let mut tcp = TcpStream::connect(server.local_addr).await.unwrap();
    let me = tcp.local_addr().unwrap();
    // A ping, then two OPTIONS in one write, the second split in two.
    let one = request("OPTIONS", "t1", "TCP", me, "", "");
    let two = request("OPTIONS", "t2", "TCP", me, "", "");
    let (a, b) = two.split_at(40);
    tcp.write_all(format!("\r\n\r\n{one}{a}").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(b.as_bytes()).await.unwrap();
    let mut got = String::new();
    let mut buf = vec![0u8; 8192];
    while got.matches("SIP/2.0 200 OK").count() < 2 {
        let n = timeout(Duration::from_secs(2), tcp.read(&mut buf))
            .await
            .expect("replies in time")
            .unwrap();
        assert!(n > 0, "closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        got.starts_with("\r\nSIP/2.0 200 OK\r\n"),
        "pong first: {got:?}"
    );
    assert!(got.contains("branch=z9hG4bKt1") && got.contains("branch=z9hG4bKt2"));
}
