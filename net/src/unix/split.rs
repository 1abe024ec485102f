//! [`ReadHalf`] and [`WriteHalf`]: the two directions of a borrowed
//! [`UnixStream`], from [`UnixStream::split`] (tokio's `unix::ReadHalf` and
//! `unix::WriteHalf`).
//!
//! Both halves borrow the stream, so they cost nothing and are meant for
//! concurrent reading and writing on one task; for halves that move into
//! different tasks use [`UnixStream::into_split`].

use std::io::{self, IoSlice, IoSliceMut};
use std::net::Shutdown;

use tokio::io::{Interest, Ready};

use crate::buf::{BufResult, IoBuf, IoBufMut, RecvPool, RecvStream};
use crate::io::{impl_stream_read, impl_stream_write};
use crate::unix::{SocketAddr, UnixStream};

/// The read half of a [`UnixStream`] borrowed by [`UnixStream::split`]; reads
/// through `AsyncRead`.
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a UnixStream);

/// The write half of a [`UnixStream`] borrowed by [`UnixStream::split`];
/// writes through `AsyncWrite`. Its `shutdown()` shuts down the write
/// direction of the stream.
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a UnixStream);

pub(crate) fn split(stream: &mut UnixStream) -> (ReadHalf<'_>, WriteHalf<'_>) {
    (ReadHalf(&*stream), WriteHalf(&*stream))
}

impl ReadHalf<'_> {
    /// See [`UnixStream::read_owned`].
    ///
    /// ```no_run
    /// # async fn f(rd: insane_net::unix::ReadHalf<'_>) -> std::io::Result<()> {
    /// let (res, buf) = rd.read_owned(Vec::with_capacity(1024)).await;
    /// println!("{} bytes: {:?}", res?, buf);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_owned<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.0.read_owned(buf).await
    }

    /// See [`UnixStream::recv_stream`].
    ///
    /// ```no_run
    /// # async fn f(rd: insane_net::unix::ReadHalf<'_>) -> std::io::Result<()> {
    /// let mut rx = rd.recv_stream()?;
    /// while let Some(buf) = rx.next().await {
    ///     println!("{} bytes", buf?.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`UnixStream::recv_stream`].
    pub fn recv_stream(&self) -> io::Result<RecvStream<'_>> {
        self.0.recv_stream()
    }

    /// See [`UnixStream::recv_stream_with`].
    ///
    /// ```no_run
    /// # async fn f(rd: insane_net::unix::ReadHalf<'_>) -> std::io::Result<()> {
    /// let pool = insane_net::RecvPool::new(16, 4096)?;
    /// let mut rx = rd.recv_stream_with(&pool)?;
    /// # drop(rx.next().await);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`UnixStream::recv_stream`].
    pub fn recv_stream_with(&self, pool: &RecvPool) -> io::Result<RecvStream<'_>> {
        self.0.recv_stream_with(pool)
    }

    /// See [`UnixStream::ready`].
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.0.ready(interest).await
    }

    /// See [`UnixStream::readable`].
    pub async fn readable(&self) -> io::Result<()> {
        self.0.readable().await
    }

    /// See [`UnixStream::try_read`].
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }

    /// See [`UnixStream::try_read_vectored`].
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.0.try_read_vectored(bufs)
    }

    /// See [`UnixStream::try_read_buf`].
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.0.try_read_buf(buf)
    }

    /// See [`UnixStream::peer_addr`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }

    /// See [`UnixStream::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl WriteHalf<'_> {
    /// See [`UnixStream::write_owned`].
    ///
    /// ```no_run
    /// # async fn f(wr: insane_net::unix::WriteHalf<'_>) -> std::io::Result<()> {
    /// let (res, _buf) = wr.write_owned(b"ping".to_vec()).await;
    /// println!("wrote {} bytes", res?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_owned<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.0.write_owned(buf).await
    }

    /// See [`UnixStream::write_all_owned`].
    ///
    /// ```no_run
    /// # async fn f(wr: insane_net::unix::WriteHalf<'_>) -> std::io::Result<()> {
    /// let (res, _buf) = wr.write_all_owned(vec![0u8; 64 * 1024]).await;
    /// res?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_all_owned<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.0.write_all_owned(buf).await
    }

    /// See [`UnixStream::ready`].
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.0.ready(interest).await
    }

    /// See [`UnixStream::writable`].
    pub async fn writable(&self) -> io::Result<()> {
        self.0.writable().await
    }

    /// See [`UnixStream::try_write`].
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    /// See [`UnixStream::try_write_vectored`].
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    /// See [`UnixStream::peer_addr`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }

    /// See [`UnixStream::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn shutdown_priv(&mut self) -> io::Result<()> {
        self.0.shutdown_std(Shutdown::Write)
    }
}

impl_stream_read!(ReadHalf<'_>, |this| this.0.io);
impl_stream_write!(WriteHalf<'_>, |this| this.0.io);

impl AsRef<UnixStream> for ReadHalf<'_> {
    fn as_ref(&self) -> &UnixStream {
        self.0
    }
}

impl AsRef<UnixStream> for WriteHalf<'_> {
    fn as_ref(&self) -> &UnixStream {
        self.0
    }
}
