//! [`SocketAddr`]: the address of a Unix socket (tokio's
//! `net::unix::SocketAddr`): a path, an abstract name (Linux) or unnamed.

use std::fmt;
use std::os::linux::net::SocketAddrExt;
use std::path::Path;

/// The address of a Unix socket, a thin wrapper around
/// [`std::os::unix::net::SocketAddr`] (convert with [`From`] either way),
/// as tokio's.
///
/// Linux's abstract namespace is reached by a path that starts with a NUL
/// byte, in every call that takes a path (`UnixListener::bind`,
/// `UnixStream::connect`, `UnixDatagram::bind`/`connect`/`send_to`,
/// `UnixSocket::bind`/`connect`), as in tokio, or by an address made with
/// std's `SocketAddrExt::from_abstract_name` (`bind_addr`, `connect_addr`).
///
/// ```no_run
/// use insane_net::UnixListener;
///
/// # fn f() -> std::io::Result<()> {
/// let listener = UnixListener::bind("\0insane-doc")?;
/// let addr = listener.local_addr()?;
/// assert_eq!(addr.as_abstract_name(), Some(&b"insane-doc"[..]));
/// assert_eq!(addr.as_pathname(), None);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SocketAddr(std::os::unix::net::SocketAddr);

impl SocketAddr {
    /// Whether the address is unnamed (an unbound socket, or a peer made
    /// by `socketpair`).
    pub fn is_unnamed(&self) -> bool {
        self.0.is_unnamed()
    }

    /// The path, if this is a path address.
    pub fn as_pathname(&self) -> Option<&Path> {
        self.0.as_pathname()
    }

    /// The name, if this is an address in Linux's abstract namespace
    /// (without the leading NUL byte).
    pub fn as_abstract_name(&self) -> Option<&[u8]> {
        self.0.as_abstract_name()
    }
}

impl fmt::Debug for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<std::os::unix::net::SocketAddr> for SocketAddr {
    fn from(addr: std::os::unix::net::SocketAddr) -> Self {
        SocketAddr(addr)
    }
}

impl From<SocketAddr> for std::os::unix::net::SocketAddr {
    fn from(addr: SocketAddr) -> Self {
        addr.0
    }
}
