//! The prompt library: loaded once at start from `prompts/<lang>/<name>.<ext>`.
//!
//! WAV goes through hound; FLAC, MP3 and Ogg Vorbis through symphonia.
//! Everything is mixed to mono, resampled to 8 kHz with rubato (an FFT
//! resampler with a proper anti-aliasing filter) and pre-encoded to PCMA
//! and PCMU ([`Prompt`]), shared by all calls behind an `Arc`. A file that
//! cannot be read is a start-up error naming it; so is a prompt a dialplan
//! asks for that is not there ([`PromptLibrary::require`]).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rubato::{FftFixedIn, Resampler};

use super::playout::Prompt;

/// Output sample rate of every prompt.
pub const RATE: u32 = 8000;
const EXTENSIONS: [&str; 6] = ["wav", "flac", "mp3", "ogg", "oga", "wave"];

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompt folder {path}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("prompt file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("prompt {lang}/{name} not found in {folder}")]
    Missing {
        folder: PathBuf,
        lang: String,
        name: String,
    },
}

/// All prompts, by language and name (file stem).
#[derive(Debug, Default)]
pub struct PromptLibrary {
    folder: PathBuf,
    prompts: HashMap<(String, String), Arc<Prompt>>,
}

impl PromptLibrary {
    /// Load every audio file of every language folder under `folder`.
    /// Files with other extensions (README, licences) are skipped.
    pub fn load(folder: &Path) -> Result<PromptLibrary, PromptError> {
        let folder_err = |source| PromptError::Folder {
            path: folder.to_path_buf(),
            source,
        };
        let mut lib = PromptLibrary {
            folder: folder.to_path_buf(),
            prompts: HashMap::new(),
        };
        let mut langs: Vec<PathBuf> = std::fs::read_dir(folder)
            .map_err(folder_err)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        langs.sort();
        for dir in langs {
            let lang = file_stem(&dir);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|source| PromptError::Folder {
                    path: dir.clone(),
                    source,
                })?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && is_audio(p))
                .collect();
            files.sort();
            for path in files {
                let name = file_stem(&path);
                let prompt = load_file(&path, &name)?;
                lib.prompts.insert((lang.clone(), name), Arc::new(prompt));
            }
        }
        Ok(lib)
    }

    pub fn get(&self, lang: &str, name: &str) -> Option<Arc<Prompt>> {
        self.prompts
            .get(&(lang.to_string(), name.to_string()))
            .cloned()
    }

    /// Like [`get`](Self::get), but a missing prompt is an error naming it
    /// (for checking dialplans at start-up).
    pub fn require(&self, lang: &str, name: &str) -> Result<Arc<Prompt>, PromptError> {
        self.get(lang, name).ok_or_else(|| PromptError::Missing {
            folder: self.folder.clone(),
            lang: lang.to_string(),
            name: name.to_string(),
        })
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

fn file_stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_audio(p: &Path) -> bool {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| EXTENSIONS.contains(&e.as_str()))
}

/// Decode, mix to mono, resample to 8 kHz, encode.
pub fn load_file(path: &Path, name: &str) -> Result<Prompt, PromptError> {
    Ok(Prompt::from_samples(name, &load_pcm(path)?))
}

/// Decode any supported file to 8 kHz mono linear samples.
pub fn load_pcm(path: &Path) -> Result<Vec<i16>, PromptError> {
    let err = |reason: String| PromptError::File {
        path: path.to_path_buf(),
        reason,
    };
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let (mono, rate) = if ext == "wav" || ext == "wave" {
        decode_wav(path).map_err(err)?
    } else {
        decode_symphonia(path, &ext).map_err(err)?
    };
    if mono.is_empty() {
        return Err(err("no audio".into()));
    }
    let at_8k = resample(&mono, rate).map_err(err)?;
    Ok(at_8k
        .iter()
        .map(|&v| (v * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect())
}

/// Mono samples in −1..1 and their rate.
fn decode_wav(path: &Path) -> Result<(Vec<f32>, u32), String> {
    let reader = hound::WavReader::open(path).map_err(|e| e.to_string())?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?
        }
    };
    Ok((mix(&interleaved, channels), spec.sample_rate))
}

fn decode_symphonia(path: &Path, ext: &str) -> Result<(Vec<f32>, u32), String> {
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::DecoderOptions;
    use symphonia::core::errors::Error;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let file = File::open(path).map_err(|e| e.to_string())?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(ext);
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| e.to_string())?;
    let mut format = probed.format;
    let track = format.default_track().ok_or("no audio track")?;
    let track_id = track.id;
    let mut rate = track.codec_params.sample_rate;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.to_string()),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            // A corrupt packet is skipped, as players do.
            Err(Error::DecodeError(_)) => continue,
            Err(e) => return Err(e.to_string()),
        };
        let spec = *decoded.spec();
        rate = Some(spec.rate);
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        out.extend(mix(buf.samples(), spec.channels.count().max(1)));
    }
    Ok((out, rate.ok_or("unknown sample rate")?))
}

fn mix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    interleaved
        .chunks_exact(channels)
        .map(|f| f.iter().sum::<f32>() / channels as f32)
        .collect()
}

/// Resample mono audio to 8 kHz (rubato's FFT resampler), delay removed.
fn resample(input: &[f32], rate: u32) -> Result<Vec<f32>, String> {
    if rate == RATE {
        return Ok(input.to_vec());
    }
    if rate == 0 {
        return Err("sample rate 0".into());
    }
    let chunk = 1024;
    let mut r = FftFixedIn::<f32>::new(rate as usize, RATE as usize, chunk, 2, 1)
        .map_err(|e| e.to_string())?;
    let want = (input.len() as u64 * u64::from(RATE)).div_ceil(u64::from(rate)) as usize;
    let delay = r.output_delay();
    let mut out = Vec::with_capacity(want + delay + chunk);
    let mut pos = 0;
    while input.len() - pos >= r.input_frames_next() {
        let n = r.input_frames_next();
        let res = r
            .process(&[&input[pos..pos + n]], None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&res[0]);
        pos += n;
    }
    let res = r
        .process_partial(Some(&[&input[pos..]]), None)
        .map_err(|e| e.to_string())?;
    out.extend_from_slice(&res[0]);
    while out.len() < want + delay {
        let res = r
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| e.to_string())?;
        if res[0].is_empty() {
            break;
        }
        out.extend_from_slice(&res[0]);
    }
    let end = (delay + want).min(out.len());
    Ok(out.get(delay..end).map(<[f32]>::to_vec).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::Law;

    fn write_wav(path: &Path, rate: u32, channels: u16, secs: f32, freq: f32) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        let n = (rate as f32 * secs) as usize;
        for i in 0..n {
            let v = (std::f32::consts::TAU * freq * i as f32 / rate as f32).sin() * 16000.0;
            for _ in 0..channels {
                w.write_sample(v as i16).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn loads_and_resamples_wav_of_any_rate_to_8k_frames() {
        let dir = tempfile::tempdir().unwrap();
        let it = dir.path().join("it");
        std::fs::create_dir(&it).unwrap();
        write_wav(&it.join("benvenuto.wav"), 44_100, 2, 0.5, 440.0);
        write_wav(&it.join("menu.wav"), 16_000, 1, 0.25, 1000.0);
        write_wav(&it.join("bip.wav"), 8000, 1, 0.0125, 1000.0);
        std::fs::write(it.join("README.txt"), "not audio").unwrap();
        let lib = PromptLibrary::load(dir.path()).unwrap();
        assert_eq!(lib.len(), 3);
        let p = lib.require("it", "benvenuto").unwrap();
        assert_eq!(p.len_samples(), 4000);
        assert_eq!(p.encoded(Law::ALaw).len(), 4000);
        // The tone survives: decode and check the level mid-prompt.
        let mid: Vec<f32> = p.encoded(Law::MuLaw)[1000..3000]
            .iter()
            .map(|&c| f32::from(Law::MuLaw.decode(c)))
            .collect();
        let rms = (mid.iter().map(|v| v * v).sum::<f32>() / mid.len() as f32).sqrt();
        assert!((rms - 16000.0 / 2f32.sqrt()).abs() < 600.0, "rms {rms}");
        assert_eq!(lib.require("it", "menu").unwrap().len_samples(), 2000);
        // 100 samples: one frame, padded.
        let bip = lib.require("it", "bip").unwrap();
        assert_eq!(
            (bip.len_samples(), bip.encoded(Law::ALaw).len()),
            (100, 160)
        );
        let err = lib.require("en", "menu").unwrap_err().to_string();
        assert!(err.contains("en/menu"), "{err}");
    }

    #[test]
    fn flac_ogg_and_mp3_through_symphonia() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/media");
        for f in [
            "tone-1k-16k.flac",
            "tone-1k-22k-stereo.ogg",
            "tone-1k-44k.mp3",
        ] {
            let pcm = load_pcm(&dir.join(f)).unwrap();
            // 0.25 s; MP3 adds encoder delay and padding frames.
            assert!((1990..=2700).contains(&pcm.len()), "{f}: {}", pcm.len());
            let mid = &pcm[500..1500];
            let rms = (mid.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / 1000.0).sqrt();
            assert!(
                (rms - 16384.0 / 2f64.sqrt()).abs() < 800.0,
                "{f}: rms {rms}"
            );
        }
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let it = dir.path().join("it");
        std::fs::create_dir(&it).unwrap();
        std::fs::write(it.join("rotto.wav"), b"RIFF....garbage").unwrap();
        let err = PromptLibrary::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("rotto.wav"), "{err}");
        std::fs::remove_file(it.join("rotto.wav")).unwrap();
        std::fs::write(it.join("rotto.mp3"), [0u8; 64]).unwrap();
        let err = PromptLibrary::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("rotto.mp3"), "{err}");
        let err = PromptLibrary::load(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
