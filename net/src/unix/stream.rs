//! [`UnixStream`]: a connected Unix domain stream socket (tokio's
//! `UnixStream`).

use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::task::{Context, Poll, ready};

use insane_runtime::driver::Direction;
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::{Interest, Ready};

use crate::buf::{BufResult, IoBuf, IoBufMut, RecvPool, RecvStream};
use crate::io::{impl_stream_read, impl_stream_write};
use crate::owned::ops::SockKind;
use crate::stream_io::StreamIo;
use crate::unix::split::{ReadHalf, WriteHalf, split};
use crate::unix::split_owned::{OwnedReadHalf, OwnedWriteHalf, split_owned};
use crate::unix::{SocketAddr, UCred, sock_addr};

/// A Unix domain stream socket, with tokio's API.
///
/// Reads work as [`TcpStream`](crate::TcpStream)'s: on an io_uring core,
/// once a read has had to wait, arriving bytes are received in the
/// background into the core's buffer ring and reads copy them from there.
///
/// ```no_run
/// use insane_net::UnixStream;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # async fn f() -> std::io::Result<()> {
/// let mut stream = UnixStream::connect("/tmp/sock").await?;
/// stream.write_all(b"hello").await?;
/// let mut reply = String::new();
/// stream.read_to_string(&mut reply).await?;
/// # Ok(())
/// # }
/// ```
pub struct UnixStream {
    pub(crate) io: StreamIo<std::os::unix::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket bound at `path` (a NUL byte first: an
    /// abstract name, as in tokio).
    pub async fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        UnixStream::connect_sockaddr(&addr).await
    }

    /// Connects to the socket at `addr` (a path or, on Linux, an abstract
    /// name).
    pub async fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        let addr = sock_addr(addr)?;
        UnixStream::connect_sockaddr(&addr).await
    }

    async fn connect_sockaddr(addr: &SockAddr) -> io::Result<UnixStream> {
        let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        let pending = match socket.connect(addr) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
            Err(e) => return Err(e),
        };
        let stream = UnixStream::new(socket.into());
        if pending {
            poll_fn(|cx| {
                ready!(stream.io.poll_ready(Direction::Write, cx))?;
                Poll::Ready(match stream.io.sock().take_error() {
                    Ok(Some(e)) | Err(e) => Err(e),
                    Ok(None) => Ok(()),
                })
            })
            .await?;
        }
        Ok(stream)
    }

    pub(crate) fn new(stream: std::os::unix::net::UnixStream) -> UnixStream {
        UnixStream {
            io: StreamIo::new(stream),
        }
    }

    /// Creates a connected pair of unnamed sockets.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let (a, b) = insane_net::UnixStream::pair()?;
    /// # drop((a, b));
    /// # Ok(())
    /// # }
    /// ```
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        Ok((UnixStream::new(a.into()), UnixStream::new(b.into())))
    }

    /// Creates a `UnixStream` from a std one, switching it to non-blocking
    /// mode.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Ok(UnixStream::new(stream))
    }

    /// Turns this stream into a std one, left in non-blocking mode.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        self.io.into_inner()
    }

    /// The local address of this socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr().map(SocketAddr::from)
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr().map(SocketAddr::from)
    }

    /// The credentials of the peer process (`SO_PEERCRED`).
    pub fn peer_cred(&self) -> io::Result<UCred> {
        UCred::of(self.io.raw_fd())
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Waits for any of the requested ready states (see
    /// [`TcpStream::ready`](crate::TcpStream::ready)).
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.io.ready(interest).await
    }

    /// Waits until the socket may be readable.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Polls for read readiness.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(Direction::Read, cx)
    }

    /// Reads without waiting (`WouldBlock` when nothing is there, `Ok(0)`
    /// at end of stream).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_read(buf)
    }

    /// Like [`try_read`](Self::try_read), into several buffers.
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.io.try_read_vectored(bufs)
    }

    /// Like [`try_read`](Self::try_read), appending to a `BufMut`.
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.io.try_read_buf(buf)
    }

    /// Waits until the socket may be writable.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.writable().await
    }

    /// Polls for write readiness.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(Direction::Write, cx)
    }

    /// Writes without waiting (`WouldBlock` when the buffer is full).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Write, || self.io.send_slice(buf))
    }

    /// Like [`try_write`](Self::try_write), from several buffers.
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Write, || self.io.send_vectored(bufs))
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

    /// Reads into `buf`, an owned buffer, and gives it back with the
    /// number of bytes read (`Ok(0)`: end of stream). Same semantics as
    /// [`TcpStream::read_owned`](crate::TcpStream::read_owned): into the
    /// spare capacity, an io_uring `RECV` on io_uring cores, not
    /// cancel-safe.
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::UnixStream) -> std::io::Result<()> {
    /// let (res, buf) = stream.read_owned(Vec::with_capacity(4096)).await;
    /// println!("{} bytes: {:?}", res?, buf);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_owned<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.io.recv_owned(buf, SockKind::UnixStream).await
    }

    /// Writes the initialised bytes of `buf` (maybe only part of them) and
    /// gives it back with the number written. Unix sockets do not support
    /// `SEND_ZC`, so io_uring always uses `SEND` here.
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::UnixStream) -> std::io::Result<()> {
    /// let (res, _buf) = stream.write_owned(b"hello".to_vec()).await;
    /// println!("wrote {} bytes", res?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_owned<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.io.send_owned(buf, SockKind::UnixStream, false).await
    }

    /// Writes every initialised byte of `buf` and gives it back.
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::UnixStream) -> std::io::Result<()> {
    /// let (res, _buf) = stream.write_all_owned(vec![1u8; 100_000]).await;
    /// res?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_all_owned<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.io.send_all_owned(buf, SockKind::UnixStream).await
    }

    /// Receives the stream's bytes into pooled buffers, like
    /// [`TcpStream::recv_stream`](crate::TcpStream::recv_stream).
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::UnixStream) -> std::io::Result<()> {
    /// let mut rx = stream.recv_stream()?;
    /// while let Some(buf) = rx.next().await {
    ///     println!("{} bytes", buf?.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Outside an insane runtime, or the pool cannot be set up.
    pub fn recv_stream(&self) -> io::Result<RecvStream<'_>> {
        self.io.recv_stream(None, SockKind::UnixStream)
    }

    /// Like [`recv_stream`](Self::recv_stream), with buffers of `pool`.
    ///
    /// ```no_run
    /// # async fn f(stream: insane_net::UnixStream) -> std::io::Result<()> {
    /// let pool = insane_net::RecvPool::new(8, 1024)?;
    /// let mut rx = stream.recv_stream_with(&pool)?;
    /// # drop(rx.next().await);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`recv_stream`](Self::recv_stream).
    pub fn recv_stream_with(&self, pool: &RecvPool) -> io::Result<RecvStream<'_>> {
        self.io.recv_stream(Some(pool), SockKind::UnixStream)
    }

    /// Splits into borrowed read and write halves (see
    /// [`TcpStream::split`](crate::TcpStream::split)).
    pub fn split<'a>(&'a mut self) -> (ReadHalf<'a>, WriteHalf<'a>) {
        split(self)
    }

    /// Splits into owned halves (see
    /// [`TcpStream::into_split`](crate::TcpStream::into_split)); dropping
    /// the write half shuts down the write direction.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split_owned(self)
    }

    pub(crate) fn shutdown_std(&self, how: Shutdown) -> io::Result<()> {
        self.io.shutdown(how)
    }

    fn shutdown_priv(&mut self) -> io::Result<()> {
        self.shutdown_std(Shutdown::Write)
    }
}

impl_stream_read!(UnixStream, |this| this.io);
impl_stream_write!(UnixStream, |this| this.io);

impl TryFrom<std::os::unix::net::UnixStream> for UnixStream {
    type Error = io::Error;

    /// Same as [`UnixStream::from_std`].
    fn try_from(stream: std::os::unix::net::UnixStream) -> io::Result<Self> {
        UnixStream::from_std(stream)
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get_ref().fmt(f)
    }
}

impl AsRef<UnixStream> for UnixStream {
    fn as_ref(&self) -> &UnixStream {
        self
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.raw_fd()
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}
