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
