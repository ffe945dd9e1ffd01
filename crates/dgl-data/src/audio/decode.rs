//! Decoding audio files with symphonia into mono `f32` samples.
//!
//! Supported: RIFF WAV with PCM 8-bit (unsigned), 16/24/32-bit integer, 32/64-bit float, A-law and
//! µ-law, any channel count; FLAC; MP3; Ogg Vorbis. Integer samples are scaled like libsndfile /
//! soundfile (what `librosa.load` uses): `s / 2^(bits−1)` (8-bit: `(u − 128) / 128`). Several
//! channels are averaged into one (librosa's `to_mono`).
//!
//! Every failure (missing, empty, truncated, not audio, wrong header, unsupported codec, a decoder
//! panic) is a [`DataError::BadFile`] or [`DataError::Io`] naming the file; nothing panics.

use std::io::Cursor;
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::error::{DataError, Result};

/// A decoded clip: mono samples at the file's own rate.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedAudio {
    /// Mono samples (channels averaged), nominally in [-1, 1].
    pub samples: Vec<f32>,
    /// The file's sample rate, Hz.
    pub sample_rate: u32,
    /// Channel count of the file (before averaging).
    pub channels: usize,
}

impl DecodedAudio {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Reads and decodes an audio file (format from its content, the extension only as a hint).
pub fn decode_file(path: &Path) -> Result<DecodedAudio> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_bytes(bytes, path)
}

/// Decodes an in-memory file; `path` is only used for the format hint and in error messages.
pub fn decode_bytes(bytes: Vec<u8>, path: &Path) -> Result<DecodedAudio> {
    if bytes.is_empty() {
        return Err(DataError::bad_file(path, "empty file (0 bytes)"));
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_inner(bytes, path))) {
        Ok(r) => r,
        Err(_) => Err(DataError::bad_file(path, "the audio decoder panicked on this file (corrupt data)")),
    }
}

fn sym_err(path: &Path, what: &str, e: SymError) -> DataError {
    let reason = match e {
        SymError::Unsupported(s) => format!("{what}: unsupported format or codec ({s})"),
        SymError::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("{what}: file ends early (truncated header or data)")
        }
        other => format!("{what}: {other}"),
    };
    DataError::bad_file(path, reason)
}

fn decode_inner(bytes: Vec<u8>, path: &Path) -> Result<DecodedAudio> {
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &FormatOptions { enable_gapless: true, ..Default::default() }, &MetadataOptions::default())
        .map_err(|e| sym_err(path, "not a readable audio file", e))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| DataError::bad_file(path, "no audio track"))?;
    let track_id = track.id;
    let expected_frames = track.codec_params.n_frames;
    let mut sample_rate = track.codec_params.sample_rate;
    let mut channels = track.codec_params.channels.map(|c| c.count());
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| sym_err(path, "cannot decode", e))?;

    let mut mono: Vec<f32> = Vec::new();
    let mut truncated = false;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                // Normal end of stream for most readers; a short data chunk is caught below.
                break;
            }
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(sym_err(path, "reading packets", e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                truncated = true;
                break;
            }
            Err(e) => return Err(sym_err(path, "decoding", e)),
        };
        let spec = *decoded.spec();
        let nch = spec.channels.count();
        if nch == 0 {
            return Err(DataError::bad_file(path, "audio with zero channels"));
        }
        sample_rate = sample_rate.or(Some(spec.rate));
        channels = channels.or(Some(nch));
        let mut sb = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        sb.copy_interleaved_ref(decoded);
        let inter = sb.samples();
        if nch == 1 {
            mono.extend_from_slice(inter);
        } else {
            let inv = 1.0 / nch as f32;
            mono.extend(inter.chunks_exact(nch).map(|f| f.iter().sum::<f32>() * inv));
        }
    }
    let sample_rate =
        sample_rate.filter(|&r| r > 0).ok_or_else(|| DataError::bad_file(path, "no sample rate in header"))?;
    let channels = channels.unwrap_or(1);
    if let Some(n) = expected_frames {
        if (mono.len() as u64) < n {
            truncated = true;
        } else {
            // Ogg Vorbis decodes whole blocks past the end the stream announces (its last granule
            // position); drop them, as libsndfile does.
            mono.truncate(n as usize);
        }
    }
    if truncated {
        let want = expected_frames.map(|n| format!(" of {n}")).unwrap_or_default();
        return Err(DataError::bad_file(
            path,
            format!("truncated: decoded {} frames{want} announced by the header", mono.len()),
        ));
    }
    if mono.is_empty() {
        return Err(DataError::bad_file(path, "no audio samples"));
    }
    Ok(DecodedAudio { samples: mono, sample_rate, channels })
}
