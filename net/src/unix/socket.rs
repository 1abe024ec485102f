//! [`UnixSocket`]: a Unix domain socket not yet turned into a listener, a
//! stream or a datagram socket (tokio's `net::UnixSocket`).

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::path::Path;
use std::task::{Poll, ready};

use insane_runtime::driver::Direction;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::unix::{SocketAddr, UnixDatagram, UnixListener, UnixStream};

/// A Unix domain socket that has not been turned into a [`UnixListener`],
/// a [`UnixStream`] or a [`UnixDatagram`] yet, with tokio's API: create
/// it, [`bind`](Self::bind) it, then [`listen`](Self::listen),
/// [`connect`](Self::connect) or make it a [`datagram`](Self::datagram).
///
/// The socket is created in non-blocking, close-on-exec mode.
///
/// ```no_run
/// use insane_net::UnixSocket;
///
/// # async fn f() -> std::io::Result<()> {
/// let socket = UnixSocket::new_stream()?;
/// socket.bind("/tmp/insane-server.sock")?;
/// let listener = socket.listen(1024)?;
///
/// let stream = UnixSocket::new_stream()?
///     .connect("/tmp/insane-server.sock")
///     .await?;
/// # drop((listener, stream));
/// # Ok(())
/// # }
/// ```
pub struct UnixSocket {
    inner: Socket,
}

impl UnixSocket {
    fn new(ty: Type) -> io::Result<UnixSocket> {
        let inner = Socket::new(Domain::UNIX, ty.nonblocking().cloexec(), None)?;
        Ok(UnixSocket { inner })
    }

    /// Creates a new Unix datagram socket (`SOCK_DGRAM`).
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let socket = insane_net::UnixSocket::new_datagram()?;
    /// # drop(socket);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new_datagram() -> io::Result<UnixSocket> {
        UnixSocket::new(Type::DGRAM)
    }

    /// Creates a new Unix stream socket (`SOCK_STREAM`).
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let socket = insane_net::UnixSocket::new_stream()?;
    /// # drop(socket);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new_stream() -> io::Result<UnixSocket> {
        UnixSocket::new(Type::STREAM)
    }

    /// The socket's type, read from the kernel (`SO_TYPE`), so that a
    /// socket made with [`FromRawFd`] is checked too.
    fn ty(&self) -> io::Result<Type> {
        self.inner.r#type()
    }

    /// Fails with `InvalidInput` naming `op` unless the socket is of type
    /// `want`.
    fn expect_type(&self, want: Type, op: &str) -> io::Result<()> {
        let ty = self.ty()?;
        if ty == want {
            return Ok(());
        }
        let (is, needs) = if want == Type::STREAM {
            ("datagram", "stream")
        } else {
            ("stream", "datagram")
        };
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "UnixSocket::{op} cannot be called on a {is} socket \
                 (it needs a {needs} socket, see UnixSocket::new_{needs})"
            ),
        ))
    }

    /// The local address of this socket (unnamed until
    /// [`bind`](Self::bind)).
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let socket = insane_net::UnixSocket::new_stream()?;
    /// socket.bind("/tmp/insane-addr.sock")?;
    /// println!("{:?}", socket.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let addr = self.inner.local_addr()?;
        to_std_addr(&addr).map(SocketAddr::from)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let socket = insane_net::UnixSocket::new_stream()?;
    /// assert!(socket.take_error()?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.take_error()
    }

    /// Binds the socket to `path` (which must not exist yet).
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let socket = insane_net::UnixSocket::new_datagram()?;
    /// socket.bind("/tmp/insane-bind.sock")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn bind(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let addr = SockAddr::unix(path)?;
        self.inner.bind(&addr)
    }

    /// Turns a stream socket into a [`UnixListener`] with a queue of
    /// `backlog` pending connections (values above `i32::MAX` are capped).
    ///
    /// # Errors
    /// `InvalidInput` on a datagram socket; the `listen(2)` error
    /// otherwise (for instance when the socket is not bound).
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let socket = insane_net::UnixSocket::new_stream()?;
    /// socket.bind("/tmp/insane-listen.sock")?;
    /// let listener = socket.listen(128)?;
    /// # drop(listener);
    /// # Ok(())
    /// # }
    /// ```
    pub fn listen(self, backlog: u32) -> io::Result<UnixListener> {
        self.expect_type(Type::STREAM, "listen")?;
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        self.inner.listen(backlog)?;
        UnixListener::from_std(self.inner.into())
    }

    /// Connects a stream socket to the listener bound at `path` and
    /// returns the connected [`UnixStream`].
    ///
    /// # Errors
    /// `InvalidInput` on a datagram socket; the `connect(2)` error
    /// otherwise (`NotFound` when nothing is bound at `path`).
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let stream = insane_net::UnixSocket::new_stream()?
    ///     .connect("/tmp/insane-server.sock")
    ///     .await?;
    /// # drop(stream);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(self, path: impl AsRef<Path>) -> io::Result<UnixStream> {
        self.expect_type(Type::STREAM, "connect")?;
        let addr = SockAddr::unix(path)?;
        // A socket made with `FromRawFd` may be in blocking mode.
        self.inner.set_nonblocking(true)?;
        let pending = match self.inner.connect(&addr) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
            Err(e) => return Err(e),
        };
        let stream = UnixStream::new(self.inner.into());
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

    /// Turns a datagram socket into a [`UnixDatagram`].
    ///
    /// # Errors
    /// `InvalidInput` on a stream socket.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let socket = insane_net::UnixSocket::new_datagram()?;
    /// socket.bind("/tmp/insane-dgram.sock")?;
    /// let datagram = socket.datagram()?;
    /// # drop(datagram);
    /// # Ok(())
    /// # }
    /// ```
    pub fn datagram(self) -> io::Result<UnixDatagram> {
        self.expect_type(Type::DGRAM, "datagram")?;
        UnixDatagram::from_std(self.inner.into())
    }
}

/// A std socket address from a `socket2` one of the Unix family.
fn to_std_addr(addr: &SockAddr) -> io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr as StdSocketAddr;
    if let Some(path) = addr.as_pathname() {
        return StdSocketAddr::from_pathname(path);
    }
    if let Some(name) = addr.as_abstract_namespace() {
        return StdSocketAddr::from_abstract_name(name);
    }
    if addr.is_unnamed() {
        // std has no constructor of an unnamed address: take one from an
        // unbound socket.
        return std::os::unix::net::UnixDatagram::unbound()?.local_addr();
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the socket's local address is not a Unix socket address",
    ))
}

impl fmt::Debug for UnixSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixSocket")
            .field("fd", &self.inner.as_raw_fd())
            .finish()
    }
}

impl AsRawFd for UnixSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for UnixSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl FromRawFd for UnixSocket {
    /// Takes ownership of `fd`, a Unix domain socket.
    ///
    /// # Safety
    /// `fd` must be an open socket owned by the caller, which gives up
    /// that ownership.
    unsafe fn from_raw_fd(fd: RawFd) -> UnixSocket {
        // SAFETY: the caller guarantees that `fd` is an open socket it
        // owns and hands over (this function's contract).
        let inner = unsafe { Socket::from_raw_fd(fd) };
        UnixSocket { inner }
    }
}

impl IntoRawFd for UnixSocket {
    fn into_raw_fd(self) -> RawFd {
        self.inner.into_raw_fd()
    }
}
