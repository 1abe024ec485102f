//! [`UnixListener`]: a Unix domain socket server (tokio's `UnixListener`).

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::task::{Context, Poll};

use insane_runtime::driver::Direction;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::io::PollIo;
use crate::unix::{SocketAddr, UnixStream, sock_addr};

/// A Unix domain socket server, listening for connections, with tokio's
/// API.
///
/// ```no_run
/// use insane_net::UnixListener;
///
/// # async fn f() -> std::io::Result<()> {
/// let listener = UnixListener::bind("/tmp/insane.sock")?;
/// loop {
///     let (stream, _addr) = listener.accept().await?;
///     insane_runtime::spawn(async move {
///         // serve `stream`
///         # drop(stream);
///     });
/// }
/// # }
/// ```
pub struct UnixListener {
    io: PollIo<std::os::unix::net::UnixListener>,
}

impl UnixListener {
    /// Creates a listener bound to `path` (which must not exist yet); a
    /// path that starts with a NUL byte is a name in Linux's abstract
    /// namespace (`"\0name"`), as in tokio.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::bind_sockaddr(&SockAddr::unix(path)?)
    }

    /// Creates a listener bound to `addr` (a path or, on Linux, an
    /// abstract name).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        UnixListener::bind_sockaddr(&sock_addr(addr)?)
    }

    fn bind_sockaddr(addr: &SockAddr) -> io::Result<UnixListener> {
        let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        socket.bind(addr)?;
        socket.listen(1024)?;
        Ok(UnixListener {
            io: PollIo::new(socket.into()),
        })
    }

    /// Creates a `UnixListener` from a std one, switching it to
    /// non-blocking mode.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            io: PollIo::new(listener),
        })
    }

    /// Turns this listener into a std one, left in non-blocking mode.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        self.io.into_inner()
    }

    /// The local address of this listener.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr().map(SocketAddr::from)
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Accepts a new connection; returns the stream and the peer's address.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls to accept a new connection. Only the waker of the most recent
    /// call is woken.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        self.io.poll_io(Direction::Read, cx, || {
            let (socket, _) = self
                .io
                .sock()
                .accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)?;
            let stream = std::os::unix::net::UnixStream::from(socket);
            let addr = stream.peer_addr()?;
            Ok((UnixStream::new(stream), addr.into()))
        })
    }
}

impl TryFrom<std::os::unix::net::UnixListener> for UnixListener {
    type Error = io::Error;

    /// Same as [`UnixListener::from_std`].
    fn try_from(listener: std::os::unix::net::UnixListener) -> io::Result<Self> {
        UnixListener::from_std(listener)
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get_ref().fmt(f)
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.raw_fd()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}
