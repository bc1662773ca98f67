//! Prompts as G.711 frames shared by all calls, and the per-call playout
//! queue.
//!
//! A [`Prompt`] holds its audio pre-encoded in both laws (8 kHz mono),
//! padded with silence to whole 20 ms frames, behind an `Arc`: a call
//! copies nothing but a pointer. The [`Playout`] queue reads the queued
//! prompts' real samples back to back, so a sentence made of fragments is
//! one stream with no gap between them; only the end of the queue is padded
//! to a whole packet.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::g711::Law;

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// A prompt pre-encoded to PCMA and PCMU.
#[derive(Debug)]
pub struct Prompt {
    name: String,
    samples: usize,
    pcma: Box<[u8]>,
    pcmu: Box<[u8]>,
}

impl Prompt {
    /// Encode 8 kHz mono samples; the last frame is padded with silence.
    pub fn from_samples(name: impl Into<String>, samples: &[i16]) -> Prompt {
        let padded = samples.len().div_ceil(FRAME_SAMPLES) * FRAME_SAMPLES;
        let encode = |law: Law| {
            let mut out = vec![law.silence(); padded];
            law.encode_into(samples, &mut out);
            out.into_boxed_slice()
        };
        Prompt {
            name: name.into(),
            samples: samples.len(),
            pcma: encode(Law::ALaw),
            pcmu: encode(Law::MuLaw),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Real (unpadded) length in samples.
    pub fn len_samples(&self) -> usize {
        self.samples
    }

    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples as u64 * 125)
    }

    /// The encoded audio, padded to whole 20 ms frames.
    pub fn encoded(&self, law: Law) -> &[u8] {
        match law {
            Law::ALaw => &self.pcma,
            Law::MuLaw => &self.pcmu,
        }
    }

    /// The 20 ms frames (the last one padded).
    pub fn frames(&self, law: Law) -> impl Iterator<Item = &[u8]> {
        self.encoded(law).chunks(FRAME_SAMPLES)
    }
}

/// Identifies one queued playback, reported back when it finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PlayId(pub u64);

struct Queued {
    id: PlayId,
    prompt: Arc<Prompt>,
    offset: usize,
}

/// What one [`Playout::fill`] produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filled {
    /// Any prompt audio in the packet (else it is all silence).
    pub audio: bool,
    /// Playbacks that ended inside this packet.
    pub finished: Vec<PlayId>,
}

/// A call's queue of prompts: queued prompts play as one stream; `stop`
/// silences it at once (barge-in).
#[derive(Default)]
pub struct Playout {
    queue: VecDeque<Queued>,
    next_id: u64,
}

impl Playout {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue a prompt after those already queued.
    pub fn enqueue(&mut self, prompt: Arc<Prompt>) -> PlayId {
        let id = PlayId(self.next_id);
        self.next_id += 1;
        self.queue.push_back(Queued {
            id,
            prompt,
            offset: 0,
        });
        id
    }

    /// Drop everything queued; the ids of the playbacks cut short.
    pub fn stop(&mut self) -> Vec<PlayId> {
        self.queue.drain(..).map(|q| q.id).collect()
    }

    pub fn is_playing(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Fill `out` (one packet) with the next samples of the queue, silence
    /// after its end.
    pub fn fill(&mut self, law: Law, out: &mut [u8]) -> Filled {
        let mut filled = Filled::default();
        let mut at = 0;
        while at < out.len() {
            let Some(q) = self.queue.front_mut() else {
                break;
            };
            let left = q.prompt.samples - q.offset;
            let n = left.min(out.len() - at);
            out[at..at + n].copy_from_slice(&q.prompt.encoded(law)[q.offset..q.offset + n]);
            filled.audio |= n > 0;
            at += n;
            q.offset += n;
            if q.offset >= q.prompt.samples {
                filled.finished.push(q.id);
                self.queue.pop_front();
            }
        }
        out[at..].fill(law.silence());
        filled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(name: &str, n: usize, base: i16) -> Arc<Prompt> {
        let s: Vec<i16> = (0..n).map(|i| base + (i as i16 % 100) * 8).collect();
        Arc::new(Prompt::from_samples(name, &s))
    }

    #[test]
    fn last_frame_is_padded_with_silence() {
        let p = ramp("p", 170, 1000);
        assert_eq!(p.encoded(Law::ALaw).len(), 320);
        assert_eq!(p.frames(Law::MuLaw).count(), 2);
        assert!(p.encoded(Law::ALaw)[170..].iter().all(|&c| c == 0xD5));
        assert!(p.encoded(Law::MuLaw)[170..].iter().all(|&c| c == 0xFF));
        assert_eq!(p.duration(), Duration::from_micros(21_250));
    }

    #[test]
    fn queued_prompts_play_back_to_back_without_gap() {
        let (a, b) = (ramp("a", 170, 1000), ramp("b", 250, 2000));
        let mut pl = Playout::new();
        let ia = pl.enqueue(a.clone());
        let ib = pl.enqueue(b.clone());
        let mut stream = Vec::new();
        let mut finished = Vec::new();
        for _ in 0..4 {
            let mut pkt = [0u8; 160];
            let f = pl.fill(Law::ALaw, &mut pkt);
            finished.extend(f.finished);
            stream.extend_from_slice(&pkt);
        }
        let mut want = a.encoded(Law::ALaw)[..170].to_vec();
        want.extend_from_slice(&b.encoded(Law::ALaw)[..250]);
        assert_eq!(&stream[..420], &want[..]);
        assert!(stream[420..].iter().all(|&c| c == 0xD5));
        assert_eq!(finished, [ia, ib]);
        assert!(!pl.is_playing());
    }

    #[test]
    fn stop_silences_at_once() {
        let mut pl = Playout::new();
        let id = pl.enqueue(ramp("a", 8000, 1000));
        let mut pkt = [0u8; 160];
        assert!(pl.fill(Law::MuLaw, &mut pkt).audio);
        assert_eq!(pl.stop(), [id]);
        let f = pl.fill(Law::MuLaw, &mut pkt);
        assert!(!f.audio);
        assert!(pkt.iter().all(|&c| c == 0xFF));
    }

    #[test]
    fn shared_prompt_is_not_copied() {
        let p = ramp("a", 1600, 0);
        let mut calls: Vec<Playout> = (0..100).map(|_| Playout::new()).collect();
        for c in &mut calls {
            c.enqueue(p.clone());
        }
        assert_eq!(Arc::strong_count(&p), 101);
    }
}
