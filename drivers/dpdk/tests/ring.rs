//! insane-dpdk inside one process on `net_ring` ports: frames through a
//! looped port and through a ring pair, the Mbuf operations, mbuf
//! accounting (no leak, also when received frames are dropped on another
//! thread), and the EAL/port error paths.
//!
//! Every test initialises the EAL with the same arguments, which
//! `Eal::init` allows (it returns the first result), so they share one
//! EAL; each uses its own ports.

mod common;

use std::io;

use common::{eal_args, require_dpdk};
use insane_dpdk::{BURST, Eal, Mbuf, Mempool, MempoolConfig, Port, PortConfig, ring_pair};

fn eal() -> &'static Eal {
    let args = eal_args("ring", 0, &["--vdev=net_ring0".to_string()]);
    match Eal::init(&args) {
        Ok(eal) => eal,
        Err(e) => panic!("EAL init: {e}"),
    }
}

/// Payload `i` of `len` bytes.
fn pattern(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

#[test]
fn second_init_returns_the_first_result_and_other_args_are_an_error() {
    if !require_dpdk("second_init") {
        return;
    }
    let first = eal();
    let again = eal();
    assert!(std::ptr::eq(first, again), "same arguments: the same EAL");
    assert!(
        first.version().starts_with("DPDK 22."),
        "{}",
        first.version()
    );
    let e = Eal::init(["--no-pci", "--vdev=net_null0"]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    assert!(e.to_string().contains("one EAL per process"), "{e}");
    assert!(e.to_string().contains("net_null0"), "{e}");
}

#[test]
fn looped_ring_port_carries_frames_in_order_and_returns_every_mbuf() {
    if !require_dpdk("looped_ring_port") {
        return;
    }
    let eal = eal();
    let id = eal
        .port_by_name("net_ring0")
        .expect("net_ring0 from --vdev");
    let mut port = Port::open(id, &PortConfig::default()).unwrap();
    assert_eq!(port.info().driver, "net_ring");
    assert!(port.link().up, "ring ports are up once started");
    let mut q = port.take_queue(0).unwrap();
    assert!(port.take_queue(0).is_none(), "taken once");
    assert!(port.take_queue(1).is_none(), "one queue");
    let pool = q.pool().clone();
    // The RX ring of a ring port holds no mbufs: nothing is out yet.
    let in_use = pool.in_use_count();
    assert_eq!(in_use, 0);

    let total = 10_000;
    let (mut sent, mut received) = (0usize, 0usize);
    // Bounded: each round sends up to a burst and drains what came back.
    for _round in 0..total * 4 {
        if received == total {
            break;
        }
        while sent < total && sent - received < 256 {
            let mut m = q.alloc().expect("pool has mbufs");
            let len = 60 + sent % 1400;
            assert!(m.extend_from_slice(&pattern(sent, len)));
            match q.enqueue(m) {
                Ok(()) => sent += 1,
                Err(_) => break,
            }
        }
        q.flush();
        q.rx_burst(BURST * 4, |m| {
            assert_eq!(
                &m[..],
                &pattern(received, 60 + received % 1400)[..],
                "frame {received}"
            );
            received += 1;
        });
    }
    assert_eq!(received, total);
    let stats = q.stats();
    assert_eq!(stats.rx, total as u64);
    assert_eq!(stats.tx, total as u64);
    assert_eq!(q.pending(), 0);
    assert_eq!(pool.in_use_count(), in_use, "every mbuf back in the pool");
    let ps = port.stats().unwrap();
    assert_eq!(ps.rx_packets, total as u64);
}

#[test]
fn mbuf_headroom_prepend_append_truncate() {
    if !require_dpdk("mbuf_ops") {
        return;
    }
    eal();
    let pool = Mempool::create(
        "ops",
        &MempoolConfig {
            mbufs: 63,
            cache: 0,
            data_room: 2176,
        },
    )
    .unwrap();
    let before = pool.avail_count();
    let mut m = pool.alloc().unwrap();
    assert_eq!(m.len(), 0);
    assert!(m.is_empty());
    assert_eq!(m.headroom(), 128);
    assert_eq!(m.tailroom(), 2048);
    assert!(m.extend_from_slice(b"payload"));
    let h = m.prepend(4).unwrap();
    assert_eq!(h.len(), 11);
    h[..4].copy_from_slice(b"HDR:");
    assert_eq!(&m[..], b"HDR:payload");
    assert_eq!(m.headroom(), 124);
    assert!(m.prepend(125).is_none(), "more than the headroom");
    assert_eq!(&m[..], b"HDR:payload", "a failed prepend changes nothing");
    assert!(m.append(2048).is_none(), "more than the tailroom");
    assert!(m.adj(4));
    assert_eq!(&m[..], b"payload");
    assert!(!m.adj(100));
    m.truncate(3);
    assert_eq!(&m[..], b"pay");
    m.truncate(10);
    assert_eq!(m.len(), 3);
    assert_eq!(pool.avail_count(), before - 1);
    drop(m);
    assert_eq!(pool.avail_count(), before);
    // Exhaustion is None, not a panic.
    let all: Vec<Mbuf> = std::iter::from_fn(|| pool.alloc()).take(1000).collect();
    assert_eq!(all.len(), 63);
    assert!(pool.alloc().is_none());
    drop(all);
    assert_eq!(pool.in_use_count(), 0);
}

#[test]
fn ring_pair_frames_dropped_on_other_threads_return_to_the_pool() {
    if !require_dpdk("ring_pair_cross_thread_free") {
        return;
    }
    eal();
    let (a, b) = ring_pair(1024).unwrap();
    // The ring PMD cannot change its MAC address: a clear error.
    let e = Port::open(
        a,
        &PortConfig {
            mac: Some([2, 0, 0, 0, 0, 0xa]),
            ..PortConfig::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("mac_addr_set"), "{e}");
    let mut pa = Port::open(a, &PortConfig::default()).unwrap();
    let mut pb = Port::open(b, &PortConfig::default()).unwrap();
    // net_ring ports all have MAC 00:00:00:00:00:00.
    assert_eq!(pa.info().mac, [0; 6]);
    assert_eq!(pa.info().driver, "net_ring");
    let e = Port::open(a, &PortConfig::default()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    let mut qa = pa.take_queue(0).unwrap();
    let mut qb = pb.take_queue(0).unwrap();
    let pool_a = qa.pool().clone();
    let base = pool_a.in_use_count();

    // A sends 4096 frames; B receives them and hands them to 4 threads,
    // which check and drop them there.
    let total = 4096usize;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Mbuf>>(64);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let mut seen = 0usize;
                loop {
                    let batch = match rx.lock().unwrap().recv() {
                        Ok(b) => b,
                        Err(_) => return seen,
                    };
                    for m in batch {
                        let i = usize::from(u16::from_le_bytes([m[0], m[1]]));
                        assert_eq!(&m[2..], &pattern(i, m.len())[2..], "frame {i}");
                        seen += 1;
                    }
                }
            })
        })
        .collect();
    let (mut sent, mut received) = (0usize, 0usize);
    for _round in 0..total * 4 {
        if received == total {
            break;
        }
        while sent < total && sent - received < 512 {
            let mut m = qa.alloc().unwrap();
            // The first two bytes say which frame it is.
            let mut body = pattern(sent, 64 + sent % 64);
            body[..2].copy_from_slice(&(sent as u16).to_le_bytes());
            assert!(m.extend_from_slice(&body));
            if qa.enqueue(m).is_err() {
                break;
            }
            sent += 1;
        }
        qa.flush();
        let mut batch = Vec::new();
        qb.rx_burst(BURST * 4, |m| batch.push(m));
        received += batch.len();
        if !batch.is_empty() {
            tx.send(batch).unwrap();
        }
    }
    drop(tx);
    let seen: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(received, total);
    assert_eq!(seen, total);
    assert_eq!(pool_a.in_use_count(), base, "no mbuf leaked");
    drop((qa, qb, pa, pb));
}

#[test]
fn missing_port_is_named_with_the_ports_there_are() {
    if !require_dpdk("missing_port") {
        return;
    }
    eal();
    let e = Port::open(200, &PortConfig::default()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    let msg = e.to_string();
    assert!(msg.contains("port 200 does not exist"), "{msg}");
    assert!(msg.contains("net_ring0"), "lists the ports: {msg}");
    let e = eal().port_by_name("net_nosuch9").unwrap_err();
    assert!(e.to_string().contains("net_nosuch9"), "{e}");
}

#[test]
fn registered_threads_get_an_lcore_and_allocate_through_its_cache() {
    if !require_dpdk("register_thread") {
        return;
    }
    let eal = eal();
    let pool = Mempool::create(
        "reg",
        &MempoolConfig {
            mbufs: 1023,
            cache: 64,
            data_room: 2176,
        },
    )
    .unwrap();
    let pool2 = pool.clone();
    let (lcore, again) = std::thread::spawn(move || {
        let lcore = eal.register_thread().unwrap();
        let again = eal.register_thread().unwrap();
        // Allocate and free through this lcore's cache: the counts (which
        // include the caches) stay exact.
        let bufs: Vec<Mbuf> = (0..100).map(|_| pool2.alloc().unwrap()).collect();
        assert_eq!(pool2.in_use_count(), 100);
        drop(bufs);
        (lcore, again)
    })
    .join()
    .unwrap();
    assert_eq!(lcore, again, "registering twice keeps the lcore");
    assert_ne!(lcore, 0, "lcore 0 is the EAL's main lcore");
    assert_eq!(pool.in_use_count(), 0);
    assert_eq!(pool.avail_count(), 1023);
}

#[test]
fn an_mtu_the_pmd_cannot_set_is_a_clear_error_and_releases_the_port() {
    if !require_dpdk("mtu") {
        return;
    }
    eal();
    let (a, _b) = ring_pair(256).unwrap();
    let asked = PortConfig {
        mtu: Some(1280),
        ..PortConfig::default()
    };
    // net_ring has no MTU operation: ENOTSUP, naming the call and port.
    let e = Port::open(a, &asked).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("rte_eth_dev_set_mtu(port {a}, 1280)")),
        "{msg}"
    );
    assert_eq!(e.raw_errno(), Some(libc::ENOTSUP), "{msg}");
    // The failed open released the port: it can be opened again.
    let port = Port::open(a, &PortConfig::default()).unwrap();
    assert_eq!(port.info().driver, "net_ring");
}

/// A ring pair with several queues: what one port sends on queue `i`
/// arrives on the other's queue `i` (the sender picks the queue), and a
/// flow rule is refused by the ring PMD with a reason, as unsupported.
#[test]
fn ring_pair_queues_carry_frames_queue_to_queue_and_flow_rules_are_unsupported() {
    use insane_dpdk::ring_pair_with_queues;
    if !require_dpdk("ring_pair_queues") {
        return;
    }
    eal();
    let e = ring_pair_with_queues(1024, 0).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    let (a, b) = ring_pair_with_queues(1024, 3).unwrap();
    // Small pools: six of them share the EAL's memory with the other
    // tests.
    let config = PortConfig {
        queues: 3,
        mempool: MempoolConfig {
            mbufs: 511,
            cache: 0,
            ..MempoolConfig::default()
        },
        ..PortConfig::default()
    };
    let mut pa = Port::open(a, &config).unwrap();
    let mut pb = Port::open(b, &config).unwrap();
    let mut qa: Vec<_> = (0..3).map(|q| pa.take_queue(q).unwrap()).collect();
    let mut qb: Vec<_> = (0..3).map(|q| pb.take_queue(q).unwrap()).collect();
    assert!(pa.take_queue(3).is_none());
    assert_eq!(qa[2].queue_count(), 3);
    for (q, queue) in qa.iter_mut().enumerate() {
        for i in 0..10 {
            let mut m = queue.alloc().unwrap();
            assert!(m.extend_from_slice(&pattern(q * 100 + i, 60)));
            queue.enqueue(m).unwrap();
        }
        queue.flush();
    }
    for (q, queue) in qb.iter_mut().enumerate() {
        let mut got = Vec::new();
        queue.rx_burst(BURST, |m| got.push(m.to_vec()));
        let want: Vec<_> = (0..10).map(|i| pattern(q * 100 + i, 60)).collect();
        assert_eq!(got, want, "queue {q} got queue {q}'s frames, in order");
    }

    let e = qb[1]
        .steer_udp("10.0.0.1".parse().unwrap(), 7000)
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("rte_flow rule UDP 10.0.0.1:7000 -> queue 1") && text.contains("net_ring"),
        "{text}"
    );
}
