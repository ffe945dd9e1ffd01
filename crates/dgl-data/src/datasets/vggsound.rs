//! VGGSound in the DGL (GDL) layout.
//!
//! ```text
//! <manifest>   (default <root>/vggsound.csv) rows: ytid,start_s,label,split   (split: train|test;
//!              no header, or a header whose first column starts with "ytid"/"# YouTube")
//! <root>/audio/train-audios/train-set/<ytid>_<start:06>.wav
//! <root>/audio/test-audios/test-set/<ytid>_<start:06>.wav
//! <root>/video/train-set-img/Image-01-FPS/<ytid>_<start:06>.mp4/*.jpg
//! <root>/video/test-set-img/Image-01-FPS/<ytid>_<start:06>.mp4/*.jpg
//! ```
//! Labels are numbered by first appearance among the *train* rows (the official order) or sorted
//! ([`LabelOrder::Sorted`]), or by an explicit `class_list`. A test label never seen in train
//! rows is an error (the official loader asserts equal class counts). Defaults: 3 frames,
//! `librosa-ks`, 5 s crop (random in training, middle at test time). Rows whose files are missing
//! are an error, or with `skip_bad` counted in the report (the official loader drops them
//! silently).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::av::{AvClips, Candidate};
use super::classes::ClassList;
use super::csv::CsvFile;
use super::options::{LabelOrder, VggsoundOptions};
use super::report::Report;
use crate::dataset::Split;
use crate::error::Result;
use crate::spectrogram::SpectrogramRecipe;

/// `(audio folder, frame folders' parent)` of a split.
pub fn vggsound_split_dirs(root: &Path, split: Split) -> (PathBuf, PathBuf) {
    match split {
        Split::Train => (root.join("audio/train-audios/train-set"), root.join("video/train-set-img/Image-01-FPS")),
        Split::Test => (root.join("audio/test-audios/test-set"), root.join("video/test-set-img/Image-01-FPS")),
    }
}

/// The clip id `<ytid>_<start:06>`.
pub fn vggsound_clip_id(ytid: &str, start: u64) -> String {
    format!("{ytid}_{start:06}")
}

/// Parsed rows: (line, ytid, start, label, split).
struct Row<'a> {
    rec: &'a super::csv::Record,
    id: String,
    label: &'a str,
    split: Split,
}

/// The class names of a VGGSound CSV in the chosen order (train rows only), plus the parsed rows.
fn parse_rows<'a>(csv: &'a CsvFile) -> Result<Vec<Row<'a>>> {
    let mut rows = Vec::with_capacity(csv.records.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, r) in csv.records.iter().enumerate() {
        if r.fields.len() != 4 {
            return Err(csv.err(r, format!("expected 4 columns (ytid,start_s,label,split), found {}", r.fields.len())));
        }
        let ytid = r.fields[0].as_str();
        if i == 0 && r.fields[1].parse::<u64>().is_err() {
            let l = ytid.to_ascii_lowercase();
            if l.starts_with("ytid") || l.starts_with("# youtube") || l.starts_with("youtube") {
                continue; // header
            }
        }
        if let Some(k) = r.fields.iter().position(|f| f.is_empty()) {
            return Err(csv.err(r, format!("column {} is empty", k + 1)));
        }
        super::check_id(ytid).map_err(|why| csv.err(r, why))?;
        let start: u64 = r.fields[1]
            .parse()
            .map_err(|_| csv.err(r, format!("start {:?} is not a whole number of seconds", r.fields[1])))?;
        let split = match r.fields[3].as_str() {
            "train" => Split::Train,
            "test" => Split::Test,
            other => return Err(csv.err(r, format!("split {other:?} is neither train nor test"))),
        };
        let id = vggsound_clip_id(ytid, start);
        if let Some(first) = seen.insert(id.clone(), r.line) {
            return Err(csv.err(r, format!("duplicate clip {id} (first on line {first})")));
        }
        rows.push(Row { rec: r, id, label: r.fields[2].as_str(), split });
    }
    Ok(rows)
}

/// Opens one split of VGGSound.
pub fn open_vggsound(opts: &VggsoundOptions, split: Split) -> Result<AvClips> {
    let root = opts.root.as_path();
    let front = opts.clip.front_end(SpectrogramRecipe::librosa_ks(), 3, 5.0)?;
    let path = opts.manifest.clone().unwrap_or_else(|| root.join("vggsound.csv"));
    let csv = CsvFile::read(&path)?;
    let rows = parse_rows(&csv)?;

    let names: Vec<String> = match &opts.class_list {
        Some(p) => ClassList::read(p, false)?.names,
        None => {
            let mut names: Vec<String> = Vec::new();
            let mut known: HashMap<&str, ()> = HashMap::new();
            for r in rows.iter().filter(|r| r.split == Split::Train) {
                if known.insert(r.label, ()).is_none() {
                    names.push(r.label.to_string());
                }
            }
            if opts.label_order == LabelOrder::Sorted {
                names.sort();
            }
            names
        }
    };
    if names.is_empty() {
        return Err(crate::error::DataError::bad_file(&path, "no train rows: cannot number the classes"));
    }
    let index: HashMap<&str, u32> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32)).collect();
    let (adir, vdir) = vggsound_split_dirs(root, split);
    let mut candidates = Vec::new();
    for r in &rows {
        let label = match index.get(r.label) {
            Some(&l) => l,
            None if opts.class_list.is_some() => {
                return Err(csv.err(r.rec, format!("label {:?} is not in the class list", r.label)));
            }
            None => {
                return Err(csv.err(r.rec, format!("label {:?} of a test row never appears in a train row", r.label)));
            }
        };
        if r.split != split {
            continue;
        }
        candidates.push(Candidate {
            id: r.id.clone(),
            label,
            audio: adir.join(format!("{}.wav", r.id)),
            frames_dir: vdir.join(format!("{}.mp4", r.id)),
            problem: None,
        });
    }
    let k = opts.clip.logits(names.len())?;
    let report = Report::new(names.clone());
    AvClips::build(("vggsound", &path), split, candidates, (names, k), front, &opts.clip, report)
}
