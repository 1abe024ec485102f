//! [`UCred`]: the credentials of a Unix socket's peer (tokio's
//! `unix::UCred`).

use std::io;
use std::os::fd::RawFd;

/// Credentials of the process on the other end of a [`UnixStream`]
/// (`SO_PEERCRED`), as returned by
/// [`UnixStream::peer_cred`](crate::UnixStream::peer_cred).
///
/// [`UnixStream`]: crate::UnixStream
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub struct UCred {
    pid: Option<libc::pid_t>,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl UCred {
    /// The peer's user id.
    pub fn uid(&self) -> libc::uid_t {
        self.uid
    }

    /// The peer's group id.
    pub fn gid(&self) -> libc::gid_t {
        self.gid
    }

    /// The peer's process id (when the OS reports one).
    pub fn pid(&self) -> Option<libc::pid_t> {
        self.pid
    }

    pub(crate) fn of(fd: RawFd) -> io::Result<UCred> {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `cred` and `len` are valid for writes and `len` is the
        // size of `cred`, as SO_PEERCRED requires.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&raw mut cred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if len as usize != std::mem::size_of::<libc::ucred>() {
            return Err(io::Error::other("SO_PEERCRED returned a short ucred"));
        }
        Ok(UCred {
            pid: (cred.pid != 0).then_some(cred.pid),
            uid: cred.uid,
            gid: cred.gid,
        })
    }
}
