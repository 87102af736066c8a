//! The one door every export goes through: panics are caught and turned into an error code (or a
//! NULL / no-op result), errors are recorded for `q_last_error()`, and pointers are checked before
//! they are turned into references. Modelled on rustls-ffi's `ffi_panic_boundary!`.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{Error, Result};
use crate::ffi::types::*;

/// What an export returns when its body panicked.
pub trait PanicDefault {
    /// The value handed to C after a caught panic.
    fn on_panic() -> Self;
}

impl PanicDefault for q_error_code {
    fn on_panic() -> Self {
        Q_ERR_INTERNAL
    }
}
impl PanicDefault for () {
    fn on_panic() -> Self {}
}
impl PanicDefault for bool {
    fn on_panic() -> Self {
        false
    }
}
impl PanicDefault for u32 {
    fn on_panic() -> Self {
        0
    }
}
impl<T> PanicDefault for *mut T {
    fn on_panic() -> Self {
        std::ptr::null_mut()
    }
}
impl<T> PanicDefault for *const T {
    fn on_panic() -> Self {
        std::ptr::null()
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records the message `q_last_error()` returns on this thread.
pub fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Pointer to this thread's last error message (valid until the next failing call on the thread).
pub fn last_error_ptr() -> *const std::ffi::c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs `f`, turning a panic into `R::on_panic()`. For exports without an error code.
pub fn guard<R: PanicDefault>(name: &'static str, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            set_last_error(&format!(
                "{name}: internal error: {}",
                panic_message(&*payload)
            ));
            R::on_panic()
        }
    }
}

/// Runs `f` and maps its result onto a `q_error_code`; a panic becomes `Q_ERR_INTERNAL`.
pub fn guard_code(name: &'static str, f: impl FnOnce() -> Result<()>) -> q_error_code {
    guard(name, || match f() {
        Ok(()) => Q_OK,
        Err(e) => {
            set_last_error(&format!("{name}: {e}"));
            e.code()
        }
    })
}

/// Checks that `p` is non-NULL and aligned for `T`, and borrows it.
///
/// # Safety
/// A non-NULL `p` must point to a valid, initialised `T` that outlives `'a` and is not mutated
/// elsewhere while borrowed.
pub unsafe fn check_ref<'a, T>(p: *const T, what: &'static str) -> Result<&'a T> {
    if p.is_null() {
        return Err(Error::InvalidArg(format!("{what} is NULL")));
    }
    if !(p as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Error::Misaligned(format!(
            "{what} is not aligned for its type"
        )));
    }
    Ok(&*p)
}

/// Checks that `p` is non-NULL and aligned for `T`, and borrows it mutably.
///
/// # Safety
/// A non-NULL `p` must point to a valid, initialised `T` that outlives `'a` and is not accessed
/// elsewhere while borrowed.
pub unsafe fn check_mut<'a, T>(p: *mut T, what: &'static str) -> Result<&'a mut T> {
    if p.is_null() {
        return Err(Error::InvalidArg(format!("{what} is NULL")));
    }
    if !(p as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Error::Misaligned(format!(
            "{what} is not aligned for its type"
        )));
    }
    Ok(&mut *p)
}

/// Reads a NUL-terminated path argument.
///
/// # Safety
/// A non-NULL `p` must point to a NUL-terminated string.
pub unsafe fn check_path(
    p: *const std::ffi::c_char,
    what: &'static str,
) -> Result<std::path::PathBuf> {
    if p.is_null() {
        return Err(Error::InvalidArg(format!("{what} is NULL")));
    }
    use std::os::unix::ffi::OsStrExt;
    let bytes = CStr::from_ptr(p).to_bytes();
    Ok(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}
