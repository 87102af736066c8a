//! Model and tokenizer files: GGUF, the original's `.qorus` model file and tokenizer file.

pub mod fileio;
pub mod gguf;
pub mod gguf_write;
pub mod qorus_file;
pub mod quant_mix;
pub mod requantize;
pub mod tokenizer_file;

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::engine::{Config, Model};
use crate::error::{Error, Result};
use crate::ffi::types::{q_model_header, Q_HEADER_SIZE, Q_MAGIC};

/// A model file mapped read-only, with what the library derived from it. The C API registers one
/// per `q_init_memory`; the Rust API holds one per opened model.
pub struct MappedFile {
    /// The read-only private mapping of the whole file.
    pub map: Arc<memmap2::Mmap>,
    /// For GGUF files: the `q_model_header` filled from the metadata (stable address, writable by
    /// the caller through `ctx->header`). `None` for `.qorus` files, whose header is the first 64
    /// bytes of the mapping.
    pub header: Option<Box<q_model_header>>,
    /// For GGUF files: the parsed metadata and tensor directory.
    pub gguf: Option<Arc<gguf::Gguf>>,
    /// Engine models built from this file, one per distinct configuration.
    pub models: Mutex<Vec<Arc<Model>>>,
}

impl MappedFile {
    /// Base address of the mapping.
    pub fn base(&self) -> *mut std::ffi::c_void {
        self.map.as_ptr() as *mut std::ffi::c_void
    }

    /// The header as the file (or, for GGUF, the metadata) gives it.
    pub fn file_header(&self) -> q_model_header {
        match &self.header {
            Some(h) => **h,
            // SAFETY: the mapping is at least 64 bytes (checked when mapped) and page-aligned.
            None => unsafe { std::ptr::read(self.map.as_ptr() as *const q_model_header) },
        }
    }
}

/// Maps a model file read-only (private), pre-faulting it when `eager`, and recognises it.
pub fn map_file(path: &Path, eager: bool) -> Result<MappedFile> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|source| Error::FileOpen {
        path: shown.clone(),
        source,
    })?;
    map_opened(file, shown, eager)
}

/// Recognises a model file image held in memory through the same private read-only mapping and
/// checks as [`map_file`]: the bytes are copied into an anonymous in-memory file first. For
/// tests and fuzzing (`fuzz/`).
pub fn open_bytes(bytes: &[u8], shown: &str) -> Result<MappedFile> {
    map_opened(anon_file(bytes, shown)?, shown.to_string(), false)
}

/// An unnamed file holding `bytes` (Linux: `memfd_create`; elsewhere an unlinked temporary file).
fn anon_file(bytes: &[u8], shown: &str) -> Result<File> {
    use std::io::Write;
    let io_err = |source| Error::FileOpen {
        path: shown.to_string(),
        source,
    };
    #[cfg(target_os = "linux")]
    let mut file = {
        use std::os::fd::FromRawFd;
        // SAFETY: a NUL-terminated name; the returned descriptor is checked and then owned.
        let fd = unsafe { libc::memfd_create(c"qorus-bytes".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io_err(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        unsafe { File::from_raw_fd(fd) }
    };
    #[cfg(not(target_os = "linux"))]
    let mut file = {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "qorus-bytes-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
            .map_err(io_err)?;
        let _ = std::fs::remove_file(&p);
        f
    };
    file.write_all(bytes).map_err(io_err)?;
    Ok(file)
}

fn map_opened(file: File, shown: String, eager: bool) -> Result<MappedFile> {
    let meta = file
        .metadata()
        .map_err(|_| Error::FileStat(shown.clone()))?;
    let size = meta.len();
    if size < Q_HEADER_SIZE as u64 {
        return Err(Error::FileTooSmall(format!("{shown}: {size} bytes")));
    }
    let size = usize::try_from(size).map_err(|_| Error::MmapFailed(shown.clone()))?;
    let mut opts = memmap2::MmapOptions::new();
    opts.len(size);
    if eager {
        opts.populate();
    }
    // SAFETY: the mapping is private and read-only. A file truncated underneath us by another
    // process would fault, as with any mmap-based loader.
    let map = unsafe { opts.map_copy_read_only(&file) }
        .map_err(|e| Error::MmapFailed(format!("{shown}: {e}")))?;
    drop(file);
    let _ = map.advise(memmap2::Advice::WillNeed);
    open_mapping(map, &shown)
}

/// Recognises a freshly mapped model file by its magic and derives what the C API needs: for
/// GGUF, the parsed directory and a `q_model_header` filled from the metadata.
pub fn open_mapping(map: memmap2::Mmap, shown: &str) -> Result<MappedFile> {
    // `file_header` reads the first 64 bytes of a `.qorus` mapping.
    if map.len() < Q_HEADER_SIZE as usize {
        return Err(Error::FileTooSmall(format!("{shown}: {} bytes", map.len())));
    }
    let magic = u32::from_le_bytes([map[0], map[1], map[2], map[3]]);
    let models = Mutex::new(Vec::new());
    match magic {
        Q_MAGIC => Ok(MappedFile {
            map: Arc::new(map),
            header: None,
            gguf: None,
            models,
        }),
        gguf::MAGIC => {
            let g = gguf::Gguf::parse(&map).map_err(|e| annotate(e, shown))?;
            let config = Config::from_gguf(&g).map_err(|e| annotate(e, shown))?;
            Ok(MappedFile {
                map: Arc::new(map),
                header: Some(Box::new(config.to_header())),
                gguf: Some(Arc::new(g)),
                models,
            })
        }
        _ => Err(Error::InvalidMagic(format!("{shown}: magic {magic:#010x}"))),
    }
}

/// The engine model for this file with `config` (the file's own when `None`), built on first use
/// and cached, so that several contexts or C model structs share one set of weights.
pub fn build_model(file: &MappedFile, config: Option<Config>) -> Result<Arc<Model>> {
    let config = match config {
        Some(c) => c,
        None => match &file.gguf {
            Some(g) => Config::from_gguf(g)?,
            None => Config::from_header(&file.file_header()),
        },
    };
    let mut cache = file.models.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = cache.iter().find(|m| m.config == config) {
        return Ok(m.clone());
    }
    let model = match &file.gguf {
        Some(g) => Model::from_gguf(file.map.clone(), g, config)?,
        None => {
            let layout = qorus_file::layout(&config.to_header(), file.map.len())?;
            let src = QorusTensors {
                layout: &layout,
                file: &file.map[..],
            };
            Model::from_source(config, &src, file.map.clone())?
        }
    };
    let model = Arc::new(model);
    cache.push(model.clone());
    Ok(model)
}

/// A `.qorus` file's tensors inside its mapping (names as in GGUF).
struct QorusTensors<'a> {
    layout: &'a qorus_file::QorusLayout,
    file: &'a [u8],
}

impl crate::engine::model::TensorSource for QorusTensors<'_> {
    fn tensor(
        &self,
        name: &str,
    ) -> Result<Option<(crate::quant::WeightType, usize, usize, &[u8])>> {
        let Some(t) = self.layout.get(name) else {
            return Ok(None);
        };
        let bytes = self.file.get(t.range()).ok_or_else(|| {
            Error::InvalidConfig(format!("tensor {name}: data past the end of the file"))
        })?;
        Ok(Some((t.ty, t.rows, t.cols, bytes)))
    }
}

fn annotate(e: Error, shown: &str) -> Error {
    match e {
        Error::InvalidConfig(m) => Error::InvalidConfig(format!("{shown}: {m}")),
        Error::InvalidMagic(m) => Error::InvalidMagic(format!("{shown}: {m}")),
        other => other,
    }
}
