//! Library-owned buffers behind `q_context` (KV cache, arena) and arena bump allocation.
//!
//! Two kinds of 64-byte aligned buffer, both recorded here with their length and kind:
//! * the KV cache: an anonymous mapping (zero pages that cost no memory until touched, so a KV
//!   cache sized for a long context costs only what is used), released by `munmap`;
//! * the arena: C heap memory from `aligned_alloc` (not zeroed), as the original allocates it,
//!   so a caller that releases `scratch_buffer` with `free()` works as it does there.
//!
//! A pointer that this table does not know is never freed, so a caller's stale or foreign
//! pointer cannot cause a bad free.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::ffi::types::q_context;

/// Transparent huge page size.
const HUGE: usize = 2 << 20;

/// `x` rounded up to a multiple of 64 (caller guarantees no overflow).
pub const fn align64(x: usize) -> usize {
    (x + 63) & !63
}

/// How a buffer was allocated, hence how it is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `mmap` (anonymous): released with `munmap`.
    Mapped,
    /// `aligned_alloc`: released with `free`.
    Heap,
}

static BUFFERS: Mutex<Option<HashMap<usize, (usize, Kind)>>> = Mutex::new(None);

fn with_buffers<R>(f: impl FnOnce(&mut HashMap<usize, (usize, Kind)>) -> R) -> R {
    let mut g = BUFFERS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// A 64-byte aligned buffer owned by the library until `into_raw`.
pub struct AlignedBuf {
    ptr: *mut c_void,
    len: usize,
    kind: Kind,
}

impl AlignedBuf {
    /// A zero-filled anonymous mapping of `len` bytes (pages are materialised on first touch).
    pub fn zeroed(len: usize) -> Result<Self> {
        if len == 0 {
            return Err(Error::Overflow("zero-size buffer".into()));
        }
        // Buffers of 2 MiB or more start on a 2 MiB boundary and ask for transparent huge
        // pages: a decode step at depth streams the whole cache, and with 4 KiB pages the
        // hardware prefetchers stop at every page boundary.
        let huge = len >= HUGE;
        let map_len = if huge { len.saturating_add(HUGE) } else { len };
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::AllocFailed(format!("{len} bytes")));
        }
        let mut p = base;
        if huge {
            let (b, start) = (base as usize, (base as usize).div_ceil(HUGE) * HUGE);
            let end = b + map_len;
            // SAFETY: sysconf has no preconditions.
            let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
                .unwrap_or(4096)
                .clamp(4096, HUGE);
            let keep_end = (start + len).div_ceil(page) * page;
            // SAFETY: the head [b, start) and the tail [keep_end, end) lie inside the mapping
            // just made and are page aligned; [start, start + len) stays mapped. MADV_HUGEPAGE
            // only changes how its pages are backed.
            unsafe {
                if start > b {
                    libc::munmap(base, start - b);
                }
                if end > keep_end {
                    libc::munmap(keep_end as *mut c_void, end - keep_end);
                }
                libc::madvise(start as *mut c_void, len, libc::MADV_HUGEPAGE);
            }
            p = start as *mut c_void;
        }
        Ok(Self {
            ptr: p,
            len,
            kind: Kind::Mapped,
        })
    }

    pub fn c_heap(len: usize) -> Result<Self> {
        if len == 0 || !len.is_multiple_of(64) {
            return Err(Error::Overflow(format!("heap buffer of {len} bytes")));
        }
        // SAFETY: alignment 64 is a power of two and `len` a multiple of it (C11 7.22.3.1).
        let p = unsafe { libc::aligned_alloc(64, len) };
        if p.is_null() {
            return Err(Error::AllocFailed(format!("{len} bytes")));
        }
        Ok(Self {
            ptr: p,
            len,
            kind: Kind::Heap,
        })
    }

    /// Hands the buffer to C; it stays registered so that `free_raw` can release it.
    pub fn into_raw(self) -> *mut c_void {
        let (p, len, kind) = (self.ptr, self.len, self.kind);
        std::mem::forget(self);
        with_buffers(|b| b.insert(p as usize, (len, kind)));
        p
    }

    /// Releases a buffer made by `into_raw`. Unknown pointers are ignored (never freed twice).
    ///
    /// # Safety
    /// No reference into the buffer may be used afterwards.
    pub unsafe fn free_raw(p: *mut c_void) {
        if let Some((len, kind)) = with_buffers(|b| b.remove(&(p as usize))) {
            // SAFETY: `p`/`len` describe a buffer we allocated this way and have not released.
            unsafe { release(p, len, kind) };
        }
    }

    /// Whether `p .. p+len` lies inside a buffer made by this module.
    pub fn is_library_buffer(p: *const c_void, len: usize) -> bool {
        Self::live_len(p).is_some_and(|l| len <= l)
    }

    /// The length of the live buffer starting at `p`, or `None` when `p` is not one (never
    /// allocated here, or already freed: a stale copy of a context).
    pub fn live_len(p: *const c_void) -> Option<usize> {
        with_buffers(|b| b.get(&(p as usize)).map(|&(len, _)| len))
    }
}

/// # Safety
/// `p`/`len` must describe a live buffer allocated as `kind` says.
unsafe fn release(p: *mut c_void, len: usize, kind: Kind) {
    match kind {
        Kind::Mapped => {
            libc::munmap(p, len);
        }
        Kind::Heap => libc::free(p),
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: we own the buffer.
        unsafe { release(self.ptr, self.len, self.kind) };
    }
}

/// `q_arena_alloc`'s rule: `A64(size)` bytes at `scratch_head`, 64-aligned, or `None`. `None`
/// too when `scratch_buffer` is not a live library buffer of at least `scratch_size` bytes (a
/// freed arena seen through a stale copy of the context, or a size field the caller enlarged).
pub fn arena_alloc(ctx: &mut q_context, size: usize) -> Option<*mut c_void> {
    if ctx.scratch_buffer.is_null() || size == 0 || size > usize::MAX - 63 {
        return None;
    }
    if !AlignedBuf::is_library_buffer(ctx.scratch_buffer, ctx.scratch_size) {
        return None;
    }
    if !ctx.scratch_head.is_multiple_of(64) || !(ctx.scratch_buffer as usize).is_multiple_of(64) {
        return None;
    }
    let need = align64(size);
    let end = ctx.scratch_head.checked_add(need)?;
    if end > ctx.scratch_size {
        return None;
    }
    // SAFETY: head + need <= scratch_size, within the arena the caller registered.
    let p = unsafe { (ctx.scratch_buffer as *mut u8).add(ctx.scratch_head) };
    ctx.scratch_head = end;
    Some(p as *mut c_void)
}

/// Typed arena allocation for the engine: `n` elements of `T`, or `Q_ERR_ARENA_OOM`.
///
/// # Safety
/// The context's arena fields must describe a live buffer of `scratch_size` bytes. The returned
/// slice is uninitialised memory reinterpreted as `T`; `T` must be a plain number type.
pub unsafe fn arena_slice<'a, T: Copy>(
    ctx: &mut q_context,
    n: usize,
    what: &str,
) -> Result<&'a mut [T]> {
    let bytes = n
        .checked_mul(std::mem::size_of::<T>())
        .ok_or_else(|| Error::Overflow(format!("{what}: {n} elements")))?;
    let p = arena_alloc(ctx, bytes.max(1))
        .ok_or_else(|| Error::ArenaOom(format!("{what}: {bytes} bytes")))?;
    Ok(std::slice::from_raw_parts_mut(p as *mut T, n))
}

/// Whether every page of `p .. p+len` is mapped in this process (Linux `mincore`), so that
/// reading it cannot fault on a missing mapping. `false` on address overflow. This is how a
/// caller's buffer is told apart from one the library has unmapped (a stale copy of a freed
/// context) before anything reads it. It does not see page protections: a mapped `PROT_NONE`
/// page counts as mapped.
pub fn is_mapped(p: *const c_void, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    };
    let start = (p as usize) / page * page;
    let Some(end) = (p as usize).checked_add(len) else {
        return false;
    };
    // One mincore call per chunk of at most 4096 pages, into a fixed vector.
    let mut vec = [0u8; 4096];
    let mut at = start;
    while at < end {
        let n = (end - at).div_ceil(page).min(vec.len());
        // SAFETY: `at` is page-aligned and `vec` has room for `n` entries; mincore only reports
        // (ENOMEM for an unmapped page in the range) and never touches the pages.
        let r = unsafe { libc::mincore(at as *mut c_void, n * page, vec.as_mut_ptr() as *mut _) };
        if r != 0 {
            return false;
        }
        at += n * page;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_mapped_tells_live_from_released_memory() {
        let v = vec![0u8; 3 * 4096];
        assert!(is_mapped(v.as_ptr() as *const c_void, v.len()));
        assert!(is_mapped(std::ptr::null(), 0));
        assert!(
            !is_mapped(usize::MAX as *const c_void, 2),
            "address overflow"
        );
        let buf = AlignedBuf::zeroed(8 * 4096).unwrap();
        let p = buf.ptr as *const c_void;
        assert!(is_mapped(p, 8 * 4096));
        drop(buf); // munmap
        assert!(!is_mapped(p, 8 * 4096));
        assert!(!is_mapped(p, 1));
    }

    #[test]
    fn heap_buffers_are_aligned_tracked_and_freed() {
        let b = AlignedBuf::c_heap(64 * 3).unwrap();
        let p = b.into_raw();
        assert_eq!(p as usize % 64, 0);
        assert_eq!(AlignedBuf::live_len(p), Some(192));
        // SAFETY: nothing uses the buffer afterwards.
        unsafe { AlignedBuf::free_raw(p) };
        assert_eq!(AlignedBuf::live_len(p), None);
        assert!(AlignedBuf::c_heap(100).is_err(), "not a multiple of 64");
    }
}
