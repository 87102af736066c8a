//! Attention of one query head over a run of cached positions (`kv_cache` layout: per position
//! the key then the value, `2 * hd` floats).
//!
//! `scores[t] = (q · K[t]) * scale`, softmax over `t < len`, `out = Σ_t p[t] V[t]`. The SIMD
//! version keeps `out` in registers over all positions (an `axpy` per position would load and
//! store it every time) and computes 4 dot products at once.

use super::{dispatch, softmax_at, Level};

/// See the module documentation. `q.len() == out.len() == hd`, `kv.len() >= 2 * hd * len`,
/// `scores.len() >= len`, `len >= 1`.
#[allow(clippy::too_many_arguments)]
pub fn attend_at(
    lv: Level,
    q: &[f32],
    kv: &[f32],
    len: usize,
    hd: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    assert!(
        q.len() >= hd && out.len() >= hd && kv.len() >= 2 * hd * len && scores.len() >= len,
        "attend: lengths"
    );
    let lv = dispatch::clamp(lv);
    #[cfg(target_arch = "x86_64")]
    if lv >= Level::Avx2 && hd % 8 == 0 {
        // SAFETY: AVX2/FMA present (level check); lengths checked above.
        unsafe {
            super::x86_packed::attn::scores(q, kv, len, hd, scale, scores);
            softmax_at(lv, &mut scores[..len]);
            super::x86_packed::attn::weighted_sum(&scores[..len], kv, hd, out);
        }
        return;
    }
    scalar_attend(lv, q, kv, len, hd, scale, scores, out)
}

/// [`attend_at`] at the detected level.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &[f32],
    kv: &[f32],
    len: usize,
    hd: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    attend_at(dispatch::level(), q, kv, len, hd, scale, scores, out)
}

/// The scalar twin.
#[allow(clippy::too_many_arguments)]
fn scalar_attend(
    lv: Level,
    q: &[f32],
    kv: &[f32],
    len: usize,
    hd: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    for (t, st) in scores[..len].iter_mut().enumerate() {
        *st = super::scalar::dot(&q[..hd], &kv[t * 2 * hd..t * 2 * hd + hd]) * scale;
    }
    softmax_at(lv.min(Level::Scalar), &mut scores[..len]);
    let out = &mut out[..hd];
    out.fill(0.0);
    for (t, &p) in scores[..len].iter().enumerate() {
        super::scalar::axpy(p, &kv[t * 2 * hd + hd..(t + 1) * 2 * hd], out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::dispatch::available;
    use crate::kernels::tests::{rand_vec, Fill, Rng};

    #[test]
    fn attend_levels_match_scalar() {
        let mut rng = Rng::new(21);
        for &(hd, len) in &[
            (64usize, 1usize),
            (64, 7),
            (64, 130),
            (128, 33),
            (8, 5),
            (24, 9),
        ] {
            let q = rand_vec(hd, &mut rng, Fill::Random);
            let kv = rand_vec(2 * hd * len, &mut rng, Fill::Random);
            let scale = 1.0 / (hd as f32).sqrt();
            let mut sc = vec![0f32; len];
            let mut want = vec![0f32; hd];
            attend_at(Level::Scalar, &q, &kv, len, hd, scale, &mut sc, &mut want);
            // f64 reference
            let mut s: Vec<f64> = (0..len)
                .map(|t| {
                    (0..hd)
                        .map(|i| q[i] as f64 * kv[t * 2 * hd + i] as f64)
                        .sum::<f64>()
                        * scale as f64
                })
                .collect();
            let m = s.iter().cloned().fold(f64::MIN, f64::max);
            s.iter_mut().for_each(|v| *v = (*v - m).exp());
            let z: f64 = s.iter().sum();
            for i in 0..hd {
                let e: f64 = (0..len)
                    .map(|t| s[t] / z * kv[t * 2 * hd + hd + i] as f64)
                    .sum();
                assert!(
                    (want[i] as f64 - e).abs() < 1e-5,
                    "scalar hd={hd} len={len}"
                );
            }
            for lv in available() {
                let mut got = vec![0f32; hd];
                attend_at(lv, &q, &kv, len, hd, scale, &mut sc, &mut got);
                for i in 0..hd {
                    assert!(
                        (got[i] - want[i]).abs() <= 1e-5 * (1.0 + want[i].abs()),
                        "{lv:?} hd={hd} len={len} [{i}]: {} vs {}",
                        got[i],
                        want[i]
                    );
                }
            }
        }
    }
}
