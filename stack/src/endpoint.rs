//! UDP endpoints of the userspace stack: the port table that demultiplexes
//! received datagrams, each endpoint's bounded receive queue, and
//! [`RxDatagram`], a received payload that stays in the driver's frame.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::{Deref, Range};
use std::task::Waker;

use crate::device::RxFrame;
use crate::headers::CachedHeaders;
use crate::stats::EndpointStats;

/// A bound UDP endpoint of an [`Interface`](super::Interface), from
/// [`bind`](super::Interface::bind). Stale after
/// [`unbind`](super::Interface::unbind): it never names a later endpoint
/// that reuses the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndpointId {
    index: u32,
    generation: u32,
}

/// A received UDP datagram whose payload is still in the driver's frame:
/// no copy. It dereferences to the payload; dropping it returns the frame
/// to the driver's pool.
///
/// It holds only the frame and where the payload lies: the addresses are
/// read from the frame's IPv4 and UDP headers when asked for (the stack
/// delivers only IPv4 datagrams without options, so they lie at fixed
/// offsets). That keeps the endpoint queue entry small and the receive
/// path from assembling socket addresses nobody may read.
pub struct RxDatagram<F> {
    frame: F,
    payload: Range<usize>,
}

/// Offsets in a delivered frame (Ethernet 14, IPv4 without options 20).
const SRC_IP: usize = 26;
const DST_IP: usize = 30;
const SRC_PORT: usize = 34;
const DST_PORT: usize = 36;
/// Bytes from the frame's start to the end of the UDP ports.
const HEADERS_TO_PORTS: usize = 38;

impl<F: RxFrame> RxDatagram<F> {
    /// `frame` is an Ethernet/IPv4 (no options)/UDP frame the parser has
    /// accepted; `payload` the UDP payload's range in it.
    pub(crate) fn new(frame: F, payload: Range<usize>) -> Self {
        RxDatagram { frame, payload }
    }

    #[inline]
    fn addr(&self, ip: usize, port: usize) -> SocketAddrV4 {
        // One length check for the 38 bytes up to the ports, then fixed
        // offsets.
        let Some(h) = self.frame.first_chunk::<HEADERS_TO_PORTS>() else {
            // Not reached: the parser accepted only frames this long.
            return SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        };
        SocketAddrV4::new(
            Ipv4Addr::new(h[ip], h[ip + 1], h[ip + 2], h[ip + 3]),
            u16::from_be_bytes([h[port], h[port + 1]]),
        )
    }

    /// The sender's address and port.
    #[inline]
    pub fn peer(&self) -> SocketAddrV4 {
        self.addr(SRC_IP, SRC_PORT)
    }

    /// The address and port it was sent to: ours, or a broadcast address.
    #[inline]
    pub fn local_addr(&self) -> SocketAddrV4 {
        self.addr(DST_IP, DST_PORT)
    }

    /// The UDP payload.
    pub fn payload(&self) -> &[u8] {
        self.frame.get(self.payload.clone()).unwrap_or_default()
    }

    /// Where the payload lies in [`frame`](RxDatagram::frame).
    pub fn payload_range(&self) -> Range<usize> {
        self.payload.clone()
    }

    /// The whole Ethernet frame.
    pub fn frame(&self) -> &F {
        &self.frame
    }

    /// Gives up the datagram view and returns the frame.
    pub fn into_frame(self) -> F {
        self.frame
    }
}

impl<F: RxFrame> Deref for RxDatagram<F> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.payload()
    }
}

impl<F: RxFrame> fmt::Debug for RxDatagram<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxDatagram")
            .field("peer", &self.peer())
            .field("local", &self.local_addr())
            .field("len", &self.payload.len())
            .finish()
    }
}

/// An endpoint's bounded FIFO of received datagrams: a ring of slots
/// whose size is a power of two, grown by doubling (up to the first power
/// of two at or above the bound) only when it is full, so an endpoint
/// that is read as fast as it receives keeps a few slots.
///
/// Pushing and popping are an index mask and one slot write or take,
/// inlined into the receive path (`VecDeque::push_back` was an
/// out-of-line call with its growth check on every datagram).
pub(crate) struct DatagramQueue<T> {
    slots: Box<[Option<T>]>,
    /// Index of the oldest entry (not masked: wraps with `u32`).
    head: u32,
    len: u32,
    /// The most entries held at once.
    bound: u32,
}

impl<T> DatagramQueue<T> {
    /// Slots of a new queue (grown when needed).
    const INITIAL: usize = 8;

    pub fn new(bound: usize) -> Self {
        DatagramQueue {
            slots: Self::empty_slots(Self::INITIAL),
            head: 0,
            len: 0,
            bound: u32::try_from(bound).unwrap_or(u32::MAX),
        }
    }

    fn empty_slots(n: usize) -> Box<[Option<T>]> {
        std::iter::repeat_with(|| None).take(n).collect()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    fn mask(&self) -> u32 {
        // The slot count is a power of two, at most 2^31.
        (self.slots.len() - 1) as u32
    }

    /// Appends `item`, or gives it back when the queue holds its bound.
    #[inline]
    pub fn push_back(&mut self, item: T) -> Result<(), T> {
        if self.len >= self.bound {
            return Err(item);
        }
        if self.len as usize == self.slots.len() {
            self.grow();
        }
        let index = (self.head.wrapping_add(self.len) & self.mask()) as usize;
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Some(item);
            self.len += 1;
        }
        Ok(())
    }

    /// Removes the oldest entry.
    #[inline]
    pub fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let index = (self.head & self.mask()) as usize;
        let item = self.slots.get_mut(index)?.take();
        self.head = self.head.wrapping_add(1);
        self.len -= 1;
        item
    }

    /// Doubles the slots, keeping the entries in order.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let mut slots = Self::empty_slots(self.slots.len() * 2);
        let mut n = 0;
        while let Some(item) = self.pop_front() {
            slots[n] = Some(item);
            n += 1;
        }
        self.slots = slots;
        self.head = 0;
        self.len = n as u32;
    }
}

pub(crate) struct Endpoint<F> {
    pub port: u16,
    pub queue: DatagramQueue<RxDatagram<F>>,
    pub stats: EndpointStats,
    pub waker: Option<Waker>,
    /// The headers of the last datagram sent, for the next one to the
    /// same peer.
    pub headers: Option<CachedHeaders>,
}

struct Slot<F> {
    generation: u32,
    endpoint: Option<Endpoint<F>>,
}

/// Hashes a port number: the ports are few and not chosen to collide
/// against us (an attacker only picks which *lookups* we do, and those do
/// not grow the table), so a multiplicative hash is enough.
#[derive(Default)]
pub(crate) struct PortHasher(u64);

impl Hasher for PortHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// First port handed out by `bind(0)` (the IANA dynamic range).
const EPHEMERAL_FIRST: u16 = 49152;

/// The port table and the endpoints.
pub(crate) struct Endpoints<F> {
    slots: Vec<Slot<F>>,
    free: Vec<u32>,
    ports: HashMap<u16, u32, BuildHasherDefault<PortHasher>>,
    /// The slot [`by_port`](Endpoints::by_port) found last: most traffic
    /// goes to one endpoint, whose slot is checked before the port table.
    /// Needs no invalidation (the slot's endpoint and port are compared).
    last_hit: u32,
    next_ephemeral: u16,
}

/// Why [`bind`](super::Interface::bind) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindError {
    /// Another endpoint of this interface has the port.
    PortInUse(u16),
    /// `bind(0)` found no free port in 49152..=65535.
    NoFreePort,
    /// Another member of this interface's queue group (another queue of
    /// the same host, see [`group`](super::group)) has the port.
    PortInUseInGroup {
        /// The port.
        port: u16,
        /// The member that has it.
        member: usize,
    },
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::PortInUse(p) => write!(f, "UDP port {p} is already bound on this interface"),
            BindError::NoFreePort => f.write_str("no free ephemeral UDP port (49152-65535)"),
            BindError::PortInUseInGroup { port, member } => write!(
                f,
                "UDP port {port} is already bound on queue group member {member} (another queue of this host)"
            ),
        }
    }
}

impl std::error::Error for BindError {}

impl<F> Endpoints<F> {
    pub fn new() -> Self {
        Endpoints {
            slots: Vec::new(),
            free: Vec::new(),
            ports: HashMap::default(),
            last_hit: 0,
            next_ephemeral: EPHEMERAL_FIRST,
        }
    }

    pub fn bind(&mut self, port: u16, capacity: usize) -> Result<EndpointId, BindError> {
        let port = if port == 0 {
            self.ephemeral()?
        } else if self.ports.contains_key(&port) {
            return Err(BindError::PortInUse(port));
        } else {
            port
        };
        let endpoint = Endpoint {
            port,
            queue: DatagramQueue::new(capacity),
            stats: EndpointStats::default(),
            waker: None,
            headers: None,
        };
        let index = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.endpoint = Some(endpoint);
                i
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    endpoint: Some(endpoint),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.ports.insert(port, index);
        Ok(EndpointId {
            index,
            generation: self.slots[index as usize].generation,
        })
    }

    fn ephemeral(&mut self) -> Result<u16, BindError> {
        let span = u32::from(u16::MAX - EPHEMERAL_FIRST) + 1;
        for _ in 0..span {
            let port = self.next_ephemeral;
            self.next_ephemeral = if port == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                port + 1
            };
            if !self.ports.contains_key(&port) {
                return Ok(port);
            }
        }
        Err(BindError::NoFreePort)
    }

    /// Removes the endpoint; its queued datagrams are dropped (their frames
    /// go back to the pool). Returns it, or `None` if `id` is stale.
    pub fn unbind(&mut self, id: EndpointId) -> Option<Endpoint<F>> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let endpoint = slot.endpoint.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.ports.remove(&endpoint.port);
        Some(endpoint)
    }

    pub fn get(&self, id: EndpointId) -> Option<&Endpoint<F>> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.endpoint.as_ref()
    }

    pub fn get_mut(&mut self, id: EndpointId) -> Option<&mut Endpoint<F>> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.endpoint.as_mut()
    }

    /// The endpoint bound to `port`.
    #[inline]
    pub fn by_port(&mut self, port: u16) -> Option<(EndpointId, &mut Endpoint<F>)> {
        let last = self.last_hit;
        let hit = matches!(
            self.slots.get(last as usize),
            Some(Slot { endpoint: Some(e), .. }) if e.port == port
        );
        let index = if hit {
            last
        } else {
            let index = *self.ports.get(&port)?;
            self.last_hit = index;
            index
        };
        let slot = self.slots.get_mut(index as usize)?;
        let id = EndpointId {
            index,
            generation: slot.generation,
        };
        slot.endpoint.as_mut().map(|e| (id, e))
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port_of(table: &mut Endpoints<Vec<u8>>, port: u16) -> Option<EndpointId> {
        table.by_port(port).map(|(id, e)| {
            assert_eq!(e.port, port);
            id
        })
    }

    /// The endpoint queue is a FIFO up to its bound, across growth (from
    /// 8 slots) and wrap-around of its indices, and refuses (gives back)
    /// what is over the bound.
    #[test]
    fn datagram_queue_is_a_bounded_fifo_across_growth_and_wrap() {
        let mut q = DatagramQueue::new(20);
        let (mut next_in, mut next_out) = (0u32, 0u32);
        // Fill to the bound (grows 8 -> 16 -> 32), refuse one more.
        while q.len() < 20 {
            assert!(q.push_back(next_in).is_ok());
            next_in += 1;
        }
        assert_eq!(q.push_back(999), Err(999));
        // Interleave so the head wraps round the slots many times.
        for round in 0..1000 {
            for _ in 0..(round % 7) {
                assert_eq!(q.pop_front(), Some(next_out));
                next_out += 1;
            }
            while q.push_back(next_in).is_ok() {
                next_in += 1;
            }
            assert_eq!(q.len(), 20);
        }
        while let Some(v) = q.pop_front() {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        assert_eq!(next_out, next_in);
        assert_eq!(q.len(), 0);
        assert_eq!(
            q.slots.len(),
            32,
            "grown only to the power of two above the bound"
        );
        // A bound of zero holds nothing.
        assert_eq!(DatagramQueue::new(0).push_back(1), Err(1));
    }

    #[test]
    fn by_port_finds_the_endpoint_bound_now_after_slots_are_reused() {
        let mut table = Endpoints::<Vec<u8>>::new();
        let a = table.bind(5000, 8).unwrap();
        let b = table.bind(6000, 8).unwrap();
        // Alternating lookups move the last-hit slot back and forth.
        for _ in 0..3 {
            assert_eq!(port_of(&mut table, 5000), Some(a));
            assert_eq!(port_of(&mut table, 6000), Some(b));
        }
        // The last hit (6000's slot) is unbound and its slot reused for
        // another port: neither the old port nor a stale id is found.
        assert!(table.unbind(b).is_some());
        assert_eq!(port_of(&mut table, 6000), None);
        let c = table.bind(7000, 8).unwrap();
        assert_eq!(c.index, b.index, "the freed slot is reused");
        assert_ne!(c, b);
        assert_eq!(port_of(&mut table, 6000), None);
        assert_eq!(port_of(&mut table, 7000), Some(c));
        assert_eq!(port_of(&mut table, 5000), Some(a));
        assert_eq!(port_of(&mut table, 1), None);
    }
}
