//! The `tcp-stream` scenario: one TCP connection over 127.0.0.1 streams
//! from the client to the server in writes of 64 B, 1 KiB, 16 KiB and
//! 64 KiB (`--quick`: 64 B, 16 KiB, 64 KiB), up to 1 GiB or 1 Mi writes
//! per run (`--quick`: 128 MiB or 64 Ki writes); the server reads into a
//! 64 KiB buffer and discards. The report gives per write size the
//! throughput in Gbit/s, the writes (messages) per second and the CPU time
//! per write of both sides.
//!
//! Both ends are the contestant (like `udp-rtt`): insane with a 1-core
//! runtime per side (io_uring or epoll), tokio current-thread per side,
//! monoio (io_uring, owned buffers) or glommio 1-core runtimes per side, or
//! std blocking threads; the client on the client CPU, the server on the
//! server CPU. A run is timed from the first write until the client reads
//! the server's 1-byte acknowledgement that every byte arrived; the next
//! run starts on the same connection only after that, so runs never
//! overlap. The contestants are measured in alternating rounds
//! ([`crate::rounds`]): per round, one process and one timed run (after
//! the warm-up) per contestant.

use std::io::{Read, Write};
use std::net::{TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::net::{
    Contestant, CpuTimes, Ctx, NetArgs, Placement, cells, describe_run, each_contestant_in_rounds,
    finish, glommio_executor, insane_runtime, monoio_runtime, size_label, start_server,
    tokio_runtime,
};
use super::runtime::Idle;
use crate::report::{Report, Unit};
use crate::rounds::median_and_best_rows;

/// Options of the `tcp-stream` scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub net: NetArgs,

    /// MiB streamed per timed run at most; default 1024 (--quick: 128).
    /// Small writes stream less: at most a fixed number of writes per run
    /// (1 Mi; --quick: 64 Ki).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub mib: Option<u64>,

    /// Write sizes in bytes (comma-separated); default 64,1024,16384,65536
    /// (--quick: 64,16384,65536).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1048576))]
    pub writes: Vec<u32>,
}

/// The contestants, in column order.
const CONTESTANTS: [Contestant; 7] = [
    Contestant::InsaneUring,
    Contestant::InsaneUringOwned,
    Contestant::InsaneEpoll,
    Contestant::TokioCt,
    Contestant::Monoio,
    Contestant::Glommio,
    Contestant::StdBlocking,
];

/// Size of the server's read buffer (and the largest default write).
const CHUNK: usize = 64 * 1024;

const MIB: u64 = 1024 * 1024;

/// A std side gives up after this long without progress.
const STD_IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Settings derived from [`Args`].
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Params {
    /// Size of one write of the sender.
    write: usize,
    /// Bytes of the untimed warm-up transfer (0: none).
    warmup_bytes: u64,
    /// Bytes of one timed run.
    bytes: u64,
    repeats: usize,
    idle: Idle,
    placement: Placement,
}

impl Params {
    /// Bytes per transfer, warm-up first (if any), then the timed runs.
    fn phases(&self) -> Vec<u64> {
        let warm = (self.warmup_bytes > 0).then_some(self.warmup_bytes);
        warm.into_iter()
            .chain(std::iter::repeat_n(self.bytes, self.repeats))
            .collect()
    }
}

/// One timed run.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct StreamRun {
    /// Payload bits per second.
    bits_per_sec: f64,
    /// Writes (messages) per second.
    writes_per_sec: f64,
    /// Process CPU time (both sides) per write, ns.
    cpu_per_write: f64,
}

/// Runs the scenario and returns its report.
pub fn run(args: &Args) -> Report {
    let c = &args.net.common;
    let placement = Placement::new(args.net.no_pin);
    // Runs are short (a fraction of a second): more rounds make the
    // median robust against a hiccup of the host.
    let rounds = c.repeats_or(3, 5);
    let mib = args.mib.unwrap_or(if c.quick { 128 } else { 1024 });
    let warmup_mib = c.warmup as u64 * if c.quick { 16 } else { 64 };
    let max_writes: u64 = if c.quick { 64 << 10 } else { 1 << 20 };
    let writes: Vec<u32> = if args.writes.is_empty() {
        if c.quick {
            vec![64, 16 << 10, 64 << 10]
        } else {
            vec![64, 1 << 10, 16 << 10, 64 << 10]
        }
    } else {
        args.writes.clone()
    };
    let mut notes = Vec::new();
    let contestants = super::net::available(&args.net, &CONTESTANTS, &mut notes);
    let names: Vec<&str> = contestants.iter().map(|c| c.name()).collect();
    let mut report = Report::new("tcp-stream", &names);
    describe_run(&mut report, &args.net, &placement, rounds, true);
    crate::rounds::describe(&mut report, rounds);
    report.param(
        "bytes per timed run",
        format!("{mib} MiB or {max_writes} writes, whichever is less"),
    );
    report.param(
        "warm-up transfer",
        format!("{warmup_mib} MiB or a quarter of a timed run, whichever is less"),
    );
    report.param(
        "write sizes",
        writes
            .iter()
            .map(|&w| size_label(w))
            .collect::<Vec<_>>()
            .join(", "),
    );
    report.param("read buffer", "64 KiB");
    say!(
        "tcp-stream scenario ({} mode)",
        if c.quick { "quick" } else { "full" }
    );

    for &write in &writes {
        let label = format!("{} writes", size_label(write));
        if !(c.selected(&label) || c.selected("stream")) {
            continue;
        }
        let bytes = (mib * MIB).min(u64::from(write) * max_writes);
        let p = Params {
            write: write as usize,
            warmup_bytes: (warmup_mib * MIB).min(bytes / 4),
            bytes,
            // One timed run per process, one process per round.
            repeats: 1,
            idle: args.net.idle,
            placement,
        };
        let results: Vec<Result<Vec<StreamRun>, String>> = each_contestant_in_rounds(
            &format!("tcp-stream {label}"),
            KEY,
            &contestants,
            placement,
            args.net.limits(),
            rounds,
            &p,
        );
        median_and_best_rows(
            &mut report,
            &format!("{label} throughput"),
            Unit::BitsPerSec,
            cells(&results, |r| r.bits_per_sec),
        );
        median_and_best_rows(
            &mut report,
            &format!("{label} messages"),
            Unit::Rate { what: "writes" },
            cells(&results, |r| r.writes_per_sec),
        );
        median_and_best_rows(
            &mut report,
            &format!("{label} CPU per message (both sides)"),
            Unit::Nanos,
            cells(&results, |r| r.cpu_per_write),
        );
    }

    report.notes.extend(notes);
    report.notes.push(
        "throughput counts payload bytes from the first write to the server's acknowledgement; \
         a message is one write of the sender; CPU per message is process CPU time (getrusage, \
         both sides) over the run divided by the writes."
            .to_owned(),
    );
    finish(&mut report);
    report
}

/// The name this scenario's measurement is registered under for child
/// processes (see [`super::child_main`]).
pub const KEY: &str = "tcp-stream";

/// [`measure`] in a child process: parameters and result as JSON.
pub fn child(who: &str, params: &str) -> Result<serde_json::Value, String> {
    super::net::child_measure(who, params, measure)
}

/// Measures one contestant: starts its receiving server, runs its sending
/// client here.
fn measure(who: Contestant, p: Params) -> Result<Vec<StreamRun>, String> {
    let phases = p.phases();
    let warm = usize::from(p.warmup_bytes > 0);
    let (runs, served) = match who {
        Contestant::InsaneUring | Contestant::InsaneEpoll => {
            let driver = who.insane_driver().expect("an insane contestant");
            let server_phases = phases.clone();
            let server = start_server("stream-server", p.placement.server, move |ready| {
                insane_runtime(driver, p.idle)?.block_on(async move {
                    let listener = insane::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .ctx("bind")?;
                    ready.send(listener.local_addr().ctx("local_addr")?);
                    let (s, _) = listener.accept().await.ctx("accept")?;
                    s.set_nodelay(true).ctx("set_nodelay")?;
                    sink(s, &server_phases).await
                })
            })?;
            let addr = server.addr;
            let runs = insane_runtime(driver, p.idle)?.block_on(async move {
                let s = insane::net::TcpStream::connect(addr).await.ctx("connect")?;
                s.set_nodelay(true).ctx("set_nodelay")?;
                source(s, &phases, p.write).await
            });
            (runs, server.join())
        }
        Contestant::InsaneUringOwned => {
            let driver = who.insane_driver().expect("an insane contestant");
            let server_phases = phases.clone();
            let server = start_server("stream-server", p.placement.server, move |ready| {
                insane_runtime(driver, p.idle)?.block_on(async move {
                    let listener = insane::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .ctx("bind")?;
                    ready.send(listener.local_addr().ctx("local_addr")?);
                    let (s, _) = listener.accept().await.ctx("accept")?;
                    s.set_nodelay(true).ctx("set_nodelay")?;
                    owned_sink(s, &server_phases).await
                })
            })?;
            let addr = server.addr;
            let runs = insane_runtime(driver, p.idle)?.block_on(async move {
                let s = insane::net::TcpStream::connect(addr).await.ctx("connect")?;
                s.set_nodelay(true).ctx("set_nodelay")?;
                owned_source(s, &phases, p.write).await
            });
            (runs, server.join())
        }
        Contestant::TokioCt => {
            let server_phases = phases.clone();
            let server = start_server("stream-server", p.placement.server, move |ready| {
                tokio_runtime()?.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .ctx("bind")?;
                    ready.send(listener.local_addr().ctx("local_addr")?);
                    let (s, _) = listener.accept().await.ctx("accept")?;
                    s.set_nodelay(true).ctx("set_nodelay")?;
                    sink(s, &server_phases).await
                })
            })?;
            let addr = server.addr;
            let runs = tokio_runtime()?.block_on(async move {
                let s = tokio::net::TcpStream::connect(addr).await.ctx("connect")?;
                s.set_nodelay(true).ctx("set_nodelay")?;
                source(s, &phases, p.write).await
            });
            (runs, server.join())
        }
        Contestant::StdBlocking => {
            let server_phases = phases.clone();
            let server = start_server("stream-server", p.placement.server, move |ready| {
                let listener = StdTcpListener::bind("127.0.0.1:0").ctx("bind")?;
                ready.send(listener.local_addr().ctx("local_addr")?);
                let (s, _) = listener.accept().ctx("accept")?;
                std_configure(&s)?;
                std_sink(s, &server_phases)
            })?;
            let runs = StdTcpStream::connect(server.addr)
                .ctx("connect")
                .and_then(|s| {
                    std_configure(&s)?;
                    std_source(s, &phases, p.write)
                });
            (runs, server.join())
        }
        Contestant::Monoio => {
            let server_phases = phases.clone();
            let server = start_server("stream-server", p.placement.server, move |ready| {
                monoio_runtime()?.block_on(async move {
                    let listener = monoio::net::TcpListener::bind("127.0.0.1:0").ctx("bind")?;
                    ready.send(listener.local_addr().ctx("local_addr")?);
                    let (s, _) = listener.accept().await.ctx("accept")?;
                    s.set_nodelay(true).ctx("set_nodelay")?;
                    monoio_sink(s, &server_phases).await
                })
            })?;
            let addr = server.addr;
            let runs = monoio_runtime()?.block_on(async move {
                let s = monoio::net::TcpStream::connect(addr).await.ctx("connect")?;
                s.set_nodelay(true).ctx("set_nodelay")?;
                monoio_source(s, &phases, p.write).await
            });
            (runs, server.join())
        }
        Contestant::Glommio => {
            let server_phases = phases.clone();
            let server = start_server("stream-server", p.placement.server, move |ready| {
                glommio_executor()?.run(async move {
                    let listener = glommio::net::TcpListener::bind("127.0.0.1:0").ctx("bind")?;
                    ready.send(listener.local_addr().ctx("local_addr")?);
                    let s = listener.accept().await.ctx("accept")?;
                    s.set_nodelay(true).ctx("set_nodelay")?;
                    futures_sink(s, &server_phases).await
                })
            })?;
            let addr = server.addr;
            let runs = glommio_executor()?.run(async move {
                let s = glommio::net::TcpStream::connect(addr)
                    .await
                    .ctx("connect")?;
                s.set_nodelay(true).ctx("set_nodelay")?;
                futures_source(s, &phases, p.write).await
            });
            (runs, server.join())
        }
        Contestant::StdBusyPoll | Contestant::InsaneEndpoint => {
            return Err(format!("{} is not a tcp-stream contestant", who.name()));
        }
    };
    match (runs, served) {
        (Ok(runs), Ok(_)) => Ok(runs.into_iter().skip(warm).collect()),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(client), Err(server)) => Err(format!("{server} (client: {client})")),
    }
}

/// The sender: per phase, writes that many bytes in [`CHUNK`] writes and
/// waits for the 1-byte acknowledgement; one [`StreamRun`] per phase.
async fn source<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    phases: &[u64],
    write: usize,
) -> Result<Vec<StreamRun>, String> {
    let data = vec![0xab_u8; write];
    let mut ack = [0_u8; 1];
    let mut runs = Vec::with_capacity(phases.len());
    for &bytes in phases {
        let cpu0 = CpuTimes::now();
        let t0 = Instant::now();
        let mut sent = 0;
        while sent < bytes {
            let n = (bytes - sent).min(write as u64) as usize;
            s.write_all(&data[..n]).await.ctx("write")?;
            sent += n as u64;
        }
        s.read_exact(&mut ack).await.ctx("read acknowledgement")?;
        runs.push(run_result(
            bytes,
            write,
            t0.elapsed(),
            CpuTimes::now().since(&cpu0),
        ));
    }
    s.shutdown().await.ctx("shutdown")?;
    Ok(runs)
}

/// The receiver: per phase, reads exactly that many bytes (discarding
/// them) and acknowledges with one byte; then expects EOF. Returns the
/// bytes received.
async fn sink<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, phases: &[u64]) -> Result<u64, String> {
    let mut buf = vec![0_u8; CHUNK];
    let mut total = 0;
    for &want in phases {
        let mut got = 0;
        while got < want {
            let n = s.read(&mut buf).await.ctx("read")?;
            if n == 0 {
                return Err(format!("EOF after {got} of {want} bytes"));
            }
            got += n as u64;
        }
        if got != want {
            return Err(format!("received {got} bytes, expected {want}"));
        }
        total += got;
        s.write_all(&[1]).await.ctx("write acknowledgement")?;
    }
    match s.read(&mut buf).await.ctx("read EOF")? {
        0 => Ok(total),
        n => Err(format!("{n} unexpected bytes after the last transfer")),
    }
}

/// [`source`] with insane's owned-buffer calls: `write_all_owned` of one
/// `write`-byte `Vec` (sent with `SEND_ZC` on io_uring from the driver's
/// 16 KiB zero-copy threshold on) that comes back after each write.
async fn owned_source(
    mut s: insane::net::TcpStream,
    phases: &[u64],
    write: usize,
) -> Result<Vec<StreamRun>, String> {
    let mut data = vec![0xab_u8; write];
    let mut runs = Vec::with_capacity(phases.len());
    for &bytes in phases {
        let cpu0 = CpuTimes::now();
        let t0 = Instant::now();
        let mut sent = 0;
        while sent < bytes {
            let n = (bytes - sent).min(write as u64) as usize;
            data.truncate(n);
            let (res, d) = s.write_all_owned(data).await;
            res.ctx("write_all_owned")?;
            data = d;
            sent += n as u64;
        }
        let (res, _) = s.read_owned(Vec::with_capacity(1)).await;
        if res.ctx("read acknowledgement")? != 1 {
            return Err("connection closed before the acknowledgement".to_owned());
        }
        runs.push(run_result(
            bytes,
            write,
            t0.elapsed(),
            CpuTimes::now().since(&cpu0),
        ));
    }
    s.shutdown().await.ctx("shutdown")?;
    Ok(runs)
}

/// [`sink`] with insane's owned-buffer calls: `read_owned` into one
/// 64 KiB `Vec`.
async fn owned_sink(s: insane::net::TcpStream, phases: &[u64]) -> Result<u64, String> {
    let mut buf = Vec::with_capacity(CHUNK);
    let mut total = 0;
    for &want in phases {
        let mut got = 0;
        while got < want {
            buf.clear();
            let (res, b) = s.read_owned(buf).await;
            buf = b;
            let n = res.ctx("read_owned")?;
            if n == 0 {
                return Err(format!("EOF after {got} of {want} bytes"));
            }
            got += n as u64;
        }
        if got != want {
            return Err(format!("received {got} bytes, expected {want}"));
        }
        total += got;
        let (res, _) = s.write_all_owned(&b"\x01"[..]).await;
        res.ctx("write acknowledgement")?;
    }
    buf.clear();
    let (res, _) = s.read_owned(buf).await;
    match res.ctx("read EOF")? {
        0 => Ok(total),
        n => Err(format!("{n} unexpected bytes after the last transfer")),
    }
}

/// [`source`] over the `futures` I/O traits (glommio's streams).
async fn futures_source<S>(mut s: S, phases: &[u64], write: usize) -> Result<Vec<StreamRun>, String>
where
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
{
    use futures::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let data = vec![0xab_u8; write];
    let mut ack = [0_u8; 1];
    let mut runs = Vec::with_capacity(phases.len());
    for &bytes in phases {
        let cpu0 = CpuTimes::now();
        let t0 = Instant::now();
        let mut sent = 0;
        while sent < bytes {
            let n = (bytes - sent).min(write as u64) as usize;
            s.write_all(&data[..n]).await.ctx("write")?;
            sent += n as u64;
        }
        s.flush().await.ctx("flush")?;
        s.read_exact(&mut ack).await.ctx("read acknowledgement")?;
        runs.push(run_result(
            bytes,
            write,
            t0.elapsed(),
            CpuTimes::now().since(&cpu0),
        ));
    }
    s.close().await.ctx("close")?;
    Ok(runs)
}

/// [`sink`] over the `futures` I/O traits (glommio's streams).
async fn futures_sink<S>(mut s: S, phases: &[u64]) -> Result<u64, String>
where
    S: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin,
{
    use futures::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0_u8; CHUNK];
    let mut total = 0;
    for &want in phases {
        let mut got = 0;
        while got < want {
            let n = s.read(&mut buf).await.ctx("read")?;
            if n == 0 {
                return Err(format!("EOF after {got} of {want} bytes"));
            }
            got += n as u64;
        }
        if got != want {
            return Err(format!("received {got} bytes, expected {want}"));
        }
        total += got;
        s.write_all(&[1]).await.ctx("write acknowledgement")?;
        s.flush().await.ctx("flush")?;
    }
    match s.read(&mut buf).await.ctx("read EOF")? {
        0 => Ok(total),
        n => Err(format!("{n} unexpected bytes after the last transfer")),
    }
}

/// [`source`] on a monoio stream: `write_all` of one `write`-byte `Vec` that
/// comes back after each write (monoio's I/O is owned-buffer only).
async fn monoio_source(
    mut s: monoio::net::TcpStream,
    phases: &[u64],
    write: usize,
) -> Result<Vec<StreamRun>, String> {
    use monoio::io::{AsyncReadRentExt as _, AsyncWriteRent as _, AsyncWriteRentExt as _};
    let mut data = vec![0xab_u8; write];
    let mut ack = Vec::with_capacity(1);
    let mut runs = Vec::with_capacity(phases.len());
    for &bytes in phases {
        let cpu0 = CpuTimes::now();
        let t0 = Instant::now();
        let mut sent = 0;
        while sent < bytes {
            let n = (bytes - sent).min(write as u64) as usize;
            data.truncate(n);
            let (res, d) = s.write_all(data).await;
            res.ctx("write")?;
            data = d;
            sent += n as u64;
        }
        ack.clear();
        let (res, a) = s.read_exact(ack).await;
        ack = a;
        res.ctx("read acknowledgement")?;
        runs.push(run_result(
            bytes,
            write,
            t0.elapsed(),
            CpuTimes::now().since(&cpu0),
        ));
    }
    s.shutdown().await.ctx("shutdown")?;
    Ok(runs)
}

/// [`sink`] on a monoio stream: `read` into one 64 KiB `Vec`.
async fn monoio_sink(mut s: monoio::net::TcpStream, phases: &[u64]) -> Result<u64, String> {
    use monoio::io::{AsyncReadRent as _, AsyncWriteRentExt as _};
    let mut buf = Vec::with_capacity(CHUNK);
    let mut total = 0;
    for &want in phases {
        let mut got = 0;
        while got < want {
            buf.clear();
            let (res, b) = s.read(buf).await;
            buf = b;
            let n = res.ctx("read")?;
            if n == 0 {
                return Err(format!("EOF after {got} of {want} bytes"));
            }
            got += n as u64;
        }
        if got != want {
            return Err(format!("received {got} bytes, expected {want}"));
        }
        total += got;
        let (res, _) = s.write_all(vec![1_u8]).await;
        res.ctx("write acknowledgement")?;
    }
    buf.clear();
    let (res, _) = s.read(buf).await;
    match res.ctx("read EOF")? {
        0 => Ok(total),
        n => Err(format!("{n} unexpected bytes after the last transfer")),
    }
}

fn std_configure(s: &StdTcpStream) -> Result<(), String> {
    s.set_nodelay(true).ctx("set_nodelay")?;
    s.set_read_timeout(Some(STD_IDLE_LIMIT))
        .ctx("set_read_timeout")?;
    s.set_write_timeout(Some(STD_IDLE_LIMIT))
        .ctx("set_write_timeout")
}

/// [`source`] with blocking std calls.
fn std_source(mut s: StdTcpStream, phases: &[u64], write: usize) -> Result<Vec<StreamRun>, String> {
    let data = vec![0xab_u8; write];
    let mut ack = [0_u8; 1];
    let mut runs = Vec::with_capacity(phases.len());
    for &bytes in phases {
        let cpu0 = CpuTimes::now();
        let t0 = Instant::now();
        let mut sent = 0;
        while sent < bytes {
            let n = (bytes - sent).min(write as u64) as usize;
            s.write_all(&data[..n]).ctx("write")?;
            sent += n as u64;
        }
        s.read_exact(&mut ack).ctx("read acknowledgement")?;
        runs.push(run_result(
            bytes,
            write,
            t0.elapsed(),
            CpuTimes::now().since(&cpu0),
        ));
    }
    s.shutdown(std::net::Shutdown::Write).ctx("shutdown")?;
    Ok(runs)
}

/// [`sink`] with blocking std calls.
fn std_sink(mut s: StdTcpStream, phases: &[u64]) -> Result<u64, String> {
    let mut buf = vec![0_u8; CHUNK];
    let mut total = 0;
    for &want in phases {
        let mut got = 0;
        while got < want {
            let n = s.read(&mut buf).ctx("read")?;
            if n == 0 {
                return Err(format!("EOF after {got} of {want} bytes"));
            }
            got += n as u64;
        }
        if got != want {
            return Err(format!("received {got} bytes, expected {want}"));
        }
        total += got;
        s.write_all(&[1]).ctx("write acknowledgement")?;
    }
    match s.read(&mut buf).ctx("read EOF")? {
        0 => Ok(total),
        n => Err(format!("{n} unexpected bytes after the last transfer")),
    }
}

fn run_result(bytes: u64, write: usize, elapsed: Duration, cpu: CpuTimes) -> StreamRun {
    let writes = bytes.div_ceil(write as u64).max(1) as f64;
    StreamRun {
        bits_per_sec: bytes as f64 * 8.0 / elapsed.as_secs_f64(),
        writes_per_sec: writes / elapsed.as_secs_f64(),
        cpu_per_write: cpu.process.as_nanos() as f64 / writes,
    }
}
