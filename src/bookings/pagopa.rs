//! Numero avviso: the 18-digit pagoPA payment notice number (SACI,
//! "Numero avviso e codice IUV", aux digit 3):
//!
//! ```text
//! 3 | SS | BBBBBBBBBBBBB | CC
//! aux  segregation  IUV base (13)  check = (the 16 digits before) mod 93
//! ```
//!
//! The IUV is the last 17 digits (segregation, base, check). The QR code
//! printed on the notice carries `PAGOPA|002|<notice>|<creditor>|<cents>`.

use std::fmt;

use serde::Serialize;

use super::Cents;
use super::settings::PagoPaSettings;

/// A valid 18-digit notice number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct NoticeNumber(String);

/// Why a notice number could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    #[error("the ente has no pagoPA settings")]
    NotConfigured,
    #[error("only aux digit 3 notices are issued (got {0})")]
    AuxDigit(u8),
    #[error("segregation code {0:?} must be 2 digits")]
    Segregation(String),
    #[error("IUV base {0} does not fit in 13 digits")]
    BaseTooLarge(u64),
    #[error("a notice number has 18 digits")]
    Shape,
    #[error("wrong check digits")]
    CheckDigits,
}

/// The two check digits of the 16 digits before them (aux digit,
/// segregation code, IUV base): their value mod 93. pagoPA's own toolkit
/// computes it the same way (`IuvAlghoritmAuxDigit3`).
pub fn check_digits(first16: u64) -> u8 {
    // The remainder of a division by 93 is below 93: it fits in a u8.
    u8::try_from(first16 % 93).unwrap_or(0)
}

impl NoticeNumber {
    /// Builds the notice number of IUV base `base` for the ente's settings.
    pub fn issue(settings: &PagoPaSettings, base: u64) -> Result<NoticeNumber, NoticeError> {
        if settings.aux_digit != 3 {
            return Err(NoticeError::AuxDigit(settings.aux_digit));
        }
        let seg = &settings.segregation_code;
        if seg.len() != 2 || !seg.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NoticeError::Segregation(seg.clone()));
        }
        if base >= 10_000_000_000_000 {
            return Err(NoticeError::BaseTooLarge(base));
        }
        let first16 = format!("{}{seg}{base:013}", settings.aux_digit);
        let value: u64 = first16.parse().map_err(|_| NoticeError::Shape)?;
        Ok(NoticeNumber(format!("{first16}{:02}", check_digits(value))))
    }

    /// Reads a notice number (spaces allowed, as printed), checking its
    /// shape and check digits.
    pub fn parse(text: &str) -> Result<NoticeNumber, NoticeError> {
        let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() != 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NoticeError::Shape);
        }
        let first16: u64 = digits[..16].parse().map_err(|_| NoticeError::Shape)?;
        let given: u8 = digits[16..].parse().map_err(|_| NoticeError::Shape)?;
        if check_digits(first16) != given {
            return Err(NoticeError::CheckDigits);
        }
        Ok(NoticeNumber(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Codice IUV: the 17 digits after the aux digit.
    pub fn iuv(&self) -> &str {
        &self.0[1..]
    }

    /// The payload of the notice's QR code (pagoPA "PAGOPA|002" format).
    pub fn qr_payload(&self, creditor_fiscal_code: &str, amount: Cents) -> String {
        format!("PAGOPA|002|{}|{creditor_fiscal_code}|{}", self.0, amount.0)
    }
}

impl fmt::Display for NoticeNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(seg: &str) -> PagoPaSettings {
        PagoPaSettings {
            creditor_fiscal_code: "00000000000".into(),
            aux_digit: 3,
            segregation_code: seg.into(),
        }
    }

    #[test]
    fn check_digits_are_the_first_sixteen_digits_mod_93() {
        // Worked by hand: 3010000000000001 = 93 * 32365591397849 + 44.
        let n = NoticeNumber::issue(&settings("01"), 1).unwrap();
        assert_eq!(n.as_str(), "301000000000000144");
        assert_eq!(n.iuv(), "01000000000000144");
        // 3471234567890123 = 93 * 37325102880538 + 89.
        let n = NoticeNumber::issue(&settings("47"), 1_234_567_890_123).unwrap();
        assert_eq!(n.as_str(), "347123456789012389");
        // A remainder below 10 is zero-padded: 3000000000000000 mod 93 = 3.
        let n = NoticeNumber::issue(&settings("00"), 0).unwrap();
        assert_eq!(n.as_str(), "300000000000000003");
    }

    #[test]
    fn notices_printed_by_municipalities_check() {
        // Aux digit 3 notice numbers from QR codes of real payment notices
        // (found in public pagoPA integrations): each one's last two
        // digits are its first sixteen mod 93.
        for printed in [
            "301185850000001130",
            "302722280174467480",
            "301730000000007517",
            "322201151398574181",
        ] {
            let n = NoticeNumber::parse(printed).unwrap();
            let first16: u64 = printed[..16].parse().unwrap();
            assert_eq!(format!("{:02}", check_digits(first16)), &printed[16..]);
            assert_eq!(n.as_str(), printed);
        }
        // The segregation code and base of one of them give it back.
        let s = PagoPaSettings {
            creditor_fiscal_code: "80002270074".into(),
            aux_digit: 3,
            segregation_code: "01".into(),
        };
        assert_eq!(
            NoticeNumber::issue(&s, 1_858_500_000_011).unwrap().as_str(),
            "301185850000001130"
        );
    }

    #[test]
    fn parse_checks_shape_and_check_digits() {
        assert!(NoticeNumber::parse("3010 0000 0000 0001 44").is_ok());
        assert_eq!(
            NoticeNumber::parse("301000000000000145"),
            Err(NoticeError::CheckDigits)
        );
        assert_eq!(
            NoticeNumber::parse("30100000000000014"),
            Err(NoticeError::Shape)
        );
        assert_eq!(
            NoticeNumber::parse("30100000000000014x"),
            Err(NoticeError::Shape)
        );
    }

    #[test]
    fn issue_refuses_what_pagopa_would() {
        assert_eq!(
            NoticeNumber::issue(&settings("1"), 1),
            Err(NoticeError::Segregation("1".into()))
        );
        assert!(NoticeNumber::issue(&settings("01"), 10_000_000_000_000).is_err());
        let mut s = settings("01");
        s.aux_digit = 0;
        assert_eq!(NoticeNumber::issue(&s, 1), Err(NoticeError::AuxDigit(0)));
    }
}
