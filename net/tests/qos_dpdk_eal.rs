//! A `[dpdk]` section whose EAL arguments DPDK rejects (feature `dpdk`):
//! a `latency=critical, best-effort` endpoint on the section's address
//! falls back to io_uring busy-poll UDP, `explain()` names the EAL
//! failure, and nothing aborts. Alone in its test binary: a failed
//! `rte_eal_init` cannot be retried in its process.
//!
//! Under `CI=true` a build without libdpdk fails; otherwise the test is
//! skipped with the reason.

use std::sync::Arc;

use insane_net::config::Config;
use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::{Endpoint, Qos, TransportConfig};
use insane_runtime::runtime::Runtime;

#[test]
fn bad_eal_arguments_fall_back_to_io_uring_busy_poll_naming_the_eal_error() {
    if !insane_dpdk::AVAILABLE {
        let why = insane_dpdk::Error::unavailable();
        if insane_testhosts::in_ci() {
            panic!("DPDK is required under CI: {why}");
        }
        eprintln!("skipping: {why}");
        return;
    }
    let config = Config::from_toml_str(
        "[dpdk]\neal = [\"--no-pci\", \"--no-huge\", \"--insane-no-such-option\"]\nport = 0\naddress = \"127.0.0.1/8\"\n",
        "test config",
    )
    .unwrap();
    let rt = Runtime::builder()
        .cores(1)
        .on_core_start(Arc::new(|_| {
            insane_uring::install_on_current_core(&Default::default())
        }))
        .build()
        .unwrap();
    rt.block_on(async move {
        let qos = Qos::builder().critical().best_effort().poll().build();
        for attempt in 0..2 {
            // The second bind sees the same (remembered) EAL failure.
            let ep =
                Endpoint::bind_with_config("127.0.0.1:0", qos, TransportConfig::default(), &config)
                    .await
                    .expect("falls back to the kernel");
            let explain = ep.explain();
            println!("attempt {attempt}: {explain}");
            assert_eq!(ep.driver(), Kind::UringUdpBusyPoll, "{explain}");
            assert!(
                explain.contains("-> io_uring busy-poll UDP (dpdk: DPDK EAL: rte_eal_init("),
                "{explain}"
            );
            assert!(explain.contains("--insane-no-such-option"), "{explain}");
        }
    });
}
