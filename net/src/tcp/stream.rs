//! [`TcpStream`]: a TCP connection (tokio's `TcpStream`).

use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use insane_runtime::driver::Direction;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{Interest, ReadBuf, Ready};

use crate::addr::{ToSocketAddrs, each_addr};
use crate::buf::{BufResult, IoBuf, IoBufMut, RecvPool, RecvStream};
use crate::io::{impl_stream_read, impl_stream_write};
use crate::owned::ops::SockKind;
use crate::stream_io::StreamIo;
use crate::tcp::split::{ReadHalf, WriteHalf, split};
use crate::tcp::split_owned::{OwnedReadHalf, OwnedWriteHalf, split_owned};

/// A TCP stream between a local and a remote socket, with tokio's API.
///
/// Created by [`connect`](TcpStream::connect)ing to a remote host,
/// [`accept`](crate::TcpListener::accept)ing on a
/// [`TcpListener`](crate::TcpListener), or from a
/// [`TcpSocket`](crate::TcpSocket). Reading and writing go through tokio's
/// [`AsyncReadExt`](tokio::io::AsyncReadExt) /
/// [`AsyncWriteExt`](tokio::io::AsyncWriteExt) (or the `futures` io
/// traits). `shutdown()` closes the write half; dropping the stream closes
/// it.
///
/// A `TcpStream` is `Send + Sync`: it may move to another core, where it
/// registers with that core's driver at its first wait.
///
/// On an io_uring core, once a read has had to wait, the stream receives
/// in the background: a multishot receive puts arriving bytes into the
/// core's provided-buffer ring, and reads copy from there without a
/// syscall. `peek`, `try_read` and `readable` see those bytes; they are
/// lost only if the stream is dropped or turned
/// [`into_std`](Self::into_std) before they are read. On epoll each read
/// is a readiness wait and `recv(2)`, as in tokio.
///
/// ```no_run
/// use insane_net::TcpStream;
/// use tokio::io::AsyncWriteExt;
///
/// # async fn f() -> std::io::Result<()> {
/// let mut stream = TcpStream::connect("127.0.0.1:8080").await?;
/// stream.write_all(b"hello world!").await?;
/// # Ok(())
/// # }
/// ```
pub struct TcpStream {
    pub(crate) io: StreamIo<std::net::TcpStream>,
}

impl TcpStream {
    /// Opens a TCP connection to a remote host.
    ///
    /// `addr` may resolve to several addresses: each is tried in order
    /// until one connects; otherwise the error of the last attempt is
    /// returned (e.g. [`ConnectionRefused`](io::ErrorKind::ConnectionRefused)).
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let stream = insane_net::TcpStream::connect("127.0.0.1:8080").await?;
    /// println!("connected to {}", stream.peer_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, TcpStream::connect_addr).await
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        TcpStream::connect_socket(socket, addr).await
    }

    /// Starts a non-blocking connect of `socket` to `addr` and waits until
    /// it is established or failed.
    pub(crate) async fn connect_socket(socket: Socket, addr: SocketAddr) -> io::Result<TcpStream> {
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let stream = TcpStream::new(socket.into());
        poll_fn(|cx| stream.poll_connected(cx)).await?;
        Ok(stream)
    }

    /// Waits for a connect in progress: writable, then `SO_ERROR`. A
    /// writable report that the kernel does not confirm (the socket is not
    /// yet connected) is treated as spurious.
    fn poll_connected(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.io.poll_ready(Direction::Write, cx))?;
            if let Some(e) = self.io.sock().take_error()? {
                return Poll::Ready(Err(e));
            }
            match self.io.get_ref().peer_addr() {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    self.io.clear_ready(Direction::Write)
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Wraps a connected, non-blocking std stream.
    pub(crate) fn new(stream: std::net::TcpStream) -> TcpStream {
        TcpStream {
            io: StreamIo::new(stream),
        }
    }

    /// Creates a `TcpStream` from a connected `std::net::TcpStream`, which
    /// is switched to non-blocking mode.
    ///
    /// Unlike tokio's, this works outside a runtime too; the stream's first
    /// wait must happen inside one.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let std_stream = std::net::TcpStream::connect("127.0.0.1:34254")?;
    /// let stream = insane_net::TcpStream::from_std(std_stream)?;
    /// # drop(stream);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Ok(TcpStream::new(stream))
    }

    /// Turns this stream into a `std::net::TcpStream`, left in non-blocking
    /// mode (call `set_nonblocking(false)` for blocking use).
    ///
    /// On an io_uring core, bytes already received for a read but not read
    /// yet are discarded (see the type's docs): read them first. Bytes that
    /// arrive after this returns stay in the socket.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let stream = insane_net::TcpStream::connect("127.0.0.1:8080").await?;
    /// let std_stream = stream.into_std()?;
    /// std_stream.set_nonblocking(false)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        self.io.into_inner()
    }

    /// The local address of this stream.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The remote address this stream is connected to.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Receives data without removing it from the queue, registering the
    /// task for wake-up if none is available. On success returns the
    /// number of bytes peeked (0 at end of stream).
    ///
    /// Only the waker of the most recent call to `poll_peek` or
    /// `poll_read` is woken.
    pub fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        self.io.poll_peek(cx, buf)
    }

    /// Waits for any of the requested ready states, usually followed by
    /// `try_read` or `try_write`. May return a false positive; the
    /// operation then reports `WouldBlock`.
    ///
    /// ```no_run
    /// use tokio::io::Interest;
    /// # async fn f() -> std::io::Result<()> {
    /// let stream = insane_net::TcpStream::connect("127.0.0.1:8080").await?;
    /// let ready = stream.ready(Interest::READABLE | Interest::WRITABLE).await?;
    /// if ready.is_readable() {
    ///     let mut data = vec![0; 1024];
    ///     match stream.try_read(&mut data) {
    ///         Ok(n) => println!("read {n} bytes"),
    ///         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.io.ready(interest).await
    }

    /// Waits until the stream may be readable (then use
    /// [`try_read`](Self::try_read)).
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Polls for read readiness. Only the waker of the most recent call is
    /// woken.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(Direction::Read, cx)
    }

    /// Reads what is available without waiting: `Ok(0)` means end of
    /// stream (or an empty `buf`), `WouldBlock` that nothing is there yet.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_read(buf)
    }

    /// Like [`try_read`](Self::try_read), into several buffers (`readv`).
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.io.try_read_vectored(bufs)
    }

    /// Like [`try_read`](Self::try_read), appending to a `BufMut` (e.g.
    /// `bytes::BytesMut` or `Vec<u8>`'s spare capacity).
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.io.try_read_buf(buf)
    }

    /// Waits until the stream may be writable (then use
    /// [`try_write`](Self::try_write)).
    pub async fn writable(&self) -> io::Result<()> {
        self.io.writable().await
    }

    /// Polls for write readiness. Only the waker of the most recent call is
    /// woken.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(Direction::Write, cx)
    }

    /// Writes what fits without waiting; `WouldBlock` when the send buffer
    /// is full.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Write, || self.io.send_slice(buf))
    }

    /// Like [`try_write`](Self::try_write), from several buffers.
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Write, || self.io.send_vectored(bufs))
    }

    /// Runs `f`, a non-blocking operation on this socket (e.g. through
    /// `socket2::SockRef`), clearing the readiness of `interest` if it
    /// returns `WouldBlock`.
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

    /// Receives data without removing it from the queue; waits until some
    /// is available. Returns 0 at end of stream.
    ///
    /// ```no_run
    /// use tokio::io::AsyncReadExt;
    /// # async fn f() -> std::io::Result<()> {
    /// let mut stream = insane_net::TcpStream::connect("127.0.0.1:8080").await?;
    /// let mut b1 = [0; 10];
    /// let mut b2 = [0; 10];
    /// let n = stream.peek(&mut b1).await?;
    /// let m = stream.read(&mut b2[..n]).await?;
    /// assert_eq!(&b1[..n], &b2[..m]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.peek(buf).await
    }

    /// Reads into `buf`, an owned buffer, and gives it back with the
    /// number of bytes read (`Ok(0)`: end of stream).
    ///
    /// The bytes go into the buffer's spare capacity (`len..capacity` of a
    /// `Vec` or `BytesMut`), whose length grows by `n`; a buffer without
    /// spare capacity (a `Box<[u8]>`, a full `Vec`) is filled from its
    /// start (see [`crate::owned`]). On an io_uring core this is one `RECV`
    /// request, completed by the kernel when data is there; on epoll, a
    /// readiness wait and `recv(2)`.
    ///
    /// Not cancel-safe: if the future is dropped, bytes the kernel already
    /// put into the buffer are dropped with it. Use
    /// [`recv_stream`](Self::recv_stream) or `AsyncRead` inside `select!`.
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
    /// let (res, buf) = stream.read_owned(Vec::with_capacity(4096)).await;
    /// let n = res?;
    /// assert_eq!(buf.len(), n);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_owned<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.io.recv_owned(buf, SockKind::Tcp).await
    }

    /// Writes the initialised bytes of `buf` (maybe only part of them) and
    /// gives it back with the number of bytes written, as soon as the
    /// kernel queued them.
    ///
    /// On an io_uring core this is one `SEND` request; on epoll, a
    /// readiness wait and `send(2)`. It copies into the socket buffer,
    /// never `SEND_ZC`: a zero-copy send gives the buffer back only once
    /// the peer acknowledged the data, which would make a partial write
    /// wait for the peer to read. For zero copy, use
    /// [`write_all_owned`](Self::write_all_owned).
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
    /// let (res, _buf) = stream.write_owned(b"hello".to_vec()).await;
    /// println!("wrote {} bytes", res?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_owned<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.io.send_owned(buf, SockKind::Tcp, false).await
    }

    /// Writes every initialised byte of `buf`, in as many sends as needed,
    /// and gives it back.
    ///
    /// On an io_uring core, buffers (and remaining parts) of at least the
    /// driver's `send_zc_threshold` (`UringConfig`, 16 KiB by default;
    /// `usize::MAX` turns it off) to a peer not on loopback (where the
    /// kernel copies anyway) go out with `SEND_ZC`: the kernel
    /// transmits from `buf` without copying it. The buffer then comes back
    /// once the kernel no longer reads it, i.e. once the peer's TCP stack
    /// acknowledged the data: the peer must be receiving (a copying write
    /// could return earlier, with the tail still in the local send
    /// buffer). Smaller sends copy, as on epoll (readiness wait and
    /// `send(2)`).
    ///
    /// On error, some bytes may have been written.
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
    /// let payload = vec![7u8; 1 << 20];
    /// let (res, payload) = stream.write_all_owned(payload).await;
    /// res?;
    /// assert_eq!(payload.len(), 1 << 20);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_all_owned<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.io.send_all_owned(buf, SockKind::Tcp).await
    }

    /// Receives the stream's bytes into buffers of the current core's
    /// default [`RecvPool`]: on io_uring one multishot `RECV` fills
    /// kernel-provided buffers (no copy, no submission per read); on
    /// epoll, heap buffers. Each [`PooledBuf`](crate::PooledBuf) holds the next bytes in
    /// order and returns to the pool when dropped; when the application
    /// holds every buffer, receiving pauses without loss.
    ///
    /// See [`RecvStream`]. The stream borrows the socket; writes may go on
    /// meanwhile (`write_all_owned` takes `&self`).
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
    /// let mut rx = stream.recv_stream()?;
    /// while let Some(buf) = rx.next().await {
    ///     let (res, _) = stream.write_all_owned(buf?).await;
    ///     res?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Outside an insane runtime, or the pool cannot be set up.
    pub fn recv_stream(&self) -> io::Result<RecvStream<'_>> {
        self.io.recv_stream(None, SockKind::Tcp)
    }

    /// Like [`recv_stream`](Self::recv_stream), with buffers of `pool`.
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
    /// let pool = insane_net::RecvPool::new(32, 64 * 1024)?;
    /// let mut rx = stream.recv_stream_with(&pool)?;
    /// while let Some(buf) = rx.next().await {
    ///     println!("{} bytes", buf?.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`recv_stream`](Self::recv_stream).
    pub fn recv_stream_with(&self, pool: &RecvPool) -> io::Result<RecvStream<'_>> {
        self.io.recv_stream(Some(pool), SockKind::Tcp)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm when `true`).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Whether `TCP_QUICKACK` is set.
    pub fn quickack(&self) -> io::Result<bool> {
        self.io.sock().quickack()
    }

    /// Sets `TCP_QUICKACK` (send ACKs at once rather than delayed).
    pub fn set_quickack(&self, quickack: bool) -> io::Result<()> {
        self.io.sock().set_quickack(quickack)
    }

    /// The `SO_LINGER` setting.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        self.io.sock().linger()
    }

    /// Sets `SO_LINGER`: with `Some(d)`, closing waits up to `d` for unsent
    /// data (blocking the thread that drops the stream; prefer
    /// [`set_zero_linger`](Self::set_zero_linger) or `None`).
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.sock().set_linger(dur)
    }

    /// Sets `SO_LINGER` to zero: closing resets the connection (RST) and
    /// drops unsent data.
    pub fn set_zero_linger(&self) -> io::Result<()> {
        self.set_linger(Some(Duration::ZERO))
    }

    /// The IP time-to-live (`IP_TTL`).
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Sets the IP time-to-live (`IP_TTL`).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// Splits the stream into a read half and a write half borrowed from
    /// it, usable concurrently on one task (e.g. with `join!`/`select!`).
    /// Costs nothing; use [`into_split`](Self::into_split) for halves that
    /// move into separate tasks.
    ///
    /// ```no_run
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # async fn f(mut stream: insane_net::TcpStream) -> std::io::Result<()> {
    /// let (mut rd, mut wr) = stream.split();
    /// wr.write_all(b"ping").await?;
    /// let mut buf = [0; 4];
    /// rd.read_exact(&mut buf).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn split<'a>(&'a mut self) -> (ReadHalf<'a>, WriteHalf<'a>) {
        split(self)
    }

    /// Splits the stream into owned halves that may move to different
    /// tasks (or cores); [`OwnedReadHalf::reunite`] puts them back
    /// together. Dropping the write half shuts the write direction down.
    ///
    /// ```no_run
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # async fn f(stream: insane_net::TcpStream) -> std::io::Result<()> {
    /// let (mut rd, mut wr) = stream.into_split();
    /// let writer = insane_runtime::spawn(async move { wr.write_all(b"ping").await });
    /// let mut buf = [0; 4];
    /// rd.read_exact(&mut buf).await?;
    /// writer.await.unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split_owned(self)
    }

    /// `shutdown(2)`, with `NotConnected` treated as success like tokio.
    pub(crate) fn shutdown_std(&self, how: Shutdown) -> io::Result<()> {
        self.io.shutdown(how)
    }

    fn shutdown_priv(&mut self) -> io::Result<()> {
        self.shutdown_std(Shutdown::Write)
    }
}

impl_stream_read!(TcpStream, |this| this.io);
impl_stream_write!(TcpStream, |this| this.io);

impl TryFrom<std::net::TcpStream> for TcpStream {
    type Error = io::Error;

    /// Same as [`TcpStream::from_std`].
    fn try_from(stream: std::net::TcpStream) -> io::Result<Self> {
        TcpStream::from_std(stream)
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get_ref().fmt(f)
    }
}

impl AsRef<TcpStream> for TcpStream {
    fn as_ref(&self) -> &TcpStream {
        self
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}
