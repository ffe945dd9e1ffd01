//! The on-disk loaders on fixture trees in each real layout: sizes, labels, shapes, pairing,
//! deterministic evaluation, seeded training, options, `DatasetSpec::open`, `prepare` + cache.

mod dsfix;

use std::sync::atomic::{AtomicUsize, Ordering};

use dgl_data::datasets::{
    open_cremad, open_ks, open_vggsound, prepare, AvDigits, AvDigitsOptions, CachedDataset, ClipOptions, CremadOptions,
    DatasetSpec, FeatureLayout, FsddSplit, GenericDataset, GenericOptions, KsOptions, LabelOrder, PrepareError,
    VggsoundOptions,
};
use dgl_data::{load_batch, Dataset, Mode, Split};
use dsfix::*;

#[test]
fn cremad_layout() {
    let t = TempDir::new("cremad");
    let ids = cremad_tree(t.path(), 6, 3);
    let o = fast_opts();
    let tr = open_cremad(&cremad(t.path(), o.clone()), Split::Train).unwrap();
    let te = open_cremad(&cremad(t.path(), o.clone()), Split::Test).unwrap();
    assert_eq!((tr.len(), te.len(), tr.num_classes()), (6, 3, 6));
    assert_eq!(tr.modality_names(), vec!["audio", "visual"]);
    assert_eq!(tr.modality_shapes(), vec![vec![1, 257, 188], vec![3, 1, 16, 16]]);
    assert_eq!((0..6).map(|i| tr.label(i).unwrap()).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(te.items()[0].id, ids[6]);
    assert_eq!(tr.report().counts(Split::Train).ok, 6);

    // Evaluation is deterministic; training is seeded.
    let e = tr.get(2, Mode::Eval).unwrap();
    assert_eq!(e, tr.get(2, Mode::Eval).unwrap());
    assert_eq!((e.modalities[0].len(), e.modalities[1].len(), e.label), (257 * 188, 3 * 16 * 16, 2));
    assert!(e.modalities.iter().flatten().all(|v| v.is_finite()));
    let a = tr.get(2, Mode::Train { seed: 5 }).unwrap();
    assert_eq!(a, tr.get(2, Mode::Train { seed: 5 }).unwrap());
    assert_ne!(a.modalities[1], tr.get(2, Mode::Train { seed: 6 }).unwrap().modalities[1]);
    // CREMA-D has no random audio crop by default (tile from the start, like the official code).
    assert_eq!(a.modalities[0], e.modalities[0]);

    // Eval picks the middle of 3 sorted frames (grey 80): normalised red channel ≈ (80/255 − 0.485)/0.229.
    let want = (80.0 / 255.0 - 0.485) / 0.229;
    assert!((e.modalities[1][0] - want).abs() < 0.05, "{} vs {want}", e.modalities[1][0]);

    // T = 3 frames and another recipe.
    let o3 = ClipOptions { frames: Some(3), audio_recipe: Some("scipy-paper".into()), ..fast_opts() };
    let tr3 = open_cremad(&cremad(t.path(), o3.clone()), Split::Train).unwrap();
    assert_eq!(tr3.modality_shapes(), vec![vec![1, 257, 299], vec![3, 3, 16, 16]]);
    let b = load_batch(&tr3, &[0, 1], Mode::Eval, &candle_core::Device::Cpu).unwrap();
    assert_eq!(b.inputs[1].dims(), &[2, 3, 3, 16, 16]);

    // csv_dir elsewhere.
    let other = TempDir::new("cremad-csv");
    std::fs::copy(t.path().join("test.csv"), other.path().join("test.csv")).unwrap();
    let o = CremadOptions { csv_dir: Some(other.path().to_path_buf()), ..cremad(t.path(), fast_opts()) };
    assert_eq!(open_cremad(&o, Split::Test).unwrap().len(), 3);
}

#[test]
fn ks_layout_pairs_by_id() {
    let t = TempDir::new("ks");
    ks_tree(t.path(), 2);
    let o = fast_opts();
    let tr = open_ks(&ks(t.path(), o.clone()), Split::Train).unwrap();
    let te = open_ks(&ks(t.path(), o.clone()), Split::Test).unwrap();
    assert_eq!((tr.len(), te.len(), tr.num_classes()), (6, 6, 3));
    assert_eq!(tr.class_names()[0], "playing_bass_guitar");
    assert_eq!(tr.modality_shapes(), vec![vec![1, 129, 626], vec![3, 3, 16, 16]]);
    for it in tr.items() {
        // Paired by id: the audio file's stem is the frame folder's name.
        assert_eq!(it.audio.file_stem().unwrap(), it.frames[0].parent().unwrap().file_name().unwrap());
        assert!(it.frames.windows(2).all(|w| w[0] < w[1]));
    }
    // The test-time crop is deterministic (the official loader's is random).
    assert_eq!(te.get(1, Mode::Eval).unwrap(), te.get(1, Mode::Eval).unwrap());
    let (x, y) = (tr.get(1, Mode::Train { seed: 1 }).unwrap(), tr.get(1, Mode::Train { seed: 2 }).unwrap());
    assert_ne!(x.modalities[0], y.modalities[0]);

    // 34-logit head on the 3-class list; a 2-class list with the extra folder ignored.
    let o = ClipOptions { num_classes: Some(4), ..fast_opts() };
    assert_eq!(open_ks(&ks(t.path(), o.clone()), Split::Train).unwrap().num_classes(), 4);
    let list = t.path().join("two.txt");
    write(&list, b"dog barking\nplaying bass guitar\n");
    let o = KsOptions { class_list: Some(list.clone()), ignore_unlisted_classes: true, ..ks(t.path(), fast_opts()) };
    let two = open_ks(&o, Split::Train).unwrap();
    assert_eq!((two.len(), two.num_classes()), (4, 2));
    assert_eq!(two.items()[0].label, 0);
    assert!(two.items()[0].audio.to_string_lossy().contains("dog_barking"));
    assert!(two.report().notes.iter().any(|n| n.contains("tapping_pen")));
}

#[test]
fn vggsound_layout_and_label_order() {
    let t = TempDir::new("vgg");
    vgg_tree(t.path());
    let o = fast_opts();
    let tr = open_vggsound(&vgg(t.path(), o.clone()), Split::Train).unwrap();
    let te = open_vggsound(&vgg(t.path(), o.clone()), Split::Test).unwrap();
    assert_eq!((tr.len(), te.len(), tr.num_classes()), (4, 2, 2));
    // First appearance among train rows: "b, with comma" is 0.
    assert_eq!(tr.class_names(), &["b, with comma".to_string(), "a".to_string()]);
    assert_eq!(tr.items()[0].id, "yt0-0_0_000000");
    assert_eq!(tr.items()[0].label, 0);
    let s =
        open_vggsound(&VggsoundOptions { label_order: LabelOrder::Sorted, ..vgg(t.path(), fast_opts()) }, Split::Train)
            .unwrap();
    assert_eq!(s.class_names()[0], "a");
    assert_eq!(s.items()[0].label, 1);
    assert_eq!(tr.modality_shapes()[1], vec![3, 3, 16, 16]);
    assert!(te.get(0, Mode::Eval).is_ok());
    // A header row is accepted.
    let csv = std::fs::read_to_string(t.path().join("vggsound.csv")).unwrap();
    write(&t.path().join("h.csv"), format!("ytid,start_s,label,split\n{csv}").as_bytes());
    let o = VggsoundOptions { manifest: Some(t.path().join("h.csv")), ..vgg(t.path(), fast_opts()) };
    assert_eq!(open_vggsound(&o, Split::Train).unwrap().len(), 4);
}

#[test]
fn avdigits_layout() {
    let t = TempDir::new("avd");
    avdigits_tree(t.path(), 3, 7);
    let o = AvDigitsOptions::default();
    let tr = AvDigits::open(t.path(), Split::Train, &o, false, false).unwrap();
    let te = AvDigits::open(t.path(), Split::Test, &o, false, false).unwrap();
    assert_eq!((tr.len(), te.len()), (3 * 2 * 2, 3 * 2 * 5));
    assert_eq!(te.modality_shapes(), vec![vec![1, 65, 63], vec![1, 1, 28, 28]]);
    for (i, it) in te.items().iter().enumerate() {
        assert_eq!(it.mnist_index % 10, it.name.digit as usize, "paired by label");
        assert_eq!(te.label(i).unwrap(), it.name.digit as u32);
    }
    let e = te.get(4, Mode::Eval).unwrap();
    assert_eq!(e, te.get(4, Mode::Eval).unwrap());
    assert!(e.modalities.iter().flatten().all(|v| v.is_finite()));
    let o2 = AvDigitsOptions {
        images_per_audio: 2,
        split: FsddSplit::Speakers,
        test_speakers: vec!["b".into()],
        ..o.clone()
    };
    let te2 = AvDigits::open(t.path(), Split::Test, &o2, false, false).unwrap();
    assert_eq!(te2.len(), 3 * 7 * 2);
    assert!(te2.items().iter().all(|it| it.name.speaker == "b"));
    let missing = AvDigitsOptions { test_speakers: vec!["zed".into()], ..o2 };
    let err = AvDigits::open(t.path(), Split::Test, &missing, false, false).err().unwrap().to_string();
    assert!(err.contains("recordings") && err.contains("zed"), "{err}");
    // Clean options: the image is the normalised MNIST image.
    let c = AvDigits::open(t.path(), Split::Test, &AvDigitsOptions::clean(), false, false).unwrap();
    let v = c.visual_features(0).unwrap();
    let raw = c.raw_image(0).unwrap();
    assert!((v[10] - (raw[10] as f32 / 255.0 - 0.1307) / 0.3081).abs() < 1e-5);
}

#[test]
fn generic_layouts() {
    let t = TempDir::new("gen-a");
    generic_per_sample(t.path());
    let tr = GenericDataset::open(&generic(t.path()), Split::Train).unwrap();
    let te = GenericDataset::open(&generic(t.path()), Split::Test).unwrap();
    assert_eq!(tr.layout(), FeatureLayout::PerSample);
    assert_eq!((tr.len(), te.len(), tr.num_classes()), (4, 2, 2));
    assert_eq!(tr.modality_names(), vec!["audio", "visual"]);
    assert_eq!(tr.modality_shapes(), vec![vec![2, 3], vec![4]]);
    assert_eq!(tr.class_names(), &["cat".to_string(), "dog".to_string()]);
    let e = te.get(1, Mode::Eval).unwrap();
    assert_eq!(e.label, 1);
    assert_eq!(e.modalities[0], (50..56).map(|v| v as f32).collect::<Vec<_>>());
    // A chosen subset / order of modalities.
    let o = GenericOptions { modalities: Some(vec!["visual".into()]), ..generic(t.path()) };
    let v = GenericDataset::open(&o, Split::Test).unwrap();
    assert_eq!(v.modality_shapes(), vec![vec![4]]);
    // A class list reorders the labels; integer labels index it.
    write(&t.path().join("classes.txt"), b"dog\ncat\nbird\n");
    let c = GenericDataset::open(&generic(t.path()), Split::Train).unwrap();
    assert_eq!((c.num_classes(), c.label(0).unwrap()), (3, 1));

    let t = TempDir::new("gen-b");
    generic_per_modality(t.path());
    let tr = GenericDataset::open(&generic(t.path()), Split::Train).unwrap();
    assert_eq!(tr.layout(), FeatureLayout::PerModality);
    assert_eq!(tr.modality_names(), vec!["a", "b"]);
    assert_eq!(tr.modality_shapes(), vec![vec![3], vec![2, 2]]);
    assert_eq!(tr.num_classes(), 3);
    let e = tr.get(3, Mode::Eval).unwrap();
    assert_eq!((e.label, e.modalities[1].clone()), (0, vec![1.5, 2.0, 2.5, 3.0]));
    let o = GenericOptions { num_classes: Some(5), ..generic(t.path()) };
    assert_eq!(GenericDataset::open(&o, Split::Train).unwrap().num_classes(), 5);
}

#[test]
fn dataset_spec_opens_every_layout() {
    let t = TempDir::new("open");
    generic_per_sample(t.path());
    let spec = DatasetSpec::from_kind("generic", Some(t.path().into())).unwrap();
    assert_eq!(spec.open(Split::Train).unwrap().0.len(), 4);
    let err = DatasetSpec::from_kind("imagenet", Some(t.path().into())).err().unwrap().to_string();
    assert!(err.contains("unknown dataset kind") && err.contains("av-digits"), "{err}");
    let err = DatasetSpec::from_kind("cremad", Some(t.path().join("nope"))).unwrap().open(Split::Train);
    let err = err.err().unwrap().to_string();
    assert!(err.contains("nope"), "{err}");

    let with_clip = |kind: &str, root: &std::path::Path| {
        let mut spec = DatasetSpec::from_kind(kind, Some(root.into())).unwrap();
        *spec.clip_options_mut().unwrap() = fast_opts();
        spec
    };
    let c = TempDir::new("open-c");
    cremad_tree(c.path(), 6, 1);
    assert_eq!(with_clip("crema-d", c.path()).open(Split::Train).unwrap().0.len(), 6);
    let k = TempDir::new("open-k");
    ks_tree(k.path(), 1);
    assert_eq!(with_clip("ks", k.path()).open(Split::Test).unwrap().0.len(), 3);
    let v = TempDir::new("open-v");
    vgg_tree(v.path());
    assert_eq!(with_clip("vggsound", v.path()).open(Split::Test).unwrap().0.len(), 2);
    let a = TempDir::new("open-a");
    avdigits_tree(a.path(), 2, 6);
    let (d, r) = DatasetSpec::from_kind("av-digits", Some(a.path().into())).unwrap().open(Split::Train).unwrap();
    assert_eq!((d.len(), r.counts(Split::Train).ok), (4, 4));
    // The synthetic set goes the same way (no root).
    let (s, _) = DatasetSpec::from_kind("synthetic", None).unwrap().open(Split::Test).unwrap();
    assert_eq!(s.modality_names(), vec!["audio", "visual"]);

    // The options are serde (what a CLI config holds); unknown fields are refused.
    let json = r#"{"kind": "vggsound", "root": "/v", "skip_bad": true, "frames": 2, "label_order": "sorted"}"#;
    let o: DatasetSpec = serde_json::from_str(json).unwrap();
    let DatasetSpec::Vggsound(v) = &o else { panic!("{o:?}") };
    assert!(v.clip.skip_bad && v.clip.frames == Some(2) && v.label_order == LabelOrder::Sorted);
    let back: DatasetSpec = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
    assert_eq!(back, o);
    let json = r#"{"kind": "av-digits", "root": "/a", "av_digits": {"snr_db": 5.0, "split": "speakers"}}"#;
    let DatasetSpec::AvDigits(a) = serde_json::from_str(json).unwrap() else { panic!() };
    assert_eq!((a.av_digits.snr_db, a.av_digits.split, a.av_digits.occlusion), (Some(5.0), FsddSplit::Speakers, 10));
    let e = serde_json::from_str::<DatasetSpec>(r#"{"kind": "cremad", "root": "/c", "skip_bda": true}"#);
    assert!(e.err().unwrap().to_string().contains("skip_bda"));
}

#[test]
fn prepare_and_cached_dataset() {
    let t = TempDir::new("prep");
    cremad_tree(t.path(), 6, 2);
    let o = ClipOptions { frames: Some(2), ..fast_opts() };
    let src = open_cremad(&cremad(t.path(), o.clone()), Split::Train).unwrap();
    let out = TempDir::new("prep-out");
    let calls = AtomicUsize::new(0);
    let report = prepare(&src, Split::Train, out.path(), false, &|done, total| {
        assert!(done <= total && total == 6);
        calls.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 6);
    assert_eq!(report.counts(Split::Train).ok, 6);
    assert_eq!(report.class_counts(Split::Train, 3).ok, 1);
    let cached = CachedDataset::open(out.path(), Split::Train).unwrap();
    assert_eq!((cached.len(), cached.num_classes()), (6, 6));
    assert_eq!(cached.modality_shapes(), src.modality_shapes());
    assert_eq!(cached.modality_names(), src.modality_names());
    for i in 0..6 {
        assert_eq!(cached.get(i, Mode::Eval).unwrap(), src.get(i, Mode::Eval).unwrap());
        assert_eq!(cached.label(i).unwrap(), src.label(i).unwrap());
    }
    let (via, _) = DatasetSpec::from_kind("cached", Some(out.path().into())).unwrap().open(Split::Train).unwrap();
    assert_eq!(via.len(), 6);
    assert!(CachedDataset::open(out.path(), Split::Test).is_err());

    // Several shards.
    let g = TempDir::new("prep-g");
    generic_per_modality(g.path());
    let src = GenericDataset::open(&generic(g.path()), Split::Train).unwrap();
    let opts = dgl_data::datasets::PrepareOptions { shard_bytes: 40, ..Default::default() };
    dgl_data::datasets::prepare_with(&src, Split::Train, out.path(), &opts, &|_, _| {}).unwrap();
    let cached = CachedDataset::open(out.path(), Split::Train).unwrap();
    assert!(cached.meta().shards.len() >= 2, "{:?}", cached.meta().shards);
    for i in 0..src.len() {
        assert_eq!(cached.get(i, Mode::Eval).unwrap(), src.get(i, Mode::Eval).unwrap());
        assert_eq!(cached.source_index(i), Some(i));
    }

    // A corrupt item: without skip_bad the whole report comes back and no cache is left.
    let bad_wav = t.path().join("AudioWAV").join("1003_IEO_FEA_XX.wav");
    write(&bad_wav, b"RIFF\x10\x00\x00\x00WAVEjunkjunk");
    let src = open_cremad(&cremad(t.path(), fast_opts()), Split::Train).unwrap();
    let out2 = TempDir::new("prep-bad");
    match prepare(&src, Split::Train, out2.path(), false, &|_, _| {}) {
        Err(PrepareError::Bad(r)) => {
            assert_eq!((r.counts(Split::Train).ok, r.counts(Split::Train).corrupt), (5, 1));
            assert_eq!(r.class_counts(Split::Train, 3).corrupt, 1);
            assert!(r.problems[0].message.contains("1003_IEO_FEA_XX.wav"), "{}", r.problems[0].message);
            let shown = PrepareError::Bad(r).to_string();
            assert!(shown.contains("1003_IEO_FEA_XX.wav"), "{shown}");
        }
        other => panic!("expected a Bad report, got {:?}", other.map(|r| r.to_string())),
    }
    assert!(CachedDataset::open(out2.path(), Split::Train).is_err());
    let r = prepare(&src, Split::Train, out2.path(), true, &|_, _| {}).unwrap();
    assert_eq!((r.counts(Split::Train).ok, r.counts(Split::Train).corrupt), (5, 1));
    let cached = CachedDataset::open(out2.path(), Split::Train).unwrap();
    assert_eq!(cached.len(), 5);
    assert_eq!(cached.report().counts(Split::Train).corrupt, 1);
    assert!((0..5).all(|i| cached.label(i).unwrap() != 3));
}
