//! In-band DTMF detector (ITU-T Q.23 frequencies, Q.24 reception limits)
//! on 8 kHz linear samples, after G.711 decoding.
//!
//! Design (after reading spandsp, Asterisk `dsp.c` and libteletone, none of
//! which reaches the ±1.5 % accept / ±3.5 % reject frequency window with
//! a plain Goertzel block):
//!
//! * Every 5 ms (hop `H` = 40 samples) the last 10 ms (`N` = 80 samples)
//!   are Hann-windowed and correlated with the 8 keypad frequencies (a
//!   windowed single-bin DFT: the Goertzel bin without its leakage, so a
//!   tone of the other group 8 dB louder cannot bias the measurement).
//! * A window is a *hit* for a key when, for the strongest tone of each
//!   group: each tone is above −42 dBm0, the twist lies within −10..+6 dB,
//!   and the two tones hold ≥ 75 % of the window's energy (rejects noise,
//!   speech and tones that fill only part of the window).
//! * Frequency is measured, not guessed from bin energy: the phase of a
//!   tone's bin advances by 2π·f·H/fs between windows, so the accumulated
//!   `X[t]·conj(X[t−1])` over the run gives each tone's frequency to a
//!   few Hz; a key is accepted only within ±2.5 % of nominal, measured
//!   at every step of the run and on average, and only if the frequency
//!   holds steady (within 1.2 %) over the run: voices glide, keypads don't
//!   (this is what keeps espeak-ng speech from talking off a digit).
//! * Five consecutive hit windows (≥ 30 ms of tone: 40 ms tones pass with
//!   a window to spare, 20 ms tones reach at most four) start a digit; it
//!   continues while windows still show the key's pair as the strongest
//!   (holding ≥ 40 % of the energy), and ends after seven windows without
//!   (35 ms: a < 20 ms drop-out makes at most five, a 40 ms pause eight).
//!
//! ```text
//!           5 hits of key k               7 misses
//!   Idle ─────────────────────► InDigit(k) ─────────► Idle   (End)
//!                 (Begin)        │   ▲ 5 hits of key j ≠ k: End k, Begin j
//!                                └───┘
//! ```
//!
//! A frame lost in the network is neither tone nor silence
//! ([`InbandDetector::handle_lost`]): it leaves counts untouched.

use std::collections::VecDeque;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use super::{DigitEvent, Key};

/// Sample rate the detector runs at.
pub const SAMPLE_RATE: u32 = 8000;
const N: usize = 80;
const H: usize = 40;
const FREQS: [f32; 8] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];
/// Mean-square of a 0 dBm0 sine (peak 22 826, G.711 §3 / Q.24).
const DBM0_POWER: f32 = 22_826.0 * 22_826.0 / 2.0;
const MIN_TONE_DBM0: f32 = -42.0;
const CONT_TONE_DBM0: f32 = -45.0;
/// Twist = high − low, dB: accept −7.5..+3.5, reject −12 / +8 (Q.24).
const REVERSE_TWIST_DB: f32 = -10.0;
const NORMAL_TWIST_DB: f32 = 6.0;
const RATIO_ON: f32 = 0.75;
const RATIO_CONT: f32 = 0.40;
const FREQ_TOLERANCE: f32 = 0.025;
/// Largest change of a tone's measured frequency within a run.
const MAX_GLIDE: f32 = 0.012;
const HITS_TO_BEGIN: u32 = 5;
const MISSES_TO_END: u32 = 7;
/// Where, inside the first and last hit windows, the tone edges sit on
/// average (calibrated so that a held key measures its true length).
const BEGIN_OFFSET: u64 = 6;
const END_OFFSET: u64 = 26;

struct Tables {
    /// Hann window × e^{−jωn}: real and imaginary parts, for sample n and
    /// tone k at `[n][k]` (8 tones side by side: one vector lane each, so
    /// the correlation vectorises without reordering any sum).
    coef_re: [[f32; 8]; N],
    coef_im: [[f32; 8]; N],
    /// Tone power thresholds (mean-square) to start and to continue.
    min_on: f32,
    min_cont: f32,
    /// Hann window squared (energy normalisation).
    w2: [f32; N],
    /// (Σw)² / (2·Σw²): |X|²/(this·Σw²x²) = 1 for a pure tone.
    norm: f32,
    /// Σw: |X| = A·Σw/2 for a tone of amplitude A.
    sum_w: f32,
    /// e^{−jω₀H}: removes the nominal phase advance between windows.
    rot: [(f32, f32); 8],
}

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let mut coef_re = [[0.0; 8]; N];
    let mut coef_im = [[0.0; 8]; N];
    let mut w2 = [0.0; N];
    let (mut sum_w, mut sum_w2) = (0.0f64, 0.0f64);
    for n in 0..N {
        // Periodic Hann.
        let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N as f64).cos();
        sum_w += w;
        sum_w2 += w * w;
        w2[n] = (w * w) as f32;
        for (k, f) in FREQS.iter().enumerate() {
            let ph = 2.0 * std::f64::consts::PI * f64::from(*f) * n as f64 / f64::from(SAMPLE_RATE);
            coef_re[n][k] = (w * ph.cos()) as f32;
            coef_im[n][k] = (-w * ph.sin()) as f32;
        }
    }
    let rot = FREQS.map(|f| {
        let ph = 2.0 * std::f64::consts::PI * f64::from(f) * H as f64 / f64::from(SAMPLE_RATE);
        (ph.cos() as f32, -ph.sin() as f32)
    });
    Tables {
        coef_re,
        coef_im,
        min_on: DBM0_POWER * 10f32.powf(MIN_TONE_DBM0 / 10.0),
        min_cont: DBM0_POWER * 10f32.powf(CONT_TONE_DBM0 / 10.0),
        w2,
        norm: (sum_w * sum_w / (2.0 * sum_w2)) as f32,
        sum_w: sum_w as f32,
        rot,
    }
});

/// Sans-IO in-band DTMF detector for one call direction.
///
/// Contract: feed decoded samples in order with [`handle_samples`]
/// (`now` is when the first sample of the slice was received), report a
/// lost packet with [`handle_lost`], then drain [`poll_event`].
///
/// [`handle_samples`]: InbandDetector::handle_samples
/// [`handle_lost`]: InbandDetector::handle_lost
/// [`poll_event`]: InbandDetector::poll_event
pub struct InbandDetector {
    buf: [f32; N],
    filled: usize,
    /// Absolute index of the next sample to arrive.
    pos: u64,
    /// Wall-clock anchor: `anchor.0` is the time of sample `anchor.1`.
    anchor: Option<(Instant, u64)>,
    prev: Option<[(f32, f32); 8]>,
    run: Option<Run>,
    state: State,
    events: VecDeque<DigitEvent>,
}

struct Run {
    key: Key,
    start: u64,
    hits: u32,
    acc_low: (f32, f32),
    acc_high: (f32, f32),
    pairs: u32,
    /// (min, max) step deviation in Hz, low and high tone.
    spread: [(f32, f32); 2],
}

impl Run {
    /// Record one step's deviation; false if out of tolerance or unsteady.
    fn track(&mut self, step: (f32, f32), tone: usize, group: usize) -> bool {
        let dev = deviation_hz(step, tone);
        let (lo, hi) = &mut self.spread[group];
        *lo = lo.min(dev);
        *hi = hi.max(dev);
        dev.abs() <= FREQS[tone] * FREQ_TOLERANCE && *hi - *lo <= FREQS[tone] * MAX_GLIDE
    }
}

enum State {
    Idle,
    InDigit {
        key: Key,
        begin: u64,
        last_hit_end: u64,
        misses: u32,
    },
}

/// What one analysis window shows.
struct Window {
    bins: [(f32, f32); 8],
    low: usize,
    high: usize,
    p_low: f32,
    p_high: f32,
    ratio: f32,
}

impl Default for InbandDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl InbandDetector {
    pub fn new() -> Self {
        InbandDetector {
            buf: [0.0; N],
            filled: 0,
            pos: 0,
            anchor: None,
            prev: None,
            run: None,
            state: State::Idle,
            events: VecDeque::new(),
        }
    }

    /// Feed consecutive 8 kHz samples; `now` is the time of `samples[0]`.
    pub fn handle_samples(&mut self, now: Instant, samples: &[i16]) {
        self.anchor = Some((now, self.pos));
        for &s in samples {
            self.buf[self.filled] = f32::from(s);
            self.filled += 1;
            self.pos += 1;
            if self.filled == N {
                self.analyse();
                self.buf.copy_within(H.., 0);
                self.filled = N - H;
            }
        }
    }

    /// `samples` samples were lost in the network: neither tone nor
    /// silence. Counts stay as they are; analysis restarts after the gap.
    pub fn handle_lost(&mut self, samples: usize) {
        self.pos += samples as u64;
        self.filled = 0;
        self.prev = None;
    }

    /// The next begin/end report, if any.
    pub fn poll_event(&mut self) -> Option<DigitEvent> {
        self.events.pop_front()
    }

    fn at(&self, sample: u64) -> Instant {
        // Analysis only runs inside handle_samples, which sets the anchor first.
        let (t, p) = self
            .anchor
            .expect("anchor set by handle_samples before analysis");
        let nanos = |d: u64| Duration::from_nanos(d.saturating_mul(125_000));
        if sample >= p {
            t + nanos(sample - p)
        } else {
            t.checked_sub(nanos(p - sample)).unwrap_or(t)
        }
    }

    fn analyse(&mut self) {
        let w = measure(&self.buf);
        let start = self.pos - N as u64;
        let strict = w.strict_key();
        // Candidate run of strict hits, with the frequency measurement.
        let restart = |key| Run {
            key,
            start,
            hits: 1,
            acc_low: (0.0, 0.0),
            acc_high: (0.0, 0.0),
            pairs: 0,
            spread: [(f32::MAX, f32::MIN); 2],
        };
        match (strict, self.run.as_mut()) {
            (Some(k), Some(run)) if run.key == k => {
                run.hits += 1;
                if let Some(prev) = &self.prev {
                    let (l, h) = k.row_col();
                    let dl = mul_conj(w.bins[l], prev[l]);
                    let dh = mul_conj(w.bins[4 + h], prev[4 + h]);
                    // Each step must be in tolerance and the frequency
                    // steady: a keypad oscillator does not glide, voices do.
                    if run.track(dl, l, 0) && run.track(dh, 4 + h, 1) {
                        add(&mut run.acc_low, dl);
                        add(&mut run.acc_high, dh);
                        run.pairs += 1;
                    } else {
                        *run = restart(k);
                    }
                }
            }
            (Some(k), _) => self.run = Some(restart(k)),
            (None, _) => self.run = None,
        }
        self.prev = Some(w.bins);
        let confirmed = self
            .run
            .as_ref()
            .filter(|r| r.hits >= HITS_TO_BEGIN && r.pairs >= 2)
            .filter(|r| frequency_ok(r))
            .map(|r| (r.key, r.start));

        match &mut self.state {
            State::Idle => {
                if let Some((key, run_start)) = confirmed {
                    self.begin(key, run_start);
                }
            }
            State::InDigit {
                key,
                begin,
                last_hit_end,
                misses,
            } => {
                let key = *key;
                if let Some((new_key, run_start)) = confirmed.filter(|(k, _)| *k != key) {
                    // Q.24 rolling digits: a new pair ends the old one.
                    let (b, e) = (*begin, (*last_hit_end).min(run_start + N as u64));
                    self.end(key, b, e);
                    self.begin(new_key, run_start);
                } else if w.continues(key) {
                    *last_hit_end = start + N as u64;
                    *misses = 0;
                } else {
                    *misses += 1;
                    if *misses >= MISSES_TO_END {
                        let (b, e) = (*begin, *last_hit_end);
                        self.end(key, b, e);
                        self.state = State::Idle;
                    }
                }
            }
        }
    }

    fn begin(&mut self, key: Key, run_start: u64) {
        let begin = run_start + BEGIN_OFFSET;
        self.state = State::InDigit {
            key,
            begin,
            last_hit_end: self.pos,
            misses: 0,
        };
        self.run = None;
        let at = self.at(begin);
        self.events.push_back(DigitEvent::Begin { key, at });
    }

    fn end(&mut self, key: Key, begin: u64, last_hit_end: u64) {
        let end = last_hit_end.saturating_sub(END_OFFSET).max(begin);
        self.events.push_back(DigitEvent::End {
            key,
            begin: self.at(begin),
            duration: Duration::from_nanos((end - begin) * 125_000),
        });
    }
}

impl Window {
    fn twist_ok(&self) -> bool {
        let twist = 10.0 * (self.p_high / self.p_low.max(1e-9)).log10();
        (REVERSE_TWIST_DB..=NORMAL_TWIST_DB).contains(&twist)
    }

    fn strict_key(&self) -> Option<Key> {
        let min = TABLES.min_on;
        (self.p_low >= min && self.p_high >= min && self.twist_ok() && self.ratio >= RATIO_ON)
            .then(|| Key::at(self.low, self.high))
    }

    fn continues(&self, key: Key) -> bool {
        let min = TABLES.min_cont;
        key.row_col() == (self.low, self.high)
            && self.p_low >= min
            && self.p_high >= min
            && self.ratio >= RATIO_CONT
    }
}

fn measure(buf: &[f32; N]) -> Window {
    let t = &*TABLES;
    let (mut re, mut im) = ([0.0f32; 8], [0.0f32; 8]);
    for ((x, cr), ci) in buf.iter().zip(&t.coef_re).zip(&t.coef_im) {
        for k in 0..8 {
            re[k] += x * cr[k];
            im[k] += x * ci[k];
        }
    }
    let bins: [(f32, f32); 8] = std::array::from_fn(|k| (re[k], im[k]));
    let energy: f32 = buf.iter().zip(&t.w2).map(|(x, w)| x * x * w).sum();
    let power = |b: (f32, f32)| b.0 * b.0 + b.1 * b.1;
    let strongest = |r: std::ops::Range<usize>| {
        r.max_by(|&a, &b| power(bins[a]).total_cmp(&power(bins[b])))
            .unwrap_or(0)
    };
    let low = strongest(0..4);
    let high = strongest(4..8);
    // Mean-square of a tone from its bin: (A²/2) = 2|X|²/(Σw)².
    let tone_power = |b| 2.0 * power(b) / (t.sum_w * t.sum_w);
    let ratio = (power(bins[low]) + power(bins[high])) / (t.norm * energy).max(1e-9);
    Window {
        bins,
        low,
        high: high - 4,
        p_low: tone_power(bins[low]),
        p_high: tone_power(bins[high]),
        ratio,
    }
}

fn mul_conj(a: (f32, f32), b: (f32, f32)) -> (f32, f32) {
    (a.0 * b.0 + a.1 * b.1, a.1 * b.0 - a.0 * b.1)
}

fn add(acc: &mut (f32, f32), v: (f32, f32)) {
    acc.0 += v.0;
    acc.1 += v.1;
}

/// Frequency deviation of a tone from the phase advance between windows.
fn deviation_hz(acc: (f32, f32), tone: usize) -> f32 {
    let r = TABLES.rot[tone];
    let d = (acc.0 * r.0 - acc.1 * r.1, acc.0 * r.1 + acc.1 * r.0);
    d.1.atan2(d.0) * SAMPLE_RATE as f32 / (2.0 * std::f32::consts::PI * H as f32)
}

fn frequency_ok(run: &Run) -> bool {
    let (l, h) = run.key.row_col();
    let ok = |acc, tone: usize| deviation_hz(acc, tone).abs() <= FREQS[tone] * FREQ_TOLERANCE;
    ok(run.acc_low, l) && ok(run.acc_high, 4 + h)
}

#[cfg(test)]
#[path = "inband_tests.rs"]
mod tests;
