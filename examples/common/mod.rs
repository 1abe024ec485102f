//! What the server examples share: the command line (`--bind ADDR`,
//! `--cores N`), the runtime and the `listening on` line. (One socket per
//! core on the same address is the library's `bind_on_every_core`.)
//!
//! Not an example itself: `echo_tcp`, `echo_udp` and `hyper_server` include
//! it with `mod common;`, the `axum` and `tonic` examples of
//! `examples/web` with `#[path = "../../common/mod.rs"] mod common;`.

#![allow(dead_code)] // each example uses part of it

use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process;

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
        Self::parse_from(name, default_bind, std::env::args().skip(1).collect(), "")
    }

    /// [`Args::parse`] over `args` (the program's arguments less the ones
    /// an example took for itself); `extra_usage` lists those in the usage.
    pub fn parse_from(
        name: &str,
        default_bind: &str,
        args: Vec<String>,
        extra_usage: &str,
    ) -> Args {
        let usage = || {
            let mut text = usage(name, default_bind);
            if !extra_usage.is_empty() {
                text = format!("{text}\n{extra_usage}");
            }
            text
        };
        match Self::try_parse(args, default_bind) {
            Ok(Some(args)) => args,
            Ok(None) => {
                println!("{}", usage());
                process::exit(0);
            }
            Err(e) => {
                eprintln!("{name}: {e}\n{}", usage());
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
        let mut builder = Runtime::builder();
        builder.load_config()?;
        if let Some(n) = self.cores {
            builder.cores(n);
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
