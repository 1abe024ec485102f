//! Unix domain sockets: [`UnixSocket`], [`UnixListener`], [`UnixStream`]
//! (with its split halves), [`UnixDatagram`] and [`UCred`], and anonymous
//! pipes and FIFOs in [`pipe`] (tokio's `tokio::net::unix`).
//!
//! Addresses are [`SocketAddr`]s (tokio's wrapper of std's, with
//! `as_abstract_name`); a path that starts with a NUL byte names Linux's
//! abstract namespace.

mod datagram;
mod listener;
pub mod pipe;
mod socket;
mod socket_addr;
mod split;
mod split_owned;
mod stream;
mod ucred;

pub use datagram::UnixDatagram;
pub use listener::UnixListener;
pub use socket::UnixSocket;
pub use socket_addr::SocketAddr;
pub use split::{ReadHalf, WriteHalf};
pub use split_owned::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use stream::UnixStream;
pub use ucred::UCred;

/// A user id, as in [`UCred::uid`] (tokio's `net::unix::uid_t`).
#[allow(non_camel_case_types)]
pub type uid_t = libc::uid_t;
/// A group id, as in [`UCred::gid`] (tokio's `net::unix::gid_t`).
#[allow(non_camel_case_types)]
pub type gid_t = libc::gid_t;
/// A process id, as in [`UCred::pid`] (tokio's `net::unix::pid_t`).
#[allow(non_camel_case_types)]
pub type pid_t = libc::pid_t;

use std::io;

/// A `socket2` address for a Unix socket address (path, abstract name
/// or unnamed).
pub(crate) fn sock_addr(addr: &SocketAddr) -> io::Result<socket2::SockAddr> {
    if let Some(path) = addr.as_pathname() {
        socket2::SockAddr::unix(path)
    } else if let Some(name) = addr.as_abstract_name() {
        let mut bytes = Vec::with_capacity(name.len() + 1);
        bytes.push(0);
        bytes.extend_from_slice(name);
        socket2::SockAddr::unix(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&bytes),
        )
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an unnamed Unix socket address cannot be used here",
        ))
    }
}
