//! [`AbortHandle`]: cancel a task without owning its output.

use std::fmt;
use std::ptr::NonNull;
use std::task::Waker;

use super::{Id, TaskHeader};

/// A handle that cancels a task without being able to await it. Like
/// `tokio::task::AbortHandle`: obtained from [`JoinHandle::abort_handle`]
/// or returned by [`JoinSet::spawn`]; it may be cloned, sent to other
/// threads and kept after the task finished (aborting then does nothing).
/// Dropping it does not cancel the task.
///
/// ```
/// use insane_runtime::task::{self, AbortHandle};
/// use insane_runtime::time::{sleep, Duration};
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let handle = task::spawn(sleep(Duration::from_secs(3600)));
/// let abort: AbortHandle = handle.abort_handle();
/// assert_eq!(abort.id(), handle.id());
/// abort.abort();
/// assert!(handle.await.unwrap_err().is_cancelled());
/// # });
/// ```
///
/// [`JoinHandle::abort_handle`]: super::JoinHandle::abort_handle
/// [`JoinSet::spawn`]: super::JoinSet::spawn
pub struct AbortHandle {
    /// The task's header, inside the async-task allocation that `waker`
    /// keeps alive (a waker is a counted reference to it).
    header: NonNull<TaskHeader>,
    /// Wakes the task so that its next poll sees the abort.
    waker: Waker,
}

// SAFETY: the header is only read through its atomics (`set_aborted`,
// `is_finished`) and its immutable id, all of which are thread-safe; the
// waker is Send + Sync. The handle never touches the task's future or
// output.
unsafe impl Send for AbortHandle {}
// SAFETY: as for Send: every `&self` method is thread-safe.
unsafe impl Sync for AbortHandle {}

impl AbortHandle {
    /// `waker` must be a waker of the task whose metadata `header` is.
    pub(crate) fn new(header: &TaskHeader, waker: Waker) -> Self {
        Self {
            header: NonNull::from(header),
            waker,
        }
    }

    fn header(&self) -> &TaskHeader {
        // SAFETY: `waker` is a counted reference to the task's allocation,
        // which holds the header; async-task drops the header only when the
        // last reference is gone, so it lives at least as long as `self`.
        unsafe { self.header.as_ref() }
    }

    /// Cancels the task: it will not be polled again and its future is
    /// dropped on its own core. Its `JoinHandle` then gives
    /// `Err(JoinError::is_cancelled())`, unless the task had already
    /// finished. A [`spawn_blocking`](super::spawn_blocking) task can be
    /// cancelled only before it starts running.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let handle = insane_runtime::task::spawn(std::future::pending::<()>());
    /// handle.abort_handle().abort();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # });
    /// ```
    pub fn abort(&self) {
        if self.header().is_finished() {
            return;
        }
        self.header().set_aborted();
        self.waker.wake_by_ref();
    }

    /// Whether the task has finished: completed, panicked or cancelled.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let handle = insane_runtime::task::spawn(async {});
    /// let abort = handle.abort_handle();
    /// handle.await.unwrap();
    /// assert!(abort.is_finished());
    /// # });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.header().is_finished()
    }

    /// The id of the task.
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let handle = insane_runtime::task::spawn(async {});
    /// assert_eq!(handle.abort_handle().id(), handle.id());
    /// # });
    /// ```
    pub fn id(&self) -> Id {
        self.header().id()
    }
}

impl Clone for AbortHandle {
    fn clone(&self) -> Self {
        Self {
            header: self.header,
            waker: self.waker.clone(),
        }
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.id())
            .finish()
    }
}
