//! Sampler chains (issue 15): a sampler configured per generation, with its own seeded RNG and
//! token history, so that two chains with the same parameters and seed pick the same ids on any
//! thread and in any batch.
//!
//! One call of [`SamplerChain::sample`] runs these stages, in this order, on a private copy of the
//! logits (the caller's logits are never written):
//!
//! 1. **logit bias**: `logit[id] += bias` for every configured `(id, bias)` (`-inf` bans an id);
//! 2. **penalties** over the last `penalty_last_n` accepted ids (llama.cpp's rule): for every
//!    distinct id seen `c > 0` times, `logit /= repeat_penalty` if `logit > 0` else
//!    `logit *= repeat_penalty`, then `logit -= c * frequency_penalty + presence_penalty`;
//! 3. **greedy**: if `temperature < 1e-6`, the first maximum of the penalised logits (no draw);
//! 4. **top-k** (`0 < top_k < V`): the `top_k` best ids (ties to the lower id);
//! 5. **typical-p** (`0 < typical_p < 1`): with `p` the softmax over the kept ids and `H` its
//!    entropy, ids sorted by `|-ln p - H|` (ties by rank), smallest prefix whose mass *exceeds*
//!    `typical_p`;
//! 6. **top-p** (`0 < top_p < 1`): the smallest prefix of the kept ids in descending probability
//!    whose (renormalised) mass reaches `top_p`;
//! 7. **min-p** (`0 < min_p <= 1`): keep the ids whose probability is at least `min_p` times the
//!    largest kept probability;
//! 8. **temperature** and **draw**: the kept ids' softmax of `logit / temperature`, one uniform
//!    `u` from the chain's xorshift64* (seeded by `seed`), and the first id in ascending id order
//!    whose running mass exceeds `u`.
//!
//! Stages 5-7 see the distribution at temperature 1 when `temperature_last` is set (llama.cpp's
//! order: temperature is the last stage before the draw), or at `temperature` when it is not (the
//! original `q_sample_token` order: its temperature scales the logits before top-k/top-p). The
//! original's `temperature/top_k/top_p` map onto a chain with `temperature_last = false` and every
//! other stage off ([`ChainParams::from_original`]); such a chain draws exactly what
//! `q_sample_token` draws from the same RNG state.
//!
//! Every buffer is allocated when the chain is made: sampling and accepting ids allocate nothing.

use super::rng::Rng;
use super::select::{self, by_value_desc, nucleus_partial, nucleus_sorted, top_m};
use super::{argmax, simd, SamplerScratch, SamplingParams, GREEDY_BELOW};
use crate::error::{Error, Result};

/// The settings of a [`SamplerChain`] (see the module documentation for each stage).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChainParams {
    /// Softmax temperature; `< 1e-6` is greedy. Finite, `>= 0`.
    pub temperature: f32,
    /// Top-k; 0 or `>= V` is off.
    pub top_k: u32,
    /// Nucleus mass; `<= 0`, `>= 1` or NaN is off.
    pub top_p: f32,
    /// Min-p; `<= 0` or NaN is off; must not exceed 1.
    pub min_p: f32,
    /// Typical-p; `<= 0`, `>= 1` or NaN is off.
    pub typical_p: f32,
    /// Repetition penalty; 1 is off. Finite, `> 0`.
    pub repeat_penalty: f32,
    /// Frequency penalty (per occurrence); 0 is off. Finite.
    pub frequency_penalty: f32,
    /// Presence penalty (once per distinct id); 0 is off. Finite.
    pub presence_penalty: f32,
    /// How many of the last accepted ids the penalties look at; 0 turns penalties off.
    pub penalty_last_n: u32,
    /// RNG seed (0 means [`super::DEFAULT_SEED`]).
    pub seed: u64,
    /// Temperature after the filters (llama.cpp) instead of before them (the original).
    pub temperature_last: bool,
}

impl Default for ChainParams {
    /// llama.cpp's defaults: T 0.8, top-k 40, top-p 0.95, min-p 0.05, no typical-p, no
    /// penalties (window 64), temperature last, the default seed.
    fn default() -> Self {
        ChainParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            repeat_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            penalty_last_n: 64,
            seed: super::DEFAULT_SEED,
            temperature_last: true,
        }
    }
}

impl ChainParams {
    /// Greedy decoding, nothing else.
    pub const GREEDY: ChainParams = ChainParams {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        typical_p: 1.0,
        repeat_penalty: 1.0,
        frequency_penalty: 0.0,
        presence_penalty: 0.0,
        penalty_last_n: 0,
        seed: super::DEFAULT_SEED,
        temperature_last: false,
    };

    /// The chain the original `temperature/top_k/top_p` stand for (temperature first, nothing
    /// else), with `seed`.
    pub fn from_original(p: &SamplingParams, seed: u64) -> ChainParams {
        ChainParams {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            seed,
            ..ChainParams::GREEDY
        }
    }

    /// Checks every field; the message names the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |what: &str, v: f32, rule: &str| Err(Error::InvalidArg(format!("{what} {v}: {rule}")));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad("temperature", self.temperature, "must be finite and >= 0");
        }
        if self.min_p > 1.0 || self.min_p.is_infinite() {
            return bad("min_p", self.min_p, "must be at most 1");
        }
        if !self.repeat_penalty.is_finite() || self.repeat_penalty <= 0.0 {
            return bad(
                "repeat_penalty",
                self.repeat_penalty,
                "must be finite and > 0",
            );
        }
        if !self.frequency_penalty.is_finite() {
            return bad(
                "frequency_penalty",
                self.frequency_penalty,
                "must be finite",
            );
        }
        if !self.presence_penalty.is_finite() {
            return bad("presence_penalty", self.presence_penalty, "must be finite");
        }
        Ok(())
    }

    fn penalties_on(&self) -> bool {
        self.penalty_last_n > 0
            && (self.repeat_penalty != 1.0
                || self.frequency_penalty != 0.0
                || self.presence_penalty != 0.0)
    }
    fn typical_on(&self) -> bool {
        self.typical_p > 0.0 && self.typical_p < 1.0
    }
    fn min_p_on(&self) -> bool {
        self.min_p > 0.0
    }
}

/// A configured sampler: parameters, logit biases, its RNG and the history the penalties use.
#[derive(Debug)]
pub struct SamplerChain {
    params: ChainParams,
    vocab: usize,
    rng: Rng,
    bias: Vec<(u32, f32)>,
    /// The logits after bias and penalties.
    work: Vec<f32>,
    scratch: SamplerScratch,
    /// Probabilities (unnormalised) of the kept ids, and typical-p's sort keys.
    aux: Vec<f32>,
    aux2: Vec<f32>,
    /// Ring buffer of the last `penalty_last_n` accepted ids.
    ring: Vec<u32>,
    ring_start: usize,
    ring_len: usize,
    /// Occurrences of each id in the ring.
    counts: Vec<u32>,
    /// Per-id stamp of the last sample that penalised it (so each distinct id is penalised once).
    stamps: Vec<u32>,
    stamp: u32,
}

fn alloc<T: Clone>(n: usize, v: T, what: &str) -> Result<Vec<T>> {
    let mut x = Vec::new();
    x.try_reserve_exact(n)
        .map_err(|_| Error::AllocFailed(format!("sampler chain {what} of {n} entries")))?;
    x.resize(n, v);
    Ok(x)
}

impl SamplerChain {
    /// A chain for a vocabulary of `vocab` ids (every buffer allocated here).
    pub fn new(params: ChainParams, vocab: usize) -> Result<SamplerChain> {
        params.validate()?;
        if vocab == 0 || vocab > u32::MAX as usize {
            return Err(Error::InvalidSize(format!("vocab_size {vocab}")));
        }
        let pen = params.penalties_on();
        let ring_n = if pen {
            params.penalty_last_n as usize
        } else {
            0
        };
        Ok(SamplerChain {
            params,
            vocab,
            rng: Rng::new(params.seed),
            bias: Vec::new(),
            work: alloc(vocab, 0f32, "logits")?,
            scratch: SamplerScratch::new(vocab)?,
            aux: alloc(vocab, 0f32, "probabilities")?,
            aux2: alloc(
                if params.typical_on() { vocab } else { 0 },
                0f32,
                "typical keys",
            )?,
            ring: alloc(ring_n, 0u32, "history")?,
            ring_start: 0,
            ring_len: 0,
            counts: alloc(if pen { vocab } else { 0 }, 0u32, "counts")?,
            stamps: alloc(if pen { vocab } else { 0 }, 0u32, "stamps")?,
            stamp: 0,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The vocabulary size.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// The RNG (its state advances by one draw per non-greedy sample).
    pub fn rng(&self) -> Rng {
        self.rng
    }

    /// Replaces the RNG (e.g. to continue from a saved state).
    pub fn set_rng(&mut self, rng: Rng) {
        self.rng = rng;
    }

    /// Replaces the logit biases. Every id must be `< V` and every bias finite or `-inf`.
    pub fn set_logit_bias(&mut self, bias: &[(u32, f32)]) -> Result<()> {
        for &(id, b) in bias {
            if id as usize >= self.vocab {
                return Err(Error::InvalidArg(format!(
                    "logit bias for id {id} >= vocab_size {}",
                    self.vocab
                )));
            }
            if b.is_nan() || b == f32::INFINITY {
                return Err(Error::InvalidArg(format!(
                    "logit bias {b} for id {id}: must be finite or -inf"
                )));
            }
        }
        let mut v = Vec::new();
        v.try_reserve_exact(bias.len())
            .map_err(|_| Error::AllocFailed("logit bias".into()))?;
        v.extend_from_slice(bias);
        self.bias = v;
        Ok(())
    }

    /// Forgets the history and reseeds the RNG with the chain's seed.
    pub fn reset(&mut self) {
        self.rng = Rng::new(self.params.seed);
        self.ring_start = 0;
        self.ring_len = 0;
        self.counts.fill(0);
    }

    /// Records an id (a prompt id or a generated one) in the penalties' history. Ids `>= V` are
    /// ignored. Does nothing when the penalties are off.
    pub fn accept(&mut self, id: u32) {
        let cap = self.ring.len();
        if cap == 0 || id as usize >= self.vocab {
            return;
        }
        if self.ring_len == cap {
            let old = self.ring[self.ring_start];
            self.counts[old as usize] -= 1;
            self.ring[self.ring_start] = id;
            self.ring_start = (self.ring_start + 1) % cap;
        } else {
            self.ring[(self.ring_start + self.ring_len) % cap] = id;
            self.ring_len += 1;
        }
        self.counts[id as usize] += 1;
    }

    /// The ids in the history, oldest first.
    pub fn history(&self) -> impl Iterator<Item = u32> + '_ {
        let cap = self.ring.len().max(1);
        (0..self.ring_len).map(move |i| self.ring[(self.ring_start + i) % cap])
    }

    /// Samples one id from `logits` (length `V`). Greedy chains do not draw; every other
    /// successful call draws exactly once. Does not accept the id (call [`Self::accept`]).
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        self.prepare(logits)?;
        Ok(self.pick())
    }

    /// [`Self::sample`] with `filter` applied to the biased, penalised logits before the
    /// filters (constrained generation sets the logits of forbidden ids to `-inf`). Returns
    /// `None` when `filter` left no finite logit.
    pub fn sample_filtered(
        &mut self,
        logits: &[f32],
        filter: &mut dyn FnMut(&mut [f32]),
    ) -> Result<Option<u32>> {
        self.prepare(logits)?;
        filter(&mut self.work);
        if !self.work.iter().any(|x| *x > f32::NEG_INFINITY) {
            return Ok(None);
        }
        Ok(Some(self.pick()))
    }

    /// The logits after bias and penalties, as the last `sample` saw them.
    pub fn penalised_logits(&self) -> &[f32] {
        &self.work
    }

    fn prepare(&mut self, logits: &[f32]) -> Result<()> {
        if logits.len() != self.vocab {
            return Err(Error::InvalidSize(format!(
                "{} logits for a chain of vocab_size {}",
                logits.len(),
                self.vocab
            )));
        }
        self.work.copy_from_slice(logits);
        for &(id, b) in &self.bias {
            self.work[id as usize] += b;
        }
        if !self.ring.is_empty() && self.ring_len > 0 {
            self.stamp = self.stamp.wrapping_add(1);
            if self.stamp == 0 {
                self.stamps.fill(0);
                self.stamp = 1;
            }
            let p = self.params;
            let cap = self.ring.len();
            for i in 0..self.ring_len {
                let id = self.ring[(self.ring_start + i) % cap] as usize;
                if self.stamps[id] == self.stamp {
                    continue;
                }
                self.stamps[id] = self.stamp;
                let c = self.counts[id];
                let x = &mut self.work[id];
                if *x <= 0.0 {
                    *x *= p.repeat_penalty;
                } else {
                    *x /= p.repeat_penalty;
                }
                *x -= c as f32 * p.frequency_penalty + if c > 0 { p.presence_penalty } else { 0.0 };
            }
        }
        Ok(())
    }

    fn pick(&mut self) -> u32 {
        let p = self.params;
        if p.temperature < GREEDY_BELOW {
            return argmax(&self.work);
        }
        if !p.temperature_last && !p.typical_on() && !p.min_p_on() {
            // Exactly the original sampler.
            let sp = SamplingParams {
                temperature: p.temperature,
                top_k: p.top_k,
                top_p: p.top_p,
            };
            let kept = select::distribution(&self.work, &sp, &mut self.scratch);
            let u = self.rng.next_unit();
            return select::draw(&self.scratch, kept, u);
        }
        let u = self.rng.next_unit();
        self.pick_general(u)
    }

    /// Stages 4-8 with the draw `u`.
    fn pick_general(&mut self, u: f32) -> u32 {
        let p = self.params;
        let v = self.vocab;
        let t_filters = if p.temperature_last {
            1.0
        } else {
            p.temperature
        };
        let vals = &mut self.scratch.vals[..v];
        let idx = &mut self.scratch.idx[..v];
        let aux = &mut self.aux[..v];
        let max = simd::scale_and_max(&self.work, t_filters, vals);
        if !max.is_finite() {
            if max == f32::INFINITY {
                for x in vals.iter_mut() {
                    *x = if *x == f32::INFINITY {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    };
                }
            } else {
                vals.fill(0.0);
            }
        }
        let vals: &[f32] = vals;
        // The kept set is idx[..n]; `order` says how it is ordered.
        #[derive(PartialEq)]
        enum Order {
            Ascending,
            Rank,
            Other,
        }
        let k = p.top_k as usize;
        let (mut n, mut order) = if k > 0 && k < v {
            let found = top_m(vals, None, k, idx, true);
            (found, Order::Rank)
        } else {
            for (i, x) in idx.iter_mut().enumerate() {
                *x = i as u32;
            }
            (v, Order::Ascending)
        };
        let set_max = |idx: &[u32]| {
            idx.iter()
                .map(|&i| vals[i as usize])
                .fold(f32::NEG_INFINITY, f32::max)
        };
        // Unnormalised probabilities of the kept ids (relative to the kept maximum).
        let fill_probs = |idx: &[u32], aux: &mut [f32]| -> f64 {
            let m = set_max(idx);
            let mut total = 0f64;
            for &i in idx {
                let e = (vals[i as usize] - m).exp();
                aux[i as usize] = e;
                total += e as f64;
            }
            total
        };
        if p.typical_on() {
            let total = fill_probs(&idx[..n], aux);
            let keys = &mut self.aux2[..v];
            let mut entropy = 0f64;
            for &i in &idx[..n] {
                let q = aux[i as usize] as f64 / total;
                if q > 0.0 {
                    entropy -= q * q.ln();
                }
            }
            for &i in &idx[..n] {
                let q = aux[i as usize] as f64 / total;
                keys[i as usize] = if q > 0.0 {
                    (-q.ln() - entropy).abs() as f32
                } else {
                    f32::INFINITY
                };
            }
            idx[..n].sort_unstable_by(|&a, &b| {
                keys[a as usize]
                    .partial_cmp(&keys[b as usize])
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| by_value_desc(vals, a, b))
            });
            let target = p.typical_p as f64 * total;
            let mut cum = 0f64;
            for (j, &i) in idx[..n].iter().enumerate() {
                cum += aux[i as usize] as f64;
                if cum > target {
                    n = j + 1;
                    break;
                }
            }
            order = Order::Other;
        }
        if p.top_p > 0.0 && p.top_p < 1.0 {
            let total = fill_probs(&idx[..n], aux);
            if n == v && order == Order::Ascending {
                n = nucleus_partial(aux, idx, total, p.top_p);
            } else {
                if order != Order::Rank {
                    idx[..n].sort_unstable_by(|&a, &b| by_value_desc(vals, a, b));
                }
                n = nucleus_sorted(aux, &idx[..n], total, p.top_p);
            }
            order = Order::Other;
        }
        if p.min_p_on() {
            let threshold = set_max(&idx[..n]) + p.min_p.ln();
            let mut w = 0;
            for j in 0..n {
                let i = idx[j];
                if vals[i as usize] >= threshold {
                    idx[w] = i;
                    w += 1;
                }
            }
            n = w.max(1);
        }
        if order != Order::Ascending {
            idx[..n].sort_unstable();
        }
        // Temperature and draw.
        let kept = &idx[..n];
        let m = set_max(kept);
        let t_final = if p.temperature_last {
            p.temperature
        } else {
            1.0
        };
        let mut total = 0f64;
        for &i in kept {
            let e = (vals[i as usize] / t_final - m / t_final).exp();
            aux[i as usize] = e;
            total += e as f64;
        }
        let threshold = u as f64 * total;
        let mut cum = 0f64;
        let mut last_positive = kept[0];
        for &i in kept {
            let e = aux[i as usize] as f64;
            cum += e;
            if cum > threshold {
                return i;
            }
            if e > 0.0 {
                last_positive = i;
            }
        }
        last_positive
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::{sample, Rng};

    const L: [f32; 12] = [
        1.0, 2.5, 0.3, -1.0, 2.0, 0.0, 1.7, -0.5, 3.0, 0.8, -2.0, 1.2,
    ];

    #[test]
    fn original_mapping_draws_what_the_original_draws() {
        for (t, k, p) in [(0.7, 0, 0.0), (1.2, 5, 0.8), (1.0, 0, 0.6), (0.0, 3, 0.5)] {
            let sp = SamplingParams {
                temperature: t,
                top_k: k,
                top_p: p,
            };
            let mut chain =
                SamplerChain::new(ChainParams::from_original(&sp, 42), L.len()).unwrap();
            let mut rng = Rng::new(42);
            let mut scratch = SamplerScratch::new(L.len()).unwrap();
            for _ in 0..500 {
                let a = chain.sample(&L).unwrap();
                let b = sample(&L, &sp, &mut rng, &mut scratch).unwrap();
                assert_eq!(a, b);
            }
            assert_eq!(chain.rng(), rng);
        }
    }

    #[test]
    fn equal_seeds_equal_ids_on_any_thread() {
        let params = ChainParams {
            seed: 99,
            ..ChainParams::default()
        };
        let run = move || {
            let mut c = SamplerChain::new(params, L.len()).unwrap();
            (0..200).map(|_| c.sample(&L).unwrap()).collect::<Vec<_>>()
        };
        let here = run();
        let there = std::thread::spawn(run).join().unwrap();
        assert_eq!(here, there);
        let other = {
            let mut c = SamplerChain::new(
                ChainParams {
                    seed: 100,
                    ..params
                },
                L.len(),
            )
            .unwrap();
            (0..200).map(|_| c.sample(&L).unwrap()).collect::<Vec<_>>()
        };
        assert_ne!(here, other);
    }

    #[test]
    fn penalties_follow_llama_cpp() {
        let params = ChainParams {
            repeat_penalty: 2.0,
            frequency_penalty: 0.5,
            presence_penalty: 0.25,
            penalty_last_n: 3,
            ..ChainParams::GREEDY
        };
        let mut c = SamplerChain::new(params, L.len()).unwrap();
        for id in [8, 8, 3, 1] {
            c.accept(id); // window of 3: 8, 3, 1 (the first 8 falls out)
        }
        assert_eq!(c.history().collect::<Vec<_>>(), [8, 3, 1]);
        c.sample(&L).unwrap();
        let w = c.penalised_logits();
        assert_eq!(w[8], 3.0 / 2.0 - 0.5 - 0.25);
        assert_eq!(w[3], -2.0 - 0.5 - 0.25);
        assert_eq!(w[1], 2.5 / 2.0 - 0.5 - 0.25);
        assert_eq!(w[0], 1.0);
        // greedy after penalties: 4 (2.0) beats 8 (0.75)
        assert_eq!(c.sample(&L).unwrap(), 4);
    }

    #[test]
    fn bias_bans_and_validates() {
        let mut c = SamplerChain::new(ChainParams::GREEDY, L.len()).unwrap();
        c.set_logit_bias(&[(8, f32::NEG_INFINITY)]).unwrap();
        assert_eq!(c.sample(&L).unwrap(), 1);
        assert!(c.set_logit_bias(&[(12, 1.0)]).is_err());
        assert!(c.set_logit_bias(&[(0, f32::NAN)]).is_err());
        assert!(SamplerChain::new(
            ChainParams {
                min_p: 1.5,
                ..ChainParams::GREEDY
            },
            4
        )
        .is_err());
    }
}
