//! The CPU cost of one reliable round trip against a best-effort one on
//! the same path, for instruction counts under callgrind: two userspace
//! stacks joined by an in-memory link (`PairDevice`: no system call, no
//! device driver, so every instruction counted is insane's), one core,
//! a pinging task and an echoing task, 32 B messages, through the
//! `Transport` calls an `Endpoint` makes.
//!
//! `cargo build --release -p insane-net --example reliable_cpu`, then
//! `valgrind --tool=callgrind target/release/examples/reliable_cpu MODE N`
//! for N and 2N round trips (MODE `reliable` or `best-effort`): the
//! difference of the two totals divided by N is the instructions of one
//! round trip (both ends, since both run on this thread). Without
//! valgrind it prints the mean wall-clock round trip too.

use std::future::poll_fn;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
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

const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SIZE: usize = 32;

async fn send(t: &dyn Transport, payload: &[u8], peer: SocketAddr) -> io::Result<()> {
    let mut buf = poll_fn(|cx| t.poll_buffer(cx)).await;
    buf.extend_from_slice(payload)?;
    let (mut buf, mut op) = (Some(buf), Op::new());
    poll_fn(|cx| t.poll_send(cx, &mut buf, Some(peer), &mut op)).await
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "reliable".into());
    let rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rt = Runtime::builder().cores(1).build()?;
    let main = rt.spawn(async move {
        let cfg = TransportConfig::default();
        let (a_dev, b_dev) = PairDevice::pair(MAC_A, MAC_B, 1500);
        let a = StackUdpTransport::<PairDevice>::bind("cpu a", 5000, Kind::XdpUdp, &cfg, || {
            Ok((host(a_dev, IP_A, (IP_B, MAC_B)), None))
        })?;
        let b = StackUdpTransport::<PairDevice>::bind("cpu b", 6000, Kind::XdpUdp, &cfg, || {
            Ok((host(b_dev, IP_B, (IP_A, MAC_A)), None))
        })?;
        let (a, b): (Arc<dyn Transport>, Arc<dyn Transport>) = match mode.as_str() {
            "best-effort" => (Arc::new(a), Arc::new(b)),
            "reliable" => (
                Arc::new(ReliableTransport::new(
                    Arc::new(a),
                    Kind::XdpReliable,
                    &cfg,
                )?),
                Arc::new(ReliableTransport::new(
                    Arc::new(b),
                    Kind::XdpReliable,
                    &cfg,
                )?),
            ),
            other => return Err(io::Error::other(format!("no mode {other}"))),
        };
        let b_addr = b.local_addr()?;
        let echo = spawn(async move {
            let mut op = Op::new();
            loop {
                let Ok(m) = poll_fn(|cx| b.poll_recv(cx, &mut op)).await else {
                    return;
                };
                if send(&*b, &m, m.peer()).await.is_err() {
                    return;
                }
            }
        });
        let payload = [7u8; SIZE];
        let mut op = Op::new();
        let start = Instant::now();
        for _ in 0..rounds {
            send(&*a, &payload, b_addr).await?;
            let m = poll_fn(|cx| a.poll_recv(cx, &mut op)).await?;
            assert_eq!(m.len(), SIZE);
        }
        let took = start.elapsed();
        echo.abort();
        println!(
            "{mode}: {rounds} round trips of {SIZE} B, mean {:?}",
            took / rounds.max(1) as u32
        );
        Ok(())
    });
    rt.block_on(main).map_err(io::Error::other)?
}
