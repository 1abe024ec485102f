//! [`RxBuf`]: a received message in a buffer of the endpoint's receive
//! pool, returned to that pool when dropped — on any core.
//!
//! # Why kernel transports receive into heap buffers
//!
//! The kernel transports receive straight into the `RxBuf`'s storage: a
//! best-effort endpoint passes the buffer to `recvfrom(2)` (or an io_uring
//! `RECVMSG` on the buffer), a reliable one reads each message's payload
//! into a buffer of exactly its length. The kernel's copy from its socket
//! buffer into this memory is the only one; nothing is copied in
//! userspace between the kernel's completion and the application
//! ([`debug_copy_count`] proves it in tests).
//!
//! io_uring provided-buffer rings are not used for `RxBuf`s, on purpose:
//! a multishot receive into a ring does not report a datagram's sender
//! (which `RxBuf::peer` needs), a ring slot must be recycled on the core
//! that owns the ring (an `RxBuf` is `Send` and may be dropped anywhere,
//! also after that core shut down), and a reliable message larger than a
//! ring slot would have to be copied together from several slots. Heap
//! buffers from a thread-safe pool avoid all three without adding a copy.
//! The kernel-bypass transports (the userspace stack over AF_XDP, DPDK)
//! back an `RxBuf` with the received driver frame itself (a UMEM frame,
//! an mbuf), the payload being a window of it: no copy either. Such a
//! frame belongs to its core; dropped on another thread it is routed back
//! there (see `core_frame.rs`).

use std::fmt;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use insane_buf::{IoBuf, IoBufMut};

use insane_reliable::Message;

use super::txbuf::{Pool, Ticket};
use crate::qos::core_frame::CoreFrame;

#[cfg(debug_assertions)]
static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Payload copies made in userspace by the receive paths of QoS
/// endpoints since the process started (debug builds; always 0 in release
/// builds, which do not count). The kernel transports receive in place,
/// so this stays 0: a test asserts it.
///
/// ```
/// assert_eq!(insane_net::qos::debug_copy_count(), 0);
/// ```
pub fn debug_copy_count() -> u64 {
    #[cfg(debug_assertions)]
    {
        COPIES.load(std::sync::atomic::Ordering::Relaxed)
    }
    #[cfg(not(debug_assertions))]
    {
        0
    }
}

/// Records that a receive path copied `bytes` bytes of payload (debug
/// builds only). A transport that must copy (e.g. reassembling a message
/// from several driver buffers) calls this, so tests see it.
#[allow(dead_code)]
pub(crate) fn count_copy(bytes: usize) {
    #[cfg(debug_assertions)]
    if bytes > 0 {
        COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    #[cfg(not(debug_assertions))]
    let _ = bytes;
}

/// A received message: derefs to its payload, says who sent it
/// ([`peer`](Self::peer)), and returns its storage to the endpoint's
/// receive pool when dropped.
///
/// `Send`: it can move to another task, on another core, and be dropped
/// there; the storage still goes back to the pool it came from (the pool
/// is shared, thread-safe), waking a receive that waits for a buffer.
///
/// ```no_run
/// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
/// let msg = ep.recv().await?;
/// println!("{} bytes from {}", msg.len(), msg.peer());
/// insane_runtime::task::spawn_on(1, async move {
///     let sum: u64 = msg.iter().map(|&b| u64::from(b)).sum();
///     println!("checksum {sum}");
///     // `msg` returns to its pool here, on core 1.
/// });
/// # Ok(())
/// # }
/// ```
pub struct RxBuf {
    store: Store,
    /// Where the payload starts in the storage (after headers, for drivers
    /// that receive whole frames).
    start: usize,
    /// Where it ends (exclusive).
    end: usize,
    peer: SocketAddr,
}

/// An `RxBuf`'s storage: its own pooled buffer, or one shared by
/// reference with other `RxBuf`s ([`RxBuf::share`]).
enum Store {
    Owned {
        data: Vec<u8>,
        pool: Option<Pool>,
    },
    Device(DeviceRx),
    Shared(Arc<Shared>),
    /// A reliable message as the datagrams it arrived in (device frames
    /// on kernel bypass): `start` is always 0, reads advance the message.
    Message {
        msg: Message,
        pool: Option<Pool>,
    },
}

/// Storage shared by several `RxBuf`s; returns to its pool when the last
/// one drops.
struct Shared {
    data: Vec<u8>,
    pool: Option<Pool>,
    device: Option<DeviceRx>,
    message: Option<Message>,
}

impl Shared {
    fn bytes(&self) -> &[u8] {
        match (&self.device, &self.message) {
            (Some(d), _) => d.bytes(),
            (None, Some(m)) => contiguous(m),
            (None, None) => &self.data,
        }
    }
}

/// A message's contiguous view, counting the copy when this makes it.
fn contiguous(msg: &Message) -> &[u8] {
    if !msg.is_contiguous() {
        count_copy(msg.len());
    }
    msg
}

/// A received driver frame (UMEM frame, mbuf) as an `RxBuf`'s storage.
pub(crate) struct DeviceRx {
    /// The frame, `!Send`, dropped at home.
    _frame: CoreFrame,
    /// The frame's bytes in driver memory.
    ptr: *mut u8,
    len: usize,
    _ticket: Option<Ticket>,
}

// SAFETY: `ptr..ptr + len` is driver memory owned by the frame in
// `_frame` (a `Send` `CoreFrame`), mapped while it lives and accessed only
// through this `DeviceRx` (mutably only through `&mut RxBuf`).
unsafe impl Send for DeviceRx {}
// SAFETY: shared access only reads the bytes.
unsafe impl Sync for DeviceRx {}

impl DeviceRx {
    /// The storage of a received frame boxed at home in `frame`.
    ///
    /// # Safety
    /// `ptr..ptr + len` must be the frame's bytes, writable, valid while
    /// the frame lives and accessed by nothing else meanwhile.
    pub(crate) unsafe fn new(
        frame: CoreFrame,
        ptr: *mut u8,
        len: usize,
        ticket: Option<Ticket>,
    ) -> Self {
        DeviceRx {
            _frame: frame,
            ptr,
            len,
            _ticket: ticket,
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: see `new`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: see `new`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.data));
        }
    }
}

impl RxBuf {
    /// A received message: `data[start..]` is the payload.
    pub(crate) fn new(data: Vec<u8>, start: usize, peer: SocketAddr, pool: Pool) -> Self {
        debug_assert!(start <= data.len());
        let end = data.len();
        Self {
            store: Store::Owned {
                data,
                pool: Some(pool),
            },
            start,
            end,
            peer,
        }
    }

    /// A message in a sent buffer: `data[start..]` is the payload, `pool`
    /// (if any) gets the storage back when the last reference drops.
    pub(crate) fn from_parts(
        data: Vec<u8>,
        start: usize,
        peer: SocketAddr,
        pool: Option<Pool>,
    ) -> Self {
        debug_assert!(start <= data.len());
        let end = data.len();
        Self {
            store: Store::Owned { data, pool },
            start,
            end,
            peer,
        }
    }

    /// A reliable message in the chunks it arrived in; `pool` gets its
    /// entry back when it drops.
    pub(crate) fn from_message(msg: Message, peer: SocketAddr, pool: Pool) -> Self {
        Self {
            end: msg.len(),
            store: Store::Message {
                msg,
                pool: Some(pool),
            },
            start: 0,
            peer,
        }
    }

    /// The payload as the chunks it is stored in, in order, without
    /// copying: one chunk, except for a reliable message larger than one
    /// datagram received over kernel bypass, which is the datagrams'
    /// payloads (device frames) in order. Its contiguous view (`Deref`)
    /// costs one copy, made on first use and kept ([`debug_copy_count`]
    /// counts it); `chunks()` and [`bytes::Buf`] read it without one.
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let msg = ep.recv().await?;
    /// let mut sum = 0u64;
    /// for chunk in msg.chunks() {
    ///     sum += chunk.iter().map(|&b| u64::from(b)).sum::<u64>();
    /// }
    /// println!("{} bytes in {} chunks, sum {sum}", msg.len(), msg.chunks().count());
    /// # Ok(())
    /// # }
    /// ```
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        let (whole, parts) = match &self.store {
            Store::Message { msg, .. } if !msg.is_contiguous() => (None, Some(msg.chunks())),
            _ => (Some(&self[..]), None),
        };
        let mut left = self.end - self.start;
        whole.into_iter().chain(
            parts
                .into_iter()
                .flatten()
                .map(move |c| {
                    let n = c.len().min(left);
                    left -= n;
                    &c[..n]
                })
                .filter(|c| !c.is_empty()),
        )
    }

    /// A message in a received driver frame: `start..end` of the frame's
    /// bytes is the payload.
    pub(crate) fn from_device(frame: DeviceRx, start: usize, end: usize, peer: SocketAddr) -> Self {
        let end = end.min(frame.len);
        Self {
            store: Store::Device(frame),
            start: start.min(end),
            end,
            peer,
        }
    }

    /// Whether the payload is in a driver frame (zero-copy receive from a
    /// kernel-bypass transport).
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let msg = ep.recv().await?;
    /// println!("in driver memory: {}", msg.is_device_frame());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_device_frame(&self) -> bool {
        match &self.store {
            Store::Device(_) => true,
            Store::Shared(s) => s.device.is_some(),
            Store::Owned { .. } | Store::Message { .. } => false,
        }
    }

    /// Drops the first `n` payload bytes (a header the receiver consumed).
    pub(crate) fn advance(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        match &mut self.store {
            Store::Message { msg, .. } => {
                bytes::Buf::advance(msg, n);
                self.end -= n;
            }
            _ => self.start += n,
        }
    }

    /// Another `RxBuf` for the same message, sharing its storage by
    /// reference: no payload copy. The storage returns to its pool when
    /// the last of them drops. This is how a channel delivers one message
    /// to several sources.
    ///
    /// Writing through [`DerefMut`] into a shared buffer copies the
    /// payload first (copy on write; [`debug_copy_count`] counts it), so
    /// one holder's writes are never seen by another.
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let mut msg = ep.recv().await?;
    /// let other = msg.share();
    /// assert_eq!(msg.as_ptr(), other.as_ptr());
    /// # Ok(())
    /// # }
    /// ```
    pub fn share(&mut self) -> RxBuf {
        if !matches!(self.store, Store::Shared(_)) {
            let old = std::mem::replace(
                &mut self.store,
                Store::Owned {
                    data: Vec::new(),
                    pool: None,
                },
            );
            let shared = match old {
                Store::Owned { mut data, mut pool } => Shared {
                    data: std::mem::take(&mut data),
                    pool: pool.take(),
                    device: None,
                    message: None,
                },
                Store::Device(d) => Shared {
                    data: Vec::new(),
                    pool: None,
                    device: Some(d),
                    message: None,
                },
                Store::Message { msg, pool } => Shared {
                    data: Vec::new(),
                    pool,
                    device: None,
                    message: Some(msg),
                },
                Store::Shared(_) => unreachable!("checked above"),
            };
            self.store = Store::Shared(Arc::new(shared));
        }
        let Store::Shared(shared) = &self.store else {
            unreachable!("made shared above")
        };
        RxBuf {
            store: Store::Shared(shared.clone()),
            start: self.start,
            end: self.end,
            peer: self.peer,
        }
    }

    /// Whether this buffer shares its storage with another `RxBuf`
    /// ([`share`](Self::share)).
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let mut msg = ep.recv().await?;
    /// assert!(!msg.is_shared());
    /// let other = msg.share();
    /// assert!(msg.is_shared());
    /// drop(other);
    /// assert!(!msg.is_shared());
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_shared(&self) -> bool {
        matches!(&self.store, Store::Shared(s) if Arc::strong_count(s) > 1)
    }

    fn storage(&self) -> &[u8] {
        match &self.store {
            Store::Owned { data, .. } => data,
            Store::Device(d) => d.bytes(),
            Store::Shared(shared) => shared.bytes(),
            Store::Message { msg, .. } => contiguous(msg),
        }
    }

    /// The sender: the datagram's source address, or the reliable
    /// connection's peer address (reply with
    /// [`send_to(buf, msg.peer())`](super::Endpoint::send_to)).
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let msg = ep.recv().await?;
    /// let mut reply = ep.buffer().await;
    /// reply.extend_from_slice(&msg)?;
    /// ep.send_to(reply, msg.peer()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Shortens the payload to `len` bytes (no effect if already shorter).
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let mut msg = ep.recv().await?;
    /// msg.truncate(4);
    /// assert!(msg.len() <= 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn truncate(&mut self, len: usize) {
        self.end = self.end.min(self.start + len);
    }
}

impl Drop for RxBuf {
    fn drop(&mut self) {
        match &mut self.store {
            Store::Owned { data, pool } => {
                if let Some(pool) = pool.take() {
                    pool.give_back(std::mem::take(data));
                }
            }
            Store::Message { pool, .. } => {
                if let Some(pool) = pool.take() {
                    pool.give_back(Vec::new());
                }
            }
            Store::Device(_) | Store::Shared(_) => {}
        }
    }
}

/// Reads the payload chunk by chunk ([`RxBuf::chunks`]): no copy, also for
/// a message of several datagrams.
impl bytes::Buf for RxBuf {
    fn remaining(&self) -> usize {
        self.end - self.start
    }

    fn chunk(&self) -> &[u8] {
        self.chunks().next().unwrap_or(&[])
    }

    fn advance(&mut self, cnt: usize) {
        assert!(
            cnt <= self.end - self.start,
            "advance past the end of a message of {} bytes",
            self.end - self.start
        );
        RxBuf::advance(self, cnt);
    }
}

impl Deref for RxBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.storage()[self.start..self.end]
    }
}

impl RxBuf {
    /// Turns a message store into writable storage of its own: the
    /// contiguous copy (counted), or the message's own vector when it is
    /// one and unshared.
    fn message_to_owned(&mut self) {
        if let Store::Message { msg, pool } = &mut self.store {
            let msg = std::mem::take(msg);
            let pool = pool.take();
            let was_contiguous = msg.is_contiguous();
            if !was_contiguous {
                count_copy(msg.len());
            }
            let data = match msg.into_bytes().try_into_mut() {
                Ok(b) => Vec::from(b),
                Err(b) => {
                    if was_contiguous {
                        count_copy(b.len());
                    }
                    b.to_vec()
                }
            };
            self.store = Store::Owned { data, pool };
        }
    }
}

impl DerefMut for RxBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.message_to_owned();
        if let Store::Shared(shared) = &mut self.store {
            let data = match Arc::get_mut(shared) {
                // The last reference: take the storage (and its pool).
                Some(only) => match only.device.take() {
                    Some(d) => Store::Device(d),
                    None if only.message.is_some() => Store::Message {
                        msg: only.message.take().unwrap_or_default(),
                        pool: only.pool.take(),
                    },
                    None => Store::Owned {
                        data: std::mem::take(&mut only.data),
                        pool: only.pool.take(),
                    },
                },
                // Copy on write: others still read the shared bytes.
                None => {
                    count_copy(self.end - self.start);
                    Store::Owned {
                        data: shared.bytes().to_vec(),
                        pool: None,
                    }
                }
            };
            self.store = data;
            self.message_to_owned();
        }
        let (start, end) = (self.start, self.end);
        match &mut self.store {
            Store::Owned { data, .. } => &mut data[start..end],
            Store::Device(d) => &mut d.bytes_mut()[start..end],
            Store::Shared(_) | Store::Message { .. } => unreachable!("made owned above"),
        }
    }
}

impl AsRef<[u8]> for RxBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for RxBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxBuf")
            .field("len", &self.len())
            .field("peer", &self.peer)
            .finish()
    }
}

/// Storage for a message being received: a buffer of the receive pool
/// that goes back to it if the receive is dropped or fails, and becomes
/// an [`RxBuf`] when it succeeds.
pub(crate) struct RxStorage {
    data: Vec<u8>,
    pool: Option<Pool>,
}

impl RxStorage {
    pub(crate) fn new(data: Vec<u8>, pool: Pool) -> Self {
        Self {
            data,
            pool: Some(pool),
        }
    }

    /// The buffer, to reserve room or read the bytes received.
    pub(crate) fn vec_mut(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// The received message `data[start..]`, sent by `peer`.
    pub(crate) fn into_rxbuf(mut self, start: usize, peer: SocketAddr) -> RxBuf {
        let pool = self
            .pool
            .take()
            .expect("storage keeps its pool until converted");
        RxBuf::new(std::mem::take(&mut self.data), start, peer, pool)
    }
}

impl Drop for RxStorage {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.data));
        }
    }
}

// SAFETY: delegates to the inner `Vec<u8>`, whose heap storage does not
// move when the `RxStorage` moves and is not resized while lent to the
// kernel (no `&mut` access exists then).
unsafe impl IoBuf for RxStorage {
    fn stable_ptr(&self) -> *const u8 {
        self.data.stable_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.data.bytes_init()
    }

    fn bytes_total(&self) -> usize {
        self.data.bytes_total()
    }
}

// SAFETY: as above, for writes.
unsafe impl IoBufMut for RxStorage {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.stable_mut_ptr()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: forwarded contract: bytes `..pos` are initialised.
        unsafe { self.data.set_init(pos) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_to_its_pool_from_another_thread() {
        let pool = Pool::new(2, 16, 16);
        let mut data = pool.try_take().unwrap();
        data.extend_from_slice(b"hdrpayload");
        let msg = RxBuf::new(data, 3, "127.0.0.1:9".parse().unwrap(), pool.clone());
        assert_eq!(&msg[..], b"payload");
        assert_eq!(pool.available(), 1);
        std::thread::spawn(move || drop(msg)).join().unwrap();
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn shared_storage_returns_once_all_references_drop() {
        let pool = Pool::new(2, 16, 16);
        let mut data = pool.try_take().unwrap();
        data.extend_from_slice(b"hdrpayload");
        let mut a = RxBuf::new(data, 3, "127.0.0.1:9".parse().unwrap(), pool.clone());
        a.advance(1);
        let mut b = a.share();
        let mut c = b.share();
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(&c[..], b"ayload");
        assert!(a.is_shared());
        drop(a);
        c[0] = b'A'; // copy on write: b is untouched
        assert_eq!(&b[..], b"ayload");
        assert_eq!(&c[..], b"Ayload");
        assert_eq!(pool.available(), 1);
        std::thread::spawn(move || drop(b)).join().unwrap();
        assert_eq!(pool.available(), 2);
    }
}
