//! Two processes of this binary joined by a DPDK `net_memif` link, for
//! scenarios that run insane endpoints over DPDK on both ends (the EAL is
//! initialised once per process, so each end needs a process of its own):
//! spawning them, their `[dpdk]` configuration, reading their lines, and
//! the shutdown order the memif PMD needs. Used by `reliable` and by the
//! isolation table of `qos-mix`.
//!
//! The protocol: the server (lcore 0) starts and prints `READY`; the
//! client (lcore 1) starts, measures, prints `RESULT <rest>`, stops
//! polling and waits for a line on its stdin; the server is then told to
//! finish (a line on its stdin) and exits, then the client. Each child
//! reports a failure as a `FAILED <why>` line. The order matters: the
//! memif PMD unmaps shared memory when the peer goes, which can crash a
//! receive in flight on the other side.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::net::Ctx;

/// Longest wait for a child's line.
const LINE_LIMIT: Duration = Duration::from_secs(120);

/// The environment variable that tells a child the memif socket file.
pub const SOCK_VAR: &str = "INSANE_BENCH_MEMIF_SOCK";

/// Runs a server and a client process of this binary, each with
/// `role_var` set to `server` or `client`, [`SOCK_VAR`] set to a fresh
/// socket file, and `envs`; returns the rest of the client's `RESULT`
/// line.
pub fn run(role_var: &str, envs: &[(&str, String)]) -> Result<String, String> {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let sock = format!(
        "/tmp/insane-bench-memif-pair-{}-{}.sock",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    );
    let _ = std::fs::remove_file(&sock);
    let spawn = |role: &str| {
        let exe = std::env::current_exe().ctx("current exe")?;
        Command::new(exe)
            .env(role_var, role)
            .env(SOCK_VAR, &sock)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .ctx(&format!("spawning the memif {role}"))
    };
    let mut server = spawn("server")?;
    let server_rx = lines(&mut server);
    let result = wait_for(&server_rx, "READY", "server").and_then(|_| {
        let mut client = spawn("client")?;
        let client_rx = lines(&mut client);
        let result = wait_for(&client_rx, "RESULT", "client");
        // The client stopped polling: the server stops, then the client
        // may go.
        finish(&mut server);
        finish(&mut client);
        result
    });
    finish(&mut server);
    let _ = std::fs::remove_file(&sock);
    result
}

/// The `[dpdk]` configuration of one end: port 0 a memif on the socket
/// file of [`SOCK_VAR`] (server on lcore 0, client on lcore 1), address
/// `ip/24`, MAC `mac`, EAL file prefix `prefix`.
pub fn config(
    prefix: &str,
    server: bool,
    ip: Ipv4Addr,
    mac: &str,
) -> Result<insane::config::Config, String> {
    let sock = std::env::var(SOCK_VAR).ctx(SOCK_VAR)?;
    let (role, lcore) = if server { ("server", 0) } else { ("client", 1) };
    let eal = insane_dpdk::memif_eal_args(prefix, role, lcore, &sock, mac);
    let eal: Vec<String> = eal.iter().map(|a| format!("{a:?}")).collect();
    insane::config::Config::from_toml_str(
        &format!(
            "[dpdk]\neal = [{}]\nport = 0\naddress = \"{ip}/24\"\nqueues = 1\n",
            eal.join(", ")
        ),
        &format!("{prefix} (memif)"),
    )
    .ctx("config")
}

/// Prints a child's line (`READY`, `RESULT ...`, `FAILED ...`) at once.
pub fn say_to_parent(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// Waits until the parent says this child may finish.
pub fn wait_for_parent() {
    let _ = std::io::stdin().read_line(&mut String::new());
}

/// A child's exit code for its result; a failure is reported to the
/// parent first (`FAILED <why>`).
pub fn exit_code(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say_to_parent(&format!("FAILED {e}"));
            ExitCode::FAILURE
        }
    }
}

/// The child's stdout lines, forwarded by a thread.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// The first line starting with `prefix` (its rest), or the child's
/// failure.
fn wait_for(rx: &mpsc::Receiver<String>, prefix: &str, who: &str) -> Result<String, String> {
    let until = Instant::now() + LINE_LIMIT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Ok(rest.trim().to_owned());
                }
                if let Some(why) = line.strip_prefix("FAILED") {
                    return Err(format!("memif {who}:{why}"));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!("memif {who}: no {prefix} within {LINE_LIMIT:?}"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!("memif {who} exited before {prefix}"));
            }
        }
    }
}

/// Tells `child` to finish (a line on its stdin) and waits for it,
/// killing it after 30 s.
fn finish(child: &mut Child) {
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "bye");
    }
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}
