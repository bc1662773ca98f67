//! Passwords: the one place that hashes and verifies them, for the import
//! (hashing the file's passwords), the API's login and the operators'
//! accounts to come.
//!
//! argon2id with the `argon2` crate's defaults (OWASP's first choice:
//! m = 19 MiB, t = 2, p = 1), a random salt, stored as a PHC string. One
//! verification costs about 19 MiB and tens of milliseconds of a core,
//! which is the point against an offline guesser and a weakness against an
//! online flood: so verifications go through [`Hashing`], a fixed set of
//! worker threads with a short queue, never through an unbounded pool.
//!
//! ```text
//!  admit(Untrusted) ── queue full? ──► Busy (answered at once, no hashing)
//!         │ slot
//!  verify ──► [trusted jobs first | untrusted jobs] ──► N worker threads ──► bool
//! ```
//!
//! A trusted job is a login from a device the adult already logged in from
//! (api::session): it does not need a queue place and is taken before any
//! untrusted job, so a flood of guesses never keeps a parent out.

mod pool;

pub use pool::{Admission, Busy, Hashing, HashingCounters, HashingLimits, Lane};

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// A password could not be hashed (argon2 refused its input, e.g. one
/// longer than argon2's limit).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash password: {0}")]
pub struct HashError(argon2::password_hash::Error);

/// argon2id with a random salt, as a PHC string (`$argon2id$v=19$...`).
pub fn hash(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(HashError)
}

/// Whether `password` matches the PHC string `hash`. A hash that does not
/// parse matches nothing.
pub fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// [`verify`] against the stored hash, or, when there is none (an unknown
/// login, an adult without a portal password), against a dummy hash with
/// the same parameters: the same work, the same time, and never a match,
/// so the answer does not say whether the login exists.
pub fn verify_or_dummy(hash: Option<&str>, password: &str) -> bool {
    match hash {
        Some(hash) => verify(hash, password),
        None => {
            let _ = verify(dummy_hash(), password);
            false
        }
    }
}

fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    // Hashed once, with the parameters every real hash has (an empty
    // string if argon2 refused, which matches nothing).
    HASH.get_or_init(|| hash("not a password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("demo-password").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(&h, "demo-password"));
        assert!(!verify(&h, "demo-passwore"));
        assert!(!verify("not a hash", "demo-password"));
        assert_ne!(h, hash("demo-password").unwrap(), "salted");
        assert!(verify_or_dummy(Some(&h), "demo-password"));
        assert!(!verify_or_dummy(None, "not a password"));
    }
}
