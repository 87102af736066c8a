//! x86-64 matmuls on packed weights (see `packed.rs` for the layout and the arithmetic), one
//! macro body instantiated twice:
//! * `avx2`: AVX2 + FMA + F16C, integer dots with `vpmaddubsw` + `vpmaddwd`;
//! * `vnni`: the same plus AVX-512 VNNI `vpdpbusd` on 256-bit vectors with the 4 activation
//!   bytes broadcast straight from memory (`{1to8}`), written as inline assembly.
//!
//! One lane of a vector is one weight row, so a group of 8 rows is 8 lanes of an accumulator and
//! the outputs are stored without horizontal sums. Weight groups are walked in panels of
//! `PANEL` groups; within a panel, activation rows go through in tiles of up to `NA` rows, each
//! tile reusing every unpacked weight vector `NA` times.

#![allow(clippy::too_many_arguments)]

use std::ops::Range;

use super::packed::{block_scale_bytes, block_stride, group_bytes, GROUP, MAX_BLOCKS};
use crate::quant::{WeightType, QK};

const T_Q4_0: u8 = 0;
const T_Q4_1: u8 = 1;
const T_Q8_0: u8 = 2;

/// Groups per panel (64 rows).
const PANEL: usize = 8;

/// Groups per panel on AVX-512 VNNI (256 rows): the inner dimension is not chunked there, and a
/// tile's per-block activation terms (`act_base`) are made once per panel, so wider panels
/// reuse each activation tile over more rows (Q4_0 4096 x 4096 x 128: +12 %).
const PANEL_VNNI: usize = 32;

/// Software prefetch distance (bytes ahead in the quant stream; 0 = off).
/// Measured (decode, one thread, tg128): 16 KiB beats 4 and 8 KiB (SmolLM2 Q4_0 ~470 -> ~550
/// -> ~600 t/s) and 32 KiB.
const PREFETCH: usize = 16384;

/// Most activation rows per tile.
const NA_MAX: usize = 8;

/// Fewest activation rows for the 512-bit tiles: with fewer (decoding), the 256-bit tiles'
/// independent dot-product chains and prefetching keep the weight stream faster.
pub(crate) const ZMM_MIN_ROWS: usize = 4;

/// Blocks per chunk of the inner dimension when several tiles share a panel.
const KC: usize = 32;

/// Arguments of a tile: group, nb, b0, b1, activations, k, activation scales, activation sums,
/// per-block activation bias terms, output, output stride, valid rows of the group.
type TileArgs = (
    *const u8,
    usize,
    usize,
    usize,
    *const i8,
    usize,
    *const f32,
    *const f32,
    *const i32,
    *mut f32,
    usize,
    usize,
);

/// `out[b] = -bias * Σ qs[32b .. 32b+32]` for `b < nb`.
#[inline]
unsafe fn act_base(qs: *const i8, nb: usize, bias: i32, out: *mut i32) {
    for b in 0..nb {
        let a = std::slice::from_raw_parts(qs.add(b * QK), QK);
        let sum: i32 = a.iter().map(|&v| v as i32).sum();
        *out.add(b) = -bias * sum;
    }
}

macro_rules! packed_kernels {
    ($modname:ident, $feat:literal, $vnni:expr) => {
        pub mod $modname {
            use super::*;
            use core::arch::x86_64::*;

            const VNNI: bool = $vnni;

            /// `acc + Σ_e w[4l+e] * a[e]` per 32-bit lane `l`, with `a` the 4 signed bytes at `p`
            /// and `w` unsigned bytes (for the AVX2 path `w` ≤ 15 or the caller uses the signed
            /// variant below).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn dp(acc: __m256i, w: __m256i, p: *const i8) -> __m256i {
                if VNNI {
                    super::vnni_bcast(acc, w, p)
                } else {
                    let a = _mm256_set1_epi32((p as *const i32).read_unaligned());
                    let m = _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), _mm256_set1_epi16(1));
                    _mm256_add_epi32(acc, m)
                }
            }

            /// AVX2 signed x signed: `wa = |w|`, `w` signed bytes.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn dp_signed(acc: __m256i, w: __m256i, wa: __m256i, p: *const i8) -> __m256i {
                let a = _mm256_set1_epi32((p as *const i32).read_unaligned());
                let m = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(wa, _mm256_sign_epi8(a, w)),
                    _mm256_set1_epi16(1),
                );
                _mm256_add_epi32(acc, m)
            }

            /// One group (8 rows) x NA activation rows, blocks `b0..b1`; the accumulators start
            /// from the outputs written for the blocks before `b0` (exactly: f32 stored and
            /// reloaded), so splitting the blocks keeps every output's operation order.
            #[target_feature(enable = $feat)]
            unsafe fn tile<const T: u8, const NA: usize>(a: TileArgs) {
                let (grp, nb, b0, b1, qs, k, d, s, base, out, ldo, nvalid) = a;
                let mut accf = [_mm256_setzero_ps(); NA];
                if b0 > 0 {
                    for (i, a) in accf.iter_mut().enumerate() {
                        let o = out.add(i * ldo);
                        if nvalid == GROUP {
                            *a = _mm256_loadu_ps(o);
                        } else {
                            let mut tmp = [0f32; GROUP];
                            for (l, v) in tmp.iter_mut().enumerate().take(nvalid) {
                                *v = *o.add(l);
                            }
                            *a = _mm256_loadu_ps(tmp.as_ptr());
                        }
                    }
                }
                let m0f = _mm256_set1_epi8(0x0F);
                // Block stride and scale bytes per block (see `packed.rs`): Q4_0 16 + 128,
                // Q4_1 32 + 128, Q8_0 16 + 256.
                let (bs, sbb): (usize, usize) = match T {
                    T_Q4_0 => (144, 16),
                    T_Q4_1 => (160, 32),
                    _ => (272, 16),
                };
                for b in b0..b1 {
                    let blk = grp.add(b * bs);
                    let dw = _mm256_cvtph_ps(_mm_load_si128(blk as *const __m128i));
                    let mw = if T == T_Q4_1 {
                        _mm256_cvtph_ps(_mm_load_si128(blk.add(16) as *const __m128i))
                    } else {
                        _mm256_setzero_ps()
                    };
                    let q = blk.add(sbb);
                    if PREFETCH > 0 {
                        for l in 0..bs.div_ceil(64) {
                            _mm_prefetch::<_MM_HINT_T0>(blk.add(PREFETCH + 64 * l) as *const i8);
                        }
                    }
                    // 8 weight vectors; vector t pairs with activation bytes `off[t]`.
                    let mut wv = [_mm256_setzero_si256(); 8];
                    let mut wa = [_mm256_setzero_si256(); 8];
                    if T == T_Q8_0 {
                        for t in 0..8 {
                            let x = _mm256_loadu_si256(q.add(32 * t) as *const __m256i);
                            if VNNI {
                                wv[t] = x;
                            } else {
                                let sx = _mm256_xor_si256(x, _mm256_set1_epi8(-128));
                                wv[t] = sx;
                                wa[t] = _mm256_abs_epi8(sx);
                            }
                        }
                    } else {
                        for t in 0..4 {
                            let x = _mm256_loadu_si256(q.add(32 * t) as *const __m256i);
                            wv[t] = _mm256_and_si256(x, m0f);
                            wv[4 + t] = _mm256_and_si256(_mm256_srli_epi16(x, 4), m0f);
                        }
                    }
                    let a0 = qs.add(b * QK);
                    // accf[i] += f32(acc) * (dw * d_a) (+ Q4_1's min times the block sum)
                    let combine = |accf: &mut __m256, i: usize, acc: __m256i| {
                        let sc = _mm256_mul_ps(dw, _mm256_set1_ps(*d.add(i * nb + b)));
                        *accf = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), sc, *accf);
                        if T == T_Q4_1 {
                            *accf = _mm256_fmadd_ps(mw, _mm256_set1_ps(*s.add(i * nb + b)), *accf);
                        }
                    };
                    if VNNI {
                        // the rows interleaved, two chains each: independent dot products in
                        // flight (integer sums: the order does not matter)
                        let mut lo = [_mm256_setzero_si256(); NA];
                        let mut hi = [_mm256_setzero_si256(); NA];
                        for i in 0..NA {
                            lo[i] = _mm256_set1_epi32(*base.add(i * nb + b));
                        }
                        for t in 0..4 {
                            for i in 0..NA {
                                let a = a0.add(i * k + 4 * t);
                                lo[i] = dp(lo[i], wv[t], a);
                                hi[i] = dp(hi[i], wv[4 + t], a.add(16));
                            }
                        }
                        for i in 0..NA {
                            combine(&mut accf[i], i, _mm256_add_epi32(lo[i], hi[i]));
                        }
                    } else {
                        // AVX2: one row at a time, four chains
                        for i in 0..NA {
                            let a = a0.add(i * k);
                            let mut ch = [_mm256_setzero_si256(); 4];
                            ch[0] = _mm256_set1_epi32(*base.add(i * nb + b));
                            for t in 0..8 {
                                // Q8_0: vector t holds values 4t..4t+4; Q4: t < 4 low nibbles
                                // (values 4t..), t >= 4 high nibbles (values 16 + 4(t-4)..).
                                let c = &mut ch[t % 4];
                                if T == T_Q8_0 {
                                    *c = dp_signed(*c, wv[t], wa[t], a.add(4 * t));
                                } else {
                                    *c = dp(*c, wv[t], a.add(4 * t));
                                }
                            }
                            let acc = _mm256_add_epi32(
                                _mm256_add_epi32(ch[0], ch[1]),
                                _mm256_add_epi32(ch[2], ch[3]),
                            );
                            combine(&mut accf[i], i, acc);
                        }
                    }
                }
                for i in 0..NA {
                    let o = out.add(i * ldo);
                    if nvalid == GROUP {
                        _mm256_storeu_ps(o, accf[i]);
                    } else {
                        let mut tmp = [0f32; GROUP];
                        _mm256_storeu_ps(tmp.as_mut_ptr(), accf[i]);
                        for (l, &v) in tmp.iter().enumerate().take(nvalid) {
                            *o.add(l) = v;
                        }
                    }
                }
            }

            #[target_feature(enable = $feat)]
            unsafe fn drive<const T: u8>(
                w: *const u8,
                k: usize,
                qs: *const i8,
                d: *const f32,
                s: *const f32,
                n: usize,
                rows: Range<usize>,
                out: *mut f32,
                ldo: usize,
            ) {
                let ty = match T {
                    T_Q4_0 => WeightType::Q4_0,
                    T_Q4_1 => WeightType::Q4_1,
                    _ => WeightType::Q8_0,
                };
                let nb = k / QK;
                let gb = group_bytes(ty, nb);
                debug_assert_eq!(
                    (block_stride(ty), block_scale_bytes(ty)),
                    match T {
                        T_Q4_0 => (144, 16),
                        T_Q4_1 => (160, 32),
                        _ => (272, 16),
                    }
                );
                let bias = match T {
                    T_Q4_0 => 8,
                    T_Q8_0 if VNNI => 128,
                    _ => 0,
                };
                let mut base = std::mem::MaybeUninit::<[i32; NA_MAX * MAX_BLOCKS]>::uninit();
                let bp = base.as_mut_ptr() as *mut i32;
                let (g0, g1) = (rows.start / GROUP, rows.end.div_ceil(GROUP));
                let one_tile = n <= NA_MAX;
                if one_tile {
                    for i in 0..n {
                        act_base(qs.add(i * k), nb, bias, bp.add(i * nb));
                    }
                }
                // Several tiles: the blocks go in chunks of `KC`, so that a panel's chunk of
                // weights and a tile's chunk of activations stay in L1 while the tiles reuse them.
                let kc = if one_tile || VNNI { nb } else { KC };
                let mut p0 = g0;
                while p0 < g1 {
                    let p1 = (p0 + if VNNI { PANEL_VNNI } else { PANEL }).min(g1);
                    let mut b0 = 0;
                    while b0 < nb {
                        let b1 = (b0 + kc).min(nb);
                        let mut i = 0;
                        while i < n {
                            let na = (n - i).min(NA_MAX);
                            if !one_tile {
                                for ii in 0..na {
                                    act_base(
                                        qs.add((i + ii) * k + b0 * QK),
                                        b1 - b0,
                                        bias,
                                        bp.add(ii * nb + b0),
                                    );
                                }
                            }
                            let (qi, di, si) = (qs.add(i * k), d.add(i * nb), s.add(i * nb));
                            let mut g = p0;
                            while g < p1 {
                                let r0 = g * GROUP;
                                if VNNI
                                    && na >= ZMM_MIN_ROWS
                                    && g + 1 < p1
                                    && rows.end >= r0 + 2 * GROUP
                                {
                                    // two full groups on 512-bit vectors
                                    use crate::kernels::x86_packed_zmm::tile16;
                                    let o = out.add(i * ldo + r0);
                                    let (w0, w1) = (w.add(g * gb), w.add((g + 1) * gb));
                                    let a = (
                                        w0,
                                        w1,
                                        nb,
                                        b0,
                                        b1,
                                        qi,
                                        k,
                                        di,
                                        si,
                                        bp as *const i32,
                                        o,
                                        ldo,
                                    );
                                    match na {
                                        4 => tile16::<T, 4>(a),
                                        5 => tile16::<T, 5>(a),
                                        6 => tile16::<T, 6>(a),
                                        7 => tile16::<T, 7>(a),
                                        _ => tile16::<T, 8>(a),
                                    }
                                    g += 2;
                                    continue;
                                }
                                let grp = w.add(g * gb);
                                let nvalid = rows.end.min(r0 + GROUP) - r0;
                                let o = out.add(i * ldo + r0);
                                let a: TileArgs =
                                    (grp, nb, b0, b1, qi, k, di, si, bp, o, ldo, nvalid);
                                match na {
                                    1 => tile::<T, 1>(a),
                                    2 => tile::<T, 2>(a),
                                    3 => tile::<T, 3>(a),
                                    4 => tile::<T, 4>(a),
                                    5 => tile::<T, 5>(a),
                                    6 => tile::<T, 6>(a),
                                    7 => tile::<T, 7>(a),
                                    _ => tile::<T, 8>(a),
                                }
                                g += 1;
                            }
                            i += na;
                        }
                        b0 = b1;
                    }
                    p0 = p1;
                }
            }

            /// Packed weights x Q8 activations.
            ///
            /// # Safety
            /// The CPU must support this module's features; arguments as checked by
            /// `packed::matmul_packed_at` (`s` non-empty: the caller passes `d` when unused).
            #[target_feature(enable = $feat)]
            pub unsafe fn matmul(
                ty: WeightType,
                w: &[u8],
                k: usize,
                qs: &[i8],
                d: &[f32],
                s: &[f32],
                n: usize,
                rows: Range<usize>,
                out: *mut f32,
                ldo: usize,
            ) {
                let a = (w.as_ptr(), k, qs.as_ptr(), d.as_ptr(), s.as_ptr());
                match ty {
                    WeightType::Q4_0 => drive::<T_Q4_0>(a.0, a.1, a.2, a.3, a.4, n, rows, out, ldo),
                    WeightType::Q4_1 => drive::<T_Q4_1>(a.0, a.1, a.2, a.3, a.4, n, rows, out, ldo),
                    WeightType::Q8_0 => drive::<T_Q8_0>(a.0, a.1, a.2, a.3, a.4, n, rows, out, ldo),
                    _ => unreachable!("not a packable type"),
                }
            }
        }
    };
}

/// `vpdpbusd acc, w, dword [p]{1to8}` (AVX-512 VNNI + VL, EVEX). Inline assembly keeps the
/// crate's MSRV; only called after `dispatch::vnni()` said the CPU has it.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
pub(crate) unsafe fn vnni_bcast(
    acc: core::arch::x86_64::__m256i,
    w: core::arch::x86_64::__m256i,
    p: *const i8,
) -> core::arch::x86_64::__m256i {
    let mut acc = acc;
    core::arch::asm!(
        "vpdpbusd {acc:y}, {w:y}, dword ptr [{p}]{{1to8}}",
        acc = inout(zmm_reg) acc,
        w = in(zmm_reg) w,
        p = in(reg) p,
        options(pure, readonly, nostack, preserves_flags)
    );
    acc
}

/// Placeholder for the AVX2 instantiation (never called there: `VNNI` is false).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn vnni_bcast_unavailable(
    acc: core::arch::x86_64::__m256i,
    _w: core::arch::x86_64::__m256i,
    _p: *const i8,
) -> core::arch::x86_64::__m256i {
    acc
}

mod avx2_impl {
    pub(super) use super::vnni_bcast_unavailable as vnni_bcast;
    pub(super) use super::{
        act_base, block_scale_bytes, block_stride, group_bytes, Range, TileArgs, WeightType, GROUP,
        KC, MAX_BLOCKS, NA_MAX, PANEL, PANEL_VNNI, PREFETCH, QK, T_Q4_0, T_Q4_1, T_Q8_0,
        ZMM_MIN_ROWS,
    };
    packed_kernels!(k, "avx2,fma,f16c", false);
}
mod vnni_impl {
    pub(super) use super::vnni_bcast;
    pub(super) use super::{
        act_base, block_scale_bytes, block_stride, group_bytes, Range, TileArgs, WeightType, GROUP,
        KC, MAX_BLOCKS, NA_MAX, PANEL, PANEL_VNNI, PREFETCH, QK, T_Q4_0, T_Q4_1, T_Q8_0,
        ZMM_MIN_ROWS,
    };
    packed_kernels!(
        k,
        "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
        true
    );
}

pub use avx2_impl::k as avx2;
pub use vnni_impl::k as vnni;

/// AVX2 activation quantization (same results as `scalar::quantize_acts`, bit for bit,
/// non-finite inputs included).
///
/// # Safety
/// Requires AVX2 + FMA + F16C; `x.len()` a multiple of 32, `qs`, `d`, `s` long enough (checked
/// by `kernels::quantize_acts_at`).
#[allow(clippy::missing_safety_doc)]
pub mod quant {
    use super::QK;
    use crate::kernels::scalar::round_f16;
    use core::arch::x86_64::*;

    /// See the module documentation.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn quantize_acts(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
        let nb = x.len() / QK;
        let absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let lim = _mm256_set1_ps(127.0);
        for b in 0..nb {
            let p = x.as_ptr().add(b * QK);
            let v = [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ];
            // max |x|, ignoring NaN like f32::max (MAXPS returns the second operand on NaN)
            let mut m = _mm256_setzero_ps();
            for vv in v {
                m = _mm256_max_ps(_mm256_and_ps(vv, absm), m);
            }
            let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let m1 = _mm_max_ss(m2, _mm_movehdup_ps(m2));
            let amax = _mm_cvtss_f32(m1);
            let dd = amax / 127.0;
            let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
            let idv = _mm256_set1_ps(id);
            let mut q = [_mm256_setzero_si256(); 4];
            let mut sum = _mm256_setzero_si256();
            for (qq, vv) in q.iter_mut().zip(v) {
                let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm256_mul_ps(vv, idv),
                );
                // NaN -> 0, then clamp to ±127 as the scalar twin (only degenerate blocks:
                // infinite inputs, or a subnormal amax whose 127/amax overflows).
                let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
                let r = _mm256_max_ps(
                    _mm256_min_ps(r, lim),
                    _mm256_sub_ps(_mm256_setzero_ps(), lim),
                );
                *qq = _mm256_cvtps_epi32(r);
                sum = _mm256_add_epi32(sum, *qq);
            }
            let p01 = _mm256_packs_epi32(q[0], q[1]);
            let p23 = _mm256_packs_epi32(q[2], q[3]);
            let pk = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), perm);
            _mm256_storeu_si256(qs.as_mut_ptr().add(b * QK) as *mut __m256i, pk);
            let s4 = _mm_add_epi32(
                _mm256_castsi256_si128(sum),
                _mm256_extracti128_si256(sum, 1),
            );
            let s2 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0b01_00_11_10));
            let s1 = _mm_add_epi32(s2, _mm_shuffle_epi32(s2, 0b10_11_00_01));
            let total = _mm_cvtsi128_si32(s1);
            d[b] = round_f16(dd);
            s[b] = round_f16(dd * total as f32);
        }
    }
}

/// AVX2 + FMA attention pieces for `kernels::attn` (`hd % 8 == 0`).
///
/// # Safety
/// Requires AVX2 + FMA; lengths as checked by `attn::attend_at`.
#[allow(clippy::missing_safety_doc)]
pub mod attn {
    use core::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// `scores[t] = (q · K[t]) * scale` for `t < len`, four positions at a time.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scores(
        q: &[f32],
        kv: &[f32],
        len: usize,
        hd: usize,
        scale: f32,
        scores: &mut [f32],
    ) {
        let (qp, kp) = (q.as_ptr(), kv.as_ptr());
        let st = 2 * hd;
        let mut t = 0;
        while t + 4 <= len {
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut c = 0;
            while c < hd {
                let qv = _mm256_loadu_ps(qp.add(c));
                for (u, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kp.add((t + u) * st + c)), *a);
                }
                c += 8;
            }
            for (u, a) in acc.iter().enumerate() {
                scores[t + u] = hsum(*a) * scale;
            }
            t += 4;
        }
        while t < len {
            let mut a = _mm256_setzero_ps();
            let mut c = 0;
            while c < hd {
                a = _mm256_fmadd_ps(
                    _mm256_loadu_ps(qp.add(c)),
                    _mm256_loadu_ps(kp.add(t * st + c)),
                    a,
                );
                c += 8;
            }
            scores[t] = hsum(a) * scale;
            t += 1;
        }
    }

    /// `out = Σ_t p[t] V[t]`, `out` held in registers 64 values at a time.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn weighted_sum(p: &[f32], kv: &[f32], hd: usize, out: &mut [f32]) {
        let st = 2 * hd;
        let vp = kv.as_ptr().add(hd);
        let mut c0 = 0;
        while c0 < hd {
            let w = (hd - c0).min(64) / 8;
            let mut acc = [_mm256_setzero_ps(); 8];
            for (t, &pt) in p.iter().enumerate() {
                let pv = _mm256_set1_ps(pt);
                let row = vp.add(t * st + c0);
                for (u, a) in acc.iter_mut().enumerate().take(w) {
                    *a = _mm256_fmadd_ps(pv, _mm256_loadu_ps(row.add(8 * u)), *a);
                }
            }
            for (u, a) in acc.iter().enumerate().take(w) {
                _mm256_storeu_ps(out.as_mut_ptr().add(c0 + 8 * u), *a);
            }
            c0 += 64;
        }
    }
}
