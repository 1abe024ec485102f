//! Specification: a retransmission timeout is a question, not a verdict.
//! It retransmits one probe (the first unacknowledged packet), not the
//! window; the first ACK that brings news answers it. An ACK for packets
//! that were sent once, before the timeout, shows the ACKs were only late
//! (a preempted peer): the timeout was spurious and the congestion window
//! of before comes back. An ACK that covers only the probe, or a hole
//! below later packets, shows a real loss: the rest of the window is
//! retransmitted and the window stays reduced.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Link, Net};
use insane_reliable::wire::{Kind, Packet};
use insane_reliable::{ConnId, ConnStats, Event};

const PATH: Duration = Duration::from_micros(10);
/// Messages (one packet each) of the burst under test.
const BURST: usize = 24;

/// Connects and warms the RTT estimate up with four round trips (data
/// sequence numbers 0..4). Returns the sender's connection and its state.
fn warm(net: &mut Net) -> (ConnId, ConnStats) {
    let (c0, _) = net.connect();
    for _ in 0..4 {
        net.eps[0].send(c0, Bytes::from_static(b"warm")).unwrap();
        net.run_for(Duration::from_micros(50));
        while net.eps[1].poll_event().is_some() {}
    }
    let s = net.eps[0].conn_stats(c0).unwrap();
    (c0, s)
}

/// Sends `BURST` one-packet messages from 0 at once.
fn send_burst(net: &mut Net, c0: ConnId) {
    for i in 0..BURST {
        net.eps[0]
            .send(c0, Bytes::from(vec![i as u8; 1000]))
            .unwrap();
    }
}

/// Runs until every message of the burst arrived at 1, checking each
/// arrives once and in order (bounded: 100 ms of simulated time).
fn receive_burst(net: &mut Net) {
    let t0 = net.now;
    let mut got = 0;
    while got < BURST {
        assert!(net.step(), "nothing left to happen at {got} messages");
        while let Some(e) = net.eps[1].poll_event() {
            if let Event::Message { data, .. } = e {
                assert_eq!(data[0] as usize, got, "in order, once");
                got += 1;
            }
        }
        assert!(net.now - t0 < Duration::from_millis(100), "{got} messages");
    }
    net.run_for(Duration::from_micros(100));
    while let Some(e) = net.eps[1].poll_event() {
        assert!(!matches!(e, Event::Message { .. }), "a message twice");
    }
}

/// Steps until the sender's first retransmission timeout, plus `extra`.
fn until_rto(net: &mut Net, c0: ConnId, extra: Duration) {
    let t0 = net.now;
    while net.eps[0].conn_stats(c0).unwrap().rto_fires == 0 {
        assert!(net.step());
        assert!(net.now - t0 < Duration::from_millis(10), "no timeout");
    }
    net.run_for(extra);
}

#[test]
fn a_timeout_retransmits_one_probe_not_the_window() {
    let mut net = Net::new(Default::default(), [Link::clean(PATH); 2], 21);
    let (c0, _) = warm(&mut net);
    // Every datagram from the receiver is lost for a while: the sender
    // hears nothing and times out with the whole burst in flight.
    net.filter = Some(Box::new(|from, _| from == 0));
    send_burst(&mut net, c0);
    until_rto(&mut net, c0, 5 * PATH);
    let s = net.eps[0].conn_stats(c0).unwrap();
    assert_eq!(s.rto_fires, 1, "{s:?}");
    assert_eq!(s.retransmitted, 1, "one probe, not {BURST} packets: {s:?}");
    net.filter = None;
    receive_burst(&mut net);
}

#[test]
fn a_late_ack_after_a_timeout_restores_the_window() {
    let mut net = Net::new(Default::default(), [Link::clean(PATH); 2], 22);
    let (c0, before) = warm(&mut net);
    // The receiver's ACKs take 1 ms (a peer preempted, not a lost
    // packet): longer than the 300 µs timeout.
    net.links[1].delay = Duration::from_millis(1);
    send_burst(&mut net, c0);
    until_rto(&mut net, c0, Duration::ZERO);
    assert_eq!(
        net.eps[0].conn_stats(c0).unwrap().cwnd,
        net.eps[0].config().min_cwnd,
        "a timeout shrinks the window first"
    );
    net.links[1].delay = PATH;
    receive_burst(&mut net);
    let s = net.eps[0].conn_stats(c0).unwrap();
    eprintln!("before {before:?}\nafter {s:?}");
    assert!(s.rto_fires >= 1);
    assert_eq!(s.spurious_rtos, 1, "{s:?}");
    assert_eq!(
        s.retransmitted, s.rto_fires,
        "only probes were retransmitted: {s:?}"
    );
    assert!(
        s.cwnd >= before.cwnd,
        "window {} after the late ACK, {} before",
        s.cwnd,
        before.cwnd
    );
    assert_eq!(s.ssthresh, before.ssthresh);
}

#[test]
fn a_real_loss_after_a_timeout_is_recovered_and_keeps_the_window_reduced() {
    let mut net = Net::new(Default::default(), [Link::clean(PATH); 2], 23);
    let (c0, before) = warm(&mut net);
    // The burst's first transmissions are all lost (DSNs 4..4+BURST,
    // each dropped once): only the timeout can recover them.
    let mut dropped = [false; BURST];
    net.filter = Some(Box::new(move |from, bytes| {
        let Ok(p) = Packet::new_checked(bytes) else {
            return true;
        };
        let i = p.dsn().wrapping_sub(4) as usize;
        if from == 0 && p.kind() == Some(Kind::Data) && i < BURST && !dropped[i] {
            dropped[i] = true;
            return false;
        }
        true
    }));
    send_burst(&mut net, c0);
    receive_burst(&mut net);
    let s = net.eps[0].conn_stats(c0).unwrap();
    eprintln!("before {before:?}\nafter {s:?}");
    assert_eq!(s.rto_fires, 1, "{s:?}");
    assert_eq!(s.spurious_rtos, 0, "{s:?}");
    assert_eq!(
        s.retransmitted, BURST as u64,
        "the probe, then the rest of the window once: {s:?}"
    );
    assert!(
        s.ssthresh < before.cwnd,
        "the loss halved the window: {s:?}"
    );
}

#[test]
fn a_timeout_after_a_sack_hole_is_not_undone() {
    let mut net = Net::new(Default::default(), [Link::clean(PATH); 2], 24);
    let (c0, before) = warm(&mut net);
    // The first packet of the burst is lost, and only one packet after
    // it arrives (the rest of the burst stays queued behind a small
    // window): a SACK shows the hole, too few packets to declare the
    // loss, so the timeout repairs it. Packets after the hole arrived, so
    // the ACK after the probe covers them; but the hole showed a loss:
    // no undo.
    let mut first = true;
    net.filter = Some(Box::new(move |from, bytes| {
        let Ok(p) = Packet::new_checked(bytes) else {
            return true;
        };
        if from == 0 && p.kind() == Some(Kind::Data) && p.dsn() == 4 && first {
            first = false;
            return false;
        }
        true
    }));
    net.eps[0].send(c0, Bytes::from(vec![0u8; 1000])).unwrap();
    net.eps[0].send(c0, Bytes::from(vec![1u8; 1000])).unwrap();
    let t0 = net.now;
    let mut got = 0;
    while got < 2 {
        assert!(net.step());
        while let Some(e) = net.eps[1].poll_event() {
            if let Event::Message { data, .. } = e {
                assert_eq!(data[0] as usize, got);
                got += 1;
            }
        }
        assert!(net.now - t0 < Duration::from_millis(10));
    }
    let s = net.eps[0].conn_stats(c0).unwrap();
    eprintln!("before {before:?}\nafter {s:?}");
    assert_eq!(s.rto_fires, 1, "{s:?}");
    assert_eq!(s.spurious_rtos, 0, "{s:?}");
    assert_eq!(s.retransmitted, 1, "{s:?}");
}
