//! Which address may send a call's media: symmetric RTP's latching
//! (RFC 4961, RFC 7362 §4), made strict against injection.
//!
//! A call's RTP port is open to the internet. A receiver that latches onto
//! the first packet from anywhere, or re-latches onto any new source, lets
//! an outsider who sprays the port range with RFC 4733 events press keys
//! in a parent's call and hear its prompts (the class of flaw known as
//! "RTP Bleed", CVE-2017-14099). Asterisk answers it with `strictrtp`'s
//! learning (a source is accepted after `probation` packets in sequence)
//! and rtpengine with `strict-source` (after the first latch, other
//! addresses are dropped). Both still learn from anyone. Here:
//!
//! 1. **Plausible sources only.** A packet counts only if it comes from
//!    the address the SDP names, from the address the call's signalling
//!    came from (a NATed phone's media comes from its public address), or
//!    from a network of the trunk allow-list (a carrier's media relays).
//!    Anything else is dropped before the RTP header is read.
//! 2. **Learning by a run of sequence numbers.** A source is latched
//!    after [`PROBATION`] packets of one SSRC in consecutive sequence
//!    numbers (RFC 3550 §A.1's probation) when it is the SDP's very
//!    address, after twice as many when it is only plausible (a NATed
//!    phone, a relay's other port), and never while the SDP's address is
//!    itself learning: a spoofer racing the caller at the call's start must
//!    outrun the address the caller announced. The packets of a run are
//!    held, and replayed once it latches, so a key typed at once is not lost.
//! 3. **No re-latch on a live stream, never on key events.** Once latched,
//!    another source can take over only after the latched one has been
//!    silent for [`RELATCH_SILENCE`] (a relay failed over), and only with
//!    a run of *audio* packets: an outsider's telephone-events never move
//!    the latch, whatever their SSRC.
//!
//! ```text
//!   Learning ──PROBATION packets in sequence, plausible source──► Latched
//!      ▲                                                            │
//!      └── renegotiated to a new address            latched source silent
//!                                                   RELATCH_SILENCE, and a
//!                                                   plausible audio run ──┘ (Latched again)
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::{IpNet, any_contains, unmapped};

/// Packets of one SSRC in consecutive sequence numbers before a source is
/// latched (Asterisk's and RFC 3550 §A.1's default). 80 ms of audio.
pub const PROBATION: u8 = 4;
/// How long the latched source must have been silent before another may
/// take over (a relay that failed over, a re-routed call).
pub const RELATCH_SILENCE: Duration = Duration::from_millis(500);
/// How recently the SDP's own address must have sent for its learning to
/// hold the others back: a stray packet from it long ago must not.
const SDP_PRECEDENCE: Duration = Duration::from_millis(200);
/// Sources learning at once; the one with the shortest run goes first.
const MAX_CANDIDATES: usize = 4;
/// Larger packets are not held for replay (G.711 at 40 ms is 332 bytes;
/// longer packet times lose their first frames, not their keys).
const MAX_HELD_BYTES: usize = 400;

/// What a packet is, for the latch: audio and telephone-events are the
/// call's stream; anything else (comfort noise, an unknown payload type)
/// only keeps a latched source alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Audio,
    Event,
    Other,
}

/// The RTP header fields the latch looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub ssrc: u32,
    pub sequence: u16,
    pub kind: PacketKind,
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// From an address neither the SDP, the signalling nor the allow-list
    /// makes plausible.
    Implausible,
    /// From a plausible address while another source is latched and alive,
    /// or a telephone-event that would have had to move the latch.
    NotLatched,
}

/// What to do with a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// From the latched source: process it.
    Accept,
    /// It completed a run: its source is latched now. Process the held
    /// packets of the run (oldest first), then this one.
    Latched {
        held: Vec<Vec<u8>>,
    },
    /// Counted towards a run and held; nothing to do yet.
    Held,
    Rejected(Rejected),
}

/// Dropped packets, by reason (for the operators' counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectCounts {
    pub implausible: u64,
    pub not_latched: u64,
}

impl RejectCounts {
    pub fn plus(self, other: RejectCounts) -> RejectCounts {
        RejectCounts {
            implausible: self.implausible.saturating_add(other.implausible),
            not_latched: self.not_latched.saturating_add(other.not_latched),
        }
    }
}

/// The latch of one call: see the module doc. Sans-IO like the session it
/// belongs to: fed packets with the time, it answers what to do.
#[derive(Debug)]
pub struct SourceLatch {
    /// The trunk allow-list and any extra media networks (per deployment).
    allowed: Arc<[IpNet]>,
    /// The SDP's `c=`/`m=` address.
    sdp: SocketAddr,
    /// Where the call's signalling came from.
    signalling: Option<IpAddr>,
    latched: Option<Latched>,
    candidates: Vec<Candidate>,
    rejected: RejectCounts,
}

#[derive(Debug, Clone, Copy)]
struct Latched {
    addr: SocketAddr,
    last_seen: Instant,
}

#[derive(Debug)]
struct Candidate {
    addr: SocketAddr,
    ssrc: u32,
    next_sequence: u16,
    /// Packets counted in the current run.
    run: u8,
    held: Vec<Vec<u8>>,
    last_seen: Instant,
}

impl SourceLatch {
    pub fn new(allowed: Arc<[IpNet]>, sdp: SocketAddr, signalling: Option<IpAddr>) -> SourceLatch {
        SourceLatch {
            allowed,
            sdp,
            signalling: signalling.map(unmapped),
            latched: None,
            candidates: Vec::new(),
            rejected: RejectCounts::default(),
        }
    }

    /// The latched source, if any.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched.map(|l| l.addr)
    }

    pub fn rejected(&self) -> RejectCounts {
        self.rejected
    }

    /// A re-INVITE or UPDATE moved the SDP address (the caller moved):
    /// learn again, from the new address or the others plausible.
    pub fn renegotiated(&mut self, sdp: SocketAddr) {
        if sdp != self.sdp {
            self.sdp = sdp;
            self.latched = None;
            self.candidates.clear();
        }
    }

    /// Whether `ip` may send this call media at all. Checked before the
    /// packet is parsed.
    pub fn plausible(&self, ip: IpAddr) -> bool {
        let ip = unmapped(ip);
        let sdp = unmapped(self.sdp.ip());
        (ip == sdp && !sdp.is_unspecified())
            || self.signalling == Some(ip)
            || any_contains(&self.allowed, ip)
    }

    /// An RTCP packet from `from` may move our RTCP destination only if it
    /// comes from the latched source's host.
    pub fn accepts_rtcp_from(&self, from: SocketAddr) -> bool {
        self.latched
            .is_some_and(|l| unmapped(l.addr.ip()) == unmapped(from.ip()))
    }

    /// Counts a packet dropped by [`SourceLatch::plausible`] unread.
    pub fn admit_implausible(&mut self) {
        self.rejected.implausible += 1;
    }

    /// Decides about one RTP packet (`data`, its header already read).
    pub fn admit(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: Header,
        data: &[u8],
    ) -> Admission {
        if let Some(latched) = &mut self.latched
            && latched.addr == from
        {
            latched.last_seen = now;
            return Admission::Accept;
        }
        if !self.plausible(from.ip()) {
            self.rejected.implausible += 1;
            return Admission::Rejected(Rejected::Implausible);
        }
        // Learning from scratch counts the whole stream; taking over from a
        // source gone silent counts audio only: never re-latch on key events.
        let may_learn = match self.latched {
            None => true,
            Some(l) => {
                now.saturating_duration_since(l.last_seen) >= RELATCH_SILENCE
                    && header.kind == PacketKind::Audio
            }
        };
        if !may_learn {
            self.rejected.not_latched += 1;
            return Admission::Rejected(Rejected::NotLatched);
        }
        let index = self.candidate(now, from, header);
        let sdp_learning = from != self.sdp
            && self.candidates.iter().any(|c| {
                c.addr == self.sdp && now.saturating_duration_since(c.last_seen) < SDP_PRECEDENCE
            });
        let needed = if from == self.sdp {
            PROBATION
        } else {
            2 * PROBATION
        };
        let Some(candidate) = self.candidates.get_mut(index) else {
            return Admission::Held;
        };
        if candidate.run >= needed && !sdp_learning {
            let held = std::mem::take(&mut candidate.held);
            self.latched = Some(Latched {
                addr: from,
                last_seen: now,
            });
            self.candidates.clear();
            return Admission::Latched { held };
        }
        if data.len() <= MAX_HELD_BYTES && candidate.held.len() < usize::from(2 * PROBATION) {
            candidate.held.push(data.to_vec());
        }
        Admission::Held
    }

    /// The candidate for `from`, its run advanced by this packet; a new
    /// one (evicting the one with the shortest run) if `from` was not
    /// learning yet.
    fn candidate(&mut self, now: Instant, from: SocketAddr, header: Header) -> usize {
        if let Some(i) = self.candidates.iter().position(|c| c.addr == from) {
            let c = &mut self.candidates[i];
            c.last_seen = now;
            if c.ssrc == header.ssrc && c.next_sequence == header.sequence {
                c.run = c.run.saturating_add(1);
            } else {
                // RFC 3550 §A.1: a jump or a new SSRC restarts the run.
                c.ssrc = header.ssrc;
                c.run = 1;
                c.held.clear();
            }
            c.next_sequence = header.sequence.wrapping_add(1);
            return i;
        }
        if self.candidates.len() >= MAX_CANDIDATES
            && let Some(weakest) =
                (0..self.candidates.len()).min_by_key(|&i| self.candidates[i].run)
        {
            self.candidates.swap_remove(weakest);
        }
        self.candidates.push(Candidate {
            addr: from,
            ssrc: header.ssrc,
            next_sequence: header.sequence.wrapping_add(1),
            run: 1,
            held: Vec::new(),
            last_seen: now,
        });
        self.candidates.len() - 1
    }
}
