//! Owned UMEM frames: [`XdpRxFrame`] (a received frame, back to the fill ring
//! on drop) and [`XdpTxFrame`] (a frame being built for transmission, with
//! headroom for headers).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use crate::socket::Shared;

/// Marks a frame whose chunk has been handed on (sent, or turned into a
/// [`XdpTxFrame`]); its drop then does nothing.
const MOVED: u64 = u64::MAX;

/// A received Ethernet frame in UMEM, owned by the application until it
/// drops; then the frame goes back to the fill ring (or to the TX pool).
/// Dereferences to the frame bytes (Ethernet header first).
pub struct XdpRxFrame {
    pub(crate) shared: Rc<Shared>,
    /// UMEM offset of the first byte.
    pub(crate) addr: u64,
    pub(crate) len: u32,
}

impl XdpRxFrame {
    /// Bytes in front of the frame inside its UMEM chunk (where a reply
    /// built in place can put longer headers).
    pub fn headroom(&self) -> usize {
        (self.addr - self.shared.chunk_of(self.addr)) as usize
    }

    /// Turns this frame into a [`XdpTxFrame`] with the same bytes, for replies
    /// built in place (swap addresses, transmit) without a copy. The chunk
    /// then returns through the completion ring to the TX pool, and the
    /// reactor tops the fill ring up from that pool.
    pub fn into_tx(mut self) -> XdpTxFrame {
        let chunk = self.shared.chunk_of(self.addr);
        let start = (self.addr - chunk) as u32;
        let frame = XdpTxFrame {
            shared: self.shared.clone(),
            chunk,
            start,
            len: self.len,
        };
        self.addr = MOVED;
        frame
    }
}

impl Deref for XdpRxFrame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the kernel handed this frame to us through the RX ring
        // and does not touch it until we put it back in the fill ring (on
        // drop); `addr + len` was checked against the UMEM size on receipt.
        unsafe { self.shared.bytes(self.addr, self.len as usize) }
    }
}

impl DerefMut for XdpRxFrame {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { self.shared.bytes_mut(self.addr, self.len as usize) }
    }
}

impl Drop for XdpRxFrame {
    fn drop(&mut self) {
        if self.addr != MOVED {
            self.shared.recycle_rx(self.addr);
        }
    }
}

impl fmt::Debug for XdpRxFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpRxFrame")
            .field("addr", &self.addr)
            .field("len", &self.len)
            .finish()
    }
}

/// Not enough room in a [`XdpTxFrame`] for what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoom {
    /// Bytes asked for.
    pub needed: usize,
    /// Bytes available (headroom or tailroom).
    pub available: usize,
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UMEM frame has room for {} more bytes, {} needed",
            self.available, self.needed
        )
    }
}

impl std::error::Error for NoRoom {}

/// A frame being built for transmission in UMEM. It starts empty with the
/// socket's TX headroom in front; the payload is appended
/// ([`extend_from_slice`](Self::extend_from_slice)), headers are written in
/// front of it ([`prepend`](Self::prepend)), and
/// [`XdpSocket::send`](crate::XdpSocket::send) transmits exactly the bytes
/// it dereferences to. Dropped unsent, it goes back to the TX pool.
pub struct XdpTxFrame {
    pub(crate) shared: Rc<Shared>,
    /// UMEM offset of the chunk.
    pub(crate) chunk: u64,
    /// Offset of the first byte inside the chunk.
    pub(crate) start: u32,
    pub(crate) len: u32,
}

impl XdpTxFrame {
    /// Bytes available in front of the data for [`prepend`](Self::prepend).
    pub fn headroom(&self) -> usize {
        self.start as usize
    }

    /// Bytes available after the data.
    pub fn tailroom(&self) -> usize {
        (self.shared.frame_size - self.start - self.len) as usize
    }

    /// Appends `bytes` after the data.
    ///
    /// # Panics
    /// When they do not fit ([`tailroom`](Self::tailroom)); see
    /// [`try_extend_from_slice`](Self::try_extend_from_slice).
    #[track_caller]
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        if let Err(e) = self.try_extend_from_slice(bytes) {
            panic!("{e}");
        }
    }

    /// Appends `bytes` after the data, or fails without changing anything.
    ///
    /// # Errors
    /// [`NoRoom`] when they do not fit.
    pub fn try_extend_from_slice(&mut self, bytes: &[u8]) -> Result<(), NoRoom> {
        let old = self.len as usize;
        self.try_grow_back(bytes.len())?;
        self[old..].copy_from_slice(bytes);
        Ok(())
    }

    /// Sets the length to `len`, filling new bytes with `value`.
    ///
    /// # Panics
    /// When `len` exceeds the data plus [`tailroom`](Self::tailroom).
    #[track_caller]
    pub fn resize(&mut self, len: usize, value: u8) {
        let old = self.len as usize;
        if len <= old {
            self.len = len as u32;
            return;
        }
        if let Err(e) = self.try_grow_back(len - old) {
            panic!("{e}");
        }
        self[old..].fill(value);
    }

    /// Shortens the data to `len` bytes (no effect when already shorter).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len as u32);
    }

    /// Removes all data (the headroom stays where it is).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Grows the data by `n` bytes at the front and returns them, to be
    /// filled with a header.
    ///
    /// # Panics
    /// When the [`headroom`](Self::headroom) is smaller than `n`; see
    /// [`try_prepend`](Self::try_prepend).
    #[track_caller]
    pub fn prepend(&mut self, n: usize) -> &mut [u8] {
        match self.try_prepend(n) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`prepend`](Self::prepend), failing without change when the
    /// headroom is too small.
    ///
    /// # Errors
    /// [`NoRoom`] when `n` exceeds the headroom.
    pub fn try_prepend(&mut self, n: usize) -> Result<&mut [u8], NoRoom> {
        if n > self.start as usize {
            return Err(NoRoom {
                needed: n,
                available: self.start as usize,
            });
        }
        self.start -= n as u32;
        self.len += n as u32;
        Ok(&mut self[..n])
    }

    /// Drops `n` bytes from the front of the data (they become headroom).
    ///
    /// # Panics
    /// When `n` exceeds the length.
    #[track_caller]
    pub fn advance(&mut self, n: usize) {
        assert!(
            n <= self.len as usize,
            "advance({n}) past a {}-byte frame",
            self.len
        );
        self.start += n as u32;
        self.len -= n as u32;
    }

    fn try_grow_back(&mut self, n: usize) -> Result<(), NoRoom> {
        let room = self.tailroom();
        if n > room {
            return Err(NoRoom {
                needed: n,
                available: room,
            });
        }
        self.len += n as u32;
        Ok(())
    }

    /// UMEM offset of the first byte.
    pub(crate) fn addr(&self) -> u64 {
        self.chunk + self.start as u64
    }

    /// Marks the chunk as handed to the kernel (its drop does nothing).
    pub(crate) fn mark_sent(&mut self) {
        self.chunk = MOVED;
    }
}

impl Deref for XdpTxFrame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the chunk is ours (from the free list, not in any ring)
        // and `start + len <= frame_size` is kept by every method.
        unsafe { self.shared.bytes(self.addr(), self.len as usize) }
    }
}

impl DerefMut for XdpTxFrame {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { self.shared.bytes_mut(self.addr(), self.len as usize) }
    }
}

impl Drop for XdpTxFrame {
    fn drop(&mut self) {
        if self.chunk != MOVED {
            self.shared.recycle_free(self.chunk);
        }
    }
}

impl fmt::Debug for XdpTxFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpTxFrame")
            .field("chunk", &self.chunk)
            .field("start", &self.start)
            .field("len", &self.len)
            .finish()
    }
}
