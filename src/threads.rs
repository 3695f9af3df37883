//! The thread pool the kernels run in.
//!
//! The size is `set_num_threads(n)` if called, else `RAYON_NUM_THREADS` if set to a
//! positive integer, else the number of available CPUs. The pool is rebuilt after a
//! `fork` (it is keyed by process id), because the parent's worker threads do not
//! exist in the child.

use std::sync::{Arc, Mutex};

use rayon::ThreadPool;

struct PoolState {
    pid: u32,
    threads: usize,
    pool: Arc<ThreadPool>,
}

static STATE: Mutex<Option<PoolState>> = Mutex::new(None);
static REQUESTED: Mutex<Option<usize>> = Mutex::new(None);

fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Sets the number of threads used by later kernel calls; `None` restores the
/// default. `Some(0)` is rejected.
pub fn set_num_threads(threads: Option<usize>) -> Result<(), String> {
    if threads == Some(0) {
        return Err("number of threads must be at least 1, got 0".to_string());
    }
    *REQUESTED.lock().unwrap_or_else(|e| e.into_inner()) = threads;
    Ok(())
}

/// The number of threads later kernel calls will use.
pub fn get_num_threads() -> usize {
    REQUESTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_else(default_threads)
}

fn pool() -> Arc<ThreadPool> {
    let threads = get_num_threads();
    let pid = std::process::id();
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = state.as_ref() {
        if s.pid == pid && s.threads == threads {
            return Arc::clone(&s.pool);
        }
    }
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("acbmse-{i}"))
            .build()
            .expect("failed to start the kernel thread pool"),
    );
    if let Some(old) = state.replace(PoolState {
        pid,
        threads,
        pool: Arc::clone(&pool),
    }) {
        if old.pid != pid {
            // A pool inherited through fork has no threads in this process; dropping
            // it would try to signal them. Leak it instead.
            std::mem::forget(old);
        }
    }
    pool
}

/// `f(state, k)` for every `k` in `0..n`, results in index order, computed by the
/// calling thread together with the pool's workers; `init` makes one scratch state
/// per participating thread.
///
/// The caller starts on the tasks at once and the workers join as soon as they are
/// awake, so a call never waits for a sleeping worker to wake before work starts
/// (on virtual machines a wake-up can cost as much as several tasks).
pub fn parallel_map<R, S, I, F>(n: usize, init: I, f: F) -> Vec<R>
where
    R: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, usize) -> R + Sync,
{
    use std::sync::atomic::{AtomicUsize, Ordering};

    let pool = pool();
    let next = AtomicUsize::new(0);
    // One slot per task, each written once by whichever thread claimed the task.
    let slots: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let work = || {
        let mut state = None;
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= n {
                break;
            }
            let state = state.get_or_insert_with(&init);
            let result = f(state, k);
            *slots[k].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        }
    };
    let helpers = pool.current_num_threads().min(n).saturating_sub(1);
    pool.in_place_scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| work());
        }
        work();
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every task ran")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_order_and_runs_every_task() {
        let got = parallel_map(1000, Vec::<usize>::new, |seen, k| {
            seen.push(k);
            k * k
        });
        assert_eq!(got, (0..1000).map(|k| k * k).collect::<Vec<_>>());
        assert!(parallel_map(0, || (), |_, k| k).is_empty());
    }

    #[test]
    fn set_and_get() {
        set_num_threads(Some(3)).unwrap();
        assert_eq!(get_num_threads(), 3);
        assert_eq!(pool().current_num_threads(), 3);
        assert!(set_num_threads(Some(0)).is_err());
        assert_eq!(get_num_threads(), 3);
        set_num_threads(None).unwrap();
        assert!(get_num_threads() >= 1);
    }
}
