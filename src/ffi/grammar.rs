//! qorus addition (issue 15): grammars through the C API. (Work in progress.)

use crate::error::{Error, Result};
use crate::ffi::gen_types::q_grammar;
use crate::ffi::types::q_generation_state;
use crate::grammar::GrammarConstraint;

/// The constraint a `q_grammar` gives for `state`'s tokenizer.
///
/// # Safety
/// `g` from `q_grammar_new`; `state` valid.
pub(crate) unsafe fn constraint_for(
    g: *const q_grammar,
    state: *mut q_generation_state,
) -> Result<GrammarConstraint> {
    let _ = (g, state);
    Err(Error::InvalidArg("grammars are not implemented yet".into()))
}
