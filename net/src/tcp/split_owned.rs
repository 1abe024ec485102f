//! [`OwnedReadHalf`] and [`OwnedWriteHalf`]: the two directions of a
//! [`TcpStream`] split by [`TcpStream::into_split`] (tokio's
//! `tcp::OwnedReadHalf` and `tcp::OwnedWriteHalf`), and [`ReuniteError`].
//!
//! The halves share the stream through an `Arc`, so each may move into its
//! own task, even on another core. Dropping the write half shuts down the
//! write direction (the peer reads end of stream), like tokio.

use std::error::Error;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{Interest, ReadBuf, Ready};

use crate::buf::{BufResult, IoBuf, IoBufMut, RecvPool, RecvStream};
use crate::io::{impl_stream_read, impl_stream_write};
use crate::tcp::TcpStream;

/// The owned read half of a [`TcpStream`], from
/// [`TcpStream::into_split`]; reads through `AsyncRead`.
#[derive(Debug)]
pub struct OwnedReadHalf {
    inner: Arc<TcpStream>,
}

/// The owned write half of a [`TcpStream`], from
/// [`TcpStream::into_split`]; writes through `AsyncWrite`.
///
/// Dropping it (or calling `shutdown()`) shuts down the write direction of
/// the stream; [`forget`](OwnedWriteHalf::forget) drops it without that.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    inner: Arc<TcpStream>,
    shutdown_on_drop: bool,
}

pub(crate) fn split_owned(stream: TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) {
    let arc = Arc::new(stream);
    let read = OwnedReadHalf { inner: arc.clone() };
    let write = OwnedWriteHalf {
        inner: arc,
        shutdown_on_drop: true,
    };
    (read, write)
}

fn reunite(read: OwnedReadHalf, write: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
    if Arc::ptr_eq(&read.inner, &write.inner) {
        write.forget();
        match Arc::try_unwrap(read.inner) {
            Ok(stream) => Ok(stream),
            // Only the two halves ever hold the Arc, and the write half was
            // just dropped.
            Err(_) => unreachable!("TcpStream: try_unwrap failed in reunite"),
        }
    } else {
        Err(ReuniteError(read, write))
    }
}

/// The error of [`OwnedReadHalf::reunite`] for halves of two different
/// streams; it gives both halves back.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tried to reunite halves that are not from the same socket"
        )
    }
}

impl Error for ReuniteError {}

impl OwnedReadHalf {
    /// See [`TcpStream::read_owned`].
    ///
    /// ```no_run
    /// # async fn f(rd: insane_net::tcp::OwnedReadHalf) -> std::io::Result<()> {
    /// let (res, buf) = rd.read_owned(Vec::with_capacity(1024)).await;
    /// println!("{} bytes: {:?}", res?, buf);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_owned<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.inner.read_owned(buf).await
    }

    /// See [`TcpStream::recv_stream`].
    ///
    /// ```no_run
    /// # async fn f(rd: insane_net::tcp::OwnedReadHalf) -> std::io::Result<()> {
    /// let mut rx = rd.recv_stream()?;
    /// while let Some(buf) = rx.next().await {
    ///     println!("{} bytes", buf?.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`TcpStream::recv_stream`].
    pub fn recv_stream(&self) -> io::Result<RecvStream<'_>> {
        self.inner.recv_stream()
    }

    /// See [`TcpStream::recv_stream_with`].
    ///
    /// ```no_run
    /// # async fn f(rd: insane_net::tcp::OwnedReadHalf) -> std::io::Result<()> {
    /// let pool = insane_net::RecvPool::new(16, 4096)?;
    /// let mut rx = rd.recv_stream_with(&pool)?;
    /// # drop(rx.next().await);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`TcpStream::recv_stream`].
    pub fn recv_stream_with(&self, pool: &RecvPool) -> io::Result<RecvStream<'_>> {
        self.inner.recv_stream_with(pool)
    }

    /// Puts the two halves back together into the original stream;
    /// succeeds only when both come from the same
    /// [`into_split`](TcpStream::into_split).
    ///
    /// ```no_run
    /// # fn f(a: insane_net::TcpStream) {
    /// let (rd, wr) = a.into_split();
    /// let stream = rd.reunite(wr).expect("same stream");
    /// # drop(stream);
    /// # }
    /// ```
    pub fn reunite(self, other: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        reunite(self, other)
    }

    /// See [`TcpStream::poll_peek`].
    pub fn poll_peek(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_peek(cx, buf)
    }

    /// See [`TcpStream::peek`].
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.peek(buf).await
    }

    /// See [`TcpStream::ready`].
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.inner.ready(interest).await
    }

    /// See [`TcpStream::readable`].
    pub async fn readable(&self) -> io::Result<()> {
        self.inner.readable().await
    }

    /// See [`TcpStream::try_read`].
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.try_read(buf)
    }

    /// See [`TcpStream::try_read_vectored`].
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.inner.try_read_vectored(bufs)
    }

    /// See [`TcpStream::try_read_buf`].
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.inner.try_read_buf(buf)
    }

    /// See [`TcpStream::peer_addr`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// See [`TcpStream::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl OwnedWriteHalf {
    /// See [`TcpStream::write_owned`].
    ///
    /// ```no_run
    /// # async fn f(wr: insane_net::tcp::OwnedWriteHalf) -> std::io::Result<()> {
    /// let (res, _buf) = wr.write_owned(b"ping".to_vec()).await;
    /// println!("wrote {} bytes", res?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_owned<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.inner.write_owned(buf).await
    }

    /// See [`TcpStream::write_all_owned`].
    ///
    /// ```no_run
    /// # async fn f(wr: insane_net::tcp::OwnedWriteHalf) -> std::io::Result<()> {
    /// let (res, _buf) = wr.write_all_owned(vec![0u8; 64 * 1024]).await;
    /// res?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_all_owned<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.inner.write_all_owned(buf).await
    }

    /// Puts the two halves back together; see [`OwnedReadHalf::reunite`].
    pub fn reunite(self, other: OwnedReadHalf) -> Result<TcpStream, ReuniteError> {
        reunite(other, self)
    }

    /// Drops the write half without shutting down the write direction; the
    /// stream closes when the read half is dropped too.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
        drop(self);
    }

    /// See [`TcpStream::ready`].
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.inner.ready(interest).await
    }

    /// See [`TcpStream::writable`].
    pub async fn writable(&self) -> io::Result<()> {
        self.inner.writable().await
    }

    /// See [`TcpStream::try_write`].
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.try_write(buf)
    }

    /// See [`TcpStream::try_write_vectored`].
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.try_write_vectored(bufs)
    }

    /// See [`TcpStream::peer_addr`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// See [`TcpStream::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn shutdown_priv(&mut self) -> io::Result<()> {
        let res = self.inner.shutdown_std(Shutdown::Write);
        if res.is_ok() {
            self.shutdown_on_drop = false;
        }
        res
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.inner.shutdown_std(Shutdown::Write);
        }
    }
}

impl_stream_read!(OwnedReadHalf, |this| this.inner.io);
impl_stream_write!(OwnedWriteHalf, |this| this.inner.io);

impl AsRef<TcpStream> for OwnedReadHalf {
    fn as_ref(&self) -> &TcpStream {
        &self.inner
    }
}

impl AsRef<TcpStream> for OwnedWriteHalf {
    fn as_ref(&self) -> &TcpStream {
        &self.inner
    }
}
