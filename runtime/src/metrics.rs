//! Runtime metrics: what every core counts about itself, read from any
//! thread through [`RuntimeMetrics`] (tokio's `runtime::RuntimeMetrics`,
//! its stable methods, with a worker being a core).
//!
//! The counters are written by their own core only and read with relaxed
//! loads: a reading is a recent value, not a snapshot across cores. They
//! cost the hot path nothing but one atomic add per spawned and per
//! finished task; parking, which is slow anyway, records its count and
//! duration.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::core::RuntimeShared;

/// One core's counters (kept in its `CoreShared`).
pub(crate) struct CoreMetrics {
    started: Instant,
    /// Tasks owned by this core whose future still exists.
    alive_tasks: AtomicUsize,
    parks: AtomicU64,
    unparks: AtomicU64,
    /// Nanoseconds spent parked (asleep in the driver or on the eventfd).
    parked_nanos: AtomicU64,
}

impl CoreMetrics {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            alive_tasks: AtomicUsize::new(0),
            parks: AtomicU64::new(0),
            unparks: AtomicU64::new(0),
            parked_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn task_spawned(&self) {
        self.alive_tasks.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn task_finished(&self) {
        self.alive_tasks.fetch_sub(1, Ordering::Relaxed);
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
            .map(|c| c.metrics.alive_tasks.load(Ordering::Relaxed))
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
