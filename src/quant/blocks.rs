//! Block layouts, bit-compatible with ggml's (`ggml-common.h`) and with the `.qorus` file format.
//!
//! Every quantized format stores rows as a sequence of blocks of `QK` = 32 consecutive values.

/// Values per block for every 32-element block format here.
pub const QK: usize = 32;

/// The element types a weight tensor can have, with their ggml type ids where they have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
    /// ggml Q4_0: f16 scale `d` + 16 bytes; element j<16 is the low nibble of qs[j], element j+16
    /// the high nibble; value = (q - 8) * d.
    Q4_0,
    /// ggml Q4_1: f16 scale `d`, f16 min `m` + 16 bytes (same nibble order); value = q * d + m.
    Q4_1,
    /// ggml Q8_0: f16 scale `d` + 32 int8; value = q * d.
    Q8_0,
    /// `.qorus` Q4_0 (`q_block_q4_0`): 16 bytes of interleaved nibbles (element j in byte j/2,
    /// low nibble for even j) + f32 scale; value = (q - 8) * scale.
    QorusQ4_0,
}

impl WeightType {
    /// Values per block (1 for plain float types).
    pub const fn block_len(self) -> usize {
        match self {
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => 1,
            _ => QK,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            WeightType::F32 => 4,
            WeightType::F16 | WeightType::BF16 => 2,
            WeightType::Q4_0 => 18,
            WeightType::Q4_1 => 20,
            WeightType::Q8_0 => 34,
            WeightType::QorusQ4_0 => 20,
        }
    }

    /// Bytes of a row of `n` values, or `None` if `n` is not a whole number of blocks.
    pub const fn row_bytes(self, n: usize) -> Option<usize> {
        if n % self.block_len() != 0 {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }

    /// The ggml type id (`enum ggml_type`), for types GGUF can hold.
    pub const fn ggml_id(self) -> Option<u32> {
        match self {
            WeightType::F32 => Some(0),
            WeightType::F16 => Some(1),
            WeightType::Q4_0 => Some(2),
            WeightType::Q4_1 => Some(3),
            WeightType::Q8_0 => Some(8),
            WeightType::BF16 => Some(30),
            WeightType::QorusQ4_0 => None,
        }
    }

    /// The type for a ggml type id, if qorus supports it.
    pub const fn from_ggml_id(id: u32) -> Option<WeightType> {
        match id {
            0 => Some(WeightType::F32),
            1 => Some(WeightType::F16),
            2 => Some(WeightType::Q4_0),
            3 => Some(WeightType::Q4_1),
            8 => Some(WeightType::Q8_0),
            30 => Some(WeightType::BF16),
            _ => None,
        }
    }

    /// The type a C `q_dtype` value names (`Q_Q4_0` is the `.qorus` block, `Q_Q4_0_GGML` ggml's).
    pub const fn from_dtype(d: crate::ffi::types::q_dtype) -> Option<WeightType> {
        use crate::ffi::types::*;
        match d {
            Q_F32 => Some(WeightType::F32),
            Q_Q8_0 => Some(WeightType::Q8_0),
            Q_Q4_0 => Some(WeightType::QorusQ4_0),
            Q_F16 => Some(WeightType::F16),
            Q_Q4_0_GGML => Some(WeightType::Q4_0),
            Q_Q4_1 => Some(WeightType::Q4_1),
            Q_BF16 => Some(WeightType::BF16),
            _ => None,
        }
    }

    /// The C `q_dtype` value of this type.
    pub const fn dtype(self) -> crate::ffi::types::q_dtype {
        use crate::ffi::types::*;
        match self {
            WeightType::F32 => Q_F32,
            WeightType::Q8_0 => Q_Q8_0,
            WeightType::QorusQ4_0 => Q_Q4_0,
            WeightType::F16 => Q_F16,
            WeightType::Q4_0 => Q_Q4_0_GGML,
            WeightType::Q4_1 => Q_Q4_1,
            WeightType::BF16 => Q_BF16,
        }
    }

    /// Short name as llama.cpp spells it (`q4_0`, `f16`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            WeightType::F32 => "f32",
            WeightType::F16 => "f16",
            WeightType::BF16 => "bf16",
            WeightType::Q4_0 => "q4_0",
            WeightType::Q4_1 => "q4_1",
            WeightType::Q8_0 => "q8_0",
            WeightType::QorusQ4_0 => "qorus_q4_0",
        }
    }
}

/// ggml Q4_0 block (18 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockQ4_0 {
    /// Scale, IEEE binary16 bits.
    pub d: u16,
    /// Nibbles: low nibble of byte j = element j, high nibble = element j + 16.
    pub qs: [u8; QK / 2],
}

/// ggml Q4_1 block (20 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockQ4_1 {
    /// Scale, binary16 bits.
    pub d: u16,
    /// Minimum, binary16 bits.
    pub m: u16,
    /// Nibbles, same order as Q4_0.
    pub qs: [u8; QK / 2],
}

/// ggml Q8_0 block (34 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ8_0 {
    /// Scale, binary16 bits.
    pub d: u16,
    /// Values.
    pub qs: [i8; QK],
}

impl Default for BlockQ8_0 {
    fn default() -> Self {
        Self { d: 0, qs: [0; QK] }
    }
}

/// `.qorus` Q4_0 block (20 bytes, unaligned f32 scale): the engine-side twin of `q_block_q4_0`.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy, Default)]
pub struct BlockQorusQ4_0 {
    /// Interleaved nibbles: element j is in byte j/2, low nibble for even j.
    pub qs: [u8; QK / 2],
    /// Scale, f32.
    pub scale: f32,
}

const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::size_of::<BlockQorusQ4_0>() == 20);
