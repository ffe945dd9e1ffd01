//! The audio-visual clip dataset shared by CREMA-D, Kinetics-Sounds and VGGSound: one audio file
//! and one folder of frames per clip.
//!
//! - Audio: decode → mono → resample to the recipe's rate → periodic tile + crop of
//!   `recipe.n_samples` from a start in `[0, max_start]` (seeded uniform in training, `max_start / 2`
//!   at evaluation — deterministic) → clip to [-1, 1] → spectrogram → `[1, F, T]`.
//! - Visual: frame names sorted; `T` frames chosen evenly spaced at evaluation, seeded uniform
//!   inside `T` equal segments in training (fewer than `T` frames → indices repeat); each frame
//!   gets its own RandomResizedCrop + flip in training, a resize at evaluation → `[3, T, S, S]`.
//!
//! Clips are checked when the dataset is opened: a missing audio file or frame folder, an empty,
//! oversize or non-regular file, a folder without frames, a frame whose image header does not read
//! or announces too many pixels is a problem (an error, or — with `skip_bad` — counted in the
//! [`Report`] and left out). With `verify`, every clip is also fully decoded once at open time
//! (in parallel): its evaluation sample *and every other frame* training may pick, so corrupt
//! files are found then rather than during training.

use crate::limits::LimitExt;
use std::path::{Path, PathBuf};

use dgl_core::rng::Rng;
use rayon::prelude::*;

use super::fsutil::{check_file, list_frames};
use super::options::ClipOptions;
use super::report::Report;
use crate::audio;
use crate::dataset::{Dataset, Example, Mode, Split};
use crate::error::{DataError, Result};
use crate::limits;
use crate::spectrogram::SpectrogramRecipe;
use crate::visual::{self, FrameTransform};

const STREAM_AUDIO: u64 = 0xA0D1;
const STREAM_VISUAL: u64 = 0x7151;

/// Audio and visual front-ends of an [`AvClips`] dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct AvFrontEnd {
    pub recipe: SpectrogramRecipe,
    /// Largest crop start in samples (at the recipe's rate); 0 = always from the start.
    pub max_start: usize,
    /// Frames per clip (T).
    pub frames: usize,
    pub transform: FrameTransform,
}

impl AvFrontEnd {
    /// Checks every setting against its range and [`limits`] before any work, naming the key.
    pub fn check(&self) -> Result<()> {
        if self.frames == 0 {
            return Err(DataError::Invalid("frames must be at least 1".into()));
        }
        if self.transform.size == 0 {
            return Err(DataError::Invalid("image_size must be at least 1".into()));
        }
        limits::FRAMES
            .check_usize(self.frames, "frames")
            .and_then(|_| limits::IMAGE_SIZE.check_usize(self.transform.size, "image_size"))
            .and_then(|_| limits::AUDIO_SAMPLES.check_usize(self.max_start, "audio_max_start_s (in samples)"))
            .map_err(DataError::Invalid)?;
        self.recipe.check("recipe.")?;
        let (f, t) = self.recipe.shape();
        let s = self.transform.size as u64;
        let values = (f * t) as u64 + 3 * self.frames as u64 * s * s;
        limits::SAMPLE_VALUES
            .check_label(values, &format!("a clip ([1, {f}, {t}] audio + [3, {}, {s}, {s}] frames)", self.frames))
            .map_err(DataError::Invalid)
    }
}

/// A clip the layout says should exist. `problem` is set when pairing already found it
/// incomplete (e.g. audio without frames).
#[derive(Debug)]
pub(crate) struct Candidate {
    pub id: String,
    pub label: u32,
    pub audio: PathBuf,
    pub frames_dir: PathBuf,
    pub problem: Option<DataError>,
}

/// A usable clip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvItem {
    pub id: String,
    pub label: u32,
    pub audio: PathBuf,
    /// Frame files, sorted by name.
    pub frames: Vec<PathBuf>,
}

/// One split of an audio-visual clip dataset (see the module docs).
pub struct AvClips {
    kind: &'static str,
    split: Split,
    items: Vec<AvItem>,
    class_names: Vec<String>,
    num_classes: usize,
    front: AvFrontEnd,
    report: Report,
}

impl AvClips {
    /// Checks the candidates (in parallel) and keeps the good ones. Without `skip_bad` the first
    /// bad candidate (in candidate order) is the error. A split left without clips is an error
    /// naming `source` (the manifest or folder the split comes from).
    pub(crate) fn build(
        (kind, source): (&'static str, &Path),
        split: Split,
        candidates: Vec<Candidate>,
        (class_names, num_classes): (Vec<String>, usize),
        front: AvFrontEnd,
        opts: &ClipOptions,
        mut report: Report,
    ) -> Result<Self> {
        let (skip_bad, verify) = (opts.skip_bad, opts.verify);
        front.check()?;
        report.touch(split);
        let checked: Vec<(Candidate, Result<Vec<PathBuf>>)> = candidates
            .into_par_iter()
            .map(|mut c| {
                let r = match c.problem.take() {
                    Some(e) => Err(e),
                    None => check_file(&c.audio).and_then(|_| list_frames(&c.frames_dir)).and_then(|frames| {
                        frames.iter().try_for_each(|f| visual::check_image_file(f))?;
                        Ok(frames)
                    }),
                };
                (c, r)
            })
            .collect();
        let mut items = Vec::with_capacity(checked.len());
        for (c, r) in checked {
            match r {
                Ok(frames) => items.push(AvItem { id: c.id, label: c.label, audio: c.audio, frames }),
                Err(e) if skip_bad => {
                    report.record_problem(split, Some(c.label), &c.id, &e);
                }
                Err(e) => return Err(e),
            }
        }
        let mut me = Self { kind, split, items, class_names, num_classes, front, report };
        if verify {
            let results: Vec<Result<()>> = (0..me.items.len()).into_par_iter().map(|i| me.verify_item(i)).collect();
            let mut keep = Vec::with_capacity(me.items.len());
            for (item, r) in std::mem::take(&mut me.items).into_iter().zip(results) {
                match r {
                    Ok(()) => keep.push(item),
                    Err(e) if skip_bad => {
                        me.report.record_problem(split, Some(item.label), &item.id, &e);
                    }
                    Err(e) => return Err(e),
                }
            }
            me.items = keep;
        }
        super::require_samples(me.items.len(), split, source, &me.report)?;
        for it in &me.items {
            me.report.record_ok(split, it.label);
        }
        Ok(me)
    }

    /// `cremad`, `ks` or `vggsound`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
    pub fn split(&self) -> Split {
        self.split
    }
    /// The usable clips, in dataset order.
    pub fn items(&self) -> &[AvItem] {
        &self.items
    }
    /// Class names, indexed by label (may be shorter than `num_classes` when dead logits were
    /// requested).
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }
    pub fn front_end(&self) -> &AvFrontEnd {
        &self.front
    }
    /// What was found when opening (ok / missing / corrupt per class, every problem).
    pub fn report(&self) -> &Report {
        &self.report
    }

    fn item(&self, index: usize) -> Result<&AvItem> {
        self.items.get(index).ok_or_else(|| {
            DataError::Invalid(format!("index {index} out of range for a {} split of {}", self.kind, self.items.len()))
        })
    }

    /// Decodes everything clip `index` can read in any mode: its evaluation sample and every
    /// frame (training picks any frame of a segment).
    pub fn verify_item(&self, index: usize) -> Result<()> {
        self.get(index, Mode::Eval)?;
        self.check_other_files(index)
    }

    /// The spectrogram of clip `index`, `[1, F, T]` flattened.
    pub fn audio_features(&self, index: usize, rng: Option<&mut Rng>) -> Result<Vec<f32>> {
        let it = self.item(index)?;
        audio_features(&it.audio, &self.front.recipe, self.front.max_start, rng)
    }

    /// The frames of clip `index`, `[3, T, S, S]` flattened.
    pub fn visual_features(&self, index: usize, mut rng: Option<&mut Rng>) -> Result<Vec<f32>> {
        let it = self.item(index)?;
        let idx = visual::frame_indices(it.frames.len(), self.front.frames, rng.as_deref_mut());
        let paths: Vec<&Path> = idx.iter().map(|&i| it.frames[i].as_path()).collect();
        visual::load_frames(&paths, &self.front.transform, rng)
    }
}

/// Audio pipeline of the clip datasets: load at the recipe's rate, tile/crop, clip, spectrogram.
pub(crate) fn audio_features(
    path: &Path,
    recipe: &SpectrogramRecipe,
    max_start: usize,
    rng: Option<&mut Rng>,
) -> Result<Vec<f32>> {
    let (x, _) = audio::load(path, Some(recipe.sample_rate))?;
    if x.is_empty() {
        return Err(DataError::bad_file(path, "no audio samples"));
    }
    let clip = audio::fit_clip(&x, recipe.n_samples, max_start, rng)?;
    let s = recipe.compute(&clip)?;
    if let Some(i) = s.iter().position(|v| !v.is_finite()) {
        return Err(DataError::bad_file(path, format!("spectrogram has a non-finite value at {i}")));
    }
    Ok(s)
}

impl Dataset for AvClips {
    fn len(&self) -> usize {
        self.items.len()
    }
    fn num_classes(&self) -> usize {
        self.num_classes
    }
    fn modality_names(&self) -> Vec<String> {
        vec!["audio".into(), "visual".into()]
    }
    fn modality_shapes(&self) -> Vec<Vec<usize>> {
        let (f, t) = self.front.recipe.shape();
        let s = self.front.transform.size;
        vec![vec![1, f, t], vec![3, self.front.frames, s, s]]
    }
    fn label(&self, index: usize) -> Result<u32> {
        Ok(self.item(index)?.label)
    }
    fn get(&self, index: usize, mode: Mode) -> Result<Example> {
        let label = self.item(index)?.label;
        let (a, v) = match mode {
            Mode::Train { seed } => {
                let mut ra = Rng::derive(seed, STREAM_AUDIO);
                let mut rv = Rng::derive(seed, STREAM_VISUAL);
                (self.audio_features(index, Some(&mut ra))?, self.visual_features(index, Some(&mut rv))?)
            }
            Mode::Eval => (self.audio_features(index, None)?, self.visual_features(index, None)?),
        };
        Ok(Example { modalities: vec![a, v], label, label_map: None })
    }
    /// Decodes the frames that the evaluation choice leaves out.
    fn check_other_files(&self, index: usize) -> Result<()> {
        let it = self.item(index)?;
        let eval = visual::frame_indices(it.frames.len(), self.front.frames, None);
        for (i, f) in it.frames.iter().enumerate() {
            if !eval.contains(&i) {
                visual::load_rgb(f)?;
            }
        }
        Ok(())
    }
}
