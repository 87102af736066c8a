//! llama.cpp's quantization mixes: which type each tensor of a model gets for a file type such as
//! `Q4_K_M` (`src/llama-quant.cpp` at llama.cpp 0c1e570: `tensor_allows_quantization`,
//! `llama_tensor_get_type_impl`, `tensor_type_fallback`), without an importance matrix and
//! without per-tensor overrides.
//!
//! The rules, for the mixes qorus writes:
//! * Quantized are 2-D (or larger) tensors whose name ends in `weight`, except norms and a list of
//!   small or special tensors (expert gates, positional embeddings, conv1d, ...). The others keep
//!   their type.
//! * The output matrix (`output.weight`, or `token_embd.weight` when the output is tied to it)
//!   is `Q6_K`, or `Q8_0` when its rows are not whole blocks of the mix's base type, for a Falcon
//!   model, or when the base type is `Q8_0`.
//! * `attn_v` (and fused `attn_qkv`, `attn_kv_b`), counted in llama.cpp's tensor order (by layer,
//!   then name): `Q2_K` -> `Q4_K` when 4+ query heads share a KV head, else `Q3_K`; `Q3_K_M` ->
//!   `Q5_K` for the first two, then `Q4_K`; `Q3_K_L` -> `Q5_K`; `IQ4_NL`/`IQ4_XS` -> `Q5_K` with
//!   4+ heads per KV head; `Q4_K_M`/`Q5_K_M` -> `Q6_K` where `use_more_bits` (the first and last
//!   eighth of the layers and every third layer between); `Q4_K_S` -> `Q5_K` for the first four.
//!   70B-class models lift `Q3_K`/`Q4_K` there to `Q5_K`; 8-expert models use `Q8_0`.
//! * `ffn_down` of layer `i` of `n`: `Q2_K` -> `Q3_K`; `Q3_K_M` -> `Q5_K` if `i < n/16`, else
//!   `Q4_K` (Falcon: `Q3_K` unless `use_more_bits`); `Q3_K_L` -> `Q5_K` (Falcon `Q4_K`);
//!   `Q4_K_M` -> `Q6_K` where `use_more_bits` (Falcon: its own ladder); `IQ4_NL`/`IQ4_XS` ->
//!   `Q5_K` if `i < n/8`; `Q5_K_M` -> `Q6_K` where `use_more_bits`; `Q4_K_S` -> `Q5_K` if `i < n/8`.
//! * `attn_output`: `Q2_K` -> `Q3_K`, `Q3_K_M` -> `Q4_K`, `Q3_K_L` -> `Q5_K` (8-expert and Falcon
//!   models have their own rules).
//! * Last, a type whose block does not divide the row falls back: `IQ4_XS` -> `IQ4_NL`, `Q2_K` and
//!   `Q3_K` -> `Q4_0`, `Q4_K` -> `Q5_0`, `Q5_K` -> `Q5_1`, `Q6_K` -> `Q8_0`, and to `F16` when
//!   even that does not divide it.
//! * With `pure`, every quantizable tensor takes the base type (then the fallback).
//! * `F32`, `F16` and `BF16` files convert every quantizable tensor to that type, no rules.

use crate::error::{Error, Result};
use crate::format::gguf::Gguf;
use crate::quant::WeightType;

/// A file type (`llama_ftype`) qorus can write; the discriminant is llama.cpp's number, stored in
/// `general.file_type`.
#[allow(non_camel_case_types)] // llama.cpp's spellings
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mix {
    /// Every matrix F32.
    F32 = 0,
    /// Every matrix F16.
    F16 = 1,
    /// Q4_0 (output Q6_K / Q8_0).
    Q4_0 = 2,
    /// Q4_1.
    Q4_1 = 3,
    /// Q8_0.
    Q8_0 = 7,
    /// Q5_0.
    Q5_0 = 8,
    /// Q5_1.
    Q5_1 = 9,
    /// Q2_K (attn_v Q3_K/Q4_K, ffn_down and attn_output Q3_K).
    Q2_K = 10,
    /// Q3_K small.
    Q3_K_S = 11,
    /// Q3_K medium.
    Q3_K_M = 12,
    /// Q3_K large.
    Q3_K_L = 13,
    /// Q4_K small.
    Q4_K_S = 14,
    /// Q4_K medium (llama.cpp's usual default).
    Q4_K_M = 15,
    /// Q5_K small.
    Q5_K_S = 16,
    /// Q5_K medium.
    Q5_K_M = 17,
    /// Q6_K.
    Q6_K = 18,
    /// IQ4_NL.
    IQ4_NL = 25,
    /// IQ4_XS.
    IQ4_XS = 30,
    /// Every matrix BF16.
    BF16 = 32,
}

impl Mix {
    /// Every mix, in llama.cpp's numbering order.
    pub const ALL: [Mix; 19] = [
        Mix::F32,
        Mix::F16,
        Mix::Q4_0,
        Mix::Q4_1,
        Mix::Q8_0,
        Mix::Q5_0,
        Mix::Q5_1,
        Mix::Q2_K,
        Mix::Q3_K_S,
        Mix::Q3_K_M,
        Mix::Q3_K_L,
        Mix::Q4_K_S,
        Mix::Q4_K_M,
        Mix::Q5_K_S,
        Mix::Q5_K_M,
        Mix::Q6_K,
        Mix::IQ4_NL,
        Mix::IQ4_XS,
        Mix::BF16,
    ];

    /// llama.cpp's `llama_ftype` number (`general.file_type`).
    pub const fn ftype(self) -> u32 {
        self as u32
    }

    /// The mix with llama.cpp's `llama_ftype` number `n`.
    pub fn from_ftype(n: u32) -> Option<Mix> {
        Mix::ALL.into_iter().find(|m| m.ftype() == n)
    }

    /// The base tensor type (`llama_ftype_get_default_type`).
    pub const fn base_type(self) -> WeightType {
        match self {
            Mix::F32 => WeightType::F32,
            Mix::F16 => WeightType::F16,
            Mix::BF16 => WeightType::BF16,
            Mix::Q4_0 => WeightType::Q4_0,
            Mix::Q4_1 => WeightType::Q4_1,
            Mix::Q8_0 => WeightType::Q8_0,
            Mix::Q5_0 => WeightType::Q5_0,
            Mix::Q5_1 => WeightType::Q5_1,
            Mix::Q2_K => WeightType::Q2_K,
            Mix::Q3_K_S | Mix::Q3_K_M | Mix::Q3_K_L => WeightType::Q3_K,
            Mix::Q4_K_S | Mix::Q4_K_M => WeightType::Q4_K,
            Mix::Q5_K_S | Mix::Q5_K_M => WeightType::Q5_K,
            Mix::Q6_K => WeightType::Q6_K,
            Mix::IQ4_NL => WeightType::IQ4_NL,
            Mix::IQ4_XS => WeightType::IQ4_XS,
        }
    }

    /// Lower-case name (`q4_k_m`), as `qorus quantize` takes it.
    pub const fn name(self) -> &'static str {
        match self {
            Mix::F32 => "f32",
            Mix::F16 => "f16",
            Mix::BF16 => "bf16",
            Mix::Q4_0 => "q4_0",
            Mix::Q4_1 => "q4_1",
            Mix::Q8_0 => "q8_0",
            Mix::Q5_0 => "q5_0",
            Mix::Q5_1 => "q5_1",
            Mix::Q2_K => "q2_k",
            Mix::Q3_K_S => "q3_k_s",
            Mix::Q3_K_M => "q3_k_m",
            Mix::Q3_K_L => "q3_k_l",
            Mix::Q4_K_S => "q4_k_s",
            Mix::Q4_K_M => "q4_k_m",
            Mix::Q5_K_S => "q5_k_s",
            Mix::Q5_K_M => "q5_k_m",
            Mix::Q6_K => "q6_k",
            Mix::IQ4_NL => "iq4_nl",
            Mix::IQ4_XS => "iq4_xs",
        }
    }

    /// The mix a name names, case-insensitively; `q3_k`, `q4_k` and `q5_k` are the `_m` mixes,
    /// as in `llama-quantize`.
    pub fn from_name(name: &str) -> Option<Mix> {
        let n = name.to_ascii_lowercase();
        match n.as_str() {
            "q3_k" => Some(Mix::Q3_K_M),
            "q4_k" => Some(Mix::Q4_K_M),
            "q5_k" => Some(Mix::Q5_K_M),
            _ => Mix::ALL.into_iter().find(|m| m.name() == n),
        }
    }

    /// The mix for a single target type (the C API's `q_dtype`): the mix of that name, and for
    /// `Q3_K`/`Q4_K`/`Q5_K` the `_M` mix (llama-quantize's aliases). `None` for the `.qorus`
    /// block, which GGUF cannot hold.
    pub const fn for_type(ty: WeightType) -> Option<Mix> {
        Some(match ty {
            WeightType::F32 => Mix::F32,
            WeightType::F16 => Mix::F16,
            WeightType::BF16 => Mix::BF16,
            WeightType::Q4_0 => Mix::Q4_0,
            WeightType::Q4_1 => Mix::Q4_1,
            WeightType::Q8_0 => Mix::Q8_0,
            WeightType::Q5_0 => Mix::Q5_0,
            WeightType::Q5_1 => Mix::Q5_1,
            WeightType::Q2_K => Mix::Q2_K,
            WeightType::Q3_K => Mix::Q3_K_M,
            WeightType::Q4_K => Mix::Q4_K_M,
            WeightType::Q5_K => Mix::Q5_K_M,
            WeightType::Q6_K => Mix::Q6_K,
            WeightType::IQ4_NL => Mix::IQ4_NL,
            WeightType::IQ4_XS => Mix::IQ4_XS,
            WeightType::QorusQ4_0 => return None,
        })
    }

    /// Whether the base type is a quantized block type (`ggml_is_quantized`): only then do the
    /// mix rules and the fallbacks apply.
    const fn is_quantized(self) -> bool {
        !matches!(self, Mix::F32 | Mix::F16 | Mix::BF16)
    }
}

/// What the mix rules need to know about the model besides its tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelShape {
    /// `general.architecture`.
    pub arch: String,
    /// `{arch}.block_count`.
    pub n_layer: i32,
    /// Query heads per KV head of layer 0 (`n_gqa()`; 0 when unknown).
    pub n_gqa: u32,
    /// `{arch}.expert_count` (0 without experts).
    pub n_expert: u32,
    /// llama.cpp would class the model as 70B (80 layers of a LLaMA-like architecture with
    /// grouped KV heads).
    pub is_70b: bool,
}

impl ModelShape {
    /// Reads the shape from GGUF metadata (missing keys read as 0).
    pub fn from_gguf(g: &Gguf) -> ModelShape {
        let arch = g.get_str("general.architecture").unwrap_or("").to_string();
        let first = |key: &str| -> u64 {
            match g.get(&format!("{arch}.{key}")) {
                Some(v) => v
                    .as_u64()
                    .or_else(|| {
                        v.as_array()
                            .and_then(|a| a.first())
                            .and_then(|x| x.as_u64())
                    })
                    .unwrap_or(0),
                None => 0,
            }
        };
        let n_layer = first("block_count") as i32;
        let n_head = first("attention.head_count");
        let n_head_kv = match g.get(&format!("{arch}.attention.head_count_kv")) {
            Some(_) => first("attention.head_count_kv"),
            None => n_head, // llama.cpp defaults n_head_kv to n_head
        };
        let n_gqa = n_head.checked_div(n_head_kv).unwrap_or(0) as u32;
        let is_70b = match arch.as_str() {
            "llama" => n_layer == 80 && n_head != n_head_kv,
            "qwen2" | "olmo" | "deci" => n_layer == 80,
            "jais2" => n_layer == 68,
            _ => false,
        };
        ModelShape {
            n_layer,
            n_gqa,
            n_expert: first("expert_count") as u32,
            is_70b,
            arch,
        }
    }
}

/// The tensor categories of the rules (`tensor_get_category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Output,
    TokenEmbd,
    AttnV, // attn_v, attn_qkv, attn_kv_b
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

fn category(name: &str) -> Category {
    if name == "output.weight" {
        Category::Output
    } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        Category::TokenEmbd
    } else if name.contains("attn_qkv.weight")
        || name.contains("attn_kv_b.weight")
        || name.contains("attn_v.weight")
    {
        Category::AttnV
    } else if name.contains("attn_k.weight") {
        Category::AttnK
    } else if name.contains("attn_q.weight") {
        Category::AttnQ
    } else if name.contains("attn_output.weight") {
        Category::AttnOutput
    } else if name.contains("ffn_up") {
        Category::FfnUp
    } else if name.contains("ffn_gate") {
        Category::FfnGate
    } else if name.contains("ffn_down") {
        Category::FfnDown
    } else {
        Category::Other
    }
}

/// Name fragments of 2-D weights llama.cpp never quantizes.
const NOT_QUANTIZED: &[&str] = &[
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
];

/// Whether llama-quantize changes the type of this tensor (`tensor_allows_quantization`).
pub fn allows_quantization(name: &str, dims: &[u64]) -> bool {
    // ggml_n_dims: trailing extents of 1 do not count
    let n_dims = dims.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1);
    n_dims >= 2
        && name.ends_with("weight")
        && !NOT_QUANTIZED.iter().any(|f| name.contains(f))
        && name != "position_embd.weight"
        && name != "token_types.weight"
}

/// The layer of a `blk.N.` name (-1 for others), as llama.cpp's `sscanf("blk.%d.")`.
fn layer_of(name: &str) -> i64 {
    let Some(rest) = name.strip_prefix("blk.") else {
        return -1;
    };
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    match (digits.parse::<i64>(), rest[digits.len()..].starts_with('.')) {
        (Ok(n), true) => n,
        _ => -1,
    }
}

fn use_more_bits(i_layer: i32, n_layers: i32) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

/// The running counters of `quantize_state_impl`.
struct Counters {
    n_attention_wv: i32,
    i_attention_wv: i32,
    i_ffn_down: i32,
    i_ffn_gate: i32,
    i_ffn_up: i32,
    tied: bool,
}

/// `llama_tensor_get_type_impl` for the mixes of [`Mix`] (no importance matrix).
fn mix_rule(
    shape: &ModelShape,
    st: &mut Counters,
    name: &str,
    ne0: u64,
    cat: Category,
    mix: Mix,
    mut ty: WeightType,
) -> Result<WeightType> {
    use WeightType as T;
    let falcon = shape.arch == "falcon";
    let layer = |counter: i32| -> Result<(i32, i32)> {
        if shape.n_expert > 1 {
            let l = layer_of(name);
            if l < 0 || l >= shape.n_layer as i64 {
                return Err(Error::InvalidConfig(format!(
                    "tensor {name}: cannot determine its layer (of {})",
                    shape.n_layer
                )));
            }
            Ok((l as i32, shape.n_layer))
        } else {
            Ok((counter, shape.n_layer))
        }
    };
    if cat == Category::Output || (st.tied && cat == Category::TokenEmbd) {
        if falcon || !ne0.is_multiple_of(ty.block_len() as u64) {
            ty = T::Q8_0;
        } else if ty != T::Q8_0 {
            ty = T::Q6_K;
        }
    } else if cat == Category::TokenEmbd {
        // no rule for these mixes
    } else if cat == Category::AttnV {
        let (i, n) = (st.i_attention_wv, st.n_attention_wv);
        match mix {
            Mix::Q2_K => ty = if shape.n_gqa >= 4 { T::Q4_K } else { T::Q3_K },
            Mix::Q3_K_M => ty = if i < 2 { T::Q5_K } else { T::Q4_K },
            Mix::Q3_K_L => ty = T::Q5_K,
            Mix::IQ4_NL | Mix::IQ4_XS if shape.n_gqa >= 4 => ty = T::Q5_K,
            Mix::Q4_K_M | Mix::Q5_K_M if use_more_bits(i, n) => ty = T::Q6_K,
            Mix::Q4_K_S if i < 4 => ty = T::Q5_K,
            _ => {}
        }
        if shape.is_70b && matches!(ty, T::Q3_K | T::Q4_K) {
            ty = T::Q5_K;
        }
        if shape.n_expert == 8 {
            ty = T::Q8_0;
        }
        st.i_attention_wv += 1;
    } else if cat == Category::AttnK {
        if shape.n_expert == 8 {
            ty = T::Q8_0;
        }
    } else if cat == Category::AttnQ {
        // no rule for these mixes
    } else if cat == Category::FfnDown {
        let (i, n) = layer(st.i_ffn_down)?;
        match mix {
            Mix::Q2_K => ty = T::Q3_K,
            Mix::Q3_K_M => {
                ty = if i < n / 16 {
                    T::Q5_K
                } else if !falcon || use_more_bits(i, n) {
                    T::Q4_K
                } else {
                    T::Q3_K
                }
            }
            Mix::Q3_K_L => ty = if falcon { T::Q4_K } else { T::Q5_K },
            Mix::Q4_K_M => {
                if falcon {
                    ty = if i < n / 16 {
                        T::Q6_K
                    } else if use_more_bits(i, n) {
                        T::Q5_K
                    } else {
                        T::Q4_K
                    };
                } else if use_more_bits(i, n) {
                    ty = T::Q6_K;
                }
            }
            Mix::IQ4_NL | Mix::IQ4_XS if i < n / 8 => ty = T::Q5_K,
            Mix::Q5_K_M if use_more_bits(i, n) => ty = T::Q6_K,
            Mix::Q4_K_S if !falcon && i < n / 8 => ty = T::Q5_K,
            _ => {}
        }
        st.i_ffn_down += 1;
    } else if cat == Category::AttnOutput {
        if !falcon {
            if shape.n_expert == 8 {
                if matches!(
                    mix,
                    Mix::Q2_K
                        | Mix::Q3_K_S
                        | Mix::Q3_K_M
                        | Mix::IQ4_NL
                        | Mix::Q4_K_S
                        | Mix::Q4_K_M
                        | Mix::IQ4_XS
                ) {
                    ty = T::Q5_K;
                }
            } else {
                match mix {
                    Mix::Q2_K => ty = T::Q3_K,
                    Mix::Q3_K_M => ty = T::Q4_K,
                    Mix::Q3_K_L => ty = T::Q5_K,
                    _ => {}
                }
            }
        } else if mix == Mix::Q3_K_L {
            ty = T::Q4_K;
        }
    } else if cat == Category::FfnGate {
        layer(st.i_ffn_gate)?;
        st.i_ffn_gate += 1;
    } else if cat == Category::FfnUp {
        layer(st.i_ffn_up)?;
        st.i_ffn_up += 1;
    }
    Ok(ty)
}

/// `tensor_type_fallback`: a type whose block does not divide the row `ne0` is replaced.
fn fallback(name: &str, ne0: u64, ty: WeightType) -> Result<WeightType> {
    use WeightType as T;
    if ne0.is_multiple_of(ty.block_len() as u64) {
        return Ok(ty);
    }
    let mut r = match ty {
        T::IQ4_XS => T::IQ4_NL,
        T::Q2_K | T::Q3_K => T::Q4_0,
        T::Q4_K => T::Q5_0,
        T::Q5_K => T::Q5_1,
        T::Q6_K => T::Q8_0,
        t if t.block_len() <= 32 => t,
        t => {
            return Err(Error::InvalidDtype(format!(
                "tensor {name}: no fallback type for {} with rows of {ne0}",
                t.name()
            )))
        }
    };
    if !ne0.is_multiple_of(r.block_len() as u64) {
        r = T::F16;
    }
    Ok(r)
}

/// One tensor as the planner sees it.
#[derive(Debug, Clone, Copy)]
pub struct PlanTensor<'a> {
    /// Name.
    pub name: &'a str,
    /// Extents, ggml order.
    pub dims: &'a [u64],
    /// Its current type.
    pub ty: WeightType,
}

/// The type of every tensor (in the order given) in a file of `mix` (see the module
/// documentation). Tensors are visited in llama.cpp's order (by layer, then name) because the
/// `attn_v`/`ffn_down` rules count them.
pub fn plan(
    shape: &ModelShape,
    tensors: &[PlanTensor<'_>],
    mix: Mix,
    pure: bool,
) -> Result<Vec<WeightType>> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        let (na, nb) = (tensors[a].name, tensors[b].name);
        layer_of(na).cmp(&layer_of(nb)).then_with(|| na.cmp(nb))
    });
    let mut st = Counters {
        n_attention_wv: tensors
            .iter()
            .filter(|t| category(t.name) == Category::AttnV)
            .count() as i32,
        i_attention_wv: 0,
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
        tied: !tensors.iter().any(|t| t.name == "output.weight"),
    };
    let mut out: Vec<WeightType> = tensors.iter().map(|t| t.ty).collect();
    for i in order {
        let t = &tensors[i];
        if !allows_quantization(t.name, t.dims) {
            continue;
        }
        let base = mix.base_type();
        if !mix.is_quantized() {
            out[i] = base;
            continue;
        }
        let ne0 = t.dims[0];
        let mut ty = base;
        if !pure {
            ty = mix_rule(shape, &mut st, t.name, ne0, category(t.name), mix, ty)?;
        }
        out[i] = fallback(t.name, ne0, ty)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for m in Mix::ALL {
            assert_eq!(Mix::from_name(m.name()), Some(m));
            assert_eq!(Mix::from_name(&m.name().to_uppercase()), Some(m));
            assert_eq!(Mix::from_ftype(m.ftype()), Some(m));
        }
        assert_eq!(Mix::from_name("Q4_K"), Some(Mix::Q4_K_M));
        assert_eq!(Mix::from_name("q2_k_s"), None);
        assert_eq!(Mix::Q4_K_M.ftype(), 15);
        assert_eq!(Mix::IQ4_XS.ftype(), 30);
        assert_eq!(Mix::for_type(WeightType::Q5_K), Some(Mix::Q5_K_M));
        assert_eq!(Mix::for_type(WeightType::QorusQ4_0), None);
    }

    #[test]
    fn layer_parsing_and_use_more_bits() {
        assert_eq!(layer_of("blk.12.attn_v.weight"), 12);
        assert_eq!(layer_of("blk.x.attn_v.weight"), -1);
        assert_eq!(layer_of("token_embd.weight"), -1);
        // 30 layers (SmolLM2): first 3, last 4, and 3 + 2 + 3k
        let more: Vec<i32> = (0..30).filter(|&i| use_more_bits(i, 30)).collect();
        assert_eq!(
            more,
            vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]
        );
    }

    #[test]
    fn quantizable_tensors() {
        assert!(allows_quantization("blk.0.attn_q.weight", &[64, 64]));
        assert!(!allows_quantization("blk.0.attn_norm.weight", &[64]));
        assert!(!allows_quantization("blk.0.attn_q.weight", &[64, 1]));
        assert!(!allows_quantization("blk.0.ffn_gate_inp.weight", &[64, 8]));
        assert!(!allows_quantization("blk.0.attn_q.bias", &[64, 64]));
        assert!(!allows_quantization("position_embd.weight", &[64, 64]));
    }

    #[test]
    fn fallbacks() {
        use WeightType as T;
        for (ty, want) in [
            (T::IQ4_XS, T::IQ4_NL),
            (T::Q2_K, T::Q4_0),
            (T::Q3_K, T::Q4_0),
            (T::Q4_K, T::Q5_0),
            (T::Q5_K, T::Q5_1),
            (T::Q6_K, T::Q8_0),
            (T::Q4_0, T::Q4_0),
        ] {
            assert_eq!(fallback("t", 576, ty).unwrap(), want);
            assert_eq!(fallback("t", 512, ty).unwrap(), ty);
            assert_eq!(fallback("t", 40, ty).unwrap(), T::F16);
        }
    }
}

#[cfg(test)]
#[path = "quant_mix_tests.rs"]
mod table_tests;
