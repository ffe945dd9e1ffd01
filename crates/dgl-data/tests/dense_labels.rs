//! Dense labels through the data path: `Dataset::label_shape` / `ignore_label`,
//! `Example::label_map`, `load_batch`'s `[B, H, W]` labels (and `[B]` unchanged for
//! classification), `dominant_class`, ESANet's median-frequency weights by hand, and the cache's
//! format versions.

mod dsfix;

use candle_core::{DType, Device};
use dgl_data::datasets::{prepare, CachedDataset};
use dgl_data::{
    dominant_class, load_batch, median_frequency_weights, stratified_split, Dataset, Example, Mode, Result,
    SequenceSetConfig, Split, SyntheticSequences,
};
use dsfix::{write, TempDir};

/// A dense dataset of hand-written `h × w` maps (one constant input modality).
struct Maps {
    k: usize,
    hw: [usize; 2],
    maps: Vec<Option<Vec<u32>>>,
}

impl Dataset for Maps {
    fn len(&self) -> usize {
        self.maps.len()
    }
    fn num_classes(&self) -> usize {
        self.k
    }
    fn modality_names(&self) -> Vec<String> {
        vec!["x".into()]
    }
    fn modality_shapes(&self) -> Vec<Vec<usize>> {
        vec![vec![1, self.hw[0], self.hw[1]]]
    }
    fn label(&self, index: usize) -> Result<u32> {
        Ok(self.get(index, Mode::Eval)?.label)
    }
    fn get(&self, index: usize, _mode: Mode) -> Result<Example> {
        let x = vec![index as f32; self.hw[0] * self.hw[1]];
        Ok(match &self.maps[index] {
            Some(m) => Example::dense(vec![x], m.clone(), self.k, Some(255)),
            None => Example::new(vec![x], 0),
        })
    }
    fn label_shape(&self) -> Option<[usize; 2]> {
        Some(self.hw)
    }
    fn ignore_label(&self) -> Option<u32> {
        Some(255)
    }
}

fn maps(k: usize, m: &[&[u32]]) -> Maps {
    Maps { k, hw: [2, 2], maps: m.iter().map(|m| Some(m.to_vec())).collect() }
}

#[test]
fn median_frequency_weights_by_hand() {
    // Three classes, 2 × 2 maps (255 = void):
    //   A = [0, 0, 1, 255], B = [0, 2, 2, 2], C = [1, 1, 1, 1].
    // Pixels: c0 = 2 + 1 = 3, c1 = 1 + 4 = 5, c2 = 3.
    // Pixels of the images containing c (void counted, as ESANet's h·w): c0 A, B = 8; c1 A, C = 8;
    // c2 B = 4. f = [3/8, 5/8, 3/4]; median 5/8; w = [5/3, 1, 5/6].
    let ds = maps(3, &[&[0, 0, 1, 255], &[0, 2, 2, 2], &[1, 1, 1, 1]]);
    let w = median_frequency_weights(&ds).unwrap();
    let want = [5.0 / 3.0, 1.0, 5.0 / 6.0];
    for (a, b) in w.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{w:?} vs {want:?}");
    }
    // An even K takes the mean of the two middle frequencies, as np.median:
    //   C = [1, 1, 1, 3] → f = [3/8, 4/8, 3/4, 1/4]; median (3/8 + 4/8) / 2 = 7/16;
    //   w = [7/6, 7/8, 7/12, 7/4].
    let ds = maps(4, &[&[0, 0, 1, 255], &[0, 2, 2, 2], &[1, 1, 1, 3]]);
    let w = median_frequency_weights(&ds).unwrap();
    let want = [7.0 / 6.0, 7.0 / 8.0, 7.0 / 12.0, 7.0 / 4.0];
    for (a, b) in w.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{w:?} vs {want:?}");
    }
    // A class that never occurs: its frequency is 0/0 (ESANet: "class weighting contains NaNs").
    let ds = maps(5, &[&[0, 0, 1, 255], &[0, 2, 2, 2], &[1, 1, 1, 3]]);
    let e = median_frequency_weights(&ds).unwrap_err().to_string();
    assert!(e.contains("[4]") && e.contains("never occur"), "{e}");
    // Classification data has no maps.
    let seq = SyntheticSequences::new(&SequenceSetConfig { n_train: 4, ..Default::default() }, Split::Train).unwrap();
    assert!(median_frequency_weights(&seq).unwrap_err().to_string().contains("dense"));
}

#[test]
fn dominant_class_ignores_void_and_breaks_ties_low() {
    assert_eq!(dominant_class(&[255, 255, 255, 2, 2, 1], 3, Some(255)), 2);
    assert_eq!(dominant_class(&[2, 1, 2, 1], 3, Some(255)), 1);
    assert_eq!(dominant_class(&[255, 255], 3, Some(255)), 0);
    let ds = maps(3, &[&[0, 0, 1, 255], &[0, 2, 2, 2], &[1, 1, 1, 1], &[2, 2, 255, 255]]);
    let labels: Vec<u32> = (0..ds.len()).map(|i| ds.label(i).unwrap()).collect();
    assert_eq!(labels, [0, 2, 1, 2]);
    // Stratified splits work on these per-sample labels.
    let (tr, va) = stratified_split(&labels, 0.5, 0);
    assert_eq!(tr.len() + va.len(), 4);
}

#[test]
fn load_batch_stacks_maps_and_checks_them() {
    let ds = maps(3, &[&[0, 0, 1, 255], &[0, 2, 2, 2]]);
    let b = load_batch(&ds, &[1, 0], Mode::Train { seed: 4 }, &Device::Cpu).unwrap();
    assert_eq!(b.labels.dims(), [2, 2, 2]);
    assert_eq!(b.labels.dtype(), DType::U32);
    assert_eq!(b.labels.flatten_all().unwrap().to_vec1::<u32>().unwrap(), [0, 2, 2, 2, 0, 0, 1, 255]);
    assert_eq!(b.inputs[0].dims(), [2, 1, 2, 2]);
    // A sample without a map, a map of the wrong size, a value out of range: errors naming it.
    let mut bad = maps(3, &[&[0, 0, 1, 255], &[0, 2, 2, 2]]);
    bad.maps[1] = None;
    let e = load_batch(&bad, &[0, 1], Mode::Eval, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("sample 1") && e.contains("no label map"), "{e}");
    bad.maps[1] = Some(vec![0, 1, 2]);
    let e = load_batch(&bad, &[0, 1], Mode::Eval, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("sample 1") && e.contains("3 values"), "{e}");
    bad.maps[1] = Some(vec![0, 1, 7, 2]);
    let e = load_batch(&bad, &[1], Mode::Eval, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("sample 1") && e.contains("value 7"), "{e}");
}

#[test]
fn classification_batches_and_caches_are_unchanged() {
    let seq = SyntheticSequences::new(&SequenceSetConfig { n_train: 6, ..Default::default() }, Split::Train).unwrap();
    assert_eq!(seq.label_shape(), None);
    assert_eq!(seq.ignore_label(), None);
    let e = seq.get(0, Mode::Eval).unwrap();
    assert_eq!(e.label_map, None);
    let b = load_batch(&seq, &[0, 1, 2], Mode::Eval, &Device::Cpu).unwrap();
    assert_eq!(b.labels.dims(), [3]);
    // A classification cache keeps format version 1 (what older builds read), no label fields.
    let t = TempDir::new("dense-cls-cache");
    prepare(&seq, Split::Train, t.path(), false, &|_, _| {}).unwrap();
    let meta = std::fs::read_to_string(t.path().join("train/meta.json")).unwrap();
    assert!(meta.contains("\"version\": 1") && !meta.contains("label_shape") && !meta.contains("ignore_label"));
    let c = CachedDataset::open(t.path(), Split::Train).unwrap();
    assert_eq!(c.label_shape(), None);
    assert_eq!(c.get(2, Mode::Eval).unwrap(), seq.get(2, Mode::Eval).unwrap());
    // A version-2 meta without label_shape is inconsistent.
    write(&t.path().join("train/meta.json"), meta.replace("\"version\": 1", "\"version\": 2").as_bytes());
    let e = CachedDataset::open(t.path(), Split::Train).err().unwrap().to_string();
    assert!(e.contains("version-2") && e.contains("label_shape"), "{e}");
}

#[test]
fn a_dense_cache_of_the_hand_maps_round_trips() {
    let ds = maps(3, &[&[0, 0, 1, 255], &[0, 2, 2, 2], &[1, 1, 1, 1]]);
    let t = TempDir::new("dense-cache");
    prepare(&ds, Split::Train, t.path(), false, &|_, _| {}).unwrap();
    let c = CachedDataset::open(t.path(), Split::Train).unwrap();
    assert_eq!((c.label_shape(), c.ignore_label()), (Some([2, 2]), Some(255)));
    for i in 0..3 {
        assert_eq!(c.get(i, Mode::Eval).unwrap(), ds.get(i, Mode::Eval).unwrap());
    }
    assert_eq!(median_frequency_weights(&c).unwrap(), median_frequency_weights(&ds).unwrap());
    // A sample without a map cannot be cached as dense.
    let mut bad = maps(3, &[&[0, 0, 1, 255], &[0, 2, 2, 2]]);
    bad.maps[0] = None;
    let e = prepare(&bad, Split::Train, &t.path().join("bad"), false, &|_, _| {}).unwrap_err().to_string();
    assert!(e.contains("no label map"), "{e}");
}
