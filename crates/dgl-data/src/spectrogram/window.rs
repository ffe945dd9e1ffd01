//! Analysis windows, built the way `scipy.signal.get_window(name, n)` builds them (periodic,
//! i.e. `fftbins=True`), which is also what `librosa.stft` uses.

use serde::{Deserialize, Serialize};

/// A window shape. All windows are *periodic* (DFT-even): the symmetric window of length `n + 1`
/// with its last sample dropped.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Periodic Hann: `0.5 − 0.5 cos(2π k / n)` (librosa's default `'hann'`).
    Hann,
    /// Periodic Tukey (tapered cosine) with taper fraction `alpha` (scipy.signal.spectrogram's
    /// default is `('tukey', 0.25)`).
    Tukey(f64),
    /// All ones.
    Rectangular,
}

impl Window {
    /// The `n` window coefficients (f64).
    pub fn coefficients(self, n: usize) -> Vec<f64> {
        match self {
            Window::Hann => hann_periodic(n),
            Window::Tukey(alpha) => tukey_periodic(n, alpha),
            Window::Rectangular => vec![1.0; n],
        }
    }
}

fn hann_periodic(n: usize) -> Vec<f64> {
    if n <= 1 {
        return vec![1.0; n];
    }
    (0..n).map(|k| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / n as f64).cos()).collect()
}

/// scipy.signal.windows.tukey(n, alpha, sym=False), formula for formula.
fn tukey_periodic(n: usize, alpha: f64) -> Vec<f64> {
    if n <= 1 {
        return vec![1.0; n];
    }
    if alpha <= 0.0 {
        return vec![1.0; n];
    }
    if alpha >= 1.0 {
        return hann_periodic(n);
    }
    let m = n + 1; // extended length, truncated at the end
    let mf = (m - 1) as f64;
    let width = (alpha * mf / 2.0).floor() as usize;
    let pi = std::f64::consts::PI;
    let mut w = Vec::with_capacity(m);
    for k in 0..m {
        let kf = k as f64;
        let v = if k <= width {
            0.5 * (1.0 + (pi * (-1.0 + 2.0 * kf / alpha / mf)).cos())
        } else if k < m - width - 1 {
            1.0
        } else {
            0.5 * (1.0 + (pi * (-2.0 / alpha + 1.0 + 2.0 * kf / alpha / mf)).cos())
        };
        w.push(v);
    }
    w.truncate(n);
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hann_is_periodic() {
        let w = Window::Hann.coefficients(4);
        let want = [0.0, 0.5, 1.0, 0.5];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn tukey_matches_scipy_values() {
        // scipy.signal.get_window(('tukey', 0.25), 8) = [0, 1, 1, 1, 1, 1, 1, 1]
        let w = Window::Tukey(0.25).coefficients(8);
        let want = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        assert_eq!(w.len(), 8);
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{w:?}");
        }
        // get_window(('tukey', 0.5), 10)
        let w = Window::Tukey(0.5).coefficients(10);
        let want = [0.0, 0.3454915, 0.9045085, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9045085, 0.3454915];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{w:?}");
        }
    }
}
