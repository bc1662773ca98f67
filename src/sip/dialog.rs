//! The UAS side of an INVITE dialog (RFC 3261 §12, §13.3, §15), with the
//! 2xx retransmission of §13.3.1.4, our BYE's client transaction (§17.1.2,
//! Timers E and F) and session timers (RFC 4028).
//!
//! ```text
//!  Offered ──answer──► WaitingAck ──ACK──► Confirmed ──BYE in──► Terminated
//!     │ CANCEL/reject/    │ 64*T1, no ACK     │ hang up / session expired
//!     │ answer timeout    ▼                   ▼
//!     └─────────────► Terminated ◄──── Terminating (our BYE, Timers E/F)
//! ```
//!
//! The endpoint owns the dialogs and drives them; this file keeps the
//! per-dialog data and timers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::message::ReplyHead;
use super::print::RequestBuilder;
use super::sdp::{LocalSession, Negotiated, SessionDescription};
use super::transaction::{T1, T2, TransactionKey};
use super::transport::Transport;

/// Our handle for one call; never reused within an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DialogState {
    /// INVITE received, the call layer has not answered yet.
    Offered {
        deadline: Instant,
    },
    /// 2xx sent, no ACK yet (§13.3.1.4).
    WaitingAck,
    Confirmed,
    /// Our BYE is out (§15.1.1).
    Terminating,
    Terminated,
}

/// A message resent on a doubling interval until stopped or given up:
/// the 2xx (§13.3.1.4) or our BYE (§17.1.2.2 Timer E/F).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Retransmit {
    pub bytes: Vec<u8>,
    /// Where it goes: for a 2xx, the §18.2.2 response address; for a BYE,
    /// the peer.
    pub destination: SocketAddr,
    pub cseq: u32,
    /// `None` over a reliable transport: sent once, only the give-up runs.
    pub next: Option<(Instant, Duration)>,
    pub give_up: Instant,
}

impl Retransmit {
    pub fn new(
        now: Instant,
        bytes: Vec<u8>,
        destination: SocketAddr,
        cseq: u32,
        transport: Transport,
    ) -> Retransmit {
        Retransmit {
            bytes,
            destination,
            cseq,
            next: (!transport.is_reliable()).then_some((now + T1, T1)),
            give_up: now + 64 * T1,
        }
    }

    /// Due: the bytes to resend now; schedules the next one (T1 doubling up to T2).
    pub fn due(&mut self, now: Instant) -> Option<Vec<u8>> {
        let (at, interval) = self.next?;
        if now < at {
            return None;
        }
        let interval = (interval * 2).min(T2);
        self.next = Some((now + interval, interval));
        Some(self.bytes.clone())
    }

    pub fn deadline(&self) -> Instant {
        self.next
            .map_or(self.give_up, |(at, _)| at.min(self.give_up))
    }
}

/// Who refreshes the session (RFC 4028 §9 `refresher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresher {
    Uac,
    /// We refresh, with UPDATE (RFC 4028 §7.4).
    Uas,
}

impl Refresher {
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// RFC 4028 state once negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionTimer {
    pub interval: u32,
    pub refresher: Refresher,
    /// RFC 4028 §10: without a refresh, the session ends here.
    pub expires_at: Instant,
    /// RFC 4028 §7.2: when we are the refresher, refresh at half the interval.
    pub refresh_at: Option<Instant>,
}

impl SessionTimer {
    /// Expiry at interval minus min(32 s, interval/3) (RFC 4028 §10).
    pub fn new(now: Instant, interval: u32, refresher: Refresher) -> SessionTimer {
        let secs = u64::from(interval);
        let margin = (secs / 3).min(32);
        let refresh_at = match refresher {
            Refresher::Uac => None,
            Refresher::Uas => Some(now + Duration::from_secs(secs / 2)),
        };
        SessionTimer {
            interval,
            refresher,
            expires_at: now + Duration::from_secs(secs - margin),
            refresh_at,
        }
    }
}

/// One dialog (or, before the answer, the dialog-to-be).
#[derive(Debug)]
pub(crate) struct Dialog {
    pub call: CallId,
    pub call_id: String,
    /// The INVITE's (Call-ID, From tag, CSeq), for merged requests (§8.2.2.2).
    pub origin: (String, String, u32),
    pub local_tag: String,
    /// Our From in requests: the INVITE's To with our tag (§12.1.1).
    pub local_uri: String,
    /// Our To in requests: the INVITE's From, with the caller's tag.
    pub remote_uri: String,
    pub remote_target: String,
    pub route_set: Vec<String>,
    pub remote_cseq: u32,
    pub local_cseq: u32,
    pub transport: Transport,
    /// Where the INVITE came from: in-dialog requests go back there
    /// (symmetric signalling, what trunks and SBCs expect).
    pub peer: SocketAddr,
    pub state: DialogState,
    /// The INVITE (initial or re-INVITE) whose 2xx is pending.
    pub invite_key: TransactionKey,
    pub invite_head: ReplyHead,
    pub sdp: Option<LocalSession>,
    /// The caller's offer (stream index and what we chose); `None`: late offer.
    pub offer: Option<(SessionDescription, usize, Negotiated)>,
    pub media: Option<Negotiated>,
    pub timer: Option<SessionTimer>,
    pub pending_2xx: Option<Retransmit>,
    pub bye: Option<Retransmit>,
    /// The call layer hung up before the ACK: BYE once it comes (§15).
    pub hangup_pending: bool,
    /// The caller's INVITE said `Supported: timer` (then our 2xx says
    /// `Require: timer`, RFC 4028 §9).
    pub peer_has_timer: bool,
    /// Our refreshing UPDATE in flight (Timers E/F).
    pub refresh: Option<Retransmit>,
}

impl Dialog {
    /// A BYE (§15.1.1) with the next local CSeq; `branch` must be fresh.
    pub fn bye(&mut self, advertise: SocketAddr, branch: &str) -> (u32, Vec<u8>) {
        self.request("BYE", advertise, branch, Vec::new())
    }

    /// An in-dialog request (§12.2.1.1) with the next local CSeq.
    pub fn request(
        &mut self,
        method: &str,
        advertise: SocketAddr,
        branch: &str,
        headers: Vec<(String, String)>,
    ) -> (u32, Vec<u8>) {
        self.local_cseq += 1;
        let request = RequestBuilder {
            method: method.to_owned(),
            uri: self.remote_target.clone(),
            via: format!(
                "SIP/2.0/{} {advertise};branch={branch};rport",
                self.transport.as_str()
            ),
            from: self.local_uri.clone(),
            to: self.remote_uri.clone(),
            call_id: self.call_id.clone(),
            cseq: self.local_cseq,
            route: self.route_set.clone(),
            headers,
            body: Vec::new(),
        };
        (self.local_cseq, request.to_bytes())
    }

    /// The earliest instant this dialog needs `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let offered = match self.state {
            DialogState::Offered { deadline } => Some(deadline),
            DialogState::WaitingAck
            | DialogState::Confirmed
            | DialogState::Terminating
            | DialogState::Terminated => None,
        };
        [
            offered,
            self.pending_2xx.as_ref().map(Retransmit::deadline),
            self.bye.as_ref().map(Retransmit::deadline),
            self.refresh.as_ref().map(Retransmit::deadline),
            self.timer.map(|t| t.expires_at),
            self.timer.and_then(|t| t.refresh_at),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmit_doubles_to_t2_and_gives_up() {
        let t0 = Instant::now();
        let mut r = Retransmit::new(
            t0,
            b"x".to_vec(),
            "192.0.2.1:5060".parse().unwrap(),
            1,
            Transport::Udp,
        );
        let mut sent = Vec::new();
        let mut now = t0;
        while r.deadline() < r.give_up {
            now = r.deadline();
            if r.due(now).is_some() {
                sent.push((now - t0).as_millis());
            }
        }
        assert_eq!(
            sent,
            vec![
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(r.deadline(), t0 + 64 * T1);
        assert_eq!(now, t0 + Duration::from_millis(31500));
        let r = Retransmit::new(
            t0,
            b"x".to_vec(),
            "192.0.2.1:5060".parse().unwrap(),
            1,
            Transport::Tcp,
        );
        assert_eq!(r.deadline(), t0 + 64 * T1);
    }

    #[test]
    fn session_timer_margin() {
        let t0 = Instant::now();
        let uac = SessionTimer::new(t0, 90, Refresher::Uac);
        assert_eq!(
            (uac.expires_at, uac.refresh_at),
            (t0 + Duration::from_secs(60), None)
        );
        let uas = SessionTimer::new(t0, 1800, Refresher::Uas);
        assert_eq!(uas.expires_at, t0 + Duration::from_secs(1768));
        assert_eq!(uas.refresh_at, Some(t0 + Duration::from_secs(900)));
    }
}
