//! Micro-benchmark of attention at depth: the per-(row, head) two-pass kernel that came before
//! (`x86_packed::attn`: all scores, softmax, weighted sum) against the tiled GQA block kernel
//! (`kernels::attn::attend_block`), alternating A/B in one process, single thread, CPU time.
//!
//! `cargo run --release --example bench_attn [DEPTH [ROWS [ROUNDS]]]` (defaults 4096, 1, 7):
//! SmolLM2-135M's shape (head dim 64, 3 query heads per KV head); ROWS token rows at the last
//! positions (1 = decode, 16 = a prefill block). Then the tiled kernel over F16 and Q8_0 caches
//! (tiles converted to f32 once per block) against the F32 cache.

use qorus::engine::kv_cache::{KvCache, KvLayout, KvType};
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
    // The same K/V in caches of each type (layer 0, 3 KV heads).
    let layout = KvLayout {
        n_layers: 1,
        n_kv_heads: 3,
        max_seq: depth + rows,
        head_dim: hd,
    };
    let caches: Vec<(KvType, Vec<u32>)> = KvType::ALL
        .iter()
        .map(|&ty| {
            let mut buf = vec![0u32; layout.bytes(ty).unwrap().div_ceil(4)];
            // SAFETY: the buffer holds the layout's bytes for `ty`, 4-byte aligned.
            let c = unsafe {
                KvCache::from_raw_typed(buf.as_mut_ptr() as *mut u8, buf.len() * 4, layout, ty)
            }
            .unwrap();
            for (g, kv) in kvs.iter().enumerate() {
                for t in 0..depth + rows {
                    let p = &kv[t * 2 * hd..(t + 1) * 2 * hd];
                    // SAFETY: single-threaded, position in range.
                    unsafe { c.write(0, g, t, &p[..hd], &p[hd..]) };
                }
            }
            (ty, buf)
        })
        .collect();
    let typed = |buf: &mut Vec<u32>, ty: KvType, out: &mut [f32], work: &mut [f32]| {
        // SAFETY: as above; read only.
        let c = unsafe {
            KvCache::from_raw_typed(buf.as_mut_ptr() as *mut u8, buf.len() * 4, layout, ty)
        }
        .unwrap();
        for g in 0..3 {
            let blk = attn::Block {
                q: &q,
                stride: qd,
                off: g * heads * hd,
                heads,
                spans: &spans,
            };
            // SAFETY: nothing writes the cache meanwhile.
            let src = unsafe { c.tiles(0, g, depth + rows) };
            attn::attend_block_at(lv, &src, scale, &blk, work);
            for r in 0..rows {
                out[r * qd + g * heads * hd..][..heads * hd]
                    .copy_from_slice(&work[r * heads * hd..][..heads * hd]);
            }
        }
    };
    let mut t_typed: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for _ in 0..rounds {
        for (i, (ty, buf)) in caches.iter().enumerate() {
            let mut buf = buf.clone();
            let t = cpu_now();
            for _ in 0..reps {
                typed(&mut buf, *ty, &mut out, &mut work);
            }
            t_typed[i].push((cpu_now() - t) / reps as f64);
        }
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
    for (i, (ty, _)) in caches.iter().enumerate() {
        let m = med(&mut t_typed[i]);
        let by =
            bytes * layout.bytes(*ty).unwrap() as f64 / layout.bytes(KvType::F32).unwrap() as f64;
        println!(
            "tiled, {:>4} cache: {:8.1} us  ({:5.1} GB/s of its K/V)",
            ty.name(),
            m * 1e6,
            by / m / 1e9
        );
    }
}
