//! The generation loop of spec §6, shared by `q_generate`, `q_generate_stream`, the Rust
//! [`Session`](crate::engine::Session) API and the CLI, and its batched form for
//! `q_generate_batch`; with issue 15's options ([`GenOptions`]): a sampler chain per sequence, a
//! constraint (grammar), stop strings and context shift.
//!
//! Loop (spec §6): prefill the prompt in one forward call; then, while fewer than `max_tokens`
//! ids were generated: stop if the context is full (or shift it, when enabled); sample an id from
//! the current logits; append it; stop at EOS (the EOS id is kept and counted, and not fed) or at a
//! stop string (the id is kept, not fed); otherwise feed it at the next position. The last
//! generated id is fed too (so its K/V are cached), as in the original.
//!
//! Without options the loop is the original's exactly: the state's `temperature/top_k/top_p` on
//! the calling thread's RNG.

use crate::engine::forward::{forward, scratch_bytes, SeqStep};
use crate::engine::kv_cache::KvCache;
use crate::engine::{pool, Model, ScratchBuf, Session};
use crate::error::{Error, Result};
use crate::sampling::{sample, with_thread_rng, SamplerChain, SamplerScratch, SamplingParams};

pub mod state;
pub mod stop;

pub use stop::StopMatcher;

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
    /// A stop string matched (its index).
    StopString(usize),
}

/// What a generation produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Ids written to the output.
    pub n_generated: usize,
    /// Positions fed through the model (prompt + fed generated ids), counted from position 0
    /// (after a context shift: the positions now in the cache).
    pub pos: usize,
    /// Why it stopped.
    pub stop: StopReason,
    /// Context shifts done.
    pub n_shifts: usize,
}

/// Something that runs tokens through a model at a position and returns the last logits.
pub trait Step {
    /// Context length (positions).
    fn n_ctx(&self) -> usize;
    /// Runs `tokens` at positions `pos..`; their last token's logits become `logits()`.
    fn run(&mut self, tokens: &[u32], pos: usize) -> Result<()>;
    /// The logits of the last `run`.
    fn logits(&self) -> &[f32];
    /// Context shift: moves the cached positions `keep + discard .. pos` to `keep ..`,
    /// re-rotating their keys by `-discard` positions.
    fn shift(&mut self, keep: usize, discard: usize, pos: usize) -> Result<()> {
        let _ = (keep, discard, pos);
        Err(Error::InvalidArg(
            "context shift is not supported by this step".into(),
        ))
    }
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
    fn shift(&mut self, keep: usize, discard: usize, pos: usize) -> Result<()> {
        Session::shift(self, keep, discard, pos)
    }
}

/// Generation settings.
#[derive(Debug, Clone, Copy)]
pub struct GenParams {
    /// Most ids to generate.
    pub max_tokens: usize,
    /// Sampling (used when no sampler chain is given).
    pub sampling: SamplingParams,
    /// Stop id (EOS), if any.
    pub eos: Option<u32>,
}

/// A constraint on the generated ids (a grammar).
pub trait Constraint {
    /// Whether `id` may come next.
    fn allows(&mut self, id: u32) -> bool;
    /// Sets the logits of every id that may not come next to `-inf`.
    fn mask(&mut self, logits: &mut [f32]);
    /// Advances past `id` (one that `allows`).
    fn accept(&mut self, id: u32) -> Result<()>;
}

/// Turns a generated id into its text (whole UTF-8 characters; may hold bytes back).
pub type Decoder<'a> = Box<dyn FnMut(u32, &mut Vec<u8>) + 'a>;

/// The issue-15 options of one generation (one sequence of a batch). `Default` is the original.
#[derive(Default)]
pub struct GenOptions<'a> {
    /// The sampler; `None`: `GenParams::sampling` on the calling thread's RNG (the original).
    pub chain: Option<&'a mut SamplerChain>,
    /// Feed the prompt ids to the chain's penalty history before generating.
    pub chain_sees_prompt: bool,
    /// A constraint every generated id satisfies.
    pub constraint: Option<&'a mut dyn Constraint>,
    /// Text of the ids (needed for stop strings and for text output).
    pub decoder: Option<Decoder<'a>>,
    /// Stop strings, matched on the decoded text.
    pub stops: StopMatcher,
    /// Context shift when the context is full: keep the first `n` positions, drop half the rest.
    pub shift_keep: Option<usize>,
}

/// Sampling and text handling of one sequence.
struct Driver<'o, 'a> {
    opts: &'o mut GenOptions<'a>,
    sampling: SamplingParams,
    eos: Option<u32>,
    scratch: SamplerScratch,
    masked: Vec<f32>,
    piece: Vec<u8>,
    released: Vec<u8>,
}

/// Passed to the token callback when text held back for stop strings is released at the end.
pub const FLUSH: u32 = u32::MAX;

impl<'o, 'a> Driver<'o, 'a> {
    fn new(opts: &'o mut GenOptions<'a>, params: &GenParams, vocab: usize) -> Result<Self> {
        params.sampling.validate()?;
        if opts.stops.is_active() && opts.decoder.is_none() {
            return Err(Error::InvalidArg("stop strings need a tokenizer".into()));
        }
        if let Some(c) = &opts.chain {
            if c.vocab() != vocab {
                return Err(Error::InvalidSize(format!(
                    "sampler chain for {} ids, model has {vocab}",
                    c.vocab()
                )));
            }
        }
        let need_scratch = opts.chain.is_none();
        Ok(Driver {
            sampling: params.sampling,
            eos: params.eos,
            scratch: SamplerScratch::new(if need_scratch { vocab } else { 0 })?,
            masked: Vec::new(),
            piece: Vec::new(),
            released: Vec::new(),
            opts,
        })
    }

    fn start(&mut self, prompt: &[u32]) {
        if self.opts.chain_sees_prompt {
            if let Some(c) = self.opts.chain.as_deref_mut() {
                for &id in prompt {
                    c.accept(id);
                }
            }
        }
    }

    fn draw(&mut self, logits: &[f32], masked: bool) -> Result<Option<u32>> {
        if let Some(c) = self.opts.chain.as_deref_mut() {
            if masked {
                let k = self.opts.constraint.as_deref_mut().expect("masked draw");
                return c.sample_filtered(logits, &mut |w| k.mask(w));
            }
            return c.sample(logits).map(Some);
        }
        let p = self.sampling;
        let scratch = &mut self.scratch;
        if masked {
            let k = self.opts.constraint.as_deref_mut().expect("masked draw");
            self.masked.clear();
            self.masked.extend_from_slice(logits);
            k.mask(&mut self.masked);
            if !self.masked.iter().any(|x| *x > f32::NEG_INFINITY) {
                return Ok(None);
            }
            let m = &self.masked;
            return with_thread_rng(|rng| sample(m, &p, rng, scratch)).map(Some);
        }
        with_thread_rng(|rng| sample(logits, &p, rng, scratch)).map(Some)
    }

    /// Picks the next id: sampled unconstrained first; if the constraint refuses it, sampled
    /// again from the masked logits (llama.cpp's order: the full mask only when needed).
    fn pick(&mut self, logits: &[f32]) -> Result<u32> {
        let id = self.draw(logits, false)?.expect("unmasked draw");
        let Some(k) = self.opts.constraint.as_deref_mut() else {
            return Ok(id);
        };
        if k.allows(id) {
            return Ok(id);
        }
        self.draw(logits, true)?
            .ok_or_else(|| Error::InvalidArg("the grammar allows no token here (dead end)".into()))
    }

    /// One step: picks, records and reports an id. `Some(reason)` ends the generation.
    fn step(
        &mut self,
        logits: &[f32],
        slot: &mut u32,
        on_token: &mut dyn FnMut(u32, &[u8]) -> bool,
    ) -> Result<Option<StopReason>> {
        let id = self.pick(logits)?;
        *slot = id;
        if let Some(c) = self.opts.chain.as_deref_mut() {
            c.accept(id);
        }
        if let Some(k) = self.opts.constraint.as_deref_mut() {
            k.accept(id)?;
        }
        let mut matched = None;
        self.released.clear();
        if self.eos != Some(id) {
            if let Some(d) = self.opts.decoder.as_mut() {
                self.piece.clear();
                d(id, &mut self.piece);
                matched = self.opts.stops.push(&self.piece, &mut self.released);
            }
        }
        let go_on = on_token(id, &self.released);
        if let Some(i) = matched {
            return Ok(Some(StopReason::StopString(i)));
        }
        if !go_on {
            return Ok(Some(StopReason::Callback));
        }
        if self.eos == Some(id) {
            return Ok(Some(StopReason::Eos));
        }
        Ok(None)
    }

    /// Releases text still held back for stop strings (when none matched).
    fn finish(&mut self, stop: StopReason, on_token: &mut dyn FnMut(u32, &[u8]) -> bool) {
        if matches!(stop, StopReason::StopString(_)) {
            return;
        }
        let rest = self.opts.stops.take_held();
        if !rest.is_empty() {
            on_token(FLUSH, &rest);
        }
    }
}

/// Positions to drop for a context shift of a full context of `n_ctx` with `keep` kept.
fn shift_amount(n_ctx: usize, keep: usize) -> Option<(usize, usize)> {
    let keep = keep.min(n_ctx.saturating_sub(2));
    let discard = (n_ctx - keep) / 2;
    (discard > 0).then_some((keep, discard))
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
    generate_ex(
        step,
        prompt,
        start_pos,
        params,
        &mut GenOptions::default(),
        out,
        &mut |id, _| id == FLUSH || on_token(id),
    )
}

/// [`generate`] with options. `on_token(id, text)` is called after each id is appended with the
/// text it releases (empty without a decoder; held back while it may start a stop string; a
/// matched stop string is never released); a last call with id [`FLUSH`] releases text held
/// back when the generation ends without a stop string.
pub fn generate_ex(
    step: &mut dyn Step,
    prompt: &[u32],
    start_pos: usize,
    params: &GenParams,
    opts: &mut GenOptions<'_>,
    out: &mut [u32],
    on_token: &mut dyn FnMut(u32, &[u8]) -> bool,
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
    let mut d = Driver::new(opts, params, step.logits().len())?;
    d.start(prompt);
    let mut pos = start_pos + prompt.len();
    let mut n = 0;
    let mut n_shifts = 0;
    let stop = loop {
        if n >= max {
            break StopReason::MaxTokens;
        }
        if pos >= step.n_ctx() {
            match d
                .opts
                .shift_keep
                .and_then(|k| shift_amount(step.n_ctx(), k))
            {
                Some((keep, discard)) => {
                    step.shift(keep, discard, pos)?;
                    pos -= discard;
                    n_shifts += 1;
                    // The logits of the last run stay valid: the last id is sampled from them.
                }
                None => break StopReason::ContextFull,
            }
        }
        if let Some(reason) = d.step(step.logits(), &mut out[n], on_token)? {
            n += 1;
            break reason;
        }
        let id = out[n];
        n += 1;
        step.run(&[id], pos)?;
        pos += 1;
    };
    d.finish(stop, on_token);
    Ok(Outcome {
        n_generated: n,
        pos,
        stop,
        n_shifts,
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
    /// Options (a chain per sequence gives each its own seeded draws).
    pub opts: GenOptions<'a>,
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
/// gives it alone; with a sampler chain per sequence, so do sampled ids. Sequences without a
/// chain draw in sequence order on the calling thread's RNG. Context shift is not supported in
/// a batch (a full context ends that sequence).
pub fn generate_batch(
    model: &Model,
    seqs: &mut [BatchSeq<'_>],
    scratch: &mut ScratchBuf,
) -> Result<()> {
    generate_batch_ex(model, seqs, scratch, &mut |_, _, _| true)
}

/// [`generate_batch`] with a token callback `on_token(sequence, id, text)` (see
/// [`generate_ex`]); false stops that sequence.
pub fn generate_batch_ex(
    model: &Model,
    seqs: &mut [BatchSeq<'_>],
    scratch: &mut ScratchBuf,
    on_token: &mut dyn FnMut(usize, u32, &[u8]) -> bool,
) -> Result<()> {
    let v = model.config.vocab_size;
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
            n_shifts: 0,
        };
    }
    let mut drivers = Vec::with_capacity(seqs.len());
    let mut outs = Vec::with_capacity(seqs.len());
    let mut rest = Vec::with_capacity(seqs.len());
    for s in seqs.iter_mut() {
        let mut d = Driver::new(&mut s.opts, &s.params, v)?;
        d.start(s.prompt);
        drivers.push(d);
        outs.push((&mut *s.out, &mut *s.logits));
        rest.push((s.kv, s.prompt, s.params, &mut s.outcome));
    }
    let pool = pool::acquire();
    let kv_seq = rest.iter().map(|s| s.0.layout.max_seq).max().unwrap_or(1);
    // Prefill: every prompt in one call.
    {
        let rows: usize = rest.iter().map(|s| s.1.len()).sum();
        let need = scratch_bytes(model, rows, pool.n_threads(), rest.len(), kv_seq);
        let mut steps: Vec<SeqStep<'_>> = rest
            .iter()
            .zip(outs.iter_mut())
            .map(|(s, o)| SeqStep {
                kv: s.0,
                tokens: s.1,
                pos: 0,
                logits: Some(&mut *o.1),
            })
            .collect();
        forward(model, &mut steps, scratch.get(need), &pool)?;
    }
    let n = rest.len();
    let mut live: Vec<bool> = vec![true; n];
    let mut fed = vec![0u32; n];
    loop {
        // Sample for every live sequence, in order.
        for i in 0..n {
            if !live[i] {
                continue;
            }
            let (kv, _, params, outcome) = &mut rest[i];
            let (out, logits) = &mut outs[i];
            let max = params.max_tokens.min(out.len());
            let ended = if outcome.n_generated >= max {
                Some(StopReason::MaxTokens)
            } else if outcome.pos >= kv.layout.max_seq {
                Some(StopReason::ContextFull)
            } else {
                let slot = &mut out[outcome.n_generated];
                let r = drivers[i].step(&logits[..v], slot, &mut |id, t| on_token(i, id, t))?;
                outcome.n_generated += 1;
                fed[i] = *slot;
                r
            };
            if let Some(reason) = ended {
                outcome.stop = reason;
                live[i] = false;
                drivers[i].finish(reason, &mut |id, t| on_token(i, id, t));
            }
        }
        if !live.iter().any(|&l| l) {
            return Ok(());
        }
        // One forward over every live sequence.
        let n_live = live.iter().filter(|&&l| l).count();
        let need = scratch_bytes(model, n_live, pool.n_threads(), n_live, kv_seq);
        let mut steps: Vec<SeqStep<'_>> = Vec::with_capacity(n_live);
        for (i, (s, o)) in rest.iter().zip(outs.iter_mut()).enumerate() {
            if live[i] {
                steps.push(SeqStep {
                    kv: s.0,
                    tokens: std::slice::from_ref(&fed[i]),
                    pos: s.3.pos,
                    logits: Some(&mut *o.1),
                });
            }
        }
        forward(model, &mut steps, scratch.get(need), &pool)?;
        for (i, s) in rest.iter_mut().enumerate() {
            if live[i] {
                s.3.pos += 1;
            }
        }
    }
}
