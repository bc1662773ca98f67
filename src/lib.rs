//! # mensa
//!
//! A telephony IVR server and bookings core for school canteens.
//!
//! ## Layers
//!
//! ```text
//! main.rs (CLI) ──► runtime ──► api, sip, media, ivr, store ──► bookings
//! ```
//!
//! [`net`] (IP networks) is a leaf that `sip` and `media` share.
//!
//! Arrows point one way. [`bookings`] holds the pure domain rules of
//! SPEC §3 (R1–R13) and imports nothing else of the crate; `sip`, `media`
//! and `ivr` are sans-IO state machines that import neither tokio nor sqlx;
//! [`store`] is the only code with SQL; `runtime` is the only code with
//! sockets, `tokio::spawn` and reads of the system clock.
//!
//! ## Clocks
//!
//! Two clocks, both passed in: a monotonic `Instant` for protocol timers,
//! and a wall clock ([`bookings::Clock`]) for the calendar rules, which
//! interpret it in the ente's time zone.
//!
//! ## Panic policy
//!
//! Peer input (SIP, SDP, RTP, HTTP bodies, import files) never panics: it
//! is parsed into a `Result` and answered or dropped with a log line.
//! `expect` is used only for local invariants, with a comment saying why
//! they hold.

pub mod api;
pub mod bookings;
pub mod cli;
pub mod import;
pub mod ivr;
pub mod load;
pub mod media;
pub mod net;
pub mod password;
pub mod runtime;
pub mod sip;
pub mod store;
