use super::*;
use crate::media::dtmf::testsig::{Rng, Signal, ms};

const SDP: &str = "192.0.2.10:40000";
const NAT: &str = "198.51.100.7:61000";

struct T {
    s: RtpSession,
    t0: Instant,
    now: Instant,
    sent: Vec<Transmit>,
    events: Vec<MediaEvent>,
    rx_seq: u16,
    rx_ts: u32,
}

fn params(law: Law, te: Option<TelephoneEvent>) -> MediaParams {
    MediaParams {
        codec: AudioCodec {
            law,
            payload_type: if law == Law::ALaw { 8 } else { 0 },
        },
        telephone_event: te,
        ptime: Duration::from_millis(20),
        remote_rtp: SDP.parse().unwrap(),
        remote_rtcp: None,
        // The caller's NATed media comes from its signalling's host.
        signalling: Some(NAT.parse::<SocketAddr>().unwrap().ip()),
    }
}

const TE: Option<TelephoneEvent> = Some(TelephoneEvent {
    payload_type: 101,
    clock_rate: 8000,
});

impl T {
    fn new(p: MediaParams, inband: InbandMode) -> T {
        let t0 = Instant::now();
        let cfg = SessionConfig {
            inband,
            ..SessionConfig::default()
        };
        let seed = SessionSeed {
            ssrc: 0xABCD,
            sequence: 65530,
            timestamp: 0xFFFF_FF00,
            ntp: 0,
        };
        T {
            s: RtpSession::new(t0, p, cfg, seed),
            t0,
            now: t0,
            sent: Vec::new(),
            events: Vec::new(),
            rx_seq: 100,
            rx_ts: 5000,
        }
    }

    fn drain(&mut self) {
        while let Some(t) = self.s.poll_transmit() {
            self.sent.push(t);
        }
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
    }

    /// Run the session's timers up to `ms` after start.
    fn run_to(&mut self, ms: u64) {
        let end = self.t0 + Duration::from_millis(ms);
        while let Some(t) = self.s.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.s.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }

    fn rtp_in(&mut self, pt: u8, ts: u32, marker: bool, payload: &[u8]) {
        self.rx_seq = self.rx_seq.wrapping_add(1);
        let pkt = packet(pt, 77, self.rx_seq, ts, marker, payload);
        let from = NAT.parse().unwrap();
        self.s
            .handle_input(self.now, Input::Rtp { from, data: &pkt });
        self.drain();
    }

    /// The caller's silence, packets enough to be latched: twice the
    /// probation, since it sends from its NAT's address, not its SDP's.
    fn latch_caller(&mut self) {
        for _ in 0..2 * crate::media::source::PROBATION {
            let ts = self.rx_ts;
            self.rtp_in(8, ts, false, &[0xD5; 160]);
            self.rx_ts = self.rx_ts.wrapping_add(160);
        }
    }

    /// A datagram from someone else.
    fn inject(&mut self, from: &str, pkt: &[u8]) {
        let from = from.parse().unwrap();
        self.s
            .handle_input(self.now, Input::Rtp { from, data: pkt });
        self.drain();
    }

    /// Stream `samples` as audio packets, one every 20 ms of session time.
    fn audio_in(&mut self, law: Law, samples: &[i16], skip: &[usize]) {
        for (i, f) in samples.chunks(160).enumerate() {
            let mut enc = vec![0u8; f.len()];
            law.encode_into(f, &mut enc);
            let at = self.now.duration_since(self.t0).as_millis() as u64 + 20;
            self.run_to(at);
            if skip.contains(&i) {
                self.rx_seq = self.rx_seq.wrapping_add(1);
            } else {
                let pt = if law == Law::ALaw { 8 } else { 0 };
                self.rtp_in(pt, self.rx_ts, false, &enc);
            }
            self.rx_ts = self.rx_ts.wrapping_add(160);
        }
    }

    fn pressed(&self) -> String {
        self.events
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Key(KeyEvent::Pressed { key, .. }) => Some(key.as_char()),
                _ => None,
            })
            .collect()
    }

    fn rtp_sent(&self) -> Vec<(u16, u32, bool, SocketAddr, Vec<u8>)> {
        self.sent
            .iter()
            .filter(|t| t.channel == Channel::Rtp)
            .map(|t| {
                let r = RtpReader::new(&t.payload).unwrap();
                assert_eq!(r.ssrc(), 0xABCD);
                let seq = u16::from(r.sequence_number());
                (
                    seq,
                    r.timestamp(),
                    r.mark(),
                    t.destination,
                    r.payload().to_vec(),
                )
            })
            .collect()
    }
}

fn packet(pt: u8, ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    RtpPacketBuilder::new()
        .payload_type(pt)
        .ssrc(ssrc)
        .sequence(Seq::from(seq))
        .timestamp(ts)
        .marked(marker)
        .payload(payload)
        .build()
        .unwrap()
}

/// The RFC 4733 packets of one press of `event` (begin, updates, three
/// ends), from sequence number `seq` on.
fn press(event: u8, ssrc: u32, seq: u16, ts: u32) -> Vec<Vec<u8>> {
    (0..8u16)
        .map(|i| {
            let end = i >= 5;
            let duration = (160 * (i.min(5) + 1)).to_be_bytes();
            let flags = if end { 0x8A } else { 0x0A };
            packet(
                101,
                ssrc,
                seq.wrapping_add(i),
                ts,
                i == 0,
                &[event, flags, duration[0], duration[1]],
            )
        })
        .collect()
}

fn tone_prompt(n: usize) -> Arc<Prompt> {
    let s: Vec<i16> = (0..n)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    Arc::new(Prompt::from_samples("t", &s))
}

#[test]
fn frames_every_ptime_continuous_numbering_and_talkspurt_markers() {
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Auto);
    t.run_to(100); // silence first: trunks must see packets
    let id1 = t.s.play(tone_prompt(800)); // 100 ms
    t.run_to(300);
    let id2 = t.s.play(tone_prompt(400));
    t.run_to(1000);
    let sent = t.rtp_sent();
    assert_eq!(sent.len(), 51, "one packet per 20 ms from t = 0");
    for w in sent.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0.wrapping_add(1),
            "sequence wraps continuously"
        );
        assert_eq!(w[1].1, w[0].1.wrapping_add(160), "timestamp counts samples");
    }
    let markers: Vec<usize> = (0..sent.len()).filter(|&i| sent[i].2).collect();
    assert_eq!(markers.len(), 2, "one marker per talkspurt: {markers:?}");
    assert!(sent[markers[0]].4.iter().any(|&c| c != 0xD5));
    assert!(
        sent[0].4.iter().all(|&c| c == 0xD5),
        "silence frames between prompts"
    );
    assert!(t.events.contains(&MediaEvent::PlayFinished(id1)));
    assert!(t.events.contains(&MediaEvent::PlayFinished(id2)));
    assert_eq!(sent[0].3, SDP.parse().unwrap());
}

#[test]
fn deadlines_are_absolute_and_a_stall_is_bounded() {
    let mut t = T::new(params(Law::MuLaw, None), InbandMode::Auto);
    // Woken late every time: still one frame per deadline, no drift.
    for i in 1..=50u64 {
        let now = t.t0 + Duration::from_millis(20 * i + 7);
        t.s.handle_timeout(now);
        t.drain();
    }
    assert_eq!(t.rtp_sent().len(), 51);
    assert_eq!(
        t.s.poll_timeout()
            .map(|d| d > t.t0 + Duration::from_millis(1000)),
        Some(true)
    );
    // A 1 s stall sends at most a few frames, and timestamps jump over the gap.
    let before = t.rtp_sent().len();
    let last_ts = t.rtp_sent().last().unwrap().1;
    t.s.handle_timeout(t.t0 + Duration::from_millis(2010));
    t.drain();
    let sent = t.rtp_sent();
    assert_eq!(sent.len() - before, 3);
    t.s.handle_timeout(t.t0 + Duration::from_millis(2020));
    t.drain();
    let ts = t.rtp_sent().last().unwrap().1;
    assert_eq!(
        ts.wrapping_sub(last_ts),
        160 * 51,
        "timestamps follow the sample clock"
    );
}

#[test]
fn symmetric_rtp_latches_onto_the_callers_source() {
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Auto);
    t.run_to(40);
    assert_eq!(t.s.destination(), SDP.parse().unwrap());
    t.rtp_in(8, 1, true, &[0xD5; 160]);
    assert_eq!(
        t.s.destination(),
        SDP.parse().unwrap(),
        "one packet is not a run"
    );
    t.latch_caller();
    assert_eq!(t.s.destination(), NAT.parse().unwrap());
    t.run_to(80);
    assert_eq!(t.rtp_sent().last().unwrap().3, NAT.parse().unwrap());
    // Someone else's packet does not move it.
    let other: SocketAddr = "203.0.113.1:5000".parse().unwrap();
    let pkt = RtpPacketBuilder::new()
        .payload_type(8)
        .ssrc(77)
        .payload(&[0xD5; 160])
        .build()
        .unwrap();
    t.s.handle_input(
        t.now,
        Input::Rtp {
            from: other,
            data: &pkt,
        },
    );
    assert_eq!(t.s.destination(), NAT.parse().unwrap());
}

#[test]
fn telephone_events_at_any_payload_type_and_rate() {
    for (pt, rate) in [(101u8, 8000u32), (96, 16000), (127, 8000)] {
        let te = Some(TelephoneEvent {
            payload_type: pt,
            clock_rate: rate,
        });
        let mut t = T::new(params(Law::MuLaw, te), InbandMode::Auto);
        t.latch_caller();
        let step = (rate / 50) as u16;
        for i in 1..=5u16 {
            t.run_to(20 * u64::from(i));
            let d = (step * i).to_be_bytes();
            let end = if i == 5 { 0x80 } else { 0 };
            t.rtp_in(pt, 9000, i == 1, &[9, end, d[0], d[1]]);
        }
        assert_eq!(t.pressed(), "9", "pt {pt}");
        let dur = t.events.iter().find_map(|e| match e {
            MediaEvent::Key(KeyEvent::Pressed { duration, .. }) => Some(*duration),
            _ => None,
        });
        assert_eq!(dur, Some(Duration::from_millis(100)));
    }
}

#[test]
fn inband_tones_detected_when_no_telephone_event() {
    let mut rng = Rng::new(1);
    let mut sig = Signal::default();
    sig.silence(ms(30)).keys(&mut rng, "147#", ms(60), ms(60));
    for law in [Law::ALaw, Law::MuLaw] {
        let mut t = T::new(params(law, None), InbandMode::Auto);
        t.audio_in(law, &sig.through(law), &[]);
        t.run_to(2000);
        assert_eq!(t.pressed(), "147#", "{law:?}");
    }
}

#[test]
fn lost_audio_packet_inside_a_tone_is_one_digit() {
    let mut rng = Rng::new(2);
    let mut sig = Signal::default();
    sig.silence(ms(40))
        .key(&mut rng, '6', -10.0, ms(100))
        .silence(ms(100));
    let mut t = T::new(params(Law::ALaw, None), InbandMode::Auto);
    t.latch_caller();
    t.audio_in(Law::ALaw, &sig.through(Law::ALaw), &[4]);
    t.run_to(1000);
    assert_eq!(t.pressed(), "6");
}

#[test]
fn audio_from_a_new_ssrc_or_restarted_sequence_is_still_decoded() {
    let mut rng = Rng::new(4);
    let mut sig = Signal::default();
    sig.silence(ms(40))
        .key(&mut rng, '1', -10.0, ms(100))
        .silence(ms(100));
    let samples = sig.through(Law::ALaw);
    let mut t = T::new(params(Law::ALaw, None), InbandMode::Auto);
    t.audio_in(Law::ALaw, &samples, &[]);
    // The sender restarts its sequence numbers far behind.
    t.rx_seq = t.rx_seq.wrapping_sub(30_000);
    t.audio_in(Law::ALaw, &samples, &[]);
    t.run_to(2000);
    assert_eq!(t.pressed(), "11");
}

#[test]
fn policy_inband_off_with_telephone_event_and_one_press_once_with_always() {
    let mut rng = Rng::new(3);
    let mut sig = Signal::default();
    sig.key(&mut rng, '3', -10.0, ms(100)).silence(ms(100));
    let samples = sig.through(Law::ALaw);
    // Auto + telephone-event negotiated: the tone alone is not a key.
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Auto);
    t.audio_in(Law::ALaw, &samples, &[]);
    t.run_to(1000);
    assert_eq!(t.pressed(), "");
    // Always: a phone sending both at once is heard once.
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Always);
    for (i, f) in samples.chunks(160).enumerate() {
        let mut enc = vec![0u8; f.len()];
        Law::ALaw.encode_into(f, &mut enc);
        t.run_to(20 * (i as u64 + 1));
        t.rtp_in(8, 160 * i as u32, false, &enc);
        if i < 8 {
            let d = (160 * (i as u16 + 1)).min(800).to_be_bytes();
            let end = if i >= 5 { 0x80 } else { 0 };
            t.rtp_in(101, 0, i == 0, &[3, end, d[0], d[1]]);
        }
        if i == 9 {
            // An INFO for the same press, right after it, adds nothing.
            let key = Key::from_char('3').unwrap();
            t.s.handle_input(
                t.now,
                Input::Info {
                    key,
                    duration: None,
                },
            );
        }
    }
    t.run_to(1500);
    assert_eq!(t.pressed(), "3");
    // A later INFO is a new press.
    t.run_to(3000);
    t.s.handle_input(
        t.now,
        Input::Info {
            key: Key::from_char('3').unwrap(),
            duration: None,
        },
    );
    t.drain();
    assert_eq!(t.pressed(), "33");
}

#[test]
fn inactivity_ends_the_call_once_and_rtcp_reports_go_out() {
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Auto);
    t.run_to(10_000);
    t.latch_caller(); // latches; keeps the call alive
    t.run_to(39_000);
    assert!(!t.events.contains(&MediaEvent::Inactive));
    // RTCP from the caller is tolerated, garbage too.
    let from: SocketAddr = "198.51.100.7:61001".parse().unwrap();
    t.s.handle_input(
        t.now,
        Input::Rtcp {
            from,
            data: &[0x80, 201, 0, 1, 0, 0, 0, 1],
        },
    );
    t.s.handle_input(
        t.now,
        Input::Rtcp {
            from,
            data: &[1, 2],
        },
    );
    t.s.handle_input(
        t.now,
        Input::Rtp {
            from,
            data: &[0xFF; 3],
        },
    );
    t.run_to(41_000);
    let n = t
        .events
        .iter()
        .filter(|e| **e == MediaEvent::Inactive)
        .count();
    assert_eq!(n, 1);
    t.run_to(80_000);
    let n = t
        .events
        .iter()
        .filter(|e| **e == MediaEvent::Inactive)
        .count();
    assert_eq!(n, 1, "reported once");
    let reports: Vec<&Transmit> = t
        .sent
        .iter()
        .filter(|x| x.channel == Channel::Rtcp)
        .collect();
    assert_eq!(reports.len(), 16, "every 5 s");
    assert_eq!(reports[0].destination, "192.0.2.10:40001".parse().unwrap());
    assert_eq!(reports.last().unwrap().destination, from);
    assert!(reports.iter().all(|r| rtcp::looks_like_rtcp(&r.payload)));
}

#[test]
fn close_sends_bye_and_stops() {
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Auto);
    t.run_to(100);
    let n = t.sent.len();
    t.s.close(t.now);
    t.s.close(t.now);
    t.drain();
    assert_eq!(t.sent.len(), n + 1);
    let last = &t.sent[n];
    assert_eq!(last.channel, Channel::Rtcp);
    assert_eq!(&last.payload[last.payload.len() - 8..][..2], &[0x81, 203]);
    assert_eq!(t.s.poll_timeout(), None);
    t.s.handle_timeout(t.now + Duration::from_secs(60));
    t.drain();
    assert_eq!(t.sent.len(), n + 1);
}

#[test]
fn stop_playback_silences_the_next_frame() {
    let mut t = T::new(params(Law::MuLaw, TE), InbandMode::Auto);
    t.s.play(tone_prompt(8000));
    t.run_to(100);
    assert!(t.s.is_playing());
    t.s.stop_playback();
    t.run_to(120);
    let last = t.rtp_sent().last().unwrap().4.clone();
    assert!(last.iter().all(|&c| c == 0xFF));
    assert!(!t.s.is_playing());
}

#[test]
fn a_key_typed_at_once_is_not_lost_while_the_source_is_learned() {
    // The caller's very first packets carry a tone (80 ms: the probation's
    // four packets): held while the source is learned, replayed once the
    // run latches it, so the detector hears the whole tone.
    let mut rng = Rng::new(7);
    let mut sig = Signal::default();
    sig.key(&mut rng, '5', -10.0, ms(80)).silence(ms(200));
    let mut t = T::new(params(Law::ALaw, None), InbandMode::Always);
    t.audio_in(Law::ALaw, &sig.through(Law::ALaw), &[]);
    t.run_to(1000);
    assert_eq!(t.s.destination(), NAT.parse().unwrap());
    assert_eq!(t.pressed(), "5");
}

#[test]
fn media_from_an_implausible_source_is_never_read_nor_answered() {
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Auto);
    // Before the caller: a sprayer's run of events and audio, in perfect
    // sequence, from an address neither the SDP, the signalling nor the
    // allow-list names.
    let sprayer = "203.0.113.66:4000";
    for (i, p) in press(3, 9, 1, 0).into_iter().enumerate() {
        t.run_to(20 * i as u64);
        t.inject(sprayer, &p);
    }
    for seq in 20..40u16 {
        t.inject(sprayer, &packet(8, 9, seq, 0, false, &[0xD5; 160]));
    }
    assert_eq!(t.pressed(), "");
    assert_eq!(t.s.destination(), SDP.parse().unwrap());
    assert_eq!(t.s.rejected().implausible, 28);
    t.run_to(500);
    assert!(
        t.sent
            .iter()
            .all(|s| s.destination != sprayer.parse().unwrap()),
        "the sprayer hears nothing"
    );
}

#[test]
fn a_latched_live_stream_is_never_taken_over() {
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Auto);
    t.latch_caller();
    // Plausible addresses (the SDP's host, the signalling's host on
    // another port): key events in sequence, a new SSRC, audio runs too,
    // while the caller goes on talking.
    for (n, sprayer) in ["192.0.2.10:40002", "198.51.100.7:5000"].iter().enumerate() {
        let base = 1000 * n as u16;
        for (i, p) in press(3, 0xBAD, base, 0).into_iter().enumerate() {
            t.run_to(100 + 20 * i as u64);
            t.inject(sprayer, &p);
            let ts = t.rx_ts;
            t.rtp_in(8, ts, false, &[0xD5; 160]);
            t.rx_ts = t.rx_ts.wrapping_add(160);
        }
        for seq in 0..10u16 {
            t.inject(
                sprayer,
                &packet(8, 0xBAD, base + 100 + seq, 0, false, &[0xD5; 160]),
            );
        }
    }
    assert_eq!(t.pressed(), "");
    assert_eq!(t.s.destination(), NAT.parse().unwrap());
    assert!(t.s.rejected().not_latched >= 36, "{:?}", t.s.rejected());
}

#[test]
fn a_silent_source_gives_way_to_an_audio_run_but_never_to_key_events() {
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Auto);
    t.latch_caller();
    // The caller's relay fails over: silence, then the new path. Its key
    // events alone never move the latch.
    t.run_to(2_000);
    let relay = "198.51.100.7:62000";
    for p in press(7, 55, 1, 0) {
        t.inject(relay, &p);
    }
    assert_eq!(t.s.destination(), NAT.parse().unwrap());
    assert_eq!(t.pressed(), "");
    // Its audio in sequence does, after the probation.
    for seq in 20..20 + 2 * u16::from(crate::media::source::PROBATION) {
        t.inject(relay, &packet(8, 55, seq, 0, false, &[0xD5; 160]));
    }
    assert_eq!(t.s.destination(), relay.parse().unwrap());
    for p in press(7, 55, 30, 800) {
        t.inject(relay, &p);
    }
    assert_eq!(t.pressed(), "7");
}

#[test]
fn the_sdps_own_address_wins_a_race_at_the_start() {
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Auto);
    // A spoofer of the signalling host starts first and keeps going, in
    // perfect sequence; the caller answers from the address it announced.
    let spoofer = "198.51.100.7:7000";
    t.inject(spoofer, &packet(8, 66, 500, 0, false, &[0xD5; 160]));
    for i in 1..40u16 {
        t.inject(spoofer, &packet(8, 66, 500 + i, 0, false, &[0xD5; 160]));
        t.inject(SDP, &packet(8, 77, 1000 + i, 0, false, &[0xD5; 160]));
    }
    assert_eq!(t.s.latched_source(), Some(SDP.parse().unwrap()));
    for p in press(3, 66, 600, 0) {
        t.inject(spoofer, &p);
    }
    assert_eq!(t.pressed(), "");
    assert!(t.s.rejected().not_latched > 0);
}

#[test]
fn a_stray_packet_from_the_sdps_address_does_not_hold_the_caller_back() {
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Auto);
    // The relay sends once from the SDP's port, then from its other one.
    t.inject(SDP, &packet(8, 5, 1, 0, false, &[0xD5; 160]));
    t.run_to(500);
    let other = "192.0.2.10:40002";
    for seq in 10..10 + 2 * u16::from(crate::media::source::PROBATION) {
        t.inject(other, &packet(8, 5, seq, 0, false, &[0xD5; 160]));
    }
    assert_eq!(t.s.latched_source(), Some(other.parse().unwrap()));
}

#[test]
fn rtcp_from_another_host_does_not_redirect_reports() {
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Auto);
    t.latch_caller();
    let report = [0x80, 201, 0, 1, 0, 0, 0, 1];
    t.s.handle_input(
        t.now,
        Input::Rtcp {
            from: "203.0.113.66:4001".parse().unwrap(),
            data: &report,
        },
    );
    t.run_to(5_100);
    let rtcp: Vec<_> = t
        .sent
        .iter()
        .filter(|s| s.channel == Channel::Rtcp)
        .collect();
    assert!(!rtcp.is_empty());
    assert!(
        rtcp.iter()
            .all(|s| s.destination == "198.51.100.7:61001".parse().unwrap()),
        "reports go to the caller's RTP port + 1"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary datagrams on both ports, arbitrary INFO keys: no panic,
        /// and the session keeps sending one frame per ptime.
        #[test]
        fn arbitrary_datagrams_never_break_the_session(
            grams in proptest::collection::vec(
                (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200)),
                0..40,
            ),
        ) {
            let mut t = T::new(params(Law::MuLaw, TE), InbandMode::Always);
            let from: SocketAddr = NAT.parse().unwrap();
            for (i, (rtcp, mut data)) in grams.into_iter().enumerate() {
                if data.len() >= 12 && i % 2 == 0 {
                    data[0] = 0x80; // make half of them parse as RTP
                    data[1] = [0u8, 101, 8, 13][i % 4];
                }
                t.run_to(10 * i as u64);
                let input = if rtcp { Input::Rtcp { from, data: &data } } else { Input::Rtp { from, data: &data } };
                t.s.handle_input(t.now, input);
                t.drain();
            }
            t.run_to(1000);
            prop_assert_eq!(t.rtp_sent().len(), 51);
        }
    }
}

#[test]
fn renegotiate_hold_resume_new_address_codec_and_ptime() {
    let mut t = T::new(params(Law::ALaw, TE), InbandMode::Auto);
    let id = t.s.play(tone_prompt(8000)); // 1 s
    t.run_to(100);
    t.latch_caller(); // latched to NAT
    assert_eq!(t.s.destination(), NAT.parse().unwrap());
    let sent_before_hold = t.rtp_sent().len();
    // Hold (RFC 3264 §8.4): nothing sent, no inactivity while on hold.
    let mut held = params(Law::ALaw, TE);
    held.remote_rtp = "0.0.0.0:40000".parse().unwrap();
    t.s.renegotiate(t.now, held, false, false);
    t.run_to(40_100);
    assert_eq!(t.rtp_sent().len(), sent_before_hold, "silent on hold");
    assert!(!t.events.contains(&MediaEvent::Inactive), "{:?}", t.events);
    assert!(
        t.events.contains(&MediaEvent::PlayFinished(id)),
        "the prompt keeps its clock on hold: it finishes, unheard"
    );
    // Resume at a new address with PCMU and 30 ms: numbering continues.
    let mut moved = params(Law::MuLaw, None);
    moved.remote_rtp = "192.0.2.99:50000".parse().unwrap();
    moved.ptime = Duration::from_millis(30);
    t.s.renegotiate(t.now, moved, true, true);
    t.run_to(40_400);
    let sent = t.rtp_sent();
    let after = &sent[sent_before_hold..];
    assert_eq!(after.len(), 10, "one frame per 30 ms");
    assert!(
        after
            .iter()
            .all(|p| p.3 == "192.0.2.99:50000".parse().unwrap())
    );
    assert!(after.iter().all(|p| p.4.len() == 240 && p.4[0] == 0xFF));
    let (last_before, first_after) = (&sent[sent_before_hold - 1], &after[0]);
    assert_eq!(
        first_after.0,
        last_before.0.wrapping_add(1),
        "sequence continues"
    );
    for w in after.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(240));
    }
    // Receiving again: the inactivity timer runs from the resume.
    t.run_to(40_100 + 30_500);
    assert_eq!(
        t.events
            .iter()
            .filter(|e| **e == MediaEvent::Inactive)
            .count(),
        1
    );
}
