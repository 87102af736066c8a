//! The kept set and the draw.
//!
//! Layout of the scratch after [`distribution`]:
//! * [`Kept::All`]: `vals[..n]` hold the unnormalised probabilities `exp(x_i - max)` of every
//!   token and `total` their sum in ascending id order;
//! * [`Kept::Ids`]: `idx[..n]` hold the kept ids in ascending order and `vals[id]` their
//!   unnormalised probabilities (other entries of `vals` are meaningless).
//!
//! Renormalising over the kept set is done implicitly: the draw compares the running sum with
//! `u · total`, where `total` is the sum over the kept set in the same order as the walk, so the
//! walk always ends on a token of positive probability.

use std::cmp::Ordering;

use super::{simd, SamplerScratch, SamplingParams};

/// What [`distribution`] left in the scratch.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kept {
    /// Every token; `total` = the sum of `vals[..n]` in ascending order.
    All { n: usize, total: f64 },
    /// The ids `idx[..n]` (ascending).
    Ids { n: usize },
}

/// Descending by value, then ascending by id: a total order (the values hold no NaN).
fn by_value_desc(vals: &[f32], a: u32, b: u32) -> Ordering {
    let (x, y) = (vals[a as usize], vals[b as usize]);
    if x > y {
        Ordering::Less
    } else if x < y {
        Ordering::Greater
    } else {
        a.cmp(&b)
    }
}

/// Replaces `vals[i]` by `exp(vals[i] - max)` and returns the sum (ascending order, `f64`).
fn exp_all(vals: &mut [f32], max: f32) -> f64 {
    let mut total = 0f64;
    for x in vals.iter_mut() {
        let e = (*x - max).exp();
        *x = e;
        total += e as f64;
    }
    total
}

/// Length of the smallest prefix of `sorted` (descending) whose mass is `≥ p · total`; the whole
/// slice if rounding keeps it from being reached.
fn nucleus_sorted(vals: &[f32], sorted: &[u32], total: f64, p: f32) -> usize {
    let target = p as f64 * total;
    let mut cum = 0f64;
    for (j, &i) in sorted.iter().enumerate() {
        cum += vals[i as usize] as f64;
        if cum >= target {
            return j + 1;
        }
    }
    sorted.len()
}

/// The nucleus over the whole vocabulary without sorting all of it: the descending order is built
/// chunk by chunk (partial selection of the next chunk from the rest, then sorting that chunk), so
/// the usual small nucleus costs O(V) plus a sort of a few dozen ids. Returns the nucleus length;
/// `idx[..len]` holds it (descending order).
fn nucleus_partial(vals: &[f32], idx: &mut [u32], total: f64, p: f32) -> usize {
    let v = idx.len();
    let target = p as f64 * total;
    let mut cum = 0f64;
    let mut start = 0usize;
    let mut chunk = 64usize;
    loop {
        let end = start.saturating_add(chunk).min(v);
        let rest = &mut idx[start..];
        let m = end - start;
        if m < rest.len() {
            rest.select_nth_unstable_by(m - 1, |&a, &b| by_value_desc(vals, a, b));
        }
        rest[..m].sort_unstable_by(|&a, &b| by_value_desc(vals, a, b));
        for (j, &i) in idx[start..end].iter().enumerate() {
            cum += vals[i as usize] as f64;
            if cum >= target {
                return start + j + 1;
            }
        }
        if end == v {
            return v;
        }
        start = end;
        chunk = chunk.saturating_mul(4);
    }
}

/// Computes the (unnormalised) distribution of `logits` under `params` (non-greedy) into
/// `scratch`, which must hold at least `logits.len()` entries.
pub(super) fn distribution(
    logits: &[f32],
    params: &SamplingParams,
    scratch: &mut SamplerScratch,
) -> Kept {
    let v = logits.len();
    let vals = &mut scratch.vals[..v];
    let idx = &mut scratch.idx[..v];
    let mut max = simd::scale_and_max(logits, params.temperature, vals);
    if !max.is_finite() {
        if max == f32::INFINITY {
            // The limit of softmax: the +inf tokens share all the mass equally.
            for x in vals.iter_mut() {
                *x = if *x == f32::INFINITY {
                    0.0
                } else {
                    f32::NEG_INFINITY
                };
            }
        } else {
            // Every logit is -inf or NaN: no information, uniform (as the original's scalar
            // softmax does when the sum is not positive).
            vals.fill(0.0);
        }
        max = 0.0;
    }
    // From here on, max is finite and attained, so the kept set always has mass >= 1.
    let k = params.top_k as usize;
    let use_k = k > 0 && k < v;
    let p = params.top_p;
    let use_p = p > 0.0 && p < 1.0;
    if !use_k && !use_p {
        let total = exp_all(vals, max);
        return Kept::All { n: v, total };
    }
    for (i, s) in idx.iter_mut().enumerate() {
        *s = i as u32;
    }
    let n = if use_k {
        // Softmax is monotone, so rank by scaled logit and exponentiate only the k kept: the
        // common normaliser cancels in the renormalisation.
        idx.select_nth_unstable_by(k - 1, |&a, &b| by_value_desc(vals, a, b));
        let top = &mut idx[..k];
        top.sort_unstable_by(|&a, &b| by_value_desc(vals, a, b));
        let mut total = 0f64;
        for &i in top.iter() {
            let e = (vals[i as usize] - max).exp();
            vals[i as usize] = e;
            total += e as f64;
        }
        if use_p {
            nucleus_sorted(vals, top, total, p)
        } else {
            k
        }
    } else {
        let total = exp_all(vals, max);
        nucleus_partial(vals, idx, total, p)
    };
    idx[..n].sort_unstable();
    Kept::Ids { n }
}

/// Walks `ids` in order; returns the first whose running mass exceeds `u · total`.
fn walk(vals: &[f32], ids: impl Iterator<Item = usize> + Clone, total: f64, u: f32) -> u32 {
    let threshold = u as f64 * total;
    let mut cum = 0f64;
    let mut last_positive = None;
    for i in ids {
        let e = vals[i] as f64;
        cum += e;
        if cum > threshold {
            return i as u32;
        }
        if e > 0.0 {
            last_positive = Some(i);
        }
    }
    // Unreachable with total computed in the walk's order and u < 1; kept as the spec's fallback
    // restricted to tokens of positive probability.
    last_positive.unwrap_or(0) as u32
}

/// Draws with `u ∈ [0, 1)` from what [`distribution`] left in `scratch`.
pub(super) fn draw(scratch: &SamplerScratch, kept: Kept, u: f32) -> u32 {
    match kept {
        Kept::All { n, total } => walk(&scratch.vals[..n], 0..n, total, u),
        Kept::Ids { n } => {
            let ids = scratch.idx[..n].iter().map(|&i| i as usize);
            let total: f64 = ids.clone().map(|i| scratch.vals[i] as f64).sum();
            walk(&scratch.vals, ids, total, u)
        }
    }
}

/// The kept ids (ascending) with their renormalised probabilities.
pub(super) fn kept_probs(scratch: &SamplerScratch, kept: Kept) -> Vec<(u32, f64)> {
    let pairs: Vec<(u32, f64)> = match kept {
        Kept::All { n, .. } => (0..n).map(|i| (i as u32, scratch.vals[i] as f64)).collect(),
        Kept::Ids { n } => scratch.idx[..n]
            .iter()
            .map(|&i| (i, scratch.vals[i as usize] as f64))
            .collect(),
    };
    let total: f64 = pairs.iter().map(|&(_, e)| e).sum();
    pairs.into_iter().map(|(i, e)| (i, e / total)).collect()
}
