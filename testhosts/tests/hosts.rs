//! The test-host helper itself: namespaces appear, traffic flows between
//! them (UDP across one link, and through a router host), and everything is
//! gone after drop, also when the test panics.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use insane_testhosts::{BRIDGE, TestHosts};

fn namespace_exists(name: &str) -> bool {
    Path::new("/var/run/netns").join(name).exists()
}

fn link_exists_in_root(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Sends one datagram from `from` (inside its namespace) to `to` and
/// returns what the receiver got; both sockets have timeouts.
fn udp_once(hosts: &TestHosts, from: (usize, SocketAddr), to: (usize, SocketAddr)) -> Vec<u8> {
    let receiver = hosts.spawn_in(to.0, move || {
        let sock = UdpSocket::bind(to.1).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Tell the sender we are bound by answering its first probe.
        let mut buf = [0u8; 2048];
        let (n, peer) = sock.recv_from(&mut buf).expect("no datagram within 5 s");
        sock.send_to(b"ack", peer).unwrap();
        buf[..n].to_vec()
    });
    hosts.run_in(from.0, || {
        let sock = UdpSocket::bind(from.1).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 16];
        // Retry until the receiver is bound (bounded: 50 tries, ~5 s).
        for _ in 0..50 {
            sock.send_to(b"hello across namespaces", to.1).unwrap();
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                assert_eq!(&buf[..n], b"ack");
                return;
            }
        }
        panic!("no answer from {} within 5 s", to.1);
    });
    receiver.join().unwrap()
}

#[test]
fn pair_has_namespaces_addresses_and_udp_between_them() {
    if !TestHosts::require("pair_has_namespaces_addresses_and_udp_between_them") {
        return;
    }
    let hosts = TestHosts::pair().unwrap();
    let names: Vec<String> = hosts.hosts().iter().map(|h| h.netns.clone()).collect();
    let (a, b) = (hosts.iface(0, 0).clone(), hosts.iface(1, 0).clone());
    assert!(names.iter().all(|n| namespace_exists(n)), "{names:?}");
    assert!(a.name.len() <= 15 && b.name.len() <= 15);
    assert!(
        !link_exists_in_root(&a.name),
        "veth must live in the namespace"
    );
    assert_eq!(a.addr.octets()[..3], [10, 77, 1]);
    assert_ne!(a.mac, b.mac);

    // Address, MTU and checksum offload as configured.
    let shown = hosts
        .ip(0, &["-o", "addr", "show", "dev", &a.name])
        .unwrap();
    assert!(shown.contains(&format!("{}/24", a.addr)), "{shown}");
    let link = hosts
        .ip(0, &["-o", "link", "show", "dev", &a.name])
        .unwrap();
    assert!(
        link.contains("mtu 1500") && link.contains(&a.mac_string()),
        "{link}"
    );
    let features = hosts.exec(0, &["ethtool", "-k", &a.name]).unwrap();
    assert!(features.contains("tx-checksumming: off"), "{features}");
    // IPv6 off inside the namespace (written from a setns thread).
    let v6 = hosts
        .exec(0, &["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"])
        .unwrap();
    assert_eq!(v6.trim(), "1");
    // Permanent neighbour entry for the peer.
    let neigh = hosts.ip(0, &["neigh", "show", "dev", &a.name]).unwrap();
    assert!(
        neigh.contains(&b.addr.to_string()) && neigh.contains("PERMANENT"),
        "{neigh}"
    );

    let got = udp_once(
        &hosts,
        (0, SocketAddr::from((a.addr, 40000))),
        (1, SocketAddr::from((b.addr, 40001))),
    );
    assert_eq!(got, b"hello across namespaces");

    // A child process inside the namespace sees the veth.
    let out = hosts
        .command(1, "cat")
        .arg(format!("/sys/class/net/{}/address", b.name))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), b.mac_string());

    drop(hosts);
    for n in &names {
        assert!(!namespace_exists(n), "{n} still exists after drop");
    }
}

#[test]
fn three_hosts_route_through_the_middle_one() {
    if !TestHosts::require("three_hosts_route_through_the_middle_one") {
        return;
    }
    let hosts = TestHosts::builder()
        .hosts(3)
        .link(0, 1)
        .link(1, 2)
        .routed(true)
        .build()
        .unwrap();
    let a = hosts.iface(0, 0).addr;
    let c = hosts.iface(2, 1).addr;
    assert_eq!(a.to_string(), "10.77.1.1");
    assert_eq!(c.to_string(), "10.77.2.3");
    // Host 0 reaches host 2 only through host 1 (ARP on both links).
    let got = udp_once(
        &hosts,
        (0, SocketAddr::from((a, 40010))),
        (2, SocketAddr::from((c, 40011))),
    );
    assert_eq!(got, b"hello across namespaces");
}

#[test]
fn a_bridged_pair_shares_one_subnet_and_the_bridge_drops_the_share_it_is_told() {
    if !TestHosts::require(
        "a_bridged_pair_shares_one_subnet_and_the_bridge_drops_the_share_it_is_told",
    ) {
        return;
    }
    let hosts = TestHosts::bridged_pair().unwrap();
    let (a, b) = (hosts.iface(0, 0).addr, hosts.iface(1, 1).addr);
    assert_eq!(a.to_string(), "10.77.1.1");
    assert_eq!(b.to_string(), "10.77.1.2");
    let got = udp_once(
        &hosts,
        (0, SocketAddr::from((a, 40020))),
        (1, SocketAddr::from((b, 40021))),
    );
    assert_eq!(got, b"hello across namespaces");

    // Every UDP frame dropped: nothing arrives; the rule replaced by 0 %:
    // everything does again.
    let count = |hosts: &TestHosts, port: u16| {
        let receiver = hosts.spawn_in(1, move || {
            let sock = UdpSocket::bind((b, port)).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut n = 0;
            while sock.recv_from(&mut [0u8; 64]).is_ok() {
                n += 1;
            }
            n
        });
        std::thread::sleep(Duration::from_millis(50));
        hosts.run_in(0, move || {
            let sock = UdpSocket::bind((a, 0)).unwrap();
            for _ in 0..100 {
                sock.send_to(b"x", (b, port)).unwrap();
            }
        });
        receiver.join().unwrap()
    };
    hosts.drop_frames(BRIDGE, 100).unwrap();
    assert_eq!(count(&hosts, 40022), 0, "100 % dropped");
    hosts.drop_frames(BRIDGE, 0).unwrap();
    assert_eq!(count(&hosts, 40023), 100, "none dropped");
    assert!(hosts.drop_frames(BRIDGE, 101).is_err());
}

#[test]
fn everything_is_removed_when_the_test_panics() {
    if !TestHosts::require("everything_is_removed_when_the_test_panics") {
        return;
    }
    let mut names = Vec::new();
    let mut child = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let hosts = TestHosts::pair().unwrap();
        names.extend(hosts.hosts().iter().map(|h| h.netns.clone()));
        // A child process running in the namespace must not keep it alive.
        child = Some(hosts.command(0, "sleep").arg("30").spawn().unwrap());
        hosts.run_in(0, || panic!("deliberate failure inside the namespace"));
    }));
    assert!(result.is_err());
    // The teardown killed the process it found in the namespace.
    let status = child.unwrap().wait().unwrap();
    assert!(!status.success(), "{status}");
    assert_eq!(names.len(), 2);
    for n in &names {
        assert!(!namespace_exists(n), "{n} still exists after a panic");
    }
}

#[test]
fn available_or_skip_follows_the_ci_rule() {
    // On this machine test hosts either work or `require` explains why;
    // under CI they must work.
    match TestHosts::available() {
        Ok(()) => assert!(TestHosts::require("probe")),
        Err(reason) => {
            assert!(!reason.is_empty());
            assert!(
                !insane_testhosts::in_ci(),
                "CI without test hosts: {reason}"
            );
        }
    }
}
