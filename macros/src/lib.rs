//! `#[insane::main]` and `#[insane::test]`: run an `async fn` on an insane
//! runtime.
//!
//! Use these through the `insane` crate (`#[insane::main]`,
//! `#[insane::test]`), not from this crate directly: the expansion refers to
//! `::insane`.
//!
//! ```ignore
//! // (`ignore`: this crate cannot depend on `insane`; the same code runs
//! // in the `insane` package's `tests/macros.rs`.)
//! #[insane::main]
//! async fn main() -> Result<(), std::io::Error> {
//!     let listener = insane::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     loop {
//!         let (socket, _) = listener.accept().await?;
//!         insane::spawn_local(serve(socket));
//!     }
//! }
//!
//! #[insane::test(cores = 2, driver = "epoll")]
//! async fn echo_round_trip() {
//!     // ...
//! }
//! ```
//!
//! # Arguments
//!
//! Both attributes take the same optional arguments:
//!
//! | argument | value | meaning |
//! |---|---|---|
//! | `cores = N` | integer literal ≥ 1 | number of cores (one executor thread each); default: every core the process may run on for `main`, 1 for tests |
//! | `driver = "name"` | `"auto"`, `"uring"` or `"epoll"` | the I/O driver; `"auto"` (the default) picks io_uring when the kernel allows it, else epoll |
//! | `pin_cores = bool` | `true` / `false` | pin each executor thread to its core |
//! | `start_paused = bool` | `true` / `false` | start with time paused (`insane::time::pause`): timers complete at once by auto-advance; means one core (with `cores = N > 1` or `flavor = "multi_thread"` it is a compile error) and keeps one core whatever the configuration says |
//!
//! At run time the process configuration overrides the arguments, so a
//! test suite or a binary can be re-run on another configuration without
//! recompiling. Precedence, lowest first: the arguments, the `[runtime]`
//! section of `insane.toml` (the file `INSANE_CONFIG` names, else
//! `./insane.toml` when present), the variables (`INSANE_CORES`,
//! `INSANE_DRIVER`, `INSANE_PIN_CORES`, ... or their long names
//! `INSANE_RUNTIME_CORES`, ...). A bad value stops the start with a panic
//! naming the file, line and key, or the variable. The keys and variables
//! are listed in `insane::config::RuntimeConfig`; the expansion calls
//! `insane::runtime::Builder::load_config`.
//!
//! # Porting from tokio
//!
//! Change the path: `#[tokio::main]` → `#[insane::main]`, `#[tokio::test]` →
//! `#[insane::test]`. `worker_threads = N` is accepted as another name for
//! `cores = N`. `flavor = "current_thread"` means `cores = 1` and
//! `flavor = "multi_thread"` the default number of cores (or
//! `worker_threads`): insane is always thread-per-core (each core runs its
//! own executor and a task stays on the core it was spawned on, no work
//! stealing), so the flavor only chooses how many cores.
//!
//! # What they expand to
//!
//! ```ignore
//! #[insane::main(cores = 2)]
//! pub async fn main() -> Result<(), Error> { body }
//! ```
//!
//! becomes (modulo hygiene and spans)
//!
//! ```ignore
//! pub fn main() -> Result<(), Error> {
//!     // The body stays in an `async fn` with the declared return type, so
//!     // `?`, `return Err(..)` and coercions behave exactly as written.
//!     async fn __insane_main() -> Result<(), Error> { body }
//!     let future = __insane_main();
//!     return ::insane::__private::block_on(
//!         ::insane::__private::MacroConfig {
//!             cores: Some(2),
//!             driver: None,
//!             pin_cores: None,
//!             tokio_compat: false,
//!             start_paused: false,
//!             kind: ::insane::__private::EntryKind::Main,
//!         },
//!         future,
//!     );
//! }
//! ```
//!
//! `#[insane::test]` adds `#[::core::prelude::v1::test]` after the
//! function's own attributes (so `#[should_panic]` and `#[ignore]` work), uses
//! `kind: EntryKind::Test`, and passes the future as a
//! `Pin<&mut dyn Future<Output = Ret>>` so that all tests share one
//! instantiation of `block_on`. A function that takes arguments or uses
//! `Self` (possible with `#[insane::main]` on a function not called `main`)
//! runs its body as an `async move` block instead, which captures them.
//!
//! Mistakes are reported as compile errors pointing at the offending token,
//! for example `unknown driver "xdp": expected one of "auto", "uring",
//! "epoll"`, `cores must be at least 1`, or `the `async` keyword is missing
//! from the function declaration`.

mod args;
mod entry;

use proc_macro::TokenStream;

/// Runs an `async fn main` on an insane runtime.
///
/// The function becomes a plain `fn` with the same attributes, visibility and
/// return type, which builds a runtime, runs the body to completion on core 0
/// and returns its output. Any return type works as it does for a sync
/// `main` (`()`, `Result<(), E>` with `?` and `return Err(..)` in the body,
/// `std::process::ExitCode`, ...).
///
/// ```ignore
/// // (`ignore`: this crate cannot depend on `insane`; see the crate docs.)
/// #[insane::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let config = std::fs::read_to_string("config.toml")?;
///     run(config).await?;
///     Ok(())
/// }
/// ```
///
/// With arguments (see the [crate documentation](crate) for the list):
///
/// ```ignore
/// #[insane::main(cores = 4, driver = "uring", pin_cores = true)]
/// async fn main() {
///     // ...
/// }
/// ```
///
/// `main` may not take arguments or be generic. Like `#[tokio::main]`, the
/// attribute also works on an `async fn` with another name, which then
/// becomes a sync function that runs its own runtime each time it is called
/// (its arguments are moved into the future).
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand_main(args.into(), item.into()).into()
}

/// Runs an `async fn` test on a fresh insane runtime.
///
/// Emits `#[test]` (so do not add one yourself) after the function's other
/// attributes, which keep working: `#[should_panic]`, `#[ignore]`,
/// `#[cfg_attr(..)]`, ... The test may return `()` or anything `#[test]`
/// accepts, such as `Result<(), E>`.
///
/// ```ignore
/// // (`ignore`: this crate cannot depend on `insane`; the `insane`
/// // package's `tests/macros.rs` has runnable versions.)
/// #[insane::test]
/// async fn spawns() {
///     let handle = insane::spawn(async { 1 + 1 });
///     assert_eq!(handle.await.unwrap(), 2);
/// }
///
/// #[insane::test(cores = 2, driver = "epoll")]
/// async fn on_two_cores() -> std::io::Result<()> {
///     // ...
///     Ok(())
/// }
///
/// #[insane::test]
/// #[should_panic(expected = "boom")]
/// async fn panics() {
///     panic!("boom");
/// }
/// ```
///
/// Takes the same arguments as [`macro@main`].
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand_test(args.into(), item.into()).into()
}
