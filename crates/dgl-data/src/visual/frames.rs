//! Which frames of a clip to use.
//!
//! The official loaders take the *first* listed frame(s) in filesystem order (their random choice
//! is computed but unused). Here names are sorted first (portable), then `T` indices are chosen:
//! at evaluation the centres of `T` equal segments (evenly spaced, deterministic), in training a
//! seeded uniform index inside each segment (TSN-style). With fewer than `T` frames, indices
//! repeat.

use dgl_core::rng::Rng;

/// `T` frame indices out of `n` (ascending). `rng = None` → evaluation choice.
pub fn frame_indices(n: usize, t: usize, mut rng: Option<&mut Rng>) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    (0..t)
        .map(|i| {
            let start = i * n / t;
            let end = ((i + 1) * n / t).max(start + 1).min(n);
            let start = start.min(n - 1);
            match rng.as_deref_mut() {
                Some(r) => start + r.below(end - start),
                None => ((2 * i + 1) * n / (2 * t)).min(n - 1),
            }
        })
        .collect()
}

/// Sorts `names` and picks `T` of them (see [`frame_indices`]); empty if `names` is.
pub fn choose_frames<S: AsRef<str> + Clone>(names: &[S], t: usize, rng: Option<&mut Rng>) -> Vec<S> {
    let mut sorted: Vec<S> = names.to_vec();
    sorted.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    frame_indices(sorted.len(), t, rng).into_iter().map(|i| sorted[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evenly_spaced_at_eval() {
        assert_eq!(frame_indices(10, 3, None), vec![1, 5, 8]);
        assert_eq!(frame_indices(3, 1, None), vec![1]);
        assert_eq!(frame_indices(2, 3, None), vec![0, 1, 1]);
        assert!(frame_indices(0, 3, None).is_empty());
    }

    #[test]
    fn random_within_segments_in_training() {
        let mut r = Rng::new(4);
        for _ in 0..100 {
            let ix = frame_indices(10, 3, Some(&mut r));
            assert!(ix[0] < 3 && (3..6).contains(&ix[1]) && (6..10).contains(&ix[2]), "{ix:?}");
        }
        let mut r = Rng::new(4);
        assert!(frame_indices(2, 3, Some(&mut r)).iter().all(|&i| i < 2));
    }

    #[test]
    fn sorts_names() {
        let names = vec!["00003.jpg", "00001.jpg", "00002.jpg"];
        assert_eq!(choose_frames(&names, 1, None), vec!["00002.jpg"]);
        assert_eq!(choose_frames(&names, 3, None), vec!["00001.jpg", "00002.jpg", "00003.jpg"]);
    }
}
