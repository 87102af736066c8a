//! What each fuzz target does with its input, shared by the cargo-fuzz targets (`fuzz_targets/`)
//! and by the regression test `tests/fuzz_regressions.rs` of the main crate (which includes this
//! file with `#[path]`), so that a committed crasher goes through exactly the code the fuzzer ran.
//!
//! Rules: malformed input must give an error, never a panic, an overflow, an out-of-bounds access
//! or a huge allocation. Nothing here catches panics; the C exports catch them at their boundary
//! and return `Q_ERR_INTERNAL`, so every C error code is checked to be something else (under
//! libFuzzer a panic aborts even inside the boundary, through libfuzzer-sys's panic hook).

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::OnceLock;

use qorus::engine::{Config, Session};
use qorus::ffi::memory::{q_alloc_arena, q_alloc_kv_cache, q_free_memory, q_init_memory};
use qorus::ffi::model::{llama_build_graph, llama_forward, llama_free_graph};
use qorus::ffi::tokenizer::{
    q_tokenizer_decode, q_tokenizer_encode, q_tokenizer_free, q_tokenizer_load,
};
use qorus::ffi::types::*;
use qorus::format::gguf::{Gguf, Value};
use qorus::format::qorus_file::{layout, read_header, ALIGN, HEADER_SIZE};
use qorus::format::tokenizer_file::TokenizerFile;
use qorus::format::{build_model, open_bytes};
use qorus::tokenizer::Tokenizer;
use qorus::Error;

/// Models whose RoPE tables would exceed this many floats are not built here. The library
/// accepts up to `engine::config::MAX_ROPE_FLOATS` (2^27; unit-tested there), but filling such
/// tables takes about a second per input, which slowed the `.qorus` target from ~340 to ~55
/// inputs per second.
const HARNESS_MAX_ROPE: usize = 1 << 22;

fn rope_too_slow(c: &Config) -> bool {
    c.validate().is_ok() && c.max_seq_len.saturating_mul(c.head_dim()) > HARNESS_MAX_ROPE
}

/// Arena handed to `llama_build_graph` / `llama_forward` in the C path.
const ARENA: usize = 8 << 20;
/// Largest KV cache the C path allocates to try a forward call.
const MAX_KV: u64 = 8 << 20;

fn no_internal_err(e: &Error) {
    assert_ne!(e.code(), Q_ERR_INTERNAL, "internal error: {e}");
}

fn no_internal(code: q_error_code, what: &str) {
    assert_ne!(
        code, Q_ERR_INTERNAL,
        "{what} returned Q_ERR_INTERNAL (a caught panic)"
    );
}

/// A file path private to this process and `tag`, rewritten for every input.
fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("qorus-fuzz-{}-{tag}", std::process::id()))
}

fn write_temp(tag: &str, data: &[u8]) -> (PathBuf, CString) {
    let path = temp_path(tag);
    std::fs::write(&path, data).expect("cannot write the fuzz temp file");
    let c = CString::new(path.to_str().expect("temp path is UTF-8")).expect("no NUL in path");
    (path, c)
}

// ---------------------------------------------------------------------------------------------
// Targets

/// `gguf_reader`: bytes -> `Gguf::parse`; when it parses, every metadata value and tensor range
/// is walked, then the config, tokenizer and model are built from it, in Rust and through the C
/// API (`q_init_memory` + `llama_build_graph` + `llama_forward`).
pub fn gguf_reader(data: &[u8]) {
    match Gguf::parse(data) {
        Err(e) => no_internal_err(&e),
        Ok(g) => {
            walk_gguf(&g, data);
            match Config::from_gguf(&g) {
                Ok(c) => c
                    .validate()
                    .expect("Config::from_gguf returned an invalid config"),
                Err(e) => no_internal_err(&e),
            }
            match Tokenizer::from_gguf(&g) {
                Ok(t) => exercise_tokenizer(&t),
                Err(e) => no_internal_err(&e),
            }
        }
    }
    model_rust(data);
    model_c(data, "gguf");
}

/// `qorus_reader`: bytes -> the `.qorus` header and tensor directory, then the model built from
/// them in Rust and through the C API, as `q_init_memory` + `llama_build_graph` do with a file.
pub fn qorus_reader(data: &[u8]) {
    match read_header(data) {
        Err(e) => no_internal_err(&e),
        Ok(h) => match layout(&h, data.len()) {
            Err(e) => no_internal_err(&e),
            Ok(l) => {
                let mut at = HEADER_SIZE;
                for t in &l.tensors {
                    assert_eq!(t.offset, at, "{} not packed", t.name);
                    assert_eq!(t.offset % ALIGN, 0, "{} misaligned", t.name);
                    let r = t.range();
                    assert!(r.end <= data.len(), "{} past the end", t.name);
                    at = t.offset + t.size.div_ceil(ALIGN) * ALIGN;
                }
                assert_eq!(at, l.end);
                assert!(l.end <= data.len());
                let c = Config::from_header(&h);
                if let Err(e) = c.validate() {
                    no_internal_err(&e);
                }
            }
        },
    }
    model_rust(data);
    model_c(data, "qorus");
}

/// `tokenizer_file`: bytes -> what `q_tokenizer_load` reads (a spec tokenizer file, or a GGUF
/// model's tokenizer when the bytes start with the GGUF magic), in Rust and through the C API.
pub fn tokenizer_file(data: &[u8]) {
    if data.len() >= 4 && data[..4] == qorus::format::gguf::MAGIC.to_le_bytes() {
        match Gguf::parse(data) {
            Err(e) => no_internal_err(&e),
            Ok(g) => match Tokenizer::from_gguf(&g) {
                Ok(t) => exercise_tokenizer(&t),
                Err(e) => no_internal_err(&e),
            },
        }
    } else {
        match TokenizerFile::parse(data, "fuzz") {
            Err(e) => no_internal_err(&e),
            Ok(f) => {
                let b = f.to_bytes().expect("a parsed tokenizer file re-encodes");
                let back = TokenizerFile::parse(&b, "re-encoded").expect("re-encoded file parses");
                assert_eq!(back, f, "tokenizer file round trip");
            }
        }
    }
    tokenizer_c(data);
}

/// `tokenize`: bytes as text -> the SmolLM2 tokenizer. Every id is in the vocabulary; the
/// streaming decoder agrees with `decode`; valid UTF-8 text decodes back to itself, less the
/// bytes the vocabulary has no token for (SmolLM2 lacks the byte tokens of 0x04, 0x06, 0x13,
/// 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2 and 0xF5-0xFF; like llama.cpp, encoding drops them).
pub fn tokenize(data: &[u8]) {
    let t = smollm2();
    let n = t.vocab_size();
    let utf8 = std::str::from_utf8(data).is_ok();
    let kept: Vec<u8> = {
        let table = qorus::tokenizer::unicode::byte_to_char_table();
        let has = |b: u8| {
            let mut s = Vec::new();
            qorus::tokenizer::unicode::push_utf8(&mut s, table[b as usize]);
            t.token_id(&s).is_some()
        };
        data.iter().copied().filter(|&b| has(b)).collect()
    };
    for (add_bos, add_eos, special) in [
        (false, false, false),
        (false, false, true),
        (true, true, false),
    ] {
        let ids = t.encode_with(data, add_bos, add_eos, special);
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= n) {
            panic!("encode produced id {bad} >= vocabulary {n}");
        }
        if add_bos {
            assert_eq!(ids.first().copied(), t.bos());
        }
        if add_eos {
            assert_eq!(ids.last().copied(), t.eos());
        }
        let dec = check_stream(t, &ids);
        if utf8 && !add_bos && !add_eos {
            assert!(
                dec == kept,
                "decode(encode(s)) != s (parse_special {special}): {:?} -> {ids:?} -> {:?}",
                String::from_utf8_lossy(data),
                String::from_utf8_lossy(&dec)
            );
        }
    }
}

/// `detokenize`: bytes as little-endian u32 ids (any value) -> `decode`, the streaming decoder
/// and `q_tokenizer_decode` with several buffer sizes. Ids outside the vocabulary are skipped
/// (spec §3.5.3), never an error or a panic.
pub fn detokenize(data: &[u8]) {
    let t = smollm2();
    let n = t.vocab_size() as u32;
    let raw: Vec<u32> = data
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    // Most raw values are >= n: also fold those without the top bit into the vocabulary (+ a few
    // ids past its end), so that valid ids are common too.
    let folded: Vec<u32> = raw
        .iter()
        .map(|&x| if x >> 31 == 1 { x } else { x % (n + 8) })
        .collect();
    for ids in [&raw, &folded] {
        let dec = check_stream(t, ids);
        let valid: Vec<u32> = ids.iter().copied().filter(|&i| i < n).collect();
        // (SmolLM2 has no space prefix, so a skipped first id changes nothing.)
        assert_eq!(
            t.decode(&valid),
            dec,
            "ids outside the vocabulary changed decode"
        );
        decode_c(t, ids);
    }
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

/// Walks everything a parsed GGUF exposes.
fn walk_gguf(g: &Gguf, data: &[u8]) {
    fn walk(v: &Value, depth: u32) {
        let _ = (v.type_id(), v.as_u64(), v.as_f64(), v.as_str(), v.as_bool());
        if let Some(b) = v.as_bytes() {
            assert!(v.as_str().is_none() || std::str::from_utf8(b).is_ok());
        }
        if let Some(a) = v.as_array() {
            assert!(depth < 8);
            for x in a {
                walk(x, depth + 1);
            }
        }
    }
    assert!(g.version == 2 || g.version == 3);
    assert!(g.alignment.is_power_of_two());
    for (k, v) in &g.metadata {
        assert!(g.get(k).is_some(), "metadata {k} not indexed");
        walk(v, 0);
    }
    let _ = (g.architecture(), g.get_str("general.name"), g.get_u64("x"));
    let mut row = Vec::new();
    for t in &g.tensors {
        let found = g.tensor(&t.name).expect("tensor not indexed");
        assert_eq!(found, t);
        assert!(!t.dims.is_empty() && t.dims.len() <= qorus::format::gguf::MAX_DIMS);
        let (rows, cols) = t.rows_cols();
        assert_eq!(rows.checked_mul(cols), Some(t.n_elements()));
        let Some(ty) = t.ty else { continue };
        let bytes = g
            .tensor_bytes(data, t)
            .expect("a supported tensor lies inside the file");
        assert_eq!(bytes.len(), t.size);
        assert!(t.file_offset >= g.data_offset);
        assert_eq!((t.file_offset - g.data_offset) % g.alignment, 0);
        // The first row, dequantized (values may be anything, NaN included).
        let cols = cols as usize;
        if let Some(rb) = ty.row_bytes(cols) {
            if rb <= bytes.len() && cols <= 1 << 16 {
                row.resize(cols, 0f32);
                qorus::quant::dequantize_row(ty, &bytes[..rb], &mut row)
                    .expect("dequantizing a whole row");
            }
        }
    }
}

/// Encodes a few texts with every flag combination and decodes ids in and out of range.
fn exercise_tokenizer(t: &Tokenizer) {
    let n = t.vocab_size();
    assert!(n > 0);
    for &id in [0, 1, n as u32 - 1, n as u32, n as u32 + 1, u32::MAX].iter() {
        let _ = (t.token_text(id), t.token_bytes(id), t.token_attr(id));
        assert_eq!(t.token_text(id).is_some(), (id as usize) < n);
    }
    let texts: [&[u8]; 7] = [
        b"",
        b"Hello, world! 123 4567",
        "  h\u{e9}llo\n\n\tw\u{f6}rld's  don't \u{4e16}\u{754c} \u{1F600}\u{301}".as_bytes(),
        b"<|im_start|>user\nhi<|im_end|></s><s><unk>",
        b"\xff\xfe a \xc3 \xe2\x82 \xf0\x9f\x98",
        b"\0\x01\x7f ab ab ab ab",
        b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];
    for text in texts {
        for (bos, eos, special) in [(false, false, false), (true, true, true)] {
            let ids = t.encode_with(text, bos, eos, special);
            if let Some(&bad) = ids.iter().find(|&&i| i as usize >= n) {
                panic!("encode produced id {bad} >= vocabulary {n}");
            }
            check_stream(t, &ids);
        }
    }
    let ids: Vec<u32> = (0..(n as u32).min(600))
        .chain([n as u32, u32::MAX])
        .collect();
    check_stream(t, &ids);
    let _ = (t.bos(), t.eos(), t.unk(), t.pad(), t.chat_template());
    if let Ok(f) = TokenizerFile::from_tokenizer(t) {
        match f.to_bytes() {
            Ok(b) => {
                let back = TokenizerFile::parse(&b, "converted").expect("converted file parses");
                assert_eq!(back, f);
            }
            Err(e) => no_internal_err(&e),
        }
    }
}

/// Decodes `ids` at once and through the streaming decoder: the pieces concatenate to the same
/// bytes, and when the whole text is valid UTF-8 so is every piece (no piece ends inside a
/// character; bytes that can never complete one are not held back). Returns the decoded bytes.
fn check_stream(t: &Tokenizer, ids: &[u32]) -> Vec<u8> {
    let whole = t.decode(ids);
    let mut d = t.stream_decoder();
    let mut pieces = Vec::with_capacity(ids.len() + 1);
    for &i in ids {
        pieces.push(d.push(i));
    }
    pieces.push(d.finish());
    assert_eq!(pieces.concat(), whole, "streamed pieces differ from decode");
    if std::str::from_utf8(&whole).is_ok() {
        for p in &pieces {
            assert!(std::str::from_utf8(p).is_ok(), "piece is not UTF-8: {p:?}");
        }
    }
    whole
}

/// The Rust API: the bytes as a model file (GGUF or `.qorus`), the engine model, one forward step.
fn model_rust(data: &[u8]) {
    let file = match open_bytes(data, "fuzz") {
        Ok(f) => f,
        Err(e) => return no_internal_err(&e),
    };
    let config = match &file.gguf {
        Some(g) => Config::from_gguf(g),
        None => Ok(Config::from_header(&file.file_header())),
    };
    if config.is_ok_and(|c| rope_too_slow(&c)) {
        return;
    }
    let model = match build_model(&file, None) {
        Ok(m) => m,
        Err(e) => return no_internal_err(&e),
    };
    let v = model.config.vocab_size as u32;
    let mut s = Session::new(model, 4).expect("a session over a built model");
    match s.forward(&[0, v - 1]) {
        Ok(l) => assert_eq!(l.len(), v as usize),
        Err(e) => no_internal_err(&e),
    }
    match s.forward(&[v]) {
        Ok(_) => panic!("forward accepted token id {v} >= vocabulary"),
        Err(e) => no_internal_err(&e),
    }
}

/// The C API: `q_init_memory` on the bytes as a file, `llama_build_graph`, `llama_forward`.
fn model_c(data: &[u8], tag: &str) {
    let (_path, cpath) = write_temp(tag, data);
    // SAFETY: zeroed C structs are their empty state; every pointer passed is valid.
    unsafe {
        let mut ctx: q_context = std::mem::zeroed();
        let code = q_init_memory(&mut ctx, cpath.as_ptr());
        no_internal(code, "q_init_memory");
        if code != Q_OK {
            assert!(ctx.weights_mmap.is_null());
            return;
        }
        if rope_too_slow(&Config::from_header(&std::ptr::read_unaligned(ctx.header))) {
            q_free_memory(&mut ctx);
            return;
        }
        assert_eq!(q_alloc_arena(&mut ctx, ARENA), Q_OK);
        let mut model: q_llama_model = std::mem::zeroed();
        let code = llama_build_graph(&mut ctx, &mut model);
        no_internal(code, "llama_build_graph");
        if code == Q_OK {
            let c = model.config;
            let hd = (c.dim / c.n_heads) as u64;
            let kv = c.n_layers as u64 * c.n_kv_heads as u64 * c.max_seq_len as u64 * hd * 8;
            if kv <= MAX_KV && q_alloc_kv_cache(&mut ctx, kv as usize) == Q_OK {
                let mut logits = vec![0f32; c.vocab_size as usize];
                let toks = [0u32, c.vocab_size - 1, c.vocab_size];
                let code = llama_forward(
                    &mut model,
                    &mut ctx,
                    toks.as_ptr(),
                    2.min(c.max_seq_len),
                    0,
                    logits.as_mut_ptr(),
                );
                no_internal(code, "llama_forward");
                let code = llama_forward(
                    &mut model,
                    &mut ctx,
                    toks[2..].as_ptr(),
                    1,
                    0,
                    logits.as_mut_ptr(),
                );
                assert_ne!(code, Q_OK, "llama_forward accepted an id >= vocabulary");
                no_internal(code, "llama_forward");
            }
            llama_free_graph(&mut model);
        }
        q_free_memory(&mut ctx);
        q_free_memory(&mut ctx);
    }
}

/// The C API: `q_tokenizer_load` on the bytes as a file, then encode and decode.
fn tokenizer_c(data: &[u8]) {
    let (_path, cpath) = write_temp("tok", data);
    // SAFETY: as in `model_c`; output buffers are as large as the sizes passed.
    unsafe {
        let mut tok: q_tokenizer = std::mem::zeroed();
        let code = q_tokenizer_load(&mut tok, cpath.as_ptr());
        no_internal(code, "q_tokenizer_load");
        if code != Q_OK {
            assert!(!tok.initialized && tok.vocab.is_null() && tok.merges.is_null());
            return;
        }
        assert!(tok.initialized);
        let mut out = vec![0u32; 4096];
        let mut n_out = 0u32;
        for text in [
            &b"Hello, world! ab ab abc"[..],
            "\u{e9}\u{4e16} \u{1F600}".as_bytes(),
            &(1u8..=255).collect::<Vec<u8>>(),
        ] {
            let text = CString::new(text).expect("no NUL");
            for (max, bos, eos) in [(4096u32, true, true), (1, false, false), (2, true, false)] {
                let code = q_tokenizer_encode(
                    &mut tok,
                    text.as_ptr(),
                    out.as_mut_ptr(),
                    &mut n_out,
                    max,
                    bos,
                    eos,
                );
                no_internal(code, "q_tokenizer_encode");
                if code == Q_OK {
                    assert!(n_out <= max);
                }
            }
        }
        let n = tok.vocab_size;
        let ids: Vec<u32> = (0..n.min(1024)).chain([n, n + 1, u32::MAX]).collect();
        let mut text = vec![0u8; 1 << 16];
        for size in [1usize, 3, 64, text.len()] {
            let code = q_tokenizer_decode(
                &mut tok,
                ids.as_ptr(),
                ids.len() as u32,
                text.as_mut_ptr() as *mut std::ffi::c_char,
                size,
            );
            no_internal(code, "q_tokenizer_decode");
            assert!(
                text[..size].contains(&0),
                "decode output not NUL-terminated"
            );
        }
        q_tokenizer_free(&mut tok);
        q_tokenizer_free(&mut tok);
        assert!(!tok.initialized && tok.vocab.is_null());
    }
}

/// The spec's decoding (§3.5.3) of `ids` by the C tokenizer loaded from the model, checked
/// against `q_tokenizer_decode` for several buffer sizes.
fn decode_c(t: &Tokenizer, ids: &[u32]) {
    let tok = c_smollm2();
    let mut want = Vec::new();
    for &i in ids {
        if i == tok.0.bos_token_id
            || i == tok.0.eos_token_id
            || i == tok.0.pad_token_id
            || i >= tok.0.vocab_size
        {
            continue;
        }
        let b = t.token_bytes(i).unwrap_or(&[]);
        want.extend_from_slice(&b[..b.iter().position(|&x| x == 0).unwrap_or(b.len())]);
    }
    let mut out = vec![0xAAu8; want.len() + 8];
    for size in [1usize, 2, 7, want.len() + 1, want.len() + 2] {
        out.fill(0xAA);
        // SAFETY: `out` holds at least `size` bytes; the tokenizer is only read.
        let code = unsafe {
            q_tokenizer_decode(
                &tok.0 as *const q_tokenizer as *mut q_tokenizer,
                ids.as_ptr(),
                ids.len() as u32,
                out.as_mut_ptr() as *mut std::ffi::c_char,
                size,
            )
        };
        let end = out[..size]
            .iter()
            .position(|&b| b == 0)
            .expect("decode output not NUL-terminated within the buffer");
        match code {
            Q_OK => assert_eq!(&out[..end], &want[..], "q_tokenizer_decode text"),
            Q_ERR_ARENA_OOM => assert!(want.starts_with(&out[..end]), "partial text"),
            other => panic!("q_tokenizer_decode returned {other}"),
        }
    }
}

/// The model file the tokenizer targets use: `$QORUS_FUZZ_MODEL`, else the SmolLM2 Q4_1 GGUF
/// in the model cache (`$QORUS_MODEL_DIR` or `~/.cache/qorus/models`, where
/// `scripts/fetch_models.py` puts it).
pub fn smollm2_path() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(p) = env("QORUS_FUZZ_MODEL") {
        return PathBuf::from(p);
    }
    let dir = env("QORUS_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env("HOME").expect("HOME is not set")).join(".cache/qorus/models")
        });
    dir.join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// The real SmolLM2 tokenizer, loaded once.
pub fn smollm2() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let path = smollm2_path();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "the tokenize/detokenize targets need {} ({e}): run `python3 \
                 scripts/fetch_models.py` or set QORUS_FUZZ_MODEL",
                path.display()
            )
        });
        let g = Gguf::parse(&bytes).expect("model GGUF parses");
        Tokenizer::from_gguf(&g).expect("model tokenizer loads")
    })
}

struct CTok(q_tokenizer);
// SAFETY: the struct is loaded once and then only read (q_tokenizer_decode is thread-safe).
unsafe impl Send for CTok {}
unsafe impl Sync for CTok {}

/// The same model's tokenizer loaded through `q_tokenizer_load`, once (never freed).
fn c_smollm2() -> &'static CTok {
    static T: OnceLock<CTok> = OnceLock::new();
    T.get_or_init(|| {
        let path = smollm2_path();
        let c = CString::new(path.to_str().expect("UTF-8 path")).expect("no NUL");
        // SAFETY: a zeroed struct and a valid path.
        unsafe {
            let mut tok: q_tokenizer = std::mem::zeroed();
            assert_eq!(q_tokenizer_load(&mut tok, c.as_ptr()), Q_OK);
            CTok(tok)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Generation API (issue 15): grammar parser, JSON-schema converter, state loader.

/// A toy vocabulary for grammar masks: ASCII pieces, multi-character pieces, partial UTF-8 and a
/// control token (id 0 is EOS).
fn toy_vocab() -> std::sync::Arc<qorus::grammar::VocabIndex> {
    static V: OnceLock<std::sync::Arc<qorus::grammar::VocabIndex>> = OnceLock::new();
    V.get_or_init(|| {
        let mut toks: Vec<(Vec<u8>, bool)> = vec![(b"</s>".to_vec(), true)];
        for b in 0x20u8..0x7f {
            toks.push((vec![b], false));
        }
        for s in [
            "ab", "abc", "\"a", "{\"", "\":", "12", "true", "null", " {", "\n", "é", "é\"",
        ] {
            toks.push((s.as_bytes().to_vec(), false));
        }
        toks.push((vec![0xC3], false));
        toks.push((vec![0xA9], false));
        toks.push((vec![0xF0, 0x9F], false));
        toks.push((vec![0x98, 0x80], false));
        std::sync::Arc::new(qorus::grammar::VocabIndex::new(toks, Some(0)))
    })
    .clone()
}

/// Runs a parsed grammar: its start, code points from `walk`, the full mask against single-id
/// checks for a few steps of a toy vocabulary.
fn exercise_grammar(g: &std::sync::Arc<qorus::grammar::Grammar>, walk: &str) {
    use qorus::generate::Constraint;
    let Ok(mut st) = g.initial() else { return };
    for c in walk.chars().take(64) {
        match g.accept(&st, c as u32) {
            Ok(next) if !next.is_empty() => st = next,
            Ok(_) => break,
            Err(e) => {
                no_internal_err(&e);
                break;
            }
        }
    }
    let _ = g.matches_text(&walk.chars().take(64).collect::<String>());
    let Ok(mut k) = qorus::grammar::GrammarConstraint::new(g.clone(), toy_vocab()) else {
        return;
    };
    for step in 0..4 {
        let allowed = k.allowed();
        let mut first = None;
        for (t, &a) in allowed.iter().enumerate() {
            // The mask and the single-id check agree (the mask's trie walk and the direct
            // check are separate code).
            if step < 2 {
                assert_eq!(a, k.allows(t as u32), "mask and check disagree on id {t}");
            }
            if a && first.is_none() && t != 0 {
                first = Some(t as u32);
            }
        }
        let Some(t) = first else { break };
        assert!(k.allows(t));
        k.accept(t).expect("an allowed id is accepted");
    }
}

/// `grammar_parser`: bytes as GBNF text -> the parser; errors name a line and column (or a
/// limit); a grammar that parses is run (start, code points, masks over a toy vocabulary); the
/// same text through `q_grammar_new`.
pub fn grammar_parser(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match qorus::grammar::Grammar::from_gbnf(&text) {
        Ok(g) => exercise_grammar(&g, &text),
        Err(e) => {
            no_internal_err(&e);
            let m = e.to_string();
            assert!(
                m.contains("line ") && m.contains("column ")
                    || m.contains("left-recursive")
                    || m.contains("deeper")
                    || m.contains("ambiguous")
                    || m.contains("nests"),
                "grammar error without a place: {m}"
            );
        }
    }
    if let Ok(c) = CString::new(text.as_bytes()) {
        let mut g: *mut qorus::ffi::gen_types::q_grammar = std::ptr::null_mut();
        // SAFETY: valid C string and out pointer.
        let rc = unsafe { qorus::ffi::grammar::q_grammar_new(c.as_ptr(), &mut g) };
        no_internal(rc, "q_grammar_new");
        assert_eq!(rc == Q_OK, !g.is_null());
        // SAFETY: NULL or from q_grammar_new.
        unsafe { qorus::ffi::grammar::q_grammar_free(g) };
    }
}

/// `json_schema`: bytes as a JSON schema -> the converter. Whatever it produces must parse as a
/// grammar (the converter never emits bad GBNF), and is run like `grammar_parser`'s; errors are
/// never internal. The same through `q_grammar_from_json_schema`.
pub fn json_schema(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match qorus::grammar::json_schema::schema_to_gbnf(&text) {
        Ok(gbnf) => {
            let g = qorus::grammar::Grammar::from_gbnf(&gbnf)
                .unwrap_or_else(|e| panic!("the converter produced bad GBNF ({e}):\n{gbnf}"));
            exercise_grammar(&g, "{\"a\": [1, \"x\", true, null], \"b\": {}}");
        }
        Err(e) => no_internal_err(&e),
    }
    if let Ok(c) = CString::new(text.as_bytes()) {
        let mut g: *mut qorus::ffi::gen_types::q_grammar = std::ptr::null_mut();
        // SAFETY: valid C string and out pointer.
        let rc = unsafe { qorus::ffi::grammar::q_grammar_from_json_schema(c.as_ptr(), &mut g) };
        no_internal(rc, "q_grammar_from_json_schema");
        // SAFETY: NULL or from q_grammar_from_json_schema.
        unsafe { qorus::ffi::grammar::q_grammar_free(g) };
    }
}

/// The SmolLM2 model, loaded once (for the state loader).
pub fn smollm2_model() -> &'static std::sync::Arc<qorus::engine::Model> {
    static M: OnceLock<std::sync::Arc<qorus::engine::Model>> = OnceLock::new();
    M.get_or_init(|| qorus::engine::Model::open(&smollm2_path()).expect("SmolLM2 model opens"))
}

/// Positions of the state loader's sessions.
pub const STATE_CTX: usize = 4;

/// `data` with its last 8 bytes replaced by the state format's checksum of the rest, so that
/// mutated states get past the checksum to the field checks.
pub fn with_state_checksum(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    if v.len() >= 8 {
        let n = v.len() - 8;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in &v[..n] {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01B3);
        }
        v[n..].copy_from_slice(&h.to_le_bytes());
    }
    v
}

/// A valid 1-position state (with its id) of the 4-position session, made once.
fn baseline_state() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| {
        let mut s = Session::new(smollm2_model().clone(), STATE_CTX).expect("session");
        s.forward(&[1]).expect("forward");
        s.save_state(1, &[1]).expect("save")
    })
}

/// `state_loader`: bytes as a saved state, as given and with the checksum fixed up -> loaded
/// into a 4-position SmolLM2 session holding a valid 1-position state. A refused state leaves the
/// session unchanged; an accepted one restores a position within the context and ids within the
/// vocabulary, and saving it again gives back exactly the bytes loaded.
pub fn state_loader(data: &[u8]) {
    let model = smollm2_model();
    let base = baseline_state();
    for bytes in [data.to_vec(), with_state_checksum(data)] {
        let mut s = Session::new(model.clone(), STATE_CTX).expect("session");
        s.load_state(base).expect("the baseline state loads");
        match s.load_state(&bytes) {
            Ok(l) => {
                assert!(l.pos <= STATE_CTX && (l.ids.is_empty() || l.ids.len() == l.pos));
                assert!(l
                    .ids
                    .iter()
                    .all(|&t| (t as usize) < model.config.vocab_size));
                assert_eq!(s.pos(), l.pos);
                assert_eq!(
                    s.save_state(l.pos, &l.ids).expect("save"),
                    bytes,
                    "an accepted state does not save back to itself"
                );
            }
            Err(e) => {
                no_internal_err(&e);
                assert_eq!(s.pos(), 1, "a refused state moved the session");
                assert_eq!(
                    s.save_state(1, &[1]).expect("save"),
                    base,
                    "a refused state changed the cache"
                );
            }
        }
    }
}
