//! Saved state (issue 15): a session's KV cache saved after a prompt and loaded into another
//! session continues bit-identically (sampled ids and logits) to the session that never stopped;
//! states from another model, another qorus version, truncated or damaged are refused and leave
//! the session unchanged. Prints the prefill time a reused prefix saves.

mod common;

use std::time::Instant;

use qorus::engine::{Model, Session};
use qorus::generate::{generate_ex, GenOptions, GenParams};
use qorus::sampling::{ChainParams, SamplerChain, SamplingParams};

const P: [u32; 12] = [
    504, 33059, 418, 260, 6403, 1980, 253, 655, 28, 665, 436, 253,
];
const Q: [u32; 4] = [1345, 2240, 282, 23324];

fn continue_with(s: &mut Session, start: usize) -> (Vec<u32>, Vec<f32>) {
    let mut chain = SamplerChain::new(
        ChainParams {
            seed: 5,
            temperature: 1.1,
            ..ChainParams::default()
        },
        s.model().config.vocab_size,
    )
    .unwrap();
    let mut opts = GenOptions {
        chain: Some(&mut chain),
        ..GenOptions::default()
    };
    let params = GenParams {
        max_tokens: 24,
        sampling: SamplingParams::GREEDY,
        eos: None,
    };
    let mut out = vec![0u32; 24];
    let o = generate_ex(s, &Q, start, &params, &mut opts, &mut out, &mut |_, _| true).unwrap();
    out.truncate(o.n_generated);
    (out, s.logits().to_vec())
}

#[test]
fn saved_state_continues_bit_identically() {
    let model = Model::open(&common::model("q4_1")).unwrap();
    let mut a = Session::new(model.clone(), 256).unwrap();
    a.forward(&P).unwrap();
    let saved = a.save_state(P.len(), &P).unwrap();
    let mut b = Session::new(model.clone(), 128).unwrap(); // another context length
    b.forward(&[1, 2, 3]).unwrap(); // something else in it first
    let l = b.load_state(&saved).unwrap();
    assert_eq!((l.pos, l.ids.as_slice()), (P.len(), &P[..]));
    let (ids_a, logits_a) = continue_with(&mut a, P.len());
    let (ids_b, logits_b) = continue_with(&mut b, P.len());
    assert_eq!(ids_a, ids_b);
    assert!(
        logits_a
            .iter()
            .zip(&logits_b)
            .all(|(x, y)| x.to_bits() == y.to_bits()),
        "logits differ after loading the state"
    );
    println!("24 sampled ids and the last logits equal bit for bit: {ids_a:?}");
    // A state without ids, into a context too short for it.
    let mut c = Session::new(model.clone(), 8).unwrap();
    let e = c.load_state(&saved).unwrap_err().to_string();
    assert!(e.contains("12 positions") && e.contains("holds 8"), "{e}");
}

#[test]
fn foreign_or_damaged_states_are_refused_and_change_nothing() {
    let q41 = Model::open(&common::model("q4_1")).unwrap();
    let q40 = Model::open(&common::model("q4_0")).unwrap();
    let mut a = Session::new(q41.clone(), 64).unwrap();
    a.forward(&P).unwrap();
    let saved = a.save_state(a.pos(), &[]).unwrap();
    let mut other = Session::new(q40, 64).unwrap();
    other.forward(&Q).unwrap();
    let before = other.save_state(other.pos(), &[]).unwrap();
    let e = other.load_state(&saved).unwrap_err().to_string();
    assert!(e.contains("another model"), "{e}");
    assert_eq!(
        other.save_state(other.pos(), &[]).unwrap(),
        before,
        "a refused state changed the session"
    );
    assert_eq!(other.pos(), Q.len());

    let mut b = Session::new(q41, 64).unwrap();
    b.forward(&Q).unwrap();
    let before = b.save_state(b.pos(), &[]).unwrap();
    // Another qorus version: rewrite the version string and the checksum.
    let mut v = saved.clone();
    let vlen = u32::from_le_bytes(v[12..16].try_into().unwrap()) as usize;
    v[16 + vlen - 1] ^= 1;
    let n = v.len() - 8;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in &v[..n] {
        h ^= x as u64;
        h = h.wrapping_mul(0x100_0000_01B3);
    }
    v[n..].copy_from_slice(&h.to_le_bytes());
    let e = b.load_state(&v).unwrap_err().to_string();
    assert!(e.contains("saved by qorus"), "{e}");
    let mut d = saved.clone();
    d[200] ^= 0x40;
    let e = b.load_state(&d).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
    for cut in [0, 7, 20, saved.len() / 2, saved.len() - 1] {
        assert!(b.load_state(&saved[..cut]).is_err(), "truncated to {cut}");
    }
    assert_eq!(b.save_state(b.pos(), &[]).unwrap(), before);
    assert!(b.load_state(&saved).is_ok());
    assert_eq!(b.pos(), P.len());
}

#[test]
fn prefix_reuse_saves_the_prefill() {
    let model = Model::open(&common::model("q4_1")).unwrap();
    // A long system prompt (about 400 ids) and a short question.
    let system: Vec<u32> = (0..400).map(|i| P[i % P.len()] + (i as u32 % 7)).collect();
    let mut s = Session::new(model.clone(), 512).unwrap();
    s.forward(&system[..8]).unwrap(); // warm-up
    s.reset();
    let t = Instant::now();
    s.forward(&system).unwrap();
    s.forward(&Q).unwrap();
    let full = t.elapsed().as_secs_f64();
    let logits_full = s.logits().to_vec();
    let saved = s.save_state(system.len(), &system).unwrap();
    let mut r = Session::new(model, 512).unwrap();
    let t = Instant::now();
    r.load_state(&saved).unwrap();
    r.forward(&Q).unwrap();
    let reused = t.elapsed().as_secs_f64();
    assert!(
        r.logits()
            .iter()
            .zip(&logits_full)
            .all(|(x, y)| x.to_bits() == y.to_bits()),
        "the reused prefix gives other logits"
    );
    println!(
        "prefix reuse: {} + {} ids from scratch {:.1} ms, state load ({} KB) + {} ids {:.1} ms",
        system.len(),
        Q.len(),
        full * 1e3,
        saved.len() / 1024,
        Q.len(),
        reused * 1e3
    );
}
