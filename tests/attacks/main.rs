//! Attacks on a real `mensa serve` over real sockets (issue 13,
//! docs/security.md): each module attacks one surface the way an outsider
//! would and checks that the node, its calls and its data are unharmed.
//! The heavier attacks are `#[ignore]`d and run by `.ci/run`.
#![allow(clippy::unwrap_used)]

#[path = "../caller/mod.rs"]
mod caller;
#[path = "../demo/mod.rs"]
mod demo;
#[path = "../uac/mod.rs"]
mod uac;

mod codes;
mod dates;
mod login;
mod rtp;
mod sip;
