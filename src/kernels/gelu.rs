//! GELU (tanh form) gated linear unit as ggml computes it on the CPU (`ggml_vec_geglu_f32` with
//! `GGML_GELU_FP16`): the gate is rounded to binary16 and looked up in a table of
//! `f16(gelu_f32(x))` for every binary16 `x`; gates beyond ±10 take the limits (0 or `x`).
//! Scalar only: ggml has no SIMD form of it either.

use std::sync::OnceLock;

use super::scalar::round_f16;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_COEF_A: f32 = 0.044715;

/// ggml's `ggml_gelu_f32`: `0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2)))` in f32.
pub fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// The table `ggml_table_gelu_f16`, as f32 values indexed by binary16 bits (built on first use;
/// [`init`] builds it ahead of the forward pass).
fn table() -> &'static [f32] {
    static T: OnceLock<Vec<f32>> = OnceLock::new();
    T.get_or_init(|| {
        (0..=u16::MAX)
            .map(|b| round_f16(gelu_f32(half::f16::from_bits(b).to_f32())))
            .collect()
    })
}

/// Builds the table now (model load), so that no forward step allocates.
pub fn init() {
    let _ = table();
}

/// `out[i] = gelu(gate[i]) * up[i]` with ggml's table (see the module documentation).
pub fn geglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let t = table();
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = if g <= -10.0 {
            0.0
        } else if g >= 10.0 {
            g * u
        } else {
            t[half::f16::from_f32(g).to_bits() as usize] * u
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geglu_follows_the_f16_table() {
        let gate = [
            -11.0f32, -10.0, -1.5, -0.3, 0.0, 0.1234, 1.0, 3.3, 9.99, 10.0, 12.0,
        ];
        let up = [2.0f32; 11];
        let mut out = [0f32; 11];
        geglu(&gate, &up, &mut out);
        for (i, &g) in gate.iter().enumerate() {
            let want = if g <= -10.0 {
                0.0
            } else if g >= 10.0 {
                g * 2.0
            } else {
                round_f16(gelu_f32(round_f16(g))) * 2.0
            };
            assert_eq!(out[i].to_bits(), want.to_bits(), "gate {g}");
            // and close to the exact function
            let exact = 0.5 * g as f64 * (1.0 + libm_erf(g as f64 / 2f64.sqrt()));
            assert!((out[i] as f64 - exact * 2.0).abs() < 2e-2 * (1.0 + exact.abs()));
        }
    }

    /// erf by its series (good enough to check GELU's shape within 1e-2).
    fn libm_erf(x: f64) -> f64 {
        let t = 1.0 / (1.0 + 0.3275911 * x.abs());
        let y = 1.0
            - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
                + 0.254829592)
                * t
                * (-x * x).exp();
        y.copysign(x)
    }
}
