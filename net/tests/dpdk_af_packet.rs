//! The userspace stack on DPDK's `net_af_packet` PMD, on a veth in one
//! network namespace, talking to a plain kernel UDP socket in another.
//! Feature `dpdk`; needs root (test hosts).
//!
//! Host A's kernel keeps its address (`.1`); the stack owns `.100` on the
//! same veth (the PMD's packet socket sees every frame of the interface,
//! the kernel drops what is not for its own addresses). Host B's kernel
//! resolves `.100` with ARP, which the stack answers, and the stack learns
//! B from that request: no static neighbour anywhere. B sends numbered
//! datagrams of varied sizes, the stack echoes them, B checks each.
//!
//! The EAL (one per process, hence this test binary of its own) is
//! initialised on a thread inside A's namespace, because the PMD opens its
//! packet socket during `rte_eal_init`. Under `CI=true` a missing
//! capability (libdpdk, root/netns) fails; otherwise the test is skipped
//! with the reason.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use insane_net::config::Ipv4Cidr;
use insane_net::stack::dpdk::DpdkDevice;
use insane_net::stack::{EthernetAddress, FrameDevice, Interface, InterfaceConfig, TxFrame};
use insane_testhosts::TestHosts;

// One CI rule and EAL argument list for every DPDK test binary.
#[path = "../../drivers/dpdk/tests/common/mod.rs"]
mod dpdk_common;
use dpdk_common::require_dpdk;

const A: usize = 0;
const B: usize = 1;
const STACK_PORT: u16 = 7200;
const PEER_PORT: u16 = 7201;
const DATAGRAMS: u64 = 3000;

/// Payload `i`: 8 bytes of `i`, then up to 1400 bytes of a pattern.
fn payload(i: u64) -> Vec<u8> {
    let len = 8 + (i as usize * 7919) % 1400;
    let mut p: Vec<u8> = (0..len).map(|j| (i as usize * 5 + j * 3) as u8).collect();
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

#[test]
fn stack_on_af_packet_echoes_kernel_udp_across_namespaces() {
    let name = "stack_on_af_packet_echoes_kernel_udp_across_namespaces";
    if !require_dpdk(name) || !TestHosts::require(name) {
        return;
    }
    let hosts = TestHosts::builder().hosts(2).link(0, 1).build().unwrap();
    let a = hosts.iface(A, 0).clone();
    let b = hosts.iface(B, 0).clone();
    let o = a.addr.octets();
    let stack_ip = Ipv4Addr::new(o[0], o[1], o[2], 100);

    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
    let a2 = a.clone();
    let stack = hosts.spawn_in(A, move || -> Result<(u64, u64, String), String> {
        let opened = (|| {
            let args = dpdk_common::eal_args(
                "afp",
                0,
                &[format!("--vdev=net_af_packet0,iface={},qpairs=1", a2.name)],
            );
            DpdkDevice::new(dpdk_common::open_port0_queue(&args)?).map_err(|e| e.to_string())
        })();
        let device = match opened {
            Ok(d) => d,
            Err(e) => {
                let _ = ready_tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        if device.mac() != EthernetAddress(a2.mac) {
            return Err(format!("PMD MAC {} is not the veth's", device.mac()));
        }
        let explain = device.explain();
        let mut iface = Interface::new(
            device,
            InterfaceConfig::new(Ipv4Cidr::new(stack_ip, a2.prefix_len).into()),
        );
        let ep = iface.bind(STACK_PORT).map_err(|e| e.to_string())?;
        let pool = iface.device().queue().pool().clone();
        let baseline = pool.in_use_count();
        let _ = ready_tx.send(Ok(explain.clone()));
        let mut echoed = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            let now = Instant::now();
            iface.poll(now);
            while let Some(d) = iface.recv_from(ep) {
                let mut r = iface.alloc_tx().ok_or("pool empty")?;
                if !TxFrame::extend_from_slice(&mut r, &d) {
                    return Err("echo does not fit".into());
                }
                let peer = d.peer();
                drop(d);
                iface
                    .send_to(ep, peer, r, now)
                    .map_err(|e| format!("echo: {:?}", e.kind))?;
                echoed += 1;
            }
            iface.flush();
        }
        for _ in 0..1000 {
            if iface.device().queue().pending() == 0 {
                break;
            }
            iface.flush();
        }
        let stats = iface.stats();
        drop(iface);
        let in_use = pool.in_use_count();
        if in_use != baseline {
            return Err(format!("mbufs in use {in_use}, before {baseline}"));
        }
        Ok((echoed, stats.arp.learned, explain))
    });
    let explain = match ready_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(explain)) => explain,
        Ok(Err(e)) => panic!("opening net_af_packet on {}: {e}", a.name),
        Err(_) => panic!("the stack thread did not start"),
    };
    assert!(explain.contains("PMD net_af_packet"), "{explain}");

    let target = SocketAddrV4::new(stack_ip, STACK_PORT);
    let b2 = b.clone();
    let checked = hosts.run_in(B, move || -> Result<u64, String> {
        let sock =
            UdpSocket::bind(SocketAddrV4::new(b2.addr, PEER_PORT)).map_err(|e| e.to_string())?;
        dpdk_common::kernel_echoes(&sock, target, DATAGRAMS, payload, 10)
    });
    stop.store(true, Ordering::Relaxed);
    let report = stack.join().expect("stack thread");
    let checked = checked.unwrap_or_else(|e| panic!("kernel peer: {e}; stack: {report:?}"));
    let (echoed, learned, explain) = report.unwrap_or_else(|e| panic!("stack: {e}"));
    assert_eq!(checked, DATAGRAMS);
    // Retries of the first datagram (while ARP resolves) are echoed too.
    assert!(
        (DATAGRAMS..DATAGRAMS + 10).contains(&echoed),
        "echoed {echoed}"
    );
    assert!(learned >= 1, "the stack learned B from its ARP request");
    eprintln!("{explain}: echoed {echoed}, neighbours learned {learned}");
}
