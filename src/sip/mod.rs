//! Sans-IO SIP (RFC 3261) for the trunk-facing UAS: messages, transactions,
//! dialogs, SDP. Nothing here touches a socket or a clock; the runtime
//! feeds bytes and `Instant`s in and sends what comes out.
//!
//! - [`uri`], [`headers`], [`message`], [`print`](mod@print): our own parser and
//!   printer (why: `docs/decisions.md`, "SIP message layer");
//! - [`transaction`]: RFC 3261 §17.2 server transactions;
//! - [`sdp`]: RFC 3264 offer/answer; [`info`]: DTMF in SIP INFO;
//! - [`endpoint`]: the UAS the runtime drives, with [`dialog`]s.
//!
//! The behaviour a trunk sees, and the choices made within the RFCs, are
//! in `docs/sip.md`.

pub mod config;
pub mod dialog;
mod dialog_in;
pub mod endpoint;
mod endpoint_invite;
pub mod framing;
pub mod headers;
pub mod info;
pub mod limits;
pub mod message;
pub mod print;
pub mod sdp;
mod tables;
pub mod transaction;
pub mod transport;
pub mod uri;

/// The RFC 4475 torture corpus, in `tests/data/sip-torture/` (a copy of
/// the team's reference, so that the tests need nothing outside the
/// repository).
#[cfg(test)]
pub(crate) mod corpus {
    use std::path::PathBuf;

    pub fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sip-torture")
    }

    /// The bytes of one corpus file, e.g. `"wsinv"` or `"variants/baddn-terminated"`.
    pub fn read(name: &str) -> Vec<u8> {
        let path = dir().join(format!("{name}.dat"));
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "RFC 4475 corpus file {} missing ({e}): these tests need tests/data/sip-torture/",
                path.display()
            )
        })
    }

    /// Every corpus file name (51: the 49 of RFC 4475 + archive-only + variants).
    pub fn all() -> Vec<String> {
        let mut names = Vec::new();
        for sub in ["", "archive-only/", "variants/"] {
            let d = dir().join(sub);
            let entries = std::fs::read_dir(&d)
                .unwrap_or_else(|e| panic!("RFC 4475 corpus folder {} missing: {e}", d.display()));
            for e in entries {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                if let Some(stem) = name.strip_suffix(".dat") {
                    names.push(format!("{sub}{stem}"));
                }
            }
        }
        names.sort();
        names
    }
}
