//! Row quantization for the block types of issue 12 (Q5_0, Q5_1, Q2_K..Q6_K, IQ4_NL, IQ4_XS):
//! splits a row into blocks and calls the per-block ports of ggml's quantizers.

use crate::error::{Error, Result};
use crate::quant::blocks::WeightType;
use crate::quant::{quantize_iq4 as iq4, quantize_k as k, quantize_legacy as legacy};

/// Quantizes `src` into `dst` for one of the issue-12 types. Lengths must already be checked
/// (`src` a whole number of blocks, `dst` exactly its encoded size).
pub fn quantize_row_issue12(ty: WeightType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    fn each<const N: usize, const B: usize>(
        src: &[f32],
        dst: &mut [u8],
        f: fn(&[f32; N], &mut [u8; B]),
    ) -> Result<()> {
        if !src.len().is_multiple_of(N) || dst.len() != src.len() / N * B {
            return Err(Error::InvalidSize(format!(
                "quantize_row: {} values into {} bytes",
                src.len(),
                dst.len()
            )));
        }
        for (x, o) in src.chunks_exact(N).zip(dst.chunks_exact_mut(B)) {
            // chunks_exact yields exactly N and B elements
            let x: &[f32; N] = x.try_into().map_err(|_| Error::Internal("block".into()))?;
            let o: &mut [u8; B] = o.try_into().map_err(|_| Error::Internal("block".into()))?;
            f(x, o);
        }
        Ok(())
    }
    match ty {
        WeightType::Q5_0 => each(src, dst, legacy::quantize_block_q5_0),
        WeightType::Q5_1 => each(src, dst, legacy::quantize_block_q5_1),
        WeightType::Q2_K => each(src, dst, k::quantize_block_q2_k),
        WeightType::Q3_K => each(src, dst, k::quantize_block_q3_k),
        WeightType::Q4_K => each(src, dst, k::quantize_block_q4_k),
        WeightType::Q5_K => each(src, dst, k::quantize_block_q5_k),
        WeightType::Q6_K => each(src, dst, k::quantize_block_q6_k),
        WeightType::IQ4_NL => each(src, dst, iq4::quantize_block_iq4_nl),
        WeightType::IQ4_XS => each(src, dst, iq4::quantize_block_iq4_xs),
        other => Err(Error::Internal(format!(
            "quantize_row_issue12: {} is not an issue-12 type",
            other.name()
        ))),
    }
}
