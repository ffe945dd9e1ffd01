//! Resource limits: every size that a hostile or absurd input (a file, a manifest, an option)
//! could turn into a huge allocation is checked against one of these named limits *before*
//! anything is allocated, and the error names the value, the limit and how to raise it.
//!
//! One mechanism raises (or lowers) any limit for a real need: the environment variable named by
//! [`Limit::env`], e.g. `DGL_MAX_FILE_BYTES=8589934592 dgl train …`. A value that is not a whole
//! number is an error naming the variable (never silently ignored). `docs/datasets.md` lists every
//! limit ("Resource limits").

/// A named upper bound, overridable through an environment variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// What is bounded, for messages (e.g. `file size`).
    pub what: &'static str,
    /// Unit of the value, for messages (e.g. `bytes`).
    pub unit: &'static str,
    /// The environment variable that overrides the default.
    pub env: &'static str,
    /// The value used when the variable is not set.
    pub default: u64,
}

impl Limit {
    /// The limit in force: the environment variable [`env`](Self::env) when set, else
    /// [`default`](Self::default). Err: the variable is set but not a whole number.
    pub fn value(&self) -> Result<u64, String> {
        match std::env::var(self.env) {
            Err(std::env::VarError::NotPresent) => Ok(self.default),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("{} is not valid UTF-8", self.env)),
            Ok(s) => {
                s.trim().parse::<u64>().map_err(|_| format!("{}={s:?} is not a whole number ({})", self.env, self.what))
            }
        }
    }

    /// Ok when `value` ≤ the limit; else the reason, naming `label` (the key, file field or
    /// quantity), the value, the limit and the variable that raises it.
    pub fn check(&self, value: u64, label: &str) -> Result<(), String> {
        let max = self.value()?;
        if value > max {
            return Err(format!(
                "{label} is {value} {}, over the limit of {max} {} ({}; raise it with the environment variable {})",
                self.unit, self.unit, self.what, self.env
            ));
        }
        Ok(())
    }

    /// [`check`](Self::check) for a `usize`.
    pub fn check_usize(&self, value: usize, label: &str) -> Result<(), String> {
        self.check(value as u64, label)
    }
}

/// Size of a media or feature file read whole (WAV/FLAC/…, JPEG/PNG, `.npy`, safetensors): 1 GiB.
pub const FILE_BYTES: Limit =
    Limit { what: "largest media or feature file", unit: "bytes", env: "DGL_MAX_FILE_BYTES", default: 1 << 30 };

/// Size of a text file (CSV manifest, class list, `meta.json`, config TOML): 64 MiB (VGGSound's CSV
/// is about 11 MB).
pub const TEXT_BYTES: Limit = Limit {
    what: "largest text file (CSV, class list, config)",
    unit: "bytes",
    env: "DGL_MAX_TEXT_BYTES",
    default: 64 << 20,
};

/// Decompressed size of an MNIST IDX file: 256 MiB (MNIST's training images are 47 MB).
pub const IDX_BYTES: Limit =
    Limit { what: "largest (decompressed) IDX file", unit: "bytes", env: "DGL_MAX_IDX_BYTES", default: 256 << 20 };

/// Pixels of one decoded frame: 2^25 ≈ 33.5 Mpx (8K UHD is 33.2 Mpx); a 22000 × 22000 PNG
/// (484 Mpx, 1.9 GB) is refused from its header.
pub const IMAGE_PIXELS: Limit =
    Limit { what: "largest image (width × height)", unit: "pixels", env: "DGL_MAX_IMAGE_PIXELS", default: 1 << 25 };

/// Highest sample rate of an audio file (and of a resampling target): 768 kHz.
pub const SAMPLE_RATE: Limit =
    Limit { what: "highest audio sample rate", unit: "Hz", env: "DGL_MAX_SAMPLE_RATE", default: 768_000 };

/// Lowest sample rate accepted (not overridable: below it a file header is broken).
pub const MIN_SAMPLE_RATE: u32 = 8;

/// Samples of one audio signal in memory (a decoded file, a resampled clip, a recipe's clip length,
/// a crop range): 2^26 ≈ 67 M (50 min at 22.05 kHz; 256 MB as `f32`).
pub const AUDIO_SAMPLES: Limit =
    Limit { what: "longest audio signal", unit: "samples", env: "DGL_MAX_AUDIO_SAMPLES", default: 1 << 26 };

/// Number of classes (logits; a numeric label must be below it): 100,000.
pub const CLASSES: Limit =
    Limit { what: "largest number of classes", unit: "classes", env: "DGL_MAX_CLASSES", default: 100_000 };

/// Frames per clip (`frames`): 256.
pub const FRAMES: Limit = Limit { what: "most frames per clip", unit: "frames", env: "DGL_MAX_FRAMES", default: 256 };

/// Side of the square frames (`image_size`): 4096 pixels.
pub const IMAGE_SIZE: Limit =
    Limit { what: "largest image_size", unit: "pixels", env: "DGL_MAX_IMAGE_SIZE", default: 4096 };

/// FFT length (`n_fft`) and hop (`hop`) of a spectrogram recipe: 65,536 samples.
pub const N_FFT: Limit = Limit { what: "largest n_fft / hop", unit: "samples", env: "DGL_MAX_N_FFT", default: 1 << 16 };

/// Values of one sample (all modalities together, `f32`): 2^26 ≈ 67 M (256 MB per sample and worker;
/// the paper's CREMA-D sample is 0.2 M).
pub const SAMPLE_VALUES: Limit = Limit {
    what: "largest sample (values over all modalities)",
    unit: "values",
    env: "DGL_MAX_SAMPLE_VALUES",
    default: 1 << 26,
};

/// AV-digits `images_per_audio`: 1000.
pub const IMAGES_PER_AUDIO: Limit =
    Limit { what: "largest images_per_audio", unit: "images", env: "DGL_MAX_IMAGES_PER_AUDIO", default: 1000 };

/// Samples of one split of the synthetic dataset (`n_train`, `n_test`): 100,000 (the tiny preset
/// keeps every sample in memory, 28 KB each).
pub const SYNTHETIC_SAMPLES: Limit = Limit {
    what: "largest synthetic split (n_train / n_test)",
    unit: "samples",
    env: "DGL_MAX_SYNTHETIC_SAMPLES",
    default: 100_000,
};

/// Every limit, for documentation and tests.
pub const ALL: [Limit; 13] = [
    FILE_BYTES,
    TEXT_BYTES,
    IDX_BYTES,
    IMAGE_PIXELS,
    SAMPLE_RATE,
    AUDIO_SAMPLES,
    CLASSES,
    FRAMES,
    IMAGE_SIZE,
    N_FFT,
    SAMPLE_VALUES,
    IMAGES_PER_AUDIO,
    SYNTHETIC_SAMPLES,
];

/// Checks an audio sample rate: in [`MIN_SAMPLE_RATE`]`..=`[`SAMPLE_RATE`]. `label` names it.
pub fn check_sample_rate(rate: u64, label: &str) -> Result<(), String> {
    if rate < MIN_SAMPLE_RATE as u64 {
        return Err(format!("{label} is {rate} Hz, below the lowest accepted rate of {MIN_SAMPLE_RATE} Hz"));
    }
    SAMPLE_RATE.check(rate, label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_messages_name_the_limit() {
        let mut envs: Vec<&str> = ALL.iter().map(|l| l.env).collect();
        envs.sort();
        envs.dedup();
        assert_eq!(envs.len(), ALL.len());
        let e = CLASSES.check(100_001, "label").unwrap_err();
        assert!(e.contains("100001") && e.contains("100000") && e.contains("DGL_MAX_CLASSES"), "{e}");
        assert!(CLASSES.check(100_000, "label").is_ok());
        assert!(check_sample_rate(0, "rate").unwrap_err().contains("below"));
        assert!(check_sample_rate(u32::MAX as u64, "rate").unwrap_err().contains("768000"));
    }
}
