//! The driver-selection policy with AF_XDP configured: a configuration
//! naming a missing interface falls back to io_uring busy-poll UDP and the
//! explanation names the interface; a real veth in a test namespace probes
//! as available and is chosen for latency-critical best-effort flows.

use insane_net::config::Config;
use insane_net::qos::Qos;
use insane_net::qos::policy::{Availability, Capabilities, TransportKind, choose};
use insane_testhosts::TestHosts;

fn critical() -> Qos {
    Qos::builder().critical().best_effort().poll().build()
}

#[test]
fn missing_xdp_interface_falls_back_to_kernel_busy_poll_and_is_explained() {
    let config = Config::from_toml_str(
        "[xdp]\ninterface = \"insane-nosuch0\"\nqueue = 0\naddress = \"10.9.9.1/24\"\n",
        "test config",
    )
    .unwrap();
    let caps = Capabilities::probe_with(&config);
    let Availability::Unavailable(why) = &caps.xdp else {
        panic!("AF_XDP on a missing interface: {:?}", caps.xdp);
    };
    assert!(why.contains("insane-nosuch0"), "{why}");
    let choice = choose(&critical(), &caps).unwrap();
    let kernel = if caps.uring.is_available() {
        TransportKind::UringUdpBusyPoll
    } else {
        TransportKind::EpollUdpBusyPoll
    };
    assert_eq!(choice.transport, kernel, "{}", choice.explain);
    println!("{}", choice.explain);
    assert!(
        choice
            .explain
            .contains("af_xdp: interface insane-nosuch0 not found"),
        "{}",
        choice.explain
    );
    assert!(
        choice.explain.contains("dpdk: not configured"),
        "{}",
        choice.explain
    );
}

#[test]
fn xdp_on_a_veth_is_probed_and_chosen() {
    if !TestHosts::require("xdp_on_a_veth_is_probed_and_chosen") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let a = hosts.iface(0, 0).clone();
    let text = format!(
        "[xdp]\ninterface = \"{}\"\nqueue = 0\naddress = \"10.77.1.100/24\"\n",
        a.name
    );
    let caps = hosts.run_in(0, move || {
        Capabilities::probe_with(&Config::from_toml_str(&text, "test config").unwrap())
    });
    assert_eq!(
        caps.xdp,
        Availability::Available(format!("{} queue 0, native, copy", a.name))
    );
    let choice = choose(&critical(), &caps).unwrap();
    println!("{}", choice.explain);
    assert_eq!(
        choice.transport,
        TransportKind::XdpUdp,
        "{}",
        choice.explain
    );
    // Normal and low-resource flows never get AF_XDP.
    let normal = choose(&Qos::default(), &caps).unwrap();
    assert_ne!(normal.transport, TransportKind::XdpUdp);
}
