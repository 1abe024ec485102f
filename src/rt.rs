//! hyper on insane (feature `hyper`): [`HyperExecutor`] and
//! [`HyperLocalExecutor`] (hyper's `rt::Executor`), [`HyperTimer`]
//! (hyper's `rt::Timer`) and [`HyperIo`] (hyper's `rt::Read`/`rt::Write`
//! over insane's sockets), so hyper's HTTP/2 (which spawns a task per
//! connection and stream) and its timeouts (`header_read_timeout`,
//! keep-alive pings) run on insane with no tokio runtime.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use http_body_util::Full;
//! use hyper::body::Bytes;
//! use hyper::service::service_fn;
//! use insane::net::TcpListener;
//! use insane::rt::{HyperExecutor, HyperIo, HyperTimer};
//!
//! #[insane::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:8080").await?;
//!     loop {
//!         let (stream, _) = listener.accept().await?;
//!         insane::spawn(async move {
//!             let service = service_fn(|_req| async {
//!                 Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("hi"))))
//!             });
//!             let _ = hyper::server::conn::http2::Builder::new(HyperExecutor)
//!                 .timer(HyperTimer)
//!                 .keep_alive_interval(Duration::from_secs(20))
//!                 .serve_connection(HyperIo::new(stream), service)
//!                 .await;
//!         });
//!     }
//! }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// hyper's executor on insane: [`spawn`](crate::spawn)s each future on the
/// current core (hyper's HTTP/2 connection and stream tasks stay with the
/// connection's core). For `Send` futures; see [`HyperLocalExecutor`]
/// for the others.
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperExecutor;

impl<F> hyper::rt::Executor<F> for HyperExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        drop(crate::spawn(fut));
    }
}

/// hyper's executor on insane for `!Send` futures (a service holding `Rc`
/// state): [`spawn_local`](crate::task::spawn_local)s each future on the
/// current core.
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperLocalExecutor;

impl<F> hyper::rt::Executor<F> for HyperLocalExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        drop(crate::task::spawn_local(fut));
    }
}

/// hyper's timer on insane's per-core timer wheel
/// ([`time::sleep`](crate::time::sleep)).
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperTimer;

impl hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep {
            inner: Box::pin(crate::time::sleep(duration)),
        })
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep {
            inner: Box::pin(crate::time::sleep_until(deadline.into())),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(ours) => ours.get_mut().inner.as_mut().reset(new_deadline.into()),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// An insane [`Sleep`](crate::time::Sleep) as hyper's `rt::Sleep`.
struct HyperSleep {
    inner: Pin<Box<crate::time::Sleep>>,
}

impl Future for HyperSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HyperSleep {}

/// An insane socket (any tokio `AsyncRead + AsyncWrite`: `TcpStream`,
/// `UnixStream`) as hyper's `rt::Read + rt::Write`; what
/// `hyper_util::rt::TokioIo` does, without the hyper-util dependency.
#[derive(Debug)]
pub struct HyperIo<T> {
    inner: T,
}

impl<T> HyperIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self { inner }
    }

    /// The wrapped socket.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The wrapped socket, back.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        // SAFETY: the tokio ReadBuf is built over the cursor's unfilled,
        // possibly uninitialised part and only ever writes initialised
        // bytes into it; `advance` then marks exactly the bytes it filled.
        let filled = unsafe {
            let mut tbuf = ReadBuf::uninit(buf.as_mut());
            match Pin::new(&mut self.inner).poll_read(cx, &mut tbuf) {
                Poll::Ready(Ok(())) => tbuf.filled().len(),
                other => return other,
            }
        };
        // SAFETY: `filled` bytes of the cursor were initialised above.
        unsafe { buf.advance(filled) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}
