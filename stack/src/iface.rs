//! [`Interface`]: one core's userspace IPv4 host on one [`FrameDevice`]:
//! our address, the ARP cache, ICMP echo replies, UDP endpoints and their
//! receive queues, and the send path that writes headers into the
//! transmit buffer's headroom.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::task::{Context, Poll};
use std::time::Instant;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, ETHERNET_HEADER_LEN, EthernetAddress, EthernetFrame,
    EthernetProtocol, EthernetRepr, IPV4_HEADER_LEN, Icmpv4Packet, Icmpv4Repr, IpProtocol,
    Ipv4Cidr, Ipv4Packet, Ipv4Repr, UDP_HEADER_LEN,
};

use crate::UDP_HEADROOM;
use crate::arp::{ArpCache, ArpConfig, Enqueue, Lookup};
use crate::device::{FrameDevice, TxFrame};
use crate::endpoint::{BindError, EndpointId, Endpoints, RxDatagram};
use crate::group::{Forward, GroupMember};
use crate::headers::{CachedHeaders, UdpHeaders};
use crate::parse::{Local, Parsed, fast_udp_to_us, parse_frame_checked};
use crate::stats::{DropReason, EndpointStats, RxOutcome, RxStats, Stats, TxStats};

/// Configuration of an [`Interface`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// Our IPv4 address and the prefix of the directly attached subnet
    /// (`"10.0.0.1/24".parse()`).
    pub address: Ipv4Cidr,
    /// The router for destinations outside the subnet; without one they
    /// are unreachable.
    pub gateway: Option<Ipv4Addr>,
    /// ARP cache tuning.
    pub arp: ArpConfig,
    /// Datagrams held per endpoint until the application reads them; more
    /// are dropped and counted. Each holds a driver frame.
    pub endpoint_queue: usize,
    /// Time-to-live of the packets we send.
    pub hop_limit: u8,
    /// Frames taken from the device per [`Interface::poll`].
    pub rx_burst: usize,
    /// Frames handed to the device between two flushes at most: as soon
    /// as a batch reaches it, the stack flushes it (the AF_XDP `sendto`
    /// kick, a DPDK `tx_burst`). A frame thus waits behind at
    /// most `tx_batch - 1` others in the device's batch, and a flush does
    /// a bounded amount of work (on AF_XDP in copy mode the kick runs
    /// every frame of the batch through the kernel, and the peer's
    /// receive path with it, before it returns).
    pub tx_batch: usize,
    /// Verify received IPv4, UDP and ICMP checksums (turn off only for a
    /// device whose hardware has verified them).
    pub verify_checksums: bool,
}

impl InterfaceConfig {
    /// Defaults for `address`: no gateway, default ARP tuning, 256 queued
    /// datagrams per endpoint, TTL 64, receive bursts of 32, transmit
    /// batches of [`DEFAULT_TX_BATCH`], checksums verified.
    pub fn new(address: Ipv4Cidr) -> InterfaceConfig {
        InterfaceConfig {
            address,
            gateway: None,
            arp: ArpConfig::default(),
            endpoint_queue: 256,
            hop_limit: 64,
            rx_burst: 32,
            tx_batch: DEFAULT_TX_BATCH,
            verify_checksums: true,
        }
    }
}

/// What [`Interface::send_to`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Handed to the device.
    Sent,
    /// Held until the next hop's MAC address is resolved; sent by a later
    /// [`Interface::poll`] (or dropped and counted if it never resolves).
    Queued,
}

/// Why [`Interface::send_to`] did not send a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendErrorKind {
    /// The endpoint is not bound (any more).
    UnknownEndpoint,
    /// The payload is longer than [`Interface::max_payload`].
    TooLarge,
    /// The buffer has less than [`UDP_HEADROOM`] bytes of headroom.
    NoHeadroom,
    /// Port 0, or an unspecified, multicast, loopback or own address.
    InvalidDestination,
    /// Outside the subnet, and no gateway.
    NoRoute,
    /// The next hop is being resolved and its queue is full (dropped,
    /// counted in [`TxStats::arp_queue_full`](super::TxStats::arp_queue_full)).
    ArpQueueFull,
    /// The ARP cache is full of unresolved next hops (dropped, counted).
    ArpCacheFull,
    /// The device's transmit ring is full (dropped, counted).
    DeviceFull,
}

impl fmt::Display for SendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendErrorKind::UnknownEndpoint => "endpoint not bound",
            SendErrorKind::TooLarge => "payload larger than the path MTU allows",
            SendErrorKind::NoHeadroom => "transmit buffer lacks headroom for the headers",
            SendErrorKind::InvalidDestination => "invalid destination address",
            SendErrorKind::NoRoute => "destination outside the subnet and no gateway",
            SendErrorKind::ArpQueueFull => "queue of packets waiting for ARP resolution is full",
            SendErrorKind::ArpCacheFull => "ARP cache full of unresolved entries",
            SendErrorKind::DeviceFull => "device transmit ring full",
        })
    }
}

/// A datagram [`Interface::send_to`] did not send: why, and the buffer
/// back (unchanged) when the error was found before any header was
/// written; the drops (`ArpQueueFull`, `ArpCacheFull`, `DeviceFull`) have
/// returned the buffer to the pool already.
pub struct SendError<T> {
    /// What went wrong.
    pub kind: SendErrorKind,
    /// The buffer, when it was not consumed.
    pub frame: Option<T>,
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("kind", &self.kind)
            .field("frame", &self.frame.is_some())
            .finish()
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl<T> std::error::Error for SendError<T> {}

/// A finished UDP frame waiting for its next hop's MAC address; its
/// Ethernet destination is patched in when the address is known.
struct Pending<T> {
    frame: T,
    endpoint: EndpointId,
}

/// One core's IPv4 host on one frame device: the stack shared by the
/// AF_XDP and DPDK drivers.
///
/// Nothing here reads the clock: every call that involves time takes
/// `now`, so tests drive time explicitly.
///
/// Receiving: [`poll`](Interface::poll) takes a burst of frames from the
/// device and handles each ([`receive`](Interface::receive)): ARP requests
/// for our address are answered and their sender learned, ARP replies
/// resolve next hops (and release the packets that waited for them), ICMP
/// echo requests are answered, UDP datagrams are queued on the endpoint
/// bound to their destination port, with the payload left in the frame.
/// Everything else is dropped and counted by [`DropReason`].
///
/// Sending: get a buffer ([`alloc_tx`](Interface::alloc_tx)), append the
/// payload, [`send_to`](Interface::send_to): UDP, IPv4 (complete
/// checksums) and Ethernet headers are written in front of the payload in
/// place, and the frame goes to the device, or waits for ARP.
pub struct Interface<D: FrameDevice> {
    device: D,
    config: InterfaceConfig,
    local: Local,
    arp: ArpCache<Pending<D::Tx>>,
    endpoints: Endpoints<D::Rx>,
    stats: Stats,
    rx_scratch: Vec<D::Rx>,
    arp_due: Vec<Ipv4Addr>,
    /// Frames handed to the device since its last flush.
    tx_batch: TxBatch,
    /// The other queues of this host, when it is one of several (see
    /// [`group`](super::group)).
    group: Option<GroupMember<D::Rx>>,
    /// False while frames other members forwarded are handled: they are
    /// never forwarded again.
    may_forward: bool,
}

/// The data path of [`Interface::poll`], run on each frame while the
/// device is still handing over its burst: a valid unicast datagram to us
/// (`parse::fast_udp_to_us`) with a good checksum, for an endpoint of this
/// interface with room in its queue, is queued there and counted as
/// [`Interface::receive`] would. Anything else is given back untouched
/// and uncounted, for `receive` (which drops, forwards or answers it, and
/// counts it). A function of the fields it needs, since the device is
/// borrowed while it hands frames over.
#[inline(always)]
fn deliver_fast<D: FrameDevice>(
    frame: D::Rx,
    local: &Local,
    endpoints: &mut Endpoints<D::Rx>,
    stats: &mut RxStats,
) -> Result<(), D::Rx> {
    let offloaded = local.verify_checksums && D::rx_checksum_verified(&frame);
    let verify = local.verify_checksums && !offloaded;
    let Some(udp) = fast_udp_to_us(&frame, local, verify).filter(|u| u.checksum_ok) else {
        return Err(frame);
    };
    let Some((_, endpoint)) = endpoints.by_port(udp.dst_port) else {
        return Err(frame);
    };
    let len = frame.len() as u64;
    if let Err(datagram) = endpoint
        .queue
        .push_back(RxDatagram::new(frame, udp.payload))
    {
        return Err(datagram.into_frame());
    }
    endpoint.stats.received += 1;
    endpoint.stats.delivered += 1;
    if let Some(waker) = endpoint.waker.take() {
        waker.wake();
    }
    stats.frames += 1;
    stats.bytes += len;
    stats.udp_delivered += 1;
    stats.checksum_offloaded += u64::from(offloaded);
    Ok(())
}

/// Writes `headers` in front of `frame`'s payload, leaving the checksums
/// to `device` where it offers that (counted in `stats`).
#[inline(always)]
fn write_headers<D: FrameDevice>(
    device: &mut D,
    stats: &mut TxStats,
    headers: &UdpHeaders,
    mut frame: D::Tx,
) -> Result<D::Tx, SendError<D::Tx>> {
    let offloaded = device.offload_tx_checksums(&mut frame);
    if headers.write(&mut frame, offloaded).is_none() {
        // Only a device whose `TxFrame` misreports its headroom gets here
        // (`send_to` checked it).
        return Err(SendError {
            kind: SendErrorKind::NoHeadroom,
            frame: None,
        });
    }
    stats.checksum_offloaded += u64::from(offloaded);
    Ok(frame)
}

/// Frames the device takes between two flushes by default
/// ([`InterfaceConfig::tx_batch`]).
pub const DEFAULT_TX_BATCH: usize = 32;

/// The device's current transmit batch: frames handed to it since its
/// last flush, against [`InterfaceConfig::tx_batch`].
#[derive(Debug)]
struct TxBatch {
    limit: usize,
    unflushed: usize,
}

impl TxBatch {
    fn new(limit: usize) -> TxBatch {
        TxBatch {
            // A batch of 0 would never take a frame.
            limit: limit.max(1),
            unflushed: 0,
        }
    }

    /// Makes the batch leave.
    #[inline]
    fn flush<D: FrameDevice>(&mut self, device: &mut D) {
        device.flush();
        self.unflushed = 0;
    }
}

/// Hands `frame` to `device`, counting it in `stats`; false (frame
/// dropped, counted) if the ring is full even after a flush. A batch that
/// reaches its limit is flushed at once. A function of the fields it
/// needs, so that the send path can call it while it holds an endpoint.
#[inline]
fn transmit_counted<D: FrameDevice>(
    device: &mut D,
    stats: &mut TxStats,
    batch: &mut TxBatch,
    frame: D::Tx,
) -> bool {
    let len = frame.data().len() as u64;
    let queued = device.transmit(frame).or_else(|frame| {
        // The ring may be full of frames that a flush (the AF_XDP kick, a
        // DPDK `tx_burst`) hands to the wire, freeing it: a burst of sends
        // between two polls must not drop what the device can take.
        batch.flush(device);
        device.transmit(frame)
    });
    match queued {
        Ok(()) => {
            stats.frames += 1;
            stats.bytes += len;
            batch.unflushed += 1;
            if batch.unflushed >= batch.limit {
                batch.flush(device);
            }
            true
        }
        Err(_dropped) => {
            stats.device_full += 1;
            false
        }
    }
}

/// Counts a UDP datagram handed to the device (`sent`) or dropped because
/// it was full, for the interface and the endpoint, and says so.
#[inline]
fn udp_sent<T>(
    sent: bool,
    stats: &mut TxStats,
    endpoint: Option<&mut EndpointStats>,
) -> Result<SendStatus, SendError<T>> {
    if sent {
        stats.udp_datagrams += 1;
    }
    if let Some(e) = endpoint {
        if sent {
            e.sent += 1;
        } else {
            e.send_dropped += 1;
        }
    }
    if sent {
        Ok(SendStatus::Sent)
    } else {
        Err(SendError {
            kind: SendErrorKind::DeviceFull,
            frame: None,
        })
    }
}

/// Checksums we compute on transmit (all of them: veth's TX checksum
/// offload leaves echoed UDP with bad checksums unless every checksum is
/// complete; docs/ARCHITECTURE.md, "Facts measured here").
fn tx_checksums() -> ChecksumCapabilities {
    ChecksumCapabilities::default()
}

impl<D: FrameDevice> Interface<D> {
    /// A host with `config.address` on `device` (whose MAC and MTU it
    /// uses).
    pub fn new(device: D, config: InterfaceConfig) -> Self {
        let local = Local {
            mac: device.mac(),
            ip: config.address.address(),
            broadcast: config.address.broadcast(),
            mtu: device.mtu(),
            verify_checksums: config.verify_checksums,
        };
        Interface {
            arp: ArpCache::new(config.arp),
            endpoints: Endpoints::new(),
            stats: Stats::default(),
            rx_scratch: Vec::with_capacity(config.rx_burst),
            arp_due: Vec::new(),
            tx_batch: TxBatch::new(config.tx_batch),
            group: None,
            may_forward: true,
            device,
            config,
            local,
        }
    }

    /// Like [`new`](Interface::new), for one of several interfaces that
    /// are one host on the queues of one port: `member` of their
    /// [`QueueGroup`](super::group::QueueGroup), whose members share the
    /// UDP port table and what ARP learns (see [`group`](super::group)).
    pub fn in_group(device: D, config: InterfaceConfig, member: GroupMember<D::Rx>) -> Self {
        let mut iface = Self::new(device, config);
        iface.group = Some(member);
        iface
    }

    /// This interface's membership of a queue group, if it has one.
    pub fn group(&self) -> Option<&GroupMember<D::Rx>> {
        self.group.as_ref()
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutable (for driver-specific calls; frames taken from it
    /// directly bypass the stack).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The configuration.
    pub fn config(&self) -> &InterfaceConfig {
        &self.config
    }

    /// Our IPv4 address.
    pub fn ipv4_addr(&self) -> Ipv4Addr {
        self.local.ip
    }

    /// Our MAC address (the device's).
    pub fn mac(&self) -> EthernetAddress {
        self.local.mac
    }

    /// The largest UDP payload [`send_to`](Interface::send_to) accepts:
    /// the device MTU minus the IPv4 and UDP headers (1472 for MTU 1500).
    pub fn max_payload(&self) -> usize {
        self.local
            .mtu
            .saturating_sub(IPV4_HEADER_LEN + UDP_HEADER_LEN)
    }

    /// All counters. `stats().rx.frames == stats().rx.accounted()` always.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats;
        let events = self.arp.events;
        stats.arp.resolutions = events.resolutions;
        stats.arp.learned = events.learned;
        stats.arp.failed = events.failed;
        stats.arp.expired = events.expired;
        stats.arp.evicted = events.evicted;
        stats
    }

    /// Binds a UDP endpoint to `port` (0: a free port from 49152..=65535).
    ///
    /// In a queue group the port must also be free on the other members
    /// ([`BindError::PortInUseInGroup`]); an ephemeral port is one free in
    /// the whole group.
    pub fn bind(&mut self, port: u16) -> Result<EndpointId, BindError> {
        let Some(member) = &mut self.group else {
            return self.endpoints.bind(port, self.config.endpoint_queue);
        };
        // Ephemeral ports taken elsewhere in the group are skipped: at
        // most one try per ephemeral port.
        let tries = if port == 0 { 1 << 14 } else { 1 };
        let mut last = BindError::NoFreePort;
        for _ in 0..tries {
            let id = self.endpoints.bind(port, self.config.endpoint_queue)?;
            let bound = self.endpoints.get(id).map_or(port, |e| e.port);
            match member.claim(bound) {
                Ok(()) => return Ok(id),
                Err(holder) => {
                    self.endpoints.unbind(id);
                    last = BindError::PortInUseInGroup {
                        port: bound,
                        member: holder,
                    };
                }
            }
        }
        Err(if port == 0 {
            BindError::NoFreePort
        } else {
            last
        })
    }

    /// Unbinds the endpoint; datagrams still queued on it are dropped
    /// (their frames go back to the pool). False if `id` was not bound.
    /// Its packets waiting for ARP are still sent.
    pub fn unbind(&mut self, id: EndpointId) -> bool {
        match self.endpoints.unbind(id) {
            Some(endpoint) => {
                if let Some(member) = &mut self.group {
                    member.release(endpoint.port);
                }
                if let Some(waker) = endpoint.waker {
                    waker.wake();
                }
                true
            }
            None => false,
        }
    }

    /// The endpoint's address.
    pub fn local_addr(&self, id: EndpointId) -> Option<SocketAddrV4> {
        let endpoint = self.endpoints.get(id)?;
        Some(SocketAddrV4::new(self.local.ip, endpoint.port))
    }

    /// The endpoint's counters.
    pub fn endpoint_stats(&self, id: EndpointId) -> Option<EndpointStats> {
        self.endpoints.get(id).map(|e| e.stats)
    }

    /// Number of bound endpoints.
    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// Datagrams queued on the endpoint.
    pub fn queued(&self, id: EndpointId) -> usize {
        self.endpoints.get(id).map_or(0, |e| e.queue.len())
    }

    /// Takes the oldest datagram queued on the endpoint.
    pub fn recv_from(&mut self, id: EndpointId) -> Option<RxDatagram<D::Rx>> {
        let endpoint = self.endpoints.get_mut(id)?;
        let datagram = endpoint.queue.pop_front()?;
        endpoint.stats.read += 1;
        Some(datagram)
    }

    /// Like [`recv_from`](Interface::recv_from), but when the queue is
    /// empty registers `cx`'s waker, woken when a datagram arrives (or the
    /// endpoint is unbound). `Ready(None)`: the endpoint is not bound.
    pub fn poll_recv_from(
        &mut self,
        id: EndpointId,
        cx: &mut Context<'_>,
    ) -> Poll<Option<RxDatagram<D::Rx>>> {
        let Some(endpoint) = self.endpoints.get_mut(id) else {
            return Poll::Ready(None);
        };
        match endpoint.queue.pop_front() {
            Some(datagram) => {
                endpoint.stats.read += 1;
                Poll::Ready(Some(datagram))
            }
            None => {
                match &mut endpoint.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Adds a permanent ARP entry (never expires, not overwritten by ARP
    /// packets). Packets waiting for `ip` are sent.
    pub fn add_static_neighbor(&mut self, ip: Ipv4Addr, mac: EthernetAddress) {
        let waiting = self.arp.insert_static(ip, mac);
        for pending in waiting {
            self.send_pending(pending, mac);
        }
    }

    /// The MAC address the cache holds for `ip` at `now`, if resolved and
    /// not expired.
    pub fn neighbor(&self, ip: Ipv4Addr, now: Instant) -> Option<EthernetAddress> {
        match self.arp.lookup(ip, now) {
            Lookup::Resolved(mac) => Some(mac),
            Lookup::Unresolved => None,
        }
    }

    /// An empty transmit buffer from the device, for
    /// [`send_to`](Interface::send_to): append at most
    /// [`max_payload`](Interface::max_payload) bytes of payload.
    pub fn alloc_tx(&mut self) -> Option<D::Tx> {
        self.device.alloc_tx()
    }

    /// Turns a received datagram into the transmit buffer of a reply,
    /// without a copy: the buffer's data is the datagram's payload, in
    /// place in the driver frame it arrived in; the Ethernet, IPv4 and UDP
    /// headers in front of it become headroom, which
    /// [`send_to`](Interface::send_to) overwrites with the reply's
    /// headers. The application may modify the payload, shorten it, or
    /// append to it (up to [`max_payload`](Interface::max_payload)) before
    /// sending; an echo sends it as it is. Take [`RxDatagram::peer`]
    /// first: it is the usual destination.
    ///
    /// Gives the datagram back when the device cannot reuse receive
    /// buffers for transmission ([`FrameDevice::rx_into_tx`]; DPDK and
    /// the test [`PairDevice`](super::testing::PairDevice) can, AF_XDP
    /// does not yet): then allocate with [`alloc_tx`](Interface::alloc_tx)
    /// and copy.
    pub fn reuse_rx(&mut self, datagram: RxDatagram<D::Rx>) -> Result<D::Tx, RxDatagram<D::Rx>> {
        let range = datagram.payload_range();
        // The payload of every datagram the stack delivers starts after
        // the 42 bytes of headers, so the reply's headers fit in front.
        debug_assert!(range.start >= UDP_HEADROOM);
        match self.device.rx_into_tx(datagram.into_frame(), range.clone()) {
            Ok(frame) => {
                self.stats.tx.reused_rx += 1;
                Ok(frame)
            }
            Err(frame) => Err(RxDatagram::new(frame, range)),
        }
    }

    /// Makes frames queued on the device leave now ([`FrameDevice::flush`]);
    /// [`poll`](Interface::poll) does it too.
    pub fn flush(&mut self) {
        self.tx_batch.flush(&mut self.device);
    }

    /// Receives one burst of frames from the device and handles them, runs
    /// the ARP timers (retries, give-ups, expiry) and flushes the device.
    /// Returns the number of frames received.
    ///
    /// Inlined into the caller's busy-poll loop: an empty poll is the
    /// device's receive call and two comparisons (ARP timers, TX batch);
    /// the work for received frames is out of line, so the empty poll
    /// carries none of its stack frame.
    #[inline(always)]
    pub fn poll(&mut self, now: Instant) -> usize {
        let n = self.receive_burst(now);
        if !self.arp.is_quiet(now) {
            self.poll_arp(now);
        }
        self.tx_batch.flush(&mut self.device);
        n
    }

    /// Receives one burst of frames, as [`poll`](Interface::poll) does,
    /// when the device says frames may be waiting
    /// ([`FrameDevice::rx_ready`]), and nothing else: no ARP timers, no
    /// flush. For a receiver that busy-polls between the core's polls of
    /// the interface (a latency-critical one): when nothing came, it costs
    /// the device's look at its ring; what it receives reaches its
    /// endpoint without waiting for the frames queued for transmit to
    /// leave first. Returns the number of frames received.
    /// `now` is read only when there is something to receive.
    pub fn poll_receive(&mut self, now: impl FnOnce() -> Instant) -> usize {
        let news = self.group.as_ref().is_some_and(|m| m.has_news());
        if !news && !self.device.rx_ready() {
            return 0;
        }
        self.receive_burst(now())
    }

    /// The receive half of [`poll`](Interface::poll): one device burst,
    /// then what the other members of the group handed over.
    #[inline(always)]
    fn receive_burst(&mut self, now: Instant) -> usize {
        let Interface {
            device,
            config,
            local,
            endpoints,
            stats,
            rx_scratch,
            ..
        } = self;
        let n = device.poll_rx(config.rx_burst, &mut |frame| {
            // Frames are handled in arrival order: once one waits for the
            // full path, the rest of the burst waits behind it.
            if !rx_scratch.is_empty() {
                rx_scratch.push(frame);
            } else if let Err(frame) = deliver_fast::<D>(frame, local, endpoints, &mut stats.rx) {
                rx_scratch.push(frame);
            }
        });
        if !self.rx_scratch.is_empty() {
            self.receive_scratch(now);
        }
        match &self.group {
            Some(member) if member.has_news() => n + self.receive_news(now),
            _ => n,
        }
    }

    /// Handles the frames [`poll`](Interface::poll) received that
    /// [`deliver_fast`] did not take.
    #[inline(never)]
    fn receive_scratch(&mut self, now: Instant) {
        let mut frames = std::mem::take(&mut self.rx_scratch);
        for frame in frames.drain(..) {
            self.receive_inline(frame, now);
        }
        self.rx_scratch = frames;
    }

    /// Takes what the other members of the group handed over: learns
    /// their neighbours (sending what waited for them) and handles the
    /// frames they forwarded. Returns the number of frames.
    #[cold]
    #[inline(never)]
    fn receive_news(&mut self, now: Instant) -> usize {
        let Some(member) = &self.group else {
            return 0;
        };
        let news = member.take_news();
        for (ip, mac) in news.neighbors {
            for pending in self.arp.learn(ip, mac, now, true) {
                self.send_pending(pending, mac);
            }
        }
        let n = news.frames.len();
        self.may_forward = false;
        for frame in news.frames {
            self.receive(frame, now);
        }
        self.may_forward = true;
        n
    }

    /// Handles one received frame (as [`poll`](Interface::poll) does for
    /// each), and says what became of it. Replies it causes (ARP, ICMP,
    /// packets released by an ARP reply) go to the device but are not
    /// flushed.
    pub fn receive(&mut self, frame: D::Rx, now: Instant) -> RxOutcome {
        self.receive_inline(frame, now)
    }

    /// [`receive`](Interface::receive), inlined into the poll loop.
    #[inline(always)]
    fn receive_inline(&mut self, frame: D::Rx, now: Instant) -> RxOutcome {
        self.stats.rx.frames += 1;
        self.stats.rx.bytes += frame.len() as u64;
        let offloaded = self.local.verify_checksums && D::rx_checksum_verified(&frame);
        if offloaded {
            self.stats.rx.checksum_offloaded += 1;
        }
        let verify = self.local.verify_checksums && !offloaded;
        // A valid unicast datagram to us goes straight to its endpoint (see
        // `parse::fast_udp_to_us`); everything else through the checked
        // parser.
        let outcome = match fast_udp_to_us(&frame, &self.local, verify) {
            Some(udp) => self.deliver_udp(frame, udp.dst_port, udp.payload, udp.checksum_ok),
            None => {
                let local = Local {
                    verify_checksums: verify,
                    ..self.local
                };
                self.receive_checked(frame, &local, now)
            }
        };
        self.stats.rx.record(outcome);
        outcome
    }

    /// Every frame the fast path declines: the checked parser.
    #[inline(never)]
    fn receive_checked(&mut self, frame: D::Rx, local: &Local, now: Instant) -> RxOutcome {
        match parse_frame_checked(&frame, local) {
            Ok(parsed) => self.handle(frame, parsed, now),
            Err(reason) => RxOutcome::Dropped(reason),
        }
    }

    #[inline]
    fn handle(&mut self, frame: D::Rx, parsed: Parsed, now: Instant) -> RxOutcome {
        match parsed {
            Parsed::Arp {
                operation,
                source_mac,
                source_ip,
                target_ip,
            } => self.handle_arp(operation, source_mac, source_ip, target_ip, now),
            Parsed::Udp {
                // Read back from the frame by `RxDatagram::peer`.
                peer: _,
                local,
                payload,
                checksum_ok,
            } => self.deliver_udp(frame, local.port(), payload, checksum_ok),
            Parsed::IcmpEcho {
                source_mac,
                source_ip,
                ident,
                seq_no,
                data,
            } => {
                let data = frame.get(data).unwrap_or_default();
                self.send_echo_reply(source_mac, source_ip, ident, seq_no, data);
                RxOutcome::IcmpEcho
            }
        }
    }

    /// Queues a parsed datagram on the endpoint bound to `port`, or says
    /// why not.
    #[inline(always)]
    fn deliver_udp(
        &mut self,
        frame: D::Rx,
        port: u16,
        payload: std::ops::Range<usize>,
        checksum_ok: bool,
    ) -> RxOutcome {
        let Some((id, endpoint)) = self.endpoints.by_port(port) else {
            return self.no_endpoint(frame, port, checksum_ok);
        };
        endpoint.stats.received += 1;
        if !checksum_ok {
            endpoint.stats.bad_checksum += 1;
            return RxOutcome::Dropped(DropReason::BadChecksum);
        }
        if endpoint
            .queue
            .push_back(RxDatagram::new(frame, payload))
            .is_err()
        {
            endpoint.stats.queue_full += 1;
            return RxOutcome::Dropped(DropReason::EndpointQueueFull);
        }
        endpoint.stats.delivered += 1;
        if let Some(waker) = endpoint.waker.take() {
            waker.wake();
        }
        RxOutcome::Delivered(id)
    }

    /// A datagram for a port no endpoint of this interface has: another
    /// member of the group may have it.
    #[cold]
    #[inline(never)]
    fn no_endpoint(&mut self, frame: D::Rx, port: u16, checksum_ok: bool) -> RxOutcome {
        if !checksum_ok {
            return RxOutcome::Dropped(DropReason::BadChecksum);
        }
        match &self.group {
            Some(member) if self.may_forward => match member.forward(port, frame) {
                Forward::Sent(to) => RxOutcome::Forwarded(to),
                Forward::Full => RxOutcome::Dropped(DropReason::ForwardQueueFull),
                Forward::NoHolder(_) => RxOutcome::Dropped(DropReason::NoEndpoint),
            },
            _ => RxOutcome::Dropped(DropReason::NoEndpoint),
        }
    }

    fn handle_arp(
        &mut self,
        operation: ArpOperation,
        source_mac: EthernetAddress,
        source_ip: Ipv4Addr,
        target_ip: Ipv4Addr,
        now: Instant,
    ) -> RxOutcome {
        if !source_mac.is_unicast()
            || source_ip == self.local.ip
            || source_ip.is_unspecified()
            || source_ip.is_broadcast()
            || source_ip.is_multicast()
        {
            return RxOutcome::Dropped(DropReason::BadSource);
        }
        let for_us = target_ip == self.local.ip;
        // RFC 826: refresh an entry we have, create one if the packet is for
        // us; packets that were waiting for the sender leave now.
        let waiting = self.arp.learn(source_ip, source_mac, now, for_us);
        for pending in waiting {
            self.send_pending(pending, source_mac);
        }
        if let (true, Some(member)) = (for_us, &self.group) {
            member.publish_neighbor(source_ip, source_mac);
        }
        if !for_us {
            return RxOutcome::Dropped(DropReason::ArpNotForUs);
        }
        if operation == ArpOperation::Request {
            self.send_arp(ArpOperation::Reply, source_mac, source_ip);
            RxOutcome::ArpRequest
        } else {
            RxOutcome::ArpReply
        }
    }

    /// Sends one UDP datagram from endpoint `id` to `peer`. `frame` holds
    /// the payload (its `data()`, at most
    /// [`max_payload`](Interface::max_payload) bytes) after at least
    /// [`UDP_HEADROOM`] bytes of headroom; the UDP, IPv4 and Ethernet
    /// headers are written into that headroom, with complete checksums.
    /// The frame is handed to the device (not flushed: see
    /// [`flush`](Interface::flush)), or held while ARP resolves the next
    /// hop.
    pub fn send_to(
        &mut self,
        id: EndpointId,
        peer: SocketAddrV4,
        frame: D::Tx,
        now: Instant,
    ) -> Result<SendStatus, SendError<D::Tx>> {
        let reject = |kind, frame| {
            Err(SendError {
                kind,
                frame: Some(frame),
            })
        };
        let max_payload = self.max_payload();
        let arp_epoch = self.arp.epoch();
        let Some(endpoint) = self.endpoints.get_mut(id) else {
            return reject(SendErrorKind::UnknownEndpoint, frame);
        };
        if frame.data().len() > max_payload {
            return reject(SendErrorKind::TooLarge, frame);
        }
        if frame.headroom() < UDP_HEADROOM {
            return reject(SendErrorKind::NoHeadroom, frame);
        }
        // The same peer as the endpoint's last datagram, whose next hop's
        // ARP entry has not changed since: its headers, copied.
        let cached = endpoint.headers.as_ref();
        if let Some(headers) = cached.and_then(|c| c.for_peer(peer, arp_epoch, now)) {
            let frame = write_headers(&mut self.device, &mut self.stats.tx, headers, frame)?;
            let sent = transmit_counted(
                &mut self.device,
                &mut self.stats.tx,
                &mut self.tx_batch,
                frame,
            );
            return udp_sent(sent, &mut self.stats.tx, Some(&mut endpoint.stats));
        }
        let src_port = endpoint.port;
        let dst = *peer.ip();
        if peer.port() == 0
            || dst.is_unspecified()
            || dst.is_multicast()
            || dst.is_loopback()
            || dst == self.local.ip
        {
            return reject(SendErrorKind::InvalidDestination, frame);
        }
        let next_hop = if dst.is_broadcast() || Some(dst) == self.local.broadcast {
            None
        } else if self.config.address.contains_addr(&dst) {
            Some(dst)
        } else if let Some(gateway) = self.config.gateway {
            Some(gateway)
        } else {
            return reject(SendErrorKind::NoRoute, frame);
        };
        let (dst_mac, expires) = match next_hop {
            None => (Some(EthernetAddress::BROADCAST), None),
            Some(hop) => match self.arp.resolved(hop, now) {
                Some((mac, expires)) => (Some(mac), expires),
                None => (None, None),
            },
        };

        let headers = UdpHeaders::new(
            SocketAddrV4::new(self.local.ip, src_port),
            peer,
            self.local.mac,
            // Patched in when ARP resolves.
            dst_mac.unwrap_or(EthernetAddress([0; 6])),
            self.config.hop_limit,
        );
        let frame = write_headers(&mut self.device, &mut self.stats.tx, &headers, frame)?;
        let hop = match (dst_mac, next_hop) {
            (Some(_), _) | (None, None) => {
                // Unicast to a resolved next hop: the next datagram to
                // this peer reuses the headers.
                if let (Some(_), Some(e)) = (next_hop, self.endpoints.get_mut(id)) {
                    e.headers = Some(CachedHeaders::new(peer, self.arp.epoch(), expires, headers));
                }
                return self.transmit_udp(frame, id);
            }
            (None, Some(hop)) => hop,
        };
        let pending = Pending {
            frame,
            endpoint: id,
        };
        let drop = |this: &mut Self, kind| {
            if let Some(e) = this.endpoints.get_mut(id) {
                e.stats.send_dropped += 1;
            }
            Err(SendError { kind, frame: None })
        };
        match self.arp.enqueue(hop, pending, now) {
            Enqueue::Started => {
                self.note_queued(id);
                self.send_arp(ArpOperation::Request, EthernetAddress::BROADCAST, hop);
                Ok(SendStatus::Queued)
            }
            Enqueue::Queued => {
                self.note_queued(id);
                Ok(SendStatus::Queued)
            }
            Enqueue::QueueFull(_) => {
                self.stats.tx.arp_queue_full += 1;
                drop(self, SendErrorKind::ArpQueueFull)
            }
            Enqueue::CacheFull(_) => {
                self.stats.tx.arp_cache_full += 1;
                drop(self, SendErrorKind::ArpCacheFull)
            }
        }
    }

    fn note_queued(&mut self, id: EndpointId) {
        self.stats.arp.queued += 1;
        if let Some(e) = self.endpoints.get_mut(id) {
            e.stats.queued_for_arp += 1;
        }
    }

    /// Hands a frame to the device, counting it; false (frame dropped) if
    /// the ring is full.
    fn transmit(&mut self, frame: D::Tx) -> bool {
        transmit_counted(
            &mut self.device,
            &mut self.stats.tx,
            &mut self.tx_batch,
            frame,
        )
    }

    /// Hands a finished datagram of endpoint `id` to the device, counting
    /// it for the interface and the endpoint.
    fn transmit_udp(
        &mut self,
        frame: D::Tx,
        id: EndpointId,
    ) -> Result<SendStatus, SendError<D::Tx>> {
        let sent = transmit_counted(
            &mut self.device,
            &mut self.stats.tx,
            &mut self.tx_batch,
            frame,
        );
        let endpoint = self.endpoints.get_mut(id).map(|e| &mut e.stats);
        udp_sent(sent, &mut self.stats.tx, endpoint)
    }

    fn send_pending(&mut self, mut pending: Pending<D::Tx>, mac: EthernetAddress) {
        if let Ok(mut eth) = EthernetFrame::new_checked(pending.frame.data_mut()) {
            eth.set_dst_addr(mac);
        }
        // Dropped and counted when the device is full.
        let _ = self.transmit_udp(pending.frame, pending.endpoint);
    }

    /// Builds and transmits an ARP packet: a request (to broadcast) for
    /// `target_ip`, or a reply to `target_mac`. False if it could not be
    /// sent (counted).
    fn send_arp(
        &mut self,
        operation: ArpOperation,
        target_mac: EthernetAddress,
        target_ip: Ipv4Addr,
    ) -> bool {
        let request = operation == ArpOperation::Request;
        let repr = ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: self.local.mac,
            source_protocol_addr: self.local.ip,
            target_hardware_addr: if request {
                EthernetAddress([0; 6])
            } else {
                target_mac
            },
            target_protocol_addr: target_ip,
        };
        let Some(mut frame) = self.device.alloc_tx() else {
            self.stats.tx.no_buffer += 1;
            return false;
        };
        let Some(buf) = frame.append(repr.buffer_len()) else {
            self.stats.tx.no_buffer += 1;
            return false;
        };
        repr.emit(&mut ArpPacket::new_unchecked(buf));
        let Some(buf) = frame.prepend(ETHERNET_HEADER_LEN) else {
            self.stats.tx.no_buffer += 1;
            return false;
        };
        EthernetRepr {
            src_addr: self.local.mac,
            dst_addr: target_mac,
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut EthernetFrame::new_unchecked(buf));
        let sent = self.transmit(frame);
        if sent && request {
            self.stats.tx.arp_requests += 1;
        } else if sent {
            self.stats.tx.arp_replies += 1;
        }
        sent
    }

    fn send_echo_reply(
        &mut self,
        dst_mac: EthernetAddress,
        dst_ip: Ipv4Addr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
    ) {
        let caps = tx_checksums();
        let icmp = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let icmp_len = icmp.buffer_len();
        let Some(mut frame) = self.device.alloc_tx() else {
            self.stats.tx.no_buffer += 1;
            return;
        };
        let Some(buf) = frame.append(icmp_len) else {
            self.stats.tx.no_buffer += 1;
            return;
        };
        icmp.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
        let ip = Ipv4Repr {
            src_addr: self.local.ip,
            dst_addr: dst_ip,
            next_header: IpProtocol::Icmp,
            payload_len: icmp_len,
            hop_limit: self.config.hop_limit,
        };
        let Some(buf) = frame.prepend(IPV4_HEADER_LEN) else {
            self.stats.tx.no_buffer += 1;
            return;
        };
        ip.emit(&mut Ipv4Packet::new_unchecked(buf), &caps);
        let Some(buf) = frame.prepend(ETHERNET_HEADER_LEN) else {
            self.stats.tx.no_buffer += 1;
            return;
        };
        EthernetRepr {
            src_addr: self.local.mac,
            dst_addr: dst_mac,
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut EthernetFrame::new_unchecked(buf));
        if self.transmit(frame) {
            self.stats.tx.icmp_echo_replies += 1;
        }
    }

    /// ARP timers: retries, give-ups (waiting packets dropped and
    /// counted), expiry.
    #[cold]
    fn poll_arp(&mut self, now: Instant) {
        let due = &mut self.arp_due;
        let endpoints = &mut self.endpoints;
        let mut unresolved = 0;
        self.arp
            .poll(now, &mut |ip| due.push(ip), &mut |pending: Pending<
                D::Tx,
            >| {
                unresolved += 1;
                if let Some(e) = endpoints.get_mut(pending.endpoint) {
                    e.stats.send_dropped += 1;
                }
            });
        self.stats.tx.arp_unresolved += unresolved;
        let mut due = std::mem::take(&mut self.arp_due);
        for ip in due.drain(..) {
            self.send_arp(ArpOperation::Request, EthernetAddress::BROADCAST, ip);
        }
        self.arp_due = due;
    }
}
