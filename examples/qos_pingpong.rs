//! Ping-pong over a QoS endpoint: the runtime picks the transport for the
//! requested QoS, prints it with its reason, and the client prints the
//! round-trip time percentiles.
//!
//! ```text
//! # two processes on loopback
//! cargo run --release --example qos_pingpong -- --server 127.0.0.1:7100 --qos critical &
//! cargo run --release --example qos_pingpong -- --client 127.0.0.1:7100 --qos critical --count 10000
//! # or both ends in one process (server on core 1, client on core 0)
//! cargo run --release --example qos_pingpong -- --local --qos normal --reliable
//! ```
//!
//! `--qos critical` is `latency=critical, resources=poll` (busy-poll UDP,
//! the cores spin: the runtime is built with `IdlePolicy::Spin`);
//! `normal` is `latency=normal, resources=poll`; `low` is
//! `latency=normal, resources=low` (never spins). Messages are
//! best-effort datagrams unless `--reliable` (length-prefixed TCP).
//! `--size BYTES` sets the message size (default 32), `--count N` the
//! number of timed round trips (default 10000, after 100 warm-up ones).
//! The server echoes `--count` + 100 messages, or stops after 10 s
//! without one. `INSANE_DRIVER=epoll` runs on the epoll driver.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use insane::qos::{Endpoint, Latency, Qos, Reliability, Resources};
use insane::runtime::{IdlePolicy, Runtime};
use insane::time::timeout;

const WARMUP: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Server(SocketAddr),
    Client(SocketAddr),
    Local,
}

#[derive(Clone, Copy, Debug)]
struct Args {
    mode: Mode,
    qos: Qos,
    count: usize,
    size: usize,
}

fn usage() -> &'static str {
    "usage: qos_pingpong (--server ADDR | --client ADDR | --local) \
     [--qos critical|normal|low] [--reliable] [--count N] [--size BYTES]"
}

fn parse() -> Result<Args, String> {
    let mut mode = None;
    let mut class = "normal".to_owned();
    let mut reliable = false;
    let mut count = 10_000;
    let mut size = 32;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        let addr = |v: String| v.parse::<SocketAddr>().map_err(|e| format!("{v:?}: {e}"));
        match arg.as_str() {
            "--server" => mode = Some(Mode::Server(addr(value("--server")?)?)),
            "--client" => mode = Some(Mode::Client(addr(value("--client")?)?)),
            "--local" => mode = Some(Mode::Local),
            "--qos" => class = value("--qos")?,
            "--reliable" => reliable = true,
            "--count" => {
                count = value("--count")?
                    .parse()
                    .map_err(|e| format!("--count: {e}"))?
            }
            "--size" => {
                size = value("--size")?
                    .parse()
                    .map_err(|e| format!("--size: {e}"))?
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let (latency, resources) = match class.as_str() {
        "critical" => (Latency::Critical, Resources::Poll),
        "normal" => (Latency::Normal, Resources::Poll),
        "low" => (Latency::Normal, Resources::Low),
        other => return Err(format!("--qos {other:?}: expected critical, normal or low")),
    };
    let reliability = if reliable {
        Reliability::Reliable
    } else {
        Reliability::BestEffort
    };
    Ok(Args {
        mode: mode.ok_or("one of --server, --client, --local is needed")?,
        qos: Qos::new(latency, reliability, resources),
        count,
        size: size.max(1),
    })
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("qos_pingpong: {e}");
            }
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qos_pingpong: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let spin = args.qos.latency == Latency::Critical && args.qos.may_spin();
    let cores = if args.mode == Mode::Local { 2 } else { 1 };
    let mut builder = Runtime::builder();
    builder.load_config()?.cores(cores);
    if spin {
        // Latency-critical flows: the cores never sleep.
        builder.idle(IdlePolicy::Spin);
    }
    let rt = builder.build()?;
    let driver = rt.driver();
    rt.block_on(async move {
        match args.mode {
            Mode::Server(addr) => {
                let ep = Endpoint::bind(addr, args.qos).await?;
                println!(
                    "server on {} (driver {driver}): {}",
                    ep.local_addr()?,
                    ep.explain()
                );
                let n = serve(&ep, args.count + WARMUP).await?;
                println!("server: echoed {n} messages");
                Ok(())
            }
            Mode::Client(server) => client(server, args).await,
            Mode::Local => {
                let ep = Endpoint::bind("127.0.0.1:0", args.qos).await?;
                let addr = ep.local_addr()?;
                println!(
                    "server on {addr} (core 1, driver {driver}): {}",
                    ep.explain()
                );
                let total = args.count + WARMUP;
                let server = insane::task::spawn_on(1, async move {
                    // Buffers are lent by the core that bound the endpoint;
                    // sending from core 1 works all the same.
                    serve(&ep, total).await
                });
                client(addr, args).await?;
                let _ = server.await;
                Ok(())
            }
        }
    })
}

/// Echoes up to `total` messages; stops after 10 s without one.
async fn serve(ep: &Endpoint, total: usize) -> io::Result<usize> {
    let mut n = 0;
    while n < total {
        let msg = match timeout(Duration::from_secs(10), ep.recv()).await {
            Ok(m) => m?,
            Err(_) => break,
        };
        let mut reply = ep.buffer().await;
        reply.extend_from_slice(&msg)?;
        ep.send_to(reply, msg.peer()).await?;
        n += 1;
    }
    Ok(n)
}

async fn client(server: SocketAddr, args: Args) -> io::Result<()> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("address")
    } else {
        "[::]:0".parse().expect("address")
    };
    let ep = Endpoint::bind(local, args.qos).await?;
    println!("client: {}", ep.explain());
    ep.connect(server).await?;
    let payload = vec![0x5a; args.size];
    let mut rtts = Vec::with_capacity(args.count);
    let mut lost = 0;
    for i in 0..args.count + WARMUP {
        let mut buf = ep.buffer().await;
        buf.extend_from_slice(&payload)?;
        let t0 = Instant::now();
        ep.send(buf).await?;
        match timeout(Duration::from_secs(1), ep.recv()).await {
            Ok(msg) => {
                let msg = msg?;
                let rtt = t0.elapsed();
                if msg.len() != args.size {
                    return Err(io::Error::other(format!(
                        "echo of {} bytes, sent {}",
                        msg.len(),
                        args.size
                    )));
                }
                if i >= WARMUP {
                    rtts.push(rtt);
                }
            }
            Err(_) => lost += 1,
        }
    }
    rtts.sort_unstable();
    let pct = |p: f64| -> Duration {
        if rtts.is_empty() {
            return Duration::ZERO;
        }
        let i = ((rtts.len() as f64 * p).ceil() as usize).clamp(1, rtts.len()) - 1;
        rtts[i]
    };
    println!(
        "client: {} round trips of {} bytes, {lost} lost; RTT p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        rtts.len(),
        args.size,
        us(pct(0.50)),
        us(pct(0.99)),
        us(pct(0.999)),
        us(rtts.last().copied().unwrap_or_default()),
    );
    Ok(())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
