//! Spectrogram front-ends: windows, a realfft STFT, and named recipes matching the official
//! loaders (`librosa-cremad`, `librosa-ks`) and the paper's text (`scipy-paper`).

pub(crate) mod fastmath;
pub mod recipe;
pub mod stft;
pub mod window;

pub use recipe::{SpectrogramOutput, SpectrogramRecipe};
pub use stft::{Padding, Stft, StftBuffers};
pub use window::Window;
