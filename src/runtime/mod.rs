//! The only code with sockets, `tokio::spawn` and reads of the system
//! clock: it drives the sans-IO layers and the store.

pub mod clock;
pub mod http;
pub mod scheduler;

pub use clock::{ShiftedClock, SystemClock};
