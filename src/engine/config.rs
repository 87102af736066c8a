//! Transformer hyperparameters, from a GGUF file's `<arch>.*` keys or a `.qorus` header. What
//! differs between model families beyond these numbers is in [`super::arch::Arch`].

use crate::error::{Error, Result};
use crate::ffi::types::{q_model_header, Q_MAGIC};
use crate::format::gguf::Gguf;

/// Most floats the RoPE tables (cosines and sines together) of a model may take.
pub const MAX_ROPE_FLOATS: usize = 1 << 27;

/// Hyperparameters of a LLaMA-family model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Vocabulary size (rows of the embedding and output matrices).
    pub vocab_size: usize,
    /// Model width `d`.
    pub dim: usize,
    /// Feed-forward width `h`.
    pub hidden_dim: usize,
    /// Layers.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Head dimension: `dim / n_heads` for LLaMA, Qwen and Phi-3 and `.qorus` files; GGUF
    /// `attention.key_length` when the file sets it (Gemma 3: 256 with `dim` 640 and 4 heads).
    pub head_dim: usize,
    /// Context length (KV-cache positions).
    pub max_seq_len: usize,
    /// RoPE frequency base.
    pub rope_base: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
}

impl Config {
    /// Head dimension.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Width of the query projection and of the attention output, `H * hd` (equal to `dim`
    /// unless the file sets a head dimension of its own).
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of the K and V projections, `G * hd`.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim()
    }

    /// Floats the spec-layout KV cache needs: `L * G * S * 2 * hd`.
    pub fn kv_floats(&self) -> Option<usize> {
        self.n_layers
            .checked_mul(self.n_kv_heads)?
            .checked_mul(self.max_seq_len)?
            .checked_mul(2 * self.head_dim())
    }

    /// Checks what the forward pass relies on (spec §5.3 build-time validation).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.vocab_size == 0
            || self.dim == 0
            || self.n_layers == 0
            || self.n_heads == 0
            || self.n_kv_heads == 0
        {
            return bad(format!("zero dimension in {self:?}"));
        }
        if self.head_dim == 0 {
            return bad(format!(
                "head dimension 0 (dim {} / n_heads {})",
                self.dim, self.n_heads
            ));
        }
        if self.n_kv_heads > self.n_heads || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "n_heads {} not a multiple of n_kv_heads {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        if !self.head_dim().is_multiple_of(8) {
            return bad(format!("head_dim {} not a multiple of 8", self.head_dim()));
        }
        if self.max_seq_len == 0 {
            return bad("max_seq_len is 0".into());
        }
        if !(self.rope_base.is_finite() && self.rope_base > 0.0) {
            return bad(format!("rope_freq_base {}", self.rope_base));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps >= 0.0) {
            return bad(format!("rms_norm_eps {}", self.rms_eps));
        }
        // Guard every size product the engine forms.
        let big = 1usize << 34;
        if self.dim > 1 << 20
            || self.head_dim > 1 << 14
            || self.n_heads > 1 << 12
            || self.hidden_dim > 1 << 22
            || self.vocab_size > 1 << 24
            || self.n_layers > 4096
        {
            return bad(format!("dimensions too large: {self:?}"));
        }
        if self.kv_floats().is_none_or(|n| n > big) {
            return bad("KV cache size overflows".into());
        }
        // The RoPE tables (`max_seq_len * head_dim` floats) are built with the model whatever
        // context the caller will use: bound them (2^27 floats, 512 MiB, covers a 1M-token
        // context at head_dim 128), so that a small hostile file cannot make the library
        // allocate and fill gigabytes.
        if self.max_seq_len.saturating_mul(self.head_dim()) > MAX_ROPE_FLOATS {
            return bad(format!(
                "context of {} positions x head_dim {} is too long for the RoPE tables",
                self.max_seq_len,
                self.head_dim()
            ));
        }
        Ok(())
    }

    /// Reads a `.qorus` header with the spec's eps rule (`version >= 2` and > 0, else 1e-5).
    pub fn from_header(h: &q_model_header) -> Config {
        let eps = if h.version >= 2 && h.rms_norm_eps > 0.0 && h.rms_norm_eps.is_finite() {
            h.rms_norm_eps
        } else {
            1e-5
        };
        Config {
            vocab_size: h.vocab_size as usize,
            dim: h.dim as usize,
            hidden_dim: h.hidden_dim as usize,
            n_layers: h.n_layers as usize,
            n_heads: h.n_heads as usize,
            n_kv_heads: h.n_kv_heads as usize,
            head_dim: Self::split_heads(h.dim as usize, h.n_heads as usize),
            max_seq_len: h.max_seq_len as usize,
            rope_base: h.rope_freq_base,
            rms_eps: eps,
        }
    }

    /// `dim / n_heads` when it divides exactly, else 0 (refused by [`Config::validate`]): the
    /// head dimension of a `.qorus` header or a `q_llama_config`, which have no field for it.
    pub fn split_heads(dim: usize, n_heads: usize) -> usize {
        match dim.checked_rem(n_heads) {
            Some(0) => dim / n_heads,
            _ => 0,
        }
    }

    /// The `q_model_header` describing this configuration (version 2, explicit eps).
    pub fn to_header(&self) -> q_model_header {
        q_model_header {
            magic: Q_MAGIC,
            version: 2,
            vocab_size: self.vocab_size as u32,
            dim: self.dim as u32,
            hidden_dim: self.hidden_dim as u32,
            n_layers: self.n_layers as u32,
            n_heads: self.n_heads as u32,
            n_kv_heads: self.n_kv_heads as u32,
            max_seq_len: self.max_seq_len as u32,
            rope_freq_base: self.rope_base,
            rms_norm_eps: self.rms_eps,
            reserved: [0; 5],
        }
    }

    /// Reads the `<arch>.*` hyperparameters of a GGUF file of a family qorus runs
    /// ([`super::arch::Family`]).
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let arch = g
            .architecture()
            .ok_or_else(|| Error::InvalidConfig("GGUF: no general.architecture".into()))?;
        super::arch::Family::from_name(arch)?;
        let u = |k: &str| -> Result<usize> {
            let key = format!("{arch}.{k}");
            g.get_u64(&key)
                .filter(|&v| v <= u32::MAX as u64)
                .map(|v| v as usize)
                .ok_or_else(|| Error::InvalidConfig(format!("GGUF: missing or bad {key}")))
        };
        let opt = |k: &str| -> Result<Option<usize>> {
            let key = format!("{arch}.{k}");
            match g.get(&key) {
                None => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(x) if x <= u32::MAX as u64 => Ok(Some(x as usize)),
                    _ => Err(Error::InvalidConfig(format!(
                        "GGUF: {key} is not a single 32-bit count (per-layer arrays are not supported)"
                    ))),
                },
            }
        };
        let n_heads = u("attention.head_count")?;
        let dim = u("embedding_length")?;
        let n_kv_heads = opt("attention.head_count_kv")?.unwrap_or(n_heads);
        let vocab_size = match g.tensor("token_embd.weight") {
            Some(t) if t.dims.len() == 2 => t.dims[1] as usize,
            _ => {
                return Err(Error::InvalidConfig(
                    "GGUF: token_embd.weight missing or not 2-D".into(),
                ))
            }
        };
        let head_dim = match opt("attention.key_length")? {
            Some(k) => k,
            None => Self::split_heads(dim, n_heads),
        };
        if let Some(vl) = opt("attention.value_length")? {
            if vl != head_dim {
                return Err(Error::InvalidConfig(format!(
                    "GGUF: {arch}.attention.value_length {vl} differs from the key length {head_dim} (not supported)"
                )));
            }
        }
        if let Some(rot) = opt("rope.dimension_count")? {
            if rot != head_dim {
                return Err(Error::InvalidConfig(format!(
                    "GGUF: partial RoPE ({arch}.rope.dimension_count {rot} of head dimension {head_dim}) is not supported"
                )));
            }
        }
        let c = Config {
            vocab_size,
            dim,
            hidden_dim: u("feed_forward_length")?,
            n_layers: u("block_count")?,
            n_heads,
            n_kv_heads,
            head_dim,
            max_seq_len: u("context_length")?,
            rope_base: g
                .get_f64(&format!("{arch}.rope.freq_base"))
                .unwrap_or(10000.0) as f32,
            rms_eps: g
                .get_f64(&format!("{arch}.attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-5) as f32,
        };
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2() -> Config {
        Config {
            vocab_size: 49152,
            dim: 576,
            hidden_dim: 1536,
            n_layers: 30,
            n_heads: 9,
            n_kv_heads: 3,
            head_dim: 64,
            max_seq_len: 8192,
            rope_base: 100000.0,
            rms_eps: 1e-5,
        }
    }

    #[test]
    fn rope_tables_are_bounded() {
        assert!(smollm2().validate().is_ok());
        // a 1M-token context at head_dim 128 is accepted (2^27 floats)
        let big = Config {
            dim: 4096,
            head_dim: 128,
            n_heads: 32,
            n_kv_heads: 8,
            n_layers: 1,
            max_seq_len: 1 << 20,
            ..smollm2()
        };
        assert!(big.validate().is_ok());
        // a tiny model with a context of 2^28 positions is not (8 GiB of tables)
        let hostile = Config {
            dim: 32,
            head_dim: 8,
            hidden_dim: 32,
            n_heads: 4,
            n_kv_heads: 4,
            n_layers: 1,
            max_seq_len: 1 << 28,
            ..smollm2()
        };
        assert!(hostile.kv_floats().is_some_and(|n| n <= 1 << 34));
        assert_eq!(
            hostile.validate().unwrap_err().code(),
            crate::ffi::types::Q_ERR_INVALID_CONFIG
        );
    }
}
