//! The owned-buffer operations every socket type shares, on [`PollIo`]:
//! completion-based io_uring requests on a core that runs io_uring, the
//! readiness loop plus the non-blocking syscall on any other core (see
//! [`crate::owned`] for the user-facing description).
//!
//! Three properties hold on both paths:
//!
//! - **fd lifetime.** An io_uring request gets a clone of the socket's
//!   `Arc` ([`PollIo::guard`]) as its fd guard. A dropped future leaves
//!   the guard in the driver's slot until the cancellation completes, so
//!   the fd is never closed (nor its number reused by a new socket) while
//!   the kernel may still act on it, even if the socket itself is dropped
//!   right after the future.
//! - **Coexistence with readiness I/O.** The io_uring requests do not use
//!   the socket's [`Registration`](crate::registration::Registration): the
//!   kernel waits for data itself (internal poll) and completes the
//!   request. Readiness cached by the registration may then be stale
//!   (bytes were consumed by a completion), which readiness users already
//!   handle: their syscall says `WouldBlock`, the flag is cleared and they
//!   wait for the next event. So `read_owned` and `AsyncRead` may be mixed
//!   on one socket, in sequence.
//! - **`Send` futures.** The io_uring futures hold an `Rc` to the core's
//!   driver once started; [`CoreBound`] makes them `Send` (so tasks using
//!   them go to `spawn`) by checking that they are never polled or dropped
//!   on another thread after their first poll, which insane's executor
//!   guarantees (a task never changes core).

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use insane_runtime::driver::{self, Direction, DriverKind};
use insane_uring::op;
use socket2::SockAddr;

use super::{BufResult, IoBuf, IoBufMut, RecvPool, RecvStream};
use crate::io::PollIo;

/// A number identifying the calling thread (never 0), cheaper than
/// `std::thread::current().id()`.
fn thread_tag() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TAG: Cell<u64> = const { Cell::new(0) };
    }
    TAG.with(|t| match t.get() {
        0 => {
            let tag = NEXT.fetch_add(1, Ordering::Relaxed);
            t.set(tag);
            tag
        }
        tag => tag,
    })
}

/// A future of the io_uring driver made `Send`.
///
/// The driver's operation futures are `!Send` only because, once polled,
/// they hold an `Rc` to the core's driver (and their request sits in that
/// core's slab). Before the first poll they hold only their arguments.
/// `CoreBound` remembers the thread of the first poll; a poll on another
/// thread panics, and a drop on another thread leaks the future (with an
/// error log) instead of touching the driver from the wrong thread. An
/// insane task never changes core, so neither happens there; the checks
/// make moving a started future elsewhere safe rather than undefined.
///
/// `B` is the buffer type: the wrapper is `Send` only when `B` is.
pub(crate) struct CoreBound<F, B> {
    fut: ManuallyDrop<F>,
    /// [`thread_tag`] of the first poll, 0 before it.
    home: u64,
    _buf: PhantomData<fn() -> B>,
}

impl<F: Future, B> CoreBound<F, B> {
    /// Wraps `fut`.
    ///
    /// # Safety
    /// Until its first poll, `fut` may hold only values that are `Send`,
    /// or `Send` when `B` is (the buffer, slices of it); everything
    /// `!Send` in it must be created by its polls (as the io_uring
    /// driver's operations do: they look the driver up when first
    /// polled).
    pub(crate) unsafe fn new(fut: F) -> Self {
        Self {
            fut: ManuallyDrop::new(fut),
            home: 0,
            _buf: PhantomData,
        }
    }
}

// SAFETY: before the first poll the future holds only `Send` values (the
// contract of `new`, with `B: Send` here), so moving it anywhere is fine.
// After the first poll its `!Send` state is only touched by `poll` and
// `drop`, and both refuse to touch it on any thread but the first poll's:
// `poll` panics, `drop` leaks. Moving the bytes of an `Rc` without using
// it is not a data race.
unsafe impl<F, B: Send> Send for CoreBound<F, B> {}

impl<F: Future, B> Future for CoreBound<F, B> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of
        // the wrapper and is dropped in place (or leaked).
        let this = unsafe { self.get_unchecked_mut() };
        let me = thread_tag();
        if this.home == 0 {
            this.home = me;
        } else if this.home != me {
            panic!(
                "an insane owned-buffer I/O future was polled on another thread than its first poll; \
                 it belongs to the io_uring driver of its core"
            );
        }
        // SAFETY: as above; `this` stays pinned.
        unsafe { Pin::new_unchecked(&mut *this.fut) }.poll(cx)
    }
}

impl<F, B> Drop for CoreBound<F, B> {
    fn drop(&mut self) {
        if self.home == 0 || self.home == thread_tag() {
            // SAFETY: dropped exactly once, in place (the pinning contract),
            // on the thread that owns its `!Send` state (or before it has
            // any).
            unsafe { ManuallyDrop::drop(&mut self.fut) };
        } else {
            tracing::error!(
                "an insane owned-buffer I/O future was dropped on another thread than the one \
                 that polled it; leaking it (its buffer and request) instead"
            );
        }
    }
}

/// Whether the current core's I/O driver is io_uring.
pub(crate) fn on_uring() -> bool {
    matches!(driver::current(), Some((DriverKind::Uring, _)))
}

/// Where a receive into `buf` starts: its spare capacity
/// (`bytes_init()..`), or, for a buffer that has none but is not empty
/// (a `Box<[u8]>`, a `vec![0; n]`, a full `Vec`), its start, like
/// `std::io::Read::read` into a slice.
pub(crate) fn recv_start<B: IoBuf>(buf: &B) -> usize {
    let init = buf.bytes_init();
    if init < buf.bytes_total() { init } else { 0 }
}

/// The initialised bytes of `buf`.
pub(crate) fn init_bytes<B: IoBuf>(buf: &B) -> &[u8] {
    // SAFETY: the `IoBuf` contract: `stable_ptr()` points to at least
    // `bytes_init()` initialised bytes that stay valid and unchanged while
    // `buf` is borrowed (changes need `&mut`). A zero-length buffer may
    // have a dangling but non-null, aligned pointer, which an empty slice
    // allows.
    unsafe { std::slice::from_raw_parts(buf.stable_ptr(), buf.bytes_init()) }
}

/// The writable bytes `start..bytes_total()` of `buf`, possibly
/// uninitialised.
pub(crate) fn spare_mut<B: IoBufMut>(buf: &mut B, start: usize) -> &mut [MaybeUninit<u8>] {
    let len = buf.bytes_total().saturating_sub(start);
    // SAFETY: the `IoBufMut` contract: `stable_mut_ptr()` is valid for
    // writes of `bytes_total()` bytes; `start + len <= bytes_total()`. The
    // slice mutably borrows `buf`, so nothing else accesses the memory,
    // and `MaybeUninit` makes no claim about its contents.
    unsafe {
        std::slice::from_raw_parts_mut(
            buf.stable_mut_ptr()
                .wrapping_add(start)
                .cast::<MaybeUninit<u8>>(),
            len,
        )
    }
}

fn ip_addr(addr: SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket()
        .ok_or_else(|| io::Error::other("received a datagram without an IP source address"))
}

fn write_zero(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::WriteZero, format!("{what} returned 0 bytes"))
}

/// An fd guard of any socket type: keeps the socket open while an
/// io_uring request (here a multishot receive) may use it.
/// (`Arc<S>` itself is an fd guard only for `S: AsRawFd`, and this one
/// type serves every socket type.)
#[derive(Clone)]
pub(crate) struct FdGuard {
    fd: RawFd,
    _owner: Arc<dyn AsFd + Send + Sync>,
}

impl FdGuard {
    pub(crate) fn new<S: AsFd + Send + Sync + 'static>(owner: Arc<S>) -> Self {
        Self {
            fd: owner.as_fd().as_raw_fd(),
            _owner: owner,
        }
    }
}

impl AsRawFd for FdGuard {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

/// Receiving through readiness into a caller's memory: what the
/// non-io_uring [`RecvStream`] needs from a socket of any type.
pub(crate) trait PollRecv: Sync {
    /// `recv(2)` into `dst` once the socket is readable.
    fn poll_recv_into(
        &self,
        cx: &mut Context<'_>,
        dst: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>>;

    /// An fd guard for io_uring requests.
    fn fd_guard(&self) -> FdGuard;
}

impl<S: AsFd + Send + Sync + 'static> PollRecv for PollIo<S> {
    fn poll_recv_into(
        &self,
        cx: &mut Context<'_>,
        dst: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(Direction::Read, cx, || self.sock().recv(dst))
    }

    fn fd_guard(&self) -> FdGuard {
        FdGuard::new(self.guard())
    }
}

/// The kind of socket an owned-buffer operation runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SockKind {
    /// TCP: a stream; `SEND_ZC` supported.
    Tcp,
    /// UDP: datagrams (an empty one is a message); `SEND_ZC` supported.
    Udp,
    /// Unix stream: no `SEND_ZC` in the kernel.
    UnixStream,
}

impl SockKind {
    fn stream(self) -> bool {
        self != SockKind::Udp
    }

    fn zero_copy(self) -> bool {
        self != SockKind::UnixStream
    }
}

/// Owned-buffer operations.
impl<S: AsFd + Send + Sync + 'static> PollIo<S> {
    /// Receives into the spare capacity of `buf` (see [`recv_start`]);
    /// stream sockets return `Ok(0)` at end of stream.
    pub(crate) async fn recv_owned<B: IoBufMut>(
        &self,
        buf: B,
        kind: SockKind,
    ) -> BufResult<usize, B> {
        let start = recv_start(&buf);
        if start == buf.bytes_total() && kind.stream() {
            // Nothing to receive into (a zero-capacity buffer). A datagram
            // socket still receives (and truncates) a datagram.
            return (Ok(0), buf);
        }
        if on_uring() {
            let slice = buf.slice(start..);
            // SAFETY: `op::recv` holds only its arguments (an `Arc` of a
            // `Send + Sync` socket and a slice of the buffer) until polled.
            let (res, slice) =
                unsafe { CoreBound::<_, B>::new(op::recv(self.fd_guard(), slice)) }.await;
            return (res, slice.into_inner());
        }
        let mut buf = buf;
        let res = {
            let dst = spare_mut(&mut buf, start);
            self.do_io(Direction::Read, || self.sock().recv(dst)).await
        };
        if let Ok(n) = res {
            // SAFETY: the kernel initialised `n` bytes from `start`.
            unsafe { buf.set_init(start + n) };
        }
        (res, buf)
    }

    /// Whether `SEND_ZC` can save a copy on this socket: its kind supports
    /// it and the connected peer is not on loopback, where the kernel
    /// copies the pages anyway and `SEND_ZC` only adds page pinning and a
    /// second completion (measured: 16 KiB echoes on loopback at a sixth
    /// of the rate of plain sends). The peer is read once.
    fn zero_copy_pays(&self, kind: SockKind) -> bool {
        kind.zero_copy()
            && !*self.peer_is_loopback.get_or_init(|| {
                self.sock()
                    .peer_addr()
                    .ok()
                    .and_then(|a| a.as_socket())
                    .is_some_and(|a| a.ip().is_loopback())
            })
    }

    /// Sends the initialised bytes of `buf` once (maybe not all of them on
    /// a stream socket). With `zero_copy` (and a socket that supports it,
    /// connected to a peer that is not on loopback, where the kernel copies
    /// anyway), io_uring uses `SEND_ZC` from the driver's threshold on; the buffer
    /// then comes back only when the kernel is done with it (for TCP: once
    /// the peer acknowledged the data).
    pub(crate) async fn send_owned<B: IoBuf>(
        &self,
        buf: B,
        kind: SockKind,
        zero_copy: bool,
    ) -> BufResult<usize, B> {
        if buf.bytes_init() == 0 && kind.stream() {
            // An empty datagram is a message; empty stream data is nothing.
            return (Ok(0), buf);
        }
        if on_uring() {
            let guard = self.fd_guard();
            return if zero_copy && self.zero_copy_pays(kind) {
                // SAFETY: as in `recv_owned`.
                unsafe { CoreBound::<_, B>::new(op::send_auto(guard, buf)) }.await
            } else {
                // SAFETY: as in `recv_owned`.
                unsafe { CoreBound::<_, B>::new(op::send(guard, buf)) }.await
            };
        }
        let res = {
            let bytes = init_bytes(&buf);
            let res = self
                .do_io(Direction::Write, || self.send_slice(bytes))
                .await;
            if matches!(res, Ok(n) if n < bytes.len()) {
                // The send buffer is full: the next wait should really wait.
                self.clear_ready(Direction::Write);
            }
            res
        };
        (res, buf)
    }

    /// Sends every initialised byte of `buf`, in as many sends as needed.
    pub(crate) async fn send_all_owned<B: IoBuf>(
        &self,
        buf: B,
        kind: SockKind,
    ) -> BufResult<(), B> {
        if buf.bytes_init() == 0 {
            return (Ok(()), buf);
        }
        if on_uring() {
            let guard = self.fd_guard();
            if self.zero_copy_pays(kind) {
                // SAFETY: as in `recv_owned`.
                return unsafe { CoreBound::<_, B>::new(op::send_all(guard, buf)) }.await;
            }
            // SAFETY: as in `recv_owned`: the block holds the guard and the
            // buffer until polled.
            return unsafe { CoreBound::<_, B>::new(send_all_plain(guard, buf)) }.await;
        }
        let res = {
            let bytes = init_bytes(&buf);
            let mut sent = 0;
            loop {
                if sent == bytes.len() {
                    break Ok(());
                }
                let rest = &bytes[sent..];
                match self.do_io(Direction::Write, || self.send_slice(rest)).await {
                    Ok(0) => break Err(write_zero("send")),
                    Ok(n) => {
                        sent += n;
                        if n < rest.len() {
                            self.clear_ready(Direction::Write);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            }
        };
        (res, buf)
    }

    /// Sends `buf` as one datagram to `addr`.
    pub(crate) async fn send_to_owned<B: IoBuf>(
        &self,
        buf: B,
        addr: SocketAddr,
    ) -> BufResult<usize, B> {
        if on_uring() {
            // SAFETY: as in `recv_owned` (the address is `Send`).
            return unsafe { CoreBound::<_, B>::new(op::send_to(self.fd_guard(), buf, addr)) }
                .await;
        }
        let res = {
            let bytes = init_bytes(&buf);
            let to = SockAddr::from(addr);
            self.do_io(Direction::Write, || {
                self.sock()
                    .send_to_with_flags(bytes, &to, libc::MSG_NOSIGNAL)
            })
            .await
        };
        (res, buf)
    }

    /// Receives one datagram into the spare capacity of `buf` and says who
    /// sent it.
    pub(crate) async fn recv_from_owned<B: IoBufMut>(
        &self,
        buf: B,
    ) -> BufResult<(usize, SocketAddr), B> {
        let start = recv_start(&buf);
        if on_uring() {
            let slice = buf.slice(start..);
            // SAFETY: as in `recv_owned`.
            let (res, slice) =
                unsafe { CoreBound::<_, B>::new(op::recv_from(self.fd_guard(), slice)) }.await;
            return (res, slice.into_inner());
        }
        let mut buf = buf;
        let res = {
            let dst = spare_mut(&mut buf, start);
            self.do_io(Direction::Read, || self.sock().recv_from(dst))
                .await
        };
        match res {
            Ok((n, from)) => {
                // SAFETY: the kernel initialised `n` bytes from `start`.
                unsafe { buf.set_init(start + n) };
                (ip_addr(from).map(|a| (n, a)), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    /// A stream of received messages in pooled buffers.
    pub(crate) fn recv_stream(
        &self,
        pool: Option<&RecvPool>,
        kind: SockKind,
    ) -> io::Result<RecvStream<'_>> {
        let pool = match pool {
            Some(p) => p.clone(),
            None => RecvPool::for_current_core()?,
        };
        RecvStream::new(self, pool, kind.stream())
    }
}

/// `send_all` without zero copy (Unix sockets, which do not support
/// `SEND_ZC`).
async fn send_all_plain<B: IoBuf>(fd: FdGuard, buf: B) -> BufResult<(), B> {
    let total = buf.bytes_init();
    let mut sent = 0;
    let mut buf = buf;
    while sent < total {
        let (res, slice) = op::send(fd.clone(), buf.slice(sent..total)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => return (Err(write_zero("send")), buf),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// Pending once, then ready; records its drop.
    struct Probe {
        polled: bool,
        dropped: Arc<AtomicBool>,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            if self.polled {
                Poll::Ready(())
            } else {
                self.polled = true;
                Poll::Pending
            }
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    fn probe() -> (CoreBound<Probe, ()>, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        let p = Probe {
            polled: false,
            dropped: dropped.clone(),
        };
        // SAFETY: `Probe` holds only `Send` values.
        (unsafe { CoreBound::new(p) }, dropped)
    }

    fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let waker = std::task::Waker::noop();
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn thread_tags_differ_per_thread() {
        let here = thread_tag();
        assert_eq!(here, thread_tag());
        let there = std::thread::spawn(thread_tag).join().unwrap();
        assert_ne!(here, there);
        assert_ne!(there, 0);
    }

    #[test]
    fn unstarted_future_moves_and_drops_anywhere() {
        let (f, dropped) = probe();
        let mut f = Box::pin(f);
        // Never polled: moving to another thread and polling there is fine.
        let dropped2 = dropped.clone();
        std::thread::spawn(move || {
            assert!(poll_once(&mut f).is_pending());
            assert!(poll_once(&mut f).is_ready());
            drop(f);
            assert!(dropped2.load(Ordering::SeqCst));
        })
        .join()
        .unwrap();
        let (f, dropped) = probe();
        std::thread::spawn(move || drop(f)).join().unwrap();
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[test]
    fn started_future_refuses_other_threads() {
        let (f, dropped) = probe();
        let mut f = Box::pin(f);
        assert!(poll_once(&mut f).is_pending());
        let result = std::thread::spawn(move || {
            let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = poll_once(&mut f);
            }));
            // Dropped here, on the wrong thread: leaked, not dropped.
            drop(f);
            polled.is_err()
        })
        .join()
        .unwrap();
        assert!(result, "polling on another thread must panic");
        assert!(!dropped.load(Ordering::SeqCst), "must leak, not drop");
    }

    #[test]
    fn recv_start_uses_spare_capacity_or_the_whole_buffer() {
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(b"abc");
        assert_eq!(recv_start(&v), 3);
        assert_eq!(recv_start(&vec![0u8; 8]), 0);
        let b: Box<[u8]> = vec![1u8; 4].into_boxed_slice();
        assert_eq!(recv_start(&b), 0);
        assert_eq!(recv_start(&Vec::<u8>::new()), 0);
    }
}
