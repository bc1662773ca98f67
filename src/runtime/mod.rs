//! The only code with sockets, `tokio::spawn` and reads of the system clock.

pub mod sip;
