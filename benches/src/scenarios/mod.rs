//! Benchmark scenarios, one module each, plus what they share: the common
//! command-line options ([`Common`]), the registry of measurements a child
//! process can run ([`child_main`]) and [`isolated_try`], which runs a
//! measurement on its own thread so that a panic or a hang turns into a
//! `FAILED` cell instead of killing the whole run.
//!
//! A scenario exposes a `clap::Args` struct (flattening [`Common`]) and a
//! `run(&Args) -> Report` function; `main.rs` adds it as a subcommand and
//! takes care of printing and writing the report. The network scenarios
//! (`udp-rtt`, `tcp-echo`, `tcp-stream`, `qos-mix`) share their contestants, CPU
//! placement and server plumbing through [`net`]; they, `runtime` and
//! `xdp-rtt` measure each contestant in its own pinned child process
//! ([`net::each_contestant_in_rounds`]: alternating rounds, see
//! [`crate::rounds`]). The scenarios driving external
//! programs (`http`, `udp-rtt-c`, `tcp-bulk`, `grpc`) and `dpdk-rtt` (two
//! processes of its own) use [`isolated_try`].

pub mod baseline_servers;
pub mod dpdk_rtt;
pub mod external;
pub mod grpc_load;
pub mod memif_pair;
pub mod net;
pub mod qos_isolation;
pub mod qos_mix;
pub mod reliable;
pub mod runtime;
pub mod tcp_echo;
pub mod tcp_stream;
pub mod udp_rtt;
pub mod web;
pub mod xdp_rtt;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The child-process side of [`net::each_contestant_process`]: runs the
/// measurement named by `args[0]` (a scenario's `KEY`) and exits. `main`
/// calls it when the first argument is [`net::CHILD_COMMAND`].
pub fn child_main(args: &[String]) -> ! {
    net::child_main(args, measurement)
}

/// The measurement registered under `key` (a scenario's `KEY`).
fn measurement(key: &str) -> Option<net::ChildFn> {
    match key {
        udp_rtt::KEY => Some(udp_rtt::child),
        tcp_echo::KEY => Some(tcp_echo::child),
        tcp_stream::KEY => Some(tcp_stream::child),
        qos_mix::KEY => Some(qos_mix::child),
        qos_mix::BULK_KEY => Some(qos_mix::bulk_child),
        qos_isolation::KEY => Some(qos_isolation::child),
        qos_isolation::XDP_KEY => Some(qos_isolation::xdp_child),
        runtime::SPAWN_JOIN => Some(runtime::spawn_join_child),
        runtime::YIELD => Some(runtime::yield_child),
        runtime::ROUND_TRIP => Some(runtime::round_trip_child),
        runtime::TIMERS => Some(runtime::timers_child),
        runtime::MPSC => Some(runtime::mpsc_child),
        runtime::FILE_READ => Some(runtime::file_read_child),
        xdp_rtt::KEY => Some(xdp_rtt::child),
        _ => None,
    }
}

/// Options every scenario accepts.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// Shrink counts and repetitions so the scenario finishes in seconds.
    #[arg(long)]
    pub quick: bool,

    /// Directory where `<scenario>.md` and `<scenario>.json` are written.
    #[arg(long, default_value = "target/bench-report")]
    pub out: PathBuf,

    /// Rounds: every contestant is measured once per round, the order
    /// rotating from round to round (see `rounds.rs`; the median of the
    /// rounds and the best round are reported); defaults to 3 with
    /// --quick, 7 otherwise (runtime scenario), 1 with --quick, 3
    /// otherwise (udp-rtt, tcp-echo, http, grpc, udp-rtt-c), 3 with
    /// --quick, 5 otherwise (tcp-stream, tcp-bulk).
    #[arg(long)]
    pub repeats: Option<usize>,

    /// Untimed warm-up repetitions before the timed ones.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,

    /// Seconds one system may spend on one measurement before it is
    /// declared hung (its process is killed, or its thread abandoned, and
    /// the cell marked FAILED).
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,

    /// Run only the benchmarks whose name contains one of these strings
    /// (repeatable), e.g. `--only yield --only timer`.
    #[arg(long)]
    pub only: Vec<String>,

    /// A remark copied into the report's notes (repeatable), e.g. the
    /// state of the machine: `--note "machine shared with a build"`.
    #[arg(long)]
    pub note: Vec<String>,
}

impl Common {
    /// Whether the benchmark called `name` was selected by `--only`.
    pub fn selected(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| name.contains(o.as_str()))
    }

    /// Timed repetitions to use.
    pub fn repeats(&self) -> usize {
        self.repeats_or(3, 7)
    }

    /// Timed repetitions to use, with these defaults when `--repeats` is
    /// not given.
    pub fn repeats_or(&self, quick: usize, full: usize) -> usize {
        self.repeats
            .unwrap_or(if self.quick { quick } else { full })
            .max(1)
    }
}

/// Set once a measurement thread had to be abandoned: it may still be
/// burning a CPU, so later numbers of the run are suspect.
static ABANDONED: AtomicBool = AtomicBool::new(false);

/// Whether some measurement hung and its thread is still around.
pub fn abandoned_threads() -> bool {
    ABANDONED.load(Ordering::Relaxed)
}

/// Runs `f` on a fresh thread named `label`, waiting at most `timeout`.
///
/// Returns `Err` with a description if `f` returned one, panicked or did
/// not finish in time (the thread is then left running; see
/// [`abandoned_threads`]).
pub fn isolated_try<T, F>(label: &str, timeout: Duration, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, String> + Send + 'static,
{
    crate::progress::begin(label);
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(label.to_owned())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r.map_err(|p| panic_message(&*p)));
        });
    let handle = match spawned {
        Ok(h) => h,
        Err(e) => {
            say!("  {label:<36} cannot spawn thread: {e}");
            crate::progress::done();
            return Err(format!("cannot spawn thread: {e}"));
        }
    };
    let started = std::time::Instant::now();
    let result = match rx.recv_timeout(timeout) {
        Ok(r) => {
            let _ = handle.join();
            r.map_err(|m| format!("panicked: {m}")).and_then(|r| r)
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            ABANDONED.store(true, Ordering::Relaxed);
            Err(format!("hung: no result after {} s", timeout.as_secs()))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let _ = handle.join();
            Err("thread died without a result".to_owned())
        }
    };
    match &result {
        Ok(_) => say!(
            "  {label:<36} ok ({:.1} s)",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => say!("  {label:<36} FAILED: {e}"),
    }
    crate::progress::done();
    result
}

/// The message of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_names_a_measurement() {
        let keys = [
            udp_rtt::KEY,
            tcp_echo::KEY,
            tcp_stream::KEY,
            qos_mix::KEY,
            qos_mix::BULK_KEY,
            qos_isolation::KEY,
            qos_isolation::XDP_KEY,
            runtime::SPAWN_JOIN,
            runtime::YIELD,
            runtime::ROUND_TRIP,
            runtime::TIMERS,
            runtime::FILE_READ,
            xdp_rtt::KEY,
        ];
        for key in keys {
            assert!(measurement(key).is_some(), "{key}");
        }
        let mut unique = keys.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "two measurements share a key");
        assert!(measurement("nope").is_none());
    }

    #[test]
    fn an_unknown_contestant_is_an_error() {
        let err = measurement(runtime::YIELD).unwrap()("nope", "{}").unwrap_err();
        assert!(err.contains("no contestant"), "{err}");
    }
}
