//! qorus addition (issue 15): grammars through the C API (`q_grammar_*`).

use std::ffi::{c_char, CStr};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ffi::boundary::{check_ref, guard, guard_code};
use crate::ffi::gen_types::q_grammar;
use crate::ffi::types::*;
use crate::grammar::json_schema::schema_to_gbnf;
use crate::grammar::{Grammar, GrammarConstraint};

const GRAMMAR_MAGIC: u64 = 0x5147_5241_4D4D_4152;

struct GrammarBox {
    magic: u64,
    grammar: Arc<Grammar>,
}

unsafe fn grammar_ref<'a>(p: *const q_grammar) -> Result<&'a Arc<Grammar>> {
    let b = p as *const GrammarBox;
    if b.is_null() {
        return Err(Error::InvalidArg("grammar is NULL".into()));
    }
    if !(b as usize).is_multiple_of(std::mem::align_of::<GrammarBox>())
        || (*b).magic != GRAMMAR_MAGIC
    {
        return Err(Error::InvalidArg("not a q_grammar (freed?)".into()));
    }
    Ok(&(*b).grammar)
}

unsafe fn text_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::InvalidArg(format!("{what} is NULL")));
    }
    CStr::from_ptr(p)
        .to_str()
        .map_err(|e| Error::InvalidArg(format!("{what} is not UTF-8: {e}")))
}

unsafe fn publish(g: Arc<Grammar>, out: *mut *mut q_grammar) {
    let b = Box::new(GrammarBox {
        magic: GRAMMAR_MAGIC,
        grammar: g,
    });
    out.write_unaligned(Box::into_raw(b) as *mut q_grammar);
}

/// The constraint a `q_grammar` gives for `state`'s tokenizer.
///
/// # Safety
/// `g` NULL or from `q_grammar_new`; `state` valid with a valid tokenizer.
pub(crate) unsafe fn constraint_for(
    g: *const q_grammar,
    state: *mut q_generation_state,
) -> Result<GrammarConstraint> {
    let g = grammar_ref(g)?.clone();
    let st = check_ref(state as *const q_generation_state, "state")?;
    let t = check_ref(st.tokenizer as *const q_tokenizer, "tokenizer")?;
    let v = crate::ffi::tokenizer::vocab_index(t);
    GrammarConstraint::new(g, Arc::new(v))
}

/// qorus addition: compiles a GBNF grammar (llama.cpp's format; the start rule is `root`). A
/// grammar that does not parse gives `Q_ERR_INVALID_ARG` and `q_last_error()` names the line and
/// column ("grammar: line 3, column 12: undefined rule value"). Left-recursive rules are refused.
/// `*out` is set only on success; release it with `q_grammar_free`. A grammar may be used by
/// several generations at once (each keeps its own parse state).
///
/// # Safety
/// `gbnf` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn q_grammar_new(
    gbnf: *const c_char,
    out: *mut *mut q_grammar,
) -> q_error_code {
    guard_code("q_grammar_new", || {
        let text = text_arg(gbnf, "gbnf")?;
        if out.is_null() {
            return Err(Error::InvalidArg("out is NULL".into()));
        }
        publish(Grammar::from_gbnf(text)?, out);
        Ok(())
    })
}

/// qorus addition: compiles the grammar of a JSON schema (the subset of
/// `grammar::json_schema`: object with properties and required, array with items and bounds,
/// string with length bounds, number, integer, boolean, null, enum, const, anyOf/oneOf).
/// Unsupported keywords (`$ref`, `pattern`, `minimum`, ...) and malformed JSON give
/// `Q_ERR_INVALID_ARG` naming the keyword and its location, or the line and column.
///
/// # Safety
/// `schema` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn q_grammar_from_json_schema(
    schema: *const c_char,
    out: *mut *mut q_grammar,
) -> q_error_code {
    guard_code("q_grammar_from_json_schema", || {
        let text = text_arg(schema, "schema")?;
        if out.is_null() {
            return Err(Error::InvalidArg("out is NULL".into()));
        }
        let gbnf = schema_to_gbnf(text)?;
        publish(Grammar::from_gbnf(&gbnf)?, out);
        Ok(())
    })
}

/// qorus addition: writes the GBNF text a JSON schema converts to into `buf` (NUL-terminated).
/// `*len_out` receives its length without the NUL; a `buf_size` too small gives
/// `Q_ERR_ARENA_OOM` with `*len_out` set (call again with `*len_out + 1` bytes).
///
/// # Safety
/// `schema` NULL or NUL-terminated; `buf` NULL (with `buf_size` 0) or `buf_size` writable bytes;
/// `len_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn q_json_schema_to_gbnf(
    schema: *const c_char,
    buf: *mut c_char,
    buf_size: usize,
    len_out: *mut usize,
) -> q_error_code {
    guard_code("q_json_schema_to_gbnf", || {
        let text = text_arg(schema, "schema")?;
        if len_out.is_null() {
            return Err(Error::InvalidArg("len_out is NULL".into()));
        }
        let g = schema_to_gbnf(text)?;
        len_out.write_unaligned(g.len());
        if buf.is_null() || buf_size < g.len() + 1 {
            return Err(Error::ArenaOom(format!(
                "the grammar needs {} bytes, the buffer has {buf_size}",
                g.len() + 1
            )));
        }
        std::ptr::copy_nonoverlapping(g.as_ptr(), buf as *mut u8, g.len());
        *buf.add(g.len()) = 0;
        Ok(())
    })
}

/// qorus addition: whether `text` (UTF-8) is a complete sentence of the grammar (`*matches_out`).
///
/// # Safety
/// `grammar` NULL or from `q_grammar_new`; `text` NULL or NUL-terminated; `matches_out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn q_grammar_matches(
    grammar: *const q_grammar,
    text: *const c_char,
    matches_out: *mut bool,
) -> q_error_code {
    guard_code("q_grammar_matches", || {
        let g = grammar_ref(grammar)?;
        let t = text_arg(text, "text")?;
        if matches_out.is_null() {
            return Err(Error::InvalidArg("matches_out is NULL".into()));
        }
        matches_out.write_unaligned(g.matches_text(t)?);
        Ok(())
    })
}

/// qorus addition: releases a grammar (NULL is ignored).
///
/// # Safety
/// `grammar` NULL or from `q_grammar_new`, not used afterwards (generations using it must have
/// returned).
#[no_mangle]
pub unsafe extern "C" fn q_grammar_free(grammar: *mut q_grammar) {
    guard("q_grammar_free", || {
        if grammar_ref(grammar).is_ok() {
            let mut b = Box::from_raw(grammar as *mut GrammarBox);
            b.magic = 0;
            drop(b);
        }
    })
}
