//! `insane-reliable`: insane's reliable message protocol carried in UDP
//! datagrams, as a sans-IO state machine.
//!
//! One implementation serves every path insane has for datagrams: the
//! userspace UDP stack over AF_XDP or DPDK and kernel UDP sockets. The
//! crate does no I/O, starts no threads and never reads a clock: the
//! caller passes `now`, feeds received datagrams in and takes datagrams
//! out, like `quinn-proto` or smoltcp. The protocol is modelled on eRPC and
//! Machnet rather than TCP: per-packet sequence numbers with a cumulative
//! ack and a SACK bitmap, fast retransmit from SACK holes, a
//! retransmission timeout in microseconds (`srtt + 4·rttvar`, floor
//! 300 µs by default), receiver credits for flow control and an AIMD
//! congestion window. The wire format is specified in
//! `docs/reliable-datagrams.md` and implemented in [`wire`].
//!
//! # Driving an endpoint
//!
//! One [`Endpoint`] per local UDP port. A poll loop:
//!
//! 1. for each received datagram: [`Endpoint::handle_datagram`];
//! 2. [`Endpoint::handle_timeout`] when [`Endpoint::poll_timeout`] is due;
//! 3. take events with [`Endpoint::poll_event`] (connections, messages,
//!    closes) and [`Endpoint::send`] replies;
//! 4. drain [`Endpoint::poll_transmit`] into device frames or a socket,
//!    until it returns `None` (acks are coalesced per batch);
//! 5. sleep or keep polling until the next datagram or `poll_timeout()`.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use insane_reliable::{Config, Endpoint, Event};
//!
//! let (a_addr, b_addr) = ("10.0.0.1:7000".parse().unwrap(), "10.0.0.2:7000".parse().unwrap());
//! let mut a = Endpoint::new(Config::default(), 1).unwrap();
//! let mut b = Endpoint::new(Config::default(), 2).unwrap();
//! let mut now = Instant::now();
//! let conn = a.connect(b_addr, now).unwrap();
//! a.send(conn, Bytes::from_static(b"hello")).unwrap(); // waits for the handshake
//!
//! let mut buf = vec![0u8; a.config().max_datagram];
//! let mut got = None;
//! for _ in 0..10 {
//!     // "The network": move every datagram to the other side at once.
//!     while let Some(t) = a.poll_transmit(now, &mut buf) {
//!         b.handle_datagram(now, a_addr, &buf[..t.len]);
//!     }
//!     while let Some(t) = b.poll_transmit(now, &mut buf) {
//!         a.handle_datagram(now, b_addr, &buf[..t.len]);
//!     }
//!     while let Some(ev) = b.poll_event() {
//!         if let Event::Message { data, .. } = ev {
//!             got = Some(data);
//!         }
//!     }
//!     now += Duration::from_micros(10);
//! }
//! assert_eq!(got.as_deref(), Some(&b"hello"[..]));
//! ```
//!
//! # Buffers and copies
//!
//! `poll_transmit` writes a whole datagram (header and payload) into the
//! caller's buffer, which must hold `Config::max_datagram` bytes (the
//! UDP payload; the caller's own headroom for Ethernet/IPv4/UDP headers,
//! 42 bytes in insane-stack, comes before it). That is the send path's one
//! copy; the endpoint keeps `Bytes` slices of the message for
//! retransmission, never copies. Received messages are copied once out of
//! the datagram (single-packet messages) or into one reassembly buffer per
//! message.

#![warn(missing_docs)]

mod bitring;
pub mod config;
mod conn;
mod endpoint;
pub mod message;
pub mod stats;
pub mod wire;

pub use config::{Config, ConfigError};
pub use endpoint::{CloseReason, ConnId, ConnectError, Endpoint, Event, SendError, Transmit};
pub use message::Message;
pub use stats::{ConnStats, DropReason, EndpointStats};
