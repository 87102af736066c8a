//! Test-only helpers shared by the quantizer and kernel tests.

use crate::quant::WeightType;

/// The types issue 12 added (Q5_0 .. IQ4_XS): the tail of [`WeightType::ALL`] from Q5_0 on,
/// in its order, taken from that list rather than written out again.
pub(crate) const ISSUE12_TYPES: [WeightType; 9] = {
    const FIRST: usize = WeightType::ALL.len() - 9;
    let mut t = [WeightType::ALL[FIRST]; 9];
    let mut i = 0;
    while i < 9 {
        t[i] = WeightType::ALL[FIRST + i];
        i += 1;
    }
    t
};

#[test]
fn issue12_types_start_at_q5_0() {
    assert_eq!(ISSUE12_TYPES[0], WeightType::Q5_0);
    assert_eq!(ISSUE12_TYPES[8], WeightType::IQ4_XS);
}
