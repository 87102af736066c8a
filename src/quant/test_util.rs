//! Test-only helpers shared by the quantizer and kernel tests.

use crate::quant::kquants::f16_offsets;
use crate::quant::reference::f32_to_f16_bits;
use crate::quant::WeightType;

/// `N` consecutive entries of [`WeightType::ALL`] from `first`.
const fn all_from<const N: usize>(first: usize) -> [WeightType; N] {
    let mut t = [WeightType::ALL[first]; N];
    let mut i = 0;
    while i < N {
        t[i] = WeightType::ALL[first + i];
        i += 1;
    }
    t
}

/// The types before issue 12 (F32 .. QorusQ4_0): the head of [`WeightType::ALL`].
pub(crate) const ORIGINAL_TYPES: [WeightType; 7] = all_from(0);

/// The types issue 12 added (Q5_0 .. IQ4_XS): the rest of [`WeightType::ALL`], in its order,
/// taken from that list rather than written out again.
pub(crate) const ISSUE12_TYPES: [WeightType; 9] = all_from(7);

/// xorshift64 (shifts 13, 7, 17): deterministic test data.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform on the grid -1, -0.9999, ..., 1.
    pub(crate) fn f(&mut self) -> f32 {
        (self.next() % 20001) as f32 / 10000.0 - 1.0
    }
}

/// Random weight rows of `ty` (one of [`ISSUE12_TYPES`]) with finite f16 scales.
pub(crate) fn random_k_weights(ty: WeightType, n: usize, rng: &mut XorShift) -> Vec<u8> {
    let fields = f16_offsets(ty);
    assert!(!fields.is_empty(), "{ty:?} is not a K-family type");
    let mut b: Vec<u8> = (0..ty.row_bytes(n).unwrap())
        .map(|_| rng.next() as u8)
        .collect();
    for blk in b.chunks_exact_mut(ty.block_bytes()) {
        for &o in fields {
            let v = rng.f() * 0.01;
            blk[o..o + 2].copy_from_slice(&f32_to_f16_bits(v).to_le_bytes());
        }
    }
    b
}

#[test]
fn type_lists_split_all() {
    assert_eq!(ORIGINAL_TYPES[6], WeightType::QorusQ4_0);
    assert_eq!(ISSUE12_TYPES[0], WeightType::Q5_0);
    assert_eq!(ISSUE12_TYPES[8], WeightType::IQ4_XS);
    assert_eq!(
        ORIGINAL_TYPES.len() + ISSUE12_TYPES.len(),
        WeightType::ALL.len()
    );
}
