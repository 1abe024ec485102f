//! Property tests of the userspace stack's receive path (the CI stand-in
//! for the cargo-fuzz target in `net/fuzz` where nightly is missing):
//! random bytes and mutated valid frames never panic, every frame is
//! accounted for exactly once, nothing leaks a driver buffer, and whatever
//! the stack sends in reply is well-formed.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use insane_stack::testing::PairDevice;
use insane_stack::testing::frames::{arp_frame, icmp_echo_request, refresh_checksums, udp_frame};
use insane_stack::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv4Repr,
    IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket,
};
use insane_stack::{
    DropReason, EndpointId, EthernetAddress, FrameDevice, Interface, InterfaceConfig, RxOutcome,
    SendStatus, TxFrame,
};

const MAC_A: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]);
const MAC_X: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PORTS: [u16; 3] = [7, 5000, 6000];

type Iface = Interface<PairDevice>;

fn host() -> (Iface, PairDevice, Vec<EndpointId>) {
    let (a, raw) = PairDevice::pair(MAC_A, MAC_X, 1500);
    let mut cfg = InterfaceConfig::new("10.0.0.1/24".parse().unwrap());
    cfg.endpoint_queue = 8;
    let mut iface = Interface::new(a, cfg);
    let eps = PORTS.iter().map(|&p| iface.bind(p).unwrap()).collect();
    (iface, raw, eps)
}

/// Feeds every frame, checking the invariants after each; returns the
/// outcomes.
fn feed(
    iface: &mut Iface,
    raw: &PairDevice,
    eps: &[EndpointId],
    frames: &[Vec<u8>],
) -> Vec<RxOutcome> {
    let now = Instant::now();
    let mut outcomes = Vec::new();
    for frame in frames {
        raw.send_raw(frame.clone());
        let mut got = None;
        iface.device_mut().poll_rx(1, &mut |f| got = Some(f));
        let outcome = iface.receive(got.expect("frame"), now);
        outcomes.push(outcome);
        let s = iface.stats();
        assert_eq!(s.rx.frames, s.rx.accounted(), "{s:#?}");
        let queued: usize = eps.iter().map(|&e| iface.queued(e)).sum();
        assert_eq!(
            iface.device().rx_in_use(),
            queued,
            "only queued datagrams hold frames"
        );
        assert_eq!(iface.device().tx_in_use(), 0, "replies are not held");
        if let RxOutcome::Delivered(id) = outcome {
            // The newest datagram of that endpoint lies inside its frame.
            let n = iface.queued(id);
            let mut last = None;
            for _ in 0..n {
                last = iface.recv_from(id);
            }
            let d = last.expect("delivered datagram");
            let range = d.payload_range();
            assert!(range.start <= range.end && range.end <= d.frame().len());
            assert_eq!(d.len(), range.len());
        }
    }
    // Everything the stack sent is well-formed.
    for reply in raw.take_rx() {
        check_well_formed(&reply);
    }
    outcomes
}

fn check_well_formed(frame: &[u8]) {
    let eth = EthernetFrame::new_checked(frame).expect("ethernet");
    assert_eq!(eth.src_addr(), MAC_A);
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            let arp = ArpPacket::new_checked(eth.payload()).expect("arp");
            let ArpRepr::EthernetIpv4 {
                source_hardware_addr,
                source_protocol_addr,
                ..
            } = ArpRepr::parse(&arp).expect("arp repr")
            else {
                panic!("not Ethernet/IPv4 ARP");
            };
            assert_eq!((source_hardware_addr, source_protocol_addr), (MAC_A, IP_A));
        }
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
            let repr = Ipv4Repr::parse(&ip, &Default::default()).expect("ipv4 repr");
            assert_eq!(repr.src_addr, IP_A);
            match repr.next_header {
                IpProtocol::Icmp => {
                    let icmp = Icmpv4Packet::new_checked(ip.payload()).expect("icmp");
                    let r = Icmpv4Repr::parse(&icmp, &Default::default()).expect("icmp repr");
                    assert!(matches!(r, Icmpv4Repr::EchoReply { .. }));
                }
                IpProtocol::Udp => {
                    let udp = UdpPacket::new_checked(ip.payload()).expect("udp");
                    assert!(udp.verify_checksum(&IP_A.into(), &repr.dst_addr.into()));
                }
                other => panic!("sent {other}"),
            }
        }
        other => panic!("sent ethertype {other}"),
    }
}

/// A valid frame for the host: UDP to a bound port, ARP request or reply
/// for us, ICMP echo request.
fn valid_frame() -> impl Strategy<Value = (Vec<u8>, u8)> {
    (
        0u8..4,
        proptest::collection::vec(any::<u8>(), 0..1473),
        any::<u16>(),
        0usize..PORTS.len(),
        any::<[u8; 3]>(),
    )
        .prop_map(|(kind, payload, n, port, mac_tail)| {
            let src_mac = EthernetAddress([0x02, 0x10, 0, mac_tail[0], mac_tail[1], mac_tail[2]]);
            let src_ip = Ipv4Addr::new(10, 0, 0, 2 + mac_tail[2] % 200);
            let frame = match kind {
                0 => udp_frame(
                    src_mac,
                    MAC_A,
                    SocketAddrV4::new(src_ip, n | 1),
                    SocketAddrV4::new(IP_A, PORTS[port]),
                    &payload,
                ),
                1 => arp_frame(ArpOperation::Request, src_mac, src_ip, MAC_A, IP_A),
                2 => arp_frame(ArpOperation::Reply, src_mac, src_ip, MAC_A, IP_A),
                _ => icmp_echo_request(src_mac, MAC_A, src_ip, IP_A, n, !n, &payload),
            };
            (frame, kind)
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    Xor(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..).prop_map(|(i, b)| Mutation::Xor(i, b)),
        // Mostly header bytes.
        4 => (0usize..64, any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
    ]
}

fn apply(frame: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Xor(i, b) if !frame.is_empty() => {
            let n = frame.len();
            frame[i % n] ^= b;
        }
        Mutation::Set(i, b) => {
            if let Some(x) = frame.get_mut(*i) {
                *x = *b;
            }
        }
        Mutation::Truncate(n) if !frame.is_empty() => {
            let n = n % frame.len();
            frame.truncate(n);
        }
        Mutation::Extend(bytes) => frame.extend_from_slice(bytes),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes, raw or behind a valid Ethernet header for us.
    #[test]
    fn random_bytes(
        frames in proptest::collection::vec(
            (0u8..3, proptest::collection::vec(any::<u8>(), 0..1600)),
            1..16,
        )
    ) {
        let (mut iface, raw, eps) = host();
        let frames: Vec<Vec<u8>> = frames
            .into_iter()
            .map(|(prefix, body)| {
                let mut f = Vec::new();
                match prefix {
                    0 => {}
                    1 => {
                        f.extend_from_slice(&MAC_A.0);
                        f.extend_from_slice(&MAC_X.0);
                        f.extend_from_slice(&[0x08, 0x00, 0x45, 0x00]);
                    }
                    _ => {
                        f.extend_from_slice(&[0xff; 6]);
                        f.extend_from_slice(&MAC_X.0);
                        f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4]);
                    }
                }
                f.extend_from_slice(&body);
                f
            })
            .collect();
        feed(&mut iface, &raw, &eps, &frames);
    }

    /// Valid frames with random mutations, with and without checksums
    /// refreshed afterwards (to get past them to the deeper checks).
    #[test]
    fn mutated_valid_frames(
        cases in proptest::collection::vec(
            (valid_frame(), proptest::collection::vec(mutation(), 0..4), any::<bool>()),
            1..8,
        )
    ) {
        let (mut iface, raw, eps) = host();
        let mut expected = Vec::new();
        let frames: Vec<Vec<u8>> = cases
            .into_iter()
            .map(|((mut frame, kind), mutations, refresh)| {
                for m in &mutations {
                    apply(&mut frame, m);
                }
                if refresh {
                    refresh_checksums(&mut frame);
                }
                expected.push(mutations.is_empty().then_some(kind));
                frame
            })
            .collect();
        let outcomes = feed(&mut iface, &raw, &eps, &frames);
        for (outcome, kind) in outcomes.iter().zip(expected) {
            match kind {
                // Unmutated frames are handled, not dropped (queues of 8
                // cannot fill with at most 8 frames).
                Some(0) => prop_assert!(matches!(outcome, RxOutcome::Delivered(_)), "{outcome:?}"),
                Some(1) => prop_assert_eq!(*outcome, RxOutcome::ArpRequest),
                Some(2) => prop_assert_eq!(*outcome, RxOutcome::ArpReply),
                Some(_) => prop_assert_eq!(*outcome, RxOutcome::IcmpEcho),
                None => {}
            }
        }
    }

    /// Any payload crosses a link unchanged, with the right addresses.
    #[test]
    fn udp_round_trip(
        payload in proptest::collection::vec(any::<u8>(), 0..1473),
        src_port in 1u16..,
        dst_port in 1u16..,
    ) {
        let mac_b = EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]);
        let ip_b = Ipv4Addr::new(10, 0, 0, 2);
        let (da, db) = PairDevice::pair(MAC_A, mac_b, 1500);
        let mut a = Interface::new(da, InterfaceConfig::new("10.0.0.1/24".parse().unwrap()));
        let mut b = Interface::new(db, InterfaceConfig::new("10.0.0.2/24".parse().unwrap()));
        a.add_static_neighbor(ip_b, mac_b);
        let ea = a.bind(src_port).unwrap();
        let eb = b.bind(dst_port).unwrap();
        let now = Instant::now();
        let mut frame = a.alloc_tx().unwrap();
        prop_assert!(frame.extend_from_slice(&payload));
        let status = a.send_to(ea, SocketAddrV4::new(ip_b, dst_port), frame, now).unwrap();
        prop_assert_eq!(status, SendStatus::Sent);
        b.poll(now);
        let d = b.recv_from(eb).unwrap();
        prop_assert_eq!(&*d, &payload[..]);
        prop_assert_eq!(d.peer(), SocketAddrV4::new(IP_A, src_port));
    }

    /// Random interleavings of sends, polls, lost and corrupted frames and
    /// time between two hosts: stats always add up, and once everything
    /// has settled no buffer is held.
    #[test]
    fn random_conversations(ops in proptest::collection::vec((0u8..8, any::<u16>()), 1..64)) {
        let mac_b = EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]);
        let ip_b = Ipv4Addr::new(10, 0, 0, 2);
        let (da, db) = PairDevice::pair(MAC_A, mac_b, 1500);
        let mut a = Interface::new(da, InterfaceConfig::new("10.0.0.1/24".parse().unwrap()));
        let mut b = Interface::new(db, InterfaceConfig::new("10.0.0.2/24".parse().unwrap()));
        let ea = a.bind(5000).unwrap();
        let eb = b.bind(6000).unwrap();
        let mut now = Instant::now();
        for (op, n) in ops {
            match op {
                0 | 1 => {
                    let (from, ep, to) = if op == 0 {
                        (&mut a, ea, SocketAddrV4::new(ip_b, 6000))
                    } else {
                        (&mut b, eb, SocketAddrV4::new(IP_A, 5000))
                    };
                    let mut frame = from.alloc_tx().unwrap();
                    frame.extend_from_slice(&n.to_be_bytes());
                    let _ = from.send_to(ep, to, frame, now);
                }
                2 => { a.poll(now); }
                3 => { b.poll(now); }
                4 => {
                    // Lose or corrupt what is on the wire to b.
                    for mut f in b.device().take_rx() {
                        if n % 2 == 0 {
                            let i = usize::from(n) % f.len();
                            f[i] ^= 0x5a;
                            b.device().inject(f);
                        }
                    }
                }
                5 => now += Duration::from_millis(u64::from(n) * 10),
                6 => { while b.recv_from(eb).is_some() {} }
                _ => { while a.recv_from(ea).is_some() {} }
            }
            for iface in [&a, &b] {
                let s = iface.stats();
                prop_assert_eq!(s.rx.frames, s.rx.accounted());
            }
        }
        // Settle: let ARP finish or give up, deliver everything, read it.
        for _ in 0..10 {
            now += Duration::from_secs(1);
            a.poll(now);
            b.poll(now);
        }
        while a.recv_from(ea).is_some() {}
        while b.recv_from(eb).is_some() {}
        prop_assert_eq!(a.device().tx_in_use() + b.device().tx_in_use(), 0);
        prop_assert_eq!(a.device().rx_in_use() + b.device().rx_in_use(), 0);
    }
}

/// The mutation strategy is strong enough to reach every drop reason (so
/// the properties above exercise every check, not only the first ones).
#[test]
fn mutations_reach_every_drop_reason() {
    let mut runner = TestRunner::deterministic();
    let strategy = (
        valid_frame(),
        proptest::collection::vec(mutation(), 1..4),
        any::<bool>(),
    );
    let (mut iface, raw, eps) = host();
    let mut seen = HashSet::new();
    for _ in 0..20_000 {
        let ((mut frame, _), mutations, refresh) =
            strategy.new_tree(&mut runner).unwrap().current();
        for m in &mutations {
            apply(&mut frame, m);
        }
        if refresh {
            refresh_checksums(&mut frame);
        }
        for outcome in feed(&mut iface, &raw, &eps, &[frame]) {
            if let RxOutcome::Dropped(reason) = outcome {
                seen.insert(reason);
            }
        }
        for &e in &eps {
            while iface.recv_from(e).is_some() {}
        }
    }
    let missing: Vec<DropReason> = DropReason::ALL
        .into_iter()
        .filter(|r| !seen.contains(r))
        // Needs a full queue: covered by the example tests (and a queue
        // group's full inbox by tests/stack_group.rs).
        .filter(|r| *r != DropReason::EndpointQueueFull && *r != DropReason::ForwardQueueFull)
        .collect();
    assert!(missing.is_empty(), "never reached: {missing:?}");
}
