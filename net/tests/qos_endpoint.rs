//! QoS endpoints on both kernel drivers: transport choice per QoS, the
//! explain text, reliable delivery of many messages of random sizes,
//! best-effort size limits, `TxBuf`/`RxBuf` behaviour, buffers returning
//! to their pool from another core, and backpressure when pools run dry.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BufMut;
use common::on_each_driver;
use insane_net::TcpStream;
use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::{Endpoint, Latency, Qos, TransportConfig, debug_copy_count};
use insane_runtime::runtime::Runtime;
use insane_runtime::task::{spawn, spawn_on};
use insane_runtime::time::timeout;
use tokio::io::AsyncWriteExt;

const LOCAL: &str = "127.0.0.1:0";

fn critical() -> Qos {
    Qos::builder().critical().best_effort().poll().build()
}

fn normal_reliable() -> Qos {
    Qos::builder().reliable().low().build()
}

fn low_datagrams() -> Qos {
    Qos::builder().best_effort().low().build()
}

fn kinds(driver: &str) -> (Kind, Kind, Kind) {
    match driver {
        "uring" => (Kind::UringUdpBusyPoll, Kind::UringTcp, Kind::UringUdp),
        _ => (Kind::EpollUdpBusyPoll, Kind::EpollTcp, Kind::EpollUdp),
    }
}

/// A deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The payload byte `j` of message `i`.
fn byte(i: usize, j: usize) -> u8 {
    (i.wrapping_mul(131) ^ j.wrapping_mul(7) ^ (j >> 8)) as u8
}

async fn send_bytes(ep: &Endpoint, to: SocketAddr, bytes: &[u8]) {
    let mut buf = ep.buffer().await;
    buf.extend_from_slice(bytes).unwrap();
    ep.send_to(buf, to).await.unwrap();
}

async fn roundtrip(a: &Endpoint, b: &Endpoint, what: &str) {
    let to = b.local_addr().unwrap();
    send_bytes(a, to, what.as_bytes()).await;
    let msg = timeout(Duration::from_secs(10), b.recv())
        .await
        .expect("message within 10 s")
        .unwrap();
    assert_eq!(&msg[..], what.as_bytes());
    // Reply to the sender, whatever address it appears under.
    let peer = msg.peer();
    drop(msg);
    send_bytes(b, peer, b"ack").await;
    let ack = timeout(Duration::from_secs(10), a.recv())
        .await
        .expect("reply within 10 s")
        .unwrap();
    assert_eq!(&ack[..], b"ack");
}

#[test]
fn three_qos_in_one_app_get_their_transports_and_deliver() {
    on_each_driver(1, |driver| async move {
        let (crit, rel, low) = kinds(driver);
        for (qos, want) in [
            (critical(), crit),
            (normal_reliable(), rel),
            (low_datagrams(), low),
        ] {
            let a = Endpoint::bind(LOCAL, qos).await.unwrap();
            let b = Endpoint::bind(LOCAL, qos).await.unwrap();
            assert_eq!(a.driver(), want, "{driver}: {qos}: {}", a.explain());
            assert_eq!(a.driver().busy_polls(), want.busy_polls());
            assert_eq!(a.transport().busy_polls(), want.busy_polls());
            roundtrip(&a, &b, &format!("{qos} on {driver}")).await;
        }
        // Critical but resources=low: never busy-polls.
        let q = Qos::builder().critical().best_effort().low().build();
        let ep = Endpoint::bind(LOCAL, q).await.unwrap();
        assert_eq!(ep.driver(), low);
        assert!(!ep.transport().busy_polls());
        assert!(!ep.explain().contains("busy-poll"), "{}", ep.explain());
    });
}

#[test]
fn explain_names_the_choice_and_why_better_ones_were_passed() {
    on_each_driver(1, |driver| async move {
        let ep = Endpoint::bind(LOCAL, critical()).await.unwrap();
        let e = ep.explain();
        println!("{driver}: {e}");
        let tech = if driver == "uring" {
            "io_uring"
        } else {
            "epoll"
        };
        assert!(
            e.starts_with(&format!(
                "latency=critical, best-effort, resources=poll -> {tech} busy-poll UDP ("
            )),
            "{e}"
        );
        assert!(e.contains("dpdk: "), "{e}");
        assert!(e.contains("af_xdp: "), "{e}");
        assert!(e.contains("SO_BUSY_POLL=50us"), "{e}");

        let ep = Endpoint::bind(LOCAL, Qos::default()).await.unwrap();
        println!("{driver}: {}", ep.explain());
        if driver == "uring" {
            assert_eq!(
                ep.explain(),
                "latency=normal, reliable, resources=low -> io_uring TCP"
            );
        } else {
            assert_eq!(
                ep.explain(),
                "latency=normal, reliable, resources=low -> epoll TCP \
                 (io_uring: this core runs the epoll driver)"
            );
        }
        let q = Qos::builder().critical().reliable().poll().build();
        let ep = Endpoint::bind(LOCAL, q).await.unwrap();
        println!("{driver}: {}", ep.explain());
        assert!(ep.explain().contains("rdma: "), "{}", ep.explain());
        let ep = Endpoint::bind(LOCAL, low_datagrams()).await.unwrap();
        println!("{driver}: {}", ep.explain());
    });
}

#[test]
fn reliable_messages_of_random_sizes_arrive_intact_and_in_order() {
    const MIB: usize = 1 << 20;
    let count: usize = if cfg!(debug_assertions) {
        1_000
    } else {
        10_000
    };
    // Sizes from 1 B to 1 MiB: every 64th uniform up to 1 MiB, the rest
    // log-uniform up to 64 KiB; the first is 1 B and the second 1 MiB.
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let sizes: Vec<usize> = (0..count)
        .map(|i| match i {
            0 => 1,
            1 => MIB,
            _ if i % 64 == 0 => 1 + rng.below(MIB as u64) as usize,
            _ => {
                let bits = rng.below(17);
                1 + rng.below(1 << bits) as usize
            }
        })
        .collect();
    let total: usize = sizes.iter().sum();
    assert!(total <= 256 * MIB, "{total}");
    println!("{count} messages, {total} bytes");
    let copies_before = debug_copy_count();
    on_each_driver(1, |driver| {
        let sizes = sizes.clone();
        async move {
            let server = Endpoint::bind(LOCAL, normal_reliable()).await.unwrap();
            let client = Endpoint::bind(LOCAL, normal_reliable()).await.unwrap();
            client.connect(server.local_addr().unwrap()).await.unwrap();
            let sent = sizes.clone();
            let sender = spawn(async move {
                for (i, &len) in sent.iter().enumerate() {
                    let mut buf = client.buffer().await;
                    buf.resize(len, 0).unwrap();
                    for (j, b) in buf.iter_mut().enumerate() {
                        *b = byte(i, j);
                    }
                    client.send(buf).await.unwrap();
                }
                client
            });
            for (i, &len) in sizes.iter().enumerate() {
                let msg = server.recv().await.unwrap();
                assert_eq!(msg.len(), len, "{driver}: message {i}");
                if let Some(j) = (0..len).find(|&j| msg[j] != byte(i, j)) {
                    panic!("{driver}: message {i} of {len} bytes differs at {j}");
                }
            }
            let _client = sender.await.unwrap();
            // Nothing more.
            assert!(
                timeout(Duration::from_millis(50), server.recv())
                    .await
                    .is_err()
            );
        }
    });
    assert_eq!(
        debug_copy_count(),
        copies_before,
        "the receive path copied payload bytes"
    );
}

#[test]
fn best_effort_messages_over_the_limit_are_errors_naming_it() {
    on_each_driver(1, |_| async move {
        for qos in [critical(), low_datagrams()] {
            let ep = Endpoint::bind(LOCAL, qos).await.unwrap();
            assert_eq!(ep.max_payload(), 65_507);
            let mut buf = ep.buffer().await;
            assert_eq!(buf.capacity(), 65_507);
            let err = buf.extend_from_slice(&vec![1; 65_508]).unwrap_err();
            assert!(err.to_string().contains("65507"), "{err}");
            assert!(buf.is_empty(), "a failed extend writes nothing");
            let err = buf.resize(70_000, 0).unwrap_err();
            let err = std::io::Error::from(err);
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("65507"), "{err}");
            // Exactly the limit is one datagram, delivered whole.
            let peer = Endpoint::bind(LOCAL, qos).await.unwrap();
            buf.resize(65_507, 0xab).unwrap();
            ep.send_to(buf, peer.local_addr().unwrap()).await.unwrap();
            let msg = peer.recv().await.unwrap();
            assert_eq!(msg.len(), 65_507);
            assert!(msg.iter().all(|&b| b == 0xab));

            // A bigger buffer (lent by a reliable endpoint) is refused by
            // the datagram endpoint, naming the limit, never truncated.
            let rel = Endpoint::bind(LOCAL, normal_reliable()).await.unwrap();
            let mut big = rel.buffer().await;
            big.resize(70_000, 0).unwrap();
            let err = ep
                .send_to(big, peer.local_addr().unwrap())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("65507"), "{err}");
            assert!(
                timeout(Duration::from_millis(50), peer.recv())
                    .await
                    .is_err()
            );
        }
    });
}

#[test]
fn txbuf_behaves_like_a_bounded_vec() {
    on_each_driver(1, |_| async move {
        let ep = Endpoint::bind(LOCAL, low_datagrams()).await.unwrap();
        let mut buf = ep.buffer().await;
        assert_eq!((buf.len(), buf.capacity(), buf.headroom()), (0, 65_507, 0));
        assert_send(&buf);
        assert_send_sync(&ep);
        buf.extend_from_slice(b"abc").unwrap();
        write!(buf, "-{}-", 42).unwrap();
        buf.put_u16(0x0102);
        buf.push(b'z').unwrap();
        assert_eq!(&buf[..], b"abc-42-\x01\x02z");
        buf[0] = b'A';
        buf.truncate(4);
        assert_eq!(&buf[..], b"Abc-");
        assert_eq!(buf.remaining_mut(), 65_507 - 4);
        buf.clear();
        buf.resize(65_500, 7).unwrap();
        // io::Write is short at the capacity, never past it.
        assert_eq!(buf.write(&[1; 100]).unwrap(), 7);
        assert_eq!(buf.len(), 65_507);
        assert_eq!(
            buf.write_all(b"x").unwrap_err().kind(),
            std::io::ErrorKind::WriteZero
        );
        assert!(buf.extend_from_slice(b"x").is_err());
        assert_eq!(buf.remaining_mut(), 0);

        // Reliable endpoints reserve the 4-byte length prefix in front and
        // grow the storage on demand up to their maximum.
        let config = TransportConfig {
            max_message: 1 << 20,
            ..Default::default()
        };
        let rel = Endpoint::bind_with(LOCAL, normal_reliable(), config)
            .await
            .unwrap();
        let mut buf = rel.buffer().await;
        assert_eq!((buf.capacity(), buf.headroom()), (1 << 20, 4));
        buf.put_bytes(9, 1 << 20);
        assert_eq!(buf.len(), 1 << 20);
        assert!(buf.push(0).is_err());

        // Sent buffers go back to the pool.
        let before = ep.tx_buffers_available();
        let mut buf = ep.buffer().await;
        assert_eq!(ep.tx_buffers_available(), before - 1);
        buf.extend_from_slice(b"x").unwrap();
        ep.send_to(buf, ep.local_addr().unwrap()).await.unwrap();
        assert_eq!(ep.tx_buffers_available(), before);
        let msg = ep.recv().await.unwrap();
        assert_eq!(&msg[..], b"x");
    });
}

fn assert_send<T: Send>(_: &T) {}

fn assert_send_sync<T: Send + Sync>(_: &T) {}

#[test]
fn rxbuf_dropped_on_another_core_returns_to_its_pool() {
    on_each_driver(2, |driver| async move {
        for qos in [low_datagrams(), critical(), normal_reliable()] {
            let server = Endpoint::bind(LOCAL, qos).await.unwrap();
            let client = Endpoint::bind(LOCAL, qos).await.unwrap();
            let free = server.rx_buffers_available();
            send_bytes(&client, server.local_addr().unwrap(), b"travelling").await;
            let msg = server.recv().await.unwrap();
            assert_send(&msg);
            assert_eq!(server.rx_buffers_available(), free - 1, "{driver} {qos}");
            let on = spawn_on(1, async move {
                assert_eq!(&msg[..], b"travelling");
                let core = Runtime::current_core();
                drop(msg);
                core
            })
            .await
            .unwrap();
            assert_eq!(on, Some(1));
            assert_eq!(server.rx_buffers_available(), free, "{driver} {qos}");
        }
    });
}

#[test]
fn exhausted_pools_give_backpressure_not_loss() {
    on_each_driver(1, |driver| async move {
        let config = TransportConfig {
            tx_buffers: 2,
            rx_buffers: 2,
            ..Default::default()
        };
        for qos in [low_datagrams(), normal_reliable()] {
            let server = Endpoint::bind_with(LOCAL, qos, config).await.unwrap();
            let client = Endpoint::bind_with(LOCAL, qos, config).await.unwrap();
            let to = server.local_addr().unwrap();

            // Send side: two buffers, then none until one comes back.
            let a = client.try_buffer().unwrap();
            let b = client.buffer().await;
            assert!(client.try_buffer().is_none());
            assert!(
                timeout(Duration::from_millis(20), client.buffer())
                    .await
                    .is_err()
            );
            drop(a);
            let c = timeout(Duration::from_secs(1), client.buffer())
                .await
                .expect("a returned buffer is lent again");
            drop((b, c));

            // Receive side: holding both receive buffers pauses receiving;
            // messages wait (in the kernel) and none is lost.
            const N: usize = 50;
            for i in 0..N {
                send_bytes(&client, to, format!("m{i}").as_bytes()).await;
            }
            let first = server.recv().await.unwrap();
            let second = server.recv().await.unwrap();
            assert_eq!(server.rx_buffers_available(), 0);
            assert!(
                timeout(Duration::from_millis(50), server.recv())
                    .await
                    .is_err(),
                "{driver} {qos}: a third message without a free buffer"
            );
            let mut got = vec![first[..].to_vec(), second[..].to_vec()];
            drop((first, second));
            while got.len() < N {
                let m = timeout(Duration::from_secs(5), server.recv())
                    .await
                    .expect("messages resume once buffers return")
                    .unwrap();
                got.push(m[..].to_vec());
            }
            let want: Vec<Vec<u8>> = (0..N).map(|i| format!("m{i}").into_bytes()).collect();
            assert_eq!(got, want, "{driver} {qos}");
        }
    });
}

#[test]
fn reliable_peer_announcing_an_oversized_message_is_cut_off() {
    on_each_driver(1, |_| async move {
        let config = TransportConfig {
            max_message: 1000,
            ..Default::default()
        };
        let ep = Endpoint::bind_with(LOCAL, normal_reliable(), config)
            .await
            .unwrap();
        let mut raw = TcpStream::connect(ep.local_addr().unwrap()).await.unwrap();
        raw.write_all(&1001u32.to_be_bytes()).await.unwrap();
        raw.write_all(&[0; 16]).await.unwrap();
        let err = ep.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("1001 bytes"), "{err}");
        assert!(err.to_string().contains("maximum of 1000 bytes"), "{err}");
        // The endpoint keeps serving others; a well-formed raw peer works.
        let mut ok = TcpStream::connect(ep.local_addr().unwrap()).await.unwrap();
        ok.write_all(&3u32.to_be_bytes()).await.unwrap();
        ok.write_all(b"abc").await.unwrap();
        let msg = ep.recv().await.unwrap();
        assert_eq!(&msg[..], b"abc");
        assert_eq!(msg.peer(), ok.local_addr().unwrap());
        // Sending over the maximum is refused before anything is written.
        let buf = ep.buffer().await;
        assert_eq!(buf.capacity(), 1000);
    });
}

#[test]
fn reliable_endpoint_talks_to_several_peers() {
    on_each_driver(1, |_| async move {
        let server = Endpoint::bind(LOCAL, normal_reliable()).await.unwrap();
        let to = server.local_addr().unwrap();
        let mut clients = Vec::new();
        for i in 0..3 {
            let c = Endpoint::bind(LOCAL, normal_reliable()).await.unwrap();
            send_bytes(&c, to, format!("hello {i}").as_bytes()).await;
            clients.push(c);
        }
        for _ in 0..3 {
            let msg = server.recv().await.unwrap();
            let text = String::from_utf8(msg.to_vec()).unwrap();
            let mut reply = server.buffer().await;
            reply.extend_from_slice(text.as_bytes()).unwrap();
            reply.extend_from_slice(b" back").unwrap();
            server.send_to(reply, msg.peer()).await.unwrap();
        }
        for (i, c) in clients.iter().enumerate() {
            let msg = c.recv().await.unwrap();
            assert_eq!(msg.to_vec(), format!("hello {i} back").into_bytes());
            assert_eq!(msg.peer(), to);
        }
        // Without a default peer, `send` says so.
        let buf = server.buffer().await;
        let err = server.send(buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
        let lonely = Endpoint::bind(LOCAL, low_datagrams()).await.unwrap();
        let err = lonely.send(lonely.buffer().await).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    });
}

#[test]
fn critical_latency_class_is_reported() {
    on_each_driver(1, |_| async move {
        let ep = Endpoint::bind(LOCAL, critical()).await.unwrap();
        assert_eq!(ep.qos().latency, Latency::Critical);
        // A connected best-effort endpoint sends with `send`.
        let peer = Endpoint::bind(LOCAL, critical()).await.unwrap();
        ep.connect(peer.local_addr().unwrap()).await.unwrap();
        let mut buf = ep.buffer().await;
        buf.extend_from_slice(b"direct").unwrap();
        ep.send(buf).await.unwrap();
        let msg = peer.recv().await.unwrap();
        assert_eq!(&msg[..], b"direct");
        assert_eq!(msg.peer(), ep.local_addr().unwrap());
    });
}

/// A message of `ep` for `try_send`, or a panic if its pool is dry.
fn filled(ep: &Endpoint, bytes: &[u8]) -> insane_net::qos::TxBuf {
    let mut buf = ep.try_buffer().expect("a free send buffer");
    buf.extend_from_slice(bytes).unwrap();
    buf
}

#[test]
fn critical_message_overtakes_queued_bulk_messages_on_one_core() {
    on_each_driver(1, |driver| async move {
        // Bulk flow bound: half of 8 send buffers.
        let config = TransportConfig {
            tx_buffers: 8,
            ..Default::default()
        };
        let sink = Endpoint::bind(LOCAL, low_datagrams()).await.unwrap();
        let to = sink.local_addr().unwrap();
        let bulk = Endpoint::bind_with(LOCAL, low_datagrams(), config)
            .await
            .unwrap();
        let urgent_qos = Qos::builder().critical().best_effort().low().build();
        let urgent = Endpoint::bind(LOCAL, urgent_qos).await.unwrap();

        // No await from here on: the core's transmit task cannot run, so
        // everything is queued before anything is sent.
        let mut queued = 0;
        loop {
            match bulk.try_send_to(filled(&bulk, format!("bulk{queued}").as_bytes()), to) {
                Ok(()) => queued += 1,
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{driver}: {e}");
                    break;
                }
            }
        }
        assert_eq!(queued, 4, "{driver}: the bulk flow holds tx_buffers / 2");
        urgent.try_send_to(filled(&urgent, b"urgent"), to).unwrap();

        let mut got = Vec::new();
        for _ in 0..=queued {
            let m = timeout(Duration::from_secs(5), sink.recv())
                .await
                .expect("every queued message is sent")
                .unwrap();
            got.push(String::from_utf8(m[..].to_vec()).unwrap());
        }
        let mut want = vec!["urgent".to_owned()];
        want.extend((0..queued).map(|i| format!("bulk{i}")));
        assert_eq!(got, want, "{driver}: critical first, then bulk in order");
    });
}

#[test]
fn full_transmit_queue_gives_would_block_and_loses_nothing() {
    on_each_driver(1, |driver| async move {
        let config = TransportConfig {
            tx_buffers: 4,
            ..Default::default()
        };
        for qos in [low_datagrams(), normal_reliable()] {
            let server = Endpoint::bind(LOCAL, qos).await.unwrap();
            let client = Endpoint::bind_with(LOCAL, qos, config).await.unwrap();
            let to = server.local_addr().unwrap();
            client.connect(to).await.unwrap();

            // Bound 2: two queued, the third would block.
            client.try_send(filled(&client, b"m0")).unwrap();
            client.try_send(filled(&client, b"m1")).unwrap();
            let err = client.try_send(filled(&client, b"lost")).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock, "{driver} {qos}");

            // `send` waits for room, then for the send; its future is `Send`.
            const N: usize = 100;
            for i in 2..N {
                let mut buf = client.buffer().await;
                buf.extend_from_slice(format!("m{i}").as_bytes()).unwrap();
                let send = client.send(buf);
                assert_send(&send);
                send.await.unwrap();
            }
            let mut got = Vec::new();
            while got.len() < N {
                let m = timeout(Duration::from_secs(5), server.recv())
                    .await
                    .expect("no message lost")
                    .unwrap();
                got.push(m[..].to_vec());
            }
            let want: Vec<Vec<u8>> = (0..N).map(|i| format!("m{i}").into_bytes()).collect();
            assert_eq!(got, want, "{driver} {qos}");
        }
    });
}

#[test]
fn endpoint_sends_from_a_send_task_on_another_core() {
    on_each_driver(2, |driver| async move {
        let server = std::sync::Arc::new(Endpoint::bind(LOCAL, normal_reliable()).await.unwrap());
        let client = std::sync::Arc::new(Endpoint::bind(LOCAL, normal_reliable()).await.unwrap());
        let to = server.local_addr().unwrap();
        // The endpoint gets a flow on each core it sends from.
        send_bytes(&client, to, b"here").await;
        let c = client.clone();
        spawn_on(1, async move { send_bytes(&c, to, b"there").await })
            .await
            .unwrap();
        let c = client.clone();
        spawn(async move { send_bytes(&c, to, b"spawned").await })
            .await
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            let m = timeout(Duration::from_secs(5), server.recv())
                .await
                .expect("message within 5 s")
                .unwrap();
            got.push(m[..].to_vec());
        }
        got.sort();
        assert_eq!(got, [&b"here"[..], b"spawned", b"there"], "{driver}");
    });
}

/// The next `n` messages of `ep`, as strings (5 s each at most).
async fn recv_strings(ep: &Endpoint, n: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        let m = timeout(Duration::from_secs(5), ep.recv())
            .await
            .expect("every message arrives")
            .unwrap();
        got.push(String::from_utf8(m[..].to_vec()).unwrap());
    }
    got
}

/// A critical send on an idle core goes to the transport at once. A bulk
/// one does too when the runtime's priority is off; with it on (the
/// default) bulk sends always take the transmit queue, whose task starts
/// them in bounded slices (latency isolation), and still arrive in order.
#[test]
fn send_on_an_idle_core_completes_in_its_first_poll() {
    use futures::FutureExt;
    on_each_driver(1, |driver| async move {
        assert!(insane_runtime::runtime::Runtime::priority());
        for (qos, at_once) in [(critical(), true), (low_datagrams(), false)] {
            let sink = Endpoint::bind(LOCAL, qos).await.unwrap();
            let ep = Endpoint::bind(LOCAL, qos).await.unwrap();
            let to = sink.local_addr().unwrap();
            const N: usize = 50;
            for i in 0..N {
                let buf = filled(&ep, format!("m{i}").as_bytes());
                if at_once {
                    // Nothing queued on the core: no wait for the
                    // transmit task.
                    let sent = ep.send_to(buf, to).now_or_never();
                    assert!(
                        matches!(sent, Some(Ok(()))),
                        "{driver} {qos}: send {i} gave {sent:?} in its first poll"
                    );
                } else {
                    let mut send = Box::pin(ep.send_to(buf, to));
                    assert!(
                        (&mut send).now_or_never().is_none(),
                        "{driver} {qos}: a bulk send skipped the transmit queue"
                    );
                    send.await.unwrap();
                }
            }
            let want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
            assert_eq!(recv_strings(&sink, N).await, want, "{driver} {qos}");
        }
    });
}

#[test]
fn send_goes_behind_messages_already_queued_on_its_flow() {
    on_each_driver(1, |driver| async move {
        let sink = Endpoint::bind(LOCAL, low_datagrams()).await.unwrap();
        let ep = Endpoint::bind(LOCAL, low_datagrams()).await.unwrap();
        let to = sink.local_addr().unwrap();
        // Queued without an await: the transmit task has not run yet.
        ep.try_send_to(filled(&ep, b"q0"), to).unwrap();
        ep.try_send_to(filled(&ep, b"q1"), to).unwrap();
        let buf = filled(&ep, b"sent");
        ep.send_to(buf, to).await.unwrap();
        assert_eq!(
            recv_strings(&sink, 3).await,
            ["q0", "q1", "sent"],
            "{driver}"
        );
    });
}

#[test]
fn bulk_send_waits_behind_queued_critical_messages() {
    on_each_driver(1, |driver| async move {
        let sink = Endpoint::bind(LOCAL, low_datagrams()).await.unwrap();
        let to = sink.local_addr().unwrap();
        let urgent_qos = Qos::builder().critical().best_effort().low().build();
        let urgent = Endpoint::bind(LOCAL, urgent_qos).await.unwrap();
        let bulk = Endpoint::bind(LOCAL, low_datagrams()).await.unwrap();
        for i in 0..3 {
            urgent
                .try_send_to(filled(&urgent, format!("urgent{i}").as_bytes()), to)
                .unwrap();
        }
        // The core has queued messages: this send must not overtake them.
        bulk.send_to(filled(&bulk, b"bulk"), to).await.unwrap();
        assert_eq!(
            recv_strings(&sink, 4).await,
            ["urgent0", "urgent1", "urgent2", "bulk"],
            "{driver}"
        );
    });
}

#[test]
fn send_goes_behind_its_flows_message_still_completing() {
    on_each_driver(1, |driver| async move {
        let sink = Endpoint::bind(LOCAL, normal_reliable()).await.unwrap();
        let ep = Endpoint::bind(LOCAL, normal_reliable()).await.unwrap();
        let to = sink.local_addr().unwrap();
        // The first message opens the connection: it cannot complete at
        // once, so it goes on in the flow's lane while the queue is empty.
        ep.try_send_to(filled(&ep, b"first"), to).unwrap();
        insane_runtime::task::yield_now().await;
        ep.send_to(filled(&ep, b"second"), to).await.unwrap();
        assert_eq!(
            recv_strings(&sink, 2).await,
            ["first", "second"],
            "{driver}"
        );
    });
}
