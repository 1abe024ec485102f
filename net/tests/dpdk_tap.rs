//! The userspace stack on DPDK's `net_tap` PMD, whose port offers IPv4
//! and UDP checksum offload both ways: the stack leaves transmit
//! checksums to the device and trusts its receive verdicts, and a plain
//! kernel UDP socket on the tap's kernel side (which checks every
//! checksum it receives) gets every echo intact. Feature `dpdk`; needs
//! root (a network namespace). (`net_tap` computes the UDP checksum
//! from scratch in software, ignoring the pseudo-header sum NICs want in
//! the field: that field is checked by `tests/stack.rs`'s
//! `tx_checksum_offload_leaves_the_checksums_to_the_device`.)
//!
//! The tap interface is created by the PMD during `rte_eal_init`, in the
//! network namespace of the thread that calls it: a namespace this test
//! creates (and removes), so the kernel side of the tap — its address,
//! routes and socket — lives there and nothing reaches any other
//! interface. The EAL is once per process, hence this test binary of its
//! own. Under `CI=true` a missing capability (libdpdk, root/netns) fails;
//! otherwise the test is skipped with the reason.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use insane_net::config::Ipv4Cidr;
use insane_net::stack::dpdk::DpdkDevice;
use insane_net::stack::{Interface, InterfaceConfig, Stats};
use insane_testhosts::TestHosts;

// One CI rule and EAL argument list for every DPDK test binary.
#[path = "../../drivers/dpdk/tests/common/mod.rs"]
mod dpdk_common;
use dpdk_common::require_dpdk;

const HOST: usize = 0;
const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
const STACK_IP: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 100);
const STACK_PORT: u16 = 7400;
const KERNEL_PORT: u16 = 7401;
const DATAGRAMS: u64 = 2000;

#[test]
fn stack_on_tap_offloads_checksums_and_the_kernel_accepts_them() {
    let name = "stack_on_tap_offloads_checksums_and_the_kernel_accepts_them";
    if !require_dpdk(name) || !TestHosts::require(name) {
        return;
    }
    let hosts = TestHosts::builder().hosts(1).build().unwrap();
    // Unique per process: interface names are per namespace, but short.
    let tap = format!("itap{}", std::process::id() % 100_000);

    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
    let tap2 = tap.clone();
    let stack = hosts.spawn_in(HOST, move || -> Result<(u64, Stats, String), String> {
        let opened = (|| {
            let args = dpdk_common::eal_args("tap", 0, &[format!("--vdev=net_tap0,iface={tap2}")]);
            DpdkDevice::new(dpdk_common::open_port0_queue(&args)?).map_err(|e| e.to_string())
        })();
        let device = match opened {
            Ok(d) => d,
            Err(e) => {
                let _ = ready_tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        let explain = device.explain();
        let mut iface = Interface::new(
            device,
            InterfaceConfig::new(Ipv4Cidr::new(STACK_IP, 24).into()),
        );
        let ep = iface.bind(STACK_PORT).map_err(|e| e.to_string())?;
        let pool = iface.device().queue().pool().clone();
        let baseline = pool.in_use_count();
        let _ = ready_tx.send(Ok(explain.clone()));
        let mut echoed = 0u64;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            let now = Instant::now();
            let mut busy = iface.poll(now) > 0;
            while let Some(d) = iface.recv_from(ep) {
                // The echo is the request's own mbuf: its receive flags
                // are cleared, the transmit ones set.
                let peer = d.peer();
                let r = iface.reuse_rx(d).map_err(|_| "mbufs are reusable")?;
                iface
                    .send_to(ep, peer, r, now)
                    .map_err(|e| format!("echo: {:?}", e.kind))?;
                echoed += 1;
                busy = true;
            }
            iface.flush();
            if !busy {
                std::thread::yield_now();
            }
        }
        for _ in 0..1000 {
            if iface.device().queue().pending() == 0 {
                break;
            }
            iface.flush();
        }
        let stats = iface.stats();
        // The PMD's receive ring holds the same number of mbufs as before
        // the traffic; every echo's mbuf went back.
        let in_use = pool.in_use_count();
        if in_use != baseline {
            return Err(format!("mbufs in use {in_use}, before {baseline}"));
        }
        // The queue held the last reference to the port: it closes, and
        // its receive ring's mbufs go back too.
        drop(iface);
        let in_use = pool.in_use_count();
        if in_use != 0 {
            return Err(format!("{in_use} mbufs in use after the port closed"));
        }
        Ok((echoed, stats, explain))
    });
    let explain = match ready_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(explain)) => explain,
        Ok(Err(e)) => panic!("opening net_tap {tap}: {e}"),
        Err(_) => panic!("the stack thread did not start"),
    };
    assert!(explain.contains("PMD net_tap"), "{explain}");
    assert!(explain.contains("TX checksum offload"), "{explain}");

    // The kernel's side of the tap, in the test's namespace.
    hosts
        .ip(
            HOST,
            &["addr", "add", &format!("{KERNEL_IP}/24"), "dev", &tap],
        )
        .unwrap();
    hosts.ip(HOST, &["link", "set", &tap, "up"]).unwrap();

    let target = SocketAddrV4::new(STACK_IP, STACK_PORT);
    let checked = hosts.run_in(HOST, move || -> Result<u64, String> {
        let sock = UdpSocket::bind(SocketAddrV4::new(KERNEL_IP, KERNEL_PORT))
            .map_err(|e| e.to_string())?;
        // A datagram the kernel drops for a bad checksum never comes
        // back, and this fails.
        dpdk_common::kernel_echoes(&sock, target, DATAGRAMS, dpdk_common::numbered_payload, 20)
    });
    stop.store(true, Ordering::Relaxed);
    let report = stack.join().expect("stack thread");
    let checked = checked.unwrap_or_else(|e| panic!("kernel peer: {e}; stack: {report:?}"));
    let (echoed, stats, explain) = report.unwrap_or_else(|e| panic!("stack: {e}"));
    assert_eq!(checked, DATAGRAMS);
    assert!(
        (DATAGRAMS..DATAGRAMS + 20).contains(&echoed),
        "echoed {echoed}"
    );
    // Every echo left with its checksums to the device, and the device
    // verified the datagrams it received.
    assert_eq!(stats.tx.checksum_offloaded, echoed, "{stats:#?}");
    assert_eq!(stats.tx.reused_rx, echoed, "{stats:#?}");
    assert!(stats.rx.checksum_offloaded >= echoed, "{stats:#?}");
    assert_eq!(stats.rx.drops.bad_checksum, 0, "{stats:#?}");
    eprintln!(
        "{explain}: echoed {echoed}, TX checksums offloaded {}, RX verified by the PMD {}",
        stats.tx.checksum_offloaded, stats.rx.checksum_offloaded
    );
}
