//! The tokio-shaped task API (`insane_runtime::task`), written as
//! specifications: `JoinSet`, `AbortHandle`, task ids, the cooperative
//! budget, `spawn_blocking` / `block_in_place` and `task_local!`.
//!
//! Where tokio's behaviour is the reference, the `tokio_reference` tests
//! run the same body on a tokio runtime. Every test is bounded in time.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use insane_runtime::runtime::Runtime;
use insane_runtime::task::{self, AbortHandle, JoinSet, coop};
use insane_runtime::time::{sleep, timeout};

mod support;
use support::DropCounter;

fn rt(cores: usize) -> Runtime {
    Runtime::builder()
        .cores(cores)
        .build()
        .expect("runtime starts")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A leaf future that is always ready but spends the task's budget, the way
/// a library future written for insane cooperates.
struct ReadyCoop;

impl Future for ReadyCoop {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let restore = ready!(coop::poll_proceed(cx));
        restore.made_progress();
        Poll::Ready(())
    }
}

// ---------------------------------------------------------------------------
// JoinSet

#[test]
fn collecting_futures_into_a_join_set_spawns_them_and_extend_adds_more() {
    rt(1).block_on(async {
        let started = Arc::new(AtomicUsize::new(0));
        let make = |i: usize| {
            let started = started.clone();
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                i
            }
        };
        let mut set: JoinSet<usize> = (0..5).map(make).collect();
        set.extend((5..10).map(make));
        assert_eq!(set.len(), 10);
        // Spawned, not merely stored: they run without being joined.
        task::yield_now().await;
        assert_eq!(started.load(Ordering::SeqCst), 10);
        let mut outputs = set.join_all().await;
        outputs.sort_unstable();
        assert_eq!(outputs, (0..10).collect::<Vec<_>>());
    });
}

#[test]
fn join_next_returns_outputs_in_completion_order_not_spawn_order() {
    rt(1).block_on(async {
        let mut set = JoinSet::new();
        let mut senders = Vec::new();
        for i in 0..3u32 {
            let (tx, rx) = oneshot::channel::<()>();
            senders.push(Some(tx));
            set.spawn(async move {
                rx.await.unwrap();
                i
            });
        }
        for i in [2usize, 0, 1] {
            senders[i].take().unwrap().send(()).unwrap();
            let out = set.join_next().await.unwrap().unwrap();
            assert_eq!(out as usize, i);
        }
        assert!(set.join_next().await.is_none());
    });
}

#[test]
fn spawn_returns_an_abort_handle_that_cancels_that_task_only() {
    rt(1).block_on(async {
        let mut set = JoinSet::new();
        let doomed: AbortHandle = set.spawn(async {
            sleep(Duration::from_secs(3600)).await;
            "never"
        });
        let kept = set.spawn(async { "kept" });
        doomed.abort();
        let mut cancelled = None;
        let mut completed = None;
        while let Some(res) = set.join_next_with_id().await {
            match res {
                Ok((id, out)) => completed = Some((id, out)),
                Err(e) => {
                    assert!(e.is_cancelled(), "{e}");
                    cancelled = Some(e.id());
                }
            }
        }
        assert_eq!(cancelled, Some(doomed.id()));
        assert_eq!(completed, Some((kept.id(), "kept")));
        assert!(doomed.is_finished());
    });
}

#[test]
fn join_next_with_id_reports_the_ids_spawn_gave_and_the_task_saw() {
    rt(2).block_on(async {
        let mut set = JoinSet::new();
        let mut spawned = HashSet::new();
        for i in 0..6usize {
            let handle = if i % 2 == 0 {
                set.spawn(async { task::id() })
            } else {
                set.spawn_on(1, async { task::id() })
            };
            assert!(spawned.insert(handle.id()), "ids are unique");
        }
        let mut joined = HashSet::new();
        while let Some(res) = set.join_next_with_id().await {
            let (id, seen_inside) = res.unwrap();
            assert_eq!(id, seen_inside, "task::id() inside the task");
            joined.insert(id);
        }
        assert_eq!(joined, spawned);
    });
}

#[test]
fn a_panicking_task_in_a_set_reports_its_id_in_the_join_error() {
    rt(1).block_on(async {
        let mut set: JoinSet<()> = JoinSet::new();
        let id = set.spawn(async { panic!("boom") }).id();
        let err = set.join_next().await.unwrap().unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.id(), id);
    });
}

#[test]
fn try_join_next_never_waits() {
    rt(1).block_on(async {
        let mut set = JoinSet::new();
        assert!(set.try_join_next().is_none(), "empty set");
        let (tx, rx) = oneshot::channel::<()>();
        let waiting = set.spawn(async move { rx.await.map(|_| 1).unwrap_or(0) });
        let quick = set.spawn(async { 2 });
        assert!(set.try_join_next().is_none(), "nothing ran yet");
        task::yield_now().await;
        assert_eq!(
            set.try_join_next_with_id().unwrap().unwrap(),
            (quick.id(), 2)
        );
        assert!(set.try_join_next().is_none(), "the other still waits");
        tx.send(()).unwrap();
        task::yield_now().await;
        assert_eq!(
            set.try_join_next_with_id().unwrap().unwrap(),
            (waiting.id(), 1)
        );
        assert!(set.is_empty());
    });
}

#[test]
fn dropping_a_join_set_aborts_its_tasks_and_runs_their_destructors() {
    let drops = DropCounter::default();
    rt(1).block_on(async {
        let mut set = JoinSet::new();
        let mut handles = Vec::new();
        for _ in 0..4 {
            let guard = drops.guard();
            handles.push(set.spawn(async move {
                let _guard = guard;
                sleep(Duration::from_secs(3600)).await;
            }));
        }
        task::yield_now().await; // every task is waiting on its timer
        drop(set);
        task::yield_now().await; // the aborted tasks are polled once more
        assert_eq!(drops.count(), 4);
        assert!(handles.iter().all(AbortHandle::is_finished));
    });
}

#[test]
fn shutdown_cancels_every_task_and_leaves_the_set_empty() {
    let drops = DropCounter::default();
    rt(1).block_on(async {
        let mut set = JoinSet::new();
        for _ in 0..3 {
            let guard = drops.guard();
            set.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
        }
        set.shutdown().await;
        assert!(set.is_empty());
        assert_eq!(drops.count(), 3);
    });
}

// ---------------------------------------------------------------------------
// AbortHandle and task ids

#[test]
fn an_abort_handle_cancels_a_task_waiting_on_a_timer() {
    let drops = DropCounter::default();
    rt(1).block_on(async {
        let guard = drops.guard();
        let handle = task::spawn(async move {
            let _guard = guard;
            sleep(Duration::from_secs(3600)).await;
        });
        let abort = handle.abort_handle();
        assert_eq!(abort.id(), handle.id());
        sleep(ms(1)).await; // the task is now parked on its timer
        assert!(!abort.is_finished());
        let started = Instant::now();
        abort.abort();
        let err = handle.await.unwrap_err();
        assert!(err.is_cancelled());
        assert!(started.elapsed() < Duration::from_secs(5), "not the timer");
        assert_eq!(drops.count(), 1, "its future was dropped");
        assert!(abort.is_finished());
        abort.abort(); // aborting a finished task does nothing
    });
}

#[test]
fn an_abort_handle_outlives_the_join_handle_and_works_from_another_thread() {
    let drops = DropCounter::default();
    rt(2).block_on(async {
        let guard = drops.guard();
        let handle = task::spawn_on(1, async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        let abort = handle.abort_handle();
        drop(handle); // detached: it keeps running
        sleep(ms(5)).await;
        assert_eq!(drops.count(), 0);
        std::thread::spawn(move || abort.abort()).join().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while drops.count() == 0 && Instant::now() < deadline {
            sleep(ms(1)).await;
        }
        assert_eq!(drops.count(), 1, "aborted on its own core");
    });
}

#[test]
fn task_id_is_the_current_tasks_and_try_id_is_none_outside_tasks_and_block_on() {
    assert_eq!(task::try_id(), None, "outside a runtime");
    rt(1).block_on(async {
        // The future given to block_on is not a task (as in tokio).
        assert_eq!(task::try_id(), None);
        let handle = task::spawn(async {
            let before = task::id();
            task::yield_now().await;
            (before, task::try_id())
        });
        let id = handle.id();
        assert_eq!(handle.await.unwrap(), (id, Some(id)));
        // A blocking closure has an id too, as in tokio.
        let blocking = task::spawn_blocking(task::try_id);
        let id = blocking.id();
        assert_eq!(blocking.await.unwrap(), Some(id));
    });
}

// ---------------------------------------------------------------------------
// Cooperative budget

#[test]
fn a_task_spinning_on_ready_cooperative_futures_lets_the_other_tasks_of_its_core_run() {
    rt(1).block_on(async {
        let stop = Rc::new(Cell::new(false));
        let spins = Rc::new(Cell::new(0u32));
        let spinner = {
            let (stop, spins) = (stop.clone(), spins.clone());
            task::spawn_local(async move {
                while !stop.get() {
                    ReadyCoop.await;
                    spins.set(spins.get() + 1);
                }
            })
        };
        let other = {
            let spins = spins.clone();
            task::spawn_local(async move {
                stop.set(true);
                spins.get()
            })
        };
        // The spinner, polled first, spends its whole budget (128 units,
        // tokio's number) and then yields; the other task runs next.
        assert_eq!(other.await.unwrap(), 128);
        spinner.await.unwrap();
    });
}

#[test]
fn consume_budget_makes_any_loop_cooperative() {
    rt(1).block_on(async {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = task::spawn_local(async move { r.set(true) });
        let mut rounds = 0u32;
        loop {
            task::consume_budget().await;
            if ran.get() {
                break;
            }
            rounds += 1;
            assert!(rounds <= 128, "must yield within one budget");
        }
        assert_eq!(rounds, 128);
        other.await.unwrap();
    });
}

#[test]
fn timeout_fires_around_a_loop_of_ready_cooperative_futures() {
    rt(1).block_on(async {
        let started = Instant::now();
        let res = timeout(ms(10), async {
            loop {
                ReadyCoop.await;
            }
        })
        .await;
        assert!(res.is_err(), "the deadline fired");
        assert!(started.elapsed() >= ms(10));
        assert!(started.elapsed() < Duration::from_secs(5));
    });
}

#[test]
fn timeout_fires_around_a_loop_of_insanes_own_ready_futures() {
    rt(1).block_on(async {
        // An elapsed `sleep` is ready at once; like tokio's, it spends
        // budget, so this loop yields and the deadline is checked.
        let res = timeout(ms(10), async {
            loop {
                sleep(Duration::ZERO).await;
            }
        })
        .await;
        assert!(res.is_err());
    });
}

/// The case tokio's `coop` module documents: a loop over a stream that is
/// always ready (`while let Some(_) = input.next().await {}`) never yields
/// unless the stream's leaf spends budget. tokio's channels do under tokio;
/// under insane they are the same tokio types and do not see insane's
/// budget, so the ported loop adds `consume_budget` and then behaves as it
/// does on tokio: the timeout fires.
#[test]
fn the_always_ready_stream_of_tokios_coop_docs_yields_with_consume_budget() {
    rt(1).block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let drained = timeout(ms(10), async {
            loop {
                tx.send(1).unwrap(); // always one message ready
                rx.recv().await;
                task::consume_budget().await;
            }
        })
        .await;
        assert!(drained.is_err());
    });
}

#[test]
fn a_future_that_never_returns_pending_outlives_its_timeout_here_as_in_tokio() {
    // tokio documents it: the future is polled before the deadline is
    // checked, so a future that does not yield completes, late, with Ok.
    rt(1).block_on(async {
        let res = timeout(ms(1), async {
            std::thread::sleep(ms(20));
            "late"
        })
        .await;
        assert_eq!(res, Ok("late"));
    });
}

#[test]
fn unconstrained_code_is_never_forced_to_yield() {
    rt(1).block_on(async {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let other = task::spawn_local(async move { r.set(true) });
        task::unconstrained(async {
            for _ in 0..10_000 {
                task::consume_budget().await;
                ReadyCoop.await;
                assert!(coop::has_budget_remaining());
            }
        })
        .await;
        assert!(!ran.get(), "the other task has not run yet");
        other.await.unwrap();
        assert!(ran.get());
    });
}

mod tokio_reference {
    //! The same bodies on tokio, to show insane matches it.
    use super::*;

    fn tokio_rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn tokio_timeout_fires_around_a_consume_budget_loop() {
        let res = tokio_rt().block_on(async {
            tokio::time::timeout(ms(10), async {
                loop {
                    tokio::task::consume_budget().await;
                }
            })
            .await
        });
        assert!(res.is_err());
    }

    #[test]
    fn tokio_gives_a_blocking_closure_its_task_id_too() {
        tokio_rt().block_on(async {
            assert_eq!(tokio::task::try_id(), None, "block_on is no task");
            let handle = tokio::task::spawn_blocking(tokio::task::try_id);
            let id = handle.id();
            assert_eq!(handle.await.unwrap(), Some(id));
        });
    }

    #[test]
    fn tokio_lets_the_other_task_run_after_the_same_128_units() {
        let seen = tokio_rt().block_on(async {
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async {
                    let stop = Rc::new(Cell::new(false));
                    let spins = Rc::new(Cell::new(0u32));
                    let (s, n) = (stop.clone(), spins.clone());
                    let spinner = tokio::task::spawn_local(async move {
                        while !s.get() {
                            tokio::task::consume_budget().await;
                            n.set(n.get() + 1);
                        }
                    });
                    let other = tokio::task::spawn_local(async move {
                        stop.set(true);
                        spins.get()
                    });
                    let seen = other.await.unwrap();
                    spinner.await.unwrap();
                    seen
                })
                .await
        });
        assert_eq!(seen, 128);
    }
}

// ---------------------------------------------------------------------------
// spawn_blocking and block_in_place

#[test]
fn spawn_blocking_runs_off_the_core_and_any_core_can_await_it() {
    rt(2).block_on(async {
        let core_thread = std::thread::current().id();
        let handle = task::spawn_blocking(move || {
            std::thread::sleep(ms(5));
            (std::thread::current().id(), Runtime::current_core())
        });
        // Awaited from core 1, spawned from core 0.
        let (thread, core) = task::spawn_on(1, handle).await.unwrap().unwrap();
        assert_ne!(thread, core_thread);
        assert_eq!(core, None, "a blocking thread is no core");
    });
}

#[test]
fn the_core_keeps_running_tasks_while_a_blocking_closure_runs() {
    rt(1).block_on(async {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let blocking =
            task::spawn_blocking(move || release_rx.recv_timeout(Duration::from_secs(5)));
        let ticks = task::spawn(async {
            for _ in 0..5 {
                sleep(ms(1)).await;
            }
            "ticked"
        });
        assert_eq!(ticks.await.unwrap(), "ticked");
        release_tx.send(()).unwrap();
        assert!(blocking.await.unwrap().is_ok());
    });
}

#[test]
fn no_more_blocking_closures_run_at_once_than_the_pool_allows() {
    let rt = Runtime::builder()
        .cores(1)
        .max_blocking_threads(3)
        .build()
        .unwrap();
    rt.block_on(async {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut set = JoinSet::new();
        for i in 0..12usize {
            let (running, most) = (running.clone(), most.clone());
            set.spawn_blocking(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(ms(10));
                running.fetch_sub(1, Ordering::SeqCst);
                (i, std::thread::current().name().map(str::to_owned))
            });
        }
        let mut done = Vec::new();
        let mut threads = HashSet::new();
        while let Some(res) = set.join_next().await {
            let (i, name) = res.unwrap();
            done.push(i);
            threads.insert(name);
        }
        done.sort_unstable();
        assert_eq!(done, (0..12).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 3, "bounded by the pool");
        assert!(threads.len() <= 3);
        assert!(
            threads
                .iter()
                .all(|n| n.as_deref() == Some("insane-core-blocking"))
        );
    });
}

#[test]
fn a_panicking_blocking_closure_is_a_join_error_and_the_pool_goes_on() {
    let rt = Runtime::builder()
        .cores(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    rt.block_on(async {
        let handle = task::spawn_blocking(|| -> u8 { panic!("in the pool") });
        let id = handle.id();
        let err = handle.await.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.id(), id);
        assert_eq!(task::spawn_blocking(|| 9).await.unwrap(), 9);
    });
}

#[test]
fn a_blocking_closure_aborted_before_it_starts_never_runs() {
    let rt = Runtime::builder()
        .cores(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    rt.block_on(async {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let first = task::spawn_blocking(move || release_rx.recv_timeout(Duration::from_secs(5)));
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let queued = task::spawn_blocking(move || r.store(true, Ordering::SeqCst));
        queued.abort();
        release_tx.send(()).unwrap();
        assert!(first.await.unwrap().is_ok());
        assert!(queued.await.unwrap_err().is_cancelled());
        assert!(!ran.load(Ordering::SeqCst));
    });
}

#[test]
fn dropping_the_runtime_waits_for_running_blocking_closures_and_cancels_queued_ones() {
    let finished = Arc::new(AtomicBool::new(false));
    let queued_ran = Arc::new(AtomicBool::new(false));
    let rt = Runtime::builder()
        .cores(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (f, q) = (finished.clone(), queued_ran.clone());
    // The handle is returned unawaited, to look at it after the runtime is gone.
    #[allow(clippy::async_yields_async)]
    let queued = rt.block_on(async move {
        drop(task::spawn_blocking(move || {
            started_tx.send(()).unwrap();
            std::thread::sleep(ms(30));
            f.store(true, Ordering::SeqCst);
        }));
        task::spawn_blocking(move || q.store(true, Ordering::SeqCst))
    });
    started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    drop(rt);
    assert!(finished.load(Ordering::SeqCst), "drop waited for it");
    assert!(!queued_ran.load(Ordering::SeqCst), "never started");
    assert!(queued.is_finished());
}

#[test]
fn a_runtime_refuses_a_blocking_pool_of_zero_threads() {
    let err = Runtime::builder()
        .cores(1)
        .max_blocking_threads(0)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn block_in_place_runs_the_closure_on_this_core_while_its_other_tasks_wait() {
    rt(2).block_on(async {
        let same_core_ran = Rc::new(Cell::new(false));
        let s = same_core_ran.clone();
        let same_core = task::spawn_local(async move { s.set(true) });
        // Another core keeps running: it answers while this core blocks.
        let (tx, rx) = mpsc::channel();
        let other_core = task::spawn_on(1, async move {
            sleep(ms(2)).await;
            tx.send(Runtime::current_core()).unwrap();
        });
        let answer = task::block_in_place(|| rx.recv_timeout(Duration::from_secs(5)));
        assert_eq!(answer, Ok(Some(1)));
        // This core did nothing else meanwhile (tokio's multi-thread
        // runtime would have moved this task to another worker).
        assert!(!same_core_ran.get(), "this core's tasks waited");
        same_core.await.unwrap();
        other_core.await.unwrap();
        assert_eq!(task::block_in_place(|| 6 * 7), 42);
    });
    assert_eq!(task::block_in_place(|| "outside"), "outside");
}

// ---------------------------------------------------------------------------
// task_local!

insane_runtime::task_local! {
    static REQUEST: u32;
    static TRACE: RefCell<Vec<&'static str>>;
}

#[test]
fn a_task_local_scope_is_visible_across_awaits_and_not_in_other_tasks() {
    rt(1).block_on(async {
        REQUEST
            .scope(7, async {
                assert_eq!(REQUEST.get(), 7);
                sleep(ms(1)).await;
                task::yield_now().await;
                assert_eq!(REQUEST.get(), 7);
                let spawned = task::spawn(async { REQUEST.try_get() });
                assert!(spawned.await.unwrap().is_err(), "not inherited by spawn");
                let blocking = task::spawn_blocking(|| REQUEST.try_get());
                assert!(blocking.await.unwrap().is_err());
            })
            .await;
        assert!(REQUEST.try_with(|_| ()).is_err(), "gone after the scope");
    });
}

#[test]
fn two_interleaved_tasks_each_see_their_own_value() {
    rt(1).block_on(async {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut set = JoinSet::new();
        for value in [1u32, 2] {
            let log = log.clone();
            set.spawn(REQUEST.scope(value, async move {
                for _ in 0..3 {
                    log.lock().unwrap().push((value, REQUEST.get()));
                    task::yield_now().await;
                }
            }));
        }
        set.join_all().await;
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 6);
        assert!(log.iter().all(|(expected, seen)| expected == seen));
        // They did interleave.
        assert_ne!(log[0].0, log[1].0);
    });
}

#[test]
fn sync_scope_nests_and_restores_and_with_borrows() {
    let sum = REQUEST.sync_scope(1, || {
        let inner = REQUEST.sync_scope(2, || REQUEST.get());
        inner + REQUEST.get()
    });
    assert_eq!(sum, 3);
    assert!(REQUEST.try_get().is_err());
    TRACE.sync_scope(RefCell::new(Vec::new()), || {
        TRACE.with(|t| t.borrow_mut().push("a"));
        TRACE.with(|t| t.borrow_mut().push("b"));
        assert_eq!(TRACE.with(|t| t.borrow().clone()), ["a", "b"]);
    });
}

#[test]
fn a_scoped_future_dropped_early_sees_its_value_in_destructors() {
    struct ReadsOnDrop(Arc<Mutex<Option<Result<u32, task::AccessError>>>>);
    impl Drop for ReadsOnDrop {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(REQUEST.try_get());
        }
    }
    rt(1).block_on(async {
        let seen = Arc::new(Mutex::new(None));
        let guard = ReadsOnDrop(seen.clone());
        let mut fut = Box::pin(REQUEST.scope(5, async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }));
        assert!(timeout(ms(1), &mut fut).await.is_err());
        drop(fut);
        assert_eq!(*seen.lock().unwrap(), Some(Ok(5)));
    });
}

#[test]
fn take_value_returns_the_value_after_the_scope_completed() {
    rt(1).block_on(async {
        let mut fut = std::pin::pin!(TRACE.scope(RefCell::new(vec!["x"]), async {
            TRACE.with(|t| t.borrow_mut().push("y"));
        }));
        (&mut fut).await;
        let value = fut.as_mut().take_value().unwrap();
        assert_eq!(value.into_inner(), ["x", "y"]);
        assert!(fut.as_mut().take_value().is_none());
    });
}

#[test]
fn block_in_place_lifts_the_budget_for_the_rest_of_the_poll() {
    rt(1).block_on(async {
        let lifted = task::spawn(async {
            // Spend the whole budget without yielding...
            let mut cx = Context::from_waker(std::task::Waker::noop());
            while let Poll::Ready(restore) = coop::poll_proceed(&mut cx) {
                restore.made_progress();
            }
            assert!(!coop::has_budget_remaining());
            // ...then block: the closure and the rest of the poll are free.
            let inside = task::block_in_place(coop::has_budget_remaining);
            (inside, coop::has_budget_remaining())
        });
        assert_eq!(lifted.await.unwrap(), (true, true));
    });
}
