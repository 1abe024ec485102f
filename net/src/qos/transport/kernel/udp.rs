//! Best-effort datagrams over a kernel UDP socket: [`UdpTransport`].
//!
//! A best-effort message is one datagram, never split or truncated: its
//! payload limit is 65507 bytes on IPv4 (65535 minus the IPv4 and UDP
//! headers) and 65527 on IPv6, the largest datagram the kernel accepts
//! (it fragments datagrams over the path MTU, 1472 bytes of payload on
//! Ethernet; applications that must avoid IP fragmentation keep to that).
//! A longer message is an error naming the limit. Sends try the
//! non-blocking `sendto(2)` first and fall back to the driver's owned
//! send (io_uring `SENDMSG`, or epoll readiness) when the socket buffer is
//! full; receives likewise try `recvfrom(2)` into the pooled buffer, then
//! wait for the driver. A busy-polling transport (`SO_BUSY_POLL` set)
//! never waits for the driver: its receives retry until a datagram
//! arrives, keeping the core spinning while anyone waits.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use insane_buf::IoBuf;
use socket2::{SockAddr, SockRef};

use super::set_busy_poll;
use crate::UdpSocket;
use crate::qos::policy::TransportKind;
use crate::qos::rxbuf::{RxBuf, RxStorage};
use crate::qos::transport::{
    Op, Transport, TransportConfig, begin_send, lock, not_connected, oversize, udp_payload_limit,
};
use crate::qos::txbuf::{Pool, TxBuf};

/// Receive buffers of best-effort endpoints hold any datagram.
const UDP_RX_CAPACITY: usize = 65_535;

/// Best-effort datagrams over a kernel UDP socket (io_uring or epoll,
/// whichever drives the current core). See the [module docs](self).
pub struct UdpTransport {
    inner: Arc<UdpInner>,
}

struct UdpInner {
    sock: UdpSocket,
    kind: TransportKind,
    max_payload: usize,
    busy_poll: bool,
    connected: Mutex<Option<SocketAddr>>,
    tx: Pool,
    rx: Pool,
}

impl UdpTransport {
    /// Binds a UDP socket to `addr`. `kind` is the policy's choice
    /// (`*UdpBusyPoll` kinds set `SO_BUSY_POLL` and spin on receive).
    ///
    /// ```no_run
    /// use insane_net::qos::TransportKind as Kind;
    /// use insane_net::qos::transport::{Transport, TransportConfig, UdpTransport};
    /// # fn f() -> std::io::Result<()> {
    /// let t = UdpTransport::bind("127.0.0.1:0".parse().unwrap(), Kind::UringUdp, &TransportConfig::default())?;
    /// assert_eq!(t.max_payload(), 65_507);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As `socket(2)`/`bind(2)`; `SO_BUSY_POLL` failing (no privilege)
    /// is an error too, so a busy-poll choice is never silently weaker.
    pub fn bind(
        addr: SocketAddr,
        kind: TransportKind,
        config: &TransportConfig,
    ) -> io::Result<Self> {
        let sock = UdpSocket::from_std(std::net::UdpSocket::bind(addr)?)?;
        let busy_poll = kind.busy_polls();
        if busy_poll {
            set_busy_poll(sock.as_fd(), config.busy_poll_us)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot set SO_BUSY_POLL: {e}")))?;
        }
        let max_payload = udp_payload_limit(&addr);
        Ok(Self {
            inner: Arc::new(UdpInner {
                sock,
                kind,
                max_payload,
                busy_poll,
                connected: Mutex::new(None),
                tx: Pool::new(config.tx_buffers, max_payload, max_payload),
                rx: Pool::new(config.rx_buffers, UDP_RX_CAPACITY, UDP_RX_CAPACITY),
            }),
        })
    }
}

impl fmt::Debug for UdpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpTransport")
            .field("kind", &self.inner.kind)
            .field("local_addr", &self.inner.sock.local_addr().ok())
            .finish()
    }
}

impl Transport for UdpTransport {
    fn kind(&self) -> TransportKind {
        self.inner.kind
    }

    fn max_payload(&self) -> usize {
        self.inner.max_payload
    }

    fn headroom(&self) -> usize {
        0
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.sock.local_addr()
    }

    fn busy_polls(&self) -> bool {
        self.inner.busy_poll
    }

    fn try_buffer(&self) -> Option<TxBuf> {
        self.inner.tx.try_lend(0, self.inner.max_payload)
    }

    fn poll_buffer(&self, cx: &mut Context<'_>) -> Poll<TxBuf> {
        self.inner.tx.poll_lend(cx, 0, self.inner.max_payload)
    }

    fn tx_available(&self) -> usize {
        self.inner.tx.available()
    }

    fn rx_available(&self) -> usize {
        self.inner.rx.available()
    }

    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        buf: &mut Option<TxBuf>,
        peer: Option<SocketAddr>,
        op: &mut Op<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        let inner = &self.inner;
        let tx = match begin_send(cx, buf, op, inner.max_payload, |len| {
            oversize(
                len,
                inner.max_payload,
                "UDP payload limit (best-effort datagrams are never split or truncated)",
            )
        }) {
            Ok(tx) => tx,
            Err(poll) => return poll,
        };
        if peer.is_none() && lock(&inner.connected).is_none() {
            return Poll::Ready(Err(not_connected("this best-effort")));
        }
        // Fast path: the socket buffer almost always has room.
        let sock = SockRef::from(&inner.sock);
        let res = match peer {
            Some(p) => sock.send_to_with_flags(&tx, &SockAddr::from(p), libc::MSG_NOSIGNAL),
            None => sock.send_with_flags(&tx, libc::MSG_NOSIGNAL),
        };
        match res {
            Ok(_) => Poll::Ready(Ok(())),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                let inner = self.inner.clone();
                let headroom = tx.wire_headroom();
                op.start(
                    cx,
                    Box::pin(async move {
                        let wire = tx.into_wire().slice(headroom..);
                        let (res, _wire) = match peer {
                            Some(p) => inner.sock.send_to_owned(wire, p).await,
                            None => inner.sock.send_owned(wire).await,
                        };
                        res.map(|_| ())
                    }),
                )
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        op: &mut Op<io::Result<RxBuf>>,
    ) -> Poll<io::Result<RxBuf>> {
        if !op.is_idle() {
            return op.poll(cx);
        }
        let inner = &self.inner;
        let Poll::Ready(data) = inner.rx.poll_take(cx) else {
            // Every receive buffer is held: datagrams wait in the socket.
            return Poll::Pending;
        };
        let mut storage = RxStorage::new(data, inner.rx.clone());
        let v = storage.vec_mut();
        v.clear();
        v.reserve_exact(UDP_RX_CAPACITY);
        // Fast path: a datagram is already queued; the kernel writes it
        // straight into the pooled buffer.
        let res = SockRef::from(&inner.sock).recv_from(v.spare_capacity_mut());
        match res {
            Ok((n, from)) => {
                // SAFETY: `recvfrom` initialised the first `n` bytes.
                unsafe { v.set_len(n) };
                Poll::Ready(ip(from).map(|from| storage.into_rxbuf(0, from)))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                if inner.busy_poll {
                    // Spin: retry at the next turn of the core's loop.
                    drop(storage);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                let inner = self.inner.clone();
                op.start(
                    cx,
                    Box::pin(async move {
                        let (res, storage) = inner.sock.recv_from_owned(storage).await;
                        let (_, from) = res?;
                        Ok(storage.into_rxbuf(0, from))
                    }),
                )
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_connect(
        &self,
        _cx: &mut Context<'_>,
        peer: SocketAddr,
        _op: &mut Op<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        let res = SockRef::from(&self.inner.sock).connect(&SockAddr::from(peer));
        if res.is_ok() {
            *lock(&self.inner.connected) = Some(peer);
        }
        Poll::Ready(res)
    }
}

fn ip(addr: SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket()
        .ok_or_else(|| io::Error::other("received a datagram without an IP source address"))
}
