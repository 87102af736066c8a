//! Saved state (issue 15): a KV cache's first `pos` positions, the position and the ids that
//! filled them, in a byte format that is refused unless it comes from the same model and the same
//! qorus version. Loading checks everything before writing anything, so a refused state leaves
//! the cache as it was.
//!
//! Layout (little-endian): magic `QKVSTATE`, format version (u32), qorus version (u32 length +
//! UTF-8), model fingerprint (u64), layers, kv heads, head dim, pos, number of ids (u32 each), the
//! ids (u32 each), then for every (layer, kv head) the bytes of positions `0..pos` (K then V per
//! position, as the cache holds them: `2 * head_dim` floats for an F32 cache, binary16 values
//! for F16, Q8_0 blocks for Q8_0), then an FNV-1a 64 checksum of everything before it. The word
//! after the number of ids is the cache type (0 F32, 1 F16, 2 Q8_0): a state loads only into a
//! cache of the type it was saved from.

use crate::engine::kv_cache::{KvCache, KvType};
use crate::engine::Model;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"QKVSTATE";
const FORMAT: u32 = 1;
/// The qorus version a state is tied to.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h ^= b as u64;
        *h = h.wrapping_mul(0x100_0000_01B3);
    }
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Identifies a model's weights: its configuration, the storage type and 16 rows of its token
/// embedding spread over the vocabulary, and its final norm. Two files of the same network in
/// different quantizations, or two fine-tunes of one architecture, differ.
pub fn fingerprint(model: &Model) -> u64 {
    let mut h = FNV_START;
    let c = &model.config;
    for v in [
        c.vocab_size,
        c.dim,
        c.hidden_dim,
        c.n_layers,
        c.n_heads,
        c.n_kv_heads,
    ] {
        fnv(&mut h, &(v as u64).to_le_bytes());
    }
    fnv(&mut h, &c.rope_base.to_le_bytes());
    fnv(&mut h, &c.rms_eps.to_le_bytes());
    let e = &model.tok_embd;
    fnv(&mut h, format!("{:?}", e.ty).as_bytes());
    let rb = e.row_bytes();
    for k in 0..16 {
        let r = k * e.rows.saturating_sub(1) / 15;
        if r < e.rows {
            // SAFETY: row r of the embedding lies inside its data (rows * row_bytes bytes).
            let row = unsafe { std::slice::from_raw_parts(e.data_ptr().add(r * rb), rb) };
            fnv(&mut h, row);
        }
    }
    for x in &model.output_norm {
        fnv(&mut h, &x.to_le_bytes());
    }
    h
}

fn type_code(ty: KvType) -> u32 {
    match ty {
        KvType::F32 => 0,
        KvType::F16 => 1,
        KvType::Q8_0 => 2,
    }
}

/// Bytes a state of `pos` positions and `n_ids` ids of the cache `kv` takes.
pub fn state_size(kv: &KvCache, pos: usize, n_ids: usize) -> usize {
    let layout = &kv.layout;
    8 + 4
        + 4
        + VERSION.len()
        + 8
        + 6 * 4
        + 4 * n_ids
        + layout.n_layers * layout.n_kv_heads * pos * 2 * kv.vec_bytes()
        + 8
}

/// Serialises positions `0..pos` of `kv` with `ids` (empty, or the `pos` ids that filled them).
///
/// # Safety
/// No thread may be writing `kv` meanwhile.
pub unsafe fn save(model: &Model, kv: &KvCache, pos: usize, ids: &[u32]) -> Result<Vec<u8>> {
    let layout = &kv.layout;
    if pos > layout.max_seq {
        return Err(Error::InvalidArg(format!(
            "position {pos} beyond the cache of {} positions",
            layout.max_seq
        )));
    }
    if !ids.is_empty() && ids.len() != pos {
        return Err(Error::InvalidSize(format!(
            "{} ids for {pos} positions (give all or none)",
            ids.len()
        )));
    }
    let mut out = Vec::new();
    out.try_reserve_exact(state_size(kv, pos, ids.len()))
        .map_err(|_| Error::AllocFailed("state buffer".into()))?;
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(VERSION.len() as u32).to_le_bytes());
    out.extend_from_slice(VERSION.as_bytes());
    out.extend_from_slice(&fingerprint(model).to_le_bytes());
    for v in [
        layout.n_layers,
        layout.n_kv_heads,
        layout.head_dim,
        pos,
        ids.len(),
    ] {
        out.extend_from_slice(&(v as u32).to_le_bytes());
    }
    out.extend_from_slice(&type_code(kv.ty).to_le_bytes());
    for &id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    for l in 0..layout.n_layers {
        for g in 0..layout.n_kv_heads {
            // The cache's bytes are little-endian f32 / f16 / Q8_0 blocks on every target qorus
            // builds for (x86_64, aarch64).
            out.extend_from_slice(kv.run_bytes(l, g, pos));
        }
    }
    let mut h = FNV_START;
    fnv(&mut h, &out);
    out.extend_from_slice(&h.to_le_bytes());
    Ok(out)
}

/// What a loaded state held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Positions restored.
    pub pos: usize,
    /// The ids of those positions (empty if the state was saved without them).
    pub ids: Vec<u32>,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                Error::InvalidSize(format!(
                    "state truncated: needs {} more bytes at offset {}",
                    n, self.at
                ))
            })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or([0; 8]),
        ))
    }
}

/// Checks a state against `model` and the cache `kv` and returns where its data is, without
/// touching any cache.
fn check<'a>(model: &Model, kv: &KvCache, bytes: &'a [u8]) -> Result<(Loaded, &'a [u8])> {
    let layout = &kv.layout;
    let bad = |m: String| Error::InvalidArg(format!("state refused: {m}"));
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(bad("not a qorus state (bad magic)".into()));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    let mut h = FNV_START;
    fnv(&mut h, body);
    if h.to_le_bytes() != sum {
        return Err(bad("checksum mismatch (truncated or damaged)".into()));
    }
    let mut r = Reader { b: body, at: 8 };
    let format = r.u32()?;
    if format != FORMAT {
        return Err(bad(format!("format {format}, this qorus reads {FORMAT}")));
    }
    let vlen = r.u32()? as usize;
    if vlen > 64 {
        return Err(bad("version string too long".into()));
    }
    let version = String::from_utf8_lossy(r.take(vlen)?).into_owned();
    if version != VERSION {
        return Err(bad(format!(
            "saved by qorus {version}, this is qorus {VERSION}"
        )));
    }
    if r.u64()? != fingerprint(model) {
        return Err(bad(
            "saved with another model (weights fingerprint differs)".into(),
        ));
    }
    let (nl, ng, hd) = (r.u32()? as usize, r.u32()? as usize, r.u32()? as usize);
    if (nl, ng, hd) != (layout.n_layers, layout.n_kv_heads, layout.head_dim) {
        return Err(bad(format!(
            "cache shape {nl}x{ng}x{hd}, this context has {}x{}x{}",
            layout.n_layers, layout.n_kv_heads, layout.head_dim
        )));
    }
    let pos = r.u32()? as usize;
    let n_ids = r.u32()? as usize;
    let code = r.u32()?;
    match KvType::ALL.into_iter().find(|&t| type_code(t) == code) {
        Some(t) if t == kv.ty => {}
        Some(t) => {
            return Err(bad(format!(
                "saved from a {} KV cache, this context's is {}",
                t.name(),
                kv.ty.name()
            )))
        }
        None => return Err(bad(format!("unknown KV cache type code {code}"))),
    }
    if pos > layout.max_seq {
        return Err(bad(format!(
            "{pos} positions, the context holds {}",
            layout.max_seq
        )));
    }
    if n_ids != 0 && n_ids != pos {
        return Err(bad(format!("{n_ids} ids for {pos} positions")));
    }
    let ids_bytes = r.take(n_ids * 4)?;
    let ids: Vec<u32> = ids_bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(&t) = ids.iter().find(|&&t| t as usize >= model.config.vocab_size) {
        return Err(bad(format!("id {t} beyond the vocabulary")));
    }
    let data = r.take(nl * ng * pos * 2 * kv.vec_bytes())?;
    if r.at != body.len() {
        return Err(bad(format!(
            "{} unexpected bytes at the end",
            body.len() - r.at
        )));
    }
    Ok((Loaded { pos, ids }, data))
}

/// Restores a state into `kv` after checking all of it: magic, checksum, format, qorus version,
/// model fingerprint, cache shape and type, position. On error `kv` is unchanged.
///
/// # Safety
/// No other thread may access `kv` meanwhile.
pub unsafe fn load(model: &Model, kv: &KvCache, bytes: &[u8]) -> Result<Loaded> {
    let (loaded, data) = check(model, kv, bytes)?;
    let layout = &kv.layout;
    let run = loaded.pos * 2 * kv.vec_bytes();
    let mut chunks = data.chunks_exact(run.max(1));
    for l in 0..layout.n_layers {
        for g in 0..layout.n_kv_heads {
            if let Some(c) = chunks.next() {
                kv.run_bytes_mut(l, g, loaded.pos).copy_from_slice(c);
            }
        }
    }
    Ok(loaded)
}

/// Checks a state against the cache `kv` without loading it (see [`load`]).
pub fn verify(model: &Model, kv: &KvCache, bytes: &[u8]) -> Result<Loaded> {
    check(model, kv, bytes).map(|(l, _)| l)
}
