//! Conformance part B on packets built by hand.

use super::*;

struct Call {
    rx: EventReceiver,
    t0: Instant,
    out: Vec<DigitEvent>,
}

fn block(code: u8, end: bool, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [code, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
}

impl Call {
    fn new(rate: u32) -> Call {
        Call {
            rx: EventReceiver::new(rate),
            t0: Instant::now(),
            out: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn drain(&mut self) {
        while let Some(e) = self.rx.poll_event() {
            self.out.push(e);
        }
    }

    /// A packet at `ms` with the given blocks.
    fn send(&mut self, ms: u64, ssrc: u32, ts: u32, marker: bool, blocks: &[[u8; 4]]) {
        let payload: Vec<u8> = blocks.iter().flatten().copied().collect();
        let h = EventHeader {
            ssrc,
            timestamp: ts,
            marker,
        };
        self.rx.handle_packet(self.at(ms), h, &payload);
        self.drain();
    }

    /// A whole press as a well-behaved sender makes it: updates every
    /// 20 ms (`step` units), marker on the first, end sent three times.
    fn press(&mut self, ms: u64, ssrc: u32, ts: u32, code: u8, units: u32, step: u32) {
        let mut d = step;
        let mut t = ms;
        while d < units {
            self.send(t, ssrc, ts, d == step, &[block(code, false, d as u16)]);
            d += step;
            t += 20;
        }
        for _ in 0..3 {
            self.send(t, ssrc, ts, false, &[block(code, true, units as u16)]);
        }
    }

    fn timeout(&mut self, ms: u64) {
        self.rx.handle_timeout(self.at(ms));
        self.drain();
    }

    fn keys(&self) -> String {
        super::super::testsig::ended(&self.out)
    }

    fn durations(&self) -> Vec<Duration> {
        self.out
            .iter()
            .filter_map(|e| match e {
                DigitEvent::End { duration, .. } => Some(*duration),
                DigitEvent::Begin { .. } => None,
            })
            .collect()
    }
}

#[test]
fn b1_basic_press() {
    let mut c = Call::new(8000);
    c.press(0, 7, 1000, 5, 960, 160);
    assert_eq!(c.keys(), "5");
    assert_eq!(c.durations(), [Duration::from_millis(120)]);
    assert!(matches!(c.out[0], DigitEvent::Begin { .. }));
}

#[test]
fn b2_only_the_end_packets() {
    let mut c = Call::new(8000);
    for i in 0..3 {
        c.send(i * 20, 7, 1000, false, &[block(9, true, 800)]);
    }
    assert_eq!(c.keys(), "9");
    assert_eq!(c.durations(), [Duration::from_millis(100)]);
}

#[test]
fn b4_lost_end_then_next_key() {
    let mut c = Call::new(8000);
    for i in 1..5 {
        c.send(
            i * 20,
            7,
            1000,
            i == 1,
            &[block(1, false, (i * 160) as u16)],
        );
    }
    c.press(200, 7, 2600, 2, 800, 160);
    assert_eq!(c.keys(), "12");
    assert_eq!(c.durations()[0], Duration::from_millis(80));
}

#[test]
fn b4_lost_end_closed_by_timeout() {
    let mut c = Call::new(8000);
    for i in 1..5 {
        c.send(i * 20, 7, 1000, false, &[block(3, false, (i * 160) as u16)]);
    }
    assert_eq!(c.rx.poll_timeout(), Some(c.at(80) + DEFAULT_END_TIMEOUT));
    c.timeout(300);
    assert_eq!(c.keys(), "");
    c.timeout(580);
    assert_eq!(c.keys(), "3");
    // A straggling end afterwards is not a second digit.
    c.send(600, 7, 1000, false, &[block(3, true, 800)]);
    assert_eq!(c.keys(), "3");
    assert_eq!(c.rx.poll_timeout(), None);
}

#[test]
fn b5_same_key_twice() {
    let mut c = Call::new(8000);
    c.press(0, 7, 1000, 4, 800, 160);
    c.press(300, 7, 1000 + 2400, 4, 800, 160);
    assert_eq!(c.keys(), "44");
}

#[test]
fn b6_marker_variants() {
    let mut none = Call::new(8000);
    let mut every = Call::new(8000);
    for (c, m) in [(&mut none, false), (&mut every, true)] {
        for i in 1..6 {
            c.send(i * 20, 9, 500, m, &[block(6, false, (i * 160) as u16)]);
        }
        for i in 0..3 {
            c.send(120 + i * 20, 9, 500, m, &[block(6, true, 960)]);
        }
        assert_eq!(c.keys(), "6");
    }
}

#[test]
fn b7_reorder_duplicates_zero_duration() {
    let mut c = Call::new(8000);
    c.send(0, 7, 1000, true, &[block(8, false, 0)]);
    c.send(20, 7, 1000, false, &[block(8, false, 320)]);
    c.send(25, 7, 1000, false, &[block(8, false, 160)]); // late, shorter
    c.send(40, 7, 1000, false, &[block(8, false, 320)]); // duplicate
    c.send(60, 7, 1000, false, &[block(8, true, 640)]);
    c.send(61, 7, 1000, false, &[block(8, false, 480)]); // update after the end
    c.send(80, 7, 1000, false, &[block(8, true, 640)]);
    c.send(100, 7, 1000, false, &[block(8, true, 640)]);
    assert_eq!(c.keys(), "8");
    assert_eq!(c.durations(), [Duration::from_millis(80)]);
}

#[test]
fn b8_long_event_in_segments() {
    let mut c = Call::new(8000);
    let ts = 0xFFFF_0000u32; // and the timestamp wraps on the way
    let mut t = 0;
    let mut d = 160u32;
    while d < 0xFFFF {
        c.send(t, 7, ts, d == 160, &[block(0, false, d as u16)]);
        d += 160;
        t += 20;
    }
    c.send(t, 7, ts, false, &[block(0, false, 0xFFFF)]);
    let seg = ts.wrapping_add(0xFFFF);
    let rest = 80_000 - 0xFFFF;
    let mut d = 160u32;
    while d < rest {
        t += 20;
        c.send(t, 7, seg, false, &[block(0, false, d as u16)]);
        d += 160;
    }
    for _ in 0..3 {
        t += 20;
        c.send(t, 7, seg, false, &[block(0, true, rest as u16)]);
    }
    // A retransmitted end of the first segment changes nothing.
    c.send(t + 5, 7, ts, false, &[block(0, false, 0xFFFF)]);
    assert_eq!(c.keys(), "0");
    assert_eq!(c.durations(), [Duration::from_secs(10)]);
}

#[test]
fn b9_legacy_duration_wrap() {
    let mut c = Call::new(8000);
    let mut d = 0u32;
    let mut t = 0;
    while d < 80_000 {
        d += 400;
        c.send(t, 7, 42, false, &[block(7, false, (d % 0x1_0000) as u16)]);
        t += 50;
    }
    for _ in 0..3 {
        c.send(
            t,
            7,
            42,
            false,
            &[block(7, true, (80_000 % 0x1_0000) as u16)],
        );
    }
    assert_eq!(c.keys(), "7");
    assert_eq!(c.durations(), [Duration::from_secs(10)]);
}

#[test]
fn b12_robust_parsing() {
    let mut c = Call::new(8000);
    for code in [16u8, 32, 255] {
        for i in 0..3 {
            c.send(
                i * 20,
                7,
                100 + u32::from(code),
                false,
                &[block(code, i == 2, 480)],
            );
        }
    }
    let h = EventHeader {
        ssrc: 7,
        timestamp: 9000,
        marker: true,
    };
    c.rx.handle_packet(c.at(100), h, &[1, 0x80]);
    c.rx.handle_packet(c.at(100), h, &[]);
    c.rx.handle_packet(c.at(100), h, &[1, 0xFF, 0xFF, 0xFF, 0xAA, 0x55]);
    c.drain();
    // The last one is a real block of key 1 (R bit and volume 63 set),
    // ended; the stray two bytes after it are ignored.
    assert_eq!(c.keys(), "1");
    for v in 0..=255u8 {
        c.rx.handle_packet(c.at(200), h, &[v, v, v, v]);
    }
}

#[test]
fn b13_two_blocks_in_one_payload() {
    let mut c = Call::new(8000);
    c.press(0, 7, 1000, 1, 640, 160);
    // "1" ending and "2" starting, the second block starting 800 units later.
    c.send(
        200,
        7,
        4000,
        false,
        &[block(1, true, 800), block(2, false, 160)],
    );
    c.send(220, 7, 4800, false, &[block(2, false, 320)]);
    c.send(240, 7, 4800, false, &[block(2, true, 480)]);
    c.send(260, 7, 4800, false, &[block(2, true, 480)]);
    assert_eq!(c.keys(), "112");
    assert_eq!(c.durations()[2], Duration::from_millis(60));
}

#[test]
fn b14_sixteen_khz_clock() {
    let mut c = Call::new(16000);
    c.press(0, 7, 1000, 5, 1600, 320);
    assert_eq!(c.keys(), "5");
    assert_eq!(c.durations(), [Duration::from_millis(100)]);
}

#[test]
fn b16_new_ssrc_mid_call() {
    let mut c = Call::new(8000);
    c.press(0, 7, 50_000, 1, 800, 160);
    // The new stream's timestamps are unrelated (here: "older").
    c.press(500, 8, 100, 2, 800, 160);
    // An unfinished event when the SSRC changes is closed.
    c.send(800, 8, 5000, false, &[block(3, false, 160)]);
    c.press(900, 9, 7, 4, 800, 160);
    assert_eq!(c.keys(), "1234");
}

#[test]
fn b16_late_end_from_the_old_ssrc_changes_nothing() {
    let mut c = Call::new(8000);
    c.press(0, 7, 50_000, 1, 800, 160);
    c.send(300, 8, 100, true, &[block(2, false, 160)]);
    c.send(310, 7, 50_000, false, &[block(1, true, 800)]); // straggler
    c.send(320, 8, 100, false, &[block(2, false, 320)]);
    for i in 0..3 {
        c.send(340 + i, 8, 100, false, &[block(2, true, 640)]);
    }
    assert_eq!(c.keys(), "12");
    assert_eq!(c.durations()[1], Duration::from_millis(80));
}

#[test]
fn stale_blocks_and_timestamp_wrap() {
    let mut c = Call::new(8000);
    c.press(0, 7, 0xFFFF_FE00, 1, 480, 160);
    // The next event after the 32-bit wrap is newer, not older.
    c.press(300, 7, 0x0000_0100, 2, 480, 160);
    // A stray update of an event older than the newest is dropped.
    c.send(600, 7, 0xFFFF_FD00, false, &[block(3, false, 160)]);
    c.timeout(2000);
    assert_eq!(c.keys(), "12");
    assert!(is_before(0xFFFF_FFF0, 0x10));
    assert!(!is_before(0x10, 0xFFFF_FFF0));
    assert!(!is_before(5, 5));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any packets in any order: no panic; Begin/End strictly alternate
        /// per event, every Begin is ended (after the timeout at the latest),
        /// and no event is reported twice.
        #[test]
        fn arbitrary_packets_keep_begin_end_paired(
            packets in proptest::collection::vec(
                (0u32..3, 0u32..6, proptest::collection::vec(any::<u8>(), 0..13), 0u64..40),
                0..60,
            ),
            rate in prop_oneof![Just(8000u32), Just(16000), Just(48000)],
        ) {
            let mut c = Call::new(rate);
            let mut t = 0;
            for (ssrc, ts, payload, dt) in packets {
                t += dt;
                let h = EventHeader { ssrc, timestamp: ts * 800, marker: dt % 2 == 0 };
                c.rx.handle_packet(c.at(t), h, &payload);
                c.drain();
            }
            c.timeout(t + 10_000);
            let mut open = false;
            for e in &c.out {
                match e {
                    DigitEvent::Begin { .. } => { prop_assert!(!open); open = true; }
                    DigitEvent::End { .. } => { prop_assert!(open); open = false; }
                }
            }
            prop_assert!(!open);
        }
    }
}
