//! k-means (k-means++ seeding from a seeded generator, Lloyd iterations) and cluster purity, for
//! D&R's diagnosis. Distances are computed with candle on the features' device (fast on a GPU),
//! centre updates on the host.

use candle_core::{DType, Tensor};
use dgl_core::rng::Rng;
use dgl_core::{Error, Result};

use crate::util::upload;

/// Rows per distance chunk (bounds the `[rows, K]` distance matrix).
const CHUNK: usize = 8192;

/// Per-column MinMax scaling to [−1, 1] (`sklearn.preprocessing.MinMaxScaler((-1, 1))`: a constant
/// column maps to −1).
pub fn minmax_scale(x: &Tensor) -> Result<Tensor> {
    let min = x.min_keepdim(0)?;
    let max = x.max_keepdim(0)?;
    let range = (&max - &min)?;
    let zero = range.eq(0.0)?;
    let range = zero.where_cond(&range.ones_like()?, &range)?;
    Ok(x.broadcast_sub(&min)?.broadcast_div(&range)?.affine(2.0, -1.0)?)
}

/// Squared distances `[N, K]` of rows of `x` to centres `c` (‖x‖² − 2 x cᵀ + ‖c‖², clamped at 0).
fn sq_dists(x: &Tensor, c: &Tensor) -> Result<Tensor> {
    let xx = x.sqr()?.sum_keepdim(1)?;
    let cc = c.sqr()?.sum_keepdim(1)?.t()?;
    Ok(xx.broadcast_add(&cc)?.broadcast_sub(&(x.matmul(&c.t()?)? * 2.0)?)?.clamp(0.0, f64::INFINITY)?)
}

/// Nearest centre of every row, and its squared distance.
fn assign(x: &Tensor, centers: &[f64], k: usize) -> Result<(Vec<usize>, Vec<f64>)> {
    let (n, d) = x.dims2()?;
    let c = upload(centers.to_vec(), &[k, d], x.dtype(), x.device())?;
    let mut labels = Vec::with_capacity(n);
    let mut dist = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        let dm = sq_dists(&x.narrow(0, start, len)?, &c)?;
        labels.extend(dm.argmin(1)?.to_dtype(DType::U32)?.to_vec1::<u32>()?.into_iter().map(|v| v as usize));
        dist.extend(dm.min(1)?.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        start += len;
    }
    Ok((labels, dist))
}

/// Squared distance of every row of `x` to one centre.
fn dist_to(x: &Tensor, center: &[f64]) -> Result<Vec<f64>> {
    let d = x.dim(1)?;
    let c = upload(center.to_vec(), &[1, d], x.dtype(), x.device())?;
    Ok(x.broadcast_sub(&c)?.sqr()?.sum(1)?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
}

/// k-means of the rows of `x` (`[N, d]`): k-means++ seeding with `rng`, then Lloyd iterations
/// until the assignment no longer changes, the centre shift falls below
/// `tol · mean_j var(x_{·j})` (as scikit-learn), or `max_iter`. Empty clusters are moved to the
/// point farthest from its centre. Returns the cluster of every row.
pub fn kmeans(x: &Tensor, k: usize, max_iter: usize, tol: f64, rng: &mut Rng) -> Result<Vec<usize>> {
    let (n, d) = x.dims2()?;
    if k == 0 || n < k {
        return Err(Error::InvalidInput(format!("k-means with k = {k} needs at least k points, got {n}")));
    }
    let x = x.to_dtype(DType::F32)?;
    let host: Vec<f32> = x.flatten_all()?.to_vec1::<f32>()?;
    let row = |i: usize| host[i * d..(i + 1) * d].iter().map(|&v| v as f64);

    // k-means++ seeding.
    let mut centers: Vec<f64> = Vec::with_capacity(k * d);
    let first = rng.below(n);
    centers.extend(row(first));
    let mut closest = dist_to(&x, &centers[..d])?;
    let mut chosen = vec![first];
    while chosen.len() < k {
        let total: f64 = closest.iter().sum();
        let idx = if total > 0.0 {
            let mut t = rng.uniform() * total;
            let mut pick = n - 1;
            for (i, &w) in closest.iter().enumerate() {
                if t < w {
                    pick = i;
                    break;
                }
                t -= w;
            }
            pick
        } else {
            // Fewer distinct points than clusters: any point not chosen yet.
            (0..n).find(|i| !chosen.contains(i)).unwrap_or(0)
        };
        chosen.push(idx);
        let c: Vec<f64> = row(idx).collect();
        let dn = dist_to(&x, &c)?;
        for (a, b) in closest.iter_mut().zip(dn) {
            *a = a.min(b);
        }
        centers.extend(c);
    }

    // Tolerance relative to the data's mean per-column variance.
    let mut mean = vec![0f64; d];
    let mut sq = vec![0f64; d];
    for i in 0..n {
        for (j, v) in row(i).enumerate() {
            mean[j] += v;
            sq[j] += v * v;
        }
    }
    let mean_var = (0..d).map(|j| sq[j] / n as f64 - (mean[j] / n as f64).powi(2)).sum::<f64>() / d as f64;
    let tol_abs = tol * mean_var;

    let (mut labels, _) = assign(&x, &centers, k)?;
    for _ in 0..max_iter {
        let mut sums = vec![0f64; k * d];
        let mut counts = vec![0usize; k];
        for (i, &c) in labels.iter().enumerate() {
            counts[c] += 1;
            for (j, v) in row(i).enumerate() {
                sums[c * d + j] += v;
            }
        }
        let mut new = centers.clone();
        for c in 0..k {
            if counts[c] > 0 {
                for j in 0..d {
                    new[c * d + j] = sums[c * d + j] / counts[c] as f64;
                }
            }
        }
        let empty: Vec<usize> = (0..k).filter(|&c| counts[c] == 0).collect();
        if !empty.is_empty() {
            // Farthest points (from their current centre) become the empty clusters' centres.
            let mut far: Vec<(f64, usize)> = labels
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let dd: f64 = row(i).zip(&new[c * d..(c + 1) * d]).map(|(a, b)| (a - b).powi(2)).sum();
                    (dd, i)
                })
                .collect();
            far.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for (c, (_, i)) in empty.iter().zip(far) {
                for (j, v) in row(i).enumerate() {
                    new[c * d + j] = v;
                }
            }
        }
        let shift: f64 = new.iter().zip(&centers).map(|(a, b)| (a - b).powi(2)).sum();
        centers = new;
        let (next, _) = assign(&x, &centers, k)?;
        let same = next == labels;
        labels = next;
        if same || shift <= tol_abs {
            break;
        }
    }
    Ok(labels)
}

/// Purity: Σ_clusters (majority-label count) / N.
pub fn purity(clusters: &[usize], labels: &[usize]) -> f64 {
    if clusters.is_empty() {
        return 0.0;
    }
    let mut counts: std::collections::HashMap<(usize, usize), usize> = Default::default();
    for (&c, &y) in clusters.iter().zip(labels) {
        *counts.entry((c, y)).or_default() += 1;
    }
    let mut best: std::collections::HashMap<usize, usize> = Default::default();
    for ((c, _), n) in counts {
        let b = best.entry(c).or_default();
        *b = (*b).max(n);
    }
    best.values().sum::<usize>() as f64 / clusters.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn minmax_to_minus_one_one() {
        let x = Tensor::new(&[[0.0f64, 5.0, 2.0], [10.0, 5.0, 4.0], [5.0, 5.0, 3.0]], &Device::Cpu).unwrap();
        let s = minmax_scale(&x).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(s, vec![-1.0, -1.0, -1.0, 1.0, -1.0, 1.0, 0.0, -1.0, 0.0]);
    }

    #[test]
    fn purity_by_hand() {
        // Cluster 0: labels {0,0,1} → 2; cluster 1: {2,2} → 2; cluster 2: {1} → 1 ⇒ 5/6.
        let p = purity(&[0, 0, 0, 1, 1, 2], &[0, 0, 1, 2, 2, 1]);
        assert!((p - 5.0 / 6.0).abs() < 1e-15);
    }

    #[test]
    fn separated_blobs_are_found() {
        let mut rng = Rng::new(1);
        let centres = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let mut v = Vec::new();
        let mut truth = Vec::new();
        for i in 0..90 {
            let c = i % 3;
            v.push(centres[c][0] + 0.3 * rng.normal());
            v.push(centres[c][1] + 0.3 * rng.normal());
            truth.push(c);
        }
        let x = Tensor::from_vec(v, (90, 2), &Device::Cpu).unwrap();
        let labels = kmeans(&x, 3, 300, 1e-4, &mut Rng::new(0)).unwrap();
        assert_eq!(purity(&labels, &truth), 1.0);
        // Deterministic for a seed.
        assert_eq!(labels, kmeans(&x, 3, 300, 1e-4, &mut Rng::new(0)).unwrap());
        // More clusters than distinct points is handled (duplicates).
        let x = Tensor::new(&[[1.0f64, 1.0], [1.0, 1.0], [2.0, 2.0]], &Device::Cpu).unwrap();
        let l = kmeans(&x, 3, 10, 1e-4, &mut Rng::new(0)).unwrap();
        assert_eq!(l.len(), 3);
    }
}
