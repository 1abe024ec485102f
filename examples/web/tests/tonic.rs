//! The `tonic` example's gRPC service served on insane answers unary
//! calls from the generated client over insane's sockets (one HTTP/2
//! connection, calls one after the other and concurrent); on each driver.

use std::time::Duration;

use hyper::Uri;
use insane_web_examples::client::Http2Channel;
use insane_web_examples::echo::{EchoClient, EchoRequest, EchoServer, Echoer};
use insane_web_examples::serve::serve_on_every_core;

const LIMIT: Duration = Duration::from_secs(20);

async fn unary_calls_round_trip() {
    let addr = serve_on_every_core("127.0.0.1:0", EchoServer::new(Echoer))
        .await
        .unwrap();
    let channel = Http2Channel::connect(addr).await.unwrap();
    let origin: Uri = format!("http://{addr}").parse().unwrap();
    let mut client = EchoClient::with_origin(channel, origin);

    // One after the other, including an empty message (prost's default).
    for message in ["", "hello", &"x".repeat(64 * 1024)] {
        let reply = client
            .unary_echo(EchoRequest {
                message: message.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.message, message);
    }

    // Concurrent calls: streams of the same connection.
    let mut calls = insane::task::JoinSet::new();
    for i in 0..16 {
        let mut client = client.clone();
        calls.spawn(async move {
            let message = format!("call {i}");
            let reply = client
                .unary_echo(EchoRequest {
                    message: message.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            (message, reply.message)
        });
    }
    let mut answered = 0;
    while let Some(result) = calls.join_next().await {
        let (sent, got) = result.unwrap();
        assert_eq!(got, sent);
        answered += 1;
    }
    assert_eq!(answered, 16);
}

#[insane::test(cores = 2, driver = "uring")]
async fn unary_echo_on_uring() {
    insane::time::timeout(LIMIT, unary_calls_round_trip())
        .await
        .expect("the calls were answered within the limit");
}

#[insane::test(cores = 2, driver = "epoll")]
async fn unary_echo_on_epoll() {
    insane::time::timeout(LIMIT, unary_calls_round_trip())
        .await
        .expect("the calls were answered within the limit");
}
