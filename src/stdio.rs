//! `insane::io::{stdin, stdout, stderr}` (tokio's `io::{stdin, stdout,
//! stderr}`).
//!
//! As in tokio, every read and write is a blocking call on the runtime's
//! blocking pool ([`spawn_blocking`](crate::task::spawn_blocking)): the
//! process's standard streams are shared with other processes (a terminal,
//! a pipe of the shell), so setting `O_NONBLOCK` on them would change them
//! for those processes too. Each handle has at most one operation in
//! flight; a write copies at most [`MAX_BUF`] bytes of the caller's buffer
//! and returns at once, and the next write, flush or shutdown first waits
//! for it (an error it met is reported there).

use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use insane_runtime::runtime::Handle;
use insane_runtime::task::JoinHandle;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes one blocking read or write moves (tokio: 2 MiB).
const MAX_BUF: usize = 64 * 1024;

/// A blocking operation's result and the buffer it used.
type Op = JoinHandle<(io::Result<usize>, Vec<u8>)>;

enum State {
    /// No operation in flight; the buffer (for a reader, its unread bytes
    /// are `buf[pos..]`).
    Idle(Vec<u8>),
    /// One blocking read, write or flush in flight.
    Busy(Op),
}

/// The runtime whose blocking pool runs the operations: the current one.
fn handle() -> io::Result<Handle> {
    Handle::try_current().map_err(|_| {
        io::Error::other(
            "insane::io::{stdin, stdout, stderr} must be polled inside an insane runtime \
             (a core, a blocking closure, or a thread that entered a runtime)",
        )
    })
}

/// Waits for `op`; a task that could not finish (the runtime shut down) is
/// an I/O error, and its buffer is replaced.
fn poll_op(op: &mut Op, cx: &mut Context<'_>) -> Poll<(io::Result<usize>, Vec<u8>)> {
    match ready!(Pin::new(op).poll(cx)) {
        Ok(done) => Poll::Ready(done),
        Err(e) => Poll::Ready((Err(e.into()), Vec::new())),
    }
}

/// A handle to the process's standard input (tokio's `io::Stdin`): an
/// [`AsyncRead`] whose reads run `read(2)` on fd 0 on the blocking pool.
///
/// A read returns what one blocking read returned, at most the caller's
/// buffer size and at most 64 KiB; 0 bytes means end of input. Dropping
/// the handle (or a read future) while a read is in flight does not stop
/// that read: it runs to completion on its blocking thread and what it
/// read is lost, as in tokio. For the same reason a runtime cannot shut
/// down while such a read waits for input, unless
/// `Runtime::shutdown_timeout`/`shutdown_background` is used; for
/// interactive input, tokio's advice holds: read it on a thread of your own
/// and send the lines through a channel.
///
/// ```no_run
/// use insane::io::AsyncReadExt;
/// # async fn f() -> std::io::Result<()> {
/// let mut input = String::new();
/// insane::io::stdin().read_to_string(&mut input).await?;
/// # Ok(())
/// # }
/// ```
pub struct Stdin {
    state: State,
    /// Unread bytes of the last read start here.
    pos: usize,
}

/// A new handle to standard input (tokio's `io::stdin`). Several handles
/// may exist; each has its own buffer, so bytes one of them has read are
/// not seen by another.
///
/// ```no_run
/// use insane::io::AsyncBufReadExt;
/// # async fn f() -> std::io::Result<()> {
/// let mut lines = insane::io::BufReader::new(insane::io::stdin()).lines();
/// while let Some(line) = lines.next_line().await? {
///     println!("{line}");
/// }
/// # Ok(())
/// # }
/// ```
pub fn stdin() -> Stdin {
    Stdin {
        state: State::Idle(Vec::new()),
        pos: 0,
    }
}

/// One blocking read from standard input into `buf`, retried when a signal
/// interrupts it.
fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    let mut input = io::stdin();
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl AsyncRead for Stdin {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Idle(buf) => {
                    if this.pos < buf.len() {
                        let n = (buf.len() - this.pos).min(dst.remaining());
                        dst.put_slice(&buf[this.pos..this.pos + n]);
                        this.pos += n;
                        return Poll::Ready(Ok(()));
                    }
                    if dst.remaining() == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    let handle = handle()?;
                    let mut buf = std::mem::take(buf);
                    buf.clear();
                    buf.resize(dst.remaining().min(MAX_BUF), 0);
                    this.pos = 0;
                    this.state = State::Busy(handle.spawn_blocking(move || {
                        let res = read_stdin(&mut buf);
                        (res, buf)
                    }));
                }
                State::Busy(op) => {
                    let (res, mut buf) = ready!(poll_op(op, cx));
                    let res = match res {
                        Ok(n) => {
                            buf.truncate(n);
                            let m = n.min(dst.remaining());
                            dst.put_slice(&buf[..m]);
                            this.pos = m;
                            Ok(())
                        }
                        Err(e) => {
                            buf.clear();
                            this.pos = 0;
                            Err(e)
                        }
                    };
                    this.state = State::Idle(buf);
                    return Poll::Ready(res);
                }
            }
        }
    }
}

/// Which stream a [`Writer`] writes to.
#[derive(Clone, Copy)]
enum Target {
    Out,
    Err,
}

impl Target {
    fn write_all(self, buf: &[u8]) -> io::Result<()> {
        match self {
            Target::Out => io::stdout().write_all(buf),
            Target::Err => io::stderr().write_all(buf),
        }
    }

    fn flush(self) -> io::Result<()> {
        match self {
            Target::Out => io::stdout().flush(),
            Target::Err => io::stderr().flush(),
        }
    }
}

/// What `Stdout` and `Stderr` share: one write or flush in flight.
struct Writer {
    target: Target,
    state: State,
    /// A write completed (or is in flight) since the last flush.
    need_flush: bool,
}

impl Writer {
    fn new(target: Target) -> Self {
        Writer {
            target,
            state: State::Idle(Vec::new()),
            need_flush: false,
        }
    }

    /// Waits for the operation in flight, if any, and takes the buffer
    /// (the state is left idle); an error the operation met is returned
    /// instead.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Vec<u8>>> {
        let buf = match &mut self.state {
            State::Busy(op) => {
                let (res, buf) = ready!(poll_op(op, cx));
                if let Err(e) = res {
                    self.state = State::Idle(buf);
                    return Poll::Ready(Err(e));
                }
                buf
            }
            State::Idle(buf) => std::mem::take(buf),
        };
        self.state = State::Idle(Vec::new());
        Poll::Ready(Ok(buf))
    }

    /// Starts `op` on the blocking pool with `buf`; `buf` is kept if there
    /// is no runtime.
    fn start<F>(&mut self, buf: Vec<u8>, op: F) -> io::Result<()>
    where
        F: FnOnce(Target, Vec<u8>) -> (io::Result<usize>, Vec<u8>) + Send + 'static,
    {
        let handle = match handle() {
            Ok(handle) => handle,
            Err(e) => {
                self.state = State::Idle(buf);
                return Err(e);
            }
        };
        let target = self.target;
        self.state = State::Busy(handle.spawn_blocking(move || op(target, buf)));
        Ok(())
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, src: &[u8]) -> Poll<io::Result<usize>> {
        let mut buf = ready!(self.poll_idle(cx))?;
        if src.is_empty() {
            self.state = State::Idle(buf);
            return Poll::Ready(Ok(0));
        }
        buf.clear();
        let n = src.len().min(MAX_BUF);
        buf.extend_from_slice(&src[..n]);
        self.start(buf, move |target, buf| {
            let res = target.write_all(&buf).map(|()| n);
            (res, buf)
        })?;
        self.need_flush = true;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let buf = ready!(self.poll_idle(cx))?;
            if !self.need_flush {
                self.state = State::Idle(buf);
                return Poll::Ready(Ok(()));
            }
            self.start(buf, |target, buf| (target.flush().map(|()| 0), buf))?;
            self.need_flush = false;
        }
    }
}

/// A handle to the process's standard output (tokio's `io::Stdout`): an
/// [`AsyncWrite`] whose writes run on the blocking pool.
///
/// A write copies up to 64 KiB of the caller's buffer, starts writing it
/// and returns its length at once; the next write, `flush` or `shutdown`
/// waits for it first and reports its error, if any. Flush before the
/// handle is dropped to know that the output was written (a write in
/// flight still completes after the drop). As in tokio, only single writes
/// are intact: the writes of `write_all` through several handles (or
/// alongside `println!`) may interleave, and each call of [`stdout()`] is a
/// new handle whose writes are not ordered with another's. Not
/// cancel-safe, like tokio's: a write future dropped after its bytes were
/// taken still writes them.
///
/// ```
/// use insane::io::AsyncWriteExt;
/// # insane::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let mut out = insane::io::stdout();
/// out.write_all(b"hello\n").await?;
/// out.flush().await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct Stdout(Writer);

/// A handle to the process's standard error (tokio's `io::Stderr`), with
/// the same behaviour as [`Stdout`].
///
/// ```
/// use insane::io::AsyncWriteExt;
/// # insane::runtime::Runtime::builder().cores(1).build().unwrap().block_on(async {
/// let mut err = insane::io::stderr();
/// err.write_all(b"warning: nothing to do\n").await?;
/// err.flush().await?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct Stderr(Writer);

/// A new handle to standard output (tokio's `io::stdout`). Keep one handle
/// for a sequence of writes: writes through different handles are not
/// ordered with each other.
///
/// ```no_run
/// use insane::io::AsyncWriteExt;
/// # async fn f() -> std::io::Result<()> {
/// let mut out = insane::io::stdout();
/// for i in 0..3 {
///     out.write_all(format!("line {i}\n").as_bytes()).await?;
/// }
/// out.flush().await?;
/// # Ok(())
/// # }
/// ```
pub fn stdout() -> Stdout {
    Stdout(Writer::new(Target::Out))
}

/// A new handle to standard error (tokio's `io::stderr`); see [`stdout()`].
///
/// ```no_run
/// use insane::io::AsyncWriteExt;
/// # async fn f() -> std::io::Result<()> {
/// insane::io::stderr().write_all(b"error: no input\n").await?;
/// # Ok(())
/// # }
/// ```
pub fn stderr() -> Stderr {
    Stderr(Writer::new(Target::Err))
}

impl AsyncWrite for Stdout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        src: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, src)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }
}

impl AsyncWrite for Stderr {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        src: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, src)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_flush(cx)
    }
}

impl AsRawFd for Stdin {
    fn as_raw_fd(&self) -> RawFd {
        io::stdin().as_raw_fd()
    }
}

impl AsRawFd for Stdout {
    fn as_raw_fd(&self) -> RawFd {
        io::stdout().as_raw_fd()
    }
}

impl AsRawFd for Stderr {
    fn as_raw_fd(&self) -> RawFd {
        io::stderr().as_raw_fd()
    }
}

impl AsFd for Stdin {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: fd 0 belongs to the process's standard input for the
        // process's whole life; std's own `AsFd for Stdin` makes the same
        // assumption (and tokio's `AsFd for Stdin`).
        unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) }
    }
}

impl AsFd for Stdout {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: fd 1 is standard output for the process's whole life, as
        // std's `AsFd for Stdout` assumes.
        unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) }
    }
}

impl AsFd for Stderr {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: fd 2 is standard error for the process's whole life, as
        // std's `AsFd for Stderr` assumes.
        unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) }
    }
}

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stdin").finish_non_exhaustive()
    }
}

impl fmt::Debug for Stdout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stdout").finish_non_exhaustive()
    }
}

impl fmt::Debug for Stderr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stderr").finish_non_exhaustive()
    }
}
