//! The packed Q4_0 / Q4_1 / Q8_0 tile on 512-bit vectors (AVX-512 F/BW/VL + VNNI): two groups,
//! 16 weight rows, per vector, so every `vpdpbusd` and every per-row step (the block bias, the
//! conversion, the scale product and the fused multiply-add) serves 16 rows instead of 8. Same
//! integer sums and the same float operations per lane as the 256-bit tile (`x86_packed.rs`),
//! so the same bits. Built only by a compiler with the AVX-512 intrinsics (Rust 1.89; build.rs
//! sets `qorus_avx512`); older ones run the 256-bit tile.

// built only by Rust >= 1.89 (cfg qorus_avx512); the tile indexes several arrays by row
#![allow(clippy::incompatible_msrv, clippy::needless_range_loop)]

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
        for (t, &w) in wv.iter().enumerate() {
            for i in 0..NA {
                let x = (a0.add(i * k + 4 * t) as *const i32).read_unaligned();
                acc[i] = _mm512_dpbusd_epi32(acc[i], w, _mm512_set1_epi32(x));
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
