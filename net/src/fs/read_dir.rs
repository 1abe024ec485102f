//! [`read_dir`], [`ReadDir`] and [`DirEntry`] (tokio's): the directory is
//! read on the blocking pool (io_uring has no `getdents`), 32 entries per
//! blocking call, as in tokio.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{FileType, Metadata};
use std::future::Future;
use std::io;
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use insane_runtime::task::JoinHandle;

use super::{asyncify, runtime_handle};

/// Entries read per blocking call.
const CHUNK_SIZE: usize = 32;

/// What a blocking call hands back: the entries read, the std iterator,
/// and whether more may follow.
type Chunk = (VecDeque<io::Result<DirEntry>>, std::fs::ReadDir, bool);

/// The entries of the directory `path` (tokio's `fs::read_dir`), without
/// `.` and `..`, in the order the file system gives.
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1)
/// #     .on_core_start(std::sync::Arc::new(|_| insane_uring::install_on_current_core(&Default::default())
/// #         .or_else(|_| insane_epoll::install_on_current_core())))
/// #     .build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("insane-readdir-doc-{}", std::process::id()));
/// insane_net::fs::create_dir_all(&dir).await?;
/// insane_net::fs::write(dir.join("a.txt"), b"a").await?;
/// let mut entries = insane_net::fs::read_dir(&dir).await?;
/// let mut names = Vec::new();
/// while let Some(entry) = entries.next_entry().await? {
///     names.push(entry.file_name());
/// }
/// assert_eq!(names, ["a.txt"]);
/// # insane_net::fs::remove_dir_all(&dir).await?;
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = path.as_ref().to_owned();
    asyncify(move || {
        let mut std = std::fs::read_dir(path)?;
        let mut buf = VecDeque::with_capacity(CHUNK_SIZE);
        let more = next_chunk(&mut buf, &mut std);
        Ok(ReadDir(State::Idle(Some((buf, std, more)))))
    })
    .await
}

/// Reads up to [`CHUNK_SIZE`] entries into `buf` (with their file types,
/// which std takes from `d_type` without a syscall on most file systems);
/// false when the directory is exhausted or failed.
fn next_chunk(buf: &mut VecDeque<io::Result<DirEntry>>, std: &mut std::fs::ReadDir) -> bool {
    for _ in 0..CHUNK_SIZE {
        let Some(entry) = std.next() else {
            return false;
        };
        let ok = entry.is_ok();
        buf.push_back(entry.map(|std| DirEntry {
            file_type: std.file_type().ok(),
            std: Arc::new(std),
        }));
        if !ok {
            return false;
        }
    }
    true
}

/// The entries of a directory (tokio's `fs::ReadDir`), from [`read_dir`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct ReadDir(State);

#[derive(Debug)]
enum State {
    Idle(Option<Chunk>),
    Pending(JoinHandle<Chunk>),
}

impl ReadDir {
    /// The next entry, or `None` at the end. Cancel-safe.
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        std::future::poll_fn(|cx| self.poll_next_entry(cx)).await
    }

    /// Polls for the next entry, or `None` at the end.
    pub fn poll_next_entry(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<DirEntry>>> {
        loop {
            match &mut self.0 {
                State::Idle(data) => {
                    let Some((buf, _, more)) = data.as_mut() else {
                        return Poll::Ready(Ok(None));
                    };
                    if let Some(entry) = buf.pop_front() {
                        return Poll::Ready(entry.map(Some));
                    }
                    if !*more {
                        return Poll::Ready(Ok(None));
                    }
                    let Some((mut buf, mut std, _)) = data.take() else {
                        return Poll::Ready(Ok(None));
                    };
                    let handle = runtime_handle()?;
                    self.0 = State::Pending(handle.spawn_blocking(move || {
                        let more = next_chunk(&mut buf, &mut std);
                        (buf, std, more)
                    }));
                }
                State::Pending(op) => {
                    let chunk = ready!(Pin::new(op).poll(cx));
                    match chunk {
                        Ok(chunk) => self.0 = State::Idle(Some(chunk)),
                        Err(e) => {
                            self.0 = State::Idle(None);
                            return Poll::Ready(Err(e.into()));
                        }
                    }
                }
            }
        }
    }
}

/// One entry of a [`ReadDir`] (tokio's `fs::DirEntry`).
#[derive(Debug)]
pub struct DirEntry {
    std: Arc<std::fs::DirEntry>,
    /// Read with the entry; `None` if that failed (then asked again).
    file_type: Option<FileType>,
}

impl DirEntry {
    /// The directory's path joined with [`file_name`](Self::file_name).
    pub fn path(&self) -> PathBuf {
        self.std.path()
    }

    /// The entry's name in its directory.
    pub fn file_name(&self) -> OsString {
        self.std.file_name()
    }

    /// The entry's inode number.
    pub fn ino(&self) -> u64 {
        self.std.ino()
    }

    /// The entry's metadata, not following a symlink (blocking pool).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        let std = self.std.clone();
        asyncify(move || std.metadata()).await
    }

    /// The entry's file type, not following a symlink: read with the
    /// entry, so usually without a syscall.
    pub async fn file_type(&self) -> io::Result<FileType> {
        if let Some(file_type) = self.file_type {
            return Ok(file_type);
        }
        let std = self.std.clone();
        asyncify(move || std.file_type()).await
    }
}
