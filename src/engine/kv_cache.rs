//! The KV cache in the spec's public layout (qorus-c-api.md §5.4): float offset of the K vector of
//! (layer l, kv head g, position t) is `((l*G + g)*S + t) * 2*hd`, and its V vector follows at
//! `+hd`. Layer-major, then kv head, then position, K and V interleaved per position — so the
//! attention loop over positions for one (layer, head) walks one contiguous region.

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

    /// Float offset of K for (layer, kv head, position); V is at `+ head_dim`.
    #[inline]
    pub fn k_offset(&self, layer: usize, g: usize, t: usize) -> usize {
        ((layer * self.n_kv_heads + g) * self.max_seq + t) * 2 * self.head_dim
    }
}

/// A KV cache living in memory the caller owns (a `q_context`'s `kv_buffer` or a `Session`'s
/// vector). Raw because several caches are written from one forward call and read from worker
/// threads; the forward pass guarantees the accesses are disjoint or read-only.
#[derive(Debug, Clone, Copy)]
pub struct KvCache {
    ptr: *mut f32,
    /// Geometry.
    pub layout: KvLayout,
}

// SAFETY: the forward pass only writes one (layer, position) of a cache from one thread and reads
// it from others after a join.
unsafe impl Send for KvCache {}
unsafe impl Sync for KvCache {}

impl KvCache {
    /// A cache over `len` floats at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `layout.floats()` floats, 4-byte aligned, for
    /// as long as the cache is used, and not accessed elsewhere meanwhile.
    pub unsafe fn from_raw(ptr: *mut f32, len: usize, layout: KvLayout) -> Option<KvCache> {
        (!ptr.is_null() && len >= layout.floats() && (ptr as usize) % 4 == 0)
            .then_some(KvCache { ptr, layout })
    }

    /// The `2 * head_dim * n` floats holding K/V of positions `0..n` for (layer, kv head).
    ///
    /// # Safety
    /// No thread may be writing those positions meanwhile.
    #[inline]
    pub unsafe fn kv_run(&self, layer: usize, g: usize, n: usize) -> &[f32] {
        std::slice::from_raw_parts(
            self.ptr.add(self.layout.k_offset(layer, g, 0)),
            n * 2 * self.layout.head_dim,
        )
    }

    /// Writes K and V of one position for one (layer, kv head).
    ///
    /// # Safety
    /// No other thread may access that position meanwhile.
    #[inline]
    pub unsafe fn write(&self, layer: usize, g: usize, t: usize, k: &[f32], v: &[f32]) {
        let hd = self.layout.head_dim;
        let p = self.ptr.add(self.layout.k_offset(layer, g, t));
        std::ptr::copy_nonoverlapping(k.as_ptr(), p, hd);
        std::ptr::copy_nonoverlapping(v.as_ptr(), p.add(hd), hd);
    }
}

impl KvCache {
    /// Context shift (issue 15): moves positions `keep + discard .. pos` to `keep .. pos -
    /// discard` for every layer and kv head, and re-rotates each moved key by `-discard`
    /// positions with `rerotate` (see [`rerotate_key`]). Values are moved unchanged.
    ///
    /// # Safety
    /// No other thread may access the cache meanwhile.
    pub unsafe fn shift(
        &self,
        keep: usize,
        discard: usize,
        pos: usize,
        rerotate: &dyn Fn(&mut [f32]),
    ) {
        let l = self.layout;
        assert!(
            keep + discard <= pos && pos <= l.max_seq,
            "bad context shift"
        );
        let hd = l.head_dim;
        for layer in 0..l.n_layers {
            for g in 0..l.n_kv_heads {
                for t in keep + discard..pos {
                    let src = self.ptr.add(l.k_offset(layer, g, t));
                    let dst = self.ptr.add(l.k_offset(layer, g, t - discard));
                    std::ptr::copy(src, dst, 2 * hd);
                    rerotate(std::slice::from_raw_parts_mut(dst, hd));
                }
            }
        }
    }

    /// The floats of the cache (for saving state).
    ///
    /// # Safety
    /// No thread may be writing the cache while the slice is used, and its memory must outlive
    /// `'a`.
    pub unsafe fn as_slice<'a>(self) -> &'a [f32] {
        std::slice::from_raw_parts(self.ptr, self.layout.floats())
    }

    /// The cache's floats, writable (for loading state).
    ///
    /// # Safety
    /// No other thread may access the cache while the slice is used, and its memory must outlive
    /// `'a`.
    pub unsafe fn as_mut_slice<'a>(self) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.ptr, self.layout.floats())
    }
}

/// Rotates one cached key (`head_dim` floats, already rotated for its position) back by `delta`
/// positions with the engine's RoPE (the same tables and kernel as the forward pass): rotation by
/// `-delta` uses `cos(delta θ)` and `-sin(delta θ)`.
pub fn rerotate_key(model: &crate::engine::Model, key: &mut [f32], delta: usize) {
    let half = key.len() / 2;
    let cos = &model.rope_cos[delta * half..(delta + 1) * half];
    let sin = &model.rope_sin[delta * half..(delta + 1) * half];
    let mut small = [0f32; 256];
    let mut large = Vec::new();
    let neg: &mut [f32] = if half <= small.len() {
        &mut small[..half]
    } else {
        large.resize(half, 0f32);
        &mut large
    };
    for (n, s) in neg.iter_mut().zip(sin) {
        *n = -*s;
    }
    crate::kernels::rope(key, cos, neg);
}
