//! The gRPC load client of the `grpc` scenario, run as
//! `insane-bench __grpc-load ADDR CONNECTIONS IN_FLIGHT SECS`: tonic's
//! generated `EchoClient` (examples/web) on a tokio current-thread runtime
//! over hyper HTTP/2 connections; `IN_FLIGHT` callers, spread over
//! `CONNECTIONS` connections, each making one unary call after the other
//! for `SECS` seconds. Prints one line,
//! `calls=N seconds=S p50_ns=P p99_ns=Q`. The same client measures every
//! server (insane's or tokio's), in a process of its own, pinned to the
//! client CPU.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hyper::Uri;
use hyper_util::rt::{TokioExecutor, TokioIo};
use insane_web_examples::client::Http2Channel;
use insane_web_examples::echo::{EchoClient, EchoRequest};

/// The hidden first argument that makes this binary the load client.
pub const LOAD_COMMAND: &str = "__grpc-load";

/// Runs the load client with `args` (`ADDR CONNECTIONS IN_FLIGHT SECS`)
/// and exits: status 1 and a message on stderr when a call fails.
pub fn load_main(args: &[String]) -> ! {
    let result = (|| -> Result<String, String> {
        let [addr, conns, in_flight, secs] = args else {
            return Err(format!(
                "usage: insane-bench {LOAD_COMMAND} ADDR CONNECTIONS IN_FLIGHT SECS"
            ));
        };
        let addr: SocketAddr = addr.parse().map_err(|e| format!("ADDR {addr}: {e}"))?;
        let number = |what: &str, v: &str| match v.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("{what} {v:?}: expected an integer >= 1")),
        };
        let conns = number("CONNECTIONS", conns)?;
        let in_flight = number("IN_FLIGHT", in_flight)?;
        let secs = number("SECS", secs)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("build tokio runtime: {e}"))?;
        rt.block_on(load(
            addr,
            conns,
            in_flight,
            Duration::from_secs(secs.into()),
        ))
    })();
    match result {
        Ok(line) => {
            println!("{line}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("insane-bench {LOAD_COMMAND}: {e}");
            std::process::exit(1)
        }
    }
}

/// The load itself; returns the output line.
async fn load(
    addr: SocketAddr,
    conns: u32,
    in_flight: u32,
    run: Duration,
) -> Result<String, String> {
    let origin: Uri = format!("http://{addr}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut clients = Vec::new();
    for _ in 0..conns {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP/2 handshake with {addr}: {e}"))?;
        tokio::spawn(connection);
        clients.push(EchoClient::with_origin(
            Http2Channel::new(sender),
            origin.clone(),
        ));
    }
    let start = Instant::now();
    let deadline = start + run;
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..in_flight {
        let mut client = clients[(i % conns) as usize].clone();
        callers.spawn(async move {
            let mut latencies = new_histogram()?;
            let request = EchoRequest {
                message: "ping".to_owned(),
            };
            while Instant::now() < deadline {
                let sent = Instant::now();
                let reply = client
                    .unary_echo(request.clone())
                    .await
                    .map_err(|e| format!("unary call: {e}"))?;
                if reply.get_ref().message != request.message {
                    return Err("the reply's message is not the request's".to_owned());
                }
                latencies
                    .saturating_record(sent.elapsed().as_nanos().try_into().unwrap_or(u64::MAX));
            }
            Ok::<_, String>(latencies)
        });
    }
    let mut all = new_histogram()?;
    while let Some(caller) = callers.join_next().await {
        let latencies = caller.map_err(|e| format!("caller task: {e}"))??;
        all.add(&latencies).map_err(|e| e.to_string())?;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(format!(
        "calls={} seconds={seconds:.6} p50_ns={} p99_ns={}",
        all.len(),
        all.value_at_quantile(0.5),
        all.value_at_quantile(0.99)
    ))
}

/// A latency histogram from 1 ns to 60 s, 3 significant digits (longer
/// calls count as 60 s).
fn new_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())
}
