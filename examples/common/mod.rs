//! What the server examples share: the command line (`--bind ADDR`,
//! `--cores N`), the runtime, the `listening on` line, and one socket per
//! core bound with `SO_REUSEPORT` to the same address.
//!
//! Not an example itself: `echo_tcp`, `echo_udp` and `hyper_server` include
//! it with `mod common;`.

#![allow(dead_code)] // each example uses part of it

use std::future::Future;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process;

use insane::net::{TcpListener, TcpSocket, UdpSocket};
use insane::runtime::Runtime;

/// The command line of a server example.
#[derive(Clone, Copy, Debug)]
pub struct Args {
    /// The address every core serves on.
    pub bind: SocketAddr,
    /// How many cores; `None`: every CPU of the allowed set (or
    /// `INSANE_CORES`).
    pub cores: Option<usize>,
}

impl Args {
    /// Parses `--bind ADDR` and `--cores N` (also `--bind=ADDR`,
    /// `--cores=N`); prints the usage and exits on `--help` or a bad
    /// argument.
    pub fn parse(name: &str, default_bind: &str) -> Args {
        match Self::try_parse(std::env::args().skip(1), default_bind) {
            Ok(Some(args)) => args,
            Ok(None) => {
                println!("{}", usage(name, default_bind));
                process::exit(0);
            }
            Err(e) => {
                eprintln!("{name}: {e}\n{}", usage(name, default_bind));
                process::exit(2);
            }
        }
    }

    /// The arguments after the program name; `Ok(None)` for `--help`.
    fn try_parse(
        args: impl IntoIterator<Item = String>,
        default_bind: &str,
    ) -> Result<Option<Args>, String> {
        let mut bind = default_bind.to_owned();
        let mut cores = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg, None),
            };
            let mut value = |flag: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or(format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(None),
                "--bind" | "-b" => bind = value("--bind")?,
                "--cores" | "-c" => {
                    let v = value("--cores")?;
                    match v.parse::<usize>() {
                        Ok(n) if n >= 1 => cores = Some(n),
                        _ => return Err(format!("--cores {v:?}: expected an integer >= 1")),
                    }
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let bind = bind
            .to_socket_addrs()
            .map_err(|e| format!("--bind {bind:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("--bind {bind:?}: resolves to no address"))?;
        Ok(Some(Args { bind, cores }))
    }

    /// The runtime: `insane.toml`'s `[runtime]` and the `INSANE_*`
    /// variables applied (e.g. `INSANE_DRIVER=epoll`), then `--cores` when
    /// given.
    pub fn runtime(&self) -> io::Result<Runtime> {
        let mut builder = Runtime::builder().load_config()?;
        if let Some(n) = self.cores {
            builder = builder.cores(n);
        }
        builder.build()
    }
}

fn usage(name: &str, default_bind: &str) -> String {
    format!(
        "usage: {name} [--bind ADDR] [--cores N]\n  \
         --bind ADDR  address to serve on (default {default_bind}; port 0 picks a free port)\n  \
         --cores N    cores, each with its own SO_REUSEPORT socket (default: every allowed CPU)\n\
         environment: INSANE_DRIVER=auto|uring|epoll chooses the I/O driver"
    )
}

/// Prints the one line that tells the server is up, and flushes it.
pub fn announce(addr: SocketAddr, cores: usize, driver: impl std::fmt::Display) {
    let mut out = io::stdout().lock();
    // Nothing to do if stdout is gone; the server still serves.
    let _ = writeln!(out, "listening on {addr} ({cores} cores, driver {driver})");
    let _ = out.flush();
}

/// A TCP listener on `addr`, with `SO_REUSEPORT` when `reuseport` (so every
/// core can have its own), and its real address.
pub fn tcp_listener(addr: SocketAddr, reuseport: bool) -> io::Result<(TcpListener, SocketAddr)> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuseport {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    let listener = socket.listen(1024)?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// A UDP socket on `addr`, with `SO_REUSEPORT` when `reuseport`, and its
/// real address. Built with socket2 because the option must be set before
/// `bind`, then handed to insane with [`UdpSocket::from_std`].
pub fn udp_socket(addr: SocketAddr, reuseport: bool) -> io::Result<(UdpSocket, SocketAddr)> {
    if addr.port() != 0 || !reuseport {
        return udp_socket_on(addr, reuseport);
    }
    // Linux picks the port of a UDP bind to port 0 with SO_REUSEPORT among
    // the ports it could share: possibly one another SO_REUSEPORT socket of
    // this user already serves, whose datagrams would then be spread over
    // both. So a plain socket picks a port nobody uses, and the
    // SO_REUSEPORT socket binds to it (again if someone took it meanwhile).
    let mut last_error = None;
    for _ in 0..16 {
        let free = std::net::UdpSocket::bind(addr)?.local_addr()?;
        match udp_socket_on(free, true) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_error = Some(e),
            bound => return bound,
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}

fn udp_socket_on(addr: SocketAddr, reuseport: bool) -> io::Result<(UdpSocket, SocketAddr)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuseport {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let socket = UdpSocket::from_std(socket.into())?;
    let local = socket.local_addr()?;
    Ok((socket, local))
}

/// Binds one socket per core of the current runtime to `addr` and runs
/// `serve(socket)` on that core, as a local task; returns once every core
/// is bound, with the address they serve on.
///
/// Core 0 (the caller) binds first, so that with port 0 the other cores
/// bind to the port the kernel picked. With more than one core every socket
/// has `SO_REUSEPORT` and the kernel spreads connections (or UDP flows)
/// over the cores.
///
/// # Panics
/// Outside an insane runtime.
pub async fn serve_on_every_core<S, Fut>(
    addr: SocketAddr,
    bind: fn(SocketAddr, bool) -> io::Result<(S, SocketAddr)>,
    serve: fn(S) -> Fut,
) -> io::Result<SocketAddr>
where
    S: 'static,
    Fut: Future<Output = ()> + 'static,
{
    let cores = Runtime::cores().expect("serve_on_every_core runs inside an insane runtime");
    let reuseport = cores > 1;
    let (first, addr) =
        bind(addr, reuseport).map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    let mut bound = Vec::with_capacity(cores - 1);
    for core in 1..cores {
        bound.push(insane::task::spawn_on(core, async move {
            let (socket, _) = bind(addr, true).map_err(|e| {
                io::Error::new(e.kind(), format!("bind {addr} on core {core}: {e}"))
            })?;
            // The socket registers with this core's driver and is served here.
            insane::task::spawn_local(serve(socket));
            Ok::<_, io::Error>(())
        }));
    }
    for handle in bound {
        handle.await??;
    }
    insane::task::spawn_local(serve(first));
    Ok(addr)
}

/// The exit status of a server whose `run` returned: an error is printed
/// (with `Display`, not `Debug`) and fails the process.
pub fn exit_code(name: &str, result: Result<(), Box<dyn std::error::Error>>) -> process::ExitCode {
    match result {
        Ok(()) => process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            process::ExitCode::FAILURE
        }
    }
}
