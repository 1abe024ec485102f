//! The main job: a TCP echo server and clients on every core, over the
//! default driver (io_uring, or epoll where io_uring is unavailable).
//!
//! ```text
//! cargo run --release --example hello
//! INSANE_DRIVER=epoll cargo run --release --example hello
//! ```
//!
//! It prints which driver each core runs and why, then the round-trip
//! times clients measured against the echo server, all on 127.0.0.1.

use std::time::Duration;

use insane::io::{AsyncReadExt, AsyncWriteExt};
use insane::net::{TcpListener, TcpStream};
use insane::runtime::Runtime;
use insane::time::Instant;

const ROUND_TRIPS: usize = 20_000;
const MESSAGE: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::new()?;
    println!(
        "insane: {} cores, driver {} ({})",
        rt.num_cores(),
        rt.driver(),
        rt.driver_reason()
    );
    rt.block_on(run(rt.num_cores()))
}

async fn run(cores: usize) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("echo server on {addr} (core 0)");

    // The server: one task per connection, on core 0.
    insane::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                break;
            };
            stream.set_nodelay(true).ok();
            insane::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });

    // One client per core, each measuring its own round trips.
    let mut clients = Vec::new();
    for core in 0..cores {
        clients.push(insane::task::spawn_on(core, async move {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let msg = [core as u8; MESSAGE];
            let mut back = [0u8; MESSAGE];
            let mut rtts = Vec::with_capacity(ROUND_TRIPS);
            for _ in 0..ROUND_TRIPS {
                let start = Instant::now();
                stream.write_all(&msg).await?;
                stream.read_exact(&mut back).await?;
                rtts.push(start.elapsed());
                assert_eq!(back, msg, "echo returned other bytes");
            }
            Ok::<_, std::io::Error>((core, rtts))
        }));
    }
    let started = Instant::now();
    for client in clients {
        let (core, mut rtts) = client.await??;
        rtts.sort();
        let pct = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)];
        println!(
            "client on core {core}: {ROUND_TRIPS} round trips of {MESSAGE} B: p50 {:?}, p99 {:?}, max {:?}",
            pct(0.50),
            pct(0.99),
            rtts.last().copied().unwrap_or(Duration::ZERO)
        );
    }
    let elapsed = started.elapsed();
    println!(
        "total: {} round trips in {:.2?} ({:.0} round trips/s)",
        ROUND_TRIPS * cores,
        elapsed,
        (ROUND_TRIPS * cores) as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
