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
//! The kernel-bypass drivers (DPDK mbufs, UMEM frames) will back `RxBuf`
//! with their own memory and route returns to their home core.

use std::fmt;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

use insane_uring::buf::{IoBuf, IoBufMut};

use super::txbuf::Pool;

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
    data: Vec<u8>,
    /// Where the payload starts in `data` (after headers, for drivers that
    /// receive whole frames).
    start: usize,
    peer: SocketAddr,
    pool: Option<Pool>,
}

impl RxBuf {
    /// A received message: `data[start..]` is the payload.
    pub(crate) fn new(data: Vec<u8>, start: usize, peer: SocketAddr, pool: Pool) -> Self {
        debug_assert!(start <= data.len());
        Self {
            data,
            start,
            peer,
            pool: Some(pool),
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
        self.data.truncate(self.start + len);
    }
}

impl Drop for RxBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.data));
        }
    }
}

impl Deref for RxBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.data[self.start..]
    }
}

impl DerefMut for RxBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.start..]
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
}
