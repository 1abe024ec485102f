//! Reliable messages over best-effort datagrams: insane's own protocol
//! (`insane-reliable`, specified in `docs/reliable-datagrams.md`) run over
//! any datagram [`Transport`] — kernel busy-poll UDP, or the userspace
//! stack over DPDK or AF_XDP. One implementation, [`ReliableTransport`],
//! serves every path; the policy names each as its own kind
//! ([`TransportKind::DpdkReliable`], [`TransportKind::XdpReliable`],
//! [`TransportKind::UdpReliable`]).
//!
//! # Semantics
//!
//! The same as the kernel TCP transport's
//! ([`TcpTransport`](super::TcpTransport)):
//!
//! * the endpoint listens: a peer's first datagram opens a connection,
//!   accepted at once;
//! * `send_to(buf, peer)` opens a connection to `peer` on its first
//!   message (the handshake travels with it, no round trip is waited
//!   for) and reuses it afterwards; `connect(peer)` opens one and makes
//!   `peer` the default destination of `send`;
//! * `recv()` yields whole messages from every connection, in order per
//!   connection, each with [`RxBuf::peer`](crate::qos::RxBuf::peer) set;
//!   a message is at most [`TransportConfig::max_message`] bytes (16 MiB
//!   by default);
//! * backpressure, never loss: a message accepted by `send` is kept until
//!   the peer acknowledges it. When the peer's application stops
//!   receiving, its receive pool fills, its endpoint stops handing out
//!   messages and so stops returning credit, our connection's send buffer
//!   fills and `send` waits (`poll_send` is `Pending`) until there is room;
//! * a dead peer (nothing heard for the protocol's idle timeout, 1 s) or a
//!   restarted one (a new epoch in its handshake) ends the connection: the
//!   next `recv` and the next `send` to that peer fail with an error
//!   naming the peer and the cause; a later send opens a new connection;
//! * closing loses nothing silently: dropping the transport closes every
//!   connection in order in the background (the driver lingers until each
//!   has its messages acknowledged and CLOSE exchanged, at most
//!   [`TransportConfig::linger`], by default the peer timeout), then
//!   releases the inner transport; what it had to give up is counted
//!   ([`ReliableTransport::abandoned_messages`]) and logged naming the
//!   peer. [`Transport::poll_shutdown`] (`Endpoint::shutdown`) closes the
//!   same way and waits. The peer gets every message, then its
//!   connection ends by our CLOSE (no error there).
//!
//! # Who runs the protocol
//!
//! The protocol endpoint is sans-IO. On the core that bound the transport
//! (the inner transport's core) the application's own calls run it, with
//! no hop through another task: `send` queues the message and transmits
//! it at once (its DATA packet carries the ACK of the message it
//! answers), and a `recv` that finds no message feeds the inner
//! transport's datagrams to the protocol itself — its waker is then the
//! inner transport's, so an arriving datagram wakes the receiver
//! directly. One task per transport, the *driver*, does the rest: it runs
//! the protocol's timers (one precise runtime timer per transport,
//! [`sleep_until_precise`](insane_runtime::time::sleep_until_precise):
//! a 300 µs retransmission timeout fires at its deadline, not at the
//! next 1 ms tick; armed only when the protocol's next deadline comes
//! before the armed one: a timer that fires early is re-armed then, so
//! messages do not re-arm it),
//! finishes transmits the application could not, sends the ACKs no answer
//! carried (after the application's turn), and moves datagrams and events
//! while no receiver on the home core waits (one on another core, or
//! none). When the inner transport busy-polls (every kind here does), the
//! waiting receiver, or else the driver, busy-polls with it.
//!
//! # Copies
//!
//! Send: the application writes into a heap [`TxBuf`](crate::qos::TxBuf),
//! which becomes the protocol's `Bytes` without a copy; each fragment is
//! copied once into a datagram buffer (a device frame on the stack). Zero
//! copy would pass the fragment's `Bytes` as a second gather segment to
//! the inner transport (`sendmsg` with two iovecs, a chained mbuf).
//! Receive: the protocol copies a message out of its datagrams once (into
//! one buffer per message), which becomes the `RxBuf` without another
//! copy.
//!
//! # Datagrams
//!
//! At most 1472 bytes (a 1500-byte MTU minus IPv4 and UDP headers), or the
//! inner transport's limit when lower; the peers agree on the smaller of
//! their limits in the handshake.

mod transport;

pub use transport::{AbandonedMessages, ReliableTransport};

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use insane_runtime::driver::{self, DriverKind};

use super::technology::{BindFuture, BoundTransport, Technology};
use super::{Transport, TransportConfig};
use crate::config::Config;
use crate::qos::policy::{Capabilities, TransportKind};

/// The protocol over another technology's best-effort datagrams: one
/// entry of the technology table per path, because each path keeps its
/// technology's address rule and fallback (the `[dpdk]` and `[xdp]`
/// stacks serve only their section's address and fall back when their
/// device cannot be opened; kernel UDP serves any address).
pub(crate) struct ReliableOver {
    name: &'static str,
    kinds: &'static [TransportKind],
    base: &'static dyn Technology,
}

/// Reliable datagrams over the DPDK stack.
pub(crate) static OVER_DPDK: ReliableOver = ReliableOver {
    name: "DPDK reliable datagrams",
    kinds: &[TransportKind::DpdkReliable],
    base: &super::dpdk::Dpdk,
};

/// Reliable datagrams over the AF_XDP stack.
pub(crate) static OVER_XDP: ReliableOver = ReliableOver {
    name: "AF_XDP reliable datagrams",
    kinds: &[TransportKind::XdpReliable],
    base: &super::xdp::Xdp,
};

/// Reliable datagrams over kernel busy-poll UDP.
pub(crate) static OVER_UDP: ReliableOver = ReliableOver {
    name: "UDP reliable datagrams",
    kinds: &[TransportKind::UdpReliable],
    base: &super::kernel::Kernel,
};

/// The best-effort kind carrying `kind`'s datagrams on this core.
fn inner_kind(kind: TransportKind) -> io::Result<TransportKind> {
    Ok(match kind {
        TransportKind::DpdkReliable => TransportKind::DpdkUdp,
        TransportKind::XdpReliable => TransportKind::XdpUdp,
        TransportKind::UdpReliable => match driver::current() {
            Some((DriverKind::Epoll, _)) => TransportKind::EpollUdpBusyPoll,
            Some((DriverKind::Uring, _)) => TransportKind::UringUdpBusyPoll,
            None => {
                return Err(io::Error::other(
                    "reliable datagrams over kernel UDP need a core with an I/O driver",
                ));
            }
        },
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{other} is not a reliable-datagram kind"),
            ));
        }
    })
}

impl Technology for ReliableOver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn kinds(&self) -> &'static [TransportKind] {
        self.kinds
    }

    fn probe(&self, _host: &Config, _caps: &mut Capabilities) {
        // The kinds share their base technology's entry, probed there.
    }

    fn own_address(&self, host: &Config) -> Option<(std::net::Ipv4Addr, String)> {
        self.base.own_address(host)
    }

    fn falls_back(&self) -> bool {
        self.base.falls_back()
    }

    fn bind<'a>(
        &'a self,
        kind: TransportKind,
        addr: SocketAddr,
        config: &'a TransportConfig,
        host: &'a Config,
    ) -> BindFuture<'a> {
        Box::pin(async move {
            let inner_kind = inner_kind(kind)?;
            // Over a device, received frames stay in the messages they
            // carry (no copy): the inner transport lends enough of them.
            let mut inner_config = *config;
            if kind != TransportKind::UdpReliable {
                inner_config.rx_buffers = inner_config.rx_buffers.max(transport::LENT_FRAMES);
            }
            let inner = self
                .base
                .bind(inner_kind, addr, &inner_config, host)
                .await?;
            let transport: Arc<dyn Transport> =
                Arc::new(ReliableTransport::new(inner.transport, kind, config)?);
            let mut detail = format!("reliable datagrams over {inner_kind}");
            if !inner.detail.is_empty() {
                detail.push_str(", ");
                detail.push_str(&inner.detail);
            }
            Ok(BoundTransport { transport, detail })
        })
    }
}
