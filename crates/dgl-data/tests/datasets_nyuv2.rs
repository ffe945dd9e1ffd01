//! NYUv2 in ESANet's prepared layout: fixture trees written by the test (16-bit depth PNGs),
//! both splits, shapes, ESANet's normalisation, the label mapping (0 → 255, l → l − 1), the joint
//! augmentation, hostile files and lists (errors naming the file / `file:line`, `skip_bad`
//! counts), `prepare` / the cache with label maps.

mod dsfix;

use std::path::Path;

use candle_core::{DType, Device};
use dgl_data::datasets::nyuv2::{NYUV2_DEPTH_MEAN, NYUV2_DEPTH_STD, VOID};
use dgl_data::datasets::{prepare, CachedDataset, DepthMode, Nyuv2, Nyuv2Options, ProblemKind};
use dgl_data::fixtures::{
    nyuv2_fixture_depth, nyuv2_fixture_label, nyuv2_fixture_rgb, png_l16, png_l8, png_rgb8, write_nyuv2_tree,
    NYUV2_FIXTURE_SIZE,
};
use dgl_data::visual::rgbd::HsvJitter;
use dgl_data::visual::{IMAGENET_MEAN, IMAGENET_STD};
use dgl_data::{load_batch, Dataset, DatasetSpec, Example, Mode, Split};
use dsfix::{write, TempDir};

const H: usize = NYUV2_FIXTURE_SIZE.0;
const W: usize = NYUV2_FIXTURE_SIZE.1;

fn opts(root: &Path) -> Nyuv2Options {
    Nyuv2Options { height: H, width: W, ..Nyuv2Options::new(root) }
}

fn open(o: &Nyuv2Options, split: Split) -> Nyuv2 {
    Nyuv2::open(o, split).unwrap_or_else(|e| panic!("{e}"))
}

fn open_err(o: &Nyuv2Options, split: Split) -> String {
    match Nyuv2::open(o, split) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that `err` names `file` (its full path) and, when given, `file:line`.
fn names(err: &str, file: &Path, line: Option<usize>) {
    if std::env::var_os("DGL_SHOW_ERRORS").is_some() {
        println!("ERR {err}");
    }
    assert!(err.contains(&file.display().to_string()), "error does not name {}: {err}", file.display());
    if let Some(l) = line {
        assert!(err.contains(&format!("{}:{l}:", file.display())), "error does not name {}:{l}: {err}", file.display());
    }
}

/// The de-normalised RGB (0–255) at position p of a `[3, H, W]` input.
fn rgb_at(x: &[f32], p: usize) -> [f32; 3] {
    let n = H * W;
    [0, 1, 2].map(|k| (x[k * n + p] * IMAGENET_STD[k] + IMAGENET_MEAN[k]) * 255.0)
}

fn depth_mm(x: &[f32], p: usize) -> f32 {
    x[p] * NYUV2_DEPTH_STD as f32 + NYUV2_DEPTH_MEAN as f32
}

#[test]
fn both_splits_shapes_normalisation_and_label_mapping() {
    let t = TempDir::new("nyu-open");
    let tree = write_nyuv2_tree(t.path(), 3, 2).unwrap();
    let (train, report) = tree.spec.open(Split::Train).unwrap();
    let (test, _) = tree.spec.open(Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (3, 2));
    assert_eq!(report.counts(Split::Train).ok, 3);
    assert!(report.is_clean());
    assert_eq!(train.num_classes(), 40);
    assert_eq!(train.modality_names(), ["rgb", "depth"]);
    assert_eq!(train.modality_shapes(), [vec![3, H, W], vec![1, H, W]]);
    assert_eq!(train.label_shape(), Some([H, W]));
    assert_eq!(train.ignore_label(), Some(255));
    assert_eq!(tree.spec.modalities().unwrap(), ["rgb", "depth"]);
    assert!(tree.spec.kind().dense_labels());

    // Test image k = 3 + i (the test split follows the train images).
    for (ds, first) in [(&train, 0usize), (&test, 3)] {
        for i in 0..ds.len() {
            let k = first + i;
            let e = ds.get(i, Mode::Eval).unwrap();
            let map = e.label_map.as_ref().unwrap();
            assert_eq!(map.len(), H * W);
            for (p, &got) in map.iter().enumerate() {
                let l = nyuv2_fixture_label(k, p / W, p % W);
                let want = if l == 0 { 255 } else { l as u32 - 1 };
                assert_eq!(got, want, "image {k} position {p}");
                // ESANet's Normalize: RGB / 255 then ImageNet mean/std; depth (d − mean) / std.
                let rgb = nyuv2_fixture_rgb(l);
                for c in 0..3 {
                    let v = e.modalities[0][c * H * W + p];
                    let expect = (rgb[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
                    assert!((v - expect).abs() < 1e-6, "rgb {v} vs {expect}");
                }
                let d = e.modalities[1][p];
                let expect = (nyuv2_fixture_depth(l) as f32 - NYUV2_DEPTH_MEAN as f32) / NYUV2_DEPTH_STD as f32;
                assert!((d - expect).abs() < 1e-5, "depth {d} vs {expect}");
            }
            // label(): the most frequent non-void class, the same as the example's.
            assert_eq!(ds.label(i).unwrap(), e.label);
            assert_ne!(e.label, VOID);
        }
    }
    // Exactly ESANet's constants.
    assert_eq!(NYUV2_DEPTH_MEAN, 2841.94941272766);
    assert_eq!(NYUV2_DEPTH_STD, 1417.2594281672277);
}

#[test]
fn raw_depth_keeps_zero_and_options_apply() {
    let t = TempDir::new("nyu-raw");
    write_nyuv2_tree(t.path(), 2, 1).unwrap();
    let o = Nyuv2Options { depth: DepthMode::Raw, ..opts(t.path()) };
    let ds = open(&o, Split::Train);
    assert!(ds.items()[0].depth.ends_with("train/depth_raw/0001.png"));
    let e = ds.get(0, Mode::Eval).unwrap();
    for p in 0..H * W {
        let d = e.modalities[1][p];
        if p % 7 == 0 {
            assert_eq!(d, 0.0, "a raw depth of 0 stays 0 (ESANet's Normalize, depth_mode raw)");
        } else {
            assert!(d != 0.0);
        }
    }
    // Own statistics.
    let o = Nyuv2Options { depth_mean: Some(1000.0), depth_std: Some(50.0), ..opts(t.path()) };
    let e = open(&o, Split::Train).get(0, Mode::Eval).unwrap();
    let l = nyuv2_fixture_label(0, 10, 10);
    assert!((e.modalities[1][10 * W + 10] - l as f32).abs() < 1e-6);
    // 13 classes read labels_13.
    let o = Nyuv2Options { classes: 13, ..opts(t.path()) };
    let ds = open(&o, Split::Train);
    assert_eq!(ds.num_classes(), 13);
    let m = ds.get(0, Mode::Eval).unwrap().label_map.unwrap();
    let l = nyuv2_fixture_label(0, 10, 10);
    assert_eq!(m[10 * W + 10], ((l as u32 - 1) % 13 + 1) - 1);
    // Another output size: resized (labels nearest, so they stay labels).
    let o = Nyuv2Options { height: 12, width: 16, ..opts(t.path()) };
    let ds = open(&o, Split::Train);
    assert_eq!(ds.modality_shapes(), [vec![3, 12, 16], vec![1, 12, 16]]);
    let m = ds.get(0, Mode::Eval).unwrap().label_map.unwrap();
    assert_eq!(m.len(), 12 * 16);
    // INTER_NEAREST: output (y, x) reads source (2y, 2x).
    for y in 0..12 {
        for x in 0..16 {
            let l = nyuv2_fixture_label(0, 2 * y, 2 * x);
            assert_eq!(m[y * 16 + x], if l == 0 { 255 } else { l as u32 - 1 });
        }
    }
    // Bad options are refused by key.
    for (o, key) in [
        (Nyuv2Options { classes: 894, ..opts(t.path()) }, "classes"),
        (Nyuv2Options { height: 0, ..opts(t.path()) }, "height"),
        (Nyuv2Options { width: 100_000, ..opts(t.path()) }, "width"),
        (Nyuv2Options { scale: [1.4, 1.0], ..opts(t.path()) }, "scale"),
        (Nyuv2Options { depth_std: Some(0.0), ..opts(t.path()) }, "depth_std"),
    ] {
        let e = open_err(&o, Split::Train);
        assert!(e.contains(key), "{key}: {e}");
    }
}

/// Labels, depth and colour are functions of one another in the fixture (depth = 1000 + 50 l,
/// colour = f(l)); a joint transform keeps them so, a transform applied to one modality only
/// would not.
fn assert_aligned(e: &Example, check_rgb: bool) {
    let map = e.label_map.as_ref().unwrap();
    for p in 0..H * W {
        let l = if map[p] == VOID { 0 } else { map[p] as u8 + 1 };
        let d = depth_mm(&e.modalities[1], p);
        assert!((d - nyuv2_fixture_depth(l) as f32).abs() < 0.05, "position {p}: label {l} with depth {d}");
        if !check_rgb {
            continue;
        }
        // Bilinear resizing mixes colours only next to a label boundary (within 2 pixels: the
        // nearest-neighbour map and the bilinear image differ by up to half a pixel per resize,
        // as with OpenCV, and a frame may be resized twice), which may lie just outside a crop.
        let (y, x) = (p / W, p % W);
        let interior = (2..H - 2).contains(&y)
            && (2..W - 2).contains(&x)
            && (y - 2..y + 3).all(|yy| (x - 2..x + 3).all(|xx| map[yy * W + xx] == map[p]));
        if interior {
            let got = rgb_at(&e.modalities[0], p);
            let want = nyuv2_fixture_rgb(l);
            for c in 0..3 {
                assert!((got[c] - want[c] as f32).abs() < 0.01, "position {p}: rgb {got:?} for label {l} ({want:?})");
            }
        }
    }
}

#[test]
fn joint_augmentation_moves_rgb_depth_and_labels_together() {
    let t = TempDir::new("nyu-aug");
    write_nyuv2_tree(t.path(), 2, 1).unwrap();
    let ds = open(&Nyuv2Options { hsv: HsvJitter::Off, ..opts(t.path()) }, Split::Train);
    let eval = ds.get(0, Mode::Eval).unwrap();
    assert_aligned(&eval, true);
    let mut changed = 0;
    for seed in 0..24 {
        let e = ds.get(0, Mode::Train { seed }).unwrap();
        assert_eq!(e.modalities[0].len(), 3 * H * W);
        assert_aligned(&e, true);
        changed += (e.label_map != eval.label_map) as usize;
        // Reproducible from the seed.
        assert_eq!(ds.get(0, Mode::Train { seed }).unwrap(), e);
    }
    assert!(changed >= 20, "the augmentation changed {changed} of 24 samples");
    // Without rescaling (scale 1 → the frame is only "rescaled" to its own size), a sample is the
    // evaluation one or its mirror image, in all three modalities at once.
    let flips = open(&Nyuv2Options { hsv: HsvJitter::Off, scale: [1.0, 1.0], ..opts(t.path()) }, Split::Train);
    let mirror = |x: &[f32], c: usize| -> Vec<f32> {
        x.chunks(W).flat_map(|row| row.iter().rev().copied().collect::<Vec<_>>()).collect::<Vec<_>>()[..c * H * W]
            .to_vec()
    };
    let mut flipped = 0;
    for seed in 0..24 {
        let e = flips.get(0, Mode::Train { seed }).unwrap();
        if e == eval {
            continue;
        }
        flipped += 1;
        assert_eq!(e.modalities[0], mirror(&eval.modalities[0], 3));
        assert_eq!(e.modalities[1], mirror(&eval.modalities[1], 1));
        let m: Vec<u32> = eval.label_map.as_ref().unwrap().chunks(W).flat_map(|r| r.iter().rev().copied()).collect();
        assert_eq!(e.label_map.as_ref().unwrap(), &m);
    }
    assert!((4..=20).contains(&flipped), "{flipped} of 24 flipped");

    // HSV jitter (both ESANet versions) changes colour only: depth and labels stay aligned.
    for hsv in [HsvJitter::Paper, HsvJitter::Current] {
        let ds = open(&Nyuv2Options { hsv, ..opts(t.path()) }, Split::Train);
        let plain = open(&Nyuv2Options { hsv: HsvJitter::Off, ..opts(t.path()) }, Split::Train);
        for seed in 0..6 {
            let e = ds.get(1, Mode::Train { seed }).unwrap();
            assert_aligned(&e, false);
            let p = plain.get(1, Mode::Train { seed }).unwrap();
            assert_ne!(e.modalities[0], p.modalities[0]);
        }
    }
    // Evaluation is never augmented; augment = false turns training augmentation off.
    let off = open(&Nyuv2Options { augment: false, ..opts(t.path()) }, Split::Train);
    assert_eq!(off.get(0, Mode::Train { seed: 3 }).unwrap(), off.get(0, Mode::Eval).unwrap());
}

#[test]
fn load_batch_gives_dense_labels() {
    let t = TempDir::new("nyu-batch");
    let tree = write_nyuv2_tree(t.path(), 3, 1).unwrap();
    let (ds, _) = tree.spec.open(Split::Train).unwrap();
    let b = load_batch(ds.as_ref(), &[2, 0], Mode::Train { seed: 1 }, &Device::Cpu).unwrap();
    assert_eq!(b.inputs[0].dims(), [2, 3, H, W]);
    assert_eq!(b.inputs[1].dims(), [2, 1, H, W]);
    assert_eq!(b.labels.dims(), [2, H, W]);
    assert_eq!(b.labels.dtype(), DType::U32);
    let e = load_batch(ds.as_ref(), &[1], Mode::Eval, &Device::Cpu).unwrap();
    let want = ds.get(1, Mode::Eval).unwrap().label_map.unwrap();
    assert_eq!(e.labels.flatten_all().unwrap().to_vec1::<u32>().unwrap(), want);
}

/// A CREMA-free way to break one file of a fixture: returns the tree's root.
fn tree(tag: &str, n_train: usize) -> TempDir {
    let t = TempDir::new(tag);
    write_nyuv2_tree(t.path(), n_train, 1).unwrap();
    t
}

#[test]
fn missing_file_names_it_and_skip_bad_counts_it() {
    let t = tree("nyu-missing", 4);
    let gone = t.path().join("train/depth/0002.png");
    std::fs::remove_file(&gone).unwrap();
    let e = open_err(&opts(t.path()), Split::Train);
    names(&e, &gone, None);
    let ds = open(&Nyuv2Options { skip_bad: true, ..opts(t.path()) }, Split::Train);
    assert_eq!(ds.len(), 3);
    let r = ds.report();
    let c = r.counts(Split::Train);
    assert_eq!((c.ok, c.missing, c.corrupt), (3, 1, 0));
    assert_eq!(r.problems[0].kind, ProblemKind::Missing);
    assert_eq!(r.problems[0].item, "0002 (train.txt:2)");
    names(&r.problems[0].message, &gone, None);
    // The test split does not need the train files.
    assert_eq!(open(&opts(t.path()), Split::Test).len(), 1);
    // A missing list names it.
    std::fs::remove_file(t.path().join("test.txt")).unwrap();
    names(&open_err(&opts(t.path()), Split::Test), &t.path().join("test.txt"), None);
}

#[test]
fn truncated_png_is_found_on_read_by_verify_and_counted() {
    let t = tree("nyu-trunc", 3);
    let f = t.path().join("train/labels_40/0003.png");
    let bytes = std::fs::read(&f).unwrap();
    write(&f, &bytes[..bytes.len() - 40]);
    // The header is intact: opening works, reading names the file.
    let ds = open(&opts(t.path()), Split::Train);
    let e = ds.get(2, Mode::Eval).unwrap_err().to_string();
    names(&e, &f, None);
    let e = ds.label(2).unwrap_err().to_string();
    names(&e, &f, None);
    // verify reads everything when opening.
    names(&open_err(&Nyuv2Options { verify: true, ..opts(t.path()) }, Split::Train), &f, None);
    let ds = open(&Nyuv2Options { verify: true, skip_bad: true, ..opts(t.path()) }, Split::Train);
    assert_eq!(ds.len(), 2);
    let c = ds.report().counts(Split::Train);
    assert_eq!((c.ok, c.missing, c.corrupt), (2, 0, 1));
    assert_eq!(ds.report().problems[0].kind, ProblemKind::Corrupt);
    // prepare refuses without skip_bad, naming the file, and leaves no cache.
    let full = open(&opts(t.path()), Split::Train);
    let out = t.path().join("cache");
    let err = prepare(&full, Split::Train, &out, false, &|_, _| {}).unwrap_err().to_string();
    names(&err, &f, None);
    assert!(!out.join("train/meta.json").exists());
}

#[test]
fn wrong_bit_depth_kind_and_size_are_refused_by_name() {
    let (h, w) = (H as u32, W as u32);
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("depth8", "train/depth/0001.png", png_l8(w, h, &vec![7u8; H * W]), "16-bit"),
        ("depth-rgb", "train/depth/0001.png", png_rgb8(w, h, &vec![7u8; H * W * 3]), "16-bit"),
        ("label16", "train/labels_40/0001.png", png_l16(w, h, &vec![7u16; H * W]), "8-bit single-channel"),
        ("label-colour", "train/labels_40/0001.png", png_rgb8(w, h, &vec![7u8; H * W * 3]), "colored"),
        ("rgb-grey", "train/rgb/0001.png", png_l8(w, h, &vec![7u8; H * W]), "8-bit RGB"),
        ("depth-size", "train/depth/0001.png", png_l16(16, 16, &[1000u16; 256]), "but its RGB image"),
        ("label-size", "train/labels_40/0001.png", png_l8(w, h - 1, &vec![1u8; H * W - W]), "but its RGB image"),
        ("not-png", "train/rgb/0001.png", b"this is text, not an image".to_vec(), "image"),
        ("empty", "train/depth/0001.png", Vec::new(), "empty"),
    ];
    for (tag, file, bytes, what) in cases {
        let t = tree(&format!("nyu-{tag}"), 2);
        let f = t.path().join(file);
        write(&f, &bytes);
        let e = open_err(&opts(t.path()), Split::Train);
        names(&e, &f, None);
        assert!(e.contains(what), "{tag}: {e}");
        let ds = open(&Nyuv2Options { skip_bad: true, ..opts(t.path()) }, Split::Train);
        assert_eq!(ds.len(), 1, "{tag}");
        assert_eq!(ds.report().counts(Split::Train).corrupt, 1, "{tag}");
    }
    // A label value above K: found when reading, naming the file and the position.
    let t = tree("nyu-label41", 2);
    let f = t.path().join("train/labels_40/0002.png");
    let mut px = vec![1u8; H * W];
    px[5 * W + 6] = 41;
    write(&f, &png_l8(w, h, &px));
    let ds = open(&opts(t.path()), Split::Train);
    let e = ds.get(1, Mode::Eval).unwrap_err().to_string();
    names(&e, &f, None);
    assert!(e.contains("label 41 at row 5, column 6"), "{e}");
    // Every item bad, with skip_bad: still an error (never an empty split), counting them.
    let t = tree("nyu-allbad", 2);
    for n in ["0001", "0002"] {
        std::fs::remove_file(t.path().join(format!("train/rgb/{n}.png"))).unwrap();
    }
    let e = open_err(&Nyuv2Options { skip_bad: true, ..opts(t.path()) }, Split::Train);
    assert!(e.contains("no samples") && e.contains("2 missing"), "{e}");
}

#[test]
fn bad_list_lines_name_the_list_and_line() {
    let t = tree("nyu-list", 2);
    let list = t.path().join("train.txt");
    for (text, line, what) in [
        ("0001\n0002 0003\n", 2, "one image name"),
        ("0001\n../0002\n", 2, "file name"),
        ("0001\n\n0001\n", 3, "listed twice"),
        ("0001\n0003\n", 2, "also in"),
    ] {
        write(&list, text.as_bytes());
        let e = open_err(&opts(t.path()), Split::Train);
        names(&e, &list, Some(line));
        assert!(e.contains(what), "{text:?}: {e}");
    }
    write(&list, b"0001\n\xff\xfe\n");
    names(&open_err(&opts(t.path()), Split::Train), &list, Some(2));
    // Blank lines and surrounding spaces are fine (np.loadtxt skips them too).
    write(&list, b"  0001 \n\n0002\n\n");
    assert_eq!(open(&opts(t.path()), Split::Train).len(), 2);
    // A listed image whose files do not exist: missing, named.
    write(&list, b"0001\n0099\n");
    let e = open_err(&opts(t.path()), Split::Train);
    names(&e, &t.path().join("train/rgb/0099.png"), None);
}

#[test]
fn prepare_caches_label_maps_and_the_cache_reads_them_back() {
    let t = tree("nyu-cache", 3);
    let ds = open(&opts(t.path()), Split::Train);
    let out = t.path().join("cache");
    let r = prepare(&ds, Split::Train, &out, false, &|_, _| {}).unwrap();
    assert_eq!(r.counts(Split::Train).ok, 3);
    let meta = std::fs::read_to_string(out.join("train/meta.json")).unwrap();
    assert!(meta.contains("\"version\": 2") && meta.contains("\"label_shape\""), "{meta}");
    let cached = CachedDataset::open(&out, Split::Train).unwrap();
    assert_eq!(cached.label_shape(), Some([H, W]));
    assert_eq!(cached.ignore_label(), Some(255));
    assert_eq!(cached.num_classes(), 40);
    for i in 0..3 {
        assert_eq!(cached.get(i, Mode::Eval).unwrap(), ds.get(i, Mode::Eval).unwrap());
        assert_eq!(cached.label(i).unwrap(), ds.label(i).unwrap());
    }
    let b = load_batch(&cached, &[0, 2], Mode::Eval, &Device::Cpu).unwrap();
    assert_eq!(b.labels.dims(), [2, H, W]);
    // Through the spec, as `dgl train --dataset cached` opens it.
    let (c, _) = DatasetSpec::from_kind("cached", Some(out.clone())).unwrap().open(Split::Train).unwrap();
    assert_eq!(c.label_shape(), Some([H, W]));

    // A version this build does not know, and a version-1 meta claiming label maps: refused.
    let meta_path = out.join("train/meta.json");
    let v3 = meta.replace("\"version\": 2", "\"version\": 3");
    write(&meta_path, v3.as_bytes());
    let e = CachedDataset::open(&out, Split::Train).err().unwrap().to_string();
    assert!(e.contains("meta.json") && e.contains("cache version 3") && e.contains("dgl prepare"), "{e}");
    let v1 = meta.replace("\"version\": 2", "\"version\": 1");
    write(&meta_path, v1.as_bytes());
    let e = CachedDataset::open(&out, Split::Train).err().unwrap().to_string();
    assert!(e.contains("version-1") && e.contains("label_shape"), "{e}");
}

#[test]
fn spec_kind_names_and_serde() {
    let t = tree("nyu-spec", 2);
    for alias in ["nyuv2", "NYU_v2", "nyudv2", "nyu"] {
        let spec = DatasetSpec::from_kind(alias, Some(t.path().into())).unwrap();
        assert_eq!(spec.kind_name(), "nyuv2");
        let DatasetSpec::Nyuv2(o) = &spec else { panic!() };
        assert_eq!((o.height, o.width, o.classes, o.depth), (480, 640, 40, DepthMode::Refined));
        assert_eq!((o.scale, o.hsv, o.augment), ([1.0, 1.4], HsvJitter::Paper, true));
    }
    let json = format!(
        r#"{{"kind": "nyuv2", "root": {:?}, "depth": "raw", "height": {H}, "width": {W}, "hsv": "current", "skip_bad": true}}"#,
        t.path().display().to_string()
    );
    let spec: DatasetSpec = serde_json::from_str(&json).unwrap();
    let DatasetSpec::Nyuv2(o) = &spec else { panic!() };
    assert_eq!((o.depth, o.hsv, o.skip_bad), (DepthMode::Raw, HsvJitter::Current, true));
    spec.check().unwrap();
    let (ds, _) = spec.open(Split::Test).unwrap();
    assert_eq!(ds.len(), 1);
    // A key of another layout is refused.
    let bad = r#"{"kind": "nyuv2", "root": "/x", "frames": 3}"#;
    assert!(serde_json::from_str::<DatasetSpec>(bad).unwrap_err().to_string().contains("frames"));
    // Round trip.
    let back: DatasetSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
    // A missing root is an error naming it.
    let e = DatasetSpec::from_kind("nyuv2", Some(t.path().join("nope"))).unwrap().open(Split::Train).err().unwrap();
    assert!(e.to_string().contains("nope"));
}
