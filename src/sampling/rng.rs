//! The sampler's random number generator (spec §3.6.1): xorshift64* with one 64-bit state per
//! thread, initial state 123456789, one draw per non-greedy sample.

use std::cell::Cell;

/// The state every thread starts with (and what seed 0 is replaced by).
pub const DEFAULT_SEED: u64 = 123_456_789;

/// xorshift64* as the original: shifts 12 / 25 / 27, multiplier 0x2545F4914F6CDD1D, output = the
/// upper 32 bits of the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Default for Rng {
    fn default() -> Self {
        Self::new(DEFAULT_SEED)
    }
}

impl Rng {
    /// A generator with state `seed`; 0 (a fixed point of xorshift) becomes [`DEFAULT_SEED`].
    pub const fn new(seed: u64) -> Self {
        Self {
            state: if seed == 0 { DEFAULT_SEED } else { seed },
        }
    }

    /// The current 64-bit state.
    pub const fn state(&self) -> u64 {
        self.state
    }

    /// One step: advances the state and returns the upper 32 bits of `state * 0x2545F4914F6CDD1D`.
    pub fn next_u32(&mut self) -> u32 {
        let mut s = self.state;
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        self.state = s;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// The 24-bit numerator of the next uniform draw: `next_u32() >> 8`.
    pub fn next_u24(&mut self) -> u32 {
        self.next_u32() >> 8
    }

    /// The next uniform draw `u = (r >> 8) / 2^24` in `[0, 1)` (exact in `f32`).
    pub fn next_unit(&mut self) -> f32 {
        self.next_u24() as f32 * (1.0 / 16_777_216.0)
    }
}

thread_local! {
    static THREAD_RNG: Cell<Rng> = const { Cell::new(Rng::new(DEFAULT_SEED)) };
}

/// Runs `f` with the calling thread's RNG (the one `q_sample_token` and generation use) and stores
/// the advanced state back. Do not nest calls: an inner call's draws would be overwritten.
pub fn with_thread_rng<R>(f: impl FnOnce(&mut Rng) -> R) -> R {
    THREAD_RNG.with(|cell| {
        let mut rng = cell.get();
        let out = f(&mut rng);
        cell.set(rng);
        out
    })
}

/// Reseeds the calling thread's RNG (`q_set_seed`); 0 means [`DEFAULT_SEED`].
pub fn set_thread_seed(seed: u64) {
    THREAD_RNG.with(|cell| cell.set(Rng::new(seed)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec §8.1: the first six 24-bit numerators of a fresh thread.
    #[test]
    fn spec_vector() {
        let mut r = Rng::default();
        let got: Vec<u32> = (0..6).map(|_| r.next_u24()).collect();
        assert_eq!(
            got,
            [15_581_379, 8_295_156, 4_763_359, 2_139_863, 10_450_225, 7_980_677]
        );
        let mut r = Rng::default();
        let u = r.next_unit();
        assert!((u as f64 - 0.928_722_560_4).abs() < 1e-9, "{u}");
    }

    #[test]
    fn fresh_threads_start_at_default_and_seed_zero_is_default() {
        let here = std::thread::spawn(|| with_thread_rng(|r| r.next_u24()))
            .join()
            .unwrap();
        assert_eq!(here, 15_581_379);
        std::thread::spawn(|| {
            set_thread_seed(7);
            let a = with_thread_rng(|r| r.next_u32());
            set_thread_seed(7);
            assert_eq!(with_thread_rng(|r| r.next_u32()), a);
            set_thread_seed(0);
            assert_eq!(with_thread_rng(|r| *r), Rng::new(DEFAULT_SEED));
        })
        .join()
        .unwrap();
        assert_eq!(Rng::new(0).state(), DEFAULT_SEED);
    }
}
