//! The free functions of tokio's `fs` (`read`, `write`, `rename`, ...) and
//! [`DirBuilder`]: one io_uring request each where the kernel has one,
//! std's function on the blocking pool otherwise.

use std::fs::{Metadata, Permissions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use insane_buf::IoBuf;
use insane_uring::op::{self, StatxTarget};

use super::{asyncify, c_path, on_core, uring_file_ops, uring_has};

/// Reads the whole file at `path` (tokio's `fs::read`).
///
/// On io_uring: `OPENAT`, then `READ`s until the end (`STATX` for the size
/// once the file proves larger than 16 KiB).
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1)
/// #     .on_core_start(std::sync::Arc::new(|_| insane_uring::install_on_current_core(&Default::default())
/// #         .or_else(|_| insane_epoll::install_on_current_core())))
/// #     .build().unwrap().block_on(async {
/// let path = std::env::temp_dir().join(format!("insane-read-doc-{}", std::process::id()));
/// insane_net::fs::write(&path, b"abc").await?;
/// assert_eq!(insane_net::fs::read(&path).await?, b"abc");
/// # insane_net::fs::remove_file(&path).await?;
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    if uring_has(|ops| ops.openat && ops.statx) {
        let c = c_path(path)?;
        // SAFETY: the future holds only the path until polled.
        return unsafe { on_core(read_uring(c)) }.await;
    }
    let path = path.to_owned();
    asyncify(move || std::fs::read(path)).await
}

/// The buffer of [`read`]'s first request: files up to this size take one
/// `READ` plus the one that sees the end.
const FIRST_READ: usize = 16 * 1024;

async fn read_uring(path: std::ffi::CString) -> io::Result<Vec<u8>> {
    let fd = Arc::new(op::open_at(path, libc::O_RDONLY | libc::O_CLOEXEC, 0).await?);
    let mut buf = Vec::with_capacity(FIRST_READ);
    let mut sized = false;
    loop {
        if buf.len() == buf.capacity() {
            // A large file: its size (a hint, as in std: a file may grow,
            // or be a procfs file of size 0) saves growing the buffer step
            // by step. Asked only now because `STATX` runs on an io_uring
            // worker thread (it has no non-blocking path in the kernel),
            // which a small file's read should not wait for.
            let size = if sized {
                0
            } else {
                sized = true;
                op::statx(StatxTarget::Fd(fd.clone()), libc::STATX_SIZE)
                    .await
                    .map_or(0, |st| usize::try_from(st.stx_size).unwrap_or(0))
            };
            let wanted = size.saturating_sub(buf.len()).saturating_add(1);
            buf.reserve(wanted.max(buf.capacity()));
        }
        let offset = buf.len() as u64;
        let start = buf.len();
        let (res, slice) = op::read_at(fd.clone(), buf.slice(start..), offset).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => return Ok(buf),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads the whole file at `path` as UTF-8 (tokio's `fs::read_to_string`).
///
/// # Errors
/// Those of [`read`], and `InvalidData` when the file is not UTF-8.
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let bytes = read(path).await?;
    String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Writes `contents` as the whole file at `path`, creating or truncating it
/// (tokio's `fs::write`).
///
/// On io_uring: `OPENAT`, `WRITE`s, then `CLOSE`, whose error (some file
/// systems report write errors only there) is returned.
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let path = path.as_ref();
    let contents = contents.as_ref().to_owned();
    if uring_has(|ops| ops.openat && ops.close) {
        let c = c_path(path)?;
        // SAFETY: the future holds only the path and the bytes until
        // polled.
        return unsafe { on_core(write_uring(c, contents)) }.await;
    }
    let path = path.to_owned();
    asyncify(move || std::fs::write(path, contents)).await
}

async fn write_uring(path: std::ffi::CString, contents: Vec<u8>) -> io::Result<()> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
    let fd = Arc::new(op::open_at(path, flags, 0o666).await?);
    let (res, _) = op::write_all(fd.clone(), contents).await;
    res?;
    match Arc::try_unwrap(fd) {
        Ok(fd) => op::close(fd).await,
        // Not reached: the write's clone is gone once it completed.
        Err(_) => Ok(()),
    }
}

/// Copies the contents and permissions of `from` to `to` (tokio's
/// `fs::copy`; `std::fs::copy` on the blocking pool, which uses
/// `copy_file_range`). Returns the bytes copied.
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let (from, to) = (from.as_ref().to_owned(), to.as_ref().to_owned());
    asyncify(move || std::fs::copy(from, to)).await
}

/// Creates the directory `path` (tokio's `fs::create_dir`; io_uring
/// `MKDIRAT`).
///
/// # Errors
/// `AlreadyExists`, `NotFound` (a parent is missing), ... as mkdir(2).
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    DirBuilder::new().create(path).await
}

/// Creates `path` and every missing parent (tokio's `fs::create_dir_all`);
/// an existing directory is not an error.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    DirBuilder::new().recursive(true).create(path).await
}

/// Removes the file `path` (tokio's `fs::remove_file`; io_uring
/// `UNLINKAT`).
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    unlink(path.as_ref(), false).await
}

/// Removes the empty directory `path` (tokio's `fs::remove_dir`; io_uring
/// `UNLINKAT` with `AT_REMOVEDIR`).
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    unlink(path.as_ref(), true).await
}

async fn unlink(path: &Path, dir: bool) -> io::Result<()> {
    if uring_has(|ops| ops.unlinkat) {
        let c = c_path(path)?;
        // SAFETY: the operation holds only the path until polled.
        return unsafe { on_core(op::unlink_at(c, dir)) }.await;
    }
    let path = path.to_owned();
    asyncify(move || {
        if dir {
            std::fs::remove_dir(path)
        } else {
            std::fs::remove_file(path)
        }
    })
    .await
}

/// Removes `path` and everything in it (tokio's `fs::remove_dir_all`;
/// `std::fs::remove_dir_all` on the blocking pool, which guards against
/// symlink races).
pub async fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::remove_dir_all(path)).await
}

/// Renames `from` to `to`, replacing `to` if it exists (tokio's
/// `fs::rename`; io_uring `RENAMEAT`).
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    two_paths(
        from.as_ref(),
        to.as_ref(),
        |ops| ops.renameat,
        op::rename_at,
        std::fs::rename,
    )
    .await
}

/// An operation on two paths: the io_uring request `uring` when the core
/// has it (`has`), else `blocking` on the blocking pool.
async fn two_paths<U, F>(
    a: &Path,
    b: &Path,
    has: fn(&insane_uring::FileOps) -> bool,
    uring: U,
    blocking: fn(PathBuf, PathBuf) -> io::Result<()>,
) -> io::Result<()>
where
    U: FnOnce(std::ffi::CString, std::ffi::CString) -> F,
    F: std::future::Future<Output = io::Result<()>>,
{
    if uring_has(has) {
        let (a, b) = (c_path(a)?, c_path(b)?);
        // SAFETY: `uring` is one of `insane_uring::op`'s path operations,
        // whose future holds only the two paths until polled.
        return unsafe { on_core(uring(a, b)) }.await;
    }
    let (a, b) = (a.to_owned(), b.to_owned());
    asyncify(move || blocking(a, b)).await
}

/// The metadata of `path`, following symlinks (tokio's `fs::metadata`; on
/// the blocking pool: std's `Metadata` cannot be built from `STATX`).
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::metadata(path)).await
}

/// The metadata of `path` itself, not following a final symlink (tokio's
/// `fs::symlink_metadata`; blocking pool).
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::symlink_metadata(path)).await
}

/// Whether `path` exists, following symlinks: `Ok(false)` when it does not,
/// an error when that cannot be told (tokio's `fs::try_exists`; io_uring
/// `STATX`).
pub async fn try_exists(path: impl AsRef<Path>) -> io::Result<bool> {
    let path = path.as_ref();
    let found = if uring_has(|ops| ops.statx) {
        let c = c_path(path)?;
        let target = StatxTarget::<OwnedFd>::Path {
            path: c,
            follow: true,
        };
        // SAFETY: the operation holds only the path until polled.
        unsafe { on_core(op::statx(target, 0)) }.await.map(drop)
    } else {
        let path = path.to_owned();
        asyncify(move || std::fs::metadata(path).map(drop)).await
    };
    match found {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The absolute path of `path` with symlinks, `.` and `..` resolved
/// (tokio's `fs::canonicalize`; blocking pool).
pub async fn canonicalize(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::canonicalize(path)).await
}

/// Creates the hard link `link` to `original` (tokio's `fs::hard_link`;
/// io_uring `LINKAT`).
pub async fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    two_paths(
        original.as_ref(),
        link.as_ref(),
        |ops| ops.linkat,
        op::link_at,
        std::fs::hard_link,
    )
    .await
}

/// Creates the symbolic link `link` pointing at `original` (tokio's
/// `fs::symlink`; io_uring `SYMLINKAT`).
pub async fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    two_paths(
        original.as_ref(),
        link.as_ref(),
        |ops| ops.symlinkat,
        op::symlink_at,
        std::os::unix::fs::symlink,
    )
    .await
}

/// The target of the symbolic link `path` (tokio's `fs::read_link`;
/// blocking pool: io_uring has no readlink).
pub async fn read_link(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::read_link(path)).await
}

/// Changes the permissions of `path` (tokio's `fs::set_permissions`;
/// blocking pool: io_uring has no chmod).
pub async fn set_permissions(path: impl AsRef<Path>, perm: Permissions) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::set_permissions(path, perm)).await
}

/// Creates directories with options (tokio's `fs::DirBuilder`).
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1)
/// #     .on_core_start(std::sync::Arc::new(|_| insane_uring::install_on_current_core(&Default::default())
/// #         .or_else(|_| insane_epoll::install_on_current_core())))
/// #     .build().unwrap().block_on(async {
/// let root = std::env::temp_dir().join(format!("insane-dirb-doc-{}", std::process::id()));
/// insane_net::fs::DirBuilder::new()
///     .recursive(true)
///     .mode(0o700)
///     .create(root.join("a/b/c"))
///     .await?;
/// assert!(insane_net::fs::try_exists(root.join("a/b/c")).await?);
/// # insane_net::fs::remove_dir_all(&root).await?;
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct DirBuilder {
    recursive: bool,
    mode: u32,
}

impl Default for DirBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl DirBuilder {
    /// Not recursive, mode `0o777` (before the umask).
    pub fn new() -> DirBuilder {
        DirBuilder {
            recursive: false,
            mode: 0o777,
        }
    }

    /// Also create missing parents, and accept an existing directory.
    pub fn recursive(&mut self, recursive: bool) -> &mut DirBuilder {
        self.recursive = recursive;
        self
    }

    /// The permission bits of the created directories, before the umask.
    pub fn mode(&mut self, mode: u32) -> &mut DirBuilder {
        self.mode = mode;
        self
    }

    /// Creates `path` (io_uring `MKDIRAT`, plus `STATX` to tell an existing
    /// directory from another file when recursive).
    pub async fn create(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let uring = uring_file_ops().filter(|ops| ops.mkdirat && ops.statx);
        if uring.is_some() {
            let (path, mode, recursive) = (path.to_owned(), self.mode, self.recursive);
            // SAFETY: the future holds only the path until polled.
            return unsafe { on_core(create_dir_uring(path, mode, recursive)) }.await;
        }
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(self.recursive).mode(self.mode);
        let path = path.to_owned();
        asyncify(move || builder.create(path)).await
    }
}

async fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    op::mkdir_at(c_path(path)?, mode).await
}

async fn is_dir(path: &Path) -> bool {
    let Ok(c) = c_path(path) else { return false };
    let target = StatxTarget::<OwnedFd>::Path {
        path: c,
        follow: true,
    };
    op::statx(target, libc::STATX_TYPE)
        .await
        .is_ok_and(|st| u32::from(st.stx_mode) & libc::S_IFMT == libc::S_IFDIR)
}

/// `mkdir`, or std's `create_dir_all` algorithm over io_uring requests:
/// walk up until a directory can be made (or exists), then make the
/// missing ones downwards; losing a race to another creator is fine.
async fn create_dir_uring(path: PathBuf, mode: u32, recursive: bool) -> io::Result<()> {
    if !recursive {
        return mkdir(&path, mode).await;
    }
    let mut missing: Vec<&Path> = Vec::new();
    let mut current = path.as_path();
    loop {
        if current.as_os_str().is_empty() {
            break;
        }
        match mkdir(current, mode).await {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(current);
                match current.parent() {
                    Some(parent) => current = parent,
                    None => {
                        return Err(io::Error::other("failed to create whole tree"));
                    }
                }
            }
            Err(_) if is_dir(current).await => break,
            Err(e) => return Err(e),
        }
    }
    for dir in missing.into_iter().rev() {
        match mkdir(dir, mode).await {
            Ok(()) => {}
            Err(_) if is_dir(dir).await => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
