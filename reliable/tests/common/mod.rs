//! A deterministic network simulator for two endpoints: a simulated clock
//! and, per direction, a seeded link with delay, jitter, loss, reordering,
//! duplication and corruption.
//!
//! Corruption flips one bit of the datagram; the simulator then checks the
//! datagram against the 16-bit Internet checksum computed before the flip,
//! as the UDP checksum does on every path insane uses (the kernel, and
//! insane-stack's receive path). A one-bit flip never passes it, so
//! corrupted datagrams are dropped before the endpoint, as on a real host.
//! Hostile bytes reaching the endpoint are the business of `hostile.rs`,
//! the proptest and the fuzz target.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use insane_reliable::{CloseReason, Config, ConnId, Endpoint, Event, SendError};

/// One direction of the simulated path.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// One-way delay.
    pub delay: Duration,
    /// Uniform extra delay in `0..jitter` (does not reorder by itself
    /// more than jitter allows).
    pub jitter: Duration,
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delayed by an extra `2..6 × delay`
    /// (reordered behind later ones).
    pub reorder: f64,
    /// Probability a datagram is delivered twice.
    pub dup: f64,
    /// Probability one bit of a datagram is flipped.
    pub corrupt: f64,
}

impl Link {
    /// A clean path with `delay` one way.
    pub fn clean(delay: Duration) -> Link {
        Link {
            delay,
            jitter: Duration::ZERO,
            loss: 0.0,
            reorder: 0.0,
            dup: 0.0,
            corrupt: 0.0,
        }
    }
}

/// What the links did.
#[derive(Debug, Default, Clone)]
pub struct NetStats {
    pub sent: u64,
    pub lost: u64,
    pub reordered: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub filtered: u64,
    pub delivered: u64,
}

struct InFlight {
    at: Instant,
    seq: u64,
    to: usize,
    bytes: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Decides per datagram (from side, bytes) whether it passes; `false` drops it.
pub type Filter = Box<dyn FnMut(usize, &[u8]) -> bool>;

/// Two endpoints (index 0 and 1) joined by two links.
pub struct Net {
    pub now: Instant,
    pub start: Instant,
    pub eps: [Endpoint; 2],
    pub addrs: [SocketAddr; 2],
    /// `links[i]`: from endpoint i to the other.
    pub links: [Link; 2],
    /// A side that is down neither sends, receives nor runs timers.
    pub down: [bool; 2],
    pub filter: Option<Filter>,
    /// `Some(n)`: datagrams are handed over owned
    /// (`handle_datagram_owned`, `n` datagrams lendable), so messages may
    /// be kept as their datagrams; `None`: borrowed (`handle_datagram`).
    pub lend: Option<usize>,
    pub closed: [Vec<(ConnId, CloseReason)>; 2],
    pub stats: NetStats,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    rng: fastrand::Rng,
    buf: Vec<u8>,
}

pub fn addr(i: usize) -> SocketAddr {
    format!("10.0.0.{}:7000", i + 1).parse().unwrap()
}

fn inet_sum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        s += w as u32;
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

impl Net {
    pub fn new(cfg: [Config; 2], links: [Link; 2], seed: u64) -> Net {
        let [c0, c1] = cfg;
        let start = Instant::now();
        let max = c0.max_datagram.max(c1.max_datagram);
        Net {
            now: start,
            start,
            eps: [
                Endpoint::new(c0, seed ^ 0xa5a5).unwrap(),
                Endpoint::new(c1, seed ^ 0x5a5a_0000).unwrap(),
            ],
            addrs: [addr(0), addr(1)],
            links,
            down: [false; 2],
            filter: None,
            lend: None,
            closed: [Vec::new(), Vec::new()],
            stats: NetStats::default(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: fastrand::Rng::with_seed(seed),
            buf: vec![0; max],
        }
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Moves every datagram the endpoints have to send onto the links.
    pub fn flush(&mut self) {
        for from in 0..2 {
            if self.down[from] {
                continue;
            }
            while let Some(t) = self.eps[from].poll_transmit(self.now, &mut self.buf) {
                assert_eq!(t.to, self.addrs[1 - from], "datagram to an unknown address");
                let bytes = self.buf[..t.len].to_vec();
                self.stats.sent += 1;
                if let Some(f) = self.filter.as_mut()
                    && !f(from, &bytes)
                {
                    self.stats.filtered += 1;
                    continue;
                }
                let link = self.links[from];
                if self.rng.f64() < link.loss {
                    self.stats.lost += 1;
                    continue;
                }
                let copies = if self.rng.f64() < link.dup { 2 } else { 1 };
                if copies == 2 {
                    self.stats.duplicated += 1;
                }
                for _ in 0..copies {
                    let mut b = bytes.clone();
                    if self.rng.f64() < link.corrupt {
                        self.stats.corrupted += 1;
                        let sum = inet_sum(&b);
                        let bit = self.rng.usize(..b.len() * 8);
                        b[bit / 8] ^= 1 << (bit % 8);
                        if inet_sum(&b) != sum {
                            continue; // the UDP checksum rejects it
                        }
                    }
                    let mut at = self.now + link.delay;
                    if !link.jitter.is_zero() {
                        at += link.jitter.mul_f64(self.rng.f64());
                    }
                    if self.rng.f64() < link.reorder {
                        self.stats.reordered += 1;
                        at += link.delay.mul_f64(2.0 + 4.0 * self.rng.f64());
                    }
                    self.seq += 1;
                    self.queue.push(Reverse(InFlight {
                        at,
                        seq: self.seq,
                        to: 1 - from,
                        bytes: b,
                    }));
                }
            }
        }
    }

    /// Flushes, then advances the clock to the next arrival or timer and
    /// runs it. Returns false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.flush();
        let mut next = self.queue.peek().map(|r| r.0.at);
        for i in 0..2 {
            if !self.down[i]
                && let Some(t) = self.eps[i].poll_timeout()
            {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        let Some(t) = next else { return false };
        self.now = self.now.max(t);
        while self.queue.peek().is_some_and(|r| r.0.at <= self.now) {
            let Reverse(p) = self.queue.pop().unwrap();
            if self.down[p.to] {
                continue;
            }
            self.stats.delivered += 1;
            let from = self.addrs[1 - p.to];
            match self.lend {
                Some(n) => {
                    let d = bytes::Bytes::from(p.bytes);
                    self.eps[p.to].handle_datagram_owned(self.now, from, &d, n);
                }
                None => self.eps[p.to].handle_datagram(self.now, from, &p.bytes),
            }
        }
        for i in 0..2 {
            if !self.down[i] {
                self.eps[i].handle_timeout(self.now);
            }
        }
        true
    }

    /// Steps until `until` simulated time has passed (or nothing is left).
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            if !self.step() {
                break;
            }
            self.flush();
            let next = self.queue.peek().map(|r| r.0.at);
            if next.is_none_or(|n| n > end) {
                let t0 = self.eps[0].poll_timeout();
                let t1 = self.eps[1].poll_timeout();
                if [t0, t1].iter().flatten().all(|t| *t > end) {
                    self.now = end;
                    break;
                }
            }
        }
    }

    /// Connects 0 → 1 and runs until both sides know; returns (conn at 0,
    /// conn at 1). Other events are kept for nobody (none expected).
    pub fn connect(&mut self) -> (ConnId, ConnId) {
        let c0 = self.eps[0].connect(self.addrs[1], self.now).unwrap();
        let (mut up0, mut c1) = (false, None);
        for _ in 0..1000 {
            self.step();
            while let Some(e) = self.eps[0].poll_event() {
                match e {
                    Event::Connected { conn, .. } if conn == c0 => up0 = true,
                    e => panic!("unexpected event at 0: {e:?}"),
                }
            }
            while let Some(e) = self.eps[1].poll_event() {
                match e {
                    Event::Accepted { conn, peer } => {
                        assert_eq!(peer, self.addrs[0]);
                        c1 = Some(conn)
                    }
                    e => panic!("unexpected event at 1: {e:?}"),
                }
            }
            if up0 && let Some(c1) = c1 {
                return (c0, c1);
            }
        }
        panic!("handshake did not complete");
    }
}

impl Net {
    /// Connects 0 → 1 like `connect`, keeping other events (closes) for
    /// `take_closed`.
    pub fn connect_collecting(&mut self) -> (ConnId, ConnId) {
        let c0 = self.eps[0].connect(self.addrs[1], self.now).unwrap();
        let (mut up0, mut c1) = (false, None);
        for _ in 0..1000 {
            self.step();
            for i in 0..2 {
                while let Some(e) = self.eps[i].poll_event() {
                    match e {
                        Event::Connected { conn, .. } if i == 0 && conn == c0 => up0 = true,
                        Event::Accepted { conn, .. } if i == 1 => c1 = Some(conn),
                        Event::Closed { conn, reason, .. } => self.closed[i].push((conn, reason)),
                        e => panic!("unexpected event at {i}: {e:?}"),
                    }
                }
            }
            if up0 && let Some(c1) = c1 {
                return (c0, c1);
            }
        }
        panic!("handshake did not complete");
    }

    /// Closes seen by `connect_collecting` at side `i`.
    pub fn take_closed(&mut self, i: usize) -> Vec<(ConnId, CloseReason)> {
        std::mem::take(&mut self.closed[i])
    }
}

/// Deterministic message `i` of a workload: size log-uniform in
/// `1..=max`, bytes from a seeded generator.
pub fn message(seed: u64, i: u64, max: usize) -> Bytes {
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i);
    let ln_max = (max as f64).ln();
    let len = ((rng.f64() * ln_max).exp() as usize).clamp(1, max);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    Bytes::from(v)
}

/// One direction of a transfer: what was sent and what arrived.
pub struct Stream {
    pub seed: u64,
    pub max: usize,
    pub count: u64,
    pub sent: u64,
    pub received: u64,
    pub bytes: u64,
    pub pending: Option<Bytes>,
}

impl Stream {
    pub fn new(seed: u64, max: usize, count: u64) -> Stream {
        Stream {
            seed,
            max,
            count,
            sent: 0,
            received: 0,
            bytes: 0,
            pending: None,
        }
    }

    /// Sends as many messages as the endpoint takes.
    pub fn pump(&mut self, ep: &mut Endpoint, conn: ConnId) {
        while self.sent < self.count {
            let m = self
                .pending
                .take()
                .unwrap_or_else(|| message(self.seed, self.sent, self.max));
            match ep.send(conn, m.clone()) {
                Ok(()) => {
                    self.bytes += m.len() as u64;
                    self.sent += 1;
                }
                Err(SendError::WouldBlock) => {
                    self.pending = Some(m);
                    return;
                }
                Err(e) => panic!("send failed: {e}"),
            }
        }
    }

    /// Checks a received message: the next one, intact.
    pub fn check(&mut self, data: &[u8]) {
        assert!(
            self.received < self.count,
            "message {} was never sent",
            self.received
        );
        let want = message(self.seed, self.received, self.max);
        assert_eq!(data.len(), want.len(), "message {} length", self.received);
        assert!(
            data == &want[..],
            "message {} corrupted or out of order",
            self.received
        );
        self.received += 1;
    }

    pub fn done(&self) -> bool {
        self.received == self.count
    }
}

/// Small windows and buffers for flow-control tests.
pub fn small_config() -> Config {
    Config {
        max_message: 32 << 10,
        recv_window: 64,
        recv_budget: 256 << 10,
        send_buffer: 64 << 10,
        ..Config::default()
    }
}
