//! AF_XDP between network namespaces: an XSK on host A's veth echoes raw
//! UDP frames (swapping MAC, IP and port in place) to a kernel UDP socket
//! on host B; traffic the program does not claim still reaches A's kernel;
//! the program goes away with the socket; generic mode works.
//!
//! Run as root; under `CI=true` missing capabilities fail the tests.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{EchoServer, kernel_udp, ping_pong};
use insane_testhosts::TestHosts;
use insane_xdp::{AttachMode, ModeRequest, SocketConfig, XdpSocket};

const A: usize = 0;
const B: usize = 1;

fn xdp_attached(hosts: &TestHosts, host: usize, ifname: &str) -> bool {
    let out = hosts
        .ip(host, &["-d", "link", "show", "dev", ifname])
        .unwrap();
    out.contains("prog/xdp")
}

#[test]
fn udp_echo_from_kernel_socket_through_xsk() {
    if !TestHosts::require("udp_echo_from_kernel_socket_through_xsk") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let port = 7001;
    let ifname = a.name.clone();
    let server = EchoServer::start(&hosts, A, port, move || {
        Ok(vec![XdpSocket::open(
            SocketConfig::new(ifname, 0).port(port),
        )?])
    })
    .unwrap();
    println!("{}", server.explain);
    assert!(xdp_attached(&hosts, A, &a.name));
    // veth: native XDP, copy mode (zero-copy is EOPNOTSUPP there).
    assert!(server.explain.contains("native XDP"), "{}", server.explain);
    assert!(server.explain.contains("copy mode"), "{}", server.explain);

    let to = SocketAddr::from((a.addr, port));
    let (rtts, burst_ok) = hosts.run_in(B, move || {
        let sock = kernel_udp(SocketAddr::from((b.addr, 40001)));
        let rtts = ping_pong(&sock, to, 3000);
        // A burst: 200 datagrams in flight at once.
        let n = 200;
        for i in 0..n {
            sock.send_to(&common::payload(i, 64 + i % 64), to).unwrap();
        }
        let mut got = vec![false; n];
        let mut buf = [0u8; 2048];
        for _ in 0..n {
            let (len, _) = sock.recv_from(&mut buf).expect("burst echo missing");
            let i = (0..n)
                .find(|&i| {
                    !got[i] && len == 64 + i % 64 && buf[..len] == common::payload(i, len)[..]
                })
                .expect("unexpected burst echo");
            got[i] = true;
        }
        (rtts, got.iter().all(|&g| g))
    });
    let report = server.finish();
    println!("{report:?}");
    assert!(burst_ok);
    assert_eq!(report.echoed, 3000 + 200);
    assert_eq!(
        report.bad_checksums, 0,
        "frames from B carry complete checksums"
    );
    let mut rtts = rtts;
    println!(
        "kernel UDP (blocking recv) <-> XSK raw echo RTT: p50 {:?} p99 {:?}",
        common::percentile(&mut rtts, 50),
        common::percentile(&mut rtts, 99)
    );
}

/// Echo of `count` datagrams from B's kernel socket at `from_port`.
fn ping_from_b(hosts: &TestHosts, to: SocketAddr, from_port: u16, count: usize) -> Vec<Duration> {
    let b = hosts.iface(B, 0).addr;
    hosts.run_in(B, move || {
        let sock = kernel_udp(SocketAddr::from((b, from_port)));
        ping_pong(&sock, to, count)
    })
}

#[test]
fn kernel_tcp_arp_and_other_udp_ports_still_reach_the_kernel() {
    if !TestHosts::require("kernel_tcp_arp_and_other_udp_ports_still_reach_the_kernel") {
        return;
    }
    // No permanent neighbours: TCP needs ARP, which the program must pass.
    let hosts = TestHosts::builder().hosts(2).link(A, B).build().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let port = 7002;
    let other = 7003;
    let ifname = a.name.clone();
    let server = EchoServer::start(&hosts, A, port, move || {
        Ok(vec![XdpSocket::open(
            SocketConfig::new(ifname, 0).port(port),
        )?])
    })
    .unwrap();

    // Kernel services in A while the program is attached: TCP on the same
    // port number the XSK claims for UDP, and UDP on another port.
    let a_addr = a.addr;
    let kernel = hosts.spawn_in(A, move || {
        let listener = TcpListener::bind((a_addr, port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let udp = std::net::UdpSocket::bind((a_addr, other)).unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("no TCP connection into A: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).unwrap();
        buf.make_ascii_uppercase();
        conn.write_all(&buf).unwrap();
        let mut dgram = [0u8; 64];
        let (n, _) = udp
            .recv_from(&mut dgram)
            .expect("UDP to another port did not reach A's kernel");
        dgram[..n].to_vec()
    });

    let to_a = SocketAddr::from((a.addr, port));
    hosts.run_in(B, move || {
        // Retry the connect while A's listener starts (bounded).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut conn = loop {
            match TcpStream::connect_timeout(&to_a, Duration::from_secs(2)) {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("TCP connect to {to_a} failed: {e}"),
            }
        };
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"HELLO");
        let udp = kernel_udp(SocketAddr::from((b.addr, 40002)));
        udp.send_to(b"to the kernel", (a.addr, other)).unwrap();
        // And the claimed UDP port is still served by the XSK.
        ping_pong(&udp, to_a, 50);
    });
    assert_eq!(kernel.join().unwrap(), b"to the kernel");
    let report = server.finish();
    assert_eq!(report.echoed, 50);
    assert_eq!(report.not_ours, 0, "only the bound port is redirected");
    // ARP went through the kernel: A has a (non-permanent) entry for B.
    let neigh = hosts.ip(A, &["neigh", "show", "dev", &a.name]).unwrap();
    assert!(neigh.contains(&b.addr.to_string()), "{neigh}");
    assert!(!neigh.contains("PERMANENT"), "{neigh}");
}

#[test]
fn program_detaches_and_queue_is_reusable_after_drop() {
    if !TestHosts::require("program_detaches_and_queue_is_reusable_after_drop") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let a = hosts.iface(A, 0).clone();
    let port = 7004;
    let to = SocketAddr::from((a.addr, port));
    let open = |retry: Duration| {
        let ifname = a.name.clone();
        move || {
            Ok(vec![XdpSocket::open(
                SocketConfig::new(ifname, 0).port(port).bind_retry(retry),
            )?])
        }
    };

    let server = EchoServer::start(&hosts, A, port, open(Duration::ZERO)).unwrap();
    assert!(xdp_attached(&hosts, A, &a.name));
    ping_from_b(&hosts, to, 40003, 20);
    assert_eq!(server.finish().echoed, 20);
    assert!(
        !xdp_attached(&hosts, A, &a.name),
        "program still attached after the socket dropped"
    );

    // Immediately again, with the default EBUSY retry window: works.
    let server = EchoServer::start(&hosts, A, port, open(Duration::from_millis(1500))).unwrap();
    ping_from_b(&hosts, to, 40004, 20);
    assert_eq!(server.finish().echoed, 20);
    assert!(!xdp_attached(&hosts, A, &a.name));

    // Immediately again without retrying: either the kernel already
    // released the queue, or the error says why and what to do.
    match EchoServer::start(&hosts, A, port, open(Duration::ZERO)) {
        Ok(server) => {
            println!("queue was free at once");
            server.finish();
        }
        Err(e) => {
            println!("immediate rebind: {e}");
            assert!(
                e.contains("EBUSY") && e.contains("rebinding needs ~1 s"),
                "{e}"
            );
            assert!(
                e.contains(&format!("AF_XDP bind to {} queue 0", a.name)),
                "{e}"
            );
        }
    }
    // After more than a second the queue is free for certain.
    std::thread::sleep(Duration::from_millis(1100));
    let server = EchoServer::start(&hosts, A, port, open(Duration::ZERO)).unwrap();
    ping_from_b(&hosts, to, 40005, 20);
    assert_eq!(server.finish().echoed, 20);
    assert!(!xdp_attached(&hosts, A, &a.name));
}

#[test]
fn generic_mode_forced_and_as_fallback_when_native_is_refused() {
    if !TestHosts::require("generic_mode_forced_and_as_fallback_when_native_is_refused") {
        return;
    }
    // Forced generic mode.
    let hosts = TestHosts::pair().unwrap();
    let a = hosts.iface(A, 0).clone();
    let port = 7005;
    let ifname = a.name.clone();
    let server = EchoServer::start(&hosts, A, port, move || {
        Ok(vec![XdpSocket::open(
            SocketConfig::new(ifname, 0)
                .port(port)
                .mode(ModeRequest::Generic),
        )?])
    })
    .unwrap();
    println!("{}", server.explain);
    assert!(
        server.explain.contains("generic XDP, copy mode"),
        "{}",
        server.explain
    );
    let dev = hosts
        .ip(A, &["-d", "link", "show", "dev", &a.name])
        .unwrap();
    assert!(dev.contains("xdpgeneric"), "{dev}");
    ping_from_b(&hosts, SocketAddr::from((a.addr, port)), 40006, 300);
    assert_eq!(server.finish().echoed, 300);
    drop(hosts);

    // veth refuses native XDP when the peer's MTU exceeds a page (ERANGE):
    // Auto falls back to generic and says why; Native alone fails.
    let hosts = TestHosts::builder()
        .hosts(2)
        .link(A, B)
        .mtu(9000)
        .permanent_neighbours(true)
        .build()
        .unwrap();
    let a = hosts.iface(A, 0).clone();
    let ifname = a.name.clone();
    let native_only = hosts.run_in(A, move || {
        XdpSocket::open(SocketConfig::new(ifname, 0).mode(ModeRequest::Native)).unwrap_err()
    });
    println!("native only: {native_only}");
    assert!(
        native_only.to_string().contains("in native mode failed"),
        "{native_only}"
    );
    let ifname = a.name.clone();
    let server = EchoServer::start(&hosts, A, port, move || {
        let s = XdpSocket::open(SocketConfig::new(ifname, 0).port(port))?;
        assert_eq!(s.mode().attach, AttachMode::Generic);
        Ok(vec![s])
    })
    .unwrap();
    println!("{}", server.explain);
    assert!(server.explain.contains("generic XDP"), "{}", server.explain);
    assert!(
        server.explain.contains("in native mode failed"),
        "{}",
        server.explain
    );
    ping_from_b(&hosts, SocketAddr::from((a.addr, port)), 40007, 300);
    assert_eq!(server.finish().echoed, 300);
}

#[test]
fn busy_poll_mode_echoes() {
    if !TestHosts::require("busy_poll_mode_echoes") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let a = hosts.iface(A, 0).clone();
    let port = 7006;
    let ifname = a.name.clone();
    let server = EchoServer::start(&hosts, A, port, move || {
        Ok(vec![XdpSocket::open(
            SocketConfig::new(ifname, 0)
                .port(port)
                .busy_poll(Some(insane_xdp::BusyPoll::default())),
        )?])
    })
    .unwrap();
    assert!(server.explain.contains("busy-poll"), "{}", server.explain);
    ping_from_b(&hosts, SocketAddr::from((a.addr, port)), 40008, 500);
    let report = server.finish();
    assert_eq!(report.echoed, 500);
    assert!(
        report.stats.unwrap().rx_wakeups > 0,
        "busy poll drives RX with recvfrom"
    );
}

#[test]
fn two_queues_share_one_program() {
    if !TestHosts::require("two_queues_share_one_program") {
        return;
    }
    let hosts = TestHosts::builder()
        .hosts(2)
        .link(A, B)
        .queues(2)
        .permanent_neighbours(true)
        .build()
        .unwrap();
    let a = hosts.iface(A, 0).clone();
    let port = 7007;
    let ifname = a.name.clone();
    let server = EchoServer::start(&hosts, A, port, move || {
        let q0 = XdpSocket::open(SocketConfig::new(ifname.clone(), 0).port(port))?;
        let q1 = XdpSocket::open(SocketConfig::new(ifname, 1).program(q0.program().clone()))?;
        assert!(std::sync::Arc::ptr_eq(q0.program(), q1.program()));
        Ok(vec![q0, q1])
    })
    .unwrap();
    println!("{}", server.explain);
    // Several flows (source ports) so both queues may see traffic.
    let to = SocketAddr::from((a.addr, port));
    for flow in 0..8 {
        ping_from_b(&hosts, to, 41000 + flow, 20);
    }
    assert_eq!(server.finish().echoed, 8 * 20);
}

#[test]
fn errors_name_their_cause() {
    if !TestHosts::require("errors_name_their_cause") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let a = hosts.iface(A, 0).clone();
    let ifname = a.name.clone();
    hosts.run_in(A, move || {
        let err = XdpSocket::open(SocketConfig::new("eth9", 0)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(err.to_string(), "interface eth9 not found");

        let err = XdpSocket::open(SocketConfig::new(&ifname, 0).frame_size(3000)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("2048 or 4096"), "{err}");

        let err = XdpSocket::open(SocketConfig::new(&ifname, 5)).unwrap_err();
        println!("{err}");
        assert!(err.to_string().contains("queue 5 does not exist"), "{err}");

        let err = XdpSocket::open(
            SocketConfig::new(&ifname, 0).zero_copy(insane_xdp::ZeroCopy::Required),
        )
        .unwrap_err();
        println!("{err}");
        assert!(
            err.to_string().contains("zero-copy") && err.to_string().contains("EOPNOTSUPP"),
            "{err}"
        );

        // A second program on the same interface is refused; a second
        // socket on a bound queue is refused (EBUSY).
        let first = XdpSocket::open(SocketConfig::new(&ifname, 0)).unwrap();
        let err =
            XdpSocket::open(SocketConfig::new(&ifname, 0).bind_retry(Duration::ZERO)).unwrap_err();
        println!("{err}");
        assert!(
            err.to_string().contains("attaching the XDP program"),
            "{err}"
        );
        let err = XdpSocket::open(
            SocketConfig::new(&ifname, 0)
                .program(first.program().clone())
                .bind_retry(Duration::ZERO),
        )
        .unwrap_err();
        println!("{err}");
        assert!(err.to_string().contains("EBUSY"), "{err}");
        drop(first);

        // Without CAP_NET_ADMIN/CAP_NET_RAW/CAP_BPF/CAP_SYS_ADMIN (dropped
        // from this thread only; it ends after this closure).
        drop_net_capabilities();
        let err = XdpSocket::open(SocketConfig::new(&ifname, 0)).unwrap_err();
        println!("{err}");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("needs CAP_NET_ADMIN"), "{err}");
        let err = insane_xdp::probe(&ifname, 0).unwrap_err();
        assert!(err.to_string().contains("needs CAP_NET_ADMIN"), "{err}");
    });
    // Nothing left attached by the failed attempts.
    assert!(!xdp_attached(&hosts, A, &a.name));
}

/// Clears CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN and CAP_BPF from the
/// calling thread's effective set (capabilities are per thread).
fn drop_net_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes two Data structs (version 3) into `data`.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    for cap in [12u32, 13, 21, 39] {
        data[(cap / 32) as usize].effective &= !(1 << (cap % 32));
    }
    // SAFETY: capset reads the header and two Data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn probe_reports_the_mode_and_open_follows_at_once() {
    if !TestHosts::require("probe_reports_the_mode_and_open_follows_at_once") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let a = hosts.iface(A, 0).clone();
    let port = 7008;
    let ifname = a.name.clone();
    let mode = hosts.run_in(A, move || insane_xdp::probe(&ifname, 0).unwrap());
    println!("probe: {mode}");
    assert_eq!(mode.attach, AttachMode::Native);
    assert!(!mode.zero_copy, "veth has no zero-copy AF_XDP");
    assert!(
        !xdp_attached(&hosts, A, &a.name),
        "probe leaves nothing attached"
    );
    let err = hosts.run_in(A, || insane_xdp::probe("eth9", 0).unwrap_err());
    assert_eq!(err.to_string(), "interface eth9 not found");
    // Opening right after the probe works (EBUSY is retried).
    let ifname = a.name.clone();
    let server = EchoServer::start(&hosts, A, port, move || {
        Ok(vec![XdpSocket::open(
            SocketConfig::new(ifname, 0).port(port),
        )?])
    })
    .unwrap();
    ping_from_b(&hosts, SocketAddr::from((a.addr, port)), 40009, 20);
    assert_eq!(server.finish().echoed, 20);
}
