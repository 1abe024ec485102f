//! Provided-buffer rings and multishot receives: the kernel picks a
//! buffer from a per-core ring for each arriving message, and the
//! application gets it as an owned [`RingBuf`] that goes back to the ring
//! when dropped. No copy, no per-receive submission.
//!
//! A [`BufRing`] is `N` buffers of `S` bytes registered with
//! `IORING_REGISTER_PBUF_RING`; [`BufRing::for_current_core`] gives the
//! core's default one (sizes from [`crate::UringConfig`]).
//! [`BufRing::recv_stream`] starts a multishot `RECV` on a socket and
//! yields its messages from [`RecvStream::next`].
//!
//! When every buffer is held by the application the kernel ends the
//! multishot receive with `ENOBUFS`; the stream waits until a buffer comes
//! back and re-arms, so exhaustion is backpressure (data stays in the
//! socket's queue), not an error.
//!
//! `RingBuf` is `!Send`: it must be dropped on the core that owns the
//! ring (the return is a store into that core's ring memory). Copy the
//! bytes out to move them to another thread.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Context, Poll, Waker};

use io_uring::{cqueue, opcode, types};

use crate::driver::{Handle, Key, SlotKind, State, TAG_OP, closed_error};
use crate::features::page_size;

/// `struct io_uring_buf` of the kernel ABI; the ring's tail overlays the
/// `resv` field of entry 0.
#[repr(C)]
struct RawBuf {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

/// The memory and producer state of one registered buffer ring, owned by
/// the driver state (so completions can return buffers of orphaned
/// operations).
pub(crate) struct RingState {
    ring: NonNull<RawBuf>,
    ring_bytes: usize,
    data: NonNull<u8>,
    data_bytes: usize,
    entries: u16,
    buf_size: u32,
    /// Our copy of the tail (next slot to publish).
    tail: u16,
    /// Buffers the kernel has handed out (in completions or held by the
    /// application) and that are not back yet.
    pub(crate) held: usize,
    /// Streams waiting for a buffer to come back (after ENOBUFS).
    starved: Vec<Waker>,
}

fn map_anon(len: usize, what: &str) -> io::Result<NonNull<u8>> {
    // SAFETY: anonymous private mapping with no address hint; the result
    // is checked against MAP_FAILED before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("mmap of {len} bytes for {what} failed: {e}"),
        ));
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

impl RingState {
    pub(crate) fn new(entries: u16, buf_size: u32) -> io::Result<Self> {
        if entries == 0 || !entries.is_power_of_two() || entries > 32_768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a provided-buffer ring needs a power-of-two number of entries up to 32768, got {entries}"
                ),
            ));
        }
        if buf_size == 0 || buf_size > (1 << 30) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("provided buffers must be 1 byte to 1 GiB, got {buf_size}"),
            ));
        }
        let page = page_size();
        let ring_bytes =
            (usize::from(entries) * std::mem::size_of::<RawBuf>()).div_ceil(page) * page;
        let data_bytes = usize::from(entries)
            .checked_mul(buf_size as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "buffer ring too large"))?;
        let ring = map_anon(ring_bytes, "the buffer ring")?.cast::<RawBuf>();
        let data = match map_anon(data_bytes, "provided buffers") {
            Ok(d) => d,
            Err(e) => {
                // SAFETY: unmapping the ring mapped just above, unused.
                unsafe { libc::munmap(ring.as_ptr().cast(), ring_bytes) };
                return Err(e);
            }
        };
        let mut state = Self {
            ring,
            ring_bytes,
            data,
            data_bytes,
            entries,
            buf_size,
            tail: 0,
            held: usize::from(entries),
            starved: Vec::new(),
        };
        let mut none = Vec::new();
        for bid in 0..entries {
            state.recycle(bid, &mut none);
        }
        Ok(state)
    }

    pub(crate) fn ring_addr(&self) -> u64 {
        self.ring.as_ptr() as u64
    }

    /// Buffers currently available to the kernel.
    pub(crate) fn available(&self) -> usize {
        usize::from(self.entries).saturating_sub(self.held)
    }

    /// Gives buffer `bid` back to the kernel; wakers of starved streams go
    /// to `wakes`.
    pub(crate) fn recycle(&mut self, bid: u16, wakes: &mut Vec<Waker>) {
        if bid >= self.entries {
            tracing::error!(
                bid,
                entries = self.entries,
                "invalid provided buffer id; ignored"
            );
            return;
        }
        let mask = self.entries - 1;
        let idx = usize::from(self.tail & mask);
        let addr = self.data.as_ptr() as u64 + u64::from(bid) * u64::from(self.buf_size);
        // SAFETY: `idx < entries` and the ring mapping holds `entries`
        // entries. Only addr/len/bid are written (plain stores to a slot
        // the kernel does not read until the tail below publishes it); the
        // tail, which overlays `resv` of entry 0, is only accessed
        // atomically.
        unsafe {
            let entry = self.ring.as_ptr().add(idx);
            std::ptr::addr_of_mut!((*entry).addr).write(addr);
            std::ptr::addr_of_mut!((*entry).len).write(self.buf_size);
            std::ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: `resv` of entry 0 is the ring's tail: a u16 inside the
        // live mapping, 2-byte aligned, read by the kernel with acquire
        // semantics and written only here.
        unsafe {
            let tail = std::ptr::addr_of_mut!((*self.ring.as_ptr()).resv);
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
        self.held = self.held.saturating_sub(1);
        if !self.starved.is_empty() {
            wakes.append(&mut self.starved);
        }
    }
}

impl Drop for RingState {
    fn drop(&mut self) {
        // SAFETY: both regions were mapped in `new` with these sizes; the
        // ring is unregistered (or the io_uring gone) and no operation
        // uses its buffers any more (the driver leaks the state otherwise).
        unsafe {
            libc::munmap(self.data.as_ptr().cast(), self.data_bytes);
            libc::munmap(self.ring.as_ptr().cast(), self.ring_bytes);
        }
    }
}

/// The part of a buffer ring its handles, buffers and streams share.
pub(crate) struct BufRingShared {
    handle: Handle,
    bgid: u16,
    data: NonNull<u8>,
    buf_size: u32,
    entries: u16,
}

impl BufRingShared {
    /// The start of buffer `bid` (`bid < entries`).
    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        self.data
            .as_ptr()
            .wrapping_add(usize::from(bid) * self.buf_size as usize)
    }
}

impl Drop for BufRingShared {
    fn drop(&mut self) {
        let Ok(mut st) = self.handle.inner.state.try_borrow_mut() else {
            tracing::error!(
                bgid = self.bgid,
                "buffer ring dropped while the driver is borrowed; leaking it"
            );
            return;
        };
        let Some(state) = st.buf_rings.try_remove(usize::from(self.bgid)) else {
            return;
        };
        if st.leak {
            std::mem::forget(state);
            return;
        }
        if let Err(e) = st.unregister_buf_ring(self.bgid) {
            tracing::warn!(bgid = self.bgid, error = %e, "unregistering a provided-buffer ring failed");
        }
        drop(st);
        drop(state);
    }
}

/// A registered ring of provided buffers on one core. Cheap to clone
/// (shared); unregistered when the last handle, buffer and stream is gone.
#[derive(Clone)]
pub struct BufRing {
    shared: Rc<BufRingShared>,
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRing")
            .field("bgid", &self.shared.bgid)
            .field("entries", &self.shared.entries)
            .field("buf_size", &self.shared.buf_size)
            .finish()
    }
}

impl BufRing {
    /// Registers a ring of `entries` (power of two, ≤ 32768) buffers of
    /// `buf_size` bytes with the current core's driver.
    ///
    /// # Errors
    /// Outside an io_uring core, invalid sizes, no kernel support, or a
    /// failed registration (the message says which).
    pub fn new(entries: u16, buf_size: u32) -> io::Result<BufRing> {
        Self::with_handle(&Handle::current()?, entries, buf_size)
    }

    /// [`new`](Self::new) on the driver of `handle`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_handle(handle: &Handle, entries: u16, buf_size: u32) -> io::Result<BufRing> {
        if !handle.features().provided_buffer_ring {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "provided-buffer rings need Linux 5.19+ (this is {})",
                    handle.features().kernel_release
                ),
            ));
        }
        let state = RingState::new(entries, buf_size)?;
        let data = state.data;
        let addr = state.ring_addr();
        let bgid = handle.with_state(|st| {
            if st.closed {
                return Err((closed_error(), state));
            }
            let key = st.buf_rings.vacant_key();
            let Ok(bgid) = u16::try_from(key) else {
                return Err((
                    io::Error::other("too many provided-buffer rings on this core"),
                    state,
                ));
            };
            // SAFETY: `addr` is the page-aligned ring mapping of `state`,
            // sized for `entries` entries; it stays mapped until the ring
            // is unregistered (BufRingShared::drop) or the io_uring is gone,
            // because the state is stored in the driver right below.
            if let Err(e) = unsafe { st.register_buf_ring(addr, entries, bgid) } {
                return Err((
                    io::Error::new(e.kind(), format!("IORING_REGISTER_PBUF_RING failed: {e}")),
                    state,
                ));
            }
            // `insert` fills the vacant key read above (nothing was inserted
            // in between), so the state sits at index `bgid`.
            st.buf_rings.insert(state);
            Ok(bgid)
        })?;
        let bgid = match bgid {
            Ok(b) => b,
            Err((e, state)) => {
                drop(state);
                return Err(e);
            }
        };
        Ok(BufRing {
            shared: Rc::new(BufRingShared {
                handle: handle.clone(),
                bgid,
                data,
                buf_size,
                entries,
            }),
        })
    }

    /// The current core's default buffer ring
    /// (`UringConfig::buf_ring_entries` × `buf_ring_buf_size`), created on
    /// first use and shared while anyone uses it.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn for_current_core() -> io::Result<BufRing> {
        let handle = Handle::current()?;
        if let Some(shared) = handle.inner.default_ring.borrow().upgrade() {
            return Ok(BufRing { shared });
        }
        let cfg = handle.config();
        let ring = BufRing::with_handle(&handle, cfg.buf_ring_entries, cfg.buf_ring_buf_size)?;
        *handle.inner.default_ring.borrow_mut() = Rc::downgrade(&ring.shared);
        Ok(ring)
    }

    /// The buffer group id (`bgid`) of this ring.
    pub fn group(&self) -> u16 {
        self.shared.bgid
    }

    /// Number of buffers.
    pub fn entries(&self) -> u16 {
        self.shared.entries
    }

    /// Size of each buffer.
    pub fn buf_size(&self) -> u32 {
        self.shared.buf_size
    }

    /// Buffers the kernel can fill right now.
    pub fn available(&self) -> usize {
        self.shared
            .handle
            .with_state(|st| {
                st.buf_rings
                    .get(usize::from(self.shared.bgid))
                    .map_or(0, |r| r.available())
            })
            .unwrap_or(0)
    }

    /// Starts receiving on socket `fd` (a guard: `Rc<OwnedFd>`, a socket,
    /// ...) with a multishot `RECV` that takes buffers from this ring.
    /// Nothing is submitted until the stream is first polled.
    ///
    /// # Errors
    /// The kernel lacks multishot receive (Linux 6.0+).
    pub fn recv_stream<F: AsRawFd + 'static>(&self, fd: F) -> io::Result<RecvStream<F>> {
        if !self.shared.handle.features().recv_multishot {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "multishot receive needs Linux 6.0+ (this is {})",
                    self.shared.handle.features().kernel_release
                ),
            ));
        }
        let stream_socket = socket_type(fd.as_raw_fd()) != Some(libc::SOCK_DGRAM);
        Ok(RecvStream {
            ring: self.clone(),
            fd: Some(fd),
            key: None,
            phase: Phase::Idle,
            stream_socket,
            enobufs: 0,
            stopping: false,
            partial: None,
        })
    }

    /// An empty message that used no buffer (a zero-length datagram).
    fn empty_buf(&self) -> RingBuf {
        RingBuf {
            ring: self.shared.clone(),
            bid: None,
            start: 0,
            len: 0,
        }
    }
}

fn socket_type(fd: RawFd) -> Option<libc::c_int> {
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one c_int and its length into live locals.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(ty)
}

/// A received message in a provided buffer; derefs to its bytes and goes
/// back to its ring when dropped. `!Send` (see the module docs).
pub struct RingBuf {
    ring: Rc<BufRingShared>,
    /// `None` for an empty message that consumed no buffer.
    bid: Option<u16>,
    /// Where the visible bytes start in the buffer (not 0 only for the
    /// rest of a buffer partly read by [`RecvStream::poll_copy`]).
    start: usize,
    len: usize,
}

impl RingBuf {
    /// The buffer id within its ring (`None` for an empty datagram that
    /// used no buffer).
    pub fn bid(&self) -> Option<u16> {
        self.bid
    }

    /// Shortens the visible bytes to `len` (no effect if longer).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    fn ptr(&self) -> *mut u8 {
        match self.bid {
            Some(bid) => self.ring.buf_ptr(bid).wrapping_add(self.start),
            None => NonNull::dangling().as_ptr(),
        }
    }
}

impl Deref for RingBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: buffer `bid` lies inside the ring's data mapping, which
        // lives as long as `BufRingShared` (we hold an Rc); the kernel
        // wrote `start + len <= buf_size` bytes into it and does not touch it again
        // until we give it back in `drop`. Without a buffer, `len` is 0 and
        // the pointer is dangling but aligned, as an empty slice allows.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }
    }
}

impl DerefMut for RingBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.len) }
    }
}

impl AsRef<[u8]> for RingBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for RingBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingBuf")
            .field("bgid", &self.ring.bgid)
            .field("bid", &self.bid)
            .field("len", &self.len)
            .finish()
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        let Some(bid) = self.bid else { return };
        let mut wakes = Vec::new();
        let returned = self.ring.handle.with_state(|st| {
            let st = &mut *st;
            if let Some(r) = st.buf_rings.get_mut(usize::from(self.ring.bgid)) {
                r.recycle(bid, &mut wakes);
            }
        });
        if returned.is_err() {
            tracing::error!(
                bid,
                "provided buffer dropped while the driver is borrowed; not returned"
            );
        }
        for w in wakes {
            w.wake();
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No receive in flight; the next poll submits one.
    Idle,
    /// A multishot receive is in flight.
    Armed,
    /// The last receive ended with ENOBUFS; waiting for a buffer.
    Starved,
    /// End of stream (or the driver shut down).
    Done,
}

/// What [`RecvStream::next_event`] found.
enum Event {
    /// A message of `len` bytes in buffer `bid` (taken from the queue);
    /// `more`: other completions are queued behind it.
    Data { bid: u16, len: u32, more: bool },
    /// A zero-length datagram (it used no buffer).
    EmptyDatagram,
    /// End of stream: the stream is done.
    End,
    /// An error (taken from the queue, or arming failed).
    Error(io::Error),
    /// Something other than data is next and was left queued (the
    /// caller asked for data only, or only whether anything is there).
    Later,
    /// Nothing yet; the waker (if any) is registered.
    Pending,
}

/// Which completions [`RecvStream::next_event`] may take.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Take {
    /// Any: data, errors, the end.
    Any,
    /// Data only: an error or the end stays queued ([`Event::Later`]).
    Data,
    /// Nothing: only tell whether something is there.
    Nothing,
}

/// The unread part of a buffer [`RecvStream::poll_copy`] took: buffer
/// `bid`, bytes `pos..len`.
#[derive(Clone, Copy, Debug)]
struct Partial {
    bid: u16,
    pos: u32,
    len: u32,
}

/// Messages arriving on a socket, each in a [`RingBuf`], from one
/// multishot `RECV`, re-armed as needed. Dropping the stream cancels the
/// receive; the fd guard is kept until the kernel confirms.
///
/// Two ways to read it: [`next`](Self::next) / [`poll_next`](Self::poll_next)
/// hand out each message as a [`RingBuf`]; [`poll_copy`](Self::poll_copy)
/// copies the bytes of a byte stream out of the buffers (one driver
/// borrow per call, no `RingBuf` per message) and keeps a partly read
/// buffer for the next call. Both may be mixed.
pub struct RecvStream<F: AsRawFd + 'static> {
    ring: BufRing,
    fd: Option<F>,
    key: Option<Key>,
    phase: Phase,
    stream_socket: bool,
    enobufs: u64,
    /// [`stop`](RecvStream::stop) was called: never re-arm; end once the
    /// receive in flight has delivered its last completion.
    stopping: bool,
    /// The buffer [`poll_copy`](Self::poll_copy) is reading, read first.
    partial: Option<Partial>,
}

impl<F: AsRawFd + 'static> fmt::Debug for RecvStream<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvStream")
            .field("ring", &self.ring)
            .field("phase", &self.phase)
            .field("enobufs", &self.enobufs)
            .field("partial", &self.partial)
            .finish()
    }
}

fn busy_error() -> io::Error {
    io::Error::other("the io_uring driver is busy (re-entrant use from inside its poll)")
}

impl<F: AsRawFd + 'static> RecvStream<F> {
    /// The fd guard.
    pub fn get_ref(&self) -> Option<&F> {
        self.fd.as_ref()
    }

    /// The ring the buffers come from.
    pub fn buf_ring(&self) -> &BufRing {
        &self.ring
    }

    /// How often the kernel ran out of buffers (each time the stream waited
    /// for one to come back).
    pub fn enobufs_count(&self) -> u64 {
        self.enobufs
    }

    /// The next message: `Some(Ok(buf))`, `Some(Err(e))` for a socket error
    /// (the stream stays usable), or `None` at end of stream (a stream
    /// socket's peer closed).
    pub async fn next(&mut self) -> Option<io::Result<RingBuf>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Poll form of [`next`](Self::next).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<RingBuf>>> {
        self.poll_next_inner(Some(cx))
    }

    /// The next message if one has already arrived, without registering
    /// for a wake-up: `Pending` means nothing is there yet (a waker stored
    /// by an earlier [`poll_next`](Self::poll_next) stays in place). Arms
    /// the receive if it is not in flight.
    pub fn try_next(&mut self) -> Poll<Option<io::Result<RingBuf>>> {
        self.poll_next_inner(None)
    }

    /// Whether the last receive ended because the ring had no free buffer
    /// and none has come back yet: nothing is in flight and nothing is
    /// queued, so the socket's next bytes are still in the kernel (a
    /// caller may read them another way, e.g. `recv(2)`, without
    /// reordering the stream).
    pub fn is_starved(&self) -> bool {
        self.phase == Phase::Starved && self.partial.is_none()
    }

    /// Whether the stream has ended (end of stream, [`stop`](Self::stop)
    /// done, or the driver shut down) and every received byte was read.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done && self.partial.is_none()
    }

    /// Stops receiving: cancels the receive in flight and never re-arms.
    /// Messages that arrived before the cancellation took effect are still
    /// returned by [`next`](Self::next), which then gives `None`, so a
    /// caller can hand the received bytes over (e.g. to another core)
    /// without losing any.
    pub fn stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        match (self.phase, self.key) {
            (Phase::Armed, Some(key)) => {
                let _ = self
                    .ring
                    .shared
                    .handle
                    .with_state(|st| st.push_cancel(key.user_data(TAG_OP)));
            }
            (Phase::Armed, None) | (Phase::Idle, _) | (Phase::Starved, _) => {
                self.phase = Phase::Done;
            }
            (Phase::Done, _) => {}
        }
    }

    /// Copies received bytes into `out`, which takes what it is offered
    /// and returns how much it took (less than offered: it is full).
    ///
    /// Reading (`peek` false): the bytes of every message already
    /// received, in order, until `out` is full or nothing more is there;
    /// each buffer read to its end goes back to the ring at once, a partly
    /// read one stays with the stream for the next call. Peeking: the
    /// bytes of the first message, none consumed.
    ///
    /// `Ready(Some(Ok(n)))`: `n` bytes copied (0 only if `out` took none
    /// of the bytes offered). An error or the end of the stream that
    /// follows copied bytes is returned by the next call. `Ready(None)`:
    /// end of stream. `Pending`: nothing received yet; with `cx`, its
    /// waker is woken when something arrives (without, a waker stored
    /// earlier stays in place).
    ///
    /// One borrow of the driver per call; no [`RingBuf`] is made.
    pub fn poll_copy(
        &mut self,
        mut cx: Option<&mut Context<'_>>,
        peek: bool,
        out: &mut dyn FnMut(&[u8]) -> usize,
    ) -> Poll<Option<io::Result<usize>>> {
        let shared = Rc::clone(&self.ring.shared);
        let Ok(mut guard) = shared.handle.inner.state.try_borrow_mut() else {
            return Poll::Ready(Some(Err(busy_error())));
        };
        let st = &mut *guard;
        let bgid = usize::from(shared.bgid);
        let mut copied = 0;
        // Nothing is queued behind the buffer being read (completions are
        // only added by the driver's poll, never during this call).
        let mut nothing_behind = false;
        loop {
            if let Some(p) = &mut self.partial {
                // SAFETY: buffer `p.bid` (< entries, checked when taken)
                // lies in the ring's data mapping, which `shared` keeps
                // alive; the kernel wrote `p.len <= buf_size` bytes into
                // it and does not touch it before it is recycled below.
                let bytes = unsafe {
                    std::slice::from_raw_parts(
                        shared.buf_ptr(p.bid).add(p.pos as usize),
                        (p.len - p.pos) as usize,
                    )
                };
                let k = out(bytes).min(bytes.len());
                copied += k;
                if peek || k < bytes.len() {
                    if !peek {
                        p.pos += k as u32;
                    }
                    return Poll::Ready(Some(Ok(copied)));
                }
                let bid = p.bid;
                self.partial = None;
                if let Some(r) = st.buf_rings.get_mut(bgid) {
                    r.recycle(bid, &mut st.wakes);
                }
                if nothing_behind {
                    return Poll::Ready(Some(Ok(copied)));
                }
            }
            // After bytes were copied: only more data, and no waker (the
            // call returns them whatever comes next).
            let (take, waker) = if copied > 0 {
                (Take::Data, None)
            } else {
                (Take::Any, cx.as_deref_mut())
            };
            match self.next_event(st, waker, take) {
                Event::Data { bid, len, more } => {
                    self.partial = Some(Partial { bid, pos: 0, len });
                    nothing_behind = !more;
                }
                Event::EmptyDatagram => {}
                Event::Later | Event::Pending if copied > 0 => {
                    return Poll::Ready(Some(Ok(copied)));
                }
                Event::Later | Event::Pending => return Poll::Pending,
                Event::End if copied > 0 => return Poll::Ready(Some(Ok(copied))),
                Event::End => return Poll::Ready(None),
                Event::Error(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }

    /// Whether [`poll_copy`](Self::poll_copy) (or [`poll_next`](Self::poll_next))
    /// would not return `Pending`: bytes, an error or the end of the stream
    /// are there. Consumes nothing; `Pending` registers `cx`'s waker.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.partial.is_some() {
            return Poll::Ready(());
        }
        let shared = Rc::clone(&self.ring.shared);
        let Ok(mut guard) = shared.handle.inner.state.try_borrow_mut() else {
            // The next read reports the error.
            return Poll::Ready(());
        };
        match self.next_event(&mut guard, Some(cx), Take::Nothing) {
            Event::Pending => Poll::Pending,
            _ => Poll::Ready(()),
        }
    }

    /// Submits the multishot receive.
    fn arm(&mut self, st: &mut State) -> io::Result<()> {
        let Some(fd) = self.fd.as_ref().map(|f| f.as_raw_fd()) else {
            return Err(io::Error::other("receive stream already closed"));
        };
        let bgid = self.ring.shared.bgid;
        let key = st.insert_slot(SlotKind::Multi, Some(bgid))?;
        let entry = opcode::RecvMulti::new(types::Fd(fd), bgid)
            .build()
            .user_data(key.user_data(TAG_OP));
        // SAFETY: a multishot RECV points at no memory of ours except the
        // buffer group, which stays registered while this stream (or its
        // orphaned slot) holds the ring.
        if let Err(e) = unsafe { st.push(&entry) } {
            st.remove_slot(key);
            return Err(e);
        }
        self.key = Some(key);
        Ok(())
    }

    /// The one state machine of the stream, under the caller's borrow of
    /// the driver: arms, waits for a buffer after `ENOBUFS`, and takes the
    /// next completion as `take` allows (`ENOBUFS` completions are always
    /// taken: they are not the caller's).
    #[inline(always)]
    fn next_event(
        &mut self,
        st: &mut State,
        mut cx: Option<&mut Context<'_>>,
        take: Take,
    ) -> Event {
        let bgid = self.ring.shared.bgid;
        loop {
            match self.phase {
                Phase::Done => return Event::End,
                Phase::Idle | Phase::Starved if self.stopping => self.phase = Phase::Done,
                Phase::Idle => match self.arm(st) {
                    Ok(()) => self.phase = Phase::Armed,
                    // Left to a call that takes errors.
                    Err(_) if take != Take::Any => return Event::Later,
                    Err(e) => {
                        self.phase = Phase::Done;
                        return Event::Error(e);
                    }
                },
                Phase::Starved => match st.buf_rings.get_mut(usize::from(bgid)) {
                    Some(r) if r.available() == 0 => {
                        if let Some(cx) = cx.as_deref_mut() {
                            r.starved.push(cx.waker().clone());
                        }
                        return Event::Pending;
                    }
                    _ => self.phase = Phase::Idle,
                },
                Phase::Armed => {
                    let Some(key) = self.key else {
                        self.phase = Phase::Idle;
                        continue;
                    };
                    let closed = st.closed;
                    let Some(slot) = st.slot_mut(key) else {
                        self.key = None;
                        self.phase = Phase::Idle;
                        continue;
                    };
                    let Some(&(res, flags)) = slot.queue.front() else {
                        if slot.finished {
                            st.remove_slot(key);
                            self.key = None;
                            self.phase = Phase::Idle;
                            continue;
                        }
                        if closed {
                            if take != Take::Any {
                                return Event::Later;
                            }
                            self.phase = Phase::Done;
                            return Event::Error(closed_error());
                        }
                        if let Some(cx) = cx.as_deref_mut() {
                            match &mut slot.waker {
                                Some(w) if w.will_wake(cx.waker()) => {}
                                w => *w = Some(cx.waker().clone()),
                            }
                        }
                        return Event::Pending;
                    };
                    let data = res > 0 || (res == 0 && !self.stream_socket);
                    if res != -libc::ENOBUFS
                        && (take == Take::Nothing || (take == Take::Data && !data))
                    {
                        return Event::Later;
                    }
                    slot.queue.pop_front();
                    let more = !slot.queue.is_empty();
                    if slot.finished && !more {
                        st.remove_slot(key);
                        self.key = None;
                        self.phase = Phase::Idle;
                    }
                    let bid = cqueue::buffer_select(flags);
                    let valid = bid.filter(|&b| b < self.ring.shared.entries);
                    if bid.is_some() && valid.is_none() {
                        tracing::error!(?bid, "kernel completion names an invalid provided buffer");
                    }
                    if res > 0 {
                        if let Some(bid) = valid {
                            let len = (res as u32).min(self.ring.shared.buf_size);
                            return Event::Data { bid, len, more };
                        }
                        continue;
                    }
                    // No bytes: give back a buffer the completion may name.
                    if let (Some(bid), Some(r)) = (valid, st.buf_rings.get_mut(usize::from(bgid))) {
                        r.recycle(bid, &mut st.wakes);
                    }
                    if res == -libc::ENOBUFS {
                        self.enobufs += 1;
                        if self.key.is_none() {
                            self.phase = Phase::Starved;
                        }
                        continue;
                    }
                    if res < 0 {
                        if res == -libc::ECANCELED && self.stopping {
                            // The end `stop` asked for, not an error.
                            self.phase = Phase::Done;
                            continue;
                        }
                        if res == -libc::ECANCELED && closed {
                            self.phase = Phase::Done;
                        }
                        return Event::Error(io::Error::from_raw_os_error(-res));
                    }
                    if self.stream_socket {
                        self.phase = Phase::Done;
                        return Event::End;
                    }
                    // A zero-length datagram: the kernel used no buffer
                    // (and ended the multishot receive).
                    return Event::EmptyDatagram;
                }
            }
        }
    }

    fn poll_next_inner(
        &mut self,
        cx: Option<&mut Context<'_>>,
    ) -> Poll<Option<io::Result<RingBuf>>> {
        if let Some(p) = self.partial.take() {
            return Poll::Ready(Some(Ok(RingBuf {
                ring: self.ring.shared.clone(),
                bid: Some(p.bid),
                start: p.pos as usize,
                len: (p.len - p.pos) as usize,
            })));
        }
        let event = {
            let shared = Rc::clone(&self.ring.shared);
            let Ok(mut guard) = shared.handle.inner.state.try_borrow_mut() else {
                return Poll::Ready(Some(Err(busy_error())));
            };
            self.next_event(&mut guard, cx, Take::Any)
        };
        match event {
            Event::Data { bid, len, .. } => Poll::Ready(Some(Ok(RingBuf {
                ring: self.ring.shared.clone(),
                bid: Some(bid),
                start: 0,
                len: len as usize,
            }))),
            Event::EmptyDatagram => Poll::Ready(Some(Ok(self.ring.empty_buf()))),
            Event::End => Poll::Ready(None),
            Event::Error(e) => Poll::Ready(Some(Err(e))),
            Event::Later | Event::Pending => Poll::Pending,
        }
    }
}

impl<F: AsRawFd + 'static> Drop for RecvStream<F> {
    fn drop(&mut self) {
        let partial = self.partial.take();
        let key = self.key.take();
        if partial.is_none() && key.is_none() {
            return;
        }
        let fd = self.fd.take();
        let ring = self.ring.clone();
        let bgid = usize::from(ring.shared.bgid);
        let handle = ring.shared.handle.clone();
        let Ok(mut guard) = handle.inner.state.try_borrow_mut() else {
            tracing::error!(
                "receive stream dropped while the driver is borrowed; leaking its resources"
            );
            std::mem::forget(fd);
            std::mem::forget(ring);
            return;
        };
        let st = &mut *guard;
        if let (Some(p), Some(r)) = (partial, st.buf_rings.get_mut(bgid)) {
            r.recycle(p.bid, &mut st.wakes);
        }
        let Some(key) = key else { return };
        let closed = st.closed;
        let Some(slot) = st.slot_mut(key) else { return };
        let queued: Vec<(i32, u32)> = slot.queue.drain(..).collect();
        if slot.finished {
            st.remove_slot(key);
        } else if closed {
            // Shutdown could not reap it: never free what the kernel may use.
            std::mem::forget(fd);
            std::mem::forget(ring);
            return;
        } else {
            slot.orphaned = true;
            slot.waker = None;
            slot.orphan = Some(Box::new((fd, ring)));
            st.push_cancel(key.user_data(TAG_OP));
            // Submit the cancel now, not at the next turn of the loop: the
            // receive holds the socket's file (no FIN while it is armed),
            // and bytes arriving after this drop must stay in the socket
            // for whoever reads it next (`into_std`).
            if let Err(e) = st.submit_if_needed() {
                tracing::warn!(error = %e, "io_uring: submitting a receive cancel failed");
            }
        }
        for (_, flags) in queued {
            if let Some(bid) = cqueue::buffer_select(flags) {
                if let Some(r) = st.buf_rings.get_mut(bgid) {
                    r.recycle(bid, &mut st.wakes);
                }
            }
        }
        drop(guard);
    }
}
