//! The embedded RGB-D segmentation set (`synthetic-rgbd`): determinism, shapes, and the cues
//! `docs/data.md` documents, measured with per-pixel oracles (majority class per feature bin,
//! fitted on the train split, scored on the test split). Run with `--nocapture` to see the table.

use std::collections::HashMap;

use candle_core::Device;
use dgl_data::synthetic::rgbd::{CLASS_NAMES, COLOUR_CLASSES, DEPTH_CLASSES, NUM_CLASSES};
use dgl_data::visual::rgbd::{rgb_to_hsv, RgbdFrame};
use dgl_data::{load_batch, median_frequency_weights, Dataset, DatasetSpec, Mode, RgbdSetConfig, Split, SyntheticRgbd};

const K: usize = NUM_CLASSES;

#[test]
fn deterministic_shapes_and_spec() {
    let cfg = RgbdSetConfig { n_train: 20, n_test: 8, ..Default::default() };
    let a = SyntheticRgbd::new(&cfg, Split::Train).unwrap();
    let b = SyntheticRgbd::new(&cfg, Split::Train).unwrap();
    let t = SyntheticRgbd::new(&cfg, Split::Test).unwrap();
    assert_eq!((a.len(), t.len()), (20, 8));
    for i in 0..8 {
        assert_eq!(a.frame(i).unwrap(), b.frame(i).unwrap());
        assert_ne!(a.frame(i).unwrap(), t.frame(i).unwrap());
        assert_eq!(a.get(i, Mode::Train { seed: 5 }).unwrap(), b.get(i, Mode::Train { seed: 5 }).unwrap());
    }
    // A sample depends only on (config, split, index): a longer split starts with the same scenes.
    let longer = SyntheticRgbd::new(&RgbdSetConfig { n_train: 30, ..cfg.clone() }, Split::Train).unwrap();
    assert_eq!(longer.frame(19).unwrap(), a.frame(19).unwrap());
    let other = SyntheticRgbd::new(&RgbdSetConfig { seed: 1, ..cfg.clone() }, Split::Train).unwrap();
    assert_ne!(other.frame(0).unwrap(), a.frame(0).unwrap());

    assert_eq!(a.num_classes(), 7);
    assert_eq!(a.modality_names(), ["rgb", "depth"]);
    assert_eq!(a.modality_shapes(), [vec![3, 64, 64], vec![1, 64, 64]]);
    assert_eq!((a.label_shape(), a.ignore_label()), (Some([64, 64]), Some(255)));
    let e = a.get(0, Mode::Eval).unwrap();
    assert_eq!(e.label_map.as_ref().unwrap().len(), 64 * 64);
    assert_eq!(a.label(0).unwrap(), e.label);
    assert!(e.modalities.iter().flatten().all(|v| v.is_finite()));
    // Training augmentation is the joint ESANet transform; evaluation is the scene itself.
    assert_ne!(a.get(0, Mode::Train { seed: 1 }).unwrap(), e);
    let plain = SyntheticRgbd::new(&RgbdSetConfig { augment: false, ..cfg.clone() }, Split::Train).unwrap();
    assert_eq!(plain.get(0, Mode::Train { seed: 1 }).unwrap(), e);

    let b = load_batch(&a, &[0, 3, 5], Mode::Train { seed: 9 }, &Device::Cpu).unwrap();
    assert_eq!(b.labels.dims(), [3, 64, 64]);
    assert_eq!(b.inputs[0].dims(), [3, 3, 64, 64]);

    let spec = DatasetSpec::from_kind("synthetic-rgbd", None).unwrap();
    assert_eq!(spec, DatasetSpec::from_kind("rgbd", None).unwrap());
    assert!(!spec.kind().on_disk() && spec.kind().dense_labels());
    assert_eq!(spec.modalities().unwrap(), ["rgb", "depth"]);
    assert!(DatasetSpec::from_kind("synthetic-rgbd", Some("/x".into())).is_err());
    let DatasetSpec::SyntheticRgbd(c) = spec.for_run_seed(2) else { panic!() };
    assert_ne!(c.seed, 0);
    let (ds, report) = spec.open(Split::Test).unwrap();
    assert_eq!((ds.len(), report.problems.len()), (120, 0));
    let bad = RgbdSetConfig { height: 8, ..Default::default() };
    assert!(bad.validate().unwrap_err().to_string().contains("24"));
    let bad = RgbdSetConfig { depth_noise_mm: f64::NAN, ..Default::default() };
    assert!(bad.validate().unwrap_err().to_string().contains("depth_noise_mm"));
}

/// Hand-made per-pixel features of a scene.
struct Feats {
    frame: RgbdFrame,
    /// Relief: the farthest (smoothed) depth within 12 pixels minus the pixel's, mm.
    relief: Vec<f32>,
    /// Slope magnitude of the smoothed depth (differences over 4 pixels), mm per pixel.
    grad: Vec<f32>,
    /// Laplacian of the smoothed depth (step 2), mm.
    lap: Vec<f32>,
    /// Whether the 5 × 5 window holds both a saturated red and a saturated blue pixel (stripes).
    two_hues: Vec<bool>,
}

fn feats(f: &RgbdFrame) -> Feats {
    let (h, w) = (f.height, f.width);
    let d: Vec<f32> = f.depth.iter().map(|&v| v as f32).collect();
    let at = |v: &[f32], y: isize, x: isize| {
        v[y.clamp(0, h as isize - 1) as usize * w + x.clamp(0, w as isize - 1) as usize]
    };
    let mut s = vec![0.0f32; h * w];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let mut sum = 0.0;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    sum += at(&d, y + dy, x + dx);
                }
            }
            s[y as usize * w + x as usize] = sum / 9.0;
        }
    }
    // Separable max filter, radius 12.
    let r = 12isize;
    let mut rows = vec![0.0f32; h * w];
    for y in 0..h as isize {
        for x in 0..w as isize {
            rows[y as usize * w + x as usize] = (-r..=r).map(|dx| at(&s, y, x + dx)).fold(f32::MIN, f32::max);
        }
    }
    let mut relief = vec![0.0f32; h * w];
    let (mut grad, mut lap) = (vec![0.0f32; h * w], vec![0.0f32; h * w]);
    for y in 0..h as isize {
        for x in 0..w as isize {
            let p = y as usize * w + x as usize;
            relief[p] = (-r..=r).map(|dy| at(&rows, y + dy, x)).fold(f32::MIN, f32::max) - s[p];
            let gx = (at(&s, y, x + 2) - at(&s, y, x - 2)) / 4.0;
            let gy = (at(&s, y + 2, x) - at(&s, y - 2, x)) / 4.0;
            grad[p] = (gx * gx + gy * gy).sqrt();
            lap[p] = at(&s, y, x + 2) + at(&s, y, x - 2) + at(&s, y + 2, x) + at(&s, y - 2, x) - 4.0 * s[p];
        }
    }
    // Saturated red / blue pixels.
    let hue: Vec<u8> = f
        .rgb
        .chunks_exact(3)
        .map(|c| {
            let (hh, ss, _) = rgb_to_hsv(c[0] / 255.0, c[1] / 255.0, c[2] / 255.0);
            if ss < 0.4 {
                0
            } else if !(0.08..=0.92).contains(&hh) {
                1
            } else if (0.5..=0.75).contains(&hh) {
                2
            } else {
                0
            }
        })
        .collect();
    let mut two_hues = vec![false; h * w];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let (mut red, mut blue) = (false, false);
            for dy in -2..=2 {
                for dx in -2..=2 {
                    let (yy, xx) =
                        ((y + dy).clamp(0, h as isize - 1) as usize, (x + dx).clamp(0, w as isize - 1) as usize);
                    red |= hue[yy * w + xx] == 1;
                    blue |= hue[yy * w + xx] == 2;
                }
            }
            two_hues[y as usize * w + x as usize] = red && blue;
        }
    }
    Feats { frame: f.clone(), relief, grad, lap, two_hues }
}

fn bin(v: f32, edges: &[f32]) -> u64 {
    edges.iter().filter(|&&e| v >= e).count() as u64
}

/// RGB, 16 levels per channel.
fn colour_bin(f: &Feats, p: usize) -> u64 {
    let c = &f.frame.rgb[p * 3..p * 3 + 3];
    (c[0] as u64 / 16) * 256 + (c[1] as u64 / 16) * 16 + c[2] as u64 / 16
}

/// RGB, 16 levels per channel, and whether two poster hues meet within 2 pixels.
fn texture_bin(f: &Feats, p: usize) -> u64 {
    colour_bin(f, p) * 2 + f.two_hues[p] as u64
}

/// Depth, 100 mm bins.
fn depth_bin(f: &Feats, p: usize) -> u64 {
    f.frame.depth[p] as u64 / 100
}

/// Relief (9 bins), slope (5), Laplacian (5).
fn local_bin(f: &Feats, p: usize) -> u64 {
    let r = bin(f.relief[p], &[100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0]);
    let g = bin(f.grad[p], &[8.0, 20.0, 40.0, 80.0]);
    let l = bin(f.lap[p], &[-60.0, -20.0, 20.0, 60.0]);
    r * 25 + g * 5 + l
}

type Table = HashMap<u64, [u64; K]>;

/// Class counts per feature bin over the train pixels (void left out).
fn fit(train: &[Feats], feature: fn(&Feats, usize) -> u64) -> Table {
    let mut counts = Table::new();
    for f in train {
        for (p, &y) in f.frame.labels.iter().enumerate() {
            if y != 255 {
                counts.entry(feature(f, p)).or_insert([0; K])[y as usize] += 1;
            }
        }
    }
    counts
}

/// p(class | bin), Laplace-smoothed.
fn posterior(t: &Table, b: u64) -> [f64; K] {
    let c = t.get(&b).copied().unwrap_or([0; K]);
    let n: u64 = c.iter().sum();
    c.map(|v| (v as f64 + 1.0) / (n as f64 + K as f64))
}

fn argmax(v: &[f64; K]) -> usize {
    (0..K).rev().max_by(|&a, &b| v[a].total_cmp(&v[b])).expect("K > 0")
}

/// Scores of an oracle: pixel accuracy and per-class IoU on the test split (void left out).
struct Scores {
    acc: f64,
    iou: [f64; K],
}

impl Scores {
    fn miou(&self) -> f64 {
        self.iou.iter().sum::<f64>() / K as f64
    }
    fn mean(&self, classes: &[u32]) -> f64 {
        classes.iter().map(|&c| self.iou[c as usize]).sum::<f64>() / classes.len() as f64
    }
}

fn score(test: &[Feats], predict: impl Fn(&Feats, usize) -> usize) -> Scores {
    let mut conf = [[0u64; K]; K];
    for f in test {
        for (p, &y) in f.frame.labels.iter().enumerate() {
            if y != 255 {
                conf[y as usize][predict(f, p)] += 1;
            }
        }
    }
    let total: u64 = conf.iter().flatten().sum();
    let tp: u64 = (0..K).map(|c| conf[c][c]).sum();
    let mut iou = [0.0; K];
    for c in 0..K {
        let row: u64 = conf[c].iter().sum();
        let col: u64 = (0..K).map(|t| conf[t][c]).sum();
        iou[c] = conf[c][c] as f64 / (row + col - conf[c][c]).max(1) as f64;
    }
    Scores { acc: tp as f64 / total as f64, iou }
}

/// The documented properties (docs/data.md, "The embedded RGB-D segmentation set"), at the defaults.
#[test]
fn the_cues_are_as_documented() {
    let cfg = RgbdSetConfig::default();
    let train = SyntheticRgbd::new(&cfg, Split::Train).unwrap();
    let test = SyntheticRgbd::new(&cfg, Split::Test).unwrap();
    let tr: Vec<Feats> = (0..train.len()).map(|i| feats(train.frame(i).unwrap())).collect();
    let te: Vec<Feats> = (0..test.len()).map(|i| feats(test.frame(i).unwrap())).collect();

    // Coverage of the test pixels.
    let mut pix = [0u64; K];
    let mut void = 0u64;
    for f in &te {
        for &y in &f.frame.labels {
            if y == 255 {
                void += 1;
            } else {
                pix[y as usize] += 1;
            }
        }
    }
    let all = (te.len() * 64 * 64) as f64;
    let share = |c: &[u32]| c.iter().map(|&k| pix[k as usize]).sum::<u64>() as f64 / all;
    println!(
        "coverage (test): wall {:.3}, depth classes {:.3}, colour classes {:.3}, void {:.4}",
        pix[0] as f64 / all,
        share(&DEPTH_CLASSES),
        share(&COLOUR_CLASSES),
        void as f64 / all
    );
    for c in 0..K {
        println!("  {:>2} {:<15} {:.3}", c, CLASS_NAMES[c], pix[c] as f64 / all);
    }
    assert!(share(&COLOUR_CLASSES) > 1.5 * share(&DEPTH_CLASSES));
    assert!(void > 0 && (void as f64 / all) < 0.02);

    let prior = {
        let n: u64 = pix.iter().sum();
        pix.map(|v| v as f64 / n as f64)
    };
    let tables = [colour_bin, texture_bin, depth_bin, local_bin].map(|f| fit(&tr, f));
    let one = |t: &Table, feature: fn(&Feats, usize) -> u64| score(&te, |f, p| argmax(&posterior(t, feature(f, p))));
    let rows = [
        ("colour, per pixel", one(&tables[0], colour_bin)),
        ("colour + local texture", one(&tables[1], texture_bin)),
        ("depth, per pixel", one(&tables[2], depth_bin)),
        ("depth + local geometry", one(&tables[3], local_bin)),
        (
            "both (naive Bayes of the two local oracles)",
            score(&te, |f, p| {
                let (a, b) = (posterior(&tables[1], texture_bin(f, p)), posterior(&tables[3], local_bin(f, p)));
                argmax(&std::array::from_fn(|c| a[c].ln() + b[c].ln() - prior[c].max(1e-9).ln()))
            }),
        ),
    ];
    println!("| oracle | pixel acc | mIoU | IoU depth classes 1-3 | IoU colour classes 4-6 | IoU per class 0-6 |");
    println!("|---|---|---|---|---|---|");
    for (name, s) in &rows {
        let per: Vec<String> = s.iou.iter().map(|v| format!("{v:.2}")).collect();
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
            s.acc,
            s.miou(),
            s.mean(&DEPTH_CLASSES),
            s.mean(&COLOUR_CLASSES),
            per.join(" ")
        );
    }
    let [colour, texture, depth_px, depth_local, both] = &rows.map(|(_, s)| s);
    // Colour sees the plain posters per pixel, the striped one with local texture, never the depth
    // objects (painted in the wall's colour).
    assert!(colour.iou[4] > 0.5 && colour.iou[5] > 0.5 && colour.iou[6] < 0.2, "{:?}", colour.iou);
    assert!(texture.mean(&COLOUR_CLASSES) > colour.mean(&COLOUR_CLASSES) + 0.2, "{:?}", texture.iou);
    for s in [colour, texture] {
        assert!(DEPTH_CLASSES.iter().all(|&c| s.iou[c as usize] < 0.05), "{:?}", s.iou);
    }
    // Depth sees no poster, per pixel hardly anything; local geometry finds the depth objects.
    for s in [depth_px, depth_local] {
        assert!(COLOUR_CLASSES.iter().all(|&c| s.iou[c as usize] < 0.05), "{:?}", s.iou);
    }
    assert!(depth_px.mean(&DEPTH_CLASSES) < 0.15, "{:?}", depth_px.iou);
    assert!(depth_local.mean(&DEPTH_CLASSES) > depth_px.mean(&DEPTH_CLASSES) + 0.2, "{:?}", depth_local.iou);
    // Fused beats either alone.
    assert!(both.miou() > texture.miou().max(depth_local.miou()) + 0.1, "{}", both.miou());

    let w = median_frequency_weights(&train).unwrap();
    println!("median-frequency weights (train): {w:?}");
    assert!(w.iter().all(|v| v.is_finite() && *v > 0.0));
}
