//! A persistent fork-join thread pool for the forward pass.
//!
//! `run(f)` calls `f(tid, n)` once on each of the `n` threads (the caller is thread 0) and returns
//! when all have finished. Dispatch allocates nothing: the job is a borrowed `&dyn Fn` whose
//! lifetime is erased for the duration of the call. Workers spin briefly on an epoch counter
//! (a decode step runs a few hundred parallel regions, so waking through the OS each time would
//! dominate), then sleep on a condition variable.
//!
//! One process-wide pool serves the forward pass. A caller that finds it busy (another thread is
//! running a forward on another context) runs single-threaded instead of waiting: every output
//! element is computed by exactly one thread with the same arithmetic, so results do not depend
//! on the thread count.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Job = dyn Fn(usize, usize) + Sync;

struct Shared {
    /// Incremented for every job; workers run a job when they see a new epoch.
    epoch: AtomicUsize,
    /// Workers still running the current job.
    pending: AtomicUsize,
    /// The current job (valid while `pending > 0` for the epoch it was published with).
    job: Mutex<Option<&'static Job>>,
    /// Set when a worker's job panicked.
    panicked: AtomicBool,
    /// Sleeping workers wait here.
    sleep_lock: Mutex<()>,
    wake: Condvar,
    shutdown: AtomicBool,
    n_threads: usize,
}

/// A fixed set of worker threads plus the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

const SPIN_FOR: Duration = Duration::from_millis(2);

/// Busy-wait iterations before a waiting thread starts yielding its time slice.
const SPIN_BEFORE_YIELD: u32 = 4000;

fn worker_loop(shared: Arc<Shared>, tid: usize) {
    let mut seen = 0usize;
    loop {
        // Wait for a new epoch: spin first, then sleep.
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            let e = shared.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            spins += 1;
            if spins > SPIN_BEFORE_YIELD && spins % 64 != 0 {
                // A shared machine: let whoever is runnable here (maybe the thread we wait
                // for) run instead of burning the time slice.
                std::thread::yield_now();
            } else if spins % 64 == 0 && start.elapsed() > SPIN_FOR {
                let guard = shared.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
                if shared.epoch.load(Ordering::Acquire) == seen
                    && !shared.shutdown.load(Ordering::Acquire)
                {
                    let _unused = shared
                        .wake
                        .wait_timeout(guard, Duration::from_millis(50))
                        .unwrap_or_else(|p| p.into_inner());
                }
            } else {
                std::hint::spin_loop();
            }
        }
        let job = *shared.job.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = job {
            if catch_unwind(AssertUnwindSafe(|| job(tid, shared.n_threads))).is_err() {
                shared.panicked.store(true, Ordering::Release);
            }
        }
        shared.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    /// A pool of `n_threads` threads in all (the caller counts as one); at least 1.
    pub fn new(n_threads: usize) -> Pool {
        let n = n_threads.max(1);
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            job: Mutex::new(None),
            panicked: AtomicBool::new(false),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
            n_threads: n,
        });
        let workers = (1..n)
            .filter_map(|tid| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("qorus-worker-{tid}"))
                    .spawn(move || worker_loop(s, tid))
                    .ok()
            })
            .collect::<Vec<_>>();
        // If a spawn failed, run with the threads we have.
        let actual = workers.len() + 1;
        if actual != n {
            let pool = Pool { shared, workers };
            drop(pool);
            return Pool::new(actual);
        }
        Pool { shared, workers }
    }

    /// Threads in this pool, the caller included.
    pub fn n_threads(&self) -> usize {
        self.shared.n_threads
    }

    /// Runs `f(tid, n_threads)` on every thread and waits for all of them. Re-raises a panic.
    pub fn run<'a>(&self, f: &'a (dyn Fn(usize, usize) + Sync + 'a)) {
        let n = self.shared.n_threads;
        if n == 1 {
            f(0, 1);
            return;
        }
        // SAFETY: the job reference is only used by workers between the epoch bump below and
        // `pending` reaching zero, and we do not return before that.
        let job: &'static Job = unsafe {
            std::mem::transmute::<&'a (dyn Fn(usize, usize) + Sync + 'a), &'static Job>(f)
        };
        *self.shared.job.lock().unwrap_or_else(|p| p.into_inner()) = Some(job);
        self.shared.pending.store(n - 1, Ordering::Release);
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
        {
            let _g = self
                .shared
                .sleep_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.shared.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0, n)));
        let mut spins = 0u32;
        while self.shared.pending.load(Ordering::Acquire) != 0 {
            spins = spins.saturating_add(1);
            if spins > SPIN_BEFORE_YIELD {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        *self.shared.job.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if self.shared.panicked.swap(false, Ordering::AcqRel) {
            panic!("a worker thread panicked");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        {
            let _g = self
                .shared
                .sleep_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A pool of one thread: for callers that find the global pool busy.
static SOLO: OnceLock<Pool> = OnceLock::new();

fn global() -> &'static Mutex<Option<Pool>> {
    static GLOBAL: OnceLock<Mutex<Option<Pool>>> = OnceLock::new();
    GLOBAL.get_or_init(|| Mutex::new(None))
}

/// The default thread count: `QORUS_NUM_THREADS` if set and valid, else the number of cores
/// (read once: looking it up reads the environment and cgroup files, which allocates).
pub fn default_threads() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(read_default_threads)
}

fn read_default_threads() -> usize {
    std::env::var("QORUS_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .min(256)
}

static REQUESTED: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads the forward pass uses (0 = the default).
pub fn set_num_threads(n: usize) {
    REQUESTED.store(n.min(256), Ordering::Release);
}

/// The number of threads the forward pass will use.
pub fn num_threads() -> usize {
    match REQUESTED.load(Ordering::Acquire) {
        0 => default_threads(),
        n => n,
    }
}

/// Access to a pool for one forward call.
pub enum PoolGuard {
    /// The global pool, held for the duration of the call.
    Global(MutexGuard<'static, Option<Pool>>),
    /// The single-threaded fallback.
    Solo(&'static Pool),
}

impl std::ops::Deref for PoolGuard {
    type Target = Pool;
    fn deref(&self) -> &Pool {
        match self {
            PoolGuard::Global(g) => g.as_ref().expect("pool initialised"),
            PoolGuard::Solo(p) => p,
        }
    }
}

/// Takes the global pool (creating or resizing it to `num_threads()`), or the single-threaded
/// fallback when another thread is using it.
pub fn acquire() -> PoolGuard {
    let want = num_threads();
    match global().try_lock() {
        Ok(mut g) => {
            if g.as_ref().is_none_or(|p| p.n_threads() != want) {
                *g = None; // join old workers first
                *g = Some(Pool::new(want));
            }
            PoolGuard::Global(g)
        }
        Err(std::sync::TryLockError::Poisoned(p)) => {
            let mut g = p.into_inner();
            *g = Some(Pool::new(want));
            PoolGuard::Global(g)
        }
        Err(std::sync::TryLockError::WouldBlock) => {
            PoolGuard::Solo(SOLO.get_or_init(|| Pool::new(1)))
        }
    }
}

/// The part `[lo, hi)` of `0..n` that thread `tid` of `nt` takes, with boundaries rounded to
/// multiples of `align` (the last part takes the remainder).
pub fn split(n: usize, tid: usize, nt: usize, align: usize) -> (usize, usize) {
    let align = align.max(1);
    let units = n.div_ceil(align);
    let lo = (units * tid / nt * align).min(n);
    let hi = if tid + 1 == nt {
        n
    } else {
        (units * (tid + 1) / nt * align).min(n)
    };
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_thread_runs_once_per_job() {
        let pool = Pool::new(3);
        let count = AtomicU64::new(0);
        for _ in 0..1000 {
            pool.run(&|tid, n| {
                assert!(tid < n);
                count.fetch_add(1 << (tid * 16), Ordering::Relaxed);
            });
        }
        let c = count.load(Ordering::Relaxed);
        assert_eq!(
            (c & 0xffff, (c >> 16) & 0xffff, c >> 32),
            (1000, 1000, 1000)
        );
    }

    #[test]
    fn split_covers_the_range() {
        for n in [0, 1, 7, 64, 100, 577] {
            for nt in 1..5 {
                let mut next = 0;
                for t in 0..nt {
                    let (lo, hi) = split(n, t, nt, 16);
                    assert_eq!(lo, next);
                    assert!(hi >= lo);
                    next = hi;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn worker_panic_is_reported_and_pool_survives() {
        let pool = Pool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|tid, _| {
                if tid == 1 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        let count = AtomicU64::new(0);
        pool.run(&|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }
}

#[cfg(test)]
mod bench {
    use super::*;

    /// Per-region cost of an empty job (run with `--ignored --nocapture`).
    #[test]
    #[ignore = "timing, prints only"]
    fn region_cost() {
        for nt in [1usize, 2] {
            let pool = Pool::new(nt);
            let n = 20000;
            let t0 = Instant::now();
            for _ in 0..n {
                pool.run(&|_, _| {});
            }
            let dt = t0.elapsed().as_secs_f64() / n as f64;
            println!("{nt} threads: {:.2} us per empty region", dt * 1e6);
        }
    }
}
