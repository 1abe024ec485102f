//! [`UdpSocket`]: a UDP socket with tokio's API, all methods on `&self`.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{Context, Poll};

use insane_runtime::driver::Direction;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::{Interest, ReadBuf, Ready};

use crate::addr::{ToSocketAddrs, each_addr, to_socket_addrs};
use crate::buf::{BufResult, IoBuf, IoBufMut, RecvPool, RecvStream};
use crate::io::{PollIo, as_uninit};
use crate::owned::ops::SockKind;

/// A UDP socket, with tokio's API.
///
/// Every method takes `&self`, so one socket can be shared, e.g. as an
/// `Arc<UdpSocket>` between a sending and a receiving task, even on
/// different cores (each core registers the socket with its own driver).
/// "Connected" use (`connect`, then `send`/`recv`) and unconnected use
/// (`send_to`/`recv_from`) both work.
///
/// ```no_run
/// use insane_net::UdpSocket;
///
/// # async fn f() -> std::io::Result<()> {
/// let sock = UdpSocket::bind("127.0.0.1:8080").await?;
/// let mut buf = [0; 1500];
/// loop {
///     let (len, peer) = sock.recv_from(&mut buf).await?;
///     sock.send_to(&buf[..len], peer).await?;
/// }
/// # }
/// ```
pub struct UdpSocket {
    io: PollIo<std::net::UdpSocket>,
}

fn ip_addr(addr: SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket()
        .ok_or_else(|| io::Error::other("received a datagram without an IP source address"))
}

impl UdpSocket {
    /// Creates a UDP socket bound to `addr` (port 0: any free port). When
    /// `addr` resolves to several addresses, each is tried until one
    /// binds; otherwise the last error is returned.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let sock = insane_net::UdpSocket::bind("0.0.0.0:0").await?;
    /// println!("bound to {}", sock.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |addr| std::future::ready(UdpSocket::bind_addr(addr))).await
    }

    fn bind_addr(addr: SocketAddr) -> io::Result<UdpSocket> {
        Self::bind_reuse_on(addr, false)
    }

    fn bind_reuse_on(addr: SocketAddr, reuseport: bool) -> io::Result<UdpSocket> {
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM.nonblocking(),
            Some(Protocol::UDP),
        )?;
        if reuseport {
            socket.set_reuse_port(true)?;
        }
        socket.bind(&addr.into())?;
        Ok(UdpSocket {
            io: PollIo::new(socket.into()),
        })
    }

    /// A socket on `addr`, with `SO_REUSEPORT` when `reuseport`.
    fn bind_reuse(addr: SocketAddr, reuseport: bool) -> io::Result<UdpSocket> {
        if addr.port() != 0 || !reuseport {
            return Self::bind_reuse_on(addr, reuseport);
        }
        // Linux picks the port of a UDP bind to port 0 with SO_REUSEPORT
        // among the ports it could share: possibly one another
        // SO_REUSEPORT socket of this user already serves, whose datagrams
        // would then be spread over both. So a plain socket picks a port
        // nobody uses, and the SO_REUSEPORT socket binds to it (again if
        // someone took it meanwhile).
        let mut last_error = None;
        for _ in 0..16 {
            let free = std::net::UdpSocket::bind(addr)?.local_addr()?;
            match Self::bind_reuse_on(free, true) {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_error = Some(e),
                bound => return bound,
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
    }

    /// Serves `addr` on every core of the current runtime: binds one
    /// socket per core (with `SO_REUSEPORT` when there are several, so the
    /// kernel spreads flows over them by their address hash) and runs
    /// `serve(socket)` on each core as a task of that core. Returns the
    /// address served (a free port for port 0) once every core is bound.
    /// `serve` may be `!Send`.
    ///
    /// ```no_run
    /// use insane_net::UdpSocket;
    ///
    /// # async fn f() -> std::io::Result<()> {
    /// let addr = UdpSocket::bind_on_every_core("127.0.0.1:7001", |socket| async move {
    ///     let mut buf = [0; 2048];
    ///     while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
    ///         let _ = socket.send_to(&buf[..n], peer).await;
    ///     }
    /// })
    /// .await?;
    /// println!("echoing on {addr} on every core");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Outside an insane runtime; a bind fails on some core (the error
    /// names the core).
    pub async fn bind_on_every_core<A, F, Fut>(addr: A, serve: F) -> io::Result<SocketAddr>
    where
        A: ToSocketAddrs,
        F: Fn(UdpSocket) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        crate::every_core::serve_on_every_core(
            addr,
            UdpSocket::bind_reuse,
            UdpSocket::local_addr,
            serve,
        )
        .await
    }

    /// Creates a `UdpSocket` from a bound `std::net::UdpSocket`, switching
    /// it to non-blocking mode.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let std_sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let sock = insane_net::UdpSocket::from_std(std_sock)?;
    /// # drop(sock);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            io: PollIo::new(socket),
        })
    }

    /// Turns this socket into a `std::net::UdpSocket`, left in non-blocking
    /// mode.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        self.io.into_inner()
    }

    /// The local address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The address the socket is connected to
    /// ([`NotConnected`](io::ErrorKind::NotConnected) if none).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Connects the socket to a remote address: [`send`](Self::send) goes
    /// there and [`recv`](Self::recv) only receives from there. Each
    /// resolved address is tried until one works.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let sock = insane_net::UdpSocket::bind("127.0.0.1:0").await?;
    /// sock.connect("127.0.0.1:8080").await?;
    /// sock.send(b"hello").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |addr| {
            std::future::ready(self.io.get_ref().connect(addr))
        })
        .await
    }

    /// Waits for any of the requested ready states, usually followed by
    /// `try_recv`/`try_send`. May return a false positive; the operation
    /// then reports `WouldBlock`.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.io.ready(interest).await
    }

    /// Waits until the socket may be writable.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.writable().await
    }

    /// Polls for write readiness. Only the waker of the most recent call is
    /// woken.
    pub fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(Direction::Write, cx)
    }

    /// Sends `buf` to the connected peer; returns the number of bytes
    /// sent.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .do_io(Direction::Write, || self.io.send_slice(buf))
            .await
    }

    /// Polls to send `buf` to the connected peer.
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io
            .poll_io(Direction::Write, cx, || self.io.send_slice(buf))
    }

    /// Sends to the connected peer without waiting (`WouldBlock` when the
    /// send buffer is full).
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Write, || self.io.send_slice(buf))
    }

    /// Waits until the socket may be readable.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Polls for read readiness. Only the waker of the most recent call is
    /// woken.
    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(Direction::Read, cx)
    }

    /// Receives one datagram from the connected peer into `buf`; excess
    /// bytes of a longer datagram are discarded.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .do_io(Direction::Read, || self.io.recv_slice(buf, false))
            .await
    }

    /// Polls to receive one datagram from the connected peer into `buf`.
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.io
            .poll_io(Direction::Read, cx, || self.io.recv_buf(buf, false))
            .map_ok(|_| ())
    }

    /// Receives a datagram from the connected peer without waiting
    /// (`WouldBlock` when none is queued).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Read, || self.io.recv_slice(buf, false))
    }

    /// Like [`try_recv`](Self::try_recv), appending to a `BufMut`.
    pub fn try_recv_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Read, || self.io.recv_bufmut(buf))
    }

    /// Like [`recv`](Self::recv), appending to a `BufMut`.
    pub async fn recv_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.io
            .do_io(Direction::Read, || self.io.recv_bufmut(buf))
            .await
    }

    fn recv_from_bufmut<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<(usize, SocketAddr)> {
        let chunk = buf.chunk_mut();
        // SAFETY: `UninitSlice` is a `[MaybeUninit<u8>]` we may write to;
        // `recv_from` writes only initialised bytes.
        let dst = unsafe { chunk.as_uninit_slice_mut() };
        let (n, addr) = self.io.sock().recv_from(dst)?;
        // SAFETY: the kernel initialised the first `n` bytes of the chunk.
        unsafe { buf.advance_mut(n) };
        Ok((n, ip_addr(addr)?))
    }

    /// Like [`try_recv_from`](Self::try_recv_from), appending to a
    /// `BufMut`.
    pub fn try_recv_buf_from<B: bytes::BufMut>(
        &self,
        buf: &mut B,
    ) -> io::Result<(usize, SocketAddr)> {
        self.io
            .try_dir(Direction::Read, || self.recv_from_bufmut(buf))
    }

    /// Like [`recv_from`](Self::recv_from), appending to a `BufMut`.
    pub async fn recv_buf_from<B: bytes::BufMut>(
        &self,
        buf: &mut B,
    ) -> io::Result<(usize, SocketAddr)> {
        self.io
            .do_io(Direction::Read, || self.recv_from_bufmut(buf))
            .await
    }

    /// Sends `buf` to `target`; a target that resolves to several
    /// addresses uses the first.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let sock = insane_net::UdpSocket::bind("127.0.0.1:0").await?;
    /// sock.send_to(b"hello", "127.0.0.1:8080").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        let target = match to_socket_addrs(target).await?.next() {
            Some(t) => SockAddr::from(t),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no addresses to send data to",
                ));
            }
        };
        self.io
            .do_io(Direction::Write, || self.send_to_addr(buf, &target))
            .await
    }

    fn send_to_addr(&self, buf: &[u8], target: &SockAddr) -> io::Result<usize> {
        self.io
            .sock()
            .send_to_with_flags(buf, target, libc::MSG_NOSIGNAL)
    }

    /// Polls to send `buf` to `target`.
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let target = SockAddr::from(target);
        self.io
            .poll_io(Direction::Write, cx, || self.send_to_addr(buf, &target))
    }

    /// Sends `buf` to `target` without waiting.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let target = SockAddr::from(target);
        self.io
            .try_dir(Direction::Write, || self.send_to_addr(buf, &target))
    }

    /// Receives one datagram into `buf`; returns its length and sender.
    /// Excess bytes of a longer datagram are discarded.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .do_io(Direction::Read, || self.recv_from_slice(buf, false))
            .await
    }

    fn recv_from_slice(&self, buf: &mut [u8], peek: bool) -> io::Result<(usize, SocketAddr)> {
        let (n, addr) = if peek {
            self.io.sock().peek_from(as_uninit(buf))?
        } else {
            self.io.sock().recv_from(as_uninit(buf))?
        };
        Ok((n, ip_addr(addr)?))
    }

    fn recv_from_readbuf(&self, buf: &mut ReadBuf<'_>, peek: bool) -> io::Result<SocketAddr> {
        // SAFETY: `recv_from`/`peek_from` only write initialised bytes and
        // never de-initialise; exactly the `n` bytes written are then
        // marked initialised.
        let unfilled = unsafe { buf.unfilled_mut() };
        let (n, addr) = if peek {
            self.io.sock().peek_from(unfilled)?
        } else {
            self.io.sock().recv_from(unfilled)?
        };
        // SAFETY: the kernel initialised the first `n` bytes.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        ip_addr(addr)
    }

    /// Polls to receive one datagram into `buf`; returns the sender.
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        self.io
            .poll_io(Direction::Read, cx, || self.recv_from_readbuf(buf, false))
    }

    /// Receives one datagram without waiting (`WouldBlock` when none is
    /// queued).
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .try_dir(Direction::Read, || self.recv_from_slice(buf, false))
    }

    /// Sends `buf` as one datagram to `target` and gives the buffer back
    /// with the number of bytes sent.
    ///
    /// On an io_uring core this is one `SENDMSG` request (no readiness
    /// round trip); on epoll, a readiness wait and `sendto(2)`. `target`
    /// is an address, not a name: resolve names first with
    /// [`lookup_host`](crate::lookup_host).
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let sock = insane_net::UdpSocket::bind("127.0.0.1:0").await?;
    /// let to = "127.0.0.1:9000".parse().unwrap();
    /// let (res, _buf) = sock.send_to_owned(b"hello".to_vec(), to).await;
    /// assert_eq!(res?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_to_owned<B: IoBuf>(&self, buf: B, target: SocketAddr) -> BufResult<usize, B> {
        self.io.send_to_owned(buf, target).await
    }

    /// Receives one datagram into the spare capacity of `buf` (see
    /// [`crate::owned`]) and gives the buffer back with its length and
    /// sender. A datagram longer than the space is truncated.
    ///
    /// On an io_uring core this is one `RECVMSG` request; on epoll, a
    /// readiness wait and `recvfrom(2)`. Not cancel-safe (a datagram
    /// received as the future is dropped is dropped with the buffer).
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let sock = insane_net::UdpSocket::bind("127.0.0.1:9000").await?;
    /// let (res, buf) = sock.recv_from_owned(Vec::with_capacity(1500)).await;
    /// let (n, from) = res?;
    /// println!("{n} bytes from {from}: {:?}", &buf[..n]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_from_owned<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        self.io.recv_from_owned(buf).await
    }

    /// Sends `buf` as one datagram to the connected peer and gives it
    /// back with the number of bytes sent. On io_uring, datagrams of at
    /// least the driver's `send_zc_threshold` go out with `SEND_ZC`
    /// (unless the peer is on loopback, where the kernel copies anyway).
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let sock = insane_net::UdpSocket::bind("127.0.0.1:0").await?;
    /// sock.connect("127.0.0.1:9000").await?;
    /// let (res, _buf) = sock.send_owned(vec![0u8; 512]).await;
    /// res?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_owned<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.io.send_owned(buf, SockKind::Udp, true).await
    }

    /// Receives one datagram from the connected peer into the spare
    /// capacity of `buf` and gives it back with the datagram's length.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let sock = insane_net::UdpSocket::bind("127.0.0.1:0").await?;
    /// sock.connect("127.0.0.1:9000").await?;
    /// let (res, buf) = sock.recv_owned(Vec::with_capacity(1500)).await;
    /// println!("{:?}", &buf[..res?]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_owned<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.io.recv_owned(buf, SockKind::Udp).await
    }

    /// Receives datagrams into buffers of the current core's default
    /// [`RecvPool`], one datagram per [`PooledBuf`](crate::PooledBuf)
    /// (truncated to the pool's buffer size, without the sender's
    /// address): on io_uring one multishot `RECV` into kernel-provided
    /// buffers, on epoll heap buffers. When the application holds every
    /// buffer, datagrams wait in the socket's receive buffer.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let sock = insane_net::UdpSocket::bind("127.0.0.1:9000").await?;
    /// let mut rx = sock.recv_stream()?;
    /// while let Some(d) = rx.next().await {
    ///     println!("datagram of {} bytes", d?.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Outside an insane runtime, or the pool cannot be set up.
    pub fn recv_stream(&self) -> io::Result<RecvStream<'_>> {
        self.io.recv_stream(None, SockKind::Udp)
    }

    /// Like [`recv_stream`](Self::recv_stream), with buffers of `pool`.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let sock = insane_net::UdpSocket::bind("127.0.0.1:9000").await?;
    /// let pool = insane_net::RecvPool::new(64, 2048)?;
    /// let mut rx = sock.recv_stream_with(&pool)?;
    /// # drop(rx.next().await);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`recv_stream`](Self::recv_stream).
    pub fn recv_stream_with(&self, pool: &RecvPool) -> io::Result<RecvStream<'_>> {
        self.io.recv_stream(Some(pool), SockKind::Udp)
    }

    /// Runs `f`, a non-blocking operation on this socket, clearing the
    /// readiness of `interest` if it returns `WouldBlock`.
    pub fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        self.io.try_io(interest, f)
    }

    /// Waits for `interest` and runs `f` until it stops returning
    /// `WouldBlock`.
    pub async fn async_io<R>(
        &self,
        interest: Interest,
        f: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        self.io.async_io(interest, f).await
    }

    /// Receives the next datagram from the connected peer without removing
    /// it from the queue.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .do_io(Direction::Read, || self.io.recv_slice(buf, true))
            .await
    }

    /// Polls to peek at the next datagram from the connected peer.
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.io
            .poll_io(Direction::Read, cx, || self.io.recv_buf(buf, true))
            .map_ok(|_| ())
    }

    /// Peeks at the next datagram from the connected peer without waiting.
    pub fn try_peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Read, || self.io.recv_slice(buf, true))
    }

    /// Receives the next datagram without removing it from the queue;
    /// returns its length and sender.
    ///
    /// ```no_run
    /// # async fn f(sock: insane_net::UdpSocket) -> std::io::Result<()> {
    /// let mut buf = [0; 1500];
    /// let (len, peer) = sock.peek_from(&mut buf).await?;
    /// let (len2, peer2) = sock.recv_from(&mut buf).await?;
    /// assert_eq!((len, peer), (len2, peer2));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .do_io(Direction::Read, || self.recv_from_slice(buf, true))
            .await
    }

    /// Polls to peek at the next datagram; returns its sender.
    pub fn poll_peek_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        self.io
            .poll_io(Direction::Read, cx, || self.recv_from_readbuf(buf, true))
    }

    /// Peeks at the next datagram without waiting.
    pub fn try_peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .try_dir(Direction::Read, || self.recv_from_slice(buf, true))
    }

    fn peek_sender_now(&self) -> io::Result<SocketAddr> {
        ip_addr(self.io.sock().peek_sender()?)
    }

    /// The sender of the next datagram, leaving it queued.
    pub async fn peek_sender(&self) -> io::Result<SocketAddr> {
        self.io
            .do_io(Direction::Read, || self.peek_sender_now())
            .await
    }

    /// Polls for the sender of the next datagram.
    pub fn poll_peek_sender(&self, cx: &mut Context<'_>) -> Poll<io::Result<SocketAddr>> {
        self.io
            .poll_io(Direction::Read, cx, || self.peek_sender_now())
    }

    /// The sender of the next datagram, without waiting.
    pub fn try_peek_sender(&self) -> io::Result<SocketAddr> {
        self.io.try_dir(Direction::Read, || self.peek_sender_now())
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get_ref().broadcast()
    }

    /// Sets `SO_BROADCAST` (allow sending to broadcast addresses).
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(on)
    }

    /// Whether `IP_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.io.get_ref().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_LOOP` (multicast sent is looped back locally).
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_multicast_loop_v4(on)
    }

    /// `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.io.get_ref().multicast_ttl_v4()
    }

    /// Sets `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_multicast_ttl_v4(ttl)
    }

    /// Whether `IPV6_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.io.get_ref().multicast_loop_v6()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_multicast_loop_v6(on)
    }

    /// The IP time-to-live (`IP_TTL`).
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Sets the IP time-to-live (`IP_TTL`).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// The IPv4 type-of-service field (`IP_TOS`).
    ///
    /// ```
    /// # insane_runtime::runtime::Runtime::builder().cores(1).build()?.block_on(async {
    /// let socket = insane_net::UdpSocket::bind("127.0.0.1:0").await?;
    /// socket.set_tos_v4(0x10)?; // IPTOS_LOWDELAY
    /// assert_eq!(socket.tos_v4()?, 0x10);
    /// # std::io::Result::Ok(()) })?;
    /// # std::io::Result::Ok(())
    /// ```
    ///
    /// # Errors
    /// As `getsockopt(2)` (e.g. on an IPv6 socket).
    pub fn tos_v4(&self) -> io::Result<u32> {
        self.io.sock().tos()
    }

    /// Sets the IPv4 type-of-service field (`IP_TOS`).
    ///
    /// # Errors
    /// As `setsockopt(2)`.
    pub fn set_tos_v4(&self, tos: u32) -> io::Result<()> {
        self.io.sock().set_tos(tos)
    }

    /// [`tos_v4`](Self::tos_v4), by tokio's older name.
    ///
    /// # Errors
    /// As [`tos_v4`](Self::tos_v4).
    pub fn tos(&self) -> io::Result<u32> {
        self.tos_v4()
    }

    /// [`set_tos_v4`](Self::set_tos_v4), by tokio's older name.
    ///
    /// # Errors
    /// As [`set_tos_v4`](Self::set_tos_v4).
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        self.set_tos_v4(tos)
    }

    /// The IPv6 traffic class (`IPV6_TCLASS`).
    pub fn tclass_v6(&self) -> io::Result<u32> {
        self.io.sock().tclass_v6()
    }

    /// Sets the IPv6 traffic class (`IPV6_TCLASS`).
    pub fn set_tclass_v6(&self, tclass: u32) -> io::Result<()> {
        self.io.sock().set_tclass_v6(tclass)
    }

    /// The interface the socket is bound to (`SO_BINDTODEVICE`), if any.
    pub fn device(&self) -> io::Result<Option<Vec<u8>>> {
        self.io.sock().device()
    }

    /// Binds the socket to an interface (`SO_BINDTODEVICE`), or unbinds it
    /// with `None`.
    pub fn bind_device(&self, interface: Option<&[u8]>) -> io::Result<()> {
        self.io.sock().bind_device(interface)
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with
    /// address `interface` (`0.0.0.0`: the OS chooses).
    pub fn join_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.io.get_ref().join_multicast_v4(&multiaddr, &interface)
    }

    /// Joins the IPv6 multicast group `multiaddr` on interface index
    /// `interface` (0: the OS chooses).
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get_ref().join_multicast_v6(multiaddr, interface)
    }

    /// Leaves an IPv4 multicast group; see
    /// [`join_multicast_v4`](Self::join_multicast_v4).
    pub fn leave_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.io.get_ref().leave_multicast_v4(&multiaddr, &interface)
    }

    /// Leaves an IPv6 multicast group; see
    /// [`join_multicast_v6`](Self::join_multicast_v6).
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get_ref().leave_multicast_v6(multiaddr, interface)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any (e.g. an ICMP
    /// port unreachable on a connected socket).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }
}

impl TryFrom<std::net::UdpSocket> for UdpSocket {
    type Error = io::Error;

    /// Same as [`UdpSocket::from_std`].
    fn try_from(socket: std::net::UdpSocket) -> io::Result<Self> {
        UdpSocket::from_std(socket)
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get_ref().fmt(f)
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.io.raw_fd()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}
