//! Reliable datagrams as a QoS transport (`transport::reliable`):
//! insane's reliable message protocol over kernel busy-poll UDP, reached
//! through `Endpoint` with `latency=critical, reliable, resources=poll`
//! and `TransportConfig::prefer` (the policy ranks kernel TCP first on
//! kernel paths: it is faster on loopback), directly over io_uring
//! busy-poll UDP,
//! and over the userspace stack on an in-memory link that loses, reorders
//! and duplicates frames.
//!
//! Specifications checked: the policy chooses kernel TCP, or reliable
//! datagrams when preferred, and `explain()` names the inner path; many messages of random sizes arrive exactly once, in
//! order, intact, both ways; messages up to the maximum arrive and larger
//! ones are refused naming the limit; a receiver that stops receiving
//! holds the sender back (a bounded amount in flight, nothing lost, the
//! sender resumes); a dropped peer makes the next send and receive fail
//! within the idle timeout, naming the peer, and so does a restarted one
//! at its first packet; over a lossy link every
//! message arrives exactly once and in order.

mod common;

use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::messages::{
    Rng, check, count, critical_reliable, fill, recv_within, reliable_pair, send_msg,
};
use common::{on_driver, on_each_driver};
use insane_net::config::Config;
use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::transport::stack::StackUdpTransport;
use insane_net::qos::transport::{Op, ReliableTransport, UdpTransport};
use insane_net::qos::{Endpoint, RxBuf, Transport, TransportConfig, TxBuf};
use insane_net::stack::EthernetAddress;
use insane_net::stack::testing::PairDevice;
use insane_net::stack::testing::host;
use insane_net::stack::testing::lossy::{Impairments, LossyDevice};
use insane_runtime::runtime::Runtime;
use insane_runtime::task::spawn;
use insane_runtime::time::{sleep, timeout};

const LOCAL: &str = "127.0.0.1:0";
/// Messages of 1..64 B per direction without loss, in CI.
const SMALL_MESSAGES: usize = 100_000;
/// Messages of 1 B..1 MiB per direction with loss, in CI.
const LARGE_MESSAGES: usize = 100;
const MIB: usize = 1 << 20;

/// Nothing more arrives within 100 ms.
async fn assert_quiet(ep: &Endpoint, what: &str) {
    if let Ok(m) = timeout(Duration::from_millis(100), ep.recv()).await {
        panic!(
            "{what}: an extra message or error: {:?}",
            m.map(|m| m.len())
        );
    }
}

/// The kernel driver the long tests run on (reliable datagrams work on
/// both; one is enough for the volume tests).
const RELIABLE_DATAGRAMS_DRIVER: &str = "epoll";

/// Reliable datagrams over kernel busy-poll UDP, which the policy ranks
/// after kernel TCP (TCP measured faster on loopback) but an endpoint may
/// prefer.
fn datagrams() -> TransportConfig {
    TransportConfig {
        prefer: Some(Kind::UdpReliable),
        ..Default::default()
    }
}

/// Reliable datagrams whose endpoints abort when dropped (linger zero: no
/// ordered close, nothing more on the wire), as a crashed process's would:
/// for the tests of a peer that dies.
fn dying_datagrams() -> TransportConfig {
    TransportConfig {
        linger: Some(Duration::ZERO),
        ..datagrams()
    }
}

#[test]
fn critical_reliable_polling_endpoints_choose_kernel_tcp_and_reliable_datagrams_when_preferred() {
    on_each_driver(1, |driver| async move {
        // The policy's choice on kernel paths: the core's TCP.
        let tcp = Endpoint::bind(LOCAL, critical_reliable()).await.unwrap();
        println!("{driver}: {}", tcp.explain());
        let (want, name) = if driver == "uring" {
            (Kind::UringTcp, "io_uring TCP")
        } else {
            (Kind::EpollTcp, "epoll TCP")
        };
        assert_eq!(tcp.driver(), want, "{}", tcp.explain());
        assert!(
            tcp.explain().starts_with(&format!(
                "latency=critical, reliable, resources=poll -> {name} (rdma: "
            )),
            "{}",
            tcp.explain()
        );
        // Preferred: reliable datagrams over the core's busy-poll UDP.
        let eps = [
            Endpoint::bind_with(LOCAL, critical_reliable(), datagrams())
                .await
                .unwrap(),
            Endpoint::bind_with_config(LOCAL, critical_reliable(), datagrams(), &Config::default())
                .await
                .unwrap(),
        ];
        let inner = if driver == "uring" {
            "io_uring"
        } else {
            "epoll"
        };
        for ep in &eps {
            let e = ep.explain();
            println!("{driver}: {e}");
            assert_eq!(ep.driver(), Kind::UdpReliable, "{e}");
            assert!(ep.driver().is_reliable() && ep.driver().busy_polls());
            assert!(
                e.starts_with(
                    "latency=critical, reliable, resources=poll -> UDP reliable datagrams (preferred)"
                ),
                "{e}"
            );
            assert!(
                e.contains(&format!(
                    "reliable datagrams over {inner} busy-poll UDP, busy-poll: SO_BUSY_POLL=50us"
                )),
                "{e}"
            );
            assert!(ep.transport().busy_polls());
            assert_eq!(ep.max_payload(), 16 * MIB);
        }
        // And they talk to each other.
        let to = eps[1].local_addr().unwrap();
        send_msg(&eps[0], to, 1, 0, 32).await.unwrap();
        let m = recv_within(&eps[1], 5, driver).await.unwrap();
        check(&m, 1, 0, 32, driver);
        assert_eq!(m.peer(), eps[0].local_addr().unwrap());
    });
}

#[test]
fn ten_thousand_messages_of_random_sizes_arrive_exactly_once_in_order_both_ways() {
    const COUNT: usize = 10_000;
    // Log-uniform from 1 B to 64 KiB, and three of 1 MiB.
    let mut rng = Rng(0x5eed_0000_0000_0016);
    let sizes: Arc<Vec<usize>> = Arc::new(
        (0..COUNT)
            .map(|i| match i {
                0 => 1,
                1 | 4_999 | 9_998 => MIB,
                _ => rng.size(16),
            })
            .collect(),
    );
    let total: usize = sizes.iter().sum();
    println!("{COUNT} messages each way, {total} bytes");
    on_driver(RELIABLE_DATAGRAMS_DRIVER, 1, |driver| {
        let sizes = sizes.clone();
        async move {
            let a = Arc::new(
                Endpoint::bind_with(LOCAL, critical_reliable(), datagrams())
                    .await
                    .unwrap(),
            );
            let b = Arc::new(
                Endpoint::bind_with(LOCAL, critical_reliable(), datagrams())
                    .await
                    .unwrap(),
            );
            assert_eq!(a.driver(), Kind::UdpReliable, "{}", a.explain());
            let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
            let started = Instant::now();
            let senders =
                [(a.clone(), b_addr, 0xa), (b.clone(), a_addr, 0xb)].map(|(ep, to, tag)| {
                    let sizes = sizes.clone();
                    spawn(async move {
                        for (i, &len) in sizes.iter().enumerate() {
                            send_msg(&ep, to, tag, i, len).await.unwrap();
                        }
                    })
                });
            let receivers = [
                (b.clone(), a_addr, 0xa, "a -> b"),
                (a.clone(), b_addr, 0xb, "b -> a"),
            ]
            .map(|(ep, from, tag, what)| {
                let sizes = sizes.clone();
                spawn(async move {
                    for (i, &len) in sizes.iter().enumerate() {
                        let m = recv_within(&ep, 20, what).await.unwrap();
                        assert_eq!(m.peer(), from, "{what}");
                        check(&m, tag, i, len, what);
                    }
                })
            });
            for t in senders.into_iter().chain(receivers) {
                t.await.unwrap();
            }
            println!("{driver}: both ways in {:?}", started.elapsed());
            assert_quiet(&a, "a").await;
            assert_quiet(&b, "b").await;
        }
    });
}

#[test]
fn messages_up_to_the_maximum_arrive_and_larger_ones_are_refused_naming_it() {
    on_driver(RELIABLE_DATAGRAMS_DRIVER, 1, |driver| async move {
        let config = TransportConfig {
            max_message: 4 * MIB,
            ..datagrams()
        };
        let (a, b) = reliable_pair(config).await;
        assert_eq!(a.driver(), Kind::UdpReliable, "{}", a.explain());
        assert_eq!(a.max_payload(), 4 * MIB);
        let to = b.local_addr().unwrap();
        let sizes = [4 * MIB, 1, 3 * MIB + 12_345, 4 * MIB];
        for (i, &len) in sizes.iter().enumerate() {
            send_msg(&a, to, 7, i, len).await.unwrap();
        }
        for (i, &len) in sizes.iter().enumerate() {
            let m = recv_within(&b, 20, driver).await.unwrap();
            check(&m, 7, i, len, driver);
        }
        // One byte more than the maximum: refused, naming the limit.
        let mut buf = TxBuf::unpooled(0, 4 * MIB + 1);
        buf.resize(4 * MIB + 1, 0).unwrap();
        let e = a.send_to(buf, to).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains(&format!("{}", 4 * MIB)), "{e}");
        assert_quiet(&b, driver).await;
    });
}

#[test]
fn a_receiver_that_stops_receiving_holds_the_sender_back_and_loses_nothing() {
    const LEN: usize = 16 * 1024;
    const TOTAL: usize = 2_000;
    on_driver(RELIABLE_DATAGRAMS_DRIVER, 1, |driver| async move {
        // A 1 MiB maximum: the receiver's window is about 1 MiB.
        let config = TransportConfig {
            max_message: MIB,
            rx_buffers: 16,
            ..datagrams()
        };
        let (a, b) = reliable_pair(config).await;
        let a = Arc::new(a);
        assert_eq!(b.driver(), Kind::UdpReliable, "{}", b.explain());
        let to = b.local_addr().unwrap();
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sender = {
            let (a, sent) = (a.clone(), sent.clone());
            spawn(async move {
                for i in 0..TOTAL {
                    send_msg(&a, to, 3, i, LEN).await.unwrap();
                    sent.store(i + 1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        // b does not receive: the sender stalls after a bounded amount.
        let mut last = usize::MAX;
        for _ in 0..100 {
            sleep(Duration::from_millis(100)).await;
            let now = sent.load(std::sync::atomic::Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
        println!("{driver}: the sender stalled after {last} messages");
        assert!(
            (16..1_000).contains(&last),
            "{driver}: {last} messages sent to a receiver that receives nothing"
        );
        // b receives everything: the sender resumes, nothing is lost.
        for i in 0..TOTAL {
            let m = recv_within(&b, 10, driver).await.unwrap();
            check(&m, 3, i, LEN, driver);
        }
        sender.await.unwrap();
        assert_quiet(&b, driver).await;
    });
}

/// Keeps sending to `peer` (gone) every 10 ms until a send fails, and
/// returns that error; fails the test if none does within `limit`.
async fn first_failed_send(
    ep: &Endpoint,
    peer: std::net::SocketAddr,
    limit: Duration,
    driver: &str,
) -> io::Error {
    let since = Instant::now();
    let mut i = 1;
    loop {
        assert!(
            since.elapsed() < limit,
            "{driver}: sends to a dropped peer still succeed after {limit:?}"
        );
        match send_msg(ep, peer, 1, i, 100).await {
            Ok(()) => i += 1,
            Err(e) => return e,
        }
        sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_dropped_peer_fails_the_next_send_and_receive_within_the_idle_timeout_naming_it() {
    on_driver(RELIABLE_DATAGRAMS_DRIVER, 1, |driver| async move {
        let (a, b) = reliable_pair(dying_datagrams()).await;
        assert_eq!(a.driver(), Kind::UdpReliable, "{}", a.explain());
        let b_addr = b.local_addr().unwrap();
        send_msg(&a, b_addr, 1, 0, 100).await.unwrap();
        check(
            &recv_within(&b, 5, driver).await.unwrap(),
            1,
            0,
            100,
            driver,
        );
        drop(b);
        let dropped = Instant::now();

        // a keeps sending to b: within the idle timeout (1 s) a send fails.
        let err = first_failed_send(&a, b_addr, Duration::from_secs(3), driver).await;
        println!("{driver}: after {:?}: {err}", dropped.elapsed());
        assert!(err.to_string().contains(&b_addr.to_string()), "{err}");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        // The receive side says so too.
        let err = recv_within(&a, 1, driver).await.unwrap_err();
        assert!(err.to_string().contains(&b_addr.to_string()), "{err}");
        assert!(err.to_string().contains("timed out"), "{err}");
    });
}

#[test]
fn a_restarted_peer_fails_the_next_receive_and_send_naming_it_then_a_new_connection_works() {
    on_driver(RELIABLE_DATAGRAMS_DRIVER, 1, |driver| async move {
        let (a, b) = reliable_pair(dying_datagrams()).await;
        assert_eq!(b.driver(), Kind::UdpReliable, "{}", b.explain());
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        send_msg(&a, b_addr, 1, 0, 100).await.unwrap();
        check(
            &recv_within(&b, 5, driver).await.unwrap(),
            1,
            0,
            100,
            driver,
        );
        send_msg(&b, a_addr, 2, 0, 100).await.unwrap();
        check(
            &recv_within(&a, 5, driver).await.unwrap(),
            2,
            0,
            100,
            driver,
        );

        // b restarts on the same port (its socket closes when its driver
        // task is gone: retry the bind briefly) and talks to a again.
        drop(b);
        let mut b2 = None;
        for _ in 0..100 {
            if let Ok(ep) = Endpoint::bind_with(b_addr, critical_reliable(), datagrams()).await {
                b2 = Some(ep);
                break;
            }
            sleep(Duration::from_millis(5)).await;
        }
        let b2 = b2.expect("b's port is free again within 500 ms");
        send_msg(&b2, a_addr, 3, 0, 100).await.unwrap();

        // a learns that its connection to b is gone: its next receive and
        // its next send to b fail, naming b.
        let err = recv_within(&a, 2, driver).await.unwrap_err();
        println!("{driver}: recv: {err}");
        assert!(
            err.to_string()
                .contains(&format!("peer {b_addr} restarted")),
            "{err}"
        );
        let err = send_msg(&a, b_addr, 1, 1, 100).await.unwrap_err();
        println!("{driver}: send: {err}");
        assert!(
            err.to_string()
                .contains(&format!("peer {b_addr} restarted")),
            "{err}"
        );
        // The new incarnation's message arrives, and a reaches it again.
        check(
            &recv_within(&a, 5, driver).await.unwrap(),
            3,
            0,
            100,
            driver,
        );
        send_msg(&a, b_addr, 1, 2, 100).await.unwrap();
        check(
            &recv_within(&b2, 5, driver).await.unwrap(),
            1,
            2,
            100,
            driver,
        );
    });
}

// ---- over the userspace stack, on a lossy in-memory link ------------------------

const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

type Lossy = LossyDevice<PairDevice>;

async fn t_send(t: &ReliableTransport, buf: TxBuf, peer: SocketAddr) -> io::Result<()> {
    let mut op = Op::new();
    let mut buf = Some(buf);
    poll_fn(|cx| t.poll_send(cx, &mut buf, Some(peer), &mut op)).await
}

async fn t_recv(t: &ReliableTransport, what: &str) -> io::Result<RxBuf> {
    let mut op = Op::new();
    timeout(
        Duration::from_secs(20),
        poll_fn(|cx| t.poll_recv(cx, &mut op)),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: nothing received within 20 s"))
}

/// Two reliable transports over the stack on a lossy pair link exchange
/// `count` messages of 1 B..2^`max_bits` B each way; `seed` makes the
/// faults reproducible. Besides `loss`, 1 % of frames are duplicated, 2 %
/// reordered and 0.1 % corrupted (when `loss` is 0, none are).
fn lossy_link_delivers_everything(loss: f64, seed: u64, count: usize, max_bits: u64) {
    let rt = Runtime::builder().cores(1).build().unwrap();
    rt.block_on(async move {
        let cfg = TransportConfig::default();
        let (a_dev, b_dev) = PairDevice::pair(MAC_A, MAC_B, 1500);
        let impair = if loss == 0.0 {
            Impairments::default()
        } else {
            Impairments {
                loss,
                duplicate: 0.01,
                reorder: 0.02,
                reorder_depth: 4,
                corrupt: 0.001,
            }
        };
        let a_dev = LossyDevice::new(a_dev, impair, seed);
        let b_dev = LossyDevice::new(b_dev, impair, seed ^ 0xffff);
        let key = format!("lossy {seed}");
        let a_stack =
            StackUdpTransport::<Lossy>::bind(&format!("{key} a"), 5000, Kind::XdpUdp, &cfg, || {
                Ok((host(a_dev, IP_A, (IP_B, MAC_B)), None))
            })
            .unwrap();
        let b_stack =
            StackUdpTransport::<Lossy>::bind(&format!("{key} b"), 6000, Kind::XdpUdp, &cfg, || {
                Ok((host(b_dev, IP_B, (IP_A, MAC_A)), None))
            })
            .unwrap();
        assert!(
            a_stack.describe().contains("impaired"),
            "{}",
            a_stack.describe()
        );
        let a =
            Arc::new(ReliableTransport::new(Arc::new(a_stack), Kind::XdpReliable, &cfg).unwrap());
        let b =
            Arc::new(ReliableTransport::new(Arc::new(b_stack), Kind::XdpReliable, &cfg).unwrap());
        assert!(a.busy_polls(), "over a busy-polling stack, it busy-polls");
        exchange(a, b, count, max_bits, seed, &format!("loss {loss}")).await;
    });
}

/// `a` and `b` send each other `count` messages of random sizes from 1 B
/// to 2^`max_bits` B (log-uniform) at once; each receives every message
/// of the other exactly once, in order, intact, and nothing more.
async fn exchange(
    a: Arc<ReliableTransport>,
    b: Arc<ReliableTransport>,
    count: usize,
    max_bits: u64,
    seed: u64,
    what: &str,
) {
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let mut rng = Rng(seed | 1);
    let sizes: Arc<Vec<usize>> = Arc::new((0..count).map(|_| rng.size(max_bits)).collect());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (from, to, to_addr, from_addr, tag) in [
        (a.clone(), b.clone(), b_addr, a_addr, 0xa),
        (b.clone(), a.clone(), a_addr, b_addr, 0xb),
    ] {
        let s = sizes.clone();
        tasks.push(spawn(async move {
            for (i, &len) in s.iter().enumerate() {
                let mut buf = poll_fn(|cx| from.poll_buffer(cx)).await;
                buf.resize(len, 0).unwrap();
                fill(&mut buf, tag, i);
                if let Err(e) = t_send(&from, buf, to_addr).await {
                    panic!("send {i}: {e}; {}", from.diagnostics().unwrap_or_default());
                }
            }
        }));
        let (s, what) = (sizes.clone(), what.to_string());
        tasks.push(spawn(async move {
            for (i, &len) in s.iter().enumerate() {
                let m = t_recv(&to, &what).await.unwrap();
                assert_eq!(m.peer(), from_addr, "{what}");
                check(&m, tag, i, len, &what);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "{what}: {count} messages each way in {:?}; a: {}",
        started.elapsed(),
        a.diagnostics().unwrap_or_default()
    );
    for t in [&a, &b] {
        let mut op = Op::new();
        assert!(
            timeout(
                Duration::from_millis(100),
                poll_fn(|cx| t.poll_recv(cx, &mut op))
            )
            .await
            .is_err(),
            "{what}: nothing more"
        );
    }
}

// Counts: CI's (debug build, a few seconds each) unless
// `INSANE_RELIABLE_MESSAGES` sets the long run's, e.g. 100000.

#[test]
fn over_the_stack_without_loss_many_small_messages_arrive_once_in_order() {
    lossy_link_delivers_everything(0.0, 0x1055_0000, count(SMALL_MESSAGES), 6);
}

#[test]
fn over_the_stack_with_one_percent_loss_reordering_and_duplicates_every_message_arrives_once_in_order()
 {
    lossy_link_delivers_everything(0.01, 0x1055_0001, count(2_000), 14);
}

#[test]
fn over_the_stack_with_five_percent_loss_reordering_and_duplicates_every_message_arrives_once_in_order()
 {
    lossy_link_delivers_everything(0.05, 0x1055_0005, count(2_000), 14);
}

#[test]
fn over_the_stack_with_one_percent_loss_reordering_and_duplicates_messages_up_to_1_mib_arrive_once_in_order()
 {
    lossy_link_delivers_everything(0.01, 0x1055_1001, count(LARGE_MESSAGES), 20);
}

#[test]
fn over_the_stack_with_five_percent_loss_reordering_and_duplicates_messages_up_to_1_mib_arrive_once_in_order()
 {
    lossy_link_delivers_everything(0.05, 0x1055_1005, count(LARGE_MESSAGES), 20);
}

#[test]
fn over_io_uring_busy_poll_udp_messages_arrive_exactly_once_in_order_both_ways() {
    on_driver("uring", 1, |driver| async move {
        let cfg = TransportConfig::default();
        let bind = || {
            let udp =
                UdpTransport::bind(LOCAL.parse().unwrap(), Kind::UringUdpBusyPoll, &cfg).unwrap();
            Arc::new(ReliableTransport::new(Arc::new(udp), Kind::UdpReliable, &cfg).unwrap())
        };
        let (a, b) = (bind(), bind());
        assert!(a.busy_polls(), "over busy-poll UDP, it busy-polls");
        assert_eq!(a.inner().kind(), Kind::UringUdpBusyPoll);
        exchange(a, b, 2_000, 14, 0x0123_4567, driver).await;
    });
}

/// Units of cooperative budget a task gets per poll.
const BUDGET_UNITS: u64 = 128;

/// A reliable endpoint's send spends one unit of the task's cooperative
/// budget per message, as every endpoint's does (the transport spends it;
/// the endpoint does not spend a second one): a sender whose messages are
/// all queued at once yields to its core's other tasks after about one
/// budget of sends, not half of one.
#[test]
fn a_reliable_sender_spends_one_unit_of_budget_per_message() {
    on_each_driver(1, |driver| async move {
        let (a, b) = reliable_pair(datagrams()).await;
        assert_eq!(a.driver(), Kind::UdpReliable, "{}", a.explain());
        let to = b.local_addr().unwrap();
        let ran = std::rc::Rc::new(std::cell::Cell::new(false));
        let flag = ran.clone();
        let other = insane_runtime::task::spawn_local(async move { flag.set(true) });
        let mut sent = 0_u64;
        while !ran.get() && sent < 4 * BUDGET_UNITS {
            let mut buf = a.buffer().await;
            buf.extend_from_slice(&sent.to_le_bytes()).unwrap();
            a.send_to(buf, to).await.unwrap();
            sent += 1;
        }
        assert!(ran.get(), "{driver}: the other task never ran");
        // Two units per message would yield after BUDGET_UNITS / 2 sends.
        assert!(
            (BUDGET_UNITS * 3 / 4..=BUDGET_UNITS + 1).contains(&sent),
            "{driver}: yielded after {sent} sends (one unit each: about {BUDGET_UNITS})"
        );
        other.await.unwrap();
        for i in 0..sent {
            let got = recv_within(&b, 5, driver).await.unwrap();
            assert_eq!(got[..], i.to_le_bytes(), "{driver}: message {i}");
        }
    });
}

/// `TransportConfig::peer_timeout` bounds how long a dead peer goes
/// unnoticed: with 100 ms, a send to a dropped peer fails well before the
/// 1 s default, naming it; a timeout under 10 ms is refused at bind.
#[test]
fn the_peer_timeout_is_configurable() {
    on_driver(RELIABLE_DATAGRAMS_DRIVER, 1, |driver| async move {
        let config = TransportConfig {
            peer_timeout: Duration::from_millis(100),
            ..dying_datagrams()
        };
        let (a, b) = reliable_pair(config).await;
        let b_addr = b.local_addr().unwrap();
        send_msg(&a, b_addr, 1, 0, 100).await.unwrap();
        recv_within(&b, 5, driver).await.unwrap();
        drop(b);
        // Well under the 1 s default.
        let err = first_failed_send(&a, b_addr, Duration::from_millis(900), driver).await;
        assert!(err.to_string().contains(&b_addr.to_string()), "{err}");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");

        let too_short = TransportConfig {
            peer_timeout: Duration::from_millis(1),
            ..datagrams()
        };
        let err = Endpoint::bind_with(LOCAL, critical_reliable(), too_short)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("peer_timeout"), "{err}");
    });
}
