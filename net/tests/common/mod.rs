//! Shared helpers of the insane-net integration tests: one runtime per
//! kernel driver, and a watchdog so a lost wake-up fails instead of hanging.

#![allow(dead_code)]

pub mod echoes;
pub mod messages;

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use insane_runtime::runtime::{Builder, Runtime};

/// How long one test may run on one driver before it counts as hung.
const WATCHDOG: Duration = Duration::from_secs(60);

fn builder(cores: usize) -> Builder {
    Runtime::builder().cores(cores).thread_name("net-test")
}

/// A runtime of `cores` cores for each kernel driver, named by driver.
///
/// `INSANE_TEST_DRIVER=uring` (or `epoll`) restricts the tests to one
/// driver, to see results per driver.
pub fn runtimes_with(cores: usize) -> Vec<(&'static str, Runtime)> {
    let only = std::env::var("INSANE_TEST_DRIVER").ok();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let mut rts = Vec::new();
    if wanted("uring") {
        let uring = builder(cores)
            .on_core_start(Arc::new(|_| {
                insane_uring::install_on_current_core(&Default::default())
            }))
            .build()
            .expect("io_uring runtime");
        rts.push(("uring", uring));
    }
    if wanted("epoll") {
        let epoll = builder(cores)
            .on_core_start(Arc::new(|_| insane_epoll::install_on_current_core()))
            .build()
            .expect("epoll runtime");
        rts.push(("epoll", epoll));
    }
    assert!(!rts.is_empty(), "INSANE_TEST_DRIVER must be uring or epoll");
    rts
}

/// A 1-core runtime for each kernel driver.
pub fn runtimes() -> Vec<(&'static str, Runtime)> {
    runtimes_with(1)
}

/// Runs the test body `f` on a `cores`-core runtime of each driver, each
/// under a watchdog that aborts the process if the body hangs.
pub fn on_each_driver<F, Fut>(cores: usize, f: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = ()>,
{
    for (name, rt) in runtimes_with(cores) {
        let (done, watched) = mpsc::channel::<()>();
        let test = std::thread::current().name().unwrap_or("?").to_owned();
        let dog = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = watched.recv_timeout(WATCHDOG) {
                eprintln!("test {test} hung for {WATCHDOG:?} on the {name} driver");
                std::process::abort();
            }
        });
        rt.block_on(f(name));
        let _ = done.send(());
        let _ = dog.join();
        drop(rt);
    }
}

/// A path for a Unix socket that does not exist yet, unique per call.
pub fn socket_path(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("insane-net-{}-{tag}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// A configuration whose only section is `[dpdk]`: the EAL arguments, the
/// port id, the stack's address (`a.b.c.d/len`) and the queue count.
pub fn dpdk_config(
    eal: &[String],
    port: u16,
    address: &str,
    queues: u16,
) -> insane_net::config::Config {
    let eal: Vec<String> = eal.iter().map(|a| format!("{a:?}")).collect();
    insane_net::config::Config::from_toml_str(
        &format!(
            "[dpdk]\neal = [{}]\nport = {port}\naddress = \"{address}\"\nqueues = {queues}\n",
            eal.join(", ")
        ),
        "test config",
    )
    .expect("a valid [dpdk] section")
}

/// A runtime of `cores` cores on io_uring, the QoS endpoint tests' kernel
/// driver.
pub fn uring_runtime(cores: usize) -> Runtime {
    Runtime::builder()
        .cores(cores)
        .on_core_start(Arc::new(|_| {
            insane_uring::install_on_current_core(&Default::default())
        }))
        .build()
        .expect("io_uring runtime")
}

/// Runs the test body `f` on a `cores`-core runtime of the kernel driver
/// `name` (`"uring"` or `"epoll"`) only, under the watchdog.
pub fn on_driver<F, Fut>(name: &'static str, cores: usize, f: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = ()>,
{
    on_each_driver(cores, |driver| {
        let run = (driver == name).then(|| f(driver));
        async move {
            if let Some(run) = run {
                run.await;
            }
        }
    });
}

/// The report line (`CHILD-OK …` or `CHILD-FAILED …`) of a two-process
/// DPDK test's child, from its stdout lines; waits at most `limit`
/// without blocking the core (the caller's endpoints keep being driven).
pub async fn child_report(
    lines: &mpsc::Receiver<String>,
    limit: Duration,
) -> Result<String, String> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match lines.try_recv() {
            Ok(line) if line.starts_with("CHILD-") => return Ok(line),
            Ok(_) => continue,
            Err(mpsc::TryRecvError::Empty) if std::time::Instant::now() < deadline => {
                insane_runtime::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => return Err("no report from the client".to_string()),
        }
    }
}
