//! Anonymous pipes and FIFOs (tokio's `net::unix::pipe`): [`pipe`],
//! [`OpenOptions`], [`Sender`] and [`Receiver`].
//!
//! Both ends are non-blocking fds whose readiness comes from the I/O
//! driver of the core that waits on them, like the sockets; they are
//! `Send + Sync`, so either end may move to another core.
//!
//! ```no_run
//! use insane_net::unix::pipe;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # async fn f() -> std::io::Result<()> {
//! let (mut tx, mut rx) = pipe::pipe()?;
//! tx.write_all(b"hello").await?;
//! drop(tx);
//! let mut got = Vec::new();
//! rx.read_to_end(&mut got).await?;
//! assert_eq!(got, b"hello");
//! # Ok(())
//! # }
//! ```

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use insane_runtime::driver::Direction;
use tokio::io::{Interest, ReadBuf, Ready};

use crate::io::PollIo;

/// Creates an anonymous pipe (`pipe2(2)`, non-blocking and close-on-exec)
/// and returns its write and read ends.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// let (tx, rx) = insane_net::unix::pipe::pipe()?;
/// tx.writable().await?;
/// tx.try_write(b"ping")?;
/// rx.readable().await?;
/// let mut buf = [0; 4];
/// assert_eq!(rx.try_read(&mut buf)?, 4);
/// # Ok(())
/// # }
/// ```
pub fn pipe() -> io::Result<(Sender, Receiver)> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pipe2` succeeded, so both fds are open and owned by nobody
    // else; each is wrapped exactly once.
    let (read, write) = unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    };
    Ok((
        Sender::new(File::from(write)),
        Receiver::new(File::from(read)),
    ))
}

/// Options to open a FIFO (named pipe) as a [`Sender`] or a [`Receiver`],
/// with tokio's API.
///
/// ```no_run
/// use insane_net::unix::pipe;
///
/// # fn f() -> std::io::Result<()> {
/// let rx = pipe::OpenOptions::new().open_receiver("/tmp/my-fifo")?;
/// // Opening the write end needs a reader, or `read_write(true)`.
/// let tx = pipe::OpenOptions::new().open_sender("/tmp/my-fifo")?;
/// # drop((rx, tx));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    read_write: bool,
    unchecked: bool,
}

impl OpenOptions {
    /// Options with every flag off: open one direction only, and check
    /// that the file is a FIFO.
    ///
    /// ```
    /// let opts = insane_net::unix::pipe::OpenOptions::new();
    /// # drop(opts);
    /// ```
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    /// Opens the FIFO for reading and writing (`O_RDWR`, Linux). A sender
    /// opened so does not fail when the FIFO has no reader, and a receiver
    /// opened so never sees end of file, since it is a writer too.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let tx = insane_net::unix::pipe::OpenOptions::new()
    ///     .read_write(true)
    ///     .open_sender("/tmp/my-fifo")?;
    /// # drop(tx);
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_write(&mut self, value: bool) -> &mut OpenOptions {
        self.read_write = value;
        self
    }

    /// Skips the check that the opened file is a FIFO (then it may be, for
    /// instance, a character device).
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let rx = insane_net::unix::pipe::OpenOptions::new()
    ///     .unchecked(true)
    ///     .open_receiver("/dev/null")?;
    /// # drop(rx);
    /// # Ok(())
    /// # }
    /// ```
    pub fn unchecked(&mut self, value: bool) -> &mut OpenOptions {
        self.unchecked = value;
        self
    }

    /// Opens the FIFO at `path` as a [`Receiver`].
    ///
    /// # Errors
    /// The `open(2)` error (`NotFound`...), or `InvalidInput` if the file
    /// is not a FIFO (unless [`unchecked`](Self::unchecked)).
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let rx = insane_net::unix::pipe::OpenOptions::new().open_receiver("/tmp/my-fifo")?;
    /// # drop(rx);
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_receiver<P: AsRef<Path>>(&self, path: P) -> io::Result<Receiver> {
        let file = self.open(path.as_ref(), PipeEnd::Receiver)?;
        Ok(Receiver::new(file))
    }

    /// Opens the FIFO at `path` as a [`Sender`].
    ///
    /// # Errors
    /// The `open(2)` error, unchanged so that `raw_os_error()` works:
    /// `ENXIO` ("No such device or address") when the FIFO has no reader
    /// and [`read_write`](Self::read_write) is off;
    /// or `InvalidInput` if the file is not a FIFO (unless
    /// [`unchecked`](Self::unchecked)).
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// let tx = insane_net::unix::pipe::OpenOptions::new().open_sender("/tmp/my-fifo")?;
    /// # drop(tx);
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_sender<P: AsRef<Path>>(&self, path: P) -> io::Result<Sender> {
        let file = self.open(path.as_ref(), PipeEnd::Sender)?;
        Ok(Sender::new(file))
    }

    fn open(&self, path: &Path, end: PipeEnd) -> io::Result<File> {
        let mut options = std::fs::OpenOptions::new();
        options
            .read(end == PipeEnd::Receiver || self.read_write)
            .write(end == PipeEnd::Sender || self.read_write)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC);
        // The `open(2)` error is returned as is, like tokio's, so that
        // callers can match `raw_os_error()` (`ENXIO`: no reader yet).
        let file = options.open(path)?;
        if !self.unchecked && !file.metadata()?.file_type().is_fifo() {
            return Err(not_a_pipe(&format!("{}", path.display())));
        }
        Ok(file)
    }
}

/// What the two ends share: construction from a file or fd (checked or
/// not), `ready`, `try_io`, giving the fd back, and `AsRawFd`/`AsFd`.
/// `$var` names the end in the examples, `$pair` is how `pipe()`'s result
/// is bound to keep it, `$open` opens a FIFO for it, `$mode` is its
/// access mode in words and `$interest` its readiness.
macro_rules! pipe_end {
    (
        $end:ident,
        var: $var:literal,
        pair: $pair:literal,
        open: $open:literal,
        mode: $mode:literal,
        interest: $interest:literal $(,)?
    ) => {
        impl $end {
            fn new(file: File) -> $end {
                $end {
                    io: PollIo::new(file),
                }
            }

            #[doc = concat!(" Makes a `", stringify!($end), "` of `file`, a pipe or FIFO opened for")]
            #[doc = concat!(" ", $mode, ", switching it to non-blocking mode.")]
            ///
            /// # Errors
            #[doc = concat!(" `InvalidInput` if `file` is not a pipe or FIFO, or not open for ", $mode, ".")]
            ///
            /// ```no_run
            /// # fn f() -> std::io::Result<()> {
            #[doc = concat!(" let file = ", $open, ";")]
            #[doc = concat!(" let ", $var, " = insane_net::unix::pipe::", stringify!($end), "::from_file(file)?;")]
            #[doc = concat!(" # drop(", $var, ");")]
            /// # Ok(())
            /// # }
            /// ```
            pub fn from_file(file: File) -> io::Result<$end> {
                Ok($end::new(checked(file, PipeEnd::$end)?))
            }

            /// Like [`from_file`](Self::from_file), for an `OwnedFd`.
            ///
            /// ```no_run
            /// # fn f() -> std::io::Result<()> {
            #[doc = concat!(" let ", $pair, " = insane_net::unix::pipe::pipe()?;")]
            #[doc = concat!(" let fd = ", $var, ".into_blocking_fd()?;")]
            #[doc = concat!(" let ", $var, " = insane_net::unix::pipe::", stringify!($end), "::from_owned_fd(fd)?;")]
            #[doc = concat!(" # drop(", $var, ");")]
            /// # Ok(())
            /// # }
            /// ```
            pub fn from_owned_fd(fd: OwnedFd) -> io::Result<$end> {
                $end::from_file(File::from(fd))
            }

            /// Like [`from_file`](Self::from_file) without the checks: `file`
            #[doc = concat!(" may be any fd that supports non-blocking ", $mode, " and readiness.")]
            ///
            /// ```no_run
            /// # fn f() -> std::io::Result<()> {
            #[doc = concat!(" let file = ", $open, ";")]
            #[doc = concat!(" let ", $var, " = insane_net::unix::pipe::", stringify!($end), "::from_file_unchecked(file)?;")]
            #[doc = concat!(" # drop(", $var, ");")]
            /// # Ok(())
            /// # }
            /// ```
            pub fn from_file_unchecked(file: File) -> io::Result<$end> {
                set_nonblocking(file.as_fd(), true)?;
                Ok($end::new(file))
            }

            /// Like [`from_file_unchecked`](Self::from_file_unchecked), for an
            /// `OwnedFd`.
            ///
            /// ```no_run
            /// # fn f() -> std::io::Result<()> {
            #[doc = concat!(" let ", $pair, " = insane_net::unix::pipe::pipe()?;")]
            #[doc = concat!(" let fd = ", $var, ".into_nonblocking_fd()?;")]
            #[doc = concat!(" let ", $var, " = insane_net::unix::pipe::", stringify!($end), "::from_owned_fd_unchecked(fd)?;")]
            #[doc = concat!(" # drop(", $var, ");")]
            /// # Ok(())
            /// # }
            /// ```
            pub fn from_owned_fd_unchecked(fd: OwnedFd) -> io::Result<$end> {
                $end::from_file_unchecked(File::from(fd))
            }

            /// Waits for any of the requested ready states.
            ///
            /// ```no_run
            #[doc = concat!(" # async fn f(", $var, ": insane_net::unix::pipe::", stringify!($end), ") -> std::io::Result<()> {")]
            #[doc = concat!(" let ready = ", $var, ".ready(tokio::io::Interest::", $interest, ").await?;")]
            /// println!("{ready:?}");
            /// # Ok(())
            /// # }
            /// ```
            pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
                self.io.ready(interest).await
            }

            /// Runs `f` (an operation on the pipe's fd, e.g. through
            /// `AsRawFd`) once; on `WouldBlock` clears the readiness of
            /// `interest`, so the next wait really waits (tokio's `try_io`).
            ///
            /// # Errors
            /// `f`'s.
            pub fn try_io<R>(
                &self,
                interest: Interest,
                f: impl FnOnce() -> io::Result<R>,
            ) -> io::Result<R> {
                self.io.try_io(interest, f)
            }

            /// Deregisters the pipe and returns its fd, switched back to
            /// blocking mode.
            ///
            /// ```no_run
            #[doc = concat!(" # fn f(", $var, ": insane_net::unix::pipe::", stringify!($end), ") -> std::io::Result<()> {")]
            #[doc = concat!(" let fd = ", $var, ".into_blocking_fd()?;")]
            /// # drop(fd);
            /// # Ok(())
            /// # }
            /// ```
            pub fn into_blocking_fd(self) -> io::Result<OwnedFd> {
                let fd = self.into_nonblocking_fd()?;
                set_nonblocking(fd.as_fd(), false)?;
                Ok(fd)
            }

            /// Deregisters the pipe and returns its fd, left in
            /// non-blocking mode.
            ///
            /// ```no_run
            #[doc = concat!(" # fn f(", $var, ": insane_net::unix::pipe::", stringify!($end), ") -> std::io::Result<()> {")]
            #[doc = concat!(" let fd = ", $var, ".into_nonblocking_fd()?;")]
            /// # drop(fd);
            /// # Ok(())
            /// # }
            /// ```
            pub fn into_nonblocking_fd(self) -> io::Result<OwnedFd> {
                Ok(self.io.into_inner()?.into())
            }
        }

        impl AsRawFd for $end {
            fn as_raw_fd(&self) -> RawFd {
                self.io.raw_fd()
            }
        }

        impl AsFd for $end {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.io.get_ref().as_fd()
            }
        }
    };
}

pipe_end!(
    Sender,
    var: "tx",
    pair: "(tx, _rx)",
    open: "std::fs::OpenOptions::new().write(true).open(\"/tmp/my-fifo\")?",
    mode: "writing",
    interest: "WRITABLE",
);

pipe_end!(
    Receiver,
    var: "rx",
    pair: "(_tx, rx)",
    open: "std::fs::File::open(\"/tmp/my-fifo\")?",
    mode: "reading",
    interest: "READABLE",
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PipeEnd {
    Sender,
    Receiver,
}

fn not_a_pipe(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} is not a pipe or FIFO"),
    )
}

/// Checks that `file` is a pipe opened for `end`, and makes it
/// non-blocking.
fn checked(file: File, end: PipeEnd) -> io::Result<File> {
    if !file.metadata()?.file_type().is_fifo() {
        return Err(not_a_pipe("the file"));
    }
    // SAFETY: F_GETFL on an fd we own takes no pointer argument.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let mode = flags & libc::O_ACCMODE;
    let ok = match end {
        PipeEnd::Sender => mode == libc::O_WRONLY || mode == libc::O_RDWR,
        PipeEnd::Receiver => mode == libc::O_RDONLY || mode == libc::O_RDWR,
    };
    if !ok {
        let need = match end {
            PipeEnd::Sender => "O_WRONLY or O_RDWR",
            PipeEnd::Receiver => "O_RDONLY or O_RDWR",
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a pipe {end:?} needs a file opened in {need} access mode"),
        ));
    }
    set_nonblocking(file.as_fd(), true)?;
    Ok(file)
}

fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL on a valid borrowed fd takes no pointer argument.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        // SAFETY: F_SETFL on a valid borrowed fd takes an int argument.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `read(2)` into the unfilled part of `buf`, advancing it.
fn read_buf(file: &File, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    // SAFETY: `read` only writes initialised bytes into the slice and never
    // de-initialises it; exactly the `n` bytes it wrote are then marked
    // initialised.
    let unfilled = unsafe { buf.unfilled_mut() };
    // SAFETY: the pointer and length describe `unfilled`, writable memory
    // that outlives the call.
    let n = unsafe {
        libc::read(
            file.as_raw_fd(),
            unfilled.as_mut_ptr().cast(),
            unfilled.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised the first `n` bytes of `unfilled`.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Ok(n)
}

/// The write end of a pipe or FIFO, with tokio's API: `AsyncWrite`, and
/// readiness from the core's driver.
///
/// Writing when every read end is closed fails with `BrokenPipe` (Rust
/// programs ignore `SIGPIPE` by default).
///
/// ```no_run
/// use tokio::io::AsyncWriteExt;
///
/// # async fn f() -> std::io::Result<()> {
/// let (mut tx, _rx) = insane_net::unix::pipe::pipe()?;
/// tx.write_all(b"hello").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Sender {
    io: PollIo<File>,
}

impl Sender {
    /// Waits until the pipe may be writable.
    ///
    /// ```no_run
    /// # async fn f(tx: insane_net::unix::pipe::Sender) -> std::io::Result<()> {
    /// tx.writable().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn writable(&self) -> io::Result<()> {
        self.io.writable().await
    }

    /// Polls for write readiness.
    ///
    /// ```no_run
    /// # async fn f(tx: insane_net::unix::pipe::Sender) -> std::io::Result<()> {
    /// std::future::poll_fn(|cx| tx.poll_write_ready(cx)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(Direction::Write, cx)
    }

    /// Writes without waiting (`WouldBlock` when the pipe is full).
    ///
    /// ```no_run
    /// # async fn f(tx: insane_net::unix::pipe::Sender) -> std::io::Result<()> {
    /// tx.writable().await?;
    /// match tx.try_write(b"hello") {
    ///     Ok(n) => println!("wrote {n} bytes"),
    ///     Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Write, || self.io.get_ref().write(buf))
    }

    /// Like [`try_write`](Self::try_write), from several buffers.
    ///
    /// ```no_run
    /// # fn f(tx: insane_net::unix::pipe::Sender) -> std::io::Result<()> {
    /// let bufs = [std::io::IoSlice::new(b"a"), std::io::IoSlice::new(b"b")];
    /// tx.try_write_vectored(&bufs)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Write, || self.io.get_ref().write_vectored(bufs))
    }

    fn poll_write_priv(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io
            .poll_io(Direction::Write, cx, || self.io.get_ref().write(buf))
    }

    fn poll_write_vectored_priv(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_io(Direction::Write, cx, || {
            self.io.get_ref().write_vectored(bufs)
        })
    }
}

impl tokio::io::AsyncWrite for Sender {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored_priv(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Does nothing, like tokio: drop the sender to close the pipe.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl futures_io::AsyncWrite for Sender {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored_priv(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The read end of a pipe or FIFO, with tokio's API: `AsyncRead`, and
/// readiness from the core's driver. A read returns `Ok(0)` (end of file)
/// once every write end is closed and the pipe is empty.
///
/// ```no_run
/// use tokio::io::AsyncReadExt;
///
/// # async fn f() -> std::io::Result<()> {
/// let (tx, mut rx) = insane_net::unix::pipe::pipe()?;
/// drop(tx);
/// let mut buf = Vec::new();
/// assert_eq!(rx.read_to_end(&mut buf).await?, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Receiver {
    io: PollIo<File>,
}

impl Receiver {
    /// Waits until the pipe may be readable.
    ///
    /// ```no_run
    /// # async fn f(rx: insane_net::unix::pipe::Receiver) -> std::io::Result<()> {
    /// rx.readable().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Polls for read readiness.
    ///
    /// ```no_run
    /// # async fn f(rx: insane_net::unix::pipe::Receiver) -> std::io::Result<()> {
    /// std::future::poll_fn(|cx| rx.poll_read_ready(cx)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready(Direction::Read, cx)
    }

    /// Reads without waiting (`WouldBlock` when the pipe is empty, `Ok(0)`
    /// at end of file).
    ///
    /// ```no_run
    /// # async fn f(rx: insane_net::unix::pipe::Receiver) -> std::io::Result<()> {
    /// rx.readable().await?;
    /// let mut buf = [0; 64];
    /// match rx.try_read(&mut buf) {
    ///     Ok(n) => println!("{n} bytes"),
    ///     Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Read, || self.io.get_ref().read(buf))
    }

    /// Like [`try_read`](Self::try_read), into several buffers.
    ///
    /// ```no_run
    /// # fn f(rx: insane_net::unix::pipe::Receiver) -> std::io::Result<()> {
    /// let (mut a, mut b) = ([0; 4], [0; 4]);
    /// let mut bufs = [std::io::IoSliceMut::new(&mut a), std::io::IoSliceMut::new(&mut b)];
    /// rx.try_read_vectored(&mut bufs)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.io
            .try_dir(Direction::Read, || self.io.get_ref().read_vectored(bufs))
    }

    /// Like [`try_read`](Self::try_read), appending to the spare capacity
    /// of a `BufMut`.
    ///
    /// ```no_run
    /// # fn f(rx: insane_net::unix::pipe::Receiver) -> std::io::Result<()> {
    /// let mut buf = Vec::with_capacity(4096);
    /// let n = rx.try_read_buf(&mut buf)?;
    /// assert_eq!(buf.len(), n);
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.io.try_dir(Direction::Read, || {
            let chunk = buf.chunk_mut();
            // SAFETY: the pointer and length describe the chunk, writable
            // memory that outlives the call; `read` writes only
            // initialised bytes.
            let n = unsafe { libc::read(self.io.raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            // SAFETY: the kernel initialised the first `n` bytes of the
            // chunk.
            unsafe { buf.advance_mut(n) };
            Ok(n)
        })
    }
}

impl tokio::io::AsyncRead for Receiver {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &*self;
        this.io
            .poll_io(Direction::Read, cx, || read_buf(this.io.get_ref(), buf))
            .map_ok(|_| ())
    }
}

impl futures_io::AsyncRead for Receiver {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &*self;
        this.io
            .poll_io(Direction::Read, cx, || this.io.get_ref().read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &*self;
        this.io.poll_io(Direction::Read, cx, || {
            this.io.get_ref().read_vectored(bufs)
        })
    }
}
