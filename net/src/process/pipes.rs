//! [`ChildStdin`], [`ChildStdout`], [`ChildStderr`]: the parent's ends of a
//! child's piped standard streams, as non-blocking pipe ends
//! ([`crate::unix::pipe`]) waited on by the core's driver.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::unix::pipe::{Receiver, Sender};

/// The parent's end of a child's standard input (tokio's
/// `process::ChildStdin`): an [`AsyncWrite`]. Dropping it closes the pipe,
/// so the child reads end of input.
#[derive(Debug)]
pub struct ChildStdin {
    pipe: Sender,
}

/// The parent's end of a child's standard output (tokio's
/// `process::ChildStdout`): an [`AsyncRead`].
#[derive(Debug)]
pub struct ChildStdout {
    pipe: Receiver,
}

/// The parent's end of a child's standard error (tokio's
/// `process::ChildStderr`): an [`AsyncRead`].
#[derive(Debug)]
pub struct ChildStderr {
    pipe: Receiver,
}

impl ChildStdin {
    /// Wraps std's handle, switching the pipe to non-blocking mode.
    ///
    /// # Errors
    /// The fd cannot be switched to non-blocking mode.
    pub fn from_std(inner: std::process::ChildStdin) -> io::Result<ChildStdin> {
        Ok(ChildStdin {
            pipe: Sender::from_owned_fd_unchecked(OwnedFd::from(inner))?,
        })
    }

    /// The pipe's fd, switched back to blocking mode.
    ///
    /// # Errors
    /// The fd cannot be switched back to blocking mode.
    pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
        self.pipe.into_blocking_fd()
    }
}

macro_rules! reader {
    ($name:ident, $std:ty) => {
        impl $name {
            /// Wraps std's handle, switching the pipe to non-blocking mode.
            ///
            /// # Errors
            /// The fd cannot be switched to non-blocking mode.
            pub fn from_std(inner: $std) -> io::Result<$name> {
                Ok($name {
                    pipe: Receiver::from_owned_fd_unchecked(OwnedFd::from(inner))?,
                })
            }

            /// The pipe's fd, switched back to blocking mode.
            ///
            /// # Errors
            /// The fd cannot be switched back to blocking mode.
            pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
                self.pipe.into_blocking_fd()
            }
        }

        impl AsyncRead for $name {
            fn poll_read(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.pipe).poll_read(cx, buf)
            }
        }

        impl TryFrom<$name> for Stdio {
            type Error = io::Error;

            /// The pipe as another child's standard stream (tokio's
            /// `TryInto<Stdio>`), in blocking mode.
            fn try_from(pipe: $name) -> io::Result<Stdio> {
                pipe.into_owned_fd().map(Stdio::from)
            }
        }

        fd_traits!($name);
    };
}

macro_rules! fd_traits {
    ($name:ident) => {
        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.pipe.as_raw_fd()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.pipe.as_fd()
            }
        }
    };
}

reader!(ChildStdout, std::process::ChildStdout);
reader!(ChildStderr, std::process::ChildStderr);
fd_traits!(ChildStdin);

impl AsyncWrite for ChildStdin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.pipe).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.pipe).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.pipe.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.pipe).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.pipe).poll_shutdown(cx)
    }
}

impl TryFrom<ChildStdin> for Stdio {
    type Error = io::Error;

    /// The pipe as another child's standard stream, in blocking mode.
    fn try_from(pipe: ChildStdin) -> io::Result<Stdio> {
        pipe.into_owned_fd().map(Stdio::from)
    }
}
