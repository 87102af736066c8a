//! The KV cache in the spec's public layout (qorus-c-api.md §5.4): float offset of the K vector of
//! (layer l, kv head g, position t) is `((l*G + g)*S + t) * 2*hd`, and its V vector follows at
//! `+hd`. Layer-major, then kv head, then position, K and V interleaved per position — so the
//! attention loop over positions for one (layer, head) walks one contiguous region.
//!
//! Reduced-precision caches ([`KvType`], a qorus addition) keep that order with smaller
//! elements: F16 stores each K and V vector as `hd` binary16 values; Q8_0 as `hd / 32` ggml
//! `block_q8_0` (an f16 scale and 32 int8), K blocks then V blocks per position. Attention reads
//! them a tile at a time, converted to f32 ([`KvTiles`]).

use crate::error::{Error, Result};
use crate::kernels::attn::{KvTiles, TILE};
use crate::quant::QK;

/// Element type of a KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KvType {
    /// 32-bit floats: the spec's layout (the C API's default).
    #[default]
    F32,
    /// binary16, rounded to nearest even.
    F16,
    /// ggml Q8_0 blocks of 32 (an f16 scale `amax / 127`, int8 values).
    Q8_0,
}

impl KvType {
    /// Every type.
    pub const ALL: [KvType; 3] = [KvType::F32, KvType::F16, KvType::Q8_0];

    /// Lower-case name (`f32`, `f16`, `q8_0`), as llama.cpp's `-ctk`.
    pub const fn name(self) -> &'static str {
        match self {
            KvType::F32 => "f32",
            KvType::F16 => "f16",
            KvType::Q8_0 => "q8_0",
        }
    }

    /// Parses a name as given by [`KvType::name`].
    pub fn parse(s: &str) -> Option<KvType> {
        KvType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Bytes of one K (or V) vector of `hd` values; an error naming the type when `hd` does
    /// not fit it (Q8_0 needs a multiple of 32).
    pub fn vec_bytes(self, hd: usize) -> Result<usize> {
        match self {
            KvType::F32 => Ok(4 * hd),
            KvType::F16 => Ok(2 * hd),
            KvType::Q8_0 if hd.is_multiple_of(QK) => Ok(hd / QK * (2 + QK)),
            KvType::Q8_0 => Err(Error::InvalidConfig(format!(
                "a q8_0 KV cache needs a head dimension that is a multiple of 32 (this model's is {hd})"
            ))),
        }
    }
}

/// Geometry of a KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLayout {
    /// Layers.
    pub n_layers: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Positions (the `S` of the layout; may be less than the model's context length).
    pub max_seq: usize,
    /// Head dimension.
    pub head_dim: usize,
}

impl KvLayout {
    /// Floats the cache holds.
    pub fn floats(&self) -> usize {
        self.n_layers * self.n_kv_heads * self.max_seq * 2 * self.head_dim
    }

    /// Bytes of a cache of element type `ty` (an error when the head dimension does not fit it).
    pub fn bytes(&self, ty: KvType) -> Result<usize> {
        let per = 2 * ty.vec_bytes(self.head_dim)?;
        self.n_layers
            .checked_mul(self.n_kv_heads)
            .and_then(|x| x.checked_mul(self.max_seq))
            .and_then(|x| x.checked_mul(per))
            .ok_or_else(|| Error::InvalidConfig("KV cache size overflows".into()))
    }

    /// Float offset of K for (layer, kv head, position); V is at `+ head_dim`.
    #[inline]
    pub fn k_offset(&self, layer: usize, g: usize, t: usize) -> usize {
        ((layer * self.n_kv_heads + g) * self.max_seq + t) * 2 * self.head_dim
    }
}

/// A KV cache living in memory the caller owns (a `q_context`'s `kv_buffer` or a `Session`'s
/// vector). Raw because several caches are written from one forward call and read from worker
/// threads; the forward pass guarantees the accesses are disjoint or read-only. `ptr` points to
/// f32 elements for an F32 cache, to bytes of the type's layout otherwise.
#[derive(Debug, Clone, Copy)]
pub struct KvCache {
    ptr: *mut f32,
    /// Geometry.
    pub layout: KvLayout,
    /// Element type.
    pub ty: KvType,
}

// SAFETY: the forward pass only writes one (layer, position) of a cache from one thread and reads
// it from others after a join.
unsafe impl Send for KvCache {}
unsafe impl Sync for KvCache {}

impl KvCache {
    /// An F32 cache over `len` floats at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `layout.floats()` floats, 4-byte aligned, for
    /// as long as the cache is used, and not accessed elsewhere meanwhile.
    pub unsafe fn from_raw(ptr: *mut f32, len: usize, layout: KvLayout) -> Option<KvCache> {
        (!ptr.is_null() && len >= layout.floats() && (ptr as usize).is_multiple_of(4)).then_some(
            KvCache {
                ptr,
                layout,
                ty: KvType::F32,
            },
        )
    }

    /// A cache of type `ty` over `bytes` bytes at `ptr` (an error naming what does not fit).
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `bytes` bytes, 4-byte aligned, for as long as
    /// the cache is used, and not accessed elsewhere meanwhile.
    pub unsafe fn from_raw_typed(
        ptr: *mut u8,
        bytes: usize,
        layout: KvLayout,
        ty: KvType,
    ) -> Result<KvCache> {
        let need = layout.bytes(ty)?;
        if ptr.is_null() || !(ptr as usize).is_multiple_of(4) {
            return Err(Error::InvalidArg(
                "KV cache pointer NULL or misaligned".into(),
            ));
        }
        if bytes < need {
            return Err(Error::InvalidSize(format!(
                "{} KV cache has {bytes} bytes, the model needs {need}",
                ty.name()
            )));
        }
        Ok(KvCache {
            ptr: ptr as *mut f32,
            layout,
            ty,
        })
    }

    /// Byte offset of K of (layer, kv head, position).
    #[inline]
    fn byte_offset(&self, layer: usize, g: usize, t: usize) -> usize {
        let l = &self.layout;
        // The type was checked against the head dimension when the cache was made.
        let per = 2 * self.ty.vec_bytes(l.head_dim).unwrap_or(0);
        ((layer * l.n_kv_heads + g) * l.max_seq + t) * per
    }

    /// The `2 * head_dim * n` floats holding K/V of positions `0..n` for (layer, kv head) of an
    /// F32 cache.
    ///
    /// # Safety
    /// No thread may be writing those positions meanwhile.
    #[inline]
    pub unsafe fn kv_run(&self, layer: usize, g: usize, n: usize) -> &[f32] {
        assert_eq!(self.ty, KvType::F32, "kv_run on a {} cache", self.ty.name());
        std::slice::from_raw_parts(
            self.ptr.add(self.layout.k_offset(layer, g, 0)),
            n * 2 * self.layout.head_dim,
        )
    }

    /// K/V of positions `0..n` for (layer, kv head), as tiles for attention (any type).
    ///
    /// # Safety
    /// No thread may be writing those positions meanwhile.
    #[inline]
    pub unsafe fn tiles(&self, layer: usize, g: usize, n: usize) -> Tiles<'_> {
        let per = 2 * self.ty.vec_bytes(self.layout.head_dim).unwrap_or(0);
        Tiles {
            ty: self.ty,
            hd: self.layout.head_dim,
            bytes: std::slice::from_raw_parts(
                (self.ptr as *const u8).add(self.byte_offset(layer, g, 0)),
                n * per,
            ),
        }
    }

    /// Writes K and V of one position for one (layer, kv head), converted to the cache's type.
    ///
    /// # Safety
    /// No other thread may access that position meanwhile.
    #[inline]
    pub unsafe fn write(&self, layer: usize, g: usize, t: usize, k: &[f32], v: &[f32]) {
        let hd = self.layout.head_dim;
        match self.ty {
            KvType::F32 => {
                let p = self.ptr.add(self.layout.k_offset(layer, g, t));
                std::ptr::copy_nonoverlapping(k.as_ptr(), p, hd);
                std::ptr::copy_nonoverlapping(v.as_ptr(), p.add(hd), hd);
            }
            ty => {
                let vb = ty.vec_bytes(hd).unwrap_or(0);
                let p = (self.ptr as *mut u8).add(self.byte_offset(layer, g, t));
                let dst = std::slice::from_raw_parts_mut(p, 2 * vb);
                let (dk, dv) = dst.split_at_mut(vb);
                encode(ty, &k[..hd], dk);
                encode(ty, &v[..hd], dv);
            }
        }
    }
}

/// Writes `x` in the layout of `ty` (F16 or Q8_0) into `out`.
fn encode(ty: KvType, x: &[f32], out: &mut [u8]) {
    match ty {
        KvType::F32 => {
            for (o, v) in out.chunks_exact_mut(4).zip(x) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        KvType::F16 => {
            for (o, v) in out.chunks_exact_mut(2).zip(x) {
                o.copy_from_slice(&half::f16::from_f32(*v).to_bits().to_le_bytes());
            }
        }
        KvType::Q8_0 => {
            // ggml's quantize_row_q8_0 (AVX path), as the activations: d = f16(amax / 127),
            // q = round_half_even(x * 127 / amax).
            for (xb, ob) in x.chunks_exact(QK).zip(out.chunks_exact_mut(2 + QK)) {
                let (mut qs, mut d, mut s) = ([0i8; QK], [0f32; 1], [0f32; 1]);
                crate::kernels::quantize_acts(xb, &mut qs, &mut d, &mut s);
                ob[..2].copy_from_slice(&half::f16::from_f32(d[0]).to_bits().to_le_bytes());
                for (o, q) in ob[2..].iter_mut().zip(qs) {
                    *o = q as u8;
                }
            }
        }
    }
}

/// K/V of one (layer, kv head) of a cache, from position 0, in the cache's type.
pub struct Tiles<'a> {
    ty: KvType,
    hd: usize,
    bytes: &'a [u8],
}

impl KvTiles for Tiles<'_> {
    fn head_dim(&self) -> usize {
        self.hd
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn tile_pairs(
        &self,
        t0: usize,
        t1: usize,
        kbuf: &mut [f32],
        vbuf: &mut [f32],
        raw_v: bool,
    ) -> crate::kernels::x86_attn::avx512::Vals {
        use crate::kernels::x86_attn::avx512;
        let hd = self.hd;
        let per = 2 * self.ty.vec_bytes(hd).unwrap_or(0);
        if raw_v {
            // A decode step streams the whole cache from memory once, with little work per
            // tile: the tile after next is asked into L2 meanwhile (measured with 30 layers of
            // 4096 positions: ~45 % less time than the hardware prefetcher alone, better than
            // one tile ahead or three ahead), and the next one, already on its way to L2, into
            // L1 (SmolLM2 Q4_0 tg200 @ d4096, one thread: 122-126 -> 152-168 t/s; two tiles
            // into L1, or L2 two to three tiles ahead, measured no better).
            let (p0, p1) = ((t1 + TILE) * per, (t1 + 2 * TILE) * per);
            if p0 < self.bytes.len() {
                avx512::prefetch_l2(&self.bytes[p0..p1.min(self.bytes.len())]);
            }
            let (n0, n1) = (t1 * per, (t1 + TILE) * per);
            if n0 < self.bytes.len() {
                avx512::prefetch_l1(&self.bytes[n0..n1.min(self.bytes.len())]);
            }
        }
        if self.ty != KvType::F16 {
            return crate::kernels::attn::tile_pairs_from_tile(self, t0, t1, kbuf, vbuf);
        }
        let n = t1 - t0;
        assert!(n <= TILE && kbuf.len() >= TILE * hd && vbuf.len() >= n * hd);
        let src = self.bytes[t0 * per..t1 * per].as_ptr() as *const u16;
        avx512::pack_pairs_f16(src, 2 * hd, n, hd, kbuf.as_mut_ptr());
        if raw_v {
            return avx512::Vals {
                ptr: src.add(hd) as *const u8,
                stride: 2 * hd,
                f16: true,
                len: n * 2 * hd - hd,
            };
        }
        avx512::f16_rows(src.add(hd), 2 * hd, n, hd, vbuf.as_mut_ptr());
        avx512::Vals {
            ptr: vbuf.as_ptr() as *const u8,
            stride: hd,
            f16: false,
            len: n * hd,
        }
    }

    fn tile<'b>(&'b self, t0: usize, t1: usize, buf: &'b mut [f32]) -> &'b [f32] {
        let hd = self.hd;
        let vb = self.ty.vec_bytes(hd).unwrap_or(0);
        let src = &self.bytes[t0 * 2 * vb..t1 * 2 * vb];
        let n = (t1 - t0) * 2 * hd;
        debug_assert!(t1 - t0 <= TILE);
        match self.ty {
            KvType::F32 => {
                // SAFETY: an F32 cache is 4-byte aligned f32 data (from_raw / from_raw_typed).
                unsafe { std::slice::from_raw_parts(src.as_ptr() as *const f32, n) }
            }
            KvType::F16 => {
                use half::slice::HalfFloatSliceExt;
                let out = &mut buf[..n];
                #[cfg(target_arch = "x86_64")]
                if crate::kernels::level() >= crate::kernels::Level::Avx2 {
                    // SAFETY: AVX2 + FMA + F16C present (level); `src` holds 2 bytes per value.
                    unsafe { crate::kernels::x86_attn::f16_to_f32(src, out) };
                    return out;
                }
                // SAFETY: the cache is 4-byte aligned and every vector starts at an even byte.
                let h = unsafe { std::slice::from_raw_parts(src.as_ptr() as *const half::f16, n) };
                h.convert_to_f32_slice(out);
                out
            }
            KvType::Q8_0 => {
                let out = &mut buf[..n];
                #[cfg(target_arch = "x86_64")]
                if crate::kernels::level() >= crate::kernels::Level::Avx2 {
                    // SAFETY: AVX2 + FMA + F16C present (level); `src` holds the blocks of `out`.
                    unsafe { crate::kernels::x86_attn::dequant_q8_0(src, out) };
                    return out;
                }
                for (ob, b) in out.chunks_exact_mut(QK).zip(src.chunks_exact(2 + QK)) {
                    let d = half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
                    for (o, &q) in ob.iter_mut().zip(&b[2..]) {
                        *o = d * (q as i8) as f32;
                    }
                }
                out
            }
        }
    }
}

impl KvCache {
    /// Bytes of one K (or V) vector.
    pub fn vec_bytes(&self) -> usize {
        self.ty.vec_bytes(self.layout.head_dim).unwrap_or(0)
    }

    /// The bytes of K/V of positions `0..n` of (layer, kv head), as the cache holds them.
    ///
    /// # Safety
    /// No thread may be writing those positions meanwhile.
    pub unsafe fn run_bytes(&self, layer: usize, g: usize, n: usize) -> &[u8] {
        std::slice::from_raw_parts(
            (self.ptr as *const u8).add(self.byte_offset(layer, g, 0)),
            n * 2 * self.vec_bytes(),
        )
    }

    /// [`KvCache::run_bytes`], writable.
    ///
    /// # Safety
    /// No other thread may access those positions meanwhile, and no other slice of them may be
    /// alive.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn run_bytes_mut(&self, layer: usize, g: usize, n: usize) -> &mut [u8] {
        std::slice::from_raw_parts_mut(
            (self.ptr as *mut u8).add(self.byte_offset(layer, g, 0)),
            n * 2 * self.vec_bytes(),
        )
    }

    /// Context shift (issue 15): moves positions `keep + discard .. pos` to `keep .. pos -
    /// discard` for every layer and kv head, and re-rotates each moved key by `-discard`
    /// positions with `rerotate(layer, key)` (see [`rerotate_key`]). Values are moved unchanged;
    /// keys of an F16 or Q8_0 cache are read, re-rotated and written back in the cache's type
    /// (as llama.cpp's K-shift does).
    ///
    /// # Safety
    /// No other thread may access the cache meanwhile.
    pub unsafe fn shift(
        &self,
        keep: usize,
        discard: usize,
        pos: usize,
        rerotate: &dyn Fn(usize, &mut [f32]),
    ) {
        let l = self.layout;
        assert!(
            keep + discard <= pos && pos <= l.max_seq,
            "bad context shift"
        );
        let (hd, vb) = (l.head_dim, self.vec_bytes());
        let mut key = vec![0f32; hd];
        for layer in 0..l.n_layers {
            for g in 0..l.n_kv_heads {
                let run = self.run_bytes_mut(layer, g, pos);
                for t in keep + discard..pos {
                    let (src, dst) = (t * 2 * vb, (t - discard) * 2 * vb);
                    run.copy_within(src..src + 2 * vb, dst);
                    let k = &mut run[dst..dst + vb];
                    decode(self.ty, k, &mut key);
                    rerotate(layer, &mut key);
                    encode(self.ty, &key, k);
                }
            }
        }
    }
}

/// Reads one vector of type `ty` from `bytes` into `out` (scalar: for context shifts and tests).
fn decode(ty: KvType, bytes: &[u8], out: &mut [f32]) {
    match ty {
        KvType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        KvType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
            }
        }
        KvType::Q8_0 => {
            for (ob, b) in out.chunks_exact_mut(QK).zip(bytes.chunks_exact(2 + QK)) {
                let d = half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
                for (o, &q) in ob.iter_mut().zip(&b[2..]) {
                    *o = d * (q as i8) as f32;
                }
            }
        }
    }
}

/// Rotates one cached key of layer `layer` (`head_dim` floats, already rotated for its position)
/// back by `delta` positions with the engine's RoPE for that layer and a context of `n_ctx` (the
/// same tables, style and kernel as the forward pass): rotation by `-delta` uses `cos(delta θ)`
/// and `-sin(delta θ)`.
pub fn rerotate_key(
    model: &crate::engine::Model,
    layer: usize,
    n_ctx: usize,
    key: &mut [f32],
    delta: usize,
) {
    let half = key.len() / 2;
    let rope = model.rope_for(layer, n_ctx);
    let cos = &rope.cos[delta * half..(delta + 1) * half];
    let sin = &rope.sin[delta * half..(delta + 1) * half];
    // The tables carry the attention factor (LongRoPE); position 0's cosine is that factor, and
    // a shift must rotate without scaling again.
    let f = rope.cos[0];
    let mut small = [0f32; 512];
    let mut large = Vec::new();
    let buf: &mut [f32] = if 2 * half <= small.len() {
        &mut small[..2 * half]
    } else {
        large.resize(2 * half, 0f32);
        &mut large
    };
    let (c, n) = buf.split_at_mut(half);
    for ((c, n), (&co, &si)) in c.iter_mut().zip(n.iter_mut()).zip(cos.iter().zip(sin)) {
        (*c, *n) = (co / f, -si / f);
    }
    match model.arch.rope_style {
        crate::engine::arch::RopeStyle::Interleaved => crate::kernels::rope(key, c, n),
        crate::engine::arch::RopeStyle::Neox => crate::kernels::rope_neox(key, c, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::attn::{self, Block};
    use crate::kernels::dispatch::{available, Level};
    use crate::kernels::tests::{rand_vec, Fill, Rng};

    /// Attention over each cache type's tiles: every level gives the scalar twin's bits, for a
    /// decode-sized block (one row: the AVX-512 kernel reads binary16 values as it goes) and a
    /// prefill-sized one (values converted once per tile), spans that end inside a tile and one
    /// that starts inside one.
    #[test]
    fn typed_tiles_attend_alike_at_every_level() {
        let mut rng = Rng::new(33);
        for &(hd, len) in &[(64usize, 300usize), (96, 97), (72, 40)] {
            let heads = 3;
            for ty in KvType::ALL {
                if ty.vec_bytes(hd).is_err() {
                    continue;
                }
                let layout = KvLayout {
                    n_layers: 1,
                    n_kv_heads: 1,
                    max_seq: len,
                    head_dim: hd,
                };
                let mut buf = vec![0u32; layout.bytes(ty).unwrap().div_ceil(4)];
                // SAFETY: the buffer holds the layout's bytes for `ty`, 4-byte aligned.
                let c = unsafe {
                    KvCache::from_raw_typed(buf.as_mut_ptr() as *mut u8, buf.len() * 4, layout, ty)
                }
                .unwrap();
                let kv = rand_vec(2 * hd * len, &mut rng, Fill::Random);
                for t in 0..len {
                    let p = &kv[t * 2 * hd..(t + 1) * 2 * hd];
                    // SAFETY: single-threaded, position in range.
                    unsafe { c.write(0, 0, t, &p[..hd], &p[hd..]) };
                }
                for rows in [1usize, 5] {
                    let q = rand_vec(rows * heads * hd, &mut rng, Fill::Random);
                    let spans: Vec<(usize, usize)> = (0..rows)
                        .map(|r| {
                            let e = len - rows + r + 1;
                            (if r == 1 { e - 21 } else { 0 }, e)
                        })
                        .collect();
                    let blk = Block {
                        q: &q,
                        stride: heads * hd,
                        off: 0,
                        heads,
                        spans: &spans,
                    };
                    let run = |lv: Level| {
                        let nq = rows * heads;
                        let mut work = vec![0f32; attn::work_floats(nq, hd)];
                        // SAFETY: nothing writes the cache meanwhile.
                        let src = unsafe { c.tiles(0, 0, len) };
                        attn::attend_block_at(lv, &src, 0.125, &blk, &mut work);
                        work.truncate(nq * hd);
                        work
                    };
                    let want = run(Level::Scalar);
                    for lv in available() {
                        assert_eq!(run(lv), want, "{lv:?} {ty:?} hd={hd} rows={rows}");
                    }
                }
            }
        }
    }
}
