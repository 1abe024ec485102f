//! Files and directories with tokio's `fs` API: [`File`], [`OpenOptions`],
//! [`DirBuilder`], [`read_dir`] and the free functions ([`read`],
//! [`write`], [`metadata`], [`rename`], ...).
//!
//! **On a core running io_uring**, the operations the kernel has as io_uring
//! requests are one request each, completed by the core's ring without
//! leaving the core: opening (`OPENAT`), reading and writing (`READ`,
//! `WRITE`), `sync_all`/`sync_data` (`FSYNC`), `set_len` (`FTRUNCATE`,
//! Linux 6.9), [`try_exists`] and the size hint of [`read`] (`STATX`),
//! [`remove_file`]/[`remove_dir`] (`UNLINKAT`), [`rename`] (`RENAMEAT`),
//! [`create_dir`]/[`create_dir_all`]/[`DirBuilder`] (`MKDIRAT`),
//! [`hard_link`] (`LINKAT`), [`symlink`] (`SYMLINKAT`), and the close at
//! the end of [`write`] (`CLOSE`). tokio runs every one of them on its
//! blocking thread pool, a thread hop each.
//!
//! **Everything else**, and everything on a core running epoll (or a
//! kernel without the opcode, probed at start), runs on the runtime's
//! bounded blocking pool ([`spawn_blocking`](insane_runtime::task::spawn_blocking)),
//! as in tokio: [`metadata`], [`symlink_metadata`], `File::metadata` (std's
//! `Metadata` cannot be built from a `statx` result), [`read_dir`],
//! [`canonicalize`], [`copy`], [`read_link`], [`remove_dir_all`],
//! [`set_permissions`].
//!
//! Errors are the operating system's, as in std and tokio (the same
//! `ErrorKind` and `raw_os_error`; they do not name the path).
//!
//! ```
//! # insane_runtime::runtime::Runtime::builder().cores(1)
//! #     .on_core_start(std::sync::Arc::new(|_| insane_uring::install_on_current_core(&Default::default())
//! #         .or_else(|_| insane_epoll::install_on_current_core())))
//! #     .build().unwrap().block_on(async {
//! use insane_net::fs;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let dir = std::env::temp_dir().join(format!("insane-fs-doc-{}", std::process::id()));
//! fs::create_dir_all(&dir).await?;
//! let path = dir.join("hello.txt");
//!
//! fs::write(&path, b"hello").await?;
//! let mut file = fs::OpenOptions::new().append(true).open(&path).await?;
//! file.write_all(b", world").await?;
//! file.flush().await?;
//!
//! let mut text = String::new();
//! fs::File::open(&path).await?.read_to_string(&mut text).await?;
//! assert_eq!(text, "hello, world");
//! fs::remove_dir_all(&dir).await?;
//! # std::io::Result::Ok(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//!
//! - `file.rs`: [`File`], its read/write/seek state machine;
//! - `open_options.rs`: [`OpenOptions`] (std's flags, also as open(2)
//!   flags for `OPENAT`);
//! - `paths.rs`: the free functions and [`DirBuilder`];
//! - `read_dir.rs`: [`ReadDir`], [`DirEntry`];
//! - this file: the choice between io_uring and the blocking pool.

mod file;
mod open_options;
mod paths;
mod read_dir;

use std::ffi::CString;
use std::future::Future;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use insane_runtime::runtime::Handle;
use insane_uring::FileOps;

pub use file::File;
pub use open_options::OpenOptions;
pub use paths::{
    DirBuilder, canonicalize, copy, create_dir, create_dir_all, hard_link, metadata, read,
    read_link, read_to_string, remove_dir, remove_dir_all, remove_file, rename, set_permissions,
    symlink, symlink_metadata, try_exists, write,
};
pub use read_dir::{DirEntry, ReadDir, read_dir};
/// Timestamps for [`File::set_times`] (std's type; tokio has its own with
/// the same methods).
pub use std::fs::FileTimes;

use crate::owned::ops::{CoreBound, on_uring};

/// The io_uring file operations of the current core's driver, or `None`
/// when the core runs another driver (or this is not a core).
fn uring_file_ops() -> Option<FileOps> {
    if !on_uring() {
        return None;
    }
    insane_uring::Handle::current()
        .ok()
        .map(|h| h.features().files)
}

/// Whether the current core can run the io_uring file operation `op`
/// picks.
fn uring_has(op: impl FnOnce(&FileOps) -> bool) -> bool {
    uring_file_ops().is_some_and(|ops| op(&ops))
}

/// Runs an io_uring operation future of the current core as a `Send`
/// future (see [`CoreBound`]).
///
/// # Safety
/// Until first polled, `fut` holds only `Send` values (its arguments:
/// paths, fd guards of `Send` types, owned buffers).
unsafe fn on_core<F: Future>(fut: F) -> CoreBound<F, ()> {
    // SAFETY: forwarded to the caller.
    unsafe { CoreBound::new(fut) }
}

/// Runs `f` on the current runtime's blocking pool (tokio's `asyncify`).
async fn asyncify<F, T>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let handle = runtime_handle()?;
    match handle.spawn_blocking(f).await {
        Ok(res) => res,
        Err(e) => Err(e.into()),
    }
}

/// The current runtime, or an error saying that `insane::fs` needs one.
fn runtime_handle() -> io::Result<Handle> {
    Handle::try_current().map_err(|_| {
        io::Error::other(
            "insane::fs must be used inside an insane runtime \
             (a core, a blocking closure, or a thread that entered a runtime)",
        )
    })
}

/// `path` as the C string io_uring path operations take.
fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {} contains a NUL byte", path.display()),
        )
    })
}
