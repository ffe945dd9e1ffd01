//! A generic dataset: a CSV manifest plus per-sample tensors, any number of modalities of any
//! shapes.
//!
//! ```text
//! <root>/manifest.csv        header `id,label,split` (any column order), then one row per sample;
//!                            label = integer or class name, split = train | test
//! <root>/classes.txt         optional class list (one name per line); label = position
//! <root>/features/<id>.safetensors               one file per sample, one tensor per modality
//!   or
//! <root>/features/<modality>/<id>.safetensors    one file per modality per sample (1 tensor)
//! <root>/features/<modality>/<id>.npy            (same, as .npy: <f4/<f8, C order)
//! ```
//! Modalities are the tensor names (per-sample files) or the folder names (per-modality layout),
//! sorted, unless `modalities` lists them (which also selects a subset). Tensors are read as
//! `f32` (`F32`/`F64` safetensors, `<f4`/`<f8` npy). Every sample of a modality must have the
//! shape of the first usable sample in manifest order. Without a class list, integer labels give
//! `max + 1` classes (or `num_classes`) and name labels the sorted names of the whole manifest
//! (so train and test agree).
//!
//! Checked when opening: manifest syntax, unknown / out-of-range labels, duplicate and unsafe
//! ids (file:line errors); that every file exists and has a valid header with the right shapes
//! (missing / corrupt items). Checked when reading a sample: NaN / Inf values. All errors name
//! the file.

use crate::limits::LimitExt;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::classes::ClassList;
use super::csv::CsvFile;
use super::fsutil::{list_dir, not_found};
use super::options::{logits, GenericOptions};
use super::report::Report;
use super::tensorfile::{check_finite, probe_feature_file, read_feature_file};
use crate::dataset::{Dataset, Example, Mode, Split};
use crate::error::{DataError, Result};

/// How feature files are organised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureLayout {
    /// `features/<id>.safetensors` with one tensor per modality.
    PerSample,
    /// `features/<modality>/<id>.{npy,safetensors}`.
    PerModality,
}

/// `(tensor name, shape)` pairs.
type Shapes = Vec<(String, Vec<usize>)>;
/// A row's files and what they hold.
type Probed = (Vec<PathBuf>, Shapes);

/// One manifest row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestRow {
    /// 1-based line in the manifest.
    pub line: usize,
    pub id: String,
    pub label: u32,
    pub split: Split,
}
type Row = ManifestRow;

/// One usable sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenericItem {
    pub id: String,
    pub label: u32,
    /// One file (per-sample layout) or one per modality.
    pub files: Vec<PathBuf>,
}

/// One split of a generic dataset.
pub struct GenericDataset {
    split: Split,
    layout: FeatureLayout,
    modalities: Vec<String>,
    shapes: Vec<Vec<usize>>,
    class_names: Vec<String>,
    num_classes: usize,
    items: Vec<GenericItem>,
    report: Report,
}

fn parse_split(s: &str) -> std::result::Result<Split, String> {
    match s {
        "train" => Ok(Split::Train),
        "test" => Ok(Split::Test),
        other => Err(format!("split {other:?} is neither train nor test (validation is carved from train)")),
    }
}

/// Parses a manifest (`path` names it in errors): its rows and the class names. See the module
/// docs for the label rules.
pub fn parse_manifest(
    bytes: &[u8],
    path: &Path,
    classes: Option<&ClassList>,
    num_classes: Option<usize>,
) -> Result<(Vec<ManifestRow>, Vec<String>)> {
    if let Some(k) = num_classes {
        crate::limits::CLASSES.check_usize(k, "num_classes").map_err(DataError::Invalid)?;
    }
    let csv = CsvFile::parse(bytes, path)?;
    let header = csv
        .records
        .first()
        .ok_or_else(|| DataError::bad_file(path, "empty manifest (expected the header id,label,split)"))?;
    let col = |name: &str| header.fields.iter().position(|f| f == name);
    let (ci, cl, cs) = match (col("id"), col("label"), col("split")) {
        (Some(a), Some(b), Some(c)) if header.fields.len() == 3 => (a, b, c),
        _ => {
            return Err(csv.err(
                header,
                format!("header must be the three columns id,label,split (in any order), found {:?}", header.fields),
            ))
        }
    };
    let mut raw: Vec<(usize, String, String, Split)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &csv.records[1..] {
        if r.fields.len() != 3 {
            return Err(csv.err(r, format!("expected 3 columns (id,label,split), found {}", r.fields.len())));
        }
        if let Some(k) = r.fields.iter().position(|f| f.is_empty()) {
            return Err(csv.err(r, format!("column {} is empty", k + 1)));
        }
        let id = r.fields[ci].clone();
        super::check_id(&id).map_err(|why| csv.err(r, why))?;
        if let Some(first) = seen.insert(id.clone(), r.line) {
            return Err(csv.err(r, format!("duplicate id {id:?} (first on line {first})")));
        }
        let split = parse_split(&r.fields[cs]).map_err(|why| csv.err(r, why))?;
        raw.push((r.line, id, r.fields[cl].clone(), split));
    }
    let is_int = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let find = |line: usize| csv.records.iter().find(|r| r.line == line).expect("row exists");
    let names: Vec<String>;
    let mut rows = Vec::with_capacity(raw.len());
    if let Some(cls) = classes {
        names = cls.names.clone();
        for (line, id, label, split) in raw {
            let y = if is_int(&label) {
                match label.parse::<u32>() {
                    Ok(v) if (v as usize) < cls.len() => v,
                    _ => {
                        return Err(csv.err(
                            find(line),
                            format!(
                                "label {label} is out of range for the {} classes of {}",
                                cls.len(),
                                cls.path.display()
                            ),
                        ))
                    }
                }
            } else {
                cls.get(&label).ok_or_else(|| {
                    csv.err(find(line), format!("unknown label {label:?} (not in {})", cls.path.display()))
                })?
            };
            rows.push(Row { line, id, label: y, split });
        }
    } else if raw.first().is_none_or(|r| is_int(&r.2)) {
        let mut max = 0u32;
        let first_line = raw.first().map_or(0, |r| r.0);
        for (line, id, label, split) in raw {
            if !is_int(&label) {
                return Err(csv.err(
                    find(line),
                    format!("label {label:?} is a name but labels are numbers (line {first_line}); give a class list to mix them"),
                ));
            }
            let y: u32 = label.parse().map_err(|_| csv.err(find(line), format!("label {label} is too large")))?;
            // Labels 0..=y become y + 1 classes: bound them before any class name is made.
            crate::limits::CLASSES
                .check_label(y as u64 + 1, &format!("label {y} implies a number of classes that"))
                .map_err(|r| csv.err(find(line), r))?;
            if let Some(k) = num_classes {
                if y as usize >= k {
                    return Err(csv.err(find(line), format!("label {y} is out of range for num_classes {k}")));
                }
            }
            max = max.max(y);
            rows.push(Row { line, id, label: y, split });
        }
        let k = num_classes.unwrap_or(if rows.is_empty() { 0 } else { max as usize + 1 });
        names = (0..k).map(|c| c.to_string()).collect();
    } else {
        if let Some(r) = raw.iter().find(|r| is_int(&r.2)) {
            return Err(csv.err(
                find(r.0),
                format!(
                    "label {} is a number but labels are names (line {}); give a class list to mix them",
                    r.2, raw[0].0
                ),
            ));
        }
        let set: BTreeSet<&str> = raw.iter().map(|r| r.2.as_str()).collect();
        names = set.into_iter().map(str::to_string).collect();
        let index: HashMap<&str, u32> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32)).collect();
        for (line, id, label, split) in raw.iter().cloned() {
            rows.push(Row { line, id, label: index[label.as_str()], split });
        }
    }
    Ok((rows, names))
}

/// The features folder: its layout and what it offers.
struct Features {
    dir: PathBuf,
    layout: FeatureLayout,
    /// The modality folders (per-modality layout; empty otherwise).
    folders: Vec<String>,
}

impl Features {
    /// Lists `<root>/features` and decides its layout (per-sample files, or one folder per
    /// modality; a mix is an error).
    fn resolve(root: &Path) -> Result<Self> {
        let dir = root.join("features");
        let entries = list_dir(&dir)?;
        let folders: Vec<String> = entries.iter().filter(|e| e.is_dir).map(|e| e.name.clone()).collect();
        let layout = if folders.is_empty() {
            FeatureLayout::PerSample
        } else {
            if let Some(f) = entries.iter().find(|e| !e.is_dir && e.name.ends_with(".safetensors")) {
                return Err(DataError::bad_file(
                    &f.path,
                    "features/ mixes per-sample files with per-modality folders; use one layout",
                ));
            }
            FeatureLayout::PerModality
        };
        Ok(Self { dir, layout, folders })
    }

    /// The modalities before any file is probed: the configured list (each must have its folder
    /// in the per-modality layout), else the folders; empty for per-sample files without a list
    /// (they come from the reference file).
    fn initial_modalities(&self, selected: Option<&[String]>) -> Result<Vec<String>> {
        let modalities = match (selected, self.layout) {
            (Some(m), _) => m.to_vec(),
            (None, FeatureLayout::PerModality) => self.folders.clone(),
            (None, FeatureLayout::PerSample) => Vec::new(),
        };
        if let (Some(m), FeatureLayout::PerModality) = (selected, self.layout) {
            for name in m {
                if !self.folders.contains(name) {
                    return Err(not_found(&self.dir.join(name), "modality folder missing"));
                }
            }
        }
        if selected.is_some() {
            super::options::check_modality_list(&modalities)?;
        }
        Ok(modalities)
    }

    /// The files of sample `id`: one (per-sample layout) or one per modality of `mods`.
    fn files_of(&self, id: &str, mods: &[String]) -> Result<Vec<PathBuf>> {
        match self.layout {
            FeatureLayout::PerSample => Ok(vec![self.dir.join(format!("{id}.safetensors"))]),
            FeatureLayout::PerModality => mods
                .iter()
                .map(|m| {
                    let npy = self.dir.join(m).join(format!("{id}.npy"));
                    let st = self.dir.join(m).join(format!("{id}.safetensors"));
                    match (npy.exists(), st.exists()) {
                        (true, true) => Err(DataError::bad_file(
                            &npy,
                            format!("both {id}.npy and {id}.safetensors exist; keep one"),
                        )),
                        (true, false) => Ok(npy),
                        (false, true) => Ok(st),
                        (false, false) => Err(not_found(&npy, "feature file missing (neither .npy nor .safetensors)")),
                    }
                })
                .collect(),
        }
    }

    /// A row's files and the shapes of its tensors (headers only).
    fn probe(&self, row: &Row, mods: &[String]) -> Result<Probed> {
        let files = self.files_of(&row.id, mods)?;
        let mut found = Vec::new();
        match self.layout {
            FeatureLayout::PerSample => found.extend(probe_feature_file(&files[0])?),
            FeatureLayout::PerModality => {
                for (m, f) in mods.iter().zip(&files) {
                    let t = probe_feature_file(f)?;
                    let shape = match t.as_slice() {
                        [(_, s)] => s.clone(),
                        many => match many.iter().find(|(n, _)| n == m) {
                            Some((_, s)) => s.clone(),
                            None => {
                                return Err(DataError::bad_file(
                                    f,
                                    format!("holds {} tensors and none is named {m:?}", many.len()),
                                ))
                            }
                        },
                    };
                    found.push((m.clone(), shape));
                }
            }
        }
        Ok((files, found))
    }
}

/// The modalities and their shapes, fixed by a reference file.
struct Reference {
    file: PathBuf,
    modalities: Vec<String>,
    shapes: Vec<Vec<usize>>,
    /// Whether `modalities` was configured (a per-sample file may then hold more tensors).
    selected: bool,
}

impl Reference {
    /// The first row (manifest order, any split) whose files are all usable fixes the shapes
    /// (and, for per-sample files without a configured list, the modalities); with none usable,
    /// the first row's own error.
    fn find(features: &Features, rows: &[Row], manifest: &Path, initial: Vec<String>, selected: bool) -> Result<Self> {
        let reference = rows.iter().find_map(|row| features.probe(row, &initial).ok());
        let Some((files, found)) = reference else {
            let first = rows.first().ok_or_else(|| DataError::bad_file(manifest, "the manifest has no rows"))?;
            return Err(features.probe(first, &initial).expect_err("the probe failed"));
        };
        let file = files[0].clone();
        let modalities = if features.layout == FeatureLayout::PerSample && !selected {
            found.iter().map(|(n, _)| n.clone()).collect()
        } else {
            initial
        };
        if modalities.is_empty() {
            return Err(DataError::bad_file(&file, "holds no tensors"));
        }
        let map: HashMap<&str, &Vec<usize>> = found.iter().map(|(n, s)| (n.as_str(), s)).collect();
        let shapes = modalities
            .iter()
            .map(|m| {
                map.get(m.as_str())
                    .map(|s| (*s).clone())
                    .ok_or_else(|| DataError::bad_file(&file, format!("has no tensor named {m:?}")))
            })
            .collect::<Result<_>>()?;
        Ok(Self { file, modalities, shapes, selected })
    }

    /// A row's files, once its tensors are checked against the reference's names and shapes.
    fn check(&self, features: &Features, row: &Row) -> Result<Vec<PathBuf>> {
        let per_sample = features.layout == FeatureLayout::PerSample;
        let (files, found) = features.probe(row, &self.modalities)?;
        let map: HashMap<&str, &Vec<usize>> = found.iter().map(|(n, s)| (n.as_str(), s)).collect();
        if per_sample && !self.selected && found.len() != self.modalities.len() {
            let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
            return Err(DataError::bad_file(
                &files[0],
                format!("holds tensors {names:?}, expected {:?} (as {})", self.modalities, self.file.display()),
            ));
        }
        for (k, (m, want)) in self.modalities.iter().zip(&self.shapes).enumerate() {
            let f = if per_sample { &files[0] } else { &files[k] };
            match map.get(m.as_str()) {
                None => return Err(DataError::bad_file(f, format!("has no tensor named {m:?}"))),
                Some(s) if *s != want => {
                    return Err(DataError::bad_file(
                        f,
                        format!(
                            "modality {m:?} has shape {s:?}, expected {want:?} (the shape in {})",
                            self.file.display()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(files)
    }
}

/// The manifest's path, its rows, the class names and the number of logits.
fn read_manifest(opts: &GenericOptions) -> Result<(PathBuf, Vec<Row>, Vec<String>, usize)> {
    let root = &opts.root;
    let manifest = opts.manifest.clone().unwrap_or_else(|| root.join("manifest.csv"));
    let class_path = opts.class_list.clone().or_else(|| Some(root.join("classes.txt")).filter(|p| p.exists()));
    let classes = class_path.as_deref().map(|p| ClassList::read(p, false)).transpose()?;
    let bytes = super::fsutil::read_bounded(&manifest, crate::limits::TEXT_BYTES)?;
    let (rows, names) = parse_manifest(&bytes, &manifest, classes.as_ref(), opts.num_classes)?;
    let num_classes = logits(opts.num_classes, names.len())?;
    if num_classes == 0 {
        return Err(DataError::bad_file(&manifest, "no classes (the manifest has no rows)"));
    }
    Ok((manifest, rows, names, num_classes))
}

impl GenericDataset {
    /// Opens one split (see the module docs): reads the manifest and class list, resolves the
    /// feature layout and the modalities, probes every file of the split against a reference,
    /// and assembles the usable samples (reading each once with `verify`).
    pub fn open(opts: &GenericOptions, split: Split) -> Result<Self> {
        let (manifest, rows, names, num_classes) = read_manifest(opts)?;
        let features = Features::resolve(&opts.root)?;
        let selected = opts.modalities.as_deref();
        let initial = features.initial_modalities(selected)?;
        let reference = Reference::find(&features, &rows, &manifest, initial, selected.is_some())?;

        let mine: Vec<&Row> = rows.iter().filter(|r| r.split == split).collect();
        if mine.is_empty() {
            return Err(DataError::bad_file(
                &manifest,
                format!("has no {} rows: the {} split would have no samples", split.name(), split.name()),
            ));
        }
        let checked: Vec<Result<Vec<PathBuf>>> = mine.par_iter().map(|r| reference.check(&features, r)).collect();
        let mut report = Report::new(names.clone());
        report.touch(split);
        let mut items = Vec::with_capacity(mine.len());
        for (row, r) in mine.iter().zip(checked) {
            match r {
                Ok(files) => items.push(GenericItem { id: row.id.clone(), label: row.label, files }),
                Err(e) if opts.skip_bad => {
                    report.record_problem(
                        split,
                        Some(row.label),
                        format!("{} (manifest line {})", row.id, row.line),
                        &e,
                    );
                }
                Err(e) => return Err(e),
            }
        }
        let Reference { modalities, shapes, .. } = reference;
        let mut me =
            Self { split, layout: features.layout, modalities, shapes, class_names: names, num_classes, items, report };
        if opts.verify {
            me.verify(opts.skip_bad)?;
        }
        super::require_samples(me.items.len(), split, &manifest, &me.report)?;
        for it in &me.items {
            me.report.record_ok(split, it.label);
        }
        Ok(me)
    }

    /// Reads every sample once; a bad one is left out (counted) with `skip_bad`, else the error.
    fn verify(&mut self, skip_bad: bool) -> Result<()> {
        let res: Vec<Result<()>> =
            (0..self.items.len()).into_par_iter().map(|i| self.get(i, Mode::Eval).map(|_| ())).collect();
        let mut keep = Vec::new();
        for (it, r) in std::mem::take(&mut self.items).into_iter().zip(res) {
            match r {
                Ok(()) => keep.push(it),
                Err(e) if skip_bad => {
                    self.report.record_problem(self.split, Some(it.label), &it.id, &e);
                }
                Err(e) => return Err(e),
            }
        }
        self.items = keep;
        Ok(())
    }

    pub fn split(&self) -> Split {
        self.split
    }
    pub fn layout(&self) -> FeatureLayout {
        self.layout
    }
    pub fn items(&self) -> &[GenericItem] {
        &self.items
    }
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }
    pub fn report(&self) -> &Report {
        &self.report
    }

    fn item(&self, index: usize) -> Result<&GenericItem> {
        self.items.get(index).ok_or_else(|| {
            DataError::Invalid(format!("index {index} out of range for a generic split of {}", self.items.len()))
        })
    }
}

impl Dataset for GenericDataset {
    fn len(&self) -> usize {
        self.items.len()
    }
    fn num_classes(&self) -> usize {
        self.num_classes
    }
    fn modality_names(&self) -> Vec<String> {
        self.modalities.clone()
    }
    fn modality_shapes(&self) -> Vec<Vec<usize>> {
        self.shapes.clone()
    }
    fn label(&self, index: usize) -> Result<u32> {
        Ok(self.item(index)?.label)
    }
    /// Reads the sample's tensors (the mode does not matter: no augmentation).
    fn get(&self, index: usize, _mode: Mode) -> Result<Example> {
        let it = self.item(index)?;
        let mut out = Vec::with_capacity(self.modalities.len());
        let mut per_sample: HashMap<String, (Vec<usize>, Vec<f32>)> = match self.layout {
            FeatureLayout::PerSample => {
                read_feature_file(&it.files[0])?.into_iter().map(|(n, s, d)| (n, (s, d))).collect()
            }
            FeatureLayout::PerModality => HashMap::new(),
        };
        for (k, (m, want)) in self.modalities.iter().zip(&self.shapes).enumerate() {
            let (file, found) = match self.layout {
                FeatureLayout::PerSample => (&it.files[0], per_sample.remove(m)),
                FeatureLayout::PerModality => {
                    let mut t = read_feature_file(&it.files[k])?;
                    let pick = if t.len() == 1 { t.pop() } else { t.into_iter().find(|(n, _, _)| n == m) };
                    (&it.files[k], pick.map(|(_, s, d)| (s, d)))
                }
            };
            let (shape, data) = found.ok_or_else(|| DataError::bad_file(file, format!("has no tensor named {m:?}")))?;
            if &shape != want {
                return Err(DataError::bad_file(
                    file,
                    format!("modality {m:?} has shape {shape:?}, expected {want:?}"),
                ));
            }
            check_finite(&data, file, m)?;
            out.push(data);
        }
        Ok(Example { modalities: out, label: it.label, label_map: None })
    }
}
