//! AVX2 + FMA twin of `attn::scalar_tile_step` (bit-identical: same dot-product blocks, the same
//! `exp` polynomial, the same sums in the same order).
//!
//! # Safety
//! Every function here requires a CPU with AVX2 and FMA (callers check `dispatch::level`).
#![allow(clippy::missing_safety_doc)]

use core::arch::x86_64::*;

use super::attn::{State, TILE};
use super::x86::vec::{exp8, hsum};

/// Scores of `U` consecutive positions from `k` (stride `st`): 8-column blocks alternate
/// between two accumulators per position.
#[inline]
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
unsafe fn scores<const U: usize>(
    q: *const f32,
    k: *const f32,
    st: usize,
    hd: usize,
    scale: f32,
    out: *mut f32,
) {
    let mut a = [_mm256_setzero_ps(); U];
    let mut b = [_mm256_setzero_ps(); U];
    let mut c = 0;
    while c + 16 <= hd {
        let qa = _mm256_loadu_ps(q.add(c));
        let qb = _mm256_loadu_ps(q.add(c + 8));
        for u in 0..U {
            a[u] = _mm256_fmadd_ps(qa, _mm256_loadu_ps(k.add(u * st + c)), a[u]);
            b[u] = _mm256_fmadd_ps(qb, _mm256_loadu_ps(k.add(u * st + c + 8)), b[u]);
        }
        c += 16;
    }
    if c < hd {
        let qa = _mm256_loadu_ps(q.add(c));
        for u in 0..U {
            a[u] = _mm256_fmadd_ps(qa, _mm256_loadu_ps(k.add(u * st + c)), a[u]);
        }
    }
    for u in 0..U {
        *out.add(u) = hsum(_mm256_add_ps(a[u], b[u])) * scale;
    }
}

/// One tile step of one query (see `attn`'s module documentation). `hd % 8 == 0`, `1 <= n <=
/// TILE`, `kv` holds `n` positions, `q` and `acc` `hd` floats, `sc` `TILE` floats.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile_step(
    q: &[f32],
    kv: &[f32],
    n: usize,
    hd: usize,
    scale: f32,
    first: bool,
    st: &mut State,
    acc: &mut [f32],
    sc: &mut [f32],
) {
    debug_assert!(hd % 8 == 0 && (1..=TILE).contains(&n) && sc.len() >= TILE);
    let s2 = 2 * hd;
    let (qp, kp, sp) = (q.as_ptr(), kv.as_ptr(), sc.as_mut_ptr());
    let mut t = 0;
    while t + 4 <= n {
        scores::<4>(qp, kp.add(t * s2), s2, hd, scale, sp.add(t));
        t += 4;
    }
    while t < n {
        scores::<1>(qp, kp.add(t * s2), s2, hd, scale, sp.add(t));
        t += 1;
    }
    // The tile's maximum (exact, so any order gives the scalar fold's value for scores that are
    // not NaN); lanes past n read as -inf.
    let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut mx = ninf;
    let mut t = 0;
    while t < n {
        let live = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((n - t) as i32), idx));
        mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, _mm256_loadu_ps(sp.add(t)), live));
        t += 8;
    }
    let mx = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    let mx = _mm_max_ps(mx, _mm_movehl_ps(mx, mx));
    let mt = _mm_cvtss_f32(_mm_max_ss(mx, _mm_movehdup_ps(mx)));
    let m_new = if first { mt } else { st.m.max(mt) };
    // p = exp(s - m'), lanes past n zeroed; the sum in 8 lanes by t mod 8.
    let mv = _mm256_set1_ps(m_new);
    let mut sum = _mm256_setzero_ps();
    let mut t = 0;
    while t < n {
        let live = _mm256_cmpgt_epi32(_mm256_set1_epi32((n - t) as i32), idx);
        let p = exp8(_mm256_sub_ps(_mm256_loadu_ps(sp.add(t)), mv));
        let p = _mm256_and_ps(p, _mm256_castsi256_ps(live));
        _mm256_storeu_ps(sp.add(t), p);
        sum = _mm256_add_ps(sum, p);
        t += 8;
    }
    let lsum = hsum(sum);
    let alpha = if first {
        st.l = lsum;
        0.0
    } else {
        let alpha = _mm256_cvtss_f32(exp8(_mm256_set1_ps(st.m - m_new)));
        st.l = st.l * alpha + lsum;
        alpha
    };
    st.m = m_new;
    let av = _mm256_set1_ps(alpha);
    let vp = kp.add(hd);
    let ap = acc.as_mut_ptr();
    let mut c0 = 0;
    while c0 < hd {
        let (a, v) = (ap.add(c0), vp.add(c0));
        match (hd - c0).min(64) / 8 {
            8 => values::<8>(a, v, sp, n, s2, first, av),
            7 => values::<7>(a, v, sp, n, s2, first, av),
            6 => values::<6>(a, v, sp, n, s2, first, av),
            5 => values::<5>(a, v, sp, n, s2, first, av),
            4 => values::<4>(a, v, sp, n, s2, first, av),
            3 => values::<3>(a, v, sp, n, s2, first, av),
            2 => values::<2>(a, v, sp, n, s2, first, av),
            _ => values::<1>(a, v, sp, n, s2, first, av),
        }
        c0 += 64;
    }
}

/// `acc[..8W] = acc * alpha (0 on a first tile)`, then `fma(p[t], V[t], acc)` for `t < n`,
/// the `W` accumulators in registers.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn values<const W: usize>(
    ap: *mut f32,
    vp: *const f32,
    p: *const f32,
    n: usize,
    s2: usize,
    first: bool,
    av: __m256,
) {
    let mut a = [_mm256_setzero_ps(); W];
    if !first {
        for (u, r) in a.iter_mut().enumerate() {
            *r = _mm256_mul_ps(_mm256_loadu_ps(ap.add(8 * u)), av);
        }
    }
    for t in 0..n {
        let pv = _mm256_set1_ps(*p.add(t));
        let row = vp.add(t * s2);
        for (u, r) in a.iter_mut().enumerate() {
            *r = _mm256_fmadd_ps(pv, _mm256_loadu_ps(row.add(8 * u)), *r);
        }
    }
    for (u, r) in a.iter().enumerate() {
        _mm256_storeu_ps(ap.add(8 * u), *r);
    }
}

/// binary16 values (little-endian bytes) to f32 with F16C (exact).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn f16_to_f32(src: &[u8], out: &mut [f32]) {
    debug_assert!(src.len() >= 2 * out.len());
    let n = out.len();
    let (s, o) = (src.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    while i + 8 <= n {
        let h = _mm_loadu_si128(s.add(2 * i) as *const __m128i);
        _mm256_storeu_ps(o.add(i), _mm256_cvtph_ps(h));
        i += 8;
    }
    while i < n {
        let h = (s.add(2 * i) as *const u16).read_unaligned();
        *o.add(i) = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)));
        i += 1;
    }
}

/// `acc = fma(acc2, b, acc * a)` (the vector part of `attn::fold`; `acc.len() % 8 == 0`,
/// `acc2` as long).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn fold_acc(acc: &mut [f32], acc2: &[f32], a: f32, b: f32) {
    let (av, bv) = (_mm256_set1_ps(a), _mm256_set1_ps(b));
    let (p, q) = (acc.as_mut_ptr(), acc2.as_ptr());
    let mut i = 0;
    while i + 8 <= acc.len() {
        let x = _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), av);
        _mm256_storeu_ps(p.add(i), _mm256_fmadd_ps(_mm256_loadu_ps(q.add(i)), bv, x));
        i += 8;
    }
}

/// Q8_0 blocks (`2 + 32` bytes each: f16 scale, int8 values) to f32, `d * q` (exact, so the
/// same values as the scalar conversion). `out.len()` is a multiple of 32, `src` holds its blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dequant_q8_0(src: &[u8], out: &mut [f32]) {
    debug_assert!(out.len() % 32 == 0 && src.len() >= out.len() / 32 * 34);
    let (mut s, mut o) = (src.as_ptr(), out.as_mut_ptr());
    for _ in 0..out.len() / 32 {
        let h = (s as *const u16).read_unaligned();
        let d = _mm256_set1_ps(_mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32))));
        for k in 0..4 {
            let b = _mm_loadl_epi64(s.add(2 + 8 * k) as *const __m128i);
            let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
            _mm256_storeu_ps(o.add(8 * k), _mm256_mul_ps(v, d));
        }
        s = s.add(34);
        o = o.add(32);
    }
}
