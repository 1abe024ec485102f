//! Asynchronous signal handling, with tokio's names: [`ctrl_c`] for
//! graceful shutdown, and [`unix::signal`] for any other signal.
//!
//! ```no_run
//! #[insane::main]
//! async fn main() -> std::io::Result<()> {
//!     insane::spawn(async { /* serve */ });
//!     insane::signal::ctrl_c().await?;
//!     println!("shutting down");
//!     Ok(())
//! }
//! ```
//!
//! # How it works
//!
//! The first listener of a signal installs a process-wide handler for it
//! (through `signal-hook-registry`, which chains with handlers installed
//! the same way by other libraries). The handler only does what is safe
//! in a signal handler: it marks the signal pending and writes a byte to
//! a pipe. One background thread of the process reads that pipe and
//! wakes every listener of the pending signals, on whichever core it
//! waits (wakers work from any thread). Signals are coalesced like
//! tokio's: several deliveries between two `recv` calls count as one.
//!
//! As with tokio, once a signal has a listener its handler stays for the
//! rest of the process: the signal's default action (for `SIGINT`,
//! termination) no longer happens, also after every listener is gone.
//! Signals that cannot be handled (`SIGKILL`, `SIGSTOP`) or must not be
//! (`SIGILL`, `SIGFPE`, `SIGSEGV`) are refused with an error naming them.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;

/// Signal numbers handled: 1..=64 (Linux's real-time signals end at 64).
const MAX_SIGNAL: usize = 64;

/// Set by the handler, cleared by the reader thread.
static PENDING: [AtomicBool; MAX_SIGNAL + 1] = [const { AtomicBool::new(false) }; MAX_SIGNAL + 1];

/// The write end of the wake-up pipe, for the handler (-1 before).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// The process's signal listeners: one channel per signal whose handler
/// is installed.
struct Registry {
    channels: Mutex<Vec<Option<Arc<Channel>>>>,
}

/// One signal's deliveries: a count, and the listeners waiting for the
/// next one.
#[derive(Debug, Default)]
struct Channel {
    state: Mutex<ChannelState>,
}

#[derive(Debug, Default)]
struct ChannelState {
    deliveries: u64,
    waiting: Vec<Waker>,
}

impl Channel {
    fn deliver(&self) {
        let waiting = {
            let mut st = lock(&self.state);
            st.deliveries = st.deliveries.wrapping_add(1);
            std::mem::take(&mut st.waiting)
        };
        for w in waiting {
            w.wake();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The registry, with its pipe and reader thread started on first use.
fn registry() -> io::Result<&'static Registry> {
    static REGISTRY: OnceLock<Result<Registry, (io::ErrorKind, String)>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| start().map_err(|e| (e.kind(), e.to_string())))
        .as_ref()
        .map_err(|(kind, msg)| io::Error::new(*kind, msg.clone()))
}

fn start() -> io::Result<Registry> {
    let (read, write) = pipe()?;
    std::thread::Builder::new()
        .name("insane-signal".into())
        .spawn(move || reader(read))
        .map_err(|e| io::Error::other(format!("starting the signal thread: {e}")))?;
    // The write end lives for the rest of the process: the handler may
    // run at any time.
    WAKE_FD.store(write.as_raw_fd(), Ordering::Release);
    std::mem::forget(write);
    Ok(Registry {
        channels: Mutex::new((0..=MAX_SIGNAL).map(|_| None).collect()),
    })
}

/// A close-on-exec pipe whose write end does not block (a handler must
/// never block; a full pipe already holds a wake-up).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open fds that nothing else owns.
    let (read, write) = unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    };
    // SAFETY: F_SETFL on an fd we own, with a flag argument.
    let rc = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((read, write))
}

/// The reader thread: waits on the pipe, then tells the listeners of every
/// pending signal.
fn reader(read: OwnedFd) {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: reads into a live buffer of the given length from an fd
        // this thread owns.
        let n = unsafe { libc::read(read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            tracing::error!("insane's signal pipe failed; signals are no longer delivered");
            return;
        }
        let Ok(registry) = registry() else { return };
        let channels = lock(&registry.channels);
        for (signum, pending) in PENDING.iter().enumerate() {
            if pending.swap(false, Ordering::AcqRel)
                && let Some(Some(channel)) = channels.get(signum)
            {
                channel.deliver();
            }
        }
    }
}

/// The signal handler: async-signal-safe (an atomic store and `write(2)`).
fn on_signal(signum: libc::c_int) {
    if let Some(p) = usize::try_from(signum).ok().and_then(|s| PENDING.get(s)) {
        p.store(true, Ordering::Release);
    }
    let fd = WAKE_FD.load(Ordering::Acquire);
    if fd >= 0 {
        // errno is saved and restored: the interrupted code may be reading
        // it.
        // SAFETY: __errno_location returns this thread's errno slot.
        let errno = unsafe { *libc::__errno_location() };
        // SAFETY: writes one byte from a live buffer to an fd that stays
        // open for the rest of the process; write(2) is async-signal-safe.
        unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }
}

/// `signum`'s channel, installing its handler first.
fn listen(signum: libc::c_int) -> io::Result<Arc<Channel>> {
    let slot = usize::try_from(signum)
        .ok()
        .filter(|s| (1..=MAX_SIGNAL).contains(s))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signal {signum} is not a signal number (1..={MAX_SIGNAL})"),
            )
        })?;
    if signal_hook_registry::FORBIDDEN.contains(&signum) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "signal {signum} ({}) cannot be handled",
                name(signum).unwrap_or("unknown")
            ),
        ));
    }
    let registry = registry()?;
    let mut channels = lock(&registry.channels);
    if let Some(channel) = &channels[slot] {
        return Ok(channel.clone());
    }
    // SAFETY: `on_signal` is async-signal-safe: it stores to an atomic and
    // calls write(2), both allowed in a signal handler, and allocates
    // nothing.
    unsafe { signal_hook_registry::register(signum, move || on_signal(signum)) }.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "installing a handler for signal {signum} ({}): {e}",
                name(signum).unwrap_or("unknown")
            ),
        )
    })?;
    let channel = Arc::new(Channel::default());
    channels[slot] = Some(channel.clone());
    Ok(channel)
}

fn name(signum: libc::c_int) -> Option<&'static str> {
    Some(match signum {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        _ => return None,
    })
}

/// Completes on the next `SIGINT` (Ctrl-C) after it is first polled
/// (tokio's `signal::ctrl_c`).
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// insane::signal::ctrl_c().await?;
/// println!("Ctrl-C: stopping");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The handler could not be installed.
pub async fn ctrl_c() -> io::Result<()> {
    let mut sig = unix::signal(unix::SignalKind::interrupt())?;
    sig.recv().await;
    Ok(())
}

pub mod unix {
    //! Unix signals as streams (tokio's `signal::unix`).

    use std::future::poll_fn;
    use std::io;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use super::{Channel, lock};

    /// Which signal to listen for.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct SignalKind(libc::c_int);

    impl SignalKind {
        /// Any signal by number (e.g. a real-time signal).
        pub const fn from_raw(signum: libc::c_int) -> Self {
            Self(signum)
        }

        /// The signal number.
        pub const fn as_raw_value(&self) -> libc::c_int {
            self.0
        }

        /// `SIGALRM`.
        pub const fn alarm() -> Self {
            Self(libc::SIGALRM)
        }

        /// `SIGCHLD`.
        pub const fn child() -> Self {
            Self(libc::SIGCHLD)
        }

        /// `SIGHUP`: the terminal hung up, or "reload the configuration".
        pub const fn hangup() -> Self {
            Self(libc::SIGHUP)
        }

        /// `SIGINT`: Ctrl-C.
        pub const fn interrupt() -> Self {
            Self(libc::SIGINT)
        }

        /// `SIGIO`.
        pub const fn io() -> Self {
            Self(libc::SIGIO)
        }

        /// `SIGPIPE`.
        pub const fn pipe() -> Self {
            Self(libc::SIGPIPE)
        }

        /// `SIGQUIT`.
        pub const fn quit() -> Self {
            Self(libc::SIGQUIT)
        }

        /// `SIGTERM`: the polite request to stop (systemd, Kubernetes).
        pub const fn terminate() -> Self {
            Self(libc::SIGTERM)
        }

        /// `SIGUSR1`.
        pub const fn user_defined1() -> Self {
            Self(libc::SIGUSR1)
        }

        /// `SIGUSR2`.
        pub const fn user_defined2() -> Self {
            Self(libc::SIGUSR2)
        }

        /// `SIGWINCH`: the terminal was resized.
        pub const fn window_change() -> Self {
            Self(libc::SIGWINCH)
        }
    }

    impl From<libc::c_int> for SignalKind {
        fn from(signum: libc::c_int) -> Self {
            Self(signum)
        }
    }

    /// A stream of one signal's deliveries, from [`signal`].
    #[derive(Debug)]
    pub struct Signal {
        channel: Arc<Channel>,
        /// Deliveries already reported (or before this listener existed).
        seen: u64,
    }

    /// Listens for `kind` from now on (the handler is installed before
    /// this returns, so a signal raised right after is seen).
    ///
    /// ```no_run
    /// use insane::signal::unix::{SignalKind, signal};
    /// # async fn f() -> std::io::Result<()> {
    /// let mut hup = signal(SignalKind::hangup())?;
    /// while hup.recv().await.is_some() {
    ///     println!("reloading the configuration");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for a signal that cannot be handled (`SIGKILL`,
    /// `SIGSTOP`, `SIGILL`, `SIGFPE`, `SIGSEGV`) or is not a signal
    /// number; the handler could not be installed.
    pub fn signal(kind: SignalKind) -> io::Result<Signal> {
        let channel = super::listen(kind.0)?;
        // Deliveries before this listener existed are not its own.
        let seen = lock(&channel.state).deliveries;
        Ok(Signal { channel, seen })
    }

    impl Signal {
        /// The next delivery (several deliveries since the last call count
        /// as one). `None` would mean no more signals can arrive, which
        /// does not happen: the handler stays for the process.
        pub async fn recv(&mut self) -> Option<()> {
            poll_fn(|cx| self.poll_recv(cx)).await
        }

        /// Poll form of [`recv`](Self::recv).
        pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
            let mut st = lock(&self.channel.state);
            if st.deliveries != self.seen {
                self.seen = st.deliveries;
                return Poll::Ready(Some(()));
            }
            if !st.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                st.waiting.push(cx.waker().clone());
            }
            Poll::Pending
        }
    }
}
