//! Four threads, each with its own context over one model file (each maps it), generate at once
//! through the C API and get exactly the ids a serial run gives; a generation that fills the whole
//! context ends cleanly with the context-full condition.

mod common;

use std::ffi::CString;
use std::path::Path;

use qorus::ffi::generate::q_generate;
use qorus::ffi::memory::{q_alloc_arena, q_alloc_kv_cache, q_free_memory, q_init_memory};
use qorus::ffi::model::llama_build_graph;
use qorus::ffi::types::*;

/// Maps the model, builds it with a context of `n_ctx`, generates greedily from `prompt`.
fn run(model: &Path, n_ctx: u32, prompt: &[u32], max: u32) -> (Vec<u32>, u32) {
    unsafe {
        let p = CString::new(model.to_str().unwrap()).unwrap();
        let mut ctx: q_context = std::mem::zeroed();
        let mut m: q_llama_model = std::mem::zeroed();
        assert_eq!(q_init_memory(&mut ctx, p.as_ptr()), Q_OK);
        (*ctx.header).max_seq_len = n_ctx;
        assert_eq!(q_alloc_arena(&mut ctx, 32 << 20), Q_OK);
        assert_eq!(llama_build_graph(&mut ctx, &mut m), Q_OK);
        let c = m.config;
        let kv = (c.n_layers * c.n_kv_heads * c.max_seq_len * (c.dim / c.n_heads)) as usize * 8;
        assert_eq!(q_alloc_kv_cache(&mut ctx, kv), Q_OK);
        let mut tok: q_tokenizer = std::mem::zeroed();
        tok.initialized = true;
        tok.eos_token_id = u32::MAX; // never stop at EOS: run to max_tokens or a full context
        let mut prompt = prompt.to_vec();
        let mut out = vec![0u32; max as usize];
        let mut st = q_generation_state {
            ctx: &mut ctx,
            model: &mut m,
            tokenizer: &mut tok,
            prompt_tokens: prompt.as_mut_ptr(),
            num_prompt_tokens: prompt.len() as u32,
            generated_tokens: out.as_mut_ptr(),
            num_generated_tokens: 0,
            max_tokens: max,
            temperature: 0.0,
            top_k: 0,
            top_p: 0.0,
            current_pos: 0,
        };
        assert_eq!(q_generate(&mut st), Q_OK);
        out.truncate(st.num_generated_tokens as usize);
        let pos = st.current_pos;
        q_free_memory(&mut ctx);
        (out, pos)
    }
}

#[test]
fn four_threads_generate_what_a_serial_run_gives() {
    let model = common::model("q4_0");
    let prompts: [&[u32]; 4] = [
        &[504, 33059, 418],
        &[6403, 1980, 253, 655],
        &[1604, 3987],
        &[28, 351, 25854, 41658, 284],
    ];
    let serial: Vec<_> = prompts.iter().map(|p| run(&model, 128, p, 24)).collect();
    let parallel: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = prompts
            .iter()
            .map(|p| s.spawn(|| run(&model, 128, p, 24)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (a, b)) in serial.iter().zip(&parallel).enumerate() {
        println!("prompt {i}: {} ids, serial {:?}", a.0.len(), &a.0[..8]);
        assert_eq!(a, b, "thread {i} differs from the serial run");
    }
}

#[test]
fn filling_the_whole_context_ends_cleanly() {
    let model = common::model("q4_0");
    let (ids, pos) = run(&model, 48, &[504, 33059, 418], 100);
    assert_eq!(pos, 48, "the generation stops when the context is full");
    assert_eq!(
        ids.len(),
        45,
        "48 positions - 3 prompt tokens = 45 generated ids"
    );
}
