//! The scale searches shared by ggml's K-quant and IQ4 quantizers (`ggml-quants.c`:
//! `nearest_int`, `make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`, `best_index_int8`),
//! ported operation for operation so that qorus writes the same bytes as `llama-quantize`.
//!
//! Exactness notes. ggml-quants.c is compiled into ggml-base without `-march` flags and without
//! `-ffast-math`, so every expression below is evaluated in IEEE f32, left to right as written
//! in C, with no FMA contraction (x86-64 baseline has no FMA) and no reassociation of the sums.
//! Integers that meet floats in C (`w*l`, `nmax + 0.1f*is`) are converted to f32 first, as the
//! usual arithmetic conversions do; the casts here mark each of those places. Rust never fuses
//! `a * b + c` into an FMA, so plain operators reproduce C's results.

/// Values below this are treated as an all-zero group (`GROUP_MAX_EPS`).
pub const GROUP_MAX_EPS: f32 = 1e-15;

/// Round to nearest, ties to even, for |v| <= 4194303 (ggml's `nearest_int`: the float
/// `v + 1.5 * 2^23` has the rounded integer in its low mantissa bits). Out of that range (or for
/// NaN) the result is meaningless but defined, as in C.
#[inline]
pub fn nearest_int(v: f32) -> i32 {
    let val = v + 12_582_912.0f32;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// The value of largest magnitude in `x` (the first on ties) and that magnitude, as ggml's
/// quantizers find them (strict `>` from 0: NaN and an all-zero `x` give `(0, 0)`).
pub fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    (max, amax)
}

/// Symmetric search of a scale for `x` with codes in `[-nmax, nmax-1]` stored as `l + nmax` in
/// `levels` (`make_qx_quants` with `rmse_type == 1` and no importance weights: weights `x^2`,
/// 18 scale candidates around `-nmax / max`). Returns the scale.
pub fn make_qx_quants_rmse1(nmax: i32, x: &[f32], levels: &mut [i8]) -> f32 {
    let n = x.len();
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        levels[..n].fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let clamp = |l: i32| l.clamp(-nmax, nmax - 1);
    let mut iscale = -nmaxf / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (i, &xi) in x.iter().enumerate() {
        let l = clamp(nearest_int(iscale * xi));
        levels[i] = (l + nmax) as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1f32 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &xi in x {
            let l = clamp(nearest_int(iscale * xi)) as f32;
            let w = xi * xi;
            sumlx += w * xi * l;
            suml2 += w * l * l;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (i, &xi) in x.iter().enumerate() {
                levels[i] = (clamp(nearest_int(iscale * xi)) + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Symmetric search for 3-bit groups (`make_q3_quants` with `do_rmse`): codes in `[-nmax,
/// nmax-1]` from `-nmax / max`, then up to 5 passes moving single codes while the weighted
/// (`x^2`) error falls. Codes are stored as `l + nmax` in `levels`; returns the scale.
pub fn make_q3_quants_rmse(nmax: i32, x: &[f32], levels: &mut [i8]) -> f32 {
    let n = x.len();
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        levels[..n].fill(0);
        return 0.0;
    }
    let clamp = |l: i32| l.clamp(-nmax, nmax - 1);
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (i, &xi) in x.iter().enumerate() {
        let l = clamp(nearest_int(iscale * xi));
        levels[i] = l as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (i, &xi) in x.iter().enumerate() {
            let w = xi * xi;
            let li = levels[i] as f32;
            let mut slx = sumlx - w * xi * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = clamp(nearest_int(xi * sl2 / slx));
                if new_l != levels[i] as i32 {
                    let nl = new_l as f32;
                    slx += w * xi * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        levels[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for l in levels[..n].iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// The parameters of one `make_qkx2_quants` search.
#[derive(Clone, Copy, Debug)]
pub struct Qkx2Search {
    /// Largest code.
    pub nmax: i32,
    /// First candidate offset added to `nmax`.
    pub rmin: f32,
    /// Step between candidates.
    pub rdelta: f32,
    /// Number of steps (candidates `0..=nstep`).
    pub nstep: i32,
    /// Weigh absolute errors (`true`) or squared errors.
    pub use_mad: bool,
}

/// Asymmetric (scale and min) search (`make_qkx2_quants`): codes `0..=nmax` in `levels`, with
/// `aux` as scratch. Returns `(scale, the_min)` where values are `scale * code - the_min`.
pub fn make_qkx2_quants(
    p: Qkx2Search,
    x: &[f32],
    weights: &[f32],
    levels: &mut [u8],
    aux: &mut [u8],
) -> (f32, f32) {
    let n = x.len();
    let nmax = p.nmax;
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels[..n].fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if p.use_mad { d.abs() } else { d * d };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        levels[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += weights[i] * err(diff);
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax as f32) / (max - min);
        let mut sum_l = 0.0f32;
        let mut sum_l2 = 0.0f32;
        let mut sum_xl = 0.0f32;
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            aux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * aux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                levels[..n].copy_from_slice(&aux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Index of the entry of the sorted table `values` nearest to `x` (`best_index_int8`; on a tie
/// the upper entry).
#[inline]
pub fn best_index_int8(values: &[i8], x: f32) -> usize {
    let n = values.len();
    if x <= values[0] as f32 {
        return 0;
    }
    if x >= values[n - 1] as f32 {
        return n - 1;
    }
    let (mut ml, mut mu) = (0usize, n - 1);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < values[mav] as f32 {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - (values[mu - 1] as f32) < values[mu] as f32 - x {
        mu - 1
    } else {
        mu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        for (v, r) in [
            (0.5f32, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.4999, -2),
            (3.7, 4),
            (-3.7, -4),
            (4_194_303.0, 4_194_303),
            (-4_194_303.0, -4_194_303),
            (0.0, 0),
            (-0.0, 0),
        ] {
            assert_eq!(nearest_int(v), r, "{v}");
            assert_eq!(nearest_int(v), v.round_ties_even() as i32, "{v}");
        }
    }

    #[test]
    fn best_index_picks_the_nearest_entry() {
        let t: [i8; 4] = [-10, 0, 5, 20];
        assert_eq!(best_index_int8(&t, -50.0), 0);
        assert_eq!(best_index_int8(&t, 50.0), 3);
        assert_eq!(best_index_int8(&t, 2.4), 1);
        assert_eq!(best_index_int8(&t, 2.5), 2); // tie: upper
        assert_eq!(best_index_int8(&t, 12.0), 2);
        assert_eq!(best_index_int8(&t, 13.0), 3);
        assert_eq!(best_index_int8(&t, -5.0), 1); // tie: upper
    }

    #[test]
    fn searches_reconstruct_a_grid_exactly() {
        // values on an exact grid are found again: scale 0.5, codes -4..3
        let x: Vec<f32> = (0..16).map(|i| ((i % 8) as f32 - 4.0) * 0.5).collect();
        let mut l = [0i8; 16];
        let s = make_q3_quants_rmse(4, &x, &mut l);
        for (i, &v) in x.iter().enumerate() {
            assert_eq!(s * (l[i] as f32 - 4.0), v, "{i}");
        }
        let s = make_qx_quants_rmse1(32, &x, &mut l);
        for (i, &v) in x.iter().enumerate() {
            assert!((s * (l[i] as f32 - 32.0) - v).abs() <= 2e-7 * 2.0, "{i}");
        }
        // asymmetric: 0.25 * code - 1 for codes 0..15
        let x: Vec<f32> = (0..32).map(|i| (i % 16) as f32 * 0.25 - 1.0).collect();
        let w: Vec<f32> = x.iter().map(|v| v.abs() + 1.0).collect();
        let (mut lv, mut aux) = ([0u8; 32], [0u8; 32]);
        let p = Qkx2Search {
            nmax: 15,
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 20,
            use_mad: false,
        };
        let (s, m) = make_qkx2_quants(p, &x, &w, &mut lv, &mut aux);
        for (i, &v) in x.iter().enumerate() {
            assert!((s * lv[i] as f32 - m - v).abs() < 1e-6, "{i}");
        }
        // all-zero groups give zero scales and codes
        let z = [0.0f32; 16];
        let mut l = [7i8; 16];
        assert_eq!(make_q3_quants_rmse(4, &z, &mut l), 0.0);
        assert_eq!(l, [0; 16]);
        assert_eq!(make_qx_quants_rmse1(32, &z, &mut l), 0.0);
        let (s, m) = make_qkx2_quants(p, &[0.0; 32], &[0.0; 32], &mut lv, &mut aux);
        assert_eq!((s, m), (0.0, 0.0));
        assert_eq!(lv, [0; 32]);
    }
}
