//! SIP messages (RFC 3261 §7): parsing a datagram or a stream buffer into a
//! [`Request`] or [`Response`], with Content-Length framing (§18.3), and
//! the typed header values a UAS reads. Printing lives in `print.rs`.
//!
//! ```text
//! bytes ─► skip leading CRLFs (§7.5) ─► head (to CRLFCRLF, or datagram end)
//!       ─► unfold (§7.3.1) ─► start line + header lines
//!       ─► typed Via/From/To/Call-ID/CSeq/Max-Forwards/Content-Length
//!       ─► body framed by Content-Length (§18.3; UDP: rest of datagram if absent)
//! ```
//!
//! Errors say whether a response can still be formed ([`ParseError::Reply`]:
//! Via, From, To, Call-ID and CSeq were found) or the bytes must be dropped.

use std::borrow::Cow;

use super::headers::{
    CSeq, Header, HeaderError, HeaderName, NameAddr, Param, Via, is_token, split_list,
};
use super::uri::Uri;

/// How the bytes arrived: a datagram is one whole message (trailing octets
/// ignored, RFC 4475 §3.1.1.8); a stream buffer may hold part of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Datagram,
    Stream,
}

/// A request method (RFC 3261 §7.1; methods are case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Extension(String),
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Extension(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s,
        }
    }
}

/// The headers of a message, in order, values verbatim after unfolding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    pub fn all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.matches(name))
            .map(|h| h.value.as_str())
    }

    pub fn first(&self, name: &HeaderName) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.matches(name))
            .map(|h| h.value.as_str())
    }

    /// Every comma-separated element of every header of that name.
    pub fn list<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.all(name)
            .flat_map(split_list)
            .filter(|s| !s.is_empty())
    }

    /// True when the comma list of `name` holds `token` (case-insensitive).
    pub fn has_token(&self, name: &HeaderName, token: &str) -> bool {
        self.list(name).any(|t| t.eq_ignore_ascii_case(token))
    }
}

/// What a UAS needs to answer any request it received, even a malformed one
/// (RFC 3261 §8.2.6.2): the header values to copy and where to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyHead {
    /// Every Via header value, in order, verbatim.
    pub vias: Vec<String>,
    /// The top Via, parsed, for response routing (§18.2.2).
    pub top_via: Via,
    pub from: String,
    pub to: String,
    /// The To tag, if To could be parsed and had one; `None` also when To
    /// is malformed (then no tag is added to the 400).
    pub to_tag: Option<Option<String>>,
    pub call_id: String,
    pub cseq: String,
}

/// A request with the typed headers checked at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub vias: Vec<Via>,
    pub from: NameAddr,
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: CSeq,
    /// `None` when absent or over 255 (treated as absent, RFC 4475 §3.1.2.4).
    pub max_forwards: Option<u8>,
    pub head: ReplyHead,
}

/// A response; only what matching a client transaction needs is typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub vias: Vec<Via>,
    pub call_id: String,
    pub cseq: CSeq,
    pub from: NameAddr,
    pub to: NameAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Box<Request>),
    Response(Box<Response>),
}

/// A parsed message and how many bytes of the input it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub message: Message,
    pub consumed: usize,
}

/// Why bytes did not make a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Stream framing only: more bytes are needed.
    #[error("incomplete message")]
    Incomplete,
    /// A request that can be answered with `status` (400, or 505 for a bad
    /// SIP-Version, §8.2.2... RFC 4475 §3.1.2.16). `consumed` as in
    /// [`Parsed`]; on a stream the connection should then be closed when
    /// `fatal_for_stream` (framing unknown).
    #[error("{status} {reason}")]
    Reply {
        status: u16,
        reason: &'static str,
        head: Box<ReplyHead>,
        fatal_for_stream: bool,
    },
    /// Nothing can be answered: drop (and log) it. On a stream, close.
    #[error("dropped: {0}")]
    Drop(&'static str),
}

/// A body that carries no SDP we can find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body has no application/sdp")]
pub struct NoSdp;

/// Parses one message from the start of `bytes`.
pub fn parse(bytes: &[u8], framing: Framing) -> Result<Parsed, ParseError> {
    // §7.5: empty lines before the start line are ignored (keep-alives).
    let skipped = bytes
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    let input = &bytes[skipped..];
    if input.is_empty() {
        return Err(match framing {
            Framing::Stream => ParseError::Incomplete,
            Framing::Datagram => ParseError::Drop("empty"),
        });
    }
    let (head_len, body_start) = match find(input, b"\r\n\r\n") {
        Some(i) => (i, i + 4),
        None => match framing {
            Framing::Stream if input.len() > MAX_HEAD => {
                return Err(ParseError::Drop("head too long"));
            }
            Framing::Stream => return Err(ParseError::Incomplete),
            // A datagram's head may end at the datagram's end (RFC 4475
            // archive's baddn.dat): parse what is there.
            Framing::Datagram => (input.len(), input.len()),
        },
    };
    let head = String::from_utf8_lossy(&input[..head_len]);
    let mut lines = unfold(&head).into_iter();
    let start = lines.next().ok_or(ParseError::Drop("no start line"))?;
    let mut headers = Vec::new();
    let mut bad_header_line = false;
    for line in lines {
        match line.split_once(':') {
            Some((name, value)) if is_token(name.trim_end_matches([' ', '\t'])) => {
                headers.push(Header {
                    name: HeaderName::parse(name.trim_end_matches([' ', '\t'])),
                    value: value.trim_matches([' ', '\t']).to_owned(),
                })
            }
            _ => bad_header_line = true,
        }
    }
    let headers = Headers(headers);
    let avail = &input[body_start..];
    let body_len = content_length(&headers, avail.len(), framing);
    if start.starts_with("SIP/") {
        return parse_response(&start, headers, avail, body_len, framing).map(|(message, used)| {
            Parsed {
                message,
                consumed: skipped + body_start + used,
            }
        });
    }
    // The reply head is built from the raw values only when an error needs
    // it; a good request builds it from its typed headers below.
    let reply = |status, reason, fatal| match reply_head(&headers) {
        Some(head) => ParseError::Reply {
            status,
            reason,
            head: Box::new(head),
            fatal_for_stream: fatal,
        },
        None => ParseError::Drop("cannot form a response"),
    };
    let body_len = match body_len {
        Ok(n) => n,
        Err(BodyError::Incomplete) => return Err(ParseError::Incomplete),
        Err(BodyError::Bad(why)) => return Err(reply(400, why, true)),
    };
    let consumed = skipped + body_start + body_len;
    if bad_header_line {
        return Err(reply(400, "Malformed Header Line", false));
    }
    // §7.1: Method SP Request-URI SP SIP-Version, single spaces (RFC 4475
    // §3.1.2.9/10: extra or trailing SP is rejected; allowed by the RFC).
    let parts: Vec<&str> = start.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        return Err(reply(400, "Malformed Request-Line", false));
    };
    if !is_token(method) {
        return Err(reply(400, "Malformed Request-Line", false));
    }
    if !version.starts_with("SIP/") {
        return Err(reply(400, "Malformed Request-Line", false));
    }
    if *version != "SIP/2.0" {
        return Err(reply(505, "Version Not Supported", false));
    }
    let uri = Uri::parse(uri).map_err(|_| reply(400, "Bad Request-URI", false))?;
    let typed = typed_headers(&headers).map_err(|why| reply(400, why, false))?;
    let max_forwards = match single(&headers, &HeaderName::MaxForwards) {
        Ok(None) => None,
        Ok(Some(v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse::<u8>().ok()
        }
        Ok(Some(_)) | Err(_) => return Err(reply(400, "Bad Max-Forwards", false)),
    };
    let Some(top_via) = typed.vias.first().cloned() else {
        return Err(ParseError::Drop("no Via"));
    };
    let raw = |name| headers.first(name).unwrap_or_default().to_owned();
    let head = ReplyHead {
        vias: headers.all(&HeaderName::Via).map(str::to_owned).collect(),
        top_via,
        from: raw(&HeaderName::From),
        to: raw(&HeaderName::To),
        to_tag: Some(typed.to.tag().map(str::to_owned)),
        call_id: typed.call_id.clone(),
        cseq: raw(&HeaderName::CSeq),
    };
    let request = Request {
        method: Method::parse(method),
        uri,
        body: avail[..body_len].to_vec(),
        headers,
        vias: typed.vias,
        from: typed.from,
        to: typed.to,
        call_id: typed.call_id,
        cseq: typed.cseq,
        max_forwards,
        head,
    };
    Ok(Parsed {
        message: Message::Request(Box::new(request)),
        consumed,
    })
}

/// RFC 5626 §3.5.1 keep-alives on a stream: how many leading CRLF bytes
/// `buf` starts with, and whether they include a "ping" (CRLFCRLF) that
/// wants a "pong" (one CRLF). The runtime drops those bytes first.
pub fn stream_keep_alive(buf: &[u8]) -> (usize, bool) {
    let n = buf
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    (n, buf[..n].windows(4).any(|w| w == b"\r\n\r\n"))
}

/// The body length a message on a stream declares in `head` (the bytes
/// before the blank line): its Content-Length, 0 when absent (§18.3),
/// read exactly as [`parse`] reads it. The stream framer asks once per
/// message, when the head is complete, instead of parsing the whole
/// message again on every read.
pub fn stream_body_length(head: &[u8]) -> Result<usize, &'static str> {
    let head = String::from_utf8_lossy(head);
    let lengths = unfold(&head)
        .into_iter()
        .skip(1)
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            let name = HeaderName::parse(name.trim_end_matches([' ', '\t']));
            (name == HeaderName::ContentLength).then(|| Header {
                name,
                value: value.trim_matches([' ', '\t']).to_owned(),
            })
        })
        .collect();
    match content_length(&Headers(lengths), usize::MAX, Framing::Stream) {
        Ok(n) => Ok(n),
        Err(BodyError::Bad(why)) => Err(why),
        // Not with every byte available; kept total for the compiler.
        Err(BodyError::Incomplete) => Err("Bad Content-Length"),
    }
}

/// Larger heads on a stream are refused rather than buffered without end.
pub const MAX_HEAD: usize = 16 * 1024;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits the head into lines (CRLF; a bare LF is tolerated) and joins
/// continuation lines, those starting with SP or HT, with one space (§7.3.1).
fn unfold(head: &str) -> Vec<Cow<'_, str>> {
    let mut out: Vec<Cow<'_, str>> = Vec::with_capacity(16);
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match (line.starts_with([' ', '\t']), out.last_mut()) {
            (true, Some(prev)) => {
                let prev = prev.to_mut();
                prev.push(' ');
                prev.push_str(line.trim_start_matches([' ', '\t']));
            }
            (true, None) | (false, _) => out.push(Cow::Borrowed(line)),
        }
    }
    out
}

enum BodyError {
    Incomplete,
    Bad(&'static str),
}

/// §18.3 framing. Datagram: Content-Length larger than what arrived is an
/// error (RFC 4475 §3.1.2.2), absent means the rest of the datagram
/// (§18.3, RFC 4475 §3.4.1). Stream: absent means 0.
fn content_length(headers: &Headers, avail: usize, framing: Framing) -> Result<usize, BodyError> {
    let mut values = headers.all(&HeaderName::ContentLength);
    let first = values.next();
    // Several Content-Length values cannot frame anything (RFC 4475 §3.3.9).
    if values.next().is_some() {
        return Err(BodyError::Bad("Multiple Content-Length"));
    }
    let declared = match first {
        None => None,
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => Some(
            v.parse::<usize>()
                .map_err(|_| BodyError::Bad("Bad Content-Length"))?,
        ),
        Some(_) => return Err(BodyError::Bad("Bad Content-Length")),
    };
    match (declared, framing) {
        (Some(n), _) if n <= avail => Ok(n),
        (Some(_), Framing::Stream) => Err(BodyError::Incomplete),
        (Some(_), Framing::Datagram) => Err(BodyError::Bad("Content-Length Larger Than Message")),
        (None, Framing::Datagram) => Ok(avail),
        (None, Framing::Stream) => Ok(0),
    }
}

/// The single value of a header that may appear once (§7.3.1); twice is
/// an error (RFC 4475 §3.3.8).
fn single<'a>(headers: &'a Headers, name: &'a HeaderName) -> Result<Option<&'a str>, &'static str> {
    let mut all = headers.all(name);
    match (all.next(), all.next()) {
        (first, None) => Ok(first),
        (Some(_), Some(_)) | (None, Some(_)) => Err("Duplicate Header"),
    }
}

/// The response-forming minimum: present Via (top one parseable, leniently),
/// From, To, Call-ID and CSeq, first values if repeated.
fn reply_head(headers: &Headers) -> Option<ReplyHead> {
    let vias: Vec<String> = headers.all(&HeaderName::Via).map(str::to_owned).collect();
    let top = split_list(vias.first()?).into_iter().next()?;
    let top_via = Via::parse(top).ok().or_else(|| lenient_via(top))?;
    let to = headers.first(&HeaderName::To)?.to_owned();
    let to_tag = NameAddr::parse(&to)
        .ok()
        .map(|n| n.tag().map(str::to_owned));
    Some(ReplyHead {
        vias,
        top_via,
        from: headers.first(&HeaderName::From)?.to_owned(),
        to,
        to_tag,
        call_id: headers.first(&HeaderName::CallId)?.to_owned(),
        cseq: headers.first(&HeaderName::CSeq)?.to_owned(),
    })
}

/// Protocol and sent-by only, parameters dropped: enough to route a 400 to
/// a Via with broken parameters (RFC 4475 §3.1.2.1).
fn lenient_via(top: &str) -> Option<Via> {
    let cut = top.find(';').unwrap_or(top.len());
    Via::parse_version(&top[..cut], false).ok()
}

struct Typed {
    vias: Vec<Via>,
    from: NameAddr,
    to: NameAddr,
    call_id: String,
    cseq: CSeq,
}

fn typed_headers(headers: &Headers) -> Result<Typed, &'static str> {
    let vias = headers
        .all(&HeaderName::Via)
        .flat_map(split_list)
        .map(Via::parse)
        .collect::<Result<Vec<_>, HeaderError>>()
        .map_err(|_| "Bad Via")?;
    let name_addr = |name: &HeaderName, what| -> Result<NameAddr, &'static str> {
        let v = single(headers, name)?.ok_or(what)?;
        NameAddr::parse(v).map_err(|_| what)
    };
    let from = name_addr(&HeaderName::From, "Bad From")?;
    let to = name_addr(&HeaderName::To, "Bad To")?;
    let call_id = single(headers, &HeaderName::CallId)?.ok_or("Missing Call-ID")?;
    if call_id.is_empty() || call_id.contains([' ', '\t']) {
        return Err("Bad Call-ID");
    }
    let cseq = CSeq::parse(single(headers, &HeaderName::CSeq)?.ok_or("Missing CSeq")?)
        .map_err(|_| "Bad CSeq")?;
    Ok(Typed {
        vias,
        from,
        to,
        call_id: call_id.to_owned(),
        cseq,
    })
}

/// §7.2: `SIP-Version SP Status-Code SP Reason-Phrase`; any fault drops it.
fn parse_response(
    start: &str,
    headers: Headers,
    avail: &[u8],
    body_len: Result<usize, BodyError>,
    _framing: Framing,
) -> Result<(Message, usize), ParseError> {
    let body_len = match body_len {
        Ok(n) => n,
        Err(BodyError::Incomplete) => return Err(ParseError::Incomplete),
        Err(BodyError::Bad(_)) => return Err(ParseError::Drop("response framing")),
    };
    let mut parts = start.splitn(3, ' ');
    let (version, code, reason) = match (parts.next(), parts.next(), parts.next()) {
        (Some(v), Some(c), Some(r)) => (v, c, r),
        _ => return Err(ParseError::Drop("malformed Status-Line")),
    };
    let status = match code.parse::<u16>() {
        Ok(s) if version == "SIP/2.0" && code.len() == 3 && (100..=699).contains(&s) => s,
        _ => return Err(ParseError::Drop("malformed Status-Line")),
    };
    let typed =
        typed_headers(&headers).map_err(|_| ParseError::Drop("malformed response header"))?;
    let response = Response {
        status,
        reason: reason.to_owned(),
        body: avail[..body_len].to_vec(),
        headers,
        vias: typed.vias,
        call_id: typed.call_id,
        cseq: typed.cseq,
        from: typed.from,
        to: typed.to,
    };
    Ok((Message::Response(Box::new(response)), body_len))
}

impl Request {
    pub fn top_via(&self) -> &Via {
        &self.head.top_via
    }

    /// Content-Type's media type, lower-cased, parameters dropped.
    pub fn content_type(&self) -> Option<String> {
        let v = self.headers.first(&HeaderName::ContentType)?;
        Some(
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase(),
        )
    }

    /// The SDP in the body: the whole body when `application/sdp`, or the
    /// `application/sdp` part of a `multipart/mixed` body (RFC 5621; SIP-I
    /// trunks send SDP with ISUP this way). `Ok(None)`: no body.
    /// `Err(NoSdp)`: a body with no SDP in it (the UAS answers 415).
    pub fn sdp_body(&self) -> Result<Option<&[u8]>, NoSdp> {
        if self.body.is_empty() {
            return Ok(None);
        }
        let Some(full) = self.headers.first(&HeaderName::ContentType) else {
            return Err(NoSdp);
        };
        match self.content_type().as_deref() {
            Some("application/sdp") => Ok(Some(&self.body)),
            Some("multipart/mixed") => multipart_sdp(full, &self.body).map(Some).ok_or(NoSdp),
            Some(_) | None => Err(NoSdp),
        }
    }

    /// The first Contact's URI (RFC 3261 §12.1.1 remote target).
    pub fn contact(&self) -> Option<Uri> {
        let first = self.headers.list(&HeaderName::Contact).next()?;
        NameAddr::parse(first).ok().map(|n| n.uri)
    }

    /// Delta-seconds header value with its parameters (Session-Expires,
    /// Min-SE): `Err` when present but malformed.
    pub fn delta_seconds(
        &self,
        name: &HeaderName,
    ) -> Result<Option<(u32, Vec<Param>)>, HeaderError> {
        let Some(v) = self.headers.first(name) else {
            return Ok(None);
        };
        let cut = v.find(';').unwrap_or(v.len());
        let secs = v[..cut]
            .trim()
            .parse::<u32>()
            .map_err(|_| HeaderError::Malformed("delta-seconds"))?;
        let params = super::headers::parse_params(&v[cut..])?;
        Ok(Some((secs, params)))
    }
}

/// RFC 2046 §5.1.1: the first `application/sdp` part of a multipart body.
fn multipart_sdp<'a>(content_type: &str, body: &'a [u8]) -> Option<&'a [u8]> {
    let params = content_type.find(';').map_or("", |i| &content_type[i..]);
    let params = super::headers::parse_params(params).ok()?;
    let boundary = super::headers::find_param(&params, "boundary").flatten()?;
    let delimiter = format!("--{}", boundary.trim_matches('"'));
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            return None; // the closing delimiter
        }
        let end = find(rest, delimiter.as_bytes()).unwrap_or(rest.len());
        let part = &rest[..end];
        let (head_end, body_start) = match find(part, b"\r\n\r\n") {
            Some(i) => (i, i + 4),
            None => continue,
        };
        let head = String::from_utf8_lossy(&part[..head_end]).to_ascii_lowercase();
        let is_sdp = head.lines().any(|l| {
            l.split_once(':').is_some_and(|(n, v)| {
                n.trim() == "content-type"
                    && v.split(';')
                        .next()
                        .is_some_and(|t| t.trim() == "application/sdp")
            })
        });
        if is_sdp {
            // The CRLF before the next delimiter belongs to the delimiter.
            let sdp = &part[body_start..];
            return Some(sdp.strip_suffix(b"\r\n").unwrap_or(sdp));
        }
    }
    None
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
