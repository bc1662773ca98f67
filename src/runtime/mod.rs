//! The only code with sockets, `tokio::spawn` and reads of the system
//! clock: it drives the sans-IO layers and the store.

pub mod clock;
pub mod http;
pub mod ivr_actions;
pub mod scheduler;
pub mod sip;

pub use clock::{ShiftedClock, SystemClock};
