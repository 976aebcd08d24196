//! Persistent workers for the products of a forward pass.
//!
//! A decode step of a small model is a few hundred matrix–vector products of 10–50 µs each. Handed
//! to rayon one by one, each pays for waking sleeping threads (tens of µs), which is most of the
//! product: two threads barely beat one. Here the workers stay awake between products: after a
//! job each spins for [`SPIN`] waiting for the next one (a decode step's products follow each
//! other within µs), and only then sleeps until woken. The caller takes part in every job.
//!
//! A job is `parts` calls of a closure, part `i` run by thread `i % threads` (the caller is thread
//! 0): the split is fixed by the part count, and each part writes its own rows, so results do not
//! depend on which thread ran what. One job runs at a time; a caller that finds the pool busy (two
//! requests decoding at once) runs its parts itself, which is what a busy machine wants anyway.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker spins for the next job before it sleeps.
pub const SPIN: Duration = Duration::from_micros(200);

static GLOBAL: OnceLock<Pool> = OnceLock::new();

/// `MYCEL_THREADS`, else `RAYON_NUM_THREADS`, else the CPUs available.
fn default_threads() -> usize {
    ["MYCEL_THREADS", "RAYON_NUM_THREADS"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// A job's closure, borrowed for the duration of [`Pool::run`].
type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped when a job is published.
    generation: AtomicU64,
    /// The job of the current generation and its part count.
    job: UnsafeCell<(Option<Job>, usize)>,
    /// Workers that have not finished the current job.
    running: AtomicUsize,
    /// Sleeping workers wait here for a new generation.
    sleep: Mutex<u64>,
    wake: Condvar,
    stop: AtomicBool,
}

// SAFETY: `job` is written only by the dispatcher holding `dispatch` while no worker reads it
// (before the generation is bumped, after every worker of the previous job finished), and read by
// workers only between seeing a new generation and decrementing `running`.
unsafe impl Sync for Shared {}
// SAFETY: the only field that is not `Send` is the raw pointer in `job`, which points to a
// `Sync` closure and is only dereferenced under the rules above.
unsafe impl Send for Shared {}

/// A fixed set of worker threads (see the module docs).
pub struct Pool {
    shared: Arc<Shared>,
    /// Threads taking part in a job, the caller included.
    threads: usize,
    dispatch: Mutex<()>,
}

impl Pool {
    /// A pool of `threads` (at least 1; the caller counts as one, so `threads - 1` are spawned).
    pub fn new(threads: usize) -> Pool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            job: UnsafeCell::new((None, 0)),
            running: AtomicUsize::new(0),
            sleep: Mutex::new(0),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        for index in 1..threads {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("mycel-infer-{index}"))
                .spawn(move || worker(&shared, index, threads))
                .expect("cannot start an inference worker thread");
        }
        Pool {
            shared,
            threads,
            dispatch: Mutex::new(()),
        }
    }

    /// The pool the kernels use, made on first use with [`Pool::init_global`]'s thread count, or
    /// else `MYCEL_THREADS`, `RAYON_NUM_THREADS`, or the CPUs available.
    pub fn global() -> &'static Pool {
        GLOBAL.get_or_init(|| Pool::new(default_threads()))
    }

    /// Makes the global pool with `threads` threads; `Err` with its thread count if it exists
    /// already (the kernels have run).
    pub fn init_global(threads: usize) -> Result<(), usize> {
        let mut made = false;
        let pool = GLOBAL.get_or_init(|| {
            made = true;
            Pool::new(threads)
        });
        if made || pool.threads == threads.max(1) {
            Ok(())
        } else {
            Err(pool.threads)
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `part(i)` for every `i < parts`, spread over the pool's threads (the caller's
    /// included), and returns when all are done. When the pool is busy with another caller's job,
    /// or has one thread, every part runs on the calling thread, in order.
    pub fn run(&self, parts: usize, part: &(dyn Fn(usize) + Sync)) {
        let guard = if self.threads > 1 && parts > 1 {
            self.dispatch.try_lock().ok()
        } else {
            None
        };
        let Some(_guard) = guard else {
            (0..parts).for_each(part);
            return;
        };
        let shared = &*self.shared;
        // SAFETY: the pointer is to a closure that outlives this call: every worker has finished
        // with it (`running` back to 0) before `run` returns. The lifetime is erased only to
        // store it; no worker keeps it past the job.
        let job: Job = unsafe {
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), Job>(part as *const _)
        };
        // SAFETY: we hold `dispatch` and the previous job's workers are done (`running` is 0
        // when the previous `run` returned), so nobody reads `job` now.
        unsafe { *shared.job.get() = (Some(job), parts) };
        shared.running.store(self.threads - 1, Ordering::Release);
        let generation = shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        {
            let mut published = shared.sleep.lock().unwrap_or_else(|p| p.into_inner());
            *published = generation;
        }
        shared.wake.notify_all();
        // The caller's share.
        (0..parts).step_by(self.threads).for_each(part);
        while shared.running.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let mut published = self.shared.sleep.lock().unwrap_or_else(|p| p.into_inner());
        *published = u64::MAX;
        drop(published);
        self.shared.wake.notify_all();
    }
}

fn worker(shared: &Shared, index: usize, threads: usize) {
    let mut seen = 0u64;
    loop {
        // Spin for the next generation, then sleep until one is published.
        let started = Instant::now();
        let mut spins = 0u32;
        let generation = loop {
            let now = shared.generation.load(Ordering::Acquire);
            if now != seen {
                break now;
            }
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && started.elapsed() > SPIN {
                let mut published = shared.sleep.lock().unwrap_or_else(|p| p.into_inner());
                while *published == seen && !shared.stop.load(Ordering::Acquire) {
                    published = shared
                        .wake
                        .wait(published)
                        .unwrap_or_else(|p| p.into_inner());
                }
                drop(published);
                if shared.stop.load(Ordering::Acquire) {
                    return;
                }
                continue;
            }
            std::hint::spin_loop();
        };
        seen = generation;
        // SAFETY: a new generation was published with its job, which stays valid until this
        // worker decrements `running` (the dispatcher waits for that).
        let (job, parts) = unsafe { *shared.job.get() };
        if let Some(job) = job {
            // SAFETY: see above: the closure is alive until `running` reaches 0.
            let part = unsafe { &*job };
            (index..parts).step_by(threads).for_each(part);
        }
        shared.running.fetch_sub(1, Ordering::AcqRel);
    }
}
