//! qorus addition (issue 15): `q_generate_ex` and `q_generate_batch_ex`, the original generation
//! calls with options (sampler chain, grammar, stop strings, context shift, prefix reuse, text
//! output) and a result saying why they stopped.

use std::ffi::{c_char, CStr};

use crate::engine::ScratchBuf;
use crate::error::{Error, Result};
use crate::ffi::boundary::{check_mut, guard_code};
use crate::ffi::gen_types::*;
use crate::ffi::generate::{check_batch, check_state_at, ContextStep};
use crate::ffi::types::*;
use crate::generate::{
    generate_batch_ex, generate_ex, GenOptions, Outcome, StopMatcher, StopReason, FLUSH,
};

/// Options read from C.
pub(crate) struct Resolved<'a> {
    pub(crate) opts: GenOptions<'a>,
    pub(crate) start_pos: u32,
    sink: TextSink,
}

/// Where released text goes: the callback and `text_out`.
struct TextSink {
    callback: q_token_callback,
    user_data: *mut std::ffi::c_void,
    text_out: *mut c_char,
    cap: usize,
    len: usize,
    piece: Vec<u8>,
}

impl TextSink {
    fn wants_text(&self) -> bool {
        self.callback.is_some() || !self.text_out.is_null()
    }

    unsafe fn on_token(&mut self, id: u32, text: &[u8]) -> bool {
        if !self.text_out.is_null() && self.cap > 0 {
            let room = (self.cap - 1).saturating_sub(self.len);
            let n = room.min(text.len());
            std::ptr::copy_nonoverlapping(text.as_ptr(), self.text_out.add(self.len) as *mut u8, n);
            *self.text_out.add((self.len + n).min(self.cap - 1)) = 0;
        }
        self.len += text.len();
        match self.callback {
            Some(cb) => {
                self.piece.clear();
                self.piece.extend_from_slice(text);
                self.piece.push(0);
                let go = cb(
                    id,
                    self.piece.as_ptr() as *const c_char,
                    text.len(),
                    self.user_data,
                );
                go || id == FLUSH
            }
            None => true,
        }
    }
}

/// Reads `q_generate_options` (NULL = all zero) for `state`.
unsafe fn resolve<'a>(
    opts: *const q_generate_options,
    state: *mut q_generation_state,
    vocab: usize,
) -> Result<Resolved<'a>> {
    let mut r = Resolved {
        opts: GenOptions::default(),
        start_pos: 0,
        sink: TextSink {
            callback: None,
            user_data: std::ptr::null_mut(),
            text_out: std::ptr::null_mut(),
            cap: 0,
            len: 0,
            piece: Vec::new(),
        },
    };
    if opts.is_null() {
        return Ok(r);
    }
    let o = crate::ffi::boundary::check_ref(opts, "options")?;
    if !o.sampler.is_null() {
        let c = crate::ffi::sampler::chain_mut(o.sampler)?;
        if c.vocab() != vocab {
            return Err(Error::InvalidSize(format!(
                "sampler made for {} ids, the model has {vocab}",
                c.vocab()
            )));
        }
        r.opts.chain = Some(c);
        r.opts.chain_sees_prompt = true;
    }
    let mut stops = Vec::new();
    if o.num_stop_strings > 0 {
        if o.stop_strings.is_null() {
            return Err(Error::InvalidArg("stop_strings is NULL".into()));
        }
        for i in 0..o.num_stop_strings as usize {
            let p = *o.stop_strings.add(i);
            if p.is_null() {
                return Err(Error::InvalidArg(format!("stop string {i} is NULL")));
            }
            let s = CStr::from_ptr(p).to_bytes();
            if s.is_empty() {
                return Err(Error::InvalidArg(format!("stop string {i} is empty")));
            }
            stops.push(s.to_vec());
        }
    }
    r.opts.stops = StopMatcher::new(&stops);
    if o.context_shift {
        r.opts.shift_keep = Some(o.n_keep as usize);
    }
    r.start_pos = o.start_pos;
    r.sink = TextSink {
        callback: o.callback,
        user_data: o.user_data,
        text_out: o.text_out,
        cap: o.text_capacity,
        len: 0,
        piece: Vec::new(),
    };
    if !o.text_out.is_null() && o.text_capacity == 0 {
        return Err(Error::InvalidSize("text_out with text_capacity 0".into()));
    }
    if !o.text_out.is_null() {
        *o.text_out = 0;
    }
    if r.opts.stops.is_active() || r.sink.wants_text() {
        r.opts.decoder = Some(crate::ffi::tokenizer::piece_stream(state)?);
    }
    Ok(r)
}

/// The grammar constraint of `opts` (NULL options or grammar: none).
unsafe fn resolve_grammar(
    opts: *const q_generate_options,
    state: *mut q_generation_state,
) -> Result<Option<crate::grammar::GrammarConstraint>> {
    if opts.is_null() {
        return Ok(None);
    }
    let o = crate::ffi::boundary::check_ref(opts, "options")?;
    if o.grammar.is_null() {
        return Ok(None);
    }
    crate::ffi::grammar::constraint_for(o.grammar, state).map(Some)
}

fn reason_code(stop: StopReason) -> (q_stop_reason, i32) {
    match stop {
        StopReason::MaxTokens => (Q_STOP_MAX_TOKENS, -1),
        StopReason::Eos => (Q_STOP_EOS, -1),
        StopReason::StopString(i) => (Q_STOP_STRING, i as i32),
        StopReason::ContextFull => (Q_STOP_CONTEXT_FULL, -1),
        StopReason::Callback => (Q_STOP_CALLBACK, -1),
    }
}

fn result_of(o: &Outcome, text_len: usize) -> q_generate_result {
    let (stop_reason, stop_string_index) = reason_code(o.stop);
    q_generate_result {
        stop_reason,
        stop_string_index,
        num_generated_tokens: o.n_generated as u32,
        current_pos: o.pos as u32,
        num_context_shifts: o.n_shifts as u32,
        text_len,
        code: Q_OK,
    }
}

/// qorus addition: `q_generate` with options (`opts` NULL or all zero: exactly `q_generate`).
/// With a sampler the draws come from its RNG (equal seeds: equal text on any thread); with a
/// grammar every generated text is a prefix of a sentence of the grammar, and a complete one when
/// the generation ends at EOS; with stop strings the text stops before the first match (the ids
/// that produced it are kept in `generated_tokens`, the last one is not fed); with
/// `context_shift` a full context keeps `n_keep` positions and drops half of the rest; with
/// `start_pos > 0` the prompt is fed at `start_pos` and the cache below it is reused.
/// `num_generated_tokens` and `current_pos` are set as by `q_generate`; `result` (may be NULL)
/// receives the stop reason. A bad option gives an error before anything is computed.
///
/// # Safety
/// As `q_generate`; `opts` NULL or valid, with every pointer in it valid as documented there;
/// `result` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn q_generate_ex(
    state: *mut q_generation_state,
    opts: *const q_generate_options,
    result: *mut q_generate_result,
) -> q_error_code {
    guard_code("q_generate_ex", || {
        let st = check_mut(state, "state")?;
        let start = if opts.is_null() {
            0
        } else {
            crate::ffi::boundary::check_ref(opts, "options")?.start_pos
        };
        let c = check_state_at(&mut *(st as *mut q_generation_state), start)?;
        let vocab = c.engine.config.vocab_size;
        let mut grammar = resolve_grammar(opts, state)?;
        let mut r = resolve(opts, state, vocab)?;
        if let Some(g) = grammar.as_mut() {
            r.opts.constraint = Some(g);
        }
        let mut logits = Vec::new();
        logits
            .try_reserve_exact(vocab)
            .map_err(|_| Error::AllocFailed("logits buffer".into()))?;
        logits.resize(vocab, 0.0);
        let mut step = ContextStep {
            engine: &c.engine,
            ctx: c.ctx,
            logits,
        };
        let sink = &mut r.sink;
        let o = generate_ex(
            &mut step,
            c.prompt,
            r.start_pos as usize,
            &c.params,
            &mut r.opts,
            c.out,
            &mut |id, text| sink.on_token(id, text),
        )?;
        st.num_generated_tokens = o.n_generated as u32;
        st.current_pos = o.pos as u32;
        if !result.is_null() {
            result.write_unaligned(result_of(&o, r.sink.len));
        }
        Ok(())
    })
}

/// qorus addition: `q_generate_batch` with options per sequence: `opts` is NULL or holds
/// `batch_size` options (sampler, grammar, stop strings, callback and text output per sequence;
/// `context_shift` and `start_pos` must be 0 in a batch). A sampler per sequence makes each
/// sequence's ids equal to what `q_generate_ex` gives it alone with the same seed. `results`
/// (NULL or `batch_size` entries) receives each sequence's stop reason. Samplers must be
/// distinct.
///
/// # Safety
/// As `q_generate_batch`; `opts` NULL or `batch_size` valid options; `results` NULL or
/// `batch_size` writable entries.
#[no_mangle]
pub unsafe extern "C" fn q_generate_batch_ex(
    batch: *mut q_batch_generation_state,
    opts: *const q_generate_options,
    tokens_out: *mut u32,
    num_tokens_out: *mut u32,
    results: *mut q_generate_result,
) -> q_error_code {
    guard_code("q_generate_batch_ex", || {
        let mut cb = check_batch(batch, tokens_out, num_tokens_out)?;
        let (n, v) = (cb.n, cb.v);
        let engine = cb.engine.clone();
        let mut logit_rows = vec![0f32; n * v];
        let mut grammars = Vec::with_capacity(n);
        let mut sinks = Vec::with_capacity(n);
        let mut options = Vec::with_capacity(n);
        for (i, st) in cb.states.iter_mut().enumerate() {
            let o = if opts.is_null() {
                std::ptr::null()
            } else {
                opts.add(i)
            };
            grammars.push(resolve_grammar(o, st)?);
            let r = resolve(o, st, v)?;
            if r.start_pos != 0 || r.opts.shift_keep.is_some() {
                return Err(Error::InvalidArg(format!(
                    "options {i}: start_pos and context_shift are not supported in a batch"
                )));
            }
            sinks.push(r.sink);
            options.push(r.opts);
        }
        for i in 0..n {
            for j in 0..i {
                if !opts.is_null()
                    && !(*opts.add(i)).sampler.is_null()
                    && (*opts.add(i)).sampler == (*opts.add(j)).sampler
                {
                    return Err(Error::InvalidArg(format!(
                        "options {j} and {i} share a sampler"
                    )));
                }
            }
        }
        for (o, g) in options.iter_mut().zip(grammars.iter_mut()) {
            if let Some(g) = g.as_mut() {
                o.constraint = Some(g);
            }
        }
        let mut seqs = cb.seqs(&mut logit_rows, options)?;
        let mut scratch = ScratchBuf::default();
        generate_batch_ex(&engine, &mut seqs, &mut scratch, &mut |i, id, text| {
            sinks[i].on_token(id, text)
        })?;
        let outcomes: Vec<Outcome> = seqs.iter().map(|s| s.outcome).collect();
        drop(seqs);
        let lens: Vec<usize> = sinks.iter().map(|s| s.len).collect();
        cb.finish(&outcomes, &logit_rows);
        if !results.is_null() {
            for (i, o) in outcomes.iter().enumerate() {
                results.add(i).write_unaligned(result_of(o, lens[i]));
            }
        }
        Ok(())
    })
}
