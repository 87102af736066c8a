//! Engine state behind the caller-owned C structs. A model mapping is registered under its base
//! address when `q_init_memory` creates it and dropped by `q_free_memory`; every call that gets a
//! `q_context` looks its mapping up here instead of trusting the pointer.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::format::MappedFile;

static MAPPINGS: Mutex<BTreeMap<usize, Arc<MappedFile>>> = Mutex::new(BTreeMap::new());

fn table() -> MutexGuard<'static, BTreeMap<usize, Arc<MappedFile>>> {
    // A panic while holding the lock cannot leave the map half-updated (single insert/remove).
    MAPPINGS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers a mapping and returns it.
pub fn insert(mapped: MappedFile) -> Arc<MappedFile> {
    let m = Arc::new(mapped);
    table().insert(m.base() as usize, m.clone());
    m
}

/// Removes the mapping registered at `base`; the file is unmapped when the last user drops it.
pub fn remove(base: *mut c_void) -> Option<Arc<MappedFile>> {
    table().remove(&(base as usize))
}

/// Finds the mapping a context names: its base must be registered and its size must agree.
pub fn lookup(base: *mut c_void, size: usize) -> Result<Arc<MappedFile>> {
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
