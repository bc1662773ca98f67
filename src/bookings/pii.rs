//! Personal data (GDPR art. 4): the values that identify a family or open
//! its account. One wrapper, [`Pii`], holds every one of them, so that a
//! log line, a `{:?}` of a struct, an error message or a panic message
//! shows only what an operator may read there, and the bytes are wiped
//! when the value is dropped, so a core dump or a swapped-out page taken
//! later does not hold them.
//!
//! | kind | what | logs show |
//! |---|---|---|
//! | [`CodeDigits`] | codice disdetta (the phone code) | `****3`: length, last digit |
//! | [`Initials`] | codice fiscale | `RSS*************`: the surname's letters |
//! | [`PhoneDigits`] | a caller's or an adult's phone number | `…567`: last three digits |
//! | [`Secret`] | a password | `[redacted]` |
//!
//! `Debug` and `Display` redact; the value itself is read only through
//! [`Pii::expose`], at the few places that must have it (a keyed hash, a
//! SQL parameter, an answer to its owner), where a reader can see it.
//! `Deserialize` takes the plain value (a request body, a file); there is
//! no `Serialize`: a type that sends personal data out says so itself.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use serde::Deserialize;
use zeroize::Zeroizing;

/// How a kind of personal data is shown where it must not be read.
pub trait Redaction {
    fn write_redacted(value: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// Personal data of kind `K`: see the module doc.
pub struct Pii<K: Redaction> {
    value: Zeroizing<String>,
    kind: PhantomData<fn() -> K>,
}

impl<K: Redaction> Pii<K> {
    pub fn new(value: impl Into<String>) -> Pii<K> {
        Pii {
            value: Zeroizing::new(value.into()),
            kind: PhantomData,
        }
    }

    /// The value in clear: for a keyed hash, a SQL parameter or an answer
    /// to the person it belongs to; never for a log.
    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

impl<K: Redaction> fmt::Debug for Pii<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        K::write_redacted(&self.value, f)
    }
}

impl<K: Redaction> fmt::Display for Pii<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        K::write_redacted(&self.value, f)
    }
}

// By hand, not derived: derives would ask `K` for the same traits.
impl<K: Redaction> Clone for Pii<K> {
    fn clone(&self) -> Self {
        Pii::new(self.value.as_str())
    }
}

impl<K: Redaction> PartialEq for Pii<K> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<K: Redaction> Eq for Pii<K> {}

impl<K: Redaction> Hash for Pii<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl<K: Redaction> PartialOrd for Pii<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Redaction> Ord for Pii<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl<K: Redaction> From<&str> for Pii<K> {
    fn from(value: &str) -> Self {
        Pii::new(value)
    }
}

impl<K: Redaction> From<String> for Pii<K> {
    fn from(value: String) -> Self {
        Pii::new(value)
    }
}

impl<'de, K: Redaction> Deserialize<'de> for Pii<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Pii::new)
    }
}

/// A code typed on the keypad: its length and last digit (enough to tell
/// two attempts apart in a call record, far from enough to use one).
pub enum CodeDigits {}

impl Redaction for CodeDigits {
    fn write_redacted(value: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = value.chars().count();
        let last = value.chars().last().unwrap_or('?');
        for _ in 1..count {
            f.write_str("*")?;
        }
        write!(f, "{last}")
    }
}

/// A codice fiscale: its first three letters (from the surname), the rest
/// hidden: enough for an operator to match a log line to a family they
/// already know, not to learn a birth date or a birthplace.
pub enum Initials {}

impl Redaction for Initials {
    fn write_redacted(value: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = value.chars().take(3).collect();
        let hidden = value.chars().count().saturating_sub(3);
        write!(f, "{shown}{}", "*".repeat(hidden))
    }
}

/// A phone number: its last three digits.
pub enum PhoneDigits {}

impl Redaction for PhoneDigits {
    fn write_redacted(value: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits: Vec<char> = value.chars().filter(char::is_ascii_digit).collect();
        let keep = digits.len().saturating_sub(3);
        let tail: String = digits.get(keep..).unwrap_or_default().iter().collect();
        write!(f, "…{tail}")
    }
}

/// A password: nothing of it.
pub enum Secret {}

impl Redaction for Secret {
    fn write_redacted(_: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// For `#[serde(serialize_with = "crate::bookings::pii::exposed")]` on a
/// field that an answer must carry in clear (an operator's list of calls):
/// the one way to serialize personal data, spelled out where it is used.
pub fn exposed<K: Redaction, S: serde::Serializer>(
    value: &Pii<K>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(value.expose())
}

/// A phone number as the trunk gave it (`P-Asserted-Identity` or `From`),
/// or an adult's contact number.
pub type PhoneNumber = Pii<PhoneDigits>;

/// A password as typed (login, import file), before it is hashed.
pub type Password = Pii<Secret>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_shows_only_its_hint() {
        assert_eq!(format!("{}", Pii::<CodeDigits>::new("58213")), "****3");
        assert_eq!(format!("{:?}", Pii::<CodeDigits>::new("7")), "7");
        assert_eq!(
            format!("{:?}", Pii::<Initials>::new("RSSMRA80A01H501U")),
            "RSS*************"
        );
        assert_eq!(PhoneNumber::new("+39 333 1234567").to_string(), "…567");
        assert_eq!(PhoneNumber::new("12").to_string(), "…12");
        assert_eq!(PhoneNumber::new("anonymous").to_string(), "…");
        assert_eq!(format!("{:?}", Password::new("hunter2")), "[redacted]");
    }

    #[test]
    fn a_struct_holding_personal_data_debugs_without_it() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)] // read only through Debug
        struct Login {
            phone: PhoneNumber,
            password: Password,
        }
        let login: Login =
            serde_json::from_str(r#"{"phone":"+393331234567","password":"hunter2"}"#).unwrap();
        let shown = format!("{login:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("3331234"),
            "{shown}"
        );
        assert_eq!(login.password.expose(), "hunter2");
    }
}
