//! Shared helpers of the io_uring driver's integration tests: a one-core
//! runtime with the driver installed, polling a future once, waiting for
//! a condition, and a buffer that counts its drops.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use insane_runtime::runtime::{IdlePolicy, Runtime};
use insane_uring::{IoBuf, IoBufMut, UringConfig};

/// One core, parking at once when idle, with the io_uring driver.
pub fn runtime() -> Runtime {
    runtime_with(UringConfig::default())
}

pub fn runtime_with(cfg: UringConfig) -> Runtime {
    Runtime::builder()
        .cores(1)
        .idle(IdlePolicy::Park)
        .on_core_start(Arc::new(move |_| {
            insane_uring::install_on_current_core(&cfg)
        }))
        .build()
        .expect("a runtime with the io_uring driver")
}

/// Polls `fut` once; true if it completed.
pub async fn poll_once<F: Future + ?Sized>(mut fut: Pin<&mut F>) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_ready())).await
}

/// Yields (letting the core poll the ring) until `cond` holds; fails
/// after 5 s.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        insane_runtime::task::yield_now().await;
    }
}

/// A `Vec<u8>`-backed buffer that counts how often it is dropped.
pub struct CountedBuf {
    pub inner: Vec<u8>,
    drops: Arc<AtomicUsize>,
}

impl CountedBuf {
    pub fn new(capacity: usize, drops: &Arc<AtomicUsize>) -> Self {
        Self {
            inner: Vec::with_capacity(capacity),
            drops: drops.clone(),
        }
    }
}

impl Drop for CountedBuf {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: delegates to the Vec, whose heap storage is stable.
unsafe impl IoBuf for CountedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.inner.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.inner.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.inner.bytes_total()
    }
}

// SAFETY: delegates to the Vec.
unsafe impl IoBufMut for CountedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.inner.stable_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.inner.set_init(pos) }
    }
}
