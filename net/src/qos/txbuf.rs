//! [`TxBuf`]: a buffer lent by a transport, written in place by the
//! application and consumed by `send`; and the buffer pools behind
//! [`TxBuf`] and [`RxBuf`](super::RxBuf).
//!
//! A `TxBuf` behaves like a `Vec<u8>` whose storage belongs to the
//! transport: it starts empty, its [`capacity`](TxBuf::capacity) is the
//! path's payload limit, and `extend_from_slice`, `resize`, `push`,
//! [`bytes::BufMut`] and [`std::io::Write`] append in place, never past
//! the capacity. `Deref`/`DerefMut` cover the bytes written; sending
//! transmits exactly [`len`](TxBuf::len) bytes.
//!
//! In front of the payload a transport reserves [`headroom`](TxBuf::headroom)
//! bytes for its headers, written in place when the buffer is sent: the
//! 4-byte length prefix of reliable messages over TCP, Ethernet/IPv4/UDP
//! headers for the kernel-bypass drivers (0 for kernel UDP).
//!
//! # Pools
//!
//! Buffers come from the endpoint's pools, created on the core that bound
//! the endpoint, and return to them when dropped — from any thread: a
//! buffer knows its pool, and the pool is thread-safe. A pool lends a
//! bounded number of buffers; when all are out, [`Endpoint::buffer`]
//! waits for one to come back and [`Endpoint::try_buffer`] returns `None`
//! (backpressure, never loss).
//!
//! For kernel transports the storage is heap memory (the kernel copies it
//! into socket buffers, or reads it in place with `SEND_ZC`); the storage
//! of a reliable endpoint's buffer grows on demand up to the capacity, so
//! a 16 MiB message limit does not cost 16 MiB per buffer.
//!
//! [`Endpoint::buffer`]: super::Endpoint::buffer
//! [`Endpoint::try_buffer`]: super::Endpoint::try_buffer

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use insane_buf::IoBuf;

use crate::qos::core_frame::CoreFrame;

// ---- pools ------------------------------------------------------------------

/// A bounded, thread-safe pool of heap buffers: at most `entries` are lent
/// at a time; returned ones are kept for reuse.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    entries: usize,
    /// Capacity a new buffer is allocated with.
    initial: usize,
    /// Buffers that grew past this are freed on return instead of kept.
    retain: usize,
    state: Mutex<PoolState>,
}

struct PoolState {
    free: Vec<Vec<u8>>,
    out: usize,
    waiters: Vec<Waker>,
}

impl Pool {
    /// A pool lending at most `entries` buffers, allocated with `initial`
    /// bytes of capacity, kept on return while at most `retain` bytes.
    pub(crate) fn new(entries: usize, initial: usize, retain: usize) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                entries: entries.max(1),
                initial,
                retain: retain.max(initial),
                state: Mutex::new(PoolState {
                    free: Vec::new(),
                    out: 0,
                    waiters: Vec::new(),
                }),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding this lock cannot leave the counts
        // inconsistent (each update is one statement): ignore poisoning.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Buffers that can be lent right now.
    pub(crate) fn available(&self) -> usize {
        self.inner.entries.saturating_sub(self.state().out)
    }

    /// An empty buffer, or `None` when all are lent.
    pub(crate) fn try_take(&self) -> Option<Vec<u8>> {
        let mut st = self.state();
        if st.out >= self.inner.entries {
            return None;
        }
        st.out += 1;
        let reuse = st.free.pop();
        drop(st);
        Some(reuse.unwrap_or_else(|| Vec::with_capacity(self.inner.initial)))
    }

    /// An empty buffer; when all are lent, `cx` is woken when one returns.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Vec<u8>> {
        if let Some(buf) = self.try_take() {
            return Poll::Ready(buf);
        }
        {
            let mut st = self.state();
            if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                st.waiters.push(cx.waker().clone());
            }
        }
        // A buffer may have come back between the two locks.
        match self.try_take() {
            Some(buf) => Poll::Ready(buf),
            None => Poll::Pending,
        }
    }

    /// A [`TxBuf`] lent from this pool: `headroom` bytes before the
    /// payload, at most `max` bytes of payload; `None` when all are lent.
    pub(crate) fn try_lend(&self, headroom: usize, max: usize) -> Option<TxBuf> {
        self.try_take()
            .map(|d| TxBuf::from_pool(d, headroom, max, self.clone()))
    }

    /// As [`try_lend`](Self::try_lend); when all are lent, `cx` is woken
    /// when one returns.
    pub(crate) fn poll_lend(
        &self,
        cx: &mut Context<'_>,
        headroom: usize,
        max: usize,
    ) -> Poll<TxBuf> {
        self.poll_take(cx)
            .map(|d| TxBuf::from_pool(d, headroom, max, self.clone()))
    }

    /// Takes a lent buffer back and wakes whoever waits for one.
    pub(crate) fn give_back(&self, mut buf: Vec<u8>) {
        buf.clear();
        let waiters = {
            let mut st = self.state();
            st.out = st.out.saturating_sub(1);
            if buf.capacity() <= self.inner.retain && buf.capacity() > 0 {
                st.free.push(buf);
            }
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("entries", &self.inner.entries)
            .field("available", &self.available())
            .finish()
    }
}

// ---- errors -----------------------------------------------------------------

/// Writing would take a [`TxBuf`] past its capacity (the path's payload
/// limit). Converts into an `io::Error` of kind `InvalidInput`.
///
/// ```
/// # use insane_net::qos::CapacityError;
/// let e = CapacityError { needed: 70_000, capacity: 65_507 };
/// assert_eq!(
///     e.to_string(),
///     "a message of 70000 bytes exceeds this path's payload limit of 65507 bytes"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityError {
    /// The length the write would have produced.
    pub needed: usize,
    /// The buffer's capacity.
    pub capacity: usize,
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a message of {} bytes exceeds this path's payload limit of {} bytes",
            self.needed, self.capacity
        )
    }
}

impl std::error::Error for CapacityError {}

impl From<CapacityError> for io::Error {
    fn from(e: CapacityError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

// ---- TxBuf ------------------------------------------------------------------

/// A send buffer lent by an endpoint: a `Vec<u8>`-like buffer in the
/// transport's memory, with room for headers in front.
///
/// ```no_run
/// use std::io::Write;
/// use bytes::BufMut;
/// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
/// let mut buf = ep.buffer().await;
/// assert!(buf.is_empty());
/// buf.extend_from_slice(b"hello")?;
/// write!(buf, " {}", 42)?;
/// buf.put_u8(b'!');
/// assert_eq!(&buf[..], b"hello 42!");
/// ep.send(buf).await?; // exactly 9 bytes
/// # Ok(())
/// # }
/// ```
pub struct TxBuf {
    /// `headroom` reserved bytes, then the payload (empty for a device
    /// buffer).
    data: Vec<u8>,
    headroom: usize,
    capacity: usize,
    pool: Option<Pool>,
    /// The payload lives in a driver frame instead.
    device: Option<DeviceTx>,
}

/// The storage of a [`TxBuf`] lent by a kernel-bypass transport: a driver
/// transmit frame (UMEM frame, mbuf) whose data region already spans the
/// whole payload capacity after the header room; the application's bytes
/// are written there in place, and the transport trims the frame to
/// [`TxBuf::len`] and prepends the headers when it sends.
pub(crate) struct DeviceTx {
    /// The driver frame, `!Send`, dropped at home.
    pub(crate) frame: CoreFrame,
    /// Start of the payload in driver memory.
    ptr: *mut u8,
    /// Payload bytes written.
    len: usize,
    /// Header room in front of the payload inside the frame.
    headroom: usize,
    /// The stack host (device) the frame belongs to.
    pub(crate) owner: u64,
    /// Returns the buffer to its endpoint's lending count when dropped.
    _ticket: Option<Ticket>,
}

// SAFETY: `ptr` points into driver memory owned by the frame in `frame`,
// which stays mapped while the frame is alive and is accessed only
// through this `DeviceTx` (exclusively via `&mut TxBuf`); the frame
// itself is `CoreFrame`, which is `Send`.
unsafe impl Send for DeviceTx {}
// SAFETY: shared access only reads the bytes (`&TxBuf`).
unsafe impl Sync for DeviceTx {}

impl DeviceTx {
    /// A device buffer: `frame` (boxed at home), whose payload area of at
    /// least the buffer's capacity starts at `ptr`, `headroom` bytes after
    /// the frame's start, from the host `owner`.
    ///
    /// # Safety
    /// `ptr` must point to at least `capacity` writable bytes (the
    /// capacity of the `TxBuf` made from it) inside the frame boxed in
    /// `frame`, valid while that frame lives and not otherwise accessed
    /// until the frame is taken back at home.
    pub(crate) unsafe fn new(
        frame: CoreFrame,
        ptr: *mut u8,
        headroom: usize,
        owner: u64,
        ticket: Option<Ticket>,
    ) -> Self {
        DeviceTx {
            frame,
            ptr,
            len: 0,
            headroom,
            owner,
            _ticket: ticket,
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` lies inside the frame's payload area
        // (`len <= capacity`, see `new`), initialised by earlier writes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// One buffer lent by an endpoint: decrements the lent count when
/// dropped.
pub(crate) struct Ticket(Arc<std::sync::atomic::AtomicUsize>);

impl Ticket {
    /// Counts one more buffer lent on `count`.
    pub(crate) fn new(count: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ticket(count.clone())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl TxBuf {
    /// A buffer from `pool` (its storage `data`, empty), with `headroom`
    /// header bytes and a payload capacity of `capacity`.
    pub(crate) fn from_pool(
        mut data: Vec<u8>,
        headroom: usize,
        capacity: usize,
        pool: Pool,
    ) -> Self {
        data.clear();
        data.resize(headroom, 0);
        Self {
            data,
            headroom,
            capacity,
            pool: Some(pool),
            device: None,
        }
    }

    /// A buffer whose payload (at most `capacity` bytes) is written
    /// straight into a driver frame.
    pub(crate) fn from_device(device: DeviceTx, capacity: usize) -> Self {
        Self {
            data: Vec::new(),
            headroom: 0,
            capacity,
            pool: None,
            device: Some(device),
        }
    }

    /// The driver frame and the payload length, for the transport that
    /// lent it; kernel buffers come back unchanged.
    pub(crate) fn into_device(mut self) -> Result<(DeviceTx, usize), TxBuf> {
        match self.device.take() {
            Some(d) => {
                let len = d.len;
                Ok((d, len))
            }
            None => Err(self),
        }
    }

    /// Which stack host's device frame holds the payload, if any.
    pub(crate) fn device_owner(&self) -> Option<u64> {
        self.device.as_ref().map(|d| d.owner)
    }

    /// Header room the kernel transports may write into (in `frame_mut`);
    /// 0 for a device buffer, whose header room is in the driver frame.
    pub(crate) fn wire_headroom(&self) -> usize {
        self.headroom
    }

    /// A buffer outside any pool, `capacity` bytes of payload after
    /// `headroom` header bytes: for drivers' tests and tools. Endpoints
    /// lend pooled buffers ([`Endpoint::buffer`](super::Endpoint::buffer)).
    ///
    /// ```
    /// let buf = insane_net::qos::TxBuf::unpooled(0, 1472);
    /// assert_eq!((buf.len(), buf.capacity()), (0, 1472));
    /// ```
    pub fn unpooled(headroom: usize, capacity: usize) -> Self {
        Self {
            data: vec![0; headroom],
            headroom,
            capacity,
            pool: None,
            device: None,
        }
    }

    /// Payload bytes written so far (what `send` transmits).
    ///
    /// ```
    /// let mut buf = insane_net::qos::TxBuf::unpooled(0, 16);
    /// buf.extend_from_slice(b"abc").unwrap();
    /// assert_eq!(buf.len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        match &self.device {
            Some(d) => d.len,
            None => self.data.len() - self.headroom,
        }
    }

    /// Whether no payload was written.
    ///
    /// ```
    /// assert!(insane_net::qos::TxBuf::unpooled(0, 16).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most payload this buffer holds: the path's payload limit
    /// (65507 bytes for UDP over IPv4, the configured maximum message for
    /// reliable endpoints).
    ///
    /// ```
    /// assert_eq!(insane_net::qos::TxBuf::unpooled(4, 100).capacity(), 100);
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes that can still be appended.
    ///
    /// ```
    /// let mut buf = insane_net::qos::TxBuf::unpooled(0, 10);
    /// buf.extend_from_slice(b"abcd").unwrap();
    /// assert_eq!(buf.remaining(), 6);
    /// ```
    pub fn remaining(&self) -> usize {
        self.capacity - self.len()
    }

    /// Bytes reserved in front of the payload for the transport's headers
    /// (in the driver frame, for the kernel-bypass transports).
    ///
    /// ```
    /// assert_eq!(insane_net::qos::TxBuf::unpooled(42, 1472).headroom(), 42);
    /// ```
    pub fn headroom(&self) -> usize {
        match &self.device {
            Some(d) => d.headroom,
            None => self.headroom,
        }
    }

    fn check(&self, new_len: usize) -> Result<(), CapacityError> {
        if new_len > self.capacity {
            Err(CapacityError {
                needed: new_len,
                capacity: self.capacity,
            })
        } else {
            Ok(())
        }
    }

    /// Appends `bytes`, or fails without writing anything if they do not
    /// fit.
    ///
    /// ```
    /// let mut buf = insane_net::qos::TxBuf::unpooled(0, 4);
    /// buf.extend_from_slice(b"abc").unwrap();
    /// assert!(buf.extend_from_slice(b"de").is_err());
    /// assert_eq!(&buf[..], b"abc");
    /// ```
    ///
    /// # Errors
    /// [`CapacityError`] when `len() + bytes.len() > capacity()`.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<(), CapacityError> {
        self.check(self.len() + bytes.len())?;
        match &mut self.device {
            Some(d) => {
                let old = d.len;
                d.len += bytes.len();
                d.bytes_mut()[old..].copy_from_slice(bytes);
            }
            None => self.data.extend_from_slice(bytes),
        }
        Ok(())
    }

    /// Appends one byte.
    ///
    /// ```
    /// let mut buf = insane_net::qos::TxBuf::unpooled(0, 1);
    /// buf.push(7).unwrap();
    /// assert!(buf.push(8).is_err());
    /// ```
    ///
    /// # Errors
    /// [`CapacityError`] when the buffer is full.
    pub fn push(&mut self, byte: u8) -> Result<(), CapacityError> {
        self.extend_from_slice(&[byte])
    }

    /// Sets the payload length to `new_len`, filling new bytes with
    /// `value` (like `Vec::resize`).
    ///
    /// ```
    /// let mut buf = insane_net::qos::TxBuf::unpooled(0, 8);
    /// buf.resize(3, 0xaa).unwrap();
    /// assert_eq!(&buf[..], &[0xaa; 3]);
    /// assert!(buf.resize(9, 0).is_err());
    /// ```
    ///
    /// # Errors
    /// [`CapacityError`] when `new_len > capacity()`.
    pub fn resize(&mut self, new_len: usize, value: u8) -> Result<(), CapacityError> {
        self.check(new_len)?;
        match &mut self.device {
            Some(d) => {
                let old = d.len;
                d.len = new_len;
                if new_len > old {
                    d.bytes_mut()[old..].fill(value);
                }
            }
            None => self.data.resize(self.headroom + new_len, value),
        }
        Ok(())
    }

    /// Shortens the payload to `len` bytes (no effect if already shorter).
    ///
    /// ```
    /// let mut buf = insane_net::qos::TxBuf::unpooled(0, 8);
    /// buf.extend_from_slice(b"abcdef").unwrap();
    /// buf.truncate(2);
    /// assert_eq!(&buf[..], b"ab");
    /// ```
    pub fn truncate(&mut self, len: usize) {
        match &mut self.device {
            Some(d) => d.len = d.len.min(len),
            None => self.data.truncate(self.headroom + len),
        }
    }

    /// Removes all payload bytes (the capacity stays).
    ///
    /// ```
    /// let mut buf = insane_net::qos::TxBuf::unpooled(0, 8);
    /// buf.extend_from_slice(b"abc").unwrap();
    /// buf.clear();
    /// assert!(buf.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// The header room followed by the payload, for the transport to
    /// write its headers in place.
    pub(crate) fn frame_mut(&mut self) -> &mut [u8] {
        match &mut self.device {
            // No header room is exposed (`wire_headroom` is 0).
            Some(d) => d.bytes_mut(),
            None => &mut self.data,
        }
    }

    /// The storage (headroom, then payload), the headroom, and the pool
    /// it returns to: for turning a sent buffer into received messages
    /// without a copy (channels deliver it to local sources by reference).
    pub(crate) fn into_parts(mut self) -> (Vec<u8>, usize, Option<Pool>) {
        if let Some(d) = self.device.take() {
            // A driver frame cannot be shared by reference with other
            // cores' sources: the payload is copied (counted).
            super::rxbuf::count_copy(d.len);
            return (d.bytes().to_vec(), 0, None);
        }
        let data = std::mem::take(&mut self.data);
        (data, self.headroom, self.pool.take())
    }

    /// The whole frame (headroom and payload) as a buffer the kernel can
    /// send.
    pub(crate) fn into_wire(self) -> Wire {
        Wire(self)
    }

    /// Ensures the storage holds at least `additional` more payload bytes
    /// without moving again (bounded by the capacity).
    fn reserve(&mut self, additional: usize) {
        if self.device.is_some() {
            return; // driver frames have their whole capacity already
        }
        let additional = additional.min(self.remaining());
        self.data.reserve(additional);
    }
}

impl Drop for TxBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.data));
        }
    }
}

impl Deref for TxBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.device {
            Some(d) => d.bytes(),
            None => &self.data[self.headroom..],
        }
    }
}

impl DerefMut for TxBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.device {
            Some(d) => d.bytes_mut(),
            None => &mut self.data[self.headroom..],
        }
    }
}

impl AsRef<[u8]> for TxBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for TxBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl fmt::Debug for TxBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxBuf")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .field("headroom", &self.headroom)
            .finish()
    }
}

/// Appends in place; a write that does not fit is short (`Ok(0)` when
/// full, so `write_all` fails with `WriteZero`), never past the capacity.
///
/// ```
/// use std::io::Write;
/// let mut buf = insane_net::qos::TxBuf::unpooled(0, 4);
/// assert_eq!(buf.write(b"abcdef").unwrap(), 4);
/// assert_eq!(buf.write_all(b"x").unwrap_err().kind(), std::io::ErrorKind::WriteZero);
/// ```
impl io::Write for TxBuf {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = bytes.len().min(self.remaining());
        self.extend_from_slice(&bytes[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends in place. `remaining_mut()` is the room left below the
/// capacity; as `bytes`' contract says, putting more than
/// `remaining_mut()` bytes is the caller's bug and panics (like a
/// `&mut [u8]` as `BufMut`), it never writes past the capacity.
///
/// ```
/// use bytes::BufMut;
/// let mut buf = insane_net::qos::TxBuf::unpooled(0, 6);
/// buf.put_u16(0xabcd);
/// buf.put_slice(b"xyz");
/// assert_eq!(buf.remaining_mut(), 1);
/// assert_eq!(&buf[..], b"\xab\xcdxyz");
/// ```
// SAFETY: `chunk_mut` returns spare storage of the Vec (between its
// length and capacity) bounded by the room left below `capacity`;
// `advance_mut` only grows the length over bytes the caller initialised
// in that chunk, as the trait requires.
unsafe impl bytes::BufMut for TxBuf {
    fn remaining_mut(&self) -> usize {
        self.remaining()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        let room = self.remaining();
        if let Some(d) = &mut self.device {
            assert!(
                cnt <= room,
                "advance_mut({cnt}) past the {room} writable bytes of this TxBuf"
            );
            d.len += cnt;
            return;
        }
        let spare = self.data.capacity() - self.data.len();
        assert!(
            cnt <= spare.min(self.remaining()),
            "advance_mut({cnt}) past the {} writable bytes of this TxBuf",
            spare.min(self.remaining())
        );
        // SAFETY: the caller initialised `cnt` bytes of the chunk given by
        // `chunk_mut`, which lies within the Vec's capacity (checked).
        unsafe { self.data.set_len(self.data.len() + cnt) };
    }

    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        let room = self.remaining();
        if let Some(d) = &mut self.device {
            // SAFETY: the payload area spans `capacity` bytes from `ptr`
            // (see `DeviceTx::new`); `len + room == capacity`.
            return unsafe { bytes::buf::UninitSlice::from_raw_parts_mut(d.ptr.add(d.len), room) };
        }
        if self.data.capacity() == self.data.len() {
            self.reserve(64);
        }
        let room = self.remaining();
        let spare: &mut [MaybeUninit<u8>] = self.data.spare_capacity_mut();
        let n = spare.len().min(room);
        bytes::buf::UninitSlice::uninit(&mut spare[..n])
    }
}

/// A [`TxBuf`]'s whole frame — header room and payload — as an
/// [`IoBuf`] for the kernel; gives the `TxBuf` back after the send.
pub(crate) struct Wire(TxBuf);

// SAFETY: the bytes are the heap storage of the inner Vec, which does not
// move when the `Wire` moves and is not resized while the `Wire` exists
// (no `&mut` access is given out); all `len()` bytes are initialised.
// For a device buffer, the bytes are the payload in driver memory, which
// stays mapped and unmoved while the frame (owned by the `Wire`) lives.
unsafe impl IoBuf for Wire {
    fn stable_ptr(&self) -> *const u8 {
        match &self.0.device {
            Some(d) => d.ptr,
            None => self.0.data.as_ptr(),
        }
    }

    fn bytes_init(&self) -> usize {
        self.bytes_total()
    }

    fn bytes_total(&self) -> usize {
        match &self.0.device {
            Some(d) => d.len,
            None => self.0.data.len(),
        }
    }
}

impl Deref for Wire {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0.device {
            Some(d) => d.bytes(),
            None => &self.0.data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_lends_a_bounded_number_and_reuses() {
        let pool = Pool::new(2, 16, 64);
        let a = pool.try_take().unwrap();
        let b = pool.try_take().unwrap();
        assert!(pool.try_take().is_none());
        assert_eq!(pool.available(), 0);
        let ptr = a.as_ptr();
        pool.give_back(a);
        assert_eq!(pool.available(), 1);
        let again = pool.try_take().unwrap();
        assert_eq!(again.as_ptr(), ptr);
        drop((again, b));
    }

    #[test]
    fn pool_wakes_waiters_on_return() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let pool = Pool::new(1, 8, 8);
        let held = pool.try_take().unwrap();
        assert!(
            pool.poll_take(&mut Context::from_waker(&waker))
                .is_pending()
        );
        pool.give_back(held);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(pool.poll_take(&mut Context::from_waker(&waker)).is_ready());
    }

    #[test]
    fn txbuf_keeps_headroom_out_of_the_payload() {
        let pool = Pool::new(1, 8, 64);
        let mut buf = TxBuf::from_pool(pool.try_take().unwrap(), 4, 10, pool.clone());
        buf.extend_from_slice(b"abc").unwrap();
        assert_eq!(&buf[..], b"abc");
        buf.frame_mut()[..4].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(&buf.into_wire()[..], b"\0\0\0\x03abc");
        assert_eq!(pool.available(), 1);
    }

    #[test]
    fn bufmut_grows_storage_up_to_capacity_only() {
        use bytes::BufMut;
        let mut buf = TxBuf::unpooled(0, 100);
        buf.put_bytes(7, 100);
        assert_eq!(buf.len(), 100);
        assert_eq!(buf.remaining_mut(), 0);
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| buf.put_u8(1))).is_err());
    }
}
