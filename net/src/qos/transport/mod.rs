//! The [`Transport`] trait every technology implements, what they share
//! ([`Op`], [`TransportConfig`]), and the technologies themselves, one
//! module each.
//!
//! # The trait
//!
//! `Transport` is object safe and poll based, so an
//! [`Endpoint`](super::Endpoint) holds a `Box<dyn Transport>` whatever
//! carries it, and a driver that completes an operation at once (DPDK,
//! AF_XDP: a descriptor on a ring) never allocates or suspends. An
//! operation that must wait keeps its state in an [`Op`] owned by the
//! caller — one per operation in flight, so operations on one transport
//! may run concurrently — and the caller polls again with the same `Op`
//! until it is ready. Dropping an `Op` cancels its operation.
//!
//! # Technologies
//!
//! One module per technology, each holding its probe, its bind and its
//! `Transport` (and, for the kernel-bypass ones, its frame device):
//! [`kernel`] (UDP and TCP sockets on io_uring or epoll, whichever drives
//! the core), [`xdp`] (AF_XDP) and [`dpdk`] (DPDK, feature `dpdk`), both
//! on [`stack`] (the userspace stack over any frame device), [`rdma`]
//! (probe only: no RDMA driver yet), and [`reliable`] (insane's reliable
//! datagrams over any of the best-effort ones). The technology table
//! (`technology.rs`) lists them: `Endpoint::bind` walks the policy's
//! choices through it.

pub mod dpdk;
pub mod kernel;
pub mod rdma;
pub mod reliable;
pub mod stack;
pub(crate) mod technology;
pub mod xdp;

pub use kernel::tcp::TcpTransport;
pub use kernel::udp::UdpTransport;
pub use reliable::ReliableTransport;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use super::policy::TransportKind;
use super::rxbuf::RxBuf;
use super::txbuf::TxBuf;

/// A boxed operation of a [`Transport`] that had to wait.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The state of one operation of a [`Transport`] in flight, owned by the
/// caller: create one per operation, pass it to every poll of that
/// operation. Dropping it cancels the operation.
///
/// ```
/// use insane_net::qos::transport::Op;
/// let op: Op<std::io::Result<()>> = Op::new();
/// assert!(op.is_idle());
/// ```
pub struct Op<T> {
    fut: Option<BoxFuture<T>>,
}

impl<T> Op<T> {
    /// An idle operation (nothing started).
    pub fn new() -> Self {
        Self { fut: None }
    }

    /// Whether nothing is in flight: the next poll starts the operation.
    pub fn is_idle(&self) -> bool {
        self.fut.is_none()
    }

    /// Starts `fut` as this operation and polls it once.
    pub fn start(&mut self, cx: &mut Context<'_>, fut: BoxFuture<T>) -> Poll<T> {
        self.fut = Some(fut);
        self.poll(cx)
    }

    /// Polls the operation in flight; becomes idle when it completes.
    ///
    /// # Panics
    /// When the operation is idle.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        let fut = self.fut.as_mut().expect("Op::poll on an idle operation");
        let out = fut.as_mut().poll(cx);
        if out.is_ready() {
            self.fut = None;
        }
        out
    }
}

impl<T> Default for Op<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Op").field("idle", &self.is_idle()).finish()
    }
}

/// What carries a QoS endpoint's messages: one driver family's way of
/// sending and receiving whole messages in pooled buffers. See the
/// [module docs](self).
///
/// Poll methods follow the futures convention: `Pending` means `cx` will
/// be woken when polling again may make progress.
pub trait Transport: Send + Sync + fmt::Debug {
    /// Which transport of the policy this is.
    fn kind(&self) -> TransportKind;

    /// The largest message payload, in bytes.
    fn max_payload(&self) -> usize;

    /// Header room the transport reserves in front of each [`TxBuf`].
    fn headroom(&self) -> usize;

    /// The local address.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Whether receives busy-poll (spin) instead of sleeping.
    fn busy_polls(&self) -> bool;

    /// A send buffer now, or `None` when the pool lends none (all held).
    fn try_buffer(&self) -> Option<TxBuf>;

    /// A send buffer; `Pending` while all are held (woken when one comes
    /// back).
    fn poll_buffer(&self, cx: &mut Context<'_>) -> Poll<TxBuf>;

    /// Send buffers the pool can lend right now.
    fn tx_available(&self) -> usize;

    /// Receive buffers the pool can lend right now (not held by the
    /// application or being filled).
    fn rx_available(&self) -> usize;

    /// Sends one message. The first poll takes the buffer out of `buf`;
    /// later polls (same `op`) continue the send. `peer`: the destination,
    /// or `None` for the connected peer.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        buf: &mut Option<TxBuf>,
        peer: Option<SocketAddr>,
        op: &mut Op<io::Result<()>>,
    ) -> Poll<io::Result<()>>;

    /// Whether [`poll_send`](Self::poll_send) and
    /// [`poll_recv`](Self::poll_recv) spend one unit of the task's
    /// cooperative budget per message themselves
    /// ([`insane_runtime::task::coop`]). [`Endpoint`](super::Endpoint)
    /// spends one per message for the transports that do not, so a
    /// message costs one unit either way. The default: no.
    fn spends_coop_budget(&self) -> bool {
        false
    }

    /// Makes the messages sent so far leave now, where the transport
    /// batches them (the userspace stack hands a device's frames over at
    /// its next poll): the endpoint calls it after each message of a
    /// critical or deadline flow, so that one does not wait in the batch
    /// for the core's turn to end. Nothing to do for the kernel
    /// transports, whose sends leave within the call.
    fn flush(&self) {}

    /// Ends sending in order: ready once what was sent so far has left
    /// as far as the transport can tell, then closed — the step behind
    /// [`Endpoint::shutdown`](super::Endpoint::shutdown), which first
    /// waits for the endpoint's queued sends to reach the transport.
    ///
    /// - reliable datagrams: every connection closes in order (its
    ///   messages acknowledged, then CLOSE exchanged); an error names each
    ///   peer that did not acknowledge everything within
    ///   [`TransportConfig::linger`] and how many messages are lost;
    /// - kernel TCP: `shutdown(SHUT_WR)` on every connection (the kernel
    ///   delivers what was written, then FIN), as tokio's
    ///   `AsyncWriteExt::shutdown`;
    /// - best effort (the default): [`flush`](Self::flush); datagrams
    ///   have no acknowledgement to wait for.
    fn poll_shutdown(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flush();
        Poll::Ready(Ok(()))
    }

    /// Receives one message.
    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        op: &mut Op<io::Result<RxBuf>>,
    ) -> Poll<io::Result<RxBuf>>;

    /// Counters for diagnosis (drops and their reasons, device
    /// statistics), when the transport keeps any; the kernel transports
    /// keep none (the kernel's are in `/proc/net/snmp`).
    ///
    /// ```no_run
    /// # fn f(ep: insane_net::qos::Endpoint) {
    /// if let Some(d) = ep.transport().diagnostics() {
    ///     eprintln!("{d}");
    /// }
    /// # }
    /// ```
    fn diagnostics(&self) -> Option<String> {
        None
    }

    /// A `poll_recv` that returned `Pending` will not be polled again
    /// (its future was dropped). A transport whose waiting receiver does
    /// work for it (reliable datagrams: a receiver on the home core runs
    /// the protocol's receive itself) hands that work back to its own
    /// task here. [`Endpoint::recv`](super::Endpoint::recv) calls it; the
    /// default does nothing.
    fn cancel_recv(&self) {}

    /// Makes `peer` the default destination (UDP: `connect(2)`, which
    /// also filters receives; TCP: opens a connection).
    fn poll_connect(
        &self,
        cx: &mut Context<'_>,
        peer: SocketAddr,
        op: &mut Op<io::Result<()>>,
    ) -> Poll<io::Result<()>>;
}

/// Sizes and options of a transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Largest reliable message (default 16 MiB).
    pub max_message: usize,
    /// Send buffers lent at most at a time (default 256).
    pub tx_buffers: usize,
    /// Receive buffers lent at most at a time (default 256).
    pub rx_buffers: usize,
    /// `SO_BUSY_POLL` in microseconds for busy-polling transports
    /// (default 50).
    pub busy_poll_us: u32,
    /// A transport to try before the policy's own order, when it can
    /// serve the endpoint's QoS (it is in the QoS's list) and this host
    /// has it (default `None`: the policy's order). For a path the policy
    /// ranks lower on this machine but that measures faster on yours, and
    /// for benchmarks that compare transports; `explain()` says
    /// "(preferred)".
    ///
    /// ```no_run
    /// use insane_net::qos::{Endpoint, Qos, TransportConfig, TransportKind};
    /// # async fn f() -> std::io::Result<()> {
    /// let qos = Qos::builder().critical().reliable().poll().build();
    /// let config = TransportConfig { prefer: Some(TransportKind::UdpReliable), ..Default::default() };
    /// let ep = Endpoint::bind_with("127.0.0.1:0", qos, config).await?;
    /// assert_eq!(ep.driver(), TransportKind::UdpReliable);
    /// # Ok(())
    /// # }
    /// ```
    pub prefer: Option<TransportKind>,
    /// Reliable datagrams: a connection whose peer sent nothing for this
    /// long fails, and the next `send`/`recv` says so, naming the peer
    /// (default 1 s; at least 10 ms). A live but quiet peer is asked for
    /// an ACK (keepalive) every fifth of it, at most every 200 ms.
    pub peer_timeout: std::time::Duration,
    /// Reliable datagrams: how long the ordered close of a dropped (or
    /// [shut down](super::Endpoint::shutdown)) endpoint may take, as
    /// `SO_LINGER` (tokio's `TcpStream::set_linger`). Dropping the
    /// endpoint never blocks: its connections close in the background
    /// (every message accepted is delivered and acknowledged, then CLOSE
    /// is exchanged) for at most this long, then what is left is given
    /// up — counted ([`ReliableTransport::abandoned_messages`]) and
    /// logged with `tracing::warn!`, naming the peer — and the port is
    /// released. `None` (default): the peer timeout. `Some(Duration::ZERO)`:
    /// abort at once — nothing more is sent (no CLOSE, unlike `SO_LINGER`'s
    /// RST: the peers notice by their own peer timeout), unacknowledged
    /// messages are lost and counted, and the port is released at the
    /// driver's next turn. A runtime that shuts down cancels a close
    /// still lingering (never waits for it): call `shutdown().await`
    /// before leaving `block_on` to be sure everything was delivered.
    pub linger: Option<std::time::Duration>,
}

impl Default for TransportConfig {
    /// 16 MiB messages, 256 buffers each way, 50 µs busy-poll, the
    /// policy's order, a 1 s peer timeout, lingering for the peer
    /// timeout.
    fn default() -> Self {
        Self {
            max_message: 16 << 20,
            tx_buffers: 256,
            rx_buffers: 256,
            busy_poll_us: 50,
            prefer: None,
            peer_timeout: std::time::Duration::from_secs(1),
            linger: None,
        }
    }
}

/// The UDP payload limit for `addr`'s family: 65507 bytes on IPv4, 65527
/// on IPv6.
///
/// ```
/// use insane_net::qos::transport::udp_payload_limit;
/// assert_eq!(udp_payload_limit(&"127.0.0.1:1".parse().unwrap()), 65_507);
/// assert_eq!(udp_payload_limit(&"[::1]:1".parse().unwrap()), 65_527);
/// ```
pub fn udp_payload_limit(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 65_535 - 20 - 8,
        SocketAddr::V6(_) => 65_535 - 8,
    }
}

/// The opening every [`Transport::poll_send`] shares: an operation in
/// flight is polled on (`Err(poll)`); otherwise the buffer is taken and
/// checked against the transport's `limit` (`too_large(len)` is the
/// error of a longer one), and comes back to be sent (`Ok(buf)`).
pub(crate) fn begin_send(
    cx: &mut Context<'_>,
    buf: &mut Option<TxBuf>,
    op: &mut Op<io::Result<()>>,
    limit: usize,
    too_large: impl FnOnce(usize) -> io::Error,
) -> Result<TxBuf, Poll<io::Result<()>>> {
    if !op.is_idle() {
        return Err(op.poll(cx));
    }
    let Some(tx) = buf.take() else {
        return Err(Poll::Ready(Err(no_buffer())));
    };
    if tx.len() > limit {
        return Err(Poll::Ready(Err(too_large(tx.len()))));
    }
    Ok(tx)
}

/// A message of `len` bytes over `limit`, the `what` (e.g. "maximum
/// reliable message").
pub(crate) fn oversize(len: usize, limit: usize, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("a message of {len} bytes exceeds the {what} of {limit} bytes"),
    )
}

pub(crate) fn not_connected(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        format!("{what} endpoint has no default peer: connect() first, or use send_to()"),
    )
}

/// The error of a `poll_send` whose first poll had no buffer to take
/// (shared by every `Transport`).
pub(crate) fn no_buffer() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "poll_send started without a buffer",
    )
}

/// Locks `m`, ignoring poisoning (the data stays consistent: no
/// transport panics while holding a lock).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
