//! QoS endpoint ↔ QoS endpoint over DPDK between two processes (feature
//! `dpdk`): this test (the `net_memif` server) binds a `latency=critical,
//! best-effort` endpoint on its `[dpdk]` address and spawns itself as a
//! child (`--child`: the `net_memif` client, its own EAL `--file-prefix`
//! and the same socket path), whose endpoint sends numbered datagrams of
//! varied sizes (1..=1472 bytes, window of 32); the server echoes each
//! one, the client checks every echo, in order. On both sides:
//!
//! * `driver()` is DPDK UDP and `explain()` names the `net_memif` PMD;
//! * every received [`RxBuf`](insane_net::qos::RxBuf) holds its mbuf
//!   (`is_device_frame()`), and `debug_copy_count()` stays 0;
//! * half of the received buffers are dropped on the other core;
//! * the port's mempool has as many free mbufs at the end as after
//!   binding (no leak, the cross-core drops included).
//!
//! Shutdown follows the memif rule (the PMD unmaps shared memory when the
//! peer goes, which can crash an `rx_burst` in flight): the child drops
//! its endpoint (its port is no longer polled), reports and waits; the
//! server drops its endpoint (no longer polling either), then tells the
//! child to exit. Ports stay open until their process exits.
//!
//! No libtest harness (`harness = false`, one EAL per process): the
//! output imitates libtest's. Under `CI=true` a build without libdpdk
//! fails; otherwise it is skipped with the reason.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use insane_net::config::Config;
use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::{Endpoint, Qos, TransportConfig, debug_copy_count};
use insane_runtime::runtime::Runtime;
use insane_runtime::task::spawn_on;
use insane_runtime::time::{sleep, timeout};

mod common;

// One CI rule and libtest-style output for every DPDK test binary.
#[path = "../../drivers/dpdk/tests/common/mod.rs"]
mod dpdk_common;

const MESSAGES: usize = 20_000;
const WINDOW: usize = 32;
const MAX_PAYLOAD: usize = 1472;
const SERVER: &str = "10.9.7.1";
const CLIENT: &str = "10.9.7.2";
const PORT: u16 = 7600;
/// Wall-clock limit of one receive (debug builds included).
const RECV_LIMIT: Duration = Duration::from_secs(20);

/// Payload `i`: 1..=1472 bytes (every length within 1472 consecutive
/// datagrams); the first 8 bytes (when there is room) hold `i`.
fn payload(i: usize) -> Vec<u8> {
    let len = 1 + (i * 7919) % MAX_PAYLOAD;
    let mut p: Vec<u8> = (0..len).map(|j| (i * 3 + j * 11) as u8).collect();
    let n = len.min(8);
    p[..n].copy_from_slice(&(i as u64).to_le_bytes()[..n]);
    p
}

fn config(role: &str, lcore: u32, sock: &str, mac: &str, ip: &str) -> Config {
    let eal = dpdk_common::memif_eal_args("qos-memif", role, lcore, sock, mac);
    common::dpdk_config(&eal, 0, &format!("{ip}/24"), 1)
}

fn runtime() -> Result<Runtime, String> {
    Ok(common::uring_runtime(2))
}

fn critical() -> Qos {
    Qos::builder().critical().best_effort().poll().build()
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

/// Binds the endpoint and checks it is DPDK on memif.
async fn bind(config: &Config, ip: &str) -> Result<(Endpoint, u32), String> {
    let local: SocketAddr = format!("{ip}:{PORT}").parse().map_err(|e| format!("{e}"))?;
    let ep = Endpoint::bind_with_config(local, critical(), TransportConfig::default(), config)
        .await
        .map_err(|e| format!("bind {local}: {e}"))?;
    let explain = ep.explain().to_string();
    eprintln!("[{ip}] {explain}");
    check(ep.driver() == Kind::DpdkUdp, || {
        format!("not DPDK: {explain}")
    })?;
    check(explain.contains("PMD net_memif"), || {
        format!("PMD not named: {explain}")
    })?;
    check(ep.max_payload() == MAX_PAYLOAD, || {
        format!("payload limit {}", ep.max_payload())
    })?;
    let pool = insane_net::qos::transport::dpdk::port_pool(0)
        .ok_or("port 0 not opened by the endpoint")?;
    Ok((ep, pool.avail_count()))
}

/// Waits (bounded) until port 0's pool has `free` mbufs again, while the
/// endpoint's core still polls (and so recycles buffers dropped on the
/// other core).
async fn pool_back_to(free: u32) -> Result<(), String> {
    let pool = insane_net::qos::transport::dpdk::port_pool(0).ok_or("port 0 not opened")?;
    for _ in 0..2000 {
        if pool.avail_count() == free {
            return Ok(());
        }
        sleep(Duration::from_millis(1)).await;
    }
    Err(format!(
        "mbuf leak: {} free in the pool, {free} after binding",
        pool.avail_count()
    ))
}

/// The child: memif client. Sends, checks the echoes in order.
fn client(sock: &str) -> Result<String, String> {
    let config = config("client", 1, sock, "02:00:00:00:97:02", CLIENT);
    let rt = runtime()?;
    let server: SocketAddr = format!("{SERVER}:{PORT}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    rt.block_on(async move {
        let (ep, free) = bind(&config, CLIENT).await?;
        ep.connect(server).await.map_err(|e| e.to_string())?;
        let start = Instant::now();
        let (mut sent, mut checked, mut device_frames) = (0usize, 0usize, 0usize);
        while checked < MESSAGES {
            // The first datagram waits for ARP alone; then a window.
            let window = if checked == 0 { 1 } else { WINDOW };
            while sent < MESSAGES && sent - checked < window {
                let mut buf = ep.buffer().await;
                buf.extend_from_slice(&payload(sent)).map_err(|e| e.to_string())?;
                ep.send(buf).await.map_err(|e| format!("send {sent}: {e}"))?;
                sent += 1;
            }
            let msg = match timeout(RECV_LIMIT, ep.recv()).await {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => return Err(format!("recv echo {checked}: {e}")),
                Err(_) => {
                    return Err(format!(
                        "echo {checked} of {MESSAGES} missing ({sent} sent); {}",
                        ep.transport().diagnostics().unwrap_or_default()
                    ));
                }
            };
            check(msg.peer() == server, || format!("echo from {}", msg.peer()))?;
            check(msg[..] == payload(checked)[..], || {
                format!("echo {checked}: {} bytes, corrupt or out of order", msg.len())
            })?;
            if msg.is_device_frame() {
                device_frames += 1;
            }
            if checked % 2 == 0 {
                spawn_on(1, async move { drop(msg) });
            }
            checked += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        check(device_frames == MESSAGES, || {
            format!("{device_frames} of {MESSAGES} echoes in device frames")
        })?;
        check(debug_copy_count() == 0, || {
            format!("{} payload copies", debug_copy_count())
        })?;
        pool_back_to(free).await?;
        drop(ep);
        Ok(format!(
            "client checked {checked} echoes in {secs:.2} s ({:.0}/s), all device frames, 0 copies, pool back to {free} free",
            checked as f64 / secs
        ))
    })
}

/// The parent: memif server. Echoes; runs the child.
fn server(sock: &str) -> Result<String, String> {
    let _ = std::fs::remove_file(sock);
    let config = config("server", 0, sock, "02:00:00:00:97:01", SERVER);
    let rt = runtime()?;
    let sock_owned = sock.to_string();
    let result = rt.block_on(async move {
        let (ep, free) = bind(&config, SERVER).await?;
        let (child, line_rx) = dpdk_common::spawn_child(&sock_owned)?;
        let echoed = async {
            let client: SocketAddr = format!("{CLIENT}:{PORT}")
                .parse()
                .map_err(|e| format!("{e}"))?;
            let mut device_frames = 0usize;
            for i in 0..MESSAGES {
                let msg = match timeout(RECV_LIMIT, ep.recv()).await {
                    Ok(Ok(m)) => m,
                    Ok(Err(e)) => return Err(format!("recv {i}: {e}")),
                    Err(_) => {
                        return Err(format!(
                            "datagram {i} of {MESSAGES} missing; {}",
                            ep.transport().diagnostics().unwrap_or_default()
                        ));
                    }
                };
                check(msg.peer() == client, || {
                    format!("datagram from {}", msg.peer())
                })?;
                check(msg[..] == payload(i)[..], || {
                    format!("datagram {i}: {} bytes, corrupt or out of order", msg.len())
                })?;
                if msg.is_device_frame() {
                    device_frames += 1;
                }
                let mut out = ep.buffer().await;
                out.extend_from_slice(&msg).map_err(|e| e.to_string())?;
                if i % 2 == 1 {
                    spawn_on(1, async move { drop(msg) });
                } else {
                    drop(msg);
                }
                ep.send_to(out, client)
                    .await
                    .map_err(|e| format!("echo {i}: {e}"))?;
            }
            check(device_frames == MESSAGES, || {
                format!("{device_frames} of {MESSAGES} datagrams in device frames")
            })?;
            check(debug_copy_count() == 0, || {
                format!("{} payload copies", debug_copy_count())
            })?;
            Ok::<_, String>(())
        }
        .await;
        // The client's report (it has stopped polling by then).
        let report = match &echoed {
            Ok(()) => common::child_report(&line_rx, Duration::from_secs(60)).await,
            Err(e) => Err(e.clone()),
        };
        let leak = pool_back_to(free).await;
        // Stop polling our port before the client goes.
        drop(ep);
        Ok::<_, String>((child, echoed, report, leak, free))
    });
    let _ = std::fs::remove_file(sock);
    let (mut child, echoed, report, leak, free) = result?;
    let status = dpdk_common::finish_child(&mut child, Duration::from_secs(30));
    echoed?;
    let report = report?;
    if !report.starts_with("CHILD-OK") {
        return Err(format!("client: {report}"));
    }
    leak?;
    let after = insane_net::qos::transport::dpdk::port_pool(0).map(|p| p.avail_count());
    if after != Some(free) {
        return Err(format!(
            "server pool: {after:?} free after the endpoint closed, {free} after binding"
        ));
    }
    dpdk_common::child_verdict(
        status,
        format!(
            "server echoed {MESSAGES}, all device frames, 0 copies, pool back to {free} free; {report}"
        ),
    )
}

fn main() -> ExitCode {
    // The child waits, not polling, until the server has stopped polling.
    if let Some(code) = dpdk_common::child_main(|sock| client(sock).map(|r| (r, ()))) {
        return code;
    }
    dpdk_common::run_single_test(
        "qos_endpoints_exchange_datagrams_between_two_processes_over_memif",
        || {
            server(&format!(
                "/tmp/insane-qos-memif-{}.sock",
                std::process::id()
            ))
        },
    )
}
