//! A TCP echo server on every core: each core accepts on its own
//! `SO_REUSEPORT` listener bound to the same address and echoes every byte
//! back on each connection (with `TCP_NODELAY`). It shows the tokio drop-in
//! face of insane: `TcpSocket`, `TcpListener::accept`, `insane::spawn`,
//! `AsyncReadExt::read` and `AsyncWriteExt::write_all` as in tokio.
//!
//! ```text
//! cargo run --release --example echo_tcp -- --bind 127.0.0.1:7000 --cores 2
//! INSANE_DRIVER=epoll cargo run --release --example echo_tcp
//! ```
//!
//! It prints `listening on ADDR (N cores, driver D)` once every core serves,
//! then runs until killed. Try it with `nc 127.0.0.1 7000`. `--bind` with
//! port 0 picks a free port (the line tells which); `--cores` defaults to
//! every CPU the process may use.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use insane::io::{AsyncReadExt, AsyncWriteExt};
use insane::net::{TcpListener, TcpStream};

fn main() -> ExitCode {
    common::exit_code("echo_tcp", run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse("echo_tcp", "127.0.0.1:7000");
    let rt = args.runtime()?;
    let (cores, driver) = (rt.num_cores(), rt.driver());
    rt.block_on(async move {
        let addr = TcpListener::bind_on_every_core(args.bind, accept_loop).await?;
        common::announce(addr, cores, driver);
        std::future::pending().await
    })
}

/// Accepts connections on this core's listener, one task each.
async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                insane::spawn(echo(stream));
            }
            Err(e) => {
                // E.g. EMFILE: back off instead of spinning on the error.
                eprintln!("accept: {e}");
                insane::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Writes back everything the peer sends until it closes or fails.
async fn echo(mut stream: TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        eprintln!("set_nodelay: {e}");
    }
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
