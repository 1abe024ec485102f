//! An HTTP/2 client connection on insane's `TcpStream` (hyper's
//! `client::conn::http2`, driven by a task on the current core) as a tower
//! service: tonic's generated clients take it as their channel
//! (`EchoClient::with_origin(channel, uri)`), and tests send plain HTTP/2
//! requests through it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper::{Request, Response};
use insane::net::TcpStream;
use insane::rt::{HyperExecutor, HyperIo, HyperTimer};
use tower_service::Service;

use crate::BoxError;

/// One HTTP/2 connection; cloning it shares the connection (each request
/// is a stream of it).
pub struct Http2Channel<B> {
    sender: SendRequest<B>,
}

impl<B> Clone for Http2Channel<B> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<B> std::fmt::Debug for Http2Channel<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2Channel")
            .field("closed", &self.sender.is_closed())
            .finish()
    }
}

impl<B> Http2Channel<B>
where
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Connects to `addr` over HTTP/2 with prior knowledge (h2c) and
    /// drives the connection in a task on the current core.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http2::Builder::new(HyperExecutor)
            .timer(HyperTimer)
            .handshake(HyperIo::new(stream))
            .await
            .map_err(|e| io::Error::other(format!("HTTP/2 handshake with {addr}: {e}")))?;
        insane::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("HTTP/2 connection to {addr}: {e}");
            }
        });
        Ok(Self::new(sender))
    }
}

impl<B> Http2Channel<B> {
    /// A channel over an established connection's sender (e.g. one whose
    /// handshake ran on another runtime).
    pub fn new(sender: SendRequest<B>) -> Self {
        Self { sender }
    }
}

impl<B> Service<Request<B>> for Http2Channel<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = hyper::Result<Response<Incoming>>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        Box::pin(self.sender.send_request(request))
    }
}
