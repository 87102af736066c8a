//! A decode step allocates nothing on the heap (issue 4): after a warm-up call, 64 decode steps
//! through the Rust `Session` and 64 through the C API's `llama_forward` (temporaries from the
//! arena) perform zero allocations, for every KV cache type (F32, F16, Q8_0), counted by a wrapping global allocator on the calling thread
//! (the test harness's own threads allocate when they print progress, so they are not counted;
//! the pool's workers run the same allocation-free kernels).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use qorus::engine::kv_cache::KvType;

struct Counting;

static COUNT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn on() -> bool {
    ON.try_with(|c| c.get()).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if on() {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if on() {
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static A: Counting = Counting;

fn counted(f: impl FnOnce()) -> usize {
    COUNT.store(0, Ordering::SeqCst);
    ON.with(|c| c.set(true));
    f();
    ON.with(|c| c.set(false));
    COUNT.load(Ordering::SeqCst)
}

#[test]
fn decode_steps_allocate_nothing() {
    let path = common::model("q4_0");
    // Rust API.
    let model = qorus::engine::Model::open(&path).unwrap();
    for ty in KvType::ALL {
        session_decode(model.clone(), ty);
        c_api_decode(&path, ty);
    }
}

fn session_decode(model: std::sync::Arc<qorus::engine::Model>, ty: KvType) {
    let mut s = qorus::engine::Session::with_kv_type(model, 256, ty).unwrap();
    s.forward(&[504, 33059, 418]).unwrap();
    s.forward(&[260]).unwrap(); // warm-up: scratch sized for one row, pool started
    let n = counted(|| {
        let mut t = 260u32;
        for _ in 0..64 {
            let l = s.forward(&[t]).unwrap();
            t = qorus::sampling::argmax(l);
        }
    });
    println!(
        "Session ({}): {n} allocations over 64 decode steps",
        ty.name()
    );
    assert_eq!(
        n,
        0,
        "Session::forward allocated during decode ({})",
        ty.name()
    );
}

fn c_api_decode(path: &std::path::Path, ty: KvType) {
    use qorus::ffi::kv_cache::*;
    use qorus::ffi::memory::*;
    use qorus::ffi::model::*;
    use qorus::ffi::types::*;
    unsafe {
        let p = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        let mut ctx: q_context = std::mem::zeroed();
        let mut m: q_llama_model = std::mem::zeroed();
        assert_eq!(q_init_memory(&mut ctx, p.as_ptr()), Q_OK);
        (*ctx.header).max_seq_len = 256;
        assert_eq!(q_alloc_arena(&mut ctx, 32 << 20), Q_OK);
        assert_eq!(llama_build_graph(&mut ctx, &mut m), Q_OK);
        let c = m.config;
        if ty == KvType::F32 {
            let kv = (c.n_layers * c.n_kv_heads * c.max_seq_len * (c.dim / c.n_heads)) as usize * 8;
            assert_eq!(q_alloc_kv_cache(&mut ctx, kv), Q_OK);
        } else {
            let t = if ty == KvType::F16 {
                Q_KV_F16
            } else {
                Q_KV_Q8_0
            };
            let mut kv = 0usize;
            assert_eq!(q_kv_cache_size(&m, t, &mut kv), Q_OK);
            assert_eq!(q_alloc_kv_cache_typed(&mut ctx, kv, t), Q_OK);
        }
        let mut logits = vec![0f32; c.vocab_size as usize];
        let prompt = [504u32, 33059, 418];
        assert_eq!(
            llama_forward(&mut m, &mut ctx, prompt.as_ptr(), 3, 0, logits.as_mut_ptr()),
            Q_OK
        );
        let n = counted(|| {
            let mut t = 260u32;
            for pos in 3..67 {
                q_arena_reset(&mut ctx);
                assert_eq!(
                    llama_forward(&mut m, &mut ctx, &t, 1, pos, logits.as_mut_ptr()),
                    Q_OK
                );
                t = qorus::sampling::argmax(&logits);
            }
        });
        println!(
            "llama_forward ({}): {n} allocations over 64 decode steps",
            ty.name()
        );
        assert_eq!(
            n,
            0,
            "llama_forward allocated during decode ({})",
            ty.name()
        );
        q_free_memory(&mut ctx);
    }
}

/// A sampler chain with every stage on (issue 15) allocates nothing per token once made.
#[test]
fn sampler_chain_allocates_nothing_per_token() {
    use qorus::sampling::{ChainParams, SamplerChain};
    let v = 49_152;
    let logits: Vec<f32> = (0..v)
        .map(|i| ((i * 7919) % 10_007) as f32 / 10_007.0 * 12.0 - 6.0)
        .collect();
    for params in [
        ChainParams {
            top_k: 0,
            typical_p: 0.9,
            repeat_penalty: 1.1,
            frequency_penalty: 0.2,
            presence_penalty: 0.1,
            penalty_last_n: 64,
            ..ChainParams::default()
        },
        ChainParams::default(),
        ChainParams {
            temperature_last: false,
            ..ChainParams::GREEDY
        },
    ] {
        let mut c = SamplerChain::new(params, v).unwrap();
        c.set_logit_bias(&[(5, -2.0), (17, 1.0)]).unwrap();
        let first = c.sample(&logits).unwrap();
        c.accept(first);
        let n = counted(|| {
            for _ in 0..32 {
                let id = c.sample(&logits).unwrap();
                c.accept(id);
            }
        });
        println!("sampler chain: {n} allocations over 32 tokens");
        assert_eq!(n, 0, "the sampler chain allocated per token");
    }
}
