//! Specification: loss is recovered in microseconds, not seconds. A hole
//! in a stream is repaired by fast retransmit from the SACK bitmap within
//! a few round trips; a lost tail by the retransmission timeout, whose
//! floor is hundreds of µs; the timeout backs off exponentially while the
//! path is down.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use common::{Link, Net};
use insane_reliable::wire::{Kind, Packet};
use insane_reliable::{Config, ConnId, Event};

const PATH: Duration = Duration::from_micros(10);

/// Drops the first DATA packet with sequence number `dsn` sent by side 0.
fn drop_once(dsn: u32) -> (common::Filter, Rc<RefCell<bool>>) {
    let dropped = Rc::new(RefCell::new(false));
    let d = dropped.clone();
    let f = Box::new(move |from: usize, bytes: &[u8]| {
        let Ok(p) = Packet::new_checked(bytes) else {
            return true;
        };
        if from == 0 && p.kind() == Some(Kind::Data) && p.dsn() == dsn && !*d.borrow() {
            *d.borrow_mut() = true;
            return false;
        }
        true
    });
    (f, dropped)
}

/// Connects, warms the RTT estimate up with four round trips (data
/// sequence numbers 0..4), then sends `n` one-packet messages from 0 at
/// once. Returns when each arrived at 1, relative to the send.
fn burst(net: &mut Net, n: usize) -> (ConnId, Vec<Duration>) {
    let (c0, _) = net.connect();
    for _ in 0..4 {
        net.eps[0].send(c0, Bytes::from_static(b"warm")).unwrap();
        net.run_for(Duration::from_micros(50));
        while net.eps[1].poll_event().is_some() {}
    }
    let t0 = net.now;
    for i in 0..n {
        net.eps[0]
            .send(c0, Bytes::from(vec![i as u8; 1000]))
            .unwrap();
    }
    let mut at = Vec::new();
    while at.len() < n {
        assert!(net.step());
        while let Some(e) = net.eps[1].poll_event() {
            if let Event::Message { data, .. } = e {
                assert_eq!(data[0] as usize, at.len(), "in order");
                at.push(net.now - t0);
            }
        }
        assert!(net.now - t0 < Duration::from_secs(1));
    }
    (c0, at)
}

#[test]
fn a_single_lost_packet_is_recovered_by_fast_retransmit_well_under_a_millisecond() {
    let mut net = Net::new(Default::default(), [Link::clean(PATH); 2], 11);
    let (f, dropped) = drop_once(4 + 10);
    net.filter = Some(f);
    let (c0, at) = burst(&mut net, 32);
    assert!(*dropped.borrow());
    let s = net.eps[0].conn_stats(c0).unwrap();
    eprintln!(
        "message 10 (lost once) arrived after {:?}; last after {:?}; {s:?}",
        at[10], at[31]
    );
    assert!(
        at[10] < Duration::from_micros(100),
        "recovery took {:?}",
        at[10]
    );
    assert_eq!(s.fast_retransmits, 1);
    assert_eq!(s.rto_fires, 0);
    assert_eq!(s.retransmitted, 1);
}

#[test]
fn a_lost_tail_is_recovered_by_the_retransmission_timeout() {
    let mut net = Net::new(Default::default(), [Link::clean(PATH); 2], 12);
    let (f, dropped) = drop_once(4 + 7);
    net.filter = Some(f);
    let (c0, at) = burst(&mut net, 8);
    assert!(*dropped.borrow());
    let s = net.eps[0].conn_stats(c0).unwrap();
    eprintln!("tail message arrived after {:?}; {s:?}", at[7]);
    assert_eq!(s.rto_fires, 1);
    assert_eq!(s.fast_retransmits, 0);
    // RTO = max(srtt + 4 rttvar, 300 µs floor), then one one-way delay.
    assert!(at[7] >= Config::default().rto_min, "{:?}", at[7]);
    assert!(
        at[7] < Duration::from_millis(1),
        "tail recovery took {:?}",
        at[7]
    );
}

#[test]
fn the_rtt_estimate_is_in_microseconds() {
    let mut net = Net::new(Default::default(), [Link::clean(PATH); 2], 13);
    let (c0, _) = burst(&mut net, 16);
    let s = net.eps[0].conn_stats(c0).unwrap();
    assert!(
        s.srtt >= 2 * PATH && s.srtt <= 2 * PATH + Duration::from_micros(5),
        "srtt {:?}",
        s.srtt
    );
    assert_eq!(
        s.rto,
        Config::default().rto_min,
        "floor applies on a 20 µs RTT"
    );
}

#[test]
fn the_timeout_backs_off_exponentially_while_the_path_is_down_and_recovers_after() {
    let mut net = Net::new(Default::default(), [Link::clean(PATH); 2], 14);
    let (c0, _) = net.connect();
    net.links[0].loss = 1.0;
    net.eps[0]
        .send(c0, Bytes::from_static(b"across an outage"))
        .unwrap();
    let mut rtos = Vec::new();
    let t0 = net.now;
    while net.now - t0 < Duration::from_millis(10) {
        net.step();
        let s = net.eps[0].conn_stats(c0).unwrap();
        if rtos.last().is_none_or(|&(n, _)| n != s.rto_fires) {
            rtos.push((s.rto_fires, s.rto));
        }
    }
    eprintln!("rto fires and timeout: {rtos:?}");
    // 300 µs, 600, 1200, 2400, 4800: five fires in 10 ms, each doubling.
    assert!(rtos.len() >= 5, "{rtos:?}");
    for w in rtos.windows(2).skip(1) {
        assert_eq!(
            w[1].1,
            (w[0].1 * 2).min(Config::default().rto_max),
            "{rtos:?}"
        );
    }
    net.links[0].loss = 0.0;
    let mut got = false;
    let t1 = net.now;
    while !got {
        assert!(net.step());
        while let Some(e) = net.eps[1].poll_event() {
            got |= matches!(e, Event::Message { .. });
        }
    }
    assert!(
        net.now - t1 <= Duration::from_millis(10),
        "waited {:?}",
        net.now - t1
    );
}
