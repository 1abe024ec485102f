//! Specification: hostile or broken datagrams (forged connection ids, wrong
//! version, truncated headers, unknown kinds, out-of-window sequence
//! numbers, absurd fragment counts, acks of unsent data) are dropped and
//! counted under their reason, never panic and never deliver anything; the
//! connection keeps working.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Link, Net};
use insane_reliable::wire::{AckRepr, DataHeader, MAX_SACK_WORDS, Repr};
use insane_reliable::{CloseReason, Config, ConnId, DropReason, Event};

fn setup() -> (Net, ConnId, ConnId) {
    let mut net = Net::new(
        Default::default(),
        [Link::clean(Duration::from_micros(10)); 2],
        51,
    );
    let (c0, c1) = net.connect();
    (net, c0, c1)
}

fn data(dst: u64, dsn: u32, msg_len: u32, idx: u32, count: u32, payload: &[u8]) -> Vec<u8> {
    let hdr = DataHeader {
        dsn,
        msg_seq: 0,
        msg_len,
        frag_index: idx,
        frag_count: count,
        ack: 0,
        credit: 64,
    };
    let r = Repr::Data {
        flags: 0,
        dst,
        hdr,
        payload,
    };
    let mut b = vec![0; r.buffer_len()];
    r.emit(&mut b).unwrap();
    b
}

/// Feeds `bytes` to endpoint 1 and checks it was dropped for `reason`.
fn expect_drop(net: &mut Net, bytes: &[u8], reason: DropReason) {
    let before = net.eps[1].stats().drops.get(reason);
    let total = net.eps[1].stats().drops.total();
    let (now, from) = (net.now, net.addrs[0]);
    net.eps[1].handle_datagram(now, from, bytes);
    let drops = &net.eps[1].stats().drops;
    assert_eq!(
        drops.get(reason),
        before + 1,
        "expected {reason:?}, got {:?}",
        drops.nonzero()
    );
    assert_eq!(drops.total(), total + 1);
}

fn assert_nothing_delivered_and_still_works(net: &mut Net, c0: ConnId) {
    if let Some(e) = net.eps[1].poll_event() {
        panic!("hostile packet produced {e:?}");
    }
    net.eps[0].send(c0, Bytes::from_static(b"genuine")).unwrap();
    net.run_for(Duration::from_millis(2));
    let mut got = Vec::new();
    while let Some(e) = net.eps[1].poll_event() {
        got.push(e);
    }
    assert!(
        matches!(&got[..], [Event::Message { data, .. }] if *data == "genuine"),
        "{got:?}"
    );
}

#[test]
fn forged_connection_ids_are_dropped() {
    let (mut net, c0, c1) = setup();
    let id = c1.to_u64();
    // Right table slot, wrong random bits; a random id; the zero id.
    expect_drop(
        &mut net,
        &data(id ^ (1 << 40), 0, 5, 0, 1, b"forge"),
        DropReason::UnknownConnection,
    );
    expect_drop(
        &mut net,
        &data(0x1234_5678_9abc_def0, 0, 5, 0, 1, b"forge"),
        DropReason::UnknownConnection,
    );
    expect_drop(
        &mut net,
        &data(0, 0, 5, 0, 1, b"forge"),
        DropReason::Malformed,
    );
    assert_nothing_delivered_and_still_works(&mut net, c0);
}

#[test]
fn wrong_versions_unknown_kinds_and_truncated_headers_are_dropped() {
    let (mut net, c0, c1) = setup();
    let good = data(c1.to_u64(), 0, 5, 0, 1, b"bytes");
    for v in [0u8, 2, 255] {
        let mut b = good.clone();
        b[0] = v;
        expect_drop(&mut net, &b, DropReason::UnknownVersion);
    }
    for k in [0u8, 6, 200] {
        let mut b = good.clone();
        b[1] = k;
        expect_drop(&mut net, &b, DropReason::UnknownKind);
    }
    for cut in 0..40 {
        expect_drop(&mut net, &good[..cut], DropReason::Truncated);
    }
    // An ACK announcing more SACK words than it carries, or too many.
    let mut ack = vec![0u8; 24 + 8];
    Repr::Ack {
        flags: 0,
        dst: c1.to_u64(),
        ack: AckRepr {
            ack: 0,
            credit: 0,
            sack_len: 1,
            sack: [0; MAX_SACK_WORDS],
        },
    }
    .emit(&mut ack)
    .unwrap();
    ack[20] = 2;
    expect_drop(&mut net, &ack, DropReason::Malformed);
    ack[20] = 200;
    expect_drop(&mut net, &ack, DropReason::Malformed);
    // Oversized datagrams.
    expect_drop(
        &mut net,
        &vec![1u8; Config::default().max_datagram + 1],
        DropReason::Malformed,
    );
    assert_nothing_delivered_and_still_works(&mut net, c0);
}

#[test]
fn out_of_window_sequence_numbers_are_dropped() {
    let (mut net, c0, c1) = setup();
    let id = c1.to_u64();
    let window = Config::default().recv_window;
    expect_drop(
        &mut net,
        &data(id, window, 5, 0, 1, b"ahead"),
        DropReason::OutOfWindow,
    );
    expect_drop(
        &mut net,
        &data(id, window + 1_000_000, 5, 0, 1, b"ahead"),
        DropReason::OutOfWindow,
    );
    // Half the sequence space away: "before" the window, as old as can be.
    expect_drop(
        &mut net,
        &data(id, 1 << 31, 5, 0, 1, b"stale"),
        DropReason::Duplicate,
    );
    expect_drop(
        &mut net,
        &data(id, u32::MAX - 3, 5, 0, 1, b"stale"),
        DropReason::Duplicate,
    );
    assert_nothing_delivered_and_still_works(&mut net, c0);
}

#[test]
fn absurd_fragment_geometry_is_dropped() {
    let (mut net, c0, c1) = setup();
    let id = c1.to_u64();
    let frag = Config::default().max_payload() as u32;
    // A count that does not match the length.
    expect_drop(
        &mut net,
        &data(id, 0, 100, 0, u32::MAX, &[0; 100]),
        DropReason::Malformed,
    );
    expect_drop(
        &mut net,
        &data(id, 0, 100, 0, 2, &[0; 100]),
        DropReason::Malformed,
    );
    // A length beyond max_message (and the count that would go with it).
    let huge = u32::MAX;
    expect_drop(
        &mut net,
        &data(id, 0, huge, 0, huge.div_ceil(frag), &[0; 64]),
        DropReason::Malformed,
    );
    // Index not below count.
    expect_drop(
        &mut net,
        &data(id, 0, 100, 1, 1, &[0; 100]),
        DropReason::Malformed,
    );
    // A payload of the wrong size for its index.
    expect_drop(
        &mut net,
        &data(id, 0, 3 * frag, 0, 3, &[0; 10]),
        DropReason::Malformed,
    );
    // A max-size message whose first fragment sits near the window's end:
    // the whole message would not fit in the window.
    let w = Config::default().recv_window;
    let msg_len = Config::default().max_message as u32;
    let count = msg_len.div_ceil(frag);
    expect_drop(
        &mut net,
        &data(id, w - 10, msg_len, 0, count, &vec![0; frag as usize]),
        DropReason::OutOfWindow,
    );
    assert_eq!(net.eps[1].held_bytes(), 0, "nothing was allocated");
    assert_nothing_delivered_and_still_works(&mut net, c0);
}

#[test]
fn acks_of_unsent_data_are_dropped() {
    let (mut net, c0, c1) = setup();
    let _ = c1;
    // Endpoint 1 sent nothing on its connection: any ack > 0 is a lie.
    let ack = Repr::Ack {
        flags: 0,
        dst: c1.to_u64(),
        ack: AckRepr {
            ack: 1000,
            credit: 5000,
            sack_len: 0,
            sack: [0; MAX_SACK_WORDS],
        },
    };
    let mut b = vec![0; ack.buffer_len()];
    ack.emit(&mut b).unwrap();
    expect_drop(&mut net, &b, DropReason::AckOfUnsent);
    assert_nothing_delivered_and_still_works(&mut net, c0);
}

#[test]
fn a_fragment_of_a_message_starting_before_the_stream_disconnects_the_peer() {
    let (mut net, _c0, c1) = setup();
    let frag = Config::default().max_payload() as u32;
    // Fragment 2 of 3 at sequence number 0: its message would start at -2.
    expect_drop(
        &mut net,
        &data(c1.to_u64(), 0, 3 * frag, 2, 3, &vec![0; frag as usize]),
        DropReason::ProtocolViolation,
    );
    let e = net.eps[1].poll_event();
    assert_eq!(
        e,
        Some(Event::Closed {
            conn: c1,
            reason: CloseReason::ProtocolViolation { peer: net.addrs[0] },
            unacked_messages: 0,
        })
    );
    // The peer is told (CLOSE with the protocol code), and learns why.
    net.run_for(Duration::from_millis(1));
    let e = net.eps[0].poll_event();
    assert!(
        matches!(
            e,
            Some(Event::Closed {
                reason: CloseReason::ProtocolViolation { .. },
                ..
            })
        ),
        "{e:?}"
    );
}

/// A connection is killed, not stalled, by inconsistent framing: a forged
/// fragment that stayed would block the genuine ones for ever.
#[test]
fn a_peer_that_breaks_message_framing_is_disconnected_without_delivery() {
    let (mut net, _c0, c1) = setup();
    let id = c1.to_u64();
    let frag = Config::default().max_payload() as u32;
    // Fragment 1 of a 3-fragment message at sequence numbers 0..3, then a
    // fragment claiming a 2-fragment message at 1..3: overlapping messages.
    let (now, from) = (net.now, net.addrs[0]);
    net.eps[1].handle_datagram(
        now,
        from,
        &data(id, 1, 3 * frag, 1, 3, &vec![7; frag as usize]),
    );
    assert!(net.eps[1].held_bytes() > 0);
    expect_drop(
        &mut net,
        &data(id, 2, 2 * frag, 1, 2, &vec![7; frag as usize]),
        DropReason::ProtocolViolation,
    );
    let mut events = Vec::new();
    while let Some(e) = net.eps[1].poll_event() {
        events.push(e);
    }
    assert_eq!(
        events,
        vec![Event::Closed {
            conn: c1,
            reason: CloseReason::ProtocolViolation { peer: net.addrs[0] },
            unacked_messages: 0,
        }]
    );
    assert_eq!(net.eps[1].held_bytes(), 0, "the partial message was freed");
}
