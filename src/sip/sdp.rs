//! SDP (RFC 4566) and the offer/answer model (RFC 3264) for one audio
//! stream of G.711 (PCMA, PCMU) with RFC 4733 telephone-event.
//!
//! ```text
//! offer ──parse──► SessionDescription ──negotiate──► Negotiated ──► media layer
//!                                                       │
//! LocalSession (o= id fixed, version +1 on change) ◄────┘ answer body
//! ```
//!
//! Parsing is tolerant: unknown lines and attributes are skipped, malformed
//! lines in media we do not use are ignored, nothing panics.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// A parsed session description (only what negotiation needs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// The `m=` line as sent, to echo it with port 0 when rejected.
    pub kind: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<String>,
    pub connection: Option<IpAddr>,
    /// `a=rtpmap:<pt> <encoding>/<rate>[/<channels>]`
    pub rtpmaps: Vec<(u8, String, u32)>,
    pub ptime: Option<u32>,
    pub direction: Option<Direction>,
}

/// Stream direction (RFC 3264 §6.1), from the describing side's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn parse(attr: &str) -> Option<Direction> {
        match attr {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// RFC 3264 §6.1: the answer's direction mirrors the offer's.
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }
}

/// G.711 law (ITU-T G.711; RTP/AVP static types 8 and 0, RFC 3551).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Pcma,
    Pcmu,
}

impl Codec {
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcma => 8,
            Codec::Pcmu => 0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Codec::Pcma => "PCMA",
            Codec::Pcmu => "PCMU",
        }
    }
}

/// What the media layer needs for the call's audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Where to send RTP (IP `0.0.0.0` when the peer holds, RFC 3264 §8.4).
    pub remote_rtp: SocketAddr,
    pub codec: Codec,
    pub codec_payload_type: u8,
    /// RFC 4733 telephone-event payload type and clock rate, if agreed.
    pub telephone_event: Option<(u8, u32)>,
    pub ptime_ms: u32,
    /// Our direction: may we send, may we receive.
    pub direction: Direction,
}

/// Why no answer could be made (the UAS answers 488, RFC 3261 §13.3.1.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP is not text or has no media")]
    Malformed,
    #[error("no RTP/AVP audio stream with an address")]
    NoAudio,
    #[error("no common codec (PCMA or PCMU)")]
    NoCommonCodec,
}

impl SessionDescription {
    /// RFC 4566 §5: `<type>=<value>` lines; unknown ones are skipped.
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed)?;
        let mut sd = SessionDescription::default();
        let mut saw_version = false;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            match (kind, sd.media.last_mut()) {
                ("v", _) => saw_version = value.trim() == "0",
                ("m", _) => {
                    if let Some(m) = parse_media(value) {
                        sd.media.push(m);
                    } else {
                        // Keep the stream count right for the answer: a
                        // broken m= line is answered as rejected.
                        sd.media.push(MediaDescription::rejected(value));
                    }
                }
                ("c", None) => sd.connection = parse_connection(value),
                ("c", Some(m)) => m.connection = parse_connection(value),
                ("a", None) => {
                    if let Some(d) = Direction::parse(value.trim()) {
                        sd.direction = Some(d);
                    }
                }
                ("a", Some(m)) => m.attribute(value.trim()),
                _ => {}
            }
        }
        if !saw_version || sd.media.is_empty() {
            return Err(SdpError::Malformed);
        }
        Ok(sd)
    }
}

impl MediaDescription {
    fn rejected(m_line: &str) -> MediaDescription {
        let mut words = m_line.split_whitespace();
        MediaDescription {
            kind: words.next().unwrap_or("unknown").to_owned(),
            port: 0,
            proto: words.nth(1).unwrap_or("RTP/AVP").to_owned(),
            formats: vec![words.next().unwrap_or("0").to_owned()],
            connection: None,
            rtpmaps: Vec::new(),
            ptime: None,
            direction: None,
        }
    }

    fn attribute(&mut self, a: &str) {
        if let Some(d) = Direction::parse(a) {
            self.direction = Some(d);
        } else if let Some(p) = a.strip_prefix("ptime:") {
            self.ptime = p.trim().parse().ok();
        } else if let Some(map) = a.strip_prefix("rtpmap:") {
            let mut it = map.split_whitespace();
            let pt = it.next().and_then(|p| p.parse::<u8>().ok());
            let enc = it.next().map(|e| e.split('/').collect::<Vec<_>>());
            if let (Some(pt), Some(enc)) = (pt, enc)
                && let [name, rate, ..] = enc.as_slice()
                && let Ok(rate) = rate.parse::<u32>()
            {
                self.rtpmaps.push((pt, (*name).to_owned(), rate));
            }
        }
    }

    /// The encoding of a payload type: its rtpmap, else RFC 3551's static
    /// table for 0 and 8.
    fn encoding(&self, pt: u8) -> Option<(&str, u32)> {
        if let Some((_, name, rate)) = self.rtpmaps.iter().find(|(p, _, _)| *p == pt) {
            return Some((name.as_str(), *rate));
        }
        match pt {
            0 => Some(("PCMU", 8000)),
            8 => Some(("PCMA", 8000)),
            _ => None,
        }
    }

    fn is_audio_rtp(&self) -> bool {
        self.kind == "audio" && self.port != 0 && self.proto.eq_ignore_ascii_case("RTP/AVP")
    }
}

fn parse_media(value: &str) -> Option<MediaDescription> {
    let mut w = value.split_whitespace();
    let kind = w.next()?.to_owned();
    let port = w.next()?.split('/').next()?.parse().ok()?;
    let proto = w.next()?.to_owned();
    let formats: Vec<String> = w.map(str::to_owned).collect();
    if formats.is_empty() {
        return None;
    }
    Some(MediaDescription {
        kind,
        port,
        proto,
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        ptime: None,
        direction: None,
    })
}

/// `c=IN IP4 <addr>[/ttl]` (RFC 4566 §5.7).
fn parse_connection(value: &str) -> Option<IpAddr> {
    let mut w = value.split_whitespace();
    match (w.next(), w.next(), w.next()) {
        (Some("IN"), Some("IP4" | "IP6"), Some(addr)) => addr.split('/').next()?.parse().ok(),
        _ => None,
    }
}

/// Our ptime when the offer names none or one we will not use.
pub const DEFAULT_PTIME_MS: u32 = 20;

/// RFC 3264 §6.1: picks the first audio RTP/AVP stream, the first of PCMA
/// or PCMU in the offerer's order, telephone-event at 8000 Hz at the
/// offerer's payload type (a 16000 Hz variant cannot go with G.711's clock,
/// so it is ignored), and the offered ptime when it is 10..=60 ms in 10 ms
/// steps.
pub fn negotiate(offer: &SessionDescription) -> Result<(usize, Negotiated), SdpError> {
    let (index, m) = offer
        .media
        .iter()
        .enumerate()
        .find(|(_, m)| m.is_audio_rtp())
        .ok_or(SdpError::NoAudio)?;
    let ip = m.connection.or(offer.connection).ok_or(SdpError::NoAudio)?;
    let mut chosen = None;
    for f in &m.formats {
        let Ok(pt) = f.parse::<u8>() else { continue };
        let codec = match m.encoding(pt) {
            Some((name, 8000)) if name.eq_ignore_ascii_case("PCMA") => Codec::Pcma,
            Some((name, 8000)) if name.eq_ignore_ascii_case("PCMU") => Codec::Pcmu,
            Some(_) | None => continue,
        };
        chosen = Some((codec, pt));
        break;
    }
    let (codec, codec_payload_type) = chosen.ok_or(SdpError::NoCommonCodec)?;
    let telephone_event = m
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .find(|pt| matches!(m.encoding(*pt), Some((name, 8000)) if name.eq_ignore_ascii_case("telephone-event")))
        .map(|pt| (pt, 8000));
    let ptime_ms = m
        .ptime
        .filter(|p| (10..=60).contains(p) && p % 10 == 0)
        .unwrap_or(DEFAULT_PTIME_MS);
    let offered = m
        .direction
        .or(offer.direction)
        .unwrap_or(Direction::SendRecv);
    // RFC 3264 §8.4: c=0.0.0.0 is the old way to put a call on hold.
    let offered = if ip.is_unspecified() && offered == Direction::SendRecv {
        Direction::SendOnly
    } else {
        offered
    };
    let negotiated = Negotiated {
        remote_rtp: SocketAddr::new(ip, m.port),
        codec,
        codec_payload_type,
        telephone_event,
        ptime_ms,
        direction: offered.reversed(),
    };
    Ok((index, negotiated))
}

/// Our side of the SDP over a call: one `o=` session id for the dialog and
/// a version that goes up by one whenever the body changes (RFC 3264 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSession {
    session_id: u64,
    version: u64,
    address: SocketAddr,
    last: Option<String>,
}

impl LocalSession {
    /// `address`: our RTP IP and port, as the runtime chose them.
    pub fn new(session_id: u64, address: SocketAddr) -> LocalSession {
        LocalSession {
            session_id,
            version: session_id,
            address,
            last: None,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The answer to `offer` given what was negotiated on stream `index`:
    /// same number of `m=` lines, the others refused with port 0.
    pub fn answer(&mut self, offer: &SessionDescription, index: usize, n: &Negotiated) -> Vec<u8> {
        let mut media = String::new();
        for (i, m) in offer.media.iter().enumerate() {
            if i == index {
                let mut pts = vec![n.codec_payload_type.to_string()];
                if let Some((pt, _)) = n.telephone_event {
                    pts.push(pt.to_string());
                }
                let _ = write!(
                    media,
                    "m=audio {} RTP/AVP {}\r\n",
                    self.address.port(),
                    pts.join(" ")
                );
                let _ = write!(
                    media,
                    "a=rtpmap:{} {}/8000\r\n",
                    n.codec_payload_type,
                    n.codec.name()
                );
                if let Some((pt, rate)) = n.telephone_event {
                    let _ = write!(
                        media,
                        "a=rtpmap:{pt} telephone-event/{rate}\r\na=fmtp:{pt} 0-15\r\n"
                    );
                }
                let _ = write!(
                    media,
                    "a=ptime:{}\r\na={}\r\n",
                    n.ptime_ms,
                    n.direction.as_str()
                );
            } else {
                let _ = write!(
                    media,
                    "m={} 0 {} {}\r\n",
                    m.kind,
                    m.proto,
                    m.formats.join(" ")
                );
            }
        }
        self.body(&media)
    }

    /// Our offer (late-offer INVITE, §13.2.1/RFC 3264 §5): PCMA, PCMU,
    /// telephone-event 101, 20 ms.
    pub fn offer(&mut self) -> Vec<u8> {
        let media = format!(
            "m=audio {} RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:{DEFAULT_PTIME_MS}\r\na=sendrecv\r\n",
            self.address.port()
        );
        self.body(&media)
    }

    fn body(&mut self, media: &str) -> Vec<u8> {
        let (family, ip) = match self.address.ip() {
            IpAddr::V4(a) => ("IP4", a.to_string()),
            IpAddr::V6(a) => ("IP6", a.to_string()),
        };
        let rest = format!("s=mensa\r\nc=IN {family} {ip}\r\nt=0 0\r\n{media}");
        if self.last.as_deref().is_some_and(|l| l != rest) {
            self.version += 1;
        }
        let body = format!(
            "v=0\r\no=mensa {} {} IN {family} {ip}\r\n{rest}",
            self.session_id, self.version
        );
        self.last = Some(rest);
        body.into_bytes()
    }
}

/// The answer to our offer (in the ACK, late offer): read like an offer,
/// since both state directions from their author's side (RFC 3264 §6.1).
pub fn negotiate_answer(answer: &SessionDescription) -> Result<Negotiated, SdpError> {
    negotiate(answer).map(|(_, n)| n)
}

#[cfg(test)]
#[path = "sdp_tests.rs"]
mod tests;
