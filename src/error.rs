//! One error type for the whole library, and its mapping onto the C API's `q_error_code`.

use crate::ffi::types::*;

/// Every way a qorus operation can fail. Each variant maps onto one `q_error_code`; the message
/// says what went wrong for Rust callers, the CLI and `q_last_error()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required pointer was NULL (the code the original uses in `llama_build_graph`).
    #[error("null pointer: {0}")]
    NullPtr(&'static str),
    /// A file could not be opened or read.
    #[error("cannot open or read {path}: {source}")]
    FileOpen {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `fstat` failed.
    #[error("cannot stat {0}")]
    FileStat(String),
    /// The file is smaller than a header.
    #[error("file too small: {0}")]
    FileTooSmall(String),
    /// Mapping the file failed.
    #[error("mmap failed: {0}")]
    MmapFailed(String),
    /// Bad magic number.
    #[error("invalid magic: {0}")]
    InvalidMagic(String),
    /// Heap allocation failed.
    #[error("allocation failed: {0}")]
    AllocFailed(String),
    /// The arena (or an output buffer) is too small.
    #[error("arena out of memory: {0}")]
    ArenaOom(String),
    /// Invalid model configuration or malformed model file.
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// Invalid argument.
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    /// Input and output alias.
    #[error("input/output aliasing: {0}")]
    Aliasing(String),
    /// Size arithmetic overflow.
    #[error("integer overflow: {0}")]
    Overflow(String),
    /// Misaligned pointer.
    #[error("misaligned pointer: {0}")]
    Misaligned(String),
    /// Wrong element type.
    #[error("invalid data type: {0}")]
    InvalidDtype(String),
    /// Invalid size or shape.
    #[error("invalid size: {0}")]
    InvalidSize(String),
    /// Internal failure (a caught panic).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The C error code of this error.
    pub fn code(&self) -> q_error_code {
        match self {
            Error::NullPtr(_) => Q_ERR_NULL_PTR,
            Error::FileOpen { .. } => Q_ERR_FILE_OPEN,
            Error::FileStat(_) => Q_ERR_FILE_STAT,
            Error::FileTooSmall(_) => Q_ERR_FILE_TOO_SMALL,
            Error::MmapFailed(_) => Q_ERR_MMAP_FAILED,
            Error::InvalidMagic(_) => Q_ERR_INVALID_MAGIC,
            Error::AllocFailed(_) => Q_ERR_ALLOC_FAILED,
            Error::ArenaOom(_) => Q_ERR_ARENA_OOM,
            Error::InvalidConfig(_) => Q_ERR_INVALID_CONFIG,
            Error::InvalidArg(_) => Q_ERR_INVALID_ARG,
            Error::Aliasing(_) => Q_ERR_ALIASING,
            Error::Overflow(_) => Q_ERR_OVERFLOW,
            Error::Misaligned(_) => Q_ERR_MISALIGNED,
            Error::InvalidDtype(_) => Q_ERR_INVALID_DTYPE,
            Error::InvalidSize(_) => Q_ERR_INVALID_SIZE,
            Error::Internal(_) => Q_ERR_INTERNAL,
        }
    }
}

/// Builds an `Error` variant from a format string: `err!(InvalidArg, "bad token {}", t)`.
#[macro_export]
macro_rules! err {
    ($variant:ident, $($arg:tt)*) => {
        $crate::error::Error::$variant(format!($($arg)*))
    };
}

/// Returns early with an `Error` variant unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $variant:ident, $($arg:tt)*) => {
        if !($cond) {
            return Err($crate::err!($variant, $($arg)*));
        }
    };
}

/// The static text `q_strerror` returns for a code (spec §2.1, verbatim as the original).
pub fn strerror(code: q_error_code) -> &'static std::ffi::CStr {
    match code {
        Q_OK => c"Success",
        Q_ERR_NULL_PTR => c"Null pointer argument",
        Q_ERR_FILE_OPEN => c"Failed to open file",
        Q_ERR_FILE_STAT => c"Failed to stat file",
        Q_ERR_FILE_TOO_SMALL => c"File too small (corrupt header?)",
        Q_ERR_MMAP_FAILED => c"mmap() failed",
        Q_ERR_INVALID_MAGIC => c"Invalid file magic (not a Qorus file)",
        Q_ERR_ALLOC_FAILED => c"Memory allocation failed",
        Q_ERR_ARENA_OOM => c"Arena Out of Memory",
        Q_ERR_INVALID_CONFIG => c"Invalid model configuration",
        Q_ERR_INVALID_ARG => c"Invalid argument",
        Q_ERR_ALIASING => c"Input/output aliasing detected",
        Q_ERR_OVERFLOW => c"Integer overflow detected",
        Q_ERR_MISALIGNED => c"Pointer not properly aligned",
        Q_ERR_INVALID_DTYPE => c"Invalid data type",
        Q_ERR_INVALID_SIZE => c"Invalid size",
        Q_ERR_INTERNAL => c"Internal error (please report)",
        _ => c"Unknown error",
    }
}
