//! The runtime: how many cores, pinned or not, how idle cores wait, and
//! which kernel I/O driver (io_uring or epoll) each core polls.
//!
//! ```
//! use insane::runtime::{Driver, IdlePolicy, Runtime};
//! let rt = Runtime::builder().cores(1).driver(Driver::Auto).idle(IdlePolicy::Park).build()?;
//! println!("running on {} ({})", rt.driver(), rt.driver_reason());
//! assert_eq!(rt.block_on(async { 1 + 1 }), 2);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::str::FromStr;
use std::sync::Arc;

pub use insane_runtime::affinity;
pub use insane_runtime::driver::DriverKind;
pub use insane_runtime::runtime::{CoreHandle, CoreInit, IdlePolicy, SpinGuard};

use crate::task::JoinHandle;

/// Which kernel I/O driver the cores use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Driver {
    /// io_uring when this host allows it, else epoll (the reason is kept
    /// in [`Runtime::driver_reason`] and logged).
    #[default]
    Auto,
    /// io_uring; building fails, naming the cause, where it is unavailable.
    Uring,
    /// epoll (readiness), always available on Linux.
    Epoll,
}

impl Driver {
    /// The configuration name: `"auto"`, `"uring"` or `"epoll"`.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Auto => "auto",
            Driver::Uring => "uring",
            Driver::Epoll => "epoll",
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Driver {
    type Err = io::Error;

    /// Parses `"auto"`, `"uring"` (or `"io_uring"`) and `"epoll"`.
    fn from_str(s: &str) -> io::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Driver::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(Driver::Uring),
            "epoll" => Ok(Driver::Epoll),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown driver {other:?}: expected \"auto\", \"uring\" or \"epoll\""),
            )),
        }
    }
}

/// Configures and builds a [`Runtime`].
#[derive(Clone, Debug)]
pub struct Builder {
    inner: insane_runtime::runtime::Builder,
    driver: Driver,
    sqpoll: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// Defaults: one core per CPU of the allowed set, not pinned, the
    /// default idle policy, [`Driver::Auto`].
    pub fn new() -> Self {
        Self {
            inner: insane_runtime::runtime::Builder::new(),
            driver: Driver::Auto,
            sqpoll: false,
        }
    }

    /// Number of cores (threads, including the one calling `block_on`).
    pub fn cores(mut self, n: usize) -> Self {
        self.inner = self.inner.cores(n);
        self
    }

    /// Pin core `i` to the `i`-th CPU of the process's allowed set.
    pub fn pin_cores(mut self, pin: bool) -> Self {
        self.inner = self.inner.pin_cores(pin);
        self
    }

    /// What idle cores do: spin, then park.
    pub fn idle(mut self, policy: IdlePolicy) -> Self {
        self.inner = self.inner.idle(policy);
        self
    }

    /// Prefix of worker thread names.
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.inner = self.inner.thread_name(name);
        self
    }

    /// The kernel I/O driver of every core.
    pub fn driver(mut self, driver: Driver) -> Self {
        self.driver = driver;
        self
    }

    /// io_uring SQPOLL: a kernel thread polls the submission queue, saving
    /// a syscall per submission. Refused when fewer than 2 CPUs are usable.
    pub fn sqpoll(mut self, on: bool) -> Self {
        self.sqpoll = on;
        self
    }

    /// Adds a hook run on every core's thread at start-up, after the I/O
    /// driver is installed.
    pub fn on_core_start(mut self, init: CoreInit) -> Self {
        self.inner = self.inner.on_core_start(init);
        self
    }

    /// Applies `INSANE_CORES` (or `INSANE_RUNTIME_CORES`), `INSANE_DRIVER`
    /// (or `INSANE_RUNTIME_DRIVER`), `INSANE_PIN_CORES` and `INSANE_SQPOLL`
    /// when set; they override what the builder says.
    ///
    /// # Errors
    /// A variable whose value does not parse; the error names it.
    pub fn apply_env(mut self) -> io::Result<Self> {
        if let Some((name, value)) = env_var(&["INSANE_RUNTIME_CORES", "INSANE_CORES"]) {
            match value.trim().parse::<usize>() {
                Ok(n) if n >= 1 => self = self.cores(n),
                _ => return Err(bad_env(&name, &value, "an integer >= 1")),
            }
        }
        if let Some((name, value)) = env_var(&["INSANE_RUNTIME_DRIVER", "INSANE_DRIVER"]) {
            let driver = value
                .parse::<Driver>()
                .map_err(|_| bad_env(&name, &value, "\"auto\", \"uring\" or \"epoll\""))?;
            self = self.driver(driver);
        }
        if let Some((name, value)) = env_var(&["INSANE_RUNTIME_PIN_CORES", "INSANE_PIN_CORES"]) {
            self = self.pin_cores(parse_bool(&name, &value)?);
        }
        if let Some((name, value)) = env_var(&["INSANE_RUNTIME_SQPOLL", "INSANE_SQPOLL"]) {
            self = self.sqpoll(parse_bool(&name, &value)?);
        }
        Ok(self)
    }

    /// Chooses the driver, starts every core with it, and returns the
    /// runtime.
    ///
    /// # Errors
    /// The requested driver is unavailable (the error says why), or a core
    /// fails to start.
    pub fn build(self) -> io::Result<Runtime> {
        let (kind, reason) = resolve_driver(self.driver, self.sqpoll)?;
        tracing::info!(driver = %kind, reason = %reason, "insane I/O driver chosen");
        let sqpoll = self.sqpoll;
        let install: CoreInit = match kind {
            DriverKind::Uring => Arc::new(move |_core| uring::install(sqpoll)),
            DriverKind::Epoll => Arc::new(|_core| insane_epoll::install_on_current_core()),
        };
        // The driver must exist before the user's hooks run.
        let inner = self.inner.prepend_core_start(install);
        Ok(Runtime {
            inner: inner.build()?,
            driver: kind,
            reason,
        })
    }
}

fn resolve_driver(requested: Driver, sqpoll: bool) -> io::Result<(DriverKind, String)> {
    resolve_driver_with(requested, sqpoll, uring::probe)
}

/// The driver policy, with the io_uring probe as a parameter so tests can
/// make it fail the way a seccomp filter or `kernel.io_uring_disabled` does.
fn resolve_driver_with(
    requested: Driver,
    sqpoll: bool,
    uring_probe: impl Fn() -> io::Result<()>,
) -> io::Result<(DriverKind, String)> {
    match requested {
        Driver::Epoll => {
            if sqpoll {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "SQPOLL is an io_uring feature; it cannot be used with the epoll driver",
                ));
            }
            insane_epoll::probe()?;
            Ok((DriverKind::Epoll, "requested (driver = \"epoll\")".into()))
        }
        Driver::Uring => match uring_probe() {
            Ok(_) => Ok((DriverKind::Uring, "requested (driver = \"uring\")".into())),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("io_uring requested but unavailable: {e}"),
            )),
        },
        Driver::Auto => match uring_probe() {
            Ok(_) => Ok((DriverKind::Uring, "io_uring is available (auto)".into())),
            Err(e) if !sqpoll => {
                tracing::warn!(error = %e, "io_uring unavailable; falling back to epoll");
                insane_epoll::probe()?;
                Ok((
                    DriverKind::Epoll,
                    format!("io_uring unavailable ({e}); fell back to epoll"),
                ))
            }
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("SQPOLL requested but io_uring is unavailable: {e}"),
            )),
        },
    }
}

/// The io_uring driver as the facade uses it.
mod uring {
    use std::io;

    /// Whether io_uring can be used here; the error says why not.
    pub(super) fn probe() -> io::Result<()> {
        insane_uring::probe().map(|_| ())
    }

    /// Installs the io_uring driver on the current core.
    pub(super) fn install(sqpoll: bool) -> io::Result<()> {
        insane_uring::install_on_current_core(&insane_uring::UringConfig {
            sqpoll,
            ..Default::default()
        })
    }
}

fn env_var(names: &[&str]) -> Option<(String, String)> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().map(|v| ((*n).to_string(), v)))
}

fn bad_env(name: &str, value: &str, expected: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{name}={value:?} is invalid: expected {expected}"),
    )
}

fn parse_bool(name: &str, value: &str) -> io::Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(bad_env(name, value, "1/0, true/false, yes/no or on/off")),
    }
}

/// A thread-per-core runtime with a kernel I/O driver on every core.
///
/// Core 0 is the thread that calls [`block_on`](Runtime::block_on); the
/// other cores are threads the runtime owns. Dropping the runtime stops
/// them and drops their pending tasks on their own cores.
pub struct Runtime {
    inner: insane_runtime::runtime::Runtime,
    driver: DriverKind,
    reason: String,
}

impl Runtime {
    /// A [`Builder`] with defaults.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A runtime with the defaults, after `INSANE_*` variables.
    ///
    /// # Errors
    /// As [`Builder::apply_env`] and [`Builder::build`].
    pub fn new() -> io::Result<Self> {
        Builder::new().apply_env()?.build()
    }

    /// Runs `future` to completion on core 0 (this thread).
    ///
    /// # Panics
    /// When called from inside a runtime, or when `future` panics.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.inner.block_on(future)
    }

    /// Spawns a `Send` future on core 0; it runs while `block_on` runs.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.spawn(future)
    }

    /// The number of cores of this runtime.
    pub fn num_cores(&self) -> usize {
        self.inner.num_cores()
    }

    /// The kernel I/O driver every core runs.
    pub fn driver(&self) -> DriverKind {
        self.driver
    }

    /// Why that driver was chosen (e.g. the io_uring error that made
    /// `Auto` fall back to epoll).
    pub fn driver_reason(&self) -> &str {
        &self.reason
    }

    /// The index of the core running the caller, or `None` outside a
    /// runtime.
    pub fn current_core() -> Option<usize> {
        insane_runtime::runtime::Runtime::current_core()
    }

    /// The number of cores of the runtime the caller runs on, or `None`
    /// outside a runtime.
    pub fn cores() -> Option<usize> {
        insane_runtime::runtime::Runtime::cores()
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("cores", &self.num_cores())
            .field("driver", &self.driver)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eperm() -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc_eperm()))
    }

    fn libc_eperm() -> i32 {
        1 // EPERM: what io_uring_setup returns under kernel.io_uring_disabled=2
    }

    #[test]
    fn auto_falls_back_to_epoll_naming_the_io_uring_error() {
        let (kind, reason) = resolve_driver_with(Driver::Auto, false, eperm).unwrap();
        assert_eq!(kind, DriverKind::Epoll);
        assert!(reason.contains("fell back to epoll"), "{reason}");
        assert!(reason.contains("not permitted"), "{reason}");
    }

    #[test]
    fn auto_prefers_io_uring_when_it_works() {
        let (kind, _) = resolve_driver_with(Driver::Auto, false, || Ok(())).unwrap();
        assert_eq!(kind, DriverKind::Uring);
    }

    #[test]
    fn an_explicit_uring_request_fails_with_the_cause() {
        let err = resolve_driver_with(Driver::Uring, false, eperm).unwrap_err();
        assert!(
            err.to_string()
                .contains("io_uring requested but unavailable"),
            "{err}"
        );
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn sqpoll_needs_io_uring() {
        assert!(resolve_driver_with(Driver::Auto, true, eperm).is_err());
        assert!(resolve_driver_with(Driver::Epoll, true, || Ok(())).is_err());
    }

    #[test]
    fn driver_names_parse_and_bad_ones_are_named() {
        assert_eq!("uring".parse::<Driver>().unwrap(), Driver::Uring);
        assert_eq!("EPOLL".parse::<Driver>().unwrap(), Driver::Epoll);
        let err = "xdp".parse::<Driver>().unwrap_err();
        assert!(err.to_string().contains("\"xdp\""), "{err}");
    }
}
