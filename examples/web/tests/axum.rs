//! The `axum` example's Router served on insane (`serve_on_every_core`,
//! two cores) answers every route over HTTP/1.1 and over HTTP/2 (prior
//! knowledge), with hyper clients on insane's sockets; on each driver.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, StatusCode, Version};
use insane::net::TcpStream;
use insane::rt::HyperIo;
use insane_web_examples::app::{self, GREETING};
use insane_web_examples::client::Http2Channel;
use insane_web_examples::serve::serve_on_every_core;
use tower_service::Service;

const LIMIT: Duration = Duration::from_secs(20);

/// What came back for one request.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    version: Version,
    content_type: String,
    body: Bytes,
}

/// Sends `request` on a new connection to `addr` speaking `version`.
async fn send(addr: SocketAddr, version: Version, request: Request<Full<Bytes>>) -> Answer {
    let response = if version == Version::HTTP_2 {
        let mut channel = Http2Channel::connect(addr).await.unwrap();
        std::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .unwrap();
        channel.call(request).await.unwrap()
    } else {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
            .await
            .unwrap();
        insane::spawn(connection);
        sender.send_request(request).await.unwrap()
    };
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        version: parts.version,
        content_type: parts
            .headers
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://insane{path}"))
        .body(Full::default())
        .unwrap()
}

async fn every_route_answers_over_http1_and_http2() {
    let addr = serve_on_every_core("127.0.0.1:0", app::router())
        .await
        .unwrap();
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let plain = send(addr, version, get("/")).await;
        assert_eq!(plain.status, StatusCode::OK, "{version:?}");
        assert_eq!(plain.version, version);
        assert!(plain.content_type.starts_with("text/plain"), "{plain:?}");
        assert_eq!(plain.body, GREETING.as_bytes());

        let json = send(addr, version, get("/json")).await;
        assert_eq!(json.status, StatusCode::OK, "{version:?}");
        assert_eq!(json.content_type, "application/json");
        let value: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(value, serde_json::json!({ "message": GREETING }));

        let payload = Bytes::from(vec![b'x'; 100_000]);
        let echo = Request::builder()
            .method(Method::POST)
            .uri("http://insane/echo")
            .body(Full::new(payload.clone()))
            .unwrap();
        let echoed = send(addr, version, echo).await;
        assert_eq!(echoed.status, StatusCode::OK, "{version:?}");
        assert_eq!(echoed.body, payload, "{version:?}: /echo changed the body");

        let missing = send(addr, version, get("/nope")).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{version:?}");
    }
}

#[insane::test(cores = 2, driver = "uring")]
async fn router_on_uring() {
    insane::time::timeout(LIMIT, every_route_answers_over_http1_and_http2())
        .await
        .expect("the routes answered within the limit");
}

#[insane::test(cores = 2, driver = "epoll")]
async fn router_on_epoll() {
    insane::time::timeout(LIMIT, every_route_answers_over_http1_and_http2())
        .await
        .expect("the routes answered within the limit");
}
