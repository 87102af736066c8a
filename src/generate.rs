//! The generation loop of spec §6, shared by `q_generate`, `q_generate_stream`, the Rust
//! [`Session`](crate::engine::Session) API and the CLI, and its batched form for
//! `q_generate_batch`.
//!
//! Loop (spec §6): prefill the prompt in one forward call; then, while fewer than `max_tokens`
//! ids were generated: stop if the context is full; sample an id from the current logits; append
//! it; stop at EOS (the EOS id is kept and counted, and not fed); otherwise feed it at the next
//! position. The last generated id is fed too (so its K/V are cached), as in the original.

use crate::engine::forward::{forward, scratch_bytes, SeqStep};
use crate::engine::kv_cache::KvCache;
use crate::engine::{pool, Model, ScratchBuf, Session};
use crate::error::{Error, Result};
use crate::sampling::{sample, with_thread_rng, SamplerScratch, SamplingParams};

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `max_tokens` ids were generated.
    MaxTokens,
    /// The end-of-sequence id was sampled.
    Eos,
    /// The context is full.
    ContextFull,
    /// The token callback asked to stop.
    Callback,
}

/// What a generation produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Ids written to the output.
    pub n_generated: usize,
    /// Positions fed through the model (prompt + fed generated ids), counted from position 0.
    pub pos: usize,
    /// Why it stopped.
    pub stop: StopReason,
}

/// Something that runs tokens through a model at a position and returns the last logits.
pub trait Step {
    /// Context length (positions).
    fn n_ctx(&self) -> usize;
    /// Runs `tokens` at positions `pos..`; their last token's logits become `logits()`.
    fn run(&mut self, tokens: &[u32], pos: usize) -> Result<()>;
    /// The logits of the last `run`.
    fn logits(&self) -> &[f32];
}

impl Step for Session {
    fn n_ctx(&self) -> usize {
        Session::n_ctx(self)
    }
    fn run(&mut self, tokens: &[u32], pos: usize) -> Result<()> {
        self.truncate(pos);
        if self.pos() != pos {
            return Err(Error::InvalidArg(format!(
                "session is at {} not {pos}",
                self.pos()
            )));
        }
        self.forward(tokens).map(|_| ())
    }
    fn logits(&self) -> &[f32] {
        Session::logits(self)
    }
}

/// Generation settings.
#[derive(Debug, Clone, Copy)]
pub struct GenParams {
    /// Most ids to generate.
    pub max_tokens: usize,
    /// Sampling.
    pub sampling: SamplingParams,
    /// Stop id (EOS), if any.
    pub eos: Option<u32>,
}

/// Runs the spec §6 loop: prompt at `start_pos`, generated ids into `out` (at most
/// `min(max_tokens, out.len())`), `on_token` called after each id is appended (return false to
/// stop). Sampling uses the calling thread's RNG.
pub fn generate(
    step: &mut dyn Step,
    prompt: &[u32],
    start_pos: usize,
    params: &GenParams,
    out: &mut [u32],
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<Outcome> {
    params.sampling.validate()?;
    if prompt.is_empty() {
        return Err(Error::InvalidSize("empty prompt".into()));
    }
    if start_pos + prompt.len() > step.n_ctx() {
        return Err(Error::InvalidSize(format!(
            "prompt of {} tokens at position {start_pos} does not fit a context of {}",
            prompt.len(),
            step.n_ctx()
        )));
    }
    let max = params.max_tokens.min(out.len());
    step.run(prompt, start_pos)?;
    let mut scratch = SamplerScratch::new(step.logits().len())?;
    let mut pos = start_pos + prompt.len();
    let mut n = 0;
    let stop = loop {
        if n >= max {
            break StopReason::MaxTokens;
        }
        if pos >= step.n_ctx() {
            break StopReason::ContextFull;
        }
        let id = with_thread_rng(|rng| sample(step.logits(), &params.sampling, rng, &mut scratch))?;
        out[n] = id;
        n += 1;
        if !on_token(id) {
            break StopReason::Callback;
        }
        if params.eos == Some(id) {
            break StopReason::Eos;
        }
        step.run(&[id], pos)?;
        pos += 1;
    };
    Ok(Outcome {
        n_generated: n,
        pos,
        stop,
    })
}

/// One sequence of a batched generation.
pub struct BatchSeq<'a> {
    /// Its KV cache.
    pub kv: KvCache,
    /// Prompt ids (fed from position 0).
    pub prompt: &'a [u32],
    /// Settings.
    pub params: GenParams,
    /// Receives the generated ids (`params.max_tokens` at most).
    pub out: &'a mut [u32],
    /// Receives its last logits.
    pub logits: &'a mut [f32],
    /// Result: ids generated, positions fed, stop reason.
    pub outcome: Outcome,
}

/// Generates for every sequence in lock-step: one forward call prefills all prompts (no
/// padding), then every step runs one forward over all live sequences, so each weight is read
/// once per step for all of them. For greedy sampling each sequence's ids equal what `generate`
/// gives it alone. Sampling draws happen in sequence order on the calling thread's RNG.
pub fn generate_batch(
    model: &Model,
    seqs: &mut [BatchSeq<'_>],
    scratch: &mut ScratchBuf,
) -> Result<()> {
    let v = model.config.vocab_size;
    let mut samplers = Vec::with_capacity(seqs.len());
    for s in seqs.iter_mut() {
        s.params.sampling.validate()?;
        if s.prompt.is_empty() || s.prompt.len() > s.kv.layout.max_seq {
            return Err(Error::InvalidSize(
                "prompt empty or longer than the context".into(),
            ));
        }
        if s.logits.len() < v {
            return Err(Error::InvalidSize("logits buffer too small".into()));
        }
        s.outcome = Outcome {
            n_generated: 0,
            pos: s.prompt.len(),
            stop: StopReason::MaxTokens,
        };
        samplers.push(SamplerScratch::new(v)?);
    }
    let pool = pool::acquire();
    let kv_seq = seqs.iter().map(|s| s.kv.layout.max_seq).max().unwrap_or(1);
    // Prefill: every prompt in one call.
    {
        let rows: usize = seqs.iter().map(|s| s.prompt.len()).sum();
        let need = scratch_bytes(model, rows, pool.n_threads(), seqs.len(), kv_seq);
        let mut steps: Vec<SeqStep<'_>> = seqs
            .iter_mut()
            .map(|s| SeqStep {
                kv: s.kv,
                tokens: s.prompt,
                pos: 0,
                logits: Some(&mut *s.logits),
            })
            .collect();
        forward(model, &mut steps, scratch.get(need), &pool)?;
    }
    let mut live: Vec<bool> = vec![true; seqs.len()];
    let mut fed = vec![0u32; seqs.len()];
    loop {
        // Sample for every live sequence, in order.
        for (i, s) in seqs.iter_mut().enumerate() {
            if !live[i] {
                continue;
            }
            let max = s.params.max_tokens.min(s.out.len());
            if s.outcome.n_generated >= max {
                s.outcome.stop = StopReason::MaxTokens;
                live[i] = false;
                continue;
            }
            if s.outcome.pos >= s.kv.layout.max_seq {
                s.outcome.stop = StopReason::ContextFull;
                live[i] = false;
                continue;
            }
            let id = with_thread_rng(|rng| {
                sample(&s.logits[..v], &s.params.sampling, rng, &mut samplers[i])
            })?;
            s.out[s.outcome.n_generated] = id;
            s.outcome.n_generated += 1;
            if s.params.eos == Some(id) {
                s.outcome.stop = StopReason::Eos;
                live[i] = false;
                continue;
            }
            fed[i] = id;
        }
        if !live.iter().any(|&l| l) {
            return Ok(());
        }
        // One forward over every live sequence.
        let n_live = live.iter().filter(|&&l| l).count();
        let need = scratch_bytes(model, n_live, pool.n_threads(), n_live, kv_seq);
        let mut steps: Vec<SeqStep<'_>> = Vec::with_capacity(n_live);
        for (i, s) in seqs.iter_mut().enumerate() {
            if live[i] {
                steps.push(SeqStep {
                    kv: s.kv,
                    tokens: std::slice::from_ref(&fed[i]),
                    pos: s.outcome.pos,
                    logits: Some(&mut *s.logits),
                });
            }
        }
        forward(model, &mut steps, scratch.get(need), &pool)?;
        for (i, s) in seqs.iter_mut().enumerate() {
            if live[i] {
                s.outcome.pos += 1;
            }
        }
    }
}
