//! What `#[insane::main]` and `#[insane::test]` expand to. Not public API.

use std::future::Future;
use std::io;

use crate::runtime::{Builder, Driver};

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

/// The runtime builder for a macro entry point: the attribute's values,
/// overridden at run time by the `INSANE_*` variables
/// ([`Builder::apply_env`]).
///
/// # Errors
/// A bad `INSANE_*` value, named in the error.
pub fn builder(config: MacroConfig) -> io::Result<Builder> {
    let mut builder = Builder::new();
    match (config.cores, config.kind) {
        (Some(n), _) => builder = builder.cores(n),
        (None, EntryKind::Test) => builder = builder.cores(1),
        (None, EntryKind::Main) => {}
    }
    if let Some(pin) = config.pin_cores {
        builder = builder.pin_cores(pin);
    }
    if let Some(name) = config.driver {
        builder = builder.driver(name.parse::<Driver>()?);
    }
    builder.apply_env()
}

/// Builds the runtime for a macro entry point and runs `future` on core 0.
///
/// # Panics
/// If the runtime cannot start (the message names the cause), or if
/// `future` panics.
pub fn block_on<F: Future>(config: MacroConfig, future: F) -> F::Output {
    let runtime = match builder(config).and_then(Builder::build) {
        Ok(rt) => rt,
        Err(e) => panic!("insane: failed to start the runtime: {e}"),
    };
    runtime.block_on(future)
}
