//! Engine state behind the caller-owned C structs. A model mapping is registered under its base
//! address when `q_init_memory` creates it and dropped by `q_free_memory`; every call that gets a
//! `q_context` looks its mapping up here instead of trusting the pointer.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::ffi::types::q_model_header;
use crate::format::gguf::Gguf;

/// One model file mapped by `q_init_memory`, with what the library derived from it.
pub struct Mapped {
    /// The read-only private mapping of the whole file.
    pub map: Arc<memmap2::Mmap>,
    /// For GGUF files: the `q_model_header` the library filled from the metadata (stable address,
    /// writable by the caller through `ctx->header`). `None` for `.qorus` files, whose header is the
    /// first 64 bytes of the mapping.
    pub header: Option<Box<q_model_header>>,
    /// For GGUF files: the parsed metadata and tensor directory.
    pub gguf: Option<Arc<Gguf>>,
}

impl Mapped {
    /// Base address of the mapping, as stored in `q_context.weights_mmap`.
    pub fn base(&self) -> *mut c_void {
        self.map.as_ptr() as *mut c_void
    }
}

static MAPPINGS: Mutex<BTreeMap<usize, Arc<Mapped>>> = Mutex::new(BTreeMap::new());

fn table() -> MutexGuard<'static, BTreeMap<usize, Arc<Mapped>>> {
    // A panic while holding the lock cannot leave the map half-updated (single insert/remove).
    MAPPINGS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers a mapping and returns it.
pub fn insert(mapped: Mapped) -> Arc<Mapped> {
    let m = Arc::new(mapped);
    table().insert(m.base() as usize, m.clone());
    m
}

/// Removes the mapping registered at `base`; the file is unmapped when the last user drops it.
pub fn remove(base: *mut c_void) -> Option<Arc<Mapped>> {
    table().remove(&(base as usize))
}

/// Finds the mapping a context names: its base must be registered and its size must agree.
pub fn lookup(base: *mut c_void, size: usize) -> Result<Arc<Mapped>> {
    let t = table();
    match t.get(&(base as usize)) {
        Some(m) if m.map.len() == size => Ok(m.clone()),
        Some(_) => Err(Error::InvalidArg(
            "weights_size does not match the mapping".into(),
        )),
        None => Err(Error::InvalidArg(
            "weights_mmap is not a mapping made by q_init_memory (freed or foreign)".into(),
        )),
    }
}
