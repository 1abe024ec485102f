//! Helpers shared by the integration tests: a small runtime on the epoll
//! driver, and readiness waits written against the `IoDriver` contract the
//! way `insane::net` sockets use it.

#![allow(dead_code)]

use std::future::poll_fn;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use insane_epoll::EpollDriver;
use insane_runtime::driver::{self, Direction, Token};
use insane_runtime::runtime::{IdlePolicy, Runtime};

/// A runtime of `cores` cores, each with the epoll driver, that parks at
/// once when idle (so the tests exercise `park`).
pub fn runtime(cores: usize) -> Runtime {
    Runtime::builder()
        .cores(cores)
        .idle(IdlePolicy::Park)
        .on_core_start(Arc::new(|_| insane_epoll::install_on_current_core()))
        .build()
        .expect("runtime with the epoll driver")
}

/// Runs `f` on its own thread and fails the test if it takes longer than
/// 10 s (a lost wake-up would otherwise hang the test run).
pub fn with_deadline<F: FnOnce() + Send + 'static>(f: F) {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(()) => thread.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // `f` panicked: re-raise its panic.
            if let Err(p) = thread.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test hung for 10 s (lost wake-up?)"),
    }
}

pub fn register(fd: RawFd) -> Token {
    driver::with_current(|d| d.register(fd)).unwrap().unwrap()
}

pub fn deregister(token: Token) {
    driver::with_current(|d| d.deregister(token)).unwrap();
}

pub fn clear_ready(token: Token, dir: Direction) {
    driver::with_current(|d| d.clear_ready(token, dir)).unwrap();
}

/// How often the current core has parked in its epoll driver.
pub fn parks() -> u64 {
    insane_runtime::reactor::current::<EpollDriver>()
        .expect("epoll driver on this core")
        .borrow()
        .parks()
}

/// Waits until the driver reports `token` ready for `dir`; counts the
/// times it had to wait in `pendings`.
pub async fn ready(token: Token, dir: Direction, pendings: &mut usize) -> io::Result<()> {
    poll_fn(|cx| {
        let p = driver::with_current(|d| d.poll_ready(token, dir, cx))
            .unwrap_or_else(|e| Poll::Ready(Err(e)));
        if p.is_pending() {
            *pendings += 1;
        }
        p
    })
    .await
}

/// tokio's `async_io`: retries `op` until it stops returning `WouldBlock`.
pub async fn io<R>(
    token: Token,
    dir: Direction,
    pendings: &mut usize,
    mut op: impl FnMut() -> io::Result<R>,
) -> io::Result<R> {
    loop {
        ready(token, dir, pendings).await?;
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => clear_ready(token, dir),
            other => return other,
        }
    }
}
