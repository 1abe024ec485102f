//! Multi-queue DPDK between two processes (feature `dpdk`): `net_memif`
//! with two queue pairs on both sides (`[dpdk] queues = 2`), where the
//! sender picks the queue (memif carries a sender's TX queue `i` to the
//! receiver's RX queue `i`). Each process has an endpoint on core 0 and
//! one on core 1, each with a queue of its own. The child's two endpoints
//! ping-pong with both of this process's (echo servers); each datagram or
//! echo sent by one core to the other core's endpoint arrives on the
//! wrong queue and is handed over, on both sides: exactly half of each
//! side's traffic, every datagram checked.
//!
//! Shutdown follows the memif rule (see `qos_dpdk_memif.rs`): the child
//! drops its endpoints and reports, the parent drops its own, then lets
//! the child exit. No libtest harness (one EAL per process). Under
//! `CI=true` a build without libdpdk fails; otherwise it is skipped.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use insane_net::config::Config;
use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::{Endpoint, Qos, TransportConfig};
use insane_runtime::runtime::Runtime;
use insane_runtime::task::spawn_on;
use insane_runtime::time::timeout;

mod common;

// One CI rule and libtest-style output for every DPDK test binary.
#[path = "../../drivers/dpdk/tests/common/mod.rs"]
mod dpdk_common;

const SERVER: &str = "10.9.8.1";
const CLIENT: &str = "10.9.8.2";
/// Core `c`'s endpoint listens on `PORT + c`.
const PORT: u16 = 7700;
/// Datagrams each child endpoint exchanges.
const N: u64 = 2000;

fn config(role: &str, lcore: u32, sock: &str, mac: &str, ip: &str) -> Config {
    let eal = dpdk_common::memif_eal_args("qos-memifq", role, lcore, sock, mac);
    common::dpdk_config(&eal, 0, &format!("{ip}/24"), 2)
}

fn runtime() -> Result<Runtime, String> {
    Ok(common::uring_runtime(2))
}

/// Binds core `core`'s endpoint (on that core) and checks it has queue
/// `core` of 2 of the memif port.
async fn bind(config: &Config, ip: &str, core: u16) -> Result<Endpoint, String> {
    let local: SocketAddr = format!("{ip}:{}", PORT + core)
        .parse()
        .map_err(|e| format!("{e}"))?;
    let qos = Qos::builder().critical().best_effort().poll().build();
    let ep = Endpoint::bind_with_config(local, qos, TransportConfig::default(), config)
        .await
        .map_err(|e| format!("bind {local}: {e}"))?;
    let explain = ep.explain().to_string();
    eprintln!("[{ip}] core {core}: {explain}");
    let want = format!("PMD net_memif), queue {core} of 2");
    if ep.driver() != Kind::DpdkUdp || !explain.contains(&want) {
        return Err(format!(
            "core {core}: not DPDK on queue {core} of 2: {explain}"
        ));
    }
    if explain.contains("software dispatch") {
        return Err(format!("core {core}: dispatched: {explain}"));
    }
    Ok(ep)
}

/// Datagrams the endpoint's core handed over to the other core's queue.
fn handed_over(ep: &Endpoint) -> Result<u64, String> {
    let diagnostics = ep.transport().diagnostics().ok_or("not on the home core")?;
    dpdk_common::forwarded_of(&diagnostics).ok_or_else(|| format!("no counters: {diagnostics}"))
}

/// The child (memif client): endpoints on cores 0 and 1 ping-pong with
/// both server endpoints.
fn client(sock: &str) -> Result<String, String> {
    let config = Arc::new(config("client", 1, sock, "02:00:00:00:98:02", CLIENT));
    let rt = runtime()?;
    rt.block_on(async move {
        let targets: Vec<SocketAddr> = (0..2)
            .map(|c| format!("{SERVER}:{}", PORT + c).parse().unwrap())
            .collect();
        let mut endpoints = Vec::new();
        // One after the other: core 0 opens the port, core 1 gets queue 1.
        for core in 0..2u16 {
            let config = config.clone();
            let ep = spawn_on(usize::from(core), async move {
                bind(&config, CLIENT, core).await
            })
            .await
            .map_err(|e| e.to_string())??;
            endpoints.push(Arc::new(ep));
        }
        let mut runs = Vec::new();
        for (core, ep) in endpoints.iter().enumerate() {
            let (ep, targets) = (ep.clone(), targets.clone());
            runs.push(spawn_on(core, async move {
                common::echoes::ping_pong(&ep, core as u8, N, &targets).await
            }));
        }
        for run in runs {
            run.await.map_err(|e| e.to_string())??;
        }
        // Read on each home core, after both are done.
        let mut report = Vec::new();
        for (core, ep) in endpoints.iter().enumerate() {
            let ep = ep.clone();
            let n = spawn_on(core, async move { handed_over(&ep) })
                .await
                .map_err(|e| e.to_string())??;
            if n != N / 2 {
                return Err(format!(
                    "client core {core} handed over {n} echoes, {} expected",
                    N / 2
                ));
            }
            report.push(n);
        }
        Ok(format!(
            "client: 2 x {N} echoes checked; handed over by core 0: {}, core 1: {}",
            report[0], report[1]
        ))
    })
}

/// The parent (memif server): echo endpoints on cores 0 and 1; runs the
/// child.
fn server(sock: &str) -> Result<String, String> {
    let _ = std::fs::remove_file(sock);
    let config = Arc::new(config("server", 0, sock, "02:00:00:00:98:01", SERVER));
    let rt = runtime()?;
    let sock_owned = sock.to_string();
    let result = rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let mut echoers = Vec::new();
        for core in 0..2u16 {
            let config = config.clone();
            let ep = spawn_on(usize::from(core), async move {
                bind(&config, SERVER, core).await
            })
            .await
            .map_err(|e| e.to_string())??;
            let stop = stop.clone();
            echoers.push(spawn_on(usize::from(core), async move {
                let mut echoed = 0u64;
                // Bounded: told to stop, or about 2 minutes.
                for _ in 0..2400 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(msg) = timeout(Duration::from_millis(50), ep.recv()).await else {
                        continue;
                    };
                    let msg = msg.map_err(|e| format!("core {core}: recv: {e}"))?;
                    let mut out = ep.buffer().await;
                    out.extend_from_slice(&msg).map_err(|e| e.to_string())?;
                    ep.send_to(out, msg.peer())
                        .await
                        .map_err(|e| format!("core {core}: echo: {e}"))?;
                    echoed += 1;
                }
                let handed = handed_over(&ep)?;
                // Dropped here: the core stops polling for it before the
                // client goes.
                drop(ep);
                Ok::<_, String>((echoed, handed))
            }));
        }
        let (child, line_rx) = dpdk_common::spawn_child(&sock_owned)?;
        let report = common::child_report(&line_rx, Duration::from_secs(120)).await;
        stop.store(true, Ordering::Relaxed);
        let mut counts = Vec::new();
        for echoer in echoers {
            counts.push(echoer.await.map_err(|e| e.to_string()));
        }
        Ok::<_, String>((child, report, counts))
    });
    let _ = std::fs::remove_file(sock);
    let (mut child, report, counts) = result?;
    let status = dpdk_common::finish_child(&mut child, Duration::from_secs(30));
    let report = report?;
    if !report.starts_with("CHILD-OK") {
        return Err(format!("client: {report}"));
    }
    let mut echoed = Vec::new();
    for (core, count) in counts.into_iter().enumerate() {
        let (n, handed) = count??;
        // Each client endpoint sends half its datagrams to this core's
        // port; the other client core's half arrives on the other queue.
        if n != N || handed != N / 2 {
            return Err(format!(
                "server core {core}: echoed {n} (expected {N}), handed over {handed} (expected {})",
                N / 2
            ));
        }
        echoed.push((n, handed));
    }
    dpdk_common::child_verdict(
        status,
        format!(
            "server cores echoed {} and {}, handed over {} and {}; {report}",
            echoed[0].0, echoed[1].0, echoed[0].1, echoed[1].1
        ),
    )
}

fn main() -> ExitCode {
    // The child waits, not polling, until the server has stopped polling.
    if let Some(code) = dpdk_common::child_main(|sock| client(sock).map(|r| (r, ()))) {
        return code;
    }
    dpdk_common::run_single_test(
        "memif_queues_give_each_core_of_both_processes_its_own_queue",
        || {
            server(&format!(
                "/tmp/insane-qos-memifq-{}.sock",
                std::process::id()
            ))
        },
    )
}
