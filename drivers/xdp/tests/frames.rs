//! The frame API on a live socket: TX frames built from scratch with
//! headroom and `prepend`, RX frames, frame accounting, and the socket as
//! a reactor of an insane runtime core.

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use common::{kernel_udp, parse_udp, ping_pong, prepend_udp_headers};
use insane_runtime::runtime::{IdlePolicy, Runtime};
use insane_testhosts::TestHosts;
use insane_xdp::{SocketConfig, XdpSocket};

const A: usize = 0;
const B: usize = 1;

#[test]
fn tx_frames_built_with_headroom_reach_a_kernel_socket() {
    if !TestHosts::require("tx_frames_built_with_headroom_reach_a_kernel_socket") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let b_port = 40100;
    // B listens with a kernel socket; A sends datagrams built in UMEM.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = hosts.spawn_in(B, move || {
        let sock = kernel_udp(SocketAddr::from((b.addr, b_port)));
        ready_tx.send(()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..100 {
            let (n, from) = sock
                .recv_from(&mut buf)
                .expect("datagram from the XSK missing");
            got.push((from, buf[..n].to_vec()));
        }
        got
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let (a2, b2) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    hosts.run_in(A, move || {
        let sock = XdpSocket::open(SocketConfig::new(&a2.name, 0).tx_headroom(128)).unwrap();
        let src = SocketAddrV4::new(a2.addr, 7100);
        let dst = SocketAddrV4::new(b2.addr, b_port);
        for i in 0..100 {
            let mut tx = sock.tx_frame().expect("free TX frame");
            assert_eq!(tx.headroom(), 128);
            assert!(tx.is_empty());
            assert_eq!(tx.tailroom(), 2048 - 128);
            let len = 1 + i * 14;
            tx.extend_from_slice(&common::payload(i, len));
            prepend_udp_headers(&mut tx, a2.mac, b2.mac, src, dst);
            assert_eq!(tx.len(), 42 + len);
            assert_eq!(tx.headroom(), 128 - 42);
            let u = parse_udp(&tx).unwrap();
            assert!(common::checksums_ok(&tx, &u));
            // Not enough headroom for another 100 bytes: refused, unchanged.
            assert!(tx.try_prepend(100).is_err());
            assert_eq!(tx.len(), 42 + len);
            let mut tx = Some(tx);
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Some(frame) = tx.take() {
                if let Err(back) = sock.send(frame) {
                    assert!(Instant::now() < deadline, "TX ring stayed full");
                    sock.drive();
                    tx = Some(back);
                }
            }
        }
        // All completions come back.
        let deadline = Instant::now() + Duration::from_secs(5);
        while sock.tx_in_flight() > 0 {
            assert!(
                Instant::now() < deadline,
                "{} TX frames never completed",
                sock.tx_in_flight()
            );
            sock.drive();
            std::thread::yield_now();
        }
        assert_eq!(sock.stats().unwrap().tx_invalid_descs, 0);
    });
    let got = receiver.join().unwrap();
    for (i, (from, data)) in got.iter().enumerate() {
        assert_eq!(*from, SocketAddr::from((a.addr, 7100)));
        assert_eq!(data, &common::payload(i, 1 + i * 14), "datagram {i}");
    }
}

#[test]
fn frames_are_accounted_and_returned() {
    if !TestHosts::require("frames_are_accounted_and_returned") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let a = hosts.iface(A, 0).clone();
    hosts.run_in(A, move || {
        // 64 frames: 32 with the kernel for RX, 32 for TX.
        let sock = XdpSocket::open(
            SocketConfig::new(&a.name, 0)
                .frame_count(64)
                .ring_size(32)
                .frame_size(4096)
                .huge_pages(false),
        )
        .unwrap();
        let mut held = Vec::new();
        while let Some(f) = sock.tx_frame() {
            assert_eq!(f.tailroom(), 4096 - 128);
            held.push(f);
            assert!(held.len() <= 64, "more TX frames than the UMEM has");
        }
        assert_eq!(held.len(), 32);
        drop(held);
        assert!(
            sock.tx_frame().is_some(),
            "dropped TX frames return to the pool"
        );
        // Empty frames are not transmitted.
        sock.send(sock.tx_frame().unwrap()).unwrap();
        assert_eq!(sock.tx_in_flight(), 0);
        assert!(sock.recv().is_none());
        assert_eq!(sock.drive(), 0);
    });
}

#[test]
fn socket_as_reactor_of_an_insane_core() {
    if !TestHosts::require("socket_as_reactor_of_an_insane_core") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let port = 7101;
    let count = 300;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let name = a.name.clone();
    let server = hosts.spawn_in(A, move || {
        let sock = XdpSocket::open(SocketConfig::new(&name, 0).port(port)).unwrap();
        let rt = Runtime::builder()
            .cores(1)
            .idle(IdlePolicy::Spin)
            .build()
            .unwrap();
        rt.block_on(async move {
            sock.register().unwrap();
            ready_tx.send(()).unwrap();
            let mut echoed = 0;
            while echoed < count {
                let mut frame =
                    insane_runtime::time::timeout(Duration::from_secs(10), sock.recv_async())
                        .await
                        .expect("no frame within 10 s");
                let u = parse_udp(&frame).expect("a UDP frame");
                common::swap_in_place(&mut frame, &u);
                sock.send(frame.into_tx()).expect("TX ring full");
                echoed += 1;
            }
            // Let the reactor reap the last completions.
            insane_runtime::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(sock.tx_in_flight(), 0);
            echoed
        })
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let to = SocketAddr::from((a.addr, port));
    hosts.run_in(B, move || {
        let sock = kernel_udp(SocketAddr::from((b.addr, 40101)));
        ping_pong(&sock, to, count);
    });
    assert_eq!(server.join().unwrap(), count);
}

#[test]
fn rx_frames_expose_headroom_and_can_be_held() {
    if !TestHosts::require("rx_frames_expose_headroom_and_can_be_held") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(A, 0).clone(), hosts.iface(B, 0).clone());
    let port = 7102;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let name = a.name.clone();
    let server = hosts.spawn_in(A, move || {
        let sock = XdpSocket::open(SocketConfig::new(&name, 0).port(port)).unwrap();
        ready_tx.send(()).unwrap();
        // Hold 100 frames at once, then check and drop them.
        let mut held = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while held.len() < 100 && Instant::now() < deadline {
            sock.drive();
            let want = 100 - held.len();
            sock.recv_batch(&mut held, want);
        }
        let _ = done_rx.recv_timeout(Duration::from_secs(5));
        let headroom = held.first().map(|f| f.headroom());
        for (i, f) in held.iter().enumerate() {
            let u = parse_udp(f).unwrap();
            assert_eq!(
                &f[u.payload..u.payload + u.payload_len],
                &common::payload(i, 10 + i)[..]
            );
        }
        (held.len(), headroom)
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let to = SocketAddr::from((a.addr, port));
    hosts.run_in(B, move || {
        let sock = kernel_udp(SocketAddr::from((b.addr, 40102)));
        for i in 0..100 {
            sock.send_to(&common::payload(i, 10 + i), to).unwrap();
        }
    });
    done_tx.send(()).unwrap();
    let (n, headroom) = server.join().unwrap();
    assert_eq!(n, 100);
    println!("RX frame headroom in copy mode: {headroom:?}");
    assert!(
        headroom.unwrap() >= 42,
        "room for a reply's headers in place"
    );
}

#[test]
fn ports_shared_by_two_queues_stay_until_the_last_claim_goes() {
    if !TestHosts::require("ports_shared_by_two_queues_stay_until_the_last_claim_goes") {
        return;
    }
    let hosts = TestHosts::builder()
        .hosts(2)
        .link(A, B)
        .queues(2)
        .build()
        .unwrap();
    let a = hosts.iface(A, 0).clone();
    hosts.run_in(A, move || {
        let q0 = XdpSocket::open(SocketConfig::new(&a.name, 0).port(7300).port(7301)).unwrap();
        let program = q0.program().clone();
        let q1 = XdpSocket::open(
            SocketConfig::new(&a.name, 1)
                .program(program.clone())
                .port(7300),
        )
        .unwrap();
        assert_eq!(program.ports(), [7300, 7301]);
        q1.bind_port(7300).unwrap(); // idempotent per socket
        drop(q1);
        assert_eq!(program.ports(), [7300, 7301], "q0 still claims 7300");
        q0.unbind_port(7301).unwrap();
        assert_eq!(program.ports(), [7300]);
        assert_eq!(q0.ports(), [7300]);
        drop(q0);
        assert!(program.ports().is_empty());
    });
}
