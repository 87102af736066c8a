//! Micro-benchmark of attention at depth: the per-(row, head) two-pass kernel that came before
//! (`x86_packed::attn`: all scores, softmax, weighted sum) against the tiled GQA block kernel
//! (`kernels::attn::attend_block`), alternating A/B in one process, single thread, CPU time.
//!
//! `cargo run --release --example bench_attn [DEPTH [ROWS [ROUNDS]]]` (defaults 4096, 1, 7):
//! SmolLM2-135M's shape (head dim 64, 3 query heads per KV head); ROWS token rows at the last
//! positions (1 = decode, 16 = a prefill block).

use qorus::kernels::{self, attn};

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

fn rng(state: &mut u64) -> f32 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let depth = args.first().copied().unwrap_or(4096);
    let rows = args.get(1).copied().unwrap_or(1);
    let rounds = args.get(2).copied().unwrap_or(7);
    let (hd, heads) = (64usize, 3usize);
    let mut st = 7u64;
    // 3 KV heads' caches as in SmolLM2 (each its own region).
    let kvs: Vec<Vec<f32>> = (0..3)
        .map(|_| (0..2 * hd * (depth + rows)).map(|_| rng(&mut st)).collect())
        .collect();
    let q: Vec<f32> = (0..rows * 3 * heads * hd).map(|_| rng(&mut st)).collect();
    let qd = 3 * heads * hd;
    let scale = 0.125;
    let spans: Vec<(usize, usize)> = (0..rows).map(|r| (0, depth + r + 1)).collect();
    let mut out = vec![0f32; rows * qd];
    let mut scores = vec![0f32; depth + rows];
    let mut work = vec![0f32; attn::work_floats(rows * heads, hd)];
    let lv = kernels::level();
    println!("depth {depth}, {rows} row(s), head dim {hd}, {heads} query heads per KV head, level {lv:?}");

    let old = |out: &mut [f32], scores: &mut [f32]| {
        for r in 0..rows {
            for h in 0..3 * heads {
                let g = h / heads;
                let len = spans[r].1;
                let qh = &q[r * qd + h * hd..][..hd];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 present at this level; lengths fit.
                unsafe {
                    kernels::x86_packed::attn::scores(qh, &kvs[g], len, hd, scale, scores);
                    kernels::softmax_at(lv, &mut scores[..len]);
                    kernels::x86_packed::attn::weighted_sum(
                        &scores[..len],
                        &kvs[g],
                        hd,
                        &mut out[r * qd + h * hd..][..hd],
                    );
                }
            }
        }
    };
    let new = |out: &mut [f32], work: &mut [f32]| {
        for g in 0..3 {
            let blk = attn::Block {
                q: &q,
                stride: qd,
                off: g * heads * hd,
                heads,
                spans: &spans,
            };
            attn::attend_block_at(lv, &attn::F32Tiles { kv: &kvs[g], hd }, scale, &blk, work);
            for r in 0..rows {
                out[r * qd + g * heads * hd..][..heads * hd]
                    .copy_from_slice(&work[r * heads * hd..][..heads * hd]);
            }
        }
    };
    let (mut t_old, mut t_new) = (Vec::new(), Vec::new());
    let reps = (200_000 / (depth * rows)).max(3);
    for _ in 0..rounds {
        let t = cpu_now();
        for _ in 0..reps {
            old(&mut out, &mut scores);
        }
        t_old.push((cpu_now() - t) / reps as f64);
        let t = cpu_now();
        for _ in 0..reps {
            new(&mut out, &mut work);
        }
        t_new.push((cpu_now() - t) / reps as f64);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (a, b) = (med(&mut t_old), med(&mut t_new));
    let bytes = 3.0 * (depth + rows) as f64 * 2.0 * hd as f64 * 4.0;
    println!(
        "two-pass per head: {:8.1} us  ({:5.1} GB/s of K/V)\ntiled GQA block:   {:8.1} us  ({:5.1} GB/s)  speed-up {:.2}x",
        a * 1e6,
        bytes / a / 1e9,
        b * 1e6,
        bytes / b / 1e9,
        a / b
    );
}
