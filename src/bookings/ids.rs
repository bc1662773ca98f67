//! Identifiers, codes and money: newtypes built only by parsing, so a
//! value that exists is a valid one.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::fiscal_code;

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

digit_code!(
    /// Codice disdetta: the child's phone code, typed on the keypad.
    /// Different from the user code (the import refuses equal ones).
    CancelCode,
    "cancel code",
    4,
    12
);

impl CancelCode {
    /// The code as it may appear in logs: only its length and last digit.
    pub fn redacted(&self) -> String {
        let last = self.0.chars().last().unwrap_or('?');
        format!("{}{}", "*".repeat(self.0.len().saturating_sub(1)), last)
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
/// valid check character (omocodia accepted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FiscalCode(String);

impl FiscalCode {
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let upper = value.trim().to_ascii_uppercase();
        fiscal_code::check(&upper).map_err(|reason| IdError::FiscalCode {
            value: value.to_string(),
            reason: reason.to_string(),
        })?;
        Ok(Self(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs: the first three letters (of the surname) and the rest hidden.
    pub fn redacted(&self) -> String {
        format!("{}*************", &self.0[..3])
    }
}

impl fmt::Display for FiscalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FiscalCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
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
        assert_eq!(c.redacted(), "****3");
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
