//! Specification: over the userspace stack (the AF_XDP and DPDK paths of
//! reliable datagrams), a received reliable message is the frames it
//! came in: read chunk by chunk without a copy, its contiguous view made
//! with one copy (counted by `debug_copy_count`) and kept; a message that
//! fits one frame costs no copy at all. When the stack cannot lend enough
//! frames, a large message is copied once on receipt, never twice.
//!
//! A file of its own: the copy counter is process-wide, and the steps run
//! one after the other in one test so that nothing else counts meanwhile.

use std::future::poll_fn;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::transport::stack::StackUdpTransport;
use insane_net::qos::transport::{Op, ReliableTransport};
use insane_net::qos::{RxBuf, Transport, TransportConfig, debug_copy_count};
use insane_net::stack::EthernetAddress;
use insane_net::stack::testing::PairDevice;
use insane_runtime::runtime::Runtime;

mod common;
use insane_net::stack::testing::host;
use insane_runtime::time::timeout;

const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const MIB: usize = 1 << 20;
/// A DATA packet's payload in a 1500-byte frame: 1472 − 40.
const FRAG: usize = 1432;

/// Two reliable transports over the stack on an in-memory link whose
/// stacks lend `frames` receive frames each.
fn pair(key: &str, frames: usize) -> (Arc<ReliableTransport>, Arc<ReliableTransport>) {
    let cfg = TransportConfig::default();
    let inner = TransportConfig {
        rx_buffers: frames,
        ..cfg
    };
    let (a_dev, b_dev) = PairDevice::pair(MAC_A, MAC_B, 1500);
    let a = StackUdpTransport::<PairDevice>::bind(
        &format!("{key} a"),
        5000,
        Kind::XdpUdp,
        &inner,
        || Ok((host(a_dev, IP_A, (IP_B, MAC_B)), None)),
    )
    .unwrap();
    let b = StackUdpTransport::<PairDevice>::bind(
        &format!("{key} b"),
        6000,
        Kind::XdpUdp,
        &inner,
        || Ok((host(b_dev, IP_B, (IP_A, MAC_A)), None)),
    )
    .unwrap();
    (
        Arc::new(ReliableTransport::new(Arc::new(a), Kind::XdpReliable, &cfg).unwrap()),
        Arc::new(ReliableTransport::new(Arc::new(b), Kind::XdpReliable, &cfg).unwrap()),
    )
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Sends `msg` from `a` to `b` and returns it as `b` received it.
async fn carry(a: &ReliableTransport, b: &ReliableTransport, msg: &[u8]) -> RxBuf {
    let mut buf = poll_fn(|cx| a.poll_buffer(cx)).await;
    buf.extend_from_slice(msg).unwrap();
    let (mut op, mut buf) = (Op::new(), Some(buf));
    let to = b.local_addr().unwrap();
    poll_fn(|cx| a.poll_send(cx, &mut buf, Some(to), &mut op))
        .await
        .unwrap();
    let mut op = Op::new();
    timeout(
        Duration::from_secs(10),
        poll_fn(|cx| b.poll_recv(cx, &mut op)),
    )
    .await
    .expect("the message arrives within 10 s")
    .unwrap()
}

#[test]
fn received_messages_are_their_frames_and_cost_at_most_one_copy() {
    let rt = Runtime::builder().cores(1).build().unwrap();
    rt.block_on(async {
        // Frames to lend for a whole 1 MiB message (733 datagrams), as the
        // AF_XDP and DPDK binds of reliable datagrams arrange.
        let (a, b) = pair("zero copy lending", 1024);

        // A message that fits one frame: that frame, no copy at all.
        let small = pattern(FRAG);
        let before = debug_copy_count();
        let m = carry(&a, &b, &small).await;
        assert_eq!(m.chunks().count(), 1);
        assert_eq!(&m[..], &small[..]);
        assert_eq!(debug_copy_count(), before, "one frame: no copy");
        drop(m);

        // 1 MiB: its 733 frames, read without a copy.
        let big = pattern(MIB);
        let before = debug_copy_count();
        let mut m = carry(&a, &b, &big).await;
        assert_eq!(
            m.chunks().count(),
            MIB.div_ceil(FRAG),
            "one chunk per frame"
        );
        let mut at = 0;
        for c in m.chunks() {
            assert_eq!(c, &big[at..at + c.len()], "chunk at {at}");
            at += c.len();
        }
        assert_eq!(at, MIB);
        // `bytes::Buf` walks the same chunks.
        assert_eq!(m.remaining(), MIB);
        assert_eq!(m.chunk(), &big[..FRAG]);
        m.advance(FRAG + 10);
        assert_eq!(m.chunk(), &big[FRAG + 10..2 * FRAG]);
        assert_eq!(debug_copy_count(), before, "chunks and Buf: no copy");
        // The contiguous view: one copy, made once.
        assert_eq!(&m[..], &big[FRAG + 10..]);
        assert_eq!(m.len(), MIB - FRAG - 10);
        assert_eq!(
            debug_copy_count(),
            before + 1,
            "the contiguous view is one copy"
        );
        assert_eq!(m[0], big[FRAG + 10]);
        assert_eq!(debug_copy_count(), before + 1, "and is kept");
        drop(m);

        // Too few frames to lend (the stack's default pool): a 1 MiB
        // message is copied once on receipt, into one buffer, and its
        // contiguous view costs nothing more.
        let (a, b) = pair("zero copy short of frames", 256);
        let before = debug_copy_count();
        let m = carry(&a, &b, &big).await;
        assert_eq!(debug_copy_count(), before + 1, "copied once on receipt");
        assert_eq!(m.chunks().count(), 1);
        assert_eq!(&m[..], &big[..]);
        assert_eq!(debug_copy_count(), before + 1, "never twice");
    });
}
