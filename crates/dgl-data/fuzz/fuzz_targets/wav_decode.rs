//! The WAV decode path: bytes → symphonia decode → mono → resample → tile/crop → spectrogram.
//! Any input must give `Ok` or a `BadFile` naming the file, never a panic.
#![no_main]

use std::path::Path;

use dgl_data::audio::{decode_bytes, fit_clip, resample};
use dgl_data::SpectrogramRecipe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.wav");
    match decode_bytes(data.to_vec(), path) {
        Ok(d) => {
            // Keep each input cheap: only short clips go through the rest of the pipeline.
            if d.samples.len() > 200_000 || d.sample_rate < 100 || d.sample_rate > 400_000 {
                return;
            }
            let recipe = SpectrogramRecipe::generic(8000, 2000, 128, 64, dgl_data::spectrogram::Window::Hann, None);
            if let Ok(x) = resample(&d.samples, d.sample_rate, 8000) {
                if let Ok(clip) = fit_clip(&x, recipe.n_samples, 100, None) {
                    let _ = recipe.compute(&clip);
                }
            }
        }
        Err(e) => assert!(e.to_string().contains("fuzz.wav"), "{e}"),
    }
});
