//! [`File`]: tokio's `fs::File` over io_uring `READ`/`WRITE` requests (or
//! the blocking pool), with tokio's read/write/seek state machine.
//!
//! At most one read or write is in flight per file. It runs as its own
//! task (a local task holding the io_uring request on an io_uring core, a
//! blocking closure otherwise) and owns the file's buffer until it is done;
//! the file keeps the task's `JoinHandle`. So a read future dropped while
//! its request is in flight leaves the request to finish into memory the
//! task owns (its bytes are then returned by the next read, as in tokio),
//! a write returns as soon as its bytes are copied into the buffer (the
//! next operation, `flush` or `sync_all` reports its error), and a `File`
//! may move to another core or be dropped with an operation in flight: the
//! operation completes on its own.

use std::fmt;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use insane_buf::IoBuf;
use insane_runtime::task::JoinHandle;
use insane_uring::op;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};
use tokio::sync::Mutex;

use super::{OpenOptions, asyncify, on_core, runtime_handle, uring_has};
use crate::owned::ops::on_uring;

/// The most bytes one read or write moves by default (tokio's default).
const DEFAULT_MAX_BUF_SIZE: usize = 2 * 1024 * 1024;

/// An open file (tokio's `fs::File`): [`AsyncRead`], [`AsyncWrite`] and
/// [`AsyncSeek`], plus tokio's methods.
///
/// Reads and writes go through an internal buffer of at most
/// [`max_buf_size`](File::max_buf_size) bytes (2 MiB), one operation at a
/// time, as in tokio: a write returns once its bytes are in the buffer and
/// the write has started, so call `flush()` (or `sync_all()`) to know it
/// completed. On a core running io_uring each read and write is one
/// `READ`/`WRITE` request at the file's position.
///
/// ```
/// # insane_runtime::runtime::Runtime::builder().cores(1)
/// #     .on_core_start(std::sync::Arc::new(|_| insane_uring::install_on_current_core(&Default::default())
/// #         .or_else(|_| insane_epoll::install_on_current_core())))
/// #     .build().unwrap().block_on(async {
/// use insane_net::fs::File;
/// use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, SeekFrom};
///
/// let path = std::env::temp_dir().join(format!("insane-file-doc-{}", std::process::id()));
/// let mut file = File::create(&path).await?;
/// file.write_all(b"0123456789").await?;
/// file.flush().await?;
///
/// let mut file = File::open(&path).await?;
/// file.seek(SeekFrom::Start(6)).await?;
/// let mut tail = String::new();
/// file.read_to_string(&mut tail).await?;
/// assert_eq!(tail, "6789");
/// # std::fs::remove_file(&path)?;
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
pub struct File {
    std: Arc<std::fs::File>,
    inner: Mutex<Inner>,
    max_buf_size: usize,
}

struct Inner {
    state: State,
    /// The error of a write that finished while nobody was waiting for it
    /// (reported by the next write or flush).
    last_write_err: Option<io::ErrorKind>,
    /// The position the last seek returned.
    pos: u64,
    /// The result of the seek `start_seek` made, for `poll_complete`.
    seek_result: Option<io::Result<u64>>,
}

enum State {
    /// No operation in flight; the buffer (`None` only while taken).
    Idle(Option<Buf>),
    /// One read or write in flight; it gives the buffer back.
    Busy(JoinHandle<(Operation, Buf)>),
}

enum Operation {
    Read(io::Result<usize>),
    Write(io::Result<()>),
}

/// The file's buffer: bytes `data[pos..]` were read and not yet returned.
#[derive(Default)]
struct Buf {
    data: Vec<u8>,
    pos: usize,
}

impl Buf {
    fn unread(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    /// Copies unread bytes into `dst`.
    fn copy_to(&mut self, dst: &mut ReadBuf<'_>) {
        let n = self.unread().len().min(dst.remaining());
        dst.put_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
    }

    /// Forgets the unread bytes; returns how far the file's position is
    /// ahead of what the reader consumed (as a negative seek offset).
    fn discard_read(&mut self) -> i64 {
        let ahead = self.unread().len() as i64;
        self.data.clear();
        self.pos = 0;
        -ahead
    }
}

/// The result of an operation's task; a task that could not finish (its
/// runtime shut down) fails as an I/O error, and its buffer is replaced.
fn poll_op(op: &mut JoinHandle<(Operation, Buf)>, cx: &mut Context<'_>) -> Poll<(Operation, Buf)> {
    match ready!(Pin::new(op).poll(cx)) {
        Ok(done) => Poll::Ready(done),
        Err(e) => Poll::Ready((Operation::Write(Err(e.into())), Buf::default())),
    }
}

/// Retries `f` while a signal interrupts it.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

impl Inner {
    /// Waits for the operation in flight, if any; a write's error is kept
    /// for the next write or flush.
    fn poll_complete_inflight(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let State::Busy(op) = &mut self.state {
            let (done, buf) = ready!(poll_op(op, cx));
            self.state = State::Idle(Some(buf));
            if let Operation::Write(Err(e)) = done {
                self.last_write_err = Some(e.kind());
            }
        }
        Poll::Ready(())
    }

    async fn complete_inflight(&mut self) {
        std::future::poll_fn(|cx| self.poll_complete_inflight(cx)).await
    }

    fn take_buf(&mut self) -> Buf {
        match &mut self.state {
            State::Idle(buf) => buf.take().unwrap_or_default(),
            State::Busy(_) => Buf::default(),
        }
    }

    /// Moves the file's position back over bytes read ahead and not
    /// returned, so that the next write or truncation starts where the
    /// reader is.
    fn rewind_read_ahead(&mut self, std: &std::fs::File, buf: &mut Buf) -> io::Result<()> {
        if buf.unread().is_empty() {
            buf.data.clear();
            buf.pos = 0;
            return Ok(());
        }
        let back = buf.discard_read();
        let mut file = std;
        file.seek(SeekFrom::Current(back)).map(drop)
    }
}

impl File {
    /// Opens `path` read-only (tokio's `File::open`).
    ///
    /// # Errors
    /// Those of open(2): `NotFound`, `PermissionDenied`, ...
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens `path` write-only, creating it or truncating it (tokio's
    /// `File::create`).
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Creates `path` read-write, failing with `AlreadyExists` if it exists
    /// (tokio's `File::create_new`).
    pub async fn create_new(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .await
    }

    /// A new [`OpenOptions`] (tokio's `File::options`).
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps an open std file.
    pub fn from_std(std: std::fs::File) -> File {
        File {
            std: Arc::new(std),
            inner: Mutex::new(Inner {
                state: State::Idle(Some(Buf::default())),
                last_write_err: None,
                pos: 0,
                seek_result: None,
            }),
            max_buf_size: DEFAULT_MAX_BUF_SIZE,
        }
    }

    /// Flushes data and metadata to the device, after the write in flight
    /// (`fsync`; io_uring `FSYNC` on an io_uring core).
    pub async fn sync_all(&self) -> io::Result<()> {
        self.sync(false).await
    }

    /// Flushes data (and the metadata needed to read it back) to the
    /// device (`fdatasync`; io_uring `FSYNC` with `DATASYNC`).
    pub async fn sync_data(&self) -> io::Result<()> {
        self.sync(true).await
    }

    async fn sync(&self, data_only: bool) -> io::Result<()> {
        let mut inner = self.inner.lock().await;
        inner.complete_inflight().await;
        let std = self.std.clone();
        if uring_has(|ops| ops.fsync) {
            // SAFETY: the operation holds only the `Arc` until polled.
            return unsafe { on_core(op::fsync(std, data_only)) }.await;
        }
        asyncify(move || {
            if data_only {
                std.sync_data()
            } else {
                std.sync_all()
            }
        })
        .await
    }

    /// Truncates or extends the file to `size` bytes, after the operation
    /// in flight; the position does not change (io_uring `FTRUNCATE` from
    /// Linux 6.9, the blocking pool before).
    ///
    /// # Errors
    /// Those of ftruncate(2), e.g. the file is not open for writing.
    pub async fn set_len(&self, size: u64) -> io::Result<()> {
        let mut inner = self.inner.lock().await;
        inner.complete_inflight().await;
        let mut buf = inner.take_buf();
        let rewound = inner.rewind_read_ahead(&self.std, &mut buf);
        inner.state = State::Idle(Some(buf));
        rewound?;
        let std = self.std.clone();
        if uring_has(|ops| ops.ftruncate) {
            // SAFETY: the operation holds only the `Arc` until polled.
            return unsafe { on_core(op::ftruncate(std, size)) }.await;
        }
        asyncify(move || std.set_len(size)).await
    }

    /// The file's metadata (on the blocking pool: std's `Metadata` cannot be
    /// built from an io_uring `STATX` result).
    pub async fn metadata(&self) -> io::Result<std::fs::Metadata> {
        let std = self.std.clone();
        asyncify(move || std.metadata()).await
    }

    /// A new `File` for the same open file (`dup`; it shares the position).
    /// Done at once: duplicating a descriptor never blocks (tokio uses the
    /// blocking pool).
    pub async fn try_clone(&self) -> io::Result<File> {
        Ok(File::from_std(self.std.try_clone()?))
    }

    /// The std file, after the operation in flight completed.
    ///
    /// # Panics
    /// If the finished operation's task still holds the file and the
    /// descriptor cannot be duplicated (`EMFILE`): tokio's signature has no
    /// room for an error.
    pub async fn into_std(self) -> std::fs::File {
        let mut inner = self.inner.lock().await;
        inner.complete_inflight().await;
        drop(inner);
        match Arc::try_unwrap(self.std) {
            Ok(std) => std,
            // The finished operation's task still held its clone for a
            // moment: a duplicate is the same open file.
            Err(shared) => match shared.try_clone() {
                Ok(std) => std,
                Err(e) => panic!("File::into_std: cannot duplicate the file descriptor: {e}"),
            },
        }
    }

    /// The std file, if no operation is in flight; else `self` back.
    // tokio's signature: the file comes back in the error.
    #[allow(clippy::result_large_err)]
    pub fn try_into_std(mut self) -> Result<std::fs::File, Self> {
        if matches!(self.inner.get_mut().state, State::Busy(_)) {
            return Err(self);
        }
        Arc::try_unwrap(self.std).map_err(|std| File {
            std,
            inner: self.inner,
            max_buf_size: self.max_buf_size,
        })
    }

    /// Changes the file's permissions (`fchmod`, on the blocking pool).
    pub async fn set_permissions(&self, perm: std::fs::Permissions) -> io::Result<()> {
        let std = self.std.clone();
        asyncify(move || std.set_permissions(perm)).await
    }

    /// Sets the file's access and modification times, after the operation
    /// in flight (`futimens`, on the blocking pool). [`FileTimes`](super::FileTimes)
    /// is std's.
    pub async fn set_times(&self, times: std::fs::FileTimes) -> io::Result<()> {
        // A write completing after us would overwrite the times.
        self.inner.lock().await.complete_inflight().await;
        let std = self.std.clone();
        asyncify(move || std.set_times(times)).await
    }

    /// Sets the file's modification time (`set_times` with only it).
    pub async fn set_modified(&self, time: std::time::SystemTime) -> io::Result<()> {
        self.set_times(std::fs::FileTimes::new().set_modified(time))
            .await
    }

    /// Sets the most bytes one read or write moves (default 2 MiB).
    pub fn set_max_buf_size(&mut self, max_buf_size: usize) {
        self.max_buf_size = max_buf_size.max(1);
    }

    /// The most bytes one read or write moves.
    pub fn max_buf_size(&self) -> usize {
        self.max_buf_size
    }
}

/// Starts reading up to `len` bytes into `buf` at the file's position.
fn start_read(
    std: &Arc<std::fs::File>,
    mut buf: Buf,
    len: usize,
) -> io::Result<JoinHandle<(Operation, Buf)>> {
    buf.data.clear();
    buf.pos = 0;
    buf.data.reserve(len);
    let std = std.clone();
    if on_uring() {
        // A task of the core, never of an entered `LocalSet`: dropping a
        // set must not cancel a file operation in flight.
        return insane_runtime::task::Builder::new().spawn_local(async move {
            let (res, slice) = op::read(std, buf.data.slice(..len)).await;
            buf.data = slice.into_inner();
            (Operation::Read(res), buf)
        });
    }
    Ok(runtime_handle()?.spawn_blocking(move || {
        buf.data.resize(len, 0);
        let res = retry(|| (&*std).read(&mut buf.data));
        buf.data.truncate(*res.as_ref().unwrap_or(&0));
        (Operation::Read(res), buf)
    }))
}

/// Starts writing all of `buf` at the file's position.
fn start_write(std: &Arc<std::fs::File>, buf: Buf) -> io::Result<JoinHandle<(Operation, Buf)>> {
    let std = std.clone();
    if on_uring() {
        // A task of the core, never of an entered `LocalSet`: dropping a
        // set must not cancel a file operation in flight.
        return insane_runtime::task::Builder::new().spawn_local(async move {
            let (res, mut data) = op::write_all(std, buf.data).await;
            // Written bytes are not unread bytes.
            data.clear();
            (
                Operation::Write(res),
                Buf {
                    data,
                    ..Buf::default()
                },
            )
        });
    }
    Ok(runtime_handle()?.spawn_blocking(move || {
        let mut buf = buf;
        let res = (&*std).write_all(&buf.data);
        buf.data.clear();
        (Operation::Write(res), buf)
    }))
}

impl AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let inner = this.inner.get_mut();
        loop {
            match &mut inner.state {
                State::Idle(slot) => {
                    let mut buf = slot.take().unwrap_or_default();
                    if !buf.unread().is_empty() || dst.remaining() == 0 {
                        buf.copy_to(dst);
                        inner.state = State::Idle(Some(buf));
                        return Poll::Ready(Ok(()));
                    }
                    let len = dst.remaining().min(this.max_buf_size);
                    inner.state = State::Busy(match start_read(&this.std, buf, len) {
                        Ok(op) => op,
                        Err(e) => {
                            inner.state = State::Idle(Some(Buf::default()));
                            return Poll::Ready(Err(e));
                        }
                    });
                }
                State::Busy(op) => {
                    let (done, mut buf) = ready!(poll_op(op, cx));
                    match done {
                        Operation::Read(Ok(_)) => {
                            buf.copy_to(dst);
                            inner.state = State::Idle(Some(buf));
                            return Poll::Ready(Ok(()));
                        }
                        Operation::Read(Err(e)) => {
                            buf.discard_read();
                            inner.state = State::Idle(Some(buf));
                            return Poll::Ready(Err(e));
                        }
                        Operation::Write(res) => {
                            inner.state = State::Idle(Some(buf));
                            if let Err(e) = res {
                                inner.last_write_err = Some(e.kind());
                            }
                        }
                    }
                }
            }
        }
    }
}

impl AsyncWrite for File {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        src: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let inner = this.inner.get_mut();
        if let Some(kind) = inner.last_write_err.take() {
            return Poll::Ready(Err(kind.into()));
        }
        loop {
            match &mut inner.state {
                State::Idle(slot) => {
                    let mut buf = slot.take().unwrap_or_default();
                    let rewound = inner.rewind_read_ahead(&this.std, &mut buf);
                    if let Err(e) = rewound {
                        inner.state = State::Idle(Some(buf));
                        return Poll::Ready(Err(e));
                    }
                    if src.is_empty() {
                        inner.state = State::Idle(Some(buf));
                        return Poll::Ready(Ok(0));
                    }
                    let n = src.len().min(this.max_buf_size);
                    buf.data.extend_from_slice(&src[..n]);
                    match start_write(&this.std, buf) {
                        Ok(op) => inner.state = State::Busy(op),
                        Err(e) => {
                            inner.state = State::Idle(Some(Buf::default()));
                            return Poll::Ready(Err(e));
                        }
                    }
                    return Poll::Ready(Ok(n));
                }
                State::Busy(op) => {
                    let (done, buf) = ready!(poll_op(op, cx));
                    inner.state = State::Idle(Some(buf));
                    // A read's bytes stay in the buffer: the idle branch
                    // moves the position back over them.
                    if let Operation::Write(Err(e)) = done {
                        return Poll::Ready(Err(e));
                    }
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let inner = self.get_mut().inner.get_mut();
        if let Some(kind) = inner.last_write_err.take() {
            return Poll::Ready(Err(kind.into()));
        }
        let State::Busy(op) = &mut inner.state else {
            return Poll::Ready(Ok(()));
        };
        let (done, buf) = ready!(poll_op(op, cx));
        inner.state = State::Idle(Some(buf));
        match done {
            Operation::Write(res) => Poll::Ready(res),
            Operation::Read(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl AsyncSeek for File {
    /// Seeks at once (`lseek` does not block); fails if an operation is in
    /// flight (call `poll_complete` first, as `AsyncSeekExt::seek` does).
    fn start_seek(self: Pin<&mut Self>, pos: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let inner = this.inner.get_mut();
        let State::Idle(slot) = &mut inner.state else {
            return Err(io::Error::other(
                "other file operation is pending, call poll_complete before start_seek",
            ));
        };
        let mut buf = slot.take().unwrap_or_default();
        let back = buf.discard_read();
        inner.state = State::Idle(Some(buf));
        // The kernel's position is ahead of the reader by the bytes read
        // ahead; a relative seek starts from the reader's position.
        let pos = match pos {
            SeekFrom::Current(offset) => SeekFrom::Current(offset.saturating_add(back)),
            absolute => absolute,
        };
        let mut file = &*this.std;
        inner.seek_result = Some(file.seek(pos));
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let inner = self.get_mut().inner.get_mut();
        ready!(inner.poll_complete_inflight(cx));
        match inner.seek_result.take() {
            Some(Ok(pos)) => {
                inner.pos = pos;
                Poll::Ready(Ok(pos))
            }
            Some(Err(e)) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(inner.pos)),
        }
    }
}

impl From<std::fs::File> for File {
    fn from(std: std::fs::File) -> File {
        File::from_std(std)
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.std.as_raw_fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.std.as_fd()
    }
}

impl FromRawFd for File {
    /// # Safety
    /// `fd` is an open file descriptor that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> File {
        // SAFETY: forwarded to the caller.
        File::from_std(unsafe { std::fs::File::from_raw_fd(fd) })
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File").field("std", &self.std).finish()
    }
}
