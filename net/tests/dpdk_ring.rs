//! The userspace stack over DPDK inside one process: two [`Interface`]s
//! on the two ends of a `net_ring` pair ([`insane_dpdk::ring_pair`]),
//! resolving each other from cold ARP caches and exchanging checked
//! datagrams; every mbuf back in its pool afterwards, including those of
//! datagrams dropped on other threads; and the policy's DPDK probe naming
//! the PMD. Feature `dpdk`.
//!
//! All tests initialise the EAL with the same arguments, which
//! `Eal::init` allows (it returns the first result), so they share one
//! EAL. Under `CI=true` a build without libdpdk fails; otherwise the tests
//! are skipped with the reason.

use std::net::SocketAddrV4;
use std::time::Instant;

use insane_dpdk::{Eal, Mbuf, Port, PortConfig, ring_pair};
use insane_net::config::Config as InsaneConfig;
use insane_net::qos::Qos;
use insane_net::qos::policy::{Capabilities, TransportKind, choose};
use insane_net::stack::dpdk::DpdkDevice;
use insane_net::stack::{
    EthernetAddress, Interface, InterfaceConfig, RxDatagram, SendStatus, TxFrame, UDP_HEADROOM,
};

// One CI rule and EAL argument list for every DPDK test binary.
#[path = "../../drivers/dpdk/tests/common/mod.rs"]
mod dpdk_common;
use dpdk_common::require_dpdk;

fn eal_args() -> Vec<String> {
    dpdk_common::eal_args("net-ring", 0, &["--vdev=net_ring0".to_string()])
}

fn eal() -> &'static Eal {
    Eal::init(eal_args()).unwrap_or_else(|e| panic!("EAL init: {e}"))
}

/// Payload `i`: 8 bytes of `i`, then 0..1000 bytes of a pattern.
fn payload(i: u64) -> Vec<u8> {
    let len = 8 + (i as usize * 7919) % 1000;
    let mut p: Vec<u8> = (0..len).map(|j| (i as usize + j * 13) as u8).collect();
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

fn interfaces() -> (Interface<DpdkDevice>, Interface<DpdkDevice>) {
    let (a, b) = ring_pair(1024).unwrap();
    let mut pa = Port::open(a, &PortConfig::default()).unwrap();
    let pb = Port::open(b, &PortConfig::default()).unwrap();
    // net_ring ports have MAC 00:00:00:00:00:00, which new() refuses.
    let e = DpdkDevice::new(pa.take_queue(0).unwrap()).unwrap_err();
    assert!(e.to_string().contains("with_mac"), "{e}");
    let (a, b) = ring_pair(1024).unwrap();
    drop((pa, pb));
    let mut pa = Port::open(a, &PortConfig::default()).unwrap();
    let mut pb = Port::open(b, &PortConfig::default()).unwrap();
    let mac_a = EthernetAddress([2, 0, 0, 0, 8, 1]);
    let mac_b = EthernetAddress([2, 0, 0, 0, 8, 2]);
    // The ports stay open while their queues (inside the devices) exist.
    let da = DpdkDevice::with_mac(pa.take_queue(0).unwrap(), mac_a).unwrap();
    let db = DpdkDevice::with_mac(pb.take_queue(0).unwrap(), mac_b).unwrap();
    assert!(da.explain().contains("PMD net_ring"), "{}", da.explain());
    let ia = Interface::new(da, InterfaceConfig::new("10.8.0.1/24".parse().unwrap()));
    let ib = Interface::new(db, InterfaceConfig::new("10.8.0.2/24".parse().unwrap()));
    (ia, ib)
}

#[test]
fn stack_over_a_ring_pair_resolves_arp_and_echoes_checked_datagrams() {
    if !require_dpdk("stack_over_a_ring_pair") {
        return;
    }
    eal();
    let (mut a, mut b) = interfaces();
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    let to_b = SocketAddrV4::new("10.8.0.2".parse().unwrap(), 6000);
    let now = Instant::now();
    let pool_a = a.device().queue().pool().clone();
    let pool_b = b.device().queue().pool().clone();
    assert_eq!((pool_a.in_use_count(), pool_b.in_use_count()), (0, 0));

    // Cold cache: the first datagram waits for ARP.
    assert!(a.neighbor("10.8.0.2".parse().unwrap(), now).is_none());
    let mut f = a.alloc_tx().unwrap();
    assert!(TxFrame::extend_from_slice(&mut f, &payload(0)));
    assert_eq!(a.send_to(ea, to_b, f, now).unwrap(), SendStatus::Queued);

    // a sends `total` datagrams (window 32), b echoes each, a checks.
    let total = 20_000u64;
    let (mut sent, mut echoed, mut checked) = (1u64, 0u64, 0u64);
    for _round in 0..total * 20 {
        if checked == total {
            break;
        }
        let now = Instant::now();
        b.poll(now);
        while let Some(d) = b.recv_from(eb) {
            assert_eq!(
                d.peer(),
                SocketAddrV4::new("10.8.0.1".parse().unwrap(), 5000)
            );
            let peer = d.peer();
            // Every other echo reuses the received mbuf (zero-copy
            // reply), the others copy into a fresh one.
            let r = if echoed % 2 == 0 {
                let len = d.len();
                let r = b.reuse_rx(d).expect("DPDK reuses received mbufs");
                assert_eq!(r.len(), len);
                assert!(TxFrame::headroom(&r) >= UDP_HEADROOM);
                r
            } else {
                let mut r = b.alloc_tx().expect("b has mbufs");
                assert!(TxFrame::extend_from_slice(&mut r, &d));
                r
            };
            b.send_to(eb, peer, r, now).expect("echo");
            echoed += 1;
        }
        b.flush();
        a.poll(now);
        while let Some(d) = a.recv_from(ea) {
            assert_eq!(&*d, &payload(checked)[..], "echo {checked}");
            checked += 1;
        }
        while sent < total
            && sent - checked < 32
            && a.neighbor("10.8.0.2".parse().unwrap(), now).is_some()
        {
            let mut f = a.alloc_tx().expect("a has mbufs");
            assert!(TxFrame::extend_from_slice(&mut f, &payload(sent)));
            a.send_to(ea, to_b, f, now).expect("send");
            sent += 1;
        }
        a.flush();
    }
    assert_eq!(
        checked,
        total,
        "echoed {echoed}, stats a {:?} b {:?}",
        a.stats(),
        b.stats()
    );
    assert_eq!(a.device().queue().pending(), 0);

    // Datagrams held by the application (as many as b's endpoint queue
    // holds: 256) and dropped on other threads.
    for i in 0..256u64 {
        let mut f = a.alloc_tx().unwrap();
        assert!(TxFrame::extend_from_slice(&mut f, &payload(i)));
        a.send_to(ea, to_b, f, Instant::now()).unwrap();
        if i % 32 == 31 {
            a.flush();
            b.poll(Instant::now());
        }
    }
    a.flush();
    let mut held: Vec<RxDatagram<Mbuf>> = Vec::new();
    for _ in 0..1000 {
        b.poll(Instant::now());
        while let Some(d) = b.recv_from(eb) {
            held.push(d);
        }
        if held.len() == 256 {
            break;
        }
    }
    assert_eq!(held.len(), 256);
    assert_eq!(
        pool_a.in_use_count(),
        256,
        "a's mbufs are held by b's datagrams"
    );
    let halves: Vec<Vec<RxDatagram<Mbuf>>> = vec![held.split_off(128), held];
    let threads: Vec<_> = halves
        .into_iter()
        .map(|h| {
            std::thread::spawn(move || {
                for (k, d) in h.iter().enumerate() {
                    assert!(d.len() >= 8, "datagram {k}");
                }
                drop(h);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(pool_a.in_use_count(), 0, "every mbuf of a back in its pool");
    assert_eq!(pool_b.in_use_count(), 0, "every mbuf of b back in its pool");
}

#[test]
fn policy_probes_dpdk_names_the_pmd_and_prefers_it_for_critical_datagrams() {
    if !require_dpdk("policy_probes_dpdk") {
        return;
    }
    let eal = eal();
    let port = eal.port_by_name("net_ring0").unwrap();
    let eal_toml: Vec<String> = eal_args().iter().map(|a| format!("{a:?}")).collect();
    let text = format!(
        "[dpdk]\neal = [{}]\nport = {port}\naddress = \"10.8.1.1/24\"\n",
        eal_toml.join(", ")
    );
    let config = InsaneConfig::from_toml_str(&text, "test.toml").unwrap();
    let caps = Capabilities::probe_with(&config);
    let what = caps.dpdk.clone();
    assert!(what.is_available(), "{what:?}");
    let text = format!("{what:?}");
    // Probing does not start the port: its link reads down until it is.
    assert!(
        text.contains("port 0 net_ring0, PMD net_ring, link"),
        "{text}"
    );
    let qos = Qos::builder().critical().best_effort().poll().build();
    let choice = choose(&qos, &caps).unwrap();
    assert_eq!(
        choice.transport,
        TransportKind::DpdkUdp,
        "{}",
        choice.explain
    );

    // A port that does not exist: Unavailable, with the reason.
    let missing = insane_net::qos::transport::dpdk::probe_dpdk(&eal_args(), 77);
    assert!(!missing.is_available());
    let why = missing.why_not().unwrap();
    assert!(why.contains("port 77 does not exist"), "{why}");
}
