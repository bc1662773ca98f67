//! Sans-IO voice menus: dialplans, call sessions, speaking dates.

pub mod speech;

pub use speech::{Lang, PromptId, refusal_prompt, say_date, say_euros, say_number, say_time};
