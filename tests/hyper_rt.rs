//! `insane::rt`: hyper's HTTP/2 (which needs an executor) and hyper's
//! timeouts (which need a timer) on insane, with no tokio runtime.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use insane::io::{AsyncReadExt, AsyncWriteExt};
use insane::net::{TcpListener, TcpStream};
use insane::rt::{HyperExecutor, HyperIo, HyperTimer};
use insane::time::timeout;

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("hello {}", req.uri().path());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

const LIMIT: Duration = Duration::from_secs(20);

#[insane::test(cores = 2)]
async fn http2_requests_are_served_and_answered_on_insane() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    insane::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        hyper::server::conn::http2::Builder::new(HyperExecutor)
            .timer(HyperTimer)
            .keep_alive_interval(Duration::from_secs(5))
            .serve_connection(HyperIo::new(stream), service_fn(hello))
            .await
            .unwrap();
    });
    // The client on the other core.
    let bodies = insane::task::spawn_on(1, async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(HyperExecutor, HyperIo::new(stream))
                .await
                .unwrap();
        insane::spawn(conn);
        // Concurrent streams on one connection: hyper spawns their tasks
        // through the executor.
        let mut set = insane::task::JoinSet::new();
        for i in 0..20 {
            let mut sender = sender.clone();
            set.spawn(async move {
                let req = Request::get(format!("http://insane/{i}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let resp = sender.send_request(req).await.unwrap();
                assert_eq!(resp.version(), hyper::Version::HTTP_2);
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                (i, String::from_utf8(body.to_vec()).unwrap())
            });
        }
        let mut bodies = Vec::new();
        while let Some(r) = set.join_next().await {
            bodies.push(r.unwrap());
        }
        bodies.sort();
        bodies
    });
    let bodies = timeout(LIMIT, bodies).await.unwrap().unwrap();
    assert_eq!(bodies.len(), 20);
    for (i, body) in bodies {
        assert_eq!(body, format!("hello /{i}"));
    }
}

#[insane::test]
async fn http1_header_read_timeout_closes_a_silent_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = insane::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        // hyper needs a timer for this timeout; insane's fires it.
        hyper::server::conn::http1::Builder::new()
            .timer(HyperTimer)
            .header_read_timeout(Duration::from_millis(100))
            .serve_connection(HyperIo::new(stream), service_fn(hello))
            .await
    });
    let mut client = TcpStream::connect(addr).await.unwrap();
    // Half a request head, then nothing.
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let mut buf = Vec::new();
    let closed = timeout(LIMIT, client.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the server kept the silent connection open");
    let served = timeout(LIMIT, server).await.unwrap().unwrap();
    let err = served.expect_err("a silent client was served");
    assert!(err.is_timeout(), "closed for another reason: {err}");
}
