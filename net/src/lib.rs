//! insane-net: tokio-compatible sockets over the core's kernel I/O driver
//! (io_uring or epoll), owned-buffer (completion-based, zero-copy) I/O on
//! the same sockets ([`owned`]), and QoS streams ([`qos`], feature `qos`,
//! on by default).
//!
//! The sockets have tokio's names, signatures and semantics:
//! [`TcpListener`], [`TcpStream`], [`TcpSocket`], [`UdpSocket`],
//! [`UnixListener`], [`UnixStream`], [`UnixDatagram`] and
//! [`lookup_host`]. They implement tokio's `AsyncRead`/`AsyncWrite` and
//! the `futures` io traits, so code written for `tokio::net` runs on them
//! after changing imports. They are readiness-based: a socket tries the
//! non-blocking syscall and, on `WouldBlock`, waits for the current core's
//! driver (io_uring `POLL_ADD` or epoll) to report the fd ready.
//!
//! Sockets are `Send + Sync`: one may move to another core, or be shared
//! (`Arc<UdpSocket>`) by tasks on several cores; each core registers the fd
//! with its own driver at its first wait. Using a socket outside an insane
//! runtime (or on a core without an I/O driver) gives an `io::Error`
//! saying so rather than a panic.
//!
//! The same sockets also offer owned-buffer I/O — `read_owned`,
//! `write_all_owned`, `send_to_owned`, `recv_from_owned`, `recv_stream` —
//! which on io_uring are completion-based requests (provided-buffer rings
//! for receives, `SEND_ZC` for large sends) and on epoll fall back to
//! readiness; see [`owned`] for when to use which.
//!
//! ```no_run
//! use insane_net::{TcpListener, TcpStream};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # async fn f() -> std::io::Result<()> {
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! insane_runtime::spawn(async move {
//!     let (mut s, _) = listener.accept().await?;
//!     let mut buf = [0; 5];
//!     s.read_exact(&mut buf).await?;
//!     s.write_all(&buf).await
//! });
//! let mut c = TcpStream::connect(addr).await?;
//! c.write_all(b"hello").await?;
//! let mut buf = [0; 5];
//! c.read_exact(&mut buf).await?;
//! assert_eq!(&buf, b"hello");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod addr;
mod async_fd;
pub mod config;
mod every_core;
pub mod fs;
mod io;
pub mod owned;
pub mod process;
#[cfg(feature = "qos")]
pub mod qos;
mod registration;
mod stream_halves;
mod stream_io;
pub mod tcp;
mod udp;
pub mod unix;

#[cfg(feature = "qos")]
pub mod stack {
    //! The userspace network stack: the `insane-stack` crate, plus the
    //! frame devices of the technologies that run it (AF_XDP, DPDK), which
    //! live with the rest of each technology in
    //! [`qos::transport`](crate::qos::transport).
    pub use insane_stack::*;

    pub use crate::qos::transport::xdp::device as xdp;

    #[cfg(feature = "dpdk")]
    pub use crate::qos::transport::dpdk::device as dpdk;
}

#[doc(hidden)]
pub mod buf {
    //! Renamed to [`owned`](crate::owned); this path stays for one release.
    pub use crate::owned::*;
}

pub use addr::{ToSocketAddrs, lookup_host};
pub use async_fd::{
    AsyncFd, AsyncFdReadyGuard, AsyncFdReadyMutGuard, AsyncFdRegisterError, AsyncFdTryNewError,
    TryIoError,
};
pub use owned::{BufResult, IoBuf, IoBufMut, PooledBuf, RecvPool, RecvStream, Slice};
pub use tcp::{TcpListener, TcpSocket, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixSocket, UnixStream};
