//! QoS endpoints and the DPDK driver inside one process (feature `dpdk`):
//!
//! * a `latency=critical, best-effort` endpoint bound to the `[dpdk]`
//!   address gets DPDK UDP on the section's port (`net_ring`), and
//!   `explain()` names the PMD; a second endpoint on the same core shares
//!   the port's stack; an endpoint on another core meanwhile cannot (one
//!   polling core per port) and says why; the port's queue is reused by
//!   a later runtime after the endpoints are dropped; device send buffers
//!   return to the mempool;
//! * a `[dpdk]` section whose port does not exist: io_uring busy-poll UDP,
//!   `explain()` naming the DPDK failure;
//! * normal and `resources=low` QoS never use DPDK, nor does an endpoint
//!   bound to another address (with the reason).
//!
//! All tests share one EAL (same arguments; `Eal::init` returns the first
//! result). Under `CI=true` a build without libdpdk fails; otherwise the
//! tests are skipped with the reason. A `[dpdk]` section with bad EAL
//! arguments is in `qos_dpdk_eal.rs` (a failed EAL stays failed in its
//! process); endpoint ↔ endpoint traffic over `net_memif` between two
//! processes in `qos_dpdk_memif.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use insane_net::config::Config;
use insane_net::qos::policy::Transport as Kind;
use insane_net::qos::{Endpoint, Qos, TransportConfig};
use insane_runtime::runtime::Runtime;
use insane_runtime::task::spawn_on;

/// Tests that use port 0 run one at a time (it has one polling core).
static PORT0: Mutex<()> = Mutex::new(());

fn require_dpdk(test: &str) -> bool {
    if insane_dpdk::AVAILABLE {
        return true;
    }
    let why = insane_dpdk::Error::unavailable();
    if insane_testhosts::in_ci() {
        panic!("{test}: DPDK is required under CI: {why}");
    }
    eprintln!("skipping {test}: {why}");
    false
}

fn eal_args() -> Vec<String> {
    [
        "-l",
        "0",
        "--no-pci",
        "--no-huge",
        "-m",
        "256",
        "--no-telemetry",
        "--no-shconf",
        "--log-level=*:error",
        "--vdev=net_ring0",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!(
        "--file-prefix=insane-qos-ring-{}",
        std::process::id()
    )])
    .collect()
}

fn dpdk_config(port: u16, address: &str) -> Config {
    let eal: Vec<String> = eal_args().iter().map(|a| format!("{a:?}")).collect();
    Config::from_toml_str(
        &format!(
            "[dpdk]\neal = [{}]\nport = {port}\naddress = \"{address}\"\n",
            eal.join(", ")
        ),
        "test config",
    )
    .expect("config")
}

fn runtime(cores: usize) -> Runtime {
    Runtime::builder()
        .cores(cores)
        .on_core_start(Arc::new(|_| {
            insane_uring::install_on_current_core(&Default::default())
        }))
        .build()
        .expect("io_uring runtime")
}

fn critical() -> Qos {
    Qos::builder().critical().best_effort().poll().build()
}

fn lock_port0() -> std::sync::MutexGuard<'static, ()> {
    PORT0.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn critical_endpoint_on_the_dpdk_address_uses_dpdk_and_names_the_pmd() {
    if !require_dpdk("critical_endpoint_on_the_dpdk_address_uses_dpdk") {
        return;
    }
    let _port0 = lock_port0();
    let eal = insane_net::qos::dpdk::init_eal(&eal_args()).expect("EAL");
    let port = eal.port_by_name("net_ring0").expect("net_ring0");
    let config = dpdk_config(port, "10.77.0.1/24");
    let rt = runtime(2);
    let c = config.clone();
    let initial_free = rt.block_on(async move {
        let ep = Endpoint::bind_with_config(
            "10.77.0.1:7500",
            critical(),
            TransportConfig::default(),
            &c,
        )
        .await
        .expect("bind on the [dpdk] address");
        let explain = ep.explain().to_string();
        println!("{explain}");
        assert_eq!(ep.driver(), Kind::DpdkUdp, "{explain}");
        assert!(
            explain.starts_with("latency=critical, best-effort, resources=poll -> DPDK UDP; "),
            "{explain}"
        );
        assert!(explain.contains("PMD net_ring"), "{explain}");
        assert!(
            explain.contains(&format!("DPDK port {port} (net_ring0")),
            "{explain}"
        );
        assert_eq!(ep.local_addr().unwrap(), "10.77.0.1:7500".parse().unwrap());
        assert_eq!(
            ep.max_payload(),
            1472,
            "MTU 1500 minus IPv4 and UDP headers"
        );

        // Device send buffers are mbufs of the port's pool.
        let pool = insane_net::qos::dpdk::port_pool(port).expect("the endpoint opened the port");
        let free = pool.avail_count();
        let buf = ep.buffer().await;
        assert_eq!(buf.capacity(), 1472);
        assert_eq!(pool.avail_count(), free - 1, "the TxBuf holds an mbuf");
        drop(buf);
        assert_eq!(
            pool.avail_count(),
            free,
            "the mbuf went back at once (home core)"
        );

        // A second endpoint on this core shares the port's stack.
        let second =
            Endpoint::bind_with_config("10.77.0.1:0", critical(), TransportConfig::default(), &c)
                .await
                .expect("second endpoint");
        assert_eq!(second.driver(), Kind::DpdkUdp, "{}", second.explain());
        assert_ne!(second.local_addr().unwrap().port(), 7500);

        // Another core cannot poll the same queue: it falls back, and the
        // kernel cannot bind the stack's address either; the error names
        // both reasons.
        let c2 = c.clone();
        let other = spawn_on(1, async move {
            Endpoint::bind_with_config(
                "10.77.0.1:7501",
                critical(),
                TransportConfig::default(),
                &c2,
            )
            .await
            .map(|e| e.explain().to_string())
        })
        .await
        .expect("task on core 1");
        let e = other.expect_err("core 1 cannot use port 0's queue while core 0 polls it");
        println!("{e}");
        assert!(
            e.to_string().contains(&format!(
                "DPDK was not usable: DPDK port {port} queue 0 is polled by core 0"
            )),
            "{e}"
        );
        drop((ep, second));
        pool.avail_count()
    });
    drop(rt);

    // The queue went back to the port: a new runtime's endpoint takes it.
    let rt = runtime(1);
    rt.block_on(async move {
        let ep = Endpoint::bind_with_config(
            "10.77.0.1:7500",
            critical(),
            TransportConfig::default(),
            &config,
        )
        .await
        .expect("bind again");
        assert_eq!(ep.driver(), Kind::DpdkUdp, "{}", ep.explain());
        let pool = insane_net::qos::dpdk::port_pool(port).unwrap();
        assert_eq!(
            pool.avail_count(),
            initial_free,
            "no mbuf leaked across hosts"
        );
    });
}

#[test]
fn missing_dpdk_port_falls_back_to_io_uring_busy_poll_naming_why() {
    if !require_dpdk("missing_dpdk_port_falls_back") {
        return;
    }
    insane_net::qos::dpdk::init_eal(&eal_args()).expect("EAL");
    let config = dpdk_config(9, "127.0.0.1/8");
    let rt = runtime(1);
    rt.block_on(async move {
        let ep = Endpoint::bind_with_config(
            "127.0.0.1:0",
            critical(),
            TransportConfig::default(),
            &config,
        )
        .await
        .expect("falls back to the kernel");
        let explain = ep.explain();
        println!("{explain}");
        assert_eq!(ep.driver(), Kind::UringUdpBusyPoll, "{explain}");
        assert!(
            explain.contains(
                "-> io_uring busy-poll UDP (dpdk: opening DPDK port 9: DPDK port 9 does not exist"
            ),
            "{explain}"
        );
        // Still a working endpoint: a datagram to itself.
        let mut buf = ep.buffer().await;
        buf.extend_from_slice(b"fallback").unwrap();
        ep.send_to(buf, ep.local_addr().unwrap()).await.unwrap();
        let got = insane_runtime::time::timeout(Duration::from_secs(5), ep.recv())
            .await
            .expect("datagram to itself")
            .unwrap();
        assert_eq!(&got[..], b"fallback");
    });
    assert!(
        insane_net::qos::dpdk::port_pool(9).is_none(),
        "port 9 was never opened"
    );
}

#[test]
fn normal_low_and_other_address_endpoints_never_use_dpdk() {
    if !require_dpdk("normal_low_and_other_address_endpoints_never_use_dpdk") {
        return;
    }
    insane_net::qos::dpdk::init_eal(&eal_args()).expect("EAL");
    // Port 0 (which exists) at 127.0.0.1: a QoS that DPDK does not serve
    // must not open it.
    let _port0 = lock_port0();
    let opened_before = insane_net::qos::dpdk::port_pool(0).map(|p| p.avail_count());
    let config = dpdk_config(0, "127.0.0.1/8");
    let rt = runtime(1);
    rt.block_on(async move {
        let normal = Qos::builder().best_effort().build();
        let ep = Endpoint::bind_with_config("127.0.0.1:0", normal, TransportConfig::default(), &config)
            .await
            .unwrap();
        println!("{}", ep.explain());
        assert_eq!(ep.driver(), Kind::UringUdp, "{}", ep.explain());
        assert_eq!(
            ep.explain(),
            "latency=normal, best-effort, resources=low -> io_uring UDP"
        );

        let low = Qos::builder().critical().best_effort().low().build();
        let ep = Endpoint::bind_with_config("127.0.0.1:0", low, TransportConfig::default(), &config)
            .await
            .unwrap();
        assert_eq!(ep.driver(), Kind::UringUdp, "{}", ep.explain());

        let reliable = Qos::builder().critical().reliable().poll().build();
        let ep = Endpoint::bind_with_config("127.0.0.1:0", reliable, TransportConfig::default(), &config)
            .await
            .unwrap();
        assert_eq!(ep.driver(), Kind::UringTcp, "{}", ep.explain());

        // Critical best effort, but not on the [dpdk] address.
        let elsewhere = dpdk_config(0, "10.77.9.1/24");
        let ep = Endpoint::bind_with_config("127.0.0.1:0", critical(), TransportConfig::default(), &elsewhere)
            .await
            .unwrap();
        println!("{}", ep.explain());
        assert_eq!(ep.driver(), Kind::UringUdpBusyPoll, "{}", ep.explain());
        assert!(
            ep.explain().contains(
                "(dpdk: 127.0.0.1 is not 10.77.9.1, the stack's address on DPDK port 0 ([dpdk] address)"
            ),
            "{}",
            ep.explain()
        );
    });
    assert_eq!(
        insane_net::qos::dpdk::port_pool(0).map(|p| p.avail_count()),
        opened_before,
        "no endpoint of these QoS opened (or used) the DPDK port"
    );
}
