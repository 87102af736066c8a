//! Spec §3.3: the public kernels on `.qorus` 20-byte blocks and F32 tensors.
//!
//! Checks follow the documented order exactly (the first failing check decides the code). Where
//! the original would crash (misaligned dequantize output, NULL data pointers, aliasing C in the
//! matmul, its faulting transpose path) these versions return a code or compute correctly instead.
//! SiLU and softmax use an exact exponential (spec R for §3.3.9/3.3.10).

use std::ffi::c_void;

use crate::error::{Error, Result};
use crate::ffi::boundary::{guard, guard_code};
use crate::ffi::types::*;
use crate::kernels::{self, scalar};
use crate::{ensure, err};

/// The original's "aligned": a multiple of 32 bytes.
fn aligned32<T>(p: *const T) -> bool {
    (p as usize).is_multiple_of(32)
}

/// Reads a caller's tensor struct without requiring its alignment.
///
/// # Safety
/// `t` must be non-NULL and point to 128 readable bytes.
unsafe fn read_tensor(t: *const q_tensor) -> q_tensor {
    std::ptr::read_unaligned(t)
}

/// Bytes spanned by `rows` rows of `row_bytes` bytes `stride` bytes apart; `Q_ERR_OVERFLOW` when
/// that does not fit in `usize` (a view whose extents no buffer can have).
fn span(rows: usize, stride: usize, row_bytes: usize, what: &str) -> Result<usize> {
    rows.saturating_sub(1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(row_bytes))
        .ok_or_else(|| Error::Overflow(format!("{what}: {rows} rows of stride {stride}")))
}

fn nonnull<T>(p: *const T, what: &str) -> Result<()> {
    ensure!(!p.is_null(), InvalidArg, "{what} is NULL");
    Ok(())
}

/// Whether any `.qorus` Q4_0 block of `data` has an infinite or NaN scale.
fn has_nonfinite_scale(data: &[u8]) -> bool {
    data.chunks_exact(20)
        .any(|b| !f32::from_le_bytes([b[16], b[17], b[18], b[19]]).is_finite())
}

/// `out = W · x` in the original's order: each weight dequantized (`(code - 8) · scale`) and
/// then multiplied by its input. Used for matrices with a non-finite block scale, where the
/// fast kernel's order (the codes' sum first, scaled once per block) would turn the original's
/// `0 · Inf = NaN` for a code of 8 into an infinity.
fn gemv_dequantized(data: &[u8], m: usize, n: usize, x: &[f32], out: &mut [f32]) {
    let nb = n / 32;
    for (r, o) in out.iter_mut().enumerate().take(m) {
        let mut acc = 0f32;
        for (b, blk) in data[r * nb * 20..(r + 1) * nb * 20]
            .chunks_exact(20)
            .enumerate()
        {
            let d = f32::from_le_bytes([blk[16], blk[17], blk[18], blk[19]]);
            for (j, &xv) in x[b * 32..b * 32 + 32].iter().enumerate() {
                let q = (blk[j / 2] >> (4 * (j % 2))) & 15;
                acc += (q as i32 - 8) as f32 * d * xv;
            }
        }
        *o = acc;
    }
}

/// Dequantizes one block into `output[0..32]` (spec §3.3.1). NULL arguments: nothing happens.
/// Any alignment of `output` is accepted.
///
/// Non-finite scale (as the original, `(code - 8) * scale`): +-Inf gives +-Inf and NaN for
/// code 8 (`0 * Inf`); NaN gives NaN.
///
/// # Safety
/// Non-NULL `block` must point to 20 readable bytes and `output` to 32 writable floats.
#[no_mangle]
pub unsafe extern "C" fn q_dequantize_q4_0_block_avx2_public(
    block: *const q_block_q4_0,
    output: *mut f32,
) {
    guard("q_dequantize_q4_0_block_avx2_public", || {
        if block.is_null() || output.is_null() {
            return;
        }
        let bytes = std::slice::from_raw_parts(block as *const u8, 20);
        let w = kernels::MatRef {
            ty: crate::quant::WeightType::QorusQ4_0,
            data: bytes,
            rows: 1,
            cols: 32,
        };
        let mut v = [0f32; 32];
        kernels::dequantize_row(w, 0, &mut v);
        std::ptr::copy_nonoverlapping(v.as_ptr() as *const u8, output as *mut u8, 128);
    })
}

/// `output = W · input` for a `.qorus` Q4_0 matrix (spec §3.3.2).
///
/// Infinities and NaN propagate as in the original's order (each weight dequantized, then
/// multiplied by its input and summed): a NaN input or scale, `0 * Inf` (a weight of 0, i.e.
/// code 8 or scale 0, against an infinite input; an infinite scale over code 8) or `Inf - Inf`
/// in a row gives NaN for that row; otherwise an infinite term gives that row +-Inf. Rows are
/// independent.
///
/// # Safety
/// Pointers must be NULL or valid for the extents in `weights`.
#[no_mangle]
pub unsafe extern "C" fn q_gemv_q4_f32_avx2(
    weights: *const q_tensor,
    input: *const f32,
    output: *mut f32,
) -> q_error_code {
    guard_code("q_gemv_q4_f32_avx2", || {
        nonnull(weights, "weights")?;
        nonnull(input, "input")?;
        nonnull(output, "output")?;
        ensure!(aligned32(input), Misaligned, "input is not 32-byte aligned");
        ensure!(
            aligned32(output),
            Misaligned,
            "output is not 32-byte aligned"
        );
        ensure!(
            !std::ptr::eq(input, output as *const f32),
            Aliasing,
            "input == output"
        );
        let w = read_tensor(weights);
        let (m, n) = (w.ne[0] as usize, w.ne[1] as usize);
        ensure!(m != 0 && n != 0, InvalidSize, "M = {m}, N = {n}");
        ensure!(n % 32 == 0, InvalidSize, "N = {n} is not a multiple of 32");
        ensure!(
            w.r#type == Q_Q4_0,
            InvalidDtype,
            "weights type {}",
            w.r#type
        );
        let blocks = m as u64 * (n / 32) as u64;
        ensure!(blocks <= u32::MAX as u64, Overflow, "M * N/32 = {blocks}");
        ensure!(
            w.nb[0] == (n / 32) * 20,
            InvalidArg,
            "row stride {} != {}",
            w.nb[0],
            (n / 32) * 20
        );
        ensure!(!w.data.is_null(), InvalidArg, "weights->data is NULL");
        let data = std::slice::from_raw_parts(w.data as *const u8, m * (n / 32) * 20);
        let x = std::slice::from_raw_parts(input, n);
        let out = std::slice::from_raw_parts_mut(output, m);
        if has_nonfinite_scale(data) {
            gemv_dequantized(data, m, n, x, out);
        } else {
            kernels::gemv_qorus_f32(data, m, n, x, out);
        }
        Ok(())
    })
}

/// `C = A · B` in F32 (spec §3.3.3). C may alias A or B (computed into a temporary).
///
/// Infinities and NaN propagate as IEEE sums of products, as in the original: `C(i,j)` is NaN
/// when a product is NaN (a NaN, or `0 * Inf`) or products of both signs are infinite, else
/// +-Inf when a product is infinite.
///
/// # Safety
/// Tensor pointers must be NULL or valid views of the extents and strides they declare; `ctx`
/// must be NULL or a valid context.
#[no_mangle]
pub unsafe extern "C" fn q_matmul_f32_avx2(
    a: *const q_tensor,
    b: *const q_tensor,
    c: *mut q_tensor,
    ctx: *mut q_context,
) -> q_error_code {
    guard_code("q_matmul_f32_avx2", || {
        nonnull(a, "A")?;
        nonnull(b, "B")?;
        nonnull(c, "C")?;
        nonnull(ctx, "ctx")?;
        let (ta, tb, tc) = (read_tensor(a), read_tensor(b), read_tensor(c));
        let (m, k, n) = (ta.ne[0] as usize, ta.ne[1] as usize, tb.ne[1] as usize);
        ensure!(m != 0 && k != 0 && n != 0, InvalidSize, "M={m} K={k} N={n}");
        ensure!(
            tb.ne[0] as usize == k,
            InvalidSize,
            "B rows {} != K {k}",
            tb.ne[0]
        );
        ensure!(
            tc.ne[0] as usize == m,
            InvalidSize,
            "C rows {} != M {m}",
            tc.ne[0]
        );
        ensure!(
            tc.ne[1] as usize == n,
            InvalidSize,
            "C cols {} != N {n}",
            tc.ne[1]
        );
        if ta.nb[0] % 32 == 0 {
            ensure!(
                aligned32(ta.data),
                Misaligned,
                "A->data is not 32-byte aligned"
            );
        }
        ensure!(
            ta.r#type == Q_F32 && tb.r#type == Q_F32 && tc.r#type == Q_F32,
            InvalidDtype,
            "types {} {} {}",
            ta.r#type,
            tb.r#type,
            tc.r#type
        );
        ensure!(
            ta.nb[0] / 4 >= k,
            InvalidSize,
            "A row stride {} < K",
            ta.nb[0]
        );
        let transposed = tb.nb[0] == 4 && tb.ne[0] > 1 && tb.nb[1] > 4;
        if transposed {
            ensure!(
                tb.nb[1] / 4 >= k,
                InvalidSize,
                "B column stride {} < K",
                tb.nb[1]
            );
        } else {
            ensure!(
                tb.nb[0] / 4 >= n,
                InvalidSize,
                "B row stride {} < N",
                tb.nb[0]
            );
        }
        ensure!(
            tc.nb[0] / 4 >= n,
            InvalidSize,
            "C row stride {} < N",
            tc.nb[0]
        );
        ensure!(
            !ta.data.is_null() && !tb.data.is_null() && !tc.data.is_null(),
            InvalidArg,
            "a tensor's data is NULL"
        );
        // Every byte offset below must be computable (no wrap-around into a small offset).
        let row_k = k.checked_mul(4).ok_or_else(|| err!(Overflow, "K*4"))?;
        let row_n = n.checked_mul(4).ok_or_else(|| err!(Overflow, "N*4"))?;
        span(m, ta.nb[0], row_k, "A")?;
        span(m, tc.nb[0], row_n, "C")?;
        if transposed {
            span(n, row_k, row_k, "B")?; // read as N contiguous rows of K
        } else {
            span(k, tb.nb[0], row_n, "B")?;
        }
        let cells = m.checked_mul(n).ok_or_else(|| err!(Overflow, "M*N"))?;
        let ctx = &mut *ctx;
        // B transposed (N x K, contiguous). In normal mode it lives in the arena, as the
        // original's (observable: the arena head advances by A64(N*K*4) on every call).
        let bt: &mut [f32] = if transposed {
            &mut []
        } else {
            let bytes = n
                .checked_mul(k)
                .and_then(|v| v.checked_mul(4))
                .ok_or_else(|| err!(Overflow, "N*K*4"))?;
            let p = crate::memory::arena_alloc(ctx, bytes).ok_or_else(|| {
                Error::ArenaOom(format!("matmul transpose buffer: {bytes} bytes"))
            })?;
            std::slice::from_raw_parts_mut(p as *mut f32, n * k)
        };
        let rd = |base: *mut c_void, off: usize| -> f32 {
            std::ptr::read_unaligned((base as *const u8).add(off) as *const f32)
        };
        let mut bt_own = Vec::new();
        let btv: &[f32] = if transposed {
            bt_own.try_reserve_exact(n * k).map_err(|_| {
                Error::AllocFailed(format!("matmul transposed B: {} floats", n * k))
            })?;
            for j in 0..n {
                for kk in 0..k {
                    bt_own.push(rd(tb.data, 4 * (j * k + kk)));
                }
            }
            &bt_own
        } else {
            for kk in 0..k {
                for j in 0..n {
                    bt[j * k + kk] = rd(tb.data, kk * tb.nb[0] + 4 * j);
                }
            }
            bt
        };
        // All of A is read before C is written (C may alias A or B).
        let mut arow = vec![0f32; k];
        let mut cbuf = Vec::new();
        cbuf.try_reserve_exact(cells)
            .map_err(|_| Error::AllocFailed(format!("matmul result: {cells} floats")))?;
        cbuf.resize(cells, 0f32);
        for i in 0..m {
            for (kk, v) in arow.iter_mut().enumerate() {
                *v = rd(ta.data, i * ta.nb[0] + 4 * kk);
            }
            for j in 0..n {
                cbuf[i * n + j] = kernels::dot(&arow, &btv[j * k..(j + 1) * k]);
            }
        }
        for i in 0..m {
            for j in 0..n {
                let p = (tc.data as *mut u8).add(i * tc.nb[0] + 4 * j) as *mut f32;
                std::ptr::write_unaligned(p, cbuf[i * n + j]);
            }
        }
        Ok(())
    })
}

/// Sets the strict upper triangle of a square score matrix to `mask_value` (spec §3.3.4).
/// Any `mask_value` (-Inf, NaN, ...) is written as given; other elements are not read.
///
/// # Safety
/// `scores` must be NULL or a valid view.
#[no_mangle]
pub unsafe extern "C" fn q_causal_mask_f32_avx2(
    scores: *mut q_tensor,
    mask_value: f32,
) -> q_error_code {
    guard_code("q_causal_mask_f32_avx2", || {
        nonnull(scores, "scores")?;
        let t = read_tensor(scores);
        ensure!(!t.data.is_null(), InvalidArg, "scores->data is NULL");
        let n = t.ne[0] as usize;
        ensure!(
            n != 0 && t.ne[1] as usize == n,
            InvalidSize,
            "scores {}x{}",
            t.ne[0],
            t.ne[1]
        );
        ensure!(t.r#type == Q_F32, InvalidDtype, "scores type {}", t.r#type);
        ensure!(
            aligned32(t.data),
            Misaligned,
            "scores->data is not 32-byte aligned"
        );
        if n == 1 {
            return Ok(());
        }
        ensure!(t.nb[0] / 4 >= n, InvalidSize, "row stride {} < n", t.nb[0]);
        span(n, t.nb[0], 4 * n, "scores")?;
        let p = t.data as *mut f32;
        for i in 0..n {
            for j in i + 1..n {
                // Row stride may not be a multiple of 4 bytes: write unaligned.
                std::ptr::write_unaligned(
                    (p as *mut u8).add(i * t.nb[0] + 4 * j) as *mut f32,
                    mask_value,
                );
            }
        }
        Ok(())
    })
}

/// Shared checks and loop of `q_add_f32_avx2` / `q_mul_f32_avx2`.
unsafe fn binary_1d(
    a: *const q_tensor,
    b: *const q_tensor,
    out: *mut q_tensor,
    op: fn(f32, f32) -> f32,
) -> Result<()> {
    nonnull(a, "a")?;
    nonnull(b, "b")?;
    nonnull(out, "output")?;
    let (ta, tb, to) = (read_tensor(a), read_tensor(b), read_tensor(out));
    ensure!(
        !ta.data.is_null() && !tb.data.is_null() && !to.data.is_null(),
        InvalidArg,
        "a tensor's data is NULL"
    );
    for (t, name) in [(&ta, "a"), (&tb, "b"), (&to, "output")] {
        ensure!(
            t.ne[1] == 1 && t.ne[2] == 1 && t.ne[3] == 1,
            InvalidSize,
            "{name} is not 1-D"
        );
    }
    let n = ta.ne[0] as usize;
    ensure!(
        tb.ne[0] as usize == n && to.ne[0] as usize == n,
        InvalidSize,
        "lengths differ"
    );
    ensure!(
        ta.r#type == Q_F32 && tb.r#type == Q_F32 && to.r#type == Q_F32,
        InvalidDtype,
        "types must be F32"
    );
    for (t, name) in [(&ta, "a"), (&tb, "b"), (&to, "output")] {
        ensure!(t.nb[0] == n * 4, InvalidSize, "{name}->nb[0] != N*4");
    }
    for (t, name) in [(&ta, "a"), (&tb, "b"), (&to, "output")] {
        ensure!(
            aligned32(t.data),
            Misaligned,
            "{name}->data is not 32-byte aligned"
        );
    }
    let (pa, pb, po) = (
        ta.data as *const f32,
        tb.data as *const f32,
        to.data as *mut f32,
    );
    for i in 0..n {
        // Element-wise through raw pointers: output may alias a or b.
        *po.add(i) = op(*pa.add(i), *pb.add(i));
    }
    Ok(())
}

/// `output = a + b` element-wise on 1-D tensors (spec §3.3.5). IEEE on infinities and NaN, as
/// the original (`Inf + -Inf` = NaN).
///
/// # Safety
/// Tensor pointers must be NULL or valid views.
#[no_mangle]
pub unsafe extern "C" fn q_add_f32_avx2(
    a: *const q_tensor,
    b: *const q_tensor,
    output: *mut q_tensor,
) -> q_error_code {
    guard_code("q_add_f32_avx2", || binary_1d(a, b, output, |x, y| x + y))
}

/// `output = a * b` element-wise on 1-D tensors (spec §3.3.6). IEEE on infinities and NaN, as
/// the original (`0 * Inf` = NaN).
///
/// # Safety
/// Tensor pointers must be NULL or valid views.
#[no_mangle]
pub unsafe extern "C" fn q_mul_f32_avx2(
    a: *const q_tensor,
    b: *const q_tensor,
    output: *mut q_tensor,
) -> q_error_code {
    guard_code("q_mul_f32_avx2", || binary_1d(a, b, output, |x, y| x * y))
}

/// Copies `n` floats from `p` (used when an output may overlap an input).
unsafe fn copied(p: *const f32, n: usize) -> Vec<f32> {
    std::slice::from_raw_parts(p, n).to_vec()
}

/// RMSNorm of one vector of length `n` (spec §3.3.7), exact `1/sqrtf`.
///
/// Non-finite values, as the original: unless `mean(x²) + eps` is a positive finite number (it
/// is +Inf for an infinite element, squares overflowing f32 or `eps` = +Inf; NaN for a NaN; 0
/// for zeros with `eps` = 0) every output is NaN (the original's rsqrt refinement computes
/// `Inf * 0` there); an infinite or NaN gain affects its own element only.
///
/// # Safety
/// Pointers must be NULL or valid for `n` floats.
#[no_mangle]
pub unsafe extern "C" fn q_rmsnorm_f32_avx2(
    x: *const f32,
    weight: *const f32,
    output: *mut f32,
    n: u32,
    eps: f32,
) -> q_error_code {
    guard_code("q_rmsnorm_f32_avx2", || {
        nonnull(x, "x")?;
        nonnull(weight, "weight")?;
        nonnull(output, "output")?;
        ensure!(
            aligned32(x) && aligned32(weight) && aligned32(output),
            Misaligned,
            "x, weight and output must be 32-byte aligned"
        );
        ensure!(n != 0 && n.is_multiple_of(8), InvalidSize, "N = {n}");
        let n = n as usize;
        let (xv, wv) = (copied(x, n), copied(weight, n));
        let out = std::slice::from_raw_parts_mut(output, n);
        // `mean(x²) + eps` as the kernel computes it. Unless it is a positive finite number
        // the original's scale is NaN (its rsqrt Newton step computes `Inf * 0` for +Inf and
        // for 0), so every output is NaN, as there (the exact scale would be 0 for +Inf).
        let sum: f64 = xv.iter().map(|&v| (v * v) as f64).sum();
        let a = (sum / n as f64) as f32 + eps;
        if !(a > 0.0 && a.is_finite()) {
            out.fill(f32::NAN);
            return Ok(());
        }
        kernels::rmsnorm(&xv, &wv, eps, out);
        Ok(())
    })
}

/// RoPE on interleaved pairs with duplicated cos/sin tables (spec §3.3.8). IEEE on infinities
/// and NaN with the original's formulas: an infinite `x` at angle 0 gives `(Inf, x1 + Inf * 0 =
/// NaN)`; a NaN spreads to both elements of its pair.
///
/// # Safety
/// Pointers must be NULL or valid for `n` floats.
#[no_mangle]
pub unsafe extern "C" fn q_rope_f32_avx2(
    x: *const f32,
    cos: *const f32,
    sin: *const f32,
    output: *mut f32,
    n: u32,
) -> q_error_code {
    guard_code("q_rope_f32_avx2", || {
        nonnull(x, "x")?;
        nonnull(cos, "cos")?;
        nonnull(sin, "sin")?;
        nonnull(output, "output")?;
        ensure!(
            aligned32(x) && aligned32(cos) && aligned32(sin) && aligned32(output),
            Misaligned,
            "x, cos, sin and output must be 32-byte aligned"
        );
        ensure!(
            n != 0 && n.is_multiple_of(8) && n.is_multiple_of(2),
            InvalidSize,
            "N = {n}"
        );
        let n = n as usize;
        for i in 0..n / 2 {
            let (c, s) = (*cos.add(2 * i), *sin.add(2 * i));
            let (x0, x1) = (*x.add(2 * i), *x.add(2 * i + 1));
            *output.add(2 * i) = x0 * c - x1 * s;
            *output.add(2 * i + 1) = x1 * c + x0 * s;
        }
        Ok(())
    })
}

/// SiLU, `x / (1 + exp(-x))` with an exact exponential (spec §3.3.9).
///
/// +Inf gives +Inf and NaN gives NaN, as the original. -Inf gives -0, the function's limit,
/// which differs on purpose from the original (its vector path gives -Inf, from its capped
/// exponential; its scalar path NaN, from `-Inf / Inf`).
///
/// # Safety
/// Pointers must be NULL or valid for `n` floats.
#[no_mangle]
pub unsafe extern "C" fn q_silu_f32_avx2(x: *const f32, output: *mut f32, n: u32) -> q_error_code {
    guard_code("q_silu_f32_avx2", || {
        nonnull(x, "x")?;
        nonnull(output, "output")?;
        ensure!(n != 0, InvalidSize, "N = 0");
        if n >= 8 {
            ensure!(
                aligned32(x) && aligned32(output),
                Misaligned,
                "x and output must be 32-byte aligned when N >= 8"
            );
        }
        for i in 0..n as usize {
            let v = *x.add(i);
            // silu(-Inf) is its limit -0 (the formula gives -Inf / Inf = NaN).
            *output.add(i) = if v == f32::NEG_INFINITY {
                -0.0
            } else {
                scalar::silu(v)
            };
        }
        Ok(())
    })
}

/// Softmax of `n` floats with an exact exponential; `x == output` allowed (spec §3.3.10).
///
/// Infinities, as the original: +Inf elements share the probability equally (one +Inf: a
/// one-hot distribution) and every other element, -Inf included, gets exactly 0; all elements
/// -Inf: uniform `1/n`; -Inf among finite values: 0. A NaN anywhere makes every output NaN,
/// which differs on purpose from the original, whose result then depends on where the NaN is
/// (its vector max may skip it). Extreme finite values do not overflow (`x - max` is used).
///
/// # Safety
/// Pointers must be NULL or valid for `n` floats.
#[no_mangle]
pub unsafe extern "C" fn q_softmax_f32_avx2(
    x: *const f32,
    output: *mut f32,
    n: u32,
) -> q_error_code {
    guard_code("q_softmax_f32_avx2", || {
        nonnull(x, "x")?;
        nonnull(output, "output")?;
        ensure!(n != 0, InvalidSize, "N = 0");
        if n >= 8 {
            ensure!(
                aligned32(x) && aligned32(output),
                Misaligned,
                "x and output must be 32-byte aligned when N >= 8"
            );
        }
        let n = n as usize;
        let mut v = copied(x, n);
        softmax_nonfinite(&mut v);
        std::ptr::copy_nonoverlapping(v.as_ptr(), output, n);
        Ok(())
    })
}

/// Softmax with the original's results on infinities (spec §3.3.10: there `x - max` is NaN for
/// an infinite maximum, and its exponential approximation maps NaN to one positive constant):
/// +Inf elements share the probability equally and everything else gets 0; all elements -Inf:
/// uniform. A NaN anywhere makes every output NaN (the original's result then depends on the
/// NaN's position in its vector max). Otherwise the exact kernel.
fn softmax_nonfinite(v: &mut [f32]) {
    if v.iter().any(|x| x.is_nan()) {
        v.fill(f32::NAN);
        return;
    }
    let n_inf = v.iter().filter(|&&x| x == f32::INFINITY).count();
    if n_inf > 0 {
        let share = 1.0 / n_inf as f32;
        v.iter_mut()
            .for_each(|x| *x = if *x == f32::INFINITY { share } else { 0.0 });
        return;
    }
    if v.iter().all(|&x| x == f32::NEG_INFINITY) {
        let share = 1.0 / v.len() as f32;
        v.fill(share);
        return;
    }
    kernels::softmax(v);
}
