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
pub(super) fn by_value_desc(vals: &[f32], a: u32, b: u32) -> Ordering {
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

/// Whether id `a` ranks before id `b`: larger value first, then lower id (a strict total order;
/// the values hold no NaN).
#[inline]
fn before(vals: &[f32], a: u32, b: u32) -> bool {
    let (x, y) = (vals[a as usize], vals[b as usize]);
    x > y || (x == y && a < b)
}

/// Length of the smallest prefix of `sorted` (descending) whose mass is `≥ p · total`; the whole
/// slice if rounding keeps it from being reached.
pub(super) fn nucleus_sorted(vals: &[f32], sorted: &[u32], total: f64, p: f32) -> usize {
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

/// The `m ≥ 1` best-ranked ids among those ranking strictly after `after` (every id when `None`),
/// in `work[..n]`; returns `n = min(m, number of such ids)`. With `sorted` they are in rank order;
/// otherwise only `work[n - 1]` is guaranteed to be the worst-ranked of them. `work` must hold
/// more than `m` entries or at least as many as there are such ids.
///
/// One pass in id order with a bounded candidate buffer: an id enters only if it ranks before the
/// current m-th best; when the buffer (≈ 2m) is full it is cut back to the m best by partial
/// selection. Each cut discards at least ≈ m candidates, so the pass costs O(V), plus
/// O(m log m) for the final sort — also for adversarial (e.g. ascending) inputs.
pub(super) fn top_m(
    vals: &[f32],
    after: Option<u32>,
    m: usize,
    work: &mut [u32],
    sorted: bool,
) -> usize {
    debug_assert!(m >= 1);
    let cap = work.len().min(m.saturating_mul(2).max(m + 64));
    let cmp = |a: &u32, b: &u32| by_value_desc(vals, *a, *b);
    let (has_after, after_x, after_id) = match after {
        Some(b) => (true, vals[b as usize], b),
        None => (false, 0.0, 0),
    };
    let (mut has_tau, mut tau_x, mut tau_id) = (false, 0f32, 0u32);
    let mut n = 0usize;
    for (i, &x) in vals.iter().enumerate() {
        let i = i as u32;
        // Only ids ranking after the bound...
        if has_after && !(after_x > x || (after_x == x && after_id < i)) {
            continue;
        }
        // ...and before the current m-th best.
        if has_tau && !(x > tau_x || (x == tau_x && i < tau_id)) {
            continue;
        }
        if n == cap {
            // cap > m here: a full buffer with more candidates to come implies work.len() > m.
            work[..n].select_nth_unstable_by(m - 1, cmp);
            n = m;
            (has_tau, tau_id) = (true, work[m - 1]);
            tau_x = vals[tau_id as usize];
            if !before(vals, i, tau_id) {
                continue;
            }
        }
        work[n] = i;
        n += 1;
    }
    if n > m {
        work[..n].select_nth_unstable_by(m - 1, cmp);
        n = m;
    }
    if sorted {
        work[..n].sort_unstable_by(cmp);
    } else if n > 1 {
        // Move the worst-ranked to the end (the bound for the next chunk).
        let mut worst = 0;
        for j in 1..n {
            if before(vals, work[worst], work[j]) {
                worst = j;
            }
        }
        work.swap(worst, n - 1);
    }
    n
}

/// The nucleus over the whole vocabulary without sorting all of it: the descending order is built
/// in chunks of growing size (64, 256, 1024, ...), each the best-ranked ids after the previous
/// chunk; only the chunk holding the boundary is sorted. The usual small nucleus costs one O(V)
/// pass plus a sort of 64 ids. Returns the nucleus length; `idx[..len]` holds the nucleus (in
/// rank order by chunk, not necessarily within the earlier chunks).
pub(super) fn nucleus_partial(vals: &[f32], idx: &mut [u32], total: f64, p: f32) -> usize {
    let v = idx.len();
    let target = p as f64 * total;
    let mut cum = 0f64;
    let mut start = 0usize;
    let mut chunk = 64usize;
    loop {
        let after = start.checked_sub(1).map(|j| idx[j]);
        let work = &mut idx[start..];
        let m = chunk.min(v - start);
        let n = top_m(vals, after, m, work, false);
        let mass: f64 = work[..n].iter().map(|&i| vals[i as usize] as f64).sum();
        if cum + mass >= target {
            // The boundary is in this chunk: only now is its order needed.
            work[..n].sort_unstable_by(|&a, &b| by_value_desc(vals, a, b));
            for (j, &i) in work[..n].iter().enumerate() {
                cum += vals[i as usize] as f64;
                if cum >= target {
                    return start + j + 1;
                }
            }
            // Not reached after all (summation order): go on with the walk's sum.
        } else {
            cum += mass;
        }
        start += n;
        if n == 0 || start >= v {
            return v;
        }
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
    let n = if use_k {
        // Softmax is monotone, so rank by scaled logit and exponentiate only the k kept: the
        // common normaliser cancels in the renormalisation.
        let found = top_m(vals, None, k, idx, true);
        debug_assert_eq!(found, k);
        let top = &mut idx[..k];
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

#[cfg(test)]
mod tests {
    use super::*;

    fn full_order(vals: &[f32]) -> Vec<u32> {
        let mut o: Vec<u32> = (0..vals.len() as u32).collect();
        o.sort_by(|&a, &b| by_value_desc(vals, a, b));
        o
    }

    #[test]
    fn top_m_matches_a_full_sort_on_adversarial_inputs() {
        let n = 2000usize;
        let inputs: Vec<Vec<f32>> = vec![
            (0..n).map(|i| i as f32).collect(), // ascending: every id enters
            (0..n).map(|i| -(i as f32)).collect(), // descending
            vec![1.0; n],                       // all tied
            (0..n).map(|i| (i % 7) as f32).collect(), // many ties
            (0..n).map(|i| ((i * 7919) % 2003) as f32 * 0.01).collect(),
            (0..n)
                .map(|i| {
                    if i % 3 == 0 {
                        f32::NEG_INFINITY
                    } else {
                        (i % 11) as f32
                    }
                })
                .collect(),
        ];
        for vals in &inputs {
            let order = full_order(vals);
            for m in [1usize, 2, 40, 63, 64, 65, 500, 999, 1999, 2000] {
                let mut work = vec![0u32; n];
                let got = top_m(vals, None, m, &mut work, true);
                assert_eq!(got, m);
                assert_eq!(&work[..m], &order[..m], "m = {m}");
                // Continuing after the m-th: the next chunk, from a workspace of exactly the rest.
                if m < n {
                    let mut rest = vec![0u32; n - m];
                    let m2 = 100.min(n - m);
                    let got2 = top_m(vals, Some(order[m - 1]), m2, &mut rest, true);
                    assert_eq!(got2, m2);
                    assert_eq!(&rest[..m2], &order[m..m + m2], "m = {m}, next");
                }
                // Unsorted: the same set, worst-ranked last.
                let mut work = vec![0u32; n];
                assert_eq!(top_m(vals, None, m, &mut work, false), m);
                assert_eq!(work[m - 1], order[m - 1], "m = {m}, unsorted bound");
                let mut set = work[..m].to_vec();
                set.sort_unstable();
                let mut want = order[..m].to_vec();
                want.sort_unstable();
                assert_eq!(set, want, "m = {m}, unsorted set");
            }
        }
    }

    #[test]
    fn nucleus_partial_matches_a_full_sort() {
        let n = 3000usize;
        let vals: Vec<f32> = (0..n)
            .map(|i| (((i * 131) % 3001) as f32 / 3001.0 * 2.0).exp())
            .collect();
        let total: f64 = vals.iter().map(|&x| x as f64).sum();
        let order = full_order(&vals);
        for p in [1e-9f32, 0.01, 0.3, 0.7, 0.95, 0.999, 0.999_999_9] {
            let mut idx = vec![0u32; n];
            let len = nucleus_partial(&vals, &mut idx, total, p);
            let want = nucleus_sorted(&vals, &order, total, p);
            assert_eq!(len, want, "p = {p}");
            let mut got_set = idx[..len].to_vec();
            got_set.sort_unstable();
            let mut want_set = order[..len].to_vec();
            want_set.sort_unstable();
            assert_eq!(got_set, want_set, "p = {p}");
        }
    }
}
