//! Task-local storage: [`task_local!`](crate::task_local), [`LocalKey`] and
//! the [`TaskLocalFuture`] that [`LocalKey::scope`] returns.
//!
//! A value is set for the duration of a future (every poll of it and its
//! drop) or of a closure; it lives in a thread-local while the future is
//! being polled, which is exact on insane: a task is polled on one thread
//! at a time, and nothing else runs on that thread during the poll.

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::LocalKey as ThreadLocalKey;

use pin_project_lite::pin_project;

/// Declares task-local keys, like `tokio::task_local!`.
///
/// Each `static NAME: T;` declares a [`LocalKey<T>`](crate::task::LocalKey).
/// A value exists only inside [`LocalKey::scope`] (for a future) or
/// [`LocalKey::sync_scope`] (for a closure); there is no initial value.
///
/// ```
/// insane_runtime::task_local! {
///     /// The request being served.
///     pub static REQUEST_ID: u64;
///     static USER: String;
/// }
///
/// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// REQUEST_ID
///     .scope(7, async {
///         insane_runtime::task::yield_now().await;
///         assert_eq!(REQUEST_ID.get(), 7);
///     })
///     .await;
/// assert!(REQUEST_ID.try_with(|_| ()).is_err()); // not set out here
/// # let _ = &USER;
/// # });
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};

    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
        $crate::task_local!($($rest)*);
    };

    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty) => {
        $crate::__task_local_key!($(#[$attr])* $vis $name, $t);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __task_local_key {
    ($(#[$attr:meta])* $vis:vis $name:ident, $t:ty) => {
        $(#[$attr])*
        $vis static $name: $crate::task::LocalKey<$t> = {
            ::std::thread_local! {
                static __INSANE_TASK_LOCAL: ::std::cell::RefCell<::std::option::Option<$t>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            $crate::task::LocalKey::__new(__INSANE_TASK_LOCAL)
        };
    };
}

/// A key for task-local data, declared with
/// [`task_local!`](crate::task_local). Like `tokio::task::LocalKey`.
///
/// ```
/// insane_runtime::task_local! {
///     static DEPTH: u32;
/// }
/// let depth = DEPTH.sync_scope(1, || DEPTH.get());
/// assert_eq!(depth, 1);
/// ```
pub struct LocalKey<T: 'static> {
    inner: ThreadLocalKey<RefCell<Option<T>>>,
}

/// Why a task-local value could not be read: no scope of this key is
/// running (or the thread is exiting). tokio's `try_with` returns the same
/// error type, which tokio does not export by name; insane exports it as
/// `task::AccessError`.
///
/// ```
/// insane_runtime::task_local! {
///     static KEY: u8;
/// }
/// let err = KEY.try_with(|v| *v).unwrap_err();
/// assert_eq!(err.to_string(), "task-local value not set");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessError {
    _private: (),
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task-local value not set")
    }
}

impl Error for AccessError {}

/// Puts the previous value back when the scope ends, even by a panic.
struct Restore<'a, T: 'static> {
    key: &'static ThreadLocalKey<RefCell<Option<T>>>,
    slot: &'a mut Option<T>,
}

impl<T: 'static> Drop for Restore<'_, T> {
    fn drop(&mut self) {
        let _ = self.key.try_with(|cell| {
            if let Ok(mut current) = cell.try_borrow_mut() {
                std::mem::swap(self.slot, &mut *current);
            }
        });
    }
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn __new(inner: ThreadLocalKey<RefCell<Option<T>>>) -> Self {
        Self { inner }
    }

    /// Runs `f` with the value in `slot` set as this key's value; `slot`
    /// gets the value back (and the key its previous one) afterwards.
    ///
    /// # Panics
    /// If the key's value is borrowed (a `scope` of this key started inside
    /// [`with`](Self::with)'s closure for the same key), or the thread is
    /// exiting.
    #[track_caller]
    fn enter<R>(&'static self, slot: &mut Option<T>, f: impl FnOnce() -> R) -> R {
        let swapped = self.inner.try_with(|cell| {
            cell.try_borrow_mut()
                .map(|mut current| std::mem::swap(slot, &mut *current))
                .is_ok()
        });
        match swapped {
            Ok(true) => {}
            Ok(false) => panic!(
                "cannot enter a task-local scope while the task-local value is borrowed \
                 (LocalKey::scope or sync_scope inside LocalKey::with of the same key)"
            ),
            Err(_) => panic!(
                "cannot enter a task-local scope while the thread's locals are being destroyed"
            ),
        }
        let _restore = Restore {
            key: &self.inner,
            slot,
        };
        f()
    }

    /// Sets `value` as this key's value while `future` runs: during each of
    /// its polls and its drop. Like `tokio::task::LocalKey::scope`. The value
    /// is dropped with the returned future (or taken back with
    /// [`TaskLocalFuture::take_value`]).
    ///
    /// ```
    /// insane_runtime::task_local! {
    ///     static NAME: &'static str;
    /// }
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let greeting = NAME
    ///     .scope("insane", async { format!("hello {}", NAME.get()) })
    ///     .await;
    /// assert_eq!(greeting, "hello insane");
    /// # });
    /// ```
    pub fn scope<F: Future>(&'static self, value: T, future: F) -> TaskLocalFuture<T, F> {
        TaskLocalFuture {
            key: self,
            slot: Some(value),
            future: Some(future),
        }
    }

    /// Sets `value` as this key's value while `f` runs. Like
    /// `tokio::task::LocalKey::sync_scope`.
    ///
    /// ```
    /// insane_runtime::task_local! {
    ///     static LEVEL: u8;
    /// }
    /// let seen = LEVEL.sync_scope(1, || LEVEL.sync_scope(2, || LEVEL.get()) + LEVEL.get());
    /// assert_eq!(seen, 3); // the inner scope shadows, then restores
    /// ```
    ///
    /// # Panics
    /// If called inside [`with`](Self::with)'s closure for the same key.
    #[track_caller]
    pub fn sync_scope<F, R>(&'static self, value: T, f: F) -> R
    where
        F: FnOnce() -> R,
    {
        let mut slot = Some(value);
        self.enter(&mut slot, f)
    }

    /// Calls `f` with a reference to the value. Like
    /// `tokio::task::LocalKey::with`.
    ///
    /// ```
    /// insane_runtime::task_local! {
    ///     static TAGS: Vec<&'static str>;
    /// }
    /// TAGS.sync_scope(vec!["a", "b"], || {
    ///     assert_eq!(TAGS.with(|t| t.len()), 2);
    /// });
    /// ```
    ///
    /// # Panics
    /// If no scope of this key is running (use [`try_with`](Self::try_with)
    /// to get an error instead).
    #[track_caller]
    pub fn with<F, R>(&'static self, f: F) -> R
    where
        F: FnOnce(&T) -> R,
    {
        match self.try_with(f) {
            Ok(r) => r,
            Err(_) => panic!(
                "cannot access a task-local value outside of its scope \
                 (LocalKey::scope or sync_scope)"
            ),
        }
    }

    /// Calls `f` with a reference to the value, or returns an
    /// [`AccessError`] if no scope of this key is running. Like
    /// `tokio::task::LocalKey::try_with`.
    ///
    /// ```
    /// insane_runtime::task_local! {
    ///     static KEY: u8;
    /// }
    /// assert!(KEY.try_with(|v| *v).is_err());
    /// assert_eq!(KEY.sync_scope(3, || KEY.try_with(|v| *v)), Ok(3));
    /// ```
    pub fn try_with<F, R>(&'static self, f: F) -> Result<R, AccessError>
    where
        F: FnOnce(&T) -> R,
    {
        let mut f = Some(f);
        self.inner
            .try_with(|cell| {
                let value = cell.try_borrow().ok()?;
                let f = f.take()?;
                value.as_ref().map(f)
            })
            .ok()
            .flatten()
            .ok_or(AccessError { _private: () })
    }
}

impl<T: Clone + 'static> LocalKey<T> {
    /// A copy of the value. Like `tokio::task::LocalKey::get`.
    ///
    /// ```
    /// insane_runtime::task_local! {
    ///     static ID: u64;
    /// }
    /// assert_eq!(ID.sync_scope(9, || ID.get()), 9);
    /// ```
    ///
    /// # Panics
    /// If no scope of this key is running.
    #[track_caller]
    pub fn get(&'static self) -> T {
        self.with(T::clone)
    }
}

impl<T: Clone + 'static> LocalKey<T> {
    /// A copy of the value, or an [`AccessError`] if no scope of this key
    /// is running. Like `tokio::task::LocalKey::try_get`.
    ///
    /// ```
    /// insane_runtime::task_local! {
    ///     static ID: u64;
    /// }
    /// assert!(ID.try_get().is_err());
    /// assert_eq!(ID.sync_scope(9, || ID.try_get()), Ok(9));
    /// ```
    pub fn try_get(&'static self) -> Result<T, AccessError> {
        self.try_with(T::clone)
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey").finish_non_exhaustive()
    }
}

pin_project! {
    /// The future [`LocalKey::scope`] returns: `future` with the key's
    /// value set while it is polled or dropped. Like
    /// `tokio::task::futures::TaskLocalFuture`.
    ///
    /// ```
    /// insane_runtime::task_local! {
    ///     static KEY: u32;
    /// }
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let fut = KEY.scope(1, async { KEY.get() + 1 });
    /// assert_eq!(fut.await, 2);
    /// # });
    /// ```
    pub struct TaskLocalFuture<T, F>
    where
        T: 'static,
    {
        key: &'static LocalKey<T>,
        slot: Option<T>,
        #[pin]
        future: Option<F>,
    }

    impl<T, F> PinnedDrop for TaskLocalFuture<T, F>
    where
        T: 'static,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut future = this.future;
            if future.is_some() && this.slot.is_some() {
                // Drop the future inside the scope, so that its destructors
                // see the value, as they would have during a poll.
                let key = *this.key;
                let slot = this.slot;
                let inner = &key.inner;
                let entered = inner
                    .try_with(|cell| cell.try_borrow_mut().map(|mut c| std::mem::swap(slot, &mut *c)).is_ok())
                    .unwrap_or(false);
                let _restore = entered.then(|| Restore { key: inner, slot });
                future.set(None);
            }
        }
    }
}

impl<T: 'static, F> TaskLocalFuture<T, F> {
    /// Takes the value back out of the scope, if the future has completed
    /// or was never polled (`None` while a poll is running, which cannot be
    /// observed from outside, or after it was taken). Like tokio's.
    ///
    /// ```
    /// insane_runtime::task_local! {
    ///     static KEY: String;
    /// }
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
    /// let mut fut = std::pin::pin!(KEY.scope("v".to_string(), async {}));
    /// (&mut fut).await;
    /// assert_eq!(fut.as_mut().take_value().as_deref(), Some("v"));
    /// # });
    /// ```
    pub fn take_value(self: Pin<&mut Self>) -> Option<T> {
        self.project().slot.take()
    }
}

impl<T: 'static, F: Future> Future for TaskLocalFuture<T, F> {
    type Output = F::Output;

    #[track_caller]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let key = *this.key;
        let mut future = this.future;
        let out = key.enter(this.slot, || match future.as_mut().as_pin_mut() {
            Some(fut) => {
                let out = fut.poll(cx);
                if out.is_ready() {
                    // Dropped inside the scope, like a dropped future.
                    future.set(None);
                }
                Some(out)
            }
            None => None,
        });
        match out {
            Some(poll) => poll,
            None => panic!("`TaskLocalFuture` polled after completion"),
        }
    }
}

impl<T: 'static + fmt::Debug, F> fmt::Debug for TaskLocalFuture<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLocalFuture")
            .field("value", &self.slot)
            .finish_non_exhaustive()
    }
}
