//! The fault-injecting device (`testing::lossy::LossyDevice`): faults at the
//! configured rates, the same faults for the same seed, every frame
//! accounted for, and the stack over it counting what it must.

use std::time::Instant;

use insane_stack::testing::PairDevice;
use insane_stack::testing::lossy::{ImpairmentStats, Impairments, LossyDevice};
use insane_stack::{
    DropReason, EthernetAddress as Mac, FrameDevice, Interface, InterfaceConfig, TxFrame,
};

const MAC_A: Mac = Mac([2, 0, 0, 0, 0, 1]);
const MAC_B: Mac = Mac([2, 0, 0, 0, 0, 2]);

/// Sends `n` numbered frames from `a` to a lossy `b` and returns the
/// numbers `b` received, in order of arrival, and `b`'s stats.
fn run(imp: Impairments, seed: u64, n: u32) -> (Vec<u32>, ImpairmentStats) {
    let (mut a, b) = PairDevice::pair(MAC_A, MAC_B, 1500);
    let mut b = LossyDevice::new(b, imp, seed);
    let mut got = Vec::new();
    for i in 0..n {
        let mut f = a.alloc_tx().unwrap();
        assert!(TxFrame::extend_from_slice(&mut f, &[0u8; 14]));
        assert!(TxFrame::extend_from_slice(&mut f, &i.to_be_bytes()));
        a.transmit(f).unwrap();
        b.poll_rx(64, &mut |f| {
            got.push(u32::from_be_bytes(f[14..18].try_into().unwrap()))
        });
    }
    // Empty polls release what is still held back.
    for _ in 0..imp.reorder_depth + 1 {
        b.poll_rx(64, &mut |f| {
            got.push(u32::from_be_bytes(f[14..18].try_into().unwrap()))
        });
    }
    (got, b.stats())
}

#[test]
fn a_perfect_link_delivers_everything_in_order() {
    let (got, stats) = run(Impairments::none(), 1, 1000);
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    assert_eq!(stats.delivered, 1000);
    assert_eq!(stats.dropped + stats.duplicated + stats.reordered, 0);
}

#[test]
fn faults_come_at_the_configured_rates_and_every_frame_is_accounted_for() {
    let imp = Impairments {
        loss: 0.05,
        duplicate: 0.02,
        reorder: 0.1,
        reorder_depth: 4,
        corrupt: 0.0,
    };
    let (got, s) = run(imp, 42, 20_000);
    assert_eq!(s.received, 20_000);
    assert_eq!(s.held, 0);
    assert_eq!(s.received + s.duplicated, s.dropped + s.delivered + s.held);
    assert_eq!(got.len() as u64, s.delivered);
    // Binomial with n = 20 000: these bounds are several standard
    // deviations wide.
    assert!((800..1200).contains(&s.dropped), "{s:?}");
    assert!((280..530).contains(&s.duplicated), "{s:?}");
    assert!((1600..2200).contains(&s.reordered), "{s:?}");
    // Reordered, not just delayed to the end: some frame arrives before
    // one sent earlier, and never more than `reorder_depth` late.
    assert!(got.windows(2).any(|w| w[1] < w[0]));
    let mut latest = 0;
    for &x in &got {
        latest = latest.max(x);
        assert!(latest - x <= 4, "{x} arrived after {latest}");
    }
}

#[test]
fn the_same_seed_gives_the_same_faults_and_another_seed_others() {
    let imp = Impairments {
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.1,
        reorder_depth: 3,
        corrupt: 0.0,
    };
    assert_eq!(run(imp, 7, 2000), run(imp, 7, 2000));
    assert_ne!(run(imp, 7, 2000).0, run(imp, 8, 2000).0);
}

#[test]
fn corrupted_datagrams_are_caught_by_the_stack_checksums_and_counted() {
    let (a, b) = PairDevice::pair(MAC_A, MAC_B, 1500);
    let imp = Impairments {
        corrupt: 1.0,
        ..Impairments::none()
    };
    let mut a = Interface::new(a, InterfaceConfig::new("10.0.0.1/24".parse().unwrap()));
    let mut b = Interface::new(
        LossyDevice::new(b, imp, 3),
        InterfaceConfig::new("10.0.0.2/24".parse().unwrap()),
    );
    a.add_static_neighbor("10.0.0.2".parse().unwrap(), MAC_B);
    let ea = a.bind(5000).unwrap();
    let eb = b.bind(6000).unwrap();
    let now = Instant::now();
    for _ in 0..200 {
        let mut f = a.alloc_tx().unwrap();
        assert!(TxFrame::extend_from_slice(&mut f, &[0x5a; 64]));
        a.send_to(ea, "10.0.0.2:6000".parse().unwrap(), f, now)
            .unwrap();
        b.poll(now);
    }
    assert_eq!(b.device().stats().corrupted, 200);
    // A flipped bit in the IPv4 header, the UDP header or the payload: the
    // checksums catch it, or the frame is no longer a datagram for port
    // 6000 of 10.0.0.2. Whatever was delivered is the payload sent.
    let mut delivered = 0;
    while let Some(d) = b.recv_from(eb) {
        assert_eq!(&*d, &[0x5a; 64][..]);
        delivered += 1;
    }
    let drops = b.stats().rx.drops;
    let checksum = drops.get(DropReason::BadChecksum);
    assert!(checksum > 150, "{:?}", b.stats());
    assert!(delivered <= 200 - checksum as usize);
}

#[test]
fn held_frames_go_back_to_the_device_pool_when_the_wrapper_goes() {
    let (mut a, b) = PairDevice::pair(MAC_A, MAC_B, 1500);
    let imp = Impairments {
        reorder: 1.0,
        reorder_depth: 100,
        ..Impairments::none()
    };
    let mut b = LossyDevice::new(b, imp, 5);
    for _ in 0..10 {
        let mut f = a.alloc_tx().unwrap();
        assert!(TxFrame::extend_from_slice(&mut f, &[1; 20]));
        a.transmit(f).unwrap();
    }
    b.poll_rx(64, &mut |_| panic!("held frames delivered at once"));
    assert_eq!(b.inner().rx_in_use(), 10);
    let b = b.into_inner();
    assert_eq!(b.rx_in_use(), 0);
}
