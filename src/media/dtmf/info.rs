//! DTMF in SIP INFO bodies (conformance part C).
//!
//! Two bodies are in the field, neither with an RFC of its own:
//! `application/dtmf-relay` (Cisco and most gateways: `Signal=5` and
//! `Duration=160` lines) and `application/dtmf` (the bare key, or its
//! RFC 4733 §3.2 event number). The SIP layer answers 200 to `Ok`, and to
//! an error the status [`InfoError::status`] names.

use std::time::Duration;

use super::Key;

/// A key press carried by an INFO request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InfoDigit {
    pub key: Key,
    /// `Duration=` in milliseconds, when given.
    pub duration: Option<Duration>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InfoError {
    #[error("unsupported INFO content type {0:?}")]
    UnsupportedContentType(String),
    #[error("INFO body has no Signal line")]
    MissingSignal,
    #[error("INFO signal {0:?} is not a DTMF key")]
    BadSignal(String),
    #[error("INFO body is not UTF-8")]
    NotText,
}

impl InfoError {
    /// The SIP status to answer with (RFC 3261 §21.4).
    pub fn status(&self) -> u16 {
        match self {
            InfoError::UnsupportedContentType(_) => 415,
            InfoError::MissingSignal | InfoError::BadSignal(_) | InfoError::NotText => 400,
        }
    }
}

/// Whether a Content-Type is one of the DTMF INFO types (parameters and
/// case ignored), so the SIP layer can tell DTMF INFO from other packages.
pub fn is_dtmf_content_type(content_type: &str) -> bool {
    matches!(
        media_type(content_type).as_str(),
        "application/dtmf-relay" | "application/dtmf"
    )
}

/// Parse an INFO body. `Ok(None)`: nothing to do (empty body, or the
/// flash-hook signal 16, which an IVR ignores).
pub fn parse_info(content_type: &str, body: &[u8]) -> Result<Option<InfoDigit>, InfoError> {
    let text = std::str::from_utf8(body).map_err(|_| InfoError::NotText)?;
    let text = text.trim();
    match media_type(content_type).as_str() {
        "application/dtmf-relay" => {
            if text.is_empty() {
                return Ok(None);
            }
            let mut signal = None;
            let mut duration = None;
            for line in text.lines() {
                let Some((name, value)) = line.split_once('=') else {
                    continue;
                };
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "signal" => signal = Some(value),
                    "duration" => {
                        duration = value.parse::<u64>().ok().map(Duration::from_millis);
                    }
                    _ => {}
                }
            }
            let signal = signal.ok_or(InfoError::MissingSignal)?;
            Ok(signal_to_key(signal)?.map(|key| InfoDigit { key, duration }))
        }
        "application/dtmf" => {
            if text.is_empty() {
                return Ok(None);
            }
            Ok(signal_to_key(text)?.map(|key| InfoDigit {
                key,
                duration: None,
            }))
        }
        other => Err(InfoError::UnsupportedContentType(other.to_string())),
    }
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A key character, or an RFC 4733 §3.2 event number (10 = `*`, 11 = `#`,
/// 12–15 = `A`–`D`, 16 = flash, ignored).
fn signal_to_key(signal: &str) -> Result<Option<Key>, InfoError> {
    let bad = || InfoError::BadSignal(signal.chars().take(16).collect());
    let mut chars = signal.chars();
    if let (Some(c), None) = (chars.next(), chars.next())
        && let Some(k) = Key::from_char(c)
    {
        return Ok(Some(k));
    }
    match signal.parse::<u8>() {
        Ok(16) => Ok(None),
        Ok(n) => Key::from_event_code(n).map(Some).ok_or_else(bad),
        Err(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> Key {
        Key::from_char(c).unwrap()
    }

    #[test]
    fn c1_dtmf_relay() {
        let d = parse_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n").unwrap();
        assert_eq!(
            d,
            Some(InfoDigit {
                key: key('5'),
                duration: Some(Duration::from_millis(160))
            })
        );
    }

    #[test]
    fn c2_lower_case_lf_and_odd_content_type() {
        for (ct, body, k) in [
            (
                "Application/DTMF-Relay; charset=utf-8",
                "signal=b\nduration=100\n",
                'B',
            ),
            ("APPLICATION/dtmf-relay ;foo=bar", "SIGNAL = #\n", '#'),
            ("application/dtmf-relay", "Signal= *", '*'),
            ("application/Dtmf", "d\n", 'D'),
        ] {
            let d = parse_info(ct, body.as_bytes()).unwrap().unwrap();
            assert_eq!(d.key, key(k), "{ct} {body:?}");
            assert!(is_dtmf_content_type(ct));
        }
    }

    #[test]
    fn c3_numeric_signals() {
        for (n, k) in [
            (10, '*'),
            (11, '#'),
            (12, 'A'),
            (13, 'B'),
            (14, 'C'),
            (15, 'D'),
            (0, '0'),
        ] {
            let body = format!("Signal={n}");
            let d = parse_info("application/dtmf-relay", body.as_bytes()).unwrap();
            assert_eq!(d.map(|d| (d.key, d.duration)), Some((key(k), None)), "{n}");
        }
        assert_eq!(parse_info("application/dtmf-relay", b"Signal=16"), Ok(None));
    }

    #[test]
    fn c4_application_dtmf() {
        for body in ["#", "11", " 11\r\n"] {
            let d = parse_info("application/dtmf", body.as_bytes())
                .unwrap()
                .unwrap();
            assert_eq!(d.key, key('#'));
        }
    }

    #[test]
    fn c5_bad_and_empty_bodies() {
        let e = parse_info("application/dtmf-relay", b"Signal=x").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(parse_info("application/dtmf-relay", b"Signal=17").is_err());
        assert!(parse_info("application/dtmf-relay", b"Duration=100").is_err());
        assert!(parse_info("application/dtmf", b"xyz").is_err());
        assert!(parse_info("application/dtmf-relay", &[0xFF, 0xFE]).is_err());
        assert_eq!(parse_info("application/dtmf-relay", b""), Ok(None));
        assert_eq!(parse_info("application/dtmf", b"  \r\n"), Ok(None));
        let e = parse_info("text/plain", b"Signal=5").unwrap_err();
        assert_eq!(e.status(), 415);
        assert!(!is_dtmf_content_type("application/sdp"));
    }

    proptest::proptest! {
        /// Arbitrary bodies and content types never panic.
        #[test]
        fn arbitrary_bodies_never_panic(ct in ".{0,40}", body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = parse_info(&ct, &body);
            let _ = parse_info("application/dtmf-relay", &body);
            let _ = parse_info("application/dtmf", &body);
        }
    }
}
