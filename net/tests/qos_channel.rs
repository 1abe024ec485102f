//! Channels on both kernel drivers: local fan-out to subscribers on two
//! cores by reference, two sessions talking as peers over loopback
//! (best-effort and reliable), channel id stability, reliable
//! backpressure and best-effort drop-oldest, the `Stream`/`Sink` traits,
//! and the deprecated old names (`Sink`, `Source`, `Session::sink`,
//! `Session::source`).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use common::on_each_driver;
use futures::StreamExt;
use insane_net::qos::{
    Publisher, Qos, Session, SessionConfig, Subscriber, channel_id, debug_copy_count,
};
use insane_runtime::task::{JoinHandle, spawn_on};
use insane_runtime::time::{sleep, timeout};

const LOCAL: &str = "127.0.0.1:0";

fn best_effort() -> Qos {
    Qos::builder().best_effort().build()
}

/// Message `i`: its index (8 bytes LE), then `i % 61` bytes derived from it.
fn payload(i: u64) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.extend((0..i % 61).map(|k| (i as u8).wrapping_mul(31).wrapping_add(k as u8)));
    v
}

/// How many messages each receiver got so far: a paced sender keeps at
/// most a window of messages ahead of the slowest (so best-effort tests
/// do not overrun socket buffers however the test machine is loaded).
type Progress = Arc<Vec<AtomicU64>>;

fn progress(receivers: usize) -> Progress {
    Arc::new((0..receivers).map(|_| AtomicU64::new(0)).collect())
}

async fn send_all(publisher: &mut Publisher, n: u64, window: Option<(u64, Progress)>) {
    for i in 0..n {
        if let Some((window, progress)) = &window {
            let slowest = || progress.iter().map(|p| p.load(Ordering::Acquire)).min();
            while i - slowest().unwrap_or(i).min(i) >= *window {
                sleep(Duration::from_millis(1)).await;
            }
        }
        let mut buf = publisher.buffer().await;
        buf.extend_from_slice(&payload(i)).unwrap();
        publisher.send(buf).await.unwrap();
    }
}

/// Receives `n` messages, checks order and contents, returns each
/// payload's address.
fn receive_all(core: usize, subscriber: Subscriber, n: u64) -> JoinHandle<Vec<usize>> {
    receive_counting(core, subscriber, n, progress(1), 0)
}

/// [`receive_all`], counting in `progress[slot]`.
fn receive_counting(
    core: usize,
    mut subscriber: Subscriber,
    n: u64,
    progress: Progress,
    slot: usize,
) -> JoinHandle<Vec<usize>> {
    spawn_on(core, async move {
        let mut ptrs = Vec::with_capacity(n as usize);
        for i in 0..n {
            let msg = timeout(Duration::from_secs(20), subscriber.recv())
                .await
                .unwrap_or_else(|_| panic!("message {i} never arrived"))
                .unwrap();
            assert_eq!(&msg[..], &payload(i)[..], "message {i}");
            ptrs.push(msg.as_ptr() as usize);
            progress[slot].store(i + 1, Ordering::Release);
        }
        assert_eq!(subscriber.dropped(), 0);
        ptrs
    })
}

#[test]
fn channel_ids_are_stable_fnv1a() {
    assert_eq!(channel_id(""), 0x811c_9dc5);
    assert_eq!(channel_id("a"), 0xe40c_292c);
    assert_eq!(channel_id("foobar"), 0xbf9c_f968);
    assert_eq!(
        channel_id("topic/name"),
        channel_id(&String::from("topic/name"))
    );
    assert_ne!(channel_id("topic/a"), channel_id("topic/b"));
    const AT_COMPILE_TIME: u32 = channel_id("foobar");
    assert_eq!(AT_COMPILE_TIME, 0xbf9c_f968);
}

#[test]
fn one_publisher_four_subscribers_on_two_cores_by_reference() {
    on_each_driver(2, |driver| async move {
        const N: u64 = 10_000;
        let copies = debug_copy_count();
        let session = Session::new(SessionConfig::local()).unwrap();
        let id = channel_id("test/fanout");
        let mut publisher = session.publisher(id, Qos::default());
        let receivers: Vec<_> = [0, 0, 1, 1]
            .into_iter()
            .map(|core| receive_all(core, session.subscriber(id, Qos::default()), N))
            .collect();
        send_all(&mut publisher, N, None).await;
        let mut all = Vec::new();
        for r in receivers {
            all.push(r.await.unwrap());
        }
        for i in 0..N as usize {
            assert!(
                all.iter().all(|p| p[i] == all[0][i]),
                "{driver}: message {i} was copied for some subscriber"
            );
        }
        assert_eq!(debug_copy_count(), copies, "{driver}: no payload copy");
    });
}

#[test]
fn subscriber_stream_and_publisher_sink_traits() {
    on_each_driver(1, |_| async move {
        let session = Session::new(SessionConfig::local()).unwrap();
        let mut subscriber = session.subscriber(5, best_effort());
        let mut publisher = session.publisher(5, best_effort());
        for i in 0..10 {
            let mut buf = publisher.buffer().await;
            buf.extend_from_slice(&payload(i)).unwrap();
            futures::SinkExt::send(&mut publisher, buf).await.unwrap();
        }
        for i in 0..10 {
            let msg = subscriber.next().await.unwrap().unwrap();
            assert_eq!(&msg[..], &payload(i)[..]);
        }
        let mut oversize = insane_net::qos::TxBuf::unpooled(0, 70_000);
        oversize.resize(65_500, 0).unwrap();
        let err = publisher.send(oversize).await.unwrap_err();
        assert!(err.to_string().contains("65499"), "{err}");
    });
}

#[test]
fn reliable_subscriber_backpressures_the_publisher() {
    on_each_driver(2, |driver| async move {
        const N: u64 = 100;
        let config = SessionConfig {
            queue_depth: 4,
            ..SessionConfig::local()
        };
        let session = Session::new(config).unwrap();
        let mut subscriber = session.subscriber(9, Qos::default());
        let mut publisher = session.publisher(9, Qos::default());
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let sender = spawn_on(1, async move {
            for i in 0..N {
                let mut buf = publisher.buffer().await;
                buf.extend_from_slice(&payload(i)).unwrap();
                publisher.send(buf).await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        // The publisher fills the queue (4), then waits: it stays at 4.
        for _ in 0..5000 {
            if sent.load(Ordering::SeqCst) >= 4 {
                break;
            }
            sleep(Duration::from_millis(1)).await;
        }
        sleep(Duration::from_millis(50)).await;
        assert_eq!(
            sent.load(Ordering::SeqCst),
            4,
            "{driver}: the publisher waits"
        );
        assert_eq!(subscriber.queued(), 4);
        for i in 0..N {
            if i % 10 == 0 {
                sleep(Duration::from_millis(1)).await; // a slow subscriber
            }
            let msg = subscriber.recv().await.unwrap();
            assert_eq!(&msg[..], &payload(i)[..], "{driver}: message {i}");
        }
        sender.await.unwrap();
        assert_eq!(subscriber.dropped(), 0);
    });
}

#[test]
fn best_effort_subscriber_drops_oldest_and_counts() {
    on_each_driver(1, |driver| async move {
        let config = SessionConfig {
            queue_depth: 4,
            ..SessionConfig::local()
        };
        let session = Session::new(config).unwrap();
        let mut subscriber = session.subscriber(9, best_effort());
        let mut reliable = session.subscriber(9, Qos::default());
        drop(reliable.try_recv()); // a reliable subscriber that is dropped
        drop(reliable);
        let mut publisher = session.publisher(9, Qos::default());
        send_all(&mut publisher, 100, None).await; // never waits
        assert_eq!(subscriber.dropped(), 96, "{driver}");
        for i in 96..100 {
            let msg = subscriber.try_recv().unwrap();
            assert_eq!(&msg[..], &payload(i)[..]);
        }
        assert!(subscriber.try_recv().is_none());
    });
}

/// Session B listens on loopback; session A lists B as its peer; A's
/// publisher reaches B's two subscribers (and A's own local subscriber).
async fn peers(qos: Qos, n: u64, window: Option<u64>) {
    let b = Session::new(SessionConfig {
        listen: Some(LOCAL.parse().unwrap()),
        ..SessionConfig::local()
    })
    .unwrap();
    let b_addr: SocketAddr = b.local_addr().await.unwrap().unwrap();
    let a = Session::new(SessionConfig {
        listen: Some(LOCAL.parse().unwrap()),
        peers: vec![b_addr],
        ..SessionConfig::local()
    })
    .unwrap();
    a.local_addr().await.unwrap();
    let id = channel_id("test/peers");
    let done = progress(3);
    let receivers = vec![
        receive_counting(0, b.subscriber(id, qos), n, done.clone(), 0),
        receive_counting(1, b.subscriber(id, qos), n, done.clone(), 1),
        receive_counting(1, a.subscriber(id, qos), n, done.clone(), 2),
    ];
    let mut publisher = a.publisher(id, qos);
    send_all(&mut publisher, n, window.map(|w| (w, done))).await;
    assert!(publisher.explain().is_some());
    for r in receivers {
        r.await.unwrap();
    }
}

#[test]
fn two_sessions_as_peers_best_effort() {
    on_each_driver(2, |_| peers(best_effort(), 2_000, Some(32)));
}

#[test]
fn two_sessions_as_peers_reliable() {
    on_each_driver(2, |_| peers(Qos::default(), 10_000, None));
}

#[test]
fn slow_reliable_subscriber_on_a_peer_loses_nothing() {
    on_each_driver(2, |driver| async move {
        const N: u64 = 500;
        let b = Session::new(SessionConfig {
            listen: Some(LOCAL.parse().unwrap()),
            queue_depth: 4,
            ..SessionConfig::local()
        })
        .unwrap();
        let b_addr = b.local_addr().await.unwrap().unwrap();
        let a = Session::new(SessionConfig {
            peers: vec![b_addr],
            ..SessionConfig::local()
        })
        .unwrap();
        let mut subscriber = b.subscriber(3, Qos::default());
        let mut publisher = a.publisher(3, Qos::default());
        let sender = spawn_on(1, async move { send_all(&mut publisher, N, None).await });
        for i in 0..N {
            if i % 50 == 0 {
                sleep(Duration::from_millis(5)).await; // a slow subscriber
            }
            let msg = subscriber.recv().await.unwrap();
            assert_eq!(&msg[..], &payload(i)[..], "{driver}: message {i}");
        }
        sender.await.unwrap();
        assert_eq!(subscriber.dropped(), 0);
    });
}

#[test]
fn networked_session_outside_a_runtime_is_an_error() {
    let err = Session::new(SessionConfig {
        listen: Some(LOCAL.parse().unwrap()),
        ..SessionConfig::local()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("inside an insane runtime"),
        "{err}"
    );
    // Local sessions need no runtime.
    Session::new(SessionConfig::local()).unwrap();
}

/// The names before the rename (`Sink` and `Session::sink` for the
/// sending end, `Source` and `Session::source` for the receiving end)
/// still work, as deprecated aliases, for one release.
#[test]
#[allow(deprecated)]
fn deprecated_old_names_still_work() {
    use insane_net::qos::{Sink, Source};
    on_each_driver(1, |_| async move {
        let session = Session::new(SessionConfig::local()).unwrap();
        let mut source: Source = session.source(11, Qos::default());
        let mut sink: Sink = session.sink(11, Qos::default());
        let publisher: &mut Publisher = &mut sink;
        let subscriber: &mut Subscriber = &mut source;
        let mut buf = Sink::buffer(publisher).await;
        buf.extend_from_slice(b"old names").unwrap();
        futures::SinkExt::send(publisher, buf).await.unwrap();
        let msg = subscriber.next().await.unwrap().unwrap();
        assert_eq!(&msg[..], b"old names");
        assert_eq!(Source::dropped(&source), 0);
        assert_eq!(format!("{sink:?}").split(' ').next(), Some("Publisher"));
    });
}
