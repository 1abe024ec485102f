//! `Endpoint::bind` with the DPDK configuration from `INSANE_DPDK_*`
//! variables (feature `dpdk`): the process-wide probe initialises the EAL
//! and names the PMD, a `latency=critical, best-effort` endpoint on
//! `INSANE_DPDK_ADDRESS` gets DPDK UDP, and the runtime core that bound
//! it keeps its CPU affinity (the EAL pins the thread that initialises
//! it to the first CPU of `-l`: that must be a thread of its own).
//!
//! No libtest harness (`harness = false`): the variables are set before
//! any thread exists. The output imitates libtest's. Under `CI=true` a
//! build without libdpdk fails; otherwise the test is skipped with the
//! reason.

use std::process::ExitCode;
use std::sync::Arc;

use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::{Endpoint, Qos};
use insane_runtime::runtime::Runtime;

// One CI rule and libtest-style output for every DPDK test binary.
#[path = "../../drivers/dpdk/tests/common/mod.rs"]
mod dpdk_common;

const NAME: &str = "endpoint_bind_uses_dpdk_from_insane_dpdk_variables";

/// The calling thread's allowed CPUs.
fn affinity() -> Result<Vec<usize>, String> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(format!(
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `set` was filled by the kernel; CPU_ISSET reads it.
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

fn run() -> Result<String, String> {
    let eal = format!(
        "-l 1 --no-pci --no-huge -m 256 --no-telemetry --no-shconf --log-level=*:error \
         --file-prefix=insane-qos-env-{} --vdev=net_ring0",
        std::process::id()
    );
    // SAFETY: no other thread exists yet (no harness, nothing spawned).
    unsafe {
        std::env::set_var("INSANE_DPDK_EAL", &eal);
        std::env::set_var("INSANE_DPDK_PORT", "0");
        std::env::set_var("INSANE_DPDK_ADDRESS", "10.79.0.1/24");
        std::env::remove_var("INSANE_CONFIG");
    }
    let rt = Runtime::builder()
        .cores(1)
        .on_core_start(Arc::new(|_| {
            insane_uring::install_on_current_core(&Default::default())
        }))
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let before = affinity()?;
        let qos = Qos::builder().critical().best_effort().poll().build();
        let ep = Endpoint::bind("10.79.0.1:7800", qos)
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let explain = ep.explain().to_string();
        println!("{explain}");
        if ep.driver() != Kind::DpdkUdp {
            return Err(format!("not DPDK: {explain}"));
        }
        if !explain.contains("PMD net_ring") {
            return Err(format!("PMD not named: {explain}"));
        }
        let after = affinity()?;
        if after != before {
            return Err(format!(
                "binding changed the core's CPU affinity from {before:?} to {after:?}"
            ));
        }
        // Another address: the kernel, with the reason.
        let other = Endpoint::bind("127.0.0.1:0", qos)
            .await
            .map_err(|e| format!("bind 127.0.0.1: {e}"))?;
        if other.driver() != Kind::UringUdpBusyPoll
            || !other.explain().contains("dpdk: 127.0.0.1 is not 10.79.0.1")
        {
            return Err(format!("other address: {}", other.explain()));
        }
        Ok(format!("{explain}; CPU affinity {after:?} unchanged"))
    })
}

fn main() -> ExitCode {
    dpdk_common::run_single_test(NAME, run)
}
