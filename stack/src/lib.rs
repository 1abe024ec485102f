//! insane-stack: the userspace network stack of insane's raw-frame
//! drivers (AF_XDP, DPDK): Ethernet, ARP, IPv4, UDP and ICMP echo over any
//! [`FrameDevice`].
//!
//! The stack knows no driver: a technology plugs in by implementing
//! [`FrameDevice`] for its queue (insane-net does it for AF_XDP sockets and
//! DPDK port queues, next to the rest of each technology), and the stack
//! never reads the clock (time is passed in). `insane_net::stack`
//! re-exports this crate.
//!
//! Packet formats are smoltcp's (`smoltcp::wire`: checked views and
//! `Repr`s, no copies), except on the per-datagram path, which is tuned
//! against a raw DPDK loop (`insane-bench dpdk-rtt`): the common received
//! frame (unicast IPv4/UDP to us) is recognised at fixed offsets before
//! smoltcp's layered parse (the fallback, and the reference the fast path
//! is tested against) and queued on its endpoint while the device is still
//! handing over the burst, UDP headers are written as 42 bytes at once
//! (an endpoint keeps those of its last datagram for the next one to the
//! same peer, `headers`), and checksums use a one-pass 64-bit sum
//! (`checksum`), skipped on receive only where the device says its
//! hardware verified them. This module is
//! what smoltcp's interface layer cannot give without copying: demultiplexing received frames to
//! UDP endpoints by port with the payload left in the driver's buffer,
//! the ARP cache (timeouts, resolution with bounded retries, replies,
//! a bounded queue of packets per unresolved next hop), ICMP echo
//! replies, and writing headers into the transmit buffer's headroom so the
//! payload is never copied.
//!
//! Layers:
//! * [`device`]: the [`FrameDevice`] trait a driver implements (receive
//!   owned frames, lend transmit buffers with headroom, transmit).
//! * [`Interface`]: one per core and device queue: address, ARP cache,
//!   endpoints, statistics. Time is passed in (`poll(now)`), never read.
//! * [`group`]: the interfaces on several queues of one port, one host:
//!   a shared UDP port table (datagrams that arrive on another member's
//!   queue are handed to it) and shared ARP news.
//! * [`testing`]: [`PairDevice`](testing::PairDevice), two in-memory
//!   ends of a link, and builders of valid frames, for tests.
//!
//! Receive parsing is bounds-checked and never panics on hostile bytes:
//! every malformed, unsupported or foreign frame is dropped and counted
//! by [`DropReason`] (the tests cover each reason, a property test and a
//! cargo-fuzz target in `stack/fuzz` feed it random and mutated frames).
//! IPv4 options, fragments, multicast and IPv6 are not supported (counted
//! drops). Frames not for the stack (other ethertypes, other ports) are
//! the driver's to pass to the kernel first (XDP_PASS) where it can.
//!
//! ```
//! use std::time::Instant;
//! use insane_stack::testing::PairDevice;
//! use insane_stack::{InterfaceConfig, EthernetAddress, Interface, SendStatus, TxFrame};
//!
//! let (a, b) = PairDevice::pair(
//!     EthernetAddress([2, 0, 0, 0, 0, 1]),
//!     EthernetAddress([2, 0, 0, 0, 0, 2]),
//!     1500,
//! );
//! let mut a = Interface::new(a, InterfaceConfig::new("10.0.0.1/24".parse().unwrap()));
//! let mut b = Interface::new(b, InterfaceConfig::new("10.0.0.2/24".parse().unwrap()));
//! let ea = a.bind(5000).unwrap();
//! let eb = b.bind(6000).unwrap();
//! let now = Instant::now();
//!
//! let mut frame = a.alloc_tx().unwrap();
//! frame.extend_from_slice(b"hello");
//! let to = "10.0.0.2:6000".parse().unwrap();
//! // Cold ARP cache: held until b answers the ARP request.
//! assert_eq!(a.send_to(ea, to, frame, now).unwrap(), SendStatus::Queued);
//! b.poll(now); // answers ARP
//! a.poll(now); // learns b, sends the datagram
//! b.poll(now); // receives it
//! let d = b.recv_from(eb).unwrap();
//! assert_eq!(&*d, b"hello");
//! assert_eq!(d.peer(), "10.0.0.1:5000".parse().unwrap());
//! ```

mod arp;
mod checksum;
pub mod device;
mod endpoint;
#[cfg(any(feature = "xdp", feature = "dpdk"))]
mod frames;
pub mod group;
mod headers;
mod iface;
mod parse;
mod stats;
pub mod testing;

pub use arp::ArpConfig;
pub use device::{FrameDevice, RxFrame, TxFrame};
pub use endpoint::{BindError, EndpointId, RxDatagram};
pub use iface::{
    DEFAULT_TX_BATCH, Interface, InterfaceConfig, SendError, SendErrorKind, SendStatus,
};

/// The old name of [`InterfaceConfig`] (insane-net's `config::Config`
/// is the whole configuration file).
#[deprecated(since = "0.1.0", note = "renamed to InterfaceConfig")]
pub type Config = InterfaceConfig;
pub use smoltcp::wire::EthernetAddress;

/// smoltcp's packet formats (typed views and `Repr`s), which the stack is
/// built on: for building and inspecting frames in drivers and tests.
pub use smoltcp::wire;
pub use stats::{ArpStats, DropReason, EndpointStats, RxDrops, RxOutcome, RxStats, Stats, TxStats};

/// Bytes of headers the stack writes in front of a UDP payload: Ethernet
/// (14), IPv4 without options (20), UDP (8). Transmit buffers need at least
/// this much headroom.
pub const UDP_HEADROOM: usize = 14 + 20 + 8;
