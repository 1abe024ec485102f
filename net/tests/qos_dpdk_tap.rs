//! QoS endpoints on a DPDK port with two queue pairs (`[dpdk] queues =
//! 2`): `net_tap`, whose kernel side picks the queue of every frame it
//! sends to DPDK (by flow hash, then by the queue the flow's replies left
//! on: tun's automatic flow steering). An endpoint bound on core 0 and
//! one on core 1 each get a queue of their own; kernel UDP sockets from
//! 16 source ports ping-pong with both; every echo comes back intact
//! whatever queue each datagram arrived on (those on the other core's
//! queue are handed over). Feature `dpdk`; needs root (a network
//! namespace, created and removed by the test: the tap interface is
//! created in the namespace of the thread that initialises the EAL, here
//! a thread of the runtime started in it). Under `CI=true` a missing
//! capability fails; otherwise the test is skipped with the reason.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::{Endpoint, Qos, TransportConfig};
use insane_runtime::task::spawn_on;
use insane_testhosts::TestHosts;

mod common;

// One CI rule and EAL argument list for every DPDK test binary.
#[path = "../../drivers/dpdk/tests/common/mod.rs"]
mod dpdk_common;
use dpdk_common::require_dpdk;

const HOST: usize = 0;
const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 1);
const STACK_IP: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 100);
/// Core `c`'s endpoint listens on `STACK_PORT + c`.
const STACK_PORT: u16 = 7500;
const FLOWS: u16 = 16;
const PER_FLOW: u64 = 100;

/// What one core's echo endpoint reports: explain(), echoes, diagnostics.
type Report = (String, u64, String);

#[test]
fn endpoints_on_two_cores_each_poll_a_tap_queue_and_every_kernel_flow_is_echoed() {
    let name = "endpoints_on_two_cores_each_poll_a_tap_queue";
    if !require_dpdk(name) || !TestHosts::require(name) {
        return;
    }
    let hosts = TestHosts::builder().hosts(1).build().unwrap();
    let tap = format!("iqtap{}", std::process::id() % 100_000);
    let eal = dpdk_common::eal_args("qos-tap", 0, &[format!("--vdev=net_tap0,iface={tap}")]);
    let config = common::dpdk_config(&eal, 0, &format!("{STACK_IP}/24"), 2);

    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
    // The runtime starts on a thread in the namespace: its cores, and the
    // EAL thread one of them starts, are there too.
    let stack = hosts.spawn_in(HOST, move || -> Result<Vec<Report>, String> {
        let rt = common::uring_runtime(2);
        rt.block_on(async move {
            let mut echoers = Vec::new();
            for core in 0..2u16 {
                let (config, stop, ready) = (config.clone(), stop2.clone(), ready_tx.clone());
                echoers.push(spawn_on(usize::from(core), async move {
                    let qos = Qos::builder().critical().best_effort().poll().build();
                    let addr = SocketAddrV4::new(STACK_IP, STACK_PORT + core).to_string();
                    let ep = match Endpoint::bind_with_config(
                        &addr,
                        qos,
                        TransportConfig::default(),
                        &config,
                    )
                    .await
                    {
                        Ok(ep) if ep.driver() == Kind::DpdkUdp => ep,
                        Ok(ep) => {
                            let e = format!("core {core}: not DPDK: {}", ep.explain());
                            let _ = ready.send(Err(e.clone()));
                            return Err(e);
                        }
                        Err(e) => {
                            let e = format!("core {core}: bind: {e}");
                            let _ = ready.send(Err(e.clone()));
                            return Err(e);
                        }
                    };
                    let explain = ep.explain().to_string();
                    let _ = ready.send(Ok(explain.clone()));
                    let mut echoed = 0u64;
                    // Bounded: the test stops it, or 120 s pass.
                    for _ in 0..2400 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(msg) =
                            insane_runtime::time::timeout(Duration::from_millis(50), ep.recv())
                                .await
                        else {
                            continue;
                        };
                        let msg = msg.map_err(|e| format!("core {core}: recv: {e}"))?;
                        let mut reply = ep.buffer().await;
                        reply
                            .extend_from_slice(&msg)
                            .map_err(|e| format!("core {core}: {e}"))?;
                        ep.send_to(reply, msg.peer())
                            .await
                            .map_err(|e| format!("core {core}: echo: {e}"))?;
                        echoed += 1;
                    }
                    let diagnostics = ep.transport().diagnostics().unwrap_or_default();
                    Ok((explain, echoed, diagnostics))
                }));
            }
            let mut reports = Vec::new();
            for echoer in echoers {
                reports.push(echoer.await.map_err(|e| e.to_string())??);
            }
            Ok(reports)
        })
    });
    let mut explains = Vec::new();
    for _ in 0..2 {
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(explain)) => explains.push(explain),
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("the endpoints did not bind: {:?}", stack.join()),
        }
    }
    explains.sort_by_key(|e| e.contains("queue 1 of 2"));
    assert!(
        explains[0].contains("PMD net_tap), queue 0 of 2"),
        "{}",
        explains[0]
    );
    assert!(
        explains[1].contains("PMD net_tap), queue 1 of 2"),
        "{}",
        explains[1]
    );
    // The tap PMD spreads flows over its queues by hash.
    assert!(
        explains[1].contains("queue 1 of 2 (RSS)"),
        "{}",
        explains[1]
    );

    hosts
        .ip(
            HOST,
            &["addr", "add", &format!("{KERNEL_IP}/24"), "dev", &tap],
        )
        .unwrap();
    hosts.ip(HOST, &["link", "set", &tap, "up"]).unwrap();
    let checked = hosts.run_in(HOST, move || -> Result<u64, String> {
        let mut checked = 0;
        for flow in 0..FLOWS {
            let sock = UdpSocket::bind(SocketAddrV4::new(KERNEL_IP, 7600 + flow))
                .map_err(|e| e.to_string())?;
            for core in 0..2 {
                let target = SocketAddrV4::new(STACK_IP, STACK_PORT + core);
                checked += dpdk_common::kernel_echoes(
                    &sock,
                    target,
                    PER_FLOW,
                    dpdk_common::numbered_payload,
                    20,
                )
                .map_err(|e| format!("flow {flow} to core {core}'s endpoint: {e}"))?;
            }
        }
        Ok(checked)
    });
    stop.store(true, Ordering::Relaxed);
    let reports = stack.join().expect("runtime thread");
    let checked = checked.unwrap_or_else(|e| panic!("kernel side: {e}; stack: {reports:?}"));
    let reports = reports.unwrap_or_else(|e| panic!("stack: {e}"));
    let expected = u64::from(FLOWS) * 2 * PER_FLOW;
    assert_eq!(checked, expected);
    let echoed: u64 = reports.iter().map(|r| r.1).sum();
    // A first datagram retried while ARP resolved may be echoed twice.
    assert!(
        (expected..expected + u64::from(FLOWS) * 2 * 20).contains(&echoed),
        "echoed {echoed}"
    );
    for (explain, echoed, diagnostics) in &reports {
        eprintln!("{explain}\n  echoed {echoed}; {diagnostics}");
    }
    // Before tun steers a flow to the queue its replies leave on, its
    // first datagram lands on the queue its hash picks: for some of the
    // 32 flows that is the other core's, which hands it over.
    let handed_over: u64 = reports
        .iter()
        .map(|r| dpdk_common::forwarded_of(&r.2).expect("rx counters"))
        .sum();
    assert!(handed_over > 0, "{reports:?}");
}
