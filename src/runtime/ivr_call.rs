//! The voice line: the IVR [`Session`] of each call, driven as the call
//! logic of the call runtime ([`CallLogic`]).
//!
//! One task per call owns its session. It feeds the session the call's
//! events (keys, end of playback, hang-up) and its timers, and carries out
//! what the session asks: prompts and barge-in go to media as
//! [`CallCommand`]s, actions are run against the store by [`IvrActions`]
//! (the task awaits them; events arriving meanwhile wait in the channel,
//! which is the type-ahead the session expects), and the call record
//! (R12) is stored when the call ends. Calls and phone operations are
//! counted in the API's `/metrics`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::calls::{CallCommand, CallEvent, CallHandle, CallInfo, CallLogic};
use super::ivr_actions::{CallFrom, IvrActions};
use crate::api::Metrics;
use crate::bookings::{Clock, PhoneNumber};
use crate::ivr::{Dialplan, Event, Input, Key, PlaybackId, Session};
use crate::store::{CallRecord as StoredCall, CodeAttempt, Store};

/// Runs the dialplans of the routes, one session per call.
pub struct IvrCallLogic {
    dialplans: HashMap<String, Arc<Dialplan>>,
    actions: Arc<IvrActions>,
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl IvrCallLogic {
    /// `dialplans`: route name → checked dialplan.
    pub fn new(
        dialplans: HashMap<String, Arc<Dialplan>>,
        actions: Arc<IvrActions>,
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> IvrCallLogic {
        IvrCallLogic {
            dialplans,
            actions,
            store,
            clock,
            metrics,
        }
    }
}

impl CallLogic for IvrCallLogic {
    fn has_dialplan(&self, dialplan: &str) -> bool {
        self.dialplans.contains_key(dialplan)
    }

    fn call_refused(&self, status: u16, reason: &'static str) {
        self.metrics.count_refused(status, reason);
    }

    fn load_shedding(&self, shedding: bool, limit: Option<usize>) {
        self.metrics.set_load_shedding(shedding, limit);
    }

    fn edge_counters(&self, counters: crate::api::EdgeCounters) {
        self.metrics.set_edge(counters);
    }

    fn start(&self, call: CallInfo, handle: CallHandle) {
        let Some(plan) = self.dialplans.get(&call.dialplan).cloned() else {
            // has_dialplan said yes before the answer; a reload could only
            // remove it in between. Hang up rather than leave silence.
            tracing::error!(dialplan = %call.dialplan, "dialplan vanished; hanging up");
            handle.send(CallCommand::HangUp);
            return;
        };
        let actions = self.actions.clone();
        let store = self.store.clone();
        let clock = self.clock.clone();
        let metrics = self.metrics.clone();
        // Every line the call's task logs names the call (its SIP Call-ID
        // is the id operators grep for).
        let span = tracing::info_span!("call", id = %call.id);
        tokio::spawn(
            async move {
            metrics.call_started();
            let record = run_call(plan, actions, clock, &metrics, call, handle).await;
            metrics.call_ended();
            for _ in record
                .operations
                .iter()
                .filter(|o| o.result.starts_with("ok"))
            {
                metrics.count_operation(crate::bookings::Channel::Phone);
            }
            if let Err(e) = store.record_call(&stored_call(&record)).await {
                tracing::error!(error = %e, called = %record.called, "the call record was not stored");
            }
        }
            .instrument(span),
        );
    }
}

async fn run_call(
    plan: Arc<Dialplan>,
    actions: Arc<IvrActions>,
    clock: Arc<dyn Clock>,
    metrics: &Metrics,
    call: CallInfo,
    mut handle: CallHandle,
) -> crate::ivr::CallRecord {
    let caller = call.caller.clone().unwrap_or_else(|| PhoneNumber::new(""));
    let from = CallFrom::new(caller.clone(), call.trunk.to_string());
    let mut session = Session::new(plan, &caller, &call.called, clock.now(), Instant::now());
    tracing::info!(%caller, called = %call.called, "call answered");
    let mut hung_up_by_caller = false;
    loop {
        // Carry out everything the session asked for.
        while let Some(event) = session.poll_event() {
            match event {
                Event::Play { id, lang, prompts } => handle.send(CallCommand::Play {
                    id: id.0,
                    lang,
                    prompts,
                }),
                Event::StopPlayback => handle.send(CallCommand::StopPlayback),
                Event::RunAction(action) => {
                    let result = actions.run(&from, &action).await;
                    session.handle_input(Instant::now(), Input::ActionResult(result));
                }
                Event::HangUp => handle.send(CallCommand::HangUp),
            }
        }
        if session.is_ended() {
            break;
        }
        let timer = session.poll_timeout();
        let input = tokio::select! {
            event = handle.recv() => match event {
                Some(CallEvent::KeyDown(_)) => Some(Input::KeyDown),
                Some(CallEvent::Key(key, source)) => {
                    metrics.count_dtmf(source.label());
                    Key::from_char(key.as_char()).map(Input::Key)
                }
                Some(CallEvent::PlayFinished(id)) => Some(Input::PromptFinished(PlaybackId(id))),
                Some(CallEvent::Ended(_)) | None => {
                    hung_up_by_caller = true;
                    Some(Input::CallerHungUp)
                }
            },
            () = sleep_until(timer) => {
                session.handle_timeout(Instant::now());
                None
            }
        };
        if let Some(input) = input {
            session.handle_input(Instant::now(), input);
        }
        if hung_up_by_caller {
            // Drain what the hang-up produced (nothing is sent any more).
            while session.poll_event().is_some() {}
            break;
        }
    }
    let record = session.finish(clock.now());
    tracing::info!(
        %caller,
        called = %call.called,
        operations = %record.operations_json(),
        "call ended"
    );
    record
}

/// The IVR's call record in the store's form (codes already redacted).
pub fn stored_call(record: &crate::ivr::CallRecord) -> StoredCall {
    StoredCall {
        caller: record.caller.clone(),
        called: record.called.clone(),
        started_at: record.started_at,
        ended_at: record.ended_at,
        codes: record
            .codes_for_storage()
            .into_iter()
            .map(|(code, valid)| CodeAttempt { code, valid })
            .collect(),
        operations: record.operations_json(),
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Why the voice line cannot start.
#[derive(Debug, thiserror::Error)]
pub enum VoiceLineError {
    #[error(transparent)]
    Dialplan(#[from] super::ivr_actions::DialplanError),
    #[error("dialplan {dialplan}")]
    Prompt {
        dialplan: String,
        source: crate::media::prompts::PromptError,
    },
}

/// Loads and checks every dialplan that `names` (the routes) name, from
/// `<folder>/<name>.toml`, and checks that every prompt each may play, in
/// every language, is in the library: `serve` refuses to start otherwise,
/// rather than leave a caller in silence.
pub fn load_voice_line(
    names: impl IntoIterator<Item = String>,
    folder: &std::path::Path,
    prompt_folder: &std::path::Path,
    library: &crate::media::prompts::PromptLibrary,
) -> Result<HashMap<String, Arc<Dialplan>>, VoiceLineError> {
    let catalogue = super::ivr_actions::prompt_catalogue(Some(prompt_folder))?;
    let mut plans = HashMap::new();
    for name in names {
        if plans.contains_key(&name) {
            continue;
        }
        let path = folder.join(format!("{name}.toml"));
        let plan = super::ivr_actions::load_dialplan(&path, &catalogue)?;
        for lang in crate::ivr::Lang::ALL {
            for id in plan.prompt_ids(lang) {
                library
                    .require(lang.code(), id.as_str())
                    .map_err(|source| VoiceLineError::Prompt {
                        dialplan: name.clone(),
                        source,
                    })?;
            }
        }
        plans.insert(name, plan);
    }
    Ok(plans)
}
