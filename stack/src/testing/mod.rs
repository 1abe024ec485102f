//! An in-memory [`FrameDevice`] for tests: [`PairDevice::pair`] makes two
//! ends of a virtual Ethernet cable; what one end transmits, the other
//! receives. Frames are `Vec`-backed, and the two ends count the buffers
//! they have lent out, so tests can check that the stack gives every frame
//! back to its pool. Tests can also inject raw frames, take frames off the
//! wire to inspect or mutate them, and shrink the pools or the transmit
//! ring to force the "no buffer" and "ring full" paths.
//!
//! Single-threaded (`Rc`): both ends and their interfaces live on one
//! thread, like one core's stack.
//!
//! [`host`] makes an [`Interface`] that knows its peer's MAC address, the
//! usual start of a two-host test or example.
//!
//! [`lossy::LossyDevice`] wraps any device (this one, AF_XDP, DPDK) and
//! loses, duplicates, reorders and corrupts what it receives, seeded and
//! reproducible: the kernel here has no `netem`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::ops::Deref;
use std::rc::Rc;

use smoltcp::wire::EthernetAddress;

use crate::device::{FrameDevice, TxFrame};
use crate::iface::{Interface, InterfaceConfig};

pub mod lossy;

/// A stack host with the address `ip`/24 on `dev`, knowing `peer`'s MAC
/// address (a static neighbour: no ARP exchange before the first send).
///
/// ```
/// use insane_stack::EthernetAddress;
/// use insane_stack::testing::{PairDevice, host};
///
/// let (mac_a, mac_b) = (EthernetAddress([2, 0, 0, 0, 0, 1]), EthernetAddress([2, 0, 0, 0, 0, 2]));
/// let (ip_a, ip_b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
/// let (dev_a, dev_b) = PairDevice::pair(mac_a, mac_b, 1500);
/// let a = host(dev_a, ip_a, (ip_b, mac_b));
/// let b = host(dev_b, ip_b, (ip_a, mac_a));
/// assert_eq!(a.ipv4_addr(), ip_a);
/// # drop(b);
/// ```
pub fn host<D: FrameDevice>(
    dev: D,
    ip: std::net::Ipv4Addr,
    peer: (std::net::Ipv4Addr, EthernetAddress),
) -> Interface<D> {
    let mut iface = Interface::new(
        dev,
        InterfaceConfig::new(smoltcp::wire::Ipv4Cidr::new(ip, 24)),
    );
    iface.add_static_neighbor(peer.0, peer.1);
    iface
}

/// Headroom of the transmit buffers of a [`PairDevice`], by default.
pub const DEFAULT_HEADROOM: usize = 64;

struct Side {
    /// Frames waiting to be received by this side.
    rx: RefCell<VecDeque<Vec<u8>>>,
    /// Receive buffers this side may have lent out at once.
    rx_pool: Cell<usize>,
    rx_in_use: Rc<Cell<usize>>,
    /// Transmit buffers this side may have lent out at once.
    tx_pool: Cell<usize>,
    tx_in_use: Rc<Cell<usize>>,
    /// Frames the *peer's* receive queue holds at most; transmitting more
    /// fails (a full TX ring).
    tx_ring: Cell<usize>,
    /// Frames the device takes between two flushes (its own transmit
    /// ring, which a flush empties onto the link).
    tx_batch: Cell<usize>,
    /// Frames taken since the last flush.
    unflushed: Cell<usize>,
    /// The most frames taken between two flushes so far.
    most_unflushed: Cell<usize>,
    headroom: Cell<usize>,
    flushes: Cell<u64>,
    transmitted: Cell<u64>,
    /// Report received frames as checksum-verified by "hardware".
    checksum_offload: Cell<bool>,
    /// Compute IPv4/UDP checksums of frames marked for it on transmit.
    tx_checksum_offload: Cell<bool>,
    /// Frames marked for TX checksum offload whose checksum fields were
    /// not what a NIC expects (IPv4 0, UDP the pseudo-header sum).
    offload_violations: Cell<u64>,
}

impl Side {
    fn new() -> Side {
        Side {
            rx: RefCell::new(VecDeque::new()),
            rx_pool: Cell::new(4096),
            rx_in_use: Rc::new(Cell::new(0)),
            tx_pool: Cell::new(4096),
            tx_in_use: Rc::new(Cell::new(0)),
            tx_ring: Cell::new(usize::MAX),
            tx_batch: Cell::new(usize::MAX),
            unflushed: Cell::new(0),
            most_unflushed: Cell::new(0),
            checksum_offload: Cell::new(false),
            tx_checksum_offload: Cell::new(false),
            offload_violations: Cell::new(0),
            headroom: Cell::new(DEFAULT_HEADROOM),
            flushes: Cell::new(0),
            transmitted: Cell::new(0),
        }
    }
}

/// One end of an in-memory Ethernet link.
pub struct PairDevice {
    sides: Rc<[Side; 2]>,
    me: usize,
    mac: EthernetAddress,
    mtu: usize,
}

impl fmt::Debug for PairDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairDevice")
            .field("side", &self.me)
            .field("mac", &self.mac)
            .field("mtu", &self.mtu)
            .finish()
    }
}

impl PairDevice {
    /// Two connected ends with these MAC addresses and IP MTU.
    pub fn pair(
        mac_a: EthernetAddress,
        mac_b: EthernetAddress,
        mtu: usize,
    ) -> (PairDevice, PairDevice) {
        let sides = Rc::new([Side::new(), Side::new()]);
        let a = PairDevice {
            sides: sides.clone(),
            me: 0,
            mac: mac_a,
            mtu,
        };
        let b = PairDevice {
            sides,
            me: 1,
            mac: mac_b,
            mtu,
        };
        (a, b)
    }

    fn mine(&self) -> &Side {
        &self.sides[self.me]
    }

    fn peer(&self) -> &Side {
        &self.sides[1 - self.me]
    }

    /// Makes this end report every received frame as checksum-verified by
    /// the hardware ([`FrameDevice::rx_checksum_verified`]), like a NIC
    /// with RX checksum offload: to test that the stack trusts it.
    pub fn set_checksum_offload(&self, on: bool) {
        self.mine().checksum_offload.set(on);
    }

    /// Makes this end compute the IPv4 header and UDP checksums of the
    /// frames the stack marks for it ([`FrameDevice::offload_tx_checksums`]),
    /// like a NIC with TX checksum offload, after checking that the stack
    /// left the fields as a NIC expects them
    /// ([`offload_violations`](Self::offload_violations) counts frames
    /// that were not).
    pub fn set_tx_checksum_offload(&self, on: bool) {
        self.mine().tx_checksum_offload.set(on);
    }

    /// Frames marked for TX checksum offload whose IPv4 checksum field was
    /// not 0 or whose UDP checksum field was not the folded pseudo-header
    /// sum.
    pub fn offload_violations(&self) -> u64 {
        self.mine().offload_violations.get()
    }

    /// Puts `frame` in this end's receive queue, as if it came off the wire.
    pub fn inject(&self, frame: Vec<u8>) {
        self.mine().rx.borrow_mut().push_back(frame);
    }

    /// Puts `frame` in the *other* end's receive queue, as if this end had
    /// transmitted it (bypassing the stack).
    pub fn send_raw(&self, frame: Vec<u8>) {
        self.peer().rx.borrow_mut().push_back(frame);
    }

    /// Takes every frame waiting in this end's receive queue without
    /// receiving them (to inspect, drop or mutate what the peer sent).
    pub fn take_rx(&self) -> Vec<Vec<u8>> {
        self.mine().rx.borrow_mut().drain(..).collect()
    }

    /// Frames waiting in this end's receive queue.
    pub fn rx_waiting(&self) -> usize {
        self.mine().rx.borrow().len()
    }

    /// Receive buffers lent out and not yet dropped.
    pub fn rx_in_use(&self) -> usize {
        self.mine().rx_in_use.get()
    }

    /// Transmit buffers lent out and not yet transmitted or dropped.
    pub fn tx_in_use(&self) -> usize {
        self.mine().tx_in_use.get()
    }

    /// How many receive buffers may be lent out at once (default 4096);
    /// when they are all held, frames wait on the wire.
    pub fn set_rx_pool(&self, n: usize) {
        self.mine().rx_pool.set(n);
    }

    /// How many transmit buffers may be lent out at once (default 4096).
    pub fn set_tx_pool(&self, n: usize) {
        self.mine().tx_pool.set(n);
    }

    /// Transmitting fails while the peer has `n` frames waiting (default:
    /// unbounded).
    pub fn set_tx_ring(&self, n: usize) {
        self.mine().tx_ring.set(n);
    }

    /// Frames this side's device takes between two flushes (default
    /// unlimited): a transmit ring that [`FrameDevice::flush`] empties, as
    /// an AF_XDP kick or a DPDK `tx_burst` does.
    pub fn set_tx_batch(&self, n: usize) {
        self.mine().tx_batch.set(n);
    }

    /// Headroom of new transmit buffers (default [`DEFAULT_HEADROOM`]).
    pub fn set_headroom(&self, n: usize) {
        self.mine().headroom.set(n);
    }

    /// Calls of [`FrameDevice::flush`].
    pub fn flushes(&self) -> u64 {
        self.mine().flushes.get()
    }

    /// Frames transmitted.
    pub fn transmitted(&self) -> u64 {
        self.mine().transmitted.get()
    }

    /// The most frames this side's device held between two flushes: a
    /// frame transmitted waited behind at most this many minus one in its
    /// batch.
    pub fn most_unflushed(&self) -> usize {
        self.mine().most_unflushed.get()
    }
}

/// A received frame of a [`PairDevice`]; returns to its pool on drop.
pub struct PairRxFrame {
    bytes: Vec<u8>,
    in_use: Rc<Cell<usize>>,
    /// Received while [`PairDevice::set_checksum_offload`] was on.
    verified: bool,
}

impl Deref for PairRxFrame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::ops::DerefMut for PairRxFrame {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl Drop for PairRxFrame {
    fn drop(&mut self) {
        self.in_use.set(self.in_use.get() - 1);
    }
}

impl fmt::Debug for PairRxFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairRxFrame({} bytes)", self.bytes.len())
    }
}

/// A transmit buffer of a [`PairDevice`]; returns to its pool when
/// transmitted or dropped.
pub struct PairTxFrame {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    in_use: Rc<Cell<usize>>,
    /// Marked for TX checksum offload.
    offload: bool,
}

impl Drop for PairTxFrame {
    fn drop(&mut self) {
        self.in_use.set(self.in_use.get() - 1);
    }
}

impl fmt::Debug for PairTxFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PairTxFrame({} bytes, headroom {})",
            self.end - self.start,
            self.start
        )
    }
}

impl TxFrame for PairTxFrame {
    fn headroom(&self) -> usize {
        self.start
    }

    fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let old = self.end;
        self.end += n;
        Some(&mut self.buf[old..self.end])
    }

    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        self.start = self.start.checked_sub(n)?;
        Some(&mut self.buf[self.start..self.end])
    }

    fn truncate(&mut self, len: usize) {
        self.end = self.end.min(self.start + len);
    }
}

impl FrameDevice for PairDevice {
    type Rx = PairRxFrame;
    type Tx = PairTxFrame;

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn rx_ready(&mut self) -> bool {
        !self.mine().rx.borrow().is_empty()
    }

    fn poll_rx(&mut self, max: usize, out: &mut impl FnMut(PairRxFrame)) -> usize {
        let mut n = 0;
        while n < max {
            let side = self.mine();
            if side.rx_in_use.get() >= side.rx_pool.get() {
                break;
            }
            let Some(bytes) = side.rx.borrow_mut().pop_front() else {
                break;
            };
            side.rx_in_use.set(side.rx_in_use.get() + 1);
            let in_use = side.rx_in_use.clone();
            out(PairRxFrame {
                bytes,
                in_use,
                verified: side.checksum_offload.get(),
            });
            n += 1;
        }
        n
    }

    fn alloc_tx(&mut self) -> Option<PairTxFrame> {
        let side = self.mine();
        if side.tx_in_use.get() >= side.tx_pool.get() {
            return None;
        }
        side.tx_in_use.set(side.tx_in_use.get() + 1);
        let headroom = side.headroom.get();
        Some(PairTxFrame {
            buf: vec![0; headroom + self.mtu + 14],
            start: headroom,
            end: headroom,
            in_use: side.tx_in_use.clone(),
            offload: false,
        })
    }

    fn rx_checksum_verified(frame: &PairRxFrame) -> bool {
        frame.verified
    }

    /// The received bytes become the transmit buffer (grown to a full
    /// frame after `data.start`); it counts as a transmit buffer in use
    /// from now on.
    fn rx_into_tx(
        &mut self,
        mut frame: PairRxFrame,
        data: std::ops::Range<usize>,
    ) -> Result<PairTxFrame, PairRxFrame> {
        if data.start > data.end || data.end > frame.bytes.len() {
            return Err(frame);
        }
        let mut buf = std::mem::take(&mut frame.bytes);
        // Dropping the emptied receive frame returns its slot.
        drop(frame);
        buf.resize(buf.len().max(data.start + self.mtu + 14), 0);
        let side = self.mine();
        side.tx_in_use.set(side.tx_in_use.get() + 1);
        Ok(PairTxFrame {
            buf,
            start: data.start,
            end: data.end,
            in_use: side.tx_in_use.clone(),
            offload: false,
        })
    }

    fn offload_tx_checksums(&mut self, frame: &mut PairTxFrame) -> bool {
        frame.offload = self.mine().tx_checksum_offload.get();
        frame.offload
    }

    fn transmit(&mut self, frame: PairTxFrame) -> Result<(), PairTxFrame> {
        let side = self.mine();
        if self.peer().rx.borrow().len() >= side.tx_ring.get()
            || side.unflushed.get() >= side.tx_batch.get()
        {
            return Err(frame);
        }
        let mut bytes = frame.data().to_vec();
        if frame.offload {
            if !offload_fields_ok(&bytes) {
                side.offload_violations
                    .set(side.offload_violations.get() + 1);
            }
            frames::refresh_checksums(&mut bytes);
        }
        self.peer().rx.borrow_mut().push_back(bytes);
        side.transmitted.set(side.transmitted.get() + 1);
        side.unflushed.set(side.unflushed.get() + 1);
        side.most_unflushed
            .set(side.most_unflushed.get().max(side.unflushed.get()));
        Ok(())
    }

    fn flush(&mut self) {
        let side = self.mine();
        side.flushes.set(side.flushes.get() + 1);
        side.unflushed.set(0);
    }
}

/// Whether an Ethernet + IPv4 (no options) + UDP frame has the checksum
/// fields a NIC with TX checksum offload expects: IPv4 0, UDP the folded
/// (not complemented) sum of the pseudo-header. Written out here, not with
/// the stack's checksum code, so the two check each other.
fn offload_fields_ok(frame: &[u8]) -> bool {
    let Some(h) = frame.get(..42) else {
        return false;
    };
    let word = |i: usize| u32::from(u16::from_be_bytes([h[i], h[i + 1]]));
    if h[12..14] != [0x08, 0x00] || h[14] != 0x45 || h[23] != 17 {
        return false;
    }
    let mut sum: u32 = (26..34).step_by(2).map(word).sum::<u32>() + 17 + word(38);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    word(24) == 0 && word(40) == sum
}

/// Builders of well-formed frames (complete checksums), for injecting into
/// a stack or a driver in tests, and for fuzz seeds.
pub mod frames {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        ArpOperation, ArpPacket, ArpRepr, ETHERNET_HEADER_LEN, EthernetAddress, EthernetFrame,
        EthernetProtocol, EthernetRepr, IPV4_HEADER_LEN, Icmpv4Packet, Icmpv4Repr, IpProtocol,
        Ipv4Packet, Ipv4Repr, UDP_HEADER_LEN, UdpPacket, UdpRepr,
    };

    fn ethernet(
        src: EthernetAddress,
        dst: EthernetAddress,
        ethertype: EthernetProtocol,
        payload_len: usize,
    ) -> Vec<u8> {
        let mut frame = vec![0; ETHERNET_HEADER_LEN + payload_len];
        EthernetRepr {
            src_addr: src,
            dst_addr: dst,
            ethertype,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut frame));
        frame
    }

    /// An Ethernet/IPv4 frame (no options, DF, TTL 64) carrying `payload`
    /// as protocol `protocol`, with the IPv4 header checksum.
    pub fn ipv4_frame(
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut frame = ethernet(
            src_mac,
            dst_mac,
            EthernetProtocol::Ipv4,
            IPV4_HEADER_LEN + payload.len(),
        );
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[ETHERNET_HEADER_LEN..]);
        Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: protocol,
            payload_len: payload.len(),
            hop_limit: 64,
        }
        .emit(&mut ip, &ChecksumCapabilities::default());
        ip.payload_mut().copy_from_slice(payload);
        frame
    }

    /// A UDP datagram from `src` to `dst` in an Ethernet frame, with
    /// complete IPv4 and UDP checksums.
    pub fn udp_frame(
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut udp = vec![0; UDP_HEADER_LEN + payload.len()];
        UdpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
        }
        .emit(
            &mut UdpPacket::new_unchecked(&mut udp[..]),
            &(*src.ip()).into(),
            &(*dst.ip()).into(),
            payload.len(),
            |buf| buf.copy_from_slice(payload),
            &ChecksumCapabilities::default(),
        );
        ipv4_frame(
            src_mac,
            dst_mac,
            *src.ip(),
            *dst.ip(),
            IpProtocol::Udp,
            &udp,
        )
    }

    /// An ICMP echo request in an Ethernet frame, with checksums.
    pub fn icmp_echo_request(
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
    ) -> Vec<u8> {
        let repr = Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        let mut icmp = vec![0; repr.buffer_len()];
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(&mut icmp[..]),
            &ChecksumCapabilities::default(),
        );
        ipv4_frame(src_mac, dst_mac, src, dst, IpProtocol::Icmp, &icmp)
    }

    /// An Ethernet/IPv4 ARP packet from `src_mac`/`src_ip` about
    /// `target_ip`: a request (sent to broadcast, target MAC zero) or a
    /// reply (sent to, and naming, `target_mac`).
    pub fn arp_frame(
        operation: ArpOperation,
        src_mac: EthernetAddress,
        src_ip: Ipv4Addr,
        target_mac: EthernetAddress,
        target_ip: Ipv4Addr,
    ) -> Vec<u8> {
        let request = operation == ArpOperation::Request;
        let repr = ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: src_mac,
            source_protocol_addr: src_ip,
            target_hardware_addr: if request {
                EthernetAddress([0; 6])
            } else {
                target_mac
            },
            target_protocol_addr: target_ip,
        };
        let dst = if request {
            EthernetAddress::BROADCAST
        } else {
            target_mac
        };
        let mut frame = ethernet(src_mac, dst, EthernetProtocol::Arp, repr.buffer_len());
        repr.emit(&mut ArpPacket::new_unchecked(
            &mut frame[ETHERNET_HEADER_LEN..],
        ));
        frame
    }

    /// Recomputes the IPv4 header checksum and the UDP or ICMP checksum of
    /// an Ethernet/IPv4 frame, as far as its (possibly mutated) lengths
    /// allow; does nothing to other frames. For tests that change header
    /// fields and want the frame to fail for that reason, not the checksum.
    pub fn refresh_checksums(frame: &mut [u8]) {
        let Ok(eth) = EthernetFrame::new_checked(&mut *frame) else {
            return;
        };
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return;
        }
        let Some(ip_bytes) = frame.get_mut(ETHERNET_HEADER_LEN..) else {
            return;
        };
        let Ok(mut ip) = Ipv4Packet::new_checked(ip_bytes) else {
            return;
        };
        let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
        match ip.next_header() {
            IpProtocol::Udp => {
                if let Ok(mut udp) = UdpPacket::new_checked(ip.payload_mut()) {
                    udp.fill_checksum(&src, &dst);
                }
            }
            IpProtocol::Icmp => {
                if let Ok(mut icmp) = Icmpv4Packet::new_checked(ip.payload_mut()) {
                    icmp.fill_checksum();
                }
            }
            _ => {}
        }
        ip.fill_checksum();
    }
}
