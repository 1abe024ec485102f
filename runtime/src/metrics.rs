//! Runtime metrics: what every core counts about itself, read from any
//! thread through [`RuntimeMetrics`] (tokio's `runtime::RuntimeMetrics`,
//! its stable methods, with a worker being a core).
//!
//! The counters are read with relaxed loads: a reading is a recent
//! value, not a snapshot across cores. The task counters cost the hot
//! path no atomic read-modify-write: a task spawned or finished on its
//! own core's thread is counted in a counter only that thread writes, by
//! a plain load and store ([`OwnerCounter`]); only work counted from
//! another thread (`spawn_on`, a `Send` task dropped elsewhere) pays an
//! atomic add. Parking, which is slow anyway, records its count and
//! duration.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::core::RuntimeShared;

/// A counter written by one thread only (its core's) and read from any:
/// an increment is a relaxed load and store, which compile to plain moves,
/// where `fetch_add` would be a locked instruction.
struct OwnerCounter(AtomicU64);

impl OwnerCounter {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Adds one. Only the owning thread may call it: two writers could
    /// lose a count.
    fn increment_on_owner(&self) {
        self.0
            .store(self.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Which thread counts a task event: the core's own, or another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counted {
    /// The core's own thread (no atomic read-modify-write).
    OnOwner,
    /// Any other thread (an atomic add).
    Elsewhere,
}

/// One core's counters (kept in its `CoreShared`).
pub(crate) struct CoreMetrics {
    started: Instant,
    /// Tasks of this core spawned / finished on the core's thread.
    spawned_on_owner: OwnerCounter,
    finished_on_owner: OwnerCounter,
    /// Tasks of this core spawned / finished on other threads.
    spawned_elsewhere: AtomicU64,
    finished_elsewhere: AtomicU64,
    parks: AtomicU64,
    unparks: AtomicU64,
    /// Nanoseconds spent parked (asleep in the driver or on the eventfd).
    parked_nanos: AtomicU64,
}

impl CoreMetrics {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            spawned_on_owner: OwnerCounter::new(),
            finished_on_owner: OwnerCounter::new(),
            spawned_elsewhere: AtomicU64::new(0),
            finished_elsewhere: AtomicU64::new(0),
            parks: AtomicU64::new(0),
            unparks: AtomicU64::new(0),
            parked_nanos: AtomicU64::new(0),
        }
    }

    /// A task of this core was created, on the thread `by`.
    pub(crate) fn task_spawned(&self, by: Counted) {
        match by {
            Counted::OnOwner => self.spawned_on_owner.increment_on_owner(),
            Counted::Elsewhere => {
                self.spawned_elsewhere.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A task of this core finished (its future is gone), on the thread `by`.
    pub(crate) fn task_finished(&self, by: Counted) {
        match by {
            Counted::OnOwner => self.finished_on_owner.increment_on_owner(),
            Counted::Elsewhere => {
                self.finished_elsewhere.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Tasks spawned and not finished. Finishes are read first: a task
    /// counted as finished was counted as spawned before, so the
    /// difference cannot go below the truth by a task read in between.
    fn alive_tasks(&self) -> usize {
        let finished =
            self.finished_on_owner.get() + self.finished_elsewhere.load(Ordering::Relaxed);
        let spawned = self.spawned_on_owner.get() + self.spawned_elsewhere.load(Ordering::Relaxed);
        usize::try_from(spawned.saturating_sub(finished)).unwrap_or(usize::MAX)
    }

    /// The core is going to sleep.
    pub(crate) fn park_started(&self) {
        self.parks.fetch_add(1, Ordering::Relaxed);
    }

    /// The core woke up from a park that lasted `slept`.
    pub(crate) fn park_ended(&self, slept: Duration) {
        self.unparks.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(slept.as_nanos()).unwrap_or(u64::MAX);
        self.parked_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn busy(&self) -> Duration {
        let parked = Duration::from_nanos(self.parked_nanos.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(parked)
    }
}

/// A runtime's metrics ([`Handle::metrics`](crate::runtime::Handle::metrics),
/// tokio's `RuntimeMetrics`). A *worker* is a core: worker `i` is core `i`,
/// core 0 included (the thread that calls `block_on`).
///
/// ```
/// let rt = insane_runtime::runtime::Runtime::builder().cores(2).build()?;
/// let metrics = rt.handle().metrics();
/// assert_eq!(metrics.num_workers(), 2);
/// let task = rt.spawn(std::future::pending::<()>());
/// assert_eq!(metrics.num_alive_tasks(), 1);
/// task.abort();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct RuntimeMetrics {
    runtime: Arc<RuntimeShared>,
}

impl RuntimeMetrics {
    pub(crate) fn new(runtime: Arc<RuntimeShared>) -> Self {
        Self { runtime }
    }

    /// The number of cores (tokio: worker threads).
    pub fn num_workers(&self) -> usize {
        self.runtime.cores.len()
    }

    /// Tasks spawned on the runtime's cores whose future has not finished
    /// yet (completed, cancelled or aborted), blocking closures excluded,
    /// as tokio counts.
    pub fn num_alive_tasks(&self) -> usize {
        self.runtime
            .cores
            .iter()
            .map(|c| c.metrics.alive_tasks())
            .sum()
    }

    /// Tasks handed to a core from another thread (`spawn_on`, wakes from
    /// other threads) that the core has not taken into its run queue yet:
    /// the closest thing insane has to tokio's global queue.
    pub fn global_queue_depth(&self) -> usize {
        self.runtime.cores.iter().map(|c| c.remote_len()).sum()
    }

    /// How many times core `worker` has parked (slept in its driver).
    ///
    /// # Panics
    /// `worker >= num_workers()`, as tokio.
    pub fn worker_park_count(&self, worker: usize) -> u64 {
        self.runtime.cores[worker]
            .metrics
            .parks
            .load(Ordering::Relaxed)
    }

    /// Parks plus unparks of core `worker`: odd while the core is asleep
    /// (tokio's count).
    ///
    /// # Panics
    /// `worker >= num_workers()`.
    pub fn worker_park_unpark_count(&self, worker: usize) -> u64 {
        let metrics = &self.runtime.cores[worker].metrics;
        metrics.parks.load(Ordering::Relaxed) + metrics.unparks.load(Ordering::Relaxed)
    }

    /// How long core `worker` has been busy since it started: its life
    /// minus the time it spent parked. Unlike tokio, time spent spinning
    /// (busy-polling its drivers while idle, [`IdlePolicy`](crate::runtime::IdlePolicy))
    /// counts as busy: the core holds its CPU then. A park still in
    /// progress counts as busy until it ends.
    ///
    /// # Panics
    /// `worker >= num_workers()`.
    pub fn worker_total_busy_duration(&self, worker: usize) -> Duration {
        self.runtime.cores[worker].metrics.busy()
    }
}

impl fmt::Debug for RuntimeMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeMetrics")
            .field("num_workers", &self.num_workers())
            .field("num_alive_tasks", &self.num_alive_tasks())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use crate::runtime::{IdlePolicy, Runtime, RuntimeFlavor};

    #[test]
    fn alive_tasks_are_counted_until_they_finish_or_are_aborted() {
        let rt = Runtime::builder().cores(2).build().unwrap();
        let metrics = rt.metrics();
        assert_eq!(metrics.num_workers(), 2);
        assert_eq!(metrics.num_alive_tasks(), 0);
        let pending = rt.spawn(std::future::pending::<()>());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let quick = rt.spawn(async move { drop(tx) });
        let _ = rx.recv();
        rt.block_on(async {
            quick.await.unwrap();
            assert_eq!(metrics.num_alive_tasks(), 1, "the pending task only");
            pending.abort();
            assert!(pending.await.unwrap_err().is_cancelled());
            assert_eq!(metrics.num_alive_tasks(), 0);
        });
    }

    #[test]
    fn tasks_counted_on_their_core_and_from_other_threads_add_up() {
        let rt = Runtime::builder().cores(2).build().unwrap();
        let metrics = rt.metrics();
        rt.block_on(async {
            // Spawned on core 0's own thread (counted there), and handed
            // to core 1 from core 0 (counted by the spawning thread).
            let here: Vec<_> = (0..10)
                .map(|_| crate::task::spawn(std::future::pending::<()>()))
                .collect();
            let there: Vec<_> = (0..5)
                .map(|_| crate::task::spawn_on(1, std::future::pending::<()>()))
                .collect();
            assert_eq!(metrics.num_alive_tasks(), 15);
            // Finished on core 0's thread, and on core 1's.
            for task in here.iter().chain(&there) {
                task.abort();
            }
            for task in here.into_iter().chain(there) {
                assert!(task.await.unwrap_err().is_cancelled());
            }
            assert_eq!(metrics.num_alive_tasks(), 0);
            let done = crate::task::spawn_on(1, async { crate::task::spawn(async {}).await });
            done.await.unwrap().unwrap();
            assert_eq!(metrics.num_alive_tasks(), 0, "core 1 counted its own spawn");
        });
    }

    #[test]
    fn a_parked_core_counts_its_parks_and_is_not_busy_while_asleep() {
        let rt = Runtime::builder()
            .cores(1)
            .idle(IdlePolicy::Park)
            .build()
            .unwrap();
        let metrics = rt.metrics();
        let start = std::time::Instant::now();
        rt.block_on(crate::time::sleep(Duration::from_millis(50)));
        let elapsed = start.elapsed();
        assert!(metrics.worker_park_count(0) >= 1);
        // Awake now: as many unparks as parks.
        assert_eq!(
            metrics.worker_park_unpark_count(0),
            2 * metrics.worker_park_count(0)
        );
        let busy = metrics.worker_total_busy_duration(0);
        assert!(busy < elapsed, "busy {busy:?} of {elapsed:?}");
    }

    #[test]
    fn flavor_follows_the_number_of_cores() {
        let one = Runtime::builder().cores(1).build().unwrap();
        assert_eq!(one.handle().runtime_flavor(), RuntimeFlavor::CurrentThread);
        let two = Runtime::builder().cores(2).build().unwrap();
        assert_eq!(two.handle().runtime_flavor(), RuntimeFlavor::MultiThread);
    }

    #[test]
    fn stop_hooks_run_once_per_core_after_its_tasks_are_dropped() {
        let stopped = Arc::new(AtomicUsize::new(0));
        let dropped_first = Arc::new(AtomicUsize::new(0));
        struct Guard(Arc<AtomicUsize>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (s, d) = (stopped.clone(), dropped_first.clone());
        let rt = Runtime::builder()
            .cores(2)
            .on_core_stop(Arc::new(move |_| {
                // The task's guard on this core was dropped before.
                if d.load(Ordering::SeqCst) > 0 {
                    s.fetch_add(1, Ordering::SeqCst);
                }
            }))
            .build()
            .unwrap();
        let guard = Guard(dropped_first.clone());
        rt.block_on(async {
            crate::task::spawn_on(1, async move {
                let _g = guard;
                std::future::pending::<()>().await
            });
            crate::task::yield_now().await;
        });
        drop(rt);
        assert_eq!(dropped_first.load(Ordering::SeqCst), 1);
        assert!(stopped.load(Ordering::SeqCst) >= 1);
    }

    #[test]
    fn worker_threads_get_the_configured_stack_size() {
        #[inline(never)]
        fn use_stack() -> u8 {
            let big = [1u8; 4 << 20];
            std::hint::black_box(&big)[4 << 19]
        }
        let rt = Runtime::builder()
            .cores(2)
            .thread_stack_size(16 << 20)
            .build()
            .unwrap();
        let out = rt.block_on(async { crate::task::spawn_on(1, async { use_stack() }).await });
        assert_eq!(out.unwrap(), 1);
    }
}
