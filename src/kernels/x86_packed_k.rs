//! x86-64 matmuls on the packed K-quant family layout (`packed_k.rs`: layout and arithmetic),
//! one macro body instantiated twice like `x86_packed.rs`:
//! * `avx2`: AVX2 + FMA + F16C, integer dots with `vpmaddubsw` + `vpmaddwd` (unsigned codes of at
//!   most 6 bits times signed activations: no saturation; the IQ4 code-book values go through the
//!   sign trick, `|w| * sign(a, w)`);
//! * `vnni`: AVX-512 VNNI `vpdpbusd` with the activation bytes broadcast from memory (the IQ4
//!   values shifted by +128 into unsigned bytes, the shift taken back with the activation sums).
//!
//! One lane of a vector is one weight row. Groups go in panels of `PANEL` (64 rows); within a
//! panel, activation rows go in tiles of up to `NA_MAX`, each tile reusing every unpacked weight
//! vector. All integer sums are exact, and the float steps per super-block are the scalar twin's
//! (`kdot::combine`), so every level gives the same bits.

#![allow(clippy::too_many_arguments)]

use std::ops::Range;

use super::packed::GROUP;
use super::packed_k::{group_bytes, props, KActs, Props};
use crate::quant::kquants::KVALUES_IQ4NL;
use crate::quant::WeightType;

/// Groups per panel.
const PANEL: usize = 8;

/// Most activation rows per tile.
const NA_MAX: usize = 8;

/// Software prefetch distance (bytes ahead in a group's stream), used by tiles of at most
/// `PREFETCH_NA` activation rows (decoding: the weights come from memory once per step).
/// Measured (decode, one thread, tg128): 16 KiB beats 4 and 8 KiB (SmolLM2 Q4_0 ~470 -> ~550
/// -> ~600 t/s) and 32 KiB.
const PREFETCH: usize = 16384;
const PREFETCH_NA: usize = 2;

/// Largest `k / 16` (`packed::MAX_BLOCKS` blocks of 32).
const MAX_H: usize = 2 * super::packed::MAX_BLOCKS;

const T_Q5_0: u8 = 0;
const T_Q5_1: u8 = 1;
const T_IQ4_NL: u8 = 2;
const T_Q2_K: u8 = 3;
const T_Q3_K: u8 = 4;
const T_Q4_K: u8 = 5;
const T_Q5_K: u8 = 6;
const T_Q6_K: u8 = 7;
const T_IQ4_XS: u8 = 8;

const fn ty_of(t: u8) -> WeightType {
    match t {
        T_Q5_0 => WeightType::Q5_0,
        T_Q5_1 => WeightType::Q5_1,
        T_IQ4_NL => WeightType::IQ4_NL,
        T_Q2_K => WeightType::Q2_K,
        T_Q3_K => WeightType::Q3_K,
        T_Q4_K => WeightType::Q4_K,
        T_Q5_K => WeightType::Q5_K,
        T_Q6_K => WeightType::Q6_K,
        _ => WeightType::IQ4_XS,
    }
}

pub(crate) const fn props_of(t: u8) -> Props {
    match props(ty_of(t)) {
        Some(p) => p,
        None => panic!("not a packed_k type"),
    }
}

/// Arguments of a tile: group, super-blocks, codes of the tile's first row, k, scales, sums
/// (Q5_1), activation sums per 16 (tile rows, `k / 16` each; per 32 for the 32-value sub-block
/// types with mins or a code offset, `k / 32` each), Q8_K factor exponents per 32 of the tile's
/// first row (`k / 32` a row; null for Q8 activations), output, output stride, valid rows.
type TileArgs = (
    *const u8,
    usize,
    *const i8,
    usize,
    *const f32,
    *const f32,
    *const i16,
    *const u8,
    *mut f32,
    usize,
    usize,
);

macro_rules! kpacked {
    ($modname:ident, $feat:literal, $vnni:expr) => {
        pub mod $modname {
            use super::*;
            use core::arch::x86_64::*;

            const VNNI: bool = $vnni;

            /// Activation rows per tile: AVX2's 16 vector registers hold fewer rows' sums.
            const NA_TILE: usize = if VNNI { NA_MAX } else { 4 };

            /// `acc + Σ_e w[4l+e] * a[e]` per lane `l`, `w` unsigned bytes (< 64 on AVX2), `a` the
            /// 4 signed bytes at `p`.
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

            /// [`dp`] with the activation bytes at `p + OFF` (the offset in the instruction: no
            /// address arithmetic per product).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn dpo<const OFF: usize>(acc: __m256i, w: __m256i, p: *const i8) -> __m256i {
                if VNNI {
                    super::vnni_bcast_off::<OFF>(acc, w, p)
                } else {
                    dp(acc, w, p.add(OFF))
                }
            }

            /// AVX2 signed x signed: `wa = |w|`.
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

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn scales8(p: *const u8) -> __m256i {
                _mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i))
            }

            /// The codes of one unit (`q`: its nibble plane, then its high plane): `wl[t]` the
            /// values `4t..4t+4` of each row, `wh[t]` the values `16+4t..`, each byte a code.
            /// The high bits are moved into place with one shift and a masked merge per vector
            /// (16-bit shifts: the mask drops what crosses a byte).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn unit_codes(hb: usize, q: *const u8) -> ([__m256i; 4], [__m256i; 4]) {
                let m0f = _mm256_set1_epi8(0x0F);
                let mut wl = [_mm256_setzero_si256(); 4];
                let mut wh = [_mm256_setzero_si256(); 4];
                for t in 0..4 {
                    let x = _mm256_loadu_si256(q.add(32 * t) as *const __m256i);
                    wl[t] = _mm256_and_si256(x, m0f);
                    wh[t] = _mm256_and_si256(_mm256_srli_epi16(x, 4), m0f);
                }
                let merge =
                    |w: __m256i, h: __m256i, m: __m256i| _mm256_or_si256(w, _mm256_and_si256(h, m));
                if hb == 1 {
                    // bit t -> bit 4 (low half), bit 4 + t -> bit 4 (high half)
                    let h = _mm256_loadu_si256(q.add(128) as *const __m256i);
                    let m = _mm256_set1_epi8(0x10);
                    wl[0] = merge(wl[0], _mm256_slli_epi16(h, 4), m);
                    wl[1] = merge(wl[1], _mm256_slli_epi16(h, 3), m);
                    wl[2] = merge(wl[2], _mm256_slli_epi16(h, 2), m);
                    wl[3] = merge(wl[3], _mm256_slli_epi16(h, 1), m);
                    wh[0] = merge(wh[0], h, m);
                    wh[1] = merge(wh[1], _mm256_srli_epi16(h, 1), m);
                    wh[2] = merge(wh[2], _mm256_srli_epi16(h, 2), m);
                    wh[3] = merge(wh[3], _mm256_srli_epi16(h, 3), m);
                } else if hb == 2 {
                    // bits 2t, 2t+1 -> bits 4, 5
                    let h0 = _mm256_loadu_si256(q.add(128) as *const __m256i);
                    let h1 = _mm256_loadu_si256(q.add(160) as *const __m256i);
                    let m = _mm256_set1_epi8(0x30);
                    wl[0] = merge(wl[0], _mm256_slli_epi16(h0, 4), m);
                    wl[1] = merge(wl[1], _mm256_slli_epi16(h0, 2), m);
                    wl[2] = merge(wl[2], h0, m);
                    wl[3] = merge(wl[3], _mm256_srli_epi16(h0, 2), m);
                    wh[0] = merge(wh[0], _mm256_slli_epi16(h1, 4), m);
                    wh[1] = merge(wh[1], _mm256_slli_epi16(h1, 2), m);
                    wh[2] = merge(wh[2], h1, m);
                    wh[3] = merge(wh[3], _mm256_srli_epi16(h1, 2), m);
                }
                (wl, wh)
            }

            /// One group (8 rows) x NA activation rows, all blocks, for the one-unit types
            /// (Q5_0, Q5_1, IQ4_NL: 32-value blocks of scale 1 with Q8 activations).
            #[target_feature(enable = $feat)]
            unsafe fn tile<const T: u8, const NA: usize>(args: TileArgs) {
                let (grp, nsb, qs, k, d, s, asum, _sh, out, ldo, nvalid) = args;
                let p = props_of(T);
                let (head, sbb, sbl) = (p.head_bytes(), p.sb_bytes(), p.sb_len());
                // effective code offset: the IQ4 values are shifted by 128 for vpdpbusd
                let bias = if p.lut && VNNI { 128 } else { p.bias };
                let kh = k / 16;
                let mut lutb = [0u8; 16];
                for (o, &v) in lutb.iter_mut().zip(KVALUES_IQ4NL.iter()) {
                    *o = if VNNI {
                        (v as i32 + 128) as u8
                    } else {
                        v as u8
                    };
                }
                let tbl =
                    _mm256_broadcastsi128_si256(_mm_loadu_si128(lutb.as_ptr() as *const __m128i));
                let mut accf = [_mm256_setzero_ps(); NA];
                for b in 0..nsb {
                    let sb = grp.add(b * sbb);
                    if NA <= PREFETCH_NA {
                        for l in 0..sbb.div_ceil(64) {
                            _mm_prefetch::<_MM_HINT_T0>(sb.add(PREFETCH + 64 * l) as *const i8);
                        }
                    }
                    let q = sb.add(head);
                    let (mut wl, mut wh) = unit_codes(p.hb, q);
                    let mut wla = [_mm256_setzero_si256(); 4];
                    let mut wha = [_mm256_setzero_si256(); 4];
                    if p.lut {
                        for t in 0..4 {
                            wl[t] = _mm256_shuffle_epi8(tbl, wl[t]);
                            wh[t] = _mm256_shuffle_epi8(tbl, wh[t]);
                            if !VNNI {
                                wla[t] = _mm256_abs_epi8(wl[t]);
                                wha[t] = _mm256_abs_epi8(wh[t]);
                            }
                        }
                    }
                    let dw = _mm256_cvtph_ps(_mm_loadu_si128(sb as *const __m128i));
                    let d2 = if p.add_min {
                        _mm256_cvtph_ps(_mm_loadu_si128(sb.add(16) as *const __m128i))
                    } else {
                        _mm256_setzero_ps()
                    };
                    for i in 0..NA {
                        let a = qs.add(i * k + b * sbl);
                        let mut x = _mm256_setzero_si256();
                        for t in 0..4 {
                            if p.lut && !VNNI {
                                x = dp_signed(x, wl[t], wla[t], a.add(4 * t));
                                x = dp_signed(x, wh[t], wha[t], a.add(16 + 4 * t));
                            } else {
                                x = dp(x, wl[t], a.add(4 * t));
                                x = dp(x, wh[t], a.add(16 + 4 * t));
                            }
                        }
                        if bias != 0 {
                            let h = b * sbl / 16;
                            let a01 =
                                *asum.add(i * kh + h) as i32 + *asum.add(i * kh + h + 1) as i32;
                            x = _mm256_sub_epi32(x, _mm256_set1_epi32(bias * a01));
                        }
                        let da = _mm256_set1_ps(*d.add(i * nsb + b));
                        accf[i] =
                            _mm256_fmadd_ps(_mm256_cvtepi32_ps(x), _mm256_mul_ps(dw, da), accf[i]);
                        if p.add_min {
                            let sa = _mm256_set1_ps(*s.add(i * nsb + b));
                            accf[i] = _mm256_fmadd_ps(d2, sa, accf[i]);
                        }
                    }
                }
                store_tile(&accf, out, ldo, nvalid);
            }

            /// Writes a tile's outputs (`nvalid` rows of each activation row).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn store_tile<const NA: usize>(
                accf: &[__m256; NA],
                out: *mut f32,
                ldo: usize,
                nvalid: usize,
            ) {
                for (i, &acc) in accf.iter().enumerate() {
                    let o = out.add(i * ldo);
                    if nvalid == GROUP {
                        _mm256_storeu_ps(o, acc);
                    } else {
                        let mut tmp = [0f32; GROUP];
                        _mm256_storeu_ps(tmp.as_mut_ptr(), acc);
                        for (l, &v) in tmp.iter().enumerate().take(nvalid) {
                            *o.add(l) = v;
                        }
                    }
                }
            }

            /// The i16 pairs of correction weights, lane `j` = row `j`: the mins (types with mins)
            /// or `bias` times the scales (types with a code offset) of two sub-blocks, the 8
            /// bytes at `u0` and at `u1` (a unit's two halves of 16 values, or two units).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn corr_pairs(p: Props, u0: *const u8, u1: *const u8, bias: i32) -> __m256i {
                let off = if p.min { p.sc_bytes() } else { 0 };
                let lo = _mm_loadl_epi64(u0.add(off) as *const __m128i);
                let hi = _mm_loadl_epi64(u1.add(off) as *const __m128i);
                let v = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(lo, hi));
                if p.min {
                    v
                } else {
                    _mm256_mullo_epi16(v, _mm256_set1_epi16(bias as i16))
                }
            }

            /// `acc + Σ_l pairs[2l..2l+2] · a[0..2]` per lane, `a` two i16 at `p`.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn dpw(acc: __m256i, pairs: __m256i, p: *const i16) -> __m256i {
                if VNNI {
                    super::vnni_wbcast(acc, pairs, p)
                } else {
                    let a = _mm256_set1_epi32((p as *const i32).read_unaligned());
                    _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, a))
                }
            }

            /// `(sc0 * lo + sc1 * hi) << e` per lane (16-value sub-blocks), else
            /// `(sc0 * (lo + hi)) << e`: the unit's dot times its sub-block scales and its
            /// activation factor `2^e` (`e` the exponent byte at `e`).
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn scale(
                s16: bool,
                sc0: __m256i,
                sc1: __m256i,
                lo: __m256i,
                hi: __m256i,
                e: *const u8,
            ) -> __m256i {
                let x = if s16 {
                    _mm256_add_epi32(_mm256_mullo_epi32(sc0, lo), _mm256_mullo_epi32(sc1, hi))
                } else {
                    _mm256_mullo_epi32(sc0, _mm256_add_epi32(lo, hi))
                };
                _mm256_sll_epi32(x, _mm_cvtsi32_si128(*e as i32))
            }

            /// One group (8 rows) x NA activation rows, all super-blocks, for the types of 8
            /// units per super-block (Q8_K activations). Per unit and activation row: the code
            /// dots of the two halves (two chains) times the sub-block scales; per super-block
            /// and activation row, the mins or the code offset in one pass of pair products with
            /// the activation sums (8 with the sums per 16, or 4 with the sums per 32 for
            /// 32-value sub-blocks; the activation sums carry the factors). Integer sums are
            /// exact, so this is `kdot`'s arithmetic.
            #[target_feature(enable = $feat)]
            unsafe fn tile_k<const T: u8, const NA: usize>(args: TileArgs) {
                let (grp, nsb, qs, k, d, _s, asum, sh, out, ldo, nvalid) = args;
                let k32 = k / 32;
                let p = props_of(T);
                let (head, ub, sbb, sbl) =
                    (p.head_bytes(), p.unit_bytes(), p.sb_bytes(), p.sb_len());
                let (scb, mb) = (p.sc_bytes(), p.m_bytes());
                // effective code offset: the IQ4 values are shifted by 128 for vpdpbusd
                let bias = if p.lut && VNNI { 128 } else { p.bias };
                let kh = k / 16;
                let sign = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
                let mut lutb = [0u8; 16];
                for (o, &v) in lutb.iter_mut().zip(KVALUES_IQ4NL.iter()) {
                    *o = if VNNI {
                        (v as i32 + 128) as u8
                    } else {
                        v as u8
                    };
                }
                let tbl =
                    _mm256_broadcastsi128_si256(_mm_loadu_si128(lutb.as_ptr() as *const __m128i));
                let mut accf = [_mm256_setzero_ps(); NA];
                for b in 0..nsb {
                    let sb = grp.add(b * sbb);
                    let mut sumi = [_mm256_setzero_si256(); NA];
                    for u in 0..p.units {
                        let unit = sb.add(head + u * ub);
                        if NA <= PREFETCH_NA {
                            // a decode step streams the weights once: ask for them ahead
                            for l in 0..ub.div_ceil(64) {
                                _mm_prefetch::<_MM_HINT_T0>(
                                    unit.add(PREFETCH + 64 * l) as *const i8
                                );
                            }
                        }
                        let q = unit.add(scb + mb);
                        let (mut wl, mut wh) = unit_codes(p.hb, q);
                        let mut wla = [_mm256_setzero_si256(); 4];
                        let mut wha = [_mm256_setzero_si256(); 4];
                        if p.lut {
                            for t in 0..4 {
                                wl[t] = _mm256_shuffle_epi8(tbl, wl[t]);
                                wh[t] = _mm256_shuffle_epi8(tbl, wh[t]);
                                if !VNNI {
                                    wla[t] = _mm256_abs_epi8(wl[t]);
                                    wha[t] = _mm256_abs_epi8(wh[t]);
                                }
                            }
                        }
                        let sc0 = scales8(unit);
                        let sc1 = if p.s16 { scales8(unit.add(8)) } else { sc0 };
                        let a0 = qs.add(b * sbl + 32 * u);
                        // the factor exponents of this unit, row i at e0 + i * k32
                        let e0 = sh.add(b * 8 + u);
                        if VNNI {
                            // two chains per activation row (low and high halves), the rows
                            // interleaved: enough independent vpdpbusd in flight for its latency
                            let mut lo = [_mm256_setzero_si256(); NA];
                            let mut hi = [_mm256_setzero_si256(); NA];
                            if p.hb == 0 {
                                // a pointer per row and the offsets in the instructions (with
                                // the high-bit types, the extra registers cost more than the
                                // address arithmetic saves)
                                let mut ap = [a0; NA];
                                for (i, p) in ap.iter_mut().enumerate() {
                                    *p = a0.add(i * k);
                                }
                                macro_rules! step {
                                    ($t:literal) => {
                                        for i in 0..NA {
                                            lo[i] = dpo::<{ 4 * $t }>(lo[i], wl[$t], ap[i]);
                                            hi[i] = dpo::<{ 16 + 4 * $t }>(hi[i], wh[$t], ap[i]);
                                        }
                                    };
                                }
                                step!(0);
                                step!(1);
                                step!(2);
                                step!(3);
                            } else {
                                for t in 0..4 {
                                    for i in 0..NA {
                                        let a = a0.add(i * k + 4 * t);
                                        lo[i] = dp(lo[i], wl[t], a);
                                        hi[i] = dp(hi[i], wh[t], a.add(16));
                                    }
                                }
                            }
                            for i in 0..NA {
                                let x = scale(p.s16, sc0, sc1, lo[i], hi[i], e0.add(i * k32));
                                sumi[i] = _mm256_add_epi32(sumi[i], x);
                            }
                        } else {
                            // AVX2: one row at a time (16 registers)
                            for i in 0..NA {
                                let a = a0.add(i * k);
                                let mut lo = _mm256_setzero_si256();
                                let mut hi = _mm256_setzero_si256();
                                for t in 0..4 {
                                    if p.lut {
                                        lo = dp_signed(lo, wl[t], wla[t], a.add(4 * t));
                                        hi = dp_signed(hi, wh[t], wha[t], a.add(16 + 4 * t));
                                    } else {
                                        lo = dp(lo, wl[t], a.add(4 * t));
                                        hi = dp(hi, wh[t], a.add(16 + 4 * t));
                                    }
                                }
                                let x = scale(p.s16, sc0, sc1, lo, hi, e0.add(i * k32));
                                sumi[i] = _mm256_add_epi32(sumi[i], x);
                            }
                        }
                    }
                    // the mins or the code offset: Σ_s c[s] * (activation sum of s)
                    let mut summ = [_mm256_setzero_si256(); NA];
                    if p.min || bias != 0 {
                        // 16-value sub-blocks: a unit's two halves with the sums per 16;
                        // 32-value ones: two units with the sums per 32 (`drive` makes them)
                        let np = if p.s16 { 8 } else { 4 };
                        let mut pairs = [_mm256_setzero_si256(); 8];
                        for (v, pr) in pairs.iter_mut().enumerate().take(np) {
                            let (u0, u1) = if p.s16 {
                                let u = sb.add(head + v * ub);
                                (u, u.add(8))
                            } else {
                                (sb.add(head + 2 * v * ub), sb.add(head + (2 * v + 1) * ub))
                            };
                            *pr = corr_pairs(p, u0, u1, bias);
                        }
                        let ka = if p.s16 { kh } else { kh / 2 };
                        for i in 0..NA {
                            let ai = asum.add(i * ka + b * 2 * np);
                            let mut c = _mm256_setzero_si256();
                            for (v, &pr) in pairs.iter().enumerate().take(np) {
                                c = dpw(c, pr, ai.add(2 * v));
                            }
                            if p.min {
                                summ[i] = c;
                            } else {
                                sumi[i] = _mm256_sub_epi32(sumi[i], c);
                            }
                        }
                    }
                    let dw = _mm256_cvtph_ps(_mm_loadu_si128(sb as *const __m128i));
                    let d2 = if p.min {
                        _mm256_cvtph_ps(_mm_loadu_si128(sb.add(16) as *const __m128i))
                    } else {
                        _mm256_setzero_ps()
                    };
                    for i in 0..NA {
                        // the unit d / 8 of the Q8_K codes times their factors
                        let da = _mm256_set1_ps(*d.add(i * nsb + b) * 0.125);
                        accf[i] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(sumi[i]),
                            _mm256_mul_ps(dw, da),
                            accf[i],
                        );
                        if p.min {
                            let nm = _mm256_xor_ps(_mm256_mul_ps(d2, da), sign);
                            accf[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(summ[i]), nm, accf[i]);
                        }
                    }
                }
                store_tile(&accf, out, ldo, nvalid);
            }

            #[target_feature(enable = $feat)]
            unsafe fn drive<const T: u8>(
                w: *const u8,
                k: usize,
                a: KActs<'_>,
                rows: Range<usize>,
                out: *mut f32,
                ldo: usize,
            ) {
                let ty = ty_of(T);
                let p = props_of(T);
                let gb = group_bytes(ty, k);
                let nsb = k / p.sb_len();
                let kh = k / 16;
                let mut asum = std::mem::MaybeUninit::<[i16; NA_MAX * MAX_H]>::uninit();
                let own = asum.as_mut_ptr() as *mut i16;
                // Q8_K activations carry their sums per 16 codes; Q8 ones are summed here, once
                // for a single tile (decode), else per tile and panel.
                let given = a.bsums.len() >= a.n * kh;
                let bias = if p.lut && VNNI { 128 } else { p.bias };
                let per32 = p.units > 1 && !p.s16 && (p.min || bias != 0);
                debug_assert!(!per32 || given, "Q8_K activations carry their sums");
                let (g0, g1) = (rows.start / GROUP, rows.end.div_ceil(GROUP));
                let (qs, d) = (a.qs.as_ptr(), a.d.as_ptr());
                let s = if a.s.is_empty() { d } else { a.s.as_ptr() };
                let mut summed_tile = usize::MAX;
                let mut p0 = g0;
                while p0 < g1 {
                    let p1 = (p0 + PANEL).min(g1);
                    let mut i = 0;
                    while i < a.n {
                        let na = (a.n - i).min(NA_TILE);
                        let ap = if per32 {
                            // the 32-value sub-block types: sums per 32 from the sums per 16
                            if summed_tile != i {
                                for ii in 0..na {
                                    let bs = a.bsums.as_ptr().add((i + ii) * kh);
                                    for u in 0..kh / 2 {
                                        *own.add(ii * kh / 2 + u) =
                                            *bs.add(2 * u) + *bs.add(2 * u + 1);
                                    }
                                }
                                summed_tile = i;
                            }
                            own as *const i16
                        } else if given {
                            a.bsums.as_ptr().add(i * kh)
                        } else {
                            if summed_tile != i {
                                for ii in 0..na {
                                    let row = std::slice::from_raw_parts(qs.add((i + ii) * k), k);
                                    for (h, c) in row.chunks_exact(16).enumerate() {
                                        *own.add(ii * kh + h) = c.iter().map(|&v| v as i16).sum();
                                    }
                                }
                                summed_tile = i;
                            }
                            own as *const i16
                        };
                        let (qi, di, si) = (qs.add(i * k), d.add(i * nsb), s.add(i * nsb));
                        let ei = if a.sh.is_empty() {
                            std::ptr::null()
                        } else {
                            a.sh.as_ptr().add(i * k / 32)
                        };
                        let mut g = p0;
                        while g < p1 {
                            let r0 = g * GROUP;
                            if VNNI
                                && na >= crate::kernels::x86_packed::ZMM_MIN_ROWS
                                && g + 1 < p1
                                && rows.end >= r0 + 2 * GROUP
                            {
                                // two full groups on 512-bit vectors
                                use crate::kernels::x86_packed_zmm::{tile_k16, tile_u16};
                                let o = out.add(i * ldo + r0);
                                let (w0, w1) = (w.add(g * gb), w.add((g + 1) * gb));
                                if p.units == 1 {
                                    let t = (w0, w1, nsb, qi, k, di, si, ap, o, ldo);
                                    match na {
                                        4 => tile_u16::<T, 4>(t),
                                        5 => tile_u16::<T, 5>(t),
                                        6 => tile_u16::<T, 6>(t),
                                        7 => tile_u16::<T, 7>(t),
                                        _ => tile_u16::<T, 8>(t),
                                    }
                                } else {
                                    let t = (w0, w1, nsb, qi, k, di, ap, ei, o, ldo);
                                    match na {
                                        4 => tile_k16::<T, 4>(t),
                                        5 => tile_k16::<T, 5>(t),
                                        6 => tile_k16::<T, 6>(t),
                                        7 => tile_k16::<T, 7>(t),
                                        _ => tile_k16::<T, 8>(t),
                                    }
                                }
                                g += 2;
                                continue;
                            }
                            let nvalid = rows.end.min(r0 + GROUP) - r0;
                            let o = out.add(i * ldo + r0);
                            let t: TileArgs =
                                (w.add(g * gb), nsb, qi, k, di, si, ap, ei, o, ldo, nvalid);
                            if p.units == 1 {
                                match na {
                                    1 => tile::<T, 1>(t),
                                    2 => tile::<T, 2>(t),
                                    3 => tile::<T, 3>(t),
                                    4 => tile::<T, 4>(t),
                                    5 => tile::<T, 5>(t),
                                    6 => tile::<T, 6>(t),
                                    7 => tile::<T, 7>(t),
                                    _ => tile::<T, 8>(t),
                                }
                            } else {
                                match na {
                                    1 => tile_k::<T, 1>(t),
                                    2 => tile_k::<T, 2>(t),
                                    3 => tile_k::<T, 3>(t),
                                    4 => tile_k::<T, 4>(t),
                                    5 => tile_k::<T, 5>(t),
                                    6 => tile_k::<T, 6>(t),
                                    7 => tile_k::<T, 7>(t),
                                    _ => tile_k::<T, 8>(t),
                                }
                            }
                            g += 1;
                        }
                        i += na;
                    }
                    p0 = p1;
                }
            }

            /// Packed K-family weights x their activations.
            ///
            /// # Safety
            /// The CPU must support this module's features; arguments as checked by
            /// `packed::matmul_packed_at`.
            #[target_feature(enable = $feat)]
            pub unsafe fn matmul(
                ty: WeightType,
                w: &[u8],
                k: usize,
                a: KActs<'_>,
                rows: Range<usize>,
                out: *mut f32,
                ldo: usize,
            ) {
                let w = w.as_ptr();
                match ty {
                    WeightType::Q5_0 => drive::<T_Q5_0>(w, k, a, rows, out, ldo),
                    WeightType::Q5_1 => drive::<T_Q5_1>(w, k, a, rows, out, ldo),
                    WeightType::IQ4_NL => drive::<T_IQ4_NL>(w, k, a, rows, out, ldo),
                    WeightType::Q2_K => drive::<T_Q2_K>(w, k, a, rows, out, ldo),
                    WeightType::Q3_K => drive::<T_Q3_K>(w, k, a, rows, out, ldo),
                    WeightType::Q4_K => drive::<T_Q4_K>(w, k, a, rows, out, ldo),
                    WeightType::Q5_K => drive::<T_Q5_K>(w, k, a, rows, out, ldo),
                    WeightType::Q6_K => drive::<T_Q6_K>(w, k, a, rows, out, ldo),
                    WeightType::IQ4_XS => drive::<T_IQ4_XS>(w, k, a, rows, out, ldo),
                    _ => unreachable!("not a packed_k type"),
                }
            }
        }
    };
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

/// Placeholder for the AVX2 instantiation (never called there: `VNNI` is false).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn vnni_wbcast_unavailable(
    acc: core::arch::x86_64::__m256i,
    _w: core::arch::x86_64::__m256i,
    _p: *const i16,
) -> core::arch::x86_64::__m256i {
    acc
}

/// `vpdpwssd acc, w, dword [p]{1to8}` (AVX-512 VNNI + VL): `acc + w.lo * p[0] + w.hi * p[1]`
/// per 32-bit lane, i16 pairs.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn vnni_wbcast(
    acc: core::arch::x86_64::__m256i,
    w: core::arch::x86_64::__m256i,
    p: *const i16,
) -> core::arch::x86_64::__m256i {
    let mut acc = acc;
    core::arch::asm!(
        "vpdpwssd {acc:y}, {w:y}, dword ptr [{p}]{{1to8}}",
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
unsafe fn vnni_bcast_off_unavailable<const OFF: usize>(
    acc: core::arch::x86_64::__m256i,
    _w: core::arch::x86_64::__m256i,
    _p: *const i8,
) -> core::arch::x86_64::__m256i {
    acc
}

/// `vpdpbusd acc, w, dword [p + OFF]{1to8}` (AVX-512 VNNI + VL).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
pub(crate) unsafe fn vnni_bcast_off<const OFF: usize>(
    acc: core::arch::x86_64::__m256i,
    w: core::arch::x86_64::__m256i,
    p: *const i8,
) -> core::arch::x86_64::__m256i {
    let mut acc = acc;
    core::arch::asm!(
        "vpdpbusd {acc:y}, {w:y}, dword ptr [{p} + {off}]{{1to8}}",
        acc = inout(zmm_reg) acc,
        w = in(zmm_reg) w,
        p = in(reg) p,
        off = const OFF,
        options(pure, readonly, nostack, preserves_flags)
    );
    acc
}

mod avx2_impl {
    pub(super) use super::vnni_bcast_off_unavailable as vnni_bcast_off;
    pub(super) use super::vnni_bcast_unavailable as vnni_bcast;
    pub(super) use super::vnni_wbcast_unavailable as vnni_wbcast;
    pub(super) use super::{
        group_bytes, props_of, ty_of, KActs, Props, Range, TileArgs, WeightType, GROUP,
        KVALUES_IQ4NL, MAX_H, NA_MAX, PANEL, PREFETCH, PREFETCH_NA, T_IQ4_NL, T_IQ4_XS, T_Q2_K,
        T_Q3_K, T_Q4_K, T_Q5_0, T_Q5_1, T_Q5_K, T_Q6_K,
    };
    kpacked!(k, "avx2,fma,f16c", false);
}
mod vnni_impl {
    pub(super) use super::super::x86_packed::vnni_bcast;
    pub(super) use super::vnni_bcast_off;
    pub(super) use super::vnni_wbcast;
    pub(super) use super::{
        group_bytes, props_of, ty_of, KActs, Props, Range, TileArgs, WeightType, GROUP,
        KVALUES_IQ4NL, MAX_H, NA_MAX, PANEL, PREFETCH, PREFETCH_NA, T_IQ4_NL, T_IQ4_XS, T_Q2_K,
        T_Q3_K, T_Q4_K, T_Q5_0, T_Q5_1, T_Q5_K, T_Q6_K,
    };
    kpacked!(
        k,
        "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
        true
    );
}

pub use avx2_impl::k as avx2;
pub use vnni_impl::k as vnni;

/// The Q8_K activation quantizer (`kdot::quantize_acts_k`, its scalar twin) with AVX2: the same
/// steps per 256-block (value of largest magnitude, first on ties; `iscale = -127 / max`; per
/// 32-value sub-block the shift `kdot::sub_shift(|iscale| * amax_j)`, codes
/// `round_half_even((iscale * x) * 2^s)` clamped to ±127, factor exponent `3 - s`; sums per 16
/// times the factor; `d = 1 / iscale`), so the same bits. A block holding a NaN or an infinity,
/// or whose scale overflows, goes to the scalar twin.
pub mod quant {
    use crate::kernels::kdot;
    use crate::quant::QK_K;
    use core::arch::x86_64::*;

    /// Largest lane of `m`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn hmax(m: __m256) -> f32 {
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)))
    }

    /// See the module documentation; lengths as `kernels::quantize_acts_k` checks them.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn quantize_acts_k(
        x: &[f32],
        qs: &mut [i8],
        d: &mut [f32],
        bsums: &mut [i16],
        sh: &mut [u8],
        smax: u32,
    ) {
        let smax = smax.min(3);
        let absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let (lo, hi) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
        for (b, xb) in x.chunks_exact(QK_K).enumerate() {
            let p = xb.as_ptr();
            // max |x| per 32-value sub-block and whether any value is NaN or infinite
            let mut sub = [0f32; 8];
            let mut bad = _mm256_setzero_ps();
            for (j, sj) in sub.iter_mut().enumerate() {
                let mut m = _mm256_setzero_ps();
                for v in 0..4 {
                    let a = _mm256_and_ps(_mm256_loadu_ps(p.add(32 * j + 8 * v)), absm);
                    m = _mm256_max_ps(a, m);
                    // |x| == inf or NaN: not (|x| < inf)
                    bad = _mm256_or_ps(
                        bad,
                        _mm256_cmp_ps::<_CMP_NLT_UQ>(a, _mm256_set1_ps(f32::INFINITY)),
                    );
                }
                *sj = hmax(m);
            }
            let (qb, db, sb, eb) = (
                &mut qs[b * QK_K..(b + 1) * QK_K],
                &mut d[b..b + 1],
                &mut bsums[b * 16..(b + 1) * 16],
                &mut sh[b * 8..(b + 1) * 8],
            );
            let amax = sub.iter().fold(0f32, |m, &v| m.max(v));
            if amax == 0.0 {
                db[0] = 0.0;
                qb.fill(0);
                sb.fill(0);
                eb.fill(0);
                continue;
            }
            // the first value of that magnitude, with its sign
            let max = *xb.iter().find(|v| v.abs() == amax).unwrap_or(&amax);
            let iscale = -127.0 / max;
            // non-finite inputs, or a scale that overflows (tiny blocks): NaN products
            if _mm256_movemask_ps(bad) != 0 || !iscale.is_finite() {
                kdot::quantize_acts_k_max(xb, qb, db, sb, eb, smax);
                continue;
            }
            let is = _mm256_set1_ps(iscale);
            for (j, &aj) in sub.iter().enumerate() {
                let s = kdot::sub_shift(iscale.abs() * aj).min(smax);
                let p2 = _mm256_set1_ps((1u32 << s) as f32);
                eb[j] = 3 - s as u8;
                for h in 0..2 {
                    let o = 32 * j + 16 * h;
                    let mut c = [_mm256_setzero_si256(); 2];
                    for (g, cg) in c.iter_mut().enumerate() {
                        let v = _mm256_mul_ps(is, _mm256_loadu_ps(p.add(o + 8 * g)));
                        let v = _mm256_mul_ps(v, p2);
                        let r =
                            _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                        *cg = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
                    }
                    // 16 codes: i32 -> i16 -> i8 (in order after the lane permute)
                    let w =
                        _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(c[0], c[1]));
                    let w128 = _mm_packs_epi16(
                        _mm256_castsi256_si128(w),
                        _mm256_extracti128_si256::<1>(w),
                    );
                    _mm_storeu_si128(qb.as_mut_ptr().add(o) as *mut __m128i, w128);
                    let t = _mm256_add_epi32(c[0], c[1]);
                    let t4 =
                        _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t));
                    let t2 = _mm_add_epi32(t4, _mm_unpackhi_epi64(t4, t4));
                    let t1 = _mm_add_epi32(t2, _mm_shuffle_epi32::<1>(t2));
                    sb[2 * j + h] = (_mm_cvtsi128_si32(t1) as i16) << (3 - s);
                }
            }
            db[0] = 1.0 / iscale;
        }
    }
}
