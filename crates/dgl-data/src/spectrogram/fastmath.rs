//! A branch-free natural logarithm for `f32` that the compiler vectorises (the spectrogram's
//! `log(|S| + eps)` over ~50 000 bins per clip; `f32::ln` is a libm call per value).

/// `ln(x)` for positive, normal, finite `x` (Cephes `logf`: `x = 2^e · m` with
/// `m ∈ [√½, √2)`, `ln x = e · ln 2 + ln m`, `ln m` by a degree-9 polynomial). Maximum error about
/// 1 ulp of the result, plus 1e-7 absolute near `x = 1` (see the test). Zero, subnormal, negative,
/// infinite or NaN inputs give meaningless values: callers check with [`all_normal`] first.
#[inline(always)]
pub(crate) fn ln_approx(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    // m ∈ [0.5, 1)
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    e -= small as i32;
    let m = if small { m + m } else { m } - 1.0;
    let z = m * m;
    let mut y = 0.070_376_836f32;
    y = y * m - 0.115_146_1;
    y = y * m + 0.116_769_984;
    y = y * m - 0.124_201_41;
    y = y * m + 0.142_493_23;
    y = y * m - 0.166_680_57;
    y = y * m + 0.200_007_14;
    y = y * m - 0.249_999_94;
    y = y * m + 0.333_333_3;
    y = y * m * z;
    let ef = e as f32;
    y += -2.121_944_4e-4 * ef;
    y += -0.5 * z;
    (m + y) + 0.693_359_4 * ef
}

/// Whether every value is positive, normal and finite (the domain of [`ln_approx`]); written
/// without early exit so that it vectorises.
#[inline(always)]
pub(crate) fn all_normal(v: &[f32]) -> bool {
    v.iter().fold(true, |ok, &x| ok & (f32::MIN_POSITIVE..=f32::MAX).contains(&x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_approx_is_accurate() {
        // Log-spaced sweep over 1e-30 .. 1e30 plus values around 1.
        let mut worst_abs = 0.0f64;
        let mut worst_rel = 0.0f64;
        let n = 2_000_000;
        for i in 0..=n {
            let x = 10f64.powf(-30.0 + 60.0 * i as f64 / n as f64) as f32;
            for x in [x, 1.0 + (x % 1.0) * 1e-3, 1.0 - (x % 1.0) * 1e-3] {
                let want = (x as f64).ln();
                let got = ln_approx(x) as f64;
                let abs = (got - want).abs();
                worst_abs = worst_abs.max(abs.min(abs / want.abs().max(1e-30)));
                worst_rel = worst_rel.max(abs / want.abs().max(1.0));
            }
        }
        println!("ln_approx: worst min(abs, rel) error {worst_abs:.2e}, worst error / max(1, |ln x|) {worst_rel:.2e}");
        assert!(worst_rel < 2e-7, "{worst_rel}");
        assert!(worst_abs < 2e-7, "{worst_abs}");
        assert!(all_normal(&[1e-7, 1.0, 3e38]));
        for bad in [0.0, -1.0, 1e-40, f32::INFINITY, f32::NAN] {
            assert!(!all_normal(&[1.0, bad, 2.0]), "{bad}");
        }
    }
}
