//! Sans-IO media: G.711, DTMF from every source, RTP sessions, prompts.
//!
//! Nothing here opens a socket or reads a clock: the runtime feeds packets
//! and `Instant`s in and drains transmits and events out.

pub mod dtmf;
pub mod g711;
pub mod pacing;
pub mod playout;
pub mod prompts;
pub mod rtcp;
pub mod session;
