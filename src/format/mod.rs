//! Model and tokenizer files: GGUF, the original's `.qorus` model file and tokenizer file.

pub mod gguf;
pub mod tokenizer_file;

use std::sync::Arc;

use crate::engine::Config;
use crate::error::{Error, Result};
use crate::ffi::registry::Mapped;
use crate::ffi::types::Q_MAGIC;

/// Recognises a freshly mapped model file by its magic and derives what the C API needs: for
/// GGUF, the parsed directory and a `q_model_header` filled from the metadata.
pub fn open_mapping(map: memmap2::Mmap, shown: &str) -> Result<Mapped> {
    let magic = u32::from_le_bytes([map[0], map[1], map[2], map[3]]);
    match magic {
        Q_MAGIC => Ok(Mapped {
            map: Arc::new(map),
            header: None,
            gguf: None,
        }),
        gguf::MAGIC => {
            let g = gguf::Gguf::parse(&map).map_err(|e| annotate(e, shown))?;
            let config = Config::from_gguf(&g).map_err(|e| annotate(e, shown))?;
            Ok(Mapped {
                map: Arc::new(map),
                header: Some(Box::new(config.to_header())),
                gguf: Some(Arc::new(g)),
            })
        }
        _ => Err(Error::InvalidMagic(format!("{shown}: magic {magic:#010x}"))),
    }
}

fn annotate(e: Error, shown: &str) -> Error {
    match e {
        Error::InvalidConfig(m) => Error::InvalidConfig(format!("{shown}: {m}")),
        Error::InvalidMagic(m) => Error::InvalidMagic(format!("{shown}: {m}")),
        other => other,
    }
}
