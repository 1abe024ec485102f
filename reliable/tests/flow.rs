//! Specification: a receiver that does not take its messages stops the
//! sender through credits (`send` returns `WouldBlock`), with memory
//! bounded on both sides, and nothing accepted is ever dropped; taking the
//! messages resumes the flow.

mod common;

use std::time::Duration;

use common::{Link, Net, Stream, small_config};
use insane_reliable::wire::DATA_HEADER_LEN;
use insane_reliable::{DropReason, Event};

#[test]
fn a_receiver_that_stops_receiving_blocks_the_sender_with_bounded_memory_then_resumes() {
    let cfg = small_config();
    let window_bytes = cfg.recv_window as usize * (cfg.max_datagram - DATA_HEADER_LEN);
    let send_buffer = cfg.send_buffer;
    let mut net = Net::new(
        [cfg.clone(), cfg],
        [Link::clean(Duration::from_micros(10)); 2],
        21,
    );
    let (c0, _) = net.connect();
    let mut s = Stream::new(5, 4096, 400);
    // The receiving application is busy: it takes no messages for 20 ms.
    let t0 = net.now;
    while net.now - t0 < Duration::from_millis(20) {
        s.pump(&mut net.eps[0], c0);
        assert!(net.step());
        assert!(
            net.eps[1].held_bytes() <= window_bytes,
            "receiver holds {}",
            net.eps[1].held_bytes()
        );
        let unacked = net.eps[0].unacked_bytes(c0).unwrap();
        assert!(unacked <= send_buffer + 4096 + 64, "sender holds {unacked}");
    }
    let st = net.eps[0].conn_stats(c0).unwrap();
    eprintln!(
        "blocked: {st:?}\n receiver holds {} bytes in {} events",
        net.eps[1].held_bytes(),
        net.eps[1].pending_events()
    );
    assert!(
        s.pending.is_some() && st.would_block > 0,
        "send must have returned WouldBlock"
    );
    assert!(s.sent < s.count, "the sender is blocked before the end");
    assert_eq!(st.credit, 0, "credit exhausted");
    assert!(net.eps[1].held_bytes() > 0);
    assert_eq!(net.eps[1].stats().drops.get(DropReason::MemoryBudget), 0);
    assert_eq!(
        net.eps[1].stats().drops.get(DropReason::OutOfWindow),
        0,
        "the sender respects credit"
    );
    // Idle while blocked: only credit probes, backed off.
    assert!(st.pings_sent < 20, "probes {}", st.pings_sent);

    // The application catches up: everything arrives, in order, intact.
    let mut writable = 0;
    let t1 = net.now;
    while !s.done() {
        s.pump(&mut net.eps[0], c0);
        assert!(net.step());
        while let Some(e) = net.eps[1].poll_event() {
            if let Event::Message { data, .. } = e {
                s.check(&data);
            }
        }
        while let Some(e) = net.eps[0].poll_event() {
            if let Event::Writable { conn } = e {
                assert_eq!(conn, c0);
                writable += 1;
            }
        }
        assert!(net.now - t1 < Duration::from_secs(1));
    }
    assert!(writable > 0, "the sender was told it can send again");
    eprintln!("resumed: all {} messages in {:?}", s.count, net.now - t1);
}

#[test]
fn the_endpoint_receive_budget_bounds_memory_across_connections() {
    let mut cfg = small_config();
    cfg.recv_budget = cfg.max_message; // room for one max message in all
    let mut net = Net::new(
        [small_config(), cfg],
        [Link::clean(Duration::from_micros(10)); 2],
        22,
    );
    let (c0, c1) = net.connect();
    let c0b = net.eps[0].connect(net.addrs[1], net.now).unwrap();
    let mut a = Stream::new(1, 32 << 10, 30);
    let mut b = Stream::new(2, 32 << 10, 30);
    let budget = net.eps[1].config().recv_budget;
    let mut ready = false;
    let t0 = net.now;
    while net.now - t0 < Duration::from_millis(20) {
        if ready {
            a.pump(&mut net.eps[0], c0);
            b.pump(&mut net.eps[0], c0b);
        }
        assert!(net.step());
        while let Some(e) = net.eps[0].poll_event() {
            ready |= matches!(e, Event::Connected { conn, .. } if conn == c0b);
        }
        assert!(net.eps[1].held_bytes() <= budget);
    }
    assert!(
        net.eps[1].stats().drops.get(DropReason::MemoryBudget) > 0,
        "the budget was hit"
    );
    // Taking the messages frees the budget: both streams complete.
    let mut conns = vec![c1];
    while !(a.done() && b.done()) {
        a.pump(&mut net.eps[0], c0);
        b.pump(&mut net.eps[0], c0b);
        assert!(net.step());
        while let Some(e) = net.eps[1].poll_event() {
            match e {
                Event::Accepted { conn, .. } => conns.push(conn),
                Event::Message { conn, data } => {
                    if conns.first() == Some(&conn) {
                        a.check(&data)
                    } else {
                        b.check(&data)
                    }
                }
                e => panic!("{e:?}"),
            }
        }
        assert!(net.eps[1].held_bytes() <= budget);
        assert!(net.now - t0 < Duration::from_secs(5));
    }
}

/// Credit returns as fast as the receiver consumes: a stream many windows
/// long flows at a window per round trip, without waiting for probes.
#[test]
fn credit_returned_by_a_prompt_receiver_keeps_the_stream_flowing() {
    let cfg = small_config();
    let window = cfg.recv_window as u64;
    let mut net = Net::new(
        [cfg.clone(), cfg],
        [Link::clean(Duration::from_micros(10)); 2],
        23,
    );
    let (c0, _) = net.connect();
    let mut s = Stream::new(9, 1000, 20 * window);
    let t0 = net.now;
    while !s.done() {
        s.pump(&mut net.eps[0], c0);
        assert!(net.step());
        while let Some(e) = net.eps[1].poll_event() {
            if let Event::Message { data, .. } = e {
                s.check(&data);
            }
        }
    }
    let st = net.eps[0].conn_stats(c0).unwrap();
    let took = net.now - t0;
    eprintln!("{} messages, 20 windows, in {took:?}: {st:?}", s.count);
    assert_eq!(st.pings_sent, 0, "no credit probe needed");
    // 20 windows at one window per 20 µs round trip, with slack.
    assert!(took < Duration::from_micros(20 * 20 * 2), "took {took:?}");
}
