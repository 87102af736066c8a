//! Spec §3.6 (sampling, generation) and qorus's additions: batch generation, streaming, seeding,
//! thread count.

use std::cell::RefCell;
use std::ffi::{c_char, c_void};
use std::sync::Arc;

use crate::engine::{Model, ScratchBuf};
use crate::error::{Error, Result};
use crate::ffi::boundary::{check_mut, check_ref, guard, guard_code};
use crate::ffi::model::{check_forward, context_kv, forward_in_context};
use crate::ffi::types::*;
use crate::generate::{
    generate, generate_batch, BatchSeq, GenOptions, GenParams, Outcome, Step, StopReason,
};
use crate::sampling::{self, SamplerScratch, SamplingParams};

/// Samples one token id from `logits` (spec §3.6.1; defects E1–E3 fixed, see `crate::sampling`).
///
/// Checks, in order: `logits` or `token_id_out` NULL → `Q_ERR_INVALID_ARG`; `vocab_size == 0` →
/// `Q_ERR_INVALID_SIZE`; `temperature` negative, NaN or infinite → `Q_ERR_INVALID_ARG`; `logits`
/// not 4-byte aligned → `Q_ERR_MISALIGNED`. `temperature < 1e-6` returns the first maximum without
/// touching the RNG; otherwise one draw from the calling thread's RNG. `ctx` may be NULL and is not
/// used: scratch buffers are per-thread heap memory kept between calls (the arena is not touched).
/// On error nothing is written and the RNG does not advance.
///
/// # Safety
/// `logits` must be NULL or hold `vocab_size` floats; `token_id_out` NULL or writable; `ctx` NULL
/// or a valid context.
#[no_mangle]
pub unsafe extern "C" fn q_sample_token(
    logits: *const f32,
    vocab_size: u32,
    temperature: f32,
    top_k: u32,
    top_p: f32,
    token_id_out: *mut u32,
    ctx: *mut q_context,
) -> q_error_code {
    guard_code("q_sample_token", || {
        let _ = ctx; // accepted for ABI compatibility; the arena is not needed
        if logits.is_null() {
            return Err(Error::InvalidArg("logits is NULL".into()));
        }
        if token_id_out.is_null() {
            return Err(Error::InvalidArg("token_id_out is NULL".into()));
        }
        if vocab_size == 0 {
            return Err(Error::InvalidSize("vocab_size is 0".into()));
        }
        let params = SamplingParams {
            temperature,
            top_k,
            top_p,
        };
        params.validate()?;
        if !(logits as usize).is_multiple_of(std::mem::align_of::<f32>()) {
            return Err(Error::Misaligned("logits is not 4-byte aligned".into()));
        }
        // SAFETY: non-NULL, aligned, and the caller guarantees `vocab_size` readable floats.
        let logits = unsafe { std::slice::from_raw_parts(logits, vocab_size as usize) };
        let id = if params.is_greedy() {
            sampling::argmax(logits)
        } else {
            FFI_SCRATCH.with(|scratch| {
                let mut scratch = scratch
                    .try_borrow_mut()
                    .map_err(|_| Error::Internal("sampler scratch re-entered".into()))?;
                sampling::with_thread_rng(|rng| {
                    sampling::sample(logits, &params, rng, &mut scratch)
                })
            })?
        };
        // SAFETY: non-NULL and writable per the contract; written unaligned-safe.
        unsafe { token_id_out.write_unaligned(id) };
        Ok(())
    })
}

thread_local! {
    /// `q_sample_token`'s buffers: grown to the largest vocabulary seen on the thread, reused.
    static FFI_SCRATCH: RefCell<SamplerScratch> = RefCell::new(SamplerScratch::default());
}

/// Everything `q_generate` needs from a state, checked in the spec's order (§3.6.2).
pub(crate) struct Checked<'a> {
    pub(crate) ctx: &'a mut q_context,
    pub(crate) engine: Arc<Model>,
    pub(crate) prompt: &'a [u32],
    pub(crate) out: &'a mut [u32],
    pub(crate) params: GenParams,
}

pub(crate) unsafe fn check_state<'a>(state: &'a mut q_generation_state) -> Result<Checked<'a>> {
    check_state_at(state, 0)
}

/// [`check_state`] for a prompt fed at `start_pos` (the cache before it is kept).
pub(crate) unsafe fn check_state_at<'a>(
    state: &'a mut q_generation_state,
    start_pos: u32,
) -> Result<Checked<'a>> {
    if state.ctx.is_null()
        || state.model.is_null()
        || state.tokenizer.is_null()
        || state.prompt_tokens.is_null()
        || state.generated_tokens.is_null()
    {
        return Err(Error::InvalidArg(
            "NULL pointer in the generation state".into(),
        ));
    }
    if state.num_prompt_tokens == 0 {
        return Err(Error::InvalidSize("num_prompt_tokens is 0".into()));
    }
    if state.max_tokens == 0 {
        return Err(Error::InvalidSize("max_tokens is 0".into()));
    }
    let sampling = SamplingParams {
        temperature: state.temperature,
        top_k: state.top_k,
        top_p: state.top_p,
    };
    sampling.validate()?;
    let tok = check_ref(state.tokenizer as *const q_tokenizer, "tokenizer")?;
    if !tok.initialized {
        return Err(Error::InvalidArg("tokenizer is not initialised".into()));
    }
    let eos = tok.eos_token_id;
    let ctx = check_mut(state.ctx, "ctx")?;
    if ctx.scratch_buffer.is_null() || ctx.kv_buffer.is_null() {
        return Err(Error::InvalidArg(
            "context has no arena or no KV cache".into(),
        ));
    }
    let model = check_ref(state.model as *const q_llama_model, "model")?;
    if state.num_prompt_tokens > model.config.max_seq_len {
        return Err(Error::InvalidSize("prompt longer than the context".into()));
    }
    if !(state.prompt_tokens as usize).is_multiple_of(4)
        || !(state.generated_tokens as usize).is_multiple_of(4)
    {
        return Err(Error::Misaligned("token buffers".into()));
    }
    let prompt = std::slice::from_raw_parts(state.prompt_tokens, state.num_prompt_tokens as usize);
    let engine = check_forward(model, ctx, prompt, start_pos)?;
    let out = std::slice::from_raw_parts_mut(state.generated_tokens, state.max_tokens as usize);
    let params = GenParams {
        max_tokens: state.max_tokens as usize,
        sampling,
        eos: Some(eos),
    };
    Ok(Checked {
        ctx,
        engine,
        prompt,
        out,
        params,
    })
}

/// The spec's generation loop over a C context: the arena is rewound before every forward call.
pub(crate) struct ContextStep<'a> {
    pub(crate) engine: &'a Model,
    pub(crate) ctx: &'a mut q_context,
    pub(crate) logits: Vec<f32>,
}

impl Step for ContextStep<'_> {
    fn n_ctx(&self) -> usize {
        self.engine.config.max_seq_len
    }
    fn run(&mut self, tokens: &[u32], pos: usize) -> Result<()> {
        self.ctx.scratch_head = self.ctx.scratch_base_offset;
        forward_in_context(self.engine, self.ctx, tokens, pos, &mut self.logits)
    }
    fn logits(&self) -> &[f32] {
        &self.logits
    }
    fn shift(&mut self, keep: usize, discard: usize, pos: usize) -> Result<()> {
        let kv = context_kv(self.ctx, self.engine)?;
        if keep + discard > pos || pos > kv.layout.max_seq || discard == 0 {
            return Err(Error::InvalidArg(format!(
                "context shift keep {keep} discard {discard} at {pos}"
            )));
        }
        let (engine, n_ctx) = (self.engine, kv.layout.max_seq);
        // SAFETY: the context's cache is used by this generation alone (caller contract).
        unsafe {
            kv.shift(keep, discard, pos, &|layer, k| {
                crate::engine::kv_cache::rerotate_key(engine, layer, n_ctx, k, discard)
            })
        };
        Ok(())
    }
}

unsafe fn generate_state(
    state: *mut q_generation_state,
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<()> {
    let state = check_mut(state, "state")?;
    let c = check_state(state)?;
    let mut logits = Vec::new();
    logits
        .try_reserve_exact(c.engine.config.vocab_size)
        .map_err(|_| Error::AllocFailed("logits buffer".into()))?;
    logits.resize(c.engine.config.vocab_size, 0.0);
    let mut step = ContextStep {
        engine: &c.engine,
        ctx: c.ctx,
        logits,
    };
    let outcome = generate(&mut step, c.prompt, 0, &c.params, c.out, on_token);
    match outcome {
        Ok(o) => {
            state.num_generated_tokens = o.n_generated as u32;
            state.current_pos = o.pos as u32;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Prefills the prompt in one batched forward call, then generates one id per step until
/// `max_tokens`, the tokenizer's EOS (kept and counted) or a full context (spec §3.6.2, §6).
/// `num_generated_tokens` and `current_pos` are set as the spec describes.
///
/// # Safety
/// `state` must be NULL or a valid state whose pointers are NULL or valid for their lengths
/// (`prompt_tokens`: `num_prompt_tokens` ids; `generated_tokens`: `max_tokens` ids).
#[no_mangle]
pub unsafe extern "C" fn q_generate(state: *mut q_generation_state) -> q_error_code {
    guard_code("q_generate", || generate_state(state, &mut |_| true))
}

/// A batch's arguments and states, all checked before anything is touched (shared by
/// `q_generate_batch` and `q_generate_batch_ex`).
pub(crate) struct CheckedBatch<'a> {
    pub(crate) batch: &'a mut q_batch_generation_state,
    pub(crate) states: &'a mut [q_generation_state],
    pub(crate) checked: Vec<Checked<'a>>,
    pub(crate) engine: Arc<Model>,
    /// Sequences in the batch.
    pub(crate) n: usize,
    /// Vocabulary size.
    pub(crate) v: usize,
    /// Row stride of `out_all`: the largest `max_tokens`.
    pub(crate) stride: usize,
    pub(crate) out_all: &'a mut [u32],
    pub(crate) counts: &'a mut [u32],
}

/// Checks a batch's arguments and states in the order `q_generate_batch` documents.
///
/// # Safety
/// As `q_generate_batch`.
pub(crate) unsafe fn check_batch<'a>(
    batch: *mut q_batch_generation_state,
    tokens_out: *mut u32,
    num_tokens_out: *mut u32,
) -> Result<CheckedBatch<'a>> {
    if batch.is_null() || tokens_out.is_null() || num_tokens_out.is_null() {
        return Err(Error::InvalidArg("NULL argument".into()));
    }
    let batch = check_mut(batch, "batch")?;
    let misaligned = |p: usize| !p.is_multiple_of(4);
    if misaligned(tokens_out as usize)
        || misaligned(num_tokens_out as usize)
        || misaligned(batch.shared_logits as usize)
    {
        return Err(Error::Misaligned(
            "tokens_out, num_tokens_out or shared_logits is not 4-byte aligned".into(),
        ));
    }
    if batch.states.is_null() {
        return Err(Error::InvalidArg("states is NULL".into()));
    }
    if batch.batch_size == 0 {
        return Err(Error::InvalidSize("batch_size is 0".into()));
    }
    let n = batch.batch_size as usize;
    if !(batch.states as usize).is_multiple_of(std::mem::align_of::<q_generation_state>()) {
        return Err(Error::Misaligned("states".into()));
    }
    let states = std::slice::from_raw_parts_mut(batch.states, n);
    // Validate everything before touching anything.
    let mut checked = Vec::with_capacity(n);
    let mut stride = 0usize;
    for st in states.iter_mut() {
        let st: *mut q_generation_state = st;
        let c = check_state(&mut *st)?;
        stride = stride.max(c.params.max_tokens);
        checked.push(c);
    }
    for i in 0..n {
        for j in 0..i {
            if std::ptr::eq(&*checked[i].ctx, &*checked[j].ctx) {
                return Err(Error::InvalidArg(format!(
                    "states {j} and {i} share a context"
                )));
            }
        }
        if !Arc::ptr_eq(&checked[i].engine, &checked[0].engine) {
            return Err(Error::InvalidArg(format!(
                "state {i} uses a different model than state 0"
            )));
        }
    }
    let engine = checked[0].engine.clone();
    let v = engine.config.vocab_size;
    let total = n
        .checked_mul(stride)
        .ok_or_else(|| Error::Overflow("tokens_out size".into()))?;
    let out_all = std::slice::from_raw_parts_mut(tokens_out, total);
    let counts = std::slice::from_raw_parts_mut(num_tokens_out, n);
    Ok(CheckedBatch {
        batch,
        states,
        checked,
        engine,
        n,
        v,
        stride,
        out_all,
        counts,
    })
}

impl CheckedBatch<'_> {
    /// The batch's sequences, one per state: its KV cache (the arena's scratch reset), prompt,
    /// settings and `options`, its row of `out_all` and of `logit_rows` (`n x v`).
    pub(crate) fn seqs<'s>(
        &'s mut self,
        logit_rows: &'s mut [f32],
        options: Vec<GenOptions<'s>>,
    ) -> Result<Vec<BatchSeq<'s>>> {
        let mut kvs = Vec::with_capacity(self.n);
        for c in self.checked.iter_mut() {
            c.ctx.scratch_head = c.ctx.scratch_base_offset;
            kvs.push(context_kv(c.ctx, &self.engine)?);
        }
        let mut seqs = Vec::with_capacity(self.n);
        for ((c, (out_row, logits)), (kv, opts)) in self
            .checked
            .iter()
            .zip(
                self.out_all
                    .chunks_mut(self.stride)
                    .zip(logit_rows.chunks_mut(self.v)),
            )
            .zip(kvs.into_iter().zip(options))
        {
            seqs.push(BatchSeq {
                kv,
                prompt: c.prompt,
                params: c.params,
                opts,
                out: &mut out_row[..c.params.max_tokens],
                logits,
                outcome: Outcome {
                    n_generated: 0,
                    pos: 0,
                    stop: StopReason::MaxTokens,
                    n_shifts: 0,
                },
            });
        }
        Ok(seqs)
    }

    /// Writes the outcomes back: each sequence's ids and count, the states' counters and the
    /// shared logits.
    pub(crate) unsafe fn finish(&mut self, outcomes: &[Outcome], logit_rows: &[f32]) {
        let stride = self.stride;
        for (i, (o, c)) in outcomes.iter().zip(self.checked.iter_mut()).enumerate() {
            self.counts[i] = o.n_generated as u32;
            c.out[..o.n_generated]
                .copy_from_slice(&self.out_all[i * stride..i * stride + o.n_generated]);
        }
        for (st, o) in self.states.iter_mut().zip(outcomes) {
            st.num_generated_tokens = o.n_generated as u32;
            st.current_pos = o.pos as u32;
        }
        if !self.batch.shared_logits.is_null() {
            std::ptr::copy_nonoverlapping(
                logit_rows.as_ptr(),
                self.batch.shared_logits,
                self.n * self.v,
            );
        }
    }
}

/// qorus addition: generates for `batch_size` states in lock-step, one weight pass per step.
/// Each state has its own context (arena, KV cache) and sampling settings; all share one model.
/// Row `i` of `tokens_out` (stride = the largest `max_tokens`) and `num_tokens_out[i]` receive
/// sequence `i`'s ids, which are also written to `states[i]` (with `num_generated_tokens` and
/// `current_pos`). `shared_logits`, when not NULL, receives each sequence's last logits
/// (`batch_size x vocab_size`). `tokens_out`, `num_tokens_out` and `shared_logits` must be
/// 4-byte aligned (`Q_ERR_MISALIGNED`). Bad input returns an error and changes nothing.
///
/// # Safety
/// `batch` must be NULL or valid, with `states` holding `batch_size` valid states;
/// `tokens_out` must hold `batch_size * max(max_tokens)` ids and `num_tokens_out` `batch_size`.
#[no_mangle]
pub unsafe extern "C" fn q_generate_batch(
    batch: *mut q_batch_generation_state,
    tokens_out: *mut u32,
    num_tokens_out: *mut u32,
) -> q_error_code {
    guard_code("q_generate_batch", || {
        let mut cb = check_batch(batch, tokens_out, num_tokens_out)?;
        let (n, v) = (cb.n, cb.v);
        let engine = cb.engine.clone();
        let mut logit_rows = vec![0f32; n * v];
        let options = (0..n).map(|_| GenOptions::default()).collect();
        let mut seqs = cb.seqs(&mut logit_rows, options)?;
        let mut scratch = ScratchBuf::default();
        generate_batch(&engine, &mut seqs, &mut scratch)?;
        let outcomes: Vec<Outcome> = seqs.iter().map(|s| s.outcome).collect();
        drop(seqs);
        cb.finish(&outcomes, &logit_rows);
        Ok(())
    })
}

/// qorus addition: `q_generate` that calls `callback` with each generated id and its text piece
/// (UTF-8 never split across calls); a false return stops generation cleanly, with
/// `num_generated_tokens` counting that id and `current_pos` the positions fed.
///
/// # Safety
/// As `q_generate`; `callback` must be NULL or safe to call with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn q_generate_stream(
    state: *mut q_generation_state,
    callback: q_token_callback,
    user_data: *mut c_void,
) -> q_error_code {
    guard_code("q_generate_stream", || {
        let Some(cb) = callback else {
            return generate_state(state, &mut |_| true);
        };
        let mut decoder = crate::ffi::tokenizer::piece_stream(state)?;
        let mut piece = Vec::new();
        generate_state(state, &mut |id| {
            piece.clear();
            decoder(id, &mut piece);
            piece.push(0);
            cb(
                id,
                piece.as_ptr() as *const c_char,
                piece.len() - 1,
                user_data,
            )
        })
    })
}

/// qorus addition: reseeds the calling thread's sampler RNG (0 is replaced by the default seed
/// 123456789, so `q_set_seed(0)` restores a fresh thread's sequence). Other threads are unaffected.
#[no_mangle]
pub extern "C" fn q_set_seed(seed: u64) {
    guard("q_set_seed", || sampling::set_thread_seed(seed))
}

/// qorus addition: sets the number of threads the forward pass uses, the caller's included
/// (0 = the default: `QORUS_NUM_THREADS` if set, else the number of cores). At most 256.
/// Results do not depend on the thread count.
#[no_mangle]
pub extern "C" fn q_set_num_threads(n_threads: u32) -> q_error_code {
    guard_code("q_set_num_threads", || {
        if n_threads > 256 {
            return Err(Error::InvalidArg(format!(
                "{n_threads} threads (at most 256)"
            )));
        }
        crate::engine::pool::set_num_threads(n_threads as usize);
        Ok(())
    })
}

/// qorus addition: the number of worker threads the forward pass uses.
#[no_mangle]
pub extern "C" fn q_get_num_threads() -> u32 {
    guard("q_get_num_threads", || {
        crate::engine::pool::num_threads() as u32
    })
}
