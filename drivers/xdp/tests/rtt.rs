//! Raw AF_XDP echo round trip between two namespaces, measured (not
//! asserted beyond correctness): a kernel UDP socket in B spins on a
//! non-blocking receive; in A an XSK echoes in place (with and without
//! kernel busy polling), compared with a kernel UDP echo in A. A single
//! test in its own binary, so no other test competes for the 2 CPUs.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{EchoServer, kernel_udp, percentile};
use insane_testhosts::TestHosts;
use insane_xdp::{BusyPoll, SocketConfig, XdpSocket};

const A: usize = 0;
const B: usize = 1;
const WARMUP: usize = 2_000;
const SAMPLES: usize = 20_000;

/// B's side: `WARMUP + SAMPLES` ping-pongs of `size` bytes, spinning on a
/// non-blocking socket; returns p50 and p99.
fn measure(hosts: &TestHosts, to: SocketAddr, from_port: u16, size: usize) -> (Duration, Duration) {
    let b = hosts.iface(B, 0).addr;
    hosts.run_in(B, move || {
        let sock = kernel_udp(SocketAddr::from((b, from_port)));
        sock.set_nonblocking(true).unwrap();
        let msg = common::payload(1, size);
        let mut buf = [0u8; 2048];
        let mut rtts = Vec::with_capacity(SAMPLES);
        for i in 0..WARMUP + SAMPLES {
            let t = Instant::now();
            sock.send_to(&msg, to).unwrap();
            let deadline = t + Duration::from_secs(2);
            let n = loop {
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline, "echo {i} lost");
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            if i >= WARMUP {
                rtts.push(t.elapsed());
            }
            assert_eq!(&buf[..n], &msg[..]);
        }
        (percentile(&mut rtts, 50), percentile(&mut rtts, 99))
    })
}

#[test]
fn raw_af_xdp_echo_rtt() {
    if !TestHosts::require("raw_af_xdp_echo_rtt") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let a = hosts.iface(A, 0).clone();
    let port = 7200;
    let to = SocketAddr::from((a.addr, port));
    let mut lines = Vec::new();

    for (label, busy) in [
        ("XSK echo", None),
        ("XSK echo, SO_PREFER_BUSY_POLL", Some(BusyPoll::default())),
    ] {
        let name = a.name.clone();
        let server = EchoServer::start(&hosts, A, port, move || {
            Ok(vec![XdpSocket::open(
                SocketConfig::new(name, 0).port(port).busy_poll(busy),
            )?])
        })
        .unwrap();
        for size in [64, 1472] {
            let (p50, p99) = measure(&hosts, to, 40200, size);
            lines.push(format!(
                "{label:<32} {size:>5} B  p50 {p50:>10.1?}  p99 {p99:>10.1?}"
            ));
        }
        let report = server.finish();
        assert_eq!(report.echoed, 2 * (WARMUP + SAMPLES));
        // Let the queue be released before the next bind.
        std::thread::sleep(Duration::from_millis(1100));
    }

    // Reference: a kernel UDP echo in A, spinning on a non-blocking socket.
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let a_addr = a.addr;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let echo = hosts.spawn_in(A, move || {
        let sock = UdpSocket::bind((a_addr, port)).unwrap();
        sock.set_nonblocking(true).unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                sock.send_to(&buf[..n], from).unwrap();
            }
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    for size in [64, 1472] {
        let (p50, p99) = measure(&hosts, to, 40201, size);
        lines.push(format!(
            "{:<32} {size:>5} B  p50 {p50:>10.1?}  p99 {p99:>10.1?}",
            "kernel UDP echo (spinning)"
        ));
    }
    stop.store(true, Ordering::Relaxed);
    echo.join().unwrap();
    println!("round trips, veth between namespaces, B = kernel UDP socket spinning:");
    for l in &lines {
        println!("  {l}");
    }
}
