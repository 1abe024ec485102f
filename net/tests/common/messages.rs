//! Numbered test messages for the reliable-delivery tests: a seeded size
//! generator, and a fill pattern that makes a message's index, length
//! and every byte checkable on arrival (order, loss, duplication and
//! corruption all show), sent and received through QoS endpoints.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use insane_net::qos::{Endpoint, Qos, RxBuf, TransportConfig};
use insane_runtime::time::timeout;

/// `latency=critical, reliable, resources=poll`: the QoS of the reliable
/// datagram tests.
pub fn critical_reliable() -> Qos {
    Qos::builder().critical().reliable().poll().build()
}

/// Two critical reliable endpoints on loopback with `config`, bound one
/// after the other.
pub async fn reliable_pair(config: TransportConfig) -> (Endpoint, Endpoint) {
    let bind = || Endpoint::bind_with("127.0.0.1:0", critical_reliable(), config);
    let a = bind().await.unwrap();
    let b = bind().await.unwrap();
    (a, b)
}

/// A deterministic xorshift64* generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Log-uniform from 1 to `2^max_bits` bytes.
    pub fn size(&mut self, max_bits: u64) -> usize {
        let bits = self.below(max_bits + 1);
        1 + self.below(1 << bits) as usize
    }
}

/// Byte `j` of message `i` from sender `tag`.
pub fn byte(tag: u8, i: usize, j: usize) -> u8 {
    (i.wrapping_mul(131) ^ j.wrapping_mul(7) ^ (j >> 8)) as u8 ^ tag
}

/// Message `i` of `len` bytes from sender `tag`: its index in the first 4
/// bytes (when there is room), then the pattern.
pub fn fill(buf: &mut [u8], tag: u8, i: usize) {
    for (j, b) in buf.iter_mut().enumerate() {
        *b = byte(tag, i, j);
    }
    let n = buf.len().min(4);
    buf[..n].copy_from_slice(&(i as u32).to_le_bytes()[..n]);
}

/// Panics unless `msg` is message `i` of `len` bytes from `tag`.
pub fn check(msg: &[u8], tag: u8, i: usize, len: usize, what: &str) {
    assert_eq!(msg.len(), len, "{what}: message {i} has the wrong length");
    let n = len.min(4);
    assert_eq!(
        &msg[..n],
        &(i as u32).to_le_bytes()[..n],
        "{what}: message {i} is out of order (or another message)"
    );
    if let Some(j) = (n..len).find(|&j| msg[j] != byte(tag, i, j)) {
        panic!("{what}: message {i} of {len} bytes differs at byte {j}");
    }
}

/// The message count of a volume test: `ci` by default, or
/// `INSANE_RELIABLE_MESSAGES` for a long run (e.g. `100000`).
pub fn count(ci: usize) -> usize {
    std::env::var("INSANE_RELIABLE_MESSAGES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(ci)
}

/// Sends message `i` of `len` bytes from `tag` to `to`.
pub async fn send_msg(
    ep: &Endpoint,
    to: SocketAddr,
    tag: u8,
    i: usize,
    len: usize,
) -> io::Result<()> {
    let mut buf = ep.buffer().await;
    buf.resize(len, 0).unwrap();
    fill(&mut buf, tag, i);
    ep.send_to(buf, to).await
}

/// The next message or error of `ep`; panics (with the transport's
/// counters) when nothing comes within `secs` seconds.
pub async fn recv_within(ep: &Endpoint, secs: u64, what: &str) -> io::Result<RxBuf> {
    timeout(Duration::from_secs(secs), ep.recv())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{what}: nothing received within {secs} s; {}",
                ep.transport().diagnostics().unwrap_or_default()
            )
        })
}
