//! Sans-IO voice menus: dialplans, call sessions, speaking dates.
//!
//! - [`dialplan`]: the menus of a number as data (`dialplans/*.toml`),
//!   parsed and checked once, shared by every call.
//! - [`session`]: one state machine per call running a dialplan.
//! - [`actions`]: what a session asks of the store, and the answers.
//! - [`record`]: the call record every call leaves (R12).
//! - [`speech`]: dates, times, numbers and amounts as prompt ids.

pub mod actions;
pub mod ddmm;
pub mod dialplan;
pub mod record;
pub mod session;
pub mod speech;

pub use actions::{Action, ActionResult, ChildRef, Key, PhoneOperation};
pub use dialplan::{Dialplan, Problem, Problems, PromptCatalogue};
pub use record::CallRecord;
pub use session::{Event, Input, PlaybackId, Session};
pub use speech::{Lang, PromptId, refusal_prompt, say_date, say_euros, say_number, say_time};
