//! Prints the cost per message of 64-byte messages through two endpoints in
//! one thread (no network: datagrams are handed over directly), sender and
//! receiver work included: `send`, `poll_transmit` (header + copy),
//! `handle_datagram` (parse, ack, deliver), `poll_event`, and the acks back.
//!
//! `cargo run --release -p insane-reliable --example ns_per_message`
//! No assertion on time: it is a measurement.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use insane_reliable::{Config, Endpoint, Event};

fn main() {
    let a_addr: SocketAddr = "10.0.0.1:7000".parse().unwrap();
    let b_addr: SocketAddr = "10.0.0.2:7000".parse().unwrap();
    let mut a = Endpoint::new(Config::default(), 1).unwrap();
    let mut b = Endpoint::new(Config::default(), 2).unwrap();
    let start = Instant::now();
    let mut now = start;
    let conn = a.connect(b_addr, now).unwrap();
    let mut buf = vec![0u8; 2048];
    let payload = Bytes::from(vec![0x5a; 64]);
    let batch = 32;

    let mut b_conn = None;
    let mut run = |messages: u64, now: &mut Instant| -> (u64, u64) {
        let (mut sent, mut received, mut datagrams) = (0u64, 0u64, 0u64);
        while received < messages {
            // A batch from the application, as a poll loop would see it.
            for _ in 0..batch {
                if sent < messages && a.send(conn, payload.clone()).is_ok() {
                    sent += 1;
                }
            }
            while let Some(t) = a.poll_transmit(*now, &mut buf) {
                b.handle_datagram(*now, a_addr, &buf[..t.len]);
                datagrams += 1;
            }
            while let Some(e) = b.poll_event() {
                match e {
                    Event::Message { data, .. } => {
                        debug_assert_eq!(data.len(), 64);
                        received += 1;
                    }
                    Event::Accepted { conn, .. } => b_conn = Some(conn),
                    _ => {}
                }
            }
            while let Some(t) = b.poll_transmit(*now, &mut buf) {
                a.handle_datagram(*now, b_addr, &buf[..t.len]);
                datagrams += 1;
            }
            while a.poll_event().is_some() {}
            *now += Duration::from_nanos(500);
            a.handle_timeout(*now);
            b.handle_timeout(*now);
        }
        (received, datagrams)
    };
    run(10_000, &mut now); // handshake and warm-up
    let n = 2_000_000;
    let t0 = Instant::now();
    let (received, datagrams) = run(n, &mut now);
    let dt = t0.elapsed();
    let s = a.conn_stats(conn).unwrap();
    let acks = b_conn
        .and_then(|c| b.conn_stats(c))
        .map_or(0, |s| s.acks_sent);
    println!(
        "{received} messages of 64 B in {dt:?}: {:.0} ns/message ({:.2} datagrams/message, batch {batch}); \
         retransmitted {}, cwnd {}, acks {acks}",
        dt.as_nanos() as f64 / received as f64,
        datagrams as f64 / received as f64,
        s.retransmitted,
        s.cwnd
    );
}
