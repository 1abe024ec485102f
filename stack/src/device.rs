//! The physical layer under the userspace stack: what a raw frame driver
//! (AF_XDP, DPDK, the in-memory [`PairDevice`](super::testing::PairDevice))
//! must give the [`Interface`](super::Interface).
//!
//! A device moves whole Ethernet frames (no FCS) in buffers that belong to
//! the driver's memory (UMEM frames, mbufs):
//!
//! * **Receive**: [`FrameDevice::poll_rx`] hands over received frames as
//!   owned [`RxFrame`]s. The stack parses them in place and may keep one
//!   inside a queued datagram until the application has read it; dropping
//!   the frame gives the buffer back to the driver's pool (fill ring,
//!   mempool).
//! * **Transmit**: [`FrameDevice::alloc_tx`] lends an empty [`TxFrame`]
//!   whose data starts after some *headroom*. The application appends its
//!   payload there; the stack then writes the UDP, IPv4 and Ethernet headers
//!   in front of it with [`TxFrame::prepend`], so the payload is never
//!   copied, and passes the finished frame to [`FrameDevice::transmit`].

use std::ops::Deref;

use smoltcp::wire::EthernetAddress;

/// A received Ethernet frame in a driver buffer.
///
/// It dereferences to the frame's bytes, starting with the Ethernet header
/// (no FCS). Dropping it returns the buffer to the driver's pool, so the
/// stack and the application must not keep frames longer than needed.
///
/// Every `Deref<Target = [u8]>` type is an `RxFrame` (`Vec<u8>`,
/// `Box<[u8]>`, a driver's buffer handle).
pub trait RxFrame: Deref<Target = [u8]> {}

impl<T: Deref<Target = [u8]> + ?Sized> RxFrame for T {}

/// A driver transmit buffer with headroom, filled back to front.
///
/// The buffer holds a window of *data* (`data()`), with free space before
/// it (the headroom) and after it (the tailroom). A fresh buffer from
/// [`FrameDevice::alloc_tx`] has empty data and at least
/// [`UDP_HEADROOM`](super::UDP_HEADROOM) bytes of headroom. The payload is
/// written at the end with [`append`](TxFrame::append) (or through
/// `data_mut` after it), then each protocol layer prepends its header in
/// place with [`prepend`](TxFrame::prepend). What is transmitted is exactly
/// `data()`.
pub trait TxFrame {
    /// Free bytes in front of the data, available to [`prepend`](TxFrame::prepend).
    fn headroom(&self) -> usize;

    /// Free bytes after the data, available to [`append`](TxFrame::append).
    fn tailroom(&self) -> usize;

    /// The frame's bytes written so far.
    fn data(&self) -> &[u8];

    /// The frame's bytes written so far, mutable.
    fn data_mut(&mut self) -> &mut [u8];

    /// Extends the data by `n` bytes at the end and returns those `n`
    /// bytes (their content is unspecified: the caller fills them), or
    /// `None`, changing nothing, if the tailroom is smaller than `n`.
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;

    /// Extends the data by `n` bytes at the front, taken from the headroom,
    /// and returns the *whole* data, whose first `n` bytes are the new ones
    /// (content unspecified), or `None`, changing nothing, if the headroom
    /// is smaller than `n`.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;

    /// Shortens the data to `len` bytes, keeping its start; no effect if
    /// the data is already that short.
    fn truncate(&mut self, len: usize);

    /// Appends `bytes` at the end of the data; `false`, changing nothing,
    /// if they do not fit in the tailroom.
    fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        match self.append(bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

/// A source and sink of Ethernet frames: one NIC queue (an AF_XDP socket,
/// a DPDK port queue) or the in-memory test device.
///
/// The stack calls it only from the core that owns it; nothing here needs
/// to be `Send` or `Sync`.
pub trait FrameDevice {
    /// Received frames.
    type Rx: RxFrame;
    /// Transmit buffers.
    type Tx: TxFrame;

    /// The link's MAC address, used as our Ethernet source and in ARP.
    fn mac(&self) -> EthernetAddress;

    /// The link's IP MTU: the largest Ethernet payload (IPv4 packet) it can
    /// send and receive, 1500 on ordinary Ethernet. Frames are at most
    /// `mtu() + 14` bytes.
    fn mtu(&self) -> usize;

    /// Hands at most `max` received frames to `out`, in arrival order, and
    /// returns how many it handed over. Never blocks; a device that needs
    /// to refill its receive ring (the AF_XDP fill ring) does it here.
    fn poll_rx(&mut self, max: usize, out: &mut impl FnMut(Self::Rx)) -> usize;

    /// Whether received frames may be waiting, from a look that costs no
    /// system call (the AF_XDP RX ring's producer index): a receiver that
    /// busy-polls between the core's turns
    /// ([`Interface::poll_receive`](super::Interface::poll_receive)) skips
    /// [`poll_rx`](FrameDevice::poll_rx) when it says no. `true` may be
    /// wrong (the poll then finds nothing); `false` must not be while
    /// frames wait. The default says `true`: always poll.
    fn rx_ready(&mut self) -> bool {
        true
    }

    /// Lends an empty transmit buffer with at least
    /// [`UDP_HEADROOM`](super::UDP_HEADROOM) bytes of headroom and room for
    /// `mtu() + 14 - headroom` bytes after it, or `None` when the pool is
    /// exhausted (the caller counts the drop and retries later).
    fn alloc_tx(&mut self) -> Option<Self::Tx>;

    /// Queues a finished frame (`frame.data()`) for transmission. When the
    /// transmit ring is full it gives the frame back unchanged.
    fn transmit(&mut self, frame: Self::Tx) -> Result<(), Self::Tx>;

    /// Makes frames queued by [`transmit`](FrameDevice::transmit) leave now
    /// (the AF_XDP `sendto` kick, a DPDK `tx_burst` of a batch). The stack
    /// calls it at the end of each [`Interface::poll`](super::Interface::poll)
    /// and from [`Interface::flush`](super::Interface::flush), so sends made
    /// between two polls leave as one batch. The default does nothing.
    fn flush(&mut self) {}

    /// Whether the hardware has verified `frame`'s IPv4 header checksum and
    /// its UDP checksum and found both good (DPDK: the mbuf's RX checksum
    /// offload flags). The stack then skips its own verification of the
    /// frame. A frame the hardware calls bad or did not check is verified
    /// in software as usual, so only a positive report is trusted. The
    /// default, for devices without such reports: `false`.
    ///
    /// The frame carries the verdict (as an mbuf carries its flags): the
    /// stack asks while the device is still handing over the burst.
    fn rx_checksum_verified(frame: &Self::Rx) -> bool {
        let _ = frame;
        false
    }

    /// Asks the device to compute the IPv4 header checksum and the UDP
    /// checksum of `frame` (an Ethernet + IPv4 without options + UDP
    /// datagram the stack is about to write) when it transmits it, and
    /// says whether it will (DPDK: a port with TX checksum offload). When
    /// it will, the stack writes 0 into the IPv4 checksum field and the
    /// folded, uncomplemented pseudo-header sum into the UDP one, as
    /// NICs expect, instead of summing the payload. The default: `false`,
    /// the stack computes both.
    fn offload_tx_checksums(&mut self, frame: &mut Self::Tx) -> bool {
        let _ = frame;
        false
    }

    /// Turns a received frame into a transmit buffer without a copy: the
    /// buffer's data is `frame[data]` (the bytes before `data.start`
    /// become headroom, the rest of the buffer tailroom), so a reply can
    /// be built in the request's buffer, as raw DPDK echo servers do. It
    /// must leave at least [`UDP_HEADROOM`](super::UDP_HEADROOM) bytes of
    /// headroom when `data.start >= UDP_HEADROOM`, and room after the data
    /// up to a full frame, as [`alloc_tx`](FrameDevice::alloc_tx) does.
    ///
    /// Gives the frame back unchanged when the device cannot (receive and
    /// transmit buffers of different kinds, `data` out of bounds): the
    /// default, so the caller falls back to `alloc_tx` and a copy.
    /// [`Interface::reuse_rx`](super::Interface::reuse_rx) is the stack's
    /// use of it.
    fn rx_into_tx(
        &mut self,
        frame: Self::Rx,
        data: std::ops::Range<usize>,
    ) -> Result<Self::Tx, Self::Rx> {
        let _ = data;
        Err(frame)
    }
}
