//! The call logic `mensa serve` uses until the IVR dialplan engine is
//! plugged in: every dialplan answers with the `greeting` prompt (Italian)
//! and keeps the line open, logging how many keys arrived. It shows the
//! [`CallLogic`] seam at its smallest.

use std::sync::Arc;

use super::calls::{CallCommand, CallEvent, CallHandle, CallInfo, CallLogic};
use crate::ivr::{Lang, PromptId};

/// Plays `greeting`, then listens until the caller hangs up.
#[derive(Debug, Default, Clone, Copy)]
pub struct Greeting;

impl CallLogic for Greeting {
    fn has_dialplan(&self, _dialplan: &str) -> bool {
        true
    }

    fn start(&self, call: CallInfo, mut handle: CallHandle) {
        tokio::spawn(async move {
            handle.send(CallCommand::Play {
                id: 1,
                lang: Lang::It,
                prompts: vec![PromptId::from_static("greeting")],
            });
            let mut keys = 0u32;
            while let Some(event) = handle.recv().await {
                match event {
                    CallEvent::Key(_) => keys += 1,
                    CallEvent::Ended(reason) => {
                        tracing::debug!(call = %call.id, dialplan = %call.dialplan, keys, ?reason, "call over");
                    }
                    CallEvent::KeyDown(_) | CallEvent::PlayFinished(_) => {}
                }
            }
        });
    }
}

/// The placeholder as the `Arc` `calls::start` takes.
pub fn logic() -> Arc<dyn CallLogic> {
    Arc::new(Greeting)
}
