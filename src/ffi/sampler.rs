//! qorus addition (issue 15): sampler chains through the C API (`q_sampler_*`).

use crate::error::{Error, Result};
use crate::ffi::boundary::{check_ref, guard, guard_code};
use crate::ffi::gen_types::*;
use crate::ffi::types::*;
use crate::sampling::{ChainParams, SamplerChain, SamplingParams};

const SAMPLER_MAGIC: u64 = 0x5153_414D_504C_4552;

/// What a `q_sampler *` points to.
struct SamplerBox {
    magic: u64,
    chain: SamplerChain,
}

/// A `$to` (`ChainParams` or `q_sampler_params`) with every field copied from `$p`: the two
/// structs have the same fields, and this one list serves both conversions (a field missing on
/// either side does not compile).
macro_rules! copy_sampler_fields {
    ($to:ident, $p:expr) => {{
        let p = $p;
        $to {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            min_p: p.min_p,
            typical_p: p.typical_p,
            repeat_penalty: p.repeat_penalty,
            frequency_penalty: p.frequency_penalty,
            presence_penalty: p.presence_penalty,
            penalty_last_n: p.penalty_last_n,
            seed: p.seed,
            temperature_last: p.temperature_last,
        }
    }};
}

impl From<&q_sampler_params> for ChainParams {
    fn from(p: &q_sampler_params) -> ChainParams {
        copy_sampler_fields!(ChainParams, p)
    }
}

impl From<ChainParams> for q_sampler_params {
    fn from(p: ChainParams) -> q_sampler_params {
        copy_sampler_fields!(q_sampler_params, p)
    }
}

/// The chain behind a `q_sampler *`.
///
/// # Safety
/// `p` must be NULL or a pointer returned by `q_sampler_new` and not yet freed.
pub(crate) unsafe fn chain_mut<'a>(p: *mut q_sampler) -> Result<&'a mut SamplerChain> {
    let b = p as *mut SamplerBox;
    if b.is_null() {
        return Err(Error::InvalidArg("sampler is NULL".into()));
    }
    if !(b as usize).is_multiple_of(std::mem::align_of::<SamplerBox>())
        || (*b).magic != SAMPLER_MAGIC
    {
        return Err(Error::InvalidArg("not a q_sampler (freed?)".into()));
    }
    Ok(&mut (*b).chain)
}

/// qorus addition: llama.cpp's default chain settings (temperature 0.8 applied last, top-k 40,
/// top-p 0.95, min-p 0.05, typical-p off, penalties off with a window of 64, seed 123456789).
/// Takes no pointer and cannot panic (a constant conversion), so it needs no guard.
#[no_mangle]
pub extern "C" fn q_sampler_default_params() -> q_sampler_params {
    ChainParams::default().into()
}

/// qorus addition: the chain the original `temperature/top_k/top_p` stand for (temperature first,
/// every other stage off), with `seed`. Sampling with it draws what `q_sample_token` draws from a
/// thread RNG in the same state.
#[no_mangle]
pub extern "C" fn q_sampler_params_from_original(
    temperature: f32,
    top_k: u32,
    top_p: f32,
    seed: u64,
) -> q_sampler_params {
    ChainParams::from_original(
        &SamplingParams {
            temperature,
            top_k,
            top_p,
        },
        seed,
    )
    .into()
}

/// qorus addition: makes a sampler chain for a vocabulary of `vocab_size` ids. Every buffer is
/// allocated here; sampling allocates nothing. Bad settings give `Q_ERR_INVALID_ARG` naming the
/// field (`q_last_error`); `vocab_size == 0` gives `Q_ERR_INVALID_SIZE`. `*out` is set only on
/// success.
///
/// # Safety
/// `params` must be NULL or a valid `q_sampler_params`; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn q_sampler_new(
    params: *const q_sampler_params,
    vocab_size: u32,
    out: *mut *mut q_sampler,
) -> q_error_code {
    guard_code("q_sampler_new", || {
        let p = check_ref(params, "params")?;
        if out.is_null() {
            return Err(Error::InvalidArg("out is NULL".into()));
        }
        let chain = SamplerChain::new(p.into(), vocab_size as usize)?;
        let b = Box::new(SamplerBox {
            magic: SAMPLER_MAGIC,
            chain,
        });
        out.write_unaligned(Box::into_raw(b) as *mut q_sampler);
        Ok(())
    })
}

/// qorus addition: releases a sampler (NULL is ignored).
///
/// # Safety
/// `sampler` must be NULL or from `q_sampler_new`, not yet freed, and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn q_sampler_free(sampler: *mut q_sampler) {
    guard("q_sampler_free", || {
        if chain_mut(sampler).is_ok() {
            let mut b = Box::from_raw(sampler as *mut SamplerBox);
            b.magic = 0;
            drop(b);
        }
    })
}

/// qorus addition: replaces the sampler's logit biases with `n` entries (`n == 0` clears them).
/// An id `>= vocab_size` or a NaN or `+inf` bias gives `Q_ERR_INVALID_ARG` and changes nothing.
///
/// # Safety
/// `sampler` as `q_sampler_free`; `bias` NULL (only with `n == 0`) or `n` entries.
#[no_mangle]
pub unsafe extern "C" fn q_sampler_set_logit_bias(
    sampler: *mut q_sampler,
    bias: *const q_logit_bias,
    n: u32,
) -> q_error_code {
    guard_code("q_sampler_set_logit_bias", || {
        let c = chain_mut(sampler)?;
        if n > 0 && bias.is_null() {
            return Err(Error::InvalidArg("bias is NULL".into()));
        }
        let list: Vec<(u32, f32)> = (0..n as usize)
            .map(|i| {
                let b = bias.add(i).read_unaligned();
                (b.token_id, b.bias)
            })
            .collect();
        c.set_logit_bias(&list)
    })
}

/// qorus addition: samples one id from `logits` with the chain (`vocab_size` must equal the
/// chain's). Non-greedy chains draw once from their own RNG. The id is not added to the
/// penalties' history: call `q_sampler_accept`. On error nothing changes.
///
/// # Safety
/// `sampler` as `q_sampler_free`; `logits` NULL or `vocab_size` floats; `token_out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn q_sampler_sample(
    sampler: *mut q_sampler,
    logits: *const f32,
    vocab_size: u32,
    token_out: *mut u32,
) -> q_error_code {
    guard_code("q_sampler_sample", || {
        let c = chain_mut(sampler)?;
        if logits.is_null() || token_out.is_null() {
            return Err(Error::InvalidArg("logits or token_out is NULL".into()));
        }
        if !(logits as usize).is_multiple_of(4) {
            return Err(Error::Misaligned("logits".into()));
        }
        if vocab_size as usize != c.vocab() {
            return Err(Error::InvalidSize(format!(
                "vocab_size {vocab_size}, the sampler was made for {}",
                c.vocab()
            )));
        }
        let l = std::slice::from_raw_parts(logits, vocab_size as usize);
        let id = c.sample(l)?;
        token_out.write_unaligned(id);
        Ok(())
    })
}

/// qorus addition: adds an id to the sampler's penalty history (ids `>= vocab_size` give
/// `Q_ERR_INVALID_ARG`).
///
/// # Safety
/// `sampler` as `q_sampler_free`.
#[no_mangle]
pub unsafe extern "C" fn q_sampler_accept(sampler: *mut q_sampler, token_id: u32) -> q_error_code {
    guard_code("q_sampler_accept", || {
        let c = chain_mut(sampler)?;
        if token_id as usize >= c.vocab() {
            return Err(Error::InvalidArg(format!(
                "token id {token_id} >= vocab_size {}",
                c.vocab()
            )));
        }
        c.accept(token_id);
        Ok(())
    })
}

/// qorus addition: clears the history and reseeds the RNG with the sampler's seed.
///
/// # Safety
/// `sampler` as `q_sampler_free`.
#[no_mangle]
pub unsafe extern "C" fn q_sampler_reset(sampler: *mut q_sampler) -> q_error_code {
    guard_code("q_sampler_reset", || {
        chain_mut(sampler)?.reset();
        Ok(())
    })
}
