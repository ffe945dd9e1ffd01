//! CREMA-D in the OGM-GE / DGL layout.
//!
//! ```text
//! <root>/AudioWAV/<clip>.wav
//! <root>/Image-01-FPS/<clip>/*.jpg        (1 fps frames, 2-3 per clip)
//! <csv_dir>/train.csv, test.csv           (no header: clip,EMO; csv_dir defaults to <root>)
//! ```
//! Labels: NEU 0, HAP 1, SAD 2, FEA 3, DIS 4, ANG 5. Defaults follow the official code: 1 frame,
//! `librosa-cremad` spectrogram (257 × 188), audio tiled from the start (no random crop).
//! Unlike the official loader, rows whose files are missing are an error (or, with `skip_bad`,
//! counted in the report), frame names are sorted and the frame is chosen evenly spaced at test
//! time / seeded-random in training.

use std::collections::HashMap;
use std::path::Path;

use super::av::{AvClips, Candidate};
use super::csv::CsvFile;
use super::options::CremadOptions;
use super::report::Report;
use crate::dataset::Split;
use crate::error::{DataError, Result};
use crate::spectrogram::SpectrogramRecipe;

/// CREMA-D emotion codes in label order.
pub const CREMAD_CLASSES: [&str; 6] = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"];

/// The label of an emotion code.
pub fn cremad_label(code: &str) -> Option<u32> {
    CREMAD_CLASSES.iter().position(|c| *c == code).map(|i| i as u32)
}

/// File name of a split's CSV.
pub fn cremad_csv_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train.csv",
        Split::Test => "test.csv",
    }
}

/// Opens one split of CREMA-D.
pub fn open_cremad(opts: &CremadOptions, split: Split) -> Result<AvClips> {
    let root = opts.root.as_path();
    let front = opts.clip.front_end(SpectrogramRecipe::librosa_cremad(), 1, 0.0)?;
    let csv_path = opts.csv_dir.as_deref().unwrap_or(root).join(cremad_csv_name(split));
    let csv = CsvFile::read(&csv_path)?;
    csv.expect_columns(2, "clip,EMO")?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut candidates = Vec::with_capacity(csv.records.len());
    for r in &csv.records {
        let (clip, emo) = (r.fields[0].as_str(), r.fields[1].as_str());
        let label = cremad_label(emo)
            .ok_or_else(|| csv.err(r, format!("unknown emotion {emo:?} (known: {})", CREMAD_CLASSES.join(", "))))?;
        super::check_id(clip).map_err(|why| csv.err(r, why))?;
        if let Some(first) = seen.insert(clip, r.line) {
            return Err(csv.err(r, format!("duplicate clip {clip:?} (first on line {first})")));
        }
        candidates.push(Candidate {
            id: clip.to_string(),
            label,
            audio: root.join("AudioWAV").join(format!("{clip}.wav")),
            frames_dir: root.join("Image-01-FPS").join(clip),
            problem: None,
        });
    }
    refuse_cross_split_clips(
        &csv,
        &seen,
        &opts.csv_dir.as_deref().unwrap_or(root).join(cremad_csv_name(split.other())),
    )?;
    let names: Vec<String> = CREMAD_CLASSES.iter().map(|s| s.to_string()).collect();
    let k = opts.clip.logits(names.len())?;
    let report = Report::new(names.clone());
    AvClips::build(("cremad", &csv_path), split, candidates, (names, k), front, &opts.clip, report)
}

/// A clip of this split's CSV (`seen`: clip → line) that the other split's CSV also lists is an
/// error naming the clip and both files and lines. An absent other CSV is not checked (opening that
/// split names it).
fn refuse_cross_split_clips(csv: &CsvFile, seen: &HashMap<&str, usize>, other_path: &Path) -> Result<()> {
    if !other_path.exists() {
        return Ok(());
    }
    let other = CsvFile::read(other_path)?;
    for r in &other.records {
        if let Some(line) = r.fields.first().and_then(|clip| seen.get(clip.as_str())) {
            return Err(DataError::bad_line(
                &csv.path,
                *line,
                format!(
                    "clip {:?} is also listed in {}:{} (the same clip in train and test)",
                    r.fields[0],
                    other.path.display(),
                    r.line
                ),
            ));
        }
    }
    Ok(())
}
