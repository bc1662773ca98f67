//! The endpoint's in-dialog side (RFC 3261 §12.2.2, §13.3.1.4, §14.2, §15),
//! session refreshes (RFC 4028, RFC 3311 UPDATE), INFO DTMF, and the
//! dialog timers.

use std::time::Instant;

use super::dialog::{CallId, DialogState, Retransmit, SessionTimer};
use super::endpoint::{ACCEPT, ALLOW, EndReason, Endpoint, Event, SUPPORTED};
use super::headers::HeaderName;
use super::info::{InfoError, parse_dtmf};
use super::message::{Method, Request};
use super::print::ResponseBuilder;
use super::sdp::{self, SessionDescription};
use super::transaction::TransactionKey;
use super::transport::{Transmit, response_destination};

impl Endpoint {
    /// A request carrying a To tag (§12.2.2).
    pub(crate) fn on_in_dialog(&mut self, now: Instant, r: &Request, key: &TransactionKey) {
        let call = r.to.tag().and_then(|tag| {
            self.by_tag
                .get(&(r.call_id.clone(), tag.to_owned()))
                .copied()
        });
        let Some(dialog) = call.and_then(|c| {
            self.touched.push(c);
            self.dialogs.get_mut(&c)
        }) else {
            self.respond(now, key, &r.head, 481, &[]);
            return;
        };
        let call = dialog.call;
        // §12.2.2: a lower or equal CSeq is out of order → 500.
        if r.cseq.seq <= dialog.remote_cseq {
            self.respond(now, key, &r.head, 500, &[("Retry-After", "1".to_owned())]);
            return;
        }
        dialog.remote_cseq = r.cseq.seq;
        let state = dialog.state;
        match (&r.method, state) {
            // §15.1.2: BYE → 200; the call is over (if we had not ended it).
            (Method::Bye, _) => {
                self.respond(now, key, &r.head, 200, &[]);
                let already_ended =
                    matches!(state, DialogState::Terminating | DialogState::Terminated)
                        || self.dialogs.get(&call).is_some_and(|d| d.hangup_pending);
                self.remove_dialog(call);
                if !already_ended {
                    self.events.push_back(Event::CallEnded {
                        call,
                        reason: EndReason::RemoteHangup,
                    });
                }
            }
            (
                Method::Info | Method::Invite | Method::Update,
                DialogState::Terminating | DialogState::Terminated,
            ) => {
                self.respond(now, key, &r.head, 481, &[]);
            }
            (Method::Info, _) => self.on_info(now, r, key, call),
            (Method::Invite | Method::Update, _) => self.on_session_update(now, r, key, call),
            // Only the methods above are routed here by the endpoint.
            (
                Method::Ack
                | Method::Cancel
                | Method::Options
                | Method::Register
                | Method::Prack
                | Method::Subscribe
                | Method::Notify
                | Method::Refer
                | Method::Message
                | Method::Publish
                | Method::Extension(_),
                _,
            ) => self.respond(now, key, &r.head, 405, &[("Allow", ALLOW.to_owned())]),
        }
    }

    /// SIP INFO with a DTMF body → 200 and the key to the call layer.
    fn on_info(&mut self, now: Instant, r: &Request, key: &TransactionKey, call: CallId) {
        match parse_dtmf(r.content_type().as_deref(), &r.body) {
            Ok(dtmf) => {
                self.respond(now, key, &r.head, 200, &[]);
                if let Some(d) = dtmf {
                    self.events.push_back(Event::Dtmf {
                        call,
                        key: d.key,
                        duration_ms: d.duration_ms,
                    });
                }
            }
            Err(InfoError::UnsupportedType) => {
                self.respond(now, key, &r.head, 415, &[("Accept", ACCEPT.to_owned())])
            }
            Err(InfoError::BadSignal) => self.respond(now, key, &r.head, 400, &[]),
        }
    }

    /// re-INVITE (§14.2) or UPDATE (RFC 3311): new offer, or a session
    /// refresh (RFC 4028 §10), answered from the same SDP session.
    fn on_session_update(&mut self, now: Instant, r: &Request, key: &TransactionKey, call: CallId) {
        let is_invite = r.method == Method::Invite;
        let Some(dialog) = self.dialogs.get(&call) else {
            return;
        };
        // §14.2: our previous 2xx is not ACKed yet, or we have not answered.
        if dialog.pending_2xx.is_some() || dialog.sdp.is_none() {
            self.respond(now, key, &r.head, 491, &[]);
            return;
        }
        let interval = match self.session_interval(r) {
            Ok(i) => i,
            Err((status, headers)) => return self.respond(now, key, &r.head, status, &headers),
        };
        let offer = match r.sdp_body() {
            Err(_) => {
                return self.respond(
                    now,
                    key,
                    &r.head,
                    415,
                    &[("Accept", "application/sdp".to_owned())],
                );
            }
            Ok(None) => None,
            Ok(Some(body)) => match SessionDescription::parse(body)
                .and_then(|sd| sdp::negotiate(&sd).map(|(i, n)| (sd, i, n)))
            {
                Ok(o) => Some(o),
                // RFC 3264 §5/§8: a refused offer leaves the session as it was.
                Err(_) => return self.respond(now, key, &r.head, 488, &[]),
            },
        };
        let Some(transport) = self.dialogs.get(&call).map(|d| d.transport) else {
            return;
        };
        let contact = self.contact(transport);
        self.touched.push(call);
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        let Some(local) = dialog.sdp.as_mut() else {
            return;
        };
        let body = match (&offer, is_invite) {
            (Some((sd, index, n)), _) => Some(local.answer(sd, *index, n)),
            // §14.2: a re-INVITE without SDP gets our offer; answer in the ACK.
            (None, true) => Some(local.offer()),
            (None, false) => None,
        };
        let changed = offer
            .as_ref()
            .map(|(_, _, n)| *n)
            .filter(|n| Some(*n) != dialog.media);
        if let Some(n) = offer.as_ref().map(|(_, _, n)| *n) {
            dialog.media = Some(n);
        }
        if offer.is_some() || is_invite {
            dialog.offer = offer;
        }
        let mut response = ResponseBuilder::new(&r.head, 200, Some(&dialog.local_tag))
            .header("Contact", contact)
            .header("Allow", ALLOW)
            .header("Supported", SUPPORTED);
        let interval = interval.or(dialog.timer.map(|t| (t.interval, t.refresher)));
        if let Some((i, who)) = interval {
            dialog.timer = Some(SessionTimer::new(now, i, who));
            response =
                response.header("Session-Expires", format!("{i};refresher={}", who.as_str()));
            if r.headers.has_token(&HeaderName::Supported, "timer") {
                response = response.header("Require", "timer");
            }
        }
        if let Some(body) = body {
            response = response.body("application/sdp", body);
        }
        let bytes = response.to_bytes();
        if is_invite {
            let destination = response_destination(&r.head.top_via, dialog.transport, dialog.peer);
            dialog.pending_2xx = Some(Retransmit::new(
                now,
                bytes.clone(),
                destination,
                r.cseq.seq,
                dialog.transport,
            ));
        }
        self.send_on(now, key, 200, bytes);
        if let Some(media) = changed {
            self.events.push_back(Event::MediaChanged { call, media });
        }
    }

    /// The ACK of a 2xx (§13.3.1.4): stops its retransmission, confirms the
    /// dialog, and carries the answer when our 2xx carried the offer.
    pub(crate) fn on_ack_2xx(&mut self, now: Instant, r: &Request) {
        let call = r.to.tag().and_then(|tag| {
            self.by_tag
                .get(&(r.call_id.clone(), tag.to_owned()))
                .copied()
        });
        let Some(dialog) = call.and_then(|c| {
            self.touched.push(c);
            self.dialogs.get_mut(&c)
        }) else {
            return;
        };
        let call = dialog.call;
        if dialog
            .pending_2xx
            .as_ref()
            .is_none_or(|p| p.cseq != r.cseq.seq)
        {
            return; // an ACK retransmission, or for nothing we sent
        }
        dialog.pending_2xx = None;
        let media = match &dialog.offer {
            Some(_) => dialog.media,
            None => r.sdp_body().ok().flatten().and_then(|body| {
                SessionDescription::parse(body)
                    .and_then(|sd| sdp::negotiate_answer(&sd))
                    .ok()
            }),
        };
        if dialog.hangup_pending {
            return self.send_bye(now, call, None);
        }
        match (dialog.state, media) {
            (DialogState::WaitingAck, Some(media)) => {
                dialog.state = DialogState::Confirmed;
                dialog.media = Some(media);
                self.events
                    .push_back(Event::CallEstablished { call, media });
            }
            // §13.3.1.4 / RFC 3264: no usable answer to our offer.
            (DialogState::WaitingAck, None) => {
                self.send_bye(now, call, Some(EndReason::NoAnswerInAck))
            }
            (DialogState::Confirmed, Some(media)) if dialog.media != Some(media) => {
                dialog.media = Some(media);
                self.events.push_back(Event::MediaChanged { call, media });
            }
            (
                DialogState::Offered { .. }
                | DialogState::Confirmed
                | DialogState::Terminating
                | DialogState::Terminated,
                _,
            ) => {}
        }
    }

    /// Dialog deadlines: answer timeout, 2xx retransmission (§13.3.1.4),
    /// BYE Timers E/F (§17.1.2.2), session expiry (RFC 4028 §10).
    pub(crate) fn dialog_timeout(&mut self, now: Instant, call: CallId) {
        self.touched.push(call);
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        if let DialogState::Offered { deadline } = dialog.state
            && now >= deadline
        {
            return self.end_offered(now, call, 480, EndReason::AnswerTimeout);
        }
        let transport = dialog.transport;
        if let Some(p) = dialog.pending_2xx.as_mut() {
            if now >= p.give_up {
                // §13.3.1.4: no ACK in 64*T1 → end the session with BYE.
                let reason = (!dialog.hangup_pending).then_some(EndReason::NoAck);
                return self.send_bye(now, call, reason);
            }
            if let Some(bytes) = p.due(now) {
                let destination = p.destination;
                self.transmits.push_back(Transmit {
                    transport,
                    destination,
                    bytes,
                });
            }
        }
        self.touched.push(call);
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        if let Some(b) = dialog.bye.as_mut() {
            if now >= b.give_up {
                // Timer F: the peer is gone; forget the dialog.
                return self.remove_dialog(call);
            }
            if let Some(bytes) = b.due(now) {
                let destination = b.destination;
                self.transmits.push_back(Transmit {
                    transport,
                    destination,
                    bytes,
                });
            }
        }
        self.touched.push(call);
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        if let Some(r) = dialog.refresh.as_mut() {
            if now >= r.give_up {
                // Timer F on our refresh: the peer is gone (RFC 4028 §10).
                return self.send_bye(now, call, Some(EndReason::SessionExpired));
            }
            if let Some(bytes) = r.due(now) {
                let destination = r.destination;
                self.transmits.push_back(Transmit {
                    transport,
                    destination,
                    bytes,
                });
            }
        }
        let Some(timer) = dialog.timer else { return };
        if now >= timer.expires_at {
            let reason = (!dialog.hangup_pending).then_some(EndReason::SessionExpired);
            return self.send_bye(now, call, reason);
        }
        if timer.refresh_at.is_some_and(|at| now >= at) && dialog.refresh.is_none() {
            self.send_refresh(now, call);
        }
    }

    /// RFC 4028 §7.4: we are the refresher; an UPDATE without a body.
    fn send_refresh(&mut self, now: Instant, call: CallId) {
        let branch = format!("z9hG4bK{:016x}", self.random());
        let Some(transport) = self.dialogs.get(&call).map(|d| d.transport) else {
            return;
        };
        let (advertise, contact) = (self.config.advertise, self.contact(transport));
        self.touched.push(call);
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        let Some(timer) = dialog.timer.as_mut() else {
            return;
        };
        timer.refresh_at = None;
        let headers = vec![
            ("Contact".to_owned(), contact),
            (
                "Session-Expires".to_owned(),
                format!("{};refresher=uas", timer.interval),
            ),
            ("Supported".to_owned(), SUPPORTED.to_owned()),
        ];
        let (cseq, bytes) = dialog.request("UPDATE", advertise, &branch, headers);
        let (transport, destination) = (dialog.transport, dialog.peer);
        dialog.refresh = Some(Retransmit::new(
            now,
            bytes.clone(),
            destination,
            cseq,
            transport,
        ));
        self.transmits.push_back(Transmit {
            transport,
            destination,
            bytes,
        });
    }
}
