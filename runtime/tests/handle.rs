//! `runtime::Handle` and the `Runtime` methods built on it
//! (`handle`, `enter`, `spawn`, `spawn_blocking`, `shutdown_timeout`,
//! `shutdown_background`), written as specifications of tokio's documented
//! behaviour and of where thread-per-core places tasks.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use insane_runtime::runtime::{Handle, Runtime};
use insane_runtime::task;

mod support;
use support::DropCounter;

fn rt(cores: usize) -> Runtime {
    Runtime::builder()
        .cores(cores)
        .build()
        .expect("runtime starts")
}

/// Generous bound for "happens soon" on a loaded 2-CPU machine.
const SOON: Duration = Duration::from_secs(10);

#[test]
fn a_handle_is_clone_send_sync_and_static() {
    fn assert_bounds<T: Clone + Send + Sync + 'static>() {}
    assert_bounds::<Handle>();
}

#[test]
fn a_handle_moved_to_a_std_thread_spawns_tasks_that_run_and_resolve_there() {
    let rt = rt(2);
    let handle = rt.handle().clone();
    let results = std::thread::spawn(move || {
        let tasks: Vec<_> = (0..10u32)
            .map(|i| handle.spawn(async move { (i * i, Runtime::current_core()) }))
            .collect();
        tasks
            .into_iter()
            .map(|t| handle.block_on(t).expect("task completes"))
            .collect::<Vec<_>>()
    })
    .join()
    .expect("the thread does not panic");
    for (i, (square, core)) in results.into_iter().enumerate() {
        assert_eq!(square, (i * i) as u32);
        assert_eq!(core, Some(1), "a 2-core runtime's only worker core");
    }
}

#[test]
fn runtime_spawn_makes_progress_without_block_on_on_a_two_core_runtime() {
    let rt = rt(2);
    let (tx, rx) = mpsc::channel();
    let _task = rt.spawn(async move {
        task::yield_now().await;
        tx.send(Runtime::current_core()).unwrap();
    });
    // Nobody calls block_on: a worker core runs the task.
    assert_eq!(rx.recv_timeout(SOON), Ok(Some(1)));
}

#[test]
fn on_a_one_core_runtime_runtime_spawn_runs_while_block_on_runs() {
    let rt = rt(1);
    let (tx, rx) = mpsc::channel();
    let task = rt.spawn(async move { tx.send(()).unwrap() });
    assert!(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "core 0 does not run outside block_on"
    );
    rt.block_on(task).unwrap();
    assert_eq!(rx.try_recv(), Ok(()));
}

#[test]
fn runtime_spawn_on_a_core_of_the_runtime_stays_on_that_core() {
    let rt = rt(2);
    let core = rt.block_on(async { rt.spawn(async { Runtime::current_core() }).await });
    assert_eq!(core.unwrap(), Some(0), "like insane::spawn");
    let handle = rt.handle().clone();
    let core = rt.block_on(async move {
        task::spawn_on(1, async move {
            handle.spawn(async { Runtime::current_core() }).await
        })
        .await
    });
    assert_eq!(core.unwrap().unwrap(), Some(1));
}

#[test]
fn round_robin_placement_covers_every_worker_core_in_turn() {
    let rt = rt(4);
    let handle = rt.handle();
    let where_ = || async { Runtime::current_core().unwrap() };
    let mut tasks: Vec<_> = (0..6).map(|_| handle.spawn(where_())).collect();
    // Runtime::spawn shares the handle's rotation.
    tasks.push(rt.spawn(where_()));
    let cores: Vec<usize> = tasks
        .into_iter()
        .map(|t| handle.block_on(t).unwrap())
        .collect();
    assert_eq!(cores, [1, 2, 3, 1, 2, 3, 1], "core 0 is never chosen");
}

#[test]
fn enter_makes_insane_spawn_work_on_a_plain_thread() {
    let rt = rt(2);
    let handle = rt.handle().clone();
    std::thread::spawn(move || {
        let guard = handle.enter();
        let task = insane_runtime::spawn(async { Runtime::current_core() });
        assert_eq!(Handle::current().block_on(task).unwrap(), Some(1));
        let blocking = task::spawn_blocking(|| 5);
        assert_eq!(handle.block_on(blocking).unwrap(), 5);
        drop(guard);
        let outside = std::panic::catch_unwind(|| drop(insane_runtime::spawn(async {})));
        assert!(outside.is_err(), "the guard is gone: spawn panics again");
    })
    .join()
    .unwrap();
    // Runtime::enter, on the thread that owns the runtime.
    let _guard = rt.enter();
    let task = insane_runtime::spawn(async { 3 });
    assert_eq!(rt.handle().block_on(task).unwrap(), 3);
}

#[test]
fn try_current_is_an_error_outside_and_ok_inside() {
    let err = Handle::try_current().unwrap_err();
    assert!(err.is_missing_context());
    assert!(!err.is_thread_local_destroyed());
    assert!(err.to_string().contains("Runtime::enter"), "{err}");

    let rt = rt(2);
    let id = rt.handle().id();
    // On core 0 inside block_on, on a worker core, in a blocking closure.
    let ids = rt.block_on(async {
        let here = Handle::try_current().unwrap().id();
        let worker = task::spawn_on(1, async { Handle::current().id() }).await;
        let blocking = task::spawn_blocking(|| Handle::current().id()).await;
        [here, worker.unwrap(), blocking.unwrap()]
    });
    assert_eq!(ids, [id; 3]);
    // While entered, and not after.
    {
        let _guard = rt.enter();
        assert_eq!(Handle::try_current().unwrap().id(), id);
    }
    assert!(Handle::try_current().is_err());
}

#[test]
#[should_panic(expected = "there is no insane runtime on this thread")]
fn handle_current_outside_a_runtime_panics_naming_the_fix() {
    let _ = Handle::current();
}

#[test]
#[should_panic(expected = "Handle::block_on called on a core thread")]
fn handle_block_on_on_a_core_thread_panics() {
    let rt = rt(1);
    let handle = rt.handle().clone();
    rt.block_on(async move { handle.block_on(async {}) });
}

#[test]
fn handle_block_on_from_a_blocking_closure_works() {
    let rt = rt(2);
    let out = rt.block_on(async {
        task::spawn_blocking(|| Handle::current().block_on(async { 11 }))
            .await
            .unwrap()
    });
    assert_eq!(out, 11);
}

#[test]
fn handle_block_on_resumes_the_future_panic() {
    let rt = rt(2);
    let handle = rt.handle().clone();
    let caught = std::thread::spawn(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handle.block_on(async { panic!("boom in the future") })
        }))
    })
    .join()
    .unwrap();
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in the future"));
}

#[test]
fn spawning_through_a_handle_after_shutdown_is_cancelled() {
    let rt = rt(2);
    let handle = rt.handle().clone();
    drop(rt);
    let task = handle.spawn(async { 1 });
    let out = futures::executor::block_on(task);
    assert!(out.unwrap_err().is_cancelled());
    let blocked = std::panic::catch_unwind(|| handle.block_on(async {}));
    let payload = blocked.unwrap_err();
    let message = payload.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("runtime shut down"), "{message}");
}

/// Starts a blocking closure that sleeps `sleep` and waits until it runs.
fn start_sleeper(rt: &Runtime, sleep: Duration) {
    let (started_tx, started_rx) = mpsc::channel();
    let _sleeper = rt.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        std::thread::sleep(sleep);
    });
    started_rx.recv_timeout(SOON).expect("the closure starts");
}

#[test]
fn shutdown_timeout_returns_within_the_timeout_while_a_closure_sleeps_longer() {
    let rt = Runtime::builder()
        .cores(2)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    start_sleeper(&rt, Duration::from_secs(3));
    // Queued behind the sleeper (one thread): cancelled by the shutdown.
    let queued = rt.spawn_blocking(|| "never runs");
    // Pending tasks are cancelled and dropped on their own core, as on drop.
    let drops = DropCounter::default();
    let guard = drops.guard();
    let _pending = rt.spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await
    });
    let start = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(100));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(100), "it waited: {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "it did not wait for the sleep: {took:?}"
    );
    assert_eq!(drops.count(), 1, "the pending task was dropped");
    assert!(
        futures::executor::block_on(queued)
            .unwrap_err()
            .is_cancelled()
    );
}

#[test]
fn shutdown_timeout_returns_early_when_the_closures_finish() {
    let rt = rt(1);
    start_sleeper(&rt, Duration::from_millis(20));
    let start = Instant::now();
    rt.shutdown_timeout(Duration::from_secs(30));
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn shutdown_background_returns_at_once() {
    let rt = rt(2);
    start_sleeper(&rt, Duration::from_secs(3));
    let start = Instant::now();
    rt.shutdown_background();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "did not wait: {took:?}");
}

#[test]
fn a_blocking_closure_runs_with_its_runtime_entered() {
    let rt = rt(2);
    let core = rt.block_on(async {
        task::spawn_blocking(|| {
            let task = insane_runtime::spawn(async { Runtime::current_core() });
            Handle::current().block_on(task).unwrap()
        })
        .await
        .unwrap()
    });
    assert_eq!(core, Some(1), "spawned from the pool onto a worker core");
}

#[test]
fn handle_spawn_blocking_works_from_any_thread() {
    let rt = rt(1);
    let handle = rt.handle().clone();
    let task = std::thread::spawn(move || handle.spawn_blocking(|| 6 * 7))
        .join()
        .unwrap();
    assert_eq!(rt.block_on(task).unwrap(), 42);
}

#[test]
fn handles_of_one_runtime_share_its_id_and_size() {
    let a = rt(2);
    let b = rt(1);
    assert_eq!(a.handle().id(), a.handle().clone().id());
    assert_ne!(a.handle().id(), b.handle().id());
    assert_eq!(a.handle().num_cores(), 2);
    assert_eq!(b.handle().num_cores(), 1);
}
