//! The userspace stack over DPDK between two processes: this test (the
//! `net_memif` server, an echo server on the stack) spawns itself as a
//! child (`--child`: the `net_memif` client, its own EAL and
//! `--file-prefix`), which sends 100 000 numbered datagrams of varied
//! sizes through its stack (window of 32) and checks every echo, in
//! order. Both resolve each other with ARP from cold caches. Feature
//! `dpdk`.
//!
//! Shutdown follows the memif rule (the PMD unmaps shared memory when the
//! peer goes, which can crash an `rx_burst` in flight): both sides stop
//! polling before either closes its port. The child reports `DONE` and
//! waits; the server, no longer polling, closes its port, then tells the
//! child to exit.
//!
//! No libtest harness (`harness = false`, one EAL per process): the
//! output imitates libtest's so the totals of `scripts/test-all.sh` count
//! it. Under `CI=true` a build without libdpdk fails; otherwise it is
//! skipped with the reason.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use insane_dpdk::{Eal, Port, PortConfig};
use insane_net::stack::dpdk::DpdkDevice;
use insane_net::stack::{Interface, InterfaceConfig, TxFrame};

// One CI rule and libtest-style output for every DPDK test binary.
#[path = "../../drivers/dpdk/tests/common/mod.rs"]
mod dpdk_common;

const MESSAGES: u64 = 100_000;
const WINDOW: u64 = 32;
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const PORT: u16 = 7400;
/// Wall-clock limit of each phase (debug builds included).
const LIMIT: Duration = Duration::from_secs(120);

/// Payload `i`: 8 bytes of `i`, then up to 1400 bytes of a pattern.
fn payload(i: u64) -> Vec<u8> {
    let len = 8 + (i as usize * 7919) % 1400;
    let mut p: Vec<u8> = (0..len).map(|j| (i as usize * 3 + j * 11) as u8).collect();
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

fn eal_args(role: &str, lcore: u32, sock: &str, mac: &str) -> Vec<String> {
    dpdk_common::memif_eal_args("memif", role, lcore, sock, mac)
}

/// Opens port 0 as a stack interface at `ip`.
fn open(args: &[String], ip: Ipv4Addr, attempts: u32) -> Result<Interface<DpdkDevice>, String> {
    Eal::init(args).map_err(|e| e.to_string())?;
    let mut port = Port::open(
        0,
        &PortConfig {
            start_attempts: attempts,
            ..PortConfig::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let queue = port.take_queue(0).ok_or("no queue 0")?;
    let device = DpdkDevice::new(queue).map_err(|e| e.to_string())?;
    let config = InterfaceConfig::new(insane_net::config::Ipv4Cidr::new(ip, 24).into());
    Ok(Interface::new(device, config))
}

/// Polls until the link is up.
fn wait_link(iface: &mut Interface<DpdkDevice>) -> Result<(), String> {
    let start = Instant::now();
    while !iface.device().queue().link().up {
        if start.elapsed() > Duration::from_secs(20) {
            return Err("memif link not up after 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// The child: memif client, sends and checks. Returns the report and the
/// interface, which must stay open (not polled) until the server has
/// closed its side.
fn client(sock: &str) -> Result<(String, Interface<DpdkDevice>), String> {
    let args = eal_args("client", 1, sock, "02:00:00:00:09:02");
    // A client started before its server fails to start: retry.
    let mut iface = open(&args, CLIENT_IP, 100)?;
    wait_link(&mut iface)?;
    let ep = iface.bind(PORT).map_err(|e| e.to_string())?;
    let server = SocketAddrV4::new(SERVER_IP, PORT);
    let start = Instant::now();
    let (mut sent, mut checked) = (0u64, 0u64);
    let mut rounds = 0u64;
    while checked < MESSAGES {
        rounds += 1;
        if rounds % 1024 == 0 && start.elapsed() > LIMIT {
            return Err(format!(
                "timeout: sent {sent}, checked {checked}, stats {:?}",
                iface.stats()
            ));
        }
        let now = Instant::now();
        iface.poll(now);
        while let Some(d) = iface.recv_from(ep) {
            if d.peer() != server {
                return Err(format!("echo from {}", d.peer()));
            }
            if *d != payload(checked)[..] {
                return Err(format!("echo {checked} differs ({} bytes)", d.len()));
            }
            checked += 1;
        }
        // The first datagram waits for ARP; the rest only once resolved.
        let resolved = iface.neighbor(SERVER_IP, now).is_some();
        while sent < MESSAGES && sent - checked < WINDOW && (resolved || sent == 0) {
            let mut f = iface.alloc_tx().ok_or("client pool empty")?;
            if !TxFrame::extend_from_slice(&mut f, &payload(sent)) {
                return Err("payload does not fit".into());
            }
            iface
                .send_to(ep, server, f, now)
                .map_err(|e| format!("send {sent}: {:?}", e.kind))?;
            sent += 1;
            if !resolved {
                break;
            }
        }
        iface.flush();
    }
    let secs = start.elapsed().as_secs_f64();
    // Stop polling, report, wait for the server to close its side.
    let drops = iface.stats().rx.drops;
    if drops.total() != 0 {
        return Err(format!("client dropped received frames: {drops:?}"));
    }
    let report = format!(
        "DONE checked={checked} in {secs:.2} s ({:.0} echoes/s)",
        checked as f64 / secs
    );
    Ok((report, iface))
}

fn server(sock: &str) -> Result<String, String> {
    let _ = std::fs::remove_file(sock);
    let args = eal_args("server", 0, sock, "02:00:00:00:09:01");
    let mut iface = open(&args, SERVER_IP, 1)?;
    let ep = iface.bind(PORT).map_err(|e| e.to_string())?;
    let (mut child, line_rx) = dpdk_common::spawn_child(sock)?;
    let result = (|| {
        wait_link(&mut iface)?;
        let pool = iface.device().queue().pool().clone();
        let baseline = pool.in_use_count();
        let start = Instant::now();
        let mut echoed = 0u64;
        let mut rounds = 0u64;
        while echoed < MESSAGES {
            rounds += 1;
            if rounds % 1024 == 0 && start.elapsed() > LIMIT {
                return Err(format!(
                    "timeout: echoed {echoed}, stats {:?}",
                    iface.stats()
                ));
            }
            let now = Instant::now();
            iface.poll(now);
            while let Some(d) = iface.recv_from(ep) {
                let mut r = iface.alloc_tx().ok_or("server pool empty")?;
                if !TxFrame::extend_from_slice(&mut r, &d) {
                    return Err("echo does not fit".into());
                }
                let peer = d.peer();
                drop(d);
                iface
                    .send_to(ep, peer, r, now)
                    .map_err(|e| format!("echo {echoed}: {:?}", e.kind))?;
                echoed += 1;
            }
            iface.flush();
        }
        // Send what is still batched, then stop polling.
        for _ in 0..10_000 {
            if iface.device().queue().pending() == 0 {
                break;
            }
            iface.flush();
        }
        if iface.device().queue().pending() != 0 {
            return Err("echoes stuck in the TX batch".into());
        }
        let done = loop {
            match line_rx.recv_timeout(LIMIT) {
                Ok(line) if line.contains("CHILD-OK") || line.contains("CHILD-FAILED") => {
                    break line;
                }
                Ok(_) => continue,
                Err(_) => return Err("no report from the client".into()),
            }
        };
        if !done.contains("CHILD-OK") {
            return Err(format!("client: {done}"));
        }
        let in_use = pool.in_use_count();
        if in_use != baseline {
            return Err(format!(
                "server mbufs in use: {in_use}, before traffic {baseline}"
            ));
        }
        let drops = iface.stats().rx.drops;
        if drops.total() != 0 {
            return Err(format!("server dropped received frames: {drops:?}"));
        }
        Ok(format!(
            "server echoed {echoed}, mbufs back in the pool; {done}"
        ))
    })();
    // Close our port first (the client no longer polls), then let it go.
    drop(iface);
    let status = dpdk_common::finish_child(&mut child, Duration::from_secs(30));
    let _ = std::fs::remove_file(sock);
    let report = result?;
    dpdk_common::child_verdict(status, report)
}

fn main() -> ExitCode {
    // The child keeps its port open (not polled) until the server has
    // closed its own.
    if let Some(code) = dpdk_common::child_main(client) {
        return code;
    }
    dpdk_common::run_single_test(
        "stack_echoes_100k_datagrams_between_two_processes_over_memif",
        || {
            server(&format!(
                "/tmp/insane-memif-test-{}.sock",
                std::process::id()
            ))
        },
    )
}
