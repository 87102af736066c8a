//! The inference engine: model weights, forward pass, KV cache, threads.
//!
//! [`Session`] is the Rust API: a model, a KV cache and scratch memory of its own. The C API
//! drives the same [`forward`](forward::forward) with the caller's KV cache and arena.

pub mod arch;
pub mod config;
pub mod forward;
pub mod kv_cache;
pub mod model;
pub mod pool;

use std::sync::Arc;

pub use arch::Arch;
pub use config::Config;
pub use model::Model;

use crate::error::{Error, Result};
use forward::{scratch_bytes, SeqStep};
use kv_cache::{KvCache, KvLayout, KvType};

/// 64-byte aligned scratch memory that grows on demand (allocation happens only when a call
/// needs more than any call before it).
#[derive(Default)]
pub struct ScratchBuf {
    lines: Vec<Line>,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

impl ScratchBuf {
    /// At least `bytes` bytes of scratch.
    pub fn get(&mut self, bytes: usize) -> &mut [u8] {
        let n = bytes.div_ceil(64);
        if self.lines.len() < n {
            self.lines.resize(n, Line([0; 64]));
        }
        // SAFETY: `Line` is 64 plain bytes.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.lines.as_mut_ptr() as *mut u8,
                self.lines.len() * 64,
            )
        }
    }
}

/// One conversation with a model: its KV cache, position and scratch.
pub struct Session {
    model: Arc<Model>,
    kv: Vec<f32>,
    layout: KvLayout,
    kv_type: KvType,
    scratch: ScratchBuf,
    logits: Vec<f32>,
    pos: usize,
}

impl Session {
    /// A session with a context of `n_ctx` positions (at most the model's context length; 0 =
    /// the model's) and an F32 KV cache.
    pub fn new(model: Arc<Model>, n_ctx: usize) -> Result<Session> {
        Session::with_kv_type(model, n_ctx, KvType::F32)
    }

    /// [`Session::new`] with a KV cache of element type `kv_type` (an error naming the type when
    /// the model's head dimension does not fit it).
    pub fn with_kv_type(model: Arc<Model>, n_ctx: usize, kv_type: KvType) -> Result<Session> {
        let c = model.config;
        let max_seq = if n_ctx == 0 {
            c.max_seq_len
        } else {
            n_ctx.min(c.max_seq_len)
        };
        let layout = KvLayout {
            n_layers: c.n_layers,
            n_kv_heads: c.n_kv_heads,
            max_seq,
            head_dim: c.head_dim(),
        };
        // The KV cache is sized by the model's context when `n_ctx` is 0: fail, not abort, when
        // that cannot be allocated.
        // Held as f32 words (4-byte alignment for every type).
        let n = layout.bytes(kv_type)?.div_ceil(4);
        let mut kv = Vec::new();
        kv.try_reserve_exact(n).map_err(|_| {
            Error::AllocFailed(format!("{} KV cache of {} bytes", kv_type.name(), 4 * n))
        })?;
        kv.resize(n, 0f32);
        Ok(Session {
            logits: vec![0f32; c.vocab_size],
            model,
            kv,
            layout,
            kv_type,
            scratch: ScratchBuf::default(),
            pos: 0,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Positions filled so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Element type of the KV cache.
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }

    /// Context length of this session.
    pub fn n_ctx(&self) -> usize {
        self.layout.max_seq
    }

    /// Forgets everything (the cache is overwritten as positions are reused).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Rewinds to `pos` positions (keeps the cache before it).
    pub fn truncate(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }

    /// Runs `tokens` at the current position and returns the last token's logits.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<&[f32]> {
        if tokens.is_empty() {
            return Err(Error::InvalidSize("no tokens".into()));
        }
        let pool = pool::acquire();
        let need = scratch_bytes(
            &self.model,
            tokens.len(),
            pool.n_threads(),
            1,
            self.layout.max_seq,
        );
        let kv = self.cache()?;
        let mut seqs = [SeqStep {
            kv,
            tokens,
            pos: self.pos,
            logits: Some(&mut self.logits),
        }];
        forward::forward(&self.model, &mut seqs, self.scratch.get(need), &pool)?;
        self.pos += tokens.len();
        Ok(&self.logits)
    }

    /// The session's cache over its vector (borrowed mutably: nothing else reads it meanwhile).
    fn cache(&mut self) -> Result<KvCache> {
        // SAFETY: the vector holds the layout's bytes for its type, 4-byte aligned.
        unsafe {
            KvCache::from_raw_typed(
                self.kv.as_mut_ptr() as *mut u8,
                4 * self.kv.len(),
                self.layout,
                self.kv_type,
            )
        }
    }

    /// Context shift (issue 15): drops positions `keep .. keep + discard` and moves the rest
    /// down, re-rotating the moved keys; the session continues at `pos - discard`.
    pub fn shift(&mut self, keep: usize, discard: usize, pos: usize) -> Result<()> {
        if keep + discard > pos || pos > self.pos || discard == 0 {
            return Err(Error::InvalidArg(format!(
                "context shift keep {keep} discard {discard} at {pos} (session at {})",
                self.pos
            )));
        }
        let kv = self.cache()?;
        let (model, n_ctx) = (self.model.clone(), self.layout.max_seq);
        // SAFETY: the session owns the cache exclusively.
        unsafe {
            kv.shift(keep, discard, pos, &|layer, k| {
                kv_cache::rerotate_key(&model, layer, n_ctx, k, discard)
            })
        };
        self.pos = pos - discard;
        Ok(())
    }

    /// Saves positions `0..n` (`n <= pos()`) of the cache with `ids` (empty, or the `n` ids
    /// that filled them): see [`crate::generate::state`].
    pub fn save_state(&self, n: usize, ids: &[u32]) -> Result<Vec<u8>> {
        if n > self.pos {
            return Err(Error::InvalidArg(format!(
                "cannot save {n} positions, the session holds {}",
                self.pos
            )));
        }
        // SAFETY: the vector holds the layout's bytes for its type, 4-byte aligned; the cache is
        // only read (save never writes) while `self` is borrowed.
        unsafe {
            let kv = KvCache::from_raw_typed(
                self.kv.as_ptr() as *mut u8,
                4 * self.kv.len(),
                self.layout,
                self.kv_type,
            )?;
            crate::generate::state::save(&self.model, &kv, n, ids)
        }
    }

    /// Restores a state saved from a session of the same model (any context length that holds
    /// its positions); on error nothing changes.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<crate::generate::state::Loaded> {
        let kv = self.cache()?;
        // SAFETY: the session owns the cache exclusively.
        let l = unsafe { crate::generate::state::load(&self.model, &kv, bytes)? };
        self.pos = l.pos;
        Ok(l)
    }

    /// The KV cache floats (layout [`Self::kv_layout`]).
    pub fn kv(&self) -> &[f32] {
        &self.kv
    }

    /// The KV cache layout.
    pub fn kv_layout(&self) -> KvLayout {
        self.layout
    }

    /// The logits of the last token run.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }
}
