//! Shared pieces of the AF_XDP tests: raw frame parsing and in-place echo,
//! checksums, an echo loop on the XSK side and a kernel UDP peer.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use insane_xdp::{XdpRxFrame, XdpSocket, XdpStats};

pub const ETH_HLEN: usize = 14;

/// The UDP datagram inside an Ethernet frame, as offsets.
#[derive(Debug, Clone, Copy)]
pub struct Udp {
    pub ip: usize,
    pub udp: usize,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: usize,
    pub payload_len: usize,
}

/// Parses Ethernet/IPv4/UDP, bounds-checked; `None` for anything else.
pub fn parse_udp(f: &[u8]) -> Option<Udp> {
    if f.len() < ETH_HLEN + 20 || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = ETH_HLEN;
    let ihl = (f[ip] & 0x0f) as usize * 4;
    if f[ip] >> 4 != 4 || ihl < 20 || f[ip + 9] != 17 || f.len() < ip + ihl + 8 {
        return None;
    }
    let total = u16::from_be_bytes([f[ip + 2], f[ip + 3]]) as usize;
    let udp = ip + ihl;
    let ulen = u16::from_be_bytes([f[udp + 4], f[udp + 5]]) as usize;
    if total < ihl + 8 || ip + total > f.len() || ulen < 8 || ulen > total - ihl {
        return None;
    }
    let addr = |o: usize| Ipv4Addr::new(f[o], f[o + 1], f[o + 2], f[o + 3]);
    let port = |o: usize| u16::from_be_bytes([f[o], f[o + 1]]);
    Some(Udp {
        ip,
        udp,
        src: SocketAddrV4::new(addr(ip + 12), port(udp)),
        dst: SocketAddrV4::new(addr(ip + 16), port(udp + 2)),
        payload: udp + 8,
        payload_len: ulen - 8,
    })
}

fn sum16(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Whether the IPv4 header checksum and the UDP checksum (if present)
/// verify.
pub fn checksums_ok(f: &[u8], u: &Udp) -> bool {
    let ihl = u.udp - u.ip;
    if fold(sum16(0, &f[u.ip..u.ip + ihl])) != 0xffff {
        return false;
    }
    let ulen = u.payload_len + 8;
    let stored = u16::from_be_bytes([f[u.udp + 6], f[u.udp + 7]]);
    if stored == 0 {
        return true; // no UDP checksum
    }
    let mut acc = sum16(0, &f[u.ip + 12..u.ip + 20]); // addresses
    acc += 17 + ulen as u32;
    acc = sum16(acc, &f[u.udp..u.udp + ulen]);
    fold(acc) == 0xffff
}

/// Echoes a UDP frame in place: swaps MACs, IP addresses and ports. Both
/// checksums stay valid (their sums do not depend on the order of the
/// swapped fields), so nothing is recomputed.
pub fn swap_in_place(f: &mut [u8], u: &Udp) {
    for i in 0..6 {
        f.swap(i, 6 + i);
    }
    for i in 0..4 {
        f.swap(u.ip + 12 + i, u.ip + 16 + i);
    }
    for i in 0..2 {
        f.swap(u.udp + i, u.udp + 2 + i);
    }
}

/// What the XSK side of an echo saw.
#[derive(Debug, Default, Clone)]
pub struct EchoReport {
    pub echoed: usize,
    pub bad_checksums: usize,
    pub not_ours: usize,
    pub stats: Option<XdpStats>,
}

/// Echoes datagrams to `port` arriving on `sockets` until `stop` is set or
/// `limit` passes; busy-polls (yielding now and then).
pub fn echo_loop(
    sockets: &[XdpSocket],
    port: u16,
    stop: &AtomicBool,
    limit: Duration,
) -> EchoReport {
    let deadline = Instant::now() + limit;
    let mut report = EchoReport::default();
    let mut idle = 0u32;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let mut progressed = false;
        for sock in sockets {
            sock.drive();
            while let Some(frame) = sock.recv() {
                progressed = true;
                echo_one(sock, frame, port, &mut report);
            }
        }
        if progressed {
            idle = 0;
        } else {
            idle += 1;
            if idle % 64 == 0 {
                std::thread::yield_now();
            }
        }
    }
    report.stats = sockets.first().and_then(|s| s.stats().ok());
    report
}

fn echo_one(sock: &XdpSocket, mut frame: XdpRxFrame, port: u16, report: &mut EchoReport) {
    let Some(u) = parse_udp(&frame) else {
        report.not_ours += 1;
        return;
    };
    if u.dst.port() != port {
        report.not_ours += 1;
        return;
    }
    if !checksums_ok(&frame, &u) {
        report.bad_checksums += 1;
    }
    swap_in_place(&mut frame, &u);
    let mut tx = frame.into_tx();
    // The TX ring can be momentarily full: reap and retry (bounded).
    for _ in 0..10_000 {
        match sock.send(tx) {
            Ok(()) => {
                report.echoed += 1;
                return;
            }
            Err(back) => {
                tx = back;
                sock.drive();
            }
        }
    }
    panic!("TX ring stayed full");
}

/// Runs an echo loop on a thread inside host `host` of `hosts`: opens the
/// sockets with `open` (on that thread), reports them through the returned
/// channel, and echoes until `stop`.
pub struct EchoServer {
    pub stop: Arc<AtomicBool>,
    pub handle: std::thread::JoinHandle<EchoReport>,
    pub explain: String,
}

impl EchoServer {
    pub fn start<F>(
        hosts: &insane_testhosts::TestHosts,
        host: usize,
        port: u16,
        open: F,
    ) -> Result<Self, String>
    where
        F: FnOnce() -> std::io::Result<Vec<XdpSocket>> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let stop2 = stop.clone();
        let handle = hosts.spawn_in(host, move || {
            let sockets = match open() {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return EchoReport::default();
                }
            };
            let _ = tx.send(Ok(sockets
                .iter()
                .map(|s| s.explain())
                .collect::<Vec<_>>()
                .join("; ")));
            echo_loop(&sockets, port, &stop2, Duration::from_secs(60))
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(explain)) => Ok(Self {
                stop,
                handle,
                explain,
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(e) => Err(format!("echo server did not start: {e}")),
        }
    }

    pub fn finish(self) -> EchoReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("echo server panicked")
    }
}

/// A payload of `len` bytes for datagram `i`.
pub fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8)
        .collect()
}

/// A kernel UDP socket at `local` with a receive timeout and a large
/// receive buffer (SO_RCVBUFFORCE, root).
pub fn kernel_udp(local: SocketAddr) -> UdpSocket {
    let sock = UdpSocket::bind(local).expect("bind kernel UDP socket");
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let size: libc::c_int = 4 << 20;
    // SAFETY: setsockopt reads a live c_int of the size given.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    sock
}

/// Sends `count` datagrams of sizes cycling through 1..=1472 one at a time
/// to `to` and checks each echo; returns the round-trip times.
pub fn ping_pong(sock: &UdpSocket, to: SocketAddr, count: usize) -> Vec<Duration> {
    let mut buf = vec![0u8; 2048];
    let mut rtts = Vec::with_capacity(count);
    for i in 0..count {
        let len = 1 + (i * 7919) % 1472;
        let p = payload(i, len);
        let t = Instant::now();
        sock.send_to(&p, to).unwrap();
        let (n, from) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no echo for datagram {i} ({len} B): {e}"));
        rtts.push(t.elapsed());
        assert_eq!(from, to, "echo {i} from the wrong address");
        assert_eq!(n, len, "echo {i} has the wrong length");
        assert!(buf[..n] == p[..], "echo {i} has the wrong contents");
    }
    rtts
}

/// Percentile `p` (0..=100) of `v` (sorted in place).
pub fn percentile(v: &mut [Duration], p: usize) -> Duration {
    v.sort_unstable();
    v[(v.len() - 1) * p / 100]
}

/// Writes Ethernet/IPv4/UDP headers in front of the payload already in
/// `tx` (using its headroom), with both checksums complete.
pub fn prepend_udp_headers(
    tx: &mut insane_xdp::XdpTxFrame,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
) {
    let payload_len = tx.len();
    let ulen = (payload_len + 8) as u16;
    // UDP header, checksum over the pseudo header + header + payload.
    let mut acc = sum16(0, &src.ip().octets());
    acc = sum16(acc, &dst.ip().octets());
    acc += 17 + ulen as u32;
    acc = sum16(acc, &tx[..]);
    let udp = tx.prepend(8);
    udp[0..2].copy_from_slice(&src.port().to_be_bytes());
    udp[2..4].copy_from_slice(&dst.port().to_be_bytes());
    udp[4..6].copy_from_slice(&ulen.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    let acc = sum16(acc, udp);
    let mut csum = !fold(acc);
    if csum == 0 {
        csum = 0xffff;
    }
    udp[6..8].copy_from_slice(&csum.to_be_bytes());
    // IPv4 header.
    let ip = tx.prepend(20);
    ip.fill(0);
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ulen + 20).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let csum = !fold(sum16(0, ip));
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    // Ethernet header.
    let eth = tx.prepend(14);
    eth[0..6].copy_from_slice(&dst_mac);
    eth[6..12].copy_from_slice(&src_mac);
    eth[12..14].copy_from_slice(&[0x08, 0x00]);
}
