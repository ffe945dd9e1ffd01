//! The CMU-MOSI export (`scripts/export_mmsa.py`, default options: Has0 labels, MMSA's valid rows
//! in train) of the tiny MMSA-structured pickle of `scripts/make_tiny_mmsa_pickle.py`, opened
//! through the generic loader. No Python here: the export is committed in
//! `tests/fixtures/mosi-tiny/`, and the generator (not the exporter) wrote what it is checked
//! against: `mosi-tiny.expected.csv` (every MMSA id, split and score) and
//! `mosi-tiny.first-sample.txt` (train sample 0's raw arrays, audio -inf included).
//! Regenerate: see `tests/fixtures/README.md`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use dgl_data::datasets::csv::CsvFile;
use dgl_data::datasets::{DatasetSpec, GenericDataset, GenericOptions};
use dgl_data::{Dataset, Mode, Split};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn root() -> PathBuf {
    fixtures().join("mosi-tiny")
}

/// The rows of a CSV file after checking its header.
fn csv_rows(path: &Path, header: &[&str]) -> Vec<Vec<String>> {
    let csv = CsvFile::read(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(csv.records[0].fields, header, "{}", path.display());
    csv.records[1..].iter().map(|r| r.fields.clone()).collect()
}

/// One MMSA sample as the generator wrote it: id, split (train | valid | test) and score.
#[derive(Clone, Debug, PartialEq)]
struct Source {
    mmsa_id: String,
    mmsa_split: String,
    score: f64,
}

/// `mosi-tiny.expected.csv` (written by the generator), in MMSA order.
fn expected() -> Vec<Source> {
    csv_rows(&fixtures().join("mosi-tiny.expected.csv"), &["mmsa_id", "mmsa_split", "score"])
        .into_iter()
        .map(|f| Source { mmsa_id: f[0].clone(), mmsa_split: f[1].clone(), score: f[2].parse().unwrap() })
        .collect()
}

/// `ids.csv` (written by the exporter): exported id → its MMSA sample.
fn mapping() -> HashMap<String, Source> {
    let header = ["id", "mmsa_id", "mmsa_split", "score", "audio_length", "vision_length"];
    csv_rows(&root().join("ids.csv"), &header)
        .into_iter()
        .map(|f| {
            let s = Source { mmsa_id: f[1].clone(), mmsa_split: f[2].clone(), score: f[3].parse().unwrap() };
            (f[0].clone(), s)
        })
        .collect()
}

/// The generic split an MMSA split goes to by default (`--valid-split train`).
fn generic_split(mmsa_split: &str) -> Split {
    match mmsa_split {
        "train" | "valid" => Split::Train,
        "test" => Split::Test,
        other => panic!("unknown MMSA split {other:?}"),
    }
}

fn open(split: Split) -> GenericDataset {
    GenericDataset::open(&GenericOptions { verify: true, ..GenericOptions::new(root()) }, split)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn mosi_export_modalities_shapes_and_counts() {
    let (train, test) = (open(Split::Train), open(Split::Test));
    for d in [&train, &test] {
        assert_eq!(d.modality_names(), vec!["audio", "text", "visual"]);
        // The unaligned layout: a different length per modality (audio 6, text 4, vision 5).
        assert_eq!(d.modality_shapes(), vec![vec![6, 5], vec![4, 8], vec![5, 20]]);
        assert_eq!(d.num_classes(), 2);
        assert_eq!(d.class_names(), &["negative".to_string(), "positive".to_string()]);
    }
    let src = expected();
    let count = |s: Split| src.iter().filter(|e| generic_split(&e.mmsa_split) == s).count();
    assert_eq!((train.len(), test.len()), (count(Split::Train), count(Split::Test)));
    assert_eq!((train.len(), test.len()), (6 + 3, 4));
    assert_eq!(train.report().counts(Split::Train).ok, 9);
    // The same tree through the config path (`kind = "generic"`).
    let (d, _) = DatasetSpec::from_kind("generic", Some(root())).unwrap().open(Split::Test).unwrap();
    assert_eq!((d.len(), d.modality_names().len()), (4, 3));
}

#[test]
fn mosi_export_ids_map_back_to_every_sample() {
    let map = mapping();
    let src = expected();
    assert_eq!(map.len(), src.len());
    let mut seen = HashSet::new();
    for (id, s) in &map {
        assert!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "exported id {id:?} is not sanitised"
        );
        assert!(!id.starts_with('.'), "{id:?}");
        assert!(seen.insert(id.to_ascii_lowercase()), "{id:?} repeats (case-insensitively)");
        assert!(src.contains(s), "{id:?} maps to {s:?}, not a sample of the pickle");
    }
    // Every MMSA sample exactly once (the ids that needed sanitising included).
    let sources: HashSet<(&str, &str)> = map.values().map(|s| (s.mmsa_id.as_str(), s.mmsa_split.as_str())).collect();
    assert_eq!(sources.len(), src.len());
    for raw in ["my video$_$3", "a b$_$1", "a_b$_$1", "cut/1$_$5", "Zx9$_$4", "zX9$_$4"] {
        assert!(src.iter().any(|e| e.mmsa_id == raw), "the generator lost {raw:?}");
    }
    // The manifest lists exactly the mapped ids.
    let manifest = csv_rows(&root().join("manifest.csv"), &["id", "label", "split"]);
    let ids: HashSet<&str> = manifest.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, map.keys().map(String::as_str).collect());
}

#[test]
fn mosi_export_labels_follow_has0() {
    let map = mapping();
    let mut zeros = 0;
    let mut n = 0;
    for split in [Split::Train, Split::Test] {
        let d = open(split);
        for (i, item) in d.items().iter().enumerate() {
            let s = &map[&item.id];
            assert_eq!(generic_split(&s.mmsa_split), split, "{} ({s:?})", item.id);
            // Has0 (MMSA metricsTop.py): positive iff score >= 0, so 0 and -0 are positive.
            let want = u32::from(s.score >= 0.0);
            assert_eq!(d.label(i).unwrap(), want, "{} ({s:?})", item.id);
            assert_eq!(item.label, want);
            if s.score == 0.0 {
                zeros += 1;
                assert_eq!(want, 1);
            }
            n += 1;
        }
    }
    assert_eq!(n, expected().len(), "every sample is kept under Has0");
    assert_eq!(zeros, 3, "the fixture's three zero scores (0.0 in train and test, -0.0 in valid)");
}

#[test]
fn mosi_export_values_match_the_pickle() {
    // Train sample 0's raw arrays: "<modality> <t> v0 v1 ..." (pickle names: audio, vision, text).
    let text = std::fs::read_to_string(fixtures().join("mosi-tiny.first-sample.txt")).unwrap();
    let mut raw: HashMap<&str, Vec<f64>> = HashMap::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let key = f.next().unwrap();
        let _t = f.next().unwrap();
        raw.entry(key).or_default().extend(f.map(|v| v.parse::<f64>().unwrap()));
    }
    let first = &expected()[0];
    assert_eq!(first.mmsa_split, "train");
    let (id, _) = mapping().into_iter().find(|(_, s)| s == first).unwrap();
    let train = open(Split::Train);
    let index = train.items().iter().position(|it| it.id == id).unwrap();
    let e = train.get(index, Mode::Eval).unwrap();
    // Loader order: audio, text, visual.
    for (k, key) in ["audio", "text", "vision"].into_iter().enumerate() {
        let want = &raw[key];
        let got = &e.modalities[k];
        assert_eq!(got.len(), want.len(), "{key}");
        for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
            // MMSA's data_loader.py sets audio -inf to 0; everything else is copied as f32.
            let w = if key == "audio" && w == f64::NEG_INFINITY { 0.0 } else { w as f32 };
            assert_eq!(g.to_bits(), w.to_bits(), "{key}[{j}]: {g} vs {w}");
        }
    }
    let neg_inf = raw["audio"].iter().filter(|v| **v == f64::NEG_INFINITY).count();
    assert_eq!(neg_inf, 2, "the fixture's sample 0 has two -inf audio values");
    assert!(raw.values().flatten().all(|v| v.is_finite() || *v == f64::NEG_INFINITY));
}
