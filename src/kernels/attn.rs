//! Attention of a block of query vectors that share one KV head (the query heads of a GQA group,
//! for one or several consecutive token rows of one sequence) over their cached positions, with
//! an online softmax over fixed tiles of keys.
//!
//! Each query `i` attends to the keys `start_i .. end_i`. Keys are walked in tiles of [`TILE`]
//! positions aligned to absolute positions (tile `j` covers `j*TILE .. (j+1)*TILE`, clipped to
//! the query's span), and for each tile the query's state `(m, l, acc)` is updated:
//!
//! * `s[t] = dot(q, K[t]) * scale` — 8-column blocks of the dot product go alternately to two
//!   8-lane accumulators `A`, `B` (fused multiply-adds), then `hsum8(A + B)`;
//! * `mt = max s`, `m' = max(m, mt)` (`mt` on a query's first tile), `p[t] = exp(s[t] - m')`
//!   with [`exp`] (a fixed polynomial, the same in every level);
//! * `ls` = the `p[t]` summed into 8 lanes by `t mod 8` (in `t` order), then `hsum8`;
//! * `alpha = exp(m - m')`, `l = l * alpha + ls` (`ls` first), `acc = acc * alpha` (0 first),
//!   then `acc = fma(p[t], V[t], acc)` for `t` in order;
//!
//! Tiles are grouped in segments of [`SEG`] keys (absolute positions): each segment's state
//! starts afresh and the segments are folded in order (see [`fold`]); at the end
//! `out = acc / l`. `hsum8(v) = ((v0+v4)+(v2+v6)) + ((v1+v5)+(v3+v7))`.
//!
//! That arithmetic depends only on the query, its span and the cache, never on which other
//! queries share the block, the block size or the thread that runs it: a prefill computes
//! bit for bit what token-by-token decoding computes, and every level (scalar twin, AVX2,
//! AVX-512) gives the same bits. Keys and values come through [`KvTiles`], which converts a tile
//! of a reduced-precision cache to f32 once for all the queries of the block (exactly: F16 and
//! Q8_0 values are representable in f32).
//!
//! The levels differ only in how they reach those bits. AVX2 runs one query over one tile at a
//! time (`x86_attn::tile_step`: four keys' `A`/`B` accumulators, one `hsum8` per score). AVX-512
//! (`x86_attn::avx512`, Rust >= 1.89) packs each tile's keys once so that one 16-lane vector holds
//! the same 8-column block of two keys; a query's 16 scores of a group of keys are then 16
//! accumulators and one reduction whose additions pair lanes exactly as `A + B` and `hsum8` do,
//! the heads of a row are stepped together (their `p·V` updates share the loads of `V`), and for
//! a decode step (one or two rows) the values are read as binary16 by the `p·V` loop itself.

use super::{dispatch, Level};

/// Keys per tile of the online softmax (a numerics-defining constant).
pub const TILE: usize = 32;

/// A source of K/V tiles: positions `t0..t1` as f32, `2 * hd` per position (K then V).
pub trait KvTiles {
    /// Head dimension.
    fn head_dim(&self) -> usize;
    /// Positions `t0..t1` (`t1 - t0 <= TILE`), either borrowed from the cache (F32) or
    /// converted into `buf` (`TILE * 2 * hd` floats).
    fn tile<'b>(&'b self, t0: usize, t1: usize, buf: &'b mut [f32]) -> &'b [f32];

    /// For the AVX-512 kernel: the keys of positions `t0..t1` packed into `kbuf` (`TILE * hd`
    /// floats, `x86_attn::avx512::pack_pairs`'s layout) and where the values are: f32 rows
    /// (borrowed, or converted into `vbuf`, `TILE * 2 * hd` floats), or with `raw_v` the cache's
    /// own binary16 rows when it holds F16 (converted by the kernel as it reads them: cheaper for
    /// the few queries of a decode step).
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL (level `Avx512`); `hd % 8 == 0`. The returned pointer is valid
    /// while `self` and `vbuf` are.
    #[cfg(target_arch = "x86_64")]
    unsafe fn tile_pairs(
        &self,
        t0: usize,
        t1: usize,
        kbuf: &mut [f32],
        vbuf: &mut [f32],
        raw_v: bool,
    ) -> super::x86_attn::avx512::Vals {
        let _ = raw_v;
        tile_pairs_from_tile(self, t0, t1, kbuf, vbuf)
    }
}

/// [`KvTiles::tile_pairs`] through [`KvTiles::tile`]: the f32 tile, then its keys packed.
///
/// # Safety
/// As [`KvTiles::tile_pairs`].
#[cfg(target_arch = "x86_64")]
pub unsafe fn tile_pairs_from_tile<S: KvTiles + ?Sized>(
    kv: &S,
    t0: usize,
    t1: usize,
    kbuf: &mut [f32],
    vbuf: &mut [f32],
) -> super::x86_attn::avx512::Vals {
    let hd = kv.head_dim();
    let n = t1 - t0;
    assert!(n <= TILE && kbuf.len() >= TILE * hd);
    let nat = kv.tile(t0, t1, vbuf);
    super::x86_attn::avx512::pack_pairs(nat.as_ptr(), 2 * hd, n, hd, kbuf.as_mut_ptr());
    super::x86_attn::avx512::Vals {
        ptr: nat[hd..].as_ptr() as *const u8,
        stride: 2 * hd,
        f16: false,
        len: nat.len() - hd,
    }
}

/// Plain f32 K/V (the spec's layout: per position K then V).
pub struct F32Tiles<'a> {
    /// Positions from 0.
    pub kv: &'a [f32],
    /// Head dimension.
    pub hd: usize,
}

impl KvTiles for F32Tiles<'_> {
    fn head_dim(&self) -> usize {
        self.hd
    }
    fn tile<'b>(&'b self, t0: usize, t1: usize, _buf: &'b mut [f32]) -> &'b [f32] {
        &self.kv[t0 * 2 * self.hd..t1 * 2 * self.hd]
    }
}

/// A block of queries sharing one KV head: `rows` token rows of `heads` query heads each.
/// Query `(r, h)` is `q[r * stride + off + h * hd ..][..hd]` and attends to keys
/// `spans[r].0 .. spans[r].1`.
pub struct Block<'a> {
    /// Query rows.
    pub q: &'a [f32],
    /// Floats between rows.
    pub stride: usize,
    /// Offset of the first head in a row.
    pub off: usize,
    /// Query heads per row.
    pub heads: usize,
    /// Key span per row (non-empty).
    pub spans: &'a [(usize, usize)],
}

/// Keys per segment: the tiles of each segment (absolute positions `k*SEG .. (k+1)*SEG`) run
/// from a fresh state and the segments' states are then merged in order ([`fold`]), so a long
/// span can be split across threads ([`segment_at`], [`merge_segments_at`]) without changing a
/// bit (a numerics-defining constant, a multiple of [`TILE`]).
pub const SEG: usize = 512;

/// Floats of one query state set (`acc`, `l`, `m` of `nq` queries).
pub fn state_floats(nq: usize, hd: usize) -> usize {
    nq * (hd + 2)
}

/// Floats of work space [`attend_block_at`] needs for `nq` queries of head dimension `hd`
/// ([`segment_at`] needs less).
pub fn work_floats(nq: usize, hd: usize) -> usize {
    2 * state_floats(nq, hd) + SC_FLOATS + TILE * 3 * hd + 16
}

/// Score space in the work area: `2 * TILE` per query of up to 4 heads run together.
const SC_FLOATS: usize = 8 * TILE;

/// (`acc`, `l`, `m`) of `nq` queries at the head of `w`.
fn states(w: &mut [f32], nq: usize, hd: usize) -> (&mut [f32], &mut [f32], &mut [f32], &mut [f32]) {
    let (acc, rest) = w.split_at_mut(nq * hd);
    let (l, rest) = rest.split_at_mut(nq);
    let (m, rest) = rest.split_at_mut(nq);
    (acc, l, m, rest)
}

/// Merges a segment's state `(m2, l2, acc2)` into `(m, l, acc)` (`l == 0`: empty, takes it;
/// `l2 == 0`: the segment had no key of this query): `m' = max(m, m2)`, `a = exp(m - m')`,
/// `b = exp(m2 - m')`, `l = l*a + l2*b`, `acc = fma(acc2, b, acc*a)`.
#[allow(clippy::too_many_arguments)]
pub fn fold(simd: bool, m: &mut f32, l: &mut f32, acc: &mut [f32], m2: f32, l2: f32, acc2: &[f32]) {
    if l2 == 0.0 {
        return;
    }
    if *l == 0.0 {
        *m = m2;
        *l = l2;
        acc.copy_from_slice(acc2);
        return;
    }
    let mn = m.max(m2);
    #[cfg(target_arch = "x86_64")]
    let (a, b) = if simd {
        // SAFETY: the caller's level check found AVX2 + FMA.
        unsafe { super::x86_attn::exp2_pair(*m - mn, m2 - mn) }
    } else {
        (exp(*m - mn), exp(m2 - mn))
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (a, b) = (exp(*m - mn), exp(m2 - mn));
    *l = *l * a + l2 * b;
    *m = mn;
    #[cfg(target_arch = "x86_64")]
    if simd && acc.len().is_multiple_of(8) {
        // SAFETY: the caller's level check found AVX2 + FMA; equal lengths, a multiple of 8.
        unsafe { super::x86_attn::fold_acc(acc, &acc2[..acc.len()], a, b) };
        return;
    }
    let _ = simd;
    for (x, &y) in acc.iter_mut().zip(acc2) {
        *x = y.mul_add(b, *x * a);
    }
}

/// Which kernel runs the tile steps: the scalar twin, AVX2 (one query, one tile at a time) or
/// AVX-512 (keys packed per tile, 16 dot products reduced together, the heads of a row sharing
/// the `p·V` loads; `x86_attn::avx512`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Simd {
    None,
    Avx2,
    Avx512,
}

impl Simd {
    fn any(self) -> bool {
        self != Simd::None
    }
}

/// The kernel for level `lv` and head dimension `hd`.
fn use_simd(lv: Level, hd: usize) -> Simd {
    let lv = dispatch::clamp(lv);
    if !cfg!(target_arch = "x86_64") || lv < Level::Avx2 || !hd.is_multiple_of(8) {
        Simd::None
    } else if lv >= Level::Avx512 {
        Simd::Avx512
    } else {
        Simd::Avx2
    }
}

fn check(blk: &Block<'_>, hd: usize, work: usize, need: usize) {
    let rows = blk.spans.len();
    assert!(
        work >= need
            && blk.spans.iter().all(|&(s, e)| s < e)
            && (rows == 0 || blk.q.len() >= (rows - 1) * blk.stride + blk.off + blk.heads * hd),
        "attend_block: lengths"
    );
}

/// Runs the block; the outputs (query `(r, h)` at `work[(r * heads + h) * hd ..][..hd]`) are
/// left at the head of `work` (at least [`work_floats`] floats).
pub fn attend_block_at<S: KvTiles>(
    lv: Level,
    kv: &S,
    scale: f32,
    blk: &Block<'_>,
    work: &mut [f32],
) {
    let hd = kv.head_dim();
    let nq = blk.spans.len() * blk.heads;
    check(blk, hd, work.len(), work_floats(nq, hd));
    let simd = use_simd(lv, hd);
    let (acc, ls, ms, rest) = states(work, nq, hd);
    ls.fill(0.0);
    let lo_all = blk.spans.iter().map(|s| s.0).min().unwrap_or(0);
    let hi_all = blk.spans.iter().map(|s| s.1).max().unwrap_or(0);
    for seg in lo_all / SEG..hi_all.div_ceil(SEG) {
        segment_run(simd, kv, scale, blk, seg, rest);
        let (acc2, l2, m2, _) = states(rest, nq, hd);
        for qi in 0..nq {
            let r = qi * hd..(qi + 1) * hd;
            fold(
                simd.any(),
                &mut ms[qi],
                &mut ls[qi],
                &mut acc[r.clone()],
                m2[qi],
                l2[qi],
                &acc2[r],
            );
        }
    }
    for (a, &l) in acc.chunks_exact_mut(hd).zip(ls.iter()) {
        a.iter_mut().for_each(|v| *v /= l);
    }
}

/// The state of every query of the block over the keys of segment `seg` alone (`l = 0` for a
/// query with none there), left at the head of `work` (`acc` of query `qi` at `qi * hd`, then
/// the `l`s, then the `m`s; [`state_floats`] of them). `work`: [`work_floats`] floats.
pub fn segment_at<S: KvTiles>(
    lv: Level,
    kv: &S,
    scale: f32,
    blk: &Block<'_>,
    seg: usize,
    work: &mut [f32],
) {
    let hd = kv.head_dim();
    let nq = blk.spans.len() * blk.heads;
    check(blk, hd, work.len(), work_floats(nq, hd));
    segment_run(use_simd(lv, hd), kv, scale, blk, seg, work)
}

/// Folds `n_seg` segment states (each [`state_floats`]`(nq, hd)` floats, in segment order, as
/// [`segment_at`] leaves them) into the outputs `out[qi * hd ..][..hd]`.
pub fn merge_segments_at(
    lv: Level,
    segs: &[f32],
    n_seg: usize,
    nq: usize,
    hd: usize,
    out: &mut [f32],
) {
    let simd = use_simd(lv, hd);
    let sf = state_floats(nq, hd);
    assert!(
        segs.len() >= n_seg * sf && out.len() >= nq * hd,
        "merge_segments: lengths"
    );
    for qi in 0..nq {
        let (mut m, mut l) = (0f32, 0f32);
        let acc = &mut out[qi * hd..(qi + 1) * hd];
        for k in 0..n_seg {
            let st = &segs[k * sf..(k + 1) * sf];
            let (a2, l2, m2) = (
                &st[qi * hd..(qi + 1) * hd],
                st[nq * hd + qi],
                st[nq * hd + nq + qi],
            );
            fold(simd.any(), &mut m, &mut l, acc, m2, l2, a2);
        }
        acc.iter_mut().for_each(|v| *v /= l);
    }
}

fn segment_run<S: KvTiles>(
    simd: Simd,
    kv: &S,
    scale: f32,
    blk: &Block<'_>,
    seg: usize,
    work: &mut [f32],
) {
    let hd = kv.head_dim();
    let nq = blk.spans.len() * blk.heads;
    #[cfg(target_arch = "x86_64")]
    if simd == Simd::Avx512 {
        // SAFETY: the level check found AVX-512 F/BW/VL; hd % 8 == 0 (use_simd).
        unsafe { segment_run512(kv, scale, blk, seg, work) };
        return;
    }
    let (acc, ls, ms, rest) = states(work, nq, hd);
    let (sc, buf) = rest.split_at_mut(SC_FLOATS);
    ls.fill(0.0);
    let (k0, k1) = (seg * SEG, (seg + 1) * SEG);
    let clip = |(s, e): (usize, usize)| (s.max(k0), e.min(k1));
    let lo_all = blk.spans.iter().map(|&sp| clip(sp).0).min().unwrap_or(k0);
    let hi_all = blk.spans.iter().map(|&sp| clip(sp).1).max().unwrap_or(k0);
    let mut j0 = lo_all / TILE * TILE;
    while j0 < hi_all {
        let j1 = j0 + TILE;
        let (t0, t1) = (j0.max(lo_all), j1.min(hi_all));
        let tile = kv.tile(t0, t1, buf);
        for (r, &sp) in blk.spans.iter().enumerate() {
            let (s, e) = clip(sp);
            let (lo, hi) = (s.max(j0), e.min(j1));
            if lo >= hi {
                continue;
            }
            let kvt = &tile[(lo - t0) * 2 * hd..(hi - t0) * 2 * hd];
            let first = lo == s;
            for h in 0..blk.heads {
                let qi = r * blk.heads + h;
                let qo = r * blk.stride + blk.off + h * hd;
                let mut st = State {
                    m: ms[qi],
                    l: ls[qi],
                };
                let a = &mut acc[qi * hd..(qi + 1) * hd];
                tile_step(
                    simd,
                    &blk.q[qo..qo + hd],
                    kvt,
                    hi - lo,
                    hd,
                    scale,
                    first,
                    &mut st,
                    a,
                    sc,
                );
                ms[qi] = st.m;
                ls[qi] = st.l;
            }
        }
        j0 = j1;
    }
}

/// [`segment_run`] with the AVX-512 kernel: each tile packed once ([`KvTiles::tile_pairs`]),
/// then the query heads of each row in groups of up to 4.
///
/// # Safety
/// AVX-512 F/BW/VL present; `hd % 8 == 0`; `work` as [`segment_run`]'s.
#[cfg(target_arch = "x86_64")]
unsafe fn segment_run512<S: KvTiles>(
    kv: &S,
    scale: f32,
    blk: &Block<'_>,
    seg: usize,
    work: &mut [f32],
) {
    let hd = kv.head_dim();
    let nq = blk.spans.len() * blk.heads;
    let (acc, ls, ms, rest) = states(work, nq, hd);
    // packed keys, values and scores at 64-byte boundaries (whole cache lines per vector)
    let skip = rest.as_ptr().align_offset(64).min(15);
    let (kbuf, rest) = rest[skip..].split_at_mut(TILE * hd);
    let (vbuf, rest) = rest.split_at_mut(TILE * 2 * hd);
    let sc = &mut rest[..SC_FLOATS];
    ls.fill(0.0);
    // values converted once per tile for a prefill block, as read for a decode step's queries
    let raw_v = blk.spans.len() <= 2;
    let (k0, k1) = (seg * SEG, (seg + 1) * SEG);
    let clip = |(s, e): (usize, usize)| (s.max(k0), e.min(k1));
    let lo_all = blk.spans.iter().map(|&sp| clip(sp).0).min().unwrap_or(k0);
    let hi_all = blk.spans.iter().map(|&sp| clip(sp).1).max().unwrap_or(k0);
    let mut j0 = lo_all / TILE * TILE;
    while j0 < hi_all {
        let j1 = j0 + TILE;
        let (t0, t1) = (j0.max(lo_all), j1.min(hi_all));
        let v = kv.tile_pairs(t0, t1, kbuf, vbuf, raw_v);
        for (r, &sp) in blk.spans.iter().enumerate() {
            let (s, e) = clip(sp);
            let (lo, hi) = (s.max(j0), e.min(j1));
            if lo >= hi {
                continue;
            }
            let first = lo == s;
            let mut h0 = 0;
            while h0 < blk.heads {
                let rh = (blk.heads - h0).min(4);
                let qi = r * blk.heads + h0;
                let qo = r * blk.stride + blk.off + h0 * hd;
                assert!(qo + rh * hd <= blk.q.len() && (hi - t0 - 1) * v.stride + hd <= v.len);
                super::x86_attn::avx512::tile_rows(
                    blk.q[qo..].as_ptr(),
                    rh,
                    kbuf.as_ptr(),
                    v,
                    lo - t0,
                    hi - lo,
                    hd,
                    scale,
                    first,
                    &mut ms[qi..qi + rh],
                    &mut ls[qi..qi + rh],
                    acc[qi * hd..(qi + rh) * hd].as_mut_ptr(),
                    sc.as_mut_ptr(),
                );
                h0 += rh;
            }
        }
        j0 = j1;
    }
}

/// [`attend_block_at`] at the detected level.
pub fn attend_block<S: KvTiles>(kv: &S, scale: f32, blk: &Block<'_>, work: &mut [f32]) {
    attend_block_at(dispatch::level(), kv, scale, blk, work)
}

/// Online-softmax state of one query.
#[derive(Clone, Copy, Debug)]
pub struct State {
    /// Running maximum.
    pub m: f32,
    /// Running sum of `exp(s - m)`.
    pub l: f32,
}

#[allow(clippy::too_many_arguments)]
#[inline]
fn tile_step(
    simd: Simd,
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
    debug_assert!((1..=TILE).contains(&n) && kv.len() >= n * 2 * hd && acc.len() >= hd);
    #[cfg(target_arch = "x86_64")]
    if simd != Simd::None {
        // SAFETY: the level check found AVX2 + FMA; hd % 8 == 0; lengths asserted above (q and
        // acc hold hd floats, kv n positions, sc TILE floats).
        unsafe { super::x86_attn::tile_step(q, kv, n, hd, scale, first, st, acc, sc) };
        return;
    }
    let _ = simd;
    scalar_tile_step(q, kv, n, hd, scale, first, st, acc, sc)
}

/// `exp(x)` as the SIMD kernels compute it (`x86::exp8`, lane by lane): clamp to [-104, 89],
/// `n = round_even(x log2 e)`, Cody–Waite `r`, degree-6 polynomial, `2^n` in two steps.
#[inline]
pub fn exp(x: f32) -> f32 {
    let x = if x > -104.0 { x } else { -104.0 };
    let x = if x < 89.0 { x } else { 89.0 };
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = (-n).mul_add(0.693_359_4, x);
    let r = (-n).mul_add(-2.121_944_4e-4, r);
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let r2 = r * r;
    let e = p.mul_add(r2, r) + 1.0;
    let ni = n as i32;
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    e * s1 * s2
}

/// `((v0+v4)+(v2+v6)) + ((v1+v5)+(v3+v7))`, the order of an AVX horizontal sum.
#[inline]
pub fn hsum8(v: &[f32; 8]) -> f32 {
    ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
}

/// The canonical dot product (see the module documentation).
#[inline]
pub fn dot(q: &[f32], k: &[f32], hd: usize) -> f32 {
    let mut acc = [[0f32; 8]; 2];
    let mut c = 0;
    let mut b = 0;
    while c + 8 <= hd {
        for i in 0..8 {
            acc[b & 1][i] = q[c + i].mul_add(k[c + i], acc[b & 1][i]);
        }
        c += 8;
        b += 1;
    }
    let mut v = [0f32; 8];
    for i in 0..8 {
        v[i] = acc[0][i] + acc[1][i];
    }
    let mut s = hsum8(&v);
    // A head dimension that is not a multiple of 8: the rest in order (scalar level only).
    while c < hd {
        s = q[c].mul_add(k[c], s);
        c += 1;
    }
    s
}

/// The scalar twin of one tile step.
#[allow(clippy::too_many_arguments)]
fn scalar_tile_step(
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
    let st2 = 2 * hd;
    for t in 0..n {
        sc[t] = dot(q, &kv[t * st2..t * st2 + hd], hd) * scale;
    }
    let mt = sc[..n].iter().fold(sc[0], |m, &v| m.max(v));
    let m_new = if first { mt } else { st.m.max(mt) };
    let mut lanes = [0f32; 8];
    for t in 0..n {
        sc[t] = exp(sc[t] - m_new);
        lanes[t % 8] += sc[t];
    }
    let lsum = hsum8(&lanes);
    let acc = &mut acc[..hd];
    if first {
        st.l = lsum;
        acc.fill(0.0);
    } else {
        let alpha = exp(st.m - m_new);
        st.l = st.l * alpha + lsum;
        acc.iter_mut().for_each(|a| *a *= alpha);
    }
    st.m = m_new;
    for t in 0..n {
        let p = sc[t];
        let v = &kv[t * st2 + hd..(t + 1) * st2];
        for (a, &x) in acc.iter_mut().zip(v) {
            *a = p.mul_add(x, *a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::dispatch::available;
    use crate::kernels::tests::{rand_vec, Fill, Rng};

    fn run(
        lv: Level,
        kv: &[f32],
        hd: usize,
        q: &[f32],
        heads: usize,
        spans: &[(usize, usize)],
    ) -> Vec<f32> {
        let nq = spans.len() * heads;
        let mut work = vec![0f32; work_floats(nq, hd)];
        let blk = Block {
            q,
            stride: heads * hd,
            off: 0,
            heads,
            spans,
        };
        attend_block_at(lv, &F32Tiles { kv, hd }, 0.125, &blk, &mut work);
        work.truncate(nq * hd);
        work
    }

    /// Against an f64 softmax, and every level and every block split bit for bit.
    #[test]
    fn block_levels_and_splits_match() {
        let mut rng = Rng::new(21);
        for &(hd, len, heads) in &[
            (64usize, 1usize, 3usize),
            (64, 7, 1),
            (64, 130, 3),
            (128, 100, 2),
            (8, 5, 2),
            (24, 70, 1),
            (72, 33, 4),
            (20, 9, 2),
            (64, 1100, 3),
        ] {
            let kv = rand_vec(2 * hd * len, &mut rng, Fill::Random);
            let rows = len.min(9);
            let q = rand_vec(rows * heads * hd, &mut rng, Fill::Random);
            // rows at the last positions, two with sliding windows (one starting at a multiple
            // of 8 inside a tile)
            let spans: Vec<(usize, usize)> = (0..rows)
                .map(|r| {
                    let e = len - rows + r + 1;
                    let s = match r {
                        1 => e.saturating_sub(37),
                        2 => e.saturating_sub(20) / 8 * 8,
                        _ => 0,
                    };
                    (s, e)
                })
                .collect();
            let want = run(Level::Scalar, &kv, hd, &q, heads, &spans);
            for (r, &(s, e)) in spans.iter().enumerate() {
                for h in 0..heads {
                    let qv = &q[(r * heads + h) * hd..][..hd];
                    let sc: Vec<f64> = (s..e)
                        .map(|t| {
                            (0..hd)
                                .map(|i| qv[i] as f64 * kv[t * 2 * hd + i] as f64)
                                .sum::<f64>()
                                * 0.125
                        })
                        .collect();
                    let m = sc.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = sc.iter().map(|v| (v - m).exp()).sum();
                    for i in 0..hd {
                        let e64: f64 = (s..e)
                            .map(|t| (sc[t - s] - m).exp() / z * kv[t * 2 * hd + hd + i] as f64)
                            .sum();
                        let got = want[(r * heads + h) * hd + i] as f64;
                        assert!(
                            (got - e64).abs() < 1e-5,
                            "hd={hd} len={len} r={r} h={h} i={i}: {got} vs {e64}"
                        );
                    }
                }
            }
            for lv in available() {
                assert_eq!(
                    run(lv, &kv, hd, &q, heads, &spans),
                    want,
                    "{lv:?} hd={hd} len={len}"
                );
                // each row alone (token by token) and each head alone
                for (r, sp) in spans.iter().enumerate() {
                    for h in 0..heads {
                        let qv = &q[(r * heads + h) * hd..][..hd];
                        let one = run(lv, &kv, hd, qv, 1, std::slice::from_ref(sp));
                        assert_eq!(one[..], want[(r * heads + h) * hd..][..hd], "{lv:?} single");
                    }
                }
            }
        }
    }

    /// Segments computed apart (as threads do for a long decode) and merged == the whole block.
    #[test]
    fn segments_split_and_merged_match_the_block() {
        let mut rng = Rng::new(5);
        let (hd, heads, len) = (64usize, 3usize, 1500usize);
        let kv = rand_vec(2 * hd * len, &mut rng, Fill::Random);
        for spans in [
            vec![(0usize, len)],
            vec![(700, 1499), (0, 1500)],
            vec![(3, 513)],
        ] {
            let rows = spans.len();
            let q = rand_vec(rows * heads * hd, &mut rng, Fill::Random);
            let nq = rows * heads;
            let want = run(Level::Scalar, &kv, hd, &q, heads, &spans);
            let blk = Block {
                q: &q,
                stride: heads * hd,
                off: 0,
                heads,
                spans: &spans,
            };
            let lo = spans.iter().map(|s| s.0).min().unwrap() / SEG;
            let hi = spans.iter().map(|s| s.1).max().unwrap().div_ceil(SEG);
            for lv in available() {
                let sf = state_floats(nq, hd);
                let mut segs = vec![0f32; (hi - lo) * sf];
                let mut work = vec![0f32; work_floats(nq, hd)];
                for (k, seg) in (lo..hi).enumerate() {
                    segment_at(lv, &F32Tiles { kv: &kv, hd }, 0.125, &blk, seg, &mut work);
                    segs[k * sf..(k + 1) * sf].copy_from_slice(&work[..sf]);
                }
                let mut out = vec![0f32; nq * hd];
                merge_segments_at(lv, &segs, hi - lo, nq, hd, &mut out);
                assert_eq!(out, want, "{lv:?} {spans:?}");
            }
        }
    }

    #[test]
    fn exp_matches_simd_exp() {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::dispatch::detected() >= Level::Avx2 {
            let mut xs: Vec<f32> = (-2200..2000).map(|i| i as f32 * 0.05).collect();
            xs.extend([
                f32::NEG_INFINITY,
                f32::INFINITY,
                f32::NAN,
                -0.0,
                0.0,
                -103.99,
                88.7,
            ]);
            for &x in &xs {
                // SAFETY: AVX2 + FMA present.
                let v = unsafe {
                    use core::arch::x86_64::*;
                    _mm256_cvtss_f32(crate::kernels::x86::vec::exp8(_mm256_set1_ps(x)))
                };
                assert_eq!(exp(x).to_bits(), v.to_bits(), "exp({x})");
            }
        }
    }
}
