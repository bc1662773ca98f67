//! Server transactions: RFC 3261 §17.2.1 (INVITE, with RFC 6026's Accepted
//! state) and §17.2.2 (non-INVITE), matched per §17.2.3.
//!
//! ```text
//! INVITE (§17.2.1, RFC 6026 §7.1)           non-INVITE (§17.2.2)
//!
//!  Proceeding ──2xx──► Accepted ─Timer L─┐   Trying ──1xx──► Proceeding
//!      │ 300-699          (ACK → TU)     │     │ 200-699         │ 200-699
//!      ▼                                 │     ▼                 ▼
//!  Completed ─ACK─► Confirmed ─Timer I─┐ │   Completed ◄─────────┘
//!      │ Timer G: resend                │ │     │ Timer J
//!      │ Timer H: no ACK, tell TU       ▼ ▼     ▼
//!      └───────────────────────────► Terminated
//! ```
//!
//! Contract (sans-IO): drain `poll_transmit` and `poll_event` after every
//! `handle_*`/`send_response`; `now` never goes backwards; an early
//! `handle_timeout` is harmless. The 2xx itself is retransmitted by the
//! dialog (§13.3.1.4), not here: in Accepted a retransmitted INVITE is
//! answered with the stored 2xx once more, nothing else.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::message::{Method, Request};
use super::transport::{Transmit, Transport};

/// RTT estimate (§17.1.1.1).
pub const T1: Duration = Duration::from_millis(500);
/// Maximum retransmit interval for non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// Maximum time a message stays in the network.
pub const T4: Duration = Duration::from_secs(5);

/// How a request is matched to a server transaction (§17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionKey {
    /// RFC 3261 branch (with the magic cookie), sent-by and method, ACK
    /// counted as INVITE.
    Branch {
        branch: String,
        sent_by: String,
        method: String,
    },
    /// RFC 2543 fallback for branches without the cookie (RFC 4475 wsinv,
    /// inv2543): Request-URI, From tag, Call-ID, CSeq number, top Via and
    /// method. The To tag is left out so the ACK of a non-2xx matches.
    Legacy {
        uri: String,
        from_tag: Option<String>,
        call_id: String,
        cseq: u32,
        via: String,
        method: String,
    },
}

impl TransactionKey {
    pub fn of(request: &Request) -> TransactionKey {
        let method = match &request.method {
            Method::Ack => "INVITE".to_owned(),
            other => other.as_str().to_owned(),
        };
        let via = request.top_via();
        match via.rfc3261_branch() {
            Some(branch) => TransactionKey::Branch {
                branch: branch.to_owned(),
                sent_by: via.sent_by(),
                method,
            },
            None => TransactionKey::Legacy {
                uri: request.uri.to_string(),
                from_tag: request.from.tag().map(str::to_owned),
                call_id: request.call_id.clone(),
                cseq: request.cseq.seq,
                via: format!("{}{}", via.sent_by(), via.branch().unwrap_or_default()),
                method,
            },
        }
    }

    /// The key of the INVITE a CANCEL with this key targets (§9.2).
    pub fn as_invite(&self) -> TransactionKey {
        let mut key = self.clone();
        match &mut key {
            TransactionKey::Branch { method, .. } | TransactionKey::Legacy { method, .. } => {
                *method = Method::Invite.as_str().to_owned();
            }
        }
        key
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InviteState {
    Proceeding,
    Accepted {
        timer_l: Instant,
    },
    Completed {
        timer_g: Option<(Instant, Duration)>,
        timer_h: Instant,
    },
    Confirmed {
        timer_i: Instant,
    },
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonInviteState {
    Trying,
    Proceeding,
    Completed { timer_j: Instant },
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Machine {
    Invite(InviteState),
    NonInvite(NonInviteState),
}

/// What the transaction tells its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionEvent {
    /// §17.2.1 Timer H: the ACK for our 300-699 never came.
    AckTimeout,
    /// The transaction is over; drop it.
    Terminated,
}

/// What to do with a request that matched this transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// Handled here (retransmission answered or ignored).
    Absorbed,
    /// An ACK in Accepted (RFC 6026 §7.1): the TU's dialog takes it.
    PassAckToTu,
}

/// One server transaction; see the module doc for the contract.
#[derive(Debug)]
pub struct ServerTransaction {
    machine: Machine,
    transport: Transport,
    destination: SocketAddr,
    last_response: Option<Vec<u8>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransactionEvent>,
}

impl ServerTransaction {
    /// A new transaction for a request just received; responses go to
    /// `destination` (§18.2.2, computed by the caller).
    pub fn new(
        method: &Method,
        transport: Transport,
        destination: SocketAddr,
    ) -> ServerTransaction {
        let machine = match method {
            Method::Invite => Machine::Invite(InviteState::Proceeding),
            _ => Machine::NonInvite(NonInviteState::Trying),
        };
        ServerTransaction {
            machine,
            transport,
            destination,
            last_response: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The TU sends a response with `status` (bytes already printed).
    pub fn send_response(&mut self, now: Instant, status: u16, bytes: Vec<u8>) {
        let reliable = self.transport.is_reliable();
        let next = match self.machine {
            // §17.2.1: provisional responses stay in Proceeding.
            Machine::Invite(InviteState::Proceeding) if status < 200 => Some(self.machine),
            // RFC 6026 §7.1: a 2xx moves to Accepted, Timer L = 64*T1.
            Machine::Invite(InviteState::Proceeding) if status < 300 => {
                Some(Machine::Invite(InviteState::Accepted {
                    timer_l: now + 64 * T1,
                }))
            }
            // §17.2.1: 300-699 → Completed; Timer G only when unreliable.
            Machine::Invite(InviteState::Proceeding) => {
                Some(Machine::Invite(InviteState::Completed {
                    timer_g: (!reliable).then_some((now + T1, T1)),
                    timer_h: now + 64 * T1,
                }))
            }
            // RFC 6026 §7.1: further 2xx (the TU's retransmissions) pass through.
            Machine::Invite(InviteState::Accepted { .. }) if (200..300).contains(&status) => {
                Some(self.machine)
            }
            Machine::Invite(
                InviteState::Accepted { .. }
                | InviteState::Completed { .. }
                | InviteState::Confirmed { .. }
                | InviteState::Terminated,
            ) => None,
            // §17.2.2: a provisional response moves Trying to Proceeding.
            Machine::NonInvite(NonInviteState::Trying | NonInviteState::Proceeding)
                if status < 200 =>
            {
                Some(Machine::NonInvite(NonInviteState::Proceeding))
            }
            // §17.2.2: a final response → Completed, Timer J (64*T1 or 0).
            Machine::NonInvite(NonInviteState::Trying | NonInviteState::Proceeding) => {
                Some(Machine::NonInvite(NonInviteState::Completed {
                    timer_j: if reliable { now } else { now + 64 * T1 },
                }))
            }
            Machine::NonInvite(NonInviteState::Completed { .. } | NonInviteState::Terminated) => {
                None
            }
        };
        let Some(next) = next else {
            tracing::debug!(status, "response after the transaction's final one ignored");
            return;
        };
        self.machine = next;
        self.transmit(bytes.clone());
        self.last_response = Some(bytes);
        self.handle_timeout(now);
    }

    /// A retransmission of the request, or the ACK for an INVITE.
    pub fn handle_request(&mut self, now: Instant, method: &Method) -> Matched {
        let is_ack = matches!(method, Method::Ack);
        match self.machine {
            // §17.2.1: ACK in Completed → Confirmed, Timer I (T4 or 0).
            Machine::Invite(InviteState::Completed { .. }) if is_ack => {
                let timer_i = if self.transport.is_reliable() {
                    now
                } else {
                    now + T4
                };
                self.machine = Machine::Invite(InviteState::Confirmed { timer_i });
                self.handle_timeout(now);
                Matched::Absorbed
            }
            // RFC 6026 §7.1: an ACK in Accepted goes to the TU.
            Machine::Invite(InviteState::Accepted { .. }) if is_ack => Matched::PassAckToTu,
            // §17.2.1: ACK retransmissions in Confirmed are absorbed.
            Machine::Invite(
                InviteState::Proceeding | InviteState::Confirmed { .. } | InviteState::Terminated,
            ) if is_ack => Matched::Absorbed,
            // §17.2.1/§17.2.2: a retransmitted request gets the last response.
            Machine::Invite(
                InviteState::Proceeding
                | InviteState::Accepted { .. }
                | InviteState::Completed { .. },
            )
            | Machine::NonInvite(NonInviteState::Proceeding | NonInviteState::Completed { .. }) => {
                if let Some(bytes) = self.last_response.clone() {
                    self.transmit(bytes);
                }
                Matched::Absorbed
            }
            // §17.2.2: retransmissions in Trying are discarded.
            Machine::Invite(InviteState::Confirmed { .. } | InviteState::Terminated)
            | Machine::NonInvite(NonInviteState::Trying | NonInviteState::Terminated) => {
                Matched::Absorbed
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.machine {
            Machine::Invite(InviteState::Proceeding)
            | Machine::NonInvite(NonInviteState::Trying) => {}
            Machine::NonInvite(NonInviteState::Proceeding) => {}
            // RFC 6026 §7.1 Timer L.
            Machine::Invite(InviteState::Accepted { timer_l }) => {
                if now >= timer_l {
                    self.terminate();
                }
            }
            Machine::Invite(InviteState::Completed { timer_g, timer_h }) => {
                // §17.2.1 Timer H: give up waiting for the ACK.
                if now >= timer_h {
                    self.events.push_back(TransactionEvent::AckTimeout);
                    self.terminate();
                    return;
                }
                // §17.2.1 Timer G: resend, doubling up to T2.
                if let Some((at, interval)) = timer_g
                    && now >= at
                {
                    if let Some(bytes) = self.last_response.clone() {
                        self.transmit(bytes);
                    }
                    let interval = (interval * 2).min(T2);
                    self.machine = Machine::Invite(InviteState::Completed {
                        timer_g: Some((now + interval, interval)),
                        timer_h,
                    });
                }
            }
            // §17.2.1 Timer I.
            Machine::Invite(InviteState::Confirmed { timer_i }) => {
                if now >= timer_i {
                    self.terminate();
                }
            }
            // §17.2.2 Timer J.
            Machine::NonInvite(NonInviteState::Completed { timer_j }) => {
                if now >= timer_j {
                    self.terminate();
                }
            }
            Machine::Invite(InviteState::Terminated)
            | Machine::NonInvite(NonInviteState::Terminated) => {}
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.machine {
            Machine::Invite(InviteState::Accepted { timer_l }) => Some(timer_l),
            Machine::Invite(InviteState::Completed { timer_g, timer_h }) => {
                Some(timer_g.map_or(timer_h, |(g, _)| g.min(timer_h)))
            }
            Machine::Invite(InviteState::Confirmed { timer_i }) => Some(timer_i),
            Machine::NonInvite(NonInviteState::Completed { timer_j }) => Some(timer_j),
            Machine::Invite(InviteState::Proceeding | InviteState::Terminated)
            | Machine::NonInvite(
                NonInviteState::Trying | NonInviteState::Proceeding | NonInviteState::Terminated,
            ) => None,
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(
            self.machine,
            Machine::Invite(InviteState::Terminated)
                | Machine::NonInvite(NonInviteState::Terminated)
        )
    }

    /// Still waiting for the TU's final response (a CANCEL can act on it).
    pub fn is_proceeding(&self) -> bool {
        matches!(self.machine, Machine::Invite(InviteState::Proceeding))
    }

    fn terminate(&mut self) {
        self.machine = match self.machine {
            Machine::Invite(_) => Machine::Invite(InviteState::Terminated),
            Machine::NonInvite(_) => Machine::NonInvite(NonInviteState::Terminated),
        };
        self.events.push_back(TransactionEvent::Terminated);
    }

    fn transmit(&mut self, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit {
            transport: self.transport,
            destination: self.destination,
            bytes,
        });
    }
}

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod tests;
