//! Driver buffers that belong to one core: [`CoreFrame`] carries a `!Send`
//! driver frame (an AF_XDP UMEM frame, a DPDK mbuf) inside a `Send`
//! [`TxBuf`](super::TxBuf) or [`RxBuf`](super::RxBuf), and [`FrameOwner`]
//! routes it back to the core that owns it when it is dropped elsewhere.
//!
//! A raw-frame driver's buffers share per-core state without atomics
//! (`Rc`, `RefCell`: the AF_XDP rings and free lists). Such a frame may
//! only be dropped (returned to its pool) on its home thread. While it
//! travels, nothing touches it: the buffer that carries it reads and
//! writes the frame's bytes through a raw pointer captured on the home
//! thread (the driver memory stays mapped while the frame is owned), and
//! a drop on another thread pushes the frame onto its home's return
//! queue, which the home core drains on every turn of its loop (the stack
//! reactor's poll).
//!
//! If the home core has shut down, a frame dropped on another thread can
//! never be returned: it stays in the queue (with the driver memory it
//! keeps alive) until the process exits. That is a bounded leak of one
//! socket's memory, never an access from the wrong thread.
//!
//! DPDK mbufs need none of this: their mempool takes them back from any
//! thread. Their device says so (`StackDevice::rx_anywhere`), and
//! [`CoreFrame::anywhere`] drops such a frame wherever the box is dropped —
//! at once, and also after the home core has stopped.

use std::any::Any;
use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// An id of the current thread, unique in the process (cheaper than
/// `std::thread::current().id()`).
pub(crate) fn thread_uid() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static UID: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    UID.with(|u| *u)
}

/// A `!Send` value moved between threads by its owner.
struct Parcel(#[allow(dead_code)] Box<dyn Any>); // held only to be dropped at home

// SAFETY: a parcel's value is only created, used and dropped on its home
// thread (`FrameOwner::drain` runs there); other threads only move the box
// pointer through the queue, never touching the value.
unsafe impl Send for Parcel {}

/// The home of driver frames: one core thread, and the queue of frames
/// dropped on other threads, waiting to be dropped at home.
pub(crate) struct FrameOwner {
    thread: u64,
    returns: Mutex<Vec<Parcel>>,
    /// `returns.len()`, read without the lock.
    queued: AtomicUsize,
}

impl fmt::Debug for FrameOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameOwner")
            .field("thread", &self.thread)
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish()
    }
}

impl FrameOwner {
    /// The current thread as a home.
    pub(crate) fn here() -> Arc<FrameOwner> {
        Arc::new(FrameOwner {
            thread: thread_uid(),
            returns: Mutex::new(Vec::new()),
            queued: AtomicUsize::new(0),
        })
    }

    /// Whether the caller runs on the home thread.
    pub(crate) fn is_current(&self) -> bool {
        self.thread == thread_uid()
    }

    /// Frames waiting in the return queue.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    fn send_back(&self, value: Box<dyn Any>) {
        let mut q = self.returns.lock().unwrap_or_else(|p| p.into_inner());
        q.push(Parcel(value));
        self.queued.store(q.len(), Ordering::Release);
    }

    /// Drops the frames returned from other threads; returns how many.
    /// Must run on the home thread (checked: elsewhere it does nothing).
    pub(crate) fn drain(&self) -> usize {
        if self.queued.load(Ordering::Acquire) == 0 || !self.is_current() {
            return 0;
        }
        let parcels = {
            let mut q = self.returns.lock().unwrap_or_else(|p| p.into_inner());
            self.queued.store(0, Ordering::Release);
            std::mem::take(&mut *q)
        };
        let n = parcels.len();
        // Dropped here, on the home thread.
        drop(parcels);
        n
    }
}

/// A `!Send` driver frame owned by a `Send` buffer: dropped on its home
/// thread, or sent back there (see the [module docs](self)).
pub(crate) struct CoreFrame {
    value: ManuallyDrop<Box<dyn Any>>,
    home: Arc<FrameOwner>,
    /// The value is `Send` (checked when boxed): dropped where the box is.
    anywhere: bool,
}

// SAFETY: the value is touched (downcast, dropped) only on its home
// thread: `take` checks the thread, `drop` sends it home otherwise —
// except a value boxed with `anywhere`, which is `Send` (the type of
// `CoreFrame::anywhere`'s argument) and may be dropped on any thread. A `&CoreFrame`
// gives no access to the value at all.
unsafe impl Send for CoreFrame {}
// SAFETY: as above; no method reads the value through `&self`.
unsafe impl Sync for CoreFrame {}

impl CoreFrame {
    /// Boxes `value`, created on the current thread, which must be
    /// `home`'s thread.
    pub(crate) fn new<T: Any>(value: T, home: Arc<FrameOwner>) -> Self {
        debug_assert!(home.is_current(), "CoreFrame created away from its home");
        CoreFrame {
            value: ManuallyDrop::new(Box::new(value)),
            home,
            anywhere: false,
        }
    }

    /// Boxes a `Send` driver frame (a DPDK mbuf: its pool takes it back
    /// from any thread), which is dropped wherever the box is.
    pub(crate) fn anywhere(value: Box<dyn Any + Send>, home: Arc<FrameOwner>) -> Self {
        CoreFrame {
            value: ManuallyDrop::new(value),
            home,
            anywhere: true,
        }
    }

    /// The value, if the caller is on the home thread and it is a `T`;
    /// else the box back.
    pub(crate) fn take<T: Any>(mut self) -> Result<T, CoreFrame> {
        if !self.home.is_current() || !self.value.is::<T>() {
            return Err(self);
        }
        // SAFETY: `self` is forgotten right after, so the value is taken
        // exactly once and never dropped by `Drop`.
        let value = unsafe { ManuallyDrop::take(&mut self.value) };
        // SAFETY: `home` is read out once; `self` is forgotten, so its
        // fields are not dropped twice.
        let home = unsafe { std::ptr::read(&self.home) };
        std::mem::forget(self);
        drop(home);
        match value.downcast::<T>() {
            Ok(v) => Ok(*v),
            Err(_) => unreachable!("type checked above"),
        }
    }
}

impl Drop for CoreFrame {
    fn drop(&mut self) {
        // SAFETY: taken once, in drop; never used again.
        let value = unsafe { ManuallyDrop::take(&mut self.value) };
        if self.anywhere || self.home.is_current() {
            drop(value);
        } else {
            self.home.send_back(value);
        }
    }
}

impl fmt::Debug for CoreFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreFrame")
            .field("home", &self.home)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// Counts drops on the thread that made it (an `Rc`: `!Send`).
    struct Frame(Rc<Cell<usize>>);
    impl Drop for Frame {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn frames_dropped_elsewhere_come_home_and_drop_there() {
        let home = FrameOwner::here();
        let drops = Rc::new(Cell::new(0));
        let a = CoreFrame::new(Frame(drops.clone()), home.clone());
        let b = CoreFrame::new(Frame(drops.clone()), home.clone());
        drop(a);
        assert_eq!(drops.get(), 1, "dropped at home at once");
        std::thread::spawn(move || drop(b)).join().unwrap();
        assert_eq!(drops.get(), 1, "not dropped on the other thread");
        assert_eq!(home.queued(), 1);
        assert_eq!(home.drain(), 1);
        assert_eq!(drops.get(), 2);
        assert_eq!(home.queued(), 0);
    }

    #[test]
    fn take_only_at_home_and_as_the_right_type() {
        let home = FrameOwner::here();
        let drops = Rc::new(Cell::new(0));
        let b = CoreFrame::new(Frame(drops.clone()), home.clone());
        let b = b.take::<u32>().unwrap_err();
        let b = std::thread::spawn(move || match b.take::<u8>() {
            Ok(_) => panic!("taken away from home"),
            Err(b) => b,
        })
        .join()
        .unwrap();
        let f = b.take::<Frame>().ok().unwrap();
        assert_eq!(drops.get(), 0);
        drop(f);
        assert_eq!(drops.get(), 1);
        // A drain elsewhere does nothing.
        let c = CoreFrame::new(Frame(drops.clone()), home.clone());
        std::thread::spawn(move || drop(c)).join().unwrap();
        let h = home.clone();
        assert_eq!(std::thread::spawn(move || h.drain()).join().unwrap(), 0);
        assert_eq!(home.drain(), 1);
        assert_eq!(drops.get(), 2);
    }
}
