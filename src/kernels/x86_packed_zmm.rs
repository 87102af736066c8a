//! The packed Q4_0 / Q4_1 / Q8_0 tile on 512-bit vectors (AVX-512 F/BW/VL + VNNI): two groups,
//! 16 weight rows, per vector, so every `vpdpbusd` and every per-row step (the block bias, the
//! conversion, the scale product and the fused multiply-add) serves 16 rows instead of 8. Same
//! integer sums and the same float operations per lane as the 256-bit tile (`x86_packed.rs`),
//! so the same bits.

// the tile indexes several arrays by row
#![allow(clippy::needless_range_loop)]

use core::arch::x86_64::*;

use super::packed::GROUP;

/// Arguments of a 16-row tile: first group, its second group, nb, b0, b1, activations, k,
/// activation scales, activation sums (Q4_1), per-block bias terms, output, output stride.
pub type Tile16Args = (
    *const u8,
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
);

/// `(block stride, scale bytes)` of the packed types (`packed.rs`): Q4_0, Q4_1, Q8_0.
const fn layout(t: u8) -> (usize, usize) {
    match t {
        0 => (144, 16),
        1 => (160, 32),
        _ => (272, 16),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pair256(p0: *const u8, p1: *const u8) -> __m512i {
    let lo = _mm256_loadu_si256(p0 as *const __m256i);
    let hi = _mm256_loadu_si256(p1 as *const __m256i);
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pair_f16(p0: *const u8, p1: *const u8) -> __m512 {
    let lo = _mm_loadu_si128(p0 as *const __m128i);
    let hi = _mm_loadu_si128(p1 as *const __m128i);
    _mm512_cvtph_ps(_mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi))
}

/// Two full groups (16 rows) x NA activation rows, blocks `b0..b1`, accumulators starting from
/// the outputs of the blocks before `b0` (as the 256-bit tile). `T`: 0 Q4_0, 1 Q4_1, 2 Q8_0.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VL/VNNI; pointers as the 256-bit tile's, both groups full.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn tile16<const T: u8, const NA: usize>(a: Tile16Args) {
    let (g0, g1, nb, b0, b1, qs, k, d, s, base, out, ldo) = a;
    let (bs, sbb) = layout(T);
    let mut accf = [_mm512_setzero_ps(); NA];
    if b0 > 0 {
        for (i, acc) in accf.iter_mut().enumerate() {
            *acc = _mm512_loadu_ps(out.add(i * ldo));
        }
    }
    let m0f = _mm512_set1_epi8(0x0F);
    for b in b0..b1 {
        let (k0, k1) = (g0.add(b * bs), g1.add(b * bs));
        let dw = pair_f16(k0, k1);
        let mw = if T == 1 {
            pair_f16(k0.add(16), k1.add(16))
        } else {
            _mm512_setzero_ps()
        };
        let (q0, q1) = (k0.add(sbb), k1.add(sbb));
        // vector t pairs with activation bytes 4t..4t+4 (Q4: t < 4 low nibbles, t >= 4 high)
        let mut wv = [_mm512_setzero_si512(); 8];
        if T == 2 {
            for (t, w) in wv.iter_mut().enumerate() {
                *w = pair256(q0.add(32 * t), q1.add(32 * t));
            }
        } else {
            for t in 0..4 {
                let x = pair256(q0.add(32 * t), q1.add(32 * t));
                wv[t] = _mm512_and_si512(x, m0f);
                wv[4 + t] = _mm512_and_si512(_mm512_srli_epi16::<4>(x), m0f);
            }
        }
        let a0 = qs.add(b * 32);
        let mut acc = [_mm512_setzero_si512(); NA];
        for i in 0..NA {
            acc[i] = _mm512_set1_epi32(*base.add(i * nb + b));
        }
        let ld = |i: usize, o: usize| {
            _mm512_set1_epi32((a0.add(i * k + o) as *const i32).read_unaligned())
        };
        if T == 2 {
            // Q8_0: one chain per row (a second one spills the 8 weight vectors)
            for (t, &w) in wv.iter().enumerate() {
                for i in 0..NA {
                    acc[i] = _mm512_dpbusd_epi32(acc[i], w, ld(i, 4 * t));
                }
            }
        } else {
            // Q4: two chains per row
            let mut acc2 = [_mm512_setzero_si512(); NA];
            for t in 0..4 {
                for i in 0..NA {
                    acc[i] = _mm512_dpbusd_epi32(acc[i], wv[t], ld(i, 4 * t));
                    acc2[i] = _mm512_dpbusd_epi32(acc2[i], wv[4 + t], ld(i, 16 + 4 * t));
                }
            }
            for i in 0..NA {
                acc[i] = _mm512_add_epi32(acc[i], acc2[i]);
            }
        }
        for i in 0..NA {
            let sc = _mm512_mul_ps(dw, _mm512_set1_ps(*d.add(i * nb + b)));
            accf[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i]), sc, accf[i]);
            if T == 1 {
                accf[i] = _mm512_fmadd_ps(mw, _mm512_set1_ps(*s.add(i * nb + b)), accf[i]);
            }
        }
    }
    for (i, &acc) in accf.iter().enumerate() {
        _mm512_storeu_ps(out.add(i * ldo), acc);
    }
    debug_assert_eq!(2 * GROUP, 16);
}

// ---------------------------------------------------------------------------------------------
// The K family's 8-unit types (Q2_K..Q6_K, IQ4_XS; `packed_k.rs` layout, `x86_packed_k.rs`
// arithmetic)

use crate::quant::kquants::KVALUES_IQ4NL;

/// Arguments of a 16-row K tile: first group, second group, super-blocks, codes of the tile's
/// first row, k, scales, activation sums (per 16, or per 32 for the 32-value sub-block types
/// with a correction, as `x86_packed_k::drive` makes them; times the factors), the Q8_K factor
/// exponents per 32 of the tile's first row (`k / 32` a row), output, output stride.
pub type TileK16Args = (
    *const u8,
    *const u8,
    usize,
    *const i8,
    usize,
    *const f32,
    *const i16,
    *const u8,
    *mut f32,
    usize,
);

/// 8 bytes at `p0` then 8 at `p1`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pair64(p0: *const u8, p1: *const u8) -> __m128i {
    _mm_unpacklo_epi64(
        _mm_loadl_epi64(p0 as *const __m128i),
        _mm_loadl_epi64(p1 as *const __m128i),
    )
}

/// `x86_packed_k`'s `unit_codes` for two groups.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn unit_codes16(hb: usize, q0: *const u8, q1: *const u8) -> ([__m512i; 4], [__m512i; 4]) {
    let m0f = _mm512_set1_epi8(0x0F);
    let mut wl = [_mm512_setzero_si512(); 4];
    let mut wh = [_mm512_setzero_si512(); 4];
    for t in 0..4 {
        let x = pair256(q0.add(32 * t), q1.add(32 * t));
        wl[t] = _mm512_and_si512(x, m0f);
        wh[t] = _mm512_and_si512(_mm512_srli_epi16::<4>(x), m0f);
    }
    let merge = |w: __m512i, h: __m512i, m: __m512i| _mm512_or_si512(w, _mm512_and_si512(h, m));
    if hb == 1 {
        let h = pair256(q0.add(128), q1.add(128));
        let m = _mm512_set1_epi8(0x10);
        wl[0] = merge(wl[0], _mm512_slli_epi16::<4>(h), m);
        wl[1] = merge(wl[1], _mm512_slli_epi16::<3>(h), m);
        wl[2] = merge(wl[2], _mm512_slli_epi16::<2>(h), m);
        wl[3] = merge(wl[3], _mm512_slli_epi16::<1>(h), m);
        wh[0] = merge(wh[0], h, m);
        wh[1] = merge(wh[1], _mm512_srli_epi16::<1>(h), m);
        wh[2] = merge(wh[2], _mm512_srli_epi16::<2>(h), m);
        wh[3] = merge(wh[3], _mm512_srli_epi16::<3>(h), m);
    } else if hb == 2 {
        let h0 = pair256(q0.add(128), q1.add(128));
        let h1 = pair256(q0.add(160), q1.add(160));
        let m = _mm512_set1_epi8(0x30);
        wl[0] = merge(wl[0], _mm512_slli_epi16::<4>(h0), m);
        wl[1] = merge(wl[1], _mm512_slli_epi16::<2>(h0), m);
        wl[2] = merge(wl[2], h0, m);
        wl[3] = merge(wl[3], _mm512_srli_epi16::<2>(h0), m);
        wh[0] = merge(wh[0], _mm512_slli_epi16::<4>(h1), m);
        wh[1] = merge(wh[1], _mm512_slli_epi16::<2>(h1), m);
        wh[2] = merge(wh[2], h1, m);
        wh[3] = merge(wh[3], _mm512_srli_epi16::<2>(h1), m);
    }
    (wl, wh)
}

/// The IQ4 code book shifted by 128 into unsigned bytes, in every 128-bit lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn iq4_table() -> __m512i {
    let mut lutb = [0u8; 16];
    for (o, &v) in lutb.iter_mut().zip(KVALUES_IQ4NL.iter()) {
        *o = (v as i32 + 128) as u8;
    }
    _mm512_broadcast_i32x4(_mm_loadu_si128(lutb.as_ptr() as *const __m128i))
}

/// One unit's code dots for NA activation rows (`a0` the unit's codes of the first row, rows
/// `k` apart), one chain per row: low halves, then high halves.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn unit_dots16<const NA: usize>(
    wl: &[__m512i; 4],
    wh: &[__m512i; 4],
    a0: *const i8,
    k: usize,
) -> [__m512i; NA] {
    let ld =
        |i: usize, o: usize| _mm512_set1_epi32((a0.add(i * k + o) as *const i32).read_unaligned());
    let mut x = [_mm512_setzero_si512(); NA];
    for t in 0..4 {
        for i in 0..NA {
            x[i] = _mm512_dpbusd_epi32(x[i], wl[t], ld(i, 4 * t));
        }
    }
    for t in 0..4 {
        for i in 0..NA {
            x[i] = _mm512_dpbusd_epi32(x[i], wh[t], ld(i, 16 + 4 * t));
        }
    }
    x
}

/// Correction pairs of two sub-block byte rows (`x86_packed_k`'s `corr_pairs`) for two groups:
/// `a0`/`b0` the first and second sources of group one, `a1`/`b1` of group two.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn corr_pairs16(
    a0: *const u8,
    b0: *const u8,
    a1: *const u8,
    b1: *const u8,
    min: bool,
    bias: i32,
) -> __m512i {
    let (lo, hi) = (pair64(a0, a1), pair64(b0, b1));
    let x = _mm256_inserti128_si256::<1>(
        _mm256_castsi128_si256(_mm_unpacklo_epi8(lo, hi)),
        _mm_unpackhi_epi8(lo, hi),
    );
    let v = _mm512_cvtepi8_epi16(x);
    if min {
        v
    } else {
        _mm512_mullo_epi16(v, _mm512_set1_epi16(bias as i16))
    }
}

/// Two full groups (16 rows) x NA activation rows, all super-blocks, of the 8-unit K type `T`
/// (`x86_packed_k`'s type codes): `x86_packed_k`'s `tile_k` on 512-bit vectors, the same
/// integers and float steps per lane.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VL/VNNI; pointers as `tile_k`'s, both groups full.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn tile_k16<const T: u8, const NA: usize>(a: TileK16Args) {
    let (g0, g1, nsb, qs, k, d, asum, sh, out, ldo) = a;
    let p = super::x86_packed_k::props_of(T);
    let (head, ub, sbb, sbl) = (p.head_bytes(), p.unit_bytes(), p.sb_bytes(), p.sb_len());
    let k32 = k / 32;
    // `x << 2^e` for the factor exponent at `e`
    let fac = |x: __m512i, e: *const u8| _mm512_sll_epi32(x, _mm_cvtsi32_si128(*e as i32));
    let (scb, mb) = (p.sc_bytes(), p.m_bytes());
    // the IQ4 values shifted by 128 into unsigned bytes
    let bias = if p.lut { 128 } else { p.bias };
    let kh = k / 16;
    let tbl = iq4_table();
    let mut accf = [_mm512_setzero_ps(); NA];
    for b in 0..nsb {
        let (s0, s1) = (g0.add(b * sbb), g1.add(b * sbb));
        let mut sumi = [_mm512_setzero_si512(); NA];
        for u in 0..p.units {
            let (u0, u1) = (s0.add(head + u * ub), s1.add(head + u * ub));
            let (mut wl, mut wh) = unit_codes16(p.hb, u0.add(scb + mb), u1.add(scb + mb));
            if p.lut {
                for t in 0..4 {
                    wl[t] = _mm512_shuffle_epi8(tbl, wl[t]);
                    wh[t] = _mm512_shuffle_epi8(tbl, wh[t]);
                }
            }
            let sc0 = _mm512_cvtepi8_epi32(pair64(u0, u1));
            let a0 = qs.add(b * sbl + 32 * u);
            let e0 = sh.add(b * 8 + u);
            let ld = |i: usize, o: usize| {
                _mm512_set1_epi32((a0.add(i * k + o) as *const i32).read_unaligned())
            };
            if p.s16 {
                let sc1 = _mm512_cvtepi8_epi32(pair64(u0.add(8), u1.add(8)));
                let mut lo = [_mm512_setzero_si512(); NA];
                let mut hi = [_mm512_setzero_si512(); NA];
                for t in 0..4 {
                    for i in 0..NA {
                        lo[i] = _mm512_dpbusd_epi32(lo[i], wl[t], ld(i, 4 * t));
                        hi[i] = _mm512_dpbusd_epi32(hi[i], wh[t], ld(i, 16 + 4 * t));
                    }
                }
                for i in 0..NA {
                    let x = _mm512_add_epi32(
                        _mm512_mullo_epi32(sc0, lo[i]),
                        _mm512_mullo_epi32(sc1, hi[i]),
                    );
                    sumi[i] = _mm512_add_epi32(sumi[i], fac(x, e0.add(i * k32)));
                }
            } else {
                let x = unit_dots16::<NA>(&wl, &wh, a0, k);
                for i in 0..NA {
                    let y = fac(_mm512_mullo_epi32(sc0, x[i]), e0.add(i * k32));
                    sumi[i] = _mm512_add_epi32(sumi[i], y);
                }
            }
        }
        // the mins or the code offset
        let mut summ = [_mm512_setzero_si512(); NA];
        if p.min || bias != 0 {
            let np = if p.s16 { 8 } else { 4 };
            let off = if p.min { scb } else { 0 };
            let mut pairs = [_mm512_setzero_si512(); 8];
            for (v, pr) in pairs.iter_mut().enumerate().take(np) {
                let (o0, o1) = if p.s16 {
                    (head + v * ub + off, head + v * ub + off + 8)
                } else {
                    (head + 2 * v * ub + off, head + (2 * v + 1) * ub + off)
                };
                *pr = corr_pairs16(s0.add(o0), s0.add(o1), s1.add(o0), s1.add(o1), p.min, bias);
            }
            let ka = if p.s16 { kh } else { kh / 2 };
            for i in 0..NA {
                let ai = asum.add(i * ka + b * 2 * np);
                let mut c = _mm512_setzero_si512();
                for (v, &pr) in pairs.iter().enumerate().take(np) {
                    let x = (ai.add(2 * v) as *const i32).read_unaligned();
                    c = _mm512_dpwssd_epi32(c, pr, _mm512_set1_epi32(x));
                }
                if p.min {
                    summ[i] = c;
                } else {
                    sumi[i] = _mm512_sub_epi32(sumi[i], c);
                }
            }
        }
        let dw = pair_f16(s0, s1);
        let d2 = if p.min {
            pair_f16(s0.add(16), s1.add(16))
        } else {
            _mm512_setzero_ps()
        };
        for i in 0..NA {
            // the unit d / 8 of the Q8_K codes times their factors
            let da = _mm512_set1_ps(*d.add(i * nsb + b) * 0.125);
            accf[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[i]), _mm512_mul_ps(dw, da), accf[i]);
            if p.min {
                // -(d2 * da) by the sign bit, as the 256-bit tile
                let nm = _mm512_castsi512_ps(_mm512_xor_si512(
                    _mm512_castps_si512(_mm512_mul_ps(d2, da)),
                    _mm512_set1_epi32(i32::MIN),
                ));
                accf[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(summ[i]), nm, accf[i]);
            }
        }
    }
    for (i, &acc) in accf.iter().enumerate() {
        _mm512_storeu_ps(out.add(i * ldo), acc);
    }
}

/// Arguments of a 16-row tile of a one-unit K-family type: first group, second group, blocks,
/// codes of the tile's first row, k, scales, scaled sums (Q5_1), activation sums per 16,
/// output, output stride.
pub type TileU16Args = (
    *const u8,
    *const u8,
    usize,
    *const i8,
    usize,
    *const f32,
    *const f32,
    *const i16,
    *mut f32,
    usize,
);

/// Two full groups (16 rows) x NA activation rows of a one-unit K-family type `T` (Q5_0, Q5_1,
/// IQ4_NL with Q8 activations): `x86_packed_k`'s `tile` on 512-bit vectors, the same integers
/// and float steps per lane.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VL/VNNI; pointers as `tile`'s, both groups full.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn tile_u16<const T: u8, const NA: usize>(a: TileU16Args) {
    let (g0, g1, nsb, qs, k, d, s, asum, out, ldo) = a;
    let p = super::x86_packed_k::props_of(T);
    let (head, sbb, sbl) = (p.head_bytes(), p.sb_bytes(), p.sb_len());
    let bias = if p.lut { 128 } else { p.bias };
    let kh = k / 16;
    let tbl = iq4_table();
    let mut accf = [_mm512_setzero_ps(); NA];
    for b in 0..nsb {
        let (s0, s1) = (g0.add(b * sbb), g1.add(b * sbb));
        let (mut wl, mut wh) = unit_codes16(p.hb, s0.add(head), s1.add(head));
        if p.lut {
            for t in 0..4 {
                wl[t] = _mm512_shuffle_epi8(tbl, wl[t]);
                wh[t] = _mm512_shuffle_epi8(tbl, wh[t]);
            }
        }
        let dw = pair_f16(s0, s1);
        let d2 = if p.add_min {
            pair_f16(s0.add(16), s1.add(16))
        } else {
            _mm512_setzero_ps()
        };
        let a0 = qs.add(b * sbl);
        let x = unit_dots16::<NA>(&wl, &wh, a0, k);
        for i in 0..NA {
            let mut xi = x[i];
            if bias != 0 {
                let h = b * sbl / 16;
                let a01 = *asum.add(i * kh + h) as i32 + *asum.add(i * kh + h + 1) as i32;
                xi = _mm512_sub_epi32(xi, _mm512_set1_epi32(bias * a01));
            }
            let da = _mm512_set1_ps(*d.add(i * nsb + b));
            accf[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(xi), _mm512_mul_ps(dw, da), accf[i]);
            if p.add_min {
                accf[i] = _mm512_fmadd_ps(d2, _mm512_set1_ps(*s.add(i * nsb + b)), accf[i]);
            }
        }
    }
    for (i, &acc) in accf.iter().enumerate() {
        _mm512_storeu_ps(out.add(i * ldo), acc);
    }
}
