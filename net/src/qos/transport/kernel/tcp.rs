//! Reliable messages over kernel TCP: [`TcpTransport`].
//!
//! A reliable message travels as a 4-byte big-endian length followed by
//! its payload; the length is written in place into the
//! [`TxBuf`]'s header room, so header and payload go out in one send. A
//! message is at most the configured maximum (16 MiB by default); a peer
//! announcing a longer one gets its connection closed and the endpoint's
//! next receive reports an error naming the maximum. The transport
//! listens on its address and accepts connections in the background; each
//! connection has a reader task (on the core that bound the endpoint, or
//! that opened the connection) reading whole messages into pooled buffers
//! of exactly their size. When the receive pool is empty, readers stop
//! reading and TCP flow control slows the senders down: nothing is lost.

use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use insane_buf::{IoBuf, IoBufMut};
use insane_runtime::task::{JoinHandle, spawn};
use socket2::SockRef;

use super::set_busy_poll;
use crate::owned::ops::spare_mut;
use crate::qos::policy::TransportKind;
use crate::qos::rxbuf::{RxBuf, RxStorage};
use crate::qos::transport::{
    Op, Transport, TransportConfig, begin_send, lock, not_connected, oversize,
};
use crate::qos::txbuf::{Pool, TxBuf};
use crate::{TcpListener, TcpStream};

/// Length of the frame header of a reliable message.
const FRAME_HEADER: usize = 4;
/// Send buffers of reliable endpoints start with this much storage.
const TCP_TX_INITIAL: usize = 4096;
/// Pooled buffers that grew past this are freed on return.
const TCP_RETAIN: usize = 1 << 20;

/// Reliable messages over kernel TCP (io_uring or epoll), length-prefixed.
/// See the [module docs](self).
pub struct TcpTransport {
    inner: Arc<TcpInner>,
}

struct TcpInner {
    listener: TcpListener,
    kind: TransportKind,
    max_message: usize,
    busy_poll_us: Option<u32>,
    tx: Pool,
    rx: Pool,
    conns: Mutex<HashMap<SocketAddr, Arc<Conn>>>,
    inbox: Mutex<Inbox>,
    default_peer: Mutex<Option<SocketAddr>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Default)]
struct Inbox {
    queue: std::collections::VecDeque<io::Result<RxBuf>>,
    waiters: Vec<Waker>,
}

/// One connection of a reliable endpoint.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// A message is being written (frames must not interleave).
    writing: AtomicBool,
    write_waiters: Mutex<Vec<Waker>>,
}

/// Exclusive right to write frames on a connection. Dropped in the middle
/// of a frame (a cancelled send), it shuts the connection down: the peer
/// sees the connection end rather than a corrupt stream.
struct WriteGuard {
    conn: Arc<Conn>,
    mid_frame: bool,
}

impl Conn {
    fn try_lock(self: &Arc<Self>) -> Option<WriteGuard> {
        self.writing
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| WriteGuard {
                conn: self.clone(),
                mid_frame: false,
            })
    }

    async fn lock(self: &Arc<Self>) -> WriteGuard {
        poll_fn(|cx| {
            if let Some(g) = self.try_lock() {
                return Poll::Ready(g);
            }
            lock(&self.write_waiters).push(cx.waker().clone());
            match self.try_lock() {
                Some(g) => Poll::Ready(g),
                None => Poll::Pending,
            }
        })
        .await
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        if self.mid_frame {
            let _ = self
                .conn
                .stream
                .as_ref_sock()
                .shutdown(std::net::Shutdown::Both);
        }
        self.conn.writing.store(false, Ordering::Release);
        let waiters = std::mem::take(&mut *lock(&self.conn.write_waiters));
        for w in waiters {
            w.wake();
        }
    }
}

trait AsSockRef {
    fn as_ref_sock(&self) -> SockRef<'_>;
}

impl AsSockRef for TcpStream {
    fn as_ref_sock(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

impl TcpTransport {
    /// Listens on `addr` and starts accepting connections in the
    /// background (on the current core). `kind` is the policy's choice.
    ///
    /// ```no_run
    /// use insane_net::qos::TransportKind as Kind;
    /// use insane_net::qos::transport::{TcpTransport, Transport, TransportConfig};
    /// # async fn f() -> std::io::Result<()> {
    /// let t = TcpTransport::bind("127.0.0.1:0".parse().unwrap(), Kind::UringTcp, &TransportConfig::default()).await?;
    /// assert_eq!(t.max_payload(), 16 << 20);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As `socket(2)`/`bind(2)`/`listen(2)`, or a maximum message over
    /// what the 4-byte length prefix can carry.
    pub async fn bind(
        addr: SocketAddr,
        kind: TransportKind,
        config: &TransportConfig,
    ) -> io::Result<Self> {
        if u32::try_from(config.max_message).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a reliable endpoint's maximum message is at most {} bytes, got {}",
                    u32::MAX,
                    config.max_message
                ),
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let busy_poll_us = kind.busy_polls().then_some(config.busy_poll_us);
        if let Some(us) = busy_poll_us {
            set_busy_poll(listener.as_fd(), us)?;
        }
        let inner = Arc::new(TcpInner {
            listener,
            kind,
            max_message: config.max_message,
            busy_poll_us,
            tx: Pool::new(config.tx_buffers, TCP_TX_INITIAL + FRAME_HEADER, TCP_RETAIN),
            rx: Pool::new(config.rx_buffers, 0, TCP_RETAIN),
            conns: Mutex::new(HashMap::new()),
            inbox: Mutex::new(Inbox::default()),
            default_peer: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
        });
        let accept = spawn(accept_loop(inner.clone()));
        lock(&inner.tasks).push(accept);
        Ok(Self { inner })
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        for t in lock(&self.inner.tasks).drain(..) {
            t.abort();
        }
        lock(&self.inner.conns).clear();
    }
}

impl fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpTransport")
            .field("kind", &self.inner.kind)
            .field("local_addr", &self.inner.listener.local_addr().ok())
            .field("connections", &lock(&self.inner.conns).len())
            .finish()
    }
}

impl TcpInner {
    fn deliver(&self, msg: io::Result<RxBuf>) {
        let waiters = {
            let mut inbox = lock(&self.inbox);
            inbox.queue.push_back(msg);
            std::mem::take(&mut inbox.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }

    /// Registers a new connection and starts its reader on this core.
    fn add_conn(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) -> Arc<Conn> {
        let _ = stream.set_nodelay(true);
        if let Some(us) = self.busy_poll_us {
            let _ = set_busy_poll(stream.as_fd(), us);
        }
        let conn = Arc::new(Conn {
            stream,
            peer,
            writing: AtomicBool::new(false),
            write_waiters: Mutex::new(Vec::new()),
        });
        lock(&self.conns).insert(peer, conn.clone());
        let reader = spawn(read_loop(self.clone(), conn.clone()));
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(reader);
        conn
    }

    /// The connection to `peer`, opened if there is none.
    async fn conn_to(self: &Arc<Self>, peer: SocketAddr) -> io::Result<Arc<Conn>> {
        if let Some(c) = lock(&self.conns).get(&peer) {
            return Ok(c.clone());
        }
        let stream = TcpStream::connect(peer).await?;
        if let Some(c) = lock(&self.conns).get(&peer) {
            // Opened meanwhile by a concurrent send: use that one.
            return Ok(c.clone());
        }
        Ok(self.add_conn(stream, peer))
    }
}

async fn accept_loop(inner: Arc<TcpInner>) {
    loop {
        match inner.listener.accept().await {
            Ok((stream, peer)) => {
                inner.add_conn(stream, peer);
            }
            Err(e) => {
                // EMFILE and the like: report, back off, keep listening.
                tracing::warn!("reliable endpoint: accept failed: {e}");
                insane_runtime::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Reads into `buf` until it holds `want` bytes. `Ok(true)`: done;
/// `Ok(false)`: the stream ended before the first byte; an end in the
/// middle is `UnexpectedEof`.
async fn read_exact<B: IoBufMut>(
    stream: &TcpStream,
    mut buf: B,
    want: usize,
) -> (io::Result<bool>, B) {
    let first = buf.bytes_init();
    loop {
        let have = buf.bytes_init();
        if have >= want {
            return (Ok(true), buf);
        }
        let res = {
            let dst = &mut spare_mut(&mut buf, have)[..want - have];
            SockRef::from(stream).recv(dst)
        };
        let n = match res {
            Ok(n) => {
                // SAFETY: `recv(2)` initialised `n` bytes from `have`.
                unsafe { buf.set_init(have + n) };
                n
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let (res, slice) = stream.read_owned(buf.slice(have..want)).await;
                buf = slice.into_inner();
                match res {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return (Err(e), buf),
                }
            }
            Err(e) => return (Err(e), buf),
        };
        if n == 0 {
            if have == first {
                return (Ok(false), buf);
            }
            return (
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the peer closed the connection in the middle of a message ({} of {} bytes)",
                        have - first,
                        want - first
                    ),
                )),
                buf,
            );
        }
    }
}

/// Reads whole messages from one connection into the endpoint's inbox.
async fn read_loop(inner: Arc<TcpInner>, conn: Arc<Conn>) {
    let mut header: Vec<u8> = Vec::with_capacity(FRAME_HEADER);
    loop {
        header.clear();
        let (res, h) = read_exact(&conn.stream, header, FRAME_HEADER).await;
        header = h;
        match res {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                inner.deliver(Err(e));
                break;
            }
        }
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > inner.max_message {
            inner.deliver(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "peer {} sent a message of {len} bytes, over this endpoint's maximum of {} bytes; connection closed",
                    conn.peer, inner.max_message
                ),
            )));
            let _ = conn.stream.as_ref_sock().shutdown(std::net::Shutdown::Both);
            break;
        }
        // Backpressure: no buffer, no reading (TCP flow control takes over).
        let data = poll_fn(|cx| inner.rx.poll_take(cx)).await;
        let mut storage = RxStorage::new(data, inner.rx.clone());
        storage.vec_mut().reserve_exact(len);
        let (res, storage) = read_exact(&conn.stream, storage, len).await;
        match res {
            Ok(_) if len == 0 || storage.bytes_init() == len => {
                inner.deliver(Ok(storage.into_rxbuf(0, conn.peer)));
            }
            Ok(_) => {
                inner.deliver(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the peer {} closed the connection before a message of {len} bytes",
                        conn.peer
                    ),
                )));
                break;
            }
            Err(e) => {
                inner.deliver(Err(e));
                break;
            }
        }
    }
    let mut conns = lock(&inner.conns);
    if conns.get(&conn.peer).is_some_and(|c| Arc::ptr_eq(c, &conn)) {
        conns.remove(&conn.peer);
    }
}

/// Writes the frame of `tx` (header in its headroom, or sent first when
/// it has none) under `guard`, `sent` bytes of the frame being out.
async fn write_frame(mut guard: WriteGuard, tx: TxBuf, sent: usize) -> io::Result<()> {
    let len = tx.len();
    let headroom = tx.wire_headroom();
    let stream = &guard.conn.stream;
    guard.mid_frame = true;
    let res = if headroom >= FRAME_HEADER {
        let start = headroom - FRAME_HEADER + sent;
        let (res, _wire) = stream.write_all_owned(tx.into_wire().slice(start..)).await;
        res
    } else {
        // A buffer without header room (lent by another kind of
        // endpoint): the header goes first, on its own.
        let header = (len as u32).to_be_bytes().to_vec();
        let (res, _) = stream.write_all_owned(header).await;
        match res {
            Ok(()) => {
                let (res, _wire) = stream
                    .write_all_owned(tx.into_wire().slice(headroom..))
                    .await;
                res
            }
            Err(e) => Err(e),
        }
    };
    if res.is_ok() {
        guard.mid_frame = false;
    }
    res
}

impl Transport for TcpTransport {
    fn kind(&self) -> TransportKind {
        self.inner.kind
    }

    fn max_payload(&self) -> usize {
        self.inner.max_message
    }

    fn headroom(&self) -> usize {
        FRAME_HEADER
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.listener.local_addr()
    }

    fn busy_polls(&self) -> bool {
        self.inner.busy_poll_us.is_some()
    }

    fn try_buffer(&self) -> Option<TxBuf> {
        self.inner.tx.try_lend(FRAME_HEADER, self.inner.max_message)
    }

    fn poll_buffer(&self, cx: &mut Context<'_>) -> Poll<TxBuf> {
        self.inner
            .tx
            .poll_lend(cx, FRAME_HEADER, self.inner.max_message)
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
        let mut tx = match begin_send(cx, buf, op, inner.max_message, |len| {
            oversize(len, inner.max_message, "maximum reliable message")
        }) {
            Ok(tx) => tx,
            Err(poll) => return poll,
        };
        let Some(peer) = peer.or(*lock(&inner.default_peer)) else {
            return Poll::Ready(Err(not_connected("this reliable")));
        };
        let conn = lock(&inner.conns).get(&peer).cloned();
        let headroom = tx.wire_headroom();
        if headroom >= FRAME_HEADER {
            let len = tx.len() as u32;
            tx.frame_mut()[headroom - FRAME_HEADER..headroom].copy_from_slice(&len.to_be_bytes());
        }
        // Fast path: an open, idle connection takes the whole frame at once.
        if let Some(guard) = conn
            .as_ref()
            .filter(|_| headroom >= FRAME_HEADER)
            .and_then(|c| c.try_lock())
        {
            let frame = &tx.frame_mut()[headroom - FRAME_HEADER..];
            let res = guard
                .conn
                .stream
                .as_ref_sock()
                .send_with_flags(frame, libc::MSG_NOSIGNAL);
            let sent = match res {
                Ok(n) if n == frame.len() => return Poll::Ready(Ok(())),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    0
                }
                Err(e) => return Poll::Ready(Err(e)),
            };
            return op.start(cx, Box::pin(write_frame(guard, tx, sent)));
        }
        let inner = self.inner.clone();
        op.start(
            cx,
            Box::pin(async move {
                let conn = match conn {
                    Some(c) => c,
                    None => inner.conn_to(peer).await?,
                };
                let guard = conn.lock().await;
                write_frame(guard, tx, 0).await
            }),
        )
    }

    /// `shutdown(SHUT_WR)` on every connection: the kernel delivers what
    /// was written, then FIN (the endpoint's sends were all written
    /// before: [`Endpoint::shutdown`](crate::qos::Endpoint::shutdown)
    /// waits for them).
    fn poll_shutdown(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let conns: Vec<Arc<Conn>> = lock(&self.inner.conns).values().cloned().collect();
        for conn in conns {
            match conn
                .stream
                .as_ref_sock()
                .shutdown(std::net::Shutdown::Write)
            {
                // Already reset or shut down by the peer: nothing to end.
                Err(e) if e.kind() != io::ErrorKind::NotConnected => {
                    return Poll::Ready(Err(io::Error::new(
                        e.kind(),
                        format!("shutdown of the connection to {}: {e}", conn.peer),
                    )));
                }
                _ => {}
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        _op: &mut Op<io::Result<RxBuf>>,
    ) -> Poll<io::Result<RxBuf>> {
        let mut inbox = lock(&self.inner.inbox);
        match inbox.queue.pop_front() {
            Some(msg) => Poll::Ready(msg),
            None => {
                if !inbox.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    inbox.waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    fn poll_connect(
        &self,
        cx: &mut Context<'_>,
        peer: SocketAddr,
        op: &mut Op<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        if !op.is_idle() {
            return op.poll(cx);
        }
        let inner = self.inner.clone();
        op.start(
            cx,
            Box::pin(async move {
                inner.conn_to(peer).await?;
                *lock(&inner.default_peer) = Some(peer);
                Ok(())
            }),
        )
    }
}
