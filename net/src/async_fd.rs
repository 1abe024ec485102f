//! [`AsyncFd`]: readiness for any file descriptor (tokio's
//! `io::unix::AsyncFd`), so an application can drive its own non-blocking
//! fds — a netlink socket, an inotify or timer fd, a device — on insane's
//! I/O driver (io_uring poll or epoll) like insane's sockets are.
//!
//! ```no_run
//! use std::io::Read;
//! use insane_net::AsyncFd;
//!
//! # async fn f(fd: std::fs::File) -> std::io::Result<()> {
//! // `fd` must be in non-blocking mode.
//! let fd = AsyncFd::new(fd)?;
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
        // SAFETY: `T: AsRawFd` gives an fd that stays open while `T` lives
        // (tokio's `AsyncFd` relies on the same contract); the borrow is
        // tied to `&self`, so to `T`'s life.
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
/// let fd = AsyncFd::new(fd)?;
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
/// value until then so the fd number cannot be reused meanwhile.
pub struct AsyncFd<T: AsRawFd + Send + Sync + 'static> {
    io: PollIo<Fd<T>>,
    interest: Interest,
}

impl<T: AsRawFd + Send + Sync + 'static> AsyncFd<T> {
    /// Registers `inner` for reading and writing.
    ///
    /// # Errors
    /// None today (registration happens at the first wait, on the waiting
    /// core); the signature is tokio's.
    pub fn new(inner: T) -> io::Result<Self> {
        Self::with_interest(inner, Interest::READABLE | Interest::WRITABLE)
    }

    /// Registers `inner` for `interest` only.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_interest(inner: T, interest: Interest) -> io::Result<Self> {
        Self::try_with_interest(inner, interest).map_err(io::Error::from)
    }

    /// Like [`new`](Self::new), but a failure gives the value back
    /// (tokio's `try_new`).
    ///
    /// # Errors
    /// As [`new`](Self::new), with `inner` in the error.
    pub fn try_new(inner: T) -> Result<Self, AsyncFdTryNewError<T>> {
        Self::try_with_interest(inner, Interest::READABLE | Interest::WRITABLE)
    }

    /// Like [`with_interest`](Self::with_interest), but a failure gives the
    /// value back (tokio's `try_with_interest`).
    ///
    /// # Errors
    /// As [`new`](Self::new), with `inner` in the error.
    pub fn try_with_interest(inner: T, interest: Interest) -> Result<Self, AsyncFdTryNewError<T>> {
        // Registration happens at the first wait, so building cannot fail
        // today; the error type keeps tokio's signature for callers.
        Ok(Self {
            io: PollIo::new(Fd(inner)),
            interest,
        })
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        &self.io.get_ref().0
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
        if !self.registered_for(interest) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "AsyncFd registered for {:?} was asked for {interest:?}",
                    self.interest
                ),
            )));
        }
        self.io
            .poll_ready_interest(interest, cx)
            .map_ok(|ready| AsyncFdReadyGuard {
                fd: self,
                ready,
                interest,
            })
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
}

impl<T: AsRawFd + Send + Sync + 'static> AsRawFd for AsyncFd<T> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.get_ref().as_raw_fd()
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
pub struct AsyncFdReadyGuard<'a, T: AsRawFd + Send + Sync + 'static> {
    fd: &'a AsyncFd<T>,
    ready: Ready,
    interest: Interest,
}

impl<'a, T: AsRawFd + Send + Sync + 'static> AsyncFdReadyGuard<'a, T> {
    /// What the fd was found ready for.
    pub fn ready(&self) -> Ready {
        self.ready
    }

    /// Forgets the readiness: the next wait really waits for the driver.
    pub fn clear_ready(&mut self) {
        if self.interest.is_readable() {
            self.fd.io.clear_ready(Direction::Read);
        }
        if self.interest.is_writable() {
            self.fd.io.clear_ready(Direction::Write);
        }
    }

    /// Forgets only the readiness in `ready` (e.g. `Ready::READABLE`).
    pub fn clear_ready_matching(&mut self, ready: Ready) {
        if ready.is_readable() {
            self.fd.io.clear_ready(Direction::Read);
        }
        if ready.is_writable() {
            self.fd.io.clear_ready(Direction::Write);
        }
    }

    /// Keeps the readiness (what dropping the guard does).
    pub fn retain_ready(&mut self) {}

    /// Runs `f`; on `WouldBlock` clears the readiness and returns
    /// `Err(TryIoError)`, so the caller waits again.
    ///
    /// # Errors
    /// [`TryIoError`] when `f` would block.
    pub fn try_io<R>(
        &mut self,
        f: impl FnOnce(&'a AsyncFd<T>) -> io::Result<R>,
    ) -> Result<io::Result<R>, TryIoError> {
        match f(self.fd) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.clear_ready();
                Err(TryIoError(()))
            }
            result => Ok(result),
        }
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

/// [`AsyncFd::try_new`] failed: the cause and the value, given back.
pub struct AsyncFdTryNewError<T> {
    inner: T,
    cause: io::Error,
}

impl<T> AsyncFdTryNewError<T> {
    /// The value and the cause.
    pub fn into_parts(self) -> (T, io::Error) {
        (self.inner, self.cause)
    }
}

impl<T> fmt::Display for AsyncFdTryNewError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cause, f)
    }
}

impl<T> fmt::Debug for AsyncFdTryNewError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.cause, f)
    }
}

impl<T> Error for AsyncFdTryNewError<T> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.cause)
    }
}

impl<T> From<AsyncFdTryNewError<T>> for io::Error {
    fn from(e: AsyncFdTryNewError<T>) -> io::Error {
        e.cause
    }
}
