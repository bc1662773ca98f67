//! In-band DTMF detector cost: how many channels one core keeps up with
//! in real time (G.711 decoding included). Prints figures; no assertions.
//!
//! `cargo bench --bench dtmf_inband`

use std::time::{Duration, Instant};

use mensa::media::dtmf::inband::InbandDetector;
use mensa::media::g711::Law;

fn main() {
    // 60 s of signal: keys, pauses and noise, as A-law packets of 20 ms.
    let mut x: Vec<i16> = Vec::new();
    let mut seed = 0x1234_5678u32;
    let mut noise = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed % 2001) as f32 - 1000.0
    };
    let keys = [
        (697.0, 1209.0),
        (770.0, 1336.0),
        (852.0, 1477.0),
        (941.0, 1633.0),
    ];
    while x.len() < 8000 * 60 {
        for (i, &(f1, f2)) in keys.iter().enumerate() {
            let on = 400 + 80 * i;
            for n in 0..on {
                let t = n as f32 / 8000.0;
                let v = 2300.0
                    * ((std::f32::consts::TAU * f1 * t).sin()
                        + (std::f32::consts::TAU * f2 * t).sin());
                x.push((v + noise()) as i16);
            }
            for _ in 0..800 {
                x.push(noise() as i16);
            }
        }
    }
    let packets: Vec<Vec<u8>> = x
        .chunks(160)
        .map(|c| c.iter().map(|&s| Law::ALaw.encode(s)).collect())
        .collect();
    let audio = Duration::from_millis(20 * packets.len() as u64);

    let channels = 64;
    let t0 = Instant::now();
    let base = Instant::now();
    let mut digits = 0;
    let mut pcm = [0i16; 160];
    for _ in 0..channels {
        let mut det = InbandDetector::new();
        for (i, p) in packets.iter().enumerate() {
            Law::ALaw.decode_into(p, &mut pcm);
            det.handle_samples(base + Duration::from_millis(20 * i as u64), &pcm);
            while det.poll_event().is_some() {
                digits += 1;
            }
        }
    }
    let cpu = t0.elapsed();
    let realtime = audio.as_secs_f64() * channels as f64 / cpu.as_secs_f64();
    println!("in-band DTMF detector (G.711 A-law decode + detection), one core:");
    println!(
        "  {channels} channels × {:.0} s of audio in {:.3} s",
        audio.as_secs_f64(),
        cpu.as_secs_f64()
    );
    println!("  {:.0} channels in real time per core", realtime);
    println!(
        "  {:.2} µs per 20 ms packet",
        cpu.as_secs_f64() * 1e6 / (channels * packets.len()) as f64
    );
    println!("  ({digits} events seen)");
}
