//! insane-runtime: the thread-per-core executor under `insane`.
//!
//! One [`runtime::Runtime`] owns `n` cores; each core is one thread with
//! its own run queue, timer wheel and [`reactor::Reactor`]s (the drivers).
//! Tasks stay on the core they were spawned on; [`task::spawn_on`] moves
//! work to another core through a lock-free queue. A
//! [`runtime::Handle`] reaches the runtime from any thread (spawn, block
//! on, enter). Applications normally
//! use this crate through the `insane` facade (`insane::spawn`,
//! `insane::time::sleep`, `#[insane::main]`).

#![warn(missing_docs)]

pub mod affinity;
mod context;
mod core;
pub mod driver;
mod metrics;
pub mod reactor;
pub mod runtime;
pub mod task;
pub mod time;

pub use task::spawn;
