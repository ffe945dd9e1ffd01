//! Quick linear checks of how much a feature set says about the labels: nearest class mean and
//! multinomial logistic regression on standardised features. Used to calibrate AV-digits'
//! degradations (per-modality vs concatenated accuracy).

use dgl_core::rng::Rng;

/// Standardises columns with the train statistics (in place, both sets); constant columns → 0.
pub fn standardize(train: &mut [Vec<f32>], test: &mut [Vec<f32>]) {
    let d = train.first().map_or(0, |r| r.len());
    let n = train.len().max(1) as f64;
    let mut mean = vec![0.0f64; d];
    let mut var = vec![0.0f64; d];
    for r in train.iter() {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    for r in train.iter() {
        for ((s, &m), &v) in var.iter_mut().zip(&mean).zip(r) {
            *s += (v as f64 - m).powi(2);
        }
    }
    let inv: Vec<f32> = var.iter().map(|&s| if s > 0.0 { (n / s).sqrt() as f32 } else { 0.0 }).collect();
    let mean: Vec<f32> = mean.into_iter().map(|m| m as f32).collect();
    for r in train.iter_mut().chain(test.iter_mut()) {
        for ((v, &m), &s) in r.iter_mut().zip(&mean).zip(&inv) {
            *v = (*v - m) * s;
        }
    }
}

/// Concatenates feature blocks row by row, scaling block `b` by `1/sqrt(dim_b)` so that every
/// block weighs the same in a distance.
pub fn concat_balanced(blocks: &[&[Vec<f32>]]) -> Vec<Vec<f32>> {
    let n = blocks.first().map_or(0, |b| b.len());
    (0..n)
        .map(|i| {
            let mut row = Vec::new();
            for b in blocks {
                let s = 1.0 / (b[i].len().max(1) as f32).sqrt();
                row.extend(b[i].iter().map(|v| v * s));
            }
            row
        })
        .collect()
}

/// Accuracy of the nearest-class-mean classifier (Euclidean) fitted on `train`.
pub fn nearest_class_mean(train: &[Vec<f32>], ytr: &[u32], test: &[Vec<f32>], yte: &[u32], k: usize) -> f64 {
    let d = train.first().map_or(0, |r| r.len());
    let mut means = vec![vec![0.0f64; d]; k];
    let mut counts = vec![0usize; k];
    for (r, &y) in train.iter().zip(ytr) {
        counts[y as usize] += 1;
        for (m, &v) in means[y as usize].iter_mut().zip(r) {
            *m += v as f64;
        }
    }
    for (m, &c) in means.iter_mut().zip(&counts) {
        m.iter_mut().for_each(|v| *v /= c.max(1) as f64);
    }
    let correct = test
        .iter()
        .zip(yte)
        .filter(|(r, &y)| {
            let best = (0..k)
                .filter(|&c| counts[c] > 0)
                .map(|c| (c, means[c].iter().zip(r.iter()).map(|(m, &v)| (m - v as f64).powi(2)).sum::<f64>()))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(c, _)| c);
            best == Some(y as usize)
        })
        .count();
    correct as f64 / test.len().max(1) as f64
}

/// Settings of [`logistic_regression`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogisticConfig {
    pub epochs: usize,
    /// L2 weight decay.
    pub l2: f32,
    pub seed: u64,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        Self { epochs: 20, l2: 1e-4, seed: 0 }
    }
}

/// Test accuracy of multinomial logistic regression (softmax + L2) trained with mini-batch SGD
/// with momentum on standardised features.
pub fn logistic_regression(
    train: &[Vec<f32>],
    ytr: &[u32],
    test: &[Vec<f32>],
    yte: &[u32],
    k: usize,
    cfg: LogisticConfig,
) -> f64 {
    let LogisticConfig { epochs, l2, seed } = cfg;
    let d = train.first().map_or(0, |r| r.len());
    let mut w = vec![0.0f32; k * (d + 1)];
    let mut vel = vec![0.0f32; w.len()];
    let lr = 0.5 / (d as f32).sqrt().max(1.0);
    let bs = 32;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut rng = Rng::new(seed);
    let logits = |w: &[f32], x: &[f32]| -> Vec<f32> {
        (0..k)
            .map(|c| {
                let row = &w[c * (d + 1)..(c + 1) * (d + 1)];
                row[d] + row[..d].iter().zip(x).map(|(a, b)| a * b).sum::<f32>()
            })
            .collect()
    };
    let mut grad = vec![0.0f32; w.len()];
    for _ in 0..epochs {
        rng.shuffle(&mut order);
        for chunk in order.chunks(bs) {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for &i in chunk {
                let z = logits(&w, &train[i]);
                let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
                let s: f32 = e.iter().sum();
                for c in 0..k {
                    let g = e[c] / s - if c == ytr[i] as usize { 1.0 } else { 0.0 };
                    let row = &mut grad[c * (d + 1)..(c + 1) * (d + 1)];
                    for (gr, &x) in row[..d].iter_mut().zip(&train[i]) {
                        *gr += g * x;
                    }
                    row[d] += g;
                }
            }
            let inv = 1.0 / chunk.len() as f32;
            for ((wv, v), g) in w.iter_mut().zip(vel.iter_mut()).zip(&grad) {
                *v = 0.9 * *v + g * inv + l2 * *wv;
                *wv -= lr * *v;
            }
        }
    }
    let correct = test
        .iter()
        .zip(yte)
        .filter(|(x, &y)| {
            let z = logits(&w, x);
            let best = z.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(c, _)| c);
            best == Some(y as usize)
        })
        .count();
    correct as f64 / test.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_blobs_are_learned() {
        let mut rng = Rng::new(0);
        let mut make = |n: usize| {
            let mut x = Vec::new();
            let mut y = Vec::new();
            for i in 0..n {
                let c = i % 3;
                x.push(
                    (0..5).map(|j| if j == c { 3.0 } else { 0.0 } + rng.normal() as f32 * 0.5).collect::<Vec<f32>>(),
                );
                y.push(c as u32);
            }
            (x, y)
        };
        let (mut a, ya) = make(90);
        let (mut b, yb) = make(60);
        standardize(&mut a, &mut b);
        assert!(nearest_class_mean(&a, &ya, &b, &yb, 3) > 0.95);
        assert!(logistic_regression(&a, &ya, &b, &yb, 3, LogisticConfig::default()) > 0.95);
    }
}
