//! What the sans-IO core says to the sockets: transports, transmits, and
//! where responses go (RFC 3261 §18.2.1/§18.2.2, RFC 3581 `rport`).

use std::net::{IpAddr, SocketAddr};

use super::headers::{Param, Via, split_list};
use super::message::ReplyHead;
use super::uri::Host;

/// The transport a message came on or must leave by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    /// A stream; the runtime sends on the connection the peer address names.
    Tcp,
}

impl Transport {
    pub fn is_reliable(self) -> bool {
        match self {
            Transport::Udp => false,
            Transport::Tcp => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub transport: Transport,
    pub destination: SocketAddr,
    pub bytes: Vec<u8>,
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: the server transport stamps the top
/// Via with `received` when the sent-by host is not the packet's source, and
/// fills an empty `rport` with the source port (then `received` always).
pub fn stamp_top_via(head: &mut ReplyHead, source: SocketAddr) {
    let via = &mut head.top_via;
    let wants_rport = matches!(via.rport(), Some(None));
    let host_is_source = match (&via.host, source.ip()) {
        (Host::V4(a), IpAddr::V4(s)) => *a == s,
        (Host::V6(a), IpAddr::V6(s)) => *a == s,
        (Host::Name(_) | Host::V4(_) | Host::V6(_), _) => false,
    };
    if !host_is_source || wants_rport {
        set_param(&mut via.params, "received", Some(source.ip().to_string()));
    }
    if wants_rport {
        set_param(&mut via.params, "rport", Some(source.port().to_string()));
    }
    if !host_is_source || wants_rport {
        let Some(first) = head.vias.first_mut() else {
            return;
        };
        let rest: Vec<&str> = split_list(first).into_iter().skip(1).collect();
        let mut line = print_via(via);
        for r in rest {
            line.push_str(", ");
            line.push_str(r);
        }
        *first = line;
    }
}

fn set_param(params: &mut Vec<Param>, name: &str, value: Option<String>) {
    match params
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        Some(p) => p.1 = value,
        None => params.push((name.to_owned(), value)),
    }
}

fn print_via(via: &Via) -> String {
    let mut s = format!("SIP/2.0/{} {}", via.transport, via.sent_by());
    for (n, v) in &via.params {
        s.push(';');
        s.push_str(n);
        if let Some(v) = v {
            s.push('=');
            s.push_str(v);
        }
    }
    s
}

/// RFC 3261 §18.2.2 for a stamped top Via: over a stream, back on the
/// connection; over UDP to the source IP (that is `received`, or the
/// sent-by when equal) at the `rport` (RFC 3581) or the sent-by port or
/// 5060. `maddr` is not honoured: a UAS never answers to multicast.
pub fn response_destination(via: &Via, transport: Transport, source: SocketAddr) -> SocketAddr {
    match transport {
        Transport::Tcp => source,
        Transport::Udp => {
            let port = match via.rport() {
                Some(Some(p)) => p.parse().unwrap_or(source.port()),
                Some(None) => source.port(),
                None => via.port.unwrap_or(5060),
            };
            SocketAddr::new(source.ip(), port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Framing, Message, parse};

    fn head(via: &str) -> ReplyHead {
        let msg = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: {via}\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
        );
        let Message::Request(r) = parse(msg.as_bytes(), Framing::Datagram).unwrap().message else {
            panic!()
        };
        r.head
    }

    #[test]
    fn rport_and_received() {
        let src: SocketAddr = "203.0.113.5:40000".parse().unwrap();
        let mut h = head("SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKa;rport, SIP/2.0/UDP p");
        stamp_top_via(&mut h, src);
        assert_eq!(
            h.vias[0],
            "SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bKa;rport=40000;received=203.0.113.5, SIP/2.0/UDP p"
        );
        assert_eq!(response_destination(&h.top_via, Transport::Udp, src), src);

        let mut h = head("SIP/2.0/UDP host.example;branch=z9hG4bKa");
        stamp_top_via(&mut h, src);
        assert_eq!(h.top_via.received(), Some("203.0.113.5"));
        assert_eq!(
            response_destination(&h.top_via, Transport::Udp, src),
            "203.0.113.5:5060".parse().unwrap()
        );

        let mut h = head("SIP/2.0/UDP 203.0.113.5:5062;branch=z9hG4bKa");
        stamp_top_via(&mut h, src);
        assert_eq!(
            h.vias[0], "SIP/2.0/UDP 203.0.113.5:5062;branch=z9hG4bKa",
            "untouched"
        );
        assert_eq!(
            response_destination(&h.top_via, Transport::Udp, src),
            "203.0.113.5:5062".parse().unwrap()
        );
        assert_eq!(response_destination(&h.top_via, Transport::Tcp, src), src);
    }
}
