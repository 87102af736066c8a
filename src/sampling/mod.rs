//! Token sampling (spec §3.6.1, §6) without the original's defects.
//!
//! * `temperature < 1e-6` → [`argmax`] (first maximum; no RNG draw; top-k/top-p ignored).
//! * Otherwise the distribution is the exact softmax of `logits / T` (max-subtracted, `expf`;
//!   NaN logits count as `-inf`), optionally restricted to the `top_k` most probable tokens
//!   (`0 < top_k < V`; ties go to the lower id) and then to the nucleus of the renormalised result
//!   (`0 < top_p < 1`: the smallest prefix of the descending order whose mass is `≥ top_p`).
//!   Tokens outside the kept set have probability 0 and are never returned.
//! * One draw `u ∈ [0, 1)` per call from the per-thread xorshift64* ([`rng`]); the kept ids are
//!   walked in ascending id order and the first whose running (renormalised) mass exceeds `u` wins.
//!
//! Nothing here allocates per token once a [`SamplerScratch`] has reached the vocabulary size.

pub mod chain;
pub mod rng;
mod select;
pub mod simd;

pub use chain::{ChainParams, SamplerChain};
pub use rng::{set_thread_seed, with_thread_rng, Rng, DEFAULT_SEED};

use crate::error::{Error, Result};

/// Temperatures below this are greedy (argmax).
pub const GREEDY_BELOW: f32 = 1e-6;

/// The sampling parameters of one call (the C API's `temperature`, `top_k`, `top_p`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `< 1e-6` means greedy. Must be finite and `≥ 0`.
    pub temperature: f32,
    /// Keep only the `top_k` most probable tokens when `0 < top_k < V`; otherwise inactive.
    pub top_k: u32,
    /// Nucleus mass when `0 < top_p < 1`; otherwise (including NaN) inactive.
    pub top_p: f32,
}

impl SamplingParams {
    /// Greedy decoding.
    pub const GREEDY: Self = Self {
        temperature: 0.0,
        top_k: 0,
        top_p: 0.0,
    };

    /// Whether these parameters select the argmax without drawing.
    pub fn is_greedy(&self) -> bool {
        self.temperature < GREEDY_BELOW
    }

    /// The spec's temperature check: negative, NaN or infinite → `Q_ERR_INVALID_ARG`.
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(Error::InvalidArg(format!(
                "temperature {} must be finite and >= 0",
                self.temperature
            )));
        }
        Ok(())
    }
}

/// Buffers for one vocabulary size: the scaled logits / probabilities and an index permutation.
/// Create it once (per generation, per thread) and reuse it for every token.
#[derive(Debug, Default)]
pub struct SamplerScratch {
    vals: Vec<f32>,
    idx: Vec<u32>,
}

impl SamplerScratch {
    /// Scratch for a vocabulary of `vocab_size` tokens.
    pub fn new(vocab_size: usize) -> Result<Self> {
        let mut s = Self::default();
        s.reserve(vocab_size)?;
        Ok(s)
    }

    /// The vocabulary size this scratch can serve without allocating.
    pub fn capacity(&self) -> usize {
        self.vals.len().min(self.idx.len())
    }

    /// Grows the buffers to `vocab_size` entries (no-op when already large enough).
    pub fn reserve(&mut self, vocab_size: usize) -> Result<()> {
        if self.capacity() >= vocab_size {
            return Ok(());
        }
        let fail = |_| Error::AllocFailed(format!("sampler scratch for {vocab_size} tokens"));
        self.vals
            .try_reserve_exact(vocab_size - self.vals.len())
            .map_err(fail)?;
        self.idx
            .try_reserve_exact(vocab_size - self.idx.len())
            .map_err(fail)?;
        self.vals.resize(vocab_size, 0.0);
        self.idx.resize(vocab_size, 0);
        Ok(())
    }
}

/// Index of the first maximum of `logits`: a strict `>` scan from index 0, so NaNs never win
/// unless `logits[0]` is NaN, in which case 0 is returned. 0 for an empty slice. (Vectorised;
/// [`simd::argmax_scalar`] is the literal scan.)
pub fn argmax(logits: &[f32]) -> u32 {
    simd::argmax(logits)
}

fn check_vocab(v: usize) -> Result<()> {
    if v == 0 {
        return Err(Error::InvalidSize("vocab_size is 0".into()));
    }
    if v > u32::MAX as usize {
        return Err(Error::InvalidSize(format!("vocab_size {v} exceeds u32")));
    }
    Ok(())
}

/// Samples one token id from `logits` (length = vocabulary size). Greedy calls do not touch `rng`;
/// every other successful call draws from it exactly once. Errors (empty logits, bad temperature,
/// scratch allocation failure) leave `rng` untouched.
pub fn sample(
    logits: &[f32],
    params: &SamplingParams,
    rng: &mut Rng,
    scratch: &mut SamplerScratch,
) -> Result<u32> {
    check_vocab(logits.len())?;
    params.validate()?;
    if params.is_greedy() {
        return Ok(argmax(logits));
    }
    scratch.reserve(logits.len())?;
    let kept = select::distribution(logits, params, scratch);
    let u = rng.next_unit();
    Ok(select::draw(scratch, kept, u))
}

/// [`sample`] with the draw `u ∈ [0, 1)` given instead of taken from an RNG (for tests and for
/// callers with their own randomness). Greedy parameters ignore `u`.
pub fn sample_with_u(
    logits: &[f32],
    params: &SamplingParams,
    u: f32,
    scratch: &mut SamplerScratch,
) -> Result<u32> {
    check_vocab(logits.len())?;
    params.validate()?;
    if !(0.0..1.0).contains(&u) {
        return Err(Error::InvalidArg(format!("u = {u} is not in [0, 1)")));
    }
    if params.is_greedy() {
        return Ok(argmax(logits));
    }
    scratch.reserve(logits.len())?;
    let kept = select::distribution(logits, params, scratch);
    Ok(select::draw(scratch, kept, u))
}

/// The distribution [`sample`] draws from, as `(id, probability)` pairs in ascending id order over
/// the kept tokens (probabilities renormalised over the kept set, in `f64`). Greedy parameters
/// give the argmax with probability 1. For tests and diagnostics; allocates its result.
pub fn distribution(
    logits: &[f32],
    params: &SamplingParams,
    scratch: &mut SamplerScratch,
) -> Result<Vec<(u32, f64)>> {
    check_vocab(logits.len())?;
    params.validate()?;
    if params.is_greedy() {
        return Ok(vec![(argmax(logits), 1.0)]);
    }
    scratch.reserve(logits.len())?;
    let kept = select::distribution(logits, params, scratch);
    Ok(select::kept_probs(scratch, kept))
}

#[cfg(test)]
mod tests;
