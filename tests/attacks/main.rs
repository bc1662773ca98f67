//! Attacks on a real `mensa serve` over real sockets (issue 13,
//! docs/security.md): each module attacks one surface the way an outsider
//! would and checks that the node, its calls and its data are unharmed.
//! The heavier attacks are `#[ignore]`d and run by `.ci/run`.
#![allow(clippy::unwrap_used)]

#[path = "../demo/mod.rs"]
mod demo;

mod codes;
mod dates;
