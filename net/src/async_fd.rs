//! [`AsyncFd`]: readiness for any file descriptor (tokio's
//! `io::unix::AsyncFd`), so an application can drive its own non-blocking
//! fds — a netlink socket, an inotify or timer fd, a device — on insane's
//! I/O driver (io_uring poll or epoll) like insane's sockets are.
//!
//! With `&mut` access, the `_mut` forms (`readable_mut`, `async_io_mut`,
//! [`AsyncFdReadyMutGuard`], ...) lend the value mutably, as tokio's do.
//!
//! ```no_run
//! use std::io::Read;
//! use insane_net::AsyncFd;
//!
//! # async fn f(fd: std::fs::File) -> std::io::Result<()> {
//! // `fd` must be in non-blocking mode.
//! // SAFETY: the `File` owns its fd, which stays open while it lives.
//! let fd = unsafe { AsyncFd::register(fd)? };
//! let mut buf = [0u8; 512];
//! let n = loop {
//!     let mut guard = fd.readable().await?;
//!     match guard.try_io(|inner| inner.get_ref().read(&mut buf)) {
//!         Ok(result) => break result?,
//!         Err(_would_block) => continue, // readiness was stale: wait again
//!     }
//! };
//! println!("{n} bytes");
//! # Ok(())
//! # }
//! ```

use std::error::Error;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::task::{Context, Poll};

use insane_runtime::driver::Direction;
use tokio::io::{Interest, Ready};

use crate::io::PollIo;

/// The wrapped value, seen as the fd it holds.
struct Fd<T: AsRawFd>(T);

impl<T: AsRawFd> AsFd for Fd<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the caller of `AsyncFd::register` (or of the deprecated
        // constructors, which take it on trust as tokio's do) promised that
        // `as_raw_fd` names one open fd for as long as the `AsyncFd` holds
        // `T`; the borrow is tied to `&self`, so to that time.
        unsafe { BorrowedFd::borrow_raw(self.0.as_raw_fd()) }
    }
}

/// An fd registered with the I/O driver of each core that waits on it
/// (tokio's `io::unix::AsyncFd`). The fd must be in non-blocking mode.
///
/// ```no_run
/// use std::io::Read;
/// use insane_net::AsyncFd;
///
/// # async fn f(fd: std::fs::File) -> std::io::Result<()> {
/// // SAFETY: the `File` owns its fd, which stays open while it lives.
/// let fd = unsafe { AsyncFd::register(fd)? };
/// let mut buf = [0u8; 512];
/// let n = fd.async_io(tokio::io::Interest::READABLE, |f| (&*f).read(&mut buf)).await?;
/// # let _ = n;
/// # Ok(())
/// # }
/// ```
///
/// Unlike tokio's, `T` must be `Send + Sync + 'static`: insane registers
/// an fd with every core that waits on it, and when it is dropped the
/// other cores' registrations are removed by those cores, which hold the
/// value until then so the fd number cannot be reused meanwhile. While
/// the `AsyncFd` lives, those registrations know only the fd number, so
/// `&mut self` methods ([`get_mut`](Self::get_mut), the `_mut` waits)
/// lend the value exclusively, as tokio's do.
pub struct AsyncFd<T: AsRawFd + Send + Sync + 'static> {
    io: PollIo<Fd<T>>,
    interest: Interest,
}

impl<T: AsRawFd + Send + Sync + 'static> AsyncFd<T> {
    /// Wraps `inner` for reading and writing (tokio's `register`). The fd
    /// must be in non-blocking mode (or waits block the core).
    /// Registration with a core's driver happens at the first wait, on the
    /// waiting core.
    ///
    /// # Safety
    /// `inner.as_raw_fd()` must be an open fd that stays open and names the same open file until the `AsyncFd` is
    /// dropped or [`into_inner`](Self::into_inner) returns, and every call
    /// of `as_raw_fd` must return that fd (tokio's contract). Owning types
    /// (`File`, `OwnedFd`, std sockets) meet it unless replaced through
    /// [`get_mut`](Self::get_mut).
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use insane_net::AsyncFd;
    ///
    /// let (a, _b) = UnixStream::pair()?;
    /// a.set_nonblocking(true)?;
    /// // SAFETY: the stream owns its fd, which stays open while it lives.
    /// let fd = unsafe { AsyncFd::register(a) }?;
    /// # drop(fd);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// None today; the error type (with `inner` in it) is tokio's.
    pub unsafe fn register(inner: T) -> Result<Self, AsyncFdRegisterError<T>> {
        // SAFETY: the caller's promise, passed on.
        unsafe { Self::register_with_interest(inner, Interest::READABLE | Interest::WRITABLE) }
    }

    /// Like [`register`](Self::register), for `interest` only: waiting for
    /// another interest is an `InvalidInput` error.
    ///
    /// # Safety
    /// As [`register`](Self::register).
    ///
    /// # Errors
    /// As [`register`](Self::register).
    pub unsafe fn register_with_interest(
        inner: T,
        interest: Interest,
    ) -> Result<Self, AsyncFdRegisterError<T>> {
        // Registration happens at the first wait, so building cannot fail
        // today; the error type keeps tokio's signature for callers.
        Ok(Self {
            io: PollIo::new(Fd(inner)),
            interest,
        })
    }

    /// Deprecated as in tokio (it trusts `T`'s `as_raw_fd` without an
    /// `unsafe` promise): use [`register`](Self::register).
    ///
    /// # Errors
    /// As [`register`](Self::register).
    #[deprecated(note = "unsound due to lack of I/O safety (as in tokio); use `AsyncFd::register`")]
    pub fn new(inner: T) -> io::Result<Self> {
        // SAFETY: none given (the reason for the deprecation, as in tokio).
        unsafe { Ok(Self::register(inner)?) }
    }

    /// Deprecated as in tokio: use
    /// [`register_with_interest`](Self::register_with_interest).
    ///
    /// # Errors
    /// As [`register`](Self::register).
    #[deprecated(
        note = "unsound due to lack of I/O safety (as in tokio); use `AsyncFd::register_with_interest`"
    )]
    pub fn with_interest(inner: T, interest: Interest) -> io::Result<Self> {
        // SAFETY: none given (the reason for the deprecation, as in tokio).
        unsafe { Ok(Self::register_with_interest(inner, interest)?) }
    }

    /// Deprecated as in tokio: use [`register`](Self::register).
    ///
    /// # Errors
    /// As [`register`](Self::register), with `inner` in the error.
    #[deprecated(note = "unsound due to lack of I/O safety (as in tokio); use `AsyncFd::register`")]
    pub fn try_new(inner: T) -> Result<Self, AsyncFdRegisterError<T>> {
        // SAFETY: none given (the reason for the deprecation, as in tokio).
        unsafe { Self::register(inner) }
    }

    /// Deprecated as in tokio: use
    /// [`register_with_interest`](Self::register_with_interest).
    ///
    /// # Errors
    /// As [`register`](Self::register), with `inner` in the error.
    #[deprecated(
        note = "unsound due to lack of I/O safety (as in tokio); use `AsyncFd::register_with_interest`"
    )]
    pub fn try_with_interest(
        inner: T,
        interest: Interest,
    ) -> Result<Self, AsyncFdRegisterError<T>> {
        // SAFETY: none given (the reason for the deprecation, as in tokio).
        unsafe { Self::register_with_interest(inner, interest) }
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        &self.io.get_ref().0
    }

    /// The wrapped value, mutably: to read or write it without waiting
    /// for readiness. It must not be used to replace the fd with another
    /// one (the registrations track the fd number; tokio's rule too).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io.get_mut().0
    }

    /// Deregisters and gives the value back.
    pub fn into_inner(self) -> T {
        self.io.into_unshared().0
    }

    /// Waits until the fd may be readable.
    ///
    /// # Errors
    /// Outside an insane runtime, or the driver refuses the fd (the error
    /// says why).
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, T>> {
        self.ready(Interest::READABLE).await
    }

    /// Waits until the fd may be writable.
    ///
    /// # Errors
    /// As [`readable`](Self::readable).
    pub async fn writable(&self) -> io::Result<AsyncFdReadyGuard<'_, T>> {
        self.ready(Interest::WRITABLE).await
    }

    /// Waits for any state of `interest`; the guard tells which.
    ///
    /// # Errors
    /// As [`readable`](Self::readable).
    pub async fn ready(&self, interest: Interest) -> io::Result<AsyncFdReadyGuard<'_, T>> {
        poll_fn(|cx| self.poll_ready_for(interest, cx)).await
    }

    /// Like [`ready`](Self::ready), with a guard that lends the value
    /// mutably.
    ///
    /// ```no_run
    /// use std::io::Read;
    /// use insane_net::AsyncFd;
    /// use tokio::io::Interest;
    ///
    /// # async fn f(mut fd: AsyncFd<std::fs::File>) -> std::io::Result<()> {
    /// let mut buf = [0u8; 64];
    /// let mut guard = fd.ready_mut(Interest::READABLE).await?;
    /// if let Ok(n) = guard.try_io(|fd| fd.get_mut().read(&mut buf)) {
    ///     println!("{} bytes", n?);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`readable`](Self::readable).
    pub async fn ready_mut(
        &mut self,
        interest: Interest,
    ) -> io::Result<AsyncFdReadyMutGuard<'_, T>> {
        let ready = poll_fn(|cx| self.poll_ready_interest(interest, cx)).await?;
        Ok(AsyncFdReadyMutGuard {
            fd: self,
            ready,
            interest,
        })
    }

    /// Like [`readable`](Self::readable), with a guard that lends the
    /// value mutably.
    ///
    /// # Errors
    /// As [`readable`](Self::readable).
    pub async fn readable_mut(&mut self) -> io::Result<AsyncFdReadyMutGuard<'_, T>> {
        self.ready_mut(Interest::READABLE).await
    }

    /// Like [`writable`](Self::writable), with a guard that lends the
    /// value mutably.
    ///
    /// # Errors
    /// As [`readable`](Self::readable).
    pub async fn writable_mut(&mut self) -> io::Result<AsyncFdReadyMutGuard<'_, T>> {
        self.ready_mut(Interest::WRITABLE).await
    }

    /// Poll form of [`readable_mut`](Self::readable_mut).
    pub fn poll_read_ready_mut<'a>(
        &'a mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyMutGuard<'a, T>>> {
        self.poll_ready_mut_for(Interest::READABLE, cx)
    }

    /// Poll form of [`writable_mut`](Self::writable_mut).
    pub fn poll_write_ready_mut<'a>(
        &'a mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyMutGuard<'a, T>>> {
        self.poll_ready_mut_for(Interest::WRITABLE, cx)
    }

    fn poll_ready_mut_for<'a>(
        &'a mut self,
        interest: Interest,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyMutGuard<'a, T>>> {
        self.poll_ready_interest(interest, cx)
            .map_ok(|ready| AsyncFdReadyMutGuard {
                fd: self,
                ready,
                interest,
            })
    }

    /// Poll form of [`readable`](Self::readable).
    pub fn poll_read_ready<'a>(
        &'a self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'a, T>>> {
        self.poll_ready_for(Interest::READABLE, cx)
    }

    /// Poll form of [`writable`](Self::writable).
    pub fn poll_write_ready<'a>(
        &'a self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'a, T>>> {
        self.poll_ready_for(Interest::WRITABLE, cx)
    }

    fn poll_ready_for<'a>(
        &'a self,
        interest: Interest,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'a, T>>> {
        self.poll_ready_interest(interest, cx)
            .map_ok(|ready| AsyncFdReadyGuard {
                fd: self,
                ready,
                interest,
            })
    }

    /// Waits for `interest` on the driver; what both guards are made of.
    fn poll_ready_interest(
        &self,
        interest: Interest,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Ready>> {
        if !self.registered_for(interest) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "AsyncFd registered for {:?} was asked for {interest:?}",
                    self.interest
                ),
            )));
        }
        self.io.poll_ready_interest(interest, cx)
    }

    /// Forgets the driver's readiness in `ready`: the next wait for it
    /// really waits.
    fn clear_ready_matching(&self, ready: Ready) {
        if ready.is_readable() {
            self.io.clear_ready(Direction::Read);
        }
        if ready.is_writable() {
            self.io.clear_ready(Direction::Write);
        }
    }

    fn registered_for(&self, interest: Interest) -> bool {
        (!interest.is_readable() || self.interest.is_readable())
            && (!interest.is_writable() || self.interest.is_writable())
    }

    /// Waits for `interest` and runs `f` until it does not return
    /// `WouldBlock` (readiness that turns out stale is cleared and waited
    /// for again).
    ///
    /// # Errors
    /// `f`'s error, or as [`readable`](Self::readable).
    pub async fn async_io<R>(
        &self,
        interest: Interest,
        mut f: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            let mut guard = self.ready(interest).await?;
            match guard.try_io(|fd| f(fd.get_ref())) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Like [`async_io`](Self::async_io), with `f` given the value
    /// mutably.
    ///
    /// ```no_run
    /// use std::io::Write;
    /// use insane_net::AsyncFd;
    /// use tokio::io::Interest;
    ///
    /// # async fn f(mut fd: AsyncFd<std::fs::File>) -> std::io::Result<()> {
    /// let n = fd.async_io_mut(Interest::WRITABLE, |f| f.write(b"hello")).await?;
    /// # let _ = n;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `f`'s error, or as [`readable`](Self::readable).
    pub async fn async_io_mut<R>(
        &mut self,
        interest: Interest,
        mut f: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            let mut guard = self.ready_mut(interest).await?;
            match guard.try_io(|fd| f(fd.get_mut())) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Runs `f` once; on `WouldBlock` clears the readiness of `interest`.
    ///
    /// # Errors
    /// `f`'s.
    pub fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        self.io.try_io(interest, || f(self.get_ref()))
    }

    /// Like [`try_io`](Self::try_io), with `f` given the value mutably.
    ///
    /// # Errors
    /// `f`'s.
    pub fn try_io_mut<R>(
        &mut self,
        interest: Interest,
        f: impl FnOnce(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        let result = f(self.get_mut());
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.clear_ready_matching(interest_ready(interest));
        }
        result
    }
}

/// The readiness an interest waits for (`READABLE` for an interest with
/// neither direction, as `PollIo::try_io` clears).
fn interest_ready(interest: Interest) -> Ready {
    let mut ready = Ready::EMPTY;
    if interest.is_readable() || !interest.is_writable() {
        ready |= Ready::READABLE;
    }
    if interest.is_writable() {
        ready |= Ready::WRITABLE;
    }
    ready
}

impl<T: AsRawFd + Send + Sync + 'static> AsRawFd for AsyncFd<T> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.get_ref().as_raw_fd()
    }
}

impl<T: AsRawFd + Send + Sync + 'static> AsFd for AsyncFd<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl<T: AsRawFd + Send + Sync + 'static + fmt::Debug> fmt::Debug for AsyncFd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFd")
            .field("inner", self.get_ref())
            .finish()
    }
}

/// Readiness of an [`AsyncFd`], from [`readable`](AsyncFd::readable) and
/// friends. Dropping it keeps the readiness for the next wait; clear it
/// (or use [`try_io`](Self::try_io)) when an operation said `WouldBlock`.
#[must_use = "choose whether to clear the readiness (clear_ready, try_io) or keep it (retain_ready)"]
pub struct AsyncFdReadyGuard<'a, T: AsRawFd + Send + Sync + 'static> {
    fd: &'a AsyncFd<T>,
    ready: Ready,
    interest: Interest,
}

/// The readiness methods both guards have, word for word (tokio's).
macro_rules! readiness_methods {
    () => {
        /// What the fd was found ready for.
        pub fn ready(&self) -> Ready {
            self.ready
        }

        /// Forgets the readiness: the next wait really waits for the driver.
        pub fn clear_ready(&mut self) {
            self.fd.clear_ready_matching(interest_ready(self.interest));
        }

        /// Forgets only the readiness in `ready` (e.g. `Ready::READABLE`).
        pub fn clear_ready_matching(&mut self, ready: Ready) {
            self.fd.clear_ready_matching(ready);
        }

        /// Keeps the readiness (what dropping the guard does).
        pub fn retain_ready(&mut self) {}
    };
}

/// A guard's `try_io` outcome: `WouldBlock` clears the readiness (with
/// `clear`) and becomes `Err(TryIoError)`; anything else is `f`'s result.
fn try_io_outcome<R>(
    result: io::Result<R>,
    clear: impl FnOnce(),
) -> Result<io::Result<R>, TryIoError> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            clear();
            Err(TryIoError(()))
        }
        result => Ok(result),
    }
}

impl<'a, T: AsRawFd + Send + Sync + 'static> AsyncFdReadyGuard<'a, T> {
    readiness_methods!();

    /// Runs `f`; on `WouldBlock` clears the readiness and returns
    /// `Err(TryIoError)`, so the caller waits again.
    ///
    /// # Errors
    /// [`TryIoError`] when `f` would block.
    pub fn try_io<R>(
        &mut self,
        f: impl FnOnce(&'a AsyncFd<T>) -> io::Result<R>,
    ) -> Result<io::Result<R>, TryIoError> {
        let fd = self.fd;
        try_io_outcome(f(fd), || self.clear_ready())
    }

    /// The [`AsyncFd`].
    pub fn get_ref(&self) -> &'a AsyncFd<T> {
        self.fd
    }

    /// The wrapped value.
    pub fn get_inner(&self) -> &'a T {
        self.fd.get_ref()
    }
}

impl<T: AsRawFd + Send + Sync + 'static> fmt::Debug for AsyncFdReadyGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFdReadyGuard")
            .field("ready", &self.ready)
            .finish()
    }
}

/// Readiness of an [`AsyncFd`] borrowed mutably, from
/// [`readable_mut`](AsyncFd::readable_mut) and friends: an
/// [`AsyncFdReadyGuard`] that also lends the value mutably
/// ([`get_inner_mut`](Self::get_inner_mut), [`try_io`](Self::try_io)).
///
/// ```no_run
/// use std::io::Read;
/// use insane_net::AsyncFd;
///
/// # async fn f(mut fd: AsyncFd<std::fs::File>) -> std::io::Result<()> {
/// let mut buf = [0u8; 64];
/// let n = loop {
///     let mut guard = fd.readable_mut().await?;
///     match guard.try_io(|fd| fd.get_mut().read(&mut buf)) {
///         Ok(result) => break result?,
///         Err(_would_block) => continue,
///     }
/// };
/// # let _ = n;
/// # Ok(())
/// # }
/// ```
#[must_use = "choose whether to clear the readiness (clear_ready, try_io) or keep it (retain_ready)"]
pub struct AsyncFdReadyMutGuard<'a, T: AsRawFd + Send + Sync + 'static> {
    fd: &'a mut AsyncFd<T>,
    ready: Ready,
    interest: Interest,
}

impl<T: AsRawFd + Send + Sync + 'static> AsyncFdReadyMutGuard<'_, T> {
    readiness_methods!();

    /// Runs `f` with the [`AsyncFd`] borrowed mutably; on `WouldBlock`
    /// clears the readiness and returns `Err(TryIoError)`, so the caller
    /// waits again.
    ///
    /// # Errors
    /// [`TryIoError`] when `f` would block.
    pub fn try_io<R>(
        &mut self,
        f: impl FnOnce(&mut AsyncFd<T>) -> io::Result<R>,
    ) -> Result<io::Result<R>, TryIoError> {
        let result = f(self.fd);
        try_io_outcome(result, || self.clear_ready())
    }

    /// The [`AsyncFd`].
    pub fn get_ref(&self) -> &AsyncFd<T> {
        self.fd
    }

    /// The [`AsyncFd`], mutably.
    pub fn get_mut(&mut self) -> &mut AsyncFd<T> {
        self.fd
    }

    /// The wrapped value.
    pub fn get_inner(&self) -> &T {
        self.fd.get_ref()
    }

    /// The wrapped value, mutably (not to replace its fd: see
    /// [`AsyncFd::get_mut`]).
    pub fn get_inner_mut(&mut self) -> &mut T {
        self.fd.get_mut()
    }
}

impl<T: AsRawFd + Send + Sync + 'static> fmt::Debug for AsyncFdReadyMutGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFdReadyMutGuard")
            .field("ready", &self.ready)
            .finish()
    }
}

/// The operation in [`AsyncFdReadyGuard::try_io`] would have blocked: the
/// readiness was stale and has been cleared.
#[derive(Debug)]
pub struct TryIoError(());

impl fmt::Display for TryIoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the operation would block (readiness cleared)")
    }
}

impl Error for TryIoError {}

/// [`AsyncFd::register`] failed: the cause and the value, given back.
pub struct AsyncFdRegisterError<T> {
    inner: T,
    cause: io::Error,
}

impl<T> AsyncFdRegisterError<T> {
    /// The value and the cause.
    pub fn into_parts(self) -> (T, io::Error) {
        (self.inner, self.cause)
    }
}

impl<T> fmt::Display for AsyncFdRegisterError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cause, f)
    }
}

impl<T> fmt::Debug for AsyncFdRegisterError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.cause, f)
    }
}

impl<T> Error for AsyncFdRegisterError<T> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.cause)
    }
}

impl<T> From<AsyncFdRegisterError<T>> for io::Error {
    fn from(e: AsyncFdRegisterError<T>) -> io::Error {
        e.cause
    }
}

/// The error of the deprecated [`AsyncFd::try_new`] (tokio's old name).
pub type AsyncFdTryNewError<T> = AsyncFdRegisterError<T>;
