//! Executor semantics, written as specifications.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::channel::oneshot;
use insane_runtime::runtime::{IdlePolicy, Runtime};
use insane_runtime::task::{self, JoinSet};

mod support;
use support::DropCounter;

fn rt(cores: usize) -> Runtime {
    Runtime::builder()
        .cores(cores)
        .build()
        .expect("runtime starts")
}

#[test]
fn block_on_returns_the_future_output() {
    assert_eq!(rt(1).block_on(async { 7 }), 7);
}

#[test]
fn spawned_tasks_run_in_spawn_order_and_join_gives_their_output() {
    let order = rt(1).block_on(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = (0..5)
            .map(|i| {
                let log = log.clone();
                task::spawn_local(async move {
                    log.borrow_mut().push(i);
                    i * 10
                })
            })
            .collect();
        let mut outputs = Vec::new();
        for h in handles {
            outputs.push(h.await.unwrap());
        }
        assert_eq!(outputs, vec![0, 10, 20, 30, 40]);
        log.borrow().clone()
    });
    assert_eq!(order, vec![0, 1, 2, 3, 4]);
}

#[test]
fn abort_cancels_a_pending_task_and_runs_its_destructors() {
    let drops = DropCounter::default();
    let d = drops.clone();
    rt(1).block_on(async move {
        let guard = d.guard();
        let handle = task::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        task::yield_now().await; // let it start and block
        assert!(!handle.is_finished());
        handle.abort();
        let err = handle.await.unwrap_err();
        assert!(err.is_cancelled(), "{err}");
        assert!(!err.is_panic());
        assert_eq!(d.count(), 1, "the task's future was dropped");
    });
}

#[test]
fn abort_before_first_poll_never_runs_the_task() {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    rt(1).block_on(async move {
        let handle = task::spawn(async move { r.store(true, Ordering::SeqCst) });
        handle.abort();
        assert!(handle.await.unwrap_err().is_cancelled());
    });
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn abort_after_completion_keeps_the_output() {
    rt(1).block_on(async {
        let handle = task::spawn(async { 5 });
        while !handle.is_finished() {
            task::yield_now().await;
        }
        handle.abort();
        assert_eq!(handle.await.unwrap(), 5);
    });
}

#[test]
fn a_panicking_task_becomes_a_join_error_and_the_core_keeps_running() {
    rt(1).block_on(async {
        let handle = task::spawn(async {
            panic!("boom");
        });
        let err = handle.await.unwrap_err();
        assert!(err.is_panic());
        assert!(err.to_string().contains("boom"), "{err}");
        let payload = err.into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        // The core still runs tasks.
        assert_eq!(task::spawn(async { 1 }).await.unwrap(), 1);
    });
}

#[test]
fn a_panicking_task_on_another_core_does_not_kill_that_core() {
    rt(2).block_on(async {
        let err = task::spawn_on(1, async { panic!("on core 1") })
            .await
            .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(task::spawn_on(1, async { 2 }).await.unwrap(), 2);
    });
}

#[test]
fn spawn_on_reaches_every_core_and_comes_back() {
    let cores = 3;
    rt(cores).block_on(async move {
        assert_eq!(Runtime::current_core(), Some(0));
        assert_eq!(Runtime::cores(), Some(cores));
        for core in 0..cores {
            let (ran_on, inner_on) = task::spawn_on(core, async move {
                let here = Runtime::current_core();
                // A task spawned from there with `spawn` stays there.
                let inner = task::spawn(async { Runtime::current_core() })
                    .await
                    .unwrap();
                (here, inner)
            })
            .await
            .unwrap();
            assert_eq!(ran_on, Some(core));
            assert_eq!(inner_on, Some(core));
        }
        assert_eq!(Runtime::current_core(), Some(0));
    });
}

#[test]
fn spawn_on_from_a_worker_core_to_another() {
    rt(3).block_on(async {
        let v = task::spawn_on(1, async {
            task::spawn_on(2, async { Runtime::current_core() })
                .await
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(v, Some(2));
    });
}

#[test]
#[should_panic(expected = "core 9 does not exist")]
fn spawn_on_a_missing_core_panics_with_a_clear_message() {
    rt(2).block_on(async {
        drop(task::spawn_on(9, async {}));
    });
}

#[test]
#[should_panic(expected = "must be called from inside an insane runtime")]
fn spawn_outside_a_runtime_panics_with_a_clear_message() {
    drop(task::spawn(async {}));
}

#[test]
fn a_local_task_can_hold_an_rc() {
    rt(1).block_on(async {
        let counter = Rc::new(RefCell::new(0));
        let mut handles = Vec::new();
        for _ in 0..10 {
            let c = counter.clone();
            handles.push(task::spawn_local(async move {
                task::yield_now().await;
                *c.borrow_mut() += 1;
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(*counter.borrow(), 10);
        assert_eq!(Rc::strong_count(&counter), 1);
    });
}

#[test]
fn a_busy_task_that_yields_cannot_starve_others() {
    rt(1).block_on(async {
        let stop = Rc::new(std::cell::Cell::new(false));
        let s = stop.clone();
        let spinner = task::spawn_local(async move {
            let mut spins = 0u64;
            while !s.get() {
                spins += 1;
                task::yield_now().await;
            }
            spins
        });
        // These run although the spinner never stops on its own.
        let others: Vec<_> = (0..10).map(|i| task::spawn(async move { i })).collect();
        for (i, h) in others.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), i);
        }
        stop.set(true);
        let spins = spinner.await.unwrap();
        assert!(spins >= 1);
    });
}

#[test]
fn yield_interleaves_two_tasks() {
    rt(1).block_on(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let a = {
            let log = log.clone();
            task::spawn_local(async move {
                for i in 0..3 {
                    log.borrow_mut().push(('a', i));
                    task::yield_now().await;
                }
            })
        };
        let b = {
            let log = log.clone();
            task::spawn_local(async move {
                for i in 0..3 {
                    log.borrow_mut().push(('b', i));
                    task::yield_now().await;
                }
            })
        };
        a.await.unwrap();
        b.await.unwrap();
        let log = log.borrow();
        assert_eq!(
            *log,
            vec![('a', 0), ('b', 0), ('a', 1), ('b', 1), ('a', 2), ('b', 2)]
        );
    });
}

#[test]
fn a_hundred_thousand_tasks_complete() {
    let total = rt(2).block_on(async {
        let done = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(100_000);
        for i in 0..100_000u64 {
            let done = done.clone();
            let fut = async move {
                done.fetch_add(1, Ordering::Relaxed);
                i
            };
            handles.push(if i % 2 == 0 {
                task::spawn(fut)
            } else {
                task::spawn_on(1, fut)
            });
        }
        let mut sum = 0u64;
        for h in handles {
            sum += h.await.unwrap();
        }
        assert_eq!(done.load(Ordering::Relaxed), 100_000);
        sum
    });
    assert_eq!(total, (0..100_000u64).sum());
}

#[test]
fn a_task_woken_from_another_thread_runs() {
    rt(1).block_on(async {
        let (tx, rx) = oneshot::channel();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(99).unwrap();
        });
        let v = task::spawn(async move { rx.await.unwrap() }).await.unwrap();
        assert_eq!(v, 99);
        t.join().unwrap();
    });
}

#[test]
fn an_idle_core_parks_and_wakes_for_remote_work() {
    let rt = Runtime::builder()
        .cores(2)
        .idle(IdlePolicy::Park)
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..100 {
            assert_eq!(task::spawn_on(1, async move { i }).await.unwrap(), i);
        }
    });
}

#[test]
fn dropping_a_join_handle_detaches_the_task() {
    rt(1).block_on(async {
        let (tx, rx) = oneshot::channel();
        drop(task::spawn(async move { tx.send(1).unwrap() }));
        assert_eq!(rx.await.unwrap(), 1);
    });
}

#[test]
fn shutdown_drops_pending_tasks_on_every_core_without_leaks() {
    let drops = DropCounter::default();
    let rt = rt(3);
    let d = drops.clone();
    rt.block_on(async move {
        for core in 0..3 {
            for _ in 0..100 {
                let guard = d.guard();
                drop(task::spawn_on(core, async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                }));
            }
            // Local, never-polled tasks too.
            let guard = d.guard();
            drop(task::spawn_on(core, async move {
                let _guard = guard;
            }));
        }
        let guard = d.guard();
        drop(task::spawn_local(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }));
        task::yield_now().await;
    });
    drop(rt);
    assert_eq!(drops.count(), 3 * 101 + 1);
}

#[test]
fn join_handle_of_a_task_cancelled_by_shutdown_reports_cancelled() {
    let rt = rt(2);
    // Wrapped in a tuple: the handle is returned on purpose, not awaited.
    let (handle,) = rt.block_on(async { (task::spawn_on(1, std::future::pending::<()>()),) });
    drop(rt);
    let err = futures::executor::block_on(handle).unwrap_err();
    assert!(err.is_cancelled());
}

#[test]
fn join_set_collects_every_output_and_aborts_on_drop() {
    let drops = DropCounter::default();
    let d = drops.clone();
    rt(2).block_on(async move {
        let mut set = JoinSet::new();
        for i in 0..20u32 {
            if i % 2 == 0 {
                set.spawn(async move { i });
            } else {
                set.spawn_on(1, async move { i });
            }
        }
        let mut outs = set.join_all().await;
        outs.sort();
        assert_eq!(outs, (0..20).collect::<Vec<_>>());

        let mut pending = JoinSet::new();
        for _ in 0..5 {
            let g = d.guard();
            pending.spawn(async move {
                let _g = g;
                std::future::pending::<()>().await
            });
        }
        task::yield_now().await;
        drop(pending);
        // Aborted tasks are dropped the next time the core runs them.
        for _ in 0..10 {
            task::yield_now().await;
        }
        assert_eq!(d.count(), 5);
    });
}

#[test]
fn task_ids_are_unique_and_visible_inside_the_task() {
    rt(1).block_on(async {
        let a = task::spawn(async { task::id() });
        let b = task::spawn(async { task::id() });
        let (ida, idb) = (a.id(), b.id());
        assert_ne!(ida, idb);
        assert_eq!(a.await.unwrap(), ida);
        assert_eq!(b.await.unwrap(), idb);
    });
    assert!(task::try_id().is_none());
}

#[test]
#[should_panic(expected = "block_on called from inside")]
fn nested_block_on_panics() {
    let outer = rt(1);
    let inner = rt(1);
    outer.block_on(async { inner.block_on(async {}) });
}

#[test]
fn build_rejects_zero_cores() {
    let err = Runtime::builder().cores(0).build().unwrap_err();
    assert!(err.to_string().contains("at least 1 core"), "{err}");
}

#[test]
fn build_rejects_an_event_interval_of_zero() {
    let err = Runtime::builder()
        .cores(1)
        .event_interval(0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("event_interval"), "{err}");
}

/// A reactor that only counts its polls.
struct PollCounter(Rc<Cell<usize>>);

impl insane_runtime::reactor::Reactor for PollCounter {
    fn name(&self) -> &'static str {
        "poll-counter"
    }

    fn poll(&mut self) -> usize {
        self.0.set(self.0.get() + 1);
        0
    }
}

/// For each of `tasks` tasks spawned ready at once, the reactor polls seen
/// when it ran, on a core with `event_interval`.
fn polls_seen_by_ready_tasks(event_interval: u32, tasks: usize) -> Vec<usize> {
    let rt = Runtime::builder()
        .cores(1)
        .event_interval(event_interval)
        .priority(false)
        .build()
        .unwrap();
    rt.block_on(async move {
        let polls = Rc::new(Cell::new(0));
        insane_runtime::reactor::register(Rc::new(RefCell::new(PollCounter(polls.clone()))))
            .unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (polls, seen) = (polls.clone(), seen.clone());
                insane_runtime::task::spawn_local(
                    async move { seen.borrow_mut().push(polls.get()) },
                )
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        seen.take()
    })
}

#[test]
fn event_interval_is_the_number_of_tasks_run_between_two_polls_of_the_reactors() {
    for interval in [1u32, 4] {
        let seen = polls_seen_by_ready_tasks(interval, 12);
        // Consecutive groups of `interval` tasks share a poll count, and
        // the count moves between groups.
        for pair in seen.chunks(interval as usize) {
            assert!(
                pair.iter().all(|&p| p == pair[0]),
                "interval {interval}: {seen:?}"
            );
        }
        for (a, b) in seen
            .iter()
            .zip(seen.iter().skip(interval as usize))
            .step_by(interval as usize)
        {
            assert!(
                b > a,
                "interval {interval}: a poll between groups: {seen:?}"
            );
        }
    }
}

#[test]
fn a_failing_core_start_hook_fails_build_naming_the_core() {
    let err = Runtime::builder()
        .cores(2)
        .on_core_start(Arc::new(|core| {
            if core == 1 {
                Err(std::io::Error::other("no device"))
            } else {
                Ok(())
            }
        }))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("core 1"), "{err}");
    assert!(err.to_string().contains("no device"), "{err}");
}

fn current_cpu() -> usize {
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).expect("sched_getcpu failed")
}

#[test]
fn pinned_core_i_runs_on_the_i_th_allowed_cpu() {
    let allowed = insane_runtime::affinity::allowed_cpus().unwrap();
    let cores = 2;
    let rt = Runtime::builder()
        .cores(cores)
        .pin_cores(true)
        .build()
        .unwrap();
    let cpus = rt.block_on(async {
        let mut cpus = Vec::new();
        for core in 0..cores {
            cpus.push(task::spawn_on(core, async { current_cpu() }).await.unwrap());
        }
        cpus
    });
    for (core, cpu) in cpus.into_iter().enumerate() {
        assert_eq!(cpu, allowed[core % allowed.len()], "core {core}");
    }
}

#[test]
fn join_error_converts_into_a_send_sync_error_box() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<insane_runtime::task::JoinError>();
    let boxed: Box<dyn std::error::Error + Send + Sync> = rt(1).block_on(async {
        task::spawn(async { panic!("typed") })
            .await
            .unwrap_err()
            .into()
    });
    assert!(boxed.to_string().contains("typed"));
}

#[test]
fn a_spin_guard_keeps_a_parking_core_awake_and_releases_it() {
    use insane_runtime::runtime::CoreHandle;
    let rt = Runtime::builder()
        .cores(2)
        .idle(IdlePolicy::Park)
        .build()
        .unwrap();
    rt.block_on(async {
        let guard = task::spawn_on(1, async { CoreHandle::current().unwrap().hold_spin() })
            .await
            .unwrap();
        assert_eq!(guard.core(), 1);
        // Work still reaches the spinning core, and the guard can be
        // dropped on another core.
        for i in 0..100 {
            assert_eq!(task::spawn_on(1, async move { i }).await.unwrap(), i);
        }
        drop(guard);
        assert_eq!(task::spawn_on(1, async { 7 }).await.unwrap(), 7);
    });
}

#[test]
fn work_spawned_on_a_core_of_a_dropped_runtime_is_cancelled_not_lost() {
    use insane_runtime::runtime::CoreHandle;
    let old = rt(2);
    let (core0, core1) = old.block_on(async {
        let here = CoreHandle::current().unwrap();
        let there = task::spawn_on(1, async { CoreHandle::current().unwrap() })
            .await
            .unwrap();
        assert!(!here.is_shut_down() && !there.is_shut_down());
        (here, there)
    });
    drop(old);
    assert!(core0.is_shut_down() && core1.is_shut_down());
    // The handles keep the cores' queues alive; a future handed to them
    // now must not wait there forever: it is dropped, unrun, and its
    // handle reports the cancellation.
    let ran = Arc::new(AtomicBool::new(false));
    let counter = DropCounter::default();
    rt(1).block_on(async {
        for core in [&core0, &core1] {
            let (ran, guard) = (ran.clone(), counter.guard());
            let err = core
                .spawn(async move {
                    let _guard = guard;
                    ran.store(true, Ordering::SeqCst);
                })
                .await
                .expect_err("a shut-down core runs nothing");
            assert!(err.is_cancelled(), "{err}");
        }
    });
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(counter.count(), 2, "both futures were dropped");
}

#[test]
fn a_block_on_future_woken_by_a_task_of_its_core_runs_again_without_parking() {
    // Park at once when idle: a same-core wake of the block_on future that
    // the core did not see would put it to sleep (or hang it).
    let rt = Runtime::builder()
        .cores(1)
        .idle(IdlePolicy::Park)
        .build()
        .expect("runtime starts");
    let metrics = rt.metrics();
    let echoed = rt.block_on(async {
        let mut total = 0u64;
        for i in 0..1_000u64 {
            let (tx, rx) = oneshot::channel();
            task::spawn(async move {
                task::yield_now().await;
                let _ = tx.send(i);
            });
            total += rx.await.expect("the task answers");
        }
        total
    });
    assert_eq!(echoed, (0..1_000u64).sum::<u64>());
    assert_eq!(
        metrics.worker_park_count(0),
        0,
        "the core never slept: every wake came from its own tasks"
    );
}
