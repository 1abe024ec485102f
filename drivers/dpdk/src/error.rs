//! [`Error`]: what failed, and why, in DPDK's words.

use std::fmt;
use std::io;

/// A DPDK operation failed: names the operation (and port, pool, ...) and
/// the cause (`rte_strerror` of `rte_errno` or of the returned error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    what: String,
    errno: Option<i32>,
    kind: io::ErrorKind,
}

impl Error {
    /// `what` failed with the DPDK/POSIX error number `errno` (positive);
    /// the message is `what: <rte_strerror(errno)>`.
    #[cfg(insane_dpdk_available)]
    pub(crate) fn errno(what: impl Into<String>, errno: i32) -> Self {
        let errno = errno.abs();
        // SAFETY: rte_strerror accepts any number and returns a pointer to
        // a NUL-terminated string (static, or a thread-local buffer that
        // stays valid until the next call in this thread; copied at once).
        let text = unsafe { std::ffi::CStr::from_ptr(insane_dpdk_sys::rte_strerror(errno)) }
            .to_string_lossy()
            .into_owned();
        Self {
            what: format!("{}: {text} (errno {errno})", what.into()),
            errno: Some(errno),
            kind: io::Error::from_raw_os_error(errno).kind(),
        }
    }

    /// `what` failed with the calling thread's `rte_errno`.
    #[cfg(insane_dpdk_available)]
    pub(crate) fn rte_errno(what: impl Into<String>) -> Self {
        // SAFETY: reads the calling thread's rte_errno.
        let errno = unsafe { insane_dpdk_sys::insane_rte_errno() };
        Self::errno(what, errno)
    }

    /// An error of `kind` described by `what`, without an errno.
    pub(crate) fn other(kind: io::ErrorKind, what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            errno: None,
            kind,
        }
    }

    /// The error of every entry point in a build without libdpdk.
    pub fn unavailable() -> Self {
        Self::other(io::ErrorKind::Unsupported, insane_dpdk_sys::UNAVAILABLE)
    }

    /// The DPDK/POSIX error number, when the failure had one.
    pub fn raw_errno(&self) -> Option<i32> {
        self.errno
    }

    /// The closest [`io::ErrorKind`].
    pub fn kind(&self) -> io::ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        io::Error::new(e.kind, e.what)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
