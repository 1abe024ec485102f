//! `insane::runtime::Handle` and the facade `Runtime`'s `handle`, `enter`,
//! `spawn`, `spawn_blocking`, `shutdown_timeout` and `shutdown_background`,
//! as a tokio service uses them (the facade delegates to insane-runtime,
//! whose `runtime/tests/handle.rs` specifies the details).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use insane::runtime::{Handle, Runtime};

fn rt(cores: usize) -> Runtime {
    Runtime::builder()
        .cores(cores)
        .build()
        .expect("runtime starts")
}

const SOON: Duration = Duration::from_secs(10);

#[test]
fn a_handle_moved_to_a_thread_spawns_and_blocks_on_the_runtime() {
    let rt = rt(2);
    let handle = rt.handle().clone();
    let outputs = std::thread::spawn(move || {
        let tasks: Vec<_> = (0..4u32)
            .map(|i| handle.spawn(async move { i + 1 }))
            .collect();
        tasks
            .into_iter()
            .map(|t| handle.block_on(t).unwrap())
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert_eq!(outputs, [1, 2, 3, 4]);
}

#[test]
fn runtime_spawn_runs_without_block_on_and_can_use_the_driver() {
    let rt = rt(2);
    let (tx, rx) = mpsc::channel();
    let _task = rt.spawn(async move {
        // A socket needs the worker core's I/O driver.
        let socket = insane::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        insane::time::sleep(Duration::from_millis(1)).await;
        tx.send(socket.local_addr().is_ok()).unwrap();
    });
    assert_eq!(rx.recv_timeout(SOON), Ok(true));
}

#[test]
fn enter_makes_insane_spawn_work_on_a_plain_thread() {
    let rt = rt(2);
    let _guard = rt.enter();
    let task = insane::spawn(async { insane::runtime::Runtime::current_core() });
    assert_eq!(Handle::current().block_on(task).unwrap(), Some(1));
    let blocking = insane::task::spawn_blocking(|| "pool");
    assert_eq!(rt.handle().block_on(blocking).unwrap(), "pool");
}

#[test]
fn try_current_outside_is_an_error_and_inside_is_ok() {
    assert!(Handle::try_current().unwrap_err().is_missing_context());
    let rt = rt(1);
    let id = rt.block_on(async { Handle::try_current().map(|h| h.id()) });
    assert_eq!(id.unwrap(), rt.handle().id());
}

#[test]
#[should_panic(expected = "Handle::block_on called on a core thread")]
fn handle_block_on_inside_the_runtime_panics() {
    let rt = rt(1);
    rt.block_on(async { Handle::current().block_on(async {}) });
}

#[test]
fn runtime_spawn_blocking_runs_on_the_pool() {
    let rt = rt(1);
    let task = rt.spawn_blocking(|| std::thread::current().name().map(String::from));
    let name = rt.block_on(task).unwrap();
    assert_eq!(name.as_deref(), Some("insane-core-blocking"));
}

#[test]
fn shutdown_timeout_does_not_wait_for_a_longer_closure() {
    let rt = rt(2);
    let (started_tx, started_rx) = mpsc::channel();
    let _sleeper = rt.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(3));
    });
    started_rx.recv_timeout(SOON).unwrap();
    let start = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(50));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn shutdown_background_returns_at_once() {
    let rt = rt(2);
    let (started_tx, started_rx) = mpsc::channel();
    let _sleeper = rt.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(3));
    });
    started_rx.recv_timeout(SOON).unwrap();
    let start = Instant::now();
    rt.shutdown_background();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}
