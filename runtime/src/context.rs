//! The thread-local pointer to the core this thread is running, if any.
//!
//! Everything that needs "the current core" (spawning, timers, reactors)
//! goes through [`with_core`]; it is `None` outside a runtime.
//!
//! Beside it, the thread's *entered* [`Handle`]: set for their whole life
//! on worker cores, during `Runtime::block_on` on core 0, and while a
//! `Runtime::enter` / `Handle::enter` guard lives on any thread. It is
//! what `Handle::current()` returns and what `spawn` uses on a thread
//! that is not a core.

use std::cell::{Cell, RefCell};

use crate::core::Core;
use crate::runtime::Handle;

thread_local! {
    static CURRENT: Cell<*const Core> = const { Cell::new(std::ptr::null()) };
    static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Why there is no current handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoHandle {
    /// Not a core, and no `enter` guard.
    Missing,
    /// The thread's locals are being destroyed.
    Destroyed,
}

/// The handle entered on this thread, else the runtime of the core this
/// thread runs.
pub(crate) fn current_handle() -> Result<Handle, NoHandle> {
    let entered = HANDLE
        .try_with(|h| h.borrow().clone())
        .map_err(|_| NoHandle::Destroyed)?;
    if let Some(h) = entered {
        return Ok(h);
    }
    with_core(Handle::for_core).ok_or(NoHandle::Missing)
}

/// The handle entered on this thread (not the core's), if any.
pub(crate) fn entered_handle() -> Option<Handle> {
    HANDLE.try_with(|h| h.borrow().clone()).ok().flatten()
}

/// Makes `handle` the entered one until the returned guard is dropped,
/// which restores the previous one.
pub(crate) fn enter_handle(handle: Handle) -> HandleGuard {
    let previous = HANDLE
        .try_with(|h| h.borrow_mut().replace(handle))
        .ok()
        .flatten();
    HandleGuard { previous }
}

/// Restores the previously entered handle when dropped.
pub(crate) struct HandleGuard {
    previous: Option<Handle>,
}

impl Drop for HandleGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // The handle replaced here is dropped outside the borrow: its drop
        // may release the runtime's last reference.
        let replaced = HANDLE
            .try_with(|h| std::mem::replace(&mut *h.borrow_mut(), previous))
            .ok()
            .flatten();
        drop(replaced);
    }
}

/// Runs `f` with the core this thread is executing, or returns `None` when
/// the thread is not inside an insane runtime.
#[inline]
pub(crate) fn with_core<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    let ptr = CURRENT.try_with(|c| c.get()).unwrap_or(std::ptr::null());
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the pointer is set only by `enter`, whose guard clears it
    // before the `Core` it points to can be dropped (the guard borrows the
    // core for its whole life), so a non-null pointer is a live `Core`.
    Some(f(unsafe { &*ptr }))
}

/// Like [`with_core`] but panics with a message naming `what` outside a
/// runtime (tokio's behaviour for `spawn` and friends).
#[track_caller]
pub(crate) fn expect_core<R>(what: &str, f: impl FnOnce(&Core) -> R) -> R {
    match with_core(f) {
        Some(r) => r,
        None => panic!(
            "{what} must be called from inside an insane runtime \
             (use #[insane::main], #[insane::test] or Runtime::block_on)"
        ),
    }
}

/// Whether this thread is currently inside a runtime.
pub(crate) fn is_inside() -> bool {
    with_core(|_| ()).is_some()
}

/// Marks this thread as running `core` until the guard is dropped.
pub(crate) struct EnterGuard<'a> {
    previous: *const Core,
    _core: &'a Core,
}

pub(crate) fn enter(core: &Core) -> EnterGuard<'_> {
    let previous = CURRENT.with(|c| c.replace(core as *const Core));
    EnterGuard {
        previous,
        _core: core,
    }
}

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.previous));
    }
}
