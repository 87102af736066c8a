//! Micro-benchmark of the matmul kernels on SmolLM2-135M shapes, every SIMD level this CPU has.
//!
//! `cargo run --release --example bench_kernels [q4_0|q8_0|q4_1|f16|f32|qorus_q4_0 ...]`
//! Prints, per (type, shape, n, level): time per call, weight GB/s (weight bytes / time) and
//! GFLOP/s (2·rows·cols·n / time). Single thread. Levels suffixed `+p` run on the repacked
//! layout (`kernels::packed`). Times are this thread's CPU time (the machine may be shared).

use std::time::Instant;

use qorus::kernels::{self, dispatch, packed, Acts, Level, MatRef};

/// This thread's CPU time in seconds.
fn cpu_now() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
use qorus::quant::WeightType;

fn rng(state: &mut u64) -> f32 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn matrix(ty: WeightType, rows: usize, cols: usize, st: &mut u64) -> Vec<u8> {
    let rb = ty.row_bytes(cols).unwrap();
    let mut v: Vec<u8> = (0..rows * rb)
        .map(|_| (rng(st) * 127.0) as i8 as u8)
        .collect();
    // Sane scales / floats.
    let f16 = |x: f32| half::f16::from_f32(x).to_bits().to_le_bytes();
    match ty {
        WeightType::F32 => v
            .chunks_exact_mut(4)
            .for_each(|c| c.copy_from_slice(&(rng(st) * 0.1).to_le_bytes())),
        WeightType::F16 | WeightType::BF16 => v
            .chunks_exact_mut(2)
            .for_each(|c| c.copy_from_slice(&f16(rng(st) * 0.1))),
        WeightType::QorusQ4_0 => v
            .chunks_exact_mut(20)
            .for_each(|b| b[16..20].copy_from_slice(&0.01f32.to_le_bytes())),
        _ if ty.is_kquant_family() => {
            let bb = ty.block_bytes();
            let offs = qorus::quant::kquants::f16_offsets(ty);
            v.chunks_exact_mut(bb).for_each(|b| {
                for &o in offs {
                    b[o..o + 2].copy_from_slice(&f16(0.01));
                }
            })
        }
        _ => {
            let bb = ty.block_bytes();
            v.chunks_exact_mut(bb).for_each(|b| {
                b[0..2].copy_from_slice(&f16(0.01));
                if ty == WeightType::Q4_1 {
                    b[2..4].copy_from_slice(&f16(-0.05));
                }
            })
        }
    }
    v
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let types: Vec<WeightType> = if args.is_empty() {
        vec![WeightType::Q4_0, WeightType::Q8_0, WeightType::F16]
    } else {
        args.iter()
            .filter_map(|a| WeightType::ALL.into_iter().find(|t| t.name() == a.as_str()))
            .collect()
    };
    let f = dispatch::features();
    println!(
        "CPU level {:?}, VNNI {}; levels run: {:?}",
        f.level,
        f.vnni,
        dispatch::available()
    );
    // `BENCH_SHAPES=49152x576,576x1536` and `BENCH_N=1` restrict the runs.
    let shapes: Vec<(usize, usize)> = match std::env::var("BENCH_SHAPES") {
        Ok(v) => v
            .split(',')
            .filter_map(|s| {
                let (r, c) = s.split_once('x')?;
                Some((r.trim().parse().ok()?, c.trim().parse().ok()?))
            })
            .collect(),
        Err(_) => vec![(576, 576), (1536, 576), (576, 1536), (49152, 576)],
    };
    let ns: Vec<usize> = match std::env::var("BENCH_N") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => vec![1, 64],
    };
    let mut st = 0x1234_5678_9abc_def1u64;
    println!(
        "{:<10} {:>12} {:>4} {:>7} {:>11} {:>9} {:>9}",
        "type", "rows x cols", "n", "level", "us/call", "GB/s", "GFLOP/s"
    );
    for &ty in &types {
        for &(rows, cols) in &shapes {
            if ty.row_bytes(cols).is_none() {
                continue; // e.g. a 256-block type on a row of 576
            }
            let data = matrix(ty, rows, cols, &mut st);
            let w = MatRef {
                ty,
                data: &data,
                rows,
                cols,
            };
            for &n in &ns {
                let x: Vec<f32> = (0..n * cols).map(|_| rng(&mut st)).collect();
                let nb = n * cols / 32;
                let (mut qs, mut d, mut s) = (vec![0i8; n * cols], vec![0f32; nb], vec![0f32; nb]);
                kernels::quantize_acts(&x, &mut qs, &mut d, &mut s);
                let (mut kq, mut kd, mut kb) =
                    (vec![0i8; n * cols], vec![0f32; nb], vec![0i16; nb * 2]);
                let mut ke = vec![0u8; nb];
                if kernels::wants_q8k(ty) {
                    kernels::quantize_acts_k(&x, &mut kq, &mut kd, &mut kb, &mut ke);
                }
                let acts = if kernels::wants_q8k(ty) {
                    Acts::Q8K {
                        qs: &kq,
                        d: &kd,
                        bsums: &kb,
                        sh: &ke,
                        n,
                        k: cols,
                    }
                } else if kernels::wants_q8(ty) {
                    Acts::Q8 {
                        qs: &qs,
                        d: &d,
                        s: &s,
                        n,
                        k: cols,
                    }
                } else {
                    Acts::F32 { x: &x, n, k: cols }
                };
                let mut out = vec![0f32; n * rows];
                let pk = packed::pack(w);
                let runs = dispatch::available().into_iter().map(|l| (l, false)).chain(
                    dispatch::available()
                        .into_iter()
                        .filter(|_| pk.is_some())
                        .map(|l| (l, true)),
                );
                for (lv, use_packed) in runs {
                    let run = |out: &mut [f32]| unsafe {
                        match (&pk, use_packed) {
                            (Some(p), true) => packed::matmul_packed_at(
                                lv,
                                p.as_ref(),
                                acts,
                                0..rows,
                                out.as_mut_ptr(),
                                rows,
                            ),
                            _ => kernels::matmul_at(lv, w, acts, 0..rows, out.as_mut_ptr(), rows),
                        }
                    };
                    run(&mut out); // warm-up
                    let budget = if lv == Level::Scalar { 0.3 } else { 0.6 };
                    let (t0, c0) = (Instant::now(), cpu_now());
                    let mut iters = 0u32;
                    while iters == 0 || t0.elapsed().as_secs_f64() < budget {
                        run(&mut out);
                        iters += 1;
                    }
                    let t = (cpu_now() - c0) / iters as f64;
                    let gbs = data.len() as f64 / t / 1e9;
                    let gflops = 2.0 * (rows * cols * n) as f64 / t / 1e9;
                    println!(
                        "{:<10} {:>12} {:>4} {:>7} {:>11.1} {:>9.2} {:>9.2}",
                        ty.name(),
                        format!("{rows}x{cols}"),
                        n,
                        format!("{}{}", lv.name(), if use_packed { "+p" } else { "" }),
                        t * 1e6,
                        gbs,
                        gflops
                    );
                }
                std::hint::black_box(&out);
            }
        }
    }
}
