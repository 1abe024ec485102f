//! A UDP echo server on every core: each core receives on its own
//! `SO_REUSEPORT` socket bound to the same address (the kernel keeps each
//! client's flow on one core) and sends every datagram back to its sender.
//! It shows insane's tokio-compatible `UdpSocket` (`recv_from`/`send_to`)
//! over a socket configured with socket2 and adopted with
//! `UdpSocket::from_std`.
//!
//! ```text
//! cargo run --release --example echo_udp -- --bind 127.0.0.1:7001 --cores 2
//! INSANE_DRIVER=epoll cargo run --release --example echo_udp
//! ```
//!
//! It prints `listening on ADDR (N cores, driver D)` once every core serves,
//! then runs until killed. Try it with `nc -u 127.0.0.1 7001`. `--bind` with
//! port 0 picks a free port (the line tells which); `--cores` defaults to
//! every CPU the process may use.

mod common;

use std::process::ExitCode;

use insane::net::UdpSocket;

fn main() -> ExitCode {
    common::exit_code("echo_udp", run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse("echo_udp", "127.0.0.1:7001");
    let rt = args.runtime()?;
    let (cores, driver) = (rt.num_cores(), rt.driver());
    rt.block_on(async move {
        let addr = UdpSocket::bind_on_every_core(args.bind, echo).await?;
        common::announce(addr, cores, driver);
        std::future::pending().await
    })
}

/// Sends each datagram received on this core's socket back to its sender.
async fn echo(socket: UdpSocket) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, peer)) => {
                if let Err(e) = socket.send_to(&buf[..n], peer).await {
                    eprintln!("send_to {peer}: {e}");
                }
            }
            // UDP errors concern one datagram (or an ICMP report); go on.
            Err(e) => eprintln!("recv_from: {e}"),
        }
    }
}
