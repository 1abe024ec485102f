//! Specification: an answer carries the ACK of the request it answers.
//! A driver that transmits with `poll_transmit_holding_acks` right after
//! handing a message to the application, and with `poll_transmit` once the
//! application had its turn, makes a request/response exchange take two
//! datagrams instead of four; an ACK with nothing to ride on still goes.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Link, Net, small_config};
use insane_reliable::Event;

/// Moves every datagram of endpoint `from` straight into the other one
/// (no delay, no loss); returns how many there were.
fn deliver(net: &mut Net, from: usize, hold_acks: bool) -> usize {
    let mut buf = vec![0u8; 2048];
    let mut n = 0;
    loop {
        let t = if hold_acks {
            net.eps[from].poll_transmit_holding_acks(net.now, &mut buf)
        } else {
            net.eps[from].poll_transmit(net.now, &mut buf)
        };
        let Some(t) = t else { return n };
        n += 1;
        let (to, src) = (1 - from, net.addrs[from]);
        net.eps[to].handle_datagram(net.now, src, &buf[..t.len]);
    }
}

fn take_message(net: &mut Net, at: usize) -> Bytes {
    while let Some(e) = net.eps[at].poll_event() {
        if let Event::Message { data, .. } = e {
            return data.into_bytes();
        }
    }
    panic!("no message at endpoint {at}");
}

#[test]
fn a_response_carries_the_ack_of_its_request() {
    let mut net = Net::new(
        [small_config(), small_config()],
        [Link::clean(Duration::from_micros(10)); 2],
        7,
    );
    let (c0, c1) = net.connect();
    for round in 0..10u8 {
        net.eps[0].send(c0, Bytes::from(vec![round; 32])).unwrap();
        assert_eq!(deliver(&mut net, 0, true), 1, "the request");
        // The server's driver hands the request over and holds the ACK.
        assert_eq!(
            deliver(&mut net, 1, true),
            0,
            "no lone ACK while the application runs"
        );
        assert!(net.eps[1].has_pending_acks());
        let req = take_message(&mut net, 1);
        assert_eq!(&req[..], &[round; 32][..]);
        net.eps[1]
            .send(c1, Bytes::from(vec![round + 100; 32]))
            .unwrap();
        assert_eq!(deliver(&mut net, 1, true), 1, "the response, with the ACK");
        assert!(!net.eps[1].has_pending_acks());
        assert_eq!(
            net.eps[0].unacked_bytes(c0),
            Some(0),
            "the request is acked"
        );
        let resp = take_message(&mut net, 0);
        assert_eq!(&resp[..], &[round + 100; 32][..]);
        // The client's next request (next round) carries the ACK of this
        // response; nothing else went.
        assert_eq!(deliver(&mut net, 0, true), 0);
    }
    // The last response's ACK goes alone once the driver stops holding.
    assert!(net.eps[0].has_pending_acks());
    assert_eq!(deliver(&mut net, 0, false), 1);
    assert_eq!(net.eps[1].unacked_bytes(c1), Some(0));
    assert!(!net.eps[0].has_pending_acks());
}

#[test]
fn an_ack_with_nothing_to_ride_on_goes_with_the_next_plain_transmit() {
    let mut net = Net::new(
        [small_config(), small_config()],
        [Link::clean(Duration::from_micros(10)); 2],
        8,
    );
    let (c0, _c1) = net.connect();
    net.eps[0].send(c0, Bytes::from_static(b"one way")).unwrap();
    assert_eq!(deliver(&mut net, 0, true), 1);
    assert_eq!(deliver(&mut net, 1, true), 0);
    assert_eq!(deliver(&mut net, 1, true), 0, "held again: still no data");
    assert_eq!(deliver(&mut net, 1, false), 1, "the ACK");
    assert_eq!(net.eps[0].unacked_bytes(c0), Some(0));
}
