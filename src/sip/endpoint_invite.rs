//! The endpoint's INVITE and CANCEL outside a dialog (RFC 3261 §13.3.1,
//! §9.2), with the admission checks a trunk expects: content, capacity,
//! rate, route, session timer (RFC 4028 §9), SDP offer (RFC 3264).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dialog::{CallId, Dialog, DialogState, Refresher, SessionTimer};
use super::endpoint::{EndReason, Endpoint, Event, RefusedBecause};
use super::headers::{HeaderName, NameAddr, find_param};
use super::message::Request;
use super::sdp::{self, Negotiated, SdpError, SessionDescription};
use super::transaction::{ServerTransaction, TransactionKey};
use super::transport::Transport;
use super::uri::Uri;
use crate::bookings::PhoneNumber;

/// The longest session interval we agree to (RFC 4028 sets no bound).
const MAX_SESSION_EXPIRES: u32 = 86_400;

/// A final status and the headers that go with it.
pub(crate) type Refusal = (u16, Vec<(&'static str, String)>);

/// An INVITE that passed every check.
struct AcceptedInvite {
    called: String,
    dialplan: String,
    offer: Option<(SessionDescription, usize, Negotiated)>,
    interval: Option<(u32, Refresher)>,
}

impl Endpoint {
    pub(crate) fn on_invite(
        &mut self,
        now: Instant,
        r: &Request,
        transport: Transport,
        source: SocketAddr,
        key: &TransactionKey,
    ) {
        // §8.2.2.2: the same INVITE by another path (a fork that looped
        // back, or a second trunk leg) is a merged request → 482.
        let origin = (
            r.call_id.clone(),
            r.from.tag().unwrap_or_default().to_owned(),
            r.cseq.seq,
        );
        if self.by_origin.contains_key(&origin) {
            return self.respond(now, key, &r.head, 482, &[]);
        }
        match self.check_invite(now, r, source) {
            Err((status, headers)) => {
                let reason = self.refused_because(status, source);
                self.events.push_back(Event::CallRefused { status, reason });
                self.respond(now, key, &r.head, status, &headers)
            }
            Ok(AcceptedInvite {
                called,
                dialplan,
                offer,
                interval,
            }) => {
                let call = CallId(self.next_call);
                self.next_call += 1;
                let local_tag = self.random_tag();
                let media = offer.as_ref().map(|(_, _, n)| *n);
                let remote_target = r
                    .contact()
                    .unwrap_or_else(|| r.from.uri.clone())
                    .to_string();
                let dialog = Dialog {
                    call,
                    call_id: r.call_id.clone(),
                    origin: origin.clone(),
                    local_uri: format!("{};tag={local_tag}", r.head.to),
                    local_tag: local_tag.clone(),
                    remote_uri: r.head.from.clone(),
                    remote_target,
                    // §12.1.1: the route set is the Record-Route list, in order.
                    route_set: r
                        .headers
                        .list(&HeaderName::RecordRoute)
                        .map(str::to_owned)
                        .collect(),
                    remote_cseq: r.cseq.seq,
                    local_cseq: u32::from(u16::try_from(self.random() & 0x7FFF).unwrap_or(1)),
                    transport,
                    peer: source,
                    state: DialogState::Offered {
                        // A config with an absurd timeout must not overflow: then no wait.
                        deadline: now.checked_add(self.config.answer_timeout).unwrap_or(now),
                    },
                    invite_key: key.clone(),
                    invite_head: r.head.clone(),
                    sdp: None,
                    offer,
                    media: None,
                    timer: interval.map(|(i, who)| SessionTimer::new(now, i, who)),
                    pending_2xx: None,
                    bye: None,
                    hangup_pending: false,
                    peer_has_timer: r.headers.has_token(&HeaderName::Supported, "timer"),
                    refresh: None,
                };
                self.dialogs.insert(call, dialog);
                self.calls_by_source.add(source.ip());
                self.touched.push(call);
                self.by_tag.insert((r.call_id.clone(), local_tag), call);
                self.by_invite.insert(key.clone(), call);
                self.by_origin.insert(origin, call);
                self.recent_invites.push_back(now);
                // §8.2.6.1 / issue: 100 Trying at once.
                self.respond(now, key, &r.head, 100, &[]);
                // RFC 3325: a trunk puts the network-asserted caller in
                // P-Asserted-Identity (From may say "anonymous"); only
                // allowed sources get here, so it is trusted.
                let asserted = r
                    .headers
                    .list(&HeaderName::Other("P-Asserted-Identity".to_owned()))
                    .filter_map(|v| NameAddr::parse(v).ok())
                    .find_map(|n| n.uri.number());
                let caller = asserted
                    .or_else(|| r.from.uri.number())
                    .or_else(|| r.from.uri.as_sip().and_then(|u| u.user.clone()))
                    .map(PhoneNumber::new);
                self.events.push_back(Event::IncomingCall {
                    call,
                    called,
                    dialplan,
                    caller,
                    media,
                    source,
                    trunk: self.config.trunk_of(source.ip()),
                });
            }
        }
    }

    /// Why [`Endpoint::check_invite`] just answered `status`: the same
    /// state it looked at, in the same order.
    fn refused_because(&self, status: u16, source: SocketAddr) -> RefusedBecause {
        match status {
            503 if self.draining => RefusedBecause::Draining,
            503 if self.overloaded => RefusedBecause::Overloaded,
            503 if self.at_capacity() => RefusedBecause::Capacity,
            503 if self.at_call_limit() => RefusedBecause::Overloaded,
            503 if self.source_at_capacity(source) => RefusedBecause::SourceCapacity,
            503 if self.over_rate => RefusedBecause::Rate,
            503 => RefusedBecause::SourceRate,
            404 => RefusedBecause::NoRoute,
            _ => RefusedBecause::Request,
        }
    }

    /// `source` has its `max_calls_per_source` calls up.
    fn source_at_capacity(&self, source: SocketAddr) -> bool {
        self.calls_by_source.of(source.ip()) >= self.config.max_calls_per_source
    }

    /// The reasons to refuse an INVITE, in the order a trunk expects them.
    fn check_invite(
        &mut self,
        now: Instant,
        r: &Request,
        source: SocketAddr,
    ) -> Result<AcceptedInvite, Refusal> {
        // §8.2.3: a body we cannot read → 415 with what we accept.
        let Ok(sdp_body) = r.sdp_body() else {
            return Err((415, vec![("Accept", "application/sdp".to_owned())]));
        };
        // §8.2.3 / RFC 4475 §3.3.15: the answer's type must be acceptable.
        let accepts = r.headers.all(&HeaderName::Accept).next().is_none()
            || r.headers.list(&HeaderName::Accept).any(|a| {
                let a = a
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                matches!(a.as_str(), "application/sdp" | "application/*" | "*/*")
            });
        if !accepts {
            return Err((406, vec![("Accept", "application/sdp".to_owned())]));
        }
        while self
            .recent_invites
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.recent_invites.pop_front();
        }
        self.over_rate = self.recent_invites.len() >= self.config.max_calls_per_second as usize;
        // The source's budgets last: a token is taken only from an INVITE
        // the node could otherwise take.
        if self.refusing_new_calls()
            || self.over_rate
            || self.source_at_capacity(source)
            || !self.invites_by_source.allow(source.ip(), now)
        {
            return Err((503, vec![("Retry-After", "5".to_owned())]));
        }
        // The Request-URI's number, else To's (RFC 3261 §8.2.2.1 lets a UAS
        // route on either); a non-numeric user can only reach a default route.
        let user = |u: &Uri| u.as_sip().and_then(|s| s.user.clone());
        let called = r
            .uri
            .number()
            .or_else(|| r.to.uri.number())
            .or_else(|| user(&r.uri))
            .or_else(|| user(&r.to.uri));
        let route = called
            .as_deref()
            .and_then(|n| self.config.route(n))
            .map(str::to_owned);
        let (Some(called), Some(dialplan)) = (called, route) else {
            return Err((404, Vec::new()));
        };
        let interval = self.session_interval(r)?;
        let offer = if let Some(body) = sdp_body {
            let parsed = SessionDescription::parse(body)
                .and_then(|sd| sdp::negotiate(&sd).map(|(i, n)| (sd, i, n)));
            match parsed {
                Ok(o) => Some(o),
                Err(SdpError::Malformed | SdpError::NoAudio | SdpError::NoCommonCodec) => {
                    return Err((
                        488,
                        vec![(
                            "Warning",
                            "304 mensa \"Media type not available\"".to_owned(),
                        )],
                    ));
                }
            }
        } else {
            None
        };
        Ok(AcceptedInvite {
            called,
            dialplan,
            offer,
            interval,
        })
    }

    /// RFC 4028 §9 as UAS: 422 below our Min-SE. The UAC refreshes when
    /// it supports `timer`, unless it asks us to (`refresher=uas`); when
    /// only a proxy asked for a timer, we refresh. We refresh with UPDATE,
    /// so only a peer whose Allow lists UPDATE gets us as refresher: else
    /// the UAC keeps the role (or, not supporting timers, no timer at all).
    pub(crate) fn session_interval(
        &self,
        r: &Request,
    ) -> Result<Option<(u32, Refresher)>, Refusal> {
        let min = self.config.min_session_expires.max(90);
        let bad = || (400, Vec::new());
        let requested = r
            .delta_seconds(&HeaderName::SessionExpires)
            .map_err(|_| bad())?;
        let their_min = r
            .delta_seconds(&HeaderName::MinSe)
            .map_err(|_| bad())?
            .map_or(0, |(s, _)| s);
        if let Some((se, _)) = &requested
            && *se < min
        {
            return Err((422, vec![("Min-SE", min.to_string())]));
        }
        let supports_timer = r.headers.has_token(&HeaderName::Supported, "timer");
        let allows_update = r.headers.has_token(&HeaderName::Allow, "UPDATE");
        let asked_uas = requested
            .as_ref()
            .and_then(|(_, params)| find_param(params, "refresher").flatten())
            .is_some_and(|v| v.eq_ignore_ascii_case("uas"));
        let refresher = match (
            supports_timer,
            requested.is_some(),
            asked_uas && allows_update,
        ) {
            (false, false, _) => return Ok(None),
            (false, true, _) if !allows_update => return Ok(None),
            (false, true, _) | (true, _, true) => Refresher::Uas,
            (true, _, false) => Refresher::Uac,
        };
        let interval = requested.map_or(self.config.session_expires, |(se, _)| se);
        // A day at most: a peer's huge value must not become a timer that
        // never fires (or an Instant that overflows).
        Ok(Some((
            interval.max(min).max(their_min).min(MAX_SESSION_EXPIRES),
            refresher,
        )))
    }

    pub(crate) fn on_cancel(&mut self, now: Instant, r: &Request, key: &TransactionKey) {
        let invite_key = key.as_invite();
        // §9.2: no matching INVITE transaction → 481.
        let Some(proceeding) = self
            .transactions
            .get(&invite_key)
            .map(ServerTransaction::is_proceeding)
        else {
            self.respond(now, key, &r.head, 481, &[]);
            return;
        };
        self.respond(now, key, &r.head, 200, &[]);
        // §9.2: only a call not yet answered is cancelled, with 487.
        if let (true, Some(call)) = (proceeding, self.by_invite.get(&invite_key).copied()) {
            self.end_offered(now, call, 487, EndReason::Cancelled);
        }
    }
}
