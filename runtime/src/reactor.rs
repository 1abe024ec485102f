//! The one thing a driver gives the executor: a [`Reactor`].
//!
//! Each core owns the reactors registered on it and, on every turn of its
//! loop, polls each without blocking. When nothing is runnable the core
//! parks in the one reactor that can sleep (io_uring `submit_and_wait`,
//! `epoll_wait`), or in a plain eventfd wait when none can. A sleeping core
//! is woken through its [`Unpark`] eventfd, which every parking reactor must
//! watch.

use std::any::Any;
use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

/// An I/O driver polled by a core of the executor.
///
/// Implementations complete operations (by waking the wakers they hold) in
/// [`poll`](Reactor::poll) and block the thread in [`park`](Reactor::park).
pub trait Reactor: 'static {
    /// Short name of the technology, e.g. `"uring"`, shown in logs and
    /// `explain()` texts.
    fn name(&self) -> &'static str;

    /// Processes ready events without blocking; returns how many events made
    /// progress (0 when nothing happened).
    fn poll(&mut self) -> usize;

    /// Whether this reactor can block the thread in [`park`](Reactor::park).
    fn can_park(&self) -> bool {
        false
    }

    /// Blocks until one of this reactor's events is ready, `unpark` is
    /// signalled, or `timeout` elapses (`None`: no timeout). Processes what
    /// became ready like `poll` does and returns the count. Only called when
    /// [`can_park`](Reactor::can_park) is true; the default blocks on the
    /// unpark fd alone.
    fn park(&mut self, timeout: Option<Duration>, unpark: &Unpark) -> io::Result<usize> {
        unpark.wait(timeout)?;
        Ok(self.poll())
    }
}

/// A core's wake-up signal: an eventfd written by other threads when they
/// hand the core work while it may be asleep.
#[derive(Debug)]
pub struct Unpark {
    fd: OwnedFd,
}

impl Unpark {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory-safety preconditions; the result is
        // checked before it is used as a descriptor.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` is a freshly created descriptor nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The eventfd a parking reactor must watch for readability.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Signals the core (any thread may call this).
    pub fn unpark(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd. EAGAIN
        // (counter saturated) means a wake-up is already pending: fine.
        unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears a pending signal; parking reactors call it after the fd fired.
    pub fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own non-blocking
        // eventfd; EAGAIN (no pending signal) is ignored.
        unsafe { libc::read(self.fd(), (&mut value as *mut u64).cast(), 8) };
    }

    /// Blocks until signalled or until `timeout` elapses, then drains.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `pfd` and `ts` are live locals for the whole call; a null
        // timeout pointer means "wait forever", as ppoll documents.
        let rc = unsafe { libc::ppoll(&mut pfd, 1, ts_ptr, std::ptr::null()) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        self.drain();
        Ok(())
    }
}

/// A reactor as a core stores it: shared so the driver's own handles
/// (sockets, buffers) can reach it, typed as `Any` so they can find it.
#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) reactor: Rc<RefCell<dyn Reactor>>,
    pub(crate) any: Rc<dyn Any>,
}

/// Registers `reactor` on the current core: from now on the core polls it
/// on every turn and, if it can park, sleeps in it.
///
/// # Errors
/// Fails outside a runtime, or when a second reactor that can park is added
/// to a core that already has one (a core can sleep in only one place).
pub fn register<R: Reactor>(reactor: Rc<RefCell<R>>) -> io::Result<()> {
    crate::context::with_core(|core| core.register_reactor(reactor)).unwrap_or_else(|| {
        Err(io::Error::other(
            "reactor::register called outside an insane runtime",
        ))
    })
}

/// The reactor of type `R` registered on the current core, if any. Drivers
/// use it to reach their per-core state from socket methods.
pub fn current<R: Reactor>() -> Option<Rc<RefCell<R>>> {
    crate::context::with_core(|core| {
        core.reactors
            .borrow()
            .iter()
            .find_map(|r| r.any.clone().downcast::<RefCell<R>>().ok())
    })
    .flatten()
}
