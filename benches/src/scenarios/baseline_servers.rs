//! tokio (and monoio) equivalents of insane's example servers, the
//! baselines of the external-client scenarios ([`super::external`]): the
//! same external client (wrk, h2load, the C ping-pong client, socat)
//! measures insane's example and these servers, so the report has ratios.
//!
//! `insane-bench __serve KIND --bind ADDR` runs one of them on one core
//! (like the examples started with `--cores 1`) and prints `listening on
//! ADDR` as they do, then serves until killed. Each does what its example
//! does; all but `http-monoio` run on a tokio current-thread runtime:
//! - `http`: `examples/hyper_server`, HTTP/1.1 keep-alive with hyper,
//!   `200 OK`, `text/plain`, `Hello, World!`, `TCP_NODELAY`;
//! - `echo-tcp`: `examples/echo_tcp`, a task per connection echoing through
//!   a 16 KiB buffer, `TCP_NODELAY`;
//! - `echo-udp`: `examples/echo_udp`, every datagram back to its sender
//!   through a 64 KiB buffer;
//! - `http-monoio`: `http` on a 1-core monoio runtime (io_uring driver),
//!   hyper over monoio's poll-style stream (`TcpStream::try_into_poll_io`);
//! - `axum`: `examples/web`'s axum example, the same `Router` served by
//!   `axum::serve` (HTTP/1.1 and h2c), `TCP_NODELAY`;
//! - `grpc`: `examples/web`'s tonic example (`--serve`), the same
//!   `EchoServer` served by tonic's own `transport::Server`,
//!   `TCP_NODELAY`.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The hidden first argument that makes this binary a baseline server.
pub const SERVE_COMMAND: &str = "__serve";

/// The servers, by `KIND` name.
pub const KINDS: [&str; 6] = [
    "http",
    "echo-tcp",
    "echo-udp",
    "http-monoio",
    "axum",
    "grpc",
];

/// Runs the server named by `args` (`KIND --bind ADDR`) until killed;
/// exits with status 1 and a message on stderr when it cannot start.
pub fn serve_main(args: &[String]) -> ! {
    let result = (|| -> Result<(), String> {
        let [kind, flag, bind] = args else {
            return Err(format!(
                "usage: insane-bench {SERVE_COMMAND} {{{}}} --bind ADDR",
                KINDS.join("|")
            ));
        };
        if flag != "--bind" {
            return Err(format!("expected --bind, got {flag:?}"));
        }
        let bind: SocketAddr = bind.parse().map_err(|e| format!("--bind {bind}: {e}"))?;
        if kind == "http-monoio" {
            return http_monoio(bind);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("build tokio runtime: {e}"))?;
        rt.block_on(async move {
            match kind.as_str() {
                "http" => http(bind).await,
                "echo-tcp" => echo_tcp(bind).await,
                "echo-udp" => echo_udp(bind).await,
                "axum" => axum_server(bind).await,
                "grpc" => grpc(bind).await,
                other => Err(format!("no server kind {other:?} (one of {KINDS:?})")),
            }
        })
    })();
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("insane-bench {SERVE_COMMAND}: {e}");
            std::process::exit(1)
        }
    }
}

/// Prints the line the harness waits for, as the examples do.
fn announce(addr: SocketAddr) {
    println!("listening on {addr} (1 core, tokio current-thread)");
}

/// `examples/hyper_server` on a 1-core monoio runtime (io_uring).
fn http_monoio(bind: SocketAddr) -> Result<(), String> {
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .build()
        .map_err(|e| format!("build monoio runtime (io_uring): {e}"))?;
    rt.block_on(async move {
        let listener =
            monoio::net::TcpListener::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("listening on {addr} (1 core, monoio io_uring)");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            monoio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let Ok(stream) = stream.try_into_poll_io() else {
                    return;
                };
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service_fn(hello))
                    .await;
            });
        }
    })
}

/// A TCP listener on `bind`, announced.
async fn listen(bind: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("bind {bind}: {e}"))?;
    announce(listener.local_addr().map_err(|e| e.to_string())?);
    Ok(listener)
}

/// `examples/hyper_server` on tokio.
async fn http(bind: SocketAddr) -> Result<(), String> {
    let listener = listen(bind).await?;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
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

/// `examples/echo_tcp` on tokio.
async fn echo_tcp(bind: SocketAddr) -> Result<(), String> {
    let listener = listen(bind).await?;
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut buf = vec![0_u8; 16 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// `examples/echo_udp` on tokio.
async fn echo_udp(bind: SocketAddr) -> Result<(), String> {
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("bind {bind}: {e}"))?;
    announce(socket.local_addr().map_err(|e| e.to_string())?);
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        if let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], peer).await;
        }
    }
}

/// `examples/web`'s axum example on tokio: its Router, `axum::serve`.
async fn axum_server(bind: SocketAddr) -> Result<(), String> {
    use axum::serve::ListenerExt;
    let listener = listen(bind).await?.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, insane_web_examples::app::router())
        .await
        .map_err(|e| format!("axum::serve: {e}"))
}

/// `examples/web`'s tonic example on tokio: its `EchoServer`, tonic's
/// `transport::Server`.
async fn grpc(bind: SocketAddr) -> Result<(), String> {
    use insane_web_examples::echo::{EchoServer, Echoer};
    use tonic::transport::server::TcpIncoming;
    let incoming = TcpIncoming::bind(bind)
        .map_err(|e| format!("bind {bind}: {e}"))?
        .with_nodelay(Some(true));
    announce(incoming.local_addr().map_err(|e| e.to_string())?);
    tonic::transport::Server::builder()
        .serve_with_incoming(EchoServer::new(Echoer), incoming)
        .await
        .map_err(|e| format!("tonic server: {e}"))
}
