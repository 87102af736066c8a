//! The C ABI: every constant and type of the Qorus-IA v2.0 public header, laid out bit-exactly as
//! `qorus-c-api.md` sections 1–2 describe, plus qorus's additions (marked "qorus addition").
//!
//! cbindgen reads this file to generate `include/qorus.h`. Enums that cross the boundary inward
//! are 4-byte integer typedefs with named constants (spec §2.14): callers pass out-of-range values
//! and write `q_tensor.type` themselves, so a Rust enum would be undefined behaviour.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};

// ---------------------------------------------------------------------------------------------
// §1 Constants
// ---------------------------------------------------------------------------------------------

/// Alignment in bytes of arena and KV allocations, file tensors and `q_tensor`.
pub const Q_ALIGN: u32 = 64;
/// First `uint32_t` of a `.qorus` model file (bytes on disk: "1ROQ").
pub const Q_MAGIC: u32 = 0x514F_5231;
/// Size of `q_model_header`; also the minimum `.qorus` file size.
pub const Q_HEADER_SIZE: u32 = 64;
/// File offset of the first tensor of a `.qorus` file.
pub const Q_FIRST_TENSOR_OFFSET: u32 = Q_HEADER_SIZE;
/// Magic of the tokenizer file (bytes on disk: "RKTQ").
pub const Q_TOKENIZER_MAGIC: u32 = 0x5154_4B52;

/// Absolute tolerance used by tests for exact FP32 kernels.
pub const Q_EPSILON_ABS_F32: f32 = 1e-5_f32;
/// Relative tolerance used by tests for exact FP32 kernels.
pub const Q_EPSILON_REL_F32: f32 = 1e-4_f32;
/// Absolute tolerance for approximated kernels (RMSNorm, SiLU, softmax).
pub const Q_EPSILON_ABS_APPROX: f32 = 2.5e-1_f32;
/// Relative tolerance for approximated kernels.
pub const Q_EPSILON_REL_APPROX: f32 = 5e-1_f32;
/// Absolute tolerance for Q4_0 results.
pub const Q_EPSILON_ABS_Q4_VAL: f32 = 1e-2_f32;
/// Relative tolerance for Q4_0 results.
pub const Q_EPSILON_REL_Q4_VAL: f32 = 5e-2_f32;

/// Major version of this library (qorus addition).
pub const QORUS_VERSION_MAJOR: u32 = 0;
/// Minor version of this library (qorus addition).
pub const QORUS_VERSION_MINOR: u32 = 1;
/// Patch version of this library (qorus addition).
pub const QORUS_VERSION_PATCH: u32 = 0;

// ---------------------------------------------------------------------------------------------
// §2.1 q_error_code
// ---------------------------------------------------------------------------------------------

/// Result of every fallible function: `Q_OK` (0) or a negative `Q_ERR_*` code.
pub type q_error_code = i32;

/// Success.
pub const Q_OK: q_error_code = 0;
/// NULL pointer argument (`llama_build_graph`).
pub const Q_ERR_NULL_PTR: q_error_code = -1;
/// A file could not be opened or read.
pub const Q_ERR_FILE_OPEN: q_error_code = -2;
/// `fstat` failed on the model file.
pub const Q_ERR_FILE_STAT: q_error_code = -3;
/// Model file smaller than its header.
pub const Q_ERR_FILE_TOO_SMALL: q_error_code = -4;
/// Mapping the model file failed.
pub const Q_ERR_MMAP_FAILED: q_error_code = -5;
/// Bad magic in a model or tokenizer file.
pub const Q_ERR_INVALID_MAGIC: q_error_code = -6;
/// Heap allocation failed.
pub const Q_ERR_ALLOC_FAILED: q_error_code = -7;
/// Arena exhausted; also "output buffer too small" in tokenizer encode/decode.
pub const Q_ERR_ARENA_OOM: q_error_code = -8;
/// Invalid model configuration or malformed model file.
pub const Q_ERR_INVALID_CONFIG: q_error_code = -9;
/// Generic invalid argument.
pub const Q_ERR_INVALID_ARG: q_error_code = -10;
/// Input and output buffers alias where they must not.
pub const Q_ERR_ALIASING: q_error_code = -11;
/// Size arithmetic overflow (also zero-size KV/arena requests).
pub const Q_ERR_OVERFLOW: q_error_code = -12;
/// Pointer not 32-byte aligned where required.
pub const Q_ERR_MISALIGNED: q_error_code = -13;
/// Wrong tensor type.
pub const Q_ERR_INVALID_DTYPE: q_error_code = -14;
/// Zero or invalid dimension, shape mismatch, bad count.
pub const Q_ERR_INVALID_SIZE: q_error_code = -15;
/// qorus addition: an internal failure (a caught panic). Never returned for bad input; report it.
pub const Q_ERR_INTERNAL: q_error_code = -64;

// ---------------------------------------------------------------------------------------------
// §2.2 q_mmap_strategy
// ---------------------------------------------------------------------------------------------

/// How `q_init_memory_ex` maps the model file. Any value other than `Q_MMAP_EAGER` is lazy.
pub type q_mmap_strategy = i32;
/// Map on demand.
pub const Q_MMAP_LAZY: q_mmap_strategy = 0;
/// Pre-fault every page at map time (MAP_POPULATE on Linux).
pub const Q_MMAP_EAGER: q_mmap_strategy = 1;

// ---------------------------------------------------------------------------------------------
// §2.3 q_dtype
// ---------------------------------------------------------------------------------------------

/// Element type of a `q_tensor`.
pub type q_dtype = i32;
/// IEEE-754 binary32.
pub const Q_F32: q_dtype = 0;
/// ggml Q8_0: 34-byte blocks of 32 values (f16 scale + 32 int8). Declared by the original without a
/// layout; qorus gives it ggml's layout for GGUF views. The spec's kernels reject it.
pub const Q_Q8_0: q_dtype = 1;
/// The `.qorus` 4-bit block (`q_block_q4_0`: 16 bytes of interleaved nibbles + f32 scale, 20 bytes).
pub const Q_Q4_0: q_dtype = 2;
/// qorus addition: IEEE-754 binary16.
pub const Q_F16: q_dtype = 3;
/// qorus addition: ggml Q4_0 (18-byte blocks: f16 scale + 16 bytes, low nibbles = elements 0..15).
pub const Q_Q4_0_GGML: q_dtype = 4;
/// qorus addition: ggml Q4_1 (20-byte blocks: f16 scale, f16 min, 16 bytes of nibbles).
pub const Q_Q4_1: q_dtype = 5;
/// qorus addition: bfloat16.
pub const Q_BF16: q_dtype = 6;

// qorus additions (issue 12): ggml's other block types, layouts as in `ggml-common.h`.
/// qorus addition: ggml Q5_0 (22-byte blocks of 32: f16 d, 4 bytes of high bits, 16 bytes of nibbles).
pub const Q_Q5_0: q_dtype = 7;
/// qorus addition: ggml Q5_1 (24-byte blocks of 32: f16 d, f16 m, 4 bytes of high bits, 16 bytes).
pub const Q_Q5_1: q_dtype = 8;
/// qorus addition: ggml Q2_K (84-byte super-blocks of 256).
pub const Q_Q2_K: q_dtype = 9;
/// qorus addition: ggml Q3_K (110-byte super-blocks of 256).
pub const Q_Q3_K: q_dtype = 10;
/// qorus addition: ggml Q4_K (144-byte super-blocks of 256).
pub const Q_Q4_K: q_dtype = 11;
/// qorus addition: ggml Q5_K (176-byte super-blocks of 256).
pub const Q_Q5_K: q_dtype = 12;
/// qorus addition: ggml Q6_K (210-byte super-blocks of 256).
pub const Q_Q6_K: q_dtype = 13;
/// qorus addition: ggml IQ4_NL (18-byte blocks of 32: f16 d + 16 bytes of non-linear 4-bit codes).
pub const Q_IQ4_NL: q_dtype = 14;
/// qorus addition: ggml IQ4_XS (136-byte super-blocks of 256).
pub const Q_IQ4_XS: q_dtype = 15;

// qorus additions (issue 12, quantizer): the quantization mixes of `q_quantize_model_mix`.
/// qorus addition: a quantization mix as llama.cpp's `llama_ftype` numbers it (`LLAMA_FTYPE_MOSTLY_*`
/// values can be passed as they are).
pub type q_quant_mix = i32;
/// Every weight matrix F32.
pub const Q_MIX_F32: q_quant_mix = 0;
/// Every weight matrix F16.
pub const Q_MIX_F16: q_quant_mix = 1;
/// Q4_0 (the output matrix Q6_K, or Q8_0 when its rows are not multiples of 256).
pub const Q_MIX_Q4_0: q_quant_mix = 2;
/// Q4_1 (output as Q4_0's).
pub const Q_MIX_Q4_1: q_quant_mix = 3;
/// Q8_0.
pub const Q_MIX_Q8_0: q_quant_mix = 7;
/// Q5_0 (output as Q4_0's).
pub const Q_MIX_Q5_0: q_quant_mix = 8;
/// Q5_1 (output as Q4_0's).
pub const Q_MIX_Q5_1: q_quant_mix = 9;
/// llama.cpp's Q2_K mix.
pub const Q_MIX_Q2_K: q_quant_mix = 10;
/// llama.cpp's Q3_K_S mix.
pub const Q_MIX_Q3_K_S: q_quant_mix = 11;
/// llama.cpp's Q3_K_M mix.
pub const Q_MIX_Q3_K_M: q_quant_mix = 12;
/// llama.cpp's Q3_K_L mix.
pub const Q_MIX_Q3_K_L: q_quant_mix = 13;
/// llama.cpp's Q4_K_S mix.
pub const Q_MIX_Q4_K_S: q_quant_mix = 14;
/// llama.cpp's Q4_K_M mix.
pub const Q_MIX_Q4_K_M: q_quant_mix = 15;
/// llama.cpp's Q5_K_S mix.
pub const Q_MIX_Q5_K_S: q_quant_mix = 16;
/// llama.cpp's Q5_K_M mix.
pub const Q_MIX_Q5_K_M: q_quant_mix = 17;
/// llama.cpp's Q6_K mix.
pub const Q_MIX_Q6_K: q_quant_mix = 18;
/// llama.cpp's IQ4_NL mix.
pub const Q_MIX_IQ4_NL: q_quant_mix = 25;
/// llama.cpp's IQ4_XS mix.
pub const Q_MIX_IQ4_XS: q_quant_mix = 30;
/// Every weight matrix BF16.
pub const Q_MIX_BF16: q_quant_mix = 32;

// ---------------------------------------------------------------------------------------------
// §2.4–2.14 Structs
// ---------------------------------------------------------------------------------------------

/// One BPE merge rule; its index in the merges array is its priority (0 first).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct q_bpe_merge {
    /// Left token of the pair.
    pub token_id1: u32,
    /// Right token of the pair.
    pub token_id2: u32,
    /// Token that replaces the pair.
    pub merged_id: u32,
}

/// Library-private lookup structure behind `q_tokenizer.merge_hash_table` (opaque to C).
pub struct bpe_hash_table {
    _private: [u8; 0],
}

/// A tokenizer: caller-owned and transparent (spec §2.5). `vocab`, its strings and `merges` are
/// allocated with the C allocator by `q_tokenizer_load` and released by `q_tokenizer_free`.
#[repr(C)]
#[derive(Debug)]
pub struct q_tokenizer {
    /// `vocab_size` pointers to NUL-terminated token byte strings (entries may be NULL).
    pub vocab: *mut *mut c_char,
    /// Number of vocabulary entries.
    pub vocab_size: u32,
    /// `num_merges` merge rules in priority order.
    pub merges: *mut q_bpe_merge,
    /// Number of merge rules.
    pub num_merges: u32,
    /// Opaque, library-private state; NULL for hand-built tokenizers.
    pub merge_hash_table: *mut bpe_hash_table,
    /// Beginning-of-sequence id.
    pub bos_token_id: u32,
    /// End-of-sequence id (also the generation stop token).
    pub eos_token_id: u32,
    /// Padding id.
    pub pad_token_id: u32,
    /// True after a successful load.
    pub initialized: bool,
}

/// One `.qorus` 4-bit block: element `j` is nibble `j % 2` (low first) of `qs[j / 2]`;
/// `value_j = (code_j - 8) * scale`. Exactly 20 bytes, alignment 1.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct q_block_q4_0 {
    /// 32 unsigned 4-bit codes, two per byte, interleaved low nibble first.
    pub qs: [u8; 16],
    /// Block scale (f32, possibly unaligned in memory).
    pub scale: f32,
}

/// The 64-byte header of a `.qorus` model file (also filled by the library for GGUF models).
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, Default)]
pub struct q_model_header {
    /// Must equal `Q_MAGIC`.
    pub magic: u32,
    /// Format version; `rms_norm_eps` is honoured only when `version >= 2`.
    pub version: u32,
    /// Rows of `token_embd` and `output`; length of the logits vector.
    pub vocab_size: u32,
    /// Model width.
    pub dim: u32,
    /// Feed-forward width.
    pub hidden_dim: u32,
    /// Number of transformer layers.
    pub n_layers: u32,
    /// Number of query heads.
    pub n_heads: u32,
    /// Number of key/value heads (GQA).
    pub n_kv_heads: u32,
    /// Context length (KV-cache capacity in positions).
    pub max_seq_len: u32,
    /// RoPE frequency base.
    pub rope_freq_base: f32,
    /// RMSNorm epsilon (used when `version >= 2` and > 0, else 1e-5).
    pub rms_norm_eps: f32,
    /// Ignored; zero when written.
    pub reserved: [u32; 5],
}

/// A tensor view (spec §2.8). F32 element (r, c) of a 2-D view is at `data + r*nb[0] + 4*c`.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy)]
pub struct q_tensor {
    /// First byte of the tensor.
    pub data: *mut c_void,
    /// Unused; always NULL in library-made views.
    pub scales: *mut f32,
    /// Extents: `ne[0]` = rows, `ne[1]` = columns, `ne[2]` = `ne[3]` = 1.
    pub ne: [u32; 4],
    /// Byte strides; `nb[0]` is the row stride.
    pub nb: [usize; 4],
    /// Element type (`q_dtype`).
    pub r#type: q_dtype,
    /// NUL-terminated debug name.
    pub name: [c_char; 32],
}

/// The caller-owned context: the model mapping, the KV cache and the scratch arena (spec §2.9).
#[repr(C)]
#[derive(Debug)]
pub struct q_context {
    /// Base of the read-only model file mapping.
    pub weights_mmap: *mut c_void,
    /// Mapping length (file size).
    pub weights_size: usize,
    /// The model header.
    pub header: *mut q_model_header,
    /// KV cache: 64-aligned, zero-filled at allocation.
    pub kv_buffer: *mut c_void,
    /// KV cache size in bytes (multiple of 64).
    pub kv_size: usize,
    /// Scratch arena: 64-aligned, not zeroed.
    pub scratch_buffer: *mut c_void,
    /// Arena capacity in bytes (multiple of 64).
    pub scratch_size: usize,
    /// Arena bytes in use.
    pub scratch_head: usize,
    /// Watermark below which the arena holds the built model; `q_arena_reset` rewinds to it.
    pub scratch_base_offset: usize,
}

/// Model hyperparameters copied from the header by `llama_build_graph`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct q_llama_config {
    /// Vocabulary size (logits length).
    pub vocab_size: u32,
    /// Model width.
    pub dim: u32,
    /// Feed-forward width.
    pub hidden_dim: u32,
    /// Number of layers.
    pub n_layers: u32,
    /// Number of query heads.
    pub n_heads: u32,
    /// Number of key/value heads.
    pub n_kv_heads: u32,
    /// Context length.
    pub max_seq_len: u32,
    /// RoPE frequency base.
    pub rope_freq_base: f32,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
}

/// Views of one transformer layer's weights. Matrices are `[out, in]` (spec §5.3).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct q_llama_layer {
    /// Layer index.
    pub layer_idx: u32,
    /// Attention RMSNorm gain `[d]`.
    pub attn_norm: *mut q_tensor,
    /// Query projection `[d, d]`.
    pub wq: *mut q_tensor,
    /// Key projection `[kvd, d]`.
    pub wk: *mut q_tensor,
    /// Value projection `[kvd, d]`.
    pub wv: *mut q_tensor,
    /// Output projection `[d, d]`.
    pub wo: *mut q_tensor,
    /// Feed-forward RMSNorm gain `[d]`.
    pub ffn_norm: *mut q_tensor,
    /// Gate projection `[h, d]`.
    pub w_gate: *mut q_tensor,
    /// Up projection `[h, d]`.
    pub w_up: *mut q_tensor,
    /// Down projection `[d, h]`.
    pub w_down: *mut q_tensor,
}

/// A built model: views into the mapping and bookkeeping in the arena (spec §2.12).
#[repr(C)]
#[derive(Debug)]
pub struct q_llama_model {
    /// Hyperparameters.
    pub config: q_llama_config,
    /// Embedding table `[V, d]`.
    pub token_embd: *mut q_tensor,
    /// Final RMSNorm gain `[d]`.
    pub output_norm: *mut q_tensor,
    /// LM head `[V, d]`.
    pub output: *mut q_tensor,
    /// `n_layers` layers.
    pub layers: *mut q_llama_layer,
    /// `hd/2` RoPE inverse frequencies.
    pub rope_freqs: *mut f32,
    /// True if the cos/sin tables were built.
    pub rope_cache_enabled: bool,
    /// `S x hd` cosines, duplicated per pair.
    pub rope_cos_cache: *mut f32,
    /// `S x hd` sines, duplicated per pair.
    pub rope_sin_cache: *mut f32,
    /// The context used at build time.
    pub ctx: *mut q_context,
}

/// Inputs and outputs of one generation (spec §2.13).
#[repr(C)]
#[derive(Debug)]
pub struct q_generation_state {
    /// Context with arena and KV cache.
    pub ctx: *mut q_context,
    /// Built model.
    pub model: *mut q_llama_model,
    /// Loaded tokenizer (its `initialized` and `eos_token_id` are used).
    pub tokenizer: *mut q_tokenizer,
    /// Prompt ids.
    pub prompt_tokens: *mut u32,
    /// Prompt length (> 0, <= context length).
    pub num_prompt_tokens: u32,
    /// Caller buffer of at least `max_tokens` ids.
    pub generated_tokens: *mut u32,
    /// Number of ids written (includes a final EOS).
    pub num_generated_tokens: u32,
    /// Upper bound on generated ids (> 0).
    pub max_tokens: u32,
    /// Sampling temperature (>= 0, finite; < 1e-6 means greedy).
    pub temperature: f32,
    /// Top-k filter (0 = off).
    pub top_k: u32,
    /// Top-p filter (<= 0 or >= 1 = off).
    pub top_p: f32,
    /// Number of positions fed through the model.
    pub current_pos: u32,
}

/// qorus addition: several generations over one model, decoded in lock-step.
#[repr(C)]
#[derive(Debug)]
pub struct q_batch_generation_state {
    /// `batch_size` generation states, each with its own context.
    pub states: *mut q_generation_state,
    /// Number of states.
    pub batch_size: u32,
    /// `batch_size x vocab_size` floats receiving each sequence's last logits, or NULL.
    pub shared_logits: *mut f32,
}

/// qorus addition: called by `q_generate_stream` for every generated token with its text piece
/// (`piece_len` bytes, NUL-terminated, never half a UTF-8 character; may be empty). Return false
/// to stop generating.
pub type q_token_callback = Option<
    unsafe extern "C" fn(
        token_id: u32,
        piece: *const c_char,
        piece_len: usize,
        user_data: *mut c_void,
    ) -> bool,
>;
