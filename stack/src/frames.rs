//! [`TxFrame`] for the transmit buffers of insane's raw-frame drivers:
//! AF_XDP UMEM frames (feature `xdp`) and DPDK mbufs (feature `dpdk`).
//!
//! The devices themselves (the queue that lends and sends these frames)
//! live with the rest of their technology in insane-net; only the frame
//! impls are here, because Rust allows a trait impl for a driver's type
//! only in the trait's crate or the type's, and the drivers do not know
//! the stack.

use crate::TxFrame;

#[cfg(feature = "xdp")]
impl TxFrame for insane_xdp::XdpTxFrame {
    fn headroom(&self) -> usize {
        insane_xdp::XdpTxFrame::headroom(self)
    }

    fn tailroom(&self) -> usize {
        insane_xdp::XdpTxFrame::tailroom(self)
    }

    fn data(&self) -> &[u8] {
        self
    }

    fn data_mut(&mut self) -> &mut [u8] {
        self
    }

    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > insane_xdp::XdpTxFrame::tailroom(self) {
            return None;
        }
        let old = self.len();
        self.resize(old + n, 0);
        Some(&mut self[old..])
    }

    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        self.try_prepend(n).ok()?;
        Some(&mut self[..])
    }

    fn truncate(&mut self, len: usize) {
        insane_xdp::XdpTxFrame::truncate(self, len);
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        self.try_extend_from_slice(bytes).is_ok()
    }
}

#[cfg(feature = "dpdk")]
use insane_dpdk::Mbuf;

#[cfg(feature = "dpdk")]
impl TxFrame for Mbuf {
    #[inline]
    fn headroom(&self) -> usize {
        Mbuf::headroom(self)
    }

    #[inline]
    fn tailroom(&self) -> usize {
        Mbuf::tailroom(self)
    }

    #[inline]
    fn data(&self) -> &[u8] {
        self
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        self
    }

    #[inline]
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        Mbuf::append(self, n)
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        Mbuf::prepend(self, n)
    }

    #[inline]
    fn truncate(&mut self, len: usize) {
        Mbuf::truncate(self, len);
    }

    #[inline]
    fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        Mbuf::extend_from_slice(self, bytes)
    }
}
