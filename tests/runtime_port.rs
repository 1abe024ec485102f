//! A tokio program's runtime set-up ported by changing `tokio::` to
//! `insane::`: the builder chains, `LocalSet` and metrics calls below are
//! written as they are against tokio and must compile and behave the same.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use insane::runtime::{Builder, Handle, RuntimeFlavor};
use insane::task::LocalSet;

#[test]
fn multi_thread_builder_chain_as_in_tokio() {
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let (s, t) = (started.clone(), stopped.clone());
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ported")
        .thread_stack_size(4 << 20)
        .on_thread_start(move || {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .on_thread_stop(move || {
            t.fetch_add(1, Ordering::SeqCst);
        })
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(started.load(Ordering::SeqCst), 2, "one start per core");
    let (flavor, workers) = rt.block_on(async {
        let handle = Handle::current();
        (handle.runtime_flavor(), handle.metrics().num_workers())
    });
    assert_eq!(flavor, RuntimeFlavor::MultiThread);
    assert_eq!(workers, 2);
    drop(rt);
    assert_eq!(stopped.load(Ordering::SeqCst), 2, "one stop per core");
}

#[test]
fn current_thread_builder_with_local_set_as_in_tokio() {
    let rt = Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .unwrap();
    assert_eq!(rt.handle().runtime_flavor(), RuntimeFlavor::CurrentThread);
    let local = LocalSet::new();
    let total = local.block_on(&rt, async {
        let shared = Rc::new(std::cell::Cell::new(0));
        let inner = LocalSet::new();
        for i in 1..=4 {
            let shared = shared.clone();
            inner.spawn_local(async move {
                insane::time::sleep(std::time::Duration::from_millis(i)).await;
                shared.set(shared.get() + i);
            });
        }
        inner.await;
        shared.get()
    });
    assert_eq!(total, 10);
}

#[test]
fn metrics_count_alive_tasks_through_the_facade() {
    let rt = Builder::new_current_thread().build().unwrap();
    let metrics = rt.metrics();
    rt.block_on(async {
        let task = insane::spawn(std::future::pending::<()>());
        assert_eq!(metrics.num_alive_tasks(), 1);
        task.abort();
        let _ = task.await;
        assert_eq!(metrics.num_alive_tasks(), 0);
    });
}

#[test]
fn local_runtime_spawns_non_send_tasks_from_outside_block_on() {
    use insane::runtime::{LocalOptions, LocalRuntime};
    let rt = LocalRuntime::new().unwrap();
    let counter = Rc::new(std::cell::Cell::new(0));
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let counter = counter.clone();
            rt.spawn_local(async move { counter.set(counter.get() + 1) })
        })
        .collect();
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(counter.get(), 3);
    let err = Builder::new_multi_thread()
        .worker_threads(2)
        .build_local(LocalOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("cores = 2"), "{err}");
}

#[test]
fn join_set_spawn_local_on_and_spawn_blocking_on_as_in_tokio() {
    let rt = Builder::new_current_thread().build().unwrap();
    let local = LocalSet::new();
    local.block_on(&rt, async {
        let mut set = insane::task::JoinSet::new();
        let text = Rc::new("local");
        set.spawn_local_on(async move { text.len() }, &local);
        set.spawn_blocking_on(|| 3, &Handle::current());
        let mut got = vec![];
        while let Some(r) = set.join_next().await {
            got.push(r.unwrap());
        }
        got.sort();
        assert_eq!(got, [3, 5]);
    });
}

#[test]
fn park_hooks_and_worker_index_as_in_tokio() {
    let parks = Arc::new(AtomicUsize::new(0));
    let unparks = Arc::new(AtomicUsize::new(0));
    let (p, u) = (parks.clone(), unparks.clone());
    let rt = Builder::new_current_thread()
        .on_thread_park(move || {
            p.fetch_add(1, Ordering::SeqCst);
        })
        .on_thread_unpark(move || {
            u.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    assert_eq!(insane::runtime::worker_index(), None);
    let index = rt.block_on(async {
        // Nothing else to do for 50 ms: the core parks.
        insane::time::sleep(std::time::Duration::from_millis(50)).await;
        insane::runtime::worker_index()
    });
    assert_eq!(index, Some(0));
    assert!(parks.load(Ordering::SeqCst) >= 1);
    assert_eq!(parks.load(Ordering::SeqCst), unparks.load(Ordering::SeqCst));
}

#[test]
fn cooperative_futures_yield_to_the_core() {
    let rt = Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let ran = Rc::new(std::cell::Cell::new(false));
        let flag = ran.clone();
        let other = insane::task::spawn_local(async move { flag.set(true) });
        let mut polls = 0u32;
        // Always ready: only the budget makes this loop let `other` run.
        while !ran.get() && polls < 10_000 {
            insane::task::coop::cooperative(std::future::ready(())).await;
            polls += 1;
        }
        assert!(ran.get(), "the other task never ran");
        assert!(polls <= 129, "yielded only after {polls} polls");
        other.await.unwrap();
    });
}

/// Ready tasks kept busy on the core by [`tasks_run_before_a_sent_task`].
const BUSY_TASKS: usize = 64;

/// Keeps [`BUSY_TASKS`] always-ready tasks on a 1-core runtime built by
/// `builder` and, ten times, spawns a task onto the core from another
/// thread (through its `Handle`: the core's injection queue). Returns the
/// most tasks the core ran between a spawn and the spawned task's start.
fn tasks_run_before_a_sent_task(builder: &mut Builder) -> usize {
    use std::sync::atomic::AtomicBool;
    let rt = builder.build().unwrap();
    let handle = rt.handle().clone();
    // `armed` is set once the sent task is queued; busy tasks count their
    // polls while it is set; the sent task reads the count and disarms.
    let armed = Arc::new(AtomicBool::new(false));
    let counted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        for _ in 0..BUSY_TASKS {
            let (armed, counted, stop) = (armed.clone(), counted.clone(), stop.clone());
            insane::task::spawn_local(async move {
                while !stop.load(Ordering::Relaxed) {
                    if armed.load(Ordering::Relaxed) {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    insane::task::yield_now().await;
                }
            });
        }
        let (a, c) = (armed.clone(), counted.clone());
        let sender = std::thread::spawn(move || {
            let mut most = 0;
            for _ in 0..10 {
                a.store(false, Ordering::SeqCst);
                c.store(0, Ordering::SeqCst);
                let (tx, rx) = std::sync::mpsc::channel();
                let (a2, c2) = (a.clone(), c.clone());
                drop(handle.spawn(async move {
                    a2.store(false, Ordering::SeqCst);
                    tx.send(c2.load(Ordering::SeqCst)).unwrap();
                }));
                a.store(true, Ordering::SeqCst);
                most = most.max(rx.recv().unwrap());
            }
            most
        });
        let most = insane::task::spawn_blocking(move || sender.join().unwrap())
            .await
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        most
    })
}

/// tokio's `global_queue_interval`: every that many tasks, a core runs the
/// oldest task sent to it from another thread next, ahead of its own ready
/// tasks. Counted, not timed: with an interval of 4, at most 4 tasks run
/// between a spawn from another thread and the spawned task; without it,
/// the spawned task waits behind the core's ready tasks.
#[test]
fn global_queue_interval_bounds_the_tasks_run_before_a_sent_task() {
    let with = tasks_run_before_a_sent_task(Builder::new_current_thread().global_queue_interval(4));
    assert!(
        with <= 4,
        "{with} tasks ran before the sent task (interval 4)"
    );
    let without = tasks_run_before_a_sent_task(&mut Builder::new_current_thread());
    println!("tasks run before a sent task: {with} with interval 4, {without} without");
    assert!(
        without >= BUSY_TASKS / 2,
        "without the interval only {without} tasks ran first (behind {BUSY_TASKS} ready tasks)"
    );
    let zero = Builder::new_current_thread()
        .global_queue_interval(0)
        .build()
        .map(drop)
        .unwrap_err();
    assert!(zero.to_string().contains("global_queue_interval"), "{zero}");
}

/// Sockets with a datagram waiting in [`most_readers_woken_per_poll`].
const READERS: usize = 8;

/// On a 1-core runtime built by `builder` with `driver`: [`READERS`] tasks
/// wait to receive on their own UDP sockets, one datagram arrives for
/// each, and an always-ready task counts, between two of its polls, the
/// readers that finished (a core polls its driver between turns of
/// tasks). Returns the most in one such gap: the most readiness events
/// one driver poll processed.
fn most_readers_woken_per_poll(builder: &mut Builder, driver: insane::runtime::Driver) -> usize {
    use std::cell::Cell;
    let rt = builder.driver(driver).build().unwrap();
    rt.block_on(async {
        let done = Rc::new(Cell::new(0_usize));
        let mut addrs = Vec::new();
        for _ in 0..READERS {
            let sock = insane::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            addrs.push(sock.local_addr().unwrap());
            let done = done.clone();
            insane::task::spawn_local(async move {
                let mut buf = [0u8; 8];
                sock.recv(&mut buf).await.unwrap();
                done.set(done.get() + 1);
            });
        }
        // Every reader polls once (and waits on the driver) before anything
        // arrives.
        for _ in 0..4 {
            insane::task::yield_now().await;
        }
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for addr in &addrs {
            sender.send_to(b"x", addr).unwrap();
        }
        let counter = done.clone();
        insane::task::spawn_local(async move {
            let (mut last, mut most) = (0, 0);
            for _ in 0..1_000_000 {
                let now = counter.get();
                most = most.max(now - last);
                last = now;
                if now == READERS {
                    break;
                }
                insane::task::yield_now().await;
            }
            assert_eq!(last, READERS, "every datagram arrives");
            most
        })
        .await
        .unwrap()
    })
}

/// tokio's `max_io_events_per_tick` and `max_io_events_per_busy_tick`: a
/// core's driver processes at most that many events per poll (the busy
/// limit while the core has tasks to run, which follows the per-tick one
/// unless set). Counted, not timed, on both drivers: with a limit of 1,
/// at most one waiting reader wakes per poll; with the defaults, one poll
/// takes every ready socket.
#[test]
fn max_io_events_per_tick_bounds_the_events_of_one_driver_poll() {
    use insane::runtime::Driver;
    for driver in [Driver::Epoll, Driver::Uring] {
        let per_tick = most_readers_woken_per_poll(
            Builder::new_current_thread().max_io_events_per_tick(1),
            driver,
        );
        let busy = most_readers_woken_per_poll(
            Builder::new_current_thread()
                .max_io_events_per_tick(64)
                .max_io_events_per_busy_tick(1),
            driver,
        );
        let default = most_readers_woken_per_poll(&mut Builder::new_current_thread(), driver);
        println!(
            "{driver:?}: readers woken per poll: {per_tick} (limit 1), {busy} (busy limit 1), {default} (defaults)"
        );
        assert_eq!(per_tick, 1, "{driver:?}: per-tick limit 1");
        assert_eq!(busy, 1, "{driver:?}: busy limit 1");
        assert!(
            default > 1,
            "{driver:?}: the defaults take more than one event per poll"
        );
    }
    for (what, b) in [
        (
            "max_io_events_per_tick",
            Builder::new_current_thread()
                .max_io_events_per_tick(0)
                .build(),
        ),
        (
            "max_io_events_per_busy_tick",
            Builder::new_current_thread()
                .max_io_events_per_busy_tick(0)
                .build(),
        ),
    ] {
        let err = b.map(drop).unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    }
}

/// tokio's `LocalSet::id`: a `runtime::Id` that names the set, the same
/// on every call, different from other sets' and from runtimes'.
#[test]
fn local_set_id_names_the_set() {
    let rt = Builder::new_current_thread().build().unwrap();
    let (a, b) = (LocalSet::new(), LocalSet::new());
    assert_eq!(a.id(), a.id());
    assert_ne!(a.id(), b.id());
    assert_ne!(a.id(), rt.handle().id());
    assert!(!format!("{}", a.id()).is_empty());
}
