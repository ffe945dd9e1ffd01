//! AV-digits on the real FSDD + MNIST in shared/data (skipped with a message when absent): split
//! sizes, pairing, determinism, and the calibration of the default degradations with linear
//! probes (each modality alone clearly below concatenation, concatenation clearly below 100 %).
//!
//! Tuning: `DGL_AVDIGITS_OPTS='{"snr_db":-6,...}'` overrides the options (JSON of
//! `AvDigitsOptions`), `DGL_PROBE_LOGISTIC=1` adds logistic-regression numbers (slower; run with
//! `--release -- --nocapture`).

use std::path::PathBuf;

use dgl_data::datasets::probe::{
    concat_balanced, logistic_regression, nearest_class_mean, standardize, LogisticConfig,
};
use dgl_data::datasets::{AvDigits, AvDigitsOptions, FsddSplit};
use dgl_data::{Dataset, Mode, Split};
use rayon::prelude::*;

fn shared_data() -> Option<PathBuf> {
    let p = std::env::var_os("DGL_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if p.join("fsdd/recordings").is_dir() && p.join("mnist").is_dir() {
        Some(p)
    } else {
        println!("SKIPPED: no FSDD + MNIST under {} (set DGL_SHARED_DATA)", p.display());
        None
    }
}

fn features(ds: &AvDigits) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<u32>) {
    let ex: Vec<_> = (0..ds.len()).into_par_iter().map(|i| ds.get(i, Mode::Eval).unwrap()).collect();
    let a = ex.iter().map(|e| e.modalities[0].clone()).collect();
    let v = ex.iter().map(|e| e.modalities[1].clone()).collect();
    let y = ex.iter().map(|e| e.label).collect();
    (a, v, y)
}

/// (audio, visual, concat) nearest-class-mean accuracies, and logistic ones when asked.
fn probe(opts: &AvDigitsOptions, root: &std::path::Path, logistic: bool) -> ([f64; 3], Option<[f64; 3]>) {
    let tr = AvDigits::open(root, Split::Train, opts, false, false).unwrap();
    let te = AvDigits::open(root, Split::Test, opts, false, false).unwrap();
    let (mut atr, mut vtr, ytr) = features(&tr);
    let (mut ate, mut vte, yte) = features(&te);
    standardize(&mut atr, &mut ate);
    standardize(&mut vtr, &mut vte);
    let ctr = concat_balanced(&[&atr, &vtr]);
    let cte = concat_balanced(&[&ate, &vte]);
    let ncm = [
        nearest_class_mean(&atr, &ytr, &ate, &yte, 10),
        nearest_class_mean(&vtr, &ytr, &vte, &yte, 10),
        nearest_class_mean(&ctr, &ytr, &cte, &yte, 10),
    ];
    let lr = logistic.then(|| {
        let c = LogisticConfig { epochs: 30, l2: 1e-3, seed: 0 };
        // Plain concatenation of the standardised features.
        let join = |a: &[Vec<f32>], b: &[Vec<f32>]| -> Vec<Vec<f32>> {
            a.iter().zip(b).map(|(x, y)| [x.as_slice(), y].concat()).collect()
        };
        let (ctr, cte) = (join(&atr, &vtr), join(&ate, &vte));
        [
            logistic_regression(&atr, &ytr, &ate, &yte, 10, c),
            logistic_regression(&vtr, &ytr, &vte, &yte, 10, c),
            logistic_regression(&ctr, &ytr, &cte, &yte, 10, c),
        ]
    });
    (ncm, lr)
}

#[test]
fn real_avdigits_splits_and_pairing() {
    let Some(root) = shared_data() else { return };
    let o = AvDigitsOptions::default();
    let tr = AvDigits::open(&root, Split::Train, &o, false, false).unwrap();
    let te = AvDigits::open(&root, Split::Test, &o, false, false).unwrap();
    assert_eq!((tr.len(), te.len()), (2700, 300));
    assert_eq!(tr.modality_shapes(), vec![vec![1, 65, 63], vec![1, 1, 28, 28]]);
    assert_eq!(tr.modality_names(), vec!["audio", "visual"]);
    assert!(te.items().iter().all(|it| it.name.index <= 4));
    // Pairing: distinct images within a class, same label, reproducible, seed-dependent.
    let mut seen = std::collections::HashSet::new();
    assert!(tr.items().iter().all(|it| seen.insert(it.mnist_index)));
    let again = AvDigits::open(&root, Split::Test, &o, false, false).unwrap();
    assert_eq!(te.items(), again.items());
    assert_eq!(te.get(7, Mode::Eval).unwrap(), again.get(7, Mode::Eval).unwrap());
    let other = AvDigits::open(&root, Split::Test, &AvDigitsOptions { seed: 1, ..o.clone() }, false, false).unwrap();
    assert_ne!(te.items()[0].mnist_index, other.items()[0].mnist_index);
    // Training mode shifts the recording, evaluation does not.
    let a = te.get(3, Mode::Train { seed: 1 }).unwrap();
    let b = te.get(3, Mode::Train { seed: 2 }).unwrap();
    assert_ne!(a.modalities[0], b.modalities[0]);
    assert_eq!(a.modalities[1], b.modalities[1]);
    assert!(a.modalities.iter().flatten().all(|v| v.is_finite()));

    // The decoded cache of the test split reads back identically.
    let out = std::env::temp_dir().join(format!("dgl-avd-cache-{}", std::process::id()));
    let r = dgl_data::prepare(&te, Split::Test, &out, false, &|_, _| {}).unwrap();
    assert_eq!(r.counts(Split::Test).ok, 300);
    let cached = dgl_data::CachedDataset::open(&out, Split::Test).unwrap();
    assert_eq!(cached.len(), 300);
    for i in [0, 150, 299] {
        assert_eq!(cached.get(i, Mode::Eval).unwrap(), te.get(i, Mode::Eval).unwrap());
    }
    std::fs::remove_dir_all(&out).ok();

    // Speaker-disjoint split.
    let s = AvDigitsOptions { split: FsddSplit::Speakers, test_speakers: vec!["theo".into()], ..o };
    let tr = AvDigits::open(&root, Split::Train, &s, false, false).unwrap();
    let te = AvDigits::open(&root, Split::Test, &s, false, false).unwrap();
    assert_eq!((tr.len(), te.len()), (2500, 500));
    assert!(te.items().iter().all(|it| it.name.speaker == "theo"));
    assert!(tr.items().iter().all(|it| it.name.speaker != "theo"));
}

#[test]
fn real_avdigits_calibration() {
    let Some(root) = shared_data() else { return };
    let opts: AvDigitsOptions = match std::env::var("DGL_AVDIGITS_OPTS") {
        Ok(j) => serde_json::from_str(&j).expect("DGL_AVDIGITS_OPTS is AvDigitsOptions JSON"),
        Err(_) => AvDigitsOptions::default(),
    };
    let logistic = std::env::var_os("DGL_PROBE_LOGISTIC").is_some();
    let t = std::time::Instant::now();
    let (ncm, lr) = probe(&opts, &root, logistic);
    println!("options: {}", serde_json::to_string(&opts).unwrap());
    println!("nearest class mean: audio {:.3}  visual {:.3}  concat {:.3}", ncm[0], ncm[1], ncm[2]);
    if let Some(l) = lr {
        println!("logistic regression: audio {:.3}  visual {:.3}  concat {:.3}", l[0], l[1], l[2]);
    }
    println!("({:.1} s)", t.elapsed().as_secs_f64());
    if std::env::var_os("DGL_AVDIGITS_OPTS").is_none() {
        // The defaults: each modality alone clearly below concatenation, which is clearly
        // below 100 %, and both modalities clearly above chance (10 %).
        assert!(ncm[0] > 0.3 && ncm[1] > 0.3, "{ncm:?}");
        assert!(ncm[2] > ncm[0] + 0.08 && ncm[2] > ncm[1] + 0.08, "{ncm:?}");
        assert!(ncm[2] < 0.95, "{ncm:?}");
    }
}
