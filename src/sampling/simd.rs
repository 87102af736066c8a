//! Temperature scaling: `out[i] = logits[i] / T` (NaN becomes `-inf`), returning the maximum of
//! `out`. One vector loop (AVX, chosen once at run time) and its scalar twin; both divide (not
//! multiply by `1/T`), so they give bit-identical results.

use std::sync::OnceLock;

/// Which implementation `scale_and_max` uses on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Plain Rust.
    Scalar,
    /// 8-wide AVX.
    Avx,
}

static LEVEL: OnceLock<Level> = OnceLock::new();

/// The implementation chosen for this CPU (detected once).
pub fn level() -> Level {
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx") {
                return Level::Avx;
            }
        }
        Level::Scalar
    })
}

/// `out[i] = logits[i] / t` with NaN mapped to `-inf`; returns `max(out)` (`-inf` if empty).
///
/// # Panics
/// If `out` is shorter than `logits`.
pub fn scale_and_max(logits: &[f32], t: f32, out: &mut [f32]) -> f32 {
    let out = &mut out[..logits.len()];
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX was detected on this CPU.
        Level::Avx => unsafe { scale_and_max_avx(logits, t, out) },
        _ => scale_and_max_scalar(logits, t, out),
    }
}

/// The scalar twin of [`scale_and_max`].
///
/// # Panics
/// If `out` is shorter than `logits`.
pub fn scale_and_max_scalar(logits: &[f32], t: f32, out: &mut [f32]) -> f32 {
    let mut max = f32::NEG_INFINITY;
    for (o, &x) in out[..logits.len()].iter_mut().zip(logits) {
        let y = if x.is_nan() { f32::NEG_INFINITY } else { x / t };
        *o = y;
        if y > max {
            max = y;
        }
    }
    max
}

/// The AVX version of [`scale_and_max`].
///
/// # Safety
/// The CPU must support AVX.
///
/// # Panics
/// If `out` is shorter than `logits`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
pub unsafe fn scale_and_max_avx(logits: &[f32], t: f32, out: &mut [f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = logits.len();
    let out = &mut out[..n];
    let chunks = n / 8;
    let tv = _mm256_set1_ps(t);
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut vmax = ninf;
    for c in 0..chunks {
        // SAFETY: c * 8 + 8 <= n for both slices (unaligned loads/stores).
        let x = _mm256_loadu_ps(logits.as_ptr().add(c * 8));
        let ordered = _mm256_cmp_ps::<_CMP_ORD_Q>(x, x);
        let y = _mm256_blendv_ps(ninf, _mm256_div_ps(x, tv), ordered);
        _mm256_storeu_ps(out.as_mut_ptr().add(c * 8), y);
        vmax = _mm256_max_ps(vmax, y);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), vmax);
    let tail = chunks * 8;
    let mut max = scale_and_max_scalar(&logits[tail..], t, &mut out[tail..]);
    for l in lanes {
        if l > max {
            max = l;
        }
    }
    max
}

/// Index of the first maximum with the spec's greedy rules (see [`argmax_scalar`]).
pub fn argmax(x: &[f32]) -> u32 {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX was detected on this CPU.
        Level::Avx => unsafe { argmax_avx(x) },
        _ => argmax_scalar(x),
    }
}

/// The reference greedy rule: a strict `>` scan from index 0, so the first maximum wins, NaNs
/// never win unless `x[0]` is NaN (then 0). 0 for an empty slice.
pub fn argmax_scalar(x: &[f32]) -> u32 {
    let Some(&first) = x.first() else {
        return 0;
    };
    let mut best = first;
    let mut best_i = 0usize;
    for (i, &v) in x.iter().enumerate().skip(1) {
        if v > best {
            best = v;
            best_i = i;
        }
    }
    best_i as u32
}

/// The AVX version of [`argmax_scalar`]: the maximum over the non-NaN values, then the first
/// index holding it (which is what the strict scan returns when `x[0]` is not NaN).
///
/// # Safety
/// The CPU must support AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
pub unsafe fn argmax_avx(x: &[f32]) -> u32 {
    use std::arch::x86_64::*;
    let n = x.len();
    if n == 0 || x[0].is_nan() {
        return 0;
    }
    let chunks = n / 8;
    let p = x.as_ptr();
    let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
    for c in 0..chunks {
        // maxps returns its second operand when either is NaN: NaNs in x are skipped.
        vmax = _mm256_max_ps(_mm256_loadu_ps(p.add(c * 8)), vmax);
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), vmax);
    let mut m = x[0];
    for v in lanes.into_iter().chain(x[chunks * 8..].iter().copied()) {
        if v > m {
            m = v;
        }
    }
    let vm = _mm256_set1_ps(m);
    for c in 0..chunks {
        let eq = _mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_loadu_ps(p.add(c * 8)), vm);
        let mask = _mm256_movemask_ps(eq) as u32;
        if mask != 0 {
            return (c * 8 + mask.trailing_zeros() as usize) as u32;
        }
    }
    for (i, &v) in x.iter().enumerate().skip(chunks * 8) {
        if v == m {
            return i as u32;
        }
    }
    0 // unreachable: m is one of the values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Vec<Vec<f32>> {
        let mut v = Vec::new();
        for n in [1usize, 7, 8, 9, 15, 16, 17, 64, 1000] {
            v.push(
                (0..n)
                    .map(|i| ((i * 7919) % 1013) as f32 * 0.37 - 180.0)
                    .collect(),
            );
        }
        let mut special = vec![
            f32::NAN,
            1.0,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            f32::INFINITY,
            3.0e38,
            -3.0e38,
            1e-40,
            f32::NAN,
        ];
        special.extend((0..13).map(|i| i as f32));
        v.push(special);
        v.push(vec![f32::NAN; 11]);
        v
    }

    #[test]
    fn vector_and_scalar_agree_bitwise() {
        for x in inputs() {
            for t in [1.0f32, 0.7, 1.5, 1e-6, 3.3e-3, 100.0] {
                let mut a = vec![0f32; x.len()];
                let mut b = vec![0f32; x.len()];
                let ma = scale_and_max(&x, t, &mut a);
                let mb = scale_and_max_scalar(&x, t, &mut b);
                assert_eq!(ma, mb, "max, n = {}, t = {t}", x.len());
                for i in 0..x.len() {
                    assert_eq!(a[i].to_bits(), b[i].to_bits(), "i = {i}, t = {t}");
                    assert!(!a[i].is_nan());
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx_matches_scalar_when_available() {
        if !std::arch::is_x86_feature_detected!("avx") {
            eprintln!("no AVX on this CPU: only the scalar path is compared (by the test above)");
            return;
        }
        for x in inputs() {
            let mut a = vec![0f32; x.len()];
            let mut b = vec![0f32; x.len()];
            // SAFETY: AVX detected above.
            let ma = unsafe { scale_and_max_avx(&x, 0.7, &mut a) };
            let mb = scale_and_max_scalar(&x, 0.7, &mut b);
            assert_eq!(ma, mb);
            assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
        }
    }

    #[test]
    fn argmax_vector_and_scalar_agree() {
        let mut cases = inputs();
        cases.push(vec![]);
        cases.push(vec![-0.0, 0.0, 0.0]);
        cases.push(vec![0.0, -0.0]);
        cases.push(vec![f32::NEG_INFINITY; 20]);
        cases.push({
            let mut v = vec![f32::NAN; 20];
            v[0] = -5.0;
            v
        });
        for pos in 0..40 {
            let mut v: Vec<f32> = (0..40).map(|i| (i % 5) as f32).collect();
            v[pos] = 9.0;
            if pos > 0 {
                v[pos - 1] = f32::NAN;
            }
            cases.push(v.clone());
            v[(pos + 7) % 40] = 9.0; // a second maximum
            cases.push(v);
        }
        for x in &cases {
            let want = argmax_scalar(x);
            assert_eq!(argmax(x), want, "{x:?}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx") {
                // SAFETY: AVX detected.
                assert_eq!(unsafe { argmax_avx(x) }, want, "{x:?}");
            }
        }
    }

    #[test]
    fn nan_becomes_neg_inf_and_division_is_exact() {
        let x = [f32::NAN, 2.0, 1.0];
        let mut o = [0f32; 3];
        let m = scale_and_max(&x, 0.5, &mut o);
        assert_eq!(o, [f32::NEG_INFINITY, 4.0, 2.0]);
        assert_eq!(m, 4.0);
        let x = [0.3f32; 9];
        let mut o = [0f32; 9];
        scale_and_max(&x, 0.7, &mut o);
        assert!(o.iter().all(|&y| y == 0.3f32 / 0.7f32));
    }
}
