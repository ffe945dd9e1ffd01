//! The synthetic audio: a class-pair tone plus an unreliable within-pair noise-burst cue.
//!
//! Class `c` belongs to pair `c / 2` and has the within-pair bit `c % 2`.
//! - **Pair** (easy, learned fast): a harmonic tone with fundamental 180, 300 or 500 Hz (± 6 %
//!   random detuning, slight vibrato), random harmonic weights (partials below 2.3 kHz), random
//!   onset, length and level, attack/decay envelope.
//! - **Within-pair bit** (ambiguous): a band-limited noise burst (2.6–3.4 kHz) that is present with
//!   probability `reliability` when the bit is 1 and `1 − reliability` when it is 0. Audio alone can
//!   therefore not exceed ≈ `reliability` accuracy.
//! - Background white noise of random level.
//!
//! All frequencies are in Hz, so the same generator serves 8 kHz and 22.05 kHz presets.

use dgl_core::rng::Rng;
use std::f64::consts::PI;

/// Fundamentals of the three class pairs, Hz.
pub const PAIR_F0: [f64; 3] = [180.0, 300.0, 500.0];
/// Band of the within-pair cue, Hz.
pub const CUE_BAND: (f64, f64) = (2600.0, 3400.0);

/// One clip of `n` samples at `sr` Hz for class `class` (0..6), in [-1, 1].
pub fn waveform(class: usize, sr: u32, n: usize, reliability: f64, rng: &mut Rng) -> Vec<f32> {
    let sr = sr as f64;
    let pair = class / 2;
    let bit = class % 2;
    let mut y = vec![0.0f64; n];

    // The pair's harmonic tone.
    let f0 = PAIR_F0[pair] * rng.uniform_range(-0.06, 0.06).exp();
    let amp = rng.uniform_range(0.12, 0.3);
    let len = ((rng.uniform_range(0.5, 0.75) * n as f64) as usize).max(1);
    let onset = rng.below(n - len + 1);
    let vib_rate = rng.uniform_range(3.0, 6.0);
    let vib_depth = rng.uniform_range(0.0, 0.01);
    let attack = (0.02 * sr) as usize + 1;
    let decay = rng.uniform_range(1.0, 3.0) / (len as f64 / sr);
    let mut partials = Vec::new();
    let mut h = 1.0;
    while h * f0 < 2300.0 && h <= 10.0 {
        partials.push((h, rng.uniform_range(0.6, 1.4) / h, rng.uniform_range(0.0, 2.0 * PI)));
        h += 1.0;
    }
    let vib_phase = rng.uniform_range(0.0, 2.0 * PI);
    // Harmonic h: sin(h·ph + p_h) = Im(z^h e^{i p_h}) with z = e^{i ph}: one sin/cos per sample.
    let rot: Vec<(f64, f64)> = partials.iter().map(|&(_, a, p)| (a * p.cos(), a * p.sin())).collect();
    for i in 0..len {
        let t = i as f64 / sr;
        let env_a = (i as f64 / attack as f64).min(1.0);
        let env_r = ((len - i) as f64 / attack as f64).min(1.0);
        let env = amp * env_a * env_r * (-decay * t).exp();
        // Instantaneous frequency f0 (1 + d sin(2π r t + φ)) integrated analytically.
        let ph = 2.0
            * PI
            * f0
            * (t + vib_depth * (vib_phase.cos() - (2.0 * PI * vib_rate * t + vib_phase).cos()) / (2.0 * PI * vib_rate));
        let (zs, zc) = ph.sin_cos();
        let (mut pr, mut pi) = (1.0, 0.0);
        let mut s = 0.0;
        for &(rr, ri) in &rot {
            // (pr + i pi) *= z
            let nr = pr * zc - pi * zs;
            pi = pr * zs + pi * zc;
            pr = nr;
            // Im((pr + i pi)(rr + i ri))
            s += pr * ri + pi * rr;
        }
        y[onset + i] += env * s;
    }

    // The unreliable within-pair cue.
    let p_cue = if bit == 1 { reliability } else { 1.0 - reliability };
    if rng.uniform() < p_cue {
        let blen = ((rng.uniform_range(0.12, 0.25) * n as f64) as usize).max(2);
        let bstart = rng.below(n - blen + 1);
        let bamp = amp * rng.uniform_range(0.6, 1.0) * 2.0 / (24.0f64).sqrt();
        let env: Vec<f64> =
            (0..blen).map(|i| bamp * (0.5 - 0.5 * (2.0 * PI * i as f64 / (blen - 1) as f64).cos())).collect();
        for _ in 0..24 {
            let f = rng.uniform_range(CUE_BAND.0, CUE_BAND.1);
            let p = rng.uniform_range(0.0, 2.0 * PI);
            let (ws, wc) = (2.0 * PI * f / sr).sin_cos();
            // e^{i(w i + p)} by rotation (f64: drift ~1e-12 over a few thousand steps).
            let (mut c, mut s) = (p.cos(), p.sin());
            for (i, e) in env.iter().enumerate() {
                y[bstart + i] += e * s;
                let nc = c * wc - s * ws;
                s = s * wc + c * ws;
                c = nc;
            }
        }
    }

    // Background noise.
    let noise = rng.uniform_range(0.005, 0.02);
    for pair in y.chunks_mut(2) {
        let (z0, z1) = crate::synthetic::visual_gen::normal_pair(rng);
        pair[0] += noise * z0;
        if let Some(v) = pair.get_mut(1) {
            *v += noise * z1;
        }
    }
    y.into_iter().map(|v| v.clamp(-1.0, 1.0) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_deterministic() {
        let a = waveform(3, 8000, 4000, 0.7, &mut Rng::new(5));
        let b = waveform(3, 8000, 4000, 0.7, &mut Rng::new(5));
        assert_eq!(a, b);
        assert_eq!(a.len(), 4000);
        assert!(a.iter().all(|v| v.abs() <= 1.0));
        let rms = (a.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / 4000.0).sqrt();
        assert!(rms > 0.01, "{rms}");
    }
}
