//! What `#[insane::main]` and `#[insane::test]` expand to. Not public API.

use std::future::Future;

use crate::runtime::Builder;

/// Which macro produced the entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// `#[insane::main]`: defaults to one core per allowed CPU.
    Main,
    /// `#[insane::test]`: defaults to one core, like tokio's tests.
    Test,
}

/// The macro's arguments, checked at compile time.
#[derive(Clone, Copy, Debug)]
pub struct MacroConfig {
    /// `cores = N`.
    pub cores: Option<usize>,
    /// `driver = "..."`.
    pub driver: Option<&'static str>,
    /// `pin_cores = bool`.
    pub pin_cores: Option<bool>,
    /// main or test.
    pub kind: EntryKind,
}

/// Reads an `INSANE_*` variable, accepting the first of `names` that is set.
fn env_var(names: &[&str]) -> Option<(String, String)> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().map(|v| ((*n).to_string(), v)))
}

/// The runtime builder for a macro entry point: attribute values, then
/// `INSANE_CORES` / `INSANE_RUNTIME_CORES` and `INSANE_DRIVER` /
/// `INSANE_RUNTIME_DRIVER` overriding them at run time.
///
/// # Panics
/// On an environment value that does not parse, naming the variable.
pub fn builder(config: MacroConfig) -> Builder {
    let mut cores = config.cores;
    if let Some((name, value)) = env_var(&["INSANE_RUNTIME_CORES", "INSANE_CORES"]) {
        match value.trim().parse::<usize>() {
            Ok(n) if n >= 1 => cores = Some(n),
            _ => panic!("{name}={value:?} is not a number of cores (expected an integer >= 1)"),
        }
    }
    if cores.is_none() && config.kind == EntryKind::Test {
        cores = Some(1);
    }
    let mut builder = Builder::new();
    if let Some(n) = cores {
        builder = builder.cores(n);
    }
    if let Some(pin) = config.pin_cores {
        builder = builder.pin_cores(pin);
    }
    let driver = env_var(&["INSANE_RUNTIME_DRIVER", "INSANE_DRIVER"])
        .map(|(_, v)| v)
        .or(config.driver.map(str::to_string));
    if let Some(driver) = driver {
        match driver.as_str() {
            "auto" | "uring" | "epoll" => {}
            other => panic!("INSANE_DRIVER={other:?} is not a driver (expected \"auto\", \"uring\" or \"epoll\")"),
        }
    }
    builder
}

/// Builds the runtime for a macro entry point and runs `future` on core 0.
///
/// # Panics
/// If the runtime cannot start (the error names the cause), or if `future`
/// panics.
pub fn block_on<F: Future>(config: MacroConfig, future: F) -> F::Output {
    let runtime = match builder(config).build() {
        Ok(rt) => rt,
        Err(e) => panic!("insane: failed to start the runtime: {e}"),
    };
    runtime.block_on(future)
}
