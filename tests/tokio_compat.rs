//! The tokio bridge (`tokio_compat = true`): crates that only run on tokio
//! (reqwest; hyper-util's client with `TokioExecutor`), `tokio::spawn`,
//! `tokio::time` and `tokio::net` work inside insane tasks, on any core.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use insane::io::{AsyncReadExt, AsyncWriteExt};
use insane::net::TcpListener;
use insane::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

/// An HTTP/1.1 server on insane that answers every request with `body`
/// and closes the connection.
async fn serve_http(body: &'static str) -> std::net::SocketAddr {
    TcpListener::bind_on_every_core("127.0.0.1:0", move |listener| async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            insane::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    })
    .await
    .unwrap()
}

#[insane::test(tokio_compat = true, cores = 2)]
async fn tokio_spawn_and_timers_work_inside_insane_tasks_on_every_core() {
    for core in 0..2 {
        let got = insane::task::spawn_on(core, async {
            let spawned = tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                21
            });
            tokio::time::timeout(Duration::from_secs(10), spawned)
                .await
                .unwrap()
                .unwrap()
                * 2
        });
        assert_eq!(timeout(LIMIT, got).await.unwrap().unwrap(), 42);
    }
}

#[insane::test(tokio_compat = true)]
async fn a_tokio_socket_talks_to_an_insane_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = insane::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
    });
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut client, b"ping")
        .await
        .unwrap();
    let mut buf = [0u8; 4];
    timeout(
        LIMIT,
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut buf),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&buf, b"ping");
    server.await.unwrap();
}

#[insane::test(tokio_compat = true, cores = 2)]
async fn reqwest_fetches_from_a_local_server_inside_insane_tasks() {
    let addr = serve_http("hello from insane").await;
    // The client on core 1, its connection pool and I/O on tokio.
    let text = insane::task::spawn_on(1, async move {
        let client = reqwest::Client::new();
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let resp = client.get(format!("http://{addr}/")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            bodies.push(resp.text().await.unwrap());
        }
        bodies
    });
    let bodies = timeout(LIMIT, text).await.unwrap().unwrap();
    assert_eq!(bodies, vec!["hello from insane"; 3]);
}

#[insane::test(tokio_compat = true)]
async fn hyper_utils_tokio_client_works_inside_insane_tasks() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let addr = serve_http("pooled").await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: hyper::Uri = format!("http://{addr}/").parse().unwrap();
    let resp = timeout(LIMIT, client.get(uri)).await.unwrap().unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"pooled");
}

#[test]
fn without_the_bridge_a_tokio_only_call_panics_as_it_does_outside_tokio() {
    let rt = insane::runtime::Runtime::builder()
        .cores(1)
        .build()
        .unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            drop(tokio::spawn(async {}));
        })
    }));
    assert!(outcome.is_err(), "tokio::spawn ran without a tokio context");
}
