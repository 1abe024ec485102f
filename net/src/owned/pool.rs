//! Receive pools: [`RecvPool`] (an io_uring provided-buffer ring, or a
//! heap pool on epoll), the [`PooledBuf`]s it lends, and [`RecvStream`],
//! the multishot receive that fills them.

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use insane_runtime::driver::{self, DriverKind};
use insane_uring::bufring::{self, BufRing, RingBuf};

use super::IoBuf;

use super::ops::{FdGuard, PollRecv, spare_mut};

/// Largest pool: the io_uring limit for a provided-buffer ring.
const MAX_ENTRIES: u16 = 32_768;

fn check_pool_size(entries: u16, buf_size: u32) -> io::Result<()> {
    if entries == 0 || !entries.is_power_of_two() || entries > MAX_ENTRIES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a receive pool needs a power-of-two number of buffers up to {MAX_ENTRIES}, got {entries}"
            ),
        ));
    }
    if buf_size == 0 || buf_size > (1 << 30) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("pool buffers must be 1 byte to 1 GiB, got {buf_size}"),
        ));
    }
    Ok(())
}

// ---- pools ----------------------------------------------------------------

/// A per-core pool of receive buffers for [`RecvStream`]s.
///
/// On a core running io_uring (Linux 6.0+) it is a provided-buffer ring:
/// the kernel picks a free buffer for each arriving message, without a
/// submission per receive, and the buffer goes back to the ring when the
/// [`PooledBuf`] holding it is dropped. Elsewhere (epoll, or a kernel
/// without buffer rings) it is a pool of heap buffers with the same
/// limits, filled by readiness-driven `recv(2)`.
///
/// When every buffer is held by the application, receiving pauses until
/// one comes back: TCP data waits in the socket (and the sender is slowed
/// by TCP flow control), UDP datagrams wait in the socket's receive buffer
/// (and are dropped by the kernel when it overflows, as always with UDP).
/// Nothing is lost inside insane.
///
/// A pool is shared by every stream that receives from it (the default
/// one by every `recv_stream()` of the core): buffers one part of the
/// application holds on to delay the others. Give bulk consumers their
/// own pool with `recv_stream_with`. Run one receive stream per socket at
/// a time: two would split the data between them.
///
/// Clones share the pool. `!Send`: it belongs to its core.
///
/// ```no_run
/// use insane_net::owned::RecvPool;
///
/// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
/// // 64 buffers of 16 KiB for bulk receives on this core.
/// let pool = RecvPool::new(64, 16 * 1024)?;
/// let mut rx = stream.recv_stream_with(&pool)?;
/// while let Some(buf) = rx.next().await {
///     println!("{} bytes", buf?.len());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RecvPool {
    kind: PoolKind,
}

#[derive(Clone)]
enum PoolKind {
    Ring(BufRing),
    Heap(Rc<HeapPool>),
}

/// Whether the current core can serve [`RecvStream`]s from a
/// provided-buffer ring.
fn uring_rings_supported() -> bool {
    if !matches!(driver::current(), Some((DriverKind::Uring, _))) {
        return false;
    }
    insane_uring::Handle::current().is_ok_and(|h| {
        let f = h.features();
        f.provided_buffer_ring && f.recv_multishot
    })
}

fn no_driver() -> io::Error {
    io::Error::other(
        "receive pools must be created inside an insane runtime whose core has an I/O driver",
    )
}

thread_local! {
    /// The default heap pool of this thread's core, while someone uses it.
    static DEFAULT_HEAP: RefCell<Weak<HeapPool>> = const { RefCell::new(Weak::new()) };
}

impl RecvPool {
    /// A pool of `entries` buffers (a power of two, at most 32768) of
    /// `buf_size` bytes for the current core: a provided-buffer ring on
    /// io_uring, heap buffers otherwise.
    ///
    /// Each io_uring ring is a registration with the kernel (and `entries
    /// × buf_size` bytes of memory), so create pools once and share them
    /// (clones are cheap), rather than one per connection.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let pool = insane_net::owned::RecvPool::new(8, 2048)?;
    /// assert_eq!(pool.entries(), 8);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Outside an insane runtime or on a core without an I/O driver,
    /// invalid sizes, or a failed ring registration.
    pub fn new(entries: u16, buf_size: u32) -> io::Result<RecvPool> {
        check_pool_size(entries, buf_size)?;
        if driver::current().is_none() {
            return Err(no_driver());
        }
        let kind = if uring_rings_supported() {
            PoolKind::Ring(BufRing::new(entries, buf_size)?)
        } else {
            PoolKind::Heap(Rc::new(HeapPool::new(entries, buf_size)))
        };
        Ok(RecvPool { kind })
    }

    /// The current core's default pool, created on first use and shared
    /// while anyone uses it: on io_uring the driver's ring
    /// (`UringConfig::buf_ring_entries` × `buf_ring_buf_size`, 256 × 4 KiB
    /// by default), elsewhere a heap pool of the same default size.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let pool = insane_net::owned::RecvPool::for_current_core()?;
    /// println!("{} buffers of {} bytes", pool.entries(), pool.buf_size());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn for_current_core() -> io::Result<RecvPool> {
        if driver::current().is_none() {
            return Err(no_driver());
        }
        if uring_rings_supported() {
            return Ok(RecvPool {
                kind: PoolKind::Ring(BufRing::for_current_core()?),
            });
        }
        let heap = DEFAULT_HEAP.with(|d| {
            if let Some(pool) = d.borrow().upgrade() {
                return pool;
            }
            let cfg = insane_uring::UringConfig::default();
            let pool = Rc::new(HeapPool::new(cfg.buf_ring_entries, cfg.buf_ring_buf_size));
            *d.borrow_mut() = Rc::downgrade(&pool);
            pool
        });
        Ok(RecvPool {
            kind: PoolKind::Heap(heap),
        })
    }

    /// Number of buffers.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// assert_eq!(insane_net::owned::RecvPool::new(16, 512)?.entries(), 16);
    /// # Ok(())
    /// # }
    /// ```
    pub fn entries(&self) -> u16 {
        match &self.kind {
            PoolKind::Ring(r) => r.entries(),
            PoolKind::Heap(h) => h.entries,
        }
    }

    /// Size of each buffer: the most one [`PooledBuf`] holds. A longer
    /// datagram is truncated; a stream's data spreads over several
    /// buffers.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// assert_eq!(insane_net::owned::RecvPool::new(16, 512)?.buf_size(), 512);
    /// # Ok(())
    /// # }
    /// ```
    pub fn buf_size(&self) -> u32 {
        match &self.kind {
            PoolKind::Ring(r) => r.buf_size(),
            PoolKind::Heap(h) => h.buf_size,
        }
    }

    /// Buffers free right now (not held by the application or in flight).
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let pool = insane_net::owned::RecvPool::new(8, 512)?;
    /// assert_eq!(pool.available(), 8);
    /// # Ok(())
    /// # }
    /// ```
    pub fn available(&self) -> usize {
        match &self.kind {
            PoolKind::Ring(r) => r.available(),
            PoolKind::Heap(h) => h.available(),
        }
    }

    /// Whether this is an io_uring provided-buffer ring (the kernel fills
    /// the buffers) rather than the heap fallback.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let pool = insane_net::owned::RecvPool::for_current_core()?;
    /// println!("kernel-filled buffers: {}", pool.is_provided_ring());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_provided_ring(&self) -> bool {
        matches!(self.kind, PoolKind::Ring(_))
    }
}

impl fmt::Debug for RecvPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvPool")
            .field("provided_ring", &self.is_provided_ring())
            .field("entries", &self.entries())
            .field("buf_size", &self.buf_size())
            .finish()
    }
}

/// The heap fallback of a [`RecvPool`].
struct HeapPool {
    entries: u16,
    buf_size: u32,
    state: RefCell<HeapState>,
}

struct HeapState {
    /// Buffers back from the application, kept for reuse.
    free: Vec<Vec<u8>>,
    /// Buffers handed out (held by the application or being filled).
    out: usize,
    /// Streams waiting for a buffer to come back.
    starved: Vec<Waker>,
}

impl HeapPool {
    fn new(entries: u16, buf_size: u32) -> Self {
        Self {
            entries,
            buf_size,
            state: RefCell::new(HeapState {
                free: Vec::new(),
                out: 0,
                starved: Vec::new(),
            }),
        }
    }

    fn available(&self) -> usize {
        usize::from(self.entries).saturating_sub(self.state.borrow().out)
    }

    /// An empty buffer of `buf_size` capacity, or `None` (and `cx` is
    /// woken when one comes back) when all are out.
    fn take(&self, cx: &mut Context<'_>) -> Option<Vec<u8>> {
        let mut st = self.state.borrow_mut();
        if st.out >= usize::from(self.entries) {
            if !st.starved.iter().any(|w| w.will_wake(cx.waker())) {
                st.starved.push(cx.waker().clone());
            }
            return None;
        }
        st.out += 1;
        Some(
            st.free
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(self.buf_size as usize)),
        )
    }

    /// Takes back a buffer that [`take`](Self::take) just gave out and
    /// that was not used (nothing to receive yet).
    fn untake(&self, buf: Vec<u8>) {
        let mut st = self.state.borrow_mut();
        st.out = st.out.saturating_sub(1);
        st.free.push(buf);
    }

    /// Takes back a buffer; wakes the streams waiting for one.
    fn give_back(&self, mut buf: Vec<u8>) {
        buf.clear();
        let starved = {
            let mut st = self.state.borrow_mut();
            st.out = st.out.saturating_sub(1);
            st.free.push(buf);
            std::mem::take(&mut st.starved)
        };
        for w in starved {
            w.wake();
        }
    }
}

// ---- buffers --------------------------------------------------------------

/// A received message in a buffer of a [`RecvPool`]; derefs to its bytes
/// and goes back to the pool when dropped.
///
/// On io_uring it is a provided buffer the kernel wrote into (no copy);
/// on epoll a heap buffer. It implements [`IoBuf`], so it can be sent on
/// as is (`write_all_owned(buf)`), and is `!Send` (see the
/// [module docs](crate::owned)).
///
/// ```no_run
/// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
/// let mut rx = stream.recv_stream()?;
/// while let Some(buf) = rx.next().await {
///     let buf = buf?;
///     // Echo without copying: the pooled buffer itself is sent.
///     let (res, _buf) = stream.write_all_owned(buf).await;
///     res?;
/// }
/// # Ok(())
/// # }
/// ```
pub struct PooledBuf {
    kind: BufKind,
}

enum BufKind {
    Ring(RingBuf),
    Heap(HeapBuf),
}

/// A heap buffer lent by a [`HeapPool`].
struct HeapBuf {
    data: Vec<u8>,
    pool: Rc<HeapPool>,
}

impl Drop for HeapBuf {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.data));
    }
}

impl PooledBuf {
    /// Shortens the visible bytes to `len` (no effect if already shorter).
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
    /// let mut rx = stream.recv_stream()?;
    /// if let Some(buf) = rx.next().await {
    ///     let mut buf = buf?;
    ///     buf.truncate(1);
    ///     assert!(buf.len() <= 1);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn truncate(&mut self, len: usize) {
        match &mut self.kind {
            BufKind::Ring(r) => r.truncate(len),
            BufKind::Heap(h) => h.data.truncate(len),
        }
    }

    /// Whether the bytes are in an io_uring provided buffer (written by
    /// the kernel in place) rather than a heap buffer of the fallback.
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
    /// let mut rx = stream.recv_stream()?;
    /// if let Some(buf) = rx.next().await {
    ///     println!("zero-copy receive: {}", buf?.is_provided_buffer());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_provided_buffer(&self) -> bool {
        matches!(self.kind, BufKind::Ring(_))
    }
}

impl Deref for PooledBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.kind {
            BufKind::Ring(r) => r,
            BufKind::Heap(h) => &h.data,
        }
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.kind {
            BufKind::Ring(r) => r,
            BufKind::Heap(h) => &mut h.data,
        }
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for PooledBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBuf")
            .field("provided_buffer", &self.is_provided_buffer())
            .field("len", &self.len())
            .finish()
    }
}

// SAFETY: the bytes live in the ring's data mapping (kept mapped by the
// `Rc` a `RingBuf` holds, and not written by the kernel until the buffer
// is dropped) or in the heap storage of a `Vec` that is never resized
// while lent; neither moves when the `PooledBuf` moves. All `len()`
// bytes are initialised and the length changes only through `&mut self`.
unsafe impl IoBuf for PooledBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len()
    }

    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// ---- streams --------------------------------------------------------------

/// Messages arriving on a socket, each in a [`PooledBuf`] of a
/// [`RecvPool`]: from [`TcpStream::recv_stream`](crate::TcpStream::recv_stream),
/// [`UdpSocket::recv_stream`](crate::UdpSocket::recv_stream) and the
/// other sockets' `recv_stream` / `recv_stream_with`.
///
/// On io_uring this is one multishot receive (re-armed as needed): no
/// submission per message and no copy. Elsewhere each message is a
/// readiness wait plus `recv(2)` into a heap buffer of the pool.
///
/// For a stream socket each buffer holds the next bytes of the stream (at
/// most the pool's `buf_size`), in order; [`next`](Self::next) gives
/// `None` at end of stream. For a datagram socket each buffer is one
/// datagram (truncated to `buf_size`), without the sender's address (use
/// [`UdpSocket::recv_from_owned`](crate::UdpSocket::recv_from_owned) to
/// learn it).
///
/// When the pool is empty (the application holds every buffer) the stream
/// pauses without losing data and resumes when a buffer is dropped;
/// [`enobufs_count`](Self::enobufs_count) counts these stalls.
///
/// Dropping the stream stops receiving; messages already received into
/// buffers but not yet returned by `next` are dropped with it (on a TCP
/// stream, those bytes are lost to the application). `!Send`.
///
/// Implements `futures_core::Stream`.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// let sock = insane_net::UdpSocket::bind("127.0.0.1:9000").await?;
/// let mut rx = sock.recv_stream()?;
/// while let Some(datagram) = rx.next().await {
///     println!("{:?}", &datagram?[..]);
/// }
/// # Ok(())
/// # }
/// ```
pub struct RecvStream<'a> {
    kind: StreamKind<'a>,
}

enum StreamKind<'a> {
    Ring {
        rx: bufring::RecvStream<FdGuard>,
        _socket: PhantomData<&'a ()>,
    },
    Heap(HeapStream<'a>),
}

struct HeapStream<'a> {
    io: &'a dyn PollRecv,
    pool: Rc<HeapPool>,
    stream_socket: bool,
    done: bool,
    /// Inside a stall (counted once).
    starved: bool,
    enobufs: u64,
}

impl<'a> RecvStream<'a> {
    pub(crate) fn new(
        io: &'a dyn PollRecv,
        pool: RecvPool,
        stream_socket: bool,
    ) -> io::Result<RecvStream<'a>> {
        let kind = match pool.kind {
            PoolKind::Ring(ring) => StreamKind::Ring {
                rx: ring.recv_stream(io.fd_guard())?,
                _socket: PhantomData,
            },
            PoolKind::Heap(pool) => StreamKind::Heap(HeapStream {
                io,
                pool,
                stream_socket,
                done: false,
                starved: false,
                enobufs: 0,
            }),
        };
        Ok(RecvStream { kind })
    }

    /// The next message: `Some(Ok(buf))`, `Some(Err(e))` for a socket
    /// error (the stream stays usable), or `None` at end of stream (a
    /// stream socket's peer closed its write side).
    ///
    /// Cancel-safe: dropping the future loses nothing; a message that
    /// arrives meanwhile is returned by the next call.
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
    /// let mut rx = stream.recv_stream()?;
    /// let mut total = 0;
    /// while let Some(buf) = rx.next().await {
    ///     total += buf?.len();
    /// }
    /// println!("{total} bytes until end of stream");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<io::Result<PooledBuf>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Poll form of [`next`](Self::next).
    ///
    /// ```no_run
    /// use std::task::Poll;
    /// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
    /// let mut rx = stream.recv_stream()?;
    /// let first = std::future::poll_fn(|cx| match rx.poll_next(cx) {
    ///     Poll::Ready(m) => Poll::Ready(m),
    ///     Poll::Pending => Poll::Pending,
    /// })
    /// .await;
    /// # drop(first);
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<PooledBuf>>> {
        match &mut self.kind {
            StreamKind::Ring { rx, .. } => rx.poll_next(cx).map(|m| {
                m.map(|r| {
                    r.map(|b| PooledBuf {
                        kind: BufKind::Ring(b),
                    })
                })
            }),
            StreamKind::Heap(h) => h.poll_next(cx),
        }
    }

    /// How often receiving stalled because every buffer of the pool was
    /// held (on io_uring: `ENOBUFS` completions of the multishot receive).
    /// Each stall is backpressure, not loss.
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
    /// let mut rx = stream.recv_stream()?;
    /// while let Some(buf) = rx.next().await {
    ///     drop(buf?);
    /// }
    /// println!("pool exhausted {} times", rx.enobufs_count());
    /// # Ok(())
    /// # }
    /// ```
    pub fn enobufs_count(&self) -> u64 {
        match &self.kind {
            StreamKind::Ring { rx, .. } => rx.enobufs_count(),
            StreamKind::Heap(h) => h.enobufs,
        }
    }

    /// Whether the buffers come from an io_uring provided-buffer ring.
    ///
    /// ```no_run
    /// # fn f(stream: &insane_net::TcpStream) -> std::io::Result<()> {
    /// let rx = stream.recv_stream()?;
    /// println!("multishot io_uring receive: {}", rx.is_provided_ring());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_provided_ring(&self) -> bool {
        matches!(self.kind, StreamKind::Ring { .. })
    }
}

impl HeapStream<'_> {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<PooledBuf>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let Some(mut data) = self.pool.take(cx) else {
            if !self.starved {
                self.starved = true;
                self.enobufs += 1;
            }
            return Poll::Pending;
        };
        self.starved = false;
        let res = {
            let dst = spare_mut(&mut data, 0);
            self.io.poll_recv_into(cx, dst)
        };
        match res {
            Poll::Ready(Ok(n)) => {
                // SAFETY: `recv` initialised `n <= capacity` bytes.
                unsafe { data.set_len(n) };
                if n == 0 && self.stream_socket {
                    self.pool.give_back(data);
                    self.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Ok(PooledBuf {
                    kind: BufKind::Heap(HeapBuf {
                        data,
                        pool: self.pool.clone(),
                    }),
                })))
            }
            Poll::Ready(Err(e)) => {
                self.pool.give_back(data);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => {
                self.pool.untake(data);
                Poll::Pending
            }
        }
    }
}

impl futures_core::Stream for RecvStream<'_> {
    type Item = io::Result<PooledBuf>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next(cx)
    }
}

impl fmt::Debug for RecvStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvStream")
            .field("provided_ring", &self.is_provided_ring())
            .field("enobufs", &self.enobufs_count())
            .finish()
    }
}
