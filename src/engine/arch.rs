//! What distinguishes one model family from another, as a description the loader reads from the
//! GGUF file and the forward pass follows (one layer loop, a few named branches).
//!
//! Each family is computed as llama.cpp 0c1e570 computes it (`src/models/<family>.cpp`):
//!
//! | family | RoPE | Q/K norm | biases | FFN | other |
//! | --- | --- | --- | --- | --- | --- |
//! | `llama` | interleaved pairs, `rope_freqs` factors, linear scaling | - | optional Q/K/V/O and FFN | SiLU gate | optional fused QKV, LongRoPE factors |
//! | `qwen2` | NEOX halves | - | Q/K/V (optional), output | SiLU gate | |
//! | `qwen3` | NEOX halves | per head | optional Q/K/V | SiLU gate | |
//! | `phi3` | NEOX halves, long/short factors | - | optional Q/K/V | SiLU gate, fused gate+up | fused QKV, Q pre-scaled |
//! | `gemma3` | NEOX halves, local base on sliding layers | per head | optional Q/K/V | GELU-tanh gate | embeddings x sqrt(d), post-attention and post-FFN norms, sliding window, final soft-cap |
//!
//! Whatever a file asks for that is not implemented (a RoPE scaling type, mixture of experts, a
//! tensor the family does not use) is an error naming it.

use crate::engine::config::Config;
use crate::error::{Error, Result};
use crate::format::gguf::Gguf;

/// The model families qorus runs (GGUF `general.architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `llama` (LLaMA 1/2/3, Mistral, SmolLM2, ...).
    Llama,
    /// `qwen2` (Qwen2, Qwen2.5, DeepSeek-R1 distills).
    Qwen2,
    /// `qwen3` (Qwen3 dense).
    Qwen3,
    /// `phi3` (Phi-3, Phi-3.5 mini).
    Phi3,
    /// `gemma3` (Gemma 3 text).
    Gemma3,
}

impl Family {
    /// Every family, for messages.
    pub const ALL: [Family; 5] = [
        Family::Llama,
        Family::Qwen2,
        Family::Qwen3,
        Family::Phi3,
        Family::Gemma3,
    ];

    /// The GGUF architecture name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
            Family::Phi3 => "phi3",
            Family::Gemma3 => "gemma3",
        }
    }

    /// The family of a GGUF `general.architecture`, or an error naming it.
    pub fn from_name(name: &str) -> Result<Family> {
        Family::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
                Error::InvalidConfig(format!(
                    "GGUF: unsupported architecture {name:?} (qorus runs {})",
                    known.join(", ")
                ))
            })
    }
}

/// How RoPE pairs the values of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// ggml `NORM`: pairs `(x[2i], x[2i+1])`.
    Interleaved,
    /// ggml `NEOX`: pairs `(x[i], x[i + hd/2])`.
    Neox,
}

/// The gated FFN's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `silu(gate) * up`.
    Silu,
    /// `gelu_tanh(gate) * up`, with ggml's f16 GELU table.
    GeluTanh,
}

/// The description of a model family that the forward pass follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Arch {
    /// Which family.
    pub family: Family,
    /// RoPE pairing.
    pub rope_style: RopeStyle,
    /// Linear RoPE scaling: positions are multiplied by this (`1 / rope.scaling.factor`).
    pub rope_freq_scale: f32,
    /// Multiplies RoPE's cosines and sines (`rope.scaling.attn_factor`, Phi-3 LongRoPE).
    pub rope_attn_factor: f32,
    /// RoPE base of the sliding-window layers (Gemma 3: `rope.freq_base_swa`, default 10000).
    pub rope_base_swa: f32,
    /// Above this many context positions the long RoPE factors are used instead of the short
    /// ones (`rope.scaling.original_context_length`, default the training context).
    pub n_ctx_orig: usize,
    /// FFN activation.
    pub activation: Activation,
    /// Per-head RMSNorm of Q and K before RoPE (`attn_q_norm`, `attn_k_norm`).
    pub qk_norm: bool,
    /// RMSNorm of the attention and FFN outputs before the residual adds
    /// (`post_attention_norm`, `post_ffw_norm`).
    pub post_norms: bool,
    /// The gate and up projections are one `ffn_up` of `2 * hidden_dim` rows (gate first).
    pub fused_gate_up: bool,
    /// Embeddings are multiplied by this (Gemma: `sqrt(dim)`).
    pub embed_scale: Option<f32>,
    /// Attention logits scale.
    pub attn_scale: f32,
    /// The scale multiplies Q before the dot products (Phi-3, Gemma 3) instead of the dot
    /// products (the rounding differs).
    pub prescale_q: bool,
    /// Sliding-window size, 0 for none.
    pub sliding_window: usize,
    /// Which layers use the sliding window (and the SWA RoPE base).
    pub swa_layers: Vec<bool>,
    /// Final logit soft-capping `cap * tanh(logit / cap)`.
    pub final_softcap: Option<f32>,
    /// Optional tensors this family's loader accepts (llama.cpp refuses the others).
    pub optional: Optional,
}

/// Optional tensors a family may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Optional {
    /// `attn_output.bias`.
    pub attn_out_bias: bool,
    /// `ffn_gate.bias`, `ffn_up.bias`, `ffn_down.bias`.
    pub ffn_bias: bool,
    /// `output.bias`.
    pub output_bias: bool,
    /// `rope_freqs.weight` (Llama 3 frequency factors).
    pub rope_freqs: bool,
    /// `rope_factors_long.weight` / `rope_factors_short.weight`.
    pub rope_long_short: bool,
}

impl Arch {
    /// Plain LLaMA with `n_layers` layers (the `.qorus` format, SmolLM2).
    pub fn llama(config: &Config) -> Arch {
        Arch {
            family: Family::Llama,
            rope_style: RopeStyle::Interleaved,
            rope_freq_scale: 1.0,
            rope_attn_factor: 1.0,
            rope_base_swa: config.rope_base,
            n_ctx_orig: config.max_seq_len,
            activation: Activation::Silu,
            qk_norm: false,
            post_norms: false,
            fused_gate_up: false,
            embed_scale: None,
            attn_scale: 1.0 / (config.head_dim() as f32).sqrt(),
            prescale_q: false,
            sliding_window: 0,
            swa_layers: vec![false; config.n_layers],
            final_softcap: None,
            optional: Optional {
                attn_out_bias: true,
                ffn_bias: true,
                rope_freqs: true,
                ..Optional::default()
            },
        }
    }

    /// Whether layer `l` attends through the sliding window.
    pub fn is_swa(&self, l: usize) -> bool {
        self.sliding_window > 0 && self.swa_layers.get(l).copied().unwrap_or(false)
    }

    /// Reads the family description from a GGUF file whose hyperparameters are `config`.
    pub fn from_gguf(g: &Gguf, config: &Config) -> Result<Arch> {
        let name = g
            .architecture()
            .ok_or_else(|| Error::InvalidConfig("GGUF: no general.architecture".into()))?;
        let family = Family::from_name(name)?;
        let bad = |m: String| Err(Error::InvalidConfig(format!("GGUF: {m}")));
        let key = |k: &str| format!("{name}.{k}");
        let f32_key = |k: &str| -> Result<Option<f32>> {
            match g.get(&key(k)) {
                None => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(x) if x.is_finite() => Ok(Some(x as f32)),
                    _ => Err(Error::InvalidConfig(format!(
                        "GGUF: {} is not a finite number",
                        key(k)
                    ))),
                },
            }
        };
        let mut a = Arch::llama(config);
        a.family = family;

        if g.get_u64(&key("expert_count")).is_some_and(|n| n > 0) {
            return bad(format!(
                "{} > 0: mixture-of-experts models are not supported",
                key("expert_count")
            ));
        }

        // RoPE scaling (llama-model.cpp's generic hparams): "linear" unless the file says.
        let scaling = match g.get(&key("rope.scaling.type")) {
            None => "linear".to_string(),
            Some(v) => match v.as_str() {
                Some(s) => s.to_string(),
                None => return bad(format!("{} is not a string", key("rope.scaling.type"))),
            },
        };
        let factor = match f32_key("rope.scaling.factor")? {
            Some(f) => Some(f),
            None => f32_key("rope.scale_linear")?,
        };
        match scaling.as_str() {
            "none" => a.rope_freq_scale = 1.0,
            "linear" => {
                a.rope_freq_scale = match factor {
                    None => 1.0,
                    Some(0.0) => 1.0,
                    Some(f) if f > 0.0 => 1.0 / f,
                    Some(f) => return bad(format!("RoPE scaling factor {f}")),
                }
            }
            "longrope" if family == Family::Llama => {
                a.optional.rope_freqs = false;
                a.optional.rope_long_short = true;
            }
            other => {
                return bad(format!(
                    "RoPE scaling type {other:?} ({}) is not supported (none, linear)",
                    key("rope.scaling.type")
                ))
            }
        }
        if let Some(af) = f32_key("rope.scaling.attn_factor")? {
            if af <= 0.0 {
                return bad(format!("{} {af}", key("rope.scaling.attn_factor")));
            }
            a.rope_attn_factor = af;
        }
        if let Some(n) = g.get(&key("rope.scaling.original_context_length")) {
            match n.as_u64() {
                Some(n) if n > 0 && n <= u32::MAX as u64 => a.n_ctx_orig = n as usize,
                _ => {
                    return bad(format!(
                        "{} {n:?}",
                        key("rope.scaling.original_context_length")
                    ))
                }
            }
        }

        match family {
            Family::Llama => {}
            Family::Qwen2 => {
                a.rope_style = RopeStyle::Neox;
                a.optional = Optional {
                    output_bias: true,
                    ..Optional::default()
                };
            }
            Family::Qwen3 => {
                a.rope_style = RopeStyle::Neox;
                a.qk_norm = true;
                a.optional = Optional::default();
            }
            Family::Phi3 => {
                a.rope_style = RopeStyle::Neox;
                a.fused_gate_up = true;
                a.prescale_q = true;
                a.optional = Optional {
                    rope_long_short: true,
                    ..Optional::default()
                };
                // llama.cpp reads Phi-3's sliding window and then disables it (its PR 13676):
                // every layer attends to the whole context. So does qorus.
            }
            Family::Gemma3 => {
                a.rope_style = RopeStyle::Neox;
                a.qk_norm = true;
                a.post_norms = true;
                a.activation = Activation::GeluTanh;
                a.embed_scale = Some((config.dim as f32).sqrt());
                a.prescale_q = true;
                a.optional = Optional::default();
                // gemma_pytorch's query scale: the 27B model (62 layers) uses dim / n_heads.
                a.attn_scale = if config.n_layers == 62 {
                    1.0 / ((config.dim / config.n_heads.max(1)) as f32).sqrt()
                } else {
                    1.0 / (config.head_dim() as f32).sqrt()
                };
                a.final_softcap = match f32_key("final_logit_softcapping")? {
                    None => None,
                    Some(0.0) => None,
                    Some(c) if c > 0.0 => Some(c),
                    Some(c) => return bad(format!("{} {c}", key("final_logit_softcapping"))),
                };
                if let Some(w) = g.get(&key("attention.sliding_window")) {
                    let w = match w.as_u64() {
                        Some(w) if w <= u32::MAX as u64 => w as usize,
                        _ => return bad(format!("{} {w:?}", key("attention.sliding_window"))),
                    };
                    if w == 0 {
                        return bad(format!(
                            "{} is 0 (a sliding window of no positions)",
                            key("attention.sliding_window")
                        ));
                    }
                    if w > config.max_seq_len {
                        return bad(format!(
                            "{} {w} is larger than the context length {}",
                            key("attention.sliding_window"),
                            config.max_seq_len
                        ));
                    }
                    a.sliding_window = w;
                    a.swa_layers =
                        swa_pattern(g, &key("attention.sliding_window_pattern"), config.n_layers)?;
                    if let Some(b) = f32_key("rope.freq_base_swa")? {
                        if b <= 0.0 {
                            return bad(format!("{} {b}", key("rope.freq_base_swa")));
                        }
                        a.rope_base_swa = b;
                    } else {
                        a.rope_base_swa = 10000.0;
                    }
                }
            }
        }
        Ok(a)
    }
}

/// llama.cpp's `load_swa_pattern(ml, 6)`: a per-layer bool array, or a period `n` (default 6)
/// where layer `l` slides when `l % n < n - 1` (every `n`-th layer is global; 0: all slide).
fn swa_pattern(g: &Gguf, key: &str, n_layers: usize) -> Result<Vec<bool>> {
    match g.get(key) {
        Some(v) if v.as_array().is_some() => {
            let arr = v.as_array().unwrap_or(&[]);
            if arr.len() != n_layers {
                return Err(Error::InvalidConfig(format!(
                    "GGUF: {key} has {} entries for {n_layers} layers",
                    arr.len()
                )));
            }
            arr.iter()
                .map(|x| {
                    x.as_bool()
                        .or_else(|| x.as_u64().map(|n| n != 0))
                        .ok_or_else(|| {
                            Error::InvalidConfig(format!("GGUF: {key} holds a non-boolean"))
                        })
                })
                .collect()
        }
        Some(v) => {
            let n = v
                .as_u64()
                .filter(|&n| n <= u32::MAX as u64)
                .ok_or_else(|| Error::InvalidConfig(format!("GGUF: {key} {v:?}")))?
                as usize;
            Ok((0..n_layers).map(|l| n == 0 || l % n < n - 1).collect())
        }
        None => Ok((0..n_layers).map(|l| l % 6 < 5).collect()),
    }
}
