//! The embedded synthetic dataset: determinism, shapes, balance, and per-modality signal.

use dgl_data::{load_batch, Dataset, Mode, Split, SyntheticAv, SyntheticConfig, SyntheticPreset};

fn tiny(n_train: usize, n_test: usize, seed: u64) -> SyntheticConfig {
    SyntheticConfig { n_train, n_test, seed, ..SyntheticConfig::tiny() }
}

#[test]
fn deterministic_from_seed_split_index() {
    let a = SyntheticAv::new(tiny(60, 30, 7), Split::Train).unwrap();
    let b = SyntheticAv::new(tiny(60, 30, 7), Split::Train).unwrap();
    let c = SyntheticAv::new(tiny(60, 30, 8), Split::Train).unwrap();
    let t = SyntheticAv::new(tiny(60, 30, 7), Split::Test).unwrap();
    for i in [0, 17, 59] {
        assert_eq!(a.get(i, Mode::Eval).unwrap(), b.get(i, Mode::Eval).unwrap());
        assert_eq!(a.get(i, Mode::Train { seed: 3 }).unwrap(), b.get(i, Mode::Train { seed: 3 }).unwrap());
        assert_ne!(a.get(i, Mode::Eval).unwrap(), c.get(i, Mode::Eval).unwrap());
        assert_ne!(a.get(i, Mode::Train { seed: 3 }).unwrap(), a.get(i, Mode::Train { seed: 4 }).unwrap());
    }
    assert_ne!(a.get(0, Mode::Eval).unwrap().modalities[0], t.get(0, Mode::Eval).unwrap().modalities[0]);
    // A sample does not depend on the split size (generated from (seed, split, index)) beyond its label
    // order: the same index in a larger split with the same label has the same waveform generator.
    let big = SyntheticAv::new(tiny(120, 30, 7), Split::Train).unwrap();
    assert_eq!(big.len(), 120);
}

#[test]
fn shapes_and_labels() {
    let ds = SyntheticAv::new(tiny(61, 13, 1), Split::Train).unwrap();
    assert_eq!(ds.num_classes(), 6);
    assert_eq!(ds.modality_names(), vec!["audio".to_string(), "visual".to_string()]);
    assert_eq!(ds.modality_shapes(), vec![vec![1, 65, 63], vec![3, 1, 32, 32]]);
    let mut counts = [0usize; 6];
    for i in 0..ds.len() {
        counts[ds.label(i).unwrap() as usize] += 1;
    }
    assert!(counts.iter().all(|&c| c == 10 || c == 11), "{counts:?}");
    let e = ds.get(5, Mode::Eval).unwrap();
    assert_eq!(e.modalities[0].len(), 65 * 63);
    assert_eq!(e.modalities[1].len(), 3 * 32 * 32);
    assert!(e.modalities.iter().flatten().all(|v| v.is_finite()));
    assert!(ds.get(61, Mode::Eval).is_err());
    let b = load_batch(&ds, &[0, 1, 2, 3], Mode::Train { seed: 0 }, &candle_core::Device::Cpu).unwrap();
    assert_eq!(b.inputs[0].dims(), &[4, 1, 65, 63]);
    assert_eq!(b.inputs[1].dims(), &[4, 3, 1, 32, 32]);
}

#[test]
fn paper_preset_geometry_lazily() {
    let cfg = SyntheticConfig { n_train: 6, n_test: 6, ..SyntheticConfig::paper() };
    assert_eq!(cfg.preset, SyntheticPreset::Paper);
    let ds = SyntheticAv::new(cfg, Split::Test).unwrap();
    assert_eq!(ds.modality_shapes(), vec![vec![1, 257, 188], vec![3, 1, 224, 224]]);
    let e = ds.get(2, Mode::Eval).unwrap();
    assert_eq!(e.modalities[0].len(), 257 * 188);
    assert_eq!(e.modalities[1].len(), 3 * 224 * 224);
    assert_eq!(e, ds.get(2, Mode::Eval).unwrap());
    assert_eq!(ds.waveform(2).unwrap().len(), 66150);
}

fn class_means(xs: &[Vec<f32>], ys: &[u32], k: usize) -> Vec<Vec<f64>> {
    let d = xs[0].len();
    let mut m = vec![vec![0.0f64; d]; k];
    let mut n = vec![0usize; k];
    for (x, &y) in xs.iter().zip(ys) {
        n[y as usize] += 1;
        for (a, &b) in m[y as usize].iter_mut().zip(x) {
            *a += b as f64;
        }
    }
    for (row, c) in m.iter_mut().zip(n) {
        row.iter_mut().for_each(|v| *v /= c.max(1) as f64);
    }
    m
}

fn dists(x: &[f32], means: &[Vec<f64>]) -> Vec<f64> {
    means.iter().map(|m| m.iter().zip(x).map(|(a, &b)| (a - b as f64).powi(2)).sum()).collect()
}

fn argmin(v: &[f64]) -> usize {
    v.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).unwrap().0
}

/// Nearest-class-mean accuracy per modality (train means, test accuracy).
#[test]
fn each_modality_carries_partial_signal() {
    let cfg = SyntheticConfig::tiny();
    let tr = SyntheticAv::new(cfg.clone(), Split::Train).unwrap();
    let te = SyntheticAv::new(cfg, Split::Test).unwrap();
    let get = |ds: &SyntheticAv, m: usize| -> Vec<Vec<f32>> {
        (0..ds.len()).map(|i| ds.get(i, Mode::Eval).unwrap().modalities[m].clone()).collect()
    };
    let (ytr, yte) = (tr.labels().to_vec(), te.labels().to_vec());
    let mut acc = [0.0f64; 2];
    let mut all_d = Vec::new();
    for (m, acc_m) in acc.iter_mut().enumerate() {
        let means = class_means(&get(&tr, m), &ytr, 6);
        let xte = get(&te, m);
        let d: Vec<Vec<f64>> = xte.iter().map(|x| dists(x, &means)).collect();
        let correct = d.iter().zip(&yte).filter(|(d, &y)| argmin(d) == y as usize).count();
        *acc_m = correct as f64 / yte.len() as f64;
        all_d.push(d);
    }
    // Pair accuracy of audio (class / 2).
    let pair_ok = all_d[0].iter().zip(&yte).filter(|(d, &y)| argmin(d) / 2 == y as usize / 2).count();
    println!(
        "nearest-class-mean test accuracy: audio {:.3} (pair {:.3}), visual {:.3} (chance 0.167)",
        acc[0],
        pair_ok as f64 / yte.len() as f64,
        acc[1]
    );
    assert!(acc[0] > 0.45 && acc[0] < 0.9, "audio NCM accuracy {}", acc[0]);
    assert!(acc[1] > 0.22 && acc[1] < 0.9, "visual NCM accuracy {}", acc[1]);
    assert!(acc[0] > acc[1], "audio {} should beat visual {}", acc[0], acc[1]);
}

/// Translation/phase-invariant orientation energy of the luminance (a stand-in for what a CNN
/// learns): |DFT|² at 3–5 cycles per image in 24 orientation bins, log, 24 values.
fn orientation_energy(img: &[f32], s: usize) -> Vec<f32> {
    let plane = s * s;
    let lum: Vec<f64> = (0..plane).map(|p| (img[p] + img[plane + p] + img[2 * plane + p]) as f64 / 3.0).collect();
    let mean = lum.iter().sum::<f64>() / plane as f64;
    let mut out = Vec::new();
    for a in 0..24 {
        let th = (a as f64 * 7.5).to_radians();
        let mut e = 0.0;
        for r in [3.0, 3.5, 4.0, 4.5, 5.0] {
            let k = 2.0 * std::f64::consts::PI * r / s as f64;
            let (kx, ky) = (k * th.cos(), k * th.sin());
            // e^{-i(kx x + ky y)} = e^{-i kx x} e^{-i ky y}: separable sums.
            let cx: Vec<(f64, f64)> =
                (0..s).map(|x| ((kx * (x as f64 + 0.5)).cos(), (kx * (x as f64 + 0.5)).sin())).collect();
            let (mut re, mut im) = (0.0, 0.0);
            for y in 0..s {
                let (cy, sy) = ((ky * (y as f64 + 0.5)).cos(), (ky * (y as f64 + 0.5)).sin());
                let (mut rr, mut ii) = (0.0, 0.0);
                for (x, &(c, sn)) in cx.iter().enumerate() {
                    let v = lum[y * s + x] - mean;
                    rr += v * c;
                    ii += v * sn;
                }
                // (rr - i ii)(cy - i sy)
                re += rr * cy - ii * sy;
                im -= rr * sy + ii * cy;
            }
            e += re * re + im * im;
        }
        out.push(e.ln() as f32);
    }
    out
}

/// The visual modality carries more class information than a pixel template reveals, and the
/// two modalities together beat each alone (nearest-class-mean on hand-made invariant features).
#[test]
fn visual_information_and_fusion_headroom() {
    let cfg = SyntheticConfig::tiny();
    let tr = SyntheticAv::new(cfg.clone(), Split::Train).unwrap();
    let te = SyntheticAv::new(cfg, Split::Test).unwrap();
    let feats = |ds: &SyntheticAv| -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        (0..ds.len())
            .map(|i| {
                let e = ds.get(i, Mode::Eval).unwrap();
                (e.modalities[0].clone(), orientation_energy(&e.modalities[1], 32))
            })
            .unzip()
    };
    let (atr, vtr) = feats(&tr);
    let (ate, vte) = feats(&te);
    let (ytr, yte) = (tr.labels().to_vec(), te.labels().to_vec());
    let (ma, mv) = (class_means(&atr, &ytr, 6), class_means(&vtr, &ytr, 6));
    let zs = |d: Vec<f64>| -> Vec<f64> {
        let m = d.iter().sum::<f64>() / d.len() as f64;
        let s = (d.iter().map(|v| (v - m).powi(2)).sum::<f64>() / d.len() as f64).sqrt() + 1e-12;
        d.into_iter().map(|v| (v - m) / s).collect()
    };
    let (mut ca, mut cv, mut cf) = (0, 0, 0);
    for i in 0..yte.len() {
        let da = zs(dists(&ate[i], &ma));
        let dv = zs(dists(&vte[i], &mv));
        let df: Vec<f64> = da.iter().zip(&dv).map(|(a, b)| a + b).collect();
        let y = yte[i] as usize;
        ca += (argmin(&da) == y) as usize;
        cv += (argmin(&dv) == y) as usize;
        cf += (argmin(&df) == y) as usize;
    }
    let n = yte.len() as f64;
    let (acc_a, acc_v, acc_f) = (ca as f64 / n, cv as f64 / n, cf as f64 / n);
    println!("NCM with invariant features: audio {acc_a:.3}, visual orientation-energy {acc_v:.3}, fused {acc_f:.3}");
    assert!(acc_v > 0.5, "visual orientation probe {acc_v}");
    assert!(acc_f > acc_a + 0.1 && acc_f > acc_v + 0.05, "fusion headroom: {acc_a} {acc_v} {acc_f}");
}
