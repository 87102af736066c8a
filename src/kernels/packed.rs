//! Weights repacked at model build into row-interleaved groups for the SIMD matmuls.
//!
//! A ggml row stores its blocks one after the other, so a dot product reads 18 or 34 bytes per
//! block, unpacks them, and must sum 8 lanes horizontally at the end of every row. Here `GROUP`
//! (8) consecutive rows are interleaved so that one 256-bit vector holds 4 consecutive values of
//! each of the 8 rows (one row per 32-bit lane): an integer dot-product instruction (`vpdpbusd`,
//! or `vpmaddubsw`+`vpmaddwd`) with 4 broadcast activation bytes then advances 8 rows at once,
//! every lane accumulates its own row, and no horizontal sum is needed.
//!
//! Layout of one group (64-byte aligned, `group_bytes` long), `nb = cols / 32` blocks, one block
//! after the other (`block_stride` bytes each, so a matmul reads the group as one ascending
//! stream: with the scales kept in a separate area at the start of the group, groups larger
//! than 4 KiB streamed from DRAM at 9-12 GB/s instead of 20-25, the hardware prefetchers losing
//! track of the two interleaved streams):
//! * the 8 rows' `d` as f16 (16 bytes); for Q4_1 then the 8 rows' `m` (16 bytes);
//! * the quants: Q4_0 / Q4_1: 4 vectors of 32 bytes; lane `j` (bytes `4j..4j+4`) of vector
//!   `t` is bytes `4t..4t+4` of row `j`'s 16 nibble bytes, so the low nibbles are values
//!   `4t..4t+4` and the high nibbles values `16+4t..16+4t+4` (ggml's nibble order); Q8_0: 8
//!   vectors, lane `j` of vector `t` is values `4t..4t+4` of row `j` XOR 0x80 (unsigned `q+128`).
//!
//! The group is padded with zeros to a multiple of 64 bytes.
//!
//! Rows past the end of the matrix (last group) are zero. Every output is computed the same way
//! at every level and for every grouping of rows and activation rows: per block, the exact
//! integer dot `sumi` of the (signed) weights with the Q8 activations, then
//! `acc = fma(f32(sumi), d_w * d_a, acc)` (and for Q4_1 `acc = fma(m_w, s_a, acc)`), blocks in
//! order; the result is `acc`. So the logits do not depend on the thread count or on how many
//! activation rows go through together.
//!
//! The K-quant family (Q5_0, Q5_1, IQ4_NL, Q2_K..Q6_K, IQ4_XS) has its own layout and kernels
//! (`packed_k.rs`, `x86_packed_k.rs`) behind the same entry points (`packable`, `pack_into`,
//! `dequantize_row_packed`, `matmul_packed_at`).

use std::ops::Range;

use super::packed_k;
use super::scalar::f16_at;
use super::{dispatch, Acts, Level, MatRef};
use crate::quant::{WeightType, QK};

/// Rows interleaved per group.
pub const GROUP: usize = 8;

/// Largest `cols / 32` a packed matrix may have (the SIMD kernels keep per-block activation
/// sums for a tile of activation rows on the stack).
pub const MAX_BLOCKS: usize = 1024;

fn a64(x: usize) -> usize {
    (x + 63) & !63
}

/// Whether matrices of this type and width can be packed.
pub fn packable(ty: WeightType, cols: usize) -> bool {
    if let Some(p) = packed_k::props(ty) {
        return cols.is_multiple_of(p.sb_len()) && cols > 0 && cols / QK <= MAX_BLOCKS;
    }
    matches!(ty, WeightType::Q4_0 | WeightType::Q4_1 | WeightType::Q8_0)
        && cols.is_multiple_of(QK)
        && cols > 0
        && cols / QK <= MAX_BLOCKS
}

/// Scale bytes at the start of each block of a group: the 8 rows' `d` (and `m` for Q4_1), f16.
pub fn block_scale_bytes(ty: WeightType) -> usize {
    if ty == WeightType::Q4_1 {
        2 * GROUP * 2
    } else {
        GROUP * 2
    }
}

/// Quant bytes of one block of a group.
pub fn qblock_bytes(ty: WeightType) -> usize {
    if ty == WeightType::Q8_0 {
        GROUP * QK
    } else {
        GROUP * QK / 2
    }
}

/// Bytes from one block of a group to the next (scales + quants).
pub fn block_stride(ty: WeightType) -> usize {
    block_scale_bytes(ty) + qblock_bytes(ty)
}

/// Bytes of one group (a multiple of 64).
pub fn group_bytes(ty: WeightType, nb: usize) -> usize {
    a64(nb * block_stride(ty))
}

/// A 64-byte-aligned owned byte buffer.
pub struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
    /// On Linux, buffers of 2 MiB or more are their own anonymous mapping: (start, length).
    map: Option<(usize, usize)>,
}

// SAFETY: plain owned bytes.
unsafe impl Send for AlignedBuf {}
unsafe impl Sync for AlignedBuf {}

const HUGE: usize = 2 << 20;

impl AlignedBuf {
    /// `len` zero bytes (at least one byte is allocated). `None` if the allocation fails.
    /// Buffers of 2 MiB or more are 2 MiB aligned and asked to be backed by transparent huge
    /// pages: the weights are streamed once per token, and with 4 KiB pages the hardware
    /// prefetchers stop at every page boundary. On Linux they are fresh anonymous mappings, so
    /// their pages are zero without being touched: memory is only committed as it is written
    /// (repacking a model then never holds the whole packed copy and the file's pages at once).
    pub fn zeroed(len: usize) -> Option<AlignedBuf> {
        #[cfg(target_os = "linux")]
        if len >= HUGE {
            return Self::mapped(len);
        }
        let align = Self::align_for(len);
        let layout = std::alloc::Layout::from_size_align(len.max(1), align).ok()?;
        // SAFETY: non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = std::ptr::NonNull::new(p)?;
        Some(AlignedBuf {
            ptr,
            len,
            map: None,
        })
    }

    #[cfg(target_os = "linux")]
    fn mapped(len: usize) -> Option<AlignedBuf> {
        let map_len = len.checked_add(HUGE)?;
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let start = (base as usize).div_ceil(HUGE) * HUGE;
        // SAFETY: [start, start + len) lies inside the mapping just made; MADV_HUGEPAGE only
        // changes how its pages are backed.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
        Some(AlignedBuf {
            ptr: std::ptr::NonNull::new(start as *mut u8)?,
            len,
            map: Some((base as usize, map_len)),
        })
    }

    fn align_for(len: usize) -> usize {
        if len >= HUGE {
            HUGE
        } else {
            64
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: allocated with `len` bytes (zero-initialised).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and we hold `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if let Some((base, map_len)) = self.map {
            // SAFETY: the mapping made in `mapped`, unmapped once.
            unsafe { libc::munmap(base as *mut libc::c_void, map_len) };
            return;
        }
        if let Ok(layout) =
            std::alloc::Layout::from_size_align(self.len.max(1), Self::align_for(self.len))
        {
            // SAFETY: allocated in `zeroed` with this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) }
        }
    }
}

/// A packed matrix (owned).
pub struct PackedMat {
    buf: AlignedBuf,
    /// Storage format of the blocks.
    pub ty: WeightType,
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (inputs).
    pub cols: usize,
}

impl std::fmt::Debug for PackedMat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PackedMat({} {}x{})",
            self.ty.name(),
            self.rows,
            self.cols
        )
    }
}

impl PackedMat {
    /// The matrix as the kernels take it.
    pub fn as_ref(&self) -> PackedRef<'_> {
        PackedRef {
            ty: self.ty,
            data: self.buf.as_slice(),
            rows: self.rows,
            cols: self.cols,
        }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

impl AlignedBuf {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A packed matrix as the kernels take it.
#[derive(Clone, Copy, Debug)]
pub struct PackedRef<'a> {
    /// Storage format of the blocks.
    pub ty: WeightType,
    /// `rows.div_ceil(GROUP)` groups of `group_bytes` bytes, 64-byte aligned.
    pub data: &'a [u8],
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (inputs).
    pub cols: usize,
}

impl PackedRef<'_> {
    fn nb(&self) -> usize {
        self.cols / QK
    }
    fn gbytes(&self) -> usize {
        if packed_k::props(self.ty).is_some() {
            return packed_k::group_bytes(self.ty, self.cols);
        }
        group_bytes(self.ty, self.nb())
    }
}

/// Bytes `pack_into` needs for `w` (0 if it cannot be packed).
pub fn packed_bytes(ty: WeightType, rows: usize, cols: usize) -> usize {
    if !packable(ty, cols) {
        return 0;
    }
    if packed_k::props(ty).is_some() {
        return rows.div_ceil(GROUP) * packed_k::group_bytes(ty, cols);
    }
    rows.div_ceil(GROUP) * group_bytes(ty, cols / QK)
}

/// Packs `w` (Q4_0, Q4_1 or Q8_0 with `packable` width). `None` if it cannot be packed or the
/// buffer cannot be allocated.
pub fn pack(w: MatRef<'_>) -> Option<PackedMat> {
    let n = packed_bytes(w.ty, w.rows, w.cols);
    if n == 0 {
        return None;
    }
    let mut buf = AlignedBuf::zeroed(n)?;
    pack_into(w, buf.as_mut_slice())?;
    Some(PackedMat {
        buf,
        ty: w.ty,
        rows: w.rows,
        cols: w.cols,
    })
}

/// Packs `w` into `out` (`packed_bytes` long, 64-byte aligned, zeroed). `None` if it cannot be
/// packed.
pub fn pack_into(w: MatRef<'_>, out: &mut [u8]) -> Option<()> {
    if !packable(w.ty, w.cols) {
        return None;
    }
    let (ty, nb) = (w.ty, w.cols / QK);
    let rb = w.ty.row_bytes(w.cols)?;
    if w.data.len() < rb * w.rows
        || out.len() < packed_bytes(ty, w.rows, w.cols)
        || !(out.as_ptr() as usize).is_multiple_of(64)
    {
        return None;
    }
    if packed_k::props(ty).is_some() {
        let gb = packed_k::group_bytes(ty, w.cols);
        for r in 0..w.rows {
            let (g, j) = (r / GROUP, r % GROUP);
            let row = &w.data[r * rb..(r + 1) * rb];
            packed_k::pack_row(ty, row, w.cols, j, &mut out[g * gb..(g + 1) * gb]);
        }
        return Some(());
    }
    let gb = group_bytes(ty, nb);
    let bb = ty.block_bytes();
    let (bs, sbb, qb) = (block_stride(ty), block_scale_bytes(ty), qblock_bytes(ty));
    for r in 0..w.rows {
        let (g, j) = (r / GROUP, r % GROUP);
        let grp = &mut out[g * gb..(g + 1) * gb];
        for b in 0..nb {
            let blk = &w.data[r * rb + b * bb..r * rb + (b + 1) * bb];
            // d (and m) as f16 bits, copied as is
            let o = b * bs + 2 * j;
            grp[o..o + 2].copy_from_slice(&blk[0..2]);
            if ty == WeightType::Q4_1 {
                grp[o + 16..o + 18].copy_from_slice(&blk[2..4]);
            }
            let q0 = b * bs + sbb;
            let q = &mut grp[q0..q0 + qb];
            match ty {
                WeightType::Q8_0 => {
                    for t in 0..8 {
                        for e in 0..4 {
                            q[t * 32 + 4 * j + e] = blk[2 + 4 * t + e] ^ 0x80;
                        }
                    }
                }
                _ => {
                    let qs = if ty == WeightType::Q4_1 {
                        &blk[4..20]
                    } else {
                        &blk[2..18]
                    };
                    for t in 0..4 {
                        q[t * 32 + 4 * j..t * 32 + 4 * j + 4]
                            .copy_from_slice(&qs[4 * t..4 * t + 4]);
                    }
                }
            }
        }
    }
    Some(())
}

/// Signed quant value `c` (0..32) of block `b`, row `j` of group `grp`.
#[inline(always)]
fn qval(ty: WeightType, grp: &[u8], b: usize, j: usize, c: usize) -> i32 {
    let q0 = b * block_stride(ty) + block_scale_bytes(ty);
    match ty {
        WeightType::Q8_0 => {
            let (t, e) = (c / 4, c % 4);
            (grp[q0 + t * 32 + 4 * j + e] ^ 0x80) as i8 as i32
        }
        _ => {
            let (hi, cc) = (c >= 16, c % 16);
            let (t, e) = (cc / 4, cc % 4);
            let v = grp[q0 + t * 32 + 4 * j + e];
            let n = if hi { v >> 4 } else { v & 15 } as i32;
            if ty == WeightType::Q4_0 {
                n - 8
            } else {
                n
            }
        }
    }
}

/// Dequantizes row `row` of a packed matrix into `out[..cols]` (embedding lookups), exactly as
/// the original row dequantizes.
pub fn dequantize_row_packed(p: PackedRef<'_>, row: usize, out: &mut [f32]) {
    assert!(
        row < p.rows,
        "dequantize_row_packed: row {row} >= {}",
        p.rows
    );
    let nb = p.nb();
    assert!(
        out.len() >= p.cols,
        "dequantize_row_packed: output too short"
    );
    let gb = p.gbytes();
    if packed_k::props(p.ty).is_some() {
        return packed_k::dequantize_row(p.ty, p.data, gb, p.cols, row, out);
    }
    let bs = block_stride(p.ty);
    let (g, j) = (row / GROUP, row % GROUP);
    let grp = &p.data[g * gb..(g + 1) * gb];
    for b in 0..nb {
        let d = f16_at(grp, b * bs + 2 * j);
        let m = if p.ty == WeightType::Q4_1 {
            f16_at(grp, b * bs + 16 + 2 * j)
        } else {
            0.0
        };
        for c in 0..QK {
            let q = qval(p.ty, grp, b, j, c) as f32;
            out[b * QK + c] = if p.ty == WeightType::Q4_1 {
                q * d + m
            } else {
                q * d
            };
        }
    }
}

fn check(p: &PackedRef<'_>, a: &Acts<'_>, rows: &Range<usize>) {
    assert!(packable(p.ty, p.cols), "matmul_packed: bad packed matrix");
    assert!(
        p.data.len() >= p.rows.div_ceil(GROUP) * p.gbytes(),
        "matmul_packed: data too short"
    );
    assert!(
        rows.start <= rows.end && rows.end <= p.rows,
        "matmul_packed: rows {rows:?} outside 0..{}",
        p.rows
    );
    assert!(
        rows.start.is_multiple_of(GROUP),
        "matmul_packed: row range must start at a multiple of {GROUP}"
    );
    match *a {
        Acts::Q8 { .. } | Acts::Q8K { .. } if packed_k::props(p.ty).is_some() => {
            assert!(
                super::act_kind(p.ty)
                    == if matches!(a, Acts::Q8K { .. }) {
                        super::ActKind::Q8K
                    } else {
                        super::ActKind::Q8
                    },
                "matmul_packed: {} takes other activations",
                p.ty.name()
            );
            let (n, k) = a.shape();
            assert_eq!(k, p.cols, "matmul_packed: activation length != columns");
            let (qs, dl, sl) = match *a {
                Acts::Q8 { qs, d, s, .. } => (qs.len(), d.len() * QK, s.len() * QK),
                Acts::Q8K {
                    qs, d, bsums, sh, ..
                } => {
                    // the SIMD kernels read the (factor-scaled) sums; the factors must be <= 8
                    // (kdot's exactness bound)
                    assert!(
                        bsums.len() >= n * k / 16 && sh.len() >= n * k / 32,
                        "matmul_packed: Q8_K sums or factors too short"
                    );
                    assert!(
                        sh[..n * k / 32].iter().all(|&e| e <= 3),
                        "matmul_packed: Q8_K factor exponent above 3"
                    );
                    (qs.len(), d.len() * 256, n * k)
                }
                Acts::F32 { .. } => unreachable!(),
            };
            assert!(
                qs >= n * k && dl >= n * k,
                "matmul_packed: activations too short"
            );
            if p.ty == WeightType::Q5_1 {
                assert!(sl >= n * k, "matmul_packed: Q5_1 needs `s`");
            }
        }
        Acts::Q8 { qs, d, s, n, k } => {
            assert_eq!(k, p.cols, "matmul_packed: activation length != columns");
            assert!(
                qs.len() >= n * k && d.len() >= n * k / QK,
                "matmul_packed: Q8 activations too short"
            );
            if p.ty == WeightType::Q4_1 {
                assert!(s.len() >= n * k / QK, "matmul_packed: Q4_1 needs `s`");
            }
        }
        Acts::F32 { .. } | Acts::Q8K { .. } => panic!("matmul_packed: needs Q8 activations"),
    }
}

/// `out[i*ldo + j] = W[j] · x[i]` for `j` in `rows` (start a multiple of `GROUP`) and `i < n`,
/// on a packed matrix. See the module documentation for the arithmetic.
///
/// # Safety
/// `out` must be valid for writes at every `i*ldo + j` above; concurrent calls must use disjoint
/// `rows`. Shapes are checked (panics on mismatch).
pub unsafe fn matmul_packed(
    p: PackedRef<'_>,
    a: Acts<'_>,
    rows: Range<usize>,
    out: *mut f32,
    ldo: usize,
) {
    matmul_packed_at(dispatch::level(), p, a, rows, out, ldo)
}

/// [`matmul_packed`] at a given level.
///
/// # Safety
/// As [`matmul_packed`].
pub unsafe fn matmul_packed_at(
    lv: Level,
    p: PackedRef<'_>,
    a: Acts<'_>,
    rows: Range<usize>,
    out: *mut f32,
    ldo: usize,
) {
    check(&p, &a, &rows);
    if packed_k::props(p.ty).is_some() {
        let (n, _) = a.shape();
        if rows.is_empty() || n == 0 {
            return;
        }
        let ka = match a {
            Acts::Q8 { qs, d, s, n, .. } => packed_k::KActs {
                qs,
                d,
                s,
                bsums: &[],
                sh: &[],
                n,
            },
            Acts::Q8K {
                qs,
                d,
                bsums,
                sh,
                n,
                ..
            } => packed_k::KActs {
                qs,
                d,
                s: &[],
                bsums,
                sh,
                n,
            },
            Acts::F32 { .. } => unreachable!("checked"),
        };
        #[cfg(target_arch = "x86_64")]
        {
            let lv = dispatch::clamp(lv);
            if lv == Level::Avx512 && dispatch::vnni() {
                return super::x86_packed_k::vnni::matmul(p.ty, p.data, p.cols, ka, rows, out, ldo);
            }
            if lv >= Level::Avx2 {
                return super::x86_packed_k::avx2::matmul(p.ty, p.data, p.cols, ka, rows, out, ldo);
            }
        }
        let _ = lv;
        return packed_k::matmul_scalar(p.ty, p.data, p.cols, ka, rows, out, ldo);
    }
    let Acts::Q8 { qs, d, s, n, .. } = a else {
        return;
    };
    if rows.is_empty() || n == 0 {
        return;
    }
    let s = if s.is_empty() { d } else { s };
    #[cfg(target_arch = "x86_64")]
    {
        let lv = dispatch::clamp(lv);
        if lv == Level::Avx512 && dispatch::vnni() {
            return super::x86_packed::vnni::matmul(
                p.ty, p.data, p.cols, qs, d, s, n, rows, out, ldo,
            );
        }
        if lv >= Level::Avx2 {
            return super::x86_packed::avx2::matmul(
                p.ty, p.data, p.cols, qs, d, s, n, rows, out, ldo,
            );
        }
    }
    let _ = lv;
    matmul_packed_scalar(p, qs, d, s, n, rows, out, ldo)
}

/// The scalar twin.
///
/// # Safety
/// As [`matmul_packed`] (arguments checked by the caller).
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_packed_scalar(
    p: PackedRef<'_>,
    qs: &[i8],
    d: &[f32],
    s: &[f32],
    n: usize,
    rows: Range<usize>,
    out: *mut f32,
    ldo: usize,
) {
    let (ty, k, nb) = (p.ty, p.cols, p.nb());
    let gb = p.gbytes();
    let bs = block_stride(ty);
    for r in rows {
        let (g, j) = (r / GROUP, r % GROUP);
        let grp = &p.data[g * gb..(g + 1) * gb];
        for i in 0..n {
            let mut acc = 0f32;
            for b in 0..nb {
                let a = &qs[i * k + b * QK..i * k + (b + 1) * QK];
                let mut sumi = 0i32;
                for (c, &av) in a.iter().enumerate() {
                    sumi += qval(ty, grp, b, j, c) * av as i32;
                }
                let dw = f16_at(grp, b * bs + 2 * j);
                acc = (sumi as f32).mul_add(dw * d[i * nb + b], acc);
                if ty == WeightType::Q4_1 {
                    let mw = f16_at(grp, b * bs + 16 + 2 * j);
                    acc = mw.mul_add(s[i * nb + b], acc);
                }
            }
            *out.add(i * ldo + r) = acc;
        }
    }
}

#[cfg(test)]
#[path = "packed_tests.rs"]
mod tests;
