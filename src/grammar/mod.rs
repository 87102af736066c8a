//! Constrained generation (issue 15): GBNF grammars. (Work in progress.)

use crate::error::{Error, Result};
use crate::generate::Constraint;

/// A grammar bound to a vocabulary, as a generation constraint.
pub struct GrammarConstraint {
    _private: (),
}

impl Constraint for GrammarConstraint {
    fn allows(&mut self, _id: u32) -> bool {
        false
    }
    fn mask(&mut self, _logits: &mut [f32]) {}
    fn accept(&mut self, _id: u32) -> Result<()> {
        Err(Error::InvalidArg("grammars are not implemented yet".into()))
    }
}
