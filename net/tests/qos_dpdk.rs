//! QoS endpoints and the DPDK driver inside one process (feature `dpdk`):
//!
//! * a `latency=critical, best-effort` endpoint bound to the `[dpdk]`
//!   address gets DPDK UDP on the section's port (`net_ring`), and
//!   `explain()` names the PMD; a second endpoint on the same core shares
//!   the port's stack; an endpoint on another core meanwhile binds on
//!   that stack too (software dispatch: one polling core per port) and
//!   says so; the port's queue is reused by
//!   a later runtime after the endpoints are dropped; device send buffers
//!   return to the mempool;
//! * a `[dpdk]` section whose port does not exist: io_uring busy-poll UDP,
//!   `explain()` naming the DPDK failure;
//! * normal and `resources=low` QoS never use DPDK, nor does an endpoint
//!   bound to another address (with the reason);
//! * an endpoint on one end of a `net_ring` pair and a raw stack on the
//!   other exchange checked datagrams without a copy or an mbuf leak,
//!   also through an endpoint bound and used on another core (served by
//!   the polling core: software dispatch).
//!
//! All tests share one EAL (same arguments; `Eal::init` returns the first
//! result). Under `CI=true` a build without libdpdk fails; otherwise the
//! tests are skipped with the reason. A `[dpdk]` section with bad EAL
//! arguments is in `qos_dpdk_eal.rs` (a failed EAL stays failed in its
//! process); endpoint ↔ endpoint traffic over `net_memif` between two
//! processes in `qos_dpdk_memif.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use insane_net::config::Config;
use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::{Endpoint, Qos, TransportConfig};
use insane_runtime::runtime::Runtime;
use insane_runtime::task::spawn_on;

mod common;

// One CI rule and EAL argument list for every DPDK test binary.
#[path = "../../drivers/dpdk/tests/common/mod.rs"]
mod dpdk_common;
use dpdk_common::require_dpdk;

/// Tests that use port 0 run one at a time (it has one polling core).
static PORT0: Mutex<()> = Mutex::new(());

fn eal_args() -> Vec<String> {
    dpdk_common::eal_args("qos-ring", 0, &["--vdev=net_ring0".to_string()])
}

fn dpdk_config(port: u16, address: &str) -> Config {
    common::dpdk_config(&eal_args(), port, address, 1)
}

fn runtime(cores: usize) -> Runtime {
    common::uring_runtime(cores)
}

fn critical() -> Qos {
    Qos::builder().critical().best_effort().poll().build()
}

fn lock_port0() -> std::sync::MutexGuard<'static, ()> {
    PORT0.lock().unwrap_or_else(|p| p.into_inner())
}

/// The payload copy counter is the process's: tests that assert it does
/// not move and tests that copy (reliable messages viewed contiguously)
/// run one at a time.
static COPY_COUNTER: Mutex<()> = Mutex::new(());

fn lock_copy_counter() -> std::sync::MutexGuard<'static, ()> {
    COPY_COUNTER.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn critical_endpoint_on_the_dpdk_address_uses_dpdk_and_names_the_pmd() {
    if !require_dpdk("critical_endpoint_on_the_dpdk_address_uses_dpdk") {
        return;
    }
    let _port0 = lock_port0();
    let eal = insane_net::qos::transport::dpdk::init_eal(&eal_args()).expect("EAL");
    let port = eal.port_by_name("net_ring0").expect("net_ring0");
    let config = dpdk_config(port, "10.77.0.1/24");
    let rt = runtime(2);
    let c = config.clone();
    let initial_free = rt.block_on(async move {
        let ep = Endpoint::bind_with_config(
            "10.77.0.1:7500",
            critical(),
            TransportConfig::default(),
            &c,
        )
        .await
        .expect("bind on the [dpdk] address");
        let explain = ep.explain().to_string();
        println!("{explain}");
        assert_eq!(ep.driver(), Kind::DpdkUdp, "{explain}");
        assert!(
            explain.starts_with("latency=critical, best-effort, resources=poll -> DPDK UDP; "),
            "{explain}"
        );
        assert!(explain.contains("PMD net_ring"), "{explain}");
        assert!(
            explain.contains(&format!("DPDK port {port} (net_ring0")),
            "{explain}"
        );
        assert_eq!(ep.local_addr().unwrap(), "10.77.0.1:7500".parse().unwrap());
        assert_eq!(
            ep.max_payload(),
            1472,
            "MTU 1500 minus IPv4 and UDP headers"
        );

        // Device send buffers are mbufs of the port's pool.
        let pool = insane_net::qos::transport::dpdk::port_pool(port)
            .expect("the endpoint opened the port");
        let free = pool.avail_count();
        let buf = ep.buffer().await;
        assert_eq!(buf.capacity(), 1472);
        assert_eq!(pool.avail_count(), free - 1, "the TxBuf holds an mbuf");
        drop(buf);
        assert_eq!(
            pool.avail_count(),
            free,
            "the mbuf went back at once (home core)"
        );

        // A second endpoint on this core shares the port's stack.
        let second =
            Endpoint::bind_with_config("10.77.0.1:0", critical(), TransportConfig::default(), &c)
                .await
                .expect("second endpoint");
        assert_eq!(second.driver(), Kind::DpdkUdp, "{}", second.explain());
        assert_ne!(second.local_addr().unwrap().port(), 7500);

        // A critical reliable flow runs insane's reliable datagrams over
        // the same stack.
        let reliable_qos = Qos::builder().critical().reliable().poll().build();
        let reliable =
            Endpoint::bind_with_config("10.77.0.1:0", reliable_qos, TransportConfig::default(), &c)
                .await
                .expect("reliable endpoint");
        let explain = reliable.explain().to_string();
        println!("{explain}");
        assert_eq!(reliable.driver(), Kind::DpdkReliable, "{explain}");
        assert!(
            explain.starts_with(
                "latency=critical, reliable, resources=poll -> DPDK reliable datagrams (rdma: "
            ) && explain.contains("; reliable datagrams over DPDK UDP, "),
            "{explain}"
        );

        // Another core binds on this core's host (software dispatch): the
        // queue is not opened twice, and explain() says who serves it.
        let c2 = c.clone();
        let other = spawn_on(1, async move {
            Endpoint::bind_with_config(
                "10.77.0.1:7501",
                critical(),
                TransportConfig::default(),
                &c2,
            )
            .await
            .map(|e| e.explain().to_string())
        })
        .await
        .expect("task on core 1");
        let explain = other.expect("core 1 binds through core 0's stack");
        println!("{explain}");
        assert!(
            explain.contains("-> DPDK UDP; ")
                && explain.contains("bound from core 1, served by core 0"),
            "{explain}"
        );
        drop((ep, second, reliable));
        pool.avail_count()
    });
    drop(rt);

    // The queue went back to the port: a new runtime's endpoint takes it.
    let rt = runtime(1);
    rt.block_on(async move {
        let ep = Endpoint::bind_with_config(
            "10.77.0.1:7500",
            critical(),
            TransportConfig::default(),
            &config,
        )
        .await
        .expect("bind again");
        assert_eq!(ep.driver(), Kind::DpdkUdp, "{}", ep.explain());
        let pool = insane_net::qos::transport::dpdk::port_pool(port).unwrap();
        assert_eq!(
            pool.avail_count(),
            initial_free,
            "no mbuf leaked across hosts"
        );
    });
}

#[test]
fn missing_dpdk_port_falls_back_to_io_uring_busy_poll_naming_why() {
    if !require_dpdk("missing_dpdk_port_falls_back") {
        return;
    }
    insane_net::qos::transport::dpdk::init_eal(&eal_args()).expect("EAL");
    let config = dpdk_config(9, "127.0.0.1/8");
    let rt = runtime(1);
    rt.block_on(async move {
        let ep = Endpoint::bind_with_config(
            "127.0.0.1:0",
            critical(),
            TransportConfig::default(),
            &config,
        )
        .await
        .expect("falls back to the kernel");
        let explain = ep.explain();
        println!("{explain}");
        assert_eq!(ep.driver(), Kind::UringUdpBusyPoll, "{explain}");
        assert!(
            explain.contains(
                "-> io_uring busy-poll UDP (dpdk: opening DPDK port 9: DPDK port 9 does not exist"
            ),
            "{explain}"
        );
        // Still a working endpoint: a datagram to itself.
        let mut buf = ep.buffer().await;
        buf.extend_from_slice(b"fallback").unwrap();
        ep.send_to(buf, ep.local_addr().unwrap()).await.unwrap();
        let got = insane_runtime::time::timeout(Duration::from_secs(5), ep.recv())
            .await
            .expect("datagram to itself")
            .unwrap();
        assert_eq!(&got[..], b"fallback");
    });
    assert!(
        insane_net::qos::transport::dpdk::port_pool(9).is_none(),
        "port 9 was never opened"
    );
}

#[test]
fn normal_low_and_other_address_endpoints_never_use_dpdk() {
    if !require_dpdk("normal_low_and_other_address_endpoints_never_use_dpdk") {
        return;
    }
    insane_net::qos::transport::dpdk::init_eal(&eal_args()).expect("EAL");
    // Port 0 (which exists) at 127.0.0.1: a QoS that DPDK does not serve
    // must not open it.
    let _port0 = lock_port0();
    let opened_before = insane_net::qos::transport::dpdk::port_pool(0).map(|p| p.avail_count());
    let config = dpdk_config(0, "127.0.0.1/8");
    let rt = runtime(1);
    rt.block_on(async move {
        let normal = Qos::builder().best_effort().build();
        let ep = Endpoint::bind_with_config("127.0.0.1:0", normal, TransportConfig::default(), &config)
            .await
            .unwrap();
        println!("{}", ep.explain());
        assert_eq!(ep.driver(), Kind::UringUdp, "{}", ep.explain());
        assert_eq!(
            ep.explain(),
            "latency=normal, best-effort, resources=low -> io_uring UDP"
        );

        let low = Qos::builder().critical().best_effort().low().build();
        let ep = Endpoint::bind_with_config("127.0.0.1:0", low, TransportConfig::default(), &config)
            .await
            .unwrap();
        assert_eq!(ep.driver(), Kind::UringUdp, "{}", ep.explain());

        // (A critical reliable polling flow on the [dpdk] address does use
        // DPDK: reliable datagrams, see the first test.)

        // Critical best effort, but not on the [dpdk] address.
        let elsewhere = dpdk_config(0, "10.77.9.1/24");
        let ep = Endpoint::bind_with_config("127.0.0.1:0", critical(), TransportConfig::default(), &elsewhere)
            .await
            .unwrap();
        println!("{}", ep.explain());
        assert_eq!(ep.driver(), Kind::UringUdpBusyPoll, "{}", ep.explain());
        assert!(
            ep.explain().contains(
                "(dpdk: 127.0.0.1 is not 10.77.9.1, the stack's address on DPDK port 0 ([dpdk] address)"
            ),
            "{}",
            ep.explain()
        );
    });
    assert_eq!(
        insane_net::qos::transport::dpdk::port_pool(0).map(|p| p.avail_count()),
        opened_before,
        "no endpoint of these QoS opened (or used) the DPDK port"
    );
}

/// Payload `i`: 1..=1472 bytes; the first 8 (when there is room) hold `i`.
fn payload(i: usize) -> Vec<u8> {
    let len = 1 + (i * 7919) % 1472;
    let mut p: Vec<u8> = (0..len).map(|j| (i * 5 + j * 13) as u8).collect();
    let n = len.min(8);
    p[..n].copy_from_slice(&(i as u64).to_le_bytes()[..n]);
    p
}

/// A raw stack on one queue of the far end of a ring pair, and its echo
/// endpoint.
type Peer = (
    insane_net::stack::Interface<insane_net::stack::dpdk::DpdkDevice>,
    insane_net::stack::EndpointId,
);

/// The far end of a ring pair for the tests below: raw stacks (one per
/// queue of `port`, one host) echoing every datagram to their endpoint on
/// a thread of their own, until `stop` (at most 120 s). Returns the echo
/// count, the stacks and the port (which stays open until then).
fn echo_peers(
    mut peers: Vec<Peer>,
    port: insane_dpdk::Port,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<Peer>, insane_dpdk::Port)> {
    use insane_net::stack::TxFrame;
    use std::sync::atomic::Ordering;
    use std::time::Instant;
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut echoed = 0usize;
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(120) {
            let now = Instant::now();
            let mut busy = false;
            for (peer, ep) in &mut peers {
                busy |= peer.poll(now) > 0;
                while let Some(d) = peer.recv_from(*ep) {
                    let mut r = peer.alloc_tx().expect("peer mbufs");
                    assert!(TxFrame::extend_from_slice(&mut r, &d));
                    let to = d.peer();
                    drop(d);
                    peer.send_to(*ep, to, r, now).expect("echo");
                    echoed += 1;
                    busy = true;
                }
                peer.flush();
            }
            if !busy {
                std::thread::yield_now();
            }
        }
        (echoed, peers, port)
    })
}

/// A QoS endpoint on one end of a `net_ring` pair and a raw stack
/// (echoing, on a thread of its own) on the other: checked datagrams of
/// 1..=1472 bytes in order, every 8th sent from the other core (through
/// the home core), received buffers are mbufs (no copy), half of them
/// dropped on the other core; both ports' mempools back to their counts
/// before the traffic (the endpoint's transmit mbufs freed by the peer,
/// the peer's mbufs freed by the endpoint's receive buffers).
#[test]
fn endpoint_and_a_raw_stack_over_a_ring_pair_exchange_without_copies_or_leaks() {
    use insane_dpdk::{Port, PortConfig, ring_pair};
    use insane_net::stack::dpdk::DpdkDevice;
    use insane_net::stack::{EthernetAddress, Interface};
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};

    if !require_dpdk("endpoint_and_a_raw_stack_over_a_ring_pair") {
        return;
    }
    insane_net::qos::transport::dpdk::init_eal(&eal_args()).expect("EAL");
    let (a, b) = ring_pair(1024).expect("ring pair");
    let mut port_b = Port::open(b, &PortConfig::default()).expect("port b");
    let device = DpdkDevice::with_mac(
        port_b.take_queue(0).unwrap(),
        EthernetAddress([2, 0, 0, 0, 0x78, 2]),
    )
    .unwrap();
    let pool_b = device.queue().pool().clone();
    let mut peer = Interface::new(
        device,
        insane_net::stack::InterfaceConfig::new("10.78.0.2/24".parse().unwrap()),
    );
    let peer_ep = peer.bind(7701).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let echo = echo_peers(vec![(peer, peer_ep)], port_b, stop.clone());

    const N: usize = 5000;
    let config = dpdk_config(a, "10.78.0.1/24");
    let rt = runtime(2);
    let _copies_counted = lock_copy_counter();
    let copies = insane_net::qos::debug_copy_count();
    let pool_b2 = pool_b.clone();
    rt.block_on(async move {
        let ep = Endpoint::bind_with_config(
            "10.78.0.1:7700",
            critical(),
            TransportConfig::default(),
            &config,
        )
        .await
        .expect("bind");
        assert_eq!(ep.driver(), Kind::DpdkUdp, "{}", ep.explain());
        let ep = Arc::new(ep);
        let pool_a = insane_net::qos::transport::dpdk::port_pool(a).expect("port a opened");
        let (free_a, used_b) = (pool_a.avail_count(), pool_b2.in_use_count());
        let to: SocketAddr = "10.78.0.2:7701".parse().unwrap();
        let (mut sent, mut got, mut device_frames) = (0usize, 0usize, 0usize);
        while got < N {
            // The first datagram waits for ARP alone; then a window.
            let window = if got == 0 { 1 } else { 32 };
            while sent < N && sent - got < window {
                let p = payload(sent);
                if sent % 8 == 7 {
                    let ep = ep.clone();
                    spawn_on(1, async move {
                        let mut buf = ep.buffer().await;
                        buf.extend_from_slice(&p).unwrap();
                        ep.send_to(buf, to).await
                    })
                    .await
                    .expect("task on core 1")
                    .unwrap_or_else(|e| panic!("send {sent} from core 1: {e}"));
                } else {
                    let mut buf = ep.buffer().await;
                    buf.extend_from_slice(&p).unwrap();
                    ep.send_to(buf, to)
                        .await
                        .unwrap_or_else(|e| panic!("send {sent}: {e}"));
                }
                sent += 1;
            }
            let msg = insane_runtime::time::timeout(Duration::from_secs(10), ep.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "echo {got} of {N} missing ({sent} sent): {:?}",
                        ep.transport().diagnostics()
                    )
                })
                .unwrap();
            assert_eq!(msg.peer(), to);
            assert!(
                msg[..] == payload(got)[..],
                "echo {got}: {} bytes, corrupt or out of order",
                msg.len()
            );
            if msg.is_device_frame() {
                device_frames += 1;
            }
            if got % 2 == 0 {
                spawn_on(1, async move { drop(msg) });
            }
            got += 1;
        }
        assert_eq!(device_frames, N, "every RxBuf holds its mbuf");

        // Software dispatch: an endpoint bound on core 1 while core 0
        // polls the port's only queue is served by core 0's stack; used on
        // core 1, its datagrams cross cores once each way, checked.
        let c1 = config.clone();
        let dispatched = spawn_on(1, async move {
            let ep1 = Endpoint::bind_with_config(
                "10.78.0.1:7702",
                critical(),
                TransportConfig::default(),
                &c1,
            )
            .await
            .expect("bind on core 1");
            let explain = ep1.explain().to_string();
            for i in 0..DISPATCHED {
                let p = payload(i);
                let mut buf = ep1.buffer().await;
                buf.extend_from_slice(&p).unwrap();
                ep1.send_to(buf, to)
                    .await
                    .unwrap_or_else(|e| panic!("dispatched send {i}: {e}"));
                let msg = insane_runtime::time::timeout(Duration::from_secs(10), ep1.recv())
                    .await
                    .unwrap_or_else(|_| panic!("dispatched echo {i} missing"))
                    .unwrap();
                assert_eq!(msg.peer(), to);
                assert!(msg[..] == p[..], "dispatched echo {i} corrupt");
                assert!(msg.is_device_frame(), "the mbuf itself, handed over");
            }
            (ep1.driver(), explain)
        })
        .await
        .expect("task on core 1");
        println!("{}", dispatched.1);
        assert_eq!(dispatched.0, Kind::DpdkUdp, "{}", dispatched.1);
        assert!(
            dispatched
                .1
                .contains("bound from core 1, served by core 0 (software dispatch"),
            "{}",
            dispatched.1
        );

        // Bounded wait for the frames dropped on core 1 to come home.
        for _ in 0..2000 {
            if pool_a.avail_count() == free_a && pool_b2.in_use_count() == used_b {
                break;
            }
            insane_runtime::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            pool_a.avail_count(),
            free_a,
            "the endpoint's pool lost mbufs"
        );
        assert_eq!(
            pool_b2.in_use_count(),
            used_b,
            "the peer's mbufs held by the endpoint's RxBufs came back"
        );
    });
    assert_eq!(
        insane_net::qos::debug_copy_count(),
        copies,
        "no payload copy on the DPDK receive path"
    );
    stop.store(true, Ordering::Relaxed);
    let (echoed, _peer, _port) = echo.join().expect("echo thread");
    assert_eq!(echoed, N + DISPATCHED);
}

/// Datagrams exchanged through the endpoint bound on core 1.
const DISPATCHED: usize = 500;

/// A port with two queue pairs (`[dpdk] queues = 2`, a `net_ring` pair
/// whose sender chooses the receiver's queue, like memif or tap peers):
/// an endpoint bound on core 0 and one on core 1 each get a queue of
/// their own (no software dispatch), and the peer — two stacks on its two
/// queues, one host — echoes from port 7801 on queue 0 and from 7802 on
/// queue 1. Each endpoint sends to both: half its echoes arrive on the
/// other core's queue and are handed over (counted), every one checked,
/// exactly once. When the core-1 endpoint goes, core 0 polls queue 1
/// again: echoes still arriving there are not lost. Every mbuf of every
/// pool comes back, also those of received buffers kept past the
/// runtime's end and dropped on another thread.
#[test]
fn a_multi_queue_port_gives_each_core_its_own_queue_and_hands_over_what_arrives_elsewhere() {
    use insane_dpdk::{Port, PortConfig, ring_pair_with_queues};
    use insane_net::stack::dpdk::DpdkDevice;
    use insane_net::stack::group::QueueGroup;
    use insane_net::stack::{EthernetAddress, Interface};
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};

    if !require_dpdk("a_multi_queue_port_gives_each_core_its_own_queue") {
        return;
    }
    insane_net::qos::transport::dpdk::init_eal(&eal_args()).expect("EAL");
    let (a, b) = ring_pair_with_queues(1024, 2).expect("ring pair with 2 queues");
    let mut port_b = Port::open(
        b,
        &PortConfig {
            queues: 2,
            ..PortConfig::default()
        },
    )
    .expect("port b");
    let group = QueueGroup::new(2);
    let mut peers: Vec<_> = (0..2)
        .map(|q| {
            let device = DpdkDevice::with_mac(
                port_b.take_queue(q).unwrap(),
                EthernetAddress([2, 0, 0, 0, 0x79, 2]),
            )
            .unwrap();
            Interface::in_group(
                device,
                insane_net::stack::InterfaceConfig::new("10.79.0.2/24".parse().unwrap()),
                group.join().unwrap(),
            )
        })
        .collect();
    let peer_eps = [peers[0].bind(7801).unwrap(), peers[1].bind(7802).unwrap()];
    let pools_b: Vec<_> = peers
        .iter()
        .map(|p| p.device().queue().pool().clone())
        .collect();
    let used_b: Vec<_> = pools_b.iter().map(|p| p.in_use_count()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let echo = echo_peers(
        peers.into_iter().zip(peer_eps).collect(),
        port_b,
        stop.clone(),
    );

    const N: u64 = 2000;
    const AFTER: u64 = 300;
    const KEPT: u64 = 10;
    let mut config = dpdk_config(a, "10.79.0.1/24");
    config.dpdk.as_mut().unwrap().queues = 2;
    let rt = runtime(2);
    let _copies_counted = lock_copy_counter();
    let copies = insane_net::qos::debug_copy_count();
    let targets: [SocketAddr; 2] = [
        "10.79.0.2:7801".parse().unwrap(),
        "10.79.0.2:7802".parse().unwrap(),
    ];
    // Ping-pongs from endpoint `tag` to both peer ports, every echo
    // checked.
    async fn exchange(ep: &Endpoint, tag: u8, n: u64, targets: [SocketAddr; 2]) {
        common::echoes::ping_pong(ep, tag, n, &targets)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Datagrams the endpoint's core handed over to the other core so far.
    let handed_over = |ep: &Endpoint| {
        dpdk_common::forwarded_of(&ep.transport().diagnostics().expect("on the home core"))
            .expect("rx counters")
    };
    let (pools_a, free_a, kept) = rt.block_on(async move {
        let ep0 = Endpoint::bind_with_config("10.79.0.1:7800", critical(), TransportConfig::default(), &config)
            .await
            .expect("bind on core 0");
        assert_eq!(ep0.driver(), Kind::DpdkUdp, "{}", ep0.explain());
        let pools_a = insane_net::qos::transport::dpdk::port_pools(a);
        assert_eq!(pools_a.len(), 2, "a pool per queue");
        let free_a: Vec<_> = pools_a.iter().map(|p| p.avail_count()).collect();
        let c1 = config.clone();
        let bound = Arc::new(AtomicBool::new(false));
        let bound1 = bound.clone();
        let done0 = Arc::new(AtomicBool::new(false));
        let done0_seen = done0.clone();
        let on_core_1 = spawn_on(1, async move {
            let ep1 = Endpoint::bind_with_config("10.79.0.1:7810", critical(), TransportConfig::default(), &c1)
                .await
                .expect("bind on core 1");
            let explain = ep1.explain().to_string();
            bound1.store(true, Ordering::Release);
            exchange(&ep1, 1, N, targets).await;
            // Kept until core 0 is done: its echoes from queue 1 are
            // handed over by this core meanwhile.
            for _ in 0..30_000 {
                if done0_seen.load(Ordering::Acquire) {
                    break;
                }
                insane_runtime::time::sleep(Duration::from_millis(1)).await;
            }
            (explain, handed_over(&ep1))
        });
        // Core 0's exchange starts once core 1 has its queue (its bind
        // asks core 0, which keeps polling meanwhile).
        for _ in 0..5000 {
            if bound.load(Ordering::Acquire) {
                break;
            }
            insane_runtime::time::sleep(Duration::from_millis(1)).await;
        }
        let explain0_before = ep0.explain().to_string();
        exchange(&ep0, 0, N, targets).await;
        done0.store(true, Ordering::Release);
        let (explain1, by_core1) = on_core_1.await.expect("task on core 1");
        let by_core0 = handed_over(&ep0);
        let explain0 = ep0.explain().to_string();
        println!("core 0: {explain0}\ncore 1: {explain1}\nhanded over by core 0: {by_core0}, by core 1: {by_core1}");
        assert!(explain0_before.contains("queue 0 of 2"), "{explain0_before}");
        assert!(explain1.contains("queue 1 of 2"), "{explain1}");
        assert!(!explain1.contains("software dispatch"), "its own queue: {explain1}");
        // net_ring has no rte_flow: the reason is given, and stray
        // datagrams are handed over instead.
        assert!(
            explain1.contains("no flow steering (rte_flow rule UDP 10.79.0.1:7810 -> queue 1")
                && explain1.contains("Function not implemented"),
            "{explain1}"
        );
        // The peer's port 7802 answers on queue 1 (core 1's), 7801 on
        // queue 0: half of each endpoint's echoes cross.
        assert_eq!(by_core0, N / 2, "echoes from 7801 to core 1's endpoint");
        assert_eq!(by_core1, N / 2, "echoes from 7802 to core 0's endpoint");

        // Core 1's host is gone with its endpoint: queue 1 is core 0's
        // again, and echoes from port 7802 still arrive.
        exchange(&ep0, 0, N + AFTER, targets).await;
        assert_eq!(handed_over(&ep0), by_core0, "nobody to hand over to");
        for _ in 0..2000 {
            if pools_a.iter().map(|p| p.avail_count()).eq(free_a.iter().copied()) {
                break;
            }
            insane_runtime::time::sleep(Duration::from_millis(1)).await;
        }
        let now: Vec<_> = pools_a.iter().map(|p| p.avail_count()).collect();
        assert_eq!(now, free_a, "every queue's pool got its mbufs back");

        // Received buffers that outlive the runtime: dropped afterwards,
        // on another thread, their mbufs still go back to their pools.
        let mut kept = Vec::new();
        for i in 0..KEPT {
            let mut buf = ep0.buffer().await;
            buf.extend_from_slice(&common::echoes::tagged(0, i)).unwrap();
            ep0.send_to(buf, "10.79.0.2:7801".parse().unwrap())
                .await
                .unwrap();
            let msg = insane_runtime::time::timeout(Duration::from_secs(10), ep0.recv())
                .await
                .expect("echo to keep")
                .unwrap();
            assert!(msg.is_device_frame());
            kept.push(msg);
        }
        (pools_a, free_a, kept)
    });
    drop(rt);
    // net_ring hands the sender's mbufs over: the kept buffers hold the
    // peer's.
    let in_use_b = || -> u32 { pools_b.iter().map(|p| p.in_use_count()).sum() };
    let used_b_total: u32 = used_b.iter().sum();
    assert_eq!(
        u64::from(in_use_b() - used_b_total),
        KEPT,
        "the kept buffers hold their mbufs"
    );
    // On a thread that was never a core (core 0 ran on this one), half
    // first: the other half keeps their (stopped) home alive, and the
    // first half's mbufs are back at once all the same.
    let mut kept = kept;
    let rest = kept.split_off(kept.len() / 2);
    std::thread::spawn(move || drop(kept)).join().unwrap();
    assert_eq!(
        u64::from(in_use_b() - used_b_total),
        KEPT - KEPT / 2,
        "half the mbufs back, none waiting for a core that has stopped"
    );
    std::thread::spawn(move || drop(rest)).join().unwrap();
    assert_eq!(
        in_use_b(),
        used_b_total,
        "dropped after their core stopped, the mbufs went straight back"
    );
    let now_a: Vec<_> = pools_a.iter().map(|p| p.avail_count()).collect();
    assert_eq!(now_a, free_a);
    assert_eq!(
        insane_net::qos::debug_copy_count(),
        copies,
        "no payload copy"
    );
    stop.store(true, Ordering::Relaxed);
    let (echoed, peers, _port) = echo.join().expect("echo thread");
    assert_eq!(echoed as u64, 3 * N + AFTER + KEPT);
    drop(peers);
    let now_b: Vec<_> = pools_b.iter().map(|p| p.in_use_count()).collect();
    assert_eq!(now_b, used_b, "the peer's mbufs all came back");
}

/// Reliable datagrams over a real DPDK path in one process: an endpoint
/// that the policy gives DPDK reliable datagrams on one end of a
/// `net_ring` pair, and the protocol over a stack on the other end (same
/// core). Both send each other numbered messages of 1 B to 64 KiB at
/// once (multi-fragment ones included); each receives every message of
/// the other exactly once, in order, intact. (`qos_reliable_dpdk_memif.rs`
/// runs the same between two processes over `net_memif`.)
///
/// Each end goes away as soon as its own tasks are done (the last task
/// of a side drops its end), typically while its own last messages are
/// still on the way: the ordered close of a dropped reliable transport
/// delivers them. (Before it was built, this test stalled unless both
/// ends stayed bound until both had received everything.)
#[test]
fn reliable_datagrams_over_a_ring_pair_deliver_every_message_once_in_order() {
    use common::messages::{Rng, check, count, fill};
    use insane_dpdk::{Port, PortConfig, ring_pair};
    use insane_net::qos::transport::stack::StackUdpTransport;
    use insane_net::qos::transport::{Op, ReliableTransport, Transport};
    use insane_net::stack::dpdk::DpdkDevice;
    use insane_net::stack::{EthernetAddress, Interface, InterfaceConfig};
    use insane_runtime::task::spawn;
    use insane_runtime::time::timeout;
    use std::future::poll_fn;

    if !require_dpdk("reliable_datagrams_over_a_ring_pair") {
        return;
    }
    // Its multi-frame messages are read contiguously: counted copies.
    let _copies_counted = lock_copy_counter();
    insane_net::qos::transport::dpdk::init_eal(&eal_args()).expect("EAL");
    let (a, b) = ring_pair(1024).expect("ring pair");
    let config = dpdk_config(a, "10.79.0.1/24");
    let n = count(200);
    let limit = Duration::from_secs(30);
    // The port outlives the runtime, whose core keeps the stack on it.
    let mut port_b = Port::open(b, &PortConfig::default()).expect("port b");
    let device = DpdkDevice::with_mac(
        port_b.take_queue(0).unwrap(),
        EthernetAddress([2, 0, 0, 0, 0x79, 2]),
    )
    .unwrap();
    let rt = runtime(1);
    rt.block_on(async move {
        let qos = Qos::builder().critical().reliable().poll().build();
        let cfg = TransportConfig::default();
        let ep = Endpoint::bind_with_config("10.79.0.1:7900", qos, cfg, &config)
            .await
            .expect("bind on the [dpdk] address");
        assert_eq!(ep.driver(), Kind::DpdkReliable, "{}", ep.explain());
        let stack = StackUdpTransport::<DpdkDevice>::bind(
            "ring reliable b",
            7901,
            Kind::DpdkUdp,
            &cfg,
            || {
                let addr = "10.79.0.2/24".parse().unwrap();
                Ok((Interface::new(device, InterfaceConfig::new(addr)), None))
            },
        )
        .expect("a stack on port b");
        let peer = Arc::new(
            ReliableTransport::new(Arc::new(stack), Kind::DpdkReliable, &cfg)
                .expect("reliable datagrams over port b"),
        );
        let ep = Arc::new(ep);
        let (ep_addr, peer_addr) = (ep.local_addr().unwrap(), peer.local_addr().unwrap());
        let mut rng = Rng(0x7269_6e67);
        let sizes: Arc<Vec<usize>> = Arc::new((0..n).map(|_| rng.size(16)).collect());
        let (s1, s2, s3, s4) = (sizes.clone(), sizes.clone(), sizes.clone(), sizes);
        let (ep1, ep2, peer1, peer2) = (ep.clone(), ep.clone(), peer.clone(), peer.clone());
        let tasks = [
            // The endpoint sends (tag 0xa) and receives (tag 0xb) through
            // the public API...
            spawn(async move {
                for (i, &len) in s1.iter().enumerate() {
                    let mut buf = ep1.buffer().await;
                    buf.resize(len, 0).unwrap();
                    fill(&mut buf, 0xa, i);
                    ep1.send_to(buf, peer_addr)
                        .await
                        .unwrap_or_else(|e| panic!("endpoint send {i}: {e}"));
                }
            }),
            spawn(async move {
                for (i, &len) in s2.iter().enumerate() {
                    let m = timeout(limit, ep2.recv())
                        .await
                        .unwrap_or_else(|_| panic!("endpoint: message {i} not received"))
                        .unwrap_or_else(|e| panic!("endpoint recv {i}: {e}"));
                    assert_eq!(m.peer(), peer_addr);
                    check(&m, 0xb, i, len, "peer -> endpoint");
                }
            }),
            // ...the peer through the transport's calls.
            spawn(async move {
                for (i, &len) in s3.iter().enumerate() {
                    let mut buf = poll_fn(|cx| peer1.poll_buffer(cx)).await;
                    buf.resize(len, 0).unwrap();
                    fill(&mut buf, 0xb, i);
                    let (mut buf, mut op) = (Some(buf), Op::new());
                    poll_fn(|cx| peer1.poll_send(cx, &mut buf, Some(ep_addr), &mut op))
                        .await
                        .unwrap_or_else(|e| panic!("peer send {i}: {e}"));
                }
            }),
            spawn(async move {
                let mut op = Op::new();
                for (i, &len) in s4.iter().enumerate() {
                    let m = timeout(limit, poll_fn(|cx| peer2.poll_recv(cx, &mut op)))
                        .await
                        .unwrap_or_else(|_| panic!("peer: message {i} not received"))
                        .unwrap_or_else(|e| panic!("peer recv {i}: {e}"));
                    assert_eq!(m.peer(), ep_addr);
                    check(&m, 0xa, i, len, "endpoint -> peer");
                }
            }),
        ];
        // The tasks hold the only handles now: each side is dropped when
        // its last task ends (see above).
        drop((ep, peer));
        for t in tasks {
            t.await.expect("a transfer task");
        }
    });
    drop(rt);
    drop(port_b);
}
