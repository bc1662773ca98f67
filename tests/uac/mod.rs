//! A minimal SIP user agent client for the call runtime tests: one dialog
//! per `Uac`, requests built by hand, blocking UDP.
// Each test file uses a different part of this module; tests may unwrap.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

pub struct Uac {
    pub sip: UdpSocket,
    pub server: SocketAddr,
    pub me: SocketAddr,
    pub call_id: String,
    pub to_tag: String,
    pub cseq: u32,
}

/// An SDP offer of PCMA, PCMU and telephone-event/8000 on `port`.
pub fn offer(port: u16, version: u32, direction: &str, ip: &str) -> String {
    format!(
        "v=0\r\no=- 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na={direction}\r\n"
    )
}

pub fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
}

/// The RTP port of the SDP in `msg`.
pub fn media_port(msg: &str) -> u16 {
    header(msg, "m=audio ")
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("an m= port")
}

impl Uac {
    pub fn new(server: SocketAddr, call_id: &str) -> Uac {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        Uac {
            me: sip.local_addr().unwrap(),
            sip,
            server,
            call_id: call_id.to_owned(),
            to_tag: String::new(),
            cseq: 1,
        }
    }

    /// Sends a request in this dialog (CSeq as given; ACK reuses the
    /// INVITE's).
    pub fn request(&self, method: &str, cseq: u32, extra: &str, body: &str) {
        let to_tag = if self.to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={}", self.to_tag)
        };
        let msg = format!(
            "{method} sip:800082653@{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK{call}{method}{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:3331234567@127.0.0.1>;tag=caller1\r\n\
             To: <sip:800082653@127.0.0.1>{to_tag}\r\n\
             Call-ID: {call}@127.0.0.1\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:3331234567@{me}>\r\n\
             {extra}{ctype}Content-Length: {}\r\n\r\n{body}",
            body.len(),
            server = self.server,
            me = self.me,
            call = self.call_id,
            ctype = if body.starts_with("v=0") {
                "Content-Type: application/sdp\r\n"
            } else {
                ""
            },
        );
        self.sip.send_to(msg.as_bytes(), self.server).unwrap();
    }

    /// The next SIP message within `wait`.
    pub fn recv_within(&self, wait: Duration) -> Option<String> {
        let mut buf = [0u8; 4096];
        self.sip.set_read_timeout(Some(wait)).unwrap();
        let (n, _) = self.sip.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    pub fn recv(&self) -> String {
        self.recv_within(Duration::from_secs(3))
            .expect("a SIP message in time")
    }

    /// The next final response to `method` (provisional ones skipped).
    pub fn final_response(&self, method: &str) -> String {
        loop {
            let m = self.recv();
            let is_final = m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1");
            if is_final && m.contains(&format!(" {method}\r\n")) {
                return m;
            }
        }
    }

    /// INVITE with `sdp`; on a 2xx remembers the To tag and ACKs.
    pub fn call(&mut self, sdp: &str) -> String {
        self.request("INVITE", self.cseq, "", sdp);
        let answer = self.final_response("INVITE");
        if answer.starts_with("SIP/2.0 2") {
            self.to_tag = header(&answer, "To:")
                .split(";tag=")
                .nth(1)
                .unwrap()
                .to_owned();
        }
        // ACK: for a 2xx a new transaction (§13.2.2.4); for an error the
        // same branch (§17.1.1.3). Our builder's branch depends only on the
        // method and CSeq, so both are satisfied well enough for the UAS.
        self.request("ACK", self.cseq, "", "");
        answer
    }

    /// A re-INVITE in the dialog; ACKs the answer.
    pub fn reinvite(&mut self, sdp: &str) -> String {
        self.cseq += 1;
        self.request("INVITE", self.cseq, "", sdp);
        let answer = self.final_response("INVITE");
        self.request("ACK", self.cseq, "", "");
        answer
    }

    pub fn bye(&mut self) -> String {
        self.cseq += 1;
        self.request("BYE", self.cseq, "", "");
        self.final_response("BYE")
    }

    /// Waits for a request `method` from the server and answers it 200.
    pub fn answer_request(&self, method: &str, wait: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let m = self.recv_within(left)?;
            if !m.starts_with(&format!("{method} ")) {
                continue;
            }
            let copy: String = m
                .lines()
                .filter(|l| {
                    ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                        .iter()
                        .any(|h| l.starts_with(h))
                })
                .map(|l| format!("{l}\r\n"))
                .collect();
            let ok = format!("SIP/2.0 200 OK\r\n{copy}Content-Length: 0\r\n\r\n");
            self.sip.send_to(ok.as_bytes(), self.server).unwrap();
            return Some(m);
        }
    }
}

/// An RTP packet (version 2, no CSRC) with the caller's fixed SSRC.
pub fn rtp(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x5EED_u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// `n` samples at 8 kHz of the tone pair `f1` + `f2`, each at −10 dBm0,
/// from sample `phase0` on (so consecutive frames join without a click).
pub fn tone(f1: f32, f2: f32, n: usize, phase0: usize) -> Vec<i16> {
    let a = 22_826.0 * 10f32.powf(-10.0 / 20.0);
    (phase0..phase0 + n)
        .map(|i| {
            let t = i as f32 / 8000.0;
            (a * ((std::f32::consts::TAU * f1 * t).sin() + (std::f32::consts::TAU * f2 * t).sin()))
                as i16
        })
        .collect()
}
