//! Reliable datagrams over DPDK between two processes (feature `dpdk`):
//! this test (the `net_memif` server) binds a `latency=critical,
//! reliable, resources=poll` endpoint on its `[dpdk]` address — the
//! policy gives DPDK reliable datagrams — and spawns itself as a child
//! (`--child`: the `net_memif` client, its own EAL `--file-prefix`). The
//! client sends numbered messages of random sizes from 1 B to 1 MiB
//! (log-uniform) while it receives; the server checks each one and echoes
//! it; the client checks every echo. Both ways, every message arrives
//! exactly once, in order, intact, and nothing else does.
//!
//! Counts: CI runs [`CI_MESSAGES`] (debug build, a few seconds);
//! `INSANE_RELIABLE_MESSAGES=100000` is the long run (release build
//! advised). memif does not lose frames, so this checks the protocol on
//! the DPDK path; loss recovery is checked through a lossy bridge
//! (`qos_reliable_netns.rs`) and the in-memory device
//! (`qos_reliable.rs`).
//!
//! Shutdown follows the memif rule of `qos_dpdk_memif.rs` (the client
//! stops polling first, the server then tells it to exit). No libtest
//! harness (one EAL per process). Under `CI=true` a build without
//! libdpdk fails; otherwise it is skipped with the reason.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use insane_net::config::Config;
use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::{Endpoint, Qos, TransportConfig};
use insane_runtime::task::spawn;
use insane_runtime::time::timeout;

mod common;

use common::messages::{Rng, byte, count, fill};

#[path = "../../drivers/dpdk/tests/common/mod.rs"]
mod dpdk_common;

/// Messages per direction in CI.
const CI_MESSAGES: usize = 100;
const SERVER: &str = "10.9.8.1";
const CLIENT: &str = "10.9.8.2";
const PORT: u16 = 7700;
/// Wall-clock limit of one receive (debug builds included).
const RECV_LIMIT: Duration = Duration::from_secs(30);

fn config(role: &str, lcore: u32, sock: &str, mac: &str, ip: &str) -> Config {
    let eal = dpdk_common::memif_eal_args("reliable-memif", role, lcore, sock, mac);
    common::dpdk_config(&eal, 0, &format!("{ip}/24"), 1)
}

/// The sizes of the messages, the same in both processes.
fn sizes() -> Vec<usize> {
    let mut rng = Rng(0x5eed_d9d4);
    (0..count(CI_MESSAGES)).map(|_| rng.size(20)).collect()
}

/// `Err` naming the first difference unless `msg` is message `i` of
/// `len` bytes from sender `tag` (the `Result` form of
/// `common::messages::check`, for the harness-less binary).
fn verify(msg: &[u8], tag: u8, i: usize, len: usize, what: &str) -> Result<(), String> {
    let mut want = vec![0u8; len];
    fill(&mut want, tag, i);
    if msg.len() != len {
        return Err(format!(
            "{what}: message {i}: {} bytes, expected {len}",
            msg.len()
        ));
    }
    match (0..len).find(|&j| msg[j] != want[j]) {
        None => Ok(()),
        Some(j) => Err(format!(
            "{what}: message {i} of {len} bytes differs at byte {j} ({} instead of {}; out of order or corrupt)",
            msg[j],
            byte(tag, i, j)
        )),
    }
}

/// Binds the reliable endpoint and checks the policy chose DPDK reliable
/// datagrams on memif.
async fn bind(config: &Config, ip: &str) -> Result<Endpoint, String> {
    let local: SocketAddr = format!("{ip}:{PORT}").parse().map_err(|e| format!("{e}"))?;
    let qos = Qos::builder().critical().reliable().poll().build();
    let ep = Endpoint::bind_with_config(local, qos, TransportConfig::default(), config)
        .await
        .map_err(|e| format!("bind {local}: {e}"))?;
    let explain = ep.explain().to_string();
    eprintln!("[{ip}] {explain}");
    if ep.driver() != Kind::DpdkReliable || !explain.contains("PMD net_memif") {
        return Err(format!("not DPDK reliable datagrams on memif: {explain}"));
    }
    Ok(ep)
}

/// The child: memif client. Sends every message while it checks the
/// echoes, in order.
fn client(sock: &str) -> Result<String, String> {
    let config = config("client", 1, sock, "02:00:00:00:98:02", CLIENT);
    let server: SocketAddr = format!("{SERVER}:{PORT}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let sizes = Arc::new(sizes());
    common::uring_runtime(1).block_on(async move {
        let ep = Arc::new(bind(&config, CLIENT).await?);
        let start = Instant::now();
        let sender = {
            let (ep, sizes) = (ep.clone(), sizes.clone());
            spawn(async move {
                for (i, &len) in sizes.iter().enumerate() {
                    let mut buf = ep.buffer().await;
                    buf.resize(len, 0).map_err(|e| e.to_string())?;
                    fill(&mut buf, 1, i);
                    ep.send_to(buf, server)
                        .await
                        .map_err(|e| format!("send {i}: {e}"))?;
                }
                Ok::<_, String>(())
            })
        };
        for (i, &len) in sizes.iter().enumerate() {
            let msg = match timeout(RECV_LIMIT, ep.recv()).await {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => return Err(format!("recv echo {i}: {e}")),
                Err(_) => {
                    return Err(format!(
                        "echo {i} missing; {}",
                        ep.transport().diagnostics().unwrap_or_default()
                    ));
                }
            };
            if msg.peer() != server {
                return Err(format!("echo from {}", msg.peer()));
            }
            verify(&msg, 1, i, len, "client")?;
        }
        sender.await.map_err(|e| e.to_string())??;
        let secs = start.elapsed().as_secs_f64();
        let bytes: usize = sizes.iter().sum();
        let stats = ep.transport().diagnostics().unwrap_or_default();
        drop(ep);
        Ok(format!(
            "client checked {} echoes ({bytes} bytes each way) in {secs:.2} s; {}",
            sizes.len(),
            stats.split("; inner").next().unwrap_or_default()
        ))
    })
}

/// The parent: memif server. Checks and echoes every message; runs the
/// child.
fn server(sock: &str) -> Result<String, String> {
    let _ = std::fs::remove_file(sock);
    let config = config("server", 0, sock, "02:00:00:00:98:01", SERVER);
    let sock_owned = sock.to_string();
    let sizes = sizes();
    let result = common::uring_runtime(1).block_on(async move {
        let ep = bind(&config, SERVER).await?;
        let (child, line_rx) = dpdk_common::spawn_child(&sock_owned)?;
        let echoed = async {
            let client: SocketAddr = format!("{CLIENT}:{PORT}")
                .parse()
                .map_err(|e| format!("{e}"))?;
            for (i, &len) in sizes.iter().enumerate() {
                let msg = match timeout(RECV_LIMIT, ep.recv()).await {
                    Ok(Ok(m)) => m,
                    Ok(Err(e)) => return Err(format!("recv {i}: {e}")),
                    Err(_) => {
                        return Err(format!(
                            "message {i} missing; {}",
                            ep.transport().diagnostics().unwrap_or_default()
                        ));
                    }
                };
                if msg.peer() != client {
                    return Err(format!("message from {}", msg.peer()));
                }
                verify(&msg, 1, i, len, "server")?;
                let mut out = ep.buffer().await;
                out.extend_from_slice(&msg).map_err(|e| e.to_string())?;
                drop(msg);
                ep.send_to(out, client)
                    .await
                    .map_err(|e| format!("echo {i}: {e}"))?;
            }
            Ok::<_, String>(())
        }
        .await;
        // The client's report (it has stopped polling by then); our
        // endpoint keeps retransmitting until then.
        let report = match &echoed {
            Ok(()) => common::child_report(&line_rx, Duration::from_secs(60)).await,
            Err(e) => Err(e.clone()),
        };
        if let Ok(Ok(m)) = timeout(Duration::from_millis(100), ep.recv()).await {
            return Err(format!("an extra message of {} bytes", m.len()));
        }
        drop(ep);
        Ok::<_, String>((child, echoed, report))
    });
    let _ = std::fs::remove_file(sock);
    let (mut child, echoed, report) = result?;
    let status = dpdk_common::finish_child(&mut child, Duration::from_secs(30));
    echoed?;
    let report = report?;
    if !report.starts_with("CHILD-OK") {
        return Err(format!("client: {report}"));
    }
    dpdk_common::child_verdict(
        status,
        format!("server checked and echoed every message; {report}"),
    )
}

fn main() -> ExitCode {
    if let Some(code) = dpdk_common::child_main(|sock| client(sock).map(|r| (r, ()))) {
        return code;
    }
    dpdk_common::run_single_test(
        "reliable_endpoints_exchange_messages_up_to_1_mib_between_two_processes_over_memif",
        || {
            server(&format!(
                "/tmp/insane-reliable-memif-{}.sock",
                std::process::id()
            ))
        },
    )
}
