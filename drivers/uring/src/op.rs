//! Completion-based operations with owned buffers, and the [`Op`] future
//! they are built on.
//!
//! Each operation moves its resources — the buffer, boxed address
//! storage, and an fd *guard* (any `AsRawFd + 'static` value, e.g.
//! `Rc<OwnedFd>` or `Arc<socket2::Socket>`) — into the driver's slab for
//! as long as the kernel may use them. Awaiting gives them back
//! ([`BufResult`]); dropping the future early moves them into the slab
//! slot, submits `ASYNC_CANCEL`, and frees them only after the final
//! completion arrives (no use-after-free, no leak).
//!
//! Passing a bare `RawFd` as the guard works but gives up that protection:
//! the fd must then stay open until the operation completes.
//!
//! Operations must be created on the core that owns the driver: the
//! futures hold an `Rc` to it and are `!Send`. On an fd with `O_NONBLOCK`
//! (as tokio-style sockets are), a kernel `EAGAIN` is answered with a
//! `POLL_ADD` and a retry, so the operations work on any socket.
//!
//! Sends use `MSG_NOSIGNAL`; accepted sockets are `SOCK_NONBLOCK |
//! SOCK_CLOEXEC`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::{opcode, squeue, types};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::{Handle, Key, SlotKind, TAG_OP, closed_error};
use crate::sockaddr;

mod fs;
pub use fs::{
    StatxTarget, close, fsync, ftruncate, link_at, mkdir_at, open_at, rename_at, statx, symlink_at,
    unlink_at,
};

/// How the completions of an [`Op`] are collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// One completion resolves the future.
    Single,
    /// `SEND_ZC`/`SENDMSG_ZC`: the future resolves after the notification
    /// completion (the kernel no longer reads the buffer); the result is
    /// the first completion's.
    ZeroCopy,
}

/// The outcome of an [`Op`]: the completion and the resources back.
#[derive(Debug)]
pub struct Completion<T> {
    /// The CQE's `res` (negative errno on failure).
    pub result: i32,
    /// The CQE's flags.
    pub flags: u32,
    /// The resources the operation owned.
    pub data: T,
}

impl<T> Completion<T> {
    /// `result` as an `io::Result`.
    pub fn io_result(&self) -> io::Result<u32> {
        cqe_result(self.result)
    }
}

fn cqe_result(res: i32) -> io::Result<u32> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as u32)
    }
}

/// A submitted io_uring request as a future. Dropping it before it
/// completes cancels the request and keeps `T` alive until the kernel is
/// done with it.
pub struct Op<T: 'static> {
    handle: Handle,
    key: Key,
    data: Option<T>,
    done: bool,
}

// The data is never pinned (it is moved out on completion), so `Op` may
// move freely.
impl<T: 'static> Unpin for Op<T> {}

impl<T: 'static> std::fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Op")
            .field("key", &self.key)
            .field("done", &self.done)
            .finish()
    }
}

impl<T: 'static> Op<T> {
    /// Submits the entry `build` makes from `data`; the returned future
    /// owns `data` until the request completes.
    ///
    /// # Errors
    /// The driver shut down or the submission queue cannot take the entry;
    /// `data` is given back.
    ///
    /// # Safety
    /// Every pointer in the entry must point into memory owned by `data`
    /// that does not move when `data` moves (heap allocations, `'static`
    /// data) and is valid for the access the operation makes. The entry's
    /// `user_data` is overwritten.
    pub unsafe fn submit(
        handle: &Handle,
        mut data: T,
        kind: OpKind,
        build: impl FnOnce(&mut T) -> squeue::Entry,
    ) -> Result<Op<T>, (io::Error, T)> {
        let slot_kind = match kind {
            OpKind::Single => SlotKind::Single,
            OpKind::ZeroCopy => SlotKind::ZeroCopy,
        };
        let entry = build(&mut data);
        let submitted = handle.with_state(|st| {
            let key = st.insert_slot(slot_kind, None)?;
            let entry = entry.user_data(key.user_data(TAG_OP));
            // SAFETY: the caller guarantees the entry's pointers target
            // memory owned by `data`, which the returned `Op` (or, if it is
            // dropped early, the slot) keeps alive until the completion.
            match unsafe { st.push(&entry) } {
                Ok(()) => Ok(key),
                Err(e) => {
                    st.remove_slot(key);
                    Err(e)
                }
            }
        });
        match submitted {
            Ok(Ok(key)) => Ok(Op {
                handle: handle.clone(),
                key,
                data: Some(data),
                done: false,
            }),
            Ok(Err(e)) | Err(e) => Err((e, data)),
        }
    }
}

impl<T: 'static> Future for Op<T> {
    type Output = Completion<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion<T>> {
        let this = self.get_mut();
        if this.done {
            // Polled after it returned its output: nothing more will come.
            return Poll::Pending;
        }
        let key = this.key;
        let polled = this.handle.with_state(|st| {
            let closed = st.closed;
            match st.slot_mut(key) {
                Some(slot) if slot.finished => {
                    let slot = st.remove_slot(key);
                    Some(slot.and_then(|s| s.result).unwrap_or((-libc::ECANCELED, 0)))
                }
                Some(slot) => {
                    // After a failed shutdown the kernel may still own the
                    // data: never hand it back; stay pending.
                    if !closed {
                        match &mut slot.waker {
                            Some(w) if w.will_wake(cx.waker()) => {}
                            w => *w = Some(cx.waker().clone()),
                        }
                    }
                    None
                }
                None => {
                    tracing::error!(?key, "io_uring operation slot vanished");
                    Some((-libc::ECANCELED, 0))
                }
            }
        });
        match polled {
            Ok(Some((result, flags))) => match this.data.take() {
                Some(data) => {
                    this.done = true;
                    Poll::Ready(Completion {
                        result,
                        flags,
                        data,
                    })
                }
                None => Poll::Pending,
            },
            Ok(None) => Poll::Pending,
            Err(_) => {
                // The driver is borrowed (cannot happen from a task); try
                // again on the next turn rather than fail.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

impl<T: 'static> Drop for Op<T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(data) = self.data.take() else { return };
        let key = self.key;
        let Ok(mut st) = self.handle.inner.state.try_borrow_mut() else {
            tracing::error!(
                ?key,
                "io_uring op dropped while the driver is borrowed; leaking its buffer"
            );
            std::mem::forget(data);
            return;
        };
        let closed = st.closed;
        match st.slot_mut(key) {
            Some(slot) if slot.finished => {
                st.remove_slot(key);
                drop(st);
                drop(data);
            }
            Some(slot) => {
                if closed {
                    // Shutdown could not reap it: the kernel may still use
                    // the memory, so it must never be freed.
                    std::mem::forget(data);
                    return;
                }
                slot.orphaned = true;
                slot.waker = None;
                slot.orphan = Some(Box::new(data));
                st.push_cancel(key.user_data(TAG_OP));
            }
            None => {
                drop(st);
                drop(data);
            }
        }
    }
}

// ---- helpers -------------------------------------------------------------

const POLL_READ: u32 = (libc::POLLIN | libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) as u32;
const POLL_WRITE: u32 = (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) as u32;

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Runs a single-shot operation; on `EAGAIN` (fd in non-blocking mode)
/// waits with `POLL_ADD` for `poll_mask` and retries.
///
/// # Safety
/// As [`Op::submit`], for every entry `build` makes.
async unsafe fn run<T: 'static>(
    handle: &Handle,
    mut data: T,
    kind: OpKind,
    poll_mask: u32,
    fd: impl Fn(&T) -> RawFd,
    build: impl Fn(&mut T) -> squeue::Entry,
) -> (io::Result<(i32, u32)>, T) {
    loop {
        // SAFETY: forwarded to the caller's contract.
        let op = match unsafe { Op::submit(handle, data, kind, &build) } {
            Ok(op) => op,
            Err((e, d)) => return (Err(e), d),
        };
        let c = op.await;
        data = c.data;
        if c.result != -libc::EAGAIN || poll_mask == 0 {
            return (Ok((c.result, c.flags)), data);
        }
        let raw = fd(&data);
        // SAFETY: POLL_ADD carries no pointers; `data` (with the fd guard)
        // rides along so the fd stays open while the poll is in flight.
        let poll = unsafe {
            Op::submit(handle, data, OpKind::Single, |_| {
                opcode::PollAdd::new(types::Fd(raw), poll_mask).build()
            })
        };
        let poll = match poll {
            Ok(op) => op,
            Err((e, d)) => return (Err(e), d),
        };
        let c = poll.await;
        data = c.data;
        if c.result < 0 {
            return (Ok((c.result, 0)), data);
        }
    }
}

fn current_or<B>(buf: B) -> Result<(Handle, B), (io::Error, B)> {
    match Handle::current() {
        Ok(h) => Ok((h, buf)),
        Err(e) => Err((e, buf)),
    }
}

macro_rules! handle_or_return {
    ($buf:expr) => {
        match current_or($buf) {
            Ok(x) => x,
            Err((e, b)) => return (Err(e), b),
        }
    };
}

// ---- read / write --------------------------------------------------------

/// Reads into `buf` (up to its capacity, from its start) at the fd's
/// current position (`IORING_OP_READ`); bytes `..n` of `buf` then hold
/// the data.
pub async fn read<F: AsRawFd + 'static, B: IoBufMut>(fd: F, buf: B) -> BufResult<usize, B> {
    read_at(fd, buf, u64::MAX).await
}

/// Reads at `offset` (`u64::MAX`: the current position; files only).
pub async fn read_at<F: AsRawFd + 'static, B: IoBufMut>(
    fd: F,
    buf: B,
    offset: u64,
) -> BufResult<usize, B> {
    let (handle, buf) = handle_or_return!(buf);
    // SAFETY: the entry points into `buf`'s stable storage (IoBufMut
    // contract), owned by the operation's data.
    let (r, (_fd, mut buf)) = unsafe {
        run(
            &handle,
            (fd, buf),
            OpKind::Single,
            POLL_READ,
            |d| d.0.as_raw_fd(),
            |d| {
                let len = len32(d.1.bytes_total());
                opcode::Read::new(types::Fd(d.0.as_raw_fd()), d.1.stable_mut_ptr(), len)
                    .offset(offset)
                    .build()
            },
        )
    }
    .await;
    match r.and_then(|(res, _)| cqe_result(res)) {
        Ok(n) => {
            // SAFETY: the kernel initialised the first `n` bytes.
            unsafe { buf.set_init(n as usize) };
            (Ok(n as usize), buf)
        }
        Err(e) => (Err(e), buf),
    }
}

/// Writes the initialised bytes of `buf` at the fd's current position
/// (`IORING_OP_WRITE`); may write fewer.
pub async fn write<F: AsRawFd + 'static, B: IoBuf>(fd: F, buf: B) -> BufResult<usize, B> {
    write_at(fd, buf, u64::MAX).await
}

/// Writes at `offset` (`u64::MAX`: the current position; files only).
pub async fn write_at<F: AsRawFd + 'static, B: IoBuf>(
    fd: F,
    buf: B,
    offset: u64,
) -> BufResult<usize, B> {
    let (handle, buf) = handle_or_return!(buf);
    // SAFETY: the entry points into `buf`'s stable storage.
    let (r, (_fd, buf)) = unsafe {
        run(
            &handle,
            (fd, buf),
            OpKind::Single,
            POLL_WRITE,
            |d| d.0.as_raw_fd(),
            |d| {
                let len = len32(d.1.bytes_init());
                opcode::Write::new(types::Fd(d.0.as_raw_fd()), d.1.stable_ptr(), len)
                    .offset(offset)
                    .build()
            },
        )
    }
    .await;
    (
        r.and_then(|(res, _)| cqe_result(res)).map(|n| n as usize),
        buf,
    )
}

// ---- send / recv -------------------------------------------------------

/// Receives into `buf` (up to its capacity, from its start) with
/// `IORING_OP_RECV`. `Ok(0)` on a stream socket means end of stream.
pub async fn recv<F: AsRawFd + 'static, B: IoBufMut>(fd: F, buf: B) -> BufResult<usize, B> {
    let (handle, buf) = handle_or_return!(buf);
    // SAFETY: the entry points into `buf`'s stable storage.
    let (r, (_fd, mut buf)) = unsafe {
        run(
            &handle,
            (fd, buf),
            OpKind::Single,
            POLL_READ,
            |d| d.0.as_raw_fd(),
            |d| {
                let len = len32(d.1.bytes_total());
                opcode::Recv::new(types::Fd(d.0.as_raw_fd()), d.1.stable_mut_ptr(), len).build()
            },
        )
    }
    .await;
    match r.and_then(|(res, _)| cqe_result(res)) {
        Ok(n) => {
            // SAFETY: the kernel initialised the first `n` bytes.
            unsafe { buf.set_init(n as usize) };
            (Ok(n as usize), buf)
        }
        Err(e) => (Err(e), buf),
    }
}

/// Sends the initialised bytes of `buf` with `IORING_OP_SEND`; may send
/// fewer on a stream socket (see [`send_all`]).
pub async fn send<F: AsRawFd + 'static, B: IoBuf>(fd: F, buf: B) -> BufResult<usize, B> {
    let (handle, buf) = handle_or_return!(buf);
    let (r, (_fd, buf)) = send_inner(&handle, fd, buf).await;
    (r, buf)
}

async fn send_inner<F: AsRawFd + 'static, B: IoBuf>(
    handle: &Handle,
    fd: F,
    buf: B,
) -> (io::Result<usize>, (F, B)) {
    // SAFETY: the entry points into `buf`'s stable storage.
    let (r, data) = unsafe {
        run(
            handle,
            (fd, buf),
            OpKind::Single,
            POLL_WRITE,
            |d| d.0.as_raw_fd(),
            |d| {
                let len = len32(d.1.bytes_init());
                opcode::Send::new(types::Fd(d.0.as_raw_fd()), d.1.stable_ptr(), len)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
            },
        )
    }
    .await;
    (
        r.and_then(|(res, _)| cqe_result(res)).map(|n| n as usize),
        data,
    )
}

/// Sends with `IORING_OP_SEND_ZC`: the kernel transmits from `buf`
/// without copying, and the future resolves (giving `buf` back) only after
/// the kernel's notification that it no longer reads it. Falls back to
/// [`send`] when the kernel lacks `SEND_ZC`.
pub async fn send_zc<F: AsRawFd + 'static, B: IoBuf>(fd: F, buf: B) -> BufResult<usize, B> {
    let (handle, buf) = handle_or_return!(buf);
    let (r, (_fd, buf)) = send_zc_inner(&handle, fd, buf).await;
    (r, buf)
}

async fn send_zc_inner<F: AsRawFd + 'static, B: IoBuf>(
    handle: &Handle,
    fd: F,
    buf: B,
) -> (io::Result<usize>, (F, B)) {
    if !handle.features().send_zc {
        return send_inner(handle, fd, buf).await;
    }
    // SAFETY: the entry points into `buf`'s stable storage, which the op
    // keeps until the notification completion.
    let (r, data) = unsafe {
        run(
            handle,
            (fd, buf),
            OpKind::ZeroCopy,
            POLL_WRITE,
            |d| d.0.as_raw_fd(),
            |d| {
                let len = len32(d.1.bytes_init());
                opcode::SendZc::new(types::Fd(d.0.as_raw_fd()), d.1.stable_ptr(), len)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
            },
        )
    }
    .await;
    (
        r.and_then(|(res, _)| cqe_result(res)).map(|n| n as usize),
        data,
    )
}

/// [`send_zc`] when `buf` holds at least the configured threshold
/// (`UringConfig::send_zc_threshold`, 16 KiB) and the kernel has
/// `SEND_ZC`, else [`send`].
pub async fn send_auto<F: AsRawFd + 'static, B: IoBuf>(fd: F, buf: B) -> BufResult<usize, B> {
    let (handle, buf) = handle_or_return!(buf);
    let (r, (_fd, buf)) = send_auto_inner(&handle, fd, buf).await;
    (r, buf)
}

async fn send_auto_inner<F: AsRawFd + 'static, B: IoBuf>(
    handle: &Handle,
    fd: F,
    buf: B,
) -> (io::Result<usize>, (F, B)) {
    if buf.bytes_init() >= handle.config().send_zc_threshold && handle.features().send_zc {
        send_zc_inner(handle, fd, buf).await
    } else {
        send_inner(handle, fd, buf).await
    }
}

/// Sends every initialised byte of `buf`, in as many sends as needed
/// (zero-copy above the threshold, like [`send_auto`]).
pub async fn send_all<F: AsRawFd + 'static, B: IoBuf>(fd: F, buf: B) -> BufResult<(), B> {
    let (handle, buf) = handle_or_return!(buf);
    let total = buf.bytes_init();
    let mut sent = 0;
    let mut fd = fd;
    let mut buf = buf;
    while sent < total {
        let slice = buf.slice(sent..total);
        let (r, (f, slice)) = send_auto_inner(&handle, fd, slice).await;
        fd = f;
        buf = slice.into_inner();
        match r {
            Ok(0) => {
                return (
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "send returned 0 bytes",
                    )),
                    buf,
                );
            }
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// Writes every initialised byte of `buf` with `IORING_OP_WRITE`.
pub async fn write_all<F: AsRawFd + 'static, B: IoBuf>(fd: F, buf: B) -> BufResult<(), B> {
    let (handle, buf) = handle_or_return!(buf);
    let total = buf.bytes_init();
    let mut sent = 0;
    let mut buf = buf;
    let mut fd = fd;
    while sent < total {
        let slice = buf.slice(sent..total);
        // SAFETY: the entry points into the slice's stable storage.
        let (r, (f, slice)) = unsafe {
            run(
                &handle,
                (fd, slice),
                OpKind::Single,
                POLL_WRITE,
                |d| d.0.as_raw_fd(),
                |d| {
                    let len = len32(d.1.bytes_init());
                    opcode::Write::new(types::Fd(d.0.as_raw_fd()), d.1.stable_ptr(), len)
                        .offset(u64::MAX)
                        .build()
                },
            )
        }
        .await;
        fd = f;
        buf = slice.into_inner();
        match r.and_then(|(res, _)| cqe_result(res)) {
            Ok(0) => {
                return (
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "write returned 0 bytes",
                    )),
                    buf,
                );
            }
            Ok(n) => sent += n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

// ---- datagrams with addresses ------------------------------------------

/// A `msghdr` with its one iovec and address, boxed so the pointers
/// between them (and the kernel's) stay valid when the op moves.
struct MsgParts {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_storage,
}

impl MsgParts {
    fn new(ptr: *mut u8, len: usize, addr: Option<&SocketAddr>) -> Box<Self> {
        // SAFETY: msghdr and sockaddr_storage are plain data; all-zero is
        // valid for both.
        let mut parts = Box::new(unsafe { std::mem::zeroed::<MsgParts>() });
        parts.iov = libc::iovec {
            iov_base: ptr.cast(),
            iov_len: len,
        };
        let addr_len = match addr {
            Some(a) => {
                let (storage, len) = sockaddr::to_storage(a);
                parts.addr = storage;
                len
            }
            None => std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        };
        parts.hdr.msg_name = (&mut parts.addr as *mut libc::sockaddr_storage).cast();
        parts.hdr.msg_namelen = addr_len;
        parts.hdr.msg_iov = &mut parts.iov;
        parts.hdr.msg_iovlen = 1;
        parts
    }
}

/// Sends `buf` as one datagram to `addr` (`IORING_OP_SENDMSG`).
pub async fn send_to<F: AsRawFd + 'static, B: IoBuf>(
    fd: F,
    buf: B,
    addr: SocketAddr,
) -> BufResult<usize, B> {
    let (handle, buf) = handle_or_return!(buf);
    let parts = MsgParts::new(buf.stable_ptr().cast_mut(), buf.bytes_init(), Some(&addr));
    // SAFETY: the msghdr, iovec and address are in the box and the iovec
    // points into `buf`'s stable storage; all are owned by the op's data.
    // SENDMSG only reads through the iovec.
    let (r, (_fd, buf, _parts)) = unsafe {
        run(
            &handle,
            (fd, buf, parts),
            OpKind::Single,
            POLL_WRITE,
            |d| d.0.as_raw_fd(),
            |d| {
                opcode::SendMsg::new(types::Fd(d.0.as_raw_fd()), &d.2.hdr as *const libc::msghdr)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build()
            },
        )
    }
    .await;
    (
        r.and_then(|(res, _)| cqe_result(res)).map(|n| n as usize),
        buf,
    )
}

/// Receives one datagram into `buf` and tells who sent it
/// (`IORING_OP_RECVMSG`). A datagram longer than the buffer is truncated.
pub async fn recv_from<F: AsRawFd + 'static, B: IoBufMut>(
    fd: F,
    buf: B,
) -> BufResult<(usize, SocketAddr), B> {
    let (handle, mut buf) = handle_or_return!(buf);
    let parts = MsgParts::new(buf.stable_mut_ptr(), buf.bytes_total(), None);
    // SAFETY: as in `send_to`; the iovec covers `buf`'s capacity, which
    // the kernel may write.
    let (r, (_fd, mut buf, parts)) = unsafe {
        run(
            &handle,
            (fd, buf, parts),
            OpKind::Single,
            POLL_READ,
            |d| d.0.as_raw_fd(),
            |d| {
                // A retry must offer the whole address storage again.
                d.2.hdr.msg_namelen =
                    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                opcode::RecvMsg::new(
                    types::Fd(d.0.as_raw_fd()),
                    &mut d.2.hdr as *mut libc::msghdr,
                )
                .build()
            },
        )
    }
    .await;
    match r.and_then(|(res, _)| cqe_result(res)) {
        Ok(n) => {
            // SAFETY: the kernel initialised the first `n` bytes.
            unsafe { buf.set_init(n as usize) };
            match sockaddr::from_storage(&parts.addr, parts.hdr.msg_namelen) {
                Ok(addr) => (Ok((n as usize, addr)), buf),
                Err(e) => (Err(e), buf),
            }
        }
        Err(e) => (Err(e), buf),
    }
}

// ---- connections ---------------------------------------------------------

/// Accepts a connection on a listening socket (`IORING_OP_ACCEPT`); the
/// new socket is non-blocking and close-on-exec.
pub async fn accept<F: AsRawFd + 'static>(fd: F) -> io::Result<(OwnedFd, SocketAddr)> {
    let handle = Handle::current()?;
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let addr: Box<(libc::sockaddr_storage, libc::socklen_t)> =
        Box::new((unsafe { std::mem::zeroed() }, 0));
    // SAFETY: the address storage and its length are in the box owned by
    // the op's data; the kernel writes both.
    let (r, (_fd, addr)) = unsafe {
        run(
            &handle,
            (fd, addr),
            OpKind::Single,
            POLL_READ,
            |d| d.0.as_raw_fd(),
            |d| {
                d.1.1 = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                opcode::Accept::new(
                    types::Fd(d.0.as_raw_fd()),
                    (&mut d.1.0 as *mut libc::sockaddr_storage).cast(),
                    &mut d.1.1,
                )
                .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                .build()
            },
        )
    }
    .await;
    let (res, _) = r?;
    let raw = cqe_result(res)? as RawFd;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let peer = sockaddr::from_storage(&addr.0, addr.1)?;
    Ok((sock, peer))
}

/// Connects a socket to `addr` (`IORING_OP_CONNECT`).
pub async fn connect<F: AsRawFd + 'static>(fd: F, addr: SocketAddr) -> io::Result<()> {
    let handle = Handle::current()?;
    let storage = Box::new(sockaddr::to_storage(&addr));
    // SAFETY: the address is in the box owned by the op's data; CONNECT
    // only reads it.
    let (r, (fd, _storage)) = unsafe {
        run(
            &handle,
            (fd, storage),
            OpKind::Single,
            0,
            |d| d.0.as_raw_fd(),
            |d| {
                opcode::Connect::new(
                    types::Fd(d.0.as_raw_fd()),
                    (&d.1.0 as *const libc::sockaddr_storage).cast(),
                    d.1.1,
                )
                .build()
            },
        )
    }
    .await;
    let (res, _) = r?;
    if res == -libc::EINPROGRESS || res == -libc::EALREADY || res == -libc::EAGAIN {
        // A non-blocking socket on an older kernel: wait for the outcome.
        let raw = fd.as_raw_fd();
        poll_fd(fd, POLL_WRITE).await?;
        return socket_error(raw);
    }
    cqe_result(res).map(|_| ())
}

fn socket_error(fd: RawFd) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one c_int into `err` and its size into
    // `len`, both live locals.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(())
}

/// Waits until `fd` has one of `events` (`POLLIN`, `POLLOUT`, ... as in
/// poll(2)) with a oneshot `IORING_OP_POLL_ADD`; returns the events seen.
pub async fn poll_fd<F: AsRawFd + 'static>(fd: F, events: u32) -> io::Result<u32> {
    let handle = Handle::current()?;
    if handle.is_closed() {
        return Err(closed_error());
    }
    let raw = fd.as_raw_fd();
    // SAFETY: POLL_ADD carries no pointers; the fd guard rides along.
    let op = unsafe {
        Op::submit(&handle, fd, OpKind::Single, |_| {
            opcode::PollAdd::new(types::Fd(raw), events).build()
        })
    }
    .map_err(|(e, _)| e)?;
    let c = op.await;
    cqe_result(c.result)
}
