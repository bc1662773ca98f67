//! Identifiers, codes and money: newtypes built only by parsing, so a
//! value that exists is a valid one.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::fiscal_code;
use super::pii::{CodeDigits, Initials, Pii};

/// Why a code or identifier was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} {value:?} must be {rule}")]
    Shape {
        what: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error("fiscal code {value:?}: {reason}")]
    FiscalCode { value: String, reason: String },
}

macro_rules! digit_code {
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses a code of ASCII digits only, of the allowed length.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                let value = value.trim();
                if value.is_empty() {
                    return Err(IdError::Empty { what: $what });
                }
                let digits_only = value.bytes().all(|b| b.is_ascii_digit());
                if !digits_only || value.len() < $min || value.len() > $max {
                    return Err(IdError::Shape {
                        what: $what,
                        value: value.to_string(),
                        rule: concat!($min, " to ", $max, " digits"),
                    });
                }
                Ok(Self(value.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

digit_code!(
    /// Codice utente: the child's login code for the portal and the app.
    UserCode,
    "user code",
    4,
    12
);

/// Codice disdetta: the child's phone code, typed on the keypad.
/// Different from the user code (the import refuses equal ones). Personal
/// data: `Debug` shows `****3` ([`Pii`]); [`CancelCode::as_str`] is the
/// code itself, for the keyed hash and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CancelCode(Pii<CodeDigits>);

impl CancelCode {
    /// Parses a code of ASCII digits only, 4 to 12 of them. The error
    /// shows the code redacted: it may be a real one mistyped.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(IdError::Empty {
                what: "cancel code",
            });
        }
        let digits_only = value.bytes().all(|b| b.is_ascii_digit());
        if !digits_only || !(4..=12).contains(&value.len()) {
            return Err(IdError::Shape {
                what: "cancel code",
                value: Pii::<CodeDigits>::new(value).to_string(),
                rule: "4 to 12 digits",
            });
        }
        Ok(Self(Pii::new(value)))
    }

    /// The code in clear (see [`Pii::expose`]).
    pub fn as_str(&self) -> &str {
        self.0.expose()
    }

    /// The code as logs and call records show it: `****3`.
    pub fn redacted(&self) -> &Pii<CodeDigits> {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CancelCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Pii::<CodeDigits>::deserialize(d)?;
        Self::parse(s.expose()).map_err(serde::de::Error::custom)
    }
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Letters, digits, `-`, `_` and `.`, at most 64 characters.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                let value = value.trim();
                if value.is_empty() {
                    return Err(IdError::Empty { what: $what });
                }
                let ok = value.len() <= 64
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !ok {
                    return Err(IdError::Shape {
                        what: $what,
                        value: value.to_string(),
                        rule: "letters, digits, '-', '_' or '.' (at most 64)",
                    });
                }
                Ok(Self(value.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

slug_id!(
    /// A school of the ente (`primaria-dante`).
    SchoolId,
    "school id"
);
slug_id!(
    /// A class within a school (`4B`).
    ClassId,
    "class id"
);

/// Codice fiscale: the Italian tax code of a person, upper case, with a
/// valid check character (omocodia accepted). Personal data: `Debug`
/// shows `RSS*************` ([`Pii`]); [`FiscalCode::as_str`] is the code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiscalCode(Pii<Initials>);

impl FiscalCode {
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let upper = value.trim().to_ascii_uppercase();
        fiscal_code::check(&upper).map_err(|reason| IdError::FiscalCode {
            value: Pii::<Initials>::new(upper.as_str()).to_string(),
            reason: reason.to_string(),
        })?;
        Ok(Self(Pii::new(upper)))
    }

    /// The code in clear (see [`Pii::expose`]): to store it, or to show it
    /// to the adult it belongs to.
    pub fn as_str(&self) -> &str {
        self.0.expose()
    }

    /// The code as logs show it.
    pub fn redacted(&self) -> &Pii<Initials> {
        &self.0
    }
}

/// The code in clear: only answers to its owner (`/me`) serialize it.
impl Serialize for FiscalCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FiscalCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Pii::<Initials>::deserialize(d)?;
        Self::parse(s.expose()).map_err(serde::de::Error::custom)
    }
}

/// An amount of money in euro cents. Negative amounts are charges in the
/// ledger; a balance may go below zero (R11).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cents(pub i64);

impl Cents {
    pub const ZERO: Cents = Cents(0);

    pub fn euros_and_cents(self) -> (i64, i64) {
        (self.0 / 100, (self.0 % 100).abs())
    }
}

impl std::ops::Add for Cents {
    type Output = Cents;
    fn add(self, rhs: Cents) -> Cents {
        Cents(self.0.saturating_add(rhs.0))
    }
}

impl std::ops::Neg for Cents {
    type Output = Cents;
    fn neg(self) -> Cents {
        Cents(self.0.saturating_neg())
    }
}

impl std::iter::Sum for Cents {
    fn sum<I: Iterator<Item = Cents>>(iter: I) -> Cents {
        iter.fold(Cents::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Cents {
    /// `12.50 €`, `-4.50 €`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02} €", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_digits_of_bounded_length() {
        assert!(CancelCode::parse("58213").is_ok());
        assert!(CancelCode::parse(" 58213 ").is_ok());
        assert!(CancelCode::parse("58a13").is_err());
        assert!(CancelCode::parse("123").is_err());
        assert!(CancelCode::parse("").is_err());
        assert!(UserCode::parse("1234567890123").is_err());
    }

    #[test]
    fn cancel_code_redaction_hides_all_but_the_last_digit() {
        let c = CancelCode::parse("58213").unwrap();
        assert_eq!(c.redacted().to_string(), "****3");
        assert_eq!(format!("{c:?}"), "CancelCode(****3)");
        let mistyped = CancelCode::parse("5821a").unwrap_err().to_string();
        assert!(!mistyped.contains("5821"), "{mistyped}");
        let cf = FiscalCode::parse("RSSMRA80A01H501U").unwrap();
        assert_eq!(format!("{cf:?}"), "FiscalCode(RSS*************)");
    }

    #[test]
    fn slug_ids_refuse_spaces_and_punctuation() {
        assert!(SchoolId::parse("primaria-dante").is_ok());
        assert!(SchoolId::parse("primaria dante").is_err());
        assert!(ClassId::parse("4B").is_ok());
    }

    #[test]
    fn cents_print_as_euros() {
        assert_eq!(Cents(450).to_string(), "4.50 €");
        assert_eq!(Cents(-5).to_string(), "-0.05 €");
        assert_eq!(Cents(-450) + Cents(1000), Cents(550));
    }
}
