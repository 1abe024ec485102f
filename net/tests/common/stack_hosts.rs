//! Userspace-stack hosts on in-memory devices for the tests.

use std::net::Ipv4Addr;

use insane_net::stack::{EthernetAddress, FrameDevice, Interface, InterfaceConfig};

/// A stack host with address `ip`/24 on `dev`, knowing `peer`'s MAC (no
/// ARP needed).
pub fn host<D: FrameDevice>(
    dev: D,
    ip: Ipv4Addr,
    peer: (Ipv4Addr, EthernetAddress),
) -> Interface<D> {
    let mut iface = Interface::new(
        dev,
        InterfaceConfig::new(format!("{ip}/24").parse().unwrap()),
    );
    iface.add_static_neighbor(peer.0, peer.1);
    iface
}
