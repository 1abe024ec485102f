//! The userspace stack on DPDK: [`DpdkDevice`] adapts one
//! [`insane_dpdk::Queue`] (an RX/TX queue pair of a port, with its own
//! mempool) to [`FrameDevice`]. Feature `dpdk`.
//!
//! Received frames are the queue's [`Mbuf`]s (back to their mempool on
//! drop, from any thread), transmit buffers are mbufs from the same pool
//! with 128 bytes of headroom, where the stack prepends its 42 bytes of
//! Ethernet/IPv4/UDP headers in place. [`FrameDevice::transmit`] adds the
//! frame to the queue's TX batch (a full batch of
//! [`BURST`](insane_dpdk::BURST) leaves at once) and
//! [`FrameDevice::flush`] sends the rest, so the stack's per-poll flush
//! is DPDK's "TX flush on idle".
//!
//! Unlike AF_XDP nothing is steered: the port belongs to DPDK, every frame
//! it receives reaches the stack, which answers ARP and ICMP echo for its
//! address and counts what is not for it.
//!
//! ```no_run
//! use insane_dpdk::{Eal, Port, PortConfig};
//! use insane_net::stack::dpdk::DpdkDevice;
//! use insane_net::stack::{InterfaceConfig, Interface};
//!
//! Eal::init(["-l", "0", "--no-pci", "--no-huge", "-m", "256", "--file-prefix=app",
//!            "--vdev=net_memif0,role=server,socket=/tmp/app.sock,socket-abstract=no"])?;
//! let mut port = Port::open(0, &PortConfig::default())?;
//! let device = DpdkDevice::new(port.take_queue(0).unwrap())?;
//! println!("{}", device.explain());
//! let mut iface = Interface::new(device, InterfaceConfig::new("10.0.1.1/24".parse().unwrap()));
//! let ep = iface.bind(7000).unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;

use insane_dpdk::{Mbuf, Queue};
use insane_stack::{EthernetAddress, FrameDevice, UDP_HEADROOM};

use crate::qos::transport::stack::StackDevice;

/// A DPDK queue pair as the stack's [`FrameDevice`]. It is `Send`: build
/// it anywhere and move it to the core that polls it.
#[derive(Debug)]
pub struct DpdkDevice {
    queue: Queue,
    mac: EthernetAddress,
    mtu: usize,
}

impl DpdkDevice {
    /// Wraps `queue`, using its port's MAC address and MTU.
    ///
    /// # Errors
    /// The port's MAC address is all zeros (`net_ring` ports: use
    /// [`with_mac`](Self::with_mac)), or its mbufs are too small for a
    /// full frame of its MTU after the stack's headroom.
    pub fn new(queue: Queue) -> io::Result<Self> {
        let mac = queue.port_info().mac;
        if mac == [0; 6] {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "DPDK port {} ({}) has MAC address 00:00:00:00:00:00; give the stack one with DpdkDevice::with_mac",
                    queue.port_info().id,
                    queue.port_info().driver
                ),
            ));
        }
        Self::with_mac(queue, EthernetAddress(mac))
    }

    /// Wraps `queue` with the stack's own MAC address `mac` (for PMDs
    /// without a usable one, such as `net_ring`, whose ports receive every
    /// frame anyway).
    ///
    /// # Errors
    /// The queue's mbufs are too small for a full frame of the port's MTU
    /// after the stack's headroom.
    pub fn with_mac(queue: Queue, mac: EthernetAddress) -> io::Result<Self> {
        let info = queue.port_info();
        let mtu = usize::from(info.mtu);
        // A fresh mbuf: 128 bytes of headroom, the rest of the data room
        // after it.
        let room = usize::from(queue.pool().config().data_room).saturating_sub(128);
        // The stack appends a payload of at most `mtu - 28` bytes there and
        // prepends its headers into the headroom.
        if room < (mtu + 14).saturating_sub(UDP_HEADROOM) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "DPDK port {} ({}): mbufs of {} data bytes cannot hold a {}-byte frame (MTU {mtu}) after {UDP_HEADROOM} bytes of headers",
                    info.id,
                    info.driver,
                    queue.pool().config().data_room,
                    mtu + 14
                ),
            ));
        }
        Ok(Self { queue, mac, mtu })
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// The queue, mutable (for its counters, or raw bursts).
    pub fn queue_mut(&mut self) -> &mut Queue {
        &mut self.queue
    }

    /// Gives the queue back.
    pub fn into_queue(self) -> Queue {
        self.queue
    }

    /// One line for `explain()`: port, device, PMD, queue (of how many)
    /// and link.
    pub fn explain(&self) -> String {
        let info = self.queue.port_info();
        let link = self.queue.link();
        let of = match (self.queue.queue_count(), self.queue.rss()) {
            (1, _) => String::new(),
            (n, true) => format!(" of {n} (RSS)"),
            (n, false) => format!(" of {n}"),
        };
        format!(
            "DPDK port {} ({}, PMD {}), queue {}{of}, link {}{}",
            info.id,
            info.name,
            info.driver,
            self.queue.id(),
            if link.up { "up" } else { "down" },
            if self.queue.tx_checksum_offload() {
                ", TX checksum offload"
            } else {
                ""
            }
        )
    }
}

impl FrameDevice for DpdkDevice {
    type Rx = Mbuf;
    type Tx = Mbuf;

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    #[inline]
    fn poll_rx(&mut self, max: usize, out: &mut impl FnMut(Self::Rx)) -> usize {
        self.queue.rx_burst(max, out)
    }

    #[inline]
    fn rx_checksum_verified(frame: &Mbuf) -> bool {
        frame.rx_checksums_good()
    }

    #[inline]
    fn alloc_tx(&mut self) -> Option<Self::Tx> {
        self.queue.alloc()
    }

    /// Where the port computes checksums on transmit (enabled by
    /// `Port::open` when the PMD offers it: `net_tap`, most NICs).
    #[inline]
    fn offload_tx_checksums(&mut self, frame: &mut Mbuf) -> bool {
        if !self.queue.tx_checksum_offload() {
            return false;
        }
        frame.request_tx_checksums(14, 20);
        true
    }

    #[inline]
    fn transmit(&mut self, frame: Self::Tx) -> Result<(), Self::Tx> {
        self.queue.enqueue(frame)
    }

    #[inline]
    fn flush(&mut self) {
        self.queue.flush();
    }

    /// Received and transmit buffers are both mbufs of this queue's pool:
    /// the frame's data is narrowed to `data` in place (`adj` + `truncate`,
    /// the freed front becomes headroom), and the same mbuf is transmitted.
    fn rx_into_tx(&mut self, mut frame: Mbuf, data: std::ops::Range<usize>) -> Result<Mbuf, Mbuf> {
        if data.start > data.end || data.end > frame.len() {
            return Err(frame);
        }
        // Both checked above: `adj` cannot fail, and the data that is left
        // is `data.len()` bytes or more.
        frame.adj(data.start);
        Mbuf::truncate(&mut frame, data.len());
        // Its receive flags must not reach the transmit path.
        frame.clear_offload_flags();
        Ok(frame)
    }
}

/// `DpdkDevice` must stay movable between threads (a generic transport
/// builds it on one thread and polls it on its core).
#[allow(dead_code)]
fn assert_send() {
    fn is_send<T: Send>() {}
    is_send::<DpdkDevice>();
    is_send::<Mbuf>();
}

impl StackDevice for DpdkDevice {
    fn describe(&self) -> String {
        self.explain()
    }

    /// An mbuf goes back to its mempool from any thread.
    fn rx_anywhere(frame: Mbuf) -> Result<Box<dyn std::any::Any + Send>, Mbuf> {
        Ok(Box::new(frame))
    }

    fn tx_anywhere(frame: Mbuf) -> Result<Box<dyn std::any::Any + Send>, Mbuf> {
        Ok(Box::new(frame))
    }

    fn statistics(&self) -> String {
        format!(
            "{:?}, pool {} mbufs free",
            self.queue().stats(),
            self.queue().pool().avail_count()
        )
    }
}
