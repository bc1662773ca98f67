//! Conformance part D: one press, two paths.

use super::*;

fn k(c: char) -> Key {
    Key::from_char(c).unwrap()
}

struct M {
    m: KeyMerger,
    t0: Instant,
}

impl M {
    fn new() -> M {
        M {
            m: KeyMerger::new(),
            t0: Instant::now(),
        }
    }
    fn t(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
    fn begin(&mut self, s: Source, key: char, ms: u64) {
        let at = self.t(ms);
        self.m.handle(at, s, DigitEvent::Begin { key: k(key), at });
    }
    fn end(&mut self, s: Source, key: char, begin_ms: u64, dur_ms: u64) {
        let now = self.t(begin_ms + dur_ms);
        let begin = self.t(begin_ms);
        let duration = Duration::from_millis(dur_ms);
        self.m.handle(
            now,
            s,
            DigitEvent::End {
                key: k(key),
                begin,
                duration,
            },
        );
    }
    fn press(&mut self, s: Source, key: char, ms: u64, dur: u64) {
        self.begin(s, key, ms);
        self.end(s, key, ms, dur);
    }
    fn info(&mut self, key: char, ms: u64) {
        let now = self.t(ms);
        self.m
            .handle_info(now, k(key), Some(Duration::from_millis(100)));
    }
    /// (downs, pressed keys)
    fn out(&mut self) -> (String, String) {
        let (mut d, mut p) = (String::new(), String::new());
        while let Some(e) = self.m.poll_event() {
            match e {
                KeyEvent::Down { key, .. } => d.push(key.as_char()),
                KeyEvent::Pressed { key, .. } => p.push(key.as_char()),
            }
        }
        (d, p)
    }
}

#[test]
fn d_policy_inband_off_when_telephone_event_negotiated() {
    assert!(!InbandMode::Auto.active(true));
    assert!(InbandMode::Auto.active(false));
    assert!(InbandMode::Always.active(true));
    assert!(!InbandMode::Never.active(false));
    assert_eq!(InbandMode::default(), InbandMode::Auto);
}

#[test]
fn d_events_and_tones_of_one_press_count_once() {
    use Source::*;
    // Interleaved begin/end, either source first, a few ms apart.
    let mut m = M::new();
    m.begin(TelephoneEvent, '5', 0);
    m.begin(Inband, '5', 12);
    m.end(TelephoneEvent, '5', 0, 100);
    m.end(Inband, '5', 12, 95);
    m.begin(Inband, '7', 400);
    m.begin(TelephoneEvent, '7', 405);
    m.end(Inband, '7', 400, 80);
    m.end(TelephoneEvent, '7', 405, 80);
    assert_eq!(m.out(), ("57".into(), "57".into()));
}

#[test]
fn d_info_and_events_of_one_press_count_once() {
    use Source::*;
    let mut m = M::new();
    m.info('3', 10); // INFO sent at key down, arriving first
    m.press(TelephoneEvent, '3', 0, 120);
    m.press(TelephoneEvent, '9', 500, 120);
    m.info('9', 700); // INFO after the end
    m.press(Inband, '9', 505, 110);
    assert_eq!(m.out(), ("39".into(), "39".into()));
}

#[test]
fn d_repeated_key_on_two_paths_is_two_presses() {
    use Source::*;
    let mut m = M::new();
    for start in [0, 180, 360] {
        m.press(TelephoneEvent, '4', start, 100);
        m.press(Inband, '4', start + 5, 95);
    }
    assert_eq!(m.out(), ("444".into(), "444".into()));
}

#[test]
fn d_a_press_seen_by_one_source_only_still_counts() {
    use Source::*;
    let mut m = M::new();
    m.press(TelephoneEvent, '1', 0, 100);
    m.press(Inband, '2', 300, 100); // the phone sent no event for it
    m.info('3', 800);
    m.press(TelephoneEvent, '1', 1200, 100);
    m.press(Inband, '2', 1205, 100); // different key at the same time
    assert_eq!(m.out(), ("12312".into(), "12312".into()));
}

#[test]
fn d_old_presses_are_forgotten() {
    use Source::*;
    let mut m = M::new();
    for i in 0..100 {
        m.press(TelephoneEvent, '8', i * 1000, 100);
    }
    assert!(m.m.presses.len() <= 3);
    assert_eq!(m.out().1.len(), 100);
}

#[test]
fn a_press_heard_twice_is_credited_to_the_path_that_heard_it_first() {
    use Source::*;
    let sources = |m: &mut M| {
        let mut v = Vec::new();
        while let Some(e) = m.m.poll_event() {
            if let KeyEvent::Pressed { source, .. } = e {
                v.push(source);
            }
        }
        v
    };
    let mut m = M::new();
    m.begin(Inband, '7', 0);
    m.begin(TelephoneEvent, '7', 15);
    m.end(TelephoneEvent, '7', 15, 90);
    m.end(Inband, '7', 0, 110);
    m.info('7', 60);
    assert_eq!(sources(&mut m), vec![Inband]);
    m.info('8', 1_000);
    m.press(TelephoneEvent, '8', 1_050, 80);
    assert_eq!(sources(&mut m), vec![Info]);
}
