//! Moves 1 MiB messages one way between two reliable-datagram transports
//! over the userspace stack on an in-memory device pair, on one core: the
//! user-space cost of bulk reliable transfer (protocol, transport driver,
//! stack, buffers), without a kernel in the way. Run it under callgrind for
//! instructions per MiB:
//!
//! `valgrind --tool=callgrind target/release/examples/reliable_bulk 16`
//!
//! `cargo run --release -p insane-net --example reliable_bulk -- [MiB]`
//! prints the time and the protocol counters. No assertion on time: it is
//! a measurement.

use std::future::poll_fn;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use insane_net::qos::policy::TransportKind as Kind;
use insane_net::qos::transport::stack::StackUdpTransport;
use insane_net::qos::transport::{Op, ReliableTransport};
use insane_net::qos::{Transport, TransportConfig};
use insane_net::stack::EthernetAddress;
use insane_net::stack::testing::{PairDevice, host};
use insane_runtime::runtime::Runtime;
use insane_runtime::task::spawn;

const MIB: usize = 1 << 20;
const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn main() {
    let messages: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(16);
    let rt = Runtime::builder().cores(1).build().unwrap();
    rt.block_on(async move {
        let cfg = TransportConfig::default();
        // As the AF_XDP and DPDK binds of reliable datagrams do: the stack
        // lends enough frames to keep a 1 MiB message in them.
        let inner_cfg = TransportConfig {
            rx_buffers: 1024,
            ..cfg
        };
        let (a_dev, b_dev) = PairDevice::pair(MAC_A, MAC_B, 1500);
        let a = StackUdpTransport::<PairDevice>::bind("bulk a", 5000, Kind::XdpUdp, &inner_cfg, || {
            Ok((host(a_dev, IP_A, (IP_B, MAC_B)), None))
        })
        .unwrap();
        let b = StackUdpTransport::<PairDevice>::bind("bulk b", 6000, Kind::XdpUdp, &inner_cfg, || {
            Ok((host(b_dev, IP_B, (IP_A, MAC_A)), None))
        })
        .unwrap();
        let a = Arc::new(ReliableTransport::new(Arc::new(a), Kind::XdpReliable, &cfg).unwrap());
        let b = Arc::new(ReliableTransport::new(Arc::new(b), Kind::XdpReliable, &cfg).unwrap());
        let to = b.local_addr().unwrap();
        let start = Instant::now();
        let sender = {
            let a = a.clone();
            spawn(async move {
                for i in 0..messages {
                    let mut buf = poll_fn(|cx| a.poll_buffer(cx)).await;
                    buf.resize(MIB, i as u8).unwrap();
                    let (mut op, mut buf) = (Op::new(), Some(buf));
                    poll_fn(|cx| a.poll_send(cx, &mut buf, Some(to), &mut op))
                        .await
                        .unwrap();
                }
            })
        };
        let mut op = Op::new();
        let mut sum = 0u64;
        for i in 0..messages {
            let m = poll_fn(|cx| b.poll_recv(cx, &mut op)).await.unwrap();
            assert_eq!(m.len(), MIB);
            // Read without a copy: chunk by chunk (the received frames).
            let mut n = 0;
            for c in m.chunks() {
                n += c.len();
                sum += u64::from(c[0]);
            }
            assert_eq!(n, MIB, "message {i}");
        }
        sender.await.unwrap();
        let dt = start.elapsed();
        println!(
            "{messages} MiB in {dt:?}: {:.2} Gbit/s (checksum {sum}, copies {})\nsender: {}\nreceiver: {}",
            (messages * MIB * 8) as f64 / dt.as_secs_f64() / 1e9,
            insane_net::qos::debug_copy_count(),
            a.stats(),
            b.stats()
        );
    });
}
