//! Several interfaces that are one host: the queues of one multi-queue
//! port, each polled by its own core through its own
//! [`Interface`](super::Interface) (same MAC, same address).
//!
//! The queue a frame arrives on is chosen by the NIC's RSS hash, or by the
//! peer (`net_memif`, `net_tap`), never by the stack: a datagram for a UDP
//! port bound on one member may arrive on any queue. The members of a
//! [`QueueGroup`] therefore share:
//!
//! * **the UDP port table**: a port is bound on one member at a time (a
//!   second bind anywhere in the group fails, naming the member), and a
//!   datagram that arrives at a member without the port is handed to the
//!   member that has it: the frame itself, no copy, through that member's
//!   inbox, which it drains at its next poll (software dispatch; counted
//!   as [`RxStats::forwarded`](super::RxStats::forwarded) by the receiving
//!   member, then received again by the other);
//! * **what ARP learns**: a neighbour learned by one member (the reply to
//!   another member's request arrives on whatever queue the NIC picks for
//!   it) is given to every other member, which sends the packets it held
//!   for that neighbour.
//!
//! A frame handed over is received, and possibly reused for a reply, by
//! another member's device: the members' devices must take each other's
//! frames (DPDK mbufs do: any queue sends an mbuf of any pool, and frees
//! it to its own pool; AF_XDP UMEM frames do not, so AF_XDP does not use
//! groups).
//!
//! Each member polls its inbox with one relaxed atomic load per poll; the
//! inbox is a mutex-protected queue, taken only when something is in it.
//! An inbox holds at most [`INBOX_FRAMES`] frames; more are dropped and
//! counted ([`DropReason::ForwardQueueFull`](super::DropReason::ForwardQueueFull)).
//!
//! ```
//! use std::time::Instant;
//! use insane_stack::group::QueueGroup;
//! use insane_stack::testing::{frames, PairDevice};
//! use insane_stack::{InterfaceConfig, EthernetAddress as Mac, Interface, RxOutcome};
//!
//! // Two queues of one host (10.0.0.1), each an interface of its own.
//! let me = Mac([2, 0, 0, 0, 0, 1]);
//! let (q0, _peer0) = PairDevice::pair(me, Mac([2, 0, 0, 0, 0, 2]), 1500);
//! let (q1, _peer1) = PairDevice::pair(me, Mac([2, 0, 0, 0, 0, 2]), 1500);
//! let group = QueueGroup::new(2);
//! let config = InterfaceConfig::new("10.0.0.1/24".parse().unwrap());
//! let mut a = Interface::in_group(q0, config, group.join().unwrap());
//! let mut b = Interface::in_group(q1, config, group.join().unwrap());
//! let ep = b.bind(7000).unwrap();
//! assert!(a.bind(7000).is_err(), "one port, one member");
//!
//! // A datagram for b's port arrives on a's queue: a hands it to b.
//! let now = Instant::now();
//! a.device().inject(frames::udp_frame(
//!     Mac([2, 0, 0, 0, 0, 2]), me,
//!     "10.0.0.2:5000".parse().unwrap(), "10.0.0.1:7000".parse().unwrap(),
//!     b"hi",
//! ));
//! a.poll(now);
//! assert_eq!(a.stats().rx.forwarded, 1);
//! b.poll(now);
//! assert_eq!(&*b.recv_from(ep).unwrap(), b"hi");
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use smoltcp::wire::EthernetAddress;

/// Most members a group can have.
pub const MAX_MEMBERS: usize = 254;

/// Most frames waiting in one member's inbox.
pub const INBOX_FRAMES: usize = 4096;

/// Most neighbour updates waiting in one member's inbox (a flood of ARP
/// requests cannot grow it; a member that misses one learns the neighbour
/// from its own traffic).
const INBOX_NEIGHBORS: usize = 256;

/// The shared state of the interfaces on the queues of one port (see the
/// [module docs](self)). `F` is the device's received-frame type.
pub struct QueueGroup<F> {
    /// UDP port → index + 1 of the member that has it bound (0: none).
    ports: Box<[AtomicU8]>,
    members: Box<[Slot<F>]>,
}

struct Slot<F> {
    joined: AtomicBool,
    /// Set when something was put in `inbox`: the one load per poll.
    attention: AtomicBool,
    inbox: Mutex<Inbox<F>>,
}

/// What other members handed to one member.
pub(crate) struct Inbox<F> {
    /// Datagrams for this member's ports that arrived on other queues.
    pub(crate) frames: VecDeque<F>,
    /// Neighbours other members learned.
    pub(crate) neighbors: Vec<(Ipv4Addr, EthernetAddress)>,
}

impl<F> Default for Inbox<F> {
    fn default() -> Self {
        Inbox {
            frames: VecDeque::new(),
            neighbors: Vec::new(),
        }
    }
}

impl<F> fmt::Debug for QueueGroup<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueGroup")
            .field("members", &self.members.len())
            .field("joined", &self.joined())
            .finish()
    }
}

/// Where a datagram for a port this member does not have went.
pub(crate) enum Forward<F> {
    /// To this member's inbox.
    Sent(usize),
    /// Nowhere: no member has the port (the frame is given back).
    NoHolder(F),
    /// The holder's inbox is full: dropped.
    Full,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<F> QueueGroup<F> {
    /// A group for `members` interfaces (clamped to 1..=[`MAX_MEMBERS`]).
    pub fn new(members: usize) -> Arc<Self> {
        let members = members.clamp(1, MAX_MEMBERS);
        Arc::new(QueueGroup {
            ports: (0..=u16::MAX).map(|_| AtomicU8::new(0)).collect(),
            members: (0..members)
                .map(|_| Slot {
                    joined: AtomicBool::new(false),
                    attention: AtomicBool::new(false),
                    inbox: Mutex::new(Inbox::default()),
                })
                .collect(),
        })
    }

    /// Takes a free member slot for a new interface; `None` when every
    /// slot is taken. The slot is freed when the [`GroupMember`] drops.
    pub fn join(self: &Arc<Self>) -> Option<GroupMember<F>> {
        let index = self.members.iter().position(|s| {
            s.joined
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })?;
        // A frame forwarded to the slot's previous member as it left.
        let stale = std::mem::take(&mut *lock(&self.members[index].inbox));
        drop(stale);
        Some(GroupMember {
            group: self.clone(),
            index,
            claimed: Vec::new(),
        })
    }

    /// How many members the group can have.
    pub fn capacity(&self) -> usize {
        self.members.len()
    }

    /// How many members have joined.
    pub fn joined(&self) -> usize {
        self.members
            .iter()
            .filter(|s| s.joined.load(Ordering::Acquire))
            .count()
    }

    /// The member that has UDP `port` bound.
    pub fn holder(&self, port: u16) -> Option<usize> {
        match self.ports[usize::from(port)].load(Ordering::Acquire) {
            0 => None,
            m => Some(usize::from(m) - 1),
        }
    }
}

/// One interface's membership of a [`QueueGroup`]; leaving (drop) releases
/// its ports and drops the frames still in its inbox.
pub struct GroupMember<F> {
    group: Arc<QueueGroup<F>>,
    index: usize,
    /// The UDP ports this member has claimed (released when it leaves).
    claimed: Vec<u16>,
}

impl<F> fmt::Debug for GroupMember<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupMember")
            .field("index", &self.index)
            .field("group", &self.group)
            .finish()
    }
}

impl<F> GroupMember<F> {
    /// This member's index in its group.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The group.
    pub fn group(&self) -> &Arc<QueueGroup<F>> {
        &self.group
    }

    fn tag(&self) -> u8 {
        // `index < MAX_MEMBERS < 255`: the tag fits.
        (self.index + 1) as u8
    }

    /// Claims UDP `port` for this member; `Err(holder)` when another
    /// member has it.
    pub(crate) fn claim(&mut self, port: u16) -> Result<(), usize> {
        match self.group.ports[usize::from(port)].compare_exchange(
            0,
            self.tag(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                self.claimed.push(port);
                Ok(())
            }
            Err(t) if t == self.tag() => Ok(()),
            Err(t) => Err(usize::from(t) - 1),
        }
    }

    /// Releases UDP `port` if this member has it.
    pub(crate) fn release(&mut self, port: u16) {
        if let Some(i) = self.claimed.iter().position(|&p| p == port) {
            self.claimed.swap_remove(i);
            let _ = self.group.ports[usize::from(port)].compare_exchange(
                self.tag(),
                0,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// Hands a datagram for UDP `port` to the member that has it.
    pub(crate) fn forward(&self, port: u16, frame: F) -> Forward<F> {
        let Some(holder) = self.group.holder(port).filter(|&h| h != self.index) else {
            return Forward::NoHolder(frame);
        };
        let slot = &self.group.members[holder];
        {
            let mut inbox = lock(&slot.inbox);
            if inbox.frames.len() >= INBOX_FRAMES {
                drop(inbox);
                // Dropped outside the lock (a frame's drop may do work).
                drop(frame);
                return Forward::Full;
            }
            inbox.frames.push_back(frame);
        }
        slot.attention.store(true, Ordering::Release);
        Forward::Sent(holder)
    }

    /// Tells every other member that `ip` is at `mac`.
    pub(crate) fn publish_neighbor(&self, ip: Ipv4Addr, mac: EthernetAddress) {
        for (i, slot) in self.group.members.iter().enumerate() {
            if i == self.index || !slot.joined.load(Ordering::Acquire) {
                continue;
            }
            {
                let mut inbox = lock(&slot.inbox);
                if inbox.neighbors.len() >= INBOX_NEIGHBORS || inbox.neighbors.contains(&(ip, mac))
                {
                    continue;
                }
                inbox.neighbors.push((ip, mac));
            }
            slot.attention.store(true, Ordering::Release);
        }
    }

    /// Whether other members put something in this member's inbox.
    #[inline]
    pub(crate) fn has_news(&self) -> bool {
        self.group.members[self.index]
            .attention
            .load(Ordering::Relaxed)
    }

    /// Takes everything in this member's inbox.
    pub(crate) fn take_news(&self) -> Inbox<F> {
        let slot = &self.group.members[self.index];
        // Cleared before the inbox is taken: whatever arrives after the
        // take sets it again.
        slot.attention.store(false, Ordering::Release);
        std::mem::take(&mut *lock(&slot.inbox))
    }
}

impl<F> Drop for GroupMember<F> {
    fn drop(&mut self) {
        let tag = self.tag();
        for &port in &self.claimed {
            let _ = self.group.ports[usize::from(port)].compare_exchange(
                tag,
                0,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        let slot = &self.group.members[self.index];
        let left = std::mem::take(&mut *lock(&slot.inbox));
        slot.attention.store(false, Ordering::Release);
        slot.joined.store(false, Ordering::Release);
        // The frames go back to their pools outside the lock.
        drop(left);
    }
}
