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

/// What a worker runs for an epoch.
#[derive(Clone, Copy)]
enum Work {
    /// `f(tid, n_threads)` once on every thread.
    All(&'static Job),
    /// `f(tid, chunk)` for chunks claimed from the cursors (see `Pool::run_chunks`).
    Chunks(&'static Job),
}

/// A counter alone on its cache line.
#[repr(align(64))]
#[derive(Default)]
struct Padded(AtomicUsize);

struct Shared {
    /// Incremented for every job; workers run a job when they see a new epoch.
    epoch: AtomicUsize,
    /// Workers still running the current job.
    pending: AtomicUsize,
    /// The current job (valid while `pending > 0` for the epoch it was published with, or, for
    /// chunked jobs, while `open` holds that epoch or a worker that entered it is `inside`).
    job: Mutex<Option<(usize, Work)>>,
    /// Chunked jobs: per thread, the next chunk of its share and the end of its share.
    cursor: Box<[Padded]>,
    end: Box<[Padded]>,
    /// Chunked jobs: chunks finished, the epoch workers may still enter (0: closed), and how
    /// many workers are inside the job.
    done: Padded,
    open: Padded,
    inside: Padded,
    /// Set when a worker's job panicked.
    panicked: AtomicBool,
    /// Sleeping workers wait here; `sleepers` counts those between deciding to sleep and waking
    /// (so a new job calls the OS only when someone sleeps: a decode step publishes ~150 jobs,
    /// and `notify_all` is a futex syscall even with nobody waiting).
    sleep_lock: Mutex<()>,
    sleepers: AtomicUsize,
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
            if spins > SPIN_BEFORE_YIELD && !spins.is_multiple_of(64) {
                // A shared machine: let whoever is runnable here (maybe the thread we wait
                // for) run instead of burning the time slice.
                std::thread::yield_now();
            } else if spins.is_multiple_of(64) && start.elapsed() > SPIN_FOR {
                let guard = shared.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
                // Dekker with `Shared::publish`: we count ourselves, then look at the epoch; it
                // stores the epoch, then looks at the count (SeqCst both sides), so either we
                // see the new epoch or it sees us and notifies under the lock we hold until
                // `wait_timeout` releases it.
                shared.sleepers.fetch_add(1, Ordering::SeqCst);
                if shared.epoch.load(Ordering::SeqCst) == seen
                    && !shared.shutdown.load(Ordering::Acquire)
                {
                    let _unused = shared
                        .wake
                        .wait_timeout(guard, Duration::from_millis(50))
                        .unwrap_or_else(|p| p.into_inner());
                }
                shared.sleepers.fetch_sub(1, Ordering::SeqCst);
            } else {
                std::hint::spin_loop();
            }
        }
        // The job published with the epoch we saw (a newer one is taken on the next turn).
        let work = match *shared.job.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((e, w)) if e == seen => Some(w),
            _ => None,
        };
        match work {
            Some(Work::All(job)) => {
                if catch_unwind(AssertUnwindSafe(|| job(tid, shared.n_threads))).is_err() {
                    shared.panicked.store(true, Ordering::Release);
                }
                shared.pending.fetch_sub(1, Ordering::AcqRel);
            }
            Some(Work::Chunks(job)) => {
                // Enter (Dekker-style with `run_chunks`' close: SeqCst on both sides): if the
                // job of epoch `seen` (the one read above, tagged with it) is still open, it
                // stays alive until we leave.
                shared.inside.0.fetch_add(1, Ordering::SeqCst);
                if shared.open.0.load(Ordering::SeqCst) == seen {
                    shared.claim_loop(job, tid);
                }
                shared.inside.0.fetch_sub(1, Ordering::SeqCst);
            }
            None => {}
        }
    }
}

impl Shared {
    /// Makes `epoch` the current epoch and wakes the workers that sleep, if any.
    fn publish(&self, epoch: usize) {
        self.epoch.store(epoch, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            let _g = self.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.wake.notify_all();
        }
    }

    /// Claims chunks (own share first, then the others') and runs them until none is left.
    fn claim_loop(&self, job: &Job, tid: usize) {
        let nt = self.n_threads;
        for k in 0..nt {
            let t = (tid + k) % nt;
            let end = self.end[t].0.load(Ordering::Relaxed);
            loop {
                if self.cursor[t].0.load(Ordering::Relaxed) >= end {
                    break;
                }
                let c = self.cursor[t].0.fetch_add(1, Ordering::Relaxed);
                if c >= end {
                    break;
                }
                if catch_unwind(AssertUnwindSafe(|| job(tid, c))).is_err() {
                    self.panicked.store(true, Ordering::Release);
                }
                self.done.0.fetch_add(1, Ordering::AcqRel);
            }
        }
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
            cursor: (0..n).map(|_| Padded::default()).collect(),
            end: (0..n).map(|_| Padded::default()).collect(),
            done: Padded::default(),
            open: Padded::default(),
            inside: Padded::default(),
            panicked: AtomicBool::new(false),
            sleep_lock: Mutex::new(()),
            sleepers: AtomicUsize::new(0),
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
        let epoch = self.shared.epoch.load(Ordering::Acquire).wrapping_add(1);
        *self.shared.job.lock().unwrap_or_else(|p| p.into_inner()) = Some((epoch, Work::All(job)));
        self.shared.pending.store(n - 1, Ordering::Release);
        self.shared.publish(epoch);
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

impl Pool {
    /// Runs `f(tid, c)` for every chunk `c < n_chunks`, each exactly once, on whichever threads
    /// take part, and returns when all are done. Thread `t` starts with the `t`-th contiguous
    /// share of the chunks and then takes what is left of the others' shares, so on an idle
    /// machine each thread streams its own part, and when a worker is not running (a loaded
    /// machine) the others do its share instead of waiting for it. Workers that arrive after
    /// the last chunk was taken do not touch the job. `tid` is the running thread's index
    /// (`< n_threads`; use it for per-thread scratch). Re-raises a panic.
    pub fn run_chunks<'a>(&self, n_chunks: usize, f: &'a (dyn Fn(usize, usize) + Sync + 'a)) {
        let sh = &*self.shared;
        let n = sh.n_threads;
        if n == 1 || n_chunks <= 1 {
            for c in 0..n_chunks {
                f(0, c);
            }
            return;
        }
        for t in 0..n {
            let (lo, hi) = split(n_chunks, t, n, 1);
            sh.cursor[t].0.store(lo, Ordering::Relaxed);
            sh.end[t].0.store(hi, Ordering::Relaxed);
        }
        sh.done.0.store(0, Ordering::Relaxed);
        // SAFETY: workers use the job only between entering (`inside` incremented while `open`
        // holds this epoch) and leaving; we close the job and wait for `inside == 0` before
        // returning.
        let job: &'static Job = unsafe {
            std::mem::transmute::<&'a (dyn Fn(usize, usize) + Sync + 'a), &'static Job>(f)
        };
        let epoch = sh.epoch.load(Ordering::Acquire).wrapping_add(1);
        *sh.job.lock().unwrap_or_else(|p| p.into_inner()) = Some((epoch, Work::Chunks(job)));
        sh.open.0.store(epoch, Ordering::SeqCst);
        sh.publish(epoch);
        sh.claim_loop(job, 0);
        let mut spins = 0u32;
        while sh.done.0.load(Ordering::Acquire) < n_chunks {
            spins = spins.saturating_add(1);
            if spins > SPIN_BEFORE_YIELD {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        sh.open.0.store(0, Ordering::SeqCst);
        while sh.inside.0.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
            std::thread::yield_now();
        }
        *sh.job.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if sh.panicked.swap(false, Ordering::AcqRel) {
            panic!("a chunk of a parallel job panicked");
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
    fn run_chunks_runs_every_chunk_once() {
        for nt in [1usize, 2, 3] {
            let pool = Pool::new(nt);
            for n_chunks in [0usize, 1, 2, 5, 64, 1000] {
                let hits: Vec<AtomicU64> = (0..n_chunks).map(|_| AtomicU64::new(0)).collect();
                let bad_tid = AtomicU64::new(0);
                for _ in 0..20 {
                    pool.run_chunks(n_chunks, &|tid, c| {
                        if tid >= nt {
                            bad_tid.fetch_add(1, Ordering::Relaxed);
                        }
                        hits[c].fetch_add(1, Ordering::Relaxed);
                    });
                }
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 20));
                assert_eq!(bad_tid.load(Ordering::Relaxed), 0);
            }
        }
    }

    #[test]
    fn run_chunks_and_run_interleave() {
        // Alternating the two kinds of jobs: no job runs twice or is missed.
        let pool = Pool::new(2);
        let (a, b) = (AtomicU64::new(0), AtomicU64::new(0));
        for i in 0..5000 {
            if i % 3 == 0 {
                pool.run(&|_, _| {
                    a.fetch_add(1, Ordering::Relaxed);
                });
            } else {
                pool.run_chunks(3, &|_, _| {
                    b.fetch_add(1, Ordering::Relaxed);
                });
            }
        }
        assert_eq!(a.load(Ordering::Relaxed), 2 * 1667);
        assert_eq!(b.load(Ordering::Relaxed), 3 * 3333);
    }

    #[test]
    fn run_chunks_panic_is_reported_and_pool_survives() {
        let pool = Pool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run_chunks(16, &|_, c| {
                if c == 11 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        let count = AtomicU64::new(0);
        pool.run_chunks(16, &|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 16);
    }

    #[test]
    fn sleeping_workers_are_woken() {
        // Past SPIN_FOR the worker sleeps; each job must wake it at once (a missed wake-up
        // would show as the 50 ms wait timeout). Both kinds of jobs, 20 times each.
        let pool = Pool::new(2);
        let mut lat = Vec::new();
        for i in 0..40 {
            std::thread::sleep(SPIN_FOR * 3);
            let seen = AtomicU64::new(0);
            let t0 = Instant::now();
            if i % 2 == 0 {
                pool.run(&|tid, _| {
                    seen.fetch_add(1 << (16 * tid), Ordering::Relaxed);
                });
                assert_eq!(seen.load(Ordering::Relaxed), 1 + (1 << 16));
            } else {
                // The caller takes chunks too, so only the completion is checked here.
                pool.run_chunks(4, &|_, _| {
                    seen.fetch_add(1, Ordering::Relaxed);
                });
                assert_eq!(seen.load(Ordering::Relaxed), 4);
            }
            lat.push(t0.elapsed());
        }
        // `run` waits for the worker: its median latency is the wake-up's.
        let mut runs: Vec<_> = lat.iter().step_by(2).copied().collect();
        runs.sort();
        assert!(runs[runs.len() / 2] < Duration::from_millis(25), "{runs:?}");
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
            let t0 = Instant::now();
            for _ in 0..n {
                pool.run_chunks(16, &|_, _| {});
            }
            let dt = t0.elapsed().as_secs_f64() / n as f64;
            println!("{nt} threads: {:.2} us per empty 16-chunk region", dt * 1e6);
        }
    }
}
