//! # dgl-data — data for multimodal training
//!
//! Decoding, spectrogram front-ends, visual transforms, the paper's dataset layouts and an embedded
//! default dataset that needs no files.
//!
//! - [`audio`]: decode (symphonia) → mono → resample (windowed sinc) → tile/crop/clip.
//! - [`spectrogram`]: realfft STFT and the named front-ends (`librosa-cremad`, `librosa-ks`,
//!   `scipy-paper`, generic).
//! - [`visual`]: JPEG/PNG frames, RandomResizedCrop/flip/normalise, frame choice.
//! - [`synthetic`]: the embedded 6-class audio-visual dataset ([`SyntheticAv`]), the embedded
//!   three-modality sequence set ([`SyntheticSequences`], Table 2's mixer half) and the embedded
//!   RGB-D segmentation set ([`SyntheticRgbd`], Table 5's default).
//! - [`dataset`]: the [`Dataset`] trait, batching (dense `[B, H, W]` labels for segmentation) and
//!   ESANet's median-frequency class weights ([`median_frequency_weights`]).
//! - [`fixtures`]: tiny fixture trees in the CREMA-D, Kinetics-Sounds and VGGSound layouts.

pub mod audio;
pub mod dataset;
pub mod datasets;
pub mod error;
pub mod fixtures;
pub mod limits;
pub mod spectrogram;
pub mod synthetic;
pub mod visual;

pub use dataset::{
    dominant_class, epoch_batches, load_batch, median_frequency_weights, stratified_split, Batch, Dataset, Example,
    Mode, Split, Subset,
};
pub use datasets::{prepare, CachedDataset, DatasetKind, DatasetSpec, Report};
pub use error::{DataError, Result};
pub use spectrogram::SpectrogramRecipe;
pub use synthetic::rgbd::{RgbdSetConfig, SyntheticRgbd};
pub use synthetic::sequences::{SequenceSetConfig, SyntheticSequences};
pub use synthetic::{SyntheticAv, SyntheticConfig, SyntheticPreset};
