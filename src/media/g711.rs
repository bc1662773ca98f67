//! ITU-T G.711: A-law (PCMA, the European trunk norm) and µ-law (PCMU).
//!
//! Decoding is a 256-entry table; encoding is a table indexed by the
//! 13-bit (A-law) or 14-bit (µ-law) magnitude the companding law actually
//! resolves, so both directions are one load per sample. The tables are
//! built at compile time from the segment/quantisation definition of
//! G.711 Tables 1a and 2a (the same arithmetic as the classic Sun
//! reference `g711.c`); the tests check them against values computed
//! independently from the decoder-output formulas of those tables.

/// A G.711 companding law.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// A-law, RTP payload type 8 (`PCMA`).
    ALaw,
    /// µ-law, RTP payload type 0 (`PCMU`).
    MuLaw,
}

impl Law {
    /// The codeword for digital silence (decodes to the value nearest 0).
    pub const fn silence(self) -> u8 {
        match self {
            Law::ALaw => 0xD5,
            Law::MuLaw => 0xFF,
        }
    }

    /// Encode one linear sample.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::ALaw => linear_to_alaw(sample),
            Law::MuLaw => linear_to_ulaw(sample),
        }
    }

    /// Decode one codeword.
    #[inline]
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::ALaw => alaw_to_linear(code),
            Law::MuLaw => ulaw_to_linear(code),
        }
    }

    /// Encode a block of samples into `out` (same length; extra is ignored).
    pub fn encode_into(self, samples: &[i16], out: &mut [u8]) {
        for (o, &s) in out.iter_mut().zip(samples) {
            *o = self.encode(s);
        }
    }

    /// Decode a block of codewords into `out` (same length; extra is ignored).
    pub fn decode_into(self, codes: &[u8], out: &mut [i16]) {
        let table = match self {
            Law::ALaw => &ALAW_DECODE,
            Law::MuLaw => &ULAW_DECODE,
        };
        for (o, &c) in out.iter_mut().zip(codes) {
            *o = table[usize::from(c)];
        }
    }
}

/// A-law codeword to 16-bit linear PCM.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// µ-law codeword to 16-bit linear PCM.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// 16-bit linear PCM to A-law (the 13 most significant bits are used).
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    // Index by the 13-bit value, offset to be non-negative: 0..8192.
    ALAW_ENCODE[((i32::from(sample) >> 3) + 4096) as usize]
}

/// 16-bit linear PCM to µ-law (the 14 most significant bits are used).
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    ULAW_ENCODE[((i32::from(sample) >> 2) + 8192) as usize]
}

static ALAW_DECODE: [i16; 256] = build_alaw_decode();
static ULAW_DECODE: [i16; 256] = build_ulaw_decode();
static ALAW_ENCODE: [u8; 8192] = build_alaw_encode();
static ULAW_ENCODE: [u8; 16384] = build_ulaw_encode();

/// G.711 Table 1a: even bits inverted (0x55), sign bit 1 = positive.
const fn alaw_decode_one(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// G.711 Table 2a: all bits inverted, bias 33 (0x84 at 16-bit scale).
const fn ulaw_decode_one(code: u8) -> i16 {
    let u = !code;
    let mut t = (((u & 0x0F) as i32) << 3) + 0x84;
    t <<= ((u & 0x70) >> 4) as i32;
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// `pcm13` is the signed 13-bit value (-4096..4096).
const fn alaw_encode_13(pcm13: i32) -> u8 {
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let (mask, mag) = if pcm13 >= 0 {
        (0xD5u8, pcm13)
    } else {
        (0x55u8, -pcm13 - 1)
    };
    let mut seg = 0;
    while seg < 8 && mag > SEG_END[seg] {
        seg += 1;
    }
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let quant = if seg < 2 { mag >> 1 } else { mag >> seg } & 0x0F;
    (((seg as i32) << 4) | quant) as u8 ^ mask
}

/// `pcm14` is the signed 14-bit value (-8192..8192).
const fn ulaw_encode_14(pcm14: i32) -> u8 {
    const SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
    const CLIP: i32 = 8159;
    let (mask, mut mag) = if pcm14 < 0 {
        (0x7Fu8, -pcm14)
    } else {
        (0xFFu8, pcm14)
    };
    if mag > CLIP {
        mag = CLIP;
    }
    mag += 0x84 >> 2;
    let mut seg = 0;
    while seg < 8 && mag > SEG_END[seg] {
        seg += 1;
    }
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let quant = (mag >> (seg + 1)) & 0x0F;
    (((seg as i32) << 4) | quant) as u8 ^ mask
}

const fn build_alaw_decode() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode_one(i as u8);
        i += 1;
    }
    t
}

const fn build_ulaw_decode() -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode_one(i as u8);
        i += 1;
    }
    t
}

const fn build_alaw_encode() -> [u8; 8192] {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        t[i] = alaw_encode_13(i as i32 - 4096);
        i += 1;
    }
    t
}

const fn build_ulaw_encode() -> [u8; 16384] {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        t[i] = ulaw_encode_14(i as i32 - 8192);
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// G.711 Table 1a decoder output, written from the table's own
    /// definition (segment s, step q), independent of the code above:
    /// s = 0: 2q + 1; s ≥ 1: (2q + 33)·2^(s−1), in 13-bit units (×8 for
    /// 16-bit). Bit 7 set = positive; even bits are inverted on the line.
    fn alaw_reference(code: u8) -> i32 {
        let line = code ^ 0x55;
        let s = i32::from((line >> 4) & 7);
        let q = i32::from(line & 0x0F);
        let mag13 = if s == 0 {
            2 * q + 1
        } else {
            (2 * q + 33) << (s - 1)
        };
        let v = mag13 * 8;
        if line & 0x80 != 0 { v } else { -v }
    }

    /// G.711 Table 2a decoder output: ((2q + 33)·2^s − 33) in 14-bit units
    /// (×4 for 16-bit); all bits inverted on the line, bit 7 set = positive.
    fn ulaw_reference(code: u8) -> i32 {
        let line = !code;
        let s = i32::from((line >> 4) & 7);
        let q = i32::from(line & 0x0F);
        let v = (((2 * q + 33) << s) - 33) * 4;
        if line & 0x80 != 0 { -v } else { v }
    }

    #[test]
    fn decode_tables_match_g711_tables_for_all_256_codes() {
        for c in 0..=255u8 {
            assert_eq!(
                i32::from(alaw_to_linear(c)),
                alaw_reference(c),
                "A-law {c:#04x}"
            );
            assert_eq!(
                i32::from(ulaw_to_linear(c)),
                ulaw_reference(c),
                "µ-law {c:#04x}"
            );
        }
    }

    #[test]
    fn well_known_codewords() {
        // Values every G.711 implementation agrees on (Sun g711.c, spandsp).
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x7E), -8);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
    }

    #[test]
    fn encode_of_decode_round_trips_every_code() {
        for c in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "A-law {c:#04x}");
            // µ-law has two zeros (0x7F = −0, 0xFF = +0); +0 is canonical.
            let expect = if c == 0x7F { 0xFF } else { c };
            assert_eq!(linear_to_ulaw(ulaw_to_linear(c)), expect, "µ-law {c:#04x}");
        }
    }

    /// Quantisation step (16-bit units) of the interval a codeword stands for.
    fn step(law: Law, code: u8) -> i32 {
        match law {
            Law::ALaw => {
                let s = i32::from(((code ^ 0x55) >> 4) & 7);
                if s < 2 { 16 } else { 8 << s }
            }
            Law::MuLaw => {
                let s = i32::from(((!code) >> 4) & 7);
                8 << s
            }
        }
    }

    /// Every 16-bit input lands in the decision interval of its codeword
    /// (the decoded value is the interval's midpoint, G.711 Tables 1a/2a),
    /// and encoding is monotonic: together this checks every segment
    /// boundary and every step inside the segments.
    #[test]
    fn every_input_lands_in_its_decision_interval() {
        for law in [Law::ALaw, Law::MuLaw] {
            let mut prev = i32::MIN;
            for x in i16::MIN..=i16::MAX {
                let x32 = i32::from(x);
                let c = law.encode(x);
                let d = i32::from(law.decode(c));
                assert!(d >= prev, "{law:?} not monotonic at {x}");
                prev = d;
                // Truncation to 13/14 bits shifts thresholds by < 1 LSB (8/4);
                // beyond full scale the top interval clips.
                let lsb = if law == Law::ALaw { 8 } else { 4 };
                let clip = x32.abs() > 32_000;
                let err = (d - x32).abs();
                assert!(
                    clip || err <= step(law, c) / 2 + lsb,
                    "{law:?} {x}: code {c:#04x} → {d}"
                );
            }
        }
        // A-law segment s starts at 128·2^s (16-bit scale), s = 1..7.
        for s in 1..8u8 {
            let edge = 128i16 << s;
            let below = ((linear_to_alaw(edge - 1) ^ 0x55) >> 4) & 7;
            let at = ((linear_to_alaw(edge) ^ 0x55) >> 4) & 7;
            assert_eq!((below, at), (s - 1, s), "edge {edge}");
        }
    }

    #[test]
    fn block_helpers_agree_with_scalar() {
        let pcm: Vec<i16> = (0..320)
            .map(|i| ((i * 997) % 65536 - 32768) as i16)
            .collect();
        for law in [Law::ALaw, Law::MuLaw] {
            let mut enc = vec![0u8; pcm.len()];
            law.encode_into(&pcm, &mut enc);
            let mut dec = vec![0i16; pcm.len()];
            law.decode_into(&enc, &mut dec);
            for i in 0..pcm.len() {
                assert_eq!(enc[i], law.encode(pcm[i]));
                assert_eq!(dec[i], law.decode(enc[i]));
            }
            assert_eq!(
                law.decode(law.silence()).abs(),
                if law == Law::ALaw { 8 } else { 0 }
            );
        }
    }
}
