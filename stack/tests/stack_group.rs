//! Interfaces on several queues of one port, one host (`stack::group`):
//! over in-memory devices, one per queue, each with a raw peer end that
//! plays the wire (the NIC or the peer chose the queue).
//!
//! * a UDP port is bound on one member at a time, ephemeral ports never
//!   collide across members, a port comes free when its endpoint unbinds
//!   or its member leaves;
//! * a datagram that arrives on another member's queue is delivered to the
//!   endpoint, in order, as the received frame itself, and counted on both
//!   sides; a forwarded frame is never forwarded again; one for no member
//!   is dropped as before;
//! * a full inbox drops and counts, and every frame goes back to its pool;
//! * the ARP reply to one member's request, arriving on another queue,
//!   releases the datagram the first member held for it.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use insane_stack::group::{INBOX_FRAMES, QueueGroup};
use insane_stack::testing::PairDevice;
use insane_stack::testing::frames::{arp_frame, udp_frame};
use insane_stack::wire::{ArpOperation, EthernetFrame, EthernetProtocol};
use insane_stack::{
    BindError, DropReason, EthernetAddress, Interface, InterfaceConfig, SendStatus, TxFrame,
};

const MAC_HOST: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]);
const MAC_PEER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]);
const IP_HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

type Iface = Interface<PairDevice>;

/// `n` interfaces of one host in one group, and the raw peer end of each
/// one's queue.
fn host(n: usize) -> (Vec<Iface>, Vec<PairDevice>) {
    let group = QueueGroup::new(n);
    let config = InterfaceConfig::new("10.0.0.1/24".parse().unwrap());
    (0..n)
        .map(|_| {
            let (queue, wire) = PairDevice::pair(MAC_HOST, MAC_PEER, 1500);
            let member = group.join().expect("a free member slot");
            (Interface::in_group(queue, config, member), wire)
        })
        .unzip()
}

fn to_host(port: u16, payload: &[u8]) -> Vec<u8> {
    udp_frame(
        MAC_PEER,
        MAC_HOST,
        SocketAddrV4::new(IP_PEER, 5000),
        SocketAddrV4::new(IP_HOST, port),
        payload,
    )
}

#[test]
fn a_port_is_bound_on_one_member_at_a_time() {
    let (mut q, _wires) = host(3);
    let ep = q[1].bind(7000).unwrap();
    assert_eq!(
        q[0].bind(7000),
        Err(BindError::PortInUseInGroup {
            port: 7000,
            member: 1
        })
    );
    assert_eq!(
        q[2].bind(7000).unwrap_err().to_string(),
        "UDP port 7000 is already bound on queue group member 1 (another queue of this host)"
    );
    assert!(q[1].unbind(ep));
    q[0].bind(7000).expect("free again after the unbind");

    // Ephemeral ports: unique across the group.
    let mut ports = std::collections::HashSet::new();
    for i in 0..300 {
        let iface = &mut q[i % 3];
        let id = iface.bind(0).unwrap();
        let port = iface.local_addr(id).unwrap().port();
        assert!(ports.insert(port), "ephemeral port {port} given twice");
        assert_eq!(iface.group().unwrap().group().holder(port), Some(i % 3));
    }

    // A member that leaves frees its ports.
    let group = q[0].group().unwrap().group().clone();
    let last = q.pop().unwrap();
    let held = ports
        .iter()
        .filter(|&&p| group.holder(p) == Some(2))
        .count();
    assert_eq!(held, 100);
    drop(last);
    assert_eq!(
        ports
            .iter()
            .filter(|&&p| group.holder(p) == Some(2))
            .count(),
        0
    );
    assert_eq!(group.joined(), 2);
    let again = group.join().expect("the slot is free again");
    assert_eq!(again.index(), 2);
}

#[test]
fn datagrams_arriving_on_another_queue_reach_their_endpoint_in_order_without_a_copy() {
    let (mut q, wires) = host(2);
    let ep = q[1].bind(7000).unwrap();
    let now = Instant::now();
    const N: usize = 200;
    for i in 0..N {
        // Half on the member's own queue, half on the other.
        let payload = format!("datagram {i}");
        if i % 2 == 0 {
            q[0].device().inject(to_host(7000, payload.as_bytes()));
        } else {
            q[1].device().inject(to_host(7000, payload.as_bytes()));
        }
    }
    // Queue 0 first: its frames wait in member 1's inbox until member 1
    // polls, and member 1 handles its own queue before its inbox.
    while q[0].poll(now) > 0 {}
    assert_eq!(q[0].stats().rx.forwarded, (N / 2) as u64);
    assert_eq!(q[0].stats().rx.udp_delivered, 0);
    // The forwarded frames are still lent out by queue 0's device.
    assert_eq!(q[0].device().rx_in_use(), N / 2);
    while q[1].poll(now) > 0 {}

    let mut got = Vec::new();
    while let Some(d) = q[1].recv_from(ep) {
        got.push(String::from_utf8(d.to_vec()).unwrap());
    }
    assert_eq!(got.len(), N);
    // Per queue, in order.
    let odd: Vec<_> = got
        .iter()
        .filter(|s| s.ends_with(['1', '3', '5', '7', '9']))
        .collect();
    let even: Vec<_> = got
        .iter()
        .filter(|s| !s.ends_with(['1', '3', '5', '7', '9']))
        .collect();
    for (k, s) in even.iter().enumerate() {
        assert_eq!(**s, format!("datagram {}", 2 * k));
    }
    for (k, s) in odd.iter().enumerate() {
        assert_eq!(**s, format!("datagram {}", 2 * k + 1));
    }
    // Every frame back to its pool, every frame accounted on both members.
    assert_eq!(q[0].device().rx_in_use(), 0);
    assert_eq!(q[1].device().rx_in_use(), 0);
    let (s0, s1) = (q[0].stats().rx, q[1].stats().rx);
    assert_eq!(s0.frames, s0.accounted());
    assert_eq!(s1.frames, s1.accounted());
    assert_eq!(
        s1.frames,
        N as u64,
        "its own {} and the forwarded {}",
        N / 2,
        N / 2
    );
    assert_eq!(s1.udp_delivered, N as u64);
    assert_eq!(wires[0].rx_waiting() + wires[1].rx_waiting(), 0);
}

#[test]
fn a_forwarded_frame_is_not_forwarded_again_and_unbound_ports_are_dropped() {
    let (mut q, _wires) = host(2);
    let now = Instant::now();
    let ep = q[1].bind(7000).unwrap();
    q[0].device().inject(to_host(7000, b"late"));
    q[0].poll(now);
    assert_eq!(q[0].stats().rx.forwarded, 1);
    // Member 1's endpoint goes before it drains its inbox, and member 0
    // binds the port meanwhile: the frame is dropped at member 1, not
    // sent back.
    assert!(q[1].unbind(ep));
    q[0].bind(7000).unwrap();
    q[1].poll(now);
    assert_eq!(q[1].stats().rx.drops.get(DropReason::NoEndpoint), 1);
    assert_eq!(q[1].stats().rx.forwarded, 0);
    assert_eq!(q[0].device().rx_in_use(), 0);

    // No member has port 7001: dropped where it arrives.
    q[1].device().inject(to_host(7001, b"x"));
    q[1].poll(now);
    assert_eq!(q[1].stats().rx.drops.get(DropReason::NoEndpoint), 2);
    assert_eq!(q[1].stats().rx.forwarded, 0);
}

#[test]
fn a_full_inbox_drops_and_counts_and_every_frame_returns_to_its_pool() {
    let (mut q, _wires) = host(2);
    let now = Instant::now();
    q[1].bind(7000).unwrap();
    let extra = 10;
    // Room for the forwarded frames lent out and the extra ones.
    q[0].device().set_rx_pool(INBOX_FRAMES + 2 * extra);
    for _ in 0..INBOX_FRAMES + extra {
        q[0].device().inject(to_host(7000, b"flood"));
    }
    while q[0].poll(now) > 0 {}
    let s0 = q[0].stats().rx;
    assert_eq!(s0.forwarded, INBOX_FRAMES as u64);
    assert_eq!(s0.drops.get(DropReason::ForwardQueueFull), extra as u64);
    assert_eq!(s0.frames, s0.accounted());
    assert_eq!(q[0].device().rx_in_use(), INBOX_FRAMES);
    // Member 1 leaves without draining: its inbox's frames go back.
    drop(q.pop());
    assert_eq!(q[0].device().rx_in_use(), 0);
}

#[test]
fn an_arp_reply_on_another_queue_releases_what_the_asking_member_held() {
    let (mut q, wires) = host(2);
    let now = Instant::now();
    let ep = q[1].bind(7000).unwrap();
    let mut frame = q[1].alloc_tx().unwrap();
    assert!(frame.extend_from_slice(b"after ARP"));
    let peer = SocketAddrV4::new(IP_PEER, 5000);
    assert_eq!(
        q[1].send_to(ep, peer, frame, now).unwrap(),
        SendStatus::Queued
    );
    q[1].flush();
    // The request left on member 1's queue ...
    let out = wires[1].take_rx();
    assert_eq!(out.len(), 1);
    assert_eq!(
        EthernetFrame::new_checked(&out[0][..]).unwrap().ethertype(),
        EthernetProtocol::Arp
    );
    // ... the reply arrives on member 0's.
    q[0].device().inject(arp_frame(
        ArpOperation::Reply,
        MAC_PEER,
        IP_PEER,
        MAC_HOST,
        IP_HOST,
    ));
    q[0].poll(now);
    assert_eq!(q[0].neighbor(IP_PEER, now), Some(MAC_PEER));
    assert!(
        wires[1].take_rx().is_empty(),
        "nothing yet: member 1 has not polled"
    );
    q[1].poll(now);
    assert_eq!(q[1].neighbor(IP_PEER, now), Some(MAC_PEER));
    let sent = wires[1].take_rx();
    assert_eq!(
        sent.len(),
        1,
        "the held datagram left on member 1's own queue"
    );
    assert!(sent[0].ends_with(b"after ARP"));
    assert!(wires[0].take_rx().is_empty());
}
