//! The runtime: how many cores, pinned or not, how idle cores wait, and
//! which kernel I/O driver each core polls.
//!
//! ```
//! use insane::runtime::{Runtime, IdlePolicy};
//! let rt = Runtime::builder().cores(1).idle(IdlePolicy::Park).build()?;
//! assert_eq!(rt.block_on(async { 1 + 1 }), 2);
//! # Ok::<(), std::io::Error>(())
//! ```

pub use insane_runtime::runtime::{Builder, CoreInit, IdlePolicy, Runtime};
