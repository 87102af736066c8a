//! GGUF (versions 2 and 3) reader over a byte slice (the mapping).
//!
//! Every count, length and offset read from the file is checked against the bytes that remain
//! before anything is allocated for it, so a hostile file yields an error, never a huge
//! allocation or an out-of-bounds read. Tensor data are not copied: `TensorInfo` records where
//! each tensor lies inside the file.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::quant::WeightType;

/// GGUF magic as read little-endian from the first four bytes ("GGUF").
pub const MAGIC: u32 = 0x4655_4747;
/// Default `general.alignment`.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// Most dimensions a tensor may have.
pub const MAX_DIMS: usize = 4;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// uint8
    U8(u8),
    /// int8
    I8(i8),
    /// uint16
    U16(u16),
    /// int16
    I16(i16),
    /// uint32
    U32(u32),
    /// int32
    I32(i32),
    /// float32
    F32(f32),
    /// bool
    Bool(bool),
    /// string (raw bytes; GGUF says UTF-8 but vocabularies may hold any bytes)
    String(Vec<u8>),
    /// uint64
    U64(u64),
    /// int64
    I64(i64),
    /// float64
    F64(f64),
    /// homogeneous array
    Array(Vec<Value>),
}

impl Value {
    /// GGUF type id of this value.
    pub fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) if v >= 0 => Some(v as u64),
            Value::I16(v) if v >= 0 => Some(v as u64),
            Value::I32(v) if v >= 0 => Some(v as u64),
            Value::I64(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }

    /// The value as a float, if it is any number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64).or(match *self {
                Value::I8(v) => Some(v as f64),
                Value::I16(v) => Some(v as f64),
                Value::I32(v) => Some(v as f64),
                Value::I64(v) => Some(v as f64),
                _ => None,
            }),
        }
    }

    /// The value as a string, if it is a valid UTF-8 string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// The value as raw string bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value as a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// Where one tensor lies in the file and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name (e.g. `blk.0.attn_q.weight`).
    pub name: String,
    /// Extents in ggml order: `dims[0]` is the innermost (contiguous) dimension.
    pub dims: Vec<u64>,
    /// ggml type id as stored in the file.
    pub ggml_type: u32,
    /// The element type, when qorus supports it.
    pub ty: Option<WeightType>,
    /// Offset from the start of the tensor data section.
    pub offset: u64,
    /// Absolute offset of the first byte in the file.
    pub file_offset: usize,
    /// Size in bytes (0 when the type is unsupported).
    pub size: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Rows and columns of a matrix view (`dims[1]` rows of `dims[0]` values; 1-D: one row).
    pub fn rows_cols(&self) -> (u64, u64) {
        let cols = self.dims.first().copied().unwrap_or(1);
        let rows = self.dims.iter().skip(1).product::<u64>();
        (rows, cols)
    }
}

/// A parsed GGUF file: metadata and tensor directory.
#[derive(Debug, Clone)]
pub struct Gguf {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    index: HashMap<String, usize>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    /// `general.alignment` (default 32).
    pub alignment: usize,
    /// Absolute offset of the tensor data section.
    pub data_offset: usize,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidConfig(format!("GGUF: {}", msg.into()))
}

/// A bounds-checked little-endian cursor.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(bad(format!(
                "{what} runs past the end of the file at offset {}",
                self.pos
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap()))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }

    /// A count that must be satisfiable by the remaining bytes at `min_each` bytes per item.
    fn count(&mut self, min_each: usize, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        let max = (self.remaining() / min_each.max(1)) as u64;
        if n > max {
            return Err(bad(format!("{what} {n} exceeds what the file can hold")));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<Vec<u8>> {
        let n = self.count(1, what)?;
        Ok(self.take(n, what)?.to_vec())
    }
}

/// Bytes the smallest encoded value of a GGUF type occupies (for count checks).
fn min_value_size(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 12,
        10..=12 => 8,
        _ => return None,
    })
}

fn read_value(c: &mut Cursor, ty: u32, depth: u32) -> Result<Value> {
    Ok(match ty {
        0 => Value::U8(c.u8("u8")?),
        1 => Value::I8(c.u8("i8")? as i8),
        2 => Value::U16(c.u16("u16")?),
        3 => Value::I16(c.u16("i16")? as i16),
        4 => Value::U32(c.u32("u32")?),
        5 => Value::I32(c.u32("i32")? as i32),
        6 => Value::F32(f32::from_bits(c.u32("f32")?)),
        7 => match c.u8("bool")? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            v => return Err(bad(format!("bool value {v}"))),
        },
        8 => Value::String(c.string("string length")?),
        9 => {
            if depth > 2 {
                return Err(bad("arrays nested too deeply"));
            }
            let elem = c.u32("array type")?;
            let min = min_value_size(elem)
                .ok_or_else(|| bad(format!("unknown array element type {elem}")))?;
            let n = c.count(min, "array length")?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_value(c, elem, depth + 1)?);
            }
            Value::Array(v)
        }
        10 => Value::U64(c.u64("u64")?),
        11 => Value::I64(c.u64("i64")? as i64),
        12 => Value::F64(f64::from_bits(c.u64("f64")?)),
        _ => return Err(bad(format!("unknown metadata type {ty}"))),
    })
}

/// Largest extent accepted for one dimension, and for a tensor's element count.
const MAX_ELEMENTS: u64 = 1 << 40;

impl Gguf {
    /// Parses the header, metadata and tensor directory of `buf` (the whole file), and checks that
    /// every supported tensor lies inside the file, aligned, without overlapping another.
    pub fn parse(buf: &[u8]) -> Result<Gguf> {
        let mut c = Cursor { buf, pos: 0 };
        let magic = c
            .u32("magic")
            .map_err(|_| Error::FileTooSmall("GGUF header".into()))?;
        if magic != MAGIC {
            return Err(Error::InvalidMagic(format!(
                "not a GGUF file (magic {magic:#010x})"
            )));
        }
        let version = c.u32("version")?;
        if version != 2 && version != 3 {
            return Err(bad(format!("unsupported version {version}")));
        }
        // A tensor info is at least 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
        let n_tensors_raw = c.u64("tensor count")?;
        let n_kv_raw = c.u64("metadata count")?;
        if n_tensors_raw > (c.remaining() / 24) as u64 || n_kv_raw > (c.remaining() / 13) as u64 {
            return Err(bad(
                "tensor or metadata count exceeds what the file can hold",
            ));
        }
        let (n_tensors, n_kv) = (n_tensors_raw as usize, n_kv_raw as usize);

        let mut metadata = Vec::with_capacity(n_kv);
        let mut index = HashMap::with_capacity(n_kv);
        for _ in 0..n_kv {
            let key = c.string("key length")?;
            let key = String::from_utf8(key).map_err(|_| bad("metadata key is not UTF-8"))?;
            let ty = c.u32("value type")?;
            let value = read_value(&mut c, ty, 0)?;
            if index.insert(key.clone(), metadata.len()).is_some() {
                return Err(bad(format!("duplicate metadata key {key}")));
            }
            metadata.push((key, value));
        }

        let alignment = match index.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(v) => {
                let a = v
                    .as_u64()
                    .ok_or_else(|| bad("general.alignment is not an integer"))?;
                if a == 0 || !a.is_power_of_two() || a > 1 << 20 {
                    return Err(bad(format!("general.alignment {a}")));
                }
                a as usize
            }
        };

        let mut tensors = Vec::with_capacity(n_tensors);
        let mut tensor_index = HashMap::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name = c.string("tensor name length")?;
            let name = String::from_utf8(name).map_err(|_| bad("tensor name is not UTF-8"))?;
            let n_dims = c.u32("tensor dims")? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(bad(format!("tensor {name}: {n_dims} dimensions")));
            }
            let mut dims = Vec::with_capacity(n_dims);
            let mut n_el: u64 = 1;
            for _ in 0..n_dims {
                let d = c.u64("tensor extent")?;
                if d == 0 || d > MAX_ELEMENTS {
                    return Err(bad(format!("tensor {name}: extent {d}")));
                }
                n_el = n_el
                    .checked_mul(d)
                    .filter(|&n| n <= MAX_ELEMENTS)
                    .ok_or_else(|| bad(format!("tensor {name}: too many elements")))?;
                dims.push(d);
            }
            let ggml_type = c.u32("tensor type")?;
            if ggml_type > 64 {
                return Err(bad(format!("tensor {name}: unknown type {ggml_type}")));
            }
            let offset = c.u64("tensor offset")?;
            if offset % alignment as u64 != 0 {
                return Err(bad(format!(
                    "tensor {name}: offset {offset} not aligned to {alignment}"
                )));
            }
            let ty = WeightType::from_ggml_id(ggml_type);
            let size = match ty {
                Some(t) => {
                    if !(dims[0] as usize).is_multiple_of(t.block_len()) {
                        return Err(bad(format!(
                            "tensor {name}: row of {} is not whole blocks",
                            dims[0]
                        )));
                    }
                    (n_el as usize / t.block_len()) * t.block_bytes()
                }
                None => 0,
            };
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(bad(format!("duplicate tensor {name}")));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                ty,
                offset,
                file_offset: 0,
                size,
            });
        }

        let data_offset = c.pos.div_ceil(alignment) * alignment;
        if data_offset > buf.len() && n_tensors > 0 {
            return Err(bad("tensor data section starts past the end of the file"));
        }
        let mut spans: Vec<(u64, u64, usize)> = Vec::with_capacity(n_tensors);
        for (i, t) in tensors.iter_mut().enumerate() {
            let start = (data_offset as u64)
                .checked_add(t.offset)
                .ok_or_else(|| bad(format!("tensor {}: offset overflows", t.name)))?;
            let end = start
                .checked_add(t.size as u64)
                .ok_or_else(|| bad(format!("tensor {}: size overflows", t.name)))?;
            if t.ty.is_some() && end > buf.len() as u64 {
                return Err(bad(format!(
                    "tensor {}: data [{start}, {end}) past end of file ({})",
                    t.name,
                    buf.len()
                )));
            }
            t.file_offset = start as usize;
            if t.size > 0 {
                spans.push((start, end, i));
            }
        }
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(bad(format!(
                    "tensors {} and {} overlap",
                    tensors[w[0].2].name, tensors[w[1].2].name
                )));
            }
        }
        Ok(Gguf {
            version,
            metadata,
            index,
            tensors,
            tensor_index,
            alignment,
            data_offset,
        })
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// A string metadata value by key.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// An unsigned integer metadata value by key.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    /// A numeric metadata value by key, as f64.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// `general.architecture`, e.g. "llama".
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// The bytes of a tensor inside `file` (the buffer `parse` was given).
    pub fn tensor_bytes<'a>(&self, file: &'a [u8], t: &TensorInfo) -> Result<&'a [u8]> {
        file.get(t.file_offset..t.file_offset + t.size)
            .ok_or_else(|| bad(format!("tensor {} out of range", t.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_str(b: &mut Vec<u8>, s: &str) {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    }

    fn tiny() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes()); // tensors
        b.extend_from_slice(&2u64.to_le_bytes()); // kv
        push_str(&mut b, "general.architecture");
        b.extend_from_slice(&8u32.to_le_bytes());
        push_str(&mut b, "llama");
        push_str(&mut b, "tok.list");
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&2u64.to_le_bytes());
        push_str(&mut b, "a");
        push_str(&mut b, "bc");
        push_str(&mut b, "w");
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&4u64.to_le_bytes());
        b.extend_from_slice(&2u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // f32
        b.extend_from_slice(&0u64.to_le_bytes());
        while b.len() % 32 != 0 {
            b.push(0);
        }
        for i in 0..8 {
            b.extend_from_slice(&(i as f32).to_le_bytes());
        }
        b
    }

    #[test]
    fn parses_a_small_file() {
        let b = tiny();
        let g = Gguf::parse(&b).unwrap();
        assert_eq!(g.architecture(), Some("llama"));
        assert_eq!(g.get("tok.list").unwrap().as_array().unwrap().len(), 2);
        let t = g.tensor("w").unwrap();
        assert_eq!(t.rows_cols(), (2, 4));
        assert_eq!(t.size, 32);
        assert_eq!(g.tensor_bytes(&b, t).unwrap()[4..8], 1f32.to_le_bytes());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = tiny();
        for n in 0..b.len() {
            assert!(Gguf::parse(&b[..n]).is_err(), "truncated at {n} parsed");
        }
    }
}
