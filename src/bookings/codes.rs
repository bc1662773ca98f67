//! Codici disdetta at rest and new ones: the keyed hash the store keeps
//! instead of a code, new random codes for a reissue, and the caller
//! number as the phone line's throttle knows it (docs/security.md, "Cancel
//! codes cannot be guessed in practice").
//!
//! A code is stored as `HMAC-SHA256(key, code)` ([`CodeKey::hash`]). There
//! are only 10^5 codes of five digits: an unkeyed hash of each is computed
//! in a millisecond, so a hash without a key would give every code back to
//! whoever reads a dump. The key lives outside the database (a key file or
//! an environment variable, docs/deployment.md), so a dump alone does not.
//! The store records a fingerprint of the key ([`CodeKey::fingerprint`]) to
//! tell a wrong key from a missing code.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::{CryptoRng, Rng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::ids::{CancelCode, IdError};

/// The bytes of a key.
pub const KEY_BYTES: usize = 32;

/// The secret behind the stored codes. `Debug` shows nothing of it; the
/// bytes are wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeKey(Zeroizing<[u8; KEY_BYTES]>);

/// Why a key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a code key is {expected} hexadecimal digits (32 bytes), not {found} characters")]
    Length { expected: usize, found: usize },
    #[error("a code key is hexadecimal digits only (0-9, a-f)")]
    NotHex,
}

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeKey([redacted])")
    }
}

impl CodeKey {
    /// The demo key: public (it is in the source), for `serve --demo` and
    /// the tests only. Codes hashed with it are as good as clear; the CLI
    /// uses it only on a database that was made with it (docs/cli.md).
    pub fn demo() -> CodeKey {
        let digest = Sha256::digest(b"mensa demo code key: public, never for real data");
        let mut bytes = [0; KEY_BYTES];
        bytes.copy_from_slice(&digest);
        CodeKey(Zeroizing::new(bytes))
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> CodeKey {
        let mut bytes = Zeroizing::new([0; KEY_BYTES]);
        rand::rngs::OsRng.fill_bytes(&mut *bytes);
        CodeKey(bytes)
    }

    /// From 64 hexadecimal digits (surrounding white space ignored): the
    /// form of a key file and of `MENSA_CODE_KEY`.
    pub fn from_hex(text: &str) -> Result<CodeKey, KeyError> {
        let text = text.trim();
        if text.len() != 2 * KEY_BYTES {
            return Err(KeyError::Length {
                expected: 2 * KEY_BYTES,
                found: text.chars().count(),
            });
        }
        let mut bytes = Zeroizing::new([0; KEY_BYTES]);
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            let high = hex_value(pair[0]).ok_or(KeyError::NotHex)?;
            let low = hex_value(pair[1]).ok_or(KeyError::NotHex)?;
            bytes[i] = high << 4 | low;
        }
        Ok(CodeKey(bytes))
    }

    /// The 64 hexadecimal digits of a key file.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex(&*self.0))
    }

    pub fn is_demo(&self) -> bool {
        *self == CodeKey::demo()
    }

    /// What the store keeps of a code: `HMAC-SHA256(key, code)`.
    pub fn hash(&self, code: &CancelCode) -> CodeHash {
        CodeHash(hex(&self.mac(&[code.as_str().as_bytes()])))
    }

    /// The same for a digit string that is not (yet) a cancel code: a user
    /// code the import compares with the stored codes.
    pub fn hash_digits(&self, digits: &str) -> CodeHash {
        CodeHash(hex(&self.mac(&[digits.as_bytes()])))
    }

    /// What the database records of the key, to refuse another key: a
    /// keyed hash of a fixed text (it gives nothing of the key away).
    pub fn fingerprint(&self) -> String {
        hex(&self.mac(&[b"mensa:code-key-fingerprint"]))
    }

    /// The throttle's name for a caller number ([`Caller`]): keyed, so
    /// that its rows hold no number in clear. `None` for anonymous calls.
    pub fn caller_tag(&self, caller: &Caller) -> String {
        match caller {
            // A fixed word, not a hash: every anonymous call shares it.
            Caller::Anonymous => "anonymous".into(),
            // The prefix keeps a number's tag apart from a code's hash.
            Caller::Number(digits) => {
                format!("n{}", hex(&self.mac(&[b"caller:", digits.as_bytes()])))
            }
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC takes a key of any length: this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&*self.0) else {
            unreachable!("HMAC accepts keys of any length")
        };
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// A stored code: 64 lowercase hexadecimal digits. `Debug` hides it: with
/// the key it gives the code back at once.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CodeHash(String);

impl CodeHash {
    /// A stored value, if it is a hash (a clear code from before the key
    /// was given is not: [`is_clear_code`]).
    pub fn from_stored(text: &str) -> Option<CodeHash> {
        (text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| CodeHash(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHash([keyed])")
    }
}

/// A stored `cancel_code` that is still the code itself: a database
/// migrated to 0005 before a key was given (at most 12 digits; a hash is
/// 64 hexadecimal digits). The store hashes them when it first has a key.
pub fn is_clear_code(stored: &str) -> bool {
    stored.len() <= 12 && stored.bytes().all(|b| b.is_ascii_digit())
}

/// A new random code of `digits` digits (leading zeros included, so every
/// one of the 10^digits codes is equally likely), from a CSPRNG.
pub fn new_code(rng: &mut (impl RngCore + CryptoRng), digits: u8) -> Result<CancelCode, IdError> {
    let text: String = (0..digits)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect();
    CancelCode::parse(&text)
}

/// Who is calling, as the throttle counts callers: the digits of the
/// number the trunk gave, written one way (so `+39 333 1234567`,
/// `0039 3331234567` and `3331234567` are one caller, and punctuation does
/// not make new ones), or anonymous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No number, `anonymous`, or one without digits: every such call is
    /// one caller for the throttle.
    Anonymous,
    /// National significant digits for Italian numbers, else all digits.
    Number(String),
}

impl Caller {
    pub fn from_number(number: &str) -> Caller {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        let digits = digits.strip_prefix("00").unwrap_or(&digits);
        // +39 and 0039: Italian numbers, written nationally. Italian
        // mobile numbers have 10 digits (a few 9) and begin with 3, so a
        // national number beginning with 39 has at most 10 digits; 39
        // followed by nine or more digits is the country code.
        let digits = match digits.strip_prefix("39") {
            Some(national) if national.len() >= 9 => national,
            _ => digits,
        };
        if digits.is_empty() {
            Caller::Anonymous
        } else {
            Caller::Number(digits.to_string())
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> CancelCode {
        CancelCode::parse(s).unwrap()
    }

    #[test]
    fn the_hash_is_the_hmac_of_the_code_under_the_key() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let key = CodeKey::from_hex(&"11".repeat(32)).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&[0x11; 32]).unwrap();
        mac.update(b"58213");
        assert_eq!(
            key.hash(&code("58213")).as_str(),
            hex(&mac.finalize().into_bytes())
        );
        assert_eq!(key.hash(&code("58213")), key.hash_digits("58213"));
        assert_ne!(key.hash(&code("58213")), key.hash(&code("58214")));
        assert_ne!(
            key.hash(&code("58213")),
            CodeKey::demo().hash(&code("58213"))
        );
        assert!(CodeHash::from_stored(key.hash(&code("58213")).as_str()).is_some());
    }

    #[test]
    fn keys_read_and_print_as_hex_and_never_debug() {
        let key = CodeKey::generate();
        assert_eq!(CodeKey::from_hex(&key.to_hex()).unwrap(), key);
        assert_eq!(
            CodeKey::from_hex(&format!("  {}\n", "aB".repeat(32))).unwrap(),
            CodeKey::from_hex(&"ab".repeat(32)).unwrap()
        );
        assert!(matches!(
            CodeKey::from_hex("abc"),
            Err(KeyError::Length { .. })
        ));
        assert_eq!(CodeKey::from_hex(&"zz".repeat(32)), Err(KeyError::NotHex));
        assert_eq!(format!("{key:?}"), "CodeKey([redacted])");
        let hash = key.hash(&code("58213"));
        assert_eq!(format!("{hash:?}"), "CodeHash([keyed])");
        assert!(!key.is_demo() && CodeKey::demo().is_demo());
        assert_ne!(key.fingerprint(), CodeKey::demo().fingerprint());
    }

    #[test]
    fn clear_codes_and_hashes_are_told_apart() {
        assert!(is_clear_code("58213") && is_clear_code("0123"));
        let hash = CodeKey::demo().hash(&code("58213"));
        assert!(!is_clear_code(hash.as_str()));
        assert!(CodeHash::from_stored("58213").is_none());
        assert!(CodeHash::from_stored(&"A".repeat(64)).is_none());
    }

    #[test]
    fn new_codes_have_the_length_asked_and_use_every_digit() {
        let mut rng = rand::rngs::OsRng;
        let mut seen = [0u32; 10];
        for _ in 0..200 {
            let c = new_code(&mut rng, 8).unwrap();
            assert_eq!(c.as_str().len(), 8);
            for b in c.as_str().bytes() {
                seen[usize::from(b - b'0')] += 1;
            }
        }
        // 1,600 digits: each digit about 160 times; none missing.
        assert!(seen.iter().all(|n| *n > 80), "{seen:?}");
        assert!(new_code(&mut rng, 3).is_err());
    }

    #[test]
    fn one_caller_however_the_trunk_writes_the_number() {
        let mobile = Caller::Number("3331234567".into());
        for written in [
            "+393331234567",
            "0039 333 1234567",
            "393331234567",
            "333-123-4567",
            "3331234567",
        ] {
            assert_eq!(Caller::from_number(written), mobile, "{written}");
        }
        assert_eq!(
            Caller::from_number("+39 06 1234567"),
            Caller::Number("061234567".into())
        );
        // A national number that begins with 39 stays whole.
        assert_eq!(
            Caller::from_number("3921234567"),
            Caller::Number("3921234567".into())
        );
        assert_eq!(
            Caller::from_number("+44 20 7946 0958"),
            Caller::Number("442079460958".into())
        );
        for anonymous in ["", "anonymous", "Anonymous", "+", "unknown"] {
            assert_eq!(Caller::from_number(anonymous), Caller::Anonymous);
        }
        let key = CodeKey::demo();
        assert_eq!(key.caller_tag(&Caller::Anonymous), "anonymous");
        let tag = key.caller_tag(&mobile);
        assert!(!tag.contains("3331234567"));
        assert_ne!(&tag[1..], key.hash_digits("3331234567").as_str());
    }
}
