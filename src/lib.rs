//! # insane
//!
//! A thread-per-core async runtime for networking that can replace tokio in
//! network services. Write ordinary async code — `#[insane::main]`,
//! [`spawn`], [`time::sleep`], the sockets of `insane::net` — and port a
//! tokio service by changing its imports.
//!
//! ```
//! use std::time::Duration;
//!
//! #[insane::main(cores = 2)]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let (tx, rx) = insane::sync::oneshot::channel();
//!     insane::task::spawn_on(1, async move {
//!         insane::time::sleep(Duration::from_millis(1)).await;
//!         let _ = tx.send(insane::runtime::Runtime::current_core());
//!     });
//!     assert_eq!(rx.await?, Some(1));
//!     Ok(())
//! }
//! ```
//!
//! ## Map of the crate
//! - [`runtime`]: [`runtime::Runtime`], its builder, the idle policy.
//! - [`task`]: `spawn`, `spawn_local` (`!Send`), `spawn_on` (another core),
//!   `yield_now`, `JoinHandle`, `JoinSet`.
//! - [`time`]: `sleep`, `timeout`, `interval` on a per-core timer wheel.
//! - [`sync`]: tokio's runtime-agnostic primitives (`mpsc`, `oneshot`,
//!   `Mutex`, `Notify`, ...), re-exported so ported code compiles.
//! - [`io`]: tokio's I/O traits and helpers (`AsyncReadExt`, `BufReader`,
//!   `copy`, ...), which insane's sockets implement.
//! - [`fs`]: files and directories (io_uring file operations where the
//!   kernel has them); [`process`]: child processes (pidfd waits).

#![warn(missing_docs)]

pub use insane_macros::{main, test};
pub use insane_runtime::spawn;
/// tokio's `select!`, `join!`, `try_join!` and `pin!`, which work on any
/// executor: `tokio::select!` → `insane::select!` and so on.
///
/// ```
/// #[insane::main(cores = 1)]
/// async fn main() {
///     let (a, b) = insane::join!(async { 1 }, async { 2 });
///     assert_eq!(a + b, 3);
///     let sleep = insane::time::sleep(std::time::Duration::from_secs(10));
///     insane::pin!(sleep);
///     insane::select! {
///         _ = &mut sleep => unreachable!("the other branch is ready at once"),
///         v = async { 7 } => assert_eq!(v, 7),
///     }
/// }
/// ```
pub use tokio::{join, pin, select, try_join};

/// Declares task-local keys (`tokio::task_local!`); see
/// [`task::LocalKey`].
///
/// ```
/// insane::task_local! {
///     static REQUEST_ID: u64;
/// }
///
/// #[insane::main(cores = 1)]
/// async fn main() {
///     REQUEST_ID
///         .scope(7, async { assert_eq!(REQUEST_ID.get(), 7) })
///         .await;
/// }
/// ```
pub use insane_runtime::task_local;

#[cfg(feature = "hyper")]
pub mod rt;
pub mod runtime;
pub mod signal;

pub mod task {
    //! Tasks: spawning on this core, on another core, `!Send` tasks,
    //! awaiting or aborting them (`JoinHandle`, `AbortHandle`, `JoinSet`,
    //! task ids), the cooperative budget (`coop`, `consume_budget`,
    //! `unconstrained`), blocking work (`spawn_blocking`,
    //! `block_in_place`) and task-local storage (`LocalKey`, declared with
    //! [`crate::task_local!`]). See [`insane_runtime::task`] and
    //! `docs/differences-from-tokio.md`.
    pub use insane_runtime::task::*;
}

pub mod fs {
    //! Files and directories with tokio's `fs` API (`File`, `OpenOptions`,
    //! `read`, `write`, `read_dir`, ...). On a core running io_uring, opens,
    //! reads, writes, syncs, truncations, renames, unlinks, mkdirs and links
    //! are io_uring requests completed on the core; the rest (metadata,
    //! `read_dir`, `canonicalize`, `copy`, ...), and everything on epoll,
    //! runs on the blocking pool as in tokio. See [`insane_net::fs`].
    //!
    //! ```
    //! #[insane::main(cores = 1)]
    //! async fn main() -> std::io::Result<()> {
    //!     let path = std::env::temp_dir().join(format!("insane-facade-fs-{}", std::process::id()));
    //!     insane::fs::write(&path, "contents").await?;
    //!     assert_eq!(insane::fs::read_to_string(&path).await?, "contents");
    //!     insane::fs::remove_file(&path).await
    //! }
    //! ```
    pub use insane_net::fs::*;
}

pub mod process {
    //! Child processes with tokio's `process` API (`Command`, `Child`,
    //! piped stdio); a child is waited for through its pidfd on the core's
    //! driver. See [`insane_net::process`].
    //!
    //! ```
    //! #[insane::main(cores = 1)]
    //! async fn main() -> std::io::Result<()> {
    //!     let out = insane::process::Command::new("echo").arg("hi").output().await?;
    //!     assert_eq!(out.stdout, b"hi\n");
    //!     Ok(())
    //! }
    //! ```
    pub use insane_net::process::*;
}

pub mod net {
    //! tokio-compatible sockets (`TcpListener`, `TcpStream`, `UdpSocket`,
    //! Unix sockets, `lookup_host`) over the core's io_uring or epoll driver.
    pub use insane_net::*;
}

#[cfg(feature = "qos")]
pub mod qos {
    //! QoS streams: say what a flow needs (latency, reliability, resources)
    //! and the runtime picks the technology that serves it on this host,
    //! explaining its choice. See [`insane_net::qos`].
    pub use insane_net::qos::*;
}

pub mod config {
    //! The configuration schema (`insane.toml`, `INSANE_*` variables).
    pub use insane_net::config::*;
}

pub mod time {
    //! Timers with tokio's names and semantics: `sleep`, `timeout`,
    //! `interval`, on a per-core timer wheel.
    pub use insane_runtime::time::*;
}

pub mod sync {
    //! Synchronization primitives, re-exported from tokio's `sync` module,
    //! which works on any executor: `mpsc`, `oneshot`, `broadcast`, `watch`,
    //! `Mutex`, `RwLock`, `Notify`, `Semaphore`, `Barrier`, `OnceCell`.
    pub use tokio::sync::*;
}

pub mod io {
    //! I/O traits and helpers, re-exported from tokio so that code written
    //! against `tokio::io` compiles unchanged against insane's sockets.
    pub use tokio::io::{
        AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt,
        AsyncWrite, AsyncWriteExt, BufReader, BufStream, BufWriter, Chain, DuplexStream, Empty,
        Error, ErrorKind, Interest, Join, Lines, ReadBuf, ReadHalf, Ready, Repeat, Result,
        SeekFrom, SimplexStream, Sink, Split, Take, WriteHalf, copy, copy_bidirectional,
        copy_bidirectional_with_sizes, copy_buf, duplex, empty, join, repeat, simplex, sink, split,
    };

    pub use crate::stdio::{Stderr, Stdin, Stdout, stderr, stdin, stdout};

    pub mod unix {
        //! Readiness for any file descriptor (tokio's `io::unix`).
        pub use insane_net::{
            AsyncFd, AsyncFdReadyGuard, AsyncFdReadyMutGuard, AsyncFdRegisterError,
            AsyncFdTryNewError, TryIoError,
        };
    }
}

mod stdio;

#[doc(hidden)]
pub mod __private;
