//! x86-64 SIMD kernels. One macro body is instantiated twice:
//! * `avx2`: AVX2 + FMA + F16C; int8 dot products with `vpmaddubsw`/`vpmaddwd` (sign trick);
//! * `avx512`: the same on 256-bit vectors plus AVX-512 VNNI `vpdpbusd` (unsigned weights x
//!   signed activations, with the zero-point folded into the accumulator's initial value).
//!
//! Matmuls are register-tiled: 4 weight rows x up to 4 activation rows per tile, so every weight
//! block is loaded and unpacked once per 4 activation rows; weight rows are walked in panels of
//! 32 rows so a panel stays in L1 while all activation rows pass over it.

#![allow(clippy::too_many_arguments)]

use std::ops::Range;

use crate::quant::{WeightType, QK};

const T_Q4_0: u8 = 0;
const T_Q4_1: u8 = 1;
const T_Q8_0: u8 = 2;
const T_QORUS: u8 = 3;

const T_F32: u8 = 0;
const T_F16: u8 = 1;
const T_BF16: u8 = 2;

/// Weight rows walked together by the outer loop (fits L1 for k up to a few thousand).
const PANEL: usize = 32;

macro_rules! simd_kernels {
    ($modname:ident, $feat:literal, $vnni:expr) => {
        pub mod $modname {
            use super::*;
            use core::arch::x86_64::*;

            const VNNI: bool = $vnni;

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn f16s(p: *const u8) -> f32 {
                let h = (p as *const u16).read_unaligned();
                _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
            }

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn hsum(v: __m256) -> f32 {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_movehdup_ps(s));
                _mm_cvtss_f32(s)
            }

            /// 16 bytes of ggml-order nibbles -> 32 unsigned bytes (elements 0..31).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn nib_ggml(p: *const u8) -> __m256i {
                let v = _mm_loadu_si128(p as *const __m128i);
                let hi = _mm_srli_epi16(v, 4);
                _mm256_and_si256(_mm256_set_m128i(hi, v), _mm256_set1_epi8(0x0F))
            }

            /// 16 bytes of interleaved nibbles (`.qorus`) -> 32 unsigned bytes.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn nib_qorus(p: *const u8) -> __m256i {
                let v = _mm_loadu_si128(p as *const __m128i);
                let m = _mm_set1_epi8(0x0F);
                let lo = _mm_and_si128(v, m);
                let hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
                _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi))
            }

            /// One weight block prepared for the dot products of this ISA.
            #[derive(Clone, Copy)]
            struct Wb {
                /// VNNI: unsigned operand. AVX2: signed value (or unsigned for Q4_1).
                x: __m256i,
                /// AVX2: |x| (unused for Q4_1 and VNNI).
                xa: __m256i,
                d: f32,
                m: f32,
            }

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn load_block<const T: u8>(p: *const u8) -> Wb {
                let z = _mm256_setzero_si256();
                let (q, d, m) = match T {
                    T_Q4_0 => (nib_ggml(p.add(2)), f16s(p), 0.0),
                    T_Q4_1 => (nib_ggml(p.add(4)), f16s(p), f16s(p.add(2))),
                    T_Q8_0 => (_mm256_loadu_si256(p.add(2) as *const __m256i), f16s(p), 0.0),
                    _ => (
                        nib_qorus(p),
                        (p.add(16) as *const f32).read_unaligned(),
                        0.0,
                    ),
                };
                if VNNI {
                    let x = if T == T_Q8_0 {
                        _mm256_xor_si256(q, _mm256_set1_epi8(-128))
                    } else {
                        q
                    };
                    Wb { x, xa: z, d, m }
                } else {
                    match T {
                        T_Q4_1 => Wb { x: q, xa: z, d, m },
                        T_Q8_0 => Wb {
                            x: q,
                            xa: _mm256_abs_epi8(q),
                            d,
                            m,
                        },
                        _ => {
                            let x = _mm256_sub_epi8(q, _mm256_set1_epi8(8));
                            Wb {
                                x,
                                xa: _mm256_abs_epi8(x),
                                d,
                                m,
                            }
                        }
                    }
                }
            }

            /// Per activation block: the accumulator's initial value (VNNI zero-point fold).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn act_base<const T: u8>(a: __m256i) -> __m256i {
                let z = _mm256_setzero_si256();
                if !VNNI || T == T_Q4_1 {
                    return z;
                }
                let sa = _mm256_dpbusd_avx_epi32_compat(z, _mm256_set1_epi8(1), a);
                let sh = if T == T_Q8_0 {
                    _mm256_slli_epi32(sa, 7)
                } else {
                    _mm256_slli_epi32(sa, 3)
                };
                _mm256_sub_epi32(z, sh)
            }

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn _mm256_dpbusd_avx_epi32_compat(
                acc: __m256i,
                u: __m256i,
                s: __m256i,
            ) -> __m256i {
                #[allow(unused_unsafe)]
                if VNNI {
                    vnni_dp(acc, u, s)
                } else {
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
                    _mm256_add_epi32(acc, p)
                }
            }

            /// Integer dot of one prepared weight block with one activation block, as 8 lanes.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn dot<const T: u8>(w: &Wb, a: __m256i, base: __m256i) -> __m256i {
                if VNNI {
                    vnni_dp(base, w.x, a)
                } else if T == T_Q4_1 {
                    _mm256_madd_epi16(_mm256_maddubs_epi16(w.x, a), _mm256_set1_epi16(1))
                } else {
                    let p = _mm256_maddubs_epi16(w.xa, _mm256_sign_epi8(a, w.x));
                    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
                }
            }

            /// R weight rows x NA activation rows, all blocks.
            #[target_feature(enable = $feat)]
            unsafe fn qtile<const T: u8, const R: usize, const NA: usize>(
                w: *const u8,
                rb: usize,
                bb: usize,
                nb: usize,
                qs: *const i8,
                d: *const f32,
                s: *const f32,
                k: usize,
                out: *mut f32,
                ldo: usize,
            ) {
                let mut acc = [[_mm256_setzero_ps(); NA]; R];
                let mut macc = [[0f32; NA]; R];
                for b in 0..nb {
                    let mut wb = [Wb {
                        x: _mm256_setzero_si256(),
                        xa: _mm256_setzero_si256(),
                        d: 0.0,
                        m: 0.0,
                    }; R];
                    for r in 0..R {
                        wb[r] = load_block::<T>(w.add(r * rb + b * bb));
                    }
                    for i in 0..NA {
                        let a = _mm256_loadu_si256(qs.add(i * k + b * QK) as *const __m256i);
                        let da = *d.add(i * nb + b);
                        let base = act_base::<T>(a);
                        for r in 0..R {
                            let sumi = dot::<T>(&wb[r], a, base);
                            let sc = _mm256_set1_ps(wb[r].d * da);
                            acc[r][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), sc, acc[r][i]);
                            if T == T_Q4_1 {
                                macc[r][i] += wb[r].m * *s.add(i * nb + b);
                            }
                        }
                    }
                }
                for r in 0..R {
                    for i in 0..NA {
                        *out.add(i * ldo + r) = hsum(acc[r][i]) + macc[r][i];
                    }
                }
            }

            #[target_feature(enable = $feat)]
            unsafe fn qdrive<const T: u8>(
                w: *const u8,
                rb: usize,
                qs: *const i8,
                d: *const f32,
                s: *const f32,
                n: usize,
                k: usize,
                rows: Range<usize>,
                out: *mut f32,
                ldo: usize,
            ) {
                let nb = k / QK;
                let bb = rb / nb;
                let mut p0 = rows.start;
                while p0 < rows.end {
                    let p1 = (p0 + PANEL).min(rows.end);
                    let mut i = 0;
                    while i < n {
                        let na = (n - i).min(4);
                        let (qi, di, si) = (qs.add(i * k), d.add(i * nb), s.add(i * nb));
                        let mut j = p0;
                        while j < p1 {
                            let wj = w.add(j * rb);
                            let oj = out.add(i * ldo + j);
                            if p1 - j >= 4 {
                                match na {
                                    1 => qtile::<T, 4, 1>(wj, rb, bb, nb, qi, di, si, k, oj, ldo),
                                    2 => qtile::<T, 4, 2>(wj, rb, bb, nb, qi, di, si, k, oj, ldo),
                                    3 => qtile::<T, 4, 3>(wj, rb, bb, nb, qi, di, si, k, oj, ldo),
                                    _ => qtile::<T, 4, 4>(wj, rb, bb, nb, qi, di, si, k, oj, ldo),
                                }
                                j += 4;
                            } else {
                                match na {
                                    1 => qtile::<T, 1, 1>(wj, rb, bb, nb, qi, di, si, k, oj, ldo),
                                    2 => qtile::<T, 1, 2>(wj, rb, bb, nb, qi, di, si, k, oj, ldo),
                                    3 => qtile::<T, 1, 3>(wj, rb, bb, nb, qi, di, si, k, oj, ldo),
                                    _ => qtile::<T, 1, 4>(wj, rb, bb, nb, qi, di, si, k, oj, ldo),
                                }
                                j += 1;
                            }
                        }
                        i += na;
                    }
                    p0 = p1;
                }
            }

            /// Quantized weights x Q8 activations.
            ///
            /// # Safety
            /// The CPU must support this module's features; shapes as checked by
            /// `kernels::matmul` and `out` valid for every written element.
            #[target_feature(enable = $feat)]
            pub unsafe fn matmul_q8(
                ty: WeightType,
                w: &[u8],
                rb: usize,
                qs: &[i8],
                d: &[f32],
                s: &[f32],
                n: usize,
                k: usize,
                rows: Range<usize>,
                out: *mut f32,
                ldo: usize,
            ) {
                let sp = if s.is_empty() { d.as_ptr() } else { s.as_ptr() };
                let args = (w.as_ptr(), rb, qs.as_ptr(), d.as_ptr(), sp);
                match ty {
                    WeightType::Q4_0 => qdrive::<T_Q4_0>(
                        args.0, args.1, args.2, args.3, args.4, n, k, rows, out, ldo,
                    ),
                    WeightType::Q4_1 => qdrive::<T_Q4_1>(
                        args.0, args.1, args.2, args.3, args.4, n, k, rows, out, ldo,
                    ),
                    WeightType::Q8_0 => qdrive::<T_Q8_0>(
                        args.0, args.1, args.2, args.3, args.4, n, k, rows, out, ldo,
                    ),
                    WeightType::QorusQ4_0 => qdrive::<T_QORUS>(
                        args.0, args.1, args.2, args.3, args.4, n, k, rows, out, ldo,
                    ),
                    _ => unreachable!(),
                }
            }

            /// 8 weights of a float row as f32.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn fload<const T: u8>(p: *const u8, c: usize) -> __m256 {
                match T {
                    T_F32 => _mm256_loadu_ps(p.add(4 * c) as *const f32),
                    T_F16 => _mm256_cvtph_ps(_mm_loadu_si128(p.add(2 * c) as *const __m128i)),
                    _ => {
                        let h =
                            _mm256_cvtepu16_epi32(_mm_loadu_si128(p.add(2 * c) as *const __m128i));
                        _mm256_castsi256_ps(_mm256_slli_epi32(h, 16))
                    }
                }
            }

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn fscalar<const T: u8>(p: *const u8, c: usize) -> f32 {
                match T {
                    T_F32 => (p.add(4 * c) as *const f32).read_unaligned(),
                    T_F16 => f16s(p.add(2 * c)),
                    _ => {
                        f32::from_bits(((p.add(2 * c) as *const u16).read_unaligned() as u32) << 16)
                    }
                }
            }

            #[target_feature(enable = $feat)]
            unsafe fn ftile<const T: u8, const R: usize, const NA: usize>(
                w: *const u8,
                rb: usize,
                x: *const f32,
                k: usize,
                out: *mut f32,
                ldo: usize,
            ) {
                let mut acc = [[_mm256_setzero_ps(); NA]; R];
                let k8 = k & !7;
                let mut c = 0;
                while c < k8 {
                    let mut wv = [_mm256_setzero_ps(); R];
                    for r in 0..R {
                        wv[r] = fload::<T>(w.add(r * rb), c);
                    }
                    for i in 0..NA {
                        let xv = _mm256_loadu_ps(x.add(i * k + c));
                        for r in 0..R {
                            acc[r][i] = _mm256_fmadd_ps(wv[r], xv, acc[r][i]);
                        }
                    }
                    c += 8;
                }
                for r in 0..R {
                    for i in 0..NA {
                        let mut t = hsum(acc[r][i]);
                        for cc in k8..k {
                            t += fscalar::<T>(w.add(r * rb), cc) * *x.add(i * k + cc);
                        }
                        *out.add(i * ldo + r) = t;
                    }
                }
            }

            #[target_feature(enable = $feat)]
            unsafe fn fdrive<const T: u8>(
                w: *const u8,
                rb: usize,
                x: *const f32,
                n: usize,
                k: usize,
                rows: Range<usize>,
                out: *mut f32,
                ldo: usize,
            ) {
                let mut p0 = rows.start;
                while p0 < rows.end {
                    let p1 = (p0 + PANEL).min(rows.end);
                    let mut i = 0;
                    while i < n {
                        let na = (n - i).min(4);
                        let xi = x.add(i * k);
                        let mut j = p0;
                        while j < p1 {
                            let wj = w.add(j * rb);
                            let oj = out.add(i * ldo + j);
                            if p1 - j >= 4 {
                                match na {
                                    1 => ftile::<T, 4, 1>(wj, rb, xi, k, oj, ldo),
                                    2 => ftile::<T, 4, 2>(wj, rb, xi, k, oj, ldo),
                                    3 => ftile::<T, 4, 3>(wj, rb, xi, k, oj, ldo),
                                    _ => ftile::<T, 4, 4>(wj, rb, xi, k, oj, ldo),
                                }
                                j += 4;
                            } else {
                                match na {
                                    1 => ftile::<T, 1, 1>(wj, rb, xi, k, oj, ldo),
                                    2 => ftile::<T, 1, 2>(wj, rb, xi, k, oj, ldo),
                                    3 => ftile::<T, 1, 3>(wj, rb, xi, k, oj, ldo),
                                    _ => ftile::<T, 1, 4>(wj, rb, xi, k, oj, ldo),
                                }
                                j += 1;
                            }
                        }
                        i += na;
                    }
                    p0 = p1;
                }
            }

            /// Float weights x F32 activations.
            ///
            /// # Safety
            /// As `matmul_q8`.
            #[target_feature(enable = $feat)]
            pub unsafe fn matmul_f32(
                ty: WeightType,
                w: &[u8],
                rb: usize,
                x: &[f32],
                n: usize,
                k: usize,
                rows: Range<usize>,
                out: *mut f32,
                ldo: usize,
            ) {
                match ty {
                    WeightType::F32 => {
                        fdrive::<T_F32>(w.as_ptr(), rb, x.as_ptr(), n, k, rows, out, ldo)
                    }
                    WeightType::F16 => {
                        fdrive::<T_F16>(w.as_ptr(), rb, x.as_ptr(), n, k, rows, out, ldo)
                    }
                    WeightType::BF16 => {
                        fdrive::<T_BF16>(w.as_ptr(), rb, x.as_ptr(), n, k, rows, out, ldo)
                    }
                    _ => unreachable!(),
                }
            }
        }
    };
}

/// `vpdpbusd` on 256-bit vectors (AVX-512 VNNI + VL; EVEX encoding), as inline assembly inside
/// the AVX2 kernels (which are compiled for AVX2 only); only called after `dispatch::vnni()` said
/// the CPU has it.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn vnni_dp(
    acc: core::arch::x86_64::__m256i,
    u: core::arch::x86_64::__m256i,
    s: core::arch::x86_64::__m256i,
) -> core::arch::x86_64::__m256i {
    let mut acc = acc;
    core::arch::asm!(
        "{{evex}} vpdpbusd {acc}, {u}, {s}",
        acc = inout(ymm_reg) acc,
        u = in(ymm_reg) u,
        s = in(ymm_reg) s,
        options(pure, nomem, nostack, preserves_flags)
    );
    acc
}

/// Placeholder used by the AVX2 instantiation (never called: `VNNI` is false there).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn vnni_dp_unavailable(
    acc: core::arch::x86_64::__m256i,
    _u: core::arch::x86_64::__m256i,
    _s: core::arch::x86_64::__m256i,
) -> core::arch::x86_64::__m256i {
    acc
}

mod avx2_impl {
    pub(super) use super::vnni_dp_unavailable as vnni_dp;
    pub(super) use super::{
        Range, WeightType, PANEL, QK, T_BF16, T_F16, T_F32, T_Q4_0, T_Q4_1, T_Q8_0, T_QORUS,
    };
    simd_kernels!(k, "avx2,fma,f16c", false);
}
mod avx512_impl {
    pub(super) use super::vnni_dp;
    pub(super) use super::{
        Range, WeightType, PANEL, QK, T_BF16, T_F16, T_F32, T_Q4_0, T_Q4_1, T_Q8_0, T_QORUS,
    };
    simd_kernels!(
        k,
        "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
        true
    );
}

pub use avx2_impl::k as avx2;
pub use avx512_impl::k as avx512vnni;

/// AVX2 + FMA vector kernels (used at every SIMD level).
///
/// # Safety
/// Every function here requires a CPU with AVX2 and FMA (callers check `dispatch::level`).
#[allow(clippy::missing_safety_doc)]
pub mod vec {
    use core::arch::x86_64::*;

    /// Horizontal sum of 8 lanes: `((v0+v4)+(v2+v6)) + ((v1+v5)+(v3+v7))`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// `exp(x)` on 8 lanes, within ~2 ulp of `expf` over the whole range: Cody–Waite reduction
    /// `x = n ln2 + r`, a degree-6 minimax polynomial (Cephes `expf`), and `2^n` applied in two
    /// steps so results down to the subnormals and up to overflow (inf) are right.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp8(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-104.0)),
            _mm256_set1_ps(89.0),
        );
        let n = _mm256_round_ps(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.398_199_9e-3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.333_452e-3));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166_579_6e-2));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666_666_5e-1));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5));
        let r2 = _mm256_mul_ps(r, r);
        let e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
        let ni = _mm256_cvtps_epi32(n);
        let n1 = _mm256_srai_epi32(ni, 1);
        let n2 = _mm256_sub_epi32(ni, n1);
        let bias = _mm256_set1_epi32(127);
        let s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
        let s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
        _mm256_mul_ps(_mm256_mul_ps(e, s1), s2)
    }

    /// Σ a·b with 4 x 8 f32 accumulators.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (u, ac) in acc.iter_mut().enumerate() {
                *ac = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8 * u)),
                    _mm256_loadu_ps(pb.add(i + 8 * u)),
                    *ac,
                );
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i)),
                _mm256_loadu_ps(pb.add(i)),
                acc[0],
            );
            i += 8;
        }
        let mut s = hsum(_mm256_add_ps(
            _mm256_add_ps(acc[0], acc[1]),
            _mm256_add_ps(acc[2], acc[3]),
        ));
        while i < n {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }

    /// `y += alpha x`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let av = _mm256_set1_ps(alpha);
        let mut i = 0;
        while i + 8 <= n {
            let p = y.as_mut_ptr().add(i);
            _mm256_storeu_ps(
                p,
                _mm256_fmadd_ps(av, _mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(p)),
            );
            i += 8;
        }
        while i < n {
            y[i] += alpha * x[i];
            i += 1;
        }
    }

    /// `x *= s`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scale(x: &mut [f32], s: f32) {
        let sv = _mm256_set1_ps(s);
        let n = x.len();
        let mut i = 0;
        while i + 8 <= n {
            let p = x.as_mut_ptr().add(i);
            _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_loadu_ps(p), sv));
            i += 8;
        }
        while i < n {
            x[i] *= s;
            i += 1;
        }
    }

    /// Softmax in place (max, `exp(x - max)` summed in f64 per 8-lane chunk, scale by `1/sum`).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn softmax(x: &mut [f32]) {
        let n = x.len();
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mv = _mm256_set1_ps(max);
        let mut sum = 0f64;
        let mut i = 0;
        while i + 8 <= n {
            let p = x.as_mut_ptr().add(i);
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), mv));
            _mm256_storeu_ps(p, e);
            sum += hsum(e) as f64;
            i += 8;
        }
        while i < n {
            x[i] = (x[i] - max).exp();
            sum += x[i] as f64;
            i += 1;
        }
        scale(x, (1.0 / sum) as f32);
    }

    /// `out = gate / (1 + exp(-gate)) * up`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
        let n = gate.len();
        let one = _mm256_set1_ps(1.0);
        let mut i = 0;
        while i + 8 <= n {
            let g = _mm256_loadu_ps(gate.as_ptr().add(i));
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
            let s = _mm256_div_ps(g, _mm256_add_ps(one, e));
            _mm256_storeu_ps(
                out.as_mut_ptr().add(i),
                _mm256_mul_ps(s, _mm256_loadu_ps(up.as_ptr().add(i))),
            );
            i += 8;
        }
        while i < n {
            out[i] = super::super::scalar::silu(gate[i]) * up[i];
            i += 1;
        }
    }
}
