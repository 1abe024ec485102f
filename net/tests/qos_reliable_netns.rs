//! Reliable datagrams over real paths between two network namespaces
//! joined through a bridge namespace that drops UDP frames at random
//! (nftables, [`TestHosts::drop_frames`]): AF_XDP ↔ AF_XDP (the
//! userspace stack on each side, `XdpReliable`, chosen by the policy for
//! `latency=critical, reliable, resources=poll` on the `[xdp]` address)
//! and kernel busy-poll UDP ↔ kernel busy-poll UDP (`UdpReliable`).
//!
//! Specifications checked:
//! * with 0 %, 1 % and 5 % of UDP frames dropped by the bridge, messages
//!   of random sizes from 1 B to 1 MiB (log-uniform), sent both ways at
//!   once, arrive exactly once, in order, intact, and nothing else does;
//! * a peer killed mid-transfer (its endpoint and runtime gone while a
//!   stream of 1 MiB messages flows to it) makes the sender's next send
//!   fail within the idle timeout (1 s; the test allows 3 s), naming the
//!   peer, and its receive too: no hang;
//! * a peer restarted on the same address is detected at its first
//!   packet (the next receive and send fail naming it), then a new
//!   connection works both ways;
//! * a receiver that stops receiving holds the sender back after a
//!   bounded amount (backpressure, bounded memory); when it resumes,
//!   every message arrives, nothing lost.
//!
//! Counts: CI runs a few dozen messages of up to 1 MiB per direction and
//! loss rate (debug build, a few seconds per test);
//! `INSANE_RELIABLE_MESSAGES=100000` is the long run of the issue's
//! 100 000 messages per direction (release build advised:
//! `cargo test --release -p insane-net --test qos_reliable_netns`).
//! Reordering and duplication, which a bridge does not do, are covered
//! over the in-memory device in `qos_reliable.rs`.
//!
//! Tests run as root; under `CI=true` a missing capability (namespaces,
//! nftables) fails them, otherwise they are skipped with the reason.

mod common;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::messages::{Rng, check, count, critical_reliable, recv_within, send_msg};
use insane_net::config::Config;
use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::{Endpoint, TransportConfig};
use insane_runtime::task::spawn;
use insane_runtime::time::{sleep, timeout};
use insane_testhosts::{BRIDGE, TestHosts};

const A: usize = 0;
const B: usize = 1;
const PORT: u16 = 7400;
const MIB: usize = 1 << 20;

/// Which datagram path carries the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// The userspace stack over an AF_XDP socket on each host's veth.
    Xdp,
    /// Kernel busy-poll UDP sockets.
    KernelUdp,
}

/// One host's end of a test: its address, its peer's, and how it binds.
#[derive(Clone)]
struct Side {
    path: Path,
    /// The host's veth (AF_XDP binds to it).
    iface: String,
    addr: SocketAddr,
    peer: SocketAddr,
}

/// The two sides of `path` on a [`TestHosts::bridged_pair`]: over AF_XDP
/// the stacks own `.100` (A) and `.200` (B) on the kernel's subnet, over
/// kernel UDP the hosts' own addresses.
fn sides(hosts: &TestHosts, path: Path) -> [Side; 2] {
    let (a, b) = (hosts.iface(A, 0), hosts.iface(B, 1));
    let ip = |kernel: Ipv4Addr, stack: u8| match path {
        Path::Xdp => {
            let o = kernel.octets();
            Ipv4Addr::new(o[0], o[1], o[2], stack)
        }
        Path::KernelUdp => kernel,
    };
    let a_addr = SocketAddr::from((ip(a.addr, 100), PORT));
    let b_addr = SocketAddr::from((ip(b.addr, 200), PORT));
    [
        Side {
            path,
            iface: a.name.clone(),
            addr: a_addr,
            peer: b_addr,
        },
        Side {
            path,
            iface: b.name.clone(),
            addr: b_addr,
            peer: a_addr,
        },
    ]
}

/// Binds `side`'s reliable endpoint and checks the policy chose the
/// protocol over the path.
async fn bind(side: &Side, config: TransportConfig) -> io::Result<Endpoint> {
    let ep = match side.path {
        Path::Xdp => {
            let xdp = Config::from_toml_str(
                &format!(
                    "[xdp]\ninterface = \"{}\"\nqueue = 0\naddress = \"{}/24\"\nmode = \"auto\"\n",
                    side.iface,
                    side.addr.ip()
                ),
                "test config",
            )
            .expect("config");
            Endpoint::bind_with_config(side.addr, critical_reliable(), config, &xdp).await?
        }
        Path::KernelUdp => {
            let config = TransportConfig {
                prefer: Some(Kind::UdpReliable),
                ..config
            };
            Endpoint::bind_with(side.addr, critical_reliable(), config).await?
        }
    };
    let want = match side.path {
        Path::Xdp => Kind::XdpReliable,
        Path::KernelUdp => Kind::UdpReliable,
    };
    assert_eq!(ep.driver(), want, "{}", ep.explain());
    Ok(ep)
}

/// Binds, retrying briefly while the address (an AF_XDP queue, a UDP
/// port) is still held by a previous endpoint being torn down.
/// An endpoint that aborts when dropped (linger zero: no ordered close,
/// nothing more on the wire), as a killed process's would.
fn crashing() -> TransportConfig {
    TransportConfig {
        linger: Some(Duration::ZERO),
        ..Default::default()
    }
}

async fn bind_again(side: &Side) -> Endpoint {
    let mut last = None;
    for _ in 0..200 {
        match bind(side, TransportConfig::default()).await {
            Ok(ep) => return ep,
            Err(e) => last = Some(e),
        }
        sleep(Duration::from_millis(10)).await;
    }
    panic!("{} cannot be bound again within 2 s: {last:?}", side.addr);
}

/// Waits (without blocking the core: the endpoint keeps being driven)
/// until `flag` is set, at most `secs` seconds.
async fn wait_for(flag: &AtomicBool, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !flag.load(Ordering::Acquire) {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        sleep(Duration::from_millis(2)).await;
    }
}

/// A 1-core io_uring runtime runs `f` to completion in the caller's
/// namespace.
fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    common::uring_runtime(1).block_on(f)
}

/// Both sides send `count` messages of random sizes (1 B..1 MiB) to each
/// other at once through a bridge dropping `loss` % of UDP frames; each
/// receives every message of the other exactly once, in order, intact.
fn lossy_bridge_delivers_everything(test: &str, path: Path, loss: u32, count: usize) {
    if !TestHosts::require(test) {
        return;
    }
    let hosts = TestHosts::bridged_pair().unwrap();
    hosts.drop_frames(BRIDGE, loss).unwrap();
    let mut rng = Rng(0x5eed_0016 ^ u64::from(loss) << 32 | 1);
    let sizes: Arc<Vec<usize>> = Arc::new((0..count).map(|_| rng.size(20)).collect());
    let bytes: usize = sizes.iter().sum();
    let ready = Arc::new(Barrier::new(2));
    let done: Arc<[AtomicBool; 2]> = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let side = |host: usize, me: Side| {
        let (sizes, ready, done) = (sizes.clone(), ready.clone(), done.clone());
        let what = format!("{path:?} {loss}% loss, to {}", me.addr);
        move || {
            run(async move {
                let ep = Arc::new(bind(&me, TransportConfig::default()).await.unwrap());
                ready.wait();
                let started = Instant::now();
                let tag = host as u8 + 1;
                let sender = {
                    let (ep, sizes, to) = (ep.clone(), sizes.clone(), me.peer);
                    spawn(async move {
                        for (i, &len) in sizes.iter().enumerate() {
                            send_msg(&ep, to, tag, i, len).await.unwrap();
                        }
                    })
                };
                for (i, &len) in sizes.iter().enumerate() {
                    let m = recv_within(&ep, 30, &what).await.unwrap();
                    assert_eq!(m.peer(), me.peer, "{what}");
                    check(&m, 3 - tag, i, len, &what);
                }
                let took = started.elapsed();
                sender.await.unwrap();
                // Stay until the other side has everything too (our
                // retransmissions may still be needed).
                done[host].store(true, Ordering::Release);
                wait_for(&done[1 - host], 60, &what).await;
                if let Ok(m) = timeout(Duration::from_millis(100), ep.recv()).await {
                    panic!(
                        "{what}: an extra message or error: {:?}",
                        m.map(|m| m.len())
                    );
                }
                format!(
                    "{what}: all received in {took:?}; {}",
                    ep.transport().diagnostics().unwrap_or_default()
                )
            })
        }
    };
    let [a, b] = sides(&hosts, path);
    let b_side = hosts.spawn_in(B, side(B, b));
    let a_report = hosts.run_in(A, side(A, a));
    let b_report = b_side.join().expect("host B");
    println!("{count} messages of 1 B..1 MiB each way ({bytes} bytes)\n{a_report}\n{b_report}");
}

/// CI's messages per direction and loss rate (each up to 1 MiB).
const CI_MESSAGES: usize = 40;

#[test]
fn over_af_xdp_without_loss_every_message_arrives_once_in_order() {
    lossy_bridge_delivers_everything(
        "over_af_xdp_without_loss_every_message_arrives_once_in_order",
        Path::Xdp,
        0,
        count(CI_MESSAGES),
    );
}

#[test]
fn over_af_xdp_with_one_percent_loss_every_message_arrives_once_in_order() {
    lossy_bridge_delivers_everything(
        "over_af_xdp_with_one_percent_loss_every_message_arrives_once_in_order",
        Path::Xdp,
        1,
        count(CI_MESSAGES),
    );
}

#[test]
fn over_af_xdp_with_five_percent_loss_every_message_arrives_once_in_order() {
    lossy_bridge_delivers_everything(
        "over_af_xdp_with_five_percent_loss_every_message_arrives_once_in_order",
        Path::Xdp,
        5,
        count(CI_MESSAGES),
    );
}

#[test]
fn over_kernel_udp_without_loss_every_message_arrives_once_in_order() {
    lossy_bridge_delivers_everything(
        "over_kernel_udp_without_loss_every_message_arrives_once_in_order",
        Path::KernelUdp,
        0,
        count(CI_MESSAGES),
    );
}

#[test]
fn over_kernel_udp_with_one_percent_loss_every_message_arrives_once_in_order() {
    lossy_bridge_delivers_everything(
        "over_kernel_udp_with_one_percent_loss_every_message_arrives_once_in_order",
        Path::KernelUdp,
        1,
        count(CI_MESSAGES),
    );
}

#[test]
fn over_kernel_udp_with_five_percent_loss_every_message_arrives_once_in_order() {
    lossy_bridge_delivers_everything(
        "over_kernel_udp_with_five_percent_loss_every_message_arrives_once_in_order",
        Path::KernelUdp,
        5,
        count(CI_MESSAGES),
    );
}

#[test]
fn over_af_xdp_a_peer_killed_mid_transfer_fails_the_next_send_and_receive_within_the_idle_timeout()
{
    let test = "over_af_xdp_a_peer_killed_mid_transfer_fails_the_next_send_and_receive_within_the_idle_timeout";
    if !TestHosts::require(test) {
        return;
    }
    let hosts = TestHosts::bridged_pair().unwrap();
    let [a, b] = sides(&hosts, Path::Xdp);
    let b_addr = b.addr;
    let ready = Arc::new(Barrier::new(2));
    let killed: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let peer = {
        let (ready, killed) = (ready.clone(), killed.clone());
        hosts.spawn_in(B, move || {
            run(async move {
                let ep = bind(&b, crashing()).await.unwrap();
                ready.wait();
                for i in 0..3 {
                    let m = recv_within(&ep, 10, "B").await.unwrap();
                    check(&m, 1, i, MIB, "B");
                }
                // Killed: the endpoint and its runtime go at once, with
                // messages in flight and no goodbye on the wire.
                drop(ep);
                *killed.lock().unwrap() = Some(Instant::now());
            })
        })
    };
    hosts.run_in(A, move || {
        run(async move {
            let ep = bind(&a, TransportConfig::default()).await.unwrap();
            ready.wait();
            let mut i = 0;
            let err = loop {
                if let Some(at) = *killed.lock().unwrap() {
                    assert!(
                        at.elapsed() < Duration::from_secs(3),
                        "sends to a killed peer still succeed after 3 s"
                    );
                }
                assert!(i < 10_000, "10 000 MiB sent to a peer that took 3");
                match send_msg(&ep, b_addr, 1, i, MIB).await {
                    Ok(()) => i += 1,
                    Err(e) => break e,
                }
            };
            let at = killed
                .lock()
                .unwrap()
                .expect("B was killed before the error");
            println!(
                "{:?} after the kill ({i} messages accepted): {err}",
                at.elapsed()
            );
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
            assert!(err.to_string().contains(&b_addr.to_string()), "{err}");
            let err = recv_within(&ep, 1, "A").await.unwrap_err();
            assert!(err.to_string().contains(&b_addr.to_string()), "{err}");
            assert!(err.to_string().contains("timed out"), "{err}");
        })
    });
    peer.join().expect("host B");
}

#[test]
fn over_af_xdp_a_restarted_peer_is_detected_naming_it_then_a_new_connection_works() {
    let test = "over_af_xdp_a_restarted_peer_is_detected_naming_it_then_a_new_connection_works";
    if !TestHosts::require(test) {
        return;
    }
    let hosts = TestHosts::bridged_pair().unwrap();
    let [a, b] = sides(&hosts, Path::Xdp);
    let (a_addr, b_addr) = (a.addr, b.addr);
    let ready = Arc::new(Barrier::new(2));
    let done = Arc::new(AtomicBool::new(false));
    let peer = {
        let (ready, done) = (ready.clone(), done.clone());
        hosts.spawn_in(B, move || {
            run(async move {
                let ep = bind(&b, crashing()).await.unwrap();
                ready.wait();
                check(&recv_within(&ep, 10, "B").await.unwrap(), 1, 0, 100, "B");
                send_msg(&ep, a_addr, 2, 0, 100).await.unwrap();
                // Let the message and its ack cross, then restart.
                sleep(Duration::from_millis(50)).await;
                drop(ep);
                let ep = bind_again(&b).await;
                send_msg(&ep, a_addr, 3, 0, 100).await.unwrap();
                check(
                    &recv_within(&ep, 10, "B again").await.unwrap(),
                    1,
                    2,
                    100,
                    "B again",
                );
                wait_for(&done, 10, "B again").await;
            })
        })
    };
    hosts.run_in(A, move || {
        run(async move {
            let ep = bind(&a, TransportConfig::default()).await.unwrap();
            ready.wait();
            send_msg(&ep, b_addr, 1, 0, 100).await.unwrap();
            check(&recv_within(&ep, 10, "A").await.unwrap(), 2, 0, 100, "A");
            let restarted = format!("peer {b_addr} restarted");
            let err = recv_within(&ep, 5, "A").await.unwrap_err();
            println!("recv: {err}");
            assert!(err.to_string().contains(&restarted), "{err}");
            let err = send_msg(&ep, b_addr, 1, 1, 100).await.unwrap_err();
            println!("send: {err}");
            assert!(err.to_string().contains(&restarted), "{err}");
            check(&recv_within(&ep, 5, "A").await.unwrap(), 3, 0, 100, "A");
            send_msg(&ep, b_addr, 1, 2, 100).await.unwrap();
            // B has it when it says so; until then our endpoint stays.
            done.store(true, Ordering::Release);
            sleep(Duration::from_millis(100)).await;
        })
    });
    peer.join().expect("host B");
}

#[test]
fn over_af_xdp_a_receiver_that_stops_receiving_holds_the_sender_back_and_loses_nothing() {
    let test =
        "over_af_xdp_a_receiver_that_stops_receiving_holds_the_sender_back_and_loses_nothing";
    if !TestHosts::require(test) {
        return;
    }
    const LEN: usize = 16 * 1024;
    const TOTAL: usize = 1_000;
    // A 1 MiB maximum: the receiver's window is about 1 MiB, its pool 16
    // messages.
    let config = TransportConfig {
        max_message: MIB,
        rx_buffers: 16,
        ..TransportConfig::default()
    };
    let hosts = TestHosts::bridged_pair().unwrap();
    let [a, b] = sides(&hosts, Path::Xdp);
    let b_addr = b.addr;
    let ready = Arc::new(Barrier::new(2));
    let go = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (ready, go, done) = (ready.clone(), go.clone(), done.clone());
        hosts.spawn_in(B, move || {
            run(async move {
                let ep = bind(&b, config).await.unwrap();
                ready.wait();
                // Not receiving (the endpoint itself keeps running).
                wait_for(&go, 30, "B").await;
                for i in 0..TOTAL {
                    check(&recv_within(&ep, 10, "B").await.unwrap(), 3, i, LEN, "B");
                }
                done.store(true, Ordering::Release);
                if let Ok(m) = timeout(Duration::from_millis(100), ep.recv()).await {
                    panic!("B: an extra message or error: {:?}", m.map(|m| m.len()));
                }
            })
        })
    };
    hosts.run_in(A, move || {
        run(async move {
            let ep = Arc::new(bind(&a, config).await.unwrap());
            ready.wait();
            let sent = Arc::new(AtomicUsize::new(0));
            let sender = {
                let (ep, sent) = (ep.clone(), sent.clone());
                spawn(async move {
                    for i in 0..TOTAL {
                        send_msg(&ep, b_addr, 3, i, LEN).await.unwrap();
                        sent.store(i + 1, Ordering::Relaxed);
                    }
                })
            };
            // The sender stalls after a bounded amount.
            let mut last = usize::MAX;
            for _ in 0..100 {
                sleep(Duration::from_millis(100)).await;
                let now = sent.load(Ordering::Relaxed);
                if now == last {
                    break;
                }
                last = now;
            }
            println!("the sender stalled after {last} messages of {LEN} B");
            assert!(
                (16..TOTAL / 2).contains(&last),
                "{last} messages sent to a receiver that receives nothing"
            );
            // B receives: the sender resumes, nothing is lost.
            go.store(true, Ordering::Release);
            sender.await.unwrap();
            wait_for(&done, 30, "A").await;
        })
    });
    receiver.join().expect("host B");
}
