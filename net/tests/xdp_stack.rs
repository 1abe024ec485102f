//! The userspace stack on AF_XDP between two network namespaces: insane's
//! [`Interface`] over an [`XdpDevice`] on host A's veth, a plain kernel
//! UDP socket on host B.
//!
//! Deployment used: the stack owns its own address (`10.77.1.100`, the
//! kernel of A keeps `10.77.1.1`) and claims it in the XDP program, which
//! then steers ARP for it and ICMP to it to the stack as well as the bound
//! UDP port; the stack resolves B itself from a cold ARP cache and answers
//! ARP and ping. Everything else (A's kernel TCP, ARP for `10.77.1.1`)
//! stays with the kernel.
//!
//! Run as root; under `CI=true` a missing capability fails the tests,
//! otherwise they are skipped with the reason.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use insane_net::config::Ipv4Cidr;
use insane_net::stack::testing::frames;
use insane_net::stack::wire::{ArpOperation, EthernetAddress, Icmpv4Packet, Icmpv4Repr};
use insane_net::stack::xdp::XdpDevice;
use insane_net::stack::{
    DropReason, EndpointStats, FrameDevice, Interface, InterfaceConfig, Stats, TxFrame,
};
use insane_testhosts::{Iface, TestHosts};
use insane_xdp::{SocketConfig, XdpSocket, XdpStats};

const A: usize = 0;
const B: usize = 1;
const STACK_PORT: u16 = 7100;
const PEER_PORT: u16 = 7101;
/// Largest UDP payload on a 1500-byte MTU.
const MAX_PAYLOAD: usize = 1472;
/// Datagrams B keeps in flight.
const WINDOW: usize = 32;

/// Datagrams per run (also in debug builds: about 10 s there, 2 s in
/// release).
fn datagrams() -> usize {
    100_000
}

fn stack_ip(a: &Iface) -> Ipv4Addr {
    let o = a.addr.octets();
    Ipv4Addr::new(o[0], o[1], o[2], 100)
}

/// Payload `i`: length 1..=1472 (every length within 1472 consecutive
/// datagrams), bytes `first + 7 j` so the receiver can check any payload.
fn payload(i: usize) -> Vec<u8> {
    let len = 1 + (i * 7919) % MAX_PAYLOAD;
    let first = (i % 251) as u8;
    (0..len)
        .map(|j| first.wrapping_add((j as u8).wrapping_mul(7)))
        .collect()
}

fn well_formed(p: &[u8]) -> bool {
    !p.is_empty()
        && p.iter()
            .enumerate()
            .all(|(j, &b)| b == p[0].wrapping_add((j as u8).wrapping_mul(7)))
}

/// What the stack thread saw.
#[derive(Debug)]
struct StackReport {
    explain: String,
    stats: Stats,
    endpoint: EndpointStats,
    xdp: XdpStats,
    /// Datagrams echoed.
    echoed: u64,
    /// Received payloads not of the [`payload`] pattern (other than the
    /// greeting).
    corrupt: u64,
    /// Whether B's MAC was unknown before the first send.
    cold_cache: bool,
    /// B's MAC as the stack resolved it.
    resolved: Option<EthernetAddress>,
}

/// The insane stack on A: an echo server for [`payload`]s on
/// `STACK_PORT`, which first greets `peer` (from a cold ARP cache).
struct Stack {
    stop: Arc<AtomicBool>,
    go: mpsc::Sender<()>,
    thread: JoinHandle<Result<StackReport, String>>,
    explain: String,
}

impl Stack {
    fn start(hosts: &TestHosts) -> Stack {
        let a = hosts.iface(A, 0).clone();
        let b = hosts.iface(B, 0).clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = hosts.spawn_in(A, move || {
            let opened = (|| {
                let socket = XdpSocket::open(SocketConfig::new(&a.name, 0))?;
                let device = XdpDevice::new(socket)?;
                device.claim_address(stack_ip(&a))?;
                device.bind_port(STACK_PORT)?;
                Ok::<_, std::io::Error>(device)
            })();
            let device = match opened {
                Ok(d) => d,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e.to_string());
                }
            };
            let explain = device.explain();
            let mac = device.mac();
            assert_eq!(mac, EthernetAddress(a.mac), "MAC read with SIOCGIFHWADDR");
            let mut iface = Interface::new(
                device,
                InterfaceConfig::new(Ipv4Cidr::new(stack_ip(&a), a.prefix_len).into()),
            );
            let ep = iface.bind(STACK_PORT).map_err(|e| e.to_string())?;
            ready_tx.send(Ok(explain.clone())).unwrap();
            go_rx.recv().map_err(|e| e.to_string())?;

            let peer = SocketAddrV4::new(b.addr, PEER_PORT);
            let now = Instant::now();
            let cold_cache = iface.neighbor(b.addr, now).is_none();
            let mut hello = iface.alloc_tx().ok_or("no TX buffer")?;
            assert!(TxFrame::extend_from_slice(&mut hello, b"hello"));
            iface
                .send_to(ep, peer, hello, now)
                .map_err(|e| format!("greeting: {:?}", e.kind))?;

            let (mut echoed, mut corrupt) = (0u64, 0u64);
            while !stop2.load(Ordering::Relaxed) {
                let now = Instant::now();
                iface.poll(now);
                while let Some(d) = iface.recv_from(ep) {
                    if !well_formed(d.payload()) {
                        corrupt += 1;
                    }
                    let Some(mut tx) = iface.alloc_tx() else {
                        continue;
                    };
                    TxFrame::extend_from_slice(&mut tx, d.payload());
                    let to = d.peer();
                    drop(d);
                    if iface.send_to(ep, to, tx, now).is_ok() {
                        echoed += 1;
                    }
                }
                iface.flush();
            }
            let resolved = iface.neighbor(b.addr, Instant::now());
            Ok(StackReport {
                explain,
                stats: iface.stats(),
                endpoint: iface.endpoint_stats(ep).unwrap(),
                xdp: iface.device().socket().stats().map_err(|e| e.to_string())?,
                echoed,
                corrupt,
                cold_cache,
                resolved,
            })
        });
        let explain = match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => panic!("opening the stack on AF_XDP failed: {e}"),
            Err(e) => panic!("stack thread did not start: {e}"),
        };
        println!("stack: {explain}");
        Stack {
            stop,
            go: go_tx,
            thread,
            explain,
        }
    }

    fn finish(self) -> StackReport {
        self.stop.store(true, Ordering::Relaxed);
        let report = self.thread.join().expect("stack thread panicked");
        report.unwrap_or_else(|e| panic!("stack: {e}"))
    }
}

/// B's side of the flow: greeting, then `n` payloads echoed in order with
/// at most [`WINDOW`] in flight. Returns the elapsed time.
fn peer_flow(b: &Iface, stack: SocketAddr, n: usize, go: mpsc::Sender<()>) -> Duration {
    let sock = UdpSocket::bind((b.addr, PEER_PORT)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    go.send(()).unwrap();
    let mut buf = vec![0u8; 2048];
    let (len, from) = sock
        .recv_from(&mut buf)
        .expect("no greeting from the stack: ARP resolution from a cold cache failed?");
    assert_eq!(&buf[..len], b"hello");
    assert_eq!(from, stack);

    let start = Instant::now();
    let (mut sent, mut received) = (0usize, 0usize);
    while received < n {
        while sent < n && sent - received < WINDOW {
            let p = payload(sent);
            assert_eq!(sock.send_to(&p, stack).unwrap(), p.len());
            sent += 1;
        }
        let (len, from) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("echo {received} of {n} missing ({sent} sent): {e}"));
        assert_eq!(from, stack);
        let want = payload(received);
        assert!(
            buf[..len] == want[..],
            "echo {received}: {len} bytes, expected {} (lost or reordered datagram)",
            want.len()
        );
        received += 1;
    }
    start.elapsed()
}

/// An Ethernet + IPv4 + UDP frame from B to the stack's port, as bytes.
fn udp_to_stack(a: &Iface, b: &Iface, payload: &[u8]) -> Vec<u8> {
    frames::udp_frame(
        EthernetAddress(b.mac),
        EthernetAddress(a.mac),
        SocketAddrV4::new(b.addr, PEER_PORT + 1),
        SocketAddrV4::new(stack_ip(a), STACK_PORT),
        payload,
    )
}

/// Malformed frames for the stack (each passes the XDP program's checks,
/// so it reaches the stack) and the drop reason each must be counted as.
fn malformed(a: &Iface, b: &Iface) -> Vec<(&'static str, Vec<u8>, DropReason)> {
    let (amac, bmac) = (EthernetAddress(a.mac), EthernetAddress(b.mac));
    let mut out = Vec::new();

    let mut f = udp_to_stack(a, b, &[0x55; 64]);
    let last = f.len() - 1;
    f[last] ^= 0xff; // payload changed, checksum not
    out.push(("bad UDP checksum", f, DropReason::BadChecksum));

    let mut f = udp_to_stack(a, b, &[0x55; 64]);
    f[14 + 10] ^= 0xff; // IPv4 header checksum
    out.push(("bad IPv4 header checksum", f, DropReason::BadChecksum));

    let mut f = udp_to_stack(a, b, &[0x55; 64]);
    f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&2000u16.to_be_bytes());
    out.push(("UDP length beyond the packet", f, DropReason::BadLength));

    let mut f = udp_to_stack(a, b, &[0x55; 64]);
    f.truncate(f.len() - 10); // IPv4 total length now beyond the frame
    out.push(("truncated frame", f, DropReason::Truncated));

    let mut f = frames::arp_frame(
        ArpOperation::Request,
        bmac,
        b.addr,
        EthernetAddress([0; 6]),
        stack_ip(a),
    );
    f[14..16].copy_from_slice(&6u16.to_be_bytes()); // hardware type IEEE 802
    out.push((
        "ARP with a foreign hardware type",
        f,
        DropReason::ArpUnsupported,
    ));

    let mut f = frames::icmp_echo_request(bmac, amac, b.addr, stack_ip(a), 1, 1, b"ping");
    let last = f.len() - 1;
    f[last] ^= 0xff;
    out.push(("ICMP echo with a bad checksum", f, DropReason::BadChecksum));
    out
}

/// Sends `frames` out of B's veth `ifname` with an AF_PACKET raw socket,
/// `rounds` times, pausing `gap` between rounds. Call inside B.
fn inject(ifname: &str, dst: [u8; 6], frames: &[Vec<u8>], rounds: usize, gap: Duration) {
    // SAFETY: plain socket creation; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        )
    };
    assert!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    let name = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: `name` is a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(ifindex > 0, "interface {ifname} not found in B");
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&dst);
    for _ in 0..rounds {
        for f in frames {
            // SAFETY: `f` and `sll` are live for the call, lengths match.
            let rc = unsafe {
                libc::sendto(
                    fd,
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert_eq!(
                rc,
                f.len() as isize,
                "AF_PACKET sendto: {}",
                std::io::Error::last_os_error()
            );
        }
        std::thread::sleep(gap);
    }
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
}

/// Both directions of UDP between the stack on AF_XDP and a kernel socket,
/// contents checked, starting from a cold ARP cache, with malformed frames
/// injected into A's veth from B during the flow.
#[test]
fn stack_on_xdp_echoes_kernel_udp_with_cold_arp_and_malformed_frames() {
    if !TestHosts::require("stack_on_xdp_echoes_kernel_udp_with_cold_arp_and_malformed_frames") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let stack = Stack::start(&hosts);
    assert!(stack.explain.contains("copy mode"), "{}", stack.explain);

    let bad = malformed(&a, &b);
    let rounds = 20;
    let injector = {
        let (ifname, dst) = (b.name.clone(), a.mac);
        let frames: Vec<Vec<u8>> = bad.iter().map(|(_, f, _)| f.clone()).collect();
        hosts.spawn_in(B, move || {
            // Let the flow start first, then spread the rounds over it.
            std::thread::sleep(Duration::from_millis(50));
            inject(&ifname, dst, &frames, rounds, Duration::from_millis(5));
        })
    };

    let n = datagrams();
    let stack_addr = SocketAddr::from((stack_ip(&a), STACK_PORT));
    let go = stack.go.clone();
    let b2 = b.clone();
    let elapsed = hosts.run_in(B, move || peer_flow(&b2, stack_addr, n, go));
    injector.join().expect("injector panicked");
    // Let the last injected frames arrive.
    std::thread::sleep(Duration::from_millis(50));
    let report = stack.finish();
    println!(
        "{n} datagrams of 1..={MAX_PAYLOAD} B echoed in {elapsed:?} ({:.0}/s each way)",
        n as f64 / elapsed.as_secs_f64()
    );
    println!("stack stats: {:?}", report.stats);
    println!("xdp stats: {:?}", report.xdp);
    assert!(elapsed < Duration::from_secs(120), "too slow: {elapsed:?}");

    // Contents: B checked every echo; the stack checked every payload.
    assert_eq!(report.corrupt, 0);
    assert_eq!(report.echoed, n as u64);
    assert_eq!(report.endpoint.delivered, n as u64);

    // ARP from a cold cache: the stack asked, B answered, the stack learnt.
    assert!(report.cold_cache);
    assert_eq!(report.resolved, Some(EthernetAddress(b.mac)));
    assert!(report.stats.tx.arp_requests >= 1, "{:?}", report.stats.tx);
    assert!(report.stats.arp.learned >= 1, "{:?}", report.stats.arp);

    // Malformed frames: each counted under its reason.
    let mut want = std::collections::HashMap::new();
    for (name, _, reason) in &bad {
        println!("injected {rounds} x {name} -> {reason:?}");
        *want.entry(*reason).or_insert(0u64) += rounds as u64;
    }
    for (reason, count) in want {
        assert!(
            report.stats.rx.drops.get(reason) >= count,
            "{reason:?}: counted {} of {count} injected ({:?})",
            report.stats.rx.drops.get(reason),
            report.stats.rx.drops
        );
    }
    assert!(report.explain.contains(&a.name));
}

/// While the program is attached and the stack runs: a kernel TCP
/// connection into A works, ARP for and ping to A's kernel address are the
/// kernel's, and ping to the stack's address is answered by the stack.
#[test]
fn kernel_keeps_other_traffic_and_stack_answers_ping() {
    if !TestHosts::require("kernel_keeps_other_traffic_and_stack_answers_ping") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let stack = Stack::start(&hosts);
    // Start the stack's loop (its greeting to B finds no socket there).
    stack.go.send(()).unwrap();

    // Kernel TCP into A, on A's kernel address.
    let listen_addr = SocketAddr::from((a.addr, 7200));
    let server = hosts.spawn_in(A, move || {
        let l = TcpListener::bind(listen_addr).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
        buf
    });
    std::thread::sleep(Duration::from_millis(100));
    let stack_ip = stack_ip(&a);
    let (echo, pings) = hosts.run_in(B, move || {
        let mut c = TcpStream::connect_timeout(&listen_addr, Duration::from_secs(5))
            .expect("kernel TCP into A while the XDP program is attached");
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        (buf, ping(stack_ip, 3))
    });
    assert_eq!(&echo, b"hello");
    assert_eq!(&server.join().unwrap(), b"hello");
    assert_eq!(pings, 3, "ICMP echo replies from the stack");

    let report = stack.finish();
    println!("stack stats: {:?}", report.stats);
    assert!(
        report.stats.rx.icmp_echo_requests >= 3,
        "{:?}",
        report.stats.rx
    );
    assert!(
        report.stats.tx.icmp_echo_replies >= 3,
        "{:?}",
        report.stats.tx
    );
    // The stack resolved B from its ARP request or by asking itself.
    assert_eq!(report.resolved, Some(EthernetAddress(b.mac)));
}

/// Pings `dst` `count` times with a raw ICMP socket; returns the replies.
fn ping(dst: Ipv4Addr, count: u16) -> u16 {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut replies = 0;
    for seq in 0..count {
        let repr = Icmpv4Repr::EchoRequest {
            ident: 0x1234,
            seq_no: seq,
            data: b"insane ping",
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
            &Default::default(),
        );
        sock.send_to(&buf, &SocketAddr::from((dst, 0)).into())
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let mut rx = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
            let Ok(n) = sock.recv(&mut rx) else { break };
            // SAFETY: `recv` initialised the first `n` bytes.
            let rx: Vec<u8> = rx[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
            let ihl = ((rx[0] & 0x0f) as usize) * 4;
            if rx.len() < ihl + 8 || rx[12..16] != dst.octets() {
                continue;
            }
            let icmp = &rx[ihl..];
            // Type 0 = echo reply, with our identifier and sequence.
            if icmp[0] == 0 && icmp[4..6] == [0x12, 0x34] && icmp[6..8] == seq.to_be_bytes() {
                replies += 1;
                break;
            }
        }
    }
    replies
}
