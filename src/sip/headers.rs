//! Header fields: names (RFC 3261 §7.3.3 compact forms), comma lists,
//! generic parameters, and the typed values a UAS needs: Via (§20.42),
//! From/To/Contact name-addr (§20.10, §20.20, §20.39), CSeq (§20.16).
//!
//! Values arrive unfolded (every `CRLF 1*WSP` replaced by one space, see
//! `message.rs`), so LWS here is just spaces and tabs.

use std::fmt;

use super::uri::{Host, Uri, UriError, parse_hostport};

/// A header name, canonical for the ones the endpoint reads; any other is
/// kept with the peer's spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderName {
    Accept,
    Allow,
    CallId,
    Contact,
    ContentLength,
    ContentType,
    CSeq,
    From,
    MaxForwards,
    MinSe,
    RecordRoute,
    Require,
    Route,
    SessionExpires,
    Supported,
    To,
    Via,
    Other(String),
}

impl HeaderName {
    /// Case-insensitive, with compact forms (RFC 3261 §7.3.3, RFC 4028 `x`).
    pub fn parse(name: &str) -> HeaderName {
        use HeaderName as H;
        const TABLE: &[(&str, Option<&str>, HeaderName)] = &[
            ("accept", None, H::Accept),
            ("allow", None, H::Allow),
            ("call-id", Some("i"), H::CallId),
            ("contact", Some("m"), H::Contact),
            ("content-length", Some("l"), H::ContentLength),
            ("content-type", Some("c"), H::ContentType),
            ("cseq", None, H::CSeq),
            ("from", Some("f"), H::From),
            ("max-forwards", None, H::MaxForwards),
            ("min-se", None, H::MinSe),
            ("record-route", None, H::RecordRoute),
            ("require", None, H::Require),
            ("route", None, H::Route),
            ("session-expires", Some("x"), H::SessionExpires),
            ("supported", Some("k"), H::Supported),
            ("to", Some("t"), H::To),
            ("via", Some("v"), H::Via),
        ];
        for (long, short, h) in TABLE {
            if name.eq_ignore_ascii_case(long)
                || short.is_some_and(|s| name.eq_ignore_ascii_case(s))
            {
                return h.clone();
            }
        }
        H::Other(name.to_owned())
    }

    /// Same header? Names outside the table compare case-insensitively
    /// (RFC 3261 §7.3.1), like those in it.
    pub fn matches(&self, other: &HeaderName) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Accept => "Accept",
            HeaderName::Allow => "Allow",
            HeaderName::CallId => "Call-ID",
            HeaderName::Contact => "Contact",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::CSeq => "CSeq",
            HeaderName::From => "From",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::MinSe => "Min-SE",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Require => "Require",
            HeaderName::Route => "Route",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::Supported => "Supported",
            HeaderName::To => "To",
            HeaderName::Via => "Via",
            HeaderName::Other(s) => s,
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header field line, value unfolded and trimmed, otherwise verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: String,
}

/// Why a header value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("bad URI: {0}")]
    Uri(#[from] UriError),
}

/// `token` characters (RFC 3261 §25.1).
pub fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

fn is_lws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Splits a header value at top-level commas (not inside quotes or `<>`),
/// trimming each element (RFC 3261 §7.3.1).
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped, mut start) = (false, false, false, 0);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(value[start..i].trim_matches(is_lws));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim_matches(is_lws));
    out
}

/// A generic parameter `name [= value]`; quoted values keep their quotes.
pub type Param = (String, Option<String>);

/// Parses `*( SEMI generic-param )` with LWS around `;` and `=` (RFC 3261
/// §7.3.1, §25.1). `s` must be empty or start with `;` after LWS.
pub fn parse_params(s: &str) -> Result<Vec<Param>, HeaderError> {
    let mut out = Vec::new();
    let mut rest = s.trim_start_matches(is_lws);
    while !rest.is_empty() {
        rest = rest
            .strip_prefix(';')
            .ok_or(HeaderError::Malformed("parameter separator"))?;
        rest = rest.trim_start_matches(is_lws);
        let name_end = rest
            .find(|c: char| !is_token_char(c as u8) || !c.is_ascii())
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name.is_empty() {
            return Err(HeaderError::Malformed("empty parameter"));
        }
        rest = rest[name_end..].trim_start_matches(is_lws);
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start_matches(is_lws);
            let (v, tail) = if after.starts_with('"') {
                let end = quoted_end(after).ok_or(HeaderError::Malformed("unterminated quote"))?;
                after.split_at(end)
            } else {
                let end = after.find([';', ' ', '\t']).unwrap_or(after.len());
                after.split_at(end)
            };
            if v.is_empty() {
                return Err(HeaderError::Malformed("empty parameter value"));
            }
            rest = tail.trim_start_matches(is_lws);
            Some(v.to_owned())
        } else {
            None
        };
        out.push((name.to_owned(), value));
    }
    Ok(out)
}

/// Byte index just past the closing quote of the quoted string at the start
/// of `s`, honouring `\` quoted-pairs (RFC 3261 §25.1).
fn quoted_end(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

pub fn find_param<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref())
}

/// The magic cookie of RFC 3261 branches (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value (RFC 3261 §20.42, RFC 3581 `rport`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Upper-cased transport: `UDP`, `TCP`, `TLS`, `SCTP`, or any token.
    pub transport: String,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Vec<Param>,
}

impl Via {
    /// `sent-protocol LWS sent-by *( SEMI via-params )`, LWS allowed around
    /// the `/` (RFC 4475 §3.1.1.1).
    pub fn parse(s: &str) -> Result<Via, HeaderError> {
        Via::parse_version(s, true)
    }

    /// As [`Via::parse`], but any `SIP/x.y` protocol version is taken, to
    /// route the 505 of RFC 4475 §3.1.2.16.
    pub fn parse_version(s: &str, only_2_0: bool) -> Result<Via, HeaderError> {
        let bad = HeaderError::Malformed("Via");
        let mut parts = s.splitn(3, '/');
        let (name, version, rest) = match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(v), Some(r)) => (n.trim_matches(is_lws), v.trim_matches(is_lws), r),
            _ => return Err(bad),
        };
        if !name.eq_ignore_ascii_case("SIP") || (only_2_0 && version != "2.0") {
            return Err(bad);
        }
        let rest = rest.trim_start_matches(is_lws);
        let t_end = rest
            .find(|c: char| !is_token_char(c as u8) || !c.is_ascii())
            .unwrap_or(rest.len());
        let transport = rest[..t_end].to_ascii_uppercase();
        if transport.is_empty() {
            return Err(bad);
        }
        let rest = rest[t_end..].trim_start_matches(is_lws);
        let sb_end = rest.find([';', ' ', '\t']).unwrap_or(rest.len());
        let (host, port) = parse_hostport(&rest[..sb_end])?;
        let params = parse_params(&rest[sb_end..])?;
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        find_param(&self.params, "branch").flatten()
    }

    /// The branch when it carries the RFC 3261 magic cookie (and something
    /// after it, RFC 4475 §3.2.1): only then may it alone identify a
    /// transaction (§17.2.3).
    pub fn rfc3261_branch(&self) -> Option<&str> {
        self.branch()
            .filter(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    pub fn received(&self) -> Option<&str> {
        find_param(&self.params, "received").flatten()
    }

    /// `rport` present (RFC 3581 §4): `Some(None)` when without a value.
    pub fn rport(&self) -> Option<Option<&str>> {
        find_param(&self.params, "rport")
    }

    /// The sent-by as text, for transaction matching.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }
}

/// `name-addr` or `addr-spec` with header parameters (RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name without quotes or escapes resolved (as sent).
    pub display_name: Option<String>,
    pub uri: Uri,
    pub params: Vec<Param>,
}

impl NameAddr {
    /// Accepts `"quoted" <uri>`, `token token <uri>`, `<uri>`, `name<uri>`
    /// (RFC 4475 §3.1.1.6) and a bare addr-spec whose parameters belong to
    /// the header (§20.10). Refuses an unclosed quote (§3.1.2.6), non-token
    /// display names (§3.1.2.15) and spaces inside `<>` (§3.1.2.14).
    pub fn parse(s: &str) -> Result<NameAddr, HeaderError> {
        let s = s.trim_matches(is_lws);
        let bad = HeaderError::Malformed("name-addr");
        let (display_name, after_display) = if s.starts_with('"') {
            let end = quoted_end(s).ok_or(HeaderError::Malformed("unterminated quote"))?;
            (
                Some(s[..end].to_owned()),
                s[end..].trim_start_matches(is_lws),
            )
        } else if let Some(lt) = s.find('<') {
            let name = s[..lt].trim_matches(is_lws);
            if !name.split(is_lws).filter(|w| !w.is_empty()).all(is_token) {
                return Err(bad);
            }
            ((!name.is_empty()).then(|| name.to_owned()), &s[lt..])
        } else {
            (None, s)
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let (uri, rest) = inner.split_once('>').ok_or(bad)?;
            let uri = Uri::parse(uri)?;
            return Ok(NameAddr {
                display_name,
                uri,
                params: parse_params(rest)?,
            });
        }
        if display_name.is_some() {
            return Err(bad);
        }
        let end = after_display
            .find([';', ' ', '\t'])
            .unwrap_or(after_display.len());
        let uri = Uri::parse(&after_display[..end])?;
        if matches!(&uri, Uri::Sip(u) if u.headers.is_some()) {
            return Err(bad); // §20: a URI with `?` must be inside `<>`
        }
        Ok(NameAddr {
            display_name,
            uri,
            params: parse_params(&after_display[end..])?,
        })
    }

    pub fn tag(&self) -> Option<&str> {
        find_param(&self.params, "tag").flatten()
    }
}

/// CSeq (RFC 3261 §20.16): a 32-bit number and the method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: String,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<CSeq, HeaderError> {
        let bad = HeaderError::Malformed("CSeq");
        let mut words = s.split(is_lws).filter(|w| !w.is_empty());
        let (num, method) = match (words.next(), words.next(), words.next()) {
            (Some(n), Some(m), None) => (n, m),
            _ => return Err(bad),
        };
        if !num.bytes().all(|b| b.is_ascii_digit()) || !is_token(method) {
            return Err(bad);
        }
        // Overlarge values are errors, not wraps (RFC 4475 §3.1.2.4).
        let seq = num.parse::<u32>().map_err(|_| bad)?;
        Ok(CSeq {
            seq,
            method: method.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_names() {
        assert_eq!(HeaderName::parse("i"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("MaX-fOrWaRdS"), HeaderName::MaxForwards);
        assert_eq!(HeaderName::parse("x"), HeaderName::SessionExpires);
        assert_eq!(HeaderName::parse("s"), HeaderName::Other("s".into()));
    }

    #[test]
    fn via_with_lws_everywhere() {
        let v =
            Via::parse("SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::V4("192.168.255.111".parse().unwrap()));
        assert_eq!(v.rfc3261_branch(), Some("z9hG4bK30239"));
        let v = Via::parse("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d8;rport").unwrap();
        assert_eq!((v.port, v.rport()), (Some(5070), Some(None)));
        assert_eq!(
            Via::parse("SIP/2.0/UDP h;branch=z9hG4bK")
                .unwrap()
                .rfc3261_branch(),
            None
        );
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/2.0/UDP [::1]:5060;received=[::2]").is_ok());
    }

    #[test]
    fn lists_respect_quotes_and_angles() {
        assert_eq!(
            split_list(r#""a,b" <sip:x;p=1,2>, <sip:y> "#),
            vec![r#""a,b" <sip:x;p=1,2>"#, "<sip:y>"]
        );
        assert_eq!(split_list("a;;,b"), vec!["a;;", "b"]);
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display_name.as_deref(), Some(r#""J Rosenberg \\\"""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n =
            NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(n.tag(), Some("1918181833n"));
        assert!(NameAddr::parse("caller<sip:caller@example.com>;tag=323").is_ok());
        assert!(NameAddr::parse("token1~` token2'+_ <sip:m@example.com>;tag=_t").is_ok());
        assert!(NameAddr::parse("isbn:2983792873").is_ok());
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(NameAddr::parse(r#""W" < sip:t.watson@example.org >"#).is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:x%3E").is_err());
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(
            CSeq::parse("0009  INVITE").unwrap(),
            CSeq {
                seq: 9,
                method: "INVITE".into()
            }
        );
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("1").is_err());
    }
}
