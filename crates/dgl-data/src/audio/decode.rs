//! Decoding audio files with symphonia into mono `f32` samples.
//!
//! Supported: RIFF WAV with PCM 8-bit (unsigned), 16/24/32-bit integer, 32/64-bit float, A-law and
//! µ-law, any channel count; FLAC; MP3; Ogg Vorbis. Integer samples are scaled like libsndfile /
//! soundfile (what `librosa.load` uses): `s / 2^(bits−1)` (8-bit: `(u − 128) / 128`). Several
//! channels are averaged into one (librosa's `to_mono`).
//!
//! Every failure (missing, empty, truncated, not audio, wrong header, unsupported codec, a decoder
//! panic) is a [`DataError::BadFile`] or [`DataError::Io`] naming the file; nothing panics.
//!
//! Bounds (see [`crate::limits`]): a file is read only up to [`limits::FILE_BYTES`]; a sample rate
//! outside [`limits::MIN_SAMPLE_RATE`]`..=`[`limits::SAMPLE_RATE`] and a signal longer than
//! [`limits::AUDIO_SAMPLES`] are refused. A WAV header is checked before any decoder sees it (its
//! rate, channel count and announced length), so symphonia never meets a zero sample rate (on
//! which it panics).
//!
//! Fast path: a canonical PCM WAV (`RIFF` length = file length, a 16-byte `fmt ` chunk — integer
//! PCM of 8/16/24/32 bits or 32-bit float, 1 to 32 channels, consistent block alignment — followed
//! directly by a non-empty `data` chunk that ends the file on a whole frame) is converted without
//! symphonia, with the same formulas symphonia uses (identical samples; checked by the tests on
//! every bit depth and on the FSDD clips). Anything else, including every malformed file, goes
//! through symphonia.

use crate::limits::LimitExt;
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
use crate::limits;

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
    let bytes = crate::datasets::fsutil::read_bounded(path, crate::limits::FILE_BYTES)?;
    decode_bytes(bytes, path)
}

/// Decodes an in-memory file; `path` is only used for the format hint and in error messages.
pub fn decode_bytes(bytes: Vec<u8>, path: &Path) -> Result<DecodedAudio> {
    if bytes.is_empty() {
        return Err(DataError::bad_file(path, "empty file (0 bytes)"));
    }
    check_wav_header(&bytes).and_then(|_| check_flac_metadata(&bytes)).map_err(|r| DataError::bad_file(path, r))?;
    if let Some(d) = decode_canonical_wav(&bytes) {
        return Ok(d);
    }
    decode_symphonia(bytes, path)
}

fn decode_symphonia(bytes: Vec<u8>, path: &Path) -> Result<DecodedAudio> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_inner(bytes, path))) {
        Ok(r) => r,
        Err(_) => Err(DataError::bad_file(path, "the audio decoder panicked on this file (corrupt data)")),
    }
}

/// Checks a RIFF/WAVE header before decoding (anything else passes): the `fmt ` chunk's sample
/// rate must be within the limits and its channel count non-zero, and the frames of the `data`
/// chunk (as much of it as the file holds) at most [`limits::AUDIO_SAMPLES`]. A header too
/// broken to read is left to the decoder, which names the problem.
///
/// symphonia's probe scans past leading garbage for the `RIFF` marker, so the first `RIFF….WAVE`
/// anywhere in the file is the header checked.
fn check_wav_header(b: &[u8]) -> std::result::Result<(), String> {
    let Some(start) = b.windows(12).position(|w| &w[0..4] == b"RIFF" && &w[8..12] == b"WAVE") else {
        return Ok(());
    };
    let b = &b[start..];
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as u64;
    let mut at = 12usize;
    let mut align = None;
    while at.checked_add(8).is_some_and(|e| e <= b.len()) {
        let (id, size, body) = (&b[at..at + 4], u32_at(at + 4), at + 8);
        if id == b"fmt " {
            if size < 16 || body + 16 > b.len() {
                return Ok(());
            }
            limits::check_sample_rate(u32_at(body + 4), "the sample rate in the WAV header")?;
            if u16_at(body + 2) == 0 {
                return Err("the WAV header announces zero channels".into());
            }
            align = Some(u16_at(body + 12).max(1));
        } else if id == b"data" {
            if let Some(a) = align {
                let frames = size.min((b.len() - body) as u64) / a;
                limits::AUDIO_SAMPLES.check_label(frames, "the length of the WAV data")?;
            }
            return Ok(());
        }
        match usize::try_from(size + (size & 1)).ok().and_then(|s| body.checked_add(s)) {
            Some(next) => at = next,
            None => return Ok(()),
        }
    }
    Ok(())
}

/// Checks a FLAC file's metadata blocks before decoding (anything else passes): every block must
/// fit the file, the STREAMINFO sample rate must be within the limits, and every length inside a
/// VORBIS_COMMENT or PICTURE block must fit that block. symphonia 0.5 allocates the sizes these
/// blocks *announce* (up to 4 GiB) before checking them, so a 257-byte file could ask for gigabytes.
///
/// symphonia's probe scans the stream for a format marker, so unless the file starts with another
/// container's marker (`RIFF`, `OggS`, `ID3`, an MP3 frame sync), the first `fLaC` anywhere is
/// where it would start reading FLAC, and that is what is checked.
fn check_flac_metadata(b: &[u8]) -> std::result::Result<(), String> {
    let other_marker = b.starts_with(b"RIFF")
        || b.starts_with(b"OggS")
        || b.starts_with(b"ID3")
        || (b.len() >= 2 && b[0] == 0xFF && b[1] & 0xE0 == 0xE0);
    if other_marker {
        return Ok(());
    }
    let Some(start) = b.windows(4).position(|w| w == b"fLaC") else {
        return Ok(());
    };
    let mut at = start + 4;
    loop {
        let Some(h) = b.get(at..at + 4) else {
            return Err("FLAC metadata ends early (truncated header)".into());
        };
        let (last, kind) = (h[0] & 0x80 != 0, h[0] & 0x7F);
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let body = b.get(at + 4..at + 4 + len).ok_or_else(|| {
            format!("FLAC metadata block of type {kind} announces {len} bytes, more than the file holds")
        })?;
        match kind {
            0 if body.len() >= 13 => {
                let rate = (u32::from_be_bytes([0, body[10], body[11], body[12]]) >> 4) as u64;
                limits::check_sample_rate(rate, "the sample rate in the FLAC header")?;
            }
            4 => check_vorbis_comment(body)?,
            6 => check_picture(body)?,
            _ => {}
        }
        if last {
            return Ok(());
        }
        at += 4 + len;
    }
}

/// Every length inside a PICTURE block (MIME type, description, picture data; big-endian) fits
/// the block (symphonia allocates them as announced, too).
fn check_picture(body: &[u8]) -> std::result::Result<(), String> {
    let too_long = || "a FLAC picture block announces more bytes than it holds".to_string();
    let u32_at = |o: usize| body.get(o..o + 4).map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]) as usize);
    let mut at = 4usize; // picture type
    for skip_after in [0usize, 16] {
        // MIME type, then description followed by width, height, depth, colours (16 bytes).
        let n = u32_at(at).ok_or_else(too_long)?;
        at = (at + 4)
            .checked_add(n)
            .and_then(|e| e.checked_add(skip_after))
            .filter(|&e| e <= body.len())
            .ok_or_else(too_long)?;
    }
    let n = u32_at(at).ok_or_else(too_long)?;
    (at + 4).checked_add(n).filter(|&e| e <= body.len()).ok_or_else(too_long)?;
    Ok(())
}

/// Every length inside a VORBIS_COMMENT block (vendor string, comment count, comments) fits the
/// block.
fn check_vorbis_comment(body: &[u8]) -> std::result::Result<(), String> {
    let too_long = || "a FLAC Vorbis comment announces more bytes than its block holds".to_string();
    let u32_at = |o: usize| body.get(o..o + 4).map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize);
    let vendor = u32_at(0).ok_or_else(too_long)?;
    let mut at = 4usize.checked_add(vendor).filter(|&e| e <= body.len()).ok_or_else(too_long)?;
    let count = u32_at(at).ok_or_else(too_long)?;
    at += 4;
    for _ in 0..count {
        let n = u32_at(at).ok_or_else(too_long)?;
        at = (at + 4).checked_add(n).filter(|&e| e <= body.len()).ok_or_else(too_long)?;
    }
    Ok(())
}

/// The fast path (see the module docs): `None` unless `bytes` is a canonical PCM / float32 WAV.
fn decode_canonical_wav(b: &[u8]) -> Option<DecodedAudio> {
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    if b.len() < 44 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" || &b[12..16] != b"fmt " || &b[36..40] != b"data" {
        return None;
    }
    if u32_at(4) as usize + 8 != b.len() || u32_at(16) != 16 || u32_at(40) as usize + 44 != b.len() {
        return None;
    }
    let (format, channels, rate, align, bits) = (u16_at(20), u16_at(22) as usize, u32_at(24), u16_at(32), u16_at(34));
    let width = match (format, bits) {
        (1, 8 | 16 | 24 | 32) | (3, 32) => bits as usize / 8,
        _ => return None,
    };
    let data = &b[44..];
    if !(1..=32).contains(&channels) || rate == 0 || align as usize != channels * width {
        return None;
    }
    if data.is_empty() || data.len() % (align as usize) != 0 {
        return None;
    }
    // symphonia_core::conv, sample by sample.
    let interleaved: Vec<f32> = match (format, width) {
        (1, 1) => data.iter().map(|&s| (s as f32) / 128.0 - 1.0).collect(),
        (1, 2) => data.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32_768.0).collect(),
        (1, 3) => data
            .chunks_exact(3)
            .map(|c| (i32::from_le_bytes([0, c[0], c[1], c[2]]) >> 8) as f32 / 8_388_608.0)
            .collect(),
        (1, _) => data
            .chunks_exact(4)
            .map(|c| (i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64 / 2_147_483_648.0) as f32)
            .collect(),
        _ => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
    };
    let samples = if channels == 1 {
        interleaved
    } else {
        let inv = 1.0 / channels as f32;
        interleaved.chunks_exact(channels).map(|f| f.iter().sum::<f32>() * inv).collect()
    };
    Some(DecodedAudio { samples, sample_rate: rate, channels })
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
    let bad = |r: String| DataError::bad_file(path, r);
    if let Some(r) = sample_rate {
        limits::check_sample_rate(r as u64, "the sample rate in the header").map_err(bad)?;
    }
    if let Some(n) = expected_frames {
        limits::AUDIO_SAMPLES.check_label(n, "the length announced by the header").map_err(bad)?;
    }
    let max_samples = limits::AUDIO_SAMPLES.bound().map_err(DataError::Invalid)? as usize;
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
        if mono.len().saturating_add(decoded.frames()) > max_samples {
            return Err(bad(format!(
                "decodes to more than {max_samples} samples ({}; raise it with the environment variable {})",
                limits::AUDIO_SAMPLES.what,
                limits::AUDIO_SAMPLES.env
            )));
        }
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
    limits::check_sample_rate(sample_rate as u64, "the sample rate").map_err(bad)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A canonical WAV (the fast path's format), or with `extra` bytes appended after the data.
    fn wav(format: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&((36 + data.len()) as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&format.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * align as u32).to_le_bytes());
        out.extend_from_slice(&align.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    fn both(bytes: &[u8]) -> (Option<DecodedAudio>, Result<DecodedAudio>) {
        (decode_canonical_wav(bytes), decode_symphonia(bytes.to_vec(), Path::new("t.wav")))
    }

    /// Every bit depth and several channel counts, with samples covering every byte value (and the
    /// extremes): the fast path gives exactly symphonia's samples, rate and channel count.
    #[test]
    fn fast_wav_equals_symphonia() {
        let mut seed = 99u64;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|i| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    if i < 256 {
                        i as u8
                    } else {
                        (seed >> 56) as u8
                    }
                })
                .collect()
        };
        for (format, bits) in [(1u16, 8u16), (1, 16), (1, 24), (1, 32), (3, 32)] {
            for channels in [1u16, 2, 3, 6] {
                let align = (channels * bits / 8) as usize;
                let mut data = bytes(align * 700);
                if format == 3 {
                    // Finite floats (NaN payloads aside, symphonia copies them unchanged too).
                    for c in data.chunks_exact_mut(4) {
                        let v =
                            (u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64 / u32::MAX as f64 * 4.0 - 2.0) as f32;
                        c.copy_from_slice(&v.to_le_bytes());
                    }
                }
                let f = wav(format, channels, 8000 + channels as u32, bits, &data);
                let (fast, sym) = both(&f);
                let (fast, sym) = (fast.expect("fast path taken"), sym.expect("symphonia decodes"));
                assert_eq!(fast.sample_rate, sym.sample_rate);
                assert_eq!(fast.channels, sym.channels);
                assert_eq!(fast.samples.len(), sym.samples.len(), "{format} {bits} {channels}");
                for (i, (a, b)) in fast.samples.iter().zip(&sym.samples).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "format {format}, {bits} bits, {channels} ch, sample {i}");
                }
            }
        }
    }

    /// Anything off the canonical layout goes to symphonia (which decodes or names the file).
    #[test]
    fn non_canonical_files_fall_back() {
        let good = wav(1, 1, 8000, 16, &[1, 2, 3, 4]);
        assert!(decode_canonical_wav(&good).is_some());
        let mut cases: Vec<Vec<u8>> = Vec::new();
        let mut c = good.clone();
        c.push(0); // trailing byte: RIFF length no longer the file length
        cases.push(c);
        cases.push(good[..good.len() - 1].to_vec()); // truncated data
        let mut c = good.clone();
        c[20] = 6; // A-law
        cases.push(c);
        let mut c = good.clone();
        c[34] = 12; // 12-bit
        cases.push(c);
        let mut c = good.clone();
        c[32] = 4; // block align inconsistent
        cases.push(c);
        let mut c = good.clone();
        c[24..28].copy_from_slice(&0u32.to_le_bytes()); // rate 0
        cases.push(c);
        cases.push(wav(1, 1, 8000, 16, &[])); // no samples
        cases.push(wav(3, 1, 8000, 64, &[0; 16])); // float64
        cases.push(wav(1, 0, 8000, 16, &[0; 4])); // no channels
        for (i, c) in cases.iter().enumerate() {
            assert!(decode_canonical_wav(c).is_none(), "case {i}");
        }
        let err = decode_bytes(good[..40].to_vec(), Path::new("short.wav")).unwrap_err();
        assert!(err.to_string().contains("short.wav"), "{err}");
    }

    /// All FSDD recordings present (skipped when /work/shared/data is absent): the fast path is taken
    /// and equals symphonia bit for bit.
    #[test]
    fn fast_wav_equals_symphonia_on_fsdd() {
        let rel = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fsdd/recordings");
        let dir = if rel.exists() { rel } else { Path::new("/work/shared/data/fsdd/recordings").to_path_buf() };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            println!("SKIPPED fast_wav_equals_symphonia_on_fsdd: {} is absent", dir.display());
            return;
        };
        let mut n = 0;
        for e in entries {
            let p = e.unwrap().path();
            if p.extension().is_none_or(|x| x != "wav") {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            let (fast, sym) = both(&bytes);
            let (fast, sym) = (fast.unwrap_or_else(|| panic!("{}: fast path not taken", p.display())), sym.unwrap());
            assert_eq!(fast, sym, "{}", p.display());
            n += 1;
        }
        println!("fast WAV path = symphonia on {n} FSDD files");
    }
}
