//! Kinetics-Sounds in the DGL (GDL) layout, paired by clip id.
//!
//! ```text
//! <root>/audio/{train|test}/<class>/<vid>.wav
//! <root>/visual/{train_img|val_img}/Image-01-FPS/<class>/<vid>/*.jpg
//! <class_list>   (default <root>/class.txt; comma-separated or one per line; label = position;
//!                 spaces in names become underscores, as folder names)
//! ```
//! The class list is explicit, so the 31/32/33-class variants are a choice of file; a 34-logit
//! head (the official dead logit) is `num_classes = 34`. Class folders missing from the list are
//! an error unless `ignore_unlisted_classes` (then noted in the report); a listed class with no
//! folder at all is an error. Audio and frames are paired by `(class, vid)` — never by
//! position in two sorted lists as the official loader does — and a clip with only one of them
//! is a missing item. Defaults: 3 frames, `librosa-ks` (129 × 626), random 5 s crop from the first
//! 10 s in training and the middle crop (start 2.5 s) at test time (the official code crops
//! randomly at test time too).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::av::{AvClips, Candidate};
use super::classes::ClassList;
use super::fsutil::{list_dir, not_found};
use super::options::KsOptions;
use super::report::Report;
use crate::dataset::Split;
use crate::error::{DataError, Result};
use crate::spectrogram::SpectrogramRecipe;

/// `(audio split folder, visual split folder)` under the root.
pub fn ks_split_dirs(root: &Path, split: Split) -> (PathBuf, PathBuf) {
    let (a, v) = match split {
        Split::Train => ("train", "train_img"),
        Split::Test => ("test", "val_img"),
    };
    (root.join("audio").join(a), root.join("visual").join(v).join("Image-01-FPS"))
}

/// Opens one split of Kinetics-Sounds.
pub fn open_ks(opts: &KsOptions, split: Split) -> Result<AvClips> {
    let root = opts.root.as_path();
    let front = opts.clip.front_end(SpectrogramRecipe::librosa_ks(), 3, 5.0)?;
    let list_path = opts.class_list.clone().unwrap_or_else(|| root.join("class.txt"));
    let classes = ClassList::read(&list_path, true)?;
    let k = opts.clip.logits(classes.len())?;
    let (adir, vdir) = ks_split_dirs(root, split);
    let mut report = Report::new(classes.names.clone());

    // class -> (audio folder, visual folder)
    let mut class_dirs: Vec<(Option<PathBuf>, Option<PathBuf>)> = vec![(None, None); classes.len()];
    for (which, dir) in [(0, &adir), (1, &vdir)] {
        for e in list_dir(dir)? {
            if !e.is_dir {
                report.notes.push(format!("{}: not a class folder, left out", e.path.display()));
                continue;
            }
            match classes.get(&e.name) {
                Some(c) => {
                    let slot = &mut class_dirs[c as usize];
                    if which == 0 {
                        slot.0 = Some(e.path);
                    } else {
                        slot.1 = Some(e.path);
                    }
                }
                None if opts.ignore_unlisted_classes => report.notes.push(format!(
                    "class folder {} is not in {}; left out",
                    e.path.display(),
                    list_path.display()
                )),
                None => {
                    return Err(DataError::bad_file(
                        &list_path,
                        format!(
                            "class folder {} is not in the class list (set ignore_unlisted_classes to leave it out)",
                            e.path.display()
                        ),
                    ))
                }
            }
        }
    }
    for (c, (a, v)) in class_dirs.iter().enumerate() {
        if a.is_none() && v.is_none() {
            return Err(DataError::bad_file(
                &list_path,
                format!(
                    "class {:?} of the class list has no folder in {} nor in {}",
                    classes.names[c],
                    adir.display(),
                    vdir.display()
                ),
            ));
        }
    }

    let mut candidates = Vec::new();
    let mut owner: HashMap<String, PathBuf> = HashMap::new();
    for (c, (a, v)) in class_dirs.into_iter().enumerate() {
        let label = c as u32;
        let class = &classes.names[c];
        // vid -> (audio file, frames folder)
        let mut clips: BTreeMap<String, (Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
        if let Some(a) = &a {
            for e in list_dir(a)? {
                let stem = e.name.strip_suffix(".wav").or_else(|| e.name.strip_suffix(".WAV"));
                match stem {
                    Some(s) if !e.is_dir && !s.is_empty() => clips.entry(s.to_string()).or_default().0 = Some(e.path),
                    _ => candidates.push(Candidate {
                        id: format!("{class}/{}", e.name),
                        label,
                        audio: e.path.clone(),
                        frames_dir: PathBuf::new(),
                        problem: Some(DataError::bad_file(
                            &e.path,
                            "unexpected entry in an audio class folder (expected <vid>.wav)",
                        )),
                    }),
                }
            }
        }
        if let Some(v) = &v {
            for e in list_dir(v)? {
                if e.is_dir {
                    clips.entry(e.name.clone()).or_default().1 = Some(e.path);
                } else {
                    candidates.push(Candidate {
                        id: format!("{class}/{}", e.name),
                        label,
                        audio: PathBuf::new(),
                        frames_dir: e.path.clone(),
                        problem: Some(DataError::bad_file(
                            &e.path,
                            "unexpected file in a visual class folder (expected <vid>/ frame folders)",
                        )),
                    });
                }
            }
        }
        let a_dir = a.unwrap_or_else(|| adir.join(class));
        let v_dir = v.unwrap_or_else(|| vdir.join(class));
        for (vid, (audio, frames)) in clips {
            let here = audio.clone().or(frames.clone()).expect("one of them is set");
            if let Some(prev) = owner.insert(vid.clone(), here.clone()) {
                return Err(DataError::bad_file(&here, format!("clip id {vid:?} also appears as {}", prev.display())));
            }
            let problem = match (&audio, &frames) {
                (Some(_), Some(_)) => None,
                (None, _) => {
                    Some(not_found(&a_dir.join(format!("{vid}.wav")), "audio file missing (the clip has frames)"))
                }
                (_, None) => Some(not_found(&v_dir.join(&vid), "frame folder missing (the clip has audio)")),
            };
            candidates.push(Candidate {
                id: vid.clone(),
                label,
                audio: audio.unwrap_or_else(|| a_dir.join(format!("{vid}.wav"))),
                frames_dir: frames.unwrap_or_else(|| v_dir.join(&vid)),
                problem,
            });
        }
    }
    refuse_cross_split_clips(root, split, &owner)?;
    AvClips::build(("ks", &adir), split, candidates, (classes.names.clone(), k), front, &opts.clip, report)
}

/// A clip id (`<vid>.wav` under any class) of this split that is also under the other split's
/// audio folder is an error naming both files (the same clip in train and test inflates the test
/// accuracy). Only the other split's folder listings are read.
fn refuse_cross_split_clips(root: &Path, split: Split, owner: &HashMap<String, PathBuf>) -> Result<()> {
    let (other, _) = ks_split_dirs(root, split.other());
    if !other.is_dir() {
        return Ok(());
    }
    for class in list_dir(&other)?.into_iter().filter(|e| e.is_dir) {
        for e in list_dir(&class.path)? {
            let stem = e.name.strip_suffix(".wav").or_else(|| e.name.strip_suffix(".WAV"));
            if let Some(here) = stem.and_then(|s| owner.get(s)) {
                return Err(DataError::bad_file(
                    here,
                    format!(
                        "clip {:?} is in both the {} and the {} split (also {})",
                        stem.unwrap_or_default(),
                        split.name(),
                        split.other().name(),
                        e.path.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}
