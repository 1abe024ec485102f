//! `Endpoint::bind(addr, qos)` — the configuration loaded from the file
//! named by `INSANE_CONFIG` — with an `[xdp]` section: the process-wide
//! probe at the first bind finds AF_XDP on the interface, and a
//! latency-critical best-effort endpoint on the section's address is
//! carried by AF_XDP (the probe's socket was closed just before; a bind
//! that meets the kernel's EBUSY on the queue retries). A separate test
//! binary: the
//! configuration is loaded once per process.
//!
//! Run as root; under `CI=true` a missing capability fails the test,
//! otherwise it is skipped with the reason.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::{Endpoint, Qos};
use insane_runtime::runtime::Runtime;
use insane_runtime::time::timeout;
use insane_testhosts::TestHosts;

#[test]
fn endpoint_bind_uses_af_xdp_from_the_config_file() {
    if !TestHosts::require("endpoint_bind_uses_af_xdp_from_the_config_file") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let (a, b) = (hosts.iface(0, 0).clone(), hosts.iface(1, 0).clone());
    let o = a.addr.octets();
    let ip = Ipv4Addr::new(o[0], o[1], o[2], 100);
    let path = std::env::temp_dir().join(format!("insane-xdp-env-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        format!(
            "[xdp]\ninterface = \"{}\"\nqueue = 0\naddress = \"{ip}/24\"\n",
            a.name
        ),
    )
    .unwrap();
    // SAFETY: this binary has this one test; no other thread of the
    // process reads the environment while it is changed.
    unsafe { std::env::set_var("INSANE_CONFIG", &path) };
    let peer = SocketAddr::from((b.addr, 7401));
    let peer_sock = hosts.run_in(1, move || UdpSocket::bind(peer).unwrap());
    peer_sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let local = SocketAddr::from((ip, 7400));
    let (driver, explain) = hosts.run_in(0, move || {
        let rt = Runtime::builder()
            .cores(1)
            .on_core_start(Arc::new(|_| {
                insane_uring::install_on_current_core(&Default::default())
                    .or_else(|_| insane_epoll::install_on_current_core())
            }))
            .build()
            .unwrap();
        rt.block_on(async move {
            let qos = Qos::builder().critical().best_effort().poll().build();
            let ep = Endpoint::bind(local, qos).await.unwrap();
            let out = (ep.driver(), ep.explain().to_string());
            let mut buf = ep.buffer().await;
            buf.extend_from_slice(b"from insane.toml").unwrap();
            ep.send_to(buf, peer).await.unwrap();
            // Keep polling (ARP, the transmit kick) for a while.
            let _ = timeout(Duration::from_millis(300), ep.recv()).await;
            out
        })
    });
    let _ = std::fs::remove_file(&path);
    println!("{explain}");
    assert_eq!(driver, Kind::XdpUdp, "{explain}");
    assert!(
        explain.contains(&format!("AF_XDP on {} queue 0", a.name)),
        "{explain}"
    );
    let mut got = [0u8; 64];
    let (len, from) = peer_sock
        .recv_from(&mut got)
        .expect("datagram from the endpoint");
    assert_eq!(&got[..len], b"from insane.toml");
    assert_eq!(from, local);
}
