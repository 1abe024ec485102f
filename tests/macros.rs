//! `#[insane::main]` and `#[insane::test]` as users write them: every
//! argument form, return types with `?`, `#[should_panic]`, `#[ignore]`,
//! and `main` functions called from tests.
//!
//! The compile-fail cases (bad arguments, missing `async`, ...) are unit
//! tests of the expansion in `macros/src/`.
//!
//! The last part runs this binary again in child processes, each with its
//! own working directory and `INSANE_*` variables, to show how the
//! attributes, `insane.toml` and the environment combine.

#![deny(warnings)]

use std::cell::Cell;
use std::collections::HashMap;
use std::error::Error;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use insane::runtime::Runtime;

/// Whether the process configuration (`insane.toml`, `INSANE_*`) sets the
/// core count, in which case it is not the one written in the attribute.
fn cores_overridden() -> bool {
    insane::config::Config::load().is_ok_and(|c| c.runtime.cores.is_some())
}

fn assert_cores(expected: usize) {
    assert_eq!(Runtime::current_core(), Some(0), "the body runs on core 0");
    if !cores_overridden() {
        assert_eq!(Runtime::cores(), Some(expected));
    }
}

/// Yields once, so that the body really is polled more than once.
async fn yield_once() {
    insane::task::yield_now().await;
}

#[insane::test]
async fn no_arguments() {
    yield_once().await;
    // Tests default to one core.
    assert_cores(1);
}

#[insane::test()]
async fn empty_arguments() {
    assert_cores(1);
}

#[insane::test(cores = 2)]
async fn two_cores() {
    assert_cores(2);
    if !cores_overridden() {
        let core = insane::task::spawn_on(1, async { Runtime::current_core() })
            .await
            .unwrap();
        assert_eq!(core, Some(1));
    }
}

#[insane::test(worker_threads = 2)]
async fn worker_threads_is_cores() {
    assert_cores(2);
}

#[insane::test(flavor = "current_thread")]
async fn tokio_current_thread_flavor_is_one_core() {
    assert_cores(1);
}

#[insane::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_multi_thread_flavor_takes_worker_threads_as_cores() {
    assert_cores(2);
}

#[insane::test(driver = "epoll")]
async fn epoll_driver() {
    yield_once().await;
    assert_cores(1);
}

#[insane::test(driver = "auto")]
async fn auto_driver() {
    assert_cores(1);
}

#[insane::test(pin_cores = false)]
async fn unpinned() {
    assert_cores(1);
}

#[insane::test(cores = 2, driver = "epoll", pin_cores = false)]
async fn all_arguments() {
    assert_cores(2);
}

#[insane::test]
async fn result_with_question_mark() -> Result<(), io::Error> {
    let n: u32 = "42"
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    yield_once().await;
    assert_eq!(n, 42);
    Ok(())
}

#[insane::test(cores = 1)]
async fn question_mark_converts_with_from() -> Result<(), Box<dyn Error>> {
    // `ParseIntError` → `Box<dyn Error>` through `From`: needs the body's
    // error type to be known from the declared return type.
    let n: u32 = "7".parse()?;
    assert_eq!(n, 7);
    Ok(())
}

#[insane::test]
async fn unsized_coercion_in_return() -> Result<(), Box<dyn Error>> {
    // `Box<fmt::Error>` → `Box<dyn Error>` needs the declared return type
    // while the body is type-checked, as in any `async fn`.
    if Runtime::current_core() != Some(0) {
        return Err(Box::new(std::fmt::Error));
    }
    Ok(())
}

#[insane::test]
async fn items_in_the_body() {
    use std::collections::HashMap;
    fn helper() -> u32 {
        3
    }
    const N: u32 = 4;
    let mut map = HashMap::new();
    map.insert(helper(), N);
    assert_eq!(map[&3], 4);
}

#[insane::test]
async fn early_return() -> Result<(), String> {
    if Runtime::current_core() != Some(0) {
        return Err("not on core 0".into());
    }
    Ok(())
}

#[insane::test]
#[should_panic(expected = "boom")]
async fn should_panic_works() {
    yield_once().await;
    panic!("boom");
}

#[insane::test(cores = 1)]
#[should_panic]
async fn should_panic_on_failed_assert() {
    assert_eq!(1 + 1, 3);
}

#[insane::test]
#[ignore = "shows that #[ignore] is kept; runs with --ignored"]
async fn ignored() {
    assert_cores(1);
}

#[insane::test]
async fn not_send_body() {
    // The body is not `Send`: it runs on core 0 only.
    let counter = Rc::new(Cell::new(0));
    let c = counter.clone();
    yield_once().await;
    c.set(c.get() + 1);
    assert_eq!(counter.get(), 1);
}

#[insane::test]
async fn user_names_do_not_clash() {
    // The expansion's own locals are hygienic.
    let body = 1;
    let __insane_body = 2;
    assert_eq!(body + __insane_body, 3);
}

#[insane::test]
async fn inner_attributes_are_kept() {
    #![allow(unused_mut)]
    let mut x = 1;
    assert_eq!(x, 1);
}

mod nested {
    use super::*;

    #[insane::test(cores = 2)]
    async fn in_a_module() {
        assert_cores(2);
    }
}

/// A program's entry point, as a user writes it.
mod app {
    use std::io;

    /// Documented main.
    #[insane::main]
    pub async fn main() -> Result<(), io::Error> {
        #![allow(clippy::needless_return)]
        let value = parse("5")?;
        if value != 5 {
            return Err(io::Error::other("wrong value"));
        }
        super::yield_once().await;
        Ok(())
    }

    fn parse(s: &str) -> io::Result<u32> {
        s.parse().map_err(io::Error::other)
    }
}

/// A `main` that fails: `return Err(..)` inside the body.
mod failing_app {
    use std::io;

    #[insane::main(cores = 2, driver = "epoll")]
    pub async fn main() -> Result<(), io::Error> {
        super::yield_once().await;
        if super::cores_overridden() || insane::runtime::Runtime::cores() == Some(2) {
            return Err(io::Error::other("failed on purpose"));
        }
        Ok(())
    }
}

/// `main` without a return type.
mod unit_app {
    #[insane::main(pin_cores = false)]
    pub(crate) async fn main() {
        super::yield_once().await;
    }
}

/// `#[insane::main]` on a function with another name and arguments, as
/// `#[tokio::main]` allows: a sync function that runs its own runtime.
#[insane::main(cores = 1)]
async fn add_on_runtime(a: u32, b: String) -> u32 {
    yield_once().await;
    a + b.parse::<u32>().unwrap()
}

/// A return type that cannot be written in a type annotation.
#[insane::main]
async fn opaque() -> impl std::fmt::Debug {
    yield_once().await;
    "opaque"
}

/// A `main` that never returns.
#[insane::main]
async fn diverges() -> ! {
    yield_once().await;
    panic!("diverged");
}

/// `Self` in an associated function: the body cannot move into a nested
/// function and becomes an async block instead.
#[derive(Debug, PartialEq)]
struct Counter(usize);

impl Counter {
    const START: usize = 1;

    #[insane::main(cores = 1)]
    async fn start() -> Self {
        yield_once().await;
        Self(Self::START)
    }
}

/// `std::process::ExitCode`, the other common `main` return type.
#[insane::main]
async fn exit_code() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}

#[test]
fn main_runs_to_completion() {
    app::main().unwrap();
}

#[test]
fn main_returns_the_error() {
    let err = failing_app::main().unwrap_err();
    assert_eq!(err.to_string(), "failed on purpose");
}

#[test]
fn main_without_return_type() {
    unit_app::main();
}

#[test]
fn main_attribute_on_other_functions() {
    assert_eq!(add_on_runtime(1, "2".to_string()), 3);
    assert_eq!(format!("{:?}", opaque()), "\"opaque\"");
    assert_eq!(exit_code(), std::process::ExitCode::SUCCESS);
}

#[test]
#[should_panic(expected = "diverged")]
fn never_returning_main() {
    diverges();
}

#[test]
fn main_attribute_on_associated_function() {
    assert_eq!(Counter::start(), Counter(1));
}

#[test]
fn main_can_run_twice() {
    // Each call builds and drops its own runtime.
    app::main().unwrap();
    app::main().unwrap();
}

// ---- `start_paused`: tokio's test-util attribute ----

/// Time is paused before the body runs: an hour of sleeping takes no time
/// (auto-advance) and `Instant` moves by exactly the time slept.
#[insane::test(start_paused = true)]
async fn start_paused_starts_with_time_paused() {
    use insane::time::{Duration, Instant};
    let real = std::time::Instant::now();
    let start = Instant::now();
    insane::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(3600));
    // Already paused: `advance` works without calling `pause`.
    insane::time::advance(Duration::from_secs(1)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(3601));
    assert_eq!(Runtime::cores(), Some(1), "paused time runs on one core");
    assert!(real.elapsed() < Duration::from_secs(30), "no real sleeping");
}

#[insane::test(start_paused = true)]
#[should_panic(expected = "time is already frozen")]
async fn start_paused_means_pausing_again_panics() {
    insane::time::pause();
}

#[insane::test(start_paused = false)]
async fn start_paused_false_runs_on_real_time() {
    // Not paused yet, so pausing succeeds (it would panic otherwise).
    insane::time::pause();
    insane::time::resume();
}

#[insane::test(flavor = "current_thread", start_paused = true)]
async fn start_paused_with_tokio_s_flavor() {
    let start = insane::time::Instant::now();
    let interval = std::time::Duration::from_millis(250);
    let mut ticks = insane::time::interval(interval);
    for k in 0..4u32 {
        assert_eq!(ticks.tick().await, start + interval * k);
    }
}

/// `#[insane::main(start_paused = true)]` as well.
#[insane::main(start_paused = true)]
async fn paused_main() -> std::time::Duration {
    let start = insane::time::Instant::now();
    let slow = insane::time::sleep(std::time::Duration::from_secs(60));
    let timed_out = insane::time::timeout(std::time::Duration::from_secs(5), slow).await;
    assert!(timed_out.is_err());
    start.elapsed()
}

#[test]
fn main_attribute_with_start_paused() {
    assert_eq!(paused_main(), std::time::Duration::from_secs(5));
}

/// `INSANE_CORES=2` does not turn a paused test into a panic: it keeps its
/// one core.
#[test]
fn start_paused_keeps_one_core_whatever_the_configuration() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["start_paused_starts_with_time_paused", "--exact"])
        .env("INSANE_CORES", "2")
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

// ---- The configuration the attributes read at run time ----
//
// Precedence, lowest first: the attribute, `insane.toml` (the file
// `INSANE_CONFIG` names, else the working directory's), the variables.

/// Set in the child processes, which run `reports_its_runtime` only.
const CHILD: &str = "INSANE_MACROS_TEST_CHILD";

/// In a child: prints the runtime that the attribute, the file and the
/// variables made. In the normal run: nothing.
#[insane::test(cores = 2)]
async fn reports_its_runtime() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let cores = Runtime::cores().unwrap();
    let driver = insane_runtime::driver::current().map(|(kind, _)| kind.to_string());
    let worker = if cores > 1 {
        insane::task::spawn_on(1, async { std::thread::current().name().map(String::from) })
            .await
            .unwrap()
    } else {
        None
    };
    println!(
        "runtime: cores={cores} driver={} worker={}",
        driver.unwrap_or_default(),
        worker.unwrap_or_default()
    );
}

/// A fresh working directory for one case, holding `files`.
fn workdir(case: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("insane-macros-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

/// What the child run in `dir` with only the `INSANE_*` variables `vars`
/// reported (`cores`, `driver`, `worker` thread name), or the failed
/// child's output.
fn child_runtime(dir: &Path, vars: &[(&str, &str)]) -> Result<HashMap<String, String>, String> {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["reports_its_runtime", "--exact", "--nocapture"])
        .current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("INSANE_") {
            cmd.env_remove(name);
        }
    }
    cmd.env(CHILD, "1").envs(vars.iter().copied());
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir_all(dir);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let report = text.lines().find_map(|l| l.strip_prefix("runtime: "));
    match (out.status.success(), report) {
        (true, Some(report)) => Ok(report
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()),
        _ => Err(text),
    }
}

const FILE: &str = "[runtime]\ncores = 3\ndriver = \"epoll\"\nthread_name = \"from-file\"\n";

#[test]
fn without_file_or_variables_the_attribute_decides() {
    let dir = workdir("no-file", &[]);
    let rt = child_runtime(&dir, &[]).unwrap();
    assert_eq!(rt["cores"], "2");
    assert_eq!(rt["worker"], "insane-core-1");
}

#[test]
fn insane_toml_in_the_working_directory_overrides_the_attribute() {
    let dir = workdir("cwd-file", &[("insane.toml", FILE)]);
    let rt = child_runtime(&dir, &[]).unwrap();
    assert_eq!(rt["cores"], "3");
    assert_eq!(rt["driver"], "epoll");
    assert_eq!(rt["worker"], "from-file-1");
}

#[test]
fn insane_config_names_the_file_to_read_instead() {
    let dir = workdir(
        "named-file",
        &[
            ("insane.toml", FILE),
            ("svc.toml", "[runtime]\ncores = 4\n"),
        ],
    );
    let rt = child_runtime(&dir, &[("INSANE_CONFIG", "svc.toml")]).unwrap();
    assert_eq!(rt["cores"], "4");
    assert_eq!(rt["worker"], "insane-core-1", "./insane.toml is not read");
}

#[test]
fn an_empty_insane_config_reads_no_file() {
    let dir = workdir("empty-config", &[("insane.toml", FILE)]);
    let rt = child_runtime(&dir, &[("INSANE_CONFIG", "")]).unwrap();
    assert_eq!(rt["cores"], "2");
}

#[test]
fn the_environment_overrides_the_file() {
    let dir = workdir("env-over-file", &[("insane.toml", FILE)]);
    let rt = child_runtime(
        &dir,
        &[
            ("INSANE_CORES", "2"),
            ("INSANE_RUNTIME_THREAD_NAME", "from-env"),
        ],
    )
    .unwrap();
    assert_eq!(rt["cores"], "2");
    assert_eq!(rt["driver"], "epoll", "not in the environment: the file's");
    assert_eq!(rt["worker"], "from-env-1");
}

#[test]
fn a_bad_file_stops_the_start_naming_the_file_line_and_key() {
    let dir = workdir("bad-file", &[("insane.toml", "[runtime]\n\ncores = 0\n")]);
    let out = child_runtime(&dir, &[]).unwrap_err();
    assert!(
        out.contains(
            "insane: failed to start the runtime: insane.toml line 3, `runtime.cores`: \
             invalid value: integer `0`, expected an integer >= 1"
        ),
        "{out}"
    );
}

#[test]
fn a_bad_variable_stops_the_start_naming_it() {
    let dir = workdir("bad-var", &[]);
    let out = child_runtime(&dir, &[("INSANE_DRIVER", "xdp")]).unwrap_err();
    assert!(
        out.contains(
            "insane: failed to start the runtime: \
             INSANE_DRIVER=\"xdp\": expected \"auto\", \"uring\" or \"epoll\""
        ),
        "{out}"
    );
}
