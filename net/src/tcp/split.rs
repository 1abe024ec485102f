//! [`ReadHalf`] and [`WriteHalf`]: the two directions of a borrowed
//! [`TcpStream`], from [`TcpStream::split`] (tokio's `tcp::ReadHalf` and
//! `tcp::WriteHalf`).
//!
//! Both halves borrow the stream, so they cost nothing and are meant for
//! concurrent reading and writing on one task; for halves that move into
//! different tasks use [`TcpStream::into_split`].

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::task::{Context, Poll};

use tokio::io::{Interest, ReadBuf, Ready};

use crate::buf::{BufResult, IoBuf, IoBufMut, RecvPool, RecvStream};
use crate::io::{impl_stream_read, impl_stream_write};
use crate::tcp::TcpStream;

/// The read half of a [`TcpStream`] borrowed by [`TcpStream::split`]; reads
/// through `AsyncRead`.
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a TcpStream);

/// The write half of a [`TcpStream`] borrowed by [`TcpStream::split`];
/// writes through `AsyncWrite`. Its `shutdown()` shuts down the write
/// direction of the stream.
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a TcpStream);

pub(crate) fn split(stream: &mut TcpStream) -> (ReadHalf<'_>, WriteHalf<'_>) {
    (ReadHalf(&*stream), WriteHalf(&*stream))
}

impl ReadHalf<'_> {
    /// See [`TcpStream::read_owned`].
    ///
    /// ```no_run
    /// # async fn f(rd: insane_net::tcp::ReadHalf<'_>) -> std::io::Result<()> {
    /// let (res, buf) = rd.read_owned(Vec::with_capacity(1024)).await;
    /// println!("{} bytes: {:?}", res?, buf);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_owned<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.0.read_owned(buf).await
    }

    /// See [`TcpStream::recv_stream`].
    ///
    /// ```no_run
    /// # async fn f(rd: insane_net::tcp::ReadHalf<'_>) -> std::io::Result<()> {
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
        self.0.recv_stream()
    }

    /// See [`TcpStream::recv_stream_with`].
    ///
    /// ```no_run
    /// # async fn f(rd: insane_net::tcp::ReadHalf<'_>) -> std::io::Result<()> {
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
        self.0.recv_stream_with(pool)
    }

    /// See [`TcpStream::poll_peek`].
    pub fn poll_peek(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        self.0.poll_peek(cx, buf)
    }

    /// See [`TcpStream::peek`].
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.peek(buf).await
    }

    /// See [`TcpStream::ready`].
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.0.ready(interest).await
    }

    /// See [`TcpStream::readable`].
    pub async fn readable(&self) -> io::Result<()> {
        self.0.readable().await
    }

    /// See [`TcpStream::try_read`].
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }

    /// See [`TcpStream::try_read_vectored`].
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.0.try_read_vectored(bufs)
    }

    /// See [`TcpStream::try_read_buf`].
    pub fn try_read_buf<B: bytes::BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        self.0.try_read_buf(buf)
    }

    /// See [`TcpStream::peer_addr`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }

    /// See [`TcpStream::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl WriteHalf<'_> {
    /// See [`TcpStream::write_owned`].
    ///
    /// ```no_run
    /// # async fn f(wr: insane_net::tcp::WriteHalf<'_>) -> std::io::Result<()> {
    /// let (res, _buf) = wr.write_owned(b"ping".to_vec()).await;
    /// println!("wrote {} bytes", res?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_owned<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.0.write_owned(buf).await
    }

    /// See [`TcpStream::write_all_owned`].
    ///
    /// ```no_run
    /// # async fn f(wr: insane_net::tcp::WriteHalf<'_>) -> std::io::Result<()> {
    /// let (res, _buf) = wr.write_all_owned(vec![0u8; 64 * 1024]).await;
    /// res?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_all_owned<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        self.0.write_all_owned(buf).await
    }

    /// See [`TcpStream::ready`].
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.0.ready(interest).await
    }

    /// See [`TcpStream::writable`].
    pub async fn writable(&self) -> io::Result<()> {
        self.0.writable().await
    }

    /// See [`TcpStream::try_write`].
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    /// See [`TcpStream::try_write_vectored`].
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    /// See [`TcpStream::peer_addr`].
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }

    /// See [`TcpStream::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn shutdown_priv(&mut self) -> io::Result<()> {
        self.0.shutdown_std(Shutdown::Write)
    }
}

impl_stream_read!(ReadHalf<'_>, |this| this.0.io);
impl_stream_write!(WriteHalf<'_>, |this| this.0.io);

impl AsRef<TcpStream> for ReadHalf<'_> {
    fn as_ref(&self) -> &TcpStream {
        self.0
    }
}

impl AsRef<TcpStream> for WriteHalf<'_> {
    fn as_ref(&self) -> &TcpStream {
        self.0
    }
}
