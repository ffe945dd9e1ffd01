//! Audio: decoding ([`decode`]), resampling ([`resample`](mod@resample)) and fixed-length clips ([`fit`]).
//!
//! [`load`] is the `librosa.load(path, sr=target)` equivalent: decode, average channels,
//! resample.

pub mod decode;
pub mod fit;
pub mod resample;

use std::path::Path;

pub use decode::{decode_bytes, decode_file, DecodedAudio};
pub use fit::{choose_start, clip_unit, fit_clip, tile_crop};
pub use resample::{resample, ResampleQuality, Resampler};

use crate::error::{DataError, Result};

/// Decodes `path` to mono and, when `target_rate` is given, resamples it (soxr_hq-like sinc).
/// Returns the samples and their rate.
/// Errors name the file (a resampling error too).
pub fn load(path: &Path, target_rate: Option<u32>) -> Result<(Vec<f32>, u32)> {
    let d = decode_file(path)?;
    match target_rate {
        Some(sr) if sr != d.sample_rate => {
            let y = resample(&d.samples, d.sample_rate, sr).map_err(|e| match e {
                DataError::Invalid(m) => DataError::bad_file(path, m),
                other => other,
            })?;
            Ok((y, sr))
        }
        _ => Ok((d.samples, d.sample_rate)),
    }
}
