//! File and path operations: `OPENAT`, `CLOSE`, `STATX`, `FSYNC`,
//! `FTRUNCATE`, `UNLINKAT`, `RENAMEAT`, `MKDIRAT`, `SYMLINKAT`, `LINKAT`.
//!
//! Paths are given as owned [`CString`]s, which the operation keeps (with
//! any fd guard and the `statx` buffer) until the kernel has completed it,
//! so dropping a future early is safe as for every [`Op`](super::Op).
//! Relative paths are resolved against the process's working directory
//! (`AT_FDCWD`). Which of these the kernel has is in
//! [`UringFeatures::files`](crate::UringFeatures::files); a missing one
//! fails with `EINVAL` from the kernel.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use io_uring::{opcode, types};

use super::{Op, OpKind, cqe_result};
use crate::driver::Handle;

const CWD: types::Fd = types::Fd(libc::AT_FDCWD);

/// Submits one operation whose only resources are `data` and waits for
/// its result.
///
/// # Safety
/// As [`Op::submit`].
async unsafe fn run_once<T: 'static>(
    data: T,
    build: impl FnOnce(&mut T) -> io_uring::squeue::Entry,
) -> (io::Result<u32>, T) {
    let handle = match Handle::current() {
        Ok(h) => h,
        Err(e) => return (Err(e), data),
    };
    // SAFETY: forwarded to the caller's contract.
    match unsafe { Op::submit(&handle, data, OpKind::Single, build) } {
        Ok(op) => {
            let c = op.await;
            (cqe_result(c.result), c.data)
        }
        Err((e, data)) => (Err(e), data),
    }
}

/// Opens `path` (`IORING_OP_OPENAT`, relative to the working directory)
/// with open(2) `flags` and `mode`; the caller adds `O_CLOEXEC` if it wants
/// it.
pub async fn open_at(path: CString, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: the entry points at the path's heap storage, owned by the
    // operation until it completes.
    let (res, _path) = unsafe {
        run_once(path, |p| {
            opcode::OpenAt::new(CWD, p.as_ptr())
                .flags(flags)
                .mode(mode)
                .build()
        })
    }
    .await;
    let raw = res? as RawFd;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Closes `fd` (`IORING_OP_CLOSE`). The descriptor is given up at once:
/// whether the close succeeds, fails or this future is dropped, `fd` is no
/// longer the caller's (the kernel releases it in every case but a failed
/// submission, where it is closed with close(2)).
pub async fn close(fd: OwnedFd) -> io::Result<()> {
    let handle = Handle::current()?;
    let raw = fd.into_raw_fd();
    // SAFETY: CLOSE carries no pointers.
    let op = unsafe {
        Op::submit(&handle, raw, OpKind::Single, |fd| {
            opcode::Close::new(types::Fd(*fd)).build()
        })
    };
    match op {
        Ok(op) => cqe_result(op.await.result).map(drop),
        Err((e, raw)) => {
            // SAFETY: `raw` came from `into_raw_fd` above and was not
            // handed to the kernel: it is still ours to close.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
            Err(e)
        }
    }
}

/// What [`statx`] looks at: a path (following a final symlink or not), or
/// an open file.
pub enum StatxTarget<F> {
    /// `path`; `follow`: report on the symlink's target, not the link.
    Path {
        /// The path.
        path: CString,
        /// Follow a final symbolic link (`stat`, not `lstat`).
        follow: bool,
    },
    /// The open file `fd` (`AT_EMPTY_PATH`).
    Fd(F),
}

/// `statx(2)` (`IORING_OP_STATX`) for `mask` (`STATX_*` bits).
pub async fn statx<F: AsRawFd + 'static>(
    target: StatxTarget<F>,
    mask: u32,
) -> io::Result<Box<libc::statx>> {
    let (dir, path, guard, flags) = match target {
        StatxTarget::Path { path, follow } => {
            let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
            (libc::AT_FDCWD, path, None, flags)
        }
        StatxTarget::Fd(fd) => (
            fd.as_raw_fd(),
            CString::default(),
            Some(fd),
            libc::AT_EMPTY_PATH,
        ),
    };
    // SAFETY: `statx` is plain data; all-zero is a valid value to fill.
    let buf: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: the entry points at the path's and the buffer's heap storage,
    // both owned by the operation (with the fd guard, which keeps `dir`
    // open) until it completes.
    let (res, (_path, buf, _guard)) = unsafe {
        run_once((path, buf, guard), |d| {
            opcode::Statx::new(
                types::Fd(dir),
                d.0.as_ptr(),
                (&mut *d.1 as *mut libc::statx).cast::<types::statx>(),
            )
            .flags(flags)
            .mask(mask)
            .build()
        })
    }
    .await;
    res.map(|_| buf)
}

/// `fsync(2)`, or `fdatasync(2)` when `data_only` (`IORING_OP_FSYNC`).
pub async fn fsync<F: AsRawFd + 'static>(fd: F, data_only: bool) -> io::Result<()> {
    let flags = if data_only {
        types::FsyncFlags::DATASYNC
    } else {
        types::FsyncFlags::empty()
    };
    // SAFETY: FSYNC carries no pointers; the guard keeps the fd open.
    let (res, _fd) = unsafe {
        run_once(fd, |fd| {
            opcode::Fsync::new(types::Fd(fd.as_raw_fd()))
                .flags(flags)
                .build()
        })
    }
    .await;
    res.map(drop)
}

/// `ftruncate(2)` (`IORING_OP_FTRUNCATE`, Linux 6.9).
pub async fn ftruncate<F: AsRawFd + 'static>(fd: F, len: u64) -> io::Result<()> {
    // SAFETY: FTRUNCATE carries no pointers; the guard keeps the fd open.
    let (res, _fd) = unsafe {
        run_once(fd, |fd| {
            opcode::Ftruncate::new(types::Fd(fd.as_raw_fd()), len).build()
        })
    }
    .await;
    res.map(drop)
}

/// Removes a file, or an empty directory when `dir` (`IORING_OP_UNLINKAT`).
pub async fn unlink_at(path: CString, dir: bool) -> io::Result<()> {
    let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: the entry points at the path, owned by the operation.
    let (res, _path) = unsafe {
        run_once(path, |p| {
            opcode::UnlinkAt::new(CWD, p.as_ptr()).flags(flags).build()
        })
    }
    .await;
    res.map(drop)
}

/// Renames `from` to `to`, replacing `to` (`IORING_OP_RENAMEAT`).
pub async fn rename_at(from: CString, to: CString) -> io::Result<()> {
    // SAFETY: the entry points at both paths, owned by the operation.
    let (res, _paths) = unsafe {
        run_once((from, to), |d| {
            opcode::RenameAt::new(CWD, d.0.as_ptr(), CWD, d.1.as_ptr()).build()
        })
    }
    .await;
    res.map(drop)
}

/// Creates the directory `path` with `mode` (before the umask)
/// (`IORING_OP_MKDIRAT`).
pub async fn mkdir_at(path: CString, mode: u32) -> io::Result<()> {
    // SAFETY: the entry points at the path, owned by the operation.
    let (res, _path) = unsafe {
        run_once(path, |p| {
            opcode::MkDirAt::new(CWD, p.as_ptr()).mode(mode).build()
        })
    }
    .await;
    res.map(drop)
}

/// Creates the symbolic link `link` pointing at `target`
/// (`IORING_OP_SYMLINKAT`).
pub async fn symlink_at(target: CString, link: CString) -> io::Result<()> {
    // SAFETY: the entry points at both paths, owned by the operation.
    let (res, _paths) = unsafe {
        run_once((target, link), |d| {
            opcode::SymlinkAt::new(CWD, d.0.as_ptr(), d.1.as_ptr()).build()
        })
    }
    .await;
    res.map(drop)
}

/// Creates the hard link `link` to `original`, not following a final
/// symlink of `original` (`IORING_OP_LINKAT`, as `link(2)` on Linux).
pub async fn link_at(original: CString, link: CString) -> io::Result<()> {
    // SAFETY: the entry points at both paths, owned by the operation.
    let (res, _paths) = unsafe {
        run_once((original, link), |d| {
            opcode::LinkAt::new(CWD, d.0.as_ptr(), CWD, d.1.as_ptr()).build()
        })
    }
    .await;
    res.map(drop)
}
