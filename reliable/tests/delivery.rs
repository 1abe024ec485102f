//! Specification: whatever the path does to datagrams (loss, reordering,
//! duplication, corruption, jitter), every message sent arrives exactly
//! once, in order, intact, in both directions at once.

mod common;

use std::time::Duration;

use common::{Link, Net, Stream};
use insane_reliable::{Config, Event};

/// Messages per direction (sizes log-uniform in 1 B..=1 MiB, mean ≈ 75 KB:
/// about 6 MB each way). Bounded so that the suite runs in seconds.
const MESSAGES: u64 = 80;
const MAX_SIZE: usize = 1 << 20;

fn transfer(link: Link, seed: u64) -> Net {
    transfer_lending(link, seed, None)
}

/// As `transfer`, datagrams handed over owned with `lend` of them
/// lendable (`None`: borrowed).
fn transfer_lending(link: Link, seed: u64, lend: Option<usize>) -> Net {
    let mut net = Net::new([Config::default(), Config::default()], [link, link], seed);
    net.lend = lend;
    let (c0, c1) = net.connect();
    let mut to1 = Stream::new(seed + 1, MAX_SIZE, MESSAGES);
    let mut to0 = Stream::new(seed + 2, MAX_SIZE, MESSAGES / 2);
    let deadline = net.now + Duration::from_secs(20);
    while !(to1.done() && to0.done()) {
        to1.pump(&mut net.eps[0], c0);
        to0.pump(&mut net.eps[1], c1);
        assert!(
            net.step(),
            "simulation stalled: {} / {} and {} / {}",
            to1.received,
            to1.count,
            to0.received,
            to0.count
        );
        for (i, stream) in [(1, &mut to1), (0, &mut to0)] {
            while let Some(e) = net.eps[i].poll_event() {
                match e {
                    Event::Message { data, .. } => stream.check(&data),
                    Event::Writable { .. } => {}
                    e => panic!("unexpected event at {i}: {e:?}"),
                }
            }
        }
        assert!(
            net.now < deadline,
            "transfer too slow: {:?} simulated",
            net.elapsed()
        );
    }
    assert!(to1.bytes + to0.bytes < 24 << 20, "workload bound");
    // Nothing more arrives afterwards (no duplicate delivery).
    net.run_for(Duration::from_millis(20));
    for i in 0..2 {
        while let Some(e) = net.eps[i].poll_event() {
            assert!(!matches!(e, Event::Message { .. }), "extra message at {i}");
        }
    }
    let s0 = net.eps[0].conn_stats(c0).unwrap();
    let s1 = net.eps[1].conn_stats(c1).unwrap();
    eprintln!(
        "{:?}: {} + {} bytes in {:?} simulated; link {:?}\n 0: {s0:?}\n 1: {s1:?}\n drops 0: {:?}\n drops 1: {:?}",
        link,
        to1.bytes,
        to0.bytes,
        net.elapsed(),
        net.stats,
        net.eps[0].stats().drops.nonzero(),
        net.eps[1].stats().drops.nonzero()
    );
    assert_eq!(
        net.eps[0].held_bytes() + net.eps[1].held_bytes(),
        0,
        "memory returned"
    );
    net
}

#[test]
fn clean_path_delivers_everything_in_order_without_retransmission() {
    let net = transfer(Link::clean(Duration::from_micros(10)), 1);
    for i in 0..2 {
        let drops = &net.eps[i].stats().drops;
        assert_eq!(drops.total(), 0, "{:?}", drops.nonzero());
    }
}

#[test]
fn one_percent_loss_with_reordering_duplication_and_corruption() {
    let link = Link {
        delay: Duration::from_micros(10),
        jitter: Duration::from_micros(2),
        loss: 0.01,
        reorder: 0.01,
        dup: 0.01,
        corrupt: 0.001,
    };
    let net = transfer(link, 2);
    assert!(net.stats.lost > 0 && net.stats.duplicated > 0 && net.stats.reordered > 0);
}

#[test]
fn five_percent_loss_with_reordering_duplication_and_corruption() {
    let link = Link {
        delay: Duration::from_micros(10),
        jitter: Duration::from_micros(5),
        loss: 0.05,
        reorder: 0.05,
        dup: 0.02,
        corrupt: 0.01,
    };
    let net = transfer(link, 3);
    assert!(net.stats.lost > 100 && net.stats.corrupted > 0);
}

#[test]
fn many_small_messages_survive_loss() {
    let link = Link {
        loss: 0.05,
        reorder: 0.05,
        dup: 0.05,
        ..Link::clean(Duration::from_micros(10))
    };
    let mut net = Net::new([Config::default(), Config::default()], [link, link], 9);
    let (c0, _) = net.connect();
    let mut s = Stream::new(77, 64, 20_000);
    while !s.done() {
        s.pump(&mut net.eps[0], c0);
        assert!(net.step());
        while let Some(e) = net.eps[1].poll_event() {
            if let Event::Message { data, .. } = e {
                s.check(&data);
            }
        }
    }
}

#[test]
fn owned_datagrams_are_kept_in_messages_without_copy_and_everything_arrives_under_loss() {
    let link = Link {
        delay: Duration::from_micros(10),
        jitter: Duration::from_micros(2),
        loss: 0.01,
        reorder: 0.01,
        dup: 0.01,
        corrupt: 0.001,
    };
    // Enough to lend every message's datagrams: multi-datagram messages
    // arrive as their datagrams (several chunks).
    let net = transfer_lending(link, 4, Some(usize::MAX));
    assert!(net.stats.lost > 0 && net.stats.duplicated > 0);
}

#[test]
fn with_few_datagrams_to_lend_large_messages_are_copied_and_everything_arrives() {
    // 100 lendable: messages over 100 datagrams are copied into one
    // buffer, smaller ones kept; both in one stream.
    let link = Link {
        loss: 0.01,
        reorder: 0.01,
        ..Link::clean(Duration::from_micros(10))
    };
    transfer_lending(link, 5, Some(100));
}

#[test]
fn a_message_of_several_owned_datagrams_is_delivered_as_those_datagrams() {
    let mut net = Net::new(
        [Config::default(), Config::default()],
        [Link::clean(Duration::from_micros(10)); 2],
        6,
    );
    net.lend = Some(usize::MAX);
    let (c0, _) = net.connect();
    let frag = Config::default().max_payload();
    let msg: Vec<u8> = (0..frag * 3 + 7).map(|i| i as u8).collect();
    net.eps[0]
        .send(c0, bytes::Bytes::from(msg.clone()))
        .unwrap();
    net.run_for(Duration::from_millis(1));
    let Some(Event::Message { data, .. }) = net.eps[1].poll_event() else {
        panic!("the message arrives");
    };
    let sizes: Vec<usize> = data.chunks().map(|c| c.len()).collect();
    assert_eq!(sizes, [frag, frag, frag, 7], "one chunk per datagram");
    assert!(!data.is_contiguous());
    assert_eq!(data, msg[..]);
    assert_eq!(&data[..], &msg[..], "the contiguous view");
    assert!(data.is_contiguous(), "made once, kept");
}
