//! GGUF version 3 writer: header, metadata of every value type (arrays included), tensor infos,
//! and tensor data, each tensor at a multiple of the alignment (`general.alignment` when the
//! metadata sets it, else 32), zero-padded.
//!
//! The writer streams: [`GgufWriter::new`] writes everything up to the data section (tensor sizes
//! are known from their shapes and types), then [`GgufWriter::write_tensor`] takes each tensor's
//! bytes in the order the tensors were declared, and [`GgufWriter::finish`] checks that all were
//! written.
//!
//! An empty array has no element to take its type from; it is written as an empty array of
//! strings (the only kind of empty array real models carry, e.g. `general.tags`).

use std::collections::HashSet;
use std::io::Write;

use crate::error::{Error, Result};
use crate::format::gguf::{Value, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};
use crate::quant::WeightType;

/// A tensor to be written: name, extents in ggml order (`dims[0]` innermost) and element type.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// Extents, innermost first (ggml `ne`).
    pub dims: Vec<u64>,
    /// Element type (must have a ggml id).
    pub ty: WeightType,
}

impl TensorSpec {
    /// Bytes of the tensor's data.
    pub fn size(&self) -> Result<usize> {
        let bad = || Error::InvalidSize(format!("tensor {}: shape {:?}", self.name, self.dims));
        if self.dims.is_empty() || self.dims.len() > MAX_DIMS || self.dims.contains(&0) {
            return Err(bad());
        }
        let inner = usize::try_from(self.dims[0]).map_err(|_| bad())?;
        let row = self.ty.row_bytes(inner).ok_or_else(bad)?;
        self.dims[1..].iter().try_fold(row, |acc, &d| {
            usize::try_from(d)
                .ok()
                .and_then(|d| acc.checked_mul(d))
                .ok_or_else(bad)
        })
    }
}

/// Streams a GGUF v3 file into `W`.
pub struct GgufWriter<W: Write> {
    out: W,
    shown: String,
    sizes: Vec<(String, usize)>,
    next: usize,
    alignment: usize,
    pos: u64,
}

fn value_type_of_array(items: &[Value], key: &str) -> Result<u32> {
    let ty = items.first().map_or(8, Value::type_id);
    if items.iter().any(|v| v.type_id() != ty) {
        return Err(Error::InvalidArg(format!(
            "GGUF metadata {key}: array elements of different types"
        )));
    }
    Ok(ty)
}

fn put_str(b: &mut Vec<u8>, s: &[u8]) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s);
}

/// Appends the encoding of `v` (without its type id) to `b`.
fn put_value(b: &mut Vec<u8>, v: &Value, key: &str) -> Result<()> {
    match v {
        Value::U8(x) => b.push(*x),
        Value::I8(x) => b.push(*x as u8),
        Value::U16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => b.push(*x as u8),
        Value::String(s) => put_str(b, s),
        Value::U64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::Array(items) => {
            let ty = value_type_of_array(items, key)?;
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for it in items {
                put_value(b, it, key)?;
            }
        }
    }
    Ok(())
}

fn align_up(x: u64, a: usize) -> u64 {
    x.div_ceil(a as u64) * a as u64
}

impl<W: Write> GgufWriter<W> {
    /// Writes the header, `metadata` (in order) and the infos of `tensors`, then pads to the data
    /// section. `shown` names the destination in error messages.
    pub fn new(
        mut out: W,
        shown: &str,
        metadata: &[(String, Value)],
        tensors: &[TensorSpec],
    ) -> Result<Self> {
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, v)) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 20 => a as usize,
                _ => {
                    return Err(Error::InvalidArg(format!(
                        "GGUF general.alignment {v:?} is not a power of two"
                    )))
                }
            },
        };
        let mut b = Vec::with_capacity(1 << 16);
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        b.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        let mut keys = HashSet::new();
        for (k, v) in metadata {
            if !keys.insert(k.as_str()) {
                return Err(Error::InvalidArg(format!(
                    "GGUF metadata key {k} appears twice"
                )));
            }
            put_str(&mut b, k.as_bytes());
            b.extend_from_slice(&v.type_id().to_le_bytes());
            put_value(&mut b, v, k)?;
        }
        let mut sizes = Vec::with_capacity(tensors.len());
        let mut names = HashSet::new();
        let mut offset = 0u64;
        for t in tensors {
            if !names.insert(t.name.as_str()) {
                return Err(Error::InvalidArg(format!(
                    "GGUF tensor {} appears twice",
                    t.name
                )));
            }
            let id = t.ty.ggml_id().ok_or_else(|| {
                Error::InvalidDtype(format!(
                    "tensor {}: {} cannot be stored in GGUF",
                    t.name,
                    t.ty.name()
                ))
            })?;
            let size = t.size()?;
            put_str(&mut b, t.name.as_bytes());
            b.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                b.extend_from_slice(&d.to_le_bytes());
            }
            b.extend_from_slice(&id.to_le_bytes());
            b.extend_from_slice(&offset.to_le_bytes());
            offset = align_up(offset + size as u64, alignment);
            sizes.push((t.name.clone(), size));
        }
        let data_start = align_up(b.len() as u64, alignment);
        b.resize(data_start as usize, 0);
        let io = |e| Error::FileOpen {
            path: shown.to_string(),
            source: e,
        };
        out.write_all(&b).map_err(io)?;
        Ok(GgufWriter {
            out,
            shown: shown.to_string(),
            sizes,
            next: 0,
            alignment,
            pos: data_start,
        })
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::FileOpen {
            path: self.shown.clone(),
            source: e,
        }
    }

    /// Writes the data of the next declared tensor (exactly its size) and the padding after it.
    pub fn write_tensor(&mut self, data: &[u8]) -> Result<()> {
        let (name, size) = self.sizes.get(self.next).cloned().ok_or_else(|| {
            Error::InvalidArg("GGUF writer: more tensor data than declared tensors".into())
        })?;
        if data.len() != size {
            return Err(Error::InvalidSize(format!(
                "GGUF writer: tensor {name} has {size} bytes, got {}",
                data.len()
            )));
        }
        self.out.write_all(data).map_err(|e| self.io(e))?;
        let end = self.pos + size as u64;
        let padded = align_up(end, self.alignment);
        // Every tensor is padded, the last one too (as ggml's writer does).
        let pad = vec![0u8; (padded - end) as usize];
        self.out.write_all(&pad).map_err(|e| self.io(e))?;
        self.pos = padded;
        self.next += 1;
        Ok(())
    }

    /// Checks that every declared tensor was written, flushes, and returns the sink.
    pub fn finish(mut self) -> Result<W> {
        if self.next != self.sizes.len() {
            return Err(Error::InvalidArg(format!(
                "GGUF writer: {} of {} tensors written",
                self.next,
                self.sizes.len()
            )));
        }
        self.out.flush().map_err(|e| self.io(e))?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::gguf::Gguf;

    fn all_values() -> Vec<(String, Value)> {
        vec![
            (
                "general.architecture".into(),
                Value::String(b"llama".to_vec()),
            ),
            ("t.u8".into(), Value::U8(200)),
            ("t.i8".into(), Value::I8(-100)),
            ("t.u16".into(), Value::U16(60000)),
            ("t.i16".into(), Value::I16(-30000)),
            ("t.u32".into(), Value::U32(4_000_000_000)),
            ("t.i32".into(), Value::I32(-2_000_000_000)),
            ("t.f32".into(), Value::F32(1.5e-5)),
            ("t.bool".into(), Value::Bool(true)),
            ("t.u64".into(), Value::U64(u64::MAX - 3)),
            ("t.i64".into(), Value::I64(i64::MIN + 5)),
            ("t.f64".into(), Value::F64(-2.25e300)),
            ("t.bytes".into(), Value::String(vec![0xff, 0x00, b'a'])),
            (
                "t.strs".into(),
                Value::Array(vec![
                    Value::String(b"a".to_vec()),
                    Value::String(b"".to_vec()),
                    Value::String("\u{0120}é".as_bytes().to_vec()),
                ]),
            ),
            (
                "t.f32s".into(),
                Value::Array(vec![Value::F32(0.5), Value::F32(-1.0)]),
            ),
            ("t.i32s".into(), Value::Array(vec![Value::I32(-1); 5])),
            (
                "t.nested".into(),
                Value::Array(vec![
                    Value::Array(vec![Value::U8(1), Value::U8(2)]),
                    Value::Array(vec![Value::U8(3)]),
                ]),
            ),
            ("t.empty".into(), Value::Array(vec![])),
        ]
    }

    fn write(meta: &[(String, Value)], tensors: &[TensorSpec], data: &[Vec<u8>]) -> Vec<u8> {
        let mut w = GgufWriter::new(Vec::new(), "mem", meta, tensors).unwrap();
        for d in data {
            w.write_tensor(d).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn writes_and_reads_back() {
        let meta = all_values();
        let tensors = vec![
            TensorSpec {
                name: "a".into(),
                dims: vec![3],
                ty: WeightType::F32,
            },
            TensorSpec {
                name: "b.weight".into(),
                dims: vec![64, 3],
                ty: WeightType::Q8_0,
            },
            TensorSpec {
                name: "c".into(),
                dims: vec![32, 2, 2],
                ty: WeightType::Q4_1,
            },
            TensorSpec {
                name: "d".into(),
                dims: vec![5, 1, 1, 1],
                ty: WeightType::F16,
            },
        ];
        let data: Vec<Vec<u8>> = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (0..t.size().unwrap()).map(|j| (j * 7 + i) as u8).collect())
            .collect();
        let file = write(&meta, &tensors, &data);
        let g = Gguf::parse(&file).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.alignment, 32);
        assert_eq!(g.metadata, meta);
        assert_eq!(g.tensors.len(), 4);
        for (t, d) in tensors.iter().zip(&data) {
            let info = g.tensor(&t.name).unwrap();
            assert_eq!(info.dims, t.dims);
            assert_eq!(info.ty, Some(t.ty));
            assert_eq!(info.file_offset % 32, 0);
            assert_eq!(g.tensor_bytes(&file, info).unwrap(), &d[..]);
        }
        // the file ends with the last tensor's padded data
        assert_eq!(file.len(), g.tensor("d").unwrap().file_offset + 32);
    }

    #[test]
    fn honours_general_alignment() {
        let meta = vec![("general.alignment".to_string(), Value::U32(256))];
        let tensors: Vec<TensorSpec> = (0..3)
            .map(|i| TensorSpec {
                name: format!("t{i}"),
                dims: vec![3],
                ty: WeightType::F32,
            })
            .collect();
        let data = vec![vec![1u8; 12]; 3];
        let file = write(&meta, &tensors, &data);
        let g = Gguf::parse(&file).unwrap();
        assert_eq!(g.alignment, 256);
        assert_eq!(g.data_offset % 256, 0);
        for t in &g.tensors {
            assert_eq!(t.file_offset % 256, 0);
            assert_eq!(g.tensor_bytes(&file, t).unwrap(), &[1u8; 12]);
        }
    }

    #[test]
    fn rejects_misuse() {
        let t = |name: &str, dims: Vec<u64>, ty| TensorSpec {
            name: name.into(),
            dims,
            ty,
        };
        let new = |m: &[(String, Value)], ts: &[TensorSpec]| {
            GgufWriter::new(Vec::new(), "mem", m, ts).map(|_| ())
        };
        assert!(new(&[], &[t("x", vec![31], WeightType::Q4_0)]).is_err());
        assert!(new(&[], &[t("x", vec![32], WeightType::QorusQ4_0)]).is_err());
        assert!(new(&[], &[t("x", vec![], WeightType::F32)]).is_err());
        assert!(new(&[], &[t("x", vec![1, 0], WeightType::F32)]).is_err());
        assert!(new(&[], &[t("x", vec![1; 5], WeightType::F32)]).is_err());
        assert!(new(
            &[],
            &[
                t("x", vec![1], WeightType::F32),
                t("x", vec![1], WeightType::F32)
            ]
        )
        .is_err());
        let dup = vec![
            ("k".to_string(), Value::U8(1)),
            ("k".to_string(), Value::U8(2)),
        ];
        assert!(new(&dup, &[]).is_err());
        let mixed = vec![(
            "k".to_string(),
            Value::Array(vec![Value::U8(1), Value::U16(2)]),
        )];
        assert!(new(&mixed, &[]).is_err());
        let align = vec![("general.alignment".to_string(), Value::U32(48))];
        assert!(new(&align, &[]).is_err());

        let ts = [t("x", vec![2], WeightType::F32)];
        let mut w = GgufWriter::new(Vec::new(), "mem", &[], &ts).unwrap();
        assert!(w.write_tensor(&[0u8; 7]).is_err());
        let w2 = GgufWriter::new(Vec::new(), "mem", &[], &ts).unwrap();
        assert!(w2.finish().is_err());
        w.write_tensor(&[0u8; 8]).unwrap();
        assert!(w.write_tensor(&[0u8; 8]).is_err());
        assert!(w.finish().is_ok());
    }
}
