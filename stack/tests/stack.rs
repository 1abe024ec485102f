//! The userspace stack (`insane_stack`) end to end over the in-memory
//! pair device: ARP, UDP both ways, ICMP echo, ARP queueing, expiry and
//! failure, endpoint queues, and hostile frames, each counted.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use insane_stack::testing::PairDevice;
use insane_stack::testing::frames::{
    arp_frame, icmp_echo_request, ipv4_frame, refresh_checksums, udp_frame,
};
use insane_stack::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet,
    Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket,
};
use insane_stack::{
    ArpConfig, BindError, DropReason, EndpointId, EthernetAddress, FrameDevice, Interface,
    InterfaceConfig, RxOutcome, SendErrorKind, SendStatus, TxFrame, UDP_HEADROOM,
};

const MAC_A: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]);
const MAC_B: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]);
const MAC_X: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const IP_X: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 99);

type Iface = Interface<PairDevice>;

fn config(ip: Ipv4Addr) -> InterfaceConfig {
    InterfaceConfig::new(format!("{ip}/24").parse().unwrap())
}

/// Two interfaces joined by a pair device.
fn pair_with(ca: InterfaceConfig, cb: InterfaceConfig) -> (Iface, Iface) {
    let (a, b) = PairDevice::pair(MAC_A, MAC_B, 1500);
    (Interface::new(a, ca), Interface::new(b, cb))
}

fn pair() -> (Iface, Iface) {
    pair_with(config(IP_A), config(IP_B))
}

/// One interface, and the raw other end of its link (a "host" that sends
/// and inspects frames by hand).
fn host() -> (Iface, PairDevice) {
    let (a, raw) = PairDevice::pair(MAC_A, MAC_X, 1500);
    (Interface::new(a, config(IP_A)), raw)
}

/// Polls both until no frame moves.
fn pump(a: &mut Iface, b: &mut Iface, now: Instant) {
    for _ in 0..1000 {
        let moved = a.poll(now) + b.poll(now);
        if moved == 0 && a.device().rx_waiting() == 0 && b.device().rx_waiting() == 0 {
            return;
        }
    }
    panic!("the interfaces keep exchanging frames");
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn send(
    iface: &mut Iface,
    ep: EndpointId,
    to: SocketAddrV4,
    data: &[u8],
    now: Instant,
) -> SendStatus {
    let mut frame = iface.alloc_tx().expect("tx buffer");
    assert!(frame.extend_from_slice(data));
    iface.send_to(ep, to, frame, now).expect("send_to")
}

fn addr(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

fn assert_accounted(iface: &Iface) {
    let s = iface.stats();
    assert_eq!(s.rx.frames, s.rx.accounted(), "{s:#?}");
}

fn is_arp(frame: &[u8], op: ArpOperation) -> Option<ArpRepr> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let repr = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
    match repr {
        ArpRepr::EthernetIpv4 { operation, .. } if operation == op => Some(repr),
        _ => None,
    }
}

#[test]
fn arp_from_cold_cache_then_udp_both_ways_all_sizes() {
    let (mut a, mut b) = pair();
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    let now = Instant::now();
    assert_eq!(a.max_payload(), 1472);
    assert_eq!(a.neighbor(IP_B, now), None);

    // Cold cache: the first datagram waits for ARP.
    assert_eq!(
        send(&mut a, ea, addr(IP_B, 6000), b"first", now),
        SendStatus::Queued
    );
    let wire = b.device().take_rx();
    assert_eq!(wire.len(), 1, "exactly one ARP request on the wire");
    let Some(ArpRepr::EthernetIpv4 {
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    }) = is_arp(&wire[0], ArpOperation::Request)
    else {
        panic!("not an ARP request");
    };
    assert_eq!(
        (
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr
        ),
        (MAC_A, IP_A, IP_B)
    );
    assert_eq!(
        EthernetFrame::new_checked(&wire[0][..]).unwrap().dst_addr(),
        EthernetAddress::BROADCAST
    );
    b.device().inject(wire[0].clone());

    assert_eq!(b.poll(now), 1); // the request: B learns A and answers
    assert_eq!(b.neighbor(IP_A, now), Some(MAC_A));
    assert_eq!(b.stats().rx.arp_requests, 1);
    assert_eq!(b.stats().tx.arp_replies, 1);
    assert_eq!(a.poll(now), 1); // the reply: A learns B, sends "first"
    assert_eq!(a.neighbor(IP_B, now), Some(MAC_B));
    assert_eq!(a.stats().rx.arp_replies, 1);
    assert_eq!(b.poll(now), 1);
    let d = b.recv_from(eb).unwrap();
    assert_eq!(&*d, b"first");
    assert_eq!(d.peer(), addr(IP_A, 5000));
    assert_eq!(d.local_addr(), addr(IP_B, 6000));
    drop(d);

    // Warm caches both ways: every payload size, contents checked.
    for len in 1..=1472 {
        let data = payload(len, 1);
        assert_eq!(
            send(&mut a, ea, addr(IP_B, 6000), &data, now),
            SendStatus::Sent
        );
        b.poll(now);
        let d = b.recv_from(eb).expect("datagram a->b");
        assert_eq!(d.len(), len);
        assert_eq!(&*d, &data[..], "a->b {len} B");

        let data = payload(len, 2);
        assert_eq!(
            send(&mut b, eb, addr(IP_A, 5000), &data, now),
            SendStatus::Sent
        );
        a.poll(now);
        let d = a.recv_from(ea).expect("datagram b->a");
        assert_eq!(&*d, &data[..], "b->a {len} B");
        assert_eq!(d.peer(), addr(IP_B, 6000));
    }
    // One more than the MTU allows is refused, and the buffer comes back.
    let mut big = a.alloc_tx().unwrap();
    assert!(big.extend_from_slice(&[0; 1473]));
    let err = a.send_to(ea, addr(IP_B, 6000), big, now).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::TooLarge);
    assert_eq!(err.frame.unwrap().data().len(), 1473);

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.arp.resolutions, 1);
    assert_eq!(sb.arp.resolutions, 0, "B learned A from its request");
    assert_eq!(sa.tx.udp_datagrams, 1473);
    assert_eq!(sb.rx.udp_delivered, 1473);
    assert_eq!(sb.tx.udp_datagrams, 1472);
    assert_eq!(sa.rx.udp_delivered, 1472);
    assert_eq!(sa.rx.drops.total() + sb.rx.drops.total(), 0);
    assert_eq!(sa.tx.dropped() + sb.tx.dropped(), 0);
    let eps = b.endpoint_stats(eb).unwrap();
    assert_eq!(
        (eps.received, eps.delivered, eps.read, eps.sent),
        (1473, 1473, 1473, 1472)
    );
    assert_accounted(&a);
    assert_accounted(&b);
    // Every buffer went back to its pool.
    for iface in [&a, &b] {
        assert_eq!(iface.device().rx_in_use(), 0);
        assert_eq!(iface.device().tx_in_use(), 0);
    }
}

#[test]
fn sent_frames_have_complete_checksums() {
    let (mut a, raw) = host();
    let ea = a.bind(5000).unwrap();
    let now = Instant::now();
    a.add_static_neighbor(IP_X, MAC_X);
    for len in [0, 1, 17, 1472] {
        let data = payload(len, 9);
        assert_eq!(
            send(&mut a, ea, addr(IP_X, 7), &data, now),
            SendStatus::Sent
        );
        let frames = raw.take_rx();
        let eth = EthernetFrame::new_checked(&frames[0][..]).unwrap();
        let eth_repr = EthernetRepr::parse(&eth).unwrap();
        assert_eq!((eth_repr.src_addr, eth_repr.dst_addr), (MAC_A, MAC_X));
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_ne!(ip.checksum(), 0);
        let ip_repr = Ipv4Repr::parse(&ip, &Default::default()).unwrap();
        assert_eq!((ip_repr.src_addr, ip_repr.dst_addr), (IP_A, IP_X));
        assert_eq!(ip_repr.next_header, IpProtocol::Udp);
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_ne!(udp.checksum(), 0, "UDP checksum must be filled in");
        assert!(udp.verify_checksum(&IP_A.into(), &IP_X.into()));
        assert_eq!((udp.src_port(), udp.dst_port()), (5000, 7));
        assert_eq!(udp.payload(), &data[..]);
        assert_eq!(frames[0].len(), UDP_HEADROOM + len);
    }
}

#[test]
fn packets_queued_while_resolving_leave_in_order_after_the_reply() {
    let (mut a, mut b) = pair();
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    let now = Instant::now();
    for i in 0..10u8 {
        assert_eq!(
            send(&mut a, ea, addr(IP_B, 6000), &[i; 10], now),
            SendStatus::Queued
        );
    }
    assert_eq!(
        b.device().rx_waiting(),
        1,
        "one ARP request for ten packets"
    );
    assert_eq!(a.endpoint_stats(ea).unwrap().queued_for_arp, 10);
    pump(&mut a, &mut b, now);
    for i in 0..10u8 {
        assert_eq!(&*b.recv_from(eb).unwrap(), &[i; 10]);
    }
    assert!(b.recv_from(eb).is_none());
    assert_eq!(a.stats().arp.queued, 10);
    assert_eq!(a.endpoint_stats(ea).unwrap().sent, 10);
    assert_eq!(a.device().tx_in_use(), 0);
}

#[test]
fn arp_queue_bound_drops_and_counts() {
    let mut ca = config(IP_A);
    ca.arp = ArpConfig {
        pending_per_host: 4,
        ..ArpConfig::default()
    };
    let (mut a, mut b) = pair_with(ca, config(IP_B));
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    let now = Instant::now();
    let mut queued = 0;
    for i in 0..10u8 {
        let mut frame = a.alloc_tx().unwrap();
        frame.extend_from_slice(&[i]);
        match a.send_to(ea, addr(IP_B, 6000), frame, now) {
            Ok(SendStatus::Queued) => queued += 1,
            Err(e) => {
                assert_eq!(e.kind, SendErrorKind::ArpQueueFull);
                assert!(e.frame.is_none(), "dropped, not handed back");
            }
            Ok(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(queued, 4);
    assert_eq!(a.stats().tx.arp_queue_full, 6);
    assert_eq!(a.endpoint_stats(ea).unwrap().send_dropped, 6);
    assert_eq!(a.device().tx_in_use(), 4, "the dropped buffers went back");
    pump(&mut a, &mut b, now);
    let got: Vec<u8> = std::iter::from_fn(|| b.recv_from(eb).map(|d| d[0])).collect();
    assert_eq!(got, [0, 1, 2, 3]);
    assert_eq!(a.device().tx_in_use(), 0);
}

#[test]
fn arp_entries_expire_and_are_resolved_again() {
    let (mut a, mut b) = pair();
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    let t0 = Instant::now();
    let ttl = a.config().arp.entry_ttl;
    send(&mut a, ea, addr(IP_B, 6000), b"one", t0);
    pump(&mut a, &mut b, t0);
    assert_eq!(&*b.recv_from(eb).unwrap(), b"one");

    // Still valid just before the TTL: sent directly.
    let t1 = t0 + ttl - Duration::from_millis(1);
    assert_eq!(a.neighbor(IP_B, t1), Some(MAC_B));
    assert_eq!(
        send(&mut a, ea, addr(IP_B, 6000), b"two", t1),
        SendStatus::Sent
    );
    pump(&mut a, &mut b, t1);
    assert_eq!(&*b.recv_from(eb).unwrap(), b"two");

    // Expired: resolved again, the datagram waits for the reply.
    let t2 = t0 + ttl + Duration::from_secs(1);
    assert_eq!(a.neighbor(IP_B, t2), None);
    assert_eq!(
        send(&mut a, ea, addr(IP_B, 6000), b"three", t2),
        SendStatus::Queued
    );
    let requests = b.device().take_rx();
    assert_eq!(requests.len(), 1);
    assert!(is_arp(&requests[0], ArpOperation::Request).is_some());
    b.device().inject(requests[0].clone());
    pump(&mut a, &mut b, t2);
    assert_eq!(&*b.recv_from(eb).unwrap(), b"three");
    assert_eq!(a.neighbor(IP_B, t2), Some(MAC_B));
    let s = a.stats();
    assert_eq!(s.arp.resolutions, 2);
    assert_eq!(s.tx.arp_requests, 2);
    assert_accounted(&a);
    assert_accounted(&b);
}

/// The headers an endpoint keeps for its next datagram to a peer never
/// outlive the next hop's ARP entry, even when no poll (no sweep) ran in
/// between.
#[test]
fn kept_headers_expire_with_the_arp_entry() {
    let (mut a, mut b) = pair();
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    let to = addr(IP_B, 6000);
    let t0 = Instant::now();
    let ttl = a.config().arp.entry_ttl;
    assert_eq!(send(&mut a, ea, to, b"one", t0), SendStatus::Queued);
    pump(&mut a, &mut b, t0);
    assert_eq!(&*b.recv_from(eb).unwrap(), b"one");
    // Built, then reused.
    assert_eq!(send(&mut a, ea, to, b"two", t0), SendStatus::Sent);
    assert_eq!(send(&mut a, ea, to, b"three", t0), SendStatus::Sent);
    a.flush();
    let t1 = t0 + ttl + Duration::from_millis(1);
    assert_eq!(send(&mut a, ea, to, b"four", t1), SendStatus::Queued);
    let frames = b.device().take_rx();
    assert_eq!(frames.len(), 3, "two, three and an ARP request");
    assert!(is_arp(&frames[2], ArpOperation::Request).is_some());
    for f in frames {
        b.device().inject(f);
    }
    pump(&mut a, &mut b, t1);
    for expected in [&b"two"[..], b"three", b"four"] {
        assert_eq!(&*b.recv_from(eb).unwrap(), expected);
    }
    assert_accounted(&a);
    assert_accounted(&b);
}

#[test]
fn expired_entries_are_swept() {
    let (mut a, raw) = host();
    let t0 = Instant::now();
    // An ARP request for us from X creates an entry for X.
    raw.send_raw(arp_frame(ArpOperation::Request, MAC_X, IP_X, MAC_A, IP_A));
    a.poll(t0);
    assert_eq!(a.neighbor(IP_X, t0), Some(MAC_X));
    let t1 = t0 + a.config().arp.entry_ttl + Duration::from_secs(2);
    a.poll(t1);
    assert_eq!(a.stats().arp.expired, 1);
}

#[test]
fn arp_retries_then_gives_up_and_counts() {
    let (mut a, raw) = host();
    let ea = a.bind(5000).unwrap();
    let t0 = Instant::now();
    let cfg = a.config().arp;
    assert_eq!(
        send(&mut a, ea, addr(IP_X, 7), b"lost", t0),
        SendStatus::Queued
    );
    assert_eq!(
        send(&mut a, ea, addr(IP_X, 7), b"lost too", t0),
        SendStatus::Queued
    );
    // Nobody answers.
    for i in 0..=cfg.max_requests + 2 {
        a.poll(t0 + cfg.retry_interval * i);
    }
    let requests = raw.take_rx();
    assert_eq!(requests.len(), cfg.max_requests as usize);
    assert!(
        requests
            .iter()
            .all(|f| is_arp(f, ArpOperation::Request).is_some())
    );
    let s = a.stats();
    assert_eq!(s.arp.failed, 1);
    assert_eq!(s.tx.arp_unresolved, 2);
    assert_eq!(s.tx.arp_requests, u64::from(cfg.max_requests));
    assert_eq!(a.endpoint_stats(ea).unwrap().send_dropped, 2);
    assert_eq!(a.device().tx_in_use(), 0);

    // A later send starts a new resolution, which can succeed.
    let t1 = t0 + cfg.retry_interval * 10;
    assert_eq!(
        send(&mut a, ea, addr(IP_X, 7), b"again", t1),
        SendStatus::Queued
    );
    assert_eq!(raw.take_rx().len(), 1);
    raw.send_raw(arp_frame(ArpOperation::Reply, MAC_X, IP_X, MAC_A, IP_A));
    a.poll(t1);
    let out = raw.take_rx();
    assert_eq!(out.len(), 1);
    let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
    assert_eq!(
        eth.dst_addr(),
        MAC_X,
        "queued frame patched with the resolved MAC"
    );
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(
        UdpPacket::new_checked(ip.payload()).unwrap().payload(),
        b"again"
    );
}

#[test]
fn gateway_and_routes() {
    let mut ca = config(IP_A);
    let gw = Ipv4Addr::new(10, 0, 0, 254);
    let far = addr(Ipv4Addr::new(192, 168, 7, 7), 53);
    let (mut a, raw) = host();
    let ea = a.bind(5000).unwrap();
    let now = Instant::now();
    let mut frame = a.alloc_tx().unwrap();
    frame.extend_from_slice(b"x");
    let err = a.send_to(ea, far, frame, now).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::NoRoute);
    assert!(err.frame.is_some());

    ca.gateway = Some(gw);
    let (a_dev, raw2) = PairDevice::pair(MAC_A, MAC_X, 1500);
    drop(raw);
    let mut a = Interface::new(a_dev, ca);
    let ea = a.bind(5000).unwrap();
    assert_eq!(send(&mut a, ea, far, b"via gw", now), SendStatus::Queued);
    let req = raw2.take_rx();
    let Some(ArpRepr::EthernetIpv4 {
        target_protocol_addr,
        ..
    }) = is_arp(&req[0], ArpOperation::Request)
    else {
        panic!()
    };
    assert_eq!(target_protocol_addr, gw, "ARP asks for the gateway");
    raw2.send_raw(arp_frame(ArpOperation::Reply, MAC_X, gw, MAC_A, IP_A));
    a.poll(now);
    let out = raw2.take_rx();
    let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
    assert_eq!(eth.dst_addr(), MAC_X);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.dst_addr(), *far.ip(), "IP destination unchanged");
}

#[test]
fn invalid_destinations_are_refused() {
    let (mut a, _raw) = host();
    let ea = a.bind(5000).unwrap();
    let now = Instant::now();
    for to in [
        addr(IP_X, 0),
        addr(Ipv4Addr::UNSPECIFIED, 7),
        addr(Ipv4Addr::new(224, 0, 0, 1), 7),
        addr(Ipv4Addr::LOCALHOST, 7),
        addr(IP_A, 7),
    ] {
        let mut frame = a.alloc_tx().unwrap();
        frame.extend_from_slice(b"x");
        let err = a.send_to(ea, to, frame, now).unwrap_err();
        assert_eq!(err.kind, SendErrorKind::InvalidDestination, "{to}");
        assert_eq!(err.frame.unwrap().data(), b"x");
    }
    // Stale endpoint.
    let frame = a.alloc_tx().unwrap();
    assert!(a.unbind(ea));
    assert_eq!(
        a.send_to(ea, addr(IP_X, 7), frame, now).unwrap_err().kind,
        SendErrorKind::UnknownEndpoint
    );
}

#[test]
fn broadcast_send_and_receive() {
    let (mut a, mut b) = pair();
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    let now = Instant::now();
    for dst in [Ipv4Addr::BROADCAST, Ipv4Addr::new(10, 0, 0, 255)] {
        assert_eq!(
            send(&mut a, ea, addr(dst, 6000), b"all", now),
            SendStatus::Sent
        );
        b.poll(now);
        let d = b.recv_from(eb).unwrap();
        assert_eq!(&*d, b"all");
        assert_eq!(d.local_addr(), addr(dst, 6000));
        let eth = EthernetFrame::new_checked(&d.frame()[..]).unwrap();
        assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
    }
    assert_eq!(a.stats().tx.arp_requests, 0);
}

/// Datagrams of one burst reach their endpoint in arrival order, also
/// when the first takes the full path (a broadcast) and the rest the fast
/// path that delivers while the device hands the burst over.
#[test]
fn a_burst_is_delivered_in_arrival_order_across_both_receive_paths() {
    let (mut a, raw) = host();
    let ea = a.bind(5000).unwrap();
    let now = Instant::now();
    let from = addr(IP_X, 9);
    let unicast = |tag: &[u8]| udp_frame(MAC_X, MAC_A, from, addr(IP_A, 5000), tag);
    let broadcast = udp_frame(
        MAC_X,
        EthernetAddress::BROADCAST,
        from,
        addr(Ipv4Addr::BROADCAST, 5000),
        b"b1",
    );
    raw.send_raw(unicast(b"u1"));
    raw.send_raw(broadcast);
    raw.send_raw(unicast(b"u2"));
    raw.send_raw(unicast(b"u3"));
    assert_eq!(a.poll(now), 4);
    let got: Vec<Vec<u8>> = std::iter::from_fn(|| a.recv_from(ea).map(|d| d.to_vec())).collect();
    assert_eq!(got, [&b"u1"[..], b"b1", b"u2", b"u3"]);
    assert_eq!(a.stats().rx.udp_delivered, 4);
    assert_accounted(&a);
}

#[test]
fn icmp_echo_request_gets_a_reply_with_the_same_id_seq_and_data() {
    let (mut a, raw) = host();
    let now = Instant::now();
    for (seq, len) in [(1u16, 0usize), (2, 56), (3, 1472)] {
        let data = payload(len, 7);
        raw.send_raw(icmp_echo_request(
            MAC_X, MAC_A, IP_X, IP_A, 0x1234, seq, &data,
        ));
        a.poll(now);
        let out = raw.take_rx();
        assert_eq!(out.len(), 1);
        let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
        assert_eq!((eth.src_addr(), eth.dst_addr()), (MAC_A, MAC_X));
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let ip_repr = Ipv4Repr::parse(&ip, &Default::default()).unwrap();
        assert_eq!((ip_repr.src_addr, ip_repr.dst_addr), (IP_A, IP_X));
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        match Icmpv4Repr::parse(&icmp, &Default::default()).unwrap() {
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data: got,
            } => {
                assert_eq!((ident, seq_no), (0x1234, seq));
                assert_eq!(got, &data[..]);
            }
            other => panic!("{other:?}"),
        }
    }
    let s = a.stats();
    assert_eq!((s.rx.icmp_echo_requests, s.tx.icmp_echo_replies), (3, 3));
    // No reply to an echo sent to a broadcast address.
    raw.send_raw(icmp_echo_request(
        MAC_X,
        EthernetAddress::BROADCAST,
        IP_X,
        Ipv4Addr::BROADCAST,
        1,
        1,
        b"smurf",
    ));
    a.poll(now);
    assert!(raw.take_rx().is_empty());
    assert_eq!(a.stats().rx.drops.not_for_us, 1);
    assert_eq!(a.device().tx_in_use(), 0);
}

#[test]
fn arp_reply_and_icmp_reply_without_tx_buffers_are_counted() {
    let (mut a, raw) = host();
    let now = Instant::now();
    a.device().set_tx_pool(0);
    raw.send_raw(arp_frame(ArpOperation::Request, MAC_X, IP_X, MAC_A, IP_A));
    raw.send_raw(icmp_echo_request(MAC_X, MAC_A, IP_X, IP_A, 1, 1, b"ping"));
    a.poll(now);
    assert!(raw.take_rx().is_empty());
    let s = a.stats();
    assert_eq!(s.tx.no_buffer, 2);
    assert_eq!((s.rx.arp_requests, s.rx.icmp_echo_requests), (1, 1));
    assert_accounted(&a);
}

#[test]
fn full_transmit_ring_drops_and_counts() {
    let (mut a, raw) = host();
    let ea = a.bind(5000).unwrap();
    let now = Instant::now();
    a.add_static_neighbor(IP_X, MAC_X);
    a.device().set_tx_ring(2);
    assert_eq!(send(&mut a, ea, addr(IP_X, 7), b"1", now), SendStatus::Sent);
    assert_eq!(send(&mut a, ea, addr(IP_X, 7), b"2", now), SendStatus::Sent);
    let mut frame = a.alloc_tx().unwrap();
    frame.extend_from_slice(b"3");
    let err = a.send_to(ea, addr(IP_X, 7), frame, now).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::DeviceFull);
    assert_eq!(a.stats().tx.device_full, 1);
    assert_eq!(a.endpoint_stats(ea).unwrap().send_dropped, 1);
    assert_eq!(a.device().tx_in_use(), 0);
    assert_eq!(raw.take_rx().len(), 2);
}

#[test]
fn a_transmit_ring_full_until_flushed_is_flushed_not_dropped() {
    let (mut a, raw) = host();
    let ea = a.bind(5000).unwrap();
    let now = Instant::now();
    a.add_static_neighbor(IP_X, MAC_X);
    a.device().set_tx_batch(2);
    for payload in [b"1", b"2", b"3", b"4", b"5"] {
        assert_eq!(
            send(&mut a, ea, addr(IP_X, 7), payload, now),
            SendStatus::Sent
        );
    }
    assert_eq!(a.stats().tx.device_full, 0, "a flush made room each time");
    assert!(a.device().flushes() >= 2);
    assert_eq!(raw.take_rx().len(), 5);
}

#[test]
fn a_frame_waits_behind_at_most_one_transmit_batch_in_the_device() {
    // A burst of sends between two polls (bulk producers running while
    // nothing flushes) leaves in batches of `tx_batch`: a frame sent after
    // the burst (a critical one) has at most `tx_batch - 1` frames ahead of
    // it in the device's batch, however long the burst.
    const BATCH: usize = 4;
    const BURST: usize = 50;
    let (a_dev, raw) = PairDevice::pair(MAC_A, MAC_X, 1500);
    let mut a = Interface::new(
        a_dev,
        InterfaceConfig {
            tx_batch: BATCH,
            ..config(IP_A)
        },
    );
    let ea = a.bind(5000).unwrap();
    let now = Instant::now();
    a.add_static_neighbor(IP_X, MAC_X);
    for i in 0..BURST {
        let sent = send(&mut a, ea, addr(IP_X, 7), &[i as u8], now);
        assert_eq!(sent, SendStatus::Sent);
    }
    assert_eq!(a.device().most_unflushed(), BATCH);
    assert_eq!(a.device().flushes(), (BURST / BATCH) as u64);
    // The last frames of the burst and the next one share a batch.
    send(&mut a, ea, addr(IP_X, 7), b"critical", now);
    a.flush();
    assert_eq!(a.device().most_unflushed(), BATCH);
    assert_eq!(raw.take_rx().len(), BURST + 1, "nothing dropped");
    assert_eq!(a.stats().tx.device_full, 0);
}

#[test]
fn the_default_transmit_batch_bounds_the_device_batch_too() {
    let (mut a, _raw) = host();
    let ea = a.bind(5000).unwrap();
    let now = Instant::now();
    a.add_static_neighbor(IP_X, MAC_X);
    for _ in 0..3 * insane_stack::DEFAULT_TX_BATCH {
        send(&mut a, ea, addr(IP_X, 7), b"bulk", now);
    }
    assert_eq!(a.device().most_unflushed(), insane_stack::DEFAULT_TX_BATCH);
}

#[test]
fn headroom_too_small_is_refused() {
    let (mut a, _raw) = host();
    let ea = a.bind(5000).unwrap();
    a.add_static_neighbor(IP_X, MAC_X);
    a.device().set_headroom(UDP_HEADROOM - 1);
    let mut frame = a.alloc_tx().unwrap();
    frame.extend_from_slice(b"x");
    let err = a
        .send_to(ea, addr(IP_X, 7), frame, Instant::now())
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::NoHeadroom);
    assert!(err.frame.is_some());
}

#[test]
fn udp_to_unbound_port_is_counted() {
    let (mut a, mut b) = pair();
    let ea = a.bind(5000).unwrap();
    let now = Instant::now();
    send(&mut a, ea, addr(IP_B, 9999), b"nobody", now);
    pump(&mut a, &mut b, now);
    assert_eq!(b.stats().rx.drops.no_endpoint, 1);
    assert_eq!(b.stats().rx.drops.total(), 1);
    assert_eq!(b.device().rx_in_use(), 0);
    assert_accounted(&b);
}

#[test]
fn endpoint_queue_bound_drops_and_counts() {
    let mut cb = config(IP_B);
    cb.endpoint_queue = 3;
    let (mut a, mut b) = pair_with(config(IP_A), cb);
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    let now = Instant::now();
    for i in 0..5u8 {
        send(&mut a, ea, addr(IP_B, 6000), &[i], now);
    }
    pump(&mut a, &mut b, now);
    assert_eq!(b.queued(eb), 3);
    assert_eq!(
        b.device().rx_in_use(),
        3,
        "queued datagrams hold their frames"
    );
    let s = b.endpoint_stats(eb).unwrap();
    assert_eq!((s.received, s.delivered, s.queue_full), (5, 3, 2));
    assert_eq!(b.stats().rx.drops.endpoint_queue_full, 2);
    let got: Vec<u8> = std::iter::from_fn(|| b.recv_from(eb).map(|d| d[0])).collect();
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(b.device().rx_in_use(), 0);
}

#[test]
fn bind_unbind_and_ports() {
    let (mut a, mut b) = pair();
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    assert_eq!(b.bind(6000), Err(BindError::PortInUse(6000)));
    let e1 = b.bind(0).unwrap();
    let e2 = b.bind(0).unwrap();
    assert_eq!(b.local_addr(e1), Some(addr(IP_B, 49152)));
    assert_eq!(b.local_addr(e2), Some(addr(IP_B, 49153)));
    let now = Instant::now();
    send(&mut a, ea, addr(IP_B, 6000), b"kept", now);
    pump(&mut a, &mut b, now);
    assert_eq!(b.device().rx_in_use(), 1);
    // Unbinding drops the queue and gives the frames back.
    assert!(b.unbind(eb));
    assert!(!b.unbind(eb));
    assert_eq!(b.device().rx_in_use(), 0);
    assert!(b.recv_from(eb).is_none());
    assert_eq!(b.endpoint_stats(eb), None);
    // A new endpoint on the same port is a different id.
    let eb2 = b.bind(6000).unwrap();
    assert_ne!(eb, eb2);
    assert!(b.recv_from(eb).is_none());
    send(&mut a, ea, addr(IP_B, 6000), b"new", now);
    pump(&mut a, &mut b, now);
    assert_eq!(&*b.recv_from(eb2).unwrap(), b"new");
    assert_eq!(b.endpoint_count(), 3);
}

struct CountWaker(AtomicUsize);

impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn poll_recv_from_registers_and_wakes() {
    let (mut a, mut b) = pair();
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    let count = Arc::new(CountWaker(AtomicUsize::new(0)));
    let waker = Waker::from(count.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(b.poll_recv_from(eb, &mut cx).is_pending());
    let now = Instant::now();
    send(&mut a, ea, addr(IP_B, 6000), b"wake", now);
    pump(&mut a, &mut b, now);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    match b.poll_recv_from(eb, &mut cx) {
        Poll::Ready(Some(d)) => assert_eq!(&*d, b"wake"),
        other => panic!("{other:?}"),
    }
    assert!(b.poll_recv_from(eb, &mut cx).is_pending());
    b.unbind(eb);
    assert_eq!(count.0.load(Ordering::SeqCst), 2, "unbind wakes the reader");
    assert!(matches!(b.poll_recv_from(eb, &mut cx), Poll::Ready(None)));
}

#[test]
fn arp_for_another_host_is_counted_and_not_answered() {
    let (mut a, raw) = host();
    let now = Instant::now();
    let other = Ipv4Addr::new(10, 0, 0, 77);
    raw.send_raw(arp_frame(ArpOperation::Request, MAC_X, IP_X, MAC_A, other));
    a.poll(now);
    assert!(raw.take_rx().is_empty(), "no reply for another host");
    assert_eq!(a.stats().rx.drops.arp_not_for_us, 1);
    assert_eq!(a.neighbor(IP_X, now), None, "not learned either");
    assert_accounted(&a);
}

fn valid_udp() -> Vec<u8> {
    udp_frame(
        MAC_X,
        MAC_A,
        addr(IP_X, 4000),
        addr(IP_A, 5000),
        b"0123456789abcdef",
    )
}

/// Feeds `frame` to a fresh interface (endpoints on 7, 5000 and 6000)
/// and returns the outcome.
fn outcome_of(frame: Vec<u8>) -> RxOutcome {
    let (mut a, raw) = host();
    let eps: Vec<EndpointId> = [7, 5000, 6000].map(|p| a.bind(p).unwrap()).into();
    raw.send_raw(frame);
    let mut outcome = None;
    a.device_mut().poll_rx(1, &mut |f| outcome = Some(f));
    let o = a.receive(outcome.unwrap(), Instant::now());
    assert_accounted(&a);
    if let RxOutcome::Delivered(id) = o {
        assert!(eps.contains(&id));
    }
    o
}

fn dropped(frame: Vec<u8>) -> DropReason {
    match outcome_of(frame) {
        RxOutcome::Dropped(r) => r,
        other => panic!("not dropped: {other:?}"),
    }
}

/// Offsets in a frame built by `udp_frame`.
const IP: usize = 14;
const UDP: usize = 34;

#[test]
fn valid_frame_is_delivered() {
    assert!(matches!(outcome_of(valid_udp()), RxOutcome::Delivered(_)));
    // Ethernet padding after the IP packet is ignored.
    let mut padded = udp_frame(MAC_X, MAC_A, addr(IP_X, 4000), addr(IP_A, 5000), b"x");
    padded.resize(60, 0);
    let (mut a, raw) = host();
    let ea = a.bind(5000).unwrap();
    raw.send_raw(padded);
    a.poll(Instant::now());
    assert_eq!(&*a.recv_from(ea).unwrap(), b"x");
}

#[test]
fn truncated_at_every_length() {
    let frames = [
        valid_udp(),
        arp_frame(ArpOperation::Request, MAC_X, IP_X, MAC_A, IP_A),
        icmp_echo_request(MAC_X, MAC_A, IP_X, IP_A, 1, 2, b"ping data"),
    ];
    for full in frames {
        for len in 0..full.len() {
            let r = dropped(full[..len].to_vec());
            assert_eq!(r, DropReason::Truncated, "length {len} of {}", full.len());
        }
    }
}

#[test]
fn bad_checksums_are_counted() {
    // IPv4 header checksum.
    let mut f = valid_udp();
    f[IP + 10] ^= 0x01;
    assert_eq!(dropped(f), DropReason::BadChecksum);
    // UDP checksum, charged to the endpoint as well.
    let mut f = valid_udp();
    f[UDP + 6] ^= 0x01;
    let (mut a, raw) = host();
    let ea = a.bind(5000).unwrap();
    raw.send_raw(f);
    a.poll(Instant::now());
    assert_eq!(a.stats().rx.drops.bad_checksum, 1);
    assert_eq!(a.endpoint_stats(ea).unwrap().bad_checksum, 1);
    // Payload corruption.
    let mut f = valid_udp();
    f[UDP + 9] ^= 0x40;
    assert_eq!(dropped(f), DropReason::BadChecksum);
    // ICMP checksum.
    let mut f = icmp_echo_request(MAC_X, MAC_A, IP_X, IP_A, 1, 2, b"ping");
    f[UDP + 2] ^= 0x01;
    assert_eq!(dropped(f), DropReason::BadChecksum);
    // A zero UDP checksum means "none" in IPv4: accepted.
    let mut f = valid_udp();
    f[UDP + 6] = 0;
    f[UDP + 7] = 0;
    assert!(matches!(outcome_of(f), RxOutcome::Delivered(_)));
}

/// Sets a big-endian u16 at `at`, then refreshes the checksums.
fn with_u16(mut f: Vec<u8>, at: usize, v: u16) -> Vec<u8> {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
    refresh_checksums(&mut f);
    f
}

#[test]
fn bad_lengths_are_counted() {
    let len = valid_udp().len() - IP;
    // IPv4 total length beyond the frame.
    assert_eq!(
        dropped(with_u16(valid_udp(), IP + 2, len as u16 + 1)),
        DropReason::Truncated
    );
    // IPv4 total length below the header length.
    assert_eq!(
        dropped(with_u16(valid_udp(), IP + 2, 19)),
        DropReason::BadLength
    );
    // IPv4 total length too short for the UDP header.
    assert_eq!(
        dropped(with_u16(valid_udp(), IP + 2, 24)),
        DropReason::BadLength
    );
    // IHL below 5.
    let mut f = valid_udp();
    f[IP] = 0x44;
    refresh_checksums(&mut f);
    assert_eq!(dropped(f), DropReason::BadLength);
    // UDP length beyond the IPv4 payload, and below the UDP header.
    let udp_len = len - 20;
    assert_eq!(
        dropped(with_u16(valid_udp(), UDP + 4, udp_len as u16 + 1)),
        DropReason::BadLength
    );
    assert_eq!(
        dropped(with_u16(valid_udp(), UDP + 4, 7)),
        DropReason::BadLength
    );
    // A shorter UDP length than the IP payload: the datagram is trimmed.
    let f = with_u16(valid_udp(), UDP + 4, 8 + 4);
    let (mut a, raw) = host();
    let ea = a.bind(5000).unwrap();
    raw.send_raw(f);
    a.poll(Instant::now());
    assert_eq!(&*a.recv_from(ea).unwrap(), b"0123");
    // An ICMP message shorter than its header.
    let f = ipv4_frame(MAC_X, MAC_A, IP_X, IP_A, IpProtocol::Icmp, &[8, 0, 0xf7]);
    assert_eq!(dropped(f), DropReason::BadLength);
    // Longer than the MTU.
    let big = udp_frame(MAC_X, MAC_A, addr(IP_X, 1), addr(IP_A, 5000), &[0; 1473]);
    assert_eq!(dropped(big), DropReason::Oversized);
}

#[test]
fn ip_options_fragments_and_versions_are_counted() {
    // IHL 6 with a 4-byte option (NOPs + EOL), lengths consistent.
    let base = valid_udp();
    let mut f = base[..UDP].to_vec();
    f.extend_from_slice(&[1, 1, 1, 0]);
    f.extend_from_slice(&base[UDP..]);
    f[IP] = 0x46;
    let total = (f.len() - IP) as u16;
    f[IP + 2..IP + 4].copy_from_slice(&total.to_be_bytes());
    refresh_checksums(&mut f);
    assert_eq!(dropped(f), DropReason::IpOptions);

    // More fragments; a non-zero offset; both.
    for flags in [0x2000u16, 0x0001, 0x2010, 0x4001] {
        assert_eq!(
            dropped(with_u16(valid_udp(), IP + 6, flags)),
            DropReason::Fragment,
            "flags/offset {flags:#06x}"
        );
    }
    // DF alone is fine.
    assert!(matches!(
        outcome_of(with_u16(valid_udp(), IP + 6, 0x4000)),
        RxOutcome::Delivered(_)
    ));

    // Version 6 in an IPv4 ethertype.
    let mut f = valid_udp();
    f[IP] = 0x65;
    refresh_checksums(&mut f);
    assert_eq!(dropped(f), DropReason::BadVersion);
}

#[test]
fn foreign_and_unsupported_frames_are_counted() {
    // Other ethertypes: IPv6, VLAN, LLDP.
    for ethertype in [0x86ddu16, 0x8100, 0x88cc] {
        assert_eq!(
            dropped(with_u16(valid_udp(), 12, ethertype)),
            DropReason::UnsupportedEthertype
        );
    }
    // Another host's MAC; a multicast MAC.
    let f = udp_frame(MAC_X, MAC_B, addr(IP_X, 4000), addr(IP_A, 5000), b"x");
    assert_eq!(dropped(f), DropReason::NotForUs);
    let multicast = EthernetAddress([0x01, 0x00, 0x5e, 0, 0, 1]);
    let f = udp_frame(MAC_X, multicast, addr(IP_X, 4000), addr(IP_A, 5000), b"x");
    assert_eq!(dropped(f), DropReason::NotForUs);
    // Another IP on our MAC.
    let f = udp_frame(MAC_X, MAC_A, addr(IP_X, 4000), addr(IP_B, 5000), b"x");
    assert_eq!(dropped(f), DropReason::NotForUs);
    // Impossible sources.
    let f = udp_frame(multicast, MAC_A, addr(IP_X, 4000), addr(IP_A, 5000), b"x");
    assert_eq!(dropped(f), DropReason::BadSource);
    for src in [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::UNSPECIFIED,
        IP_A,
        Ipv4Addr::new(224, 1, 1, 1),
    ] {
        let f = udp_frame(MAC_X, MAC_A, addr(src, 4000), addr(IP_A, 5000), b"x");
        assert_eq!(dropped(f), DropReason::BadSource, "{src}");
    }
    // TCP.
    let f = ipv4_frame(MAC_X, MAC_A, IP_X, IP_A, IpProtocol::Tcp, &[0; 20]);
    assert_eq!(dropped(f), DropReason::UnsupportedProtocol);
    // Port 0.
    let f = udp_frame(MAC_X, MAC_A, addr(IP_X, 4000), addr(IP_A, 0), b"x");
    assert_eq!(dropped(f), DropReason::NoEndpoint);
    // An ICMP echo *reply* (we have no ping sockets).
    let mut f = icmp_echo_request(MAC_X, MAC_A, IP_X, IP_A, 1, 1, b"x");
    f[UDP] = 0;
    refresh_checksums(&mut f);
    assert_eq!(dropped(f), DropReason::IcmpUnsupported);
    // ARP: not Ethernet hardware; an unknown operation; our own address as
    // the sender.
    let arp = arp_frame(ArpOperation::Request, MAC_X, IP_X, MAC_A, IP_A);
    assert_eq!(
        dropped(with_u16(arp.clone(), IP, 6)),
        DropReason::ArpUnsupported
    );
    assert_eq!(
        dropped(with_u16(arp.clone(), IP + 6, 9)),
        DropReason::ArpUnsupported
    );
    let f = arp_frame(ArpOperation::Request, MAC_X, IP_A, MAC_A, IP_A);
    assert_eq!(dropped(f), DropReason::BadSource);
}

#[test]
fn hostile_stream_does_not_disturb_the_flow_and_stats_add_up() {
    let (mut a, mut b) = pair();
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    let now = Instant::now();
    send(&mut a, ea, addr(IP_B, 6000), b"warm", now);
    pump(&mut a, &mut b, now);
    b.recv_from(eb).unwrap();
    let good = udp_frame(MAC_A, MAC_B, addr(IP_A, 5000), addr(IP_B, 6000), b"good");
    let mut injected = 0;
    for i in 0..200usize {
        let mut bad = good.clone();
        match i % 4 {
            0 => bad.truncate(i % good.len()),
            1 => bad[i % good.len()] ^= 0xff,
            2 => bad[IP + 9] = (i % 256) as u8,
            _ => bad = vec![(i % 256) as u8; i],
        }
        b.device().inject(bad);
        injected += 1;
        send(&mut a, ea, addr(IP_B, 6000), &(i as u32).to_be_bytes(), now);
    }
    pump(&mut a, &mut b, now);
    let mut next = 0u32;
    let mut mutants_delivered = 0;
    while let Some(d) = b.recv_from(eb) {
        if &*d == b"good" {
            // A mutation that kept the frame valid (a source MAC byte).
            mutants_delivered += 1;
            continue;
        }
        let mut v = [0; 4];
        v.copy_from_slice(&d);
        let got = u32::from_be_bytes(v);
        assert_eq!(got, next, "all numbered datagrams, in order");
        next = got + 1;
    }
    assert_eq!(next, 200);
    let s = b.stats();
    assert_eq!(s.rx.frames, 1 + 1 + 200 + injected); // ARP request, "warm", good, bad
    assert_eq!(s.rx.frames, s.rx.accounted(), "{s:#?}");
    assert_eq!(s.rx.udp_delivered, 201 + mutants_delivered, "{s:#?}");
    assert_eq!(b.device().rx_in_use(), 0);
}

/// The seed corpus of the fuzz target (`net/fuzz/seeds/rx_frame`): valid
/// frames for the fuzzed interface (10.0.0.1, MAC 02:00:00:00:00:0a, UDP
/// ports 7, 5000, 6000), each handled without a drop. The files are
/// written from the builders with `INSANE_BLESS=1`; otherwise they must
/// match.
#[test]
fn fuzz_seed_corpus_is_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/rx_frame");
    let src = addr(IP_X, 40000);
    let mut padded = udp_frame(MAC_X, MAC_A, src, addr(IP_A, 7), b"hi");
    padded.resize(60, 0);
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        (
            "udp_5000",
            udp_frame(MAC_X, MAC_A, src, addr(IP_A, 5000), b"hello, insane"),
        ),
        (
            "udp_6000_max",
            udp_frame(MAC_X, MAC_A, src, addr(IP_A, 6000), &payload(1472, 3)),
        ),
        ("udp_7_padded", padded),
        (
            "udp_broadcast",
            udp_frame(
                MAC_X,
                EthernetAddress::BROADCAST,
                src,
                addr(Ipv4Addr::BROADCAST, 7),
                b"all",
            ),
        ),
        (
            "arp_request",
            arp_frame(ArpOperation::Request, MAC_X, IP_X, MAC_A, IP_A),
        ),
        // Resolves the fuzz target's pending 10.0.0.2.
        (
            "arp_reply",
            arp_frame(ArpOperation::Reply, MAC_X, IP_B, MAC_A, IP_A),
        ),
        (
            "icmp_echo",
            icmp_echo_request(MAC_X, MAC_A, IP_X, IP_A, 0x77, 1, &payload(56, 5)),
        ),
    ];
    let bless = std::env::var_os("INSANE_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (name, frame) in seeds {
        assert!(
            !matches!(outcome_of(frame.clone()), RxOutcome::Dropped(_)),
            "seed {name} is dropped"
        );
        let path = dir.join(name);
        if bless {
            std::fs::write(&path, &frame).unwrap();
        } else {
            let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (regenerate with INSANE_BLESS=1)", path.display())
            });
            assert_eq!(
                on_disk, frame,
                "{name} is stale (regenerate with INSANE_BLESS=1)"
            );
        }
    }
}

/// The send path writes its 42 bytes of headers directly (not through
/// smoltcp's `emit`s): the frames must be byte for byte what smoltcp
/// builds, checksums included, at every payload length class.
#[test]
fn sent_frames_are_byte_identical_to_smoltcp_frames() {
    let (mut a, raw) = host();
    a.add_static_neighbor(IP_X, MAC_X);
    let ea = a.bind(5000).unwrap();
    let now = Instant::now();
    for len in [0, 1, 2, 7, 8, 9, 63, 64, 65, 255, 1000, 1471, 1472] {
        for seed in [0u8, 1, 0x5a, 0xff] {
            let data = payload(len, seed);
            let to = addr(IP_X, 40_000 + len as u16);
            assert_eq!(send(&mut a, ea, to, &data, now), SendStatus::Sent);
            a.flush();
            let wire = raw.take_rx();
            assert_eq!(wire.len(), 1);
            let expected = udp_frame(MAC_A, MAC_X, addr(IP_A, 5000), to, &data);
            assert_eq!(wire[0], expected, "payload {len} seed {seed}");
        }
    }
    // A payload whose UDP checksum computes to zero is sent as 0xffff
    // (RFC 768); find one by varying two bytes.
    let mut zero_found = false;
    'outer: for x in 0..=255u8 {
        for y in 0..=255u8 {
            let data = [x, y];
            let to = addr(IP_X, 7);
            let expected = udp_frame(MAC_A, MAC_X, addr(IP_A, 5000), to, &data);
            if expected[40..42] == [0xff, 0xff] {
                send(&mut a, ea, to, &data, now);
                a.flush();
                assert_eq!(raw.take_rx()[0], expected);
                zero_found = true;
                break 'outer;
            }
        }
    }
    assert!(zero_found);
}

/// An endpoint keeps the headers of its last datagram for the next one to
/// the same peer (only lengths and checksums change): datagrams of every
/// length to one peer, and alternating between two peers, are still byte
/// for byte smoltcp's frames.
#[test]
fn headers_kept_for_the_same_peer_give_smoltcp_frames_at_every_length() {
    let (mut a, raw) = host();
    a.add_static_neighbor(IP_X, MAC_X);
    let ea = a.bind(5000).unwrap();
    let now = Instant::now();
    let one = addr(IP_X, 7000);
    let other = addr(IP_X, 7001);
    let lengths = [64, 64, 0, 1, 1472, 9, 8, 1000, 1000, 2, 63];
    for (i, len) in lengths.into_iter().enumerate() {
        let data = payload(len, i as u8);
        for to in [one, one, other, one] {
            assert_eq!(send(&mut a, ea, to, &data, now), SendStatus::Sent);
            a.flush();
            let wire = raw.take_rx();
            assert_eq!(wire.len(), 1);
            let expected = udp_frame(MAC_A, MAC_X, addr(IP_A, 5000), to, &data);
            assert_eq!(wire[0], expected, "payload {len} to {to}");
        }
    }
    assert_eq!(a.endpoint_stats(ea).unwrap().sent, 4 * lengths.len() as u64);
}

/// `reuse_rx`: the received frame becomes the reply's buffer, payload in
/// place; the reply is a correct datagram; buffers are accounted.
#[test]
fn reuse_rx_replies_in_the_received_buffer() {
    let (mut a, mut b) = pair();
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    let now = Instant::now();
    for len in [0, 1, 64, 1472] {
        let data = payload(len, 3);
        send(&mut a, ea, addr(IP_B, 6000), &data, now);
        pump(&mut a, &mut b, now);
        let d = b.recv_from(eb).expect("datagram");
        let peer = d.peer();
        assert_eq!(b.device().rx_in_use(), 1);
        let mut reply = b.reuse_rx(d).expect("the pair device reuses frames");
        assert_eq!(b.device().rx_in_use(), 0);
        assert_eq!(b.device().tx_in_use(), 1);
        assert_eq!(reply.data(), &data[..]);
        assert!(reply.headroom() >= UDP_HEADROOM);
        // The application may change and grow the payload.
        if len < 1472 {
            assert!(reply.extend_from_slice(b"!"));
        }
        let mut expected = data.clone();
        if len < 1472 {
            expected.push(b'!');
        }
        assert_eq!(b.send_to(eb, peer, reply, now).unwrap(), SendStatus::Sent);
        pump(&mut a, &mut b, now);
        let echo = a.recv_from(ea).expect("echo");
        assert_eq!(&*echo, &expected[..]);
        assert_eq!(echo.peer(), addr(IP_B, 6000));
        drop(echo);
        assert_eq!(b.device().tx_in_use(), 0);
        assert_eq!(a.device().rx_in_use(), 0);
    }
    assert_eq!(b.stats().tx.reused_rx, 4);
    assert_eq!(a.stats().rx.udp_delivered, 4);
    assert_accounted(&a);
}

/// The ARP cache answers repeated lookups from its last hit; a changed
/// MAC address (learned from the peer's ARP) must be used at once.
#[test]
fn arp_change_is_seen_by_the_next_send() {
    let (mut a, raw) = host();
    let ea = a.bind(5000).unwrap();
    let now = Instant::now();
    let to = addr(IP_X, 9);
    raw.send_raw(arp_frame(ArpOperation::Request, MAC_X, IP_X, MAC_A, IP_A));
    a.poll(now);
    raw.take_rx();
    for _ in 0..3 {
        assert_eq!(send(&mut a, ea, to, b"x", now), SendStatus::Sent);
    }
    a.flush();
    let wire = raw.take_rx();
    assert!(wire.iter().all(|f| f[..6] == MAC_X.0));
    let moved = EthernetAddress([0x02, 0, 0, 0, 0, 0x77]);
    raw.send_raw(arp_frame(ArpOperation::Request, moved, IP_X, MAC_A, IP_A));
    a.poll(now);
    raw.take_rx();
    assert_eq!(send(&mut a, ea, to, b"y", now), SendStatus::Sent);
    a.flush();
    let wire = raw.take_rx();
    assert_eq!(wire.len(), 1);
    assert_eq!(wire[0][..6], moved.0);
}

/// A device that reports RX checksums verified by hardware: the stack
/// trusts the report (a frame whose checksum it would reject is
/// delivered, and counted as offloaded); without the report the same
/// frame is verified in software and dropped.
#[test]
fn hardware_verified_checksums_are_trusted_and_others_checked() {
    let mut corrupt = valid_udp();
    corrupt[UDP + 9] ^= 0x40;

    let (mut a, raw) = host();
    a.bind(5000).unwrap();
    raw.send_raw(corrupt.clone());
    a.poll(Instant::now());
    assert_eq!(a.stats().rx.drops.bad_checksum, 1);
    assert_eq!(a.stats().rx.checksum_offloaded, 0);

    let (mut a, raw) = host();
    let ea = a.bind(5000).unwrap();
    a.device().set_checksum_offload(true);
    raw.send_raw(corrupt);
    raw.send_raw(valid_udp());
    a.poll(Instant::now());
    assert_eq!(a.stats().rx.udp_delivered, 2);
    assert_eq!(a.stats().rx.checksum_offloaded, 2);
    assert_eq!(a.queued(ea), 2);
    assert_accounted(&a);
}

/// A device with TX checksum offload: the stack leaves both checksums to
/// it (IPv4 field 0, UDP field the pseudo-header sum, as NICs expect, for
/// every payload length, also in replies built in received frames), and
/// what the "NIC" sends is received intact by a stack that verifies in
/// software; without offload nothing is marked.
#[test]
fn tx_checksum_offload_leaves_the_checksums_to_the_device() {
    let (mut a, mut b) = pair();
    a.device().set_tx_checksum_offload(true);
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    a.add_static_neighbor(IP_B, MAC_B);
    b.add_static_neighbor(IP_A, MAC_A);
    let now = Instant::now();
    let lengths: Vec<usize> = (0..=1472).step_by(7).chain([1, 2, 1471, 1472]).collect();
    for (i, &len) in lengths.iter().enumerate() {
        let p = payload(len, i as u8);
        send(&mut a, ea, addr(IP_B, 6000), &p, now);
        pump(&mut a, &mut b, now);
        let d = b.recv_from(eb).expect("delivered");
        assert_eq!(&d[..], &p[..], "length {len}");
        // B (no offload) echoes in the received frame; A echoes that
        // back in *its* received frame, with offload.
        let r = b
            .reuse_rx(d)
            .unwrap_or_else(|_| panic!("pair frames are reusable"));
        b.send_to(eb, addr(IP_A, 5000), r, now).unwrap();
        pump(&mut a, &mut b, now);
        let d = a.recv_from(ea).expect("echo");
        assert_eq!(&d[..], &p[..], "echo of length {len}");
        let r = a
            .reuse_rx(d)
            .unwrap_or_else(|_| panic!("pair frames are reusable"));
        a.send_to(ea, addr(IP_B, 6000), r, now).unwrap();
        pump(&mut a, &mut b, now);
        assert_eq!(&b.recv_from(eb).expect("second echo")[..], &p[..]);
    }
    let n = 2 * lengths.len() as u64;
    assert_eq!(a.device().offload_violations(), 0);
    assert_eq!(a.stats().tx.checksum_offloaded, n);
    assert_eq!(b.stats().tx.checksum_offloaded, 0);
    assert_eq!(b.stats().rx.drops.bad_checksum, 0, "{:#?}", b.stats());
    assert_eq!(b.stats().rx.udp_delivered, n);
    assert_accounted(&a);
    assert_accounted(&b);
}
