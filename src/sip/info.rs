//! DTMF carried in SIP INFO bodies (no RFC; the de-facto formats):
//! `application/dtmf-relay` (`Signal=5` / `Duration=160`, Cisco) and
//! `application/dtmf` (the key alone, or its event code).

/// A key pressed, as the INFO said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoDtmf {
    /// `0`-`9`, `*`, `#`, `A`-`D`.
    pub key: char,
    pub duration_ms: Option<u32>,
}

/// Why an INFO body is refused (the UAS answers 400 or 415).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InfoError {
    #[error("not a DTMF content type")]
    UnsupportedType,
    #[error("no valid Signal")]
    BadSignal,
}

/// Reads a DTMF INFO. `Ok(None)`: nothing to report (empty body, or a
/// flash, event 16, which the IVR has no use for).
pub fn parse_dtmf(content_type: Option<&str>, body: &[u8]) -> Result<Option<InfoDtmf>, InfoError> {
    let kind = content_type.unwrap_or_default();
    let relay = kind.eq_ignore_ascii_case("application/dtmf-relay");
    if !relay && !kind.eq_ignore_ascii_case("application/dtmf") {
        return Err(InfoError::UnsupportedType);
    }
    let text = std::str::from_utf8(body).map_err(|_| InfoError::BadSignal)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    if !relay {
        return key_of(text.trim()).map(|k| {
            k.map(|key| InfoDtmf {
                key,
                duration_ms: None,
            })
        });
    }
    let (mut signal, mut duration) = (None, None);
    for line in text.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "signal" => signal = Some(value),
            "duration" => duration = value.parse::<u32>().ok(),
            _ => {}
        }
    }
    let key = key_of(signal.ok_or(InfoError::BadSignal)?)?;
    Ok(key.map(|key| InfoDtmf {
        key,
        duration_ms: duration,
    }))
}

/// A key by name or by RFC 4733 event code (10 `*`, 11 `#`, 12-15 `A`-`D`,
/// 16 flash).
fn key_of(s: &str) -> Result<Option<char>, InfoError> {
    let mut chars = s.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D') {
            return Ok(Some(c));
        }
        return Err(InfoError::BadSignal);
    }
    match s.parse::<u8>() {
        Ok(10) => Ok(Some('*')),
        Ok(11) => Ok(Some('#')),
        Ok(n @ 12..=15) => Ok(Some(char::from(b'A' + (n - 12)))),
        Ok(16) => Ok(None),
        Ok(_) | Err(_) => Err(InfoError::BadSignal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(body: &str) -> Result<Option<InfoDtmf>, InfoError> {
        parse_dtmf(Some("application/dtmf-relay"), body.as_bytes())
    }

    #[test]
    fn conformance_part_c() {
        // C1
        assert_eq!(
            relay("Signal=5\r\nDuration=160\r\n"),
            Ok(Some(InfoDtmf {
                key: '5',
                duration_ms: Some(160)
            }))
        );
        // C2: lower case names and keys, LF line ends (content type case is the caller's).
        assert_eq!(
            relay("signal= d\nduration =100\n").unwrap().unwrap().key,
            'D'
        );
        assert_eq!(
            parse_dtmf(Some("Application/DTMF-Relay"), b"Signal=1")
                .unwrap()
                .unwrap()
                .key,
            '1'
        );
        // C3
        let keys: Vec<Option<char>> = (10..=16)
            .map(|n| relay(&format!("Signal={n}")).unwrap().map(|d| d.key))
            .collect();
        assert_eq!(
            keys,
            vec![
                Some('*'),
                Some('#'),
                Some('A'),
                Some('B'),
                Some('C'),
                Some('D'),
                None
            ]
        );
        // C4
        assert_eq!(
            parse_dtmf(Some("application/dtmf"), b"#")
                .unwrap()
                .unwrap()
                .key,
            '#'
        );
        assert_eq!(
            parse_dtmf(Some("application/dtmf"), b"11\r\n")
                .unwrap()
                .unwrap()
                .key,
            '#'
        );
        // C5
        assert_eq!(relay("Signal=x"), Err(InfoError::BadSignal));
        assert_eq!(relay("Duration=100"), Err(InfoError::BadSignal));
        assert_eq!(relay(""), Ok(None));
        assert_eq!(
            parse_dtmf(Some("text/plain"), b"5"),
            Err(InfoError::UnsupportedType)
        );
    }

    proptest::proptest! {
        /// Arbitrary bodies and content types never panic.
        #[test]
        fn arbitrary_bodies_never_panic(ct in ".{0,40}", body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = parse_dtmf(Some(&ct), &body);
            let _ = parse_dtmf(Some("application/dtmf-relay"), &body);
            let _ = parse_dtmf(Some("application/dtmf"), &body);
            let _ = parse_dtmf(None, &body);
        }
    }
}
