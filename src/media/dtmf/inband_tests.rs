//! Conformance part A (shared/reference/dtmf-conformance.md) on generated
//! signals: random phase, random alignment to 20 ms frames, through both
//! A-law and µ-law.

use std::time::Duration;

use super::super::testsig::{HIGH, LOW, Rng, Signal, amp, detect, ended, ms};
use super::*;
use crate::media::g711::Law;

const LAWS: [Law; 2] = [Law::ALaw, Law::MuLaw];
const ALL: &str = "123A456B789C*0#D";

fn keys_of(sig: &Signal, law: Law, rng: &mut Rng) -> String {
    ended(&detect(rng, &sig.through(law), &[]).1)
}

#[test]
fn a1_all_keys_ten_times() {
    let mut rng = Rng::new(1);
    for law in LAWS {
        for _ in 0..2 {
            let mut sig = Signal::default();
            sig.keys(&mut rng, &ALL.repeat(10), ms(50), ms(50));
            assert_eq!(keys_of(&sig, law, &mut rng), ALL.repeat(10), "{law:?}");
        }
    }
}

#[test]
fn a2_frequency_within_1_5_percent_accepted() {
    let mut rng = Rng::new(2);
    for law in LAWS {
        for key in ALL.chars() {
            let (r, c) = Key::from_char(key).unwrap().row_col();
            for (dl, dh) in [
                (1.015, 1.015),
                (0.985, 0.985),
                (1.015, 0.985),
                (0.985, 1.015),
            ] {
                let mut sig = Signal::default();
                let f = (LOW[r] * dl, HIGH[c] * dh);
                sig.pair(&mut rng, f, (amp(-10.0), amp(-10.0)), ms(60))
                    .silence(ms(60));
                assert_eq!(
                    keys_of(&sig, law, &mut rng),
                    key.to_string(),
                    "{law:?} {f:?}"
                );
            }
        }
    }
}

#[test]
fn a3_frequency_off_by_3_5_or_5_percent_rejected() {
    let mut rng = Rng::new(3);
    for law in LAWS {
        for tone in 0..8 {
            for d in [1.035, 0.965, 1.05, 0.95] {
                // The other group's tone stays nominal.
                let (r, c) = (tone % 4, tone % 4);
                let f = if tone < 4 {
                    (LOW[r] * d, HIGH[c])
                } else {
                    (LOW[r], HIGH[c] * d)
                };
                let mut sig = Signal::default();
                sig.pair(&mut rng, f, (amp(-10.0), amp(-10.0)), ms(100))
                    .silence(ms(60));
                assert_eq!(keys_of(&sig, law, &mut rng), "", "{law:?} {f:?}");
            }
        }
    }
}

#[test]
fn a4_levels_minus_3_to_minus_36_accepted_minus_50_rejected() {
    let mut rng = Rng::new(4);
    for law in LAWS {
        for db in -36..=-3 {
            let mut sig = Signal::default();
            for k in "159#".chars() {
                sig.key(&mut rng, k, db as f32, ms(50)).silence(ms(50));
            }
            assert_eq!(keys_of(&sig, law, &mut rng), "159#", "{law:?} {db} dBm0");
        }
        let mut sig = Signal::default();
        for k in ALL.chars() {
            sig.key(&mut rng, k, -50.0, ms(100)).silence(ms(50));
        }
        assert_eq!(keys_of(&sig, law, &mut rng), "", "{law:?} −50 dBm0");
    }
}

fn twisted(rng: &mut Rng, key: char, twist_db: f32) -> Signal {
    // Keep the mean level at −10 dBm0; split the twist between the groups.
    let (r, c) = Key::from_char(key).unwrap().row_col();
    let a = (amp(-10.0 - twist_db / 2.0), amp(-10.0 + twist_db / 2.0));
    let mut sig = Signal::default();
    sig.pair(rng, (LOW[r], HIGH[c]), a, ms(60)).silence(ms(60));
    sig
}

#[test]
fn a5_twist() {
    let mut rng = Rng::new(5);
    for law in LAWS {
        for key in ALL.chars() {
            for t in [-7.5, 3.5] {
                let sig = twisted(&mut rng, key, t);
                assert_eq!(
                    keys_of(&sig, law, &mut rng),
                    key.to_string(),
                    "{law:?} {t} dB"
                );
            }
            for t in [-12.0, 8.0] {
                let sig = twisted(&mut rng, key, t);
                assert_eq!(keys_of(&sig, law, &mut rng), "", "{law:?} {t} dB");
            }
        }
    }
}

#[test]
fn a6_forty_ms_tones_detected() {
    let mut rng = Rng::new(6);
    for law in LAWS {
        for _ in 0..5 {
            let mut sig = Signal::default();
            sig.keys(&mut rng, ALL, ms(40), ms(40));
            assert_eq!(keys_of(&sig, law, &mut rng), ALL, "{law:?}");
        }
    }
}

#[test]
fn a7_twenty_and_fifteen_ms_tones_rejected() {
    let mut rng = Rng::new(7);
    for law in LAWS {
        for on in [20, 15] {
            for _ in 0..5 {
                let mut sig = Signal::default();
                sig.keys(&mut rng, ALL, ms(on), ms(60));
                assert_eq!(keys_of(&sig, law, &mut rng), "", "{law:?} {on} ms");
            }
        }
    }
}

#[test]
fn a9_forty_ms_pause_splits_a_repeated_key() {
    let mut rng = Rng::new(9);
    for law in LAWS {
        for _ in 0..20 {
            let mut sig = Signal::default();
            sig.key(&mut rng, '5', -10.0, ms(50)).silence(ms(40));
            sig.key(&mut rng, '5', -10.0, ms(50)).silence(ms(60));
            assert_eq!(keys_of(&sig, law, &mut rng), "55", "{law:?}");
        }
    }
}

#[test]
fn a10_rolling_keys_without_gap() {
    let mut rng = Rng::new(10);
    for law in LAWS {
        for _ in 0..10 {
            let mut sig = Signal::default();
            sig.key(&mut rng, '1', -10.0, ms(60));
            sig.key(&mut rng, '2', -10.0, ms(60)).silence(ms(60));
            assert_eq!(keys_of(&sig, law, &mut rng), "12", "{law:?}");
        }
    }
}

#[test]
fn a11_long_press_one_digit_with_its_duration() {
    let mut rng = Rng::new(11);
    for law in LAWS {
        for _ in 0..3 {
            let mut sig = Signal::default();
            sig.key(&mut rng, '5', -10.0, ms(5000)).silence(ms(100));
            let (start, events) = detect(&mut rng, &sig.through(law), &[]);
            assert_eq!(ended(&events), "5");
            let Some(DigitEvent::End {
                begin, duration, ..
            }) = events.last().copied()
            else {
                panic!("no end: {events:?}")
            };
            let err = duration.as_secs_f64() - 5.0;
            assert!(err.abs() <= 0.030, "duration {duration:?}");
            let lag = begin.duration_since(start);
            assert!(
                lag <= Duration::from_millis(15),
                "begin {lag:?} after the tone"
            );
        }
    }
}

#[test]
fn a11_begin_comes_early_for_barge_in() {
    let mut rng = Rng::new(111);
    let mut sig = Signal::default();
    sig.key(&mut rng, '7', -10.0, ms(1000)).silence(ms(100));
    let samples = sig.through(Law::ALaw);
    let mut det = InbandDetector::new();
    let t0 = std::time::Instant::now();
    let mut begin_frame = None;
    for (i, f) in samples.chunks(160).enumerate() {
        det.handle_samples(t0 + Duration::from_millis(20 * i as u64), f);
        if let Some(DigitEvent::Begin { key, .. }) = det.poll_event() {
            assert_eq!(key.as_char(), '7');
            begin_frame = Some(i);
            break;
        }
    }
    // Reported within the third 20 ms frame of the tone.
    assert!(matches!(begin_frame, Some(0..=2)), "{begin_frame:?}");
}

#[test]
fn a13_noise_fifteen_db_below_then_noise_alone() {
    let mut rng = Rng::new(13);
    for (law, n) in [(Law::ALaw, 1000), (Law::MuLaw, 1000)] {
        let mut want = String::new();
        let mut sig = Signal::default();
        for _ in 0..n {
            let k = ALL.as_bytes()[rng.below(16)] as char;
            want.push(k);
            sig.key(&mut rng, k, -10.0, ms(50)).silence(ms(50));
        }
        sig.noise(&mut rng, -25.0);
        assert_eq!(keys_of(&sig, law, &mut rng), want, "{law:?}");
    }
    for law in LAWS {
        let mut sig = Signal::default();
        sig.silence(ms(60_000)).noise(&mut rng, -25.0);
        assert_eq!(keys_of(&sig, law, &mut rng), "", "{law:?}");
        let mut loud = Signal::default();
        loud.silence(ms(20_000)).noise(&mut rng, -5.0);
        assert_eq!(keys_of(&loud, law, &mut rng), "", "{law:?}");
    }
}

/// Speech-like signal: a glottal pulse train (random pitch with glides and
/// vibrato) through three formant resonators set to random vowels, with
/// syllable envelopes, fricative noise and pauses, at random levels. It
/// stands in for espeak-ng speech (not installed in CI): what matters for
/// talk-off is harmonic-rich voiced sound sweeping through the DTMF band.
fn speech_like(rng: &mut Rng, seconds: u32) -> Signal {
    const VOWELS: [[f32; 3]; 8] = [
        [730.0, 1090.0, 2440.0],
        [270.0, 2290.0, 3010.0],
        [300.0, 870.0, 2240.0],
        [530.0, 1840.0, 2480.0],
        [570.0, 840.0, 2410.0],
        [660.0, 1720.0, 2410.0],
        [440.0, 1020.0, 2240.0],
        [490.0, 1350.0, 1690.0],
    ];
    let total = ms(seconds * 1000);
    let mut x = Vec::with_capacity(total);
    let mut phase = 0.0f32;
    let mut state = [[0.0f32; 2]; 3];
    while x.len() < total {
        let syl = ms(80 + rng.below(300) as u32);
        let v = VOWELS[rng.below(8)];
        let f0 = 70.0 + rng.uniform() * 250.0;
        let glide = (rng.uniform() - 0.5) * 0.6;
        let gain = amp(-30.0 + rng.uniform() * 27.0) * 0.05;
        let voiced = rng.below(5) != 0;
        for i in 0..syl {
            let t = i as f32 / syl as f32;
            let f = f0 * (1.0 + glide * t) * (1.0 + 0.02 * (t * 40.0).sin());
            phase += f / 8000.0;
            let exc = if voiced {
                if phase >= 1.0 {
                    phase -= 1.0;
                    1.0
                } else {
                    0.0
                }
            } else {
                rng.gauss() * 0.05
            };
            let env = (std::f32::consts::PI * t).sin();
            let mut y = exc * gain * 20.0 * env;
            for (k, fk) in v.iter().enumerate() {
                let bw = 80.0 + 40.0 * k as f32;
                let r = (-std::f32::consts::PI * bw / 8000.0).exp();
                let c = 2.0 * r * (std::f32::consts::TAU * fk / 8000.0).cos();
                let out = y + c * state[k][0] - r * r * state[k][1];
                state[k][1] = state[k][0];
                state[k][0] = out;
                y = out * (1.0 - r);
            }
            x.push((y * 40.0).clamp(-32000.0, 32000.0));
        }
        x.extend(std::iter::repeat_n(0.0, ms(rng.below(200) as u32)));
    }
    Signal { x }
}

#[test]
fn a14_talk_off_on_speech_like_signal() {
    let mut rng = Rng::new(14);
    for law in LAWS {
        let sig = speech_like(&mut rng, 60);
        assert_eq!(keys_of(&sig, law, &mut rng), "", "{law:?}");
    }
}

/// A14 on real synthetic speech: 192 s of espeak-ng (24 renderings, four
/// languages, male and female voices, two pitches, several speeds; see
/// tests/data/media/make.sh), decoded by the prompt loader, played at three
/// gains through both laws: 19 minutes of speech, in debug in seconds.
#[test]
fn a14_talk_off_on_espeak_speech() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/media/talk-off-speech.ogg");
    let pcm = crate::media::prompts::load_pcm(&path).unwrap();
    assert!(pcm.len() > 8000 * 180);
    let mut rng = Rng::new(141);
    for gain_db in [0.0f32, -12.0, -24.0] {
        let g = 10f32.powf(gain_db / 20.0);
        let sig = Signal {
            x: pcm.iter().map(|&v| f32::from(v) * g).collect(),
        };
        for law in LAWS {
            assert_eq!(keys_of(&sig, law, &mut rng), "", "{law:?} {gain_db} dB");
        }
    }
}

/// A14 at full length: the espeak-ng speech at ten gains (−27..0 dB)
/// through both laws (64 minutes), plus 30 minutes of the speech-like
/// signal: `cargo test --release --lib -- --ignored a14_talk_off_long`.
#[test]
#[ignore = "94 minutes of signal: run in release"]
fn a14_talk_off_long() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/media/talk-off-speech.ogg");
    let pcm = crate::media::prompts::load_pcm(&path).unwrap();
    let mut rng = Rng::new(1414);
    for step in 0..10 {
        let g = 10f32.powf(-3.0 * step as f32 / 20.0);
        let sig = Signal {
            x: pcm.iter().map(|&v| f32::from(v) * g).collect(),
        };
        for law in LAWS {
            assert_eq!(keys_of(&sig, law, &mut rng), "", "{law:?} −{} dB", 3 * step);
        }
    }
    for _ in 0..15 {
        for law in LAWS {
            let sig = speech_like(&mut rng, 60);
            assert_eq!(keys_of(&sig, law, &mut rng), "", "{law:?}");
        }
    }
}

#[test]
fn a15_short_dropout_inside_a_tone_is_one_digit() {
    let mut rng = Rng::new(15);
    for law in LAWS {
        for gap in [5, 10, 15, 19] {
            for _ in 0..5 {
                let mut sig = Signal::default();
                sig.key(&mut rng, '8', -10.0, ms(120)).silence(ms(gap));
                sig.key(&mut rng, '8', -10.0, ms(120)).silence(ms(80));
                assert_eq!(keys_of(&sig, law, &mut rng), "8", "{law:?} {gap} ms");
            }
        }
    }
}

#[test]
fn a15_lost_frame_inside_a_tone_is_one_digit() {
    let mut rng = Rng::new(151);
    for law in LAWS {
        for _ in 0..10 {
            let mut sig = Signal::default();
            sig.silence(ms(100))
                .key(&mut rng, '0', -10.0, ms(100))
                .silence(ms(100));
            // Frames 7 and 8 hold 140..180 ms of the stream (after the lead-in):
            // the middle of the tone.
            let lost = [7 + rng.below(2)];
            let (_, events) = detect(&mut rng, &sig.through(law), &lost);
            assert_eq!(ended(&events), "0", "{law:?}");
        }
    }
}

/// Prints detection rates around each limit (not an assertion):
/// `cargo test --release --lib -- --ignored --nocapture inband_margins`.
#[test]
#[ignore = "prints a table of margins"]
fn inband_margins() {
    let mut rng = Rng::new(99);
    let rate = |rng: &mut Rng, make: &dyn Fn(&mut Rng) -> Signal, want: &str| {
        let mut ok = 0;
        for i in 0..40 {
            let law = LAWS[i % 2];
            let sig = make(rng);
            ok += usize::from(keys_of(&sig, law, rng) == want);
        }
        ok as f32 / 40.0
    };
    for dev in [1.5f32, 2.0, 2.3, 2.7, 3.0, 3.5] {
        for tone in 0..8 {
            let make = |rng: &mut Rng| {
                let (r, c) = (tone % 4, tone % 4);
                let d = 1.0 + dev / 100.0 * if rng.below(2) == 0 { 1.0 } else { -1.0 };
                let f = if tone < 4 {
                    (LOW[r] * d, HIGH[c])
                } else {
                    (LOW[r], HIGH[c] * d)
                };
                let mut s = Signal::default();
                s.pair(rng, f, (amp(-10.0), amp(-10.0)), ms(100))
                    .silence(ms(60));
                s.noise(rng, -25.0);
                s
            };
            let key = Key::at(tone % 4, tone % 4).to_string();
            print!("{:.2} ", rate(&mut rng, &make, &key));
        }
        println!(" <- detection rate at ±{dev}% per tone (noise −25 dBm0)");
    }
    for on in [20u32, 22, 24, 26, 28, 30, 35, 40] {
        let make = |rng: &mut Rng| {
            let mut s = Signal::default();
            s.key(rng, '5', -10.0, ms(on)).silence(ms(60));
            s
        };
        println!("tone {on} ms: {:.2}", rate(&mut rng, &make, "5"));
    }
    for gap in [19u32, 22, 25, 28, 31, 34, 37, 40] {
        let make = |rng: &mut Rng| {
            let mut s = Signal::default();
            s.key(rng, '5', -10.0, ms(60)).silence(ms(gap));
            s.key(rng, '5', -10.0, ms(60)).silence(ms(60));
            s
        };
        println!(
            "gap {gap} ms: split rate {:.2}",
            rate(&mut rng, &make, "55")
        );
    }
}

#[test]
fn reported_durations_and_begins_are_close_to_the_truth() {
    let mut rng = Rng::new(21);
    for on in [40u32, 50, 100, 200, 1000] {
        let mut worst = (0f64, 0f64);
        let mut mean = (0f64, 0f64);
        for i in 0..20 {
            let law = LAWS[i % 2];
            let mut sig = Signal::default();
            sig.silence(ms(60))
                .key(&mut rng, '9', -10.0, ms(on))
                .silence(ms(100));
            let (start, events) = detect(&mut rng, &sig.through(law), &[]);
            let Some(DigitEvent::End {
                begin, duration, ..
            }) = events.last().copied()
            else {
                panic!("{on} ms: {events:?}")
            };
            let d_err = (duration.as_secs_f64() - f64::from(on) / 1000.0) * 1000.0;
            let b_err = (begin.duration_since(start).as_secs_f64() - 0.060) * 1000.0;
            mean.0 += d_err / 20.0;
            mean.1 += b_err / 20.0;
            if d_err.abs() > worst.0.abs() {
                worst.0 = d_err;
            }
            if b_err.abs() > worst.1.abs() {
                worst.1 = b_err;
            }
        }
        println!(
            "{on} ms tone: duration error mean {:+.1} worst {:+.1} ms; begin error mean {:+.1} worst {:+.1} ms",
            mean.0, worst.0, mean.1, worst.1
        );
        assert!(
            worst.0.abs() <= 8.0 && worst.1.abs() <= 5.0,
            "{on} ms: {worst:?}"
        );
    }
}

/// Combinations of the limits ("more cases of the same kind"): every key,
/// both laws, random phase and alignment; noise is 15 dB below the weaker
/// tone. `--nocapture` prints the table.
#[test]
fn combined_limits() {
    let mut rng = Rng::new(77);
    // (length, level, twist, offset, noise below the weaker tone, accept?)
    for (on, db, twist, dev, snr, accept) in [
        (40u32, -36.0f32, -7.5f32, 0.015f32, None, true),
        (40, -36.0, 3.5, -0.015, None, true),
        (40, -3.0, 3.5, 0.015, None, true),
        (40, -10.0, -7.5, 0.015, Some(15.0f32), true),
        (40, -30.0, 3.5, -0.015, Some(15.0), true),
        (50, -20.0, -7.5, -0.015, Some(15.0), true),
        (100, -3.0, 0.0, 0.035, Some(15.0), false),
        (100, -36.0, -7.5, -0.035, None, false),
        (20, -3.0, 0.0, 0.0, None, false),
        (20, -10.0, 3.5, 0.015, Some(15.0), false),
        (100, -10.0, -12.0, 0.0, Some(15.0), false),
        (100, -10.0, 8.0, 0.0, Some(15.0), false),
    ] {
        let mut ok = 0;
        let trials = 48;
        for i in 0..trials {
            let key = ALL.as_bytes()[i % 16] as char;
            let (r, c) = Key::from_char(key).unwrap().row_col();
            let d = 1.0 + dev;
            let a = (amp(db - twist / 2.0), amp(db + twist / 2.0));
            let mut sig = Signal::default();
            sig.silence(ms(40))
                .pair(&mut rng, (LOW[r] * d, HIGH[c] * d), a, ms(on))
                .silence(ms(60));
            if let Some(snr) = snr {
                sig.noise(&mut rng, db.min(db + twist) - snr);
            }
            let want = if accept {
                key.to_string()
            } else {
                String::new()
            };
            ok += usize::from(keys_of(&sig, LAWS[i % 2], &mut rng) == want);
        }
        println!(
            "{} {on} ms, {db} dBm0, twist {twist:+} dB, offset {:+.1} %, noise {snr:?} dB below: {:.3} as expected",
            if accept { "accept" } else { "reject" },
            dev * 100.0,
            ok as f32 / trials as f32
        );
        assert_eq!(
            ok, trials,
            "{on} ms {db} dBm0 twist {twist} offset {dev} noise {snr:?}"
        );
    }
}
