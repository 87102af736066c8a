//! Block layouts, bit-compatible with ggml's (`ggml-common.h`) and with the `.qorus` file format.
//!
//! Every quantized format stores rows as a sequence of blocks: 32 consecutive values (`QK`) for the
//! legacy formats and IQ4_NL, 256 (`QK_K`, a "super-block") for the K-quants and IQ4_XS.

/// Values per block for every 32-element block format here.
pub const QK: usize = 32;

/// Values per super-block of the K-quants and IQ4_XS.
pub const QK_K: usize = 256;

/// The element types a weight tensor can have, with their ggml type ids where they have one.
#[allow(non_camel_case_types)] // ggml's spellings (Q4_K, IQ4_NL) are the names people search for.
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
    /// ggml Q5_0: f16 `d`, 4 bytes `qh` (bit j = 5th bit of element j), 16 bytes of nibbles in
    /// Q4_0's order; value = (q - 16) * d.
    Q5_0,
    /// ggml Q5_1: f16 `d`, f16 `m`, `qh`, nibbles as Q5_0; value = q * d + m.
    Q5_1,
    /// ggml Q2_K: 256 values in 16 sub-blocks of 16; 4-bit scale and 4-bit min per sub-block,
    /// f16 super-scales `d` and `dmin`; value = d * sc * q - dmin * m (q in 0..4).
    Q2_K,
    /// ggml Q3_K: 256 values in 16 sub-blocks of 16; 6-bit scales, f16 `d`; 2 low bits + a high
    /// bit per value; value = d * (sc - 32) * (q - 4 if the high bit is clear else q).
    Q3_K,
    /// ggml Q4_K: 256 values in 8 sub-blocks of 32; 6-bit scales and mins, f16 `d` and `dmin`;
    /// value = d * sc * q - dmin * m (q in 0..16).
    Q4_K,
    /// ggml Q5_K: Q4_K plus a 5th bit per value (q in 0..32).
    Q5_K,
    /// ggml Q6_K: 256 values in 16 sub-blocks of 16; int8 scales, f16 `d`; value = d * sc * (q - 32).
    Q6_K,
    /// ggml IQ4_NL: f16 `d` + 16 bytes of 4-bit indices (Q4_0's order) into a fixed non-linear
    /// table; value = d * table[q].
    IQ4_NL,
    /// ggml IQ4_XS: 256 values in 8 sub-blocks of 32, 6-bit scales, f16 `d`, IQ4_NL's table;
    /// value = d * (sc - 32) * table[q].
    IQ4_XS,
}

impl WeightType {
    /// Whether this is one of the types issue 12 added (Q5_0/Q5_1, the K-quants, IQ4_NL/IQ4_XS).
    pub const fn is_kquant_family(self) -> bool {
        matches!(
            self,
            WeightType::Q5_0
                | WeightType::Q5_1
                | WeightType::Q2_K
                | WeightType::Q3_K
                | WeightType::Q4_K
                | WeightType::Q5_K
                | WeightType::Q6_K
                | WeightType::IQ4_NL
                | WeightType::IQ4_XS
        )
    }

    /// Values per block (1 for plain float types).
    pub const fn block_len(self) -> usize {
        match self {
            WeightType::F32 | WeightType::F16 | WeightType::BF16 => 1,
            WeightType::Q4_0
            | WeightType::Q4_1
            | WeightType::Q8_0
            | WeightType::QorusQ4_0
            | WeightType::Q5_0
            | WeightType::Q5_1
            | WeightType::IQ4_NL => QK,
            WeightType::Q2_K
            | WeightType::Q3_K
            | WeightType::Q4_K
            | WeightType::Q5_K
            | WeightType::Q6_K
            | WeightType::IQ4_XS => QK_K,
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
            WeightType::Q5_0 => 22,
            WeightType::Q5_1 => 24,
            WeightType::Q2_K => 84,
            WeightType::Q3_K => 110,
            WeightType::Q4_K => 144,
            WeightType::Q5_K => 176,
            WeightType::Q6_K => 210,
            WeightType::IQ4_NL => 18,
            WeightType::IQ4_XS => 136,
        }
    }

    /// Bytes of a row of `n` values, or `None` if `n` is not a whole number of blocks.
    pub const fn row_bytes(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_len()) {
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
            WeightType::Q5_0 => Some(6),
            WeightType::Q5_1 => Some(7),
            WeightType::Q2_K => Some(10),
            WeightType::Q3_K => Some(11),
            WeightType::Q4_K => Some(12),
            WeightType::Q5_K => Some(13),
            WeightType::Q6_K => Some(14),
            WeightType::IQ4_NL => Some(20),
            WeightType::IQ4_XS => Some(23),
        }
    }

    /// The type for a ggml type id, if qorus supports it.
    pub const fn from_ggml_id(id: u32) -> Option<WeightType> {
        match id {
            0 => Some(WeightType::F32),
            1 => Some(WeightType::F16),
            2 => Some(WeightType::Q4_0),
            3 => Some(WeightType::Q4_1),
            6 => Some(WeightType::Q5_0),
            7 => Some(WeightType::Q5_1),
            8 => Some(WeightType::Q8_0),
            10 => Some(WeightType::Q2_K),
            11 => Some(WeightType::Q3_K),
            12 => Some(WeightType::Q4_K),
            13 => Some(WeightType::Q5_K),
            14 => Some(WeightType::Q6_K),
            20 => Some(WeightType::IQ4_NL),
            23 => Some(WeightType::IQ4_XS),
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
            Q_Q5_0 => Some(WeightType::Q5_0),
            Q_Q5_1 => Some(WeightType::Q5_1),
            Q_Q2_K => Some(WeightType::Q2_K),
            Q_Q3_K => Some(WeightType::Q3_K),
            Q_Q4_K => Some(WeightType::Q4_K),
            Q_Q5_K => Some(WeightType::Q5_K),
            Q_Q6_K => Some(WeightType::Q6_K),
            Q_IQ4_NL => Some(WeightType::IQ4_NL),
            Q_IQ4_XS => Some(WeightType::IQ4_XS),
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
            WeightType::Q5_0 => Q_Q5_0,
            WeightType::Q5_1 => Q_Q5_1,
            WeightType::Q2_K => Q_Q2_K,
            WeightType::Q3_K => Q_Q3_K,
            WeightType::Q4_K => Q_Q4_K,
            WeightType::Q5_K => Q_Q5_K,
            WeightType::Q6_K => Q_Q6_K,
            WeightType::IQ4_NL => Q_IQ4_NL,
            WeightType::IQ4_XS => Q_IQ4_XS,
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
            WeightType::Q5_0 => "q5_0",
            WeightType::Q5_1 => "q5_1",
            WeightType::Q2_K => "q2_K",
            WeightType::Q3_K => "q3_K",
            WeightType::Q4_K => "q4_K",
            WeightType::Q5_K => "q5_K",
            WeightType::Q6_K => "q6_K",
            WeightType::IQ4_NL => "iq4_nl",
            WeightType::IQ4_XS => "iq4_xs",
        }
    }

    /// The name ggml gives a type id (`ggml_type_name`), also for ids qorus does not support, so
    /// that errors can name the type of a tensor qorus cannot load.
    pub const fn ggml_id_name(id: u32) -> &'static str {
        match id {
            0 => "f32",
            1 => "f16",
            2 => "q4_0",
            3 => "q4_1",
            4 => "q4_2 (removed)",
            5 => "q4_3 (removed)",
            6 => "q5_0",
            7 => "q5_1",
            8 => "q8_0",
            9 => "q8_1",
            10 => "q2_K",
            11 => "q3_K",
            12 => "q4_K",
            13 => "q5_K",
            14 => "q6_K",
            15 => "q8_K",
            16 => "iq2_xxs",
            17 => "iq2_xs",
            18 => "iq3_xxs",
            19 => "iq1_s",
            20 => "iq4_nl",
            21 => "iq3_s",
            22 => "iq2_s",
            23 => "iq4_xs",
            24 => "i8",
            25 => "i16",
            26 => "i32",
            27 => "i64",
            28 => "f64",
            29 => "iq1_m",
            30 => "bf16",
            34 => "tq1_0",
            35 => "tq2_0",
            39 => "mxfp4",
            40 => "nvfp4",
            _ => "unknown",
        }
    }

    /// Every weight type qorus knows, in a fixed order.
    pub const ALL: [WeightType; 16] = [
        WeightType::F32,
        WeightType::F16,
        WeightType::BF16,
        WeightType::Q4_0,
        WeightType::Q4_1,
        WeightType::Q8_0,
        WeightType::QorusQ4_0,
        WeightType::Q5_0,
        WeightType::Q5_1,
        WeightType::Q2_K,
        WeightType::Q3_K,
        WeightType::Q4_K,
        WeightType::Q5_K,
        WeightType::Q6_K,
        WeightType::IQ4_NL,
        WeightType::IQ4_XS,
    ];
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for ty in WeightType::ALL {
            if let Some(id) = ty.ggml_id() {
                assert_eq!(WeightType::from_ggml_id(id), Some(ty));
                assert_eq!(WeightType::ggml_id_name(id), ty.name());
            }
            assert_eq!(WeightType::from_dtype(ty.dtype()), Some(ty));
            assert!(QK_K.is_multiple_of(ty.block_len()));
        }
        // ggml-common.h's static_asserts, spelled out: header bytes + packed values.
        assert_eq!(WeightType::Q5_0.block_bytes(), 2 + 4 + 16);
        assert_eq!(WeightType::Q5_1.block_bytes(), 2 + 2 + 4 + 16);
        assert_eq!(WeightType::Q2_K.block_bytes(), 2 * 2 + 16 + 256 / 4);
        assert_eq!(WeightType::Q3_K.block_bytes(), 2 + 256 / 4 + 256 / 8 + 12);
        assert_eq!(WeightType::Q4_K.block_bytes(), 2 * 2 + 12 + 256 / 2);
        assert_eq!(
            WeightType::Q5_K.block_bytes(),
            2 * 2 + 12 + 256 / 2 + 256 / 8
        );
        assert_eq!(WeightType::Q6_K.block_bytes(), 2 + 16 + 3 * 256 / 4);
        assert_eq!(WeightType::IQ4_NL.block_bytes(), 2 + 16);
        assert_eq!(WeightType::IQ4_XS.block_bytes(), 2 + 2 + 256 / 64 + 256 / 2);
        assert_eq!(WeightType::Q4_K.row_bytes(576), None);
        assert_eq!(WeightType::Q4_K.row_bytes(1536), Some(6 * 144));
        assert_eq!(WeightType::ggml_id_name(15), "q8_K");
    }
}
