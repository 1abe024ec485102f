//! insane's epoll driver: the readiness reactor used where io_uring is
//! missing or disabled, or when `driver = "epoll"` is configured.
//!
//! One [`EpollDriver`] per core implements
//! [`IoDriver`](insane_runtime::driver::IoDriver) (edge-triggered
//! readiness for tokio-style sockets) and
//! [`Reactor`](insane_runtime::reactor::Reactor) (non-blocking `poll`, and
//! `park` in `epoll_pwait2`/`epoll_wait` that also watches the core's
//! unpark eventfd). The facade installs it on every core with
//! [`install_on_current_core`] from `Builder::on_core_start`; the
//! driver-selection policy asks [`probe`] whether epoll works here.

#![warn(missing_docs)]

mod driver;
mod slots;
mod sys;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

pub use driver::EpollDriver;

/// Creates an [`EpollDriver`] and installs it as the current core's I/O
/// driver (and parking reactor).
///
/// # Errors
/// When epoll cannot be created, outside a runtime, or when the core
/// already has an I/O driver or a parking reactor.
pub fn install_on_current_core() -> io::Result<()> {
    let driver = EpollDriver::new()?;
    insane_runtime::driver::install(Rc::new(RefCell::new(driver)))?;
    tracing::debug!("epoll driver installed");
    Ok(())
}

/// Checks that epoll works on this host (`epoll_create1` succeeds); the
/// error names the failing call and the OS error.
///
/// # Errors
/// When `epoll_create1` fails (e.g. blocked by seccomp, or out of fds).
pub fn probe() -> io::Result<()> {
    sys::Epoll::new().map(drop)
}
