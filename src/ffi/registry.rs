//! Engine state behind the caller-owned C structs.
//!
//! * Mappings: a model file mapping is registered under its base address when `q_init_memory`
//!   creates it and dropped by `q_free_memory`; every call that gets a `q_context` looks its
//!   mapping up here instead of trusting the pointer.
//! * Released mappings: the bases of the last [`RELEASED_KEPT`] mappings `q_free_memory`
//!   released, so that a stale copy of a freed context is recognised (and refused) without
//!   reading the memory it names, even where the address has been mapped again by others.
//! * Caller buffers: `llama_build_graph` over a buffer the caller provides (a hand-built
//!   context holding a `.qorus` image) registers the engine model it built under the buffer's
//!   base address, so that `llama_forward` finds it; the next build over the same buffer
//!   replaces it, and `q_free_memory` on a context naming the buffer forgets it (the buffer
//!   itself is the caller's and is never freed here).

use std::collections::{BTreeMap, VecDeque};
use std::ffi::c_void;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::engine::{Config, Model};
use crate::format::MappedFile;

static MAPPINGS: Mutex<BTreeMap<usize, Arc<MappedFile>>> = Mutex::new(BTreeMap::new());

/// Per caller buffer (by base): its size at the last build, and the models built over it, one
/// per configuration.
type CallerModels = BTreeMap<usize, (usize, Vec<Arc<Model>>)>;
static CALLER: Mutex<CallerModels> = Mutex::new(BTreeMap::new());

/// How many released mapping bases are remembered.
const RELEASED_KEPT: usize = 256;
static RELEASED: Mutex<VecDeque<usize>> = Mutex::new(VecDeque::new());

fn released() -> MutexGuard<'static, VecDeque<usize>> {
    RELEASED.lock().unwrap_or_else(|p| p.into_inner())
}

fn table() -> MutexGuard<'static, BTreeMap<usize, Arc<MappedFile>>> {
    // A panic while holding the lock cannot leave the map half-updated (single insert/remove).
    MAPPINGS.lock().unwrap_or_else(|p| p.into_inner())
}

fn caller() -> MutexGuard<'static, CallerModels> {
    CALLER.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers a mapping and returns it.
pub fn insert(mapped: MappedFile) -> Arc<MappedFile> {
    let m = Arc::new(mapped);
    let base = m.base() as usize;
    table().insert(base, m.clone());
    // A caller buffer or a released mapping that was at this address is gone.
    caller().remove(&base);
    released().retain(|&b| b != base);
    m
}

/// Removes the mapping registered at `base`; the file is unmapped when the last user drops it.
/// Also forgets the models built over a caller buffer at `base`.
pub fn remove(base: *mut c_void) -> Option<Arc<MappedFile>> {
    caller().remove(&(base as usize));
    let m = table().remove(&(base as usize));
    if m.is_some() {
        let mut r = released();
        r.retain(|&b| b != base as usize);
        if r.len() == RELEASED_KEPT {
            r.pop_front();
        }
        r.push_back(base as usize);
    }
    m
}

/// Whether `base` is where a mapping was that `q_free_memory` has released (one of the last
/// [`RELEASED_KEPT`]), and the library has not mapped anything there since.
pub fn was_released(base: *const c_void) -> bool {
    released().contains(&(base as usize))
}

/// The live mapping whose base is `base`, if the library made one there.
pub fn mapping(base: *const c_void) -> Option<Arc<MappedFile>> {
    table().get(&(base as usize)).cloned()
}

/// Records `model`, just built over the caller's buffer of `size` bytes at `base`: it replaces
/// a model of the same configuration; a different size forgets every earlier model.
pub fn set_caller_model(base: *const c_void, size: usize, model: Arc<Model>) {
    let mut t = caller();
    let entry = t.entry(base as usize).or_insert_with(|| (size, Vec::new()));
    if entry.0 != size {
        *entry = (size, Vec::new());
    }
    entry.1.retain(|m| m.config != model.config);
    entry.1.push(model);
}

/// The model last built over the caller's buffer `base` of `size` bytes with `config`.
pub fn caller_model(base: *const c_void, size: usize, config: &Config) -> Option<Arc<Model>> {
    let t = caller();
    let (s, models) = t.get(&(base as usize))?;
    if *s != size {
        return None;
    }
    models.iter().find(|m| m.config == *config).cloned()
}
