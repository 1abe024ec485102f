//! [`UnixDatagram`]: a Unix domain datagram socket (tokio's
//! `UnixDatagram`).

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::task::{Context, Poll};

use insane_runtime::driver::Direction;
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::{Interest, ReadBuf, Ready};

use crate::io::PollIo;
use crate::unix::SocketAddr;

/// A Unix domain datagram socket, with tokio's API; every method takes
/// `&self`.
///
/// ```no_run
/// use insane_net::UnixDatagram;
///
/// # async fn f() -> std::io::Result<()> {
/// let (a, b) = UnixDatagram::pair()?;
/// a.send(b"hello").await?;
/// let mut buf = [0; 16];
/// let n = b.recv(&mut buf).await?;
/// assert_eq!(&buf[..n], b"hello");
/// # Ok(())
/// # }
/// ```
pub struct UnixDatagram {
    io: PollIo<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    fn new(socket: std::os::unix::net::UnixDatagram) -> UnixDatagram {
        UnixDatagram {
            io: PollIo::new(socket),
        }
    }

    fn socket() -> io::Result<Socket> {
        Socket::new(Domain::UNIX, Type::DGRAM.nonblocking(), None)
    }

    /// Creates a socket bound to `path` (a NUL byte first: an abstract
    /// name, as in tokio).
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        let socket = UnixDatagram::socket()?;
        socket.bind(&SockAddr::unix(path)?)?;
        Ok(UnixDatagram::new(socket.into()))
    }

    /// Creates a connected pair of unnamed sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM.nonblocking(), None)?;
        Ok((UnixDatagram::new(a.into()), UnixDatagram::new(b.into())))
    }

    /// Creates a socket not bound to any address (it can send, and receive
    /// replies once connected).
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::new(UnixDatagram::socket()?.into()))
    }

    /// Creates a `UnixDatagram` from a std one, switching it to
    /// non-blocking mode.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(true)?;
        Ok(UnixDatagram::new(socket))
    }

    /// Turns this socket into a std one, left in non-blocking mode.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixDatagram> {
        self.io.into_inner()
    }

    /// Connects the socket to `path`: [`send`](Self::send) goes there and
    /// only datagrams from there are received (a NUL byte first: an
    /// abstract name, as in tokio).
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        // socket2, not std: std refuses the NUL byte of an abstract name.
        self.io.sock().connect(&SockAddr::unix(path)?)
    }

    /// Waits for any of the requested ready states.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.io.ready(interest).await
    }

    /// Waits until the socket may be writable.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.writable().await
    }

    /// Polls for write readiness.
    pub fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(Direction::Write, cx)
    }

    /// Waits until the socket may be readable.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Polls for read readiness.
    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(Direction::Read, cx)
    }

    /// Sends a datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .do_io(Direction::Write, || self.io.send_slice(buf))
            .await
    }

    /// Sends to the connected peer without waiting.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Write, || self.io.send_slice(buf))
    }

    /// Polls to send a datagram to the connected peer.
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io
            .poll_io(Direction::Write, cx, || self.io.send_slice(buf))
    }

    /// Sends a datagram to the socket bound at `target`.
    pub async fn send_to<P: AsRef<Path>>(&self, buf: &[u8], target: P) -> io::Result<usize> {
        let target = SockAddr::unix(target)?;
        self.io
            .do_io(Direction::Write, || self.send_to_addr(buf, &target))
            .await
    }

    fn send_to_addr(&self, buf: &[u8], target: &SockAddr) -> io::Result<usize> {
        self.io
            .sock()
            .send_to_with_flags(buf, target, libc::MSG_NOSIGNAL)
    }

    /// Sends a datagram to `target` without waiting.
    pub fn try_send_to<P: AsRef<Path>>(&self, buf: &[u8], target: P) -> io::Result<usize> {
        let target = SockAddr::unix(target)?;
        self.io
            .try_dir(Direction::Write, || self.send_to_addr(buf, &target))
    }

    /// Polls to send a datagram to `target`.
    pub fn poll_send_to<P: AsRef<Path>>(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: P,
    ) -> Poll<io::Result<usize>> {
        let target = match SockAddr::unix(target) {
            Ok(t) => t,
            Err(e) => return Poll::Ready(Err(e)),
        };
        self.io
            .poll_io(Direction::Write, cx, || self.send_to_addr(buf, &target))
    }

    /// Receives a datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .do_io(Direction::Read, || self.io.recv_slice(buf, false))
            .await
    }

    /// Receives a datagram without waiting (`WouldBlock` when none is
    /// queued).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Read, || self.io.recv_slice(buf, false))
    }

    /// Polls to receive a datagram.
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.io
            .poll_io(Direction::Read, cx, || self.io.recv_buf(buf, false))
            .map_ok(|_| ())
    }

    /// Like [`recv`](Self::recv), appending to a `BufMut`.
    pub async fn recv_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.io
            .do_io(Direction::Read, || self.io.recv_bufmut(buf))
            .await
    }

    /// Like [`try_recv`](Self::try_recv), appending to a `BufMut`.
    pub fn try_recv_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Read, || self.io.recv_bufmut(buf))
    }

    fn recv_from_slice(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, addr) = self.io.get_ref().recv_from(buf)?;
        Ok((n, addr.into()))
    }

    /// Receives a datagram; returns its length and the sender's address.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .do_io(Direction::Read, || self.recv_from_slice(buf))
            .await
    }

    /// Receives a datagram and its sender without waiting.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .try_dir(Direction::Read, || self.recv_from_slice(buf))
    }

    /// Polls to receive a datagram; returns the sender's address.
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        self.io.poll_io(Direction::Read, cx, || {
            let (n, addr) = self.recv_from_slice(buf.initialize_unfilled())?;
            buf.advance(n);
            Ok(addr)
        })
    }

    fn recv_from_bufmut<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<(usize, SocketAddr)> {
        let chunk = buf.chunk_mut();
        // SAFETY: `UninitSlice` is a `[MaybeUninit<u8>]` we may write to;
        // only initialised bytes are written into it.
        let dst = unsafe { chunk.as_uninit_slice_mut() };
        for b in dst.iter_mut() {
            b.write(0);
        }
        // SAFETY: every byte of `dst` was initialised just above, and
        // `MaybeUninit<u8>` has the layout of `u8`.
        let init = unsafe { &mut *(dst as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
        let (n, addr) = self.recv_from_slice(init)?;
        // SAFETY: the first `n` bytes of the chunk are initialised (all
        // of it is).
        unsafe { buf.advance_mut(n) };
        Ok((n, addr))
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

    /// Like [`try_recv_from`](Self::try_recv_from), appending to a
    /// `BufMut`.
    pub fn try_recv_buf_from<B: bytes::BufMut>(
        &self,
        buf: &mut B,
    ) -> io::Result<(usize, SocketAddr)> {
        self.io
            .try_dir(Direction::Read, || self.recv_from_bufmut(buf))
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

    /// The local address of this socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr().map(SocketAddr::from)
    }

    /// The address of the connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr().map(SocketAddr::from)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Shuts down the read, write or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }
}

impl TryFrom<std::os::unix::net::UnixDatagram> for UnixDatagram {
    type Error = io::Error;

    /// Same as [`UnixDatagram::from_std`].
    fn try_from(socket: std::os::unix::net::UnixDatagram) -> io::Result<Self> {
        UnixDatagram::from_std(socket)
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get_ref().fmt(f)
    }
}

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.io.raw_fd()
    }
}

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}
