//! insane's io_uring driver: one ring per core, registered as the core's
//! [`Reactor`](insane_runtime::reactor::Reactor) and
//! [`IoDriver`](insane_runtime::driver::IoDriver).
//!
//! - [`Driver`] / [`install_on_current_core`]: ring setup (COOP_TASKRUN,
//!   SINGLE_ISSUER, DEFER_TASKRUN when supported, optional SQPOLL),
//!   submission and completion processing, parking with a timeout and the
//!   core's unpark eventfd, readiness (`POLL_ADD`) for tokio-style sockets.
//! - [`probe`] / [`UringFeatures`]: what the kernel supports, callable
//!   without a runtime (the driver-selection policy uses it).
//! - [`op`]: completion-based operations on owned buffers (read, write,
//!   send, recv, send_to, recv_from, accept, connect, SEND_ZC); a dropped
//!   future cancels its request and the driver keeps the buffer alive
//!   until the kernel lets go of it; and file and path operations (open,
//!   close, statx, fsync, ftruncate, unlink, rename, mkdir, link, symlink)
//!   for `insane::fs`.
//! - [`bufring`]: provided-buffer rings and multishot receives yielding
//!   owned [`bufring::RingBuf`]s that return to the ring on drop.
//! - [`buf`]: the [`IoBuf`]/[`IoBufMut`] buffer traits.
//!
//! Everything here is per core: handles, operation futures and ring
//! buffers hold an `Rc` to their core's driver and are `!Send`.

#![warn(missing_docs)]

pub mod bufring;
mod driver;
mod features;
pub mod op;
mod sockaddr;

pub use driver::{Driver, Handle, UringConfig, check_sqpoll, install_on_current_core};
pub use features::{FileOps, UringFeatures, allowed_cpu_count, probe};
/// The owned-buffer traits, from their own crate (`insane-buf`): the
/// driver takes and returns these buffers.
pub use insane_buf as buf;
pub use insane_buf::{BufResult, IoBuf, IoBufMut, Slice};
/// The io-uring crate, for [`op::Op::submit`] entries.
pub use io_uring;
