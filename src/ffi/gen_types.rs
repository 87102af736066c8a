//! qorus addition (issue 15), the generation API: sampler chains, generation options and
//! results, grammars, saved state. Types of their own header section; the original structs are
//! unchanged.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};

use crate::ffi::types::{q_error_code, q_token_callback};

/// qorus addition (generation API): settings of a sampler chain (`q_sampler_new`). Stages, in order: logit bias, penalties over the
/// last `penalty_last_n` accepted ids, top-k, typical-p, top-p, min-p, temperature, then a draw
/// from the chain's own xorshift64* (seeded by `seed`) or greedy when `temperature < 1e-6`.
/// `q_sampler_default_params()` gives llama.cpp's defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct q_sampler_params {
    /// Softmax temperature (finite, >= 0; < 1e-6 means greedy).
    pub temperature: f32,
    /// Keep the `top_k` most probable ids (0 = off).
    pub top_k: u32,
    /// Nucleus mass (<= 0 or >= 1 = off).
    pub top_p: f32,
    /// Keep ids with probability >= `min_p` times the largest (<= 0 = off; at most 1).
    pub min_p: f32,
    /// Locally typical sampling mass (<= 0 or >= 1 = off).
    pub typical_p: f32,
    /// Repetition penalty (1 = off; > 0).
    pub repeat_penalty: f32,
    /// Subtracted once per occurrence in the window (0 = off).
    pub frequency_penalty: f32,
    /// Subtracted once per distinct id in the window (0 = off).
    pub presence_penalty: f32,
    /// Window of the penalties in accepted ids (0 = penalties off).
    pub penalty_last_n: u32,
    /// True: the filters see temperature 1 and the temperature applies last (llama.cpp's order);
    /// false: the temperature applies first (the original `q_sample_token` order).
    pub temperature_last: bool,
    /// Seed of the chain's RNG (0 = 123456789). Equal seeds give equal draws on any thread.
    pub seed: u64,
}

/// qorus addition (generation API): an opaque sampler chain made by `q_sampler_new`, released by `q_sampler_free`.
pub struct q_sampler {
    _private: [u8; 0],
}

/// qorus addition (generation API): one logit bias: `bias` is added to the logit of `token_id` (`-INFINITY` bans it).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct q_logit_bias {
    /// The id.
    pub token_id: u32,
    /// Added to its logit (finite or -INFINITY).
    pub bias: f32,
}

/// qorus addition (generation API): an opaque compiled grammar (GBNF) made by `q_grammar_new` or `q_grammar_from_json_schema`,
/// released by `q_grammar_free`.
pub struct q_grammar {
    _private: [u8; 0],
}

/// qorus addition (generation API): why a generation ended (`q_generate_result.stop_reason`).
pub type q_stop_reason = i32;
/// `max_tokens` ids were generated.
pub const Q_STOP_MAX_TOKENS: q_stop_reason = 0;
/// The tokenizer's EOS id was generated (it is kept and counted).
pub const Q_STOP_EOS: q_stop_reason = 1;
/// A stop string matched (`stop_string_index` says which).
pub const Q_STOP_STRING: q_stop_reason = 2;
/// The context is full (and context shift is off).
pub const Q_STOP_CONTEXT_FULL: q_stop_reason = 3;
/// The token callback returned false.
pub const Q_STOP_CALLBACK: q_stop_reason = 4;

/// qorus addition (generation API): the `token_id` of the last callback of a generation with stop strings, which releases text
/// held back because it might have started a stop string.
pub const Q_TOKEN_NONE: u32 = 0xFFFF_FFFF;

/// qorus addition (generation API): options of `q_generate_ex` / `q_generate_batch_ex`. All-zero options are the original
/// `q_generate`: the state's temperature/top_k/top_p on the calling thread's RNG, no grammar, no
/// stop strings, no context shift.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct q_generate_options {
    /// Sampler chain (NULL: the state's temperature/top_k/top_p on the thread's RNG). The chain's
    /// RNG and history advance; the prompt ids are added to its history first.
    pub sampler: *mut q_sampler,
    /// Grammar every generated text follows (NULL: none). Its parse state starts fresh for
    /// every generation; EOS is only allowed where the grammar is complete.
    pub grammar: *const q_grammar,
    /// `num_stop_strings` NUL-terminated strings (UTF-8); generation ends when the text contains
    /// one, and the matched text is never passed to the callback or `text_out`.
    pub stop_strings: *const *const c_char,
    /// Number of stop strings.
    pub num_stop_strings: u32,
    /// When the context is full: keep the first `n_keep` positions, drop half of the rest
    /// (re-rotating the kept keys) and continue, instead of stopping.
    pub context_shift: bool,
    /// Positions kept by a context shift.
    pub n_keep: u32,
    /// Position at which the prompt is fed: the context's KV cache below it is reused as it is
    /// (a common prefix computed by an earlier generation or loaded with `q_state_load`).
    pub start_pos: u32,
    /// Called with each generated id and the text it releases (NULL: none); false stops.
    pub callback: q_token_callback,
    /// Passed to `callback`.
    pub user_data: *mut c_void,
    /// Buffer receiving the released text, NUL-terminated (NULL: none).
    pub text_out: *mut c_char,
    /// Bytes of `text_out`.
    pub text_capacity: usize,
}

/// qorus addition (generation API): what `q_generate_ex` did.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct q_generate_result {
    /// A `Q_STOP_*` value.
    pub stop_reason: q_stop_reason,
    /// The index of the stop string that matched, else -1.
    pub stop_string_index: i32,
    /// Ids written to `generated_tokens` (also in the state).
    pub num_generated_tokens: u32,
    /// Positions in the KV cache after the generation (also in the state).
    pub current_pos: u32,
    /// Context shifts done.
    pub num_context_shifts: u32,
    /// Bytes of released text (may exceed what fit in `text_out`).
    pub text_len: usize,
    /// `Q_OK` (the result is written only when the call succeeds).
    pub code: q_error_code,
}
