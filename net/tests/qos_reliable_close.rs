//! Closing reliable endpoints (`transport::reliable`): no message that
//! `send` accepted is lost silently when an endpoint goes away.
//!
//! Specifications checked, over the userspace stack on an in-memory link
//! (with loss) and over kernel UDP on loopback:
//! - a sender that drops its endpoint (or transport) right after its last
//!   send still delivers every message, in order; the receiver then sees
//!   the connection closed by its peer, not timed out;
//! - a dropped sender whose peer is dead does not hang: after the linger
//!   bound its port is free again and the messages it gave up are
//!   counted ([`ReliableTransport::abandoned_messages`]); with linger zero
//!   that happens at once;
//! - `Endpoint::shutdown().await` returns once the peer acknowledged
//!   everything, later sends fail, and a dead peer makes it fail naming
//!   the peer and the count lost; on kernel TCP and best-effort endpoints
//!   it returns at once and the messages arrive;
//! - a runtime that shuts down while a dropped endpoint lingers does not
//!   wait for it, and what it gave up is counted.

mod common;

use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::messages::{Rng, check, critical_reliable, fill, recv_within, reliable_pair, send_msg};
use common::on_driver;
use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::transport::reliable::AbandonedMessages;
use insane_net::qos::transport::stack::StackUdpTransport;
use insane_net::qos::transport::{Op, ReliableTransport, UdpTransport};
use insane_net::qos::{Endpoint, Qos, RxBuf, Transport, TransportConfig, TxBuf};
use insane_net::stack::EthernetAddress;
use insane_net::stack::testing::PairDevice;
use insane_net::stack::testing::host;
use insane_net::stack::testing::lossy::{Impairments, LossyDevice};
use insane_runtime::runtime::Runtime;
use insane_runtime::time::{sleep, timeout};

const LOCAL: &str = "127.0.0.1:0";
const DRIVER: &str = "epoll";

/// Reliable datagrams over the core's busy-poll UDP, with `linger` (and
/// the default 1 s peer timeout: shorter ones fail connections when this
/// shared machine stalls a test thread).
fn datagrams(linger: Option<Duration>) -> TransportConfig {
    TransportConfig {
        prefer: Some(Kind::UdpReliable),
        linger,
        ..Default::default()
    }
}

/// A reliable transport over busy-poll UDP on loopback (epoll).
fn udp_transport(config: &TransportConfig) -> ReliableTransport {
    let udp = UdpTransport::bind(LOCAL.parse().unwrap(), Kind::EpollUdpBusyPoll, config).unwrap();
    ReliableTransport::new(Arc::new(udp), Kind::UdpReliable, config).unwrap()
}

/// A UDP socket that never answers: the address of a dead peer.
fn dead_peer() -> std::net::UdpSocket {
    std::net::UdpSocket::bind(LOCAL).unwrap()
}

async fn t_send(t: &ReliableTransport, buf: TxBuf, peer: SocketAddr) -> io::Result<()> {
    let mut op = Op::new();
    let mut buf = Some(buf);
    poll_fn(|cx| t.poll_send(cx, &mut buf, Some(peer), &mut op)).await
}

async fn t_send_msg(t: &ReliableTransport, to: SocketAddr, tag: u8, i: usize, len: usize) {
    let mut buf = poll_fn(|cx| t.poll_buffer(cx)).await;
    buf.resize(len, 0).unwrap();
    fill(&mut buf, tag, i);
    t_send(t, buf, to)
        .await
        .unwrap_or_else(|e| panic!("send {i}: {e}"));
}

/// The next message of `t`, or `None` when nothing comes within `limit`.
async fn t_recv(t: &ReliableTransport, limit: Duration) -> Option<io::Result<RxBuf>> {
    let mut op = Op::new();
    timeout(limit, poll_fn(|cx| t.poll_recv(cx, &mut op)))
        .await
        .ok()
}

/// `b` receives message `i` of `sizes[i]` bytes (tag `0xa`) for every
/// `i`, in order and intact; then its connection ends by the peer's
/// CLOSE (not by a timeout) and no error follows.
async fn receive_all_then_the_peers_close(b: &ReliableTransport, sizes: &[usize], what: &str) {
    for (i, &len) in sizes.iter().enumerate() {
        let m = t_recv(b, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("{what}: message {i} not received: {}", b.stats()))
            .unwrap_or_else(|e| panic!("{what}: recv {i}: {e}"));
        check(&m, 0xa, i, len, what);
    }
    let since = Instant::now();
    while b.connection_count() > 0 && since.elapsed() < Duration::from_secs(5) {
        sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(b.connection_count(), 0, "{what}: {}", b.stats());
    assert_eq!(
        b.protocol_stats().timeouts,
        0,
        "{what}: closed by the peer, not timed out"
    );
    assert!(
        t_recv(b, Duration::from_millis(50)).await.is_none(),
        "{what}: an error after the messages"
    );
}

/// Waits (at most `limit`) until `abandoned` counts `want`; the count
/// seen last.
async fn wait_for_count(abandoned: &AbandonedMessages, want: u64, limit: Duration) -> u64 {
    let since = Instant::now();
    while abandoned.count() < want && since.elapsed() < limit {
        sleep(Duration::from_millis(5)).await;
    }
    abandoned.count()
}

/// Collects the `WARN` events logged through `tracing` in this test
/// process: what the transports report about lost messages. Installed as
/// the global subscriber, once (a subscriber set for one thread only
/// misses events when parallel tests register the same call sites
/// first: tracing caches its interest per call site).
#[derive(Clone, Default)]
struct Warnings(Arc<std::sync::Mutex<Vec<String>>>);

impl Warnings {
    fn global() -> &'static Warnings {
        static GLOBAL: std::sync::OnceLock<Warnings> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(|| {
            let w = Warnings::default();
            tracing::subscriber::set_global_default(w.clone())
                .expect("no other global subscriber in this test process");
            w
        })
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        self.0.lock().unwrap().push(m.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// `addr`'s UDP port can be bound again (its transport released it),
/// trying for at most `limit`.
async fn port_released(addr: SocketAddr, limit: Duration) -> bool {
    let since = Instant::now();
    loop {
        if std::net::UdpSocket::bind(addr).is_ok() {
            return true;
        }
        if since.elapsed() >= limit {
            return false;
        }
        sleep(Duration::from_millis(5)).await;
    }
}

// ---- drop: everything accepted is delivered ------------------------------------

const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Over the userspace stack on an in-memory link that loses 2 % of the
/// frames: the sender drops its transport as soon as its last message is
/// accepted; every message (up to 64 KiB: many span several frames)
/// arrives in order, and the receiver's connection then ends by the
/// peer's CLOSE (no timeout), with nothing abandoned.
#[test]
fn over_a_lossy_stack_link_a_transport_dropped_right_after_sending_delivers_every_message() {
    let rt = Runtime::builder().cores(1).build().unwrap();
    rt.block_on(async {
        let cfg = TransportConfig::default();
        let (a_dev, b_dev) = PairDevice::pair(MAC_A, MAC_B, 1500);
        let impair = Impairments {
            loss: 0.02,
            ..Default::default()
        };
        type Lossy = LossyDevice<PairDevice>;
        let a_dev = LossyDevice::new(a_dev, impair, 7);
        let b_dev = LossyDevice::new(b_dev, impair, 8);
        let a_stack = StackUdpTransport::<Lossy>::bind("close a", 5000, Kind::XdpUdp, &cfg, || {
            Ok((host(a_dev, IP_A, (IP_B, MAC_B)), None))
        })
        .unwrap();
        let b_stack = StackUdpTransport::<Lossy>::bind("close b", 6000, Kind::XdpUdp, &cfg, || {
            Ok((host(b_dev, IP_B, (IP_A, MAC_A)), None))
        })
        .unwrap();
        let a = ReliableTransport::new(Arc::new(a_stack), Kind::XdpReliable, &cfg).unwrap();
        let b = ReliableTransport::new(Arc::new(b_stack), Kind::XdpReliable, &cfg).unwrap();
        let b_addr = b.local_addr().unwrap();
        let abandoned = a.abandoned_messages();
        let mut rng = Rng(0xc105e);
        let sizes: Vec<usize> = (0..60).map(|_| rng.size(16)).collect();
        for (i, &len) in sizes.iter().enumerate() {
            t_send_msg(&a, b_addr, 0xa, i, len).await;
        }
        drop(a);
        receive_all_then_the_peers_close(&b, &sizes, "lossy stack").await;
        assert_eq!(abandoned.count(), 0);
    });
}

/// Over kernel UDP through `Endpoint`: the sender drops its endpoint
/// right after its last send (the last messages only queued with
/// `try_send_to`); every message arrives in order and no error follows
/// (the connection was closed, not timed out: an error would come within
/// the 1 s peer timeout).
#[test]
fn over_kernel_udp_an_endpoint_dropped_right_after_sending_delivers_every_message() {
    on_driver(DRIVER, 1, |driver| async move {
        let config = datagrams(None);
        let (a, b) = reliable_pair(config).await;
        assert_eq!(a.driver(), Kind::UdpReliable, "{}", a.explain());
        let b_addr = b.local_addr().unwrap();
        let mut rng = Rng(0xd12);
        let sizes: Vec<usize> = (0..200).map(|_| rng.size(17)).collect();
        let (sent, queued) = sizes.split_at(190);
        for (i, &len) in sent.iter().enumerate() {
            send_msg(&a, b_addr, 0xa, i, len).await.unwrap();
        }
        for (k, &len) in queued.iter().enumerate() {
            let mut buf = a.buffer().await;
            buf.resize(len, 0).unwrap();
            fill(&mut buf, 0xa, sent.len() + k);
            a.try_send_to(buf, b_addr).unwrap();
        }
        drop(a);

        for (i, &len) in sizes.iter().enumerate() {
            let m = recv_within(&b, 10, driver).await.unwrap();
            check(&m, 0xa, i, len, driver);
        }
        if let Ok(m) = timeout(Duration::from_millis(1300), b.recv()).await {
            panic!("{driver}: after the last message: {:?}", m.map(|m| m.len()));
        }
    });
}

/// A first contact: the sender drops its transport before its handshake
/// could complete (no turn of the runtime in between); the close waits
/// for the handshake, then delivers every message.
#[test]
fn a_transport_dropped_before_its_handshake_completed_delivers_every_message() {
    on_driver(DRIVER, 1, |_| async move {
        let config = datagrams(None);
        let a = udp_transport(&config);
        let b = udp_transport(&config);
        let b_addr = b.local_addr().unwrap();
        let abandoned = a.abandoned_messages();
        for i in 0..5 {
            t_send_msg(&a, b_addr, 0xa, i, 1000 + 2000 * i).await;
        }
        assert_eq!(a.connection_count(), 1);
        drop(a);
        let sizes: Vec<usize> = (0..5).map(|i| 1000 + 2000 * i).collect();
        receive_all_then_the_peers_close(&b, &sizes, "first contact").await;
        assert_eq!(abandoned.count(), 0);
    });
}

// ---- drop: a dead peer --------------------------------------------------------

/// A dropped transport whose peer died lingers for its bound (300 ms
/// here), then gives the unacknowledged messages up, counts them, logs a
/// warning naming the peer and the count, and releases its port; the
/// drop itself returns at once.
#[test]
fn a_transport_dropped_while_its_peer_is_dead_gives_up_after_the_linger_bound_counting_the_loss() {
    let warnings = Warnings::global();
    let dead: Arc<std::sync::Mutex<Option<SocketAddr>>> = Arc::default();
    on_driver(DRIVER, 1, |_| {
        let dead = dead.clone();
        async move {
            let config = datagrams(Some(Duration::from_millis(300)));
            let a = udp_transport(&config);
            let b = udp_transport(&datagrams(Some(Duration::ZERO)));
            let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            *dead.lock().unwrap() = Some(b_addr);
            // Connected, then b dies (linger zero: no goodbye on the wire).
            t_send_msg(&a, b_addr, 1, 0, 100).await;
            t_recv(&b, Duration::from_secs(5))
                .await
                .expect("the first message")
                .unwrap();
            // Its ACK (held for an answer that does not come) leaves at b's
            // next turn; then b dies.
            sleep(Duration::from_millis(50)).await;
            drop(b);
            for i in 1..=12 {
                t_send_msg(&a, b_addr, 1, i, 3000).await;
            }
            let abandoned = a.abandoned_messages();
            let dropped = Instant::now();
            drop(a);
            assert!(
                dropped.elapsed() < Duration::from_millis(100),
                "drop does not wait"
            );
            assert_eq!(
                wait_for_count(&abandoned, 12, Duration::from_secs(3)).await,
                12,
                "every unacknowledged message is counted"
            );
            assert!(port_released(a_addr, Duration::from_secs(1)).await);
            println!("given up after {:?}", dropped.elapsed());
        }
    });
    let b_addr = dead.lock().unwrap().expect("the dead peer's address");
    let warned = warnings.all();
    assert!(
        warned
            .iter()
            .any(|w| w.contains("12 message(s)") && w.contains(&b_addr.to_string())),
        "a warning names {b_addr} and the count: {warned:?}"
    );
}

/// Linger zero: a dropped transport aborts at once — its queued messages
/// are counted as abandoned and its port is free right away.
#[test]
fn linger_zero_aborts_at_once_counting_the_messages_it_held() {
    on_driver(DRIVER, 1, |_| async move {
        let config = datagrams(Some(Duration::ZERO));
        let a = udp_transport(&config);
        let dead = dead_peer();
        let a_addr = a.local_addr().unwrap();
        for i in 0..5 {
            t_send_msg(&a, dead.local_addr().unwrap(), 1, i, 2000).await;
        }
        let abandoned = a.abandoned_messages();
        drop(a);
        assert_eq!(
            wait_for_count(&abandoned, 5, Duration::from_millis(500)).await,
            5
        );
        assert!(port_released(a_addr, Duration::from_millis(500)).await);
    });
}

/// The runtime's shutdown does not wait for a lingering close (30 s
/// here): the driver is cancelled with the runtime's other tasks, and
/// what it still held is counted as abandoned.
#[test]
fn a_runtime_shutting_down_cancels_a_lingering_close_and_counts_what_it_held() {
    let rt = Runtime::builder()
        .cores(1)
        .on_core_start(Arc::new(|_| insane_epoll::install_on_current_core()))
        .build()
        .unwrap();
    let dead = dead_peer();
    let to = dead.local_addr().unwrap();
    let abandoned = rt.block_on(async move {
        let a = udp_transport(&datagrams(Some(Duration::from_secs(30))));
        for i in 0..4 {
            t_send_msg(&a, to, 1, i, 100).await;
        }
        let abandoned = a.abandoned_messages();
        drop(a);
        // Let the driver start its close.
        sleep(Duration::from_millis(20)).await;
        abandoned
    });
    let stopping = Instant::now();
    drop(rt);
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "the runtime waited {:?} for the lingering close",
        stopping.elapsed()
    );
    assert_eq!(abandoned.count(), 4);
}

// ---- shutdown ---------------------------------------------------------------

/// `shutdown().await` returns once the peer acknowledged every message:
/// the receiver then has them all at once; later sends fail.
#[test]
fn shutdown_returns_once_the_peer_acknowledged_everything_and_later_sends_fail() {
    on_driver(DRIVER, 1, |driver| async move {
        let config = datagrams(None);
        let (a, b) = reliable_pair(config).await;
        let b_addr = b.local_addr().unwrap();
        for i in 0..50 {
            send_msg(&a, b_addr, 0xa, i, 10_000).await.unwrap();
        }
        timeout(Duration::from_secs(5), a.shutdown())
            .await
            .expect("shutdown within 5 s")
            .unwrap();
        // Acknowledged means held by b's endpoint: no wait for the wire.
        for i in 0..50 {
            let m = timeout(Duration::from_millis(500), b.recv())
                .await
                .unwrap_or_else(|_| panic!("{driver}: message {i} not there after shutdown"))
                .unwrap();
            check(&m, 0xa, i, 10_000, driver);
        }
        let err = send_msg(&a, b_addr, 0xa, 50, 10).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
        assert!(err.to_string().contains("shut down"), "{err}");
    });
}

/// Toward a dead peer, `shutdown` fails after the linger bound, naming
/// the peer and how many messages are lost.
#[test]
fn shutdown_toward_a_dead_peer_fails_naming_it_and_the_messages_lost() {
    on_driver(DRIVER, 1, |_| async move {
        let config = datagrams(Some(Duration::from_millis(200)));
        let a = Endpoint::bind_with(LOCAL, critical_reliable(), config)
            .await
            .unwrap();
        let dead = dead_peer();
        let to = dead.local_addr().unwrap();
        for i in 0..3 {
            send_msg(&a, to, 1, i, 500).await.unwrap();
        }
        let err = timeout(Duration::from_secs(5), a.shutdown())
            .await
            .expect("shutdown within 5 s")
            .unwrap_err();
        println!("{err}");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        let text = err.to_string();
        assert!(text.contains(&format!("3 message(s) to {to}")), "{err}");
    });
}

/// Kernel TCP and best-effort endpoints have `shutdown` too: it returns
/// at once, the messages sent before it arrive, later sends fail.
#[test]
fn shutdown_on_tcp_and_best_effort_endpoints_returns_and_the_messages_arrive() {
    on_driver(DRIVER, 1, |driver| async move {
        for qos in [
            Qos::builder().reliable().build(),
            Qos::builder().best_effort().build(),
        ] {
            let a = Endpoint::bind(LOCAL, qos).await.unwrap();
            let b = Endpoint::bind(LOCAL, qos).await.unwrap();
            let what = format!("{driver} {}", a.driver());
            let b_addr = b.local_addr().unwrap();
            for i in 0..10 {
                send_msg(&a, b_addr, 0xa, i, 1000).await.unwrap();
            }
            timeout(Duration::from_secs(5), a.shutdown())
                .await
                .expect("shutdown within 5 s")
                .unwrap();
            for i in 0..10 {
                check(
                    &recv_within(&b, 5, &what).await.unwrap(),
                    0xa,
                    i,
                    1000,
                    &what,
                );
            }
            let err = send_msg(&a, b_addr, 0xa, 10, 10).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{what}: {err}");
        }
    });
}
