//! The thread-local pointer to the core this thread is running, if any.
//!
//! Everything that needs "the current core" (spawning, timers, reactors)
//! goes through [`with_core`]; it is `None` outside a runtime.

use std::cell::Cell;

use crate::core::Core;

thread_local! {
    static CURRENT: Cell<*const Core> = const { Cell::new(std::ptr::null()) };
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
