//! Building messages to send: responses per RFC 3261 §8.2.6 (Via, From,
//! To, Call-ID and CSeq copied verbatim, our To tag added) and in-dialog
//! requests per §12.2.1.1 (BYE, re-INVITE). Content-Length is always
//! written, so the same bytes frame on UDP and TCP (§18.3).

use std::fmt::Write as _;

use super::message::ReplyHead;

/// The reason phrase we send for a status code (§21).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        422 => "Session Interval Too Small",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        _ => match status / 100 {
            1 => "Progress",
            2 => "Success",
            3 => "Redirect",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// A response under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseBuilder {
    status: u16,
    reason: String,
    head: ReplyHead,
    to_tag: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl ResponseBuilder {
    /// §8.2.6.2: the To tag is added when the request's To had none and the
    /// response is not a 100 (which §8.2.6.1 lets us send without one).
    pub fn new(head: &ReplyHead, status: u16, to_tag: Option<&str>) -> ResponseBuilder {
        let add_tag = status != 100 && matches!(head.to_tag, Some(None));
        ResponseBuilder {
            status,
            reason: reason_phrase(status).to_owned(),
            head: head.clone(),
            to_tag: if add_tag {
                to_tag.map(str::to_owned)
            } else {
                None
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// Replaces the standard reason phrase (e.g. to say which header was bad).
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = reason.to_owned();
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers
            .push(("Content-Type".to_owned(), content_type.to_owned()));
        self.body = body;
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(256 + self.body.len());
        let _ = write!(s, "SIP/2.0 {} {}\r\n", self.status, self.reason);
        for via in &self.head.vias {
            let _ = write!(s, "Via: {via}\r\n");
        }
        let _ = write!(s, "From: {}\r\n", self.head.from);
        match &self.to_tag {
            Some(tag) => {
                let _ = write!(s, "To: {};tag={tag}\r\n", self.head.to);
            }
            None => {
                let _ = write!(s, "To: {}\r\n", self.head.to);
            }
        }
        let _ = write!(
            s,
            "Call-ID: {}\r\nCSeq: {}\r\n",
            self.head.call_id, self.head.cseq
        );
        for (n, v) in &self.headers {
            let _ = write!(s, "{n}: {v}\r\n");
        }
        let _ = write!(s, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// An in-dialog request we originate (§12.2.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBuilder {
    pub method: String,
    pub uri: String,
    /// `SIP/2.0/UDP host:port;branch=...;rport` without the `Via: `.
    pub via: String,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
    pub route: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RequestBuilder {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = String::with_capacity(256 + self.body.len());
        let _ = write!(
            s,
            "{} {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n",
            self.method, self.uri, self.via
        );
        for r in &self.route {
            let _ = write!(s, "Route: {r}\r\n");
        }
        let _ = write!(
            s,
            "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
            self.from, self.to, self.call_id, self.cseq, self.method
        );
        for (n, v) in &self.headers {
            let _ = write!(s, "{n}: {v}\r\n");
        }
        let _ = write!(s, "Content-Length: {}\r\n\r\n", self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Framing, Message, parse};

    const INVITE: &[u8] = b"INVITE sip:800082653@mensa.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1, SIP/2.0/UDP 192.0.2.9\r\n\
Via: SIP/2.0/TCP proxy.example\r\n\
From: \"Mamma\" <sip:3331234567@192.0.2.1>;tag=abc\r\n\
t: <sip:800082653@mensa.example>\r\n\
i: call-1@192.0.2.1\r\nCSeq: 7 INVITE\r\nl: 0\r\n\r\n";

    #[test]
    fn response_copies_headers_and_adds_tag() {
        let Message::Request(req) = parse(INVITE, Framing::Datagram).unwrap().message else {
            panic!()
        };
        let bytes = ResponseBuilder::new(&req.head, 200, Some("T1"))
            .header("Contact", "<sip:m@h>")
            .to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKa1, SIP/2.0/UDP 192.0.2.9\r\nVia: SIP/2.0/TCP proxy.example\r\n"));
        assert!(text.contains("To: <sip:800082653@mensa.example>;tag=T1\r\n"));
        assert!(text.contains("Call-ID: call-1@192.0.2.1\r\nCSeq: 7 INVITE\r\n"));
        let Message::Response(resp) = parse(&bytes, Framing::Stream).unwrap().message else {
            panic!()
        };
        assert_eq!((resp.status, resp.to.tag()), (200, Some("T1")));
        let trying =
            String::from_utf8(ResponseBuilder::new(&req.head, 100, Some("T1")).to_bytes()).unwrap();
        assert!(trying.contains("To: <sip:800082653@mensa.example>\r\n"));
    }

    #[test]
    fn request_round_trips() {
        let bye = RequestBuilder {
            method: "BYE".into(),
            uri: "sip:3331234567@192.0.2.1".into(),
            via: "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKx;rport".into(),
            from: "<sip:800082653@mensa.example>;tag=T1".into(),
            to: "\"Mamma\" <sip:3331234567@192.0.2.1>;tag=abc".into(),
            call_id: "call-1@192.0.2.1".into(),
            cseq: 1,
            route: vec!["<sip:proxy.example;lr>".into()],
            headers: vec![],
            body: vec![],
        };
        let Message::Request(r) = parse(&bye.to_bytes(), Framing::Stream).unwrap().message else {
            panic!()
        };
        assert_eq!(
            (r.cseq.seq, r.to.tag(), r.top_via().rfc3261_branch()),
            (1, Some("abc"), Some("z9hG4bKx"))
        );
    }
}
