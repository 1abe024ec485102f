//! [`Mbuf`]: one owned, single-segment DPDK packet buffer.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use insane_dpdk_sys as sys;

/// An owned single-segment `rte_mbuf`: a received frame, or a frame being
/// built for transmission.
///
/// It dereferences to its data (`data_len` bytes at `buf_addr +
/// data_off`). The data can grow at the back ([`append`](Self::append),
/// into the tailroom) and at the front ([`prepend`](Self::prepend), into
/// the headroom: 128 bytes in a fresh mbuf), so headers are written in
/// front of a payload without moving it. Dropping it frees it to its pool
/// (`rte_pktmbuf_free`), from any thread (see
/// [`Mempool`](crate::Mempool)).
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

// SAFETY: an Mbuf is the only owner of its mbuf; nothing else reads or
// writes it while the handle exists, and freeing it is thread safe (the
// pool's put is a multi-producer ring operation for threads without an
// lcore cache).
unsafe impl Send for Mbuf {}
// SAFETY: `&Mbuf` only reads the mbuf.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Takes ownership of `raw`.
    ///
    /// # Safety
    /// `raw` is a valid single-segment mbuf with a reference count of 1
    /// that nothing else uses or frees.
    #[inline]
    pub(crate) unsafe fn from_raw(raw: NonNull<sys::rte_mbuf>) -> Self {
        Self { raw }
    }

    /// Gives up ownership (for `tx_burst`): the caller frees it.
    #[inline]
    pub(crate) fn into_raw(self) -> *mut sys::rte_mbuf {
        let raw = self.raw.as_ptr();
        std::mem::forget(self);
        raw
    }

    #[inline]
    fn m(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf (type invariant).
        unsafe { self.raw.as_ref() }
    }

    #[inline]
    fn m_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: we own a valid mbuf exclusively (type invariant, `&mut`).
        unsafe { self.raw.as_mut() }
    }

    /// Bytes of data.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.m().data_len)
    }

    /// Whether there is no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.m().data_len == 0
    }

    /// Free bytes before the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.m().data_off)
    }

    /// Free bytes after the data.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.m();
        usize::from(m.buf_len)
            .saturating_sub(usize::from(m.data_off))
            .saturating_sub(usize::from(m.data_len))
    }

    /// The port it was received on (meaningful for received frames).
    pub fn port(&self) -> u16 {
        self.m().port
    }

    /// Whether the NIC has verified this received frame's IPv4 header
    /// checksum and its UDP/TCP checksum and found both good
    /// (`RTE_MBUF_F_RX_IP_CKSUM_GOOD` and `RTE_MBUF_F_RX_L4_CKSUM_GOOD` in
    /// `ol_flags`). False when either is bad, unknown or not checked: PMDs
    /// without checksum offload (`net_memif`, `net_ring`) leave both
    /// "unknown", and [`Port::open`](crate::Port::open) enables the RX
    /// offload only where the device reports it.
    #[inline]
    pub fn rx_checksums_good(&self) -> bool {
        // Compile-time constants (bindgen evaluates these macros), not
        // the shim's variables: no loads on the per-frame path.
        const IP_MASK: u64 = sys::RTE_MBUF_F_RX_IP_CKSUM_MASK as u64;
        const IP_GOOD: u64 = sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD as u64;
        const L4_MASK: u64 = sys::RTE_MBUF_F_RX_L4_CKSUM_MASK as u64;
        const L4_GOOD: u64 = sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD as u64;
        let ol = self.m().ol_flags;
        ol & (IP_MASK | L4_MASK) == IP_GOOD | L4_GOOD
    }

    /// Asks the device to compute this frame's IPv4 header checksum and
    /// its UDP checksum when it transmits it: `l2_len` bytes of Ethernet
    /// header, then `l3_len` bytes of IPv4 header. The IPv4 checksum field
    /// must hold 0 and the UDP checksum field the folded, uncomplemented
    /// pseudo-header sum (what `rte_ipv4_phdr_cksum` gives). Only for a
    /// queue whose [`tx_checksum_offload`](crate::Queue::tx_checksum_offload)
    /// is true.
    #[inline]
    pub fn request_tx_checksums(&mut self, l2_len: u16, l3_len: u16) {
        // SAFETY: our mbuf; a constant defined in the shim; the shim sets
        // the flags and the two length bit-fields, nothing else.
        unsafe {
            sys::insane_mbuf_tx_offload(
                self.raw.as_ptr(),
                sys::insane_tx_ipv4_udp_cksum_flags,
                l2_len,
                l3_len,
            );
        }
    }

    /// Clears the offload flags: a received mbuf reused for transmission
    /// must not carry its receive flags (or requests it did not make) to
    /// the transmit path.
    #[inline]
    pub fn clear_offload_flags(&mut self) {
        self.m_mut().ol_flags = 0;
    }

    /// Grows the data by `n` bytes at the back and returns them (content
    /// unspecified), or `None`, changing nothing, when the tailroom is
    /// smaller.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let old = self.len();
        let n16 = u16::try_from(n).ok()?;
        let m = self.m_mut();
        m.data_len += n16;
        m.pkt_len += u32::from(n16);
        Some(&mut self[old..])
    }

    /// Grows the data by `n` bytes at the front and returns the whole data
    /// (the new bytes first, content unspecified), or `None`, changing
    /// nothing, when the headroom is smaller.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.headroom() {
            return None;
        }
        let n16 = u16::try_from(n).ok()?;
        let m = self.m_mut();
        m.data_off -= n16;
        m.data_len += n16;
        m.pkt_len += u32::from(n16);
        Some(&mut self[..])
    }

    /// Removes `n` bytes from the front of the data (they become
    /// headroom); `false`, changing nothing, when the data is shorter.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        if n > self.len() {
            return false;
        }
        let m = self.m_mut();
        m.data_off += n16;
        m.data_len -= n16;
        m.pkt_len -= u32::from(n16);
        true
    }

    /// Shortens the data to `len` bytes (no effect when already shorter).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            let m = self.m_mut();
            // len < data_len <= u16::MAX
            m.data_len = len as u16;
            m.pkt_len = len as u32;
        }
    }

    /// Appends `bytes`; `false`, changing nothing, when they do not fit.
    #[inline]
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        match self.append(bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    /// Whether the mbuf is a single segment (always true for mbufs this
    /// crate hands out; received multi-segment frames are dropped).
    pub(crate) fn raw_is_single_segment(raw: NonNull<sys::rte_mbuf>) -> bool {
        // SAFETY: called on a valid mbuf just received.
        let m = unsafe { raw.as_ref() };
        // DPDK's own test (`rte_pktmbuf_is_contiguous`): `next` is null
        // whenever `nb_segs` is 1, and reading it would touch the mbuf's
        // second cache line on every received frame.
        m.nb_segs == 1
    }
}

impl Deref for Mbuf {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: a single-segment mbuf's data is `data_len` initialised
        // bytes at `buf_addr + data_off`, inside its `buf_len`-byte buffer
        // (kept by every method here and by the PMDs); we own it.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }
}

impl DerefMut for Mbuf {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        let m = self.m();
        let (addr, off, len) = (m.buf_addr, m.data_off, m.data_len);
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(
                addr.cast::<u8>().add(usize::from(off)),
                usize::from(len),
            )
        }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; freeing it is thread safe (see the type).
        unsafe { sys::insane_rte_pktmbuf_free(self.raw.as_ptr()) };
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}
