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
use super::options::DatasetOptions;
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

impl GenericDataset {
    /// Opens one split (see the module docs; uses `manifest`, `class_list`, `num_classes`,
    /// `modalities`, `skip_bad`, `verify` of `opts`).
    pub fn open(root: &Path, split: Split, opts: &DatasetOptions) -> Result<Self> {
        let manifest = opts.manifest.clone().unwrap_or_else(|| root.join("manifest.csv"));
        let class_path = opts.class_list.clone().or_else(|| Some(root.join("classes.txt")).filter(|p| p.exists()));
        let classes = class_path.as_deref().map(|p| ClassList::read(p, false)).transpose()?;
        let bytes = super::fsutil::read_bounded(&manifest, crate::limits::TEXT_BYTES)?;
        let (rows, names) = parse_manifest(&bytes, &manifest, classes.as_ref(), opts.num_classes)?;
        let num_classes = opts.logits(names.len())?;
        if num_classes == 0 {
            return Err(DataError::bad_file(&manifest, "no classes (the manifest has no rows)"));
        }

        let fdir = root.join("features");
        let entries = list_dir(&fdir)?;
        let dirs: Vec<&str> = entries.iter().filter(|e| e.is_dir).map(|e| e.name.as_str()).collect();
        let layout = if dirs.is_empty() {
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
        let files_of = |id: &str, mods: &[String]| -> Result<Vec<PathBuf>> {
            match layout {
                FeatureLayout::PerSample => Ok(vec![fdir.join(format!("{id}.safetensors"))]),
                FeatureLayout::PerModality => mods
                    .iter()
                    .map(|m| {
                        let npy = fdir.join(m).join(format!("{id}.npy"));
                        let st = fdir.join(m).join(format!("{id}.safetensors"));
                        match (npy.exists(), st.exists()) {
                            (true, true) => Err(DataError::bad_file(
                                &npy,
                                format!("both {id}.npy and {id}.safetensors exist; keep one"),
                            )),
                            (true, false) => Ok(npy),
                            (false, true) => Ok(st),
                            (false, false) => {
                                Err(not_found(&npy, "feature file missing (neither .npy nor .safetensors)"))
                            }
                        }
                    })
                    .collect(),
            }
        };

        // Modality names.
        let mut modalities: Vec<String> = match (&opts.modalities, layout) {
            (Some(m), _) => m.clone(),
            (None, FeatureLayout::PerModality) => dirs.iter().map(|s| s.to_string()).collect(),
            (None, FeatureLayout::PerSample) => Vec::new(), // from the reference file below
        };
        if let (Some(m), FeatureLayout::PerModality) = (&opts.modalities, layout) {
            for name in m {
                if !dirs.contains(&name.as_str()) {
                    return Err(not_found(&fdir.join(name), "modality folder missing"));
                }
            }
        }
        let selected = opts.modalities.is_some();
        if selected && modalities.is_empty() {
            return Err(DataError::Invalid("modalities is an empty list".into()));
        }
        if selected {
            let set: BTreeSet<&String> = modalities.iter().collect();
            if set.len() != modalities.len() {
                return Err(DataError::Invalid(format!("modalities lists a name twice: {modalities:?}")));
            }
        }

        // Per row: the shapes of its modalities (probing headers only).
        let probe = |row: &Row, mods: &[String]| -> Result<Probed> {
            let files = files_of(&row.id, mods)?;
            let mut found = Vec::new();
            match layout {
                FeatureLayout::PerSample => {
                    let t = probe_feature_file(&files[0])?;
                    found.extend(t);
                }
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
        };

        // Reference: the first row (manifest order, any split) whose files are all usable.
        let mut reference: Option<(PathBuf, Shapes)> = None;
        for row in &rows {
            if let Ok((files, found)) = probe(row, &modalities) {
                reference = Some((files[0].clone(), found));
                break;
            }
        }
        let Some((ref_file, ref_found)) = reference else {
            // Nothing usable: report the first row's own error.
            let first = rows.first().ok_or_else(|| DataError::bad_file(&manifest, "the manifest has no rows"))?;
            return Err(probe(first, &modalities).expect_err("the probe failed"));
        };
        if layout == FeatureLayout::PerSample && !selected {
            modalities = ref_found.iter().map(|(n, _)| n.clone()).collect();
        }
        if modalities.is_empty() {
            return Err(DataError::bad_file(&ref_file, "holds no tensors"));
        }
        let ref_map: HashMap<&str, &Vec<usize>> = ref_found.iter().map(|(n, s)| (n.as_str(), s)).collect();
        let mut shapes = Vec::with_capacity(modalities.len());
        for m in &modalities {
            let s = ref_map
                .get(m.as_str())
                .ok_or_else(|| DataError::bad_file(&ref_file, format!("has no tensor named {m:?}")))?;
            shapes.push((*s).clone());
        }

        // Check every row of this split.
        let check = |row: &Row| -> Result<Vec<PathBuf>> {
            let (files, found) = probe(row, &modalities)?;
            let map: HashMap<&str, &Vec<usize>> = found.iter().map(|(n, s)| (n.as_str(), s)).collect();
            if layout == FeatureLayout::PerSample && !selected && found.len() != modalities.len() {
                let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
                return Err(DataError::bad_file(
                    &files[0],
                    format!("holds tensors {names:?}, expected {modalities:?} (as {})", ref_file.display()),
                ));
            }
            for (k, (m, want)) in modalities.iter().zip(&shapes).enumerate() {
                let f = if layout == FeatureLayout::PerSample { &files[0] } else { &files[k] };
                match map.get(m.as_str()) {
                    None => return Err(DataError::bad_file(f, format!("has no tensor named {m:?}"))),
                    Some(s) if *s != want => {
                        return Err(DataError::bad_file(
                            f,
                            format!(
                                "modality {m:?} has shape {s:?}, expected {want:?} (the shape in {})",
                                ref_file.display()
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
            Ok(files)
        };
        let mine: Vec<&Row> = rows.iter().filter(|r| r.split == split).collect();
        if mine.is_empty() {
            return Err(DataError::bad_file(
                &manifest,
                format!("has no {} rows: the {} split would have no samples", split.name(), split.name()),
            ));
        }
        let checked: Vec<Result<Vec<PathBuf>>> = mine.par_iter().map(|r| check(r)).collect();
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
        let mut me = Self { split, layout, modalities, shapes, class_names: names, num_classes, items, report };
        if opts.verify {
            let res: Vec<Result<()>> =
                (0..me.items.len()).into_par_iter().map(|i| me.get(i, Mode::Eval).map(|_| ())).collect();
            let mut keep = Vec::new();
            for (it, r) in std::mem::take(&mut me.items).into_iter().zip(res) {
                match r {
                    Ok(()) => keep.push(it),
                    Err(e) if opts.skip_bad => {
                        me.report.record_problem(split, Some(it.label), &it.id, &e);
                    }
                    Err(e) => return Err(e),
                }
            }
            me.items = keep;
        }
        super::require_samples(me.items.len(), split, &manifest, &me.report)?;
        for it in &me.items {
            me.report.record_ok(split, it.label);
        }
        Ok(me)
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
        Ok(Example { modalities: out, label: it.label })
    }
}
