//! Sans-IO media: G.711, DTMF from every source, RTP sessions, prompts.
//!
//! Nothing here opens a socket, spawns a task or reads a clock: the runtime
//! feeds datagrams and `Instant`s in and drains transmits and events out.
//!
//! How the runtime and the IVR use it:
//!
//! * At start: [`prompts::PromptLibrary::load`]`("prompts/")` (an error names
//!   the broken file); check each dialplan prompt with `require(lang, name)`.
//! * Per call, once SDP is settled: map it onto [`session::MediaParams`]
//!   (codec law + payload type, telephone-event payload type + clock rate,
//!   ptime, remote RTP/RTCP address), pick a [`session::SessionSeed`] (random
//!   SSRC, sequence, timestamp; NTP time now) and build
//!   [`session::RtpSession::new`]`(now, params, config, seed)`.
//! * Drive it: `handle_input(now, Input::Rtp{..} | Input::Rtcp{..} |
//!   Input::Info{..})` for datagrams on the even/odd port and for SIP INFO
//!   keys (the SIP layer parses and answers the INFO, `crate::sip::info`,
//!   and emits the key), `handle_timeout(now)` at `poll_timeout()`, then drain
//!   `poll_transmit()` (send `payload` to `destination` from the RTP or RTCP
//!   socket) and `poll_event()`: `Key(Down)` → stop the prompt (barge-in),
//!   `Key(Pressed)` → count the key, `PlayFinished(id)`, `Inactive` → hang up.
//! * Prompts: `play(Arc<Prompt>)` queues (fragments play as one stream),
//!   `stop_playback()` cuts at once.
//! * Pacing: many sessions per ticker thread with [`pacing::Pacer`]
//!   (`schedule(call, poll_timeout)`, `pop_due(now)`).

pub mod dtmf;
pub mod g711;
pub mod overload;
pub mod pacing;
pub mod pcap;
pub mod playout;
pub mod prompts;
pub mod rtcp;
pub mod session;
pub mod source;
