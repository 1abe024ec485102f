//! Specification: connections are opened by a handshake that rejects
//! duplicates and stale copies, stay open while idle thanks to keepalives,
//! fail with an error naming the peer when it dies or restarts, close in
//! order, and are refused when the server is full or not accepting.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Link, Net, Stream};
use insane_reliable::wire::{Kind, Packet};
use insane_reliable::{CloseReason, Config, DropReason, Endpoint, Event};

const PATH: Duration = Duration::from_micros(10);

fn net(seed: u64) -> Net {
    Net::new(Default::default(), [Link::clean(PATH); 2], seed)
}

fn closed(ep: &mut Endpoint) -> Vec<(insane_reliable::ConnId, CloseReason)> {
    let mut v = Vec::new();
    while let Some(e) = ep.poll_event() {
        if let Event::Closed { conn, reason, .. } = e {
            v.push((conn, reason));
        }
    }
    v
}

#[test]
fn a_dead_peer_fails_the_connection_within_the_idle_timeout_naming_the_peer() {
    let mut net = net(31);
    let (c0, _) = net.connect();
    net.down[1] = true;
    let t0 = net.now;
    net.eps[0].send(c0, Bytes::from_static(b"anyone?")).unwrap();
    let idle = Config::default().idle_timeout;
    let mut got = None;
    while got.is_none() {
        assert!(net.step());
        got = closed(&mut net.eps[0]).pop();
        assert!(
            net.now - t0 <= idle + Duration::from_millis(1),
            "not detected within the idle timeout"
        );
    }
    let (conn, reason) = got.unwrap();
    assert_eq!(conn, c0);
    assert_eq!(reason, CloseReason::TimedOut { peer: net.addrs[1] });
    assert!(reason.to_string().contains("10.0.0.2:7000"), "{reason}");
    assert_eq!(net.eps[0].stats().timeouts, 1);
    assert_eq!(net.eps[0].connection_count(), 0);
}

#[test]
fn an_idle_connection_to_a_dead_peer_fails_too() {
    let mut net = net(32);
    let (c0, _) = net.connect();
    net.down[1] = true;
    let t0 = net.now;
    let mut got = Vec::new();
    while got.is_empty() {
        assert!(net.step());
        got = closed(&mut net.eps[0]);
    }
    assert_eq!(
        got,
        vec![(c0, CloseReason::TimedOut { peer: net.addrs[1] })]
    );
    assert!(net.now - t0 <= Config::default().idle_timeout + Duration::from_millis(1));
}

#[test]
fn keepalives_keep_an_idle_live_connection_open() {
    let mut net = net(33);
    let (c0, c1) = net.connect();
    net.run_for(Config::default().idle_timeout * 5);
    assert!(closed(&mut net.eps[0]).is_empty() && closed(&mut net.eps[1]).is_empty());
    let s = net.eps[0].conn_stats(c0).unwrap();
    assert!(s.pings_sent > 0, "{s:?}");
    assert!(net.eps[1].conn_stats(c1).is_some());
    // And it still carries messages.
    net.eps[0]
        .send(c0, Bytes::from_static(b"still here"))
        .unwrap();
    net.run_for(Duration::from_millis(1));
    assert!(matches!(
        net.eps[1].poll_event(),
        Some(Event::Message { .. })
    ));
}

#[test]
fn a_restarted_client_is_detected_by_the_server() {
    let mut net = net(34);
    let (_, c1) = net.connect();
    // The client's process restarts: a new endpoint (new epoch) on the same
    // address connects again.
    net.eps[0] = Endpoint::new(Config::default(), 999).unwrap();
    let (_, new1) = net.connect_collecting();
    let closes: Vec<_> = net.take_closed(1);
    assert_eq!(
        closes,
        vec![(c1, CloseReason::PeerRestarted { peer: net.addrs[0] })]
    );
    assert_ne!(new1, c1);
    assert_eq!(net.eps[1].stats().peer_restarts, 1);
    assert_eq!(net.eps[1].connection_count(), 1);
}

#[test]
fn a_restarted_server_is_detected_by_the_client() {
    let mut net = net(35);
    let (c0, _) = net.connect();
    net.eps[1] = Endpoint::new(Config::default(), 998).unwrap();
    // Traffic on the old connection reaches an endpoint that never knew it.
    net.eps[0].send(c0, Bytes::from_static(b"lost")).unwrap();
    net.run_for(Duration::from_micros(100));
    assert!(net.eps[1].stats().drops.get(DropReason::UnknownConnection) > 0);
    // A new connection to the same address learns the new epoch.
    let (new0, _) = net.connect_collecting();
    let closes = net.take_closed(0);
    assert_eq!(
        closes,
        vec![(c0, CloseReason::PeerRestarted { peer: net.addrs[1] })]
    );
    assert_ne!(new0, c0);
}

#[test]
fn duplicate_and_stale_handshakes_open_no_extra_connection() {
    let mut net = net(36);
    // Every datagram doubled while connecting: duplicate INITs and ACCEPTs.
    net.links = [Link {
        dup: 1.0,
        ..Link::clean(PATH)
    }; 2];
    let inits = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let keep = inits.clone();
    net.filter = Some(Box::new(move |_, b| {
        if Packet::new_checked(b).is_ok_and(|p| p.kind() == Some(Kind::Init)) {
            keep.borrow_mut().push(b.to_vec());
        }
        true
    }));
    let (c0, _) = net.connect();
    net.run_for(Duration::from_millis(1));
    assert_eq!(net.eps[1].connection_count(), 1);
    assert!(net.eps[1].stats().drops.get(DropReason::Duplicate) > 0);
    // The client closes; later a stale copy of its INIT arrives.
    net.links = [Link::clean(PATH); 2];
    net.eps[0].close(c0, net.now);
    net.run_for(Duration::from_millis(2));
    assert_eq!(net.eps[1].connection_count(), 0);
    let stale = inits.borrow()[0].clone();
    let (now, from) = (net.now, net.addrs[0]);
    net.eps[1].handle_datagram(now, from, &stale);
    // The server answers, but the client does not confirm a connection it
    // does not have: no connection is ever announced and it expires.
    net.run_for(Config::default().idle_timeout + Duration::from_millis(10));
    while let Some(e) = net.eps[1].poll_event() {
        assert!(
            !matches!(e, Event::Accepted { .. }),
            "stale INIT accepted: {e:?}"
        );
    }
    assert_eq!(net.eps[1].connection_count(), 0);
    assert_eq!(net.eps[1].stats().half_open_expired, 1);
}

#[test]
fn close_is_orderly_every_message_first() {
    let mut net = net(37);
    let (c0, _) = net.connect();
    let mut s = Stream::new(3, 100_000, 20);
    s.pump(&mut net.eps[0], c0);
    assert_eq!(s.sent, 20);
    close_in_order(&mut net, c0, &mut s);
}

/// A client that sends and closes before its handshake completed (an
/// application that sends and drops its endpoint at once) still delivers
/// every message: the close waits for the handshake and the messages.
#[test]
fn a_close_during_the_handshake_delivers_the_queued_messages_first() {
    let mut net = net(38);
    let c0 = net.eps[0].connect(net.addrs[1], net.now).unwrap();
    let mut s = Stream::new(5, 5_000, 10);
    s.pump(&mut net.eps[0], c0);
    assert_eq!(s.sent, 10);
    assert_eq!(net.eps[0].unacked_messages(c0), Some(10));
    close_in_order(&mut net, c0, &mut s);
}

/// Closes endpoint 0's connection `c0`, whose messages `s` sent, and
/// checks the ordered close: no send is taken after it; endpoint 1 gets
/// every message, then its connection ends `PeerClosed`; endpoint 0's
/// ends `Local`; neither lost a message.
fn close_in_order(net: &mut Net, c0: insane_reliable::ConnId, s: &mut Stream) {
    net.eps[0].close(c0, net.now);
    assert!(
        net.eps[0].send(c0, Bytes::new()).is_err(),
        "no sends after close"
    );
    let (mut closed0, mut closed1) = (None, None);
    while closed0.is_none() || closed1.is_none() {
        assert!(net.step());
        for (i, closed) in [(0, &mut closed0), (1, &mut closed1)] {
            while let Some(e) = net.eps[i].poll_event() {
                match e {
                    Event::Message { data, .. } if i == 1 => s.check(&data),
                    Event::Closed {
                        reason,
                        unacked_messages,
                        ..
                    } => {
                        assert!(s.done(), "closed before every message arrived");
                        assert_eq!(unacked_messages, 0, "endpoint {i} lost messages");
                        *closed = Some(reason);
                    }
                    Event::Accepted { .. } | Event::Connected { .. } => {}
                    e => panic!("endpoint {i}: {e:?}"),
                }
            }
        }
    }
    assert_eq!(closed0, Some(CloseReason::Local));
    assert_eq!(
        closed1,
        Some(CloseReason::PeerClosed { peer: net.addrs[0] })
    );
    assert_eq!(
        net.eps[0].connection_count() + net.eps[1].connection_count(),
        0
    );
}

/// A side that closes right after receiving acknowledges what it
/// received before its CLOSE: the peer's last message does not look
/// lost.
#[test]
fn a_close_right_after_receiving_acknowledges_before_closing() {
    let mut net = net(40);
    let (c0, c1) = net.connect();
    net.eps[1].send(c1, Bytes::from_static(b"last")).unwrap();
    // The message reaches endpoint 0, which has not answered it yet...
    while net.eps[0].pending_events() == 0 {
        assert!(net.step());
    }
    // ...and closes at once (it has nothing of its own to deliver).
    net.eps[0].close(c0, net.now);
    let mut closed1 = None;
    while closed1.is_none() {
        assert!(net.step());
        while let Some(e) = net.eps[1].poll_event() {
            if let Event::Closed {
                reason,
                unacked_messages,
                ..
            } = e
            {
                closed1 = Some((reason, unacked_messages));
            }
        }
    }
    assert_eq!(
        closed1,
        Some((CloseReason::PeerClosed { peer: net.addrs[0] }, 0))
    );
}

/// Messages lost with a connection are counted, never silent: a close
/// toward a dead peer ends by the idle timeout, and an abort ends at
/// once; both report the messages the peer never acknowledged.
#[test]
fn a_connection_that_ends_unacknowledged_reports_how_many_messages_were_lost() {
    for abort in [false, true] {
        let mut net = net(39);
        let (c0, _) = net.connect();
        net.down[1] = true;
        let mut s = Stream::new(6, 3_000, 7);
        s.pump(&mut net.eps[0], c0);
        net.eps[0].close(c0, net.now);
        if abort {
            net.eps[0].abort(c0);
        }
        let mut got = None;
        loop {
            while let Some(e) = net.eps[0].poll_event() {
                if let Event::Closed {
                    reason,
                    unacked_messages,
                    ..
                } = e
                {
                    got = Some((reason, unacked_messages));
                }
            }
            if got.is_some() {
                break;
            }
            assert!(net.step());
        }
        let peer = net.addrs[1];
        let want = if abort {
            CloseReason::Aborted { peer }
        } else {
            CloseReason::TimedOut { peer }
        };
        assert_eq!(got, Some((want, 7)));
        assert_eq!(net.eps[0].connection_count(), 0);
    }
}

#[test]
fn a_full_or_closed_server_refuses_connections() {
    let server = Config {
        max_connections: 1,
        ..Config::default()
    };
    let mut net = Net::new([Config::default(), server], [Link::clean(PATH); 2], 38);
    net.connect();
    let extra = net.eps[0].connect(net.addrs[1], net.now).unwrap();
    net.run_for(Duration::from_millis(1));
    assert_eq!(
        closed(&mut net.eps[0]),
        vec![(extra, CloseReason::Refused { peer: net.addrs[1] })]
    );
    assert_eq!(
        net.eps[1].stats().drops.get(DropReason::TooManyConnections),
        1
    );

    let server = Config {
        accept_incoming: false,
        ..Config::default()
    };
    let mut net = Net::new([Config::default(), server], [Link::clean(PATH); 2], 39);
    let c = net.eps[0].connect(net.addrs[1], net.now).unwrap();
    net.run_for(Duration::from_millis(1));
    assert_eq!(
        closed(&mut net.eps[0]),
        vec![(c, CloseReason::Refused { peer: net.addrs[1] })]
    );
}

#[test]
fn a_message_too_large_is_refused_clearly() {
    let mut net = net(40);
    let (c0, _) = net.connect();
    let max = Config::default().max_message;
    let err = net.eps[0]
        .send(c0, Bytes::from(vec![0; max + 1]))
        .unwrap_err();
    assert_eq!(
        err,
        insane_reliable::SendError::TooLarge { len: max + 1, max }
    );
    assert!(err.to_string().contains("exceeds"));
}
