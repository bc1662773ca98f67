//! URIs as a UAS needs them: RFC 3261 §19.1 (SIP and SIPS URIs), RFC 3966
//! (`tel:`) and, for every other scheme, an opaque value (RFC 3986 scheme
//! syntax only), so that an unknown scheme is a 416 and not a parse error.
//!
//! The parser is deliberately small: it splits the URI into its parts,
//! checks the characters that would make a URI ambiguous inside a header
//! (space, `<`, `>`, `"`), and keeps the original text for printing, so
//! nothing is ever re-escaped differently from what the peer sent.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A parsed URI; [`fmt::Display`] prints the peer's original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:` (RFC 3261 §19.1).
    Sip(SipUri),
    /// `tel:` (RFC 3966): the number with its visual separators, then params.
    Tel { number: String, raw: String },
    /// Any other scheme, kept opaque (RFC 3261 §19.1.1 allows them in
    /// headers; in a Request-URI they are answered with 416).
    Other { scheme: String, raw: String },
}

/// A `sip:`/`sips:` URI split into its parts (escapes left as sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub secure: bool,
    /// The user part as sent, `%HH` escapes and `;` parameters included
    /// (RFC 4475 §3.1.1.9: `user;par=u%40example.net`).
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    /// `uri-parameters`, names as sent (compare case-insensitively).
    pub params: Vec<(String, Option<String>)>,
    /// The `?headers` part, never applied (RFC 4475 §3.1.2.11).
    pub headers: Option<String>,
    raw: String,
}

/// The host of a SIP URI or of a Via `sent-by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("URI has no scheme")]
    NoScheme,
    #[error("invalid character in URI")]
    BadChar,
    #[error("invalid host")]
    BadHost,
    #[error("invalid port")]
    BadPort,
    #[error("empty URI parameter")]
    EmptyParam,
}

impl Uri {
    /// Parses one URI with nothing around it (no `<>`, no spaces).
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        if s.bytes()
            .any(|b| b <= b' ' || matches!(b, b'<' | b'>' | b'"' | 0x7f))
        {
            return Err(UriError::BadChar);
        }
        let (scheme, rest) = s.split_once(':').ok_or(UriError::NoScheme)?;
        let mut chars = scheme.chars();
        let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(UriError::NoScheme);
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            return SipUri::parse_rest(scheme.eq_ignore_ascii_case("sips"), rest, s).map(Uri::Sip);
        }
        if scheme.eq_ignore_ascii_case("tel") {
            let number = rest.split(';').next().unwrap_or_default();
            if number.is_empty() {
                return Err(UriError::BadChar);
            }
            return Ok(Uri::Tel {
                number: number.to_owned(),
                raw: s.to_owned(),
            });
        }
        Ok(Uri::Other {
            scheme: scheme.to_owned(),
            raw: s.to_owned(),
        })
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Tel { .. } | Uri::Other { .. } => None,
        }
    }

    /// The dialled number this URI names: the decoded SIP user part up to
    /// its first `;` (RFC 3261 §19.1.1 telephone-subscriber), or the `tel:`
    /// number; visual separators (`-`, `.`, `(`, `)`) removed.
    pub fn number(&self) -> Option<String> {
        let raw = match self {
            Uri::Sip(u) => u.user.as_deref()?.split(';').next()?.to_owned(),
            Uri::Tel { number, .. } => number.clone(),
            Uri::Other { .. } => return None,
        };
        let decoded = percent_decode(&raw);
        let text = String::from_utf8(decoded).ok()?;
        let number: String = text
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
            .collect();
        let digits = number.strip_prefix('+').unwrap_or(&number);
        let dialable = !digits.is_empty()
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
        dialable.then_some(number)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => f.write_str(&u.raw),
            Uri::Tel { raw, .. } | Uri::Other { raw, .. } => f.write_str(raw),
        }
    }
}

impl SipUri {
    /// RFC 3261 §19.1.1: `sip:[userinfo@]hostport[;params][?headers]`.
    /// The userinfo ends at the first `@`, so user parts with `;`, `?`, `.`
    /// or `:` (RFC 4475 §3.1.1.2 and §3.1.1.9) stay whole.
    fn parse_rest(secure: bool, rest: &str, raw: &str) -> Result<SipUri, UriError> {
        let (userinfo, hostpart) = match rest.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (Some(user.to_owned()), Some(pw.to_owned())),
                None => (Some(u.to_owned()), None),
            },
        };
        if user.as_deref() == Some("") {
            return Err(UriError::BadChar);
        }
        let (before_headers, headers) = match hostpart.split_once('?') {
            Some((b, h)) => (b, Some(h.to_owned())),
            None => (hostpart, None),
        };
        let mut pieces = before_headers.split(';');
        let hostport = pieces.next().unwrap_or_default();
        let (host, port) = parse_hostport(hostport)?;
        let mut params = Vec::new();
        for p in pieces {
            if p.is_empty() {
                return Err(UriError::EmptyParam);
            }
            match p.split_once('=') {
                Some((n, v)) => params.push((n.to_owned(), Some(v.to_owned()))),
                None => params.push((p.to_owned(), None)),
            }
        }
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
            raw: raw.to_owned(),
        })
    }

    /// A URI parameter by name (case-insensitive, RFC 3261 §19.1.4).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// `host [":" port]`, with `[v6]` references (RFC 3261 §25.1 `hostport`).
pub fn parse_hostport(s: &str) -> Result<(Host, Option<u16>), UriError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or(UriError::BadHost)?;
        let addr: Ipv6Addr = v6.parse().map_err(|_| UriError::BadHost)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UriError::BadPort)?),
        };
        (Host::V6(addr), port)
    } else {
        let (h, p) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let valid = !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid {
            return Err(UriError::BadHost);
        }
        let host = match h.parse::<Ipv4Addr>() {
            Ok(a) => Host::V4(a),
            Err(_) => Host::Name(h.to_owned()),
        };
        (host, p)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| UriError::BadPort)?)
        }
        Some(_) => return Err(UriError::BadPort),
    };
    Ok((host, port))
}

/// Decodes `%HH` escapes; a `%` not followed by two hex digits stays as is
/// (RFC 4475 §3.1.1.5). NULs are kept (RFC 4475 §3.1.1.4).
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn user_part_with_dot_semicolon_and_escapes() {
        assert_eq!(
            sip("sip:j.user@example.com").user.as_deref(),
            Some("j.user")
        );
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.host, Host::Name("example.com".into()));
        let u = sip("sip:null-%00-null@example.com");
        assert_eq!(percent_decode(u.user.as_deref().unwrap()), b"null-\0-null");
        assert_eq!(percent_decode("%Z%45%"), b"%ZE%");
    }

    #[test]
    fn hosts_ports_params_headers() {
        let u = sip("sip:800082653@[2001:db8::1]:5070;user=phone;lr?Route=%3Csip:x%3E");
        assert_eq!(u.host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("USER"), Some(Some("phone")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers.as_deref(), Some("Route=%3Csip:x%3E"));
        assert_eq!(
            sip("sip:10.0.0.1").host,
            Host::V4("10.0.0.1".parse().unwrap())
        );
        assert_eq!(Uri::parse("sip:a@h:99999"), Err(UriError::BadPort));
        assert_eq!(Uri::parse("sip:a@h;;x"), Err(UriError::EmptyParam));
    }

    #[test]
    fn schemes_and_numbers() {
        assert!(matches!(
            Uri::parse("soap.beep://192.0.2.103:3002"),
            Ok(Uri::Other { .. })
        ));
        assert_eq!(Uri::parse("<sip:user@example.com>"), Err(UriError::BadChar));
        assert_eq!(
            Uri::parse("tel:+39-02-1234;phone-context=x")
                .unwrap()
                .number()
                .unwrap(),
            "+39021234"
        );
        assert_eq!(
            Uri::parse("sip:0240709125;isub=1@h")
                .unwrap()
                .number()
                .unwrap(),
            "0240709125"
        );
        assert_eq!(Uri::parse("sip:h").unwrap().number(), None);
    }
}
