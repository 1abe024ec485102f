//! QoS endpoints on AF_XDP: `Endpoint::bind_with_config` with an `[xdp]`
//! section gives a latency-critical best-effort endpoint bound to the
//! section's address the userspace stack over an AF_XDP socket.
//!
//! * A's AF_XDP endpoint ↔ a kernel UDP socket in B, both directions,
//!   many datagrams of 1..=1472 bytes, contents checked, no userspace
//!   copy on receive, half the received buffers dropped on another core
//!   (their UMEM frames must come home, or the fill ring would starve).
//! * AF_XDP endpoint in A ↔ AF_XDP endpoint in B (each its own stack).
//! * The XDP program is detached when the endpoint drops, and the queue
//!   can be bound again at once (EBUSY retried within a bound).
//! * Generic mode: forced by `mode = "generic"`, and reached by `auto`
//!   when native attach fails (veth MTU over the native XDP limit).
//! * The policy: AF_XDP for `latency=critical, best-effort` when `[xdp]`
//!   is configured and the address is the section's; io_uring busy-poll
//!   when the interface is missing, with the reason in `explain()`.
//! * The XDP program leaves UDP to the kernel's own address on a port the
//!   stack bound to the kernel.
//!
//! Tests with namespaces run as root; under `CI=true` a missing
//! capability fails them, otherwise they are skipped with the reason.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use insane_net::config::Config;
use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::{Endpoint, Qos, TransportConfig, TxBuf, debug_copy_count};
use insane_runtime::runtime::Runtime;
use insane_runtime::task::spawn_on;
use insane_runtime::time::timeout;
use insane_testhosts::{Iface, TestHosts};

const A: usize = 0;
const B: usize = 1;
const STACK_PORT: u16 = 7300;
const PEER_PORT: u16 = 7301;
const MAX_PAYLOAD: usize = 1472;
const WINDOW: usize = 32;

fn critical() -> Qos {
    Qos::builder().critical().best_effort().poll().build()
}

fn runtime(cores: usize) -> Runtime {
    Runtime::builder()
        .cores(cores)
        .on_core_start(Arc::new(|_| {
            insane_uring::install_on_current_core(&Default::default())
                .or_else(|_| insane_epoll::install_on_current_core())
        }))
        .build()
        .expect("runtime")
}

/// The stack's own address on `iface`'s subnet (`.100`, or `.200` for
/// B's stack).
fn stack_ip(iface: &Iface, last: u8) -> Ipv4Addr {
    let o = iface.addr.octets();
    Ipv4Addr::new(o[0], o[1], o[2], last)
}

fn xdp_config(iface: &str, addr: Ipv4Addr, mode: &str) -> Config {
    Config::from_toml_str(
        &format!(
            "[xdp]\ninterface = \"{iface}\"\nqueue = 0\naddress = \"{addr}/24\"\nmode = \"{mode}\"\n"
        ),
        "test config",
    )
    .expect("config")
}

/// Payload `i`: length 1..=`max` (every length within `max` consecutive
/// datagrams), bytes `first + 7 j`.
fn payload(i: usize, max: usize) -> Vec<u8> {
    let len = 1 + (i * 7919) % max;
    let first = (i % 251) as u8;
    (0..len)
        .map(|j| first.wrapping_add((j as u8).wrapping_mul(7)))
        .collect()
}

/// The kernel side in B: waits for the stack's greeting, then sends `n`
/// [`payload`]s with at most [`WINDOW`] in flight and checks each echo,
/// in order. Returns the elapsed time.
fn kernel_peer(
    b: Iface,
    stack: SocketAddr,
    n: usize,
    max: usize,
    ready: mpsc::Sender<()>,
) -> Duration {
    let sock = UdpSocket::bind((b.addr, PEER_PORT)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    ready.send(()).unwrap();
    let mut buf = vec![0u8; 4096];
    let (len, from) = sock
        .recv_from(&mut buf)
        .expect("no greeting from the AF_XDP endpoint (ARP from a cold cache failed?)");
    assert_eq!(&buf[..len], b"hello");
    assert_eq!(from, stack);
    let start = Instant::now();
    let (mut sent, mut received) = (0usize, 0usize);
    while received < n {
        while sent < n && sent - received < WINDOW {
            let p = payload(sent, max);
            assert_eq!(sock.send_to(&p, stack).unwrap(), p.len());
            sent += 1;
        }
        let (len, from) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("echo {received} of {n} missing ({sent} sent): {e}"));
        assert_eq!(from, stack);
        let want = payload(received, max);
        assert!(
            buf[..len] == want[..],
            "echo {received}: {len} bytes, expected {} (lost, corrupt or reordered)",
            want.len()
        );
        received += 1;
        assert!(start.elapsed() < Duration::from_secs(120), "too slow");
    }
    start.elapsed()
}

/// What the AF_XDP side of an echo run saw.
#[derive(Debug)]
struct EchoReport {
    explain: String,
    driver: Kind,
    max_payload: usize,
    echoed: usize,
    copies: u64,
    device_frames: usize,
}

/// In the current namespace: an AF_XDP endpoint at `local` that greets
/// `peer`, then echoes `n` datagrams back (checking them), dropping every
/// second received buffer on core 1.
fn xdp_echo(
    config: Config,
    local: SocketAddr,
    peer: SocketAddr,
    n: usize,
    max: usize,
) -> EchoReport {
    let rt = runtime(2);
    rt.block_on(async move {
        let ep = Endpoint::bind_with_config(local, critical(), TransportConfig::default(), &config)
            .await
            .unwrap_or_else(|e| panic!("bind {local}: {e}"));
        let explain = ep.explain().to_string();
        println!("{explain}");
        let driver = ep.driver();
        assert_eq!(driver, Kind::XdpUdp, "{explain}");
        let max_payload = ep.max_payload();
        ep.connect(peer).await.unwrap();
        let mut hello = ep.buffer().await;
        hello.extend_from_slice(b"hello").unwrap();
        ep.send(hello).await.unwrap();

        // Best effort: over the payload limit is an error naming it.
        let mut big = ep.buffer().await;
        assert_eq!(big.capacity(), max_payload);
        let e = big.resize(max_payload + 1, 1).unwrap_err();
        assert!(e.to_string().contains(&max_payload.to_string()), "{e}");
        let mut heap = TxBuf::unpooled(0, 9000);
        heap.resize(max_payload + 1, 7).unwrap();
        let e = ep.send(heap).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(
            e.to_string()
                .contains(&format!("limit of {max_payload} bytes")),
            "{e}"
        );

        let mut device_frames = 0;
        for i in 0..n {
            let msg = timeout(Duration::from_secs(10), ep.recv())
                .await
                .unwrap_or_else(|_| panic!("datagram {i} of {n} did not arrive"))
                .unwrap();
            assert_eq!(msg.peer(), peer);
            let want = payload(i, max);
            assert!(
                msg[..] == want[..],
                "datagram {i}: {} bytes, expected {}",
                msg.len(),
                want.len()
            );
            if msg.is_device_frame() {
                device_frames += 1;
            }
            let mut out = ep.buffer().await;
            out.extend_from_slice(&msg).unwrap();
            if i % 2 == 0 {
                // Dropped on the other core: the frame must come home.
                spawn_on(1, async move { drop(msg) });
            } else {
                drop(msg);
            }
            ep.send(out).await.unwrap();
        }
        EchoReport {
            explain,
            driver,
            max_payload,
            echoed: n,
            copies: debug_copy_count(),
            device_frames,
        }
    })
}

/// A's AF_XDP endpoint ↔ a kernel UDP socket in B: both directions, every
/// length 1..=1472, contents checked, zero-copy receive.
#[test]
fn xdp_endpoint_exchanges_with_kernel_udp() {
    if !TestHosts::require("xdp_endpoint_exchanges_with_kernel_udp") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let local = SocketAddr::from((stack_ip(&a, 100), STACK_PORT));
    let peer = SocketAddr::from((b.addr, PEER_PORT));
    let n = 20_000;
    let (ready_tx, ready_rx) = mpsc::channel();
    let b2 = b.clone();
    let kernel = hosts.spawn_in(B, move || kernel_peer(b2, local, n, MAX_PAYLOAD, ready_tx));
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let config = xdp_config(&a.name, stack_ip(&a, 100), "auto");
    let report = hosts.run_in(A, move || xdp_echo(config, local, peer, n, MAX_PAYLOAD));
    let elapsed = kernel.join().expect("kernel peer");
    println!(
        "{n} datagrams of 1..={MAX_PAYLOAD} B echoed in {elapsed:?} ({:.0}/s each way)",
        n as f64 / elapsed.as_secs_f64()
    );
    println!("{report:?}");
    assert_eq!(report.driver, Kind::XdpUdp);
    assert_eq!(report.echoed, n);
    assert_eq!(report.max_payload, MAX_PAYLOAD);
    assert_eq!(report.device_frames, n, "every RxBuf holds its UMEM frame");
    assert_eq!(
        report.copies, 0,
        "no userspace copy on the AF_XDP receive path"
    );
    assert!(
        report
            .explain
            .starts_with("latency=critical, best-effort, resources=poll -> AF_XDP UDP"),
        "{}",
        report.explain
    );
    assert!(
        report
            .explain
            .contains(&format!("AF_XDP on {} queue 0", a.name)),
        "{}",
        report.explain
    );
    assert!(report.explain.contains("copy mode"), "{}", report.explain);
}

/// AF_XDP in A ↔ AF_XDP in B, each host with its own stack and address:
/// ping-pong of every length, contents checked; prints the RTT.
#[test]
fn xdp_endpoint_to_xdp_endpoint() {
    if !TestHosts::require("xdp_endpoint_to_xdp_endpoint") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let a_addr = SocketAddr::from((stack_ip(&a, 100), STACK_PORT));
    let b_addr = SocketAddr::from((stack_ip(&b, 200), PEER_PORT));
    let n = 5_000;
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let b_config = xdp_config(&b.name, stack_ip(&b, 200), "auto");
    let server = hosts.spawn_in(B, move || {
        runtime(1).block_on(async move {
            let ep = Endpoint::bind_with_config(
                b_addr,
                critical(),
                TransportConfig::default(),
                &b_config,
            )
            .await
            .unwrap();
            assert_eq!(ep.driver(), Kind::XdpUdp, "{}", ep.explain());
            ready_tx.send(()).unwrap();
            for i in 0..n {
                let msg = timeout(Duration::from_secs(10), ep.recv())
                    .await
                    .unwrap_or_else(|_| panic!("B: request {i} did not arrive"))
                    .unwrap();
                let mut out = ep.buffer().await;
                out.extend_from_slice(&msg).unwrap();
                let to = msg.peer();
                drop(msg);
                ep.send_to(out, to).await.unwrap();
            }
            debug_copy_count()
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let a_config = xdp_config(&a.name, stack_ip(&a, 100), "auto");
    let (rtts, copies) = hosts.run_in(A, move || {
        runtime(1).block_on(async move {
            let ep = Endpoint::bind_with_config(
                a_addr,
                critical(),
                TransportConfig::default(),
                &a_config,
            )
            .await
            .unwrap();
            assert_eq!(ep.driver(), Kind::XdpUdp, "{}", ep.explain());
            ep.connect(b_addr).await.unwrap();
            let mut rtts = Vec::with_capacity(n);
            for i in 0..n {
                let want = payload(i, MAX_PAYLOAD);
                let mut out = ep.buffer().await;
                out.extend_from_slice(&want).unwrap();
                let t = Instant::now();
                ep.send(out).await.unwrap();
                let msg = timeout(Duration::from_secs(10), ep.recv())
                    .await
                    .unwrap_or_else(|_| panic!("A: echo {i} did not arrive"))
                    .unwrap();
                rtts.push(t.elapsed());
                assert_eq!(msg.peer(), b_addr);
                assert!(msg[..] == want[..], "echo {i}");
            }
            (rtts, debug_copy_count())
        })
    });
    assert_eq!(server.join().expect("B"), 0);
    assert_eq!(copies, 0);
    let mut sorted = rtts;
    sorted.sort();
    println!(
        "AF_XDP <-> AF_XDP ping-pong, {n} round trips of 1..={MAX_PAYLOAD} B: p50 {:?}, p99 {:?} (first, with ARP: included)",
        sorted[n / 2],
        sorted[n * 99 / 100]
    );
}

/// Whether an XDP program is attached to `ifname` (in the caller's
/// namespace), per `ip link show`.
fn xdp_attached(ifname: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["-details", "link", "show", "dev", ifname])
        .output()
        .expect("ip link show");
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("xdp") && text.contains("prog/xdp")
}

/// After the endpoint drops, the program is detached; binding again right
/// away works (the kernel's ~1 s EBUSY is retried, bounded), three times.
#[test]
fn xdp_endpoint_drop_detaches_and_queue_rebinds() {
    if !TestHosts::require("xdp_endpoint_drop_detaches_and_queue_rebinds") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let local = SocketAddr::from((stack_ip(&a, 100), STACK_PORT));
    let peer = SocketAddr::from((b.addr, PEER_PORT));
    let peer_sock = hosts.run_in(B, move || UdpSocket::bind(peer).unwrap());
    peer_sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let config = xdp_config(&a.name, stack_ip(&a, 100), "auto");
    let ifname = a.name.clone();
    hosts.run_in(A, move || {
        assert!(!xdp_attached(&ifname));
        let rt = runtime(1);
        for round in 0..3 {
            let t = Instant::now();
            let cfg = config.clone();
            let ifname2 = ifname.clone();
            let sock = peer_sock.try_clone().unwrap();
            rt.block_on(async move {
                let ep =
                    Endpoint::bind_with_config(local, critical(), TransportConfig::default(), &cfg)
                        .await
                        .unwrap_or_else(|e| panic!("round {round}: {e}"));
                assert_eq!(ep.driver(), Kind::XdpUdp, "round {round}: {}", ep.explain());
                assert!(xdp_attached(&ifname2), "round {round}: program attached");
                let mut buf = ep.buffer().await;
                buf.extend_from_slice(format!("round {round}").as_bytes())
                    .unwrap();
                ep.send_to(buf, peer).await.unwrap();
                // The kernel socket blocks: read it on a plain thread while
                // this core keeps polling (ARP, the transmit kick).
                let reader = std::thread::spawn(move || {
                    let mut got = [0u8; 64];
                    sock.recv_from(&mut got)
                        .map(|(len, from)| (got[..len].to_vec(), from))
                });
                let deadline = Instant::now() + Duration::from_secs(6);
                while !reader.is_finished() && Instant::now() < deadline {
                    insane_runtime::time::sleep(Duration::from_millis(1)).await;
                }
                let (got, from) = reader
                    .join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("round {round}: no datagram: {e}"));
                assert_eq!(got, format!("round {round}").as_bytes());
                assert_eq!(from, local);
            });
            println!("round {round}: bound and exchanged in {:?}", t.elapsed());
            assert!(
                t.elapsed() < Duration::from_secs(8),
                "round {round} took {:?}",
                t.elapsed()
            );
            // The endpoint is gone: the program must be detached soon.
            let deadline = Instant::now() + Duration::from_secs(3);
            while xdp_attached(&ifname) {
                assert!(
                    Instant::now() < deadline,
                    "round {round}: XDP program still attached after the endpoint dropped"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
}

/// `mode = "generic"` forced: the endpoint runs in generic (SKB) mode and
/// says so; datagrams flow both ways.
#[test]
fn xdp_endpoint_in_forced_generic_mode() {
    if !TestHosts::require("xdp_endpoint_in_forced_generic_mode") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let local = SocketAddr::from((stack_ip(&a, 100), STACK_PORT));
    let peer = SocketAddr::from((b.addr, PEER_PORT));
    let n = 2_000;
    let (ready_tx, ready_rx) = mpsc::channel();
    let b2 = b.clone();
    let kernel = hosts.spawn_in(B, move || kernel_peer(b2, local, n, MAX_PAYLOAD, ready_tx));
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let config = xdp_config(&a.name, stack_ip(&a, 100), "generic");
    let report = hosts.run_in(A, move || xdp_echo(config, local, peer, n, MAX_PAYLOAD));
    kernel.join().expect("kernel peer");
    println!("{report:?}");
    assert!(
        report.explain.contains("generic XDP, copy mode"),
        "{}",
        report.explain
    );
    assert_eq!(report.copies, 0);
}

/// `mode = "auto"` on a veth whose MTU is over the native XDP limit:
/// native attach fails, generic is used, and `explain()` says both.
#[test]
fn xdp_endpoint_auto_falls_back_to_generic() {
    if !TestHosts::require("xdp_endpoint_auto_falls_back_to_generic") {
        return;
    }
    let hosts = TestHosts::builder()
        .hosts(2)
        .link(0, 1)
        .mtu(4000)
        .permanent_neighbours(true)
        .build()
        .unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let local = SocketAddr::from((stack_ip(&a, 100), STACK_PORT));
    let peer = SocketAddr::from((b.addr, PEER_PORT));
    // A 2048-byte UMEM frame receives frames of at most 2048 - 256 bytes
    // (the kernel's XDP headroom): the payload limit is 1750, below the
    // MTU's 3972.
    let max = 1750;
    let n = 2_000;
    let (ready_tx, ready_rx) = mpsc::channel();
    let b2 = b.clone();
    let kernel = hosts.spawn_in(B, move || kernel_peer(b2, local, n, max, ready_tx));
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let config = xdp_config(&a.name, stack_ip(&a, 100), "auto");
    let report = hosts.run_in(A, move || xdp_echo(config, local, peer, n, max));
    kernel.join().expect("kernel peer");
    println!("{report:?}");
    assert!(report.explain.contains("generic XDP"), "{}", report.explain);
    assert!(
        report.explain.contains("native"),
        "the failed native attach is named: {}",
        report.explain
    );
    assert_eq!(report.max_payload, max);
}

/// The policy with `[xdp]` configured, without namespaces: a missing
/// interface makes a critical endpoint fall back to kernel busy-poll UDP,
/// the reason named; an address other than the section's never gets
/// AF_XDP; normal flows never do.
#[test]
fn xdp_policy_fallbacks_are_explained() {
    let rt = runtime(1);
    rt.block_on(async {
        let missing = xdp_config("insane-nosuch0", Ipv4Addr::LOCALHOST, "auto");
        let ep = Endpoint::bind_with_config(
            "127.0.0.1:0",
            critical(),
            TransportConfig::default(),
            &missing,
        )
        .await
        .unwrap();
        println!("{}", ep.explain());
        assert!(
            matches!(ep.driver(), Kind::UringUdpBusyPoll | Kind::EpollUdpBusyPoll),
            "{}",
            ep.explain()
        );
        assert!(
            ep.explain()
                .contains("af_xdp: interface insane-nosuch0 not found"),
            "{}",
            ep.explain()
        );
        assert!(
            ep.explain().contains("busy-poll: SO_BUSY_POLL"),
            "{}",
            ep.explain()
        );

        let elsewhere = xdp_config("lo", Ipv4Addr::new(10, 99, 0, 1), "auto");
        let ep = Endpoint::bind_with_config(
            "127.0.0.1:0",
            critical(),
            TransportConfig::default(),
            &elsewhere,
        )
        .await
        .unwrap();
        println!("{}", ep.explain());
        assert_ne!(ep.driver(), Kind::XdpUdp);
        assert!(
            ep.explain()
                .contains("af_xdp: 127.0.0.1 is not 10.99.0.1, the stack's address on lo"),
            "{}",
            ep.explain()
        );

        let normal = Qos::builder().best_effort().low().build();
        let ep =
            Endpoint::bind_with_config("127.0.0.1:0", normal, TransportConfig::default(), &missing)
                .await
                .unwrap();
        assert!(
            matches!(ep.driver(), Kind::UringUdp | Kind::EpollUdp),
            "{}",
            ep.explain()
        );
        assert!(!ep.explain().contains("af_xdp"), "{}", ep.explain());
    });
}

/// With the stack's address claimed, a datagram to the *kernel's* address
/// on the port the stack bound still reaches the kernel socket on that
/// port, while datagrams to the stack's address reach the stack.
#[test]
fn xdp_program_leaves_the_kernels_address_to_the_kernel() {
    if !TestHosts::require("xdp_program_leaves_the_kernels_address_to_the_kernel") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let stack = SocketAddr::from((stack_ip(&a, 100), STACK_PORT));
    let kernel_a = SocketAddr::from((a.addr, STACK_PORT));
    let from_b = SocketAddr::from((b.addr, PEER_PORT));
    let config = xdp_config(&a.name, stack_ip(&a, 100), "auto");
    let (bound_tx, bound_rx) = mpsc::channel::<()>();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let stack_side = hosts.spawn_in(A, move || {
        // The kernel's socket on the same port, on the kernel's address.
        let kernel_sock = UdpSocket::bind(kernel_a).unwrap();
        kernel_sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let got = runtime(1).block_on(async move {
            let ep =
                Endpoint::bind_with_config(stack, critical(), TransportConfig::default(), &config)
                    .await
                    .unwrap();
            bound_tx.send(()).unwrap();
            let msg = timeout(Duration::from_secs(10), ep.recv())
                .await
                .expect("the stack's datagram did not arrive")
                .unwrap();
            assert_eq!(msg.peer(), from_b);
            let got = msg.to_vec();
            // Keep the program attached until B has sent both.
            let _ = sent_rx.recv_timeout(Duration::from_secs(10));
            got
        });
        let mut buf = [0u8; 64];
        let (len, from) = kernel_sock
            .recv_from(&mut buf)
            .expect("the datagram to the kernel's address was stolen by the XDP program");
        assert_eq!(from, from_b);
        (got, buf[..len].to_vec())
    });
    bound_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    hosts.run_in(B, move || {
        let s = UdpSocket::bind(from_b).unwrap();
        s.send_to(b"to the kernel", kernel_a).unwrap();
        s.send_to(b"to the stack", stack).unwrap();
    });
    sent_tx.send(()).unwrap();
    let (to_stack, to_kernel) = stack_side.join().expect("A");
    assert_eq!(to_stack, b"to the stack");
    assert_eq!(to_kernel, b"to the kernel");
}

/// Several endpoints on one core share one AF_XDP socket (one per queue):
/// two ports of the stack's address both receive; an endpoint for the
/// same queue bound on another core of the process binds on the serving
/// core's stack (software dispatch, named in `explain()`) and receives
/// through it on its own core.
#[test]
fn xdp_endpoints_share_one_socket_per_queue() {
    if !TestHosts::require("xdp_endpoints_share_one_socket_per_queue") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let ip = stack_ip(&a, 100);
    let (one, two) = (SocketAddr::from((ip, 7300)), SocketAddr::from((ip, 7302)));
    let three = SocketAddr::from((ip, 7304));
    let from_b = SocketAddr::from((b.addr, PEER_PORT));
    let config = xdp_config(&a.name, ip, "auto");
    let (bound_tx, bound_rx) = mpsc::channel::<()>();
    let ifname = a.name.clone();
    let stack_side = hosts.spawn_in(A, move || {
        runtime(2).block_on(async move {
            let qos = critical();
            let cfg = TransportConfig::default();
            let e1 = Endpoint::bind_with_config(one, qos, cfg, &config)
                .await
                .unwrap();
            let e2 = Endpoint::bind_with_config(two, qos, cfg, &config)
                .await
                .unwrap();
            assert_eq!((e1.driver(), e2.driver()), (Kind::XdpUdp, Kind::XdpUdp));
            let queue = format!("AF_XDP on {ifname} queue 0");
            assert!(e2.explain().contains(&queue), "{}", e2.explain());
            // The same queue from core 1: served by core 0 already, so
            // the endpoint binds on core 0's stack (no second socket).
            let c2 = config.clone();
            let (bound1_tx, bound1_rx) = futures::channel::oneshot::channel::<String>();
            let on_core_1 = spawn_on(1, async move {
                let ep = Endpoint::bind_with_config(three, qos, cfg, &c2)
                    .await
                    .expect("bind on core 1");
                let _ = bound1_tx.send(ep.explain().to_string());
                let m = timeout(Duration::from_secs(10), ep.recv())
                    .await
                    .expect("port 7304, on core 1")
                    .unwrap();
                (m.peer(), m.to_vec(), m.is_device_frame())
            });
            let explain = bound1_rx.await.expect("core 1 bound");
            println!("{explain}");
            assert!(
                explain.contains("-> AF_XDP UDP")
                    && explain.contains(&queue)
                    && explain.contains("bound from core 1, served by core 0"),
                "{explain}"
            );
            bound_tx.send(()).unwrap();
            let m1 = timeout(Duration::from_secs(10), e1.recv())
                .await
                .expect("port 7300")
                .unwrap();
            let m2 = timeout(Duration::from_secs(10), e2.recv())
                .await
                .expect("port 7302")
                .unwrap();
            assert_eq!((m1.peer(), m2.peer()), (from_b, from_b));
            let (peer3, m3, device_frame) = on_core_1.await.expect("task on core 1");
            assert_eq!((peer3, &m3[..]), (from_b, &b"three"[..]));
            assert!(device_frame, "the UMEM frame itself, handed over");
            (m1.to_vec(), m2.to_vec())
        })
    });
    bound_rx.recv_timeout(Duration::from_secs(20)).unwrap();
    hosts.run_in(B, move || {
        let s = UdpSocket::bind(from_b).unwrap();
        s.send_to(b"one", one).unwrap();
        s.send_to(b"two", two).unwrap();
        s.send_to(b"three", three).unwrap();
    });
    let (m1, m2) = stack_side.join().expect("A");
    assert_eq!((&m1[..], &m2[..]), (&b"one"[..], &b"two"[..]));
}
