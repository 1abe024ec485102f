//! Fuzz target: arbitrary datagrams into an endpoint that holds an
//! established connection (server side) and one in its handshake (client
//! side).
//!
//! The input is split into datagrams: each starts with a control byte
//! (bits 0..2: which 8-byte id to patch in at offset 4, so the fuzzer
//! reaches live connections; bit 3: advance the clock 100 µs and run the
//! timers) and a length byte. Checked after each datagram: no panic, held
//! memory within the granted credit, every event coherent (messages only
//! on the live connection), every transmitted datagram parses.

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use insane_reliable::wire::{Packet, Repr};
use insane_reliable::{Config, Endpoint, Event};
use libfuzzer_sys::fuzz_target;

fn config() -> Config {
    Config { max_message: 32 << 10, recv_window: 64, recv_budget: 256 << 10, send_buffer: 64 << 10, ..Config::default() }
}

fuzz_target!(|data: &[u8]| {
    let a_addr: SocketAddr = "10.0.0.1:7000".parse().unwrap();
    let b_addr: SocketAddr = "10.0.0.2:7000".parse().unwrap();
    let mut a = Endpoint::new(config(), 1).unwrap();
    let mut b = Endpoint::new(config(), 2).unwrap();
    let mut now = Instant::now();
    let mut buf = vec![0u8; 2048];
    // Establish a → b, then queue data on both sides.
    let ca = a.connect(b_addr, now).unwrap();
    let mut cb = None;
    for _ in 0..4 {
        while let Some(t) = a.poll_transmit(now, &mut buf) {
            b.handle_datagram(now, a_addr, &buf[..t.len]);
        }
        while let Some(t) = b.poll_transmit(now, &mut buf) {
            a.handle_datagram(now, b_addr, &buf[..t.len]);
        }
        while let Some(e) = b.poll_event() {
            if let Event::Accepted { conn, .. } = e {
                cb = Some(conn);
            }
        }
    }
    let cb = cb.expect("handshake");
    let pending = b.connect(a_addr, now).unwrap();
    let _ = b.send(cb, Bytes::from_static(b"reply"));
    let _ = a.send(ca, Bytes::from_static(b"hello"));
    let ids = [cb.to_u64(), pending.to_u64(), 0, 1, u64::MAX, cb.to_u64() ^ 1 << 30, 0, 0];
    let bound = 64 * config().max_payload();

    let mut rest = data;
    while rest.len() >= 2 {
        let (ctl, len) = (rest[0], rest[1] as usize);
        rest = &rest[2..];
        let n = len.min(rest.len());
        let mut d = rest[..n].to_vec();
        rest = &rest[n..];
        let which = (ctl & 7) as usize;
        if which < 6 && d.len() >= 12 {
            d[4..12].copy_from_slice(&ids[which].to_be_bytes());
        }
        if ctl & 8 != 0 {
            now += Duration::from_micros(100);
            b.handle_timeout(now);
        }
        b.handle_datagram(now, a_addr, &d);
        assert!(b.held_bytes() <= bound);
        while let Some(t) = b.poll_transmit(now, &mut buf) {
            let p = Packet::new_checked(&buf[..t.len]).expect("sent packet checks");
            Repr::parse(&p).expect("sent packet parses");
        }
        while let Some(e) = b.poll_event() {
            if let Event::Message { conn, .. } = e {
                assert_eq!(conn, cb);
            }
        }
    }
});
