//! Round trips of small messages between two reliable endpoints on
//! loopback, through `Endpoint` with `latency=critical, reliable,
//! resources=poll`, on one core: what the policy's order of the
//! reliable-datagram and io_uring TCP transports rests on.
//!
//! `cargo run --release -p insane-net --example reliable_pingpong [-- ROUNDS [SIZE [CORES]]]`
//! (CORES 2: the echoing endpoint on a second core); `PINGPONG_DRIVER=epoll`
//! runs the cores on epoll instead of io_uring; `PINGPONG_PREFER=udp`
//! asks for reliable datagrams over busy-poll UDP instead of the policy's
//! first choice (`TransportConfig::prefer`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use insane_net::qos::{Endpoint, Qos, TransportConfig, TransportKind};
use insane_runtime::runtime::Runtime;
use insane_runtime::task::spawn_on;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let cores: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let rt = Runtime::builder()
        .cores(cores)
        .on_core_start(Arc::new(|_| {
            if std::env::var("PINGPONG_DRIVER").as_deref() == Ok("epoll") {
                insane_epoll::install_on_current_core()
            } else {
                insane_uring::install_on_current_core(&Default::default())
            }
        }))
        .build()?;
    let config = || TransportConfig {
        prefer: (std::env::var("PINGPONG_PREFER").as_deref() == Ok("udp"))
            .then_some(TransportKind::UdpReliable),
        ..Default::default()
    };
    rt.block_on(async move {
        let qos = Qos::builder().critical().reliable().poll().build();
        let a = Endpoint::bind_with("127.0.0.1:0", qos, config()).await?;
        let (b_tx, b_rx) = std::sync::mpsc::channel();
        let echo = spawn_on(cores - 1, async move {
            let Ok(b) = Endpoint::bind_with("127.0.0.1:0", qos, config()).await else {
                return;
            };
            let _ = b_tx.send(b.local_addr());
            loop {
                let Ok(m) = b.recv().await else { return };
                let peer = m.peer();
                let mut buf = b.buffer().await;
                buf.extend_from_slice(&m).ok();
                drop(m);
                if b.send_to(buf, peer).await.is_err() {
                    return;
                }
            }
        });
        println!("{}", a.explain());
        let mut b_addr = None;
        for _ in 0..1000 {
            if let Ok(addr) = b_rx.try_recv() {
                b_addr = Some(addr?);
                break;
            }
            insane_runtime::time::sleep(Duration::from_millis(1)).await;
        }
        let b_addr =
            b_addr.ok_or_else(|| std::io::Error::other("the echo endpoint did not bind"))?;
        // The pinger is a task too: the `block_on` future itself is polled
        // less often than tasks while tasks (here: busy-polling ones) are
        // runnable.
        let pinger = spawn_on(0, async move { ping(a, b_addr, rounds, size).await });
        let res = pinger.await.map_err(std::io::Error::other)?;
        echo.abort();
        res
    })
}

async fn ping(
    a: Endpoint,
    b_addr: std::net::SocketAddr,
    rounds: usize,
    size: usize,
) -> std::io::Result<()> {
    {
        let payload = vec![7u8; size];
        let mut rtts = Vec::with_capacity(rounds);
        let warmup = rounds / 10;
        for i in 0..warmup + rounds {
            let start = Instant::now();
            let mut buf = a.buffer().await;
            buf.extend_from_slice(&payload)?;
            a.send_to(buf, b_addr).await?;
            let m = a.recv().await?;
            assert_eq!(m.len(), size);
            if i >= warmup {
                rtts.push(start.elapsed());
            }
        }
        rtts.sort();
        let pct = |p: usize| rtts[(rtts.len() * p / 100).min(rtts.len() - 1)];
        let mean: Duration = rtts.iter().sum::<Duration>() / rtts.len() as u32;
        println!(
            "{:?}: {rounds} round trips of {size} B: p50 {:?} p99 {:?} mean {:?}",
            a.driver(),
            pct(50),
            pct(99),
            mean
        );
        if std::env::var_os("PINGPONG_STATS").is_some() {
            println!("{a:#?}");
        }
        Ok(())
    }
}
