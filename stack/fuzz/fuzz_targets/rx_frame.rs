//! Fuzz target: arbitrary bytes as a received Ethernet frame, into the
//! userspace stack's receive path (`Interface::receive`).
//!
//! The interface is 10.0.0.1/24 on MAC 02:00:00:00:00:0a with UDP
//! endpoints on ports 7, 5000 and 6000 (the seeds in `seeds/rx_frame` are
//! valid frames for it), a resolution pending for 10.0.0.2 (so ARP replies
//! release a queued packet) and an entry for 10.0.0.3. The frame is fed
//! twice, the second time a minute later after a poll (expiry, retries).
//! The interface is member 0 of a queue group whose member 1 (another
//! queue of the same host) has UDP port 9000: datagrams to it are handed
//! over, and member 1 handles them at its next poll.
//! Checked: no panic, every frame accounted for exactly once on both
//! members, only queued datagrams hold receive buffers, every datagram
//! lies inside its frame, and every frame the stack sent in reply parses.
//!
//! Under `cfg(fuzzing)` smoltcp's `verify_checksum` always succeeds, so the
//! fuzzer reaches past the checksums (bad checksums are covered by the
//! tests).

#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use insane_stack::group::QueueGroup;
use insane_stack::testing::PairDevice;
use insane_stack::wire::{ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Ipv4Packet};
use insane_stack::{InterfaceConfig, EthernetAddress, FrameDevice, Interface, RxOutcome, TxFrame};
use libfuzzer_sys::fuzz_target;

const MAC_A: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]);
const MAC_X: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);

fuzz_target!(|data: &[u8]| {
    let (dev, raw) = PairDevice::pair(MAC_A, MAC_X, 1500);
    let mut config = InterfaceConfig::new("10.0.0.1/24".parse().unwrap());
    config.endpoint_queue = 4;
    let group = QueueGroup::new(2);
    let mut iface = Interface::in_group(dev, config, group.join().unwrap());
    let eps: Vec<_> = [7, 5000, 6000]
        .into_iter()
        .map(|p| iface.bind(p).unwrap())
        .collect();
    let (dev1, _raw1) = PairDevice::pair(MAC_A, MAC_X, 1500);
    let mut other = Interface::in_group(dev1, config, group.join().unwrap());
    let other_ep = other.bind(9000).unwrap();
    let t0 = Instant::now();
    iface.add_static_neighbor(Ipv4Addr::new(10, 0, 0, 3), MAC_X);
    let mut frame = iface.alloc_tx().unwrap();
    frame.extend_from_slice(b"waiting");
    let _ = iface.send_to(
        eps[1],
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 9),
        frame,
        t0,
    );

    for now in [t0, t0 + Duration::from_secs(61)] {
        iface.poll(now);
        raw.send_raw(data.to_vec());
        let mut got = None;
        iface.device_mut().poll_rx(1, &mut |f| got = Some(f));
        let outcome = iface.receive(got.unwrap(), now);
        other.poll(now);

        for stats in [iface.stats(), other.stats()] {
            assert_eq!(stats.rx.frames, stats.rx.accounted());
        }
        let queued: usize = eps.iter().map(|&e| iface.queued(e)).sum();
        // A frame handed over is held by member 1's endpoint.
        assert_eq!(iface.device().rx_in_use(), queued + other.queued(other_ep));
        if let RxOutcome::Forwarded(to) = outcome {
            assert_eq!(to, 1);
            assert_eq!(other.stats().rx.frames, iface.stats().rx.forwarded);
        }
        while let Some(d) = other.recv_from(other_ep) {
            let range = d.payload_range();
            assert!(range.start <= range.end && range.end <= d.frame().len());
        }
        if let RxOutcome::Delivered(id) = outcome {
            assert!(iface.queued(id) > 0);
        }
        for &e in &eps {
            while let Some(d) = iface.recv_from(e) {
                let range = d.payload_range();
                assert!(range.start <= range.end && range.end <= d.frame().len());
                assert_eq!(d.len(), range.len());
            }
        }
        for sent in raw.take_rx() {
            let eth = EthernetFrame::new_checked(&sent[..]).expect("sent frame");
            match eth.ethertype() {
                EthernetProtocol::Arp => {
                    let arp = ArpPacket::new_checked(eth.payload()).expect("sent ARP");
                    ArpRepr::parse(&arp).expect("sent ARP repr");
                }
                EthernetProtocol::Ipv4 => {
                    let ip = Ipv4Packet::new_checked(eth.payload()).expect("sent IPv4");
                    assert!(ip.verify_checksum());
                }
                other => panic!("sent ethertype {other}"),
            }
        }
    }
});
