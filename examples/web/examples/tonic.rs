//! A gRPC service and client with tonic on insane's sockets, no tokio
//! runtime: the generated `EchoServer` (a tower service) served over
//! HTTP/2 by hyper-util on every core (`insane_web_examples::serve`), and
//! the generated `EchoClient` over one HTTP/2 connection on insane's
//! `TcpStream` (`insane_web_examples::client::Http2Channel`).
//!
//! ```text
//! cargo run --release -p insane-web-examples --example tonic                 # both, prints the RTT
//! cargo run --release -p insane-web-examples --example tonic -- --serve --bind 127.0.0.1:50051
//! cargo run --release -p insane-web-examples --example tonic -- --client 10000 --bind 127.0.0.1:50051
//! ```
//!
//! With no mode it serves on `--bind` (default 127.0.0.1:0: a free port)
//! and makes `1000` unary calls to itself, one at a time, then prints
//! their round-trip times and exits. `--serve` only serves (printing
//! `listening on ADDR (N cores, driver D)`, until killed); `--client N`
//! only calls the server at `--bind` N times.

#[path = "../../common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::process::ExitCode;

use hyper::Uri;
use insane::time::Instant;
use insane_web_examples::client::Http2Channel;
use insane_web_examples::echo::{EchoClient, EchoRequest, EchoServer, Echoer};
use insane_web_examples::serve;

/// Calls made when neither `--serve` nor `--client N` is given.
const DEFAULT_CALLS: u64 = 1000;

const MODES: &str = "  --serve      only serve (until killed)\n  \
     --client N   only call the server at --bind N times";

/// What the process does.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Serve, then call the server `calls` times and exit.
    Both { calls: u64 },
    /// Serve until killed.
    Serve,
    /// Call the server at `--bind` `calls` times.
    Client { calls: u64 },
}

fn main() -> ExitCode {
    common::exit_code("tonic", run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mode, rest) = match parse_mode(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("tonic: {e}");
            std::process::exit(2);
        }
    };
    let args = common::Args::parse_from("tonic", "127.0.0.1:0", rest, MODES);
    let rt = args.runtime()?;
    let (cores, driver) = (rt.num_cores(), rt.driver());
    rt.block_on(async move {
        match mode {
            Mode::Serve => {
                let addr = serve::serve_on_every_core(args.bind, EchoServer::new(Echoer)).await?;
                common::announce(addr, cores, driver);
                std::future::pending().await
            }
            Mode::Client { calls } => call(args.bind, calls).await,
            Mode::Both { calls } => {
                let addr = serve::serve_on_every_core(args.bind, EchoServer::new(Echoer)).await?;
                common::announce(addr, cores, driver);
                call(addr, calls).await
            }
        }
    })
}

/// Takes `--serve` and `--client N` out of the arguments; the rest is for
/// [`common::Args`].
fn parse_mode(args: impl Iterator<Item = String>) -> Result<(Mode, Vec<String>), String> {
    let mut mode = Mode::Both {
        calls: DEFAULT_CALLS,
    };
    let mut rest = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if arg == "--serve" {
            mode = Mode::Serve;
        } else if arg == "--client" || arg.starts_with("--client=") {
            let value = match arg.strip_prefix("--client=") {
                Some(v) => v.to_owned(),
                None => args.next().ok_or("--client needs a number of calls")?,
            };
            match value.parse::<u64>() {
                Ok(calls) if calls >= 1 => mode = Mode::Client { calls },
                _ => return Err(format!("--client {value:?}: expected an integer >= 1")),
            }
        } else {
            rest.push(arg);
        }
    }
    Ok((mode, rest))
}

/// Makes `calls` unary calls to `addr` one after the other over one
/// HTTP/2 connection and prints their round-trip times.
async fn call(addr: SocketAddr, calls: u64) -> Result<(), Box<dyn std::error::Error>> {
    let channel = Http2Channel::connect(addr).await?;
    let origin: Uri = format!("http://{addr}").parse()?;
    let mut client = EchoClient::with_origin(channel, origin);
    let mut rtts = Vec::with_capacity(usize::try_from(calls).unwrap_or(0));
    for i in 0..calls {
        let message = format!("call {i}");
        let start = Instant::now();
        let reply = client
            .unary_echo(EchoRequest {
                message: message.clone(),
            })
            .await?
            .into_inner();
        rtts.push(start.elapsed());
        if reply.message != message {
            return Err(format!("call {i}: sent {message:?}, got {:?} back", reply.message).into());
        }
    }
    rtts.sort_unstable();
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q).round() as usize];
    println!(
        "{calls} unary calls to {addr}: RTT p50 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    Ok(())
}
