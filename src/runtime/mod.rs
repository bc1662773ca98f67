//! The only code with sockets, `tokio::spawn` and reads of the system
//! clock: it drives the sans-IO layers and the store.

pub mod calls;
pub mod clock;
pub mod config;
pub mod http;
pub mod ivr_actions;
pub mod ivr_call;
pub mod lag;
pub mod media;
pub mod open_files;
pub mod ports;
pub mod scheduler;
pub mod sip;
pub mod sip_tcp;
pub mod udp_batch;

pub use clock::{ShiftedClock, SystemClock};
