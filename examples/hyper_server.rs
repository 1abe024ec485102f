//! An HTTP/1.1 "Hello, World!" server with hyper 1.x on insane's sockets:
//! every core accepts on its own `SO_REUSEPORT` listener bound to the same
//! address and serves each connection with hyper (keep-alive on). hyper
//! runs on any tokio `AsyncRead + AsyncWrite`, which insane's `TcpStream`
//! is, through `hyper_util::rt::TokioIo`; an HTTP/1 connection needs no
//! executor, and no hyper timer is set.
//!
//! ```text
//! cargo run --release --example hyper_server -- --bind 127.0.0.1:8080 --cores 2
//! INSANE_DRIVER=epoll cargo run --release --example hyper_server
//! curl http://127.0.0.1:8080/
//! ```
//!
//! It prints `listening on ADDR (N cores, driver D)` once every core serves,
//! then runs until killed. `--bind` with port 0 picks a free port (the line
//! tells which); `--cores` defaults to every CPU the process may use.

mod common;

use std::convert::Infallible;
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use insane::net::{TcpListener, TcpStream};

fn main() -> ExitCode {
    common::exit_code("hyper_server", run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse("hyper_server", "127.0.0.1:8080");
    let rt = args.runtime()?;
    let (cores, driver) = (rt.num_cores(), rt.driver());
    rt.block_on(async move {
        let addr = TcpListener::bind_on_every_core(args.bind, accept_loop).await?;
        common::announce(addr, cores, driver);
        std::future::pending().await
    })
}

/// Accepts connections on this core's listener, one task each.
async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                insane::spawn(serve(stream));
            }
            Err(e) => {
                // E.g. EMFILE: back off instead of spinning on the error.
                eprintln!("accept: {e}");
                insane::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves HTTP/1.1 requests on one connection until the client closes it.
async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let connection = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service_fn(hello));
    if let Err(e) = connection.await {
        // A client going away mid-request is its business, not an error here.
        if !e.is_incomplete_message() {
            eprintln!("connection: {e}");
        }
    }
}

/// Every request gets `200 OK`, `text/plain`, `Hello, World!`.
async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"Hello, World!")));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}
