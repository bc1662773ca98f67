//! Test signals: DTMF tones, noise and speech-like sounds at given levels,
//! passed through G.711, cut into 20 ms frames at a random alignment.

use std::time::{Duration, Instant};

use super::inband::InbandDetector;
use super::{DigitEvent, Key};
use crate::media::g711::Law;

pub const LOW: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
pub const HIGH: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

/// Small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Standard normal (Box–Muller).
    pub fn gauss(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }
}

/// Peak amplitude of a sine at `dbm0` (0 dBm0 = peak 22 826).
pub fn amp(dbm0: f32) -> f32 {
    22_826.0 * 10f32.powf(dbm0 / 20.0)
}

pub fn ms(n: u32) -> usize {
    n as usize * 8
}

/// A signal under construction (linear, f32).
#[derive(Default)]
pub struct Signal {
    pub x: Vec<f32>,
}

impl Signal {
    pub fn silence(&mut self, n: usize) -> &mut Self {
        self.x.extend(std::iter::repeat_n(0.0, n));
        self
    }

    /// Two tones at explicit frequencies and amplitudes, random phases.
    pub fn pair(&mut self, rng: &mut Rng, f: (f32, f32), a: (f32, f32), n: usize) -> &mut Self {
        let p1 = rng.uniform() * std::f32::consts::TAU;
        let p2 = rng.uniform() * std::f32::consts::TAU;
        let w1 = std::f32::consts::TAU * f.0 / 8000.0;
        let w2 = std::f32::consts::TAU * f.1 / 8000.0;
        for i in 0..n {
            let t = i as f32;
            self.x
                .push(a.0 * (w1 * t + p1).sin() + a.1 * (w2 * t + p2).sin());
        }
        self
    }

    /// A key at `dbm0` per tone, no twist, nominal frequencies.
    pub fn key(&mut self, rng: &mut Rng, key: char, dbm0: f32, n: usize) -> &mut Self {
        let (r, c) = Key::from_char(key).unwrap().row_col();
        self.pair(rng, (LOW[r], HIGH[c]), (amp(dbm0), amp(dbm0)), n)
    }

    /// A string of keys, `on`/`off` samples each.
    pub fn keys(&mut self, rng: &mut Rng, keys: &str, on: usize, off: usize) -> &mut Self {
        for k in keys.chars() {
            self.key(rng, k, -10.0, on).silence(off);
        }
        self
    }

    /// Add white Gaussian noise of the given mean-square level (dBm0).
    pub fn noise(&mut self, rng: &mut Rng, dbm0: f32) -> &mut Self {
        let rms = amp(dbm0) / std::f32::consts::SQRT_2;
        for v in &mut self.x {
            *v += rms * rng.gauss();
        }
        self
    }

    /// Through a G.711 codec and back.
    pub fn through(&self, law: Law) -> Vec<i16> {
        self.x
            .iter()
            .map(|&v| law.decode(law.encode(v.round().clamp(-32768.0, 32767.0) as i16)))
            .collect()
    }
}

/// Run the detector over `samples` in 20 ms frames, after a random
/// 0–159-sample lead-in (random alignment); frames whose index is in
/// `lost` are reported lost instead of delivered.
pub fn detect(rng: &mut Rng, samples: &[i16], lost: &[usize]) -> (Instant, Vec<DigitEvent>) {
    let t0 = Instant::now();
    let mut all = vec![0i16; rng.below(160)];
    let lead = all.len();
    all.extend_from_slice(samples);
    all.extend(std::iter::repeat_n(0, 800));
    let mut det = InbandDetector::new();
    let mut out = Vec::new();
    for (i, frame) in all.chunks(160).enumerate() {
        let now = t0 + Duration::from_millis(20 * i as u64);
        if lost.contains(&i) {
            det.handle_lost(frame.len());
        } else {
            det.handle_samples(now, frame);
        }
        while let Some(e) = det.poll_event() {
            out.push(e);
        }
    }
    // Times relative to the first sample of `samples`.
    (t0 + Duration::from_nanos(lead as u64 * 125_000), out)
}

/// The keys of the End events, in order.
pub fn ended(events: &[DigitEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            DigitEvent::End { key, .. } => Some(key.as_char()),
            DigitEvent::Begin { .. } => None,
        })
        .collect()
}
