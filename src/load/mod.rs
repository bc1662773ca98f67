//! `mensa load`: a SIP/RTP load generator that places calls the way real
//! callers do (issue #7), to measure a node's capacity — ours or anyone's.
//!
//! ```text
//! call.rs    sans-IO caller: UAC transactions (RFC 3261 §17.1), RTP, keys, script
//! script.rs  what a caller does once answered (speech, quiet, wait, keys, bye)
//! rtp.rs     packets sent and received, loss, spacing, lateness, speech
//! driver.rs  one thread, one SIP socket, one RTP socket, sorted deadlines
//! io.rs      recvmmsg/sendmmsg batches
//! stats.rs   histograms and the report (text and JSON)
//! check.rs   --store-check: every call that pressed 1 left one cancellation
//! ceiling.rs the loopback ceiling, packets per second
//! ```
//!
//! Like `runtime`, this is a shell with sockets and clock reads; the call
//! machine itself only takes time as an argument (docs/load.md).

pub mod call;
pub mod ceiling;
pub mod check;
pub mod driver;
pub mod io;
pub mod rtp;
pub mod script;
pub mod stats;

pub use call::{CallConfig, KeyMode, LoadCall};
pub use driver::{LoadConfig, run};
pub use script::Script;
pub use stats::Report;
