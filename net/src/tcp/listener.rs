//! [`TcpListener`]: a TCP socket server (tokio's `TcpListener`).

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{Context, Poll};

use insane_runtime::driver::Direction;
use socket2::{Domain, Protocol, Socket, Type};

use crate::addr::{ToSocketAddrs, each_addr};
use crate::io::PollIo;
use crate::tcp::TcpStream;

/// A TCP socket server, listening for connections, with tokio's API.
///
/// ```no_run
/// use insane_net::TcpListener;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # async fn f() -> std::io::Result<()> {
/// let listener = TcpListener::bind("127.0.0.1:8080").await?;
/// loop {
///     let (mut socket, _peer) = listener.accept().await?;
///     insane_runtime::spawn(async move {
///         let mut buf = vec![0; 4096];
///         while let Ok(n @ 1..) = socket.read(&mut buf).await {
///             if socket.write_all(&buf[..n]).await.is_err() {
///                 break;
///             }
///         }
///     });
/// }
/// # }
/// ```
pub struct TcpListener {
    io: PollIo<std::net::TcpListener>,
}

impl TcpListener {
    /// Creates a listener bound to `addr` (with `SO_REUSEADDR` and a
    /// backlog of 1024, like tokio). Port 0 asks the OS for a free port;
    /// see [`local_addr`](Self::local_addr).
    ///
    /// When `addr` resolves to several addresses, each is tried until one
    /// binds; otherwise the last error is returned (e.g.
    /// [`AddrInUse`](io::ErrorKind::AddrInUse)).
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let listener = insane_net::TcpListener::bind("127.0.0.1:0").await?;
    /// println!("listening on {}", listener.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |addr| {
            std::future::ready(TcpListener::bind_addr(addr))
        })
        .await
    }

    fn bind_addr(addr: SocketAddr) -> io::Result<TcpListener> {
        Self::bind_reuse(addr, false)
    }

    /// A listener on `addr` with `SO_REUSEADDR`, and `SO_REUSEPORT` when
    /// `reuseport`.
    fn bind_reuse(addr: SocketAddr, reuseport: bool) -> io::Result<TcpListener> {
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        if reuseport {
            socket.set_reuse_port(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        Ok(TcpListener::new(socket.into()))
    }

    /// Serves `addr` on every core of the current runtime: binds one
    /// listener per core (with `SO_REUSEPORT` when there are several, so
    /// the kernel spreads connections over them) and runs
    /// `serve(listener)` on each core as a task of that core. Returns the
    /// address served (the kernel's port for port 0) once every core
    /// listens.
    ///
    /// This is how a thread-per-core server uses all its cores: a task
    /// stays on the core that spawned it, so a single listener that spawns
    /// a task per connection serves them all on its own core. `serve` may
    /// be `!Send` (it runs where it is spawned).
    ///
    /// ```no_run
    /// use insane_net::TcpListener;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # async fn f() -> std::io::Result<()> {
    /// let addr = TcpListener::bind_on_every_core("127.0.0.1:8080", |listener| async move {
    ///     while let Ok((mut socket, _)) = listener.accept().await {
    ///         insane_runtime::task::spawn_local(async move {
    ///             let mut buf = vec![0; 4096];
    ///             while let Ok(n @ 1..) = socket.read(&mut buf).await {
    ///                 if socket.write_all(&buf[..n]).await.is_err() {
    ///                     break;
    ///                 }
    ///             }
    ///         });
    ///     }
    /// })
    /// .await?;
    /// println!("serving {addr} on every core");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Outside an insane runtime; a bind fails on some core (the error
    /// names the core; listeners already bound keep serving).
    pub async fn bind_on_every_core<A, F, Fut>(addr: A, serve: F) -> io::Result<SocketAddr>
    where
        A: ToSocketAddrs,
        F: Fn(TcpListener) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        crate::every_core::serve_on_every_core(
            addr,
            TcpListener::bind_reuse,
            TcpListener::local_addr,
            serve,
        )
        .await
    }

    /// Wraps a listening, non-blocking std listener.
    pub(crate) fn new(listener: std::net::TcpListener) -> TcpListener {
        TcpListener {
            io: PollIo::new(listener),
        }
    }

    /// Accepts a new connection, returning the stream and the peer's
    /// address. Cancel safe: dropping the future loses no connection.
    ///
    /// ```no_run
    /// # async fn f(listener: insane_net::TcpListener) -> std::io::Result<()> {
    /// let (stream, peer) = listener.accept().await?;
    /// println!("new client {peer}");
    /// # drop(stream);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls to accept a new connection; registers the task for wake-up
    /// when none is pending. Only the waker of the most recent call is
    /// woken.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.io.poll_io(Direction::Read, cx, || {
            let (socket, addr) = self
                .io
                .sock()
                .accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)?;
            let addr = addr
                .as_socket()
                .ok_or_else(|| io::Error::other("accepted a connection without an IP address"))?;
            Ok((TcpStream::new(socket.into()), addr))
        })
    }

    /// Creates a `TcpListener` from a listening `std::net::TcpListener`,
    /// switching it to non-blocking mode.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let listener = insane_net::TcpListener::from_std(std_listener)?;
    /// # drop(listener);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener::new(listener))
    }

    /// Turns this listener into a `std::net::TcpListener`, left in
    /// non-blocking mode.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        self.io.into_inner()
    }

    /// The local address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// The IP time-to-live (`IP_TTL`).
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Sets the IP time-to-live (`IP_TTL`) of the listener's future
    /// connections.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }
}

impl TryFrom<std::net::TcpListener> for TcpListener {
    type Error = io::Error;

    /// Same as [`TcpListener::from_std`].
    fn try_from(listener: std::net::TcpListener) -> io::Result<Self> {
        TcpListener::from_std(listener)
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.io.get_ref().fmt(f)
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}
