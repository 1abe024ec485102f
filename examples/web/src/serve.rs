//! A tower service (an axum `Router`, a tonic `EchoServer`) served by
//! hyper on insane's sockets: hyper-util's auto builder picks HTTP/1.1 or
//! HTTP/2 (h2c, prior knowledge) per connection, with `insane::rt`'s
//! executor (HTTP/2's connection and stream tasks) and timer (HTTP/1's
//! header-read timeout, HTTP/2's keep-alive), and hyper-util's
//! `TowerToHyperService` adapts the tower service. No tokio runtime: the
//! listener, the connections and every task are insane's.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use insane::net::{TcpListener, TcpStream, ToSocketAddrs};
use insane::rt::{HyperExecutor, HyperIo, HyperTimer};
use tower_service::Service;

use crate::BoxError;

/// A tower service of HTTP requests that hyper can serve on insane's
/// cores (`Send`: HTTP/2 runs each stream as a task): an axum `Router`, a
/// tonic-generated `XServer`. Implemented for every such service.
pub trait HttpService:
    Service<
        Request<Incoming>,
        Response = Response<Self::ResponseBody>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Clone
    + Send
    + 'static
{
    /// The body of the service's responses.
    type ResponseBody: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> HttpService for S
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type ResponseBody = B;
}

/// Serves `service` on `addr` on every core of the current runtime (one
/// `SO_REUSEPORT` listener per core, see
/// [`TcpListener::bind_on_every_core`]); returns the address once every
/// core listens (the kernel's port when `addr` has port 0). The cores
/// then serve until the runtime ends.
pub async fn serve_on_every_core<A, S>(addr: A, service: S) -> std::io::Result<SocketAddr>
where
    A: ToSocketAddrs,
    S: HttpService,
{
    TcpListener::bind_on_every_core(addr, move |listener| accept_loop(listener, service.clone()))
        .await
}

/// Accepts connections on `listener` and serves each with `service` in a
/// task of its own on this core.
pub async fn accept_loop<S: HttpService>(listener: TcpListener, service: S) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                insane::spawn(serve_connection(stream, service.clone()));
            }
            Err(e) => {
                // E.g. EMFILE: back off instead of spinning on the error.
                eprintln!("accept: {e}");
                insane::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves HTTP/1.1 or HTTP/2 requests on one connection with `service`
/// until the client closes it.
pub async fn serve_connection<S: HttpService>(stream: TcpStream, service: S) {
    // Small requests and answers: do not let Nagle hold them back.
    let _ = stream.set_nodelay(true);
    let mut builder = auto::Builder::new(HyperExecutor);
    builder.http1().timer(HyperTimer);
    builder.http2().timer(HyperTimer);
    let connection =
        builder.serve_connection(HyperIo::new(stream), TowerToHyperService::new(service));
    if let Err(e) = connection.await {
        // A client going away mid-request is its business, not an error.
        let incomplete = e
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message);
        if !incomplete {
            eprintln!("connection: {e}");
        }
    }
}
