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
    debug_assert!(hd.is_multiple_of(8) && (1..=TILE).contains(&n) && sc.len() >= TILE);
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

/// `(exp(x), exp(y))` with `exp8` (the same bits as `attn::exp`, without its scalar `fmaf`
/// calls where the caller is not compiled for FMA).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp2_pair(x: f32, y: f32) -> (f32, f32) {
    let e = exp8(_mm256_setr_ps(x, y, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0));
    let lo = _mm256_castps256_ps128(e);
    (_mm_cvtss_f32(lo), _mm_cvtss_f32(_mm_movehdup_ps(lo)))
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
    debug_assert!(out.len().is_multiple_of(32) && src.len() >= out.len() / 32 * 34);
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

/// The AVX-512 kernels: the same arithmetic as `attn::scalar_tile_step`, bit for bit, with the
/// dot products of sixteen keys reduced together and the `p·V` updates of the query heads of one
/// token row sharing their loads of `V`.
///
/// Layout of a tile's keys ([`pack_pairs`]): groups of 16 keys (tile-relative `16g ..`), in each
/// group per 8-column block `b` eight vectors of 16 floats, vector `j` holding block `b` of the
/// keys `PAIR[j]` (8 + 8 lanes). One query's dot products with a group are then 16 accumulators
/// (even blocks into `x[j]`, odd ones into `y[j]`: the AVX2 kernel's `A` and `B` of two keys side
/// by side), `v = x + y`, and three add levels on shuffled vectors that pair lanes exactly as
/// `hsum8` does, leaving the 16 sums in key order.
#[allow(clippy::needless_range_loop)]
pub mod avx512 {
    use core::arch::x86_64::*;

    use super::super::attn::TILE;
    use super::super::x86::vec::hsum;

    /// A tile's values for [`tile_rows`]: row `t` (tile-relative) at element `t * stride` from
    /// `ptr`, f32 or binary16 (`f16`), `len` elements in all.
    #[derive(Clone, Copy, Debug)]
    pub struct Vals {
        /// First row.
        pub ptr: *const u8,
        /// Elements between rows.
        pub stride: usize,
        /// binary16 elements (else f32).
        pub f16: bool,
        /// Elements from `ptr` that may be read.
        pub len: usize,
    }

    /// Keys of pair vector `j` of a group (chosen so the reduction ends in key order).
    const PAIR: [(usize, usize); 8] = [
        (0, 4),
        (8, 12),
        (1, 5),
        (9, 13),
        (2, 6),
        (10, 14),
        (3, 7),
        (11, 15),
    ];

    /// `x86::vec::exp8` on 16 lanes (the same operations lane by lane, so the same bits).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    pub unsafe fn exp16(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(-104.0)),
            _mm512_set1_ps(89.0),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.398_199_9e-3));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.333_452e-3));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166_579_6e-2));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666_666_5e-1));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5));
        let r2 = _mm512_mul_ps(r, r);
        let e = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
        let ni = _mm512_cvtps_epi32(n);
        let n1 = _mm512_srai_epi32::<1>(ni);
        let n2 = _mm512_sub_epi32(ni, n1);
        let bias = _mm512_set1_epi32(127);
        let s1 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(n1, bias)));
        let s2 = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(n2, bias)));
        _mm512_mul_ps(_mm512_mul_ps(e, s1), s2)
    }

    /// Floats of one packed group of 16 keys.
    #[inline]
    fn group_floats(hd: usize) -> usize {
        16 * hd
    }

    /// Packs the keys `0..n` (`n <= TILE`) of a tile into `out` (`TILE * hd` floats) in the pair
    /// layout, key `t`'s blocks `b, b + 1` given by `load16(t, b)` (block `b` alone, in the low
    /// half, by `load8(t, b)`); keys `n ..` of the last group read as zeros.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    unsafe fn pack_with(
        n: usize,
        hd: usize,
        out: *mut f32,
        load16: impl Fn(usize, usize) -> __m512,
        load8: impl Fn(usize, usize) -> __m512,
    ) {
        let nb = hd / 8;
        let zero = _mm512_setzero_ps();
        for g in 0..n.div_ceil(16) {
            let o = out.add(g * group_floats(hd));
            let mut b = 0;
            while b + 2 <= nb {
                for (j, &(ka, kb)) in PAIR.iter().enumerate() {
                    let (ta, tb) = (16 * g + ka, 16 * g + kb);
                    let x = if ta < n { load16(ta, b) } else { zero };
                    let y = if tb < n { load16(tb, b) } else { zero };
                    _mm512_storeu_ps(o.add((b * 8 + j) * 16), _mm512_shuffle_f32x4::<0x44>(x, y));
                    let o1 = o.add(((b + 1) * 8 + j) * 16);
                    _mm512_storeu_ps(o1, _mm512_shuffle_f32x4::<0xEE>(x, y));
                }
                b += 2;
            }
            if b < nb {
                for (j, &(ka, kb)) in PAIR.iter().enumerate() {
                    let (ta, tb) = (16 * g + ka, 16 * g + kb);
                    let x = if ta < n { load8(ta, b) } else { zero };
                    let y = if tb < n { load8(tb, b) } else { zero };
                    _mm512_storeu_ps(o.add((b * 8 + j) * 16), _mm512_shuffle_f32x4::<0x44>(x, y));
                }
            }
        }
    }

    /// [`pack_with`] from f32 keys: key `t` at `src + t * ks`. `hd % 8 == 0`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    pub unsafe fn pack_pairs(src: *const f32, ks: usize, n: usize, hd: usize, out: *mut f32) {
        pack_with(
            n,
            hd,
            out,
            |t, b| _mm512_loadu_ps(src.add(t * ks + 8 * b)),
            |t, b| _mm512_castps256_ps512(_mm256_loadu_ps(src.add(t * ks + 8 * b))),
        )
    }

    /// [`pack_with`] from binary16 keys: key `t` at `src + t * ks` (in values). `hd % 8 == 0`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    pub unsafe fn pack_pairs_f16(src: *const u16, ks: usize, n: usize, hd: usize, out: *mut f32) {
        pack_with(
            n,
            hd,
            out,
            |t, b| _mm512_cvtph_ps(_mm256_loadu_si256(src.add(t * ks + 8 * b) as *const __m256i)),
            |t, b| {
                let h = _mm_loadu_si128(src.add(t * ks + 8 * b) as *const __m128i);
                _mm512_castps256_ps512(_mm256_cvtph_ps(h))
            },
        )
    }

    /// 8 floats at `p`, twice (AVX-512 F: `vbroadcastf64x4`).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    unsafe fn bcast8(p: *const f32) -> __m512 {
        _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))))
    }

    /// `n` rows of `hd` binary16 values (row `t` at `src + t * ss`) to f32 rows of `hd` at `out`.
    /// `hd % 8 == 0`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    pub unsafe fn f16_rows(src: *const u16, ss: usize, n: usize, hd: usize, out: *mut f32) {
        for t in 0..n {
            let (s, o) = (src.add(t * ss), out.add(t * hd));
            let mut c = 0;
            while c + 16 <= hd {
                let h = _mm256_loadu_si256(s.add(c) as *const __m256i);
                _mm512_storeu_ps(o.add(c), _mm512_cvtph_ps(h));
                c += 16;
            }
            if c < hd {
                let h = _mm_loadu_si128(s.add(c) as *const __m128i);
                _mm256_storeu_ps(o.add(c), _mm256_cvtph_ps(h));
            }
        }
    }

    /// Asks for the cache lines of `b` in L1 (`prefetcht0`).
    #[inline]
    pub fn prefetch_l1(b: &[u8]) {
        let mut i = 0;
        while i < b.len() {
            // SAFETY: a hint on an address inside `b`; SSE is part of x86_64.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(b.as_ptr().add(i) as *const i8) };
            i += 64;
        }
    }

    /// Asks for the cache lines of `b` in L2 (`prefetcht1`).
    #[inline]
    pub fn prefetch_l2(b: &[u8]) {
        let mut i = 0;
        while i < b.len() {
            // SAFETY: a hint on an address inside `b`; SSE is part of x86_64.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(b.as_ptr().add(i) as *const i8) };
            i += 64;
        }
    }

    /// Scores (times `scale`) of one query with the 16 keys of one packed group, in key order.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    unsafe fn scores16(q: *const f32, kp: *const f32, nb: usize, scale: __m512) -> __m512 {
        let mut x = [_mm512_setzero_ps(); 8];
        let mut y = [_mm512_setzero_ps(); 8];
        let mut b = 0;
        while b + 2 <= nb {
            let qa = bcast8(q.add(8 * b));
            let qb = bcast8(q.add(8 * b + 8));
            let (ka, kb) = (kp.add(b * 128), kp.add(b * 128 + 128));
            for j in 0..8 {
                x[j] = _mm512_fmadd_ps(qa, _mm512_loadu_ps(ka.add(16 * j)), x[j]);
                y[j] = _mm512_fmadd_ps(qb, _mm512_loadu_ps(kb.add(16 * j)), y[j]);
            }
            b += 2;
        }
        if b < nb {
            let qa = bcast8(q.add(8 * b));
            let ka = kp.add(b * 128);
            for j in 0..8 {
                x[j] = _mm512_fmadd_ps(qa, _mm512_loadu_ps(ka.add(16 * j)), x[j]);
            }
        }
        // v = A + B of each key (lanes 0..8 and 8..16 of v[j]: keys PAIR[j])
        let v: [__m512; 8] = core::array::from_fn(|j| _mm512_add_ps(x[j], y[j]));
        // w_i = v_i + v_{i+4}: 4-lane chunks [a_j, b_j, a_k, b_k]
        let w = |a: __m512, c: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x88>(a, c),
                _mm512_shuffle_f32x4::<0xDD>(a, c),
            )
        };
        let (w0, w1, w2, w3) = (w(v[0], v[1]), w(v[2], v[3]), w(v[4], v[5]), w(v[6], v[7]));
        // x_i = w_i + w_{i+2}
        let xs = |a: __m512, c: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_ps::<0x44>(a, c),
                _mm512_shuffle_ps::<0xEE>(a, c),
            )
        };
        let (x0, x1) = (xs(w0, w1), xs(w2, w3));
        // s = x_0 + x_1
        let s = _mm512_add_ps(
            _mm512_shuffle_ps::<0x88>(x0, x1),
            _mm512_shuffle_ps::<0xDD>(x0, x1),
        );
        _mm512_mul_ps(s, scale)
    }

    /// Lanes of keys `lo..hi` in the group of 16 starting at key `g0`.
    #[inline]
    fn live_range(lo: usize, hi: usize, g0: usize) -> __mmask16 {
        let a = lo.clamp(g0, g0 + 16) - g0;
        let b = hi.clamp(g0, g0 + 16) - g0;
        live(b) & !live(a)
    }

    /// Lanes `0 .. min(k, 16)`.
    #[inline]
    fn live(k: usize) -> __mmask16 {
        if k >= 16 {
            0xFFFF
        } else {
            ((1u32 << k) - 1) as __mmask16
        }
    }

    /// One tile step of `r` (1..=4) query heads of one token row (see `attn`'s module
    /// documentation): queries at `q + h * hd`, states `m[h]`, `l[h]`, `acc + h * hd`; the keys
    /// `kl .. kl + n` of the tile (tile-relative), packed at `kp` ([`pack_pairs`]), values in
    /// `v`. `sc`: `r * 2 * TILE` floats. `hd % 8 == 0`, `kl + n <= TILE`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    pub unsafe fn tile_rows(
        q: *const f32,
        r: usize,
        kp: *const f32,
        v: Vals,
        kl: usize,
        n: usize,
        hd: usize,
        scale: f32,
        first: bool,
        m: &mut [f32],
        l: &mut [f32],
        acc: *mut f32,
        sc: *mut f32,
    ) {
        debug_assert!((1..=4).contains(&r) && n >= 1 && kl + n <= TILE && hd.is_multiple_of(8));
        debug_assert!(m.len() >= r && l.len() >= r);
        let (m, l) = (m.as_mut_ptr(), l.as_mut_ptr());
        match r {
            1 => tile_heads::<1>(q, kp, v, kl, n, hd, scale, first, m, l, acc, sc),
            2 => tile_heads::<2>(q, kp, v, kl, n, hd, scale, first, m, l, acc, sc),
            3 => tile_heads::<3>(q, kp, v, kl, n, hd, scale, first, m, l, acc, sc),
            _ => tile_heads::<4>(q, kp, v, kl, n, hd, scale, first, m, l, acc, sc),
        }
    }

    /// [`tile_rows`] for `R` heads, each step for all heads together (independent work side by
    /// side for the out-of-order core).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    unsafe fn tile_heads<const R: usize>(
        q: *const f32,
        kp: *const f32,
        v: Vals,
        kl: usize,
        n: usize,
        hd: usize,
        scale: f32,
        first: bool,
        m: *mut f32,
        l: *mut f32,
        acc: *mut f32,
        sc: *mut f32,
    ) {
        let nb = hd / 8;
        let scv = _mm512_set1_ps(scale);
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        // tile-relative keys kl..kl+n, per group of 16
        let (k0, k1) = (live_range(kl, kl + n, 0), live_range(kl, kl + n, 16));
        let zero = _mm512_setzero_ps();
        let mut s = [[zero; 2]; R];
        for h in 0..R {
            if k0 != 0 {
                s[h][0] = scores16(q.add(h * hd), kp, nb, scv);
            }
            if k1 != 0 {
                s[h][1] = scores16(q.add(h * hd), kp.add(group_floats(hd)), nb, scv);
            }
        }
        let mut m_old = [0f32; 4];
        let mut m_new = [0f32; 4];
        for h in 0..R {
            let mx = _mm512_max_ps(
                _mm512_mask_mov_ps(ninf, k0, s[h][0]),
                _mm512_mask_mov_ps(ninf, k1, s[h][1]),
            );
            let mt = _mm512_reduce_max_ps(mx);
            m_old[h] = *m.add(h);
            m_new[h] = if first { mt } else { m_old[h].max(mt) };
        }
        // alpha = exp(m - m') of every head at once
        let mut alpha = [0f32; 4];
        if !first {
            let d = _mm_sub_ps(_mm_loadu_ps(m_old.as_ptr()), _mm_loadu_ps(m_new.as_ptr()));
            let a = exp16(_mm512_castps128_ps512(d));
            _mm_storeu_ps(alpha.as_mut_ptr(), _mm512_castps512_ps128(a));
        }
        let mut sums = [_mm256_setzero_ps(); R];
        for h in 0..R {
            let mv = _mm512_set1_ps(m_new[h]);
            let e0 = _mm512_maskz_mov_ps(k0, exp16(_mm512_sub_ps(s[h][0], mv)));
            let e1 = _mm512_maskz_mov_ps(k1, exp16(_mm512_sub_ps(s[h][1], mv)));
            let sh = sc.add(h * 2 * TILE);
            _mm512_storeu_ps(sh, e0);
            _mm512_storeu_ps(sh.add(16), e1);
            // the sum in 8 lanes by (t - kl) mod 8, in t order; zeros before kl and after
            // kl + n leave it unchanged (+0 added to a sum of non-negative terms)
            if kl.is_multiple_of(8) {
                let mut sum = _mm256_add_ps(_mm256_setzero_ps(), lo8(e0));
                sum = _mm256_add_ps(sum, hi8(e0));
                sum = _mm256_add_ps(sum, lo8(e1));
                sums[h] = _mm256_add_ps(sum, hi8(e1));
            }
        }
        for h in 0..R {
            if !kl.is_multiple_of(8) {
                let p = sc.add(h * 2 * TILE + kl);
                let mut sum = _mm256_setzero_ps();
                let mut t = 0;
                while t < n {
                    sum = _mm256_add_ps(sum, _mm256_loadu_ps(p.add(t)));
                    t += 8;
                }
                sums[h] = sum;
            }
            let lsum = hsum(sums[h]);
            *l.add(h) = if first {
                lsum
            } else {
                *l.add(h) * alpha[h] + lsum
            };
            *m.add(h) = m_new[h];
        }
        let sp = sc.add(kl) as *const f32;
        let vs = v.stride;
        let mut c0 = 0;
        while c0 < hd {
            let w = (hd - c0).min(64);
            let a = acc.add(c0);
            macro_rules! go {
                ($f:literal, $vv:expr) => {
                    match w.div_ceil(16) {
                        4 => values::<R, 4, $f>(a, hd, $vv, vs, sp, n, w, first, &alpha),
                        3 => values::<R, 3, $f>(a, hd, $vv, vs, sp, n, w, first, &alpha),
                        2 => values::<R, 2, $f>(a, hd, $vv, vs, sp, n, w, first, &alpha),
                        _ => values::<R, 1, $f>(a, hd, $vv, vs, sp, n, w, first, &alpha),
                    }
                };
            }
            if v.f16 {
                go!(true, v.ptr.add(2 * (kl * vs + c0)));
            } else {
                go!(false, v.ptr.add(4 * (kl * vs + c0)));
            }
            c0 += 64;
        }
    }

    /// Lanes 0..8 of `e`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    unsafe fn lo8(e: __m512) -> __m256 {
        _mm512_castps512_ps256(e)
    }

    /// Lanes 8..16 of `e`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    unsafe fn hi8(e: __m512) -> __m256 {
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e)))
    }

    /// Columns `0..w` (`16 * (NV - 1) < w <= 16 * NV`, a multiple of 8) of `R` accumulators
    /// (`acc + h * ah`): `acc * alpha[h]` (0 on a first tile), then `fma(p_h[t], V[t], acc)` for
    /// `t < n`, with `p_h[t]` at `p + h * 2 * TILE + t` and `V[t]` at element `t * vs` from `v`
    /// (binary16 if `F16`, else f32).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    unsafe fn values<const R: usize, const NV: usize, const F16: bool>(
        acc: *mut f32,
        ah: usize,
        v: *const u8,
        vs: usize,
        p: *const f32,
        n: usize,
        w: usize,
        first: bool,
        alpha: &[f32; 4],
    ) {
        // the last vector may be half (hd % 16 == 8)
        let kl = live(w - 16 * (NV - 1));
        let full = kl == 0xFFFF;
        let mut a = [[_mm512_setzero_ps(); NV]; R];
        if !first {
            for h in 0..R {
                let av = _mm512_set1_ps(alpha[h]);
                for u in 0..NV {
                    let x = if u + 1 < NV {
                        _mm512_loadu_ps(acc.add(h * ah + 16 * u))
                    } else {
                        _mm512_maskz_loadu_ps(kl, acc.add(h * ah + 16 * u))
                    };
                    a[h][u] = _mm512_mul_ps(x, av);
                }
            }
        }
        for t in 0..n {
            let vv: [__m512; NV] = core::array::from_fn(|u| {
                if F16 {
                    let row = (v as *const u16).add(t * vs + 16 * u);
                    if u + 1 < NV || full {
                        _mm512_cvtph_ps(_mm256_loadu_si256(row as *const __m256i))
                    } else {
                        let h = _mm_loadu_si128(row as *const __m128i);
                        _mm512_zextps256_ps512(_mm256_cvtph_ps(h))
                    }
                } else {
                    let row = (v as *const f32).add(t * vs + 16 * u);
                    if u + 1 < NV {
                        _mm512_loadu_ps(row)
                    } else {
                        _mm512_maskz_loadu_ps(kl, row)
                    }
                }
            });
            for h in 0..R {
                let pb = _mm512_set1_ps(*p.add(h * 2 * TILE + t));
                for u in 0..NV {
                    a[h][u] = _mm512_fmadd_ps(pb, vv[u], a[h][u]);
                }
            }
        }
        for h in 0..R {
            for u in 0..NV {
                if u + 1 < NV {
                    _mm512_storeu_ps(acc.add(h * ah + 16 * u), a[h][u]);
                } else {
                    _mm512_mask_storeu_ps(acc.add(h * ah + 16 * u), kl, a[h][u]);
                }
            }
        }
    }
}
