//! Spec §3.5: the tokenizer API.
//!
//! `q_tokenizer_load` accepts the spec's tokenizer file (§4.2) or a GGUF model (its
//! `tokenizer.ggml.*` metadata), chosen by magic. `vocab`, its strings and `merges` come from
//! the C allocator (callers may free parts with `free()`); library-private state (the real
//! tokenizer or a merge lookup table) lives behind `merge_hash_table`, registered so that only
//! pointers this library made are ever dereferenced.
//!
//! Callers own the struct and may edit it between calls. Before every use, the private state
//! is checked against the struct's current `vocab`, `vocab_size`, `merges` and `num_merges`;
//! when they differ (or for a hand-built struct with `merge_hash_table == NULL`), encoding uses
//! the spec's byte-level algorithm on the struct's own fields: byte `c` -> id `c` (or
//! `pad_token_id` when `c >= vocab_size`), then the merges in canonical rank order (a deliberate
//! deviation from the original's rule-by-rule passes, see `tokenizer::bytelevel`). BOS/EOS/PAD
//! ids are always read from the struct.
//!
//! Encoding with a GGUF tokenizer runs the model's real BPE (pre-tokenizer included) and
//! recognises special tokens written in the text. Its `vocab` strings are the bytes each token
//! decodes to, so decoding (which follows §3.5.3 for every tokenizer) yields text.
//!
//! Tokenizer files: for the usual layout (ids 0..255 are the single bytes) encoding is exactly
//! the spec's; a file converted from a GGUF vocabulary maps each byte to the token whose entry is
//! that byte instead (no pre-tokenizer: ids may differ from the GGUF model's for text spanning
//! words). Only then, or with merges, is `merge_hash_table` non-NULL.

use std::collections::HashSet;
use std::ffi::{c_char, CStr};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::ffi::boundary::{check_mut, check_path, check_ref, guard, guard_code};
use crate::ffi::types::*;
use crate::format::gguf::{self, Gguf};
use crate::format::tokenizer_file::TokenizerFile;
use crate::tokenizer::bpe::MergeTable;
use crate::tokenizer::{bytelevel, Tokenizer};

/// Longest text `q_tokenizer_encode` accepts (spec §3.5.2 step 2).
const MAX_TEXT: usize = 1_048_576;

/// What the struct looked like when the private state was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    vocab: usize,
    vocab_size: u32,
    merges: usize,
    num_merges: u32,
}

impl Snapshot {
    fn of(t: &q_tokenizer) -> Snapshot {
        Snapshot {
            vocab: t.vocab as usize,
            vocab_size: t.vocab_size,
            merges: t.merges as usize,
            num_merges: t.num_merges,
        }
    }
}

enum Engine {
    /// A GGUF model's tokenizer.
    Gguf(Box<Tokenizer>),
    /// A tokenizer file: byte -> id map and merge table.
    File {
        byte_ids: Box<[u32; 256]>,
        merges: MergeTable,
    },
}

struct Private {
    snap: Snapshot,
    engine: Engine,
}

/// Addresses of live private states (only these are ever dereferenced or freed).
static LIVE: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

fn register(p: *mut Private) {
    let mut g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(HashSet::new).insert(p as usize);
}

fn unregister(p: usize) -> bool {
    let mut g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    g.as_mut().is_some_and(|s| s.remove(&p))
}

fn is_live(p: usize) -> bool {
    let g = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref().is_some_and(|s| s.contains(&p))
}

/// The private state, if it is ours and still describes the struct.
fn private_of(t: &q_tokenizer) -> Option<&Private> {
    let p = t.merge_hash_table as usize;
    if p == 0 || !is_live(p) {
        return None;
    }
    // SAFETY: registered addresses come from Box::into_raw and stay valid until
    // q_tokenizer_free unregisters them.
    let private = unsafe { &*(p as *const Private) };
    (private.snap == Snapshot::of(t)).then_some(private)
}

/// Memory from the C allocator, freed on drop unless released.
struct CBuf<T> {
    ptr: *mut T,
}

impl<T> CBuf<T> {
    fn calloc(n: usize) -> Result<CBuf<T>> {
        if n == 0 {
            return Ok(CBuf {
                ptr: std::ptr::null_mut(),
            });
        }
        // SAFETY: calloc with a non-zero count; checked for NULL.
        let ptr = unsafe { libc::calloc(n, std::mem::size_of::<T>()) } as *mut T;
        if ptr.is_null() {
            return Err(Error::AllocFailed(format!("calloc of {n} elements")));
        }
        Ok(CBuf { ptr })
    }
    fn release(mut self) -> *mut T {
        std::mem::replace(&mut self.ptr, std::ptr::null_mut())
    }
}

impl<T> Drop for CBuf<T> {
    fn drop(&mut self) {
        // SAFETY: ptr is NULL or came from calloc.
        unsafe { libc::free(self.ptr as *mut libc::c_void) }
    }
}

/// The vocabulary as a C array of NUL-terminated strings; frees everything on drop.
struct CVocab {
    arr: CBuf<*mut c_char>,
    n: usize,
}

impl CVocab {
    fn new(entries: impl ExactSizeIterator<Item = impl AsRef<[u8]>>) -> Result<CVocab> {
        let n = entries.len();
        let v = CVocab {
            arr: CBuf::calloc(n.max(1))?,
            n,
        };
        for (i, e) in entries.enumerate() {
            let e = e.as_ref();
            // SAFETY: malloc(len + 1), checked; then len bytes and a NUL written into it.
            unsafe {
                let s = libc::malloc(e.len() + 1) as *mut u8;
                if s.is_null() {
                    return Err(Error::AllocFailed("vocabulary string".into()));
                }
                std::ptr::copy_nonoverlapping(e.as_ptr(), s, e.len());
                *s.add(e.len()) = 0;
                *v.arr.ptr.add(i) = s as *mut c_char;
            }
        }
        Ok(v)
    }
}

impl Drop for CVocab {
    fn drop(&mut self) {
        if self.arr.ptr.is_null() {
            return;
        }
        for i in 0..self.n {
            // SAFETY: entries are NULL or malloc'd strings.
            unsafe { libc::free(*self.arr.ptr.add(i) as *mut libc::c_void) }
        }
    }
}

fn merges_c(list: &[(u32, u32, u32)]) -> Result<CBuf<q_bpe_merge>> {
    let m = CBuf::<q_bpe_merge>::calloc(list.len())?;
    for (i, &(a, b, c)) in list.iter().enumerate() {
        // SAFETY: i < list.len() elements were allocated.
        unsafe {
            *m.ptr.add(i) = q_bpe_merge {
                token_id1: a,
                token_id2: b,
                merged_id: c,
            }
        }
    }
    Ok(m)
}

/// Fills `tok` (already zeroed) from a loaded vocabulary; on error nothing is left allocated.
fn fill(
    tok: &mut q_tokenizer,
    vocab: CVocab,
    merges: CBuf<q_bpe_merge>,
    num_merges: usize,
    ids: (u32, u32, u32),
    engine: Option<Engine>,
) {
    tok.vocab_size = vocab.n as u32;
    tok.num_merges = num_merges as u32;
    tok.bos_token_id = ids.0;
    tok.eos_token_id = ids.1;
    tok.pad_token_id = ids.2;
    tok.merges = merges.release();
    let mut vocab = vocab;
    tok.vocab = std::mem::replace(
        &mut vocab.arr,
        CBuf {
            ptr: std::ptr::null_mut(),
        },
    )
    .release();
    if let Some(engine) = engine {
        let p = Box::into_raw(Box::new(Private {
            snap: Snapshot::of(tok),
            engine,
        }));
        register(p);
        tok.merge_hash_table = p as *mut bpe_hash_table;
    }
    tok.initialized = true;
}

fn load_gguf(tok: &mut q_tokenizer, path: &std::path::Path, shown: &str) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|source| Error::FileOpen {
        path: shown.to_string(),
        source,
    })?;
    // SAFETY: read-only private mapping of a file we opened; dropped before returning.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| Error::MmapFailed(format!("{shown}: {e}")))?;
    let g = Gguf::parse(&map)?;
    let t = Tokenizer::from_gguf(&g)?;
    drop(map);
    let n = t.vocab_size();
    let vocab = CVocab::new((0..n as u32).map(|i| t.token_bytes(i).unwrap_or(&[])))?;
    let merges = merges_c(t.merge_ids())?;
    let eos = t.eos().or(t.bos()).unwrap_or(0);
    let ids = (t.bos().unwrap_or(eos), eos, t.pad().unwrap_or(eos));
    let nm = t.merge_ids().len();
    fill(tok, vocab, merges, nm, ids, Some(Engine::Gguf(Box::new(t))));
    Ok(())
}

fn load_file(tok: &mut q_tokenizer, path: &std::path::Path) -> Result<()> {
    let f = TokenizerFile::read(path)?;
    let n = f.vocab.len();
    // Byte -> id: the spec's identity where entry c is the byte c; else the token whose entry
    // is that single byte; else the spec's rule.
    let mut byte_ids = Box::new([0u32; 256]);
    let mut identity = true;
    for (c, slot) in byte_ids.iter_mut().enumerate() {
        let spec = if c < n { c as u32 } else { f.pad };
        *slot = if c < n && f.vocab[c] == [c as u8] {
            c as u32
        } else {
            f.vocab
                .iter()
                .position(|e| e.as_slice() == [c as u8])
                .map_or(spec, |i| i as u32)
        };
        identity &= *slot == spec;
    }
    let vocab = CVocab::new(f.vocab.iter())?;
    let merges = merges_c(&f.merges)?;
    let engine = (!f.merges.is_empty() || !identity).then(|| Engine::File {
        byte_ids,
        merges: bytelevel::merge_table(f.merges.iter().copied()),
    });
    fill(
        tok,
        vocab,
        merges,
        f.merges.len(),
        (f.bos, f.eos, f.pad),
        engine,
    );
    Ok(())
}

/// Loads a tokenizer file (spec §4.2) or a GGUF model's tokenizer (spec §3.5.1).
///
/// # Safety
/// `tok` must be NULL or writable; `tokenizer_path` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn q_tokenizer_load(
    tok: *mut q_tokenizer,
    tokenizer_path: *const c_char,
) -> q_error_code {
    guard_code("q_tokenizer_load", || {
        if tok.is_null() || tokenizer_path.is_null() {
            return Err(Error::InvalidArg("tokenizer or path is NULL".into()));
        }
        let tok = check_mut(tok, "tok")?;
        let path = check_path(tokenizer_path, "tokenizer_path")?;
        // SAFETY: q_tokenizer is plain data; all-zero is its empty state.
        std::ptr::write(tok, std::mem::zeroed());
        let shown = path.display().to_string();
        let mut head = [0u8; 4];
        let is_gguf = {
            use std::io::Read;
            let mut f = std::fs::File::open(&path).map_err(|source| Error::FileOpen {
                path: shown.clone(),
                source,
            })?;
            f.read_exact(&mut head).is_ok() && u32::from_le_bytes(head) == gguf::MAGIC
        };
        let r = if is_gguf {
            load_gguf(tok, &path, &shown)
        } else {
            load_file(tok, &path)
        };
        if r.is_err() {
            // Nothing was kept on failure (fill runs last); leave the struct all-zero (D4).
            std::ptr::write(tok, std::mem::zeroed());
        }
        r
    })
}

/// The byte-level encoding of the struct's own fields (hand-built or edited tokenizers).
///
/// # Safety
/// `t.merges` must hold `t.num_merges` rules when non-NULL.
unsafe fn encode_struct(t: &q_tokenizer, text: &[u8]) -> Result<Vec<u32>> {
    let table = if t.num_merges == 0 {
        MergeTable::default()
    } else {
        if t.merges.is_null() {
            return Err(Error::InvalidArg(
                "merges is NULL but num_merges > 0".into(),
            ));
        }
        let rules = std::slice::from_raw_parts(t.merges, t.num_merges as usize);
        bytelevel::merge_table(
            rules
                .iter()
                .map(|m| (m.token_id1, m.token_id2, m.merged_id)),
        )
    };
    let (n, pad) = (t.vocab_size, t.pad_token_id);
    Ok(bytelevel::encode(
        text,
        |c| if (c as u32) < n { c as u32 } else { pad },
        &table,
    ))
}

/// Encodes `text` into token ids (spec §3.5.2). `tokens_out` not 4-byte aligned gives
/// `Q_ERR_MISALIGNED`; `num_tokens_out` may have any alignment.
///
/// # Safety
/// Pointers must be NULL or valid; `tokens_out` must hold `max_tokens` ids.
#[no_mangle]
pub unsafe extern "C" fn q_tokenizer_encode(
    tok: *mut q_tokenizer,
    text: *const c_char,
    tokens_out: *mut u32,
    num_tokens_out: *mut u32,
    max_tokens: u32,
    add_bos: bool,
    add_eos: bool,
) -> q_error_code {
    guard_code("q_tokenizer_encode", || {
        if tok.is_null() || text.is_null() || tokens_out.is_null() || num_tokens_out.is_null() {
            return Err(Error::InvalidArg("NULL argument".into()));
        }
        let t = check_ref(tok as *const q_tokenizer, "tok")?;
        if !(tokens_out as usize).is_multiple_of(std::mem::align_of::<u32>()) {
            return Err(Error::Misaligned("tokens_out is not 4-byte aligned".into()));
        }
        if !t.initialized {
            return Err(Error::InvalidArg("tokenizer not initialized".into()));
        }
        if max_tokens == 0 {
            return Err(Error::InvalidSize("max_tokens is 0".into()));
        }
        let bytes = CStr::from_ptr(text).to_bytes();
        let specials = add_bos as usize + add_eos as usize;
        if bytes.is_empty() {
            // The count is written unaligned-safe (like q_sample_token's output).
            num_tokens_out.write_unaligned(0);
            if specials > max_tokens as usize {
                return Err(Error::ArenaOom(format!(
                    "{specials} special tokens do not fit in {max_tokens}"
                )));
            }
            let mut k = 0;
            if add_bos {
                *tokens_out = t.bos_token_id;
                k += 1;
            }
            if add_eos {
                *tokens_out.add(k) = t.eos_token_id;
                k += 1;
            }
            num_tokens_out.write_unaligned(k as u32);
            return Ok(());
        }
        if bytes.len() > MAX_TEXT {
            return Err(Error::ArenaOom(format!(
                "text of {} bytes exceeds {MAX_TEXT}",
                bytes.len()
            )));
        }
        let body = match private_of(t).map(|p| &p.engine) {
            Some(Engine::Gguf(tk)) => tk.encode_with(bytes, false, false, true),
            Some(Engine::File { byte_ids, merges }) => {
                bytelevel::encode(bytes, |c| byte_ids[c as usize], merges)
            }
            None => encode_struct(t, bytes)?,
        };
        let total = body.len() + specials;
        if total > max_tokens as usize {
            return Err(Error::ArenaOom(format!(
                "{total} tokens do not fit in {max_tokens}"
            )));
        }
        let out = std::slice::from_raw_parts_mut(tokens_out, total);
        let mut k = 0;
        if add_bos {
            out[0] = t.bos_token_id;
            k = 1;
        }
        out[k..k + body.len()].copy_from_slice(&body);
        if add_eos {
            out[total - 1] = t.eos_token_id;
        }
        num_tokens_out.write_unaligned(total as u32);
        Ok(())
    })
}

/// Decodes ids into NUL-terminated text (spec §3.5.3). `tokens` not 4-byte aligned gives
/// `Q_ERR_MISALIGNED`.
///
/// # Safety
/// Pointers must be NULL or valid; `text_out` must hold `text_buf_size` bytes; `tokens` must
/// hold `num_tokens` ids.
#[no_mangle]
pub unsafe extern "C" fn q_tokenizer_decode(
    tok: *mut q_tokenizer,
    tokens: *const u32,
    num_tokens: u32,
    text_out: *mut c_char,
    text_buf_size: usize,
) -> q_error_code {
    guard_code("q_tokenizer_decode", || {
        if tok.is_null() || tokens.is_null() || text_out.is_null() {
            return Err(Error::InvalidArg("NULL argument".into()));
        }
        let t = check_ref(tok as *const q_tokenizer, "tok")?;
        if !(tokens as usize).is_multiple_of(std::mem::align_of::<u32>()) {
            return Err(Error::Misaligned("tokens is not 4-byte aligned".into()));
        }
        if !t.initialized {
            return Err(Error::InvalidArg("tokenizer not initialized".into()));
        }
        if text_buf_size == 0 {
            return Err(Error::InvalidSize("text_buf_size is 0".into()));
        }
        if t.vocab.is_null() && t.vocab_size > 0 {
            return Err(Error::InvalidArg("vocab is NULL".into()));
        }
        let ids = std::slice::from_raw_parts(tokens, num_tokens as usize);
        let out = text_out as *mut u8;
        let mut p = 0usize;
        for &id in ids {
            if id == t.bos_token_id
                || id == t.eos_token_id
                || id == t.pad_token_id
                || id >= t.vocab_size
            {
                continue;
            }
            let s = *t.vocab.add(id as usize);
            if s.is_null() {
                continue;
            }
            let bytes = CStr::from_ptr(s).to_bytes();
            if p + bytes.len() >= text_buf_size - 1 {
                *out.add(p) = 0;
                return Err(Error::ArenaOom(format!(
                    "decoded text does not fit in {text_buf_size} bytes"
                )));
            }
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.add(p), bytes.len());
            p += bytes.len();
        }
        *out.add(p) = 0;
        Ok(())
    })
}

/// Frees what `q_tokenizer_load` allocated and zeroes the struct (spec §3.5.4).
///
/// # Safety
/// `tok` must be NULL or a tokenizer whose pointers came from the C allocator (or are NULL).
#[no_mangle]
pub unsafe extern "C" fn q_tokenizer_free(tok: *mut q_tokenizer) {
    guard("q_tokenizer_free", || {
        let Ok(t) = check_mut(tok, "tok") else {
            return;
        };
        if !t.vocab.is_null() {
            for i in 0..t.vocab_size as usize {
                libc::free(*t.vocab.add(i) as *mut libc::c_void);
            }
            libc::free(t.vocab as *mut libc::c_void);
        }
        libc::free(t.merges as *mut libc::c_void);
        let p = t.merge_hash_table as usize;
        // Only state this library made is freed; anything else is left alone.
        if p != 0 && unregister(p) {
            drop(Box::from_raw(p as *mut Private));
        }
        std::ptr::write(t, std::mem::zeroed());
    })
}

/// Appends the text piece of one generated id to a buffer.
pub(crate) type PieceFn<'a> = Box<dyn FnMut(u32, &mut Vec<u8>) + 'a>;

/// A function turning generated ids into text pieces for `q_generate_stream`: whole UTF-8
/// characters only (bytes of an unfinished character wait for the next id). A tokenizer loaded
/// from GGUF decodes with its own streaming decoder; any other (file-loaded, hand-built or edited)
/// uses the struct's vocabulary strings, skipping BOS/EOS/PAD as `q_tokenizer_decode` does.
///
/// # Safety
/// `state` must be NULL or valid, with a tokenizer that stays alive while the function is used.
pub(crate) unsafe fn piece_stream<'a>(
    state: *mut q_generation_state,
) -> crate::Result<PieceFn<'a>> {
    let st = check_ref(state as *const q_generation_state, "state")?;
    let t: &'a q_tokenizer = check_ref(st.tokenizer as *const q_tokenizer, "tokenizer")?;
    if let Some(Private {
        engine: Engine::Gguf(tok),
        ..
    }) = private_of(t)
    {
        let tok: &'a Tokenizer = tok;
        let mut dec = tok.stream_decoder();
        return Ok(Box::new(move |id, out| out.extend(dec.push(id))));
    }
    let mut pending: Vec<u8> = Vec::new();
    Ok(Box::new(move |id, out| {
        let skip = id == t.bos_token_id || id == t.eos_token_id || id == t.pad_token_id;
        if !skip && id < t.vocab_size && !t.vocab.is_null() {
            // SAFETY: the caller's vocab holds vocab_size entries (NULL or NUL-terminated).
            let s = unsafe { *t.vocab.add(id as usize) };
            if !s.is_null() {
                pending.extend_from_slice(unsafe { CStr::from_ptr(s) }.to_bytes());
            }
        }
        let n = crate::tokenizer::stream::complete_prefix(&pending);
        out.extend(pending.drain(..n));
    }))
}

/// qorus addition (issue 15): the vocabulary of `t` prepared for grammar checks. A GGUF
/// tokenizer gives its token bytes and control attributes; any other uses the struct's
/// vocabulary strings, with BOS, EOS and PAD as control tokens.
///
/// # Safety
/// `t`'s vocabulary must be valid (`vocab_size` entries, NULL or NUL-terminated).
pub(crate) unsafe fn vocab_index(t: &q_tokenizer) -> crate::grammar::VocabIndex {
    if let Some(Private {
        engine: Engine::Gguf(tok),
        ..
    }) = private_of(t)
    {
        return crate::grammar::VocabIndex::from_tokenizer(tok);
    }
    let tokens = (0..t.vocab_size)
        .map(|id| {
            let control = id == t.bos_token_id || id == t.eos_token_id || id == t.pad_token_id;
            let mut b = Vec::new();
            if !t.vocab.is_null() {
                let s = *t.vocab.add(id as usize);
                if !s.is_null() {
                    b.extend_from_slice(CStr::from_ptr(s).to_bytes());
                }
            }
            (b, control)
        })
        .collect();
    crate::grammar::VocabIndex::new(tokens, Some(t.eos_token_id))
}
