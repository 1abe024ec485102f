//! [`PollIo`]: a non-blocking kernel socket together with its
//! [`Registration`], and the readiness loops every socket type shares
//! (tokio's `PollEvented`).
//!
//! Reads and writes follow tokio: wait until the core's driver reports the
//! direction ready, run the non-blocking syscall, and on `WouldBlock` clear
//! the cached readiness and wait again.

use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll};

use insane_runtime::driver::Direction;
use socket2::SockRef;
use tokio::io::{Interest, ReadBuf, Ready};

use crate::registration::Registration;

/// A non-blocking socket `S` and its per-core driver registrations.
///
/// The socket sits in an `Arc` so that completion-based (owned-buffer)
/// operations can hold it as their fd guard: an io_uring request keeps a
/// clone until its final completion, so the fd stays open (and its number
/// cannot be reused by another socket) while the kernel may still act on
/// it, even after the request's future and this `PollIo` were dropped.
/// Readiness-based I/O never clones it.
///
/// Field order matters: the registration is released before the socket is
/// closed (see [`Registration::release`]).
#[derive(Debug)]
pub(crate) struct PollIo<S: AsFd + Send + Sync + 'static> {
    registration: Registration,
    /// `None` only after [`into_inner`](Self::into_inner) took it.
    io: Option<Arc<S>>,
    /// Whether the connected peer is a loopback address (read once, at the
    /// first zero-copy send): loopback delivery copies the pages anyway,
    /// so `SEND_ZC` there only adds page pinning and a second completion.
    pub(crate) peer_is_loopback: std::sync::OnceLock<bool>,
}

impl<S: AsFd + Send + Sync + 'static> PollIo<S> {
    /// Wraps `io`, which must already be in non-blocking mode.
    pub(crate) fn new(io: S) -> Self {
        Self {
            registration: Registration::new(io.as_fd().as_raw_fd()),
            io: Some(Arc::new(io)),
            peer_is_loopback: std::sync::OnceLock::new(),
        }
    }

    /// A guard that keeps the socket open, for completion-based operations
    /// (see the type's docs).
    pub(crate) fn guard(&self) -> Arc<S> {
        match &self.io {
            Some(io) => io.clone(),
            None => unreachable!("PollIo used after into_inner"),
        }
    }

    /// The socket.
    pub(crate) fn get_ref(&self) -> &S {
        match &self.io {
            Some(io) => io,
            None => unreachable!("PollIo used after into_inner"),
        }
    }

    /// The socket, mutably, for types that never start a completion-based
    /// operation (nothing else holds it: the other cores' registrations
    /// know only the fd number).
    pub(crate) fn get_mut(&mut self) -> &mut S {
        match self.io.as_mut().map(Arc::get_mut) {
            Some(Some(io)) => io,
            _ => unreachable!("PollIo::get_mut on a shared value or after into_inner"),
        }
    }

    /// The socket as a `socket2` reference (all socket options, and
    /// receives into uninitialised memory).
    pub(crate) fn sock(&self) -> SockRef<'_> {
        SockRef::from(self.get_ref())
    }

    /// The raw fd.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.get_ref().as_fd().as_raw_fd()
    }

    /// Deregisters from every driver and returns the value, for types that
    /// never start a completion-based operation (nothing else holds it).
    pub(crate) fn into_unshared(mut self) -> S {
        let io = self.io.take();
        self.registration.release(());
        match io.map(Arc::try_unwrap) {
            Some(Ok(io)) => io,
            _ => unreachable!("PollIo::into_unshared on a shared value"),
        }
    }

    /// Deregisters from every driver and returns the socket (still in
    /// non-blocking mode).
    ///
    /// If cancelled owned-buffer operations still hold the socket (their
    /// cancellation has not completed yet), the result is a duplicate of
    /// its fd (`dup(2)`, the same kernel socket); the original fd closes
    /// once those operations are gone.
    pub(crate) fn into_inner(mut self) -> io::Result<S>
    where
        S: From<OwnedFd>,
    {
        let io = self.io.take();
        self.registration.release(());
        match io.map(Arc::try_unwrap) {
            Some(Ok(io)) => Ok(io),
            Some(Err(shared)) => Ok(S::from(shared.as_fd().try_clone_to_owned()?)),
            None => unreachable!("PollIo::into_inner called twice"),
        }
    }

    /// Waits (as a poll function) until the driver reports `dir` ready.
    pub(crate) fn poll_ready(&self, dir: Direction, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.registration.poll_ready(dir, cx)
    }

    /// Forgets the readiness of `dir` (an operation saw `WouldBlock`).
    pub(crate) fn clear_ready(&self, dir: Direction) {
        self.registration.clear_ready(dir);
    }

    /// Waits until the socket may be readable.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_ready(Direction::Read, cx)).await
    }

    /// Waits until the socket may be writable.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_ready(Direction::Write, cx)).await
    }

    /// Waits for any of the states in `interest` (tokio's `ready`).
    pub(crate) async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        poll_fn(|cx| self.poll_ready_interest(interest, cx)).await
    }

    /// Poll form of [`ready`](Self::ready).
    ///
    /// The driver says which directions may be ready; a zero-timeout
    /// `poll(2)` then tells the precise state (closed halves, errors), and
    /// stale driver readiness is cleared so the wait goes on.
    pub(crate) fn poll_ready_interest(
        &self,
        interest: Interest,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Ready>> {
        let want_read = interest.is_readable() || !interest.is_writable();
        let want_write = interest.is_writable();
        for _ in 0..3 {
            let mut hinted = false;
            if want_read {
                match self.poll_ready(Direction::Read, cx) {
                    Poll::Ready(Ok(())) => hinted = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if want_write {
                match self.poll_ready(Direction::Write, cx) {
                    Poll::Ready(Ok(())) => hinted = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if !hinted {
                return Poll::Pending;
            }
            let now = match poll_now(self.raw_fd(), want_read, want_write) {
                Ok(r) => r,
                Err(e) => return Poll::Ready(Err(e)),
            };
            let mut wanted = Ready::EMPTY;
            if interest.is_readable() {
                wanted |= Ready::READABLE | Ready::READ_CLOSED;
            }
            if want_write {
                wanted |= Ready::WRITABLE | Ready::WRITE_CLOSED;
            }
            if interest.is_error() {
                wanted |= Ready::ERROR;
            }
            // Driver readiness the kernel does not confirm is stale: clear
            // it, so a later wait for that direction really waits.
            let read_stale = want_read && !now.is_readable() && !now.is_read_closed();
            let write_stale = want_write && !now.is_writable() && !now.is_write_closed();
            let ready = now & wanted;
            if read_stale {
                self.clear_ready(Direction::Read);
            }
            if write_stale {
                self.clear_ready(Direction::Write);
            }
            if !ready.is_empty() {
                return Poll::Ready(Ok(ready));
            }
        }
        // The driver keeps reporting readiness the kernel does not confirm:
        // yield rather than spin here.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Runs `op` once; on `WouldBlock` clears the readiness of the
    /// directions in `interest` (tokio's `try_io`).
    pub(crate) fn try_io<R>(
        &self,
        interest: Interest,
        op: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        let res = op();
        if matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            if interest.is_readable() || !interest.is_writable() {
                self.clear_ready(Direction::Read);
            }
            if interest.is_writable() {
                self.clear_ready(Direction::Write);
            }
        }
        res
    }

    /// Runs `op` once in direction `dir`, clearing readiness on `WouldBlock`.
    pub(crate) fn try_dir<R>(
        &self,
        dir: Direction,
        op: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        let res = op();
        if matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.clear_ready(dir);
        }
        res
    }

    /// Waits for `interest` and runs `op` until it stops returning
    /// `WouldBlock` (tokio's `async_io`).
    pub(crate) async fn async_io<R>(
        &self,
        interest: Interest,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            self.ready(interest).await?;
            match self.try_io(interest, &mut op) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return res,
            }
        }
    }

    /// Async loop of the non-blocking `op` in direction `dir`.
    pub(crate) async fn do_io<R>(
        &self,
        dir: Direction,
        op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        self.registration.async_io(dir, op).await
    }

    /// Poll loop of the non-blocking `op` in direction `dir`.
    pub(crate) fn poll_io<R>(
        &self,
        dir: Direction,
        cx: &mut Context<'_>,
        op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.registration.poll_io(dir, cx, op)
    }

    // ----- receive / send helpers shared by streams and datagrams -----

    /// `recv(2)` into the unfilled part of `buf`, advancing it.
    pub(crate) fn recv_buf(&self, buf: &mut ReadBuf<'_>, peek: bool) -> io::Result<usize> {
        // SAFETY: `recv` only writes initialised bytes into the slice and
        // never de-initialises it; we then mark exactly the `n` bytes it
        // wrote as initialised.
        let unfilled = unsafe { buf.unfilled_mut() };
        let n = if peek {
            self.sock().peek(unfilled)?
        } else {
            self.sock().recv(unfilled)?
        };
        // SAFETY: the kernel initialised the first `n` bytes of `unfilled`.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        Ok(n)
    }

    /// `recv(2)` into an initialised slice.
    pub(crate) fn recv_slice(&self, buf: &mut [u8], peek: bool) -> io::Result<usize> {
        if peek {
            self.sock().peek(as_uninit(buf))
        } else {
            self.sock().recv(as_uninit(buf))
        }
    }

    /// `recv(2)` into the spare capacity of a `BufMut`.
    pub(crate) fn recv_bufmut<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        let chunk = buf.chunk_mut();
        // SAFETY: `UninitSlice` is a `[MaybeUninit<u8>]` the caller may write
        // to; `recv` writes only initialised bytes.
        let dst = unsafe { chunk.as_uninit_slice_mut() };
        let n = self.sock().recv(dst)?;
        // SAFETY: the kernel initialised the first `n` bytes of the chunk.
        unsafe { buf.advance_mut(n) };
        Ok(n)
    }

    /// `send(2)` without `SIGPIPE`.
    pub(crate) fn send_slice(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock().send_with_flags(buf, libc::MSG_NOSIGNAL)
    }

    /// `sendmsg(2)` of several buffers without `SIGPIPE`.
    pub(crate) fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.sock()
            .send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
    }
}

/// Stream operations (TCP, Unix stream).
impl<S> PollIo<S>
where
    S: AsFd + Send + Sync + 'static,
    for<'a> &'a S: Read,
{
    /// `readv(2)`.
    pub(crate) fn read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let mut io = self.get_ref();
        io.read_vectored(bufs)
    }

    /// `shutdown(2)`, treating `NotConnected` as success like tokio (the
    /// peer may have reset the connection meanwhile).
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        match self.sock().shutdown(how) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            res => res,
        }
    }
}

impl<S: AsFd + Send + Sync + 'static> Drop for PollIo<S> {
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            self.registration.release(io);
        }
    }
}

/// Views an initialised byte slice as possibly-uninitialised bytes, for
/// `socket2`'s receive functions.
pub(crate) fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; the receive calls
    // this is passed to only write initialised bytes, so the slice stays
    // initialised for the caller.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// The readiness of `fd` right now, from a zero-timeout `poll(2)`, in
/// tokio's terms.
fn poll_now(fd: RawFd, read: bool, write: bool) -> io::Result<Ready> {
    let mut events = 0;
    if read {
        events |= libc::POLLIN | libc::POLLRDHUP;
    }
    if write {
        events |= libc::POLLOUT;
    }
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is a valid pollfd for the duration of the call and
        // `nfds` is 1; a zero timeout never blocks.
        let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
        if rc >= 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let r = pfd.revents;
    let mut ready = Ready::EMPTY;
    if r & libc::POLLIN != 0 {
        ready |= Ready::READABLE;
    }
    if r & libc::POLLOUT != 0 {
        ready |= Ready::WRITABLE;
    }
    if r & (libc::POLLRDHUP | libc::POLLHUP) != 0 {
        ready |= Ready::READ_CLOSED;
    }
    if r & libc::POLLHUP != 0 {
        ready |= Ready::WRITE_CLOSED;
    }
    if r & libc::POLLERR != 0 {
        // Like mio: an error makes the socket readable and writable, so the
        // next operation reports it.
        ready |= Ready::ERROR | Ready::READABLE | Ready::WRITABLE;
    }
    Ok(ready)
}

/// Implements tokio's and futures' `AsyncRead` for a stream type whose
/// [`StreamIo`](crate::stream_io::StreamIo) is reached by `$io` (with
/// `$this` bound to `&Self`).
macro_rules! impl_stream_read {
    ($ty:ty, |$this:ident| $io:expr) => {
        impl tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $this = &*self;
                $io.poll_read_stream(cx, buf)
            }
        }

        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_read_slice(cx, buf)
            }

            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_read_vectored(cx, bufs)
            }
        }
    };
}

/// Implements tokio's and futures' `AsyncWrite` for a stream type whose
/// [`StreamIo`](crate::stream_io::StreamIo) is reached by `$io`; shutdown/close call the type's own
/// `fn shutdown_priv(&mut self) -> io::Result<()>`.
macro_rules! impl_stream_write {
    ($ty:ty, |$this:ident| $io:expr) => {
        impl tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_write_stream(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_write_vectored_stream(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.get_mut().shutdown_priv())
            }
        }

        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_write_stream(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $this = &*self;
                $io.poll_write_vectored_stream(cx, bufs)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(self.get_mut().shutdown_priv())
            }
        }
    };
}

pub(crate) use {impl_stream_read, impl_stream_write};
