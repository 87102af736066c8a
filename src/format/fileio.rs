//! File plumbing shared by the converters: read-only mapping of an input, and an output written
//! under a temporary name and renamed into place only when complete (so a reader never sees a
//! half-written file, and the input may even be the output).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Maps `path` read-only.
pub fn map_input(path: &Path) -> Result<memmap2::Mmap> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|source| Error::FileOpen {
        path: shown.clone(),
        source,
    })?;
    let len = file
        .metadata()
        .map_err(|_| Error::FileStat(shown.clone()))?
        .len();
    if len < 8 {
        return Err(Error::FileTooSmall(format!("{shown}: {len} bytes")));
    }
    // SAFETY: a private read-only mapping; the converters never write the files they map (output
    // goes to a new inode that is renamed over the destination). Another process truncating the
    // file meanwhile would fault, as with any mmap-based reader.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::MmapFailed(format!("{shown}: {e}")))
}

/// An output file written as `<path>.tmp.<pid>.<n>` and renamed to `path` by [`OutFile::commit`];
/// dropped without committing, it removes the temporary file.
pub struct OutFile {
    tmp: PathBuf,
    path: PathBuf,
    w: Option<BufWriter<File>>,
}

impl OutFile {
    /// Creates the temporary file next to `path`.
    pub fn create(path: &Path) -> Result<OutFile> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".tmp.{}.{n}", std::process::id()));
        let tmp = path.with_file_name(name);
        let f = File::create(&tmp).map_err(|source| Error::FileOpen {
            path: tmp.display().to_string(),
            source,
        })?;
        Ok(OutFile {
            tmp,
            path: path.to_path_buf(),
            w: Some(BufWriter::with_capacity(1 << 20, f)),
        })
    }

    /// The name shown in messages.
    pub fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// Maps an I/O error on this file.
    pub fn io(&self, source: std::io::Error) -> Error {
        Error::FileOpen {
            path: self.shown(),
            source,
        }
    }

    /// The buffered writer.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.w.as_mut().expect("OutFile used after commit")
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let w = self.w.take().expect("OutFile committed twice");
        let f = w.into_inner().map_err(|e| self.io(e.into_error()))?;
        f.sync_all().map_err(|e| self.io(e))?;
        drop(f);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| self.io(e))
    }
}

impl Write for OutFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer().flush()
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if self.w.is_some() {
            self.w = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
