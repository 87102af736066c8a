//! The forward pass (spec §5.1 with the normative semantics of §5.3), over one or several
//! sequences at once, for every model family: the layer loop below follows the model's
//! [`Arch`](crate::engine::arch::Arch) through a few named branches (biases, per-head Q/K norms,
//! RoPE style, pre-scaled queries, sliding window, post-norms, activation, embedding scale,
//! logit soft-cap).
//!
//! All token rows of all sequences go through the matrix products together (a decode step of B
//! sequences reads every weight once), in chunks of at most `CHUNK` rows; attention is per row
//! over that row's own cache. Every temporary lives in one scratch buffer the caller provides (the
//! C API takes it from the context's arena), so a step allocates nothing.
//!
//! For one row at position p, per layer (LLaMA; the family's variations in brackets):
//! `u = rmsnorm(x)`, `q,k,v = Wq u, Wk u, Wv u` [+ biases] [per-head rmsnorm of q and k], RoPE
//! on q and k (pairs (2i, 2i+1) per head [NEOX: (i, i+hd/2)]), K/V stored at p,
//! `o_h = softmax(q_h . K_g[w..=p] * scale) V_g[w..=p]` with `g = h / (H/G)` and `w = 0`
//! [sliding window: `p + 1 - window`], `a = Wo o` [+ bias] [rmsnorm(a)], `x += a`,
//! `u = rmsnorm(x)`, `f = Wdown (act(Wgate u) * Wup u)` [+ biases] [rmsnorm(f)], `x += f`; at
//! the end `logits = Wout rmsnorm(x)` [+ bias] [soft-cap] for the last row of each sequence.

use crate::engine::arch::{Activation, RopeStyle};
use crate::engine::kv_cache::KvCache;
use crate::engine::model::{Mat, Model};
use crate::engine::pool::Pool;
use crate::error::{Error, Result};
use crate::kernels::packed::{self, GROUP};
use crate::kernels::{self, attn, ActKind, Acts};

/// Rows processed together through the matrix products.
pub const CHUNK: usize = 128;

/// One sequence's part of a forward call.
pub struct SeqStep<'a> {
    /// Its KV cache.
    pub kv: KvCache,
    /// Tokens to run, at positions `pos ..`.
    pub tokens: &'a [u32],
    /// Position of the first token.
    pub pos: usize,
    /// Receives the logits of the last token (`vocab_size` floats), if given.
    pub logits: Option<&'a mut [f32]>,
}

#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: used only to hand disjoint output regions to pool threads.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    #[inline]
    fn get(self) -> *mut T {
        self.0
    }
}

fn a64(x: usize) -> usize {
    (x + 63) & !63
}

/// Token rows of one sequence whose queries attend together (each K/V tile is read once for
/// all of them and all the query heads of its KV head).
const ATT_ROWS: usize = 16;

/// Chunks of at most this many rows (decode, small batches) split each KV head's keys into
/// segments ([`attn::SEG`]) computed on all threads and merged after (the same bits as one task).
const SPLIT_ROWS: usize = 4;

/// Floats of attention work space per thread.
fn att_work(c: &crate::engine::config::Config) -> usize {
    kernels::attn::work_floats(ATT_ROWS * (c.n_heads / c.n_kv_heads.max(1)), c.head_dim())
}

/// Sizes (bytes) of the scratch regions, in carving order.
fn scratch_parts(
    model: &Model,
    rows: usize,
    n_threads: usize,
    n_logit_rows: usize,
    kv_seq: usize,
) -> [usize; 19] {
    let c = &model.config;
    let (d, h, kvd, qd, v) = (c.dim, c.hidden_dim, c.kv_dim(), c.q_dim(), c.vocab_size);
    let wide = d.max(h).max(qd);
    // Q8_K buffers only for models with matrices that take them.
    let kwide = if uses_q8k(model) { wide } else { 0 };
    [
        4 * rows * d,                // x: residual stream
        4 * rows * d,                // xb: normed input / matmul output
        4 * rows * qd,               // q
        4 * rows * kvd,              // k
        4 * rows * kvd,              // v
        4 * rows * qd,               // att
        4 * rows * h,                // gate / hb
        4 * rows * h,                // up
        4 * rows * h,                // hb = silu(gate) * up
        rows * wide,                 // q8 activations: values
        4 * rows * wide / 32 + 4,    // q8 scales
        4 * rows * wide / 32 + 4,    // q8 block sums
        4 * n_threads * att_work(c), // attention work space, one part per thread
        4 * n_logit_rows * (d + v),  // final normed rows + logits for batched heads
        rows * kwide,                // q8_K activations: values
        4 * rows * kwide / 256 + 4,  // q8_K scales
        2 * rows * kwide / 16 + 4,   // q8_K sums per 16
        rows * kwide / 32 + 4,       // q8_K factor exponents per 32
        // attention segment states of split chunks
        4 * SPLIT_ROWS * c.n_heads * (c.head_dim() + 2) * (kv_seq.div_ceil(attn::SEG) + 1),
    ]
}

/// Whether any matrix of `model` takes Q8_K activations (the 256-block types).
/// (Called on every forward step: allocates nothing.)
fn uses_q8k(model: &Model) -> bool {
    kernels::wants_q8k(model.output.ty)
        || model.layers.iter().any(|l| {
            [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
                .iter()
                .any(|w| kernels::wants_q8k(w.ty))
        })
}

/// Bytes of scratch a forward call over `n_rows` token rows needs with `n_threads` threads,
/// `n_seqs` sequences wanting logits, and caches of `kv_seq` positions.
pub fn scratch_bytes(
    model: &Model,
    n_rows: usize,
    n_threads: usize,
    n_seqs: usize,
    kv_seq: usize,
) -> usize {
    let rows = n_rows.clamp(1, CHUNK);
    scratch_parts(model, rows, n_threads, n_seqs, kv_seq)
        .iter()
        .map(|&b| a64(b))
        .sum::<usize>()
        + 64
}

struct Carver<'a> {
    rest: &'a mut [u8],
}

impl<'a> Carver<'a> {
    fn take<T: Copy>(&mut self, bytes: usize) -> &'a mut [T] {
        let rest = std::mem::take(&mut self.rest);
        let skip = rest.as_ptr().align_offset(64);
        let (_, rest) = rest.split_at_mut(skip);
        let (head, tail) = rest.split_at_mut(a64(bytes));
        self.rest = tail;
        let n = bytes / std::mem::size_of::<T>();
        // SAFETY: 64-aligned, large enough, plain-old-data element types only (f32, i8).
        unsafe { std::slice::from_raw_parts_mut(head.as_mut_ptr() as *mut T, n) }
    }
}

struct Scratch<'a> {
    x: &'a mut [f32],
    xb: &'a mut [f32],
    q: &'a mut [f32],
    k: &'a mut [f32],
    v: &'a mut [f32],
    att: &'a mut [f32],
    gate: &'a mut [f32],
    up: &'a mut [f32],
    hb: &'a mut [f32],
    aq: &'a mut [i8],
    ad: &'a mut [f32],
    as_: &'a mut [f32],
    scores: &'a mut [f32],
    heads: &'a mut [f32],
    kq: &'a mut [i8],
    kd: &'a mut [f32],
    ks: &'a mut [i16],
    kf: &'a mut [u8],
    segs: &'a mut [f32],
}

/// The activation buffers, shared: Q8 (values, scales, sums) and Q8_K (values, scales, sums,
/// factor exponents).
type QSlices<'a> = (
    &'a [i8],
    &'a [f32],
    &'a [f32],
    &'a [i8],
    &'a [f32],
    &'a [i16],
    &'a [u8],
);

impl Scratch<'_> {
    fn qslices(&self) -> QSlices<'_> {
        (
            self.aq, self.ad, self.as_, self.kq, self.kd, self.ks, self.kf,
        )
    }
}

/// Pointers to the activation buffers for the row-wise steps.
#[derive(Clone, Copy)]
struct QPtrs {
    aq: SendPtr<i8>,
    ad: SendPtr<f32>,
    as_: SendPtr<f32>,
    kq: SendPtr<i8>,
    kd: SendPtr<f32>,
    ks: SendPtr<i16>,
    kf: SendPtr<u8>,
}

/// Which quantized forms of an input its matrices take.
#[derive(Clone, Copy, Default)]
struct Needs {
    q8: bool,
    q8k: bool,
}

fn needs(ws: &[&Mat]) -> Needs {
    Needs {
        q8: ws.iter().any(|w| kernels::wants_q8(w.ty)),
        q8k: ws.iter().any(|w| kernels::wants_q8k(w.ty)),
    }
}

/// Q8_K activations: codes, scales, sums per 16, factor exponents per 32.
type Q8kSlices<'a> = (&'a [i8], &'a [f32], &'a [i16], &'a [u8]);

/// Quantized (or plain) activations for the matrices that read `x` (`n` rows of `k`).
struct Prepared<'a> {
    x: &'a [f32],
    q8: Option<(&'a [i8], &'a [f32], &'a [f32])>,
    q8k: Option<Q8kSlices<'a>>,
    n: usize,
    k: usize,
}

impl<'a> Prepared<'a> {
    fn acts(&self, w: &Mat) -> Acts<'a> {
        match (kernels::act_kind(w.ty), self.q8, self.q8k) {
            (ActKind::Q8, Some((qs, d, s)), _) => Acts::Q8 {
                qs,
                d,
                s,
                n: self.n,
                k: self.k,
            },
            (ActKind::Q8K, _, Some((qs, d, bsums, sh))) => Acts::Q8K {
                qs,
                d,
                bsums,
                sh,
                n: self.n,
                k: self.k,
            },
            _ => Acts::F32 {
                x: self.x,
                n: self.n,
                k: self.k,
            },
        }
    }
}

/// Rows `rows` of `w` times `a` into `out` (packed kernels when `w` was repacked).
///
/// # Safety
/// As `kernels::matmul`; `rows.start` a multiple of `GROUP`.
unsafe fn matmul_rows(
    w: &Mat,
    a: Acts<'_>,
    rows: std::ops::Range<usize>,
    out: *mut f32,
    ldo: usize,
) {
    match w.packed() {
        Some(p) => packed::matmul_packed(p, a, rows, out, ldo),
        None => kernels::matmul(w.as_ref(), a, rows, out, ldo),
    }
}

/// Largest share of weight bytes in one chunk of `par_matmul`: the thread that finishes its own
/// share first waits for the other's last chunk, so big matrices (the LM head: 30 MB of Q8_0 for
/// SmolLM2, ~2 MB per chunk at 8 chunks a thread) get smaller chunks.
const CHUNK_BYTES: usize = 256 << 10;

/// Runs several matrix products over the pool. Their rows, in whole groups of `GROUP`, are cut
/// into chunks (about 8 per thread, at most about `CHUNK_BYTES` of weights, an even number of
/// groups each) that the threads claim (`Pool::run_chunks`): each thread streams its own share
/// and helps with the others' at the end. Every output row is computed by one thread with the
/// same arithmetic whatever the split.
fn par_matmul(pool: &Pool, jobs: &[(&Mat, Acts<'_>, SendPtr<f32>, usize)]) {
    let total: usize = jobs.iter().map(|j| j.0.rows.div_ceil(GROUP)).sum();
    let bytes: usize = jobs
        .iter()
        .map(|j| j.0.ty.row_bytes(j.0.cols).unwrap_or(0) * j.0.rows)
        .sum();
    let nt = pool.n_threads();
    // The cap balances the weight streams of a decode step. One thread runs the chunks in
    // order, and a prefill's chunks are long in compute anyway: no cap (fewer, longer kernel
    // calls, each reusing an activation tile over more weight rows).
    let n_acts = jobs.iter().map(|j| j.1.shape().0).max().unwrap_or(1);
    let cap = if nt == 1 || n_acts >= crate::kernels::PREFILL_ROWS {
        usize::MAX
    } else {
        CHUNK_BYTES / (bytes / total.max(1)).max(1)
    };
    let per = (total.div_ceil(8 * nt).min(cap).max(2) + 1) & !1;
    let n_chunks = total.div_ceil(per);
    pool.run_chunks(n_chunks, &|_tid, c| {
        let (lo, hi) = (c * per, ((c + 1) * per).min(total));
        let mut base = 0;
        for &(w, a, out, ldo) in jobs {
            let units = w.rows.div_ceil(GROUP);
            let u0 = lo.max(base);
            let u1 = hi.min(base + units);
            if u0 < u1 {
                let r0 = (u0 - base) * GROUP;
                let r1 = ((u1 - base) * GROUP).min(w.rows);
                // SAFETY: each chunk writes the disjoint rows [r0, r1) of this job's output,
                // which has room for n rows of `ldo` floats; r0 is a multiple of GROUP.
                unsafe { matmul_rows(w, a, r0..r1, out.get(), ldo) };
            }
            base += units;
        }
    });
}

/// Runs the model over every sequence's tokens, writes their K/V, and each sequence's last-token
/// logits. `scratch` must hold `scratch_bytes(...)` bytes.
pub fn forward(
    model: &Model,
    seqs: &mut [SeqStep<'_>],
    scratch: &mut [u8],
    pool: &Pool,
) -> Result<()> {
    let c = model.config;
    let n_rows: usize = seqs.iter().map(|s| s.tokens.len()).sum();
    if n_rows == 0 {
        return Err(Error::InvalidSize("no tokens".into()));
    }
    let kv_seq = seqs.iter().map(|s| s.kv.layout.max_seq).max().unwrap_or(0);
    for s in seqs.iter() {
        let l = s.kv.layout;
        if l.n_layers != c.n_layers || l.n_kv_heads != c.n_kv_heads || l.head_dim != c.head_dim() {
            return Err(Error::InvalidSize(
                "KV cache geometry does not match the model".into(),
            ));
        }
        if l.max_seq > c.max_seq_len || s.pos + s.tokens.len() > l.max_seq {
            return Err(Error::InvalidArg(format!(
                "positions {}..{} exceed the context of {}",
                s.pos,
                s.pos + s.tokens.len(),
                l.max_seq
            )));
        }
        if let Some(&t) = s.tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(Error::InvalidArg(format!(
                "token id {t} >= vocab size {}",
                c.vocab_size
            )));
        }
        if s.logits.as_ref().is_some_and(|l| l.len() < c.vocab_size) {
            return Err(Error::InvalidSize(
                "logits buffer shorter than the vocabulary".into(),
            ));
        }
    }
    let n_logit = seqs
        .iter()
        .filter(|s| s.logits.is_some() && !s.tokens.is_empty())
        .count();
    let nt = pool.n_threads();
    let need = scratch_bytes(model, n_rows, nt, n_logit, kv_seq);
    if scratch.len() < need {
        return Err(Error::ArenaOom(format!(
            "forward needs {need} scratch bytes, {} available",
            scratch.len()
        )));
    }
    let rows_cap = n_rows.min(CHUNK);
    let parts = scratch_parts(model, rows_cap, nt, n_logit, kv_seq);
    let mut cv = Carver { rest: scratch };
    let mut s = Scratch {
        x: cv.take(parts[0]),
        xb: cv.take(parts[1]),
        q: cv.take(parts[2]),
        k: cv.take(parts[3]),
        v: cv.take(parts[4]),
        att: cv.take(parts[5]),
        gate: cv.take(parts[6]),
        up: cv.take(parts[7]),
        hb: cv.take(parts[8]),
        aq: cv.take(parts[9]),
        ad: cv.take(parts[10]),
        as_: cv.take(parts[11]),
        scores: cv.take(parts[12]),
        heads: cv.take(parts[13]),
        kq: cv.take(parts[14]),
        kd: cv.take(parts[15]),
        ks: cv.take(parts[16]),
        kf: cv.take(parts[17]),
        segs: cv.take(parts[18]),
    };

    // Row index -> (sequence, position), walked chunk by chunk.
    let mut row_seq: [usize; CHUNK] = [0; CHUNK];
    let mut row_pos: [usize; CHUNK] = [0; CHUNK];
    let mut cursor = (0usize, 0usize); // (sequence, token offset)
    let mut done = 0;
    while done < n_rows {
        let rows = (n_rows - done).min(CHUNK);
        let mut tokens = [0u32; CHUNK];
        let mut last_rows: [(usize, usize); CHUNK] = [(0, 0); CHUNK];
        let mut n_last = 0;
        for r in 0..rows {
            while cursor.1 >= seqs[cursor.0].tokens.len() {
                cursor = (cursor.0 + 1, 0);
            }
            let sq = &seqs[cursor.0];
            row_seq[r] = cursor.0;
            row_pos[r] = sq.pos + cursor.1;
            tokens[r] = sq.tokens[cursor.1];
            if cursor.1 + 1 == sq.tokens.len() && sq.logits.is_some() {
                last_rows[n_last] = (cursor.0, r);
                n_last += 1;
            }
            cursor.1 += 1;
        }
        run_chunk(
            model,
            seqs,
            &mut s,
            pool,
            &tokens[..rows],
            &row_seq[..rows],
            &row_pos[..rows],
        );
        if n_last > 0 {
            lm_head(model, seqs, &mut s, pool, &last_rows[..n_last]);
        }
        done += rows;
    }
    Ok(())
}

/// Chunks with at least this many rows run their row-wise steps (norms, activation
/// quantization, RoPE, residual adds, SwiGLU) on the pool; smaller ones (decode) on the caller.
const PAR_ROWS_MIN: usize = 4;

/// `f(r)` for every row `r < n`, on the pool when `n >= PAR_ROWS_MIN`.
fn for_rows(pool: &Pool, n: usize, f: &(dyn Fn(usize) + Sync)) {
    if n >= PAR_ROWS_MIN && pool.n_threads() > 1 {
        pool.run_chunks(n, &|_, r| f(r));
    } else {
        (0..n).for_each(f);
    }
}

/// Row `r` (of `len` elements) of the buffer at `p`.
///
/// # Safety
/// The row must lie inside the buffer, and no other live reference may overlap it (row-wise
/// steps give each row to one thread).
#[allow(clippy::mut_from_ref)]
unsafe fn row<'a, T>(p: SendPtr<T>, r: usize, len: usize) -> &'a mut [T] {
    std::slice::from_raw_parts_mut(p.get().add(r * len), len)
}

/// Quantizes row `r` of `x` (`k` wide) into the activation buffers its matrices need.
///
/// # Safety
/// As [`row`], for row `r` of `x` and of the buffers of `q` (`k % 32 == 0`; `k % 256 == 0` when
/// Q8_K is needed).
unsafe fn quantize_row(x: &[f32], q: QPtrs, need: Needs, r: usize, k: usize) {
    if need.q8 {
        let nb = k / 32;
        kernels::quantize_acts(x, row(q.aq, r, k), row(q.ad, r, nb), row(q.as_, r, nb));
    }
    if need.q8k {
        kernels::quantize_acts_k(
            x,
            row(q.kq, r, k),
            row(q.kd, r, k / 256),
            row(q.ks, r, k / 16),
            row(q.kf, r, k / 32),
        );
    }
}

/// Activations for matrices `ws` from `x` (`n` rows of `k`), whose quantized forms (those `ws`
/// want) the caller already wrote into the buffers of `q` (row-wise steps, LM head).
fn prepared<'a>(x: &'a [f32], n: usize, k: usize, ws: &[&Mat], q: QSlices<'a>) -> Prepared<'a> {
    let (aq, ad, as_, kq, kd, ks, kf) = q;
    let need = needs(ws);
    let nb = n * k / 32;
    let q8 = need.q8.then(|| (&aq[..n * k], &ad[..nb], &as_[..nb]));
    let q8k = need.q8k.then(|| {
        let nk = n * k;
        (&kq[..nk], &kd[..nk / 256], &ks[..nk / 16], &kf[..nk / 32])
    });
    Prepared {
        x: &x[..n * k],
        q8,
        q8k,
        n,
        k,
    }
}

/// `x += b` when there is a bias.
fn add_bias(x: &mut [f32], b: &Option<Vec<f32>>) {
    if let Some(b) = b {
        for (x, b) in x.iter_mut().zip(b) {
            *x += b;
        }
    }
}

fn run_chunk(
    model: &Model,
    seqs: &[SeqStep<'_>],
    s: &mut Scratch<'_>,
    pool: &Pool,
    tokens: &[u32],
    row_seq: &[usize],
    row_pos: &[usize],
) {
    let c = model.config;
    let arch = &model.arch;
    let (d, h, kvd, qd, hd) = (c.dim, c.hidden_dim, c.kv_dim(), c.q_dim(), c.head_dim());
    let (n_heads, n_kv) = (c.n_heads, c.n_kv_heads);
    let group = n_heads / n_kv;
    let n = tokens.len();
    let half = hd / 2;
    // Either the queries are scaled before the dot products, or the dot products are.
    let (q_scale, att_scale) = match arch.prescale_q {
        true => (Some(arch.attn_scale), 1.0),
        false => (None, arch.attn_scale),
    };
    let eps = c.rms_eps;
    let wants = needs;
    // The context the caches were made for picks Phi-3's long or short RoPE factors.
    let n_ctx = seqs.iter().map(|s| s.kv.layout.max_seq).max().unwrap_or(0);

    for (r, &t) in tokens.iter().enumerate() {
        let x = &mut s.x[r * d..(r + 1) * d];
        match model.tok_embd.packed() {
            Some(p) => packed::dequantize_row_packed(p, t as usize, x),
            None => kernels::dequantize_row(model.tok_embd.as_ref(), t as usize, x),
        }
        if let Some(e) = arch.embed_scale {
            x.iter_mut().for_each(|v| *v *= e);
        }
    }

    // Every row-wise step below hands row r of each buffer to one thread; the buffers are
    // reached through these pointers (the matrix products and attention take their own views
    // between the steps).
    let (px, pxb, pq, pk, pv, patt) = (
        SendPtr(s.x.as_mut_ptr()),
        SendPtr(s.xb.as_mut_ptr()),
        SendPtr(s.q.as_mut_ptr()),
        SendPtr(s.k.as_mut_ptr()),
        SendPtr(s.v.as_mut_ptr()),
        SendPtr(s.att.as_mut_ptr()),
    );
    let (pgate, pup, phb) = (
        SendPtr(s.gate.as_mut_ptr()),
        SendPtr(s.up.as_mut_ptr()),
        SendPtr(s.hb.as_mut_ptr()),
    );
    let qp = QPtrs {
        aq: SendPtr(s.aq.as_mut_ptr()),
        ad: SendPtr(s.ad.as_mut_ptr()),
        as_: SendPtr(s.as_.as_mut_ptr()),
        kq: SendPtr(s.kq.as_mut_ptr()),
        kd: SendPtr(s.kd.as_mut_ptr()),
        ks: SendPtr(s.ks.as_mut_ptr()),
        kf: SendPtr(s.kf.as_mut_ptr()),
    };

    // u = rmsnorm(x) (+ its Q8 form) for the first layer; later layers get it from the
    // previous layer's last row-wise step.
    if let Some(l0) = model.layers.first() {
        let q8 = wants(&[&l0.wq, &l0.wk, &l0.wv]);
        for_rows(pool, n, &|r| {
            // SAFETY: row r of x and xb (and of the Q8 buffers) belong to this call alone.
            unsafe {
                let xb = row(pxb, r, d);
                kernels::rmsnorm(row(px, r, d), &l0.attn_norm, eps, xb);
                quantize_row(xb, qp, q8, r, d);
            }
        });
    }

    for (li, layer) in model.layers.iter().enumerate() {
        // --- attention ---
        let (wq, wk, wv) = (&layer.wq, &layer.wk, &layer.wv);
        {
            let p = prepared(s.xb, n, d, &[wq, wk, wv], s.qslices());
            par_matmul(
                pool,
                &[
                    (wq, p.acts(wq), pq, qd),
                    (wk, p.acts(wk), pk, kvd),
                    (wv, p.acts(wv), pv, kvd),
                ],
            );
        }
        let rope = model.rope_for(li, n_ctx);
        let window = if arch.is_swa(li) {
            arch.sliding_window
        } else {
            usize::MAX
        };
        for_rows(pool, n, &|r| {
            let pos = row_pos[r];
            let (cos, sin) = (
                &rope.cos[pos * half..(pos + 1) * half],
                &rope.sin[pos * half..(pos + 1) * half],
            );
            // SAFETY: row r of q, k, v belongs to this call alone.
            let (q, k, v) = unsafe { (row(pq, r, qd), row(pk, r, kvd), row(pv, r, kvd)) };
            add_bias(q, &layer.bq);
            add_bias(k, &layer.bk);
            add_bias(v, &layer.bv);
            let rotate = |x: &mut [f32], norm: &Option<Vec<f32>>| {
                if let Some(w) = norm {
                    kernels::rmsnorm_in_place(x, w, eps);
                }
                match arch.rope_style {
                    RopeStyle::Interleaved => kernels::rope(x, cos, sin),
                    RopeStyle::Neox => kernels::rope_neox(x, cos, sin),
                }
            };
            for qh in q.chunks_exact_mut(hd) {
                rotate(qh, &layer.q_norm);
                if let Some(sc) = q_scale {
                    qh.iter_mut().for_each(|v| *v *= sc);
                }
            }
            for g in 0..n_kv {
                let o = g * hd;
                rotate(&mut k[o..o + hd], &layer.k_norm);
                // SAFETY: one row writes this (layer, head, position); nobody reads it yet.
                unsafe {
                    seqs[row_seq[r]]
                        .kv
                        .write(li, g, pos, &k[o..o + hd], &v[o..o + hd])
                };
            }
        });
        attention(
            seqs,
            s,
            pool,
            AttnStep {
                li,
                n,
                row_seq,
                row_pos,
                window,
                scale: att_scale,
                qd,
                hd,
                group,
                n_kv,
            },
        );
        let wo = &layer.wo;
        let q8 = wants(&[wo]);
        if q8.q8 || q8.q8k {
            // SAFETY: row r of att and of the Q8 buffers belongs to this call alone.
            for_rows(pool, n, &|r| unsafe {
                quantize_row(row(patt, r, qd), qp, q8, r, qd)
            });
        }
        {
            let p = prepared(s.att, n, qd, &[wo], s.qslices());
            par_matmul(pool, &[(wo, p.acts(wo), pxb, d)]);
        }

        // --- feed-forward ---
        let (wg, wu, wd) = (&layer.w_gate, &layer.w_up, &layer.w_down);
        let q8 = wants(&[wg, wu]);
        for_rows(pool, n, &|r| {
            // SAFETY: row r of x, xb and of the Q8 buffers belongs to this call alone.
            unsafe {
                let (x, xb) = (row(px, r, d), row(pxb, r, d));
                add_bias(xb, &layer.bo);
                if let Some(w) = &layer.post_attn_norm {
                    kernels::rmsnorm_in_place(xb, w, eps);
                }
                for (x, o) in x.iter_mut().zip(xb.iter()) {
                    *x += o;
                }
                kernels::rmsnorm(x, &layer.ffn_norm, eps, xb);
                quantize_row(xb, qp, q8, r, d);
            }
        });
        {
            let p = prepared(s.xb, n, d, &[wg, wu], s.qslices());
            par_matmul(
                pool,
                &[(wg, p.acts(wg), pgate, h), (wu, p.acts(wu), pup, h)],
            );
        }
        // Row by row (also when serial): the SIMD kernel takes a scalar path for the last
        // `len % 8` elements, so over all n rows at once an element's rounding would depend on
        // n (when h % 8 != 0) and a prefill would differ from token-by-token calls.
        let q8 = wants(&[wd]);
        for_rows(pool, n, &|r| {
            // SAFETY: row r of gate, up, hb and of the Q8 buffers belongs to this call alone.
            unsafe {
                let (gate, up, hb) = (row(pgate, r, h), row(pup, r, h), row(phb, r, h));
                add_bias(gate, &layer.b_gate);
                add_bias(up, &layer.b_up);
                match arch.activation {
                    Activation::Silu => kernels::swiglu(gate, up, hb),
                    Activation::GeluTanh => kernels::gelu::geglu(gate, up, hb),
                }
                quantize_row(hb, qp, q8, r, h);
            }
        });
        {
            let p = prepared(s.hb, n, h, &[wd], s.qslices());
            par_matmul(pool, &[(wd, p.acts(wd), pxb, d)]);
        }
        // x += down; then the next layer's normed input (and its Q8 form).
        let next = model.layers.get(li + 1);
        let q8 = next.map_or(Needs::default(), |l| wants(&[&l.wq, &l.wk, &l.wv]));
        for_rows(pool, n, &|r| {
            // SAFETY: row r of x, xb and of the Q8 buffers belongs to this call alone.
            unsafe {
                let (x, xb) = (row(px, r, d), row(pxb, r, d));
                add_bias(xb, &layer.b_down);
                if let Some(w) = &layer.post_ffn_norm {
                    kernels::rmsnorm_in_place(xb, w, eps);
                }
                for (x, o) in x.iter_mut().zip(xb.iter()) {
                    *x += o;
                }
                if let Some(l) = next {
                    kernels::rmsnorm(x, &l.attn_norm, eps, xb);
                    quantize_row(xb, qp, q8, r, d);
                }
            }
        });
    }
}

/// What one layer's attention step works on.
struct AttnStep<'a> {
    li: usize,
    n: usize,
    row_seq: &'a [usize],
    row_pos: &'a [usize],
    window: usize,
    scale: f32,
    qd: usize,
    hd: usize,
    group: usize,
    n_kv: usize,
}

/// `att = softmax(q K^T * scale) V` for every row and head of the chunk (K/V of the chunk already
/// written). Rows are grouped in blocks of at most `ATT_ROWS` consecutive rows of one sequence;
/// one task per (block, KV head), the last blocks (longest spans) first; chunks of at most
/// `SPLIT_ROWS` rows on several threads also split the keys into segments, merged after.
fn attention(seqs: &[SeqStep<'_>], s: &mut Scratch<'_>, pool: &Pool, a: AttnStep<'_>) {
    let AttnStep {
        li,
        n,
        row_seq,
        row_pos,
        window,
        scale,
        qd,
        hd,
        group,
        n_kv,
    } = a;
    let q = &*s.q;
    let patt = SendPtr(s.att.as_mut_ptr());
    let work = SendPtr(s.scores.as_mut_ptr());
    let wlen = s.scores.len() / pool.n_threads();
    let mut blocks = [(0usize, 0usize); CHUNK];
    let (mut nb, mut r0) = (0, 0);
    for r in 1..=n {
        if r == n || row_seq[r] != row_seq[r0] || r - r0 == ATT_ROWS {
            blocks[nb] = (r0, r);
            nb += 1;
            r0 = r;
        }
    }
    let gw = group * hd;
    let spans_of = |(r0, r1): (usize, usize)| {
        let mut spans = [(0usize, 0usize); ATT_ROWS];
        for (sp, &pos) in spans.iter_mut().zip(&row_pos[r0..r1]) {
            *sp = ((pos + 1).saturating_sub(window), pos + 1);
        }
        spans
    };
    let src_of = |r0: usize, g: usize, spans: &[(usize, usize)]| {
        let end = spans.iter().map(|s| s.1).max().unwrap_or(0);
        // SAFETY: all K/V of this chunk were written before this step.
        unsafe { seqs[row_seq[r0]].kv.tiles(li, g, end) }
    };
    let lv = kernels::level();
    if pool.n_threads() > 1 && n <= SPLIT_ROWS {
        // (block, KV head, segment) tasks; their states go to `segs`, merged below.
        let (mut seg0, mut nseg, mut tbase, mut sbase) = (
            [0usize; SPLIT_ROWS],
            [0; SPLIT_ROWS],
            [0; SPLIT_ROWS],
            [0; SPLIT_ROWS],
        );
        let (mut n_tasks, mut off) = (0, 0);
        for b in 0..nb {
            let sp = spans_of(blocks[b]);
            let sp = &sp[..blocks[b].1 - blocks[b].0];
            let lo = sp.iter().map(|s| s.0).min().unwrap_or(0);
            let hi = sp.iter().map(|s| s.1).max().unwrap_or(0);
            seg0[b] = lo / attn::SEG;
            nseg[b] = hi.div_ceil(attn::SEG) - seg0[b];
            tbase[b] = n_tasks;
            sbase[b] = off;
            n_tasks += n_kv * nseg[b];
            off += n_kv * nseg[b] * attn::state_floats(sp.len() * group, hd);
        }
        assert!(off <= s.segs.len(), "attention: segment scratch");
        let segs = SendPtr(s.segs.as_mut_ptr());
        pool.run_chunks(n_tasks, &|tid, c| {
            let b = (0..nb).rfind(|&b| tbase[b] <= c).unwrap_or(0);
            let k = c - tbase[b];
            let (g, si) = (k / nseg[b], k % nseg[b]);
            let sp = spans_of(blocks[b]);
            let sp = &sp[..blocks[b].1 - blocks[b].0];
            let src = src_of(blocks[b].0, g, sp);
            let (r0, r1) = blocks[b];
            let blk = attn::Block {
                q: &q[r0 * qd..r1 * qd],
                stride: qd,
                off: g * gw,
                heads: group,
                spans: sp,
            };
            // SAFETY: thread `tid` owns work part `tid`.
            let w = unsafe { row(work, tid, wlen) };
            attn::segment_at(lv, &src, scale, &blk, seg0[b] + si, w);
            let sf = attn::state_floats(sp.len() * group, hd);
            // SAFETY: this task alone writes state (b, g, si).
            let dst = unsafe {
                std::slice::from_raw_parts_mut(
                    segs.get().add(sbase[b] + (g * nseg[b] + si) * sf),
                    sf,
                )
            };
            dst.copy_from_slice(&w[..sf]);
        });
        for b in 0..nb {
            let (r0, r1) = blocks[b];
            let nq = (r1 - r0) * group;
            let sf = attn::state_floats(nq, hd);
            for g in 0..n_kv {
                let st = &s.segs[sbase[b] + g * nseg[b] * sf..][..nseg[b] * sf];
                let tmp = &mut s.scores[..nq * hd];
                attn::merge_segments_at(lv, st, nseg[b], nq, hd, tmp);
                for (i, r) in (r0..r1).enumerate() {
                    s.att[r * qd + g * gw..][..gw].copy_from_slice(&tmp[i * gw..(i + 1) * gw]);
                }
            }
        }
        return;
    }
    let n_tasks = nb * n_kv;
    pool.run_chunks(n_tasks, &|tid, c| {
        let task = n_tasks - 1 - c;
        let ((r0, r1), g) = (blocks[task / n_kv], task % n_kv);
        let sp = spans_of((r0, r1));
        let sp = &sp[..r1 - r0];
        let src = src_of(r0, g, sp);
        let blk = attn::Block {
            q: &q[r0 * qd..r1 * qd],
            stride: qd,
            off: g * gw,
            heads: group,
            spans: sp,
        };
        // SAFETY: thread `tid` owns work part `tid`.
        let w = unsafe { row(work, tid, wlen) };
        attn::attend_block_at(lv, &src, scale, &blk, w);
        for (i, r) in (r0..r1).enumerate() {
            // SAFETY: this task alone writes the heads of KV head g in rows r0..r1.
            let out =
                unsafe { std::slice::from_raw_parts_mut(patt.get().add(r * qd + g * gw), gw) };
            out.copy_from_slice(&w[i * gw..(i + 1) * gw]);
        }
    });
}

/// Final norm and LM head for the rows in `last` ((sequence, row in chunk)); one matrix product
/// for all of them.
fn lm_head(
    model: &Model,
    seqs: &mut [SeqStep<'_>],
    s: &mut Scratch<'_>,
    pool: &Pool,
    last: &[(usize, usize)],
) {
    let c = model.config;
    let (d, v) = (c.dim, c.vocab_size);
    let m = last.len();
    let (xn, logits) = s.heads.split_at_mut(m * d);
    for (i, &(_, r)) in last.iter().enumerate() {
        kernels::rmsnorm(
            &s.x[r * d..(r + 1) * d],
            &model.output_norm,
            c.rms_eps,
            &mut xn[i * d..(i + 1) * d],
        );
    }
    let w = &model.output;
    if kernels::wants_q8(w.ty) {
        let nb = m * d / 32;
        kernels::quantize_acts(xn, &mut s.aq[..m * d], &mut s.ad[..nb], &mut s.as_[..nb]);
    }
    if kernels::wants_q8k(w.ty) {
        let (kd, ks) = (&mut s.kd[..m * d / 256], &mut s.ks[..m * d / 16]);
        kernels::quantize_acts_k(xn, &mut s.kq[..m * d], kd, ks, &mut s.kf[..m * d / 32]);
    }
    let q = (&*s.aq, &*s.ad, &*s.as_, &*s.kq, &*s.kd, &*s.ks, &*s.kf);
    let p = prepared(xn, m, d, &[w], q);
    if m == 1 {
        let out = seqs[last[0].0].logits.as_mut().expect("logits wanted");
        par_matmul(pool, &[(w, p.acts(w), SendPtr(out.as_mut_ptr()), v)]);
        finish_logits(model, &mut out[..v]);
    } else {
        par_matmul(pool, &[(w, p.acts(w), SendPtr(logits.as_mut_ptr()), v)]);
        for (i, &(sq, _)) in last.iter().enumerate() {
            let out = seqs[sq].logits.as_mut().expect("logits wanted");
            out[..v].copy_from_slice(&logits[i * v..(i + 1) * v]);
            finish_logits(model, &mut out[..v]);
        }
    }
}

/// The LM head's bias (Qwen2) and final soft-cap (`cap * tanh(logit / cap)`, Gemma) if any.
fn finish_logits(model: &Model, logits: &mut [f32]) {
    add_bias(logits, &model.output_bias);
    if let Some(cap) = model.arch.final_softcap {
        let inv = 1.0 / cap;
        logits.iter_mut().for_each(|l| *l = (*l * inv).tanh() * cap);
    }
}
