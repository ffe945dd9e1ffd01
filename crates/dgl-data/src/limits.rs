//! Resource limits: every size that a hostile or absurd input (a file, a manifest, an option)
//! could turn into a huge allocation is checked against one of these named limits *before*
//! anything is allocated, and the error names the value, the limit and how to raise it.
//!
//! One mechanism raises (or lowers) any limit for a real need: the environment variable named by
//! [`Limit::env`], e.g. `DGL_MAX_FILE_BYTES=8589934592 dgl train …`. A value that is not a whole
//! number is an error naming the variable (never silently ignored). `docs/datasets.md` lists every
//! limit ("Resource limits").

pub use dgl_core::Limit;

/// dgl-data's use of a [`Limit`]: the messages become the text of a [`crate::DataError`] (which
/// adds the file and line), with `label` naming the checked quantity.
pub trait LimitExt {
    /// The bound in force ([`Limit::value`]), the error as text.
    fn bound(&self) -> Result<u64, String>;
    /// Ok when `value` ≤ the bound; else a message naming `label`, the value, the bound and the
    /// environment variable that raises it ([`Limit::check_key`]).
    fn check_label(&self, value: u64, label: &str) -> Result<(), String>;
    /// [`LimitExt::check_label`] for a `usize`.
    fn check_usize(&self, value: usize, label: &str) -> Result<(), String> {
        self.check_label(value as u64, label)
    }
}

impl LimitExt for Limit {
    fn bound(&self) -> Result<u64, String> {
        self.value().map_err(|e| e.to_string())
    }
    fn check_label(&self, value: u64, label: &str) -> Result<(), String> {
        self.check_key(label, value).map_err(|e| e.to_string())
    }
}

/// Size of a media or feature file read whole (WAV/FLAC/…, JPEG/PNG, `.npy`, safetensors): 1 GiB.
pub const FILE_BYTES: Limit = Limit {
    key: "file size",
    what: "largest media or feature file, in bytes",
    default: 1 << 30,
    env: "DGL_MAX_FILE_BYTES",
};

/// Size of a text file (CSV manifest, class list, `meta.json`, config TOML): 64 MiB (VGGSound's CSV
/// is about 11 MB).
pub const TEXT_BYTES: Limit = Limit {
    key: "text file size",
    what: "largest text file (CSV, class list, config), in bytes",
    default: 64 << 20,
    env: "DGL_MAX_TEXT_BYTES",
};

/// Decompressed size of an MNIST IDX file: 256 MiB (MNIST's training images are 47 MB).
pub const IDX_BYTES: Limit = Limit {
    key: "IDX size",
    what: "largest (decompressed) IDX file, in bytes",
    default: 256 << 20,
    env: "DGL_MAX_IDX_BYTES",
};

/// Pixels of one decoded frame: 2^25 ≈ 33.5 Mpx (8K UHD is 33.2 Mpx); a 22000 × 22000 PNG
/// (484 Mpx, 1.9 GB) is refused from its header.
pub const IMAGE_PIXELS: Limit = Limit {
    key: "image pixels",
    what: "largest image (width × height), in pixels",
    default: 1 << 25,
    env: "DGL_MAX_IMAGE_PIXELS",
};

/// Highest sample rate of an audio file (and of a resampling target): 768 kHz.
pub const SAMPLE_RATE: Limit = Limit {
    key: "sample rate",
    what: "highest audio sample rate, in Hz",
    default: 768_000,
    env: "DGL_MAX_SAMPLE_RATE",
};

/// Lowest sample rate accepted (not overridable: below it a file header is broken).
pub const MIN_SAMPLE_RATE: u32 = 8;

/// Samples of one audio signal in memory (a decoded file, a resampled clip, a recipe's clip length,
/// a crop range): 2^26 ≈ 67 M (50 min at 22.05 kHz; 256 MB as `f32`).
pub const AUDIO_SAMPLES: Limit = Limit {
    key: "audio samples",
    what: "longest audio signal, in samples",
    default: 1 << 26,
    env: "DGL_MAX_AUDIO_SAMPLES",
};

/// Number of classes (logits; a numeric label must be below it), shared with `dgl_models::limits`.
pub use dgl_core::limits::CLASSES;

/// Frames per clip (`frames`), shared with `dgl_models::limits`.
pub use dgl_core::limits::FRAMES;

/// Side of the square frames (`image_size`): 4096 pixels.
pub const IMAGE_SIZE: Limit =
    Limit { key: "image_size", what: "largest image_size, in pixels", default: 4096, env: "DGL_MAX_IMAGE_SIZE" };

/// FFT length (`n_fft`) and hop (`hop`) of a spectrogram recipe: 65,536 samples.
pub const N_FFT: Limit =
    Limit { key: "n_fft / hop", what: "largest n_fft / hop, in samples", default: 1 << 16, env: "DGL_MAX_N_FFT" };

/// Values of one sample (all modalities together, `f32`): 2^26 ≈ 67 M (256 MB per sample and worker;
/// the paper's CREMA-D sample is 0.2 M).
pub const SAMPLE_VALUES: Limit = Limit {
    key: "sample values",
    what: "largest sample (values over all modalities), in values",
    default: 1 << 26,
    env: "DGL_MAX_SAMPLE_VALUES",
};

/// AV-digits `images_per_audio`: 1000.
pub const IMAGES_PER_AUDIO: Limit = Limit {
    key: "images_per_audio",
    what: "largest images_per_audio, in images",
    default: 1000,
    env: "DGL_MAX_IMAGES_PER_AUDIO",
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
    crate::synthetic::config::MAX_SAMPLES,
];

/// Checks an audio sample rate: in [`MIN_SAMPLE_RATE`]`..=`[`SAMPLE_RATE`]. `label` names it.
pub fn check_sample_rate(rate: u64, label: &str) -> Result<(), String> {
    if rate < MIN_SAMPLE_RATE as u64 {
        return Err(format!("{label} is {rate} Hz, below the lowest accepted rate of {MIN_SAMPLE_RATE} Hz"));
    }
    SAMPLE_RATE.check_label(rate, label)
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
        let e = CLASSES.check_label(100_001, "label").unwrap_err();
        assert!(e.contains("100001") && e.contains("100000") && e.contains("DGL_MAX_CLASSES"), "{e}");
        assert!(CLASSES.check_label(100_000, "label").is_ok());
        assert!(check_sample_rate(0, "rate").unwrap_err().contains("below"));
        assert!(check_sample_rate(u32::MAX as u64, "rate").unwrap_err().contains("768000"));
    }
}
