//! EAL initialisation failures are errors with DPDK's reason, not aborts.
//!
//! One EAL per process, so each case runs in a child process (this test
//! binary again, with `--child <case>`, its own `--file-prefix`): the
//! child checks the error and exits 0; the parent checks that the child
//! exited normally (no abort, no signal) and printed the expected error.
//! Without a test harness (`harness = false`): the output imitates
//! libtest's so the totals of `scripts/test-all.sh` count these cases.

mod common;

use std::io;
use std::process::{Command, ExitCode};

use common::{eal_args, require_dpdk};
use insane_dpdk::{Eal, Port, PortConfig};

/// A case: the child's check; returns the error text it saw.
type Case = fn() -> Result<String, String>;

const CASES: &[(&str, Case)] = &[
    ("bad_option_is_einval_and_repeatable", bad_option),
    ("unknown_vdev_driver_is_enodev", unknown_vdev),
    (
        "vdev_that_fails_to_probe_shows_as_missing_port",
        failed_probe,
    ),
    ("nul_in_argument_is_rejected_before_the_eal", nul_argument),
];

fn bad_option() -> Result<String, String> {
    let args = eal_args("bad", 0, &["--definitely-not-an-eal-option".into()]);
    let e = Eal::init(&args)
        .err()
        .ok_or("init with a bad option succeeded")?;
    check(
        e.kind() == io::ErrorKind::InvalidInput,
        format!("kind {:?}: {e}", e.kind()),
    )?;
    check(
        e.raw_errno() == Some(libc::EINVAL),
        format!("errno {:?}", e.raw_errno()),
    )?;
    let msg = e.to_string();
    check(
        msg.contains("rte_eal_init") && msg.contains("Invalid argument"),
        msg.clone(),
    )?;
    check(msg.contains("--definitely-not-an-eal-option"), msg.clone())?;
    // A second call returns the first result; nothing crashes.
    let again = Eal::init(&args).err().ok_or("second init succeeded")?;
    check(again == e, format!("second error differs: {again}"))?;
    check(Eal::get().is_none(), "Eal::get() after a failure".into())?;
    let other = Eal::init(eal_args("bad2", 0, &[]))
        .err()
        .ok_or("init with other args ran")?;
    check(
        other.to_string().contains("one EAL per process"),
        other.to_string(),
    )?;
    Ok(msg)
}

fn unknown_vdev() -> Result<String, String> {
    let args = eal_args("novdev", 0, &["--vdev=net_nosuchdriver0".into()]);
    let e = Eal::init(&args)
        .err()
        .ok_or("init with an unknown vdev succeeded")?;
    // The EAL created its (empty) runtime directory before failing.
    let _ = std::fs::remove_dir(format!(
        "/var/run/dpdk/insane-novdev-{}",
        std::process::id()
    ));
    check(
        e.raw_errno() == Some(libc::ENODEV),
        format!("errno {:?}: {e}", e.raw_errno()),
    )?;
    check(e.to_string().contains("No such device"), e.to_string())?;
    Ok(e.to_string())
}

fn failed_probe() -> Result<String, String> {
    let args = eal_args("probe", 0, &["--vdev=net_memif0,role=bogus".into()]);
    let eal = Eal::init(&args).map_err(|e| format!("init: {e}"))?;
    check(eal.port_count() == 0, format!("{} ports", eal.port_count()))?;
    let e = Port::open(0, &PortConfig::default())
        .err()
        .ok_or("port 0 opened")?;
    check(
        e.kind() == io::ErrorKind::NotFound,
        format!("{:?}: {e}", e.kind()),
    )?;
    check(e.to_string().contains("--vdev"), e.to_string())?;
    let e2 = insane_dpdk::probe(&args, 0)
        .err()
        .ok_or("probe found port 0")?;
    check(
        e2.to_string().contains("port 0 does not exist"),
        e2.to_string(),
    )?;
    Ok(e.to_string())
}

fn nul_argument() -> Result<String, String> {
    let e = Eal::init(["--no-pci", "bad\0arg"])
        .err()
        .ok_or("NUL accepted")?;
    check(e.kind() == io::ErrorKind::InvalidInput, e.to_string())?;
    // The EAL was not touched: a valid init still works.
    let eal = Eal::init(eal_args("nul", 0, &["--vdev=net_null0".into()]))
        .map_err(|e| format!("valid init after the NUL error: {e}"))?;
    check(eal.port_count() == 1, format!("{} ports", eal.port_count()))?;
    Ok(e.to_string())
}

fn check(ok: bool, what: String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what) }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let name = args.get(pos + 1).cloned().unwrap_or_default();
        let Some((_, case)) = CASES.iter().find(|(n, _)| *n == name) else {
            eprintln!("no case {name}");
            return ExitCode::from(2);
        };
        return match case() {
            Ok(msg) => {
                println!("CHILD-OK: {msg}");
                ExitCode::SUCCESS
            }
            Err(why) => {
                println!("CHILD-FAILED: {why}");
                ExitCode::FAILURE
            }
        };
    }
    // `cargo test -- <filter>`: run the cases whose name contains it.
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned();
    let cases: Vec<_> = CASES
        .iter()
        .filter(|(n, _)| filter.as_ref().is_none_or(|f| n.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", cases.len());
    if !require_dpdk("eal_errors") {
        println!(
            "test result: ok. 0 passed; 0 failed; {} ignored; 0 measured; 0 filtered out\n",
            cases.len()
        );
        return ExitCode::SUCCESS;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let (mut passed, mut failed) = (0, 0);
    for (name, _) in &cases {
        let out = Command::new(&exe).args(["--child", name]).output();
        let verdict = match out {
            Err(e) => Err(format!("cannot spawn the child: {e}")),
            Ok(out) => {
                let stdout = String::from_utf8_lossy(&out.stdout);
                // The EAL's usage text goes through C's buffered stdout and
                // may be flushed around our line: look for the marker
                // anywhere.
                let line = stdout
                    .lines()
                    .find_map(|l| l.find("CHILD-").map(|i| l[i..].to_string()))
                    .unwrap_or_default();
                if out.status.success() && line.starts_with("CHILD-OK") {
                    Ok(line)
                } else {
                    Err(format!(
                        "child {} ({line}); stderr: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                            .lines()
                            .rev()
                            .take(5)
                            .collect::<Vec<_>>()
                            .join(" | ")
                    ))
                }
            }
        };
        match verdict {
            Ok(line) => {
                passed += 1;
                println!("test {name} ... ok  ({line})");
            }
            Err(why) => {
                failed += 1;
                println!("test {name} ... FAILED: {why}");
            }
        }
    }
    let status = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {status}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out\n"
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
