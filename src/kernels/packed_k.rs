//! Row-interleaved packing of the K-quant family (Q5_0, Q5_1, IQ4_NL, Q2_K..Q6_K, IQ4_XS) for the
//! SIMD matmuls, and the scalar twin that reads the packed layout.
//!
//! Every type is repacked into one layout of *units* of 32 values: each value becomes an
//! unsigned code `c = q + BIAS` (or, for IQ4_NL / IQ4_XS, its 4-bit index into the code book)
//! whose low 4 bits go into a nibble plane laid out exactly as the packed Q4_0 quants
//! (`packed.rs`: 4 vectors of 32 bytes, lane `j` = row `j` of the group, low nibbles values
//! `4t..4t+4`, high nibbles values `16+4t..16+4t+4` of the unit) and whose higher bits (Q5: 1,
//! Q6_K: 2) go into a high plane: HB = 1: one vector, byte `e` of lane `j` holding in bit `t` the
//! 5th bit of value `4t+e` and in bit `4+t` that of value `16+4t+e`; HB = 2: two vectors (values
//! `4t+e` then `16+4t+e`), bits `2t..2t+2`.
//!
//! A group's super-block (256 values = 8 units for the 256-block types; one 32-value block = 1
//! unit otherwise) is: the 8 rows' `d` (f16, 16 bytes), the 8 rows' `dmin` (or Q5_1's `m`) when
//! the type has one (16 bytes), then per unit: the sub-block scales as i8 (8 bytes, or 16 for the
//! types with sub-blocks of 16: the unit's first and second half), the mins likewise, the nibble
//! plane (128 bytes) and the high plane (32 * HB bytes). Super-blocks follow each other; the
//! group is padded to a multiple of 64 bytes. Rows past the matrix's end are zero.
//!
//! The arithmetic is `kdot`'s (its module documentation), so packed and unpacked products agree
//! bit for bit: per unit, the exact integer dots of the low- and high-nibble halves, minus
//! `BIAS` times the activation sums of the halves, times the sub-block scales (and, with Q8_K
//! activations, the unit's activation factor `2^e`, the sums being pre-scaled by it); the mins
//! times the activation sums; then per super-block `fma`s with the scales (the activation unit
//! `d / 8` for Q8_K).

use std::ops::Range;

use super::kdot;
use super::packed::{AlignedBuf, GROUP};
use crate::quant::kquants::{decode, dequantize_decoded, Decoded, KVALUES_IQ4NL};
use crate::quant::reference::f32_to_f16_bits;
use crate::quant::{WeightType, QK};

/// How a type sits in the packed layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Props {
    /// 32-value units per super-block (1 or 8).
    pub units: usize,
    /// Sub-blocks of 16 (two scales per unit) rather than 32.
    pub s16: bool,
    /// Bits above the nibble (0, 1 or 2).
    pub hb: usize,
    /// Integer mins with an f16 `dmin`.
    pub min: bool,
    /// Q5_1's additive f16 min.
    pub add_min: bool,
    /// Code offset: `c = q + bias`.
    pub bias: i32,
    /// Codes are IQ4 code-book indices.
    pub lut: bool,
}

/// The layout properties of `ty`, `None` for types this module does not pack.
pub const fn props(ty: WeightType) -> Option<Props> {
    // (units, s16, hb, min, add_min, bias, lut)
    let (units, s16, hb, min, add_min, bias, lut) = match ty {
        WeightType::Q5_0 => (1, false, 1, false, false, 16, false),
        WeightType::Q5_1 => (1, false, 1, false, true, 0, false),
        WeightType::IQ4_NL => (1, false, 0, false, false, 0, true),
        WeightType::Q2_K => (8, true, 0, true, false, 0, false),
        WeightType::Q3_K => (8, true, 0, false, false, 4, false),
        WeightType::Q4_K => (8, false, 0, true, false, 0, false),
        WeightType::Q5_K => (8, false, 1, true, false, 0, false),
        WeightType::Q6_K => (8, true, 2, false, false, 32, false),
        WeightType::IQ4_XS => (8, false, 0, false, false, 0, true),
        _ => return None,
    };
    Some(Props {
        units,
        s16,
        hb,
        min,
        add_min,
        bias,
        lut,
    })
}

impl Props {
    /// Bytes at the start of a super-block: `d` (and `dmin` / `m`).
    pub const fn head_bytes(&self) -> usize {
        if self.min || self.add_min {
            32
        } else {
            16
        }
    }
    /// Scale bytes per unit (none for the 32-value types: their scale is 1).
    pub const fn sc_bytes(&self) -> usize {
        if self.units == 1 {
            0
        } else if self.s16 {
            16
        } else {
            8
        }
    }
    /// Min bytes per unit.
    pub const fn m_bytes(&self) -> usize {
        if self.min {
            self.sc_bytes()
        } else {
            0
        }
    }
    /// Bytes of one unit (scales, mins, nibbles, high plane).
    pub const fn unit_bytes(&self) -> usize {
        self.sc_bytes() + self.m_bytes() + 128 + 32 * self.hb
    }
    /// Bytes of one super-block of a group.
    pub const fn sb_bytes(&self) -> usize {
        self.head_bytes() + self.units * self.unit_bytes()
    }
    /// Values per super-block.
    pub const fn sb_len(&self) -> usize {
        32 * self.units
    }
}

/// Bytes of one group of a `cols`-wide matrix of `ty` (a multiple of 64).
pub fn group_bytes(ty: WeightType, cols: usize) -> usize {
    let p = props(ty).expect("packed_k type");
    (cols / p.sb_len() * p.sb_bytes() + 63) & !63
}

/// Index of an IQ4 code-book value.
fn lut_index(v: i8) -> u8 {
    KVALUES_IQ4NL.iter().position(|&x| x == v).unwrap_or(0) as u8
}

/// Packs row `r` (`row` its bytes) of a `cols`-wide matrix into its group `grp`.
pub fn pack_row(ty: WeightType, row: &[u8], cols: usize, j: usize, grp: &mut [u8]) {
    let p = props(ty).expect("packed_k type");
    let (bb, sbl, sbb) = (ty.block_bytes(), p.sb_len(), p.sb_bytes());
    let mut dec = Decoded::default();
    for b in 0..cols / sbl {
        decode(ty, &row[b * bb..(b + 1) * bb], &mut dec);
        let sb = &mut grp[b * sbb..(b + 1) * sbb];
        sb[2 * j..2 * j + 2].copy_from_slice(&f32_to_f16_bits(dec.d).to_le_bytes());
        if p.min {
            sb[16 + 2 * j..18 + 2 * j].copy_from_slice(&f32_to_f16_bits(dec.dmin).to_le_bytes());
        }
        if let Some(m) = dec.add_min {
            sb[16 + 2 * j..18 + 2 * j].copy_from_slice(&f32_to_f16_bits(m).to_le_bytes());
        }
        for u in 0..p.units {
            let o = p.head_bytes() + u * p.unit_bytes();
            let unit = &mut sb[o..o + p.unit_bytes()];
            if p.units > 1 {
                // sub-block scales (and mins) of this unit
                let (scb, n) = (p.sc_bytes(), if p.s16 { 2 } else { 1 });
                for h in 0..n {
                    let s = u * n + h;
                    unit[8 * h + j] = dec.sc[s] as i8 as u8;
                    if p.min {
                        unit[scb + 8 * h + j] = dec.m[s] as i8 as u8;
                    }
                }
            }
            let q0 = p.sc_bytes() + p.m_bytes();
            let code = |v: usize| -> u8 {
                let q = dec.q[32 * u + v];
                if p.lut {
                    lut_index(q)
                } else {
                    (q as i32 + p.bias) as u8
                }
            };
            for e in 0..16 {
                let (lo, hi) = (code(e), code(e + 16));
                let (t, ee) = (e / 4, e % 4);
                unit[q0 + 32 * t + 4 * j + ee] = (lo & 15) | ((hi & 15) << 4);
                match p.hb {
                    1 => {
                        let at = q0 + 128 + 4 * j + ee;
                        unit[at] |= ((lo >> 4) & 1) << t | ((hi >> 4) & 1) << (4 + t);
                    }
                    2 => {
                        let at = q0 + 128 + 4 * j + ee;
                        unit[at] |= ((lo >> 4) & 3) << (2 * t);
                        unit[at + 32] |= ((hi >> 4) & 3) << (2 * t);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Reads super-block `b` of row `j` of group `grp` back into the decoded form.
pub fn unpack_sb(ty: WeightType, grp: &[u8], b: usize, j: usize, dec: &mut Decoded) {
    let p = props(ty).expect("packed_k type");
    let sb = &grp[b * p.sb_bytes()..(b + 1) * p.sb_bytes()];
    let f16 = |o: usize| super::scalar::f16_at(sb, o);
    dec.n = p.sb_len();
    dec.sub = if p.units == 1 {
        QK
    } else if p.s16 {
        16
    } else {
        32
    };
    dec.d = f16(2 * j);
    dec.has_min = p.min;
    dec.dmin = if p.min { f16(16 + 2 * j) } else { 0.0 };
    dec.add_min = p.add_min.then(|| f16(16 + 2 * j));
    for u in 0..p.units {
        let unit = &sb[p.head_bytes() + u * p.unit_bytes()..];
        if p.units > 1 {
            let (scb, n) = (p.sc_bytes(), if p.s16 { 2 } else { 1 });
            for h in 0..n {
                dec.sc[u * n + h] = unit[8 * h + j] as i8 as i32;
                dec.m[u * n + h] = if p.min {
                    unit[scb + 8 * h + j] as i8 as i32
                } else {
                    0
                };
            }
        } else {
            dec.sc[0] = 1;
            dec.m[0] = 0;
        }
        let q0 = p.sc_bytes() + p.m_bytes();
        for e in 0..16 {
            let (t, ee) = (e / 4, e % 4);
            let byte = unit[q0 + 32 * t + 4 * j + ee];
            let (mut lo, mut hi) = (byte & 15, byte >> 4);
            match p.hb {
                1 => {
                    let h = unit[q0 + 128 + 4 * j + ee];
                    lo |= ((h >> t) & 1) << 4;
                    hi |= ((h >> (4 + t)) & 1) << 4;
                }
                2 => {
                    lo |= ((unit[q0 + 128 + 4 * j + ee] >> (2 * t)) & 3) << 4;
                    hi |= ((unit[q0 + 160 + 4 * j + ee] >> (2 * t)) & 3) << 4;
                }
                _ => {}
            }
            let val = |c: u8| -> i8 {
                if p.lut {
                    KVALUES_IQ4NL[c as usize]
                } else {
                    (c as i32 - p.bias) as i8
                }
            };
            dec.q[32 * u + e] = val(lo);
            dec.q[32 * u + e + 16] = val(hi);
        }
    }
}

/// Dequantizes row `row` of a packed matrix (`gb` bytes per group) into `out[..cols]`.
pub fn dequantize_row(
    ty: WeightType,
    data: &[u8],
    gb: usize,
    cols: usize,
    row: usize,
    out: &mut [f32],
) {
    let p = props(ty).expect("packed_k type");
    let (g, j) = (row / GROUP, row % GROUP);
    let grp = &data[g * gb..(g + 1) * gb];
    let mut dec = Decoded::default();
    for b in 0..cols / p.sb_len() {
        unpack_sb(ty, grp, b, j, &mut dec);
        dequantize_decoded(&dec, &mut out[b * p.sb_len()..(b + 1) * p.sb_len()]);
    }
}

/// Activations of a packed K-family product: codes, per-super-block scales, and (Q5_1) the
/// scaled block sums.
#[derive(Clone, Copy, Debug)]
pub struct KActs<'a> {
    /// Codes, `n * k`.
    pub qs: &'a [i8],
    /// Scales, one per super-block of each row.
    pub d: &'a [f32],
    /// Q5_1: block sums times scale (else unused, may be empty).
    pub s: &'a [f32],
    /// Q8_K: the sums of each 16 consecutive codes times their factor, `n * k / 16` (the SIMD
    /// kernels use them instead of summing the codes again; empty for Q8 activations).
    pub bsums: &'a [i16],
    /// Q8_K: the exponents of the per-32 factors, `n * k / 32` (empty for Q8 activations).
    pub sh: &'a [u8],
    /// Rows.
    pub n: usize,
}

/// The scalar twin: `out[i*ldo + r]` for `r` in `rows`, `i < a.n`.
///
/// # Safety
/// `out` valid for those writes; arguments checked by `packed::matmul_packed_at`.
pub unsafe fn matmul_scalar(
    ty: WeightType,
    data: &[u8],
    cols: usize,
    a: KActs<'_>,
    rows: Range<usize>,
    out: *mut f32,
    ldo: usize,
) {
    let p = props(ty).expect("packed_k type");
    let gb = group_bytes(ty, cols);
    let (sbl, nsb) = (p.sb_len(), cols / p.sb_len());
    let mut dec = Decoded::default();
    for r in rows {
        let (g, j) = (r / GROUP, r % GROUP);
        let grp = &data[g * gb..(g + 1) * gb];
        for i in 0..a.n {
            let mut acc = 0f32;
            for b in 0..nsb {
                unpack_sb(ty, grp, b, j, &mut dec);
                let o = i * cols + b * sbl;
                let x = &a.qs[o..o + sbl];
                // Q8_K (the 8-unit types): factors per 32 and the unit d / 8
                let (e, da): (&[u8], f32) = if p.units > 1 {
                    (&a.sh[o / 32..(o + sbl) / 32], a.d[i * nsb + b] * 0.125)
                } else {
                    (&[], a.d[i * nsb + b])
                };
                let (sumi, summ) = kdot::block_sums(&dec, x, e);
                let s_a = if p.add_min { a.s[i * nsb + b] } else { 0.0 };
                acc = kdot::combine(acc, &dec, sumi, summ, da, s_a);
            }
            *out.add(i * ldo + r) = acc;
        }
    }
}

/// A whole matrix packed on its own (tests and benchmarks): buffer, group bytes.
pub fn pack_matrix(
    ty: WeightType,
    data: &[u8],
    rows: usize,
    cols: usize,
) -> Option<(AlignedBuf, usize)> {
    props(ty)?;
    let gb = group_bytes(ty, cols);
    let mut buf = AlignedBuf::zeroed(rows.div_ceil(GROUP) * gb)?;
    let rb = ty.row_bytes(cols)?;
    for r in 0..rows {
        let (g, j) = (r / GROUP, r % GROUP);
        pack_row(
            ty,
            &data[r * rb..(r + 1) * rb],
            cols,
            j,
            &mut buf.as_mut_slice()[g * gb..(g + 1) * gb],
        );
    }
    Some((buf, gb))
}
