//! Shared by the DPDK test binaries.

#![allow(dead_code)]

/// The CI rule: `true` when this build has DPDK; otherwise prints why and
/// returns `false` (skip), except under `CI=true`, where it panics.
#[track_caller]
pub fn require_dpdk(test: &str) -> bool {
    if insane_dpdk::AVAILABLE {
        return true;
    }
    let why = insane_dpdk::Error::unavailable();
    if insane_testhosts::in_ci() {
        panic!("{test}: DPDK is required under CI: {why}");
    }
    eprintln!("skipping {test}: {why}");
    false
}

/// EAL arguments for a test process: [`insane_dpdk::vdev_eal_args`] with
/// the file prefix `insane-{tag}`, plus `extra`.
pub fn eal_args(tag: &str, lcore: u32, extra: &[String]) -> Vec<String> {
    insane_dpdk::vdev_eal_args(&format!("insane-{tag}"), lcore, extra)
}

/// EAL arguments of one side (`role`: `server` or `client`) of a
/// two-process `net_memif` test: [`insane_dpdk::memif_eal_args`] with the
/// file prefix `insane-{tag}`.
pub fn memif_eal_args(tag: &str, role: &str, lcore: u32, sock: &str, mac: &str) -> Vec<String> {
    insane_dpdk::memif_eal_args(&format!("insane-{tag}"), role, lcore, sock, mac)
}

/// Initialises the EAL with `args` and opens port 0 with one queue pair,
/// returned (it keeps the port open). For single-port PMD tests.
pub fn open_port0_queue(args: &[String]) -> Result<insane_dpdk::Queue, String> {
    insane_dpdk::Eal::init(args).map_err(|e| e.to_string())?;
    let mut port = insane_dpdk::Port::open(0, &insane_dpdk::PortConfig::default())
        .map_err(|e| e.to_string())?;
    port.take_queue(0)
        .ok_or_else(|| "port 0 has no queue 0".to_string())
}

/// The kernel side of a stack-echo test: sends `count` datagrams
/// `payload(0)`, `payload(1)`, ... from `sock` to `target`, one at a time,
/// and checks that each comes back intact from `target`. Only the first
/// datagram is retried (up to `first_tries` times, 500 ms each: ARP and
/// the link coming up); any later loss fails. Returns how many were
/// checked.
pub fn kernel_echoes(
    sock: &std::net::UdpSocket,
    target: std::net::SocketAddrV4,
    count: u64,
    payload: impl Fn(u64) -> Vec<u8>,
    first_tries: u32,
) -> Result<u64, String> {
    sock.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 2048];
    let mut checked = 0u64;
    for i in 0..count {
        let p = payload(i);
        let mut tries = 0;
        loop {
            tries += 1;
            sock.send_to(&p, target).map_err(|e| e.to_string())?;
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if from != std::net::SocketAddr::V4(target) {
                        return Err(format!("reply from {from}"));
                    }
                    if buf[..n] != p[..] {
                        return Err(format!("echo {i} differs ({n} bytes)"));
                    }
                    checked += 1;
                    break;
                }
                Err(e) if i == 0 && tries < first_tries => {
                    eprintln!("first datagram: {e}, retrying");
                }
                Err(e) => return Err(format!("datagram {i}: {e}")),
            }
        }
    }
    Ok(checked)
}

/// The `main` of a `harness = false` DPDK test binary that holds one test
/// (an EAL of its own, or child processes): applies the name filter of
/// `cargo test NAME`, the CI rule of [`require_dpdk`], runs `test` and
/// prints libtest's lines, so `cargo test` reports it like any other.
/// `test` returns a one-line report on success, the reason on failure.
pub fn run_single_test(
    name: &str,
    test: impl FnOnce() -> Result<String, String>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let summary = |passed: u32, failed: u32, ignored: u32, filtered: u32| {
        let verdict = if failed == 0 { "ok" } else { "FAILED" };
        format!(
            "\ntest result: {verdict}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; {filtered} filtered out\n"
        )
    };
    let args: Vec<String> = std::env::args().collect();
    if let Some(filter) = args.iter().skip(1).find(|a| !a.starts_with('-'))
        && !name.contains(filter.as_str())
    {
        println!("\nrunning 0 tests\n{}", summary(0, 0, 0, 1));
        return ExitCode::SUCCESS;
    }
    println!("\nrunning 1 test");
    if !insane_dpdk::AVAILABLE {
        let why = insane_dpdk::Error::unavailable();
        if insane_testhosts::in_ci() {
            println!("test {name} ... FAILED: DPDK is required under CI: {why}");
            println!("{}", summary(0, 1, 0, 0));
            return ExitCode::FAILURE;
        }
        eprintln!("skipping {name}: {why}");
        println!("test {name} ... ignored\n{}", summary(0, 0, 1, 0));
        return ExitCode::SUCCESS;
    }
    match test() {
        Ok(report) => {
            println!("test {name} ... ok ({report})\n{}", summary(1, 0, 0, 0));
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("test {name} ... FAILED: {why}\n{}", summary(0, 1, 0, 0));
            ExitCode::FAILURE
        }
    }
}

/// Starts this test binary again as `--child ARG` (the other process of a
/// two-process test, with its own EAL), stdin and stdout piped, and
/// returns it with its stdout lines, forwarded by a thread. The parent
/// ends the child by writing a line to its stdin (or killing it).
pub fn spawn_child(
    arg: &str,
) -> Result<(std::process::Child, std::sync::mpsc::Receiver<String>), String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["--child", arg])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning the child process: {e}"))?;
    let stdout = child.stdout.take().ok_or("the child's stdout")?;
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, line_rx))
}

/// `forwarded: N` of the stack's receive counters in a userspace-stack
/// endpoint's `diagnostics()`: the datagrams its core handed over to
/// another core's queue (see `insane_net::stack::group`).
pub fn forwarded_of(diagnostics: &str) -> Option<u64> {
    let at = diagnostics.find("forwarded: ")? + "forwarded: ".len();
    diagnostics[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The child side of a two-process test ([`spawn_child`]): when this
/// process was started with `--child ARG`, runs `child(ARG)`, prints
/// `CHILD-OK <report>` or `CHILD-FAILED <why>` for the parent, then waits
/// — keeping what `child` returned alive (an open port), not polling —
/// until the parent writes a line (it has stopped polling the link), and
/// returns the exit code. `None` in the parent.
pub fn child_main<T>(
    child: impl FnOnce(&str) -> Result<(String, T), String>,
) -> Option<std::process::ExitCode> {
    use std::io::Write;
    let args: Vec<String> = std::env::args().collect();
    let pos = args.iter().position(|a| a == "--child")?;
    let arg = args.get(pos + 1).cloned().unwrap_or_default();
    let (ok, _kept) = match child(&arg) {
        Ok((report, kept)) => {
            println!("CHILD-OK {report}");
            (true, Some(kept))
        }
        Err(why) => {
            println!("CHILD-FAILED {why}");
            (false, None)
        }
    };
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    Some(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// Ends a child started by [`spawn_child`]: writes a line to its stdin
/// (its signal to exit), waits up to `limit`, and kills it after that.
/// Its exit status; `None` when it had to be killed.
pub fn finish_child(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    use std::io::Write;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "bye");
    }
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The parent's verdict once the child has gone ([`finish_child`]'s
/// status): `report` when it exited successfully, else why not, with the
/// report.
pub fn child_verdict(
    status: Option<std::process::ExitStatus>,
    report: String,
) -> Result<String, String> {
    match status {
        Some(s) if s.success() => Ok(report),
        Some(s) => Err(format!("client exited with {s} after: {report}")),
        None => Err(format!("client did not exit after: {report}")),
    }
}

/// Payload `i` of a kernel ↔ stack echo test: 8 bytes of `i`, then a
/// pattern; every length from 8 to 1472 bytes occurs.
pub fn numbered_payload(i: u64) -> Vec<u8> {
    let len = 8 + (i as usize * 7919) % 1465;
    let mut p: Vec<u8> = (0..len).map(|j| (i as usize * 7 + j * 5) as u8).collect();
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}
