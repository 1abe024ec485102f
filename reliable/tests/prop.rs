//! Property: any sequence of datagrams (random bytes, mutated packets,
//! well-formed packets with random fields, on the right or a forged
//! connection id) fed to an endpoint never panics, never delivers a message
//! that was not sent whole, and never holds more memory than the credit it
//! granted.

mod common;

use std::time::Duration;

use common::{Link, Net, small_config};
use insane_reliable::wire::{AckRepr, DataHeader, Handshake, MAX_SACK_WORDS, Repr};
use insane_reliable::{Event, wire::DATA_HEADER_LEN};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Raw(Vec<u8>),
    Data {
        dsn: u32,
        msg_seq: u32,
        msg_len: u32,
        idx: u32,
        count: u32,
        forged: bool,
        flip: Option<(usize, u8)>,
    },
    Ack {
        ack: u32,
        credit: u32,
        sack: Vec<u64>,
        forged: bool,
    },
    Init {
        src: u64,
        window: u32,
        payload: u16,
    },
    Close {
        code: u32,
        forged: bool,
    },
    Tick(u16),
    /// Fragment `frag` of message `msg` of a genuine sender's stream.
    Genuine {
        msg: usize,
        frag: u32,
    },
}

/// The genuine stream: message lengths (in fragments: 1, 3, 1, 2, 4, ...).
const LENS: [u32; 12] = [10, 3000, 0, 1500, 5000, 1, 1432, 1433, 64, 2864, 7, 4000];

fn op() -> impl Strategy<Value = Op> {
    let frag = (1472 - DATA_HEADER_LEN) as u32;
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(Op::Raw),
        // Bit flips hit the header only: a flipped payload byte of a
        // genuine packet is the UDP checksum's to catch (the protocol has
        // no checksum of its own, docs/reliable-datagrams.md), so it is
        // not a forgery this endpoint could tell.
        2 => (0u32..100, 0u32..6, 0u32..4, 0u32..4, any::<bool>(), prop::option::of((0usize..DATA_HEADER_LEN, any::<u8>())), any::<u32>(), 0u32..10)
            .prop_map(move |(dsn, msg_seq, frags, idx, forged, flip, raw, wild)| {
                // Mostly coherent geometry, sometimes wild.
                let msg_len = if wild == 0 { raw % (64 << 10) } else { frags * frag + (raw % frag) };
                let count = if wild == 1 { raw % 7 } else { msg_len.div_ceil(frag).max(1) };
                let dsn = if wild == 2 { raw } else { dsn };
                Op::Data { dsn, msg_seq, msg_len, idx: idx.min(count.saturating_sub(1)), count, forged: forged && wild < 3, flip }
            }),
        2 => (0u32..20, 0u32..200, prop::collection::vec(any::<u64>(), 0..=MAX_SACK_WORDS), any::<bool>())
            .prop_map(|(ack, credit, sack, forged)| Op::Ack { ack, credit, sack, forged }),
        1 => (any::<u64>(), any::<u32>(), any::<u16>()).prop_map(|(src, window, payload)| Op::Init { src, window, payload }),
        1 => (0u32..4, any::<bool>()).prop_map(|(code, forged)| Op::Close { code, forged: forged || code == 0 }),
        1 => (0u16..2000).prop_map(Op::Tick),
        12 => (0usize..LENS.len(), 0u32..4).prop_map(|(msg, frag)| Op::Genuine { msg, frag }),
    ]
}

static DELIVERED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn fill(msg_seq: u32) -> u8 {
    (msg_seq % 250) as u8 + 1
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    fn random_datagrams_never_panic_deliver_forgeries_or_exceed_credit(ops in prop::collection::vec(op(), 1..150), seed in any::<u64>()) {
        let cfg = small_config();
        let frag = cfg.max_payload();
        let bound = cfg.recv_window as usize * frag;
        let mut net = Net::new([cfg.clone(), cfg], [Link::clean(Duration::from_micros(10)); 2], seed);
        let (_, c1) = net.connect();
        let real = c1.to_u64();
        let from = net.addrs[0];
        let mut delivered = 0u32;
        let mut out = vec![0u8; 2048];
        // Datagrams come borrowed or owned (kept without a copy, with a
        // lending bound from 0 up), mixed within messages.
        let mut lend = fastrand::Rng::with_seed(seed);
        for op in ops {
            let dst = |forged: bool| if forged { real ^ 0x5555_0000_0000 } else { real };
            let bytes: Vec<u8> = match op {
                Op::Raw(b) => b,
                Op::Data { dsn, msg_seq, msg_len, idx, count, forged, flip } => {
                    let off = idx as usize * frag;
                    let len = (msg_len as usize).saturating_sub(off).min(frag);
                    let payload = vec![fill(msg_seq); len];
                    let hdr = DataHeader { dsn, msg_seq, msg_len, frag_index: idx, frag_count: count, ack: 0, credit: 0 };
                    let r = Repr::Data { flags: 0, dst: dst(forged), hdr, payload: &payload };
                    let mut b = vec![0; r.buffer_len()];
                    if r.emit(&mut b).is_none() { continue; }
                    if let Some((at, x)) = flip && at < b.len() { b[at] ^= x; }
                    b
                }
                Op::Ack { ack, credit, sack, forged } => {
                    let mut words = [0u64; MAX_SACK_WORDS];
                    words[..sack.len()].copy_from_slice(&sack);
                    let r = Repr::Ack { flags: 0, dst: dst(forged), ack: AckRepr { ack, credit, sack_len: sack.len() as u8, sack: words } };
                    let mut b = vec![0; r.buffer_len()];
                    r.emit(&mut b).unwrap();
                    b
                }
                Op::Init { src, window, payload } => {
                    let r = Repr::Init { flags: 0, hs: Handshake { src_conn: src | 1, epoch: 7, max_payload: payload, recv_window: window, max_message: 1 << 20 } };
                    let mut b = vec![0; r.buffer_len()];
                    r.emit(&mut b).unwrap();
                    b
                }
                Op::Close { code, forged } => {
                    let r = Repr::Close { flags: 0, dst: dst(forged), src: 99, code };
                    let mut b = vec![0; r.buffer_len()];
                    r.emit(&mut b).unwrap();
                    b
                }
                Op::Genuine { msg, frag: i } => {
                    let count = |len: u32| (len as usize).div_ceil(frag).max(1) as u32;
                    let start: u32 = LENS[..msg].iter().map(|&l| count(l)).sum();
                    let msg_len = LENS[msg];
                    let n = count(msg_len);
                    let i = i % n;
                    let off = i as usize * frag;
                    let len = (msg_len as usize - off).min(frag);
                    let payload = vec![fill(msg as u32); len];
                    let hdr = DataHeader { dsn: start + i, msg_seq: msg as u32, msg_len, frag_index: i, frag_count: n, ack: 0, credit: 0 };
                    let r = Repr::Data { flags: 0, dst: real, hdr, payload: &payload };
                    let mut b = vec![0; r.buffer_len()];
                    r.emit(&mut b).unwrap();
                    b
                }
                Op::Tick(us) => {
                    net.now += Duration::from_micros(us as u64);
                    let now = net.now;
                    net.eps[1].handle_timeout(now);
                    while net.eps[1].poll_transmit(now, &mut out).is_some() {}
                    continue;
                }
            };
            let now = net.now;
            if lend.bool() {
                net.eps[1].handle_datagram(now, from, &bytes);
            } else {
                let lendable = lend.usize(0..64);
                net.eps[1].handle_datagram_owned(now, from, &bytes::Bytes::from(bytes), lendable);
            }
            while net.eps[1].poll_transmit(now, &mut out).is_some() {}
            prop_assert!(net.eps[1].held_bytes() <= bound, "held {} > {}", net.eps[1].held_bytes(), bound);
            // Take half of the events (sometimes the application is slow).
            for _ in 0..net.eps[1].pending_events().div_ceil(2) {
                if let Some(Event::Message { conn, data }) = net.eps[1].poll_event() {
                    prop_assert_eq!(conn, c1);
                    // Message k was sent as fragments filled with fill(k): every
                    // byte must be that (a hole would be 0, a forgery of another
                    // message another value).
                    prop_assert!(data.iter().all(|&b| b == fill(delivered)), "message {} not as sent", delivered);
                    delivered += 1;
                }
            }
        }
        while let Some(e) = net.eps[1].poll_event() {
            if let Event::Message { data, .. } = e {
                prop_assert!(data.iter().all(|&b| b == fill(delivered)), "message {} not as sent", delivered);
                delivered += 1;
            }
        }
        DELIVERED.fetch_add(delivered as usize, std::sync::atomic::Ordering::Relaxed);
        prop_assert!(net.eps[1].held_bytes() <= bound);
    }
}

/// Runs the property; it is only meaningful if messages do get through:
/// the genuine fragments, in random order and with duplicates, must be
/// delivered too.
#[test]
fn random_datagrams_never_panic_nor_deliver_forgeries_and_genuine_ones_get_through() {
    random_datagrams_never_panic_deliver_forgeries_or_exceed_credit();
    let n = DELIVERED.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{n} messages delivered over all cases");
    assert!(n > 20, "only {n} messages delivered");
}
