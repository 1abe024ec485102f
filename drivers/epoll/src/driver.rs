//! [`EpollDriver`]: a core's readiness reactor over one epoll instance.
//!
//! Each fd is registered once, edge-triggered for reading and writing
//! (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`, as mio and tokio do). Per
//! token and direction the driver keeps a cached `ready` flag and the
//! waker of the task waiting for it: events set the flag and wake the
//! task; a socket that sees `WouldBlock` clears the flag
//! ([`IoDriver::clear_ready`]). Everything runs on the core's own thread,
//! so an event can never slip in between a syscall's `WouldBlock` and the
//! `clear_ready` that follows it.
//!
//! fd numbers are reused by the kernel, and a socket's registration may be
//! removed late (by a task on this core, after the fd was closed and its
//! number handed to a new socket). So the driver remembers which token
//! currently owns each fd number: `deregister` only issues
//! `EPOLL_CTL_DEL` for the current owner, and `register` of a number that
//! still has an owner replaces it (its token goes dead, its waiters are
//! woken to see an error) and uses `EPOLL_CTL_ADD`, or `EPOLL_CTL_MOD` when
//! the same open file is still in the set. Tokens carry a generation, so a
//! dead token never reaches the slot's next owner.
//!
//! The core's unpark eventfd is added to the same epoll set
//! (level-triggered) the first time the core parks, so `epoll_wait` also
//! returns when another thread hands the core work.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::task::{Context, Poll};
use std::time::Duration;

use insane_runtime::driver::{Direction, DriverKind, EventLimits, IoDriver, Token};
use insane_runtime::reactor::{Reactor, Unpark};

use crate::slots::{MAX_SLOTS, Slots};
use crate::sys::{self, CtlOp, EMPTY_EVENT, Epoll};

/// The epoll `data` of the unpark eventfd (never a valid token).
const UNPARK_KEY: u64 = u64::MAX;

/// How many events one `epoll_wait` call returns at most, by default
/// (both [`EventLimits`]).
const DEFAULT_EVENTS: usize = 256;

/// The largest event buffer a limit can ask for.
const MAX_EVENTS: usize = 1 << 16;

/// Interest registered for every fd.
const INTEREST: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

const READ_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
const WRITE_EVENTS: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// A core's epoll-based [`IoDriver`].
///
/// Create one per core with [`EpollDriver::new`] and install it with
/// [`insane_runtime::driver::install`] (or call
/// [`install_on_current_core`](crate::install_on_current_core)).
pub struct EpollDriver {
    epoll: Epoll,
    slots: Slots,
    /// The current registration of each fd number. A registration removed
    /// late (after its fd was closed and the number reused) is no longer
    /// the owner and must not touch the new fd's epoll entry.
    owners: HashMap<RawFd, Token>,
    /// Room for the larger of the two limits.
    events: Box<[libc::epoll_event]>,
    limits: EventLimits,
    /// The unpark eventfd in the epoll set, once added.
    unpark_fd: Option<RawFd>,
    /// Use `epoll_pwait2` for sub-millisecond timeouts when the kernel has
    /// it.
    precise: bool,
    parks: u64,
}

impl fmt::Debug for EpollDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpollDriver")
            .field("epfd", &self.epoll.raw())
            .field("registrations", &self.slots.len())
            .field("unpark_fd", &self.unpark_fd)
            .field("precise_timeouts", &self.precise_timeouts())
            .field("parks", &self.parks)
            .finish()
    }
}

impl EpollDriver {
    /// Creates the epoll instance.
    ///
    /// # Errors
    /// When `epoll_create1` fails (the error names it).
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            epoll: Epoll::new()?,
            slots: Slots::default(),
            owners: HashMap::new(),
            events: vec![EMPTY_EVENT; DEFAULT_EVENTS].into_boxed_slice(),
            limits: EventLimits {
                per_tick: DEFAULT_EVENTS,
                per_busy_tick: DEFAULT_EVENTS,
            },
            unpark_fd: None,
            precise: true,
            parks: 0,
        })
    }

    /// Whether timeouts are honoured with microsecond precision
    /// (`epoll_pwait2`, Linux ≥ 5.11) rather than rounded up to whole
    /// milliseconds (`epoll_wait`). False once the kernel was found to lack
    /// `epoll_pwait2`, or after [`set_precise_timeouts(false)`].
    ///
    /// [`set_precise_timeouts(false)`]: EpollDriver::set_precise_timeouts
    pub fn precise_timeouts(&self) -> bool {
        self.precise && !sys::pwait2_unavailable()
    }

    /// Chooses whether to use `epoll_pwait2` for sub-millisecond timeouts
    /// (default: yes, where the kernel has it). With `false`, every wait
    /// uses `epoll_wait` with the timeout rounded up to whole milliseconds.
    pub fn set_precise_timeouts(&mut self, precise: bool) {
        self.precise = precise;
    }

    /// How many times the core has slept in this driver
    /// ([`Reactor::park`]).
    pub fn parks(&self) -> u64 {
        self.parks
    }

    /// Number of fds currently registered.
    pub fn registrations(&self) -> usize {
        self.slots.len()
    }

    /// Blocks until an I/O event of a registered fd or until `timeout`
    /// (`None`: no timeout) and dispatches the events, like
    /// [`Reactor::park`] without an unpark signal. Never returns before
    /// `timeout` unless an event arrived or a signal interrupted the wait.
    ///
    /// # Errors
    /// When `epoll_wait` fails (the error names it).
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        self.wait_inner(timeout).map(|(n, _)| n)
    }

    /// Waits and dispatches; returns the number of I/O events and whether
    /// the unpark fd fired.
    fn wait_inner(&mut self, timeout: Option<Duration>) -> io::Result<(usize, bool)> {
        let max = self.limits.per_tick;
        let n = self
            .epoll
            .wait(&mut self.events[..max], timeout, self.precise)?;
        Ok(self.dispatch(n))
    }

    /// Applies the first `n` events of the buffer. Returns the number of
    /// I/O events for live registrations and whether the unpark fd fired.
    fn dispatch(&mut self, n: usize) -> (usize, bool) {
        let mut progress = 0;
        let mut unparked = false;
        for i in 0..n.min(self.events.len()) {
            let libc::epoll_event { events, u64: key } = self.events[i];
            if key == UNPARK_KEY {
                unparked = true;
                continue;
            }
            let Ok(key) = usize::try_from(key) else {
                continue;
            };
            // Events of a stale token (a registration replaced after fd
            // reuse, or removed since the event was queued) are ignored.
            let Some(entry) = self.slots.get_mut(Token(key)) else {
                continue;
            };
            if events & READ_EVENTS != 0 {
                entry.read.set_ready();
            }
            if events & WRITE_EVENTS != 0 {
                entry.write.set_ready();
            }
            progress += 1;
        }
        (progress, unparked)
    }

    /// Puts `unpark`'s eventfd in the epoll set (once; again if the core
    /// ever passes a different one).
    fn watch_unpark(&mut self, unpark: &Unpark) -> io::Result<()> {
        let fd = unpark.fd();
        if self.unpark_fd == Some(fd) {
            return Ok(());
        }
        if let Some(old) = self.unpark_fd.take() {
            // The previous unpark fd may be closed already: nothing to undo.
            let _ = self.epoll.ctl(CtlOp::Del, old, 0, 0);
        }
        let events = libc::EPOLLIN as u32;
        match self.epoll.ctl(CtlOp::Add, fd, events, UNPARK_KEY) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.epoll.ctl(CtlOp::Mod, fd, events, UNPARK_KEY)?;
            }
            Err(e) => return Err(e),
        }
        self.unpark_fd = Some(fd);
        Ok(())
    }

    fn stale_token_error(token: Token) -> io::Error {
        io::Error::other(format!(
            "epoll driver: token {:#x} is not registered (deregistered, or its fd number was \
             reused by a newer registration)",
            token.0
        ))
    }
}

impl Reactor for EpollDriver {
    fn name(&self) -> &'static str {
        "epoll"
    }

    fn poll(&mut self) -> usize {
        if self.slots.len() == 0 {
            // Nothing registered: only the unpark fd could report, and
            // that is `park`'s business. Saves a syscall per loop turn.
            return 0;
        }
        let max = self.limits.per_busy_tick;
        match self
            .epoll
            .wait(&mut self.events[..max], Some(Duration::ZERO), false)
        {
            // A pending unpark signal is left for `park` to drain: draining
            // it here could swallow a wake-up meant for the next sleep.
            Ok(n) => self.dispatch(n).0,
            Err(e) => {
                tracing::warn!(error = %e, "epoll poll failed");
                0
            }
        }
    }

    fn can_park(&self) -> bool {
        true
    }

    fn park(&mut self, timeout: Option<Duration>, unpark: &Unpark) -> io::Result<usize> {
        self.watch_unpark(unpark)?;
        self.parks += 1;
        let (n, unparked) = self.wait_inner(timeout)?;
        if unparked {
            unpark.drain();
        }
        Ok(n)
    }
}

impl IoDriver for EpollDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Epoll
    }

    fn event_limits(&self) -> EventLimits {
        self.limits
    }

    /// Each limit is the `maxevents` of one `epoll_wait`, 1 to 65536.
    fn set_event_limits(&mut self, limits: EventLimits) {
        let clamp = |n: usize| n.clamp(1, MAX_EVENTS);
        self.limits = EventLimits {
            per_tick: clamp(limits.per_tick),
            per_busy_tick: clamp(limits.per_busy_tick),
        };
        let room = self.limits.per_tick.max(self.limits.per_busy_tick);
        if self.events.len() != room {
            self.events = vec![EMPTY_EVENT; room].into_boxed_slice();
        }
    }

    fn register(&mut self, fd: RawFd) -> io::Result<Token> {
        if self.slots.len() >= MAX_SLOTS {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("epoll driver: cannot register fd {fd}: {MAX_SLOTS} registrations already"),
            ));
        }
        let Some(token) = self.slots.insert(fd) else {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("epoll driver: cannot register fd {fd}: registration table full"),
            ));
        };
        let key = token.0 as u64;
        let added = match self.epoll.ctl(CtlOp::Add, fd, INTEREST, key) {
            // The same open file is still in the set under this number (an
            // earlier registration of it was never removed): point it at
            // the new token.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.epoll.ctl(CtlOp::Mod, fd, INTEREST, key)
            }
            other => other,
        };
        if let Err(e) = added {
            self.slots.remove(token, false);
            return Err(e);
        }
        if let Some(stale) = self.owners.insert(fd, token) {
            // The previous owner of this fd number is dead (its fd was
            // closed and the number reused) or superseded: forget it, so
            // its late `deregister` is a no-op, and wake its waiters so
            // they retry and get an error instead of hanging.
            if self.slots.remove(stale, true).is_some() {
                tracing::debug!(fd, ?stale, new = ?token, "fd number reused; stale epoll registration dropped");
            }
        }
        Ok(token)
    }

    fn deregister(&mut self, token: Token) {
        let Some(entry) = self.slots.remove(token, false) else {
            return;
        };
        let fd = entry.fd;
        if self.owners.get(&fd) == Some(&token) {
            self.owners.remove(&fd);
            if let Err(e) = self.epoll.ctl(CtlOp::Del, fd, 0, 0) {
                // EBADF/ENOENT: the fd was closed already, which removed it
                // from the set. Harmless either way.
                tracing::trace!(fd, error = %e, "epoll deregister");
            }
        }
        // Dropping `entry` drops its wakers, as the contract says.
    }

    fn poll_ready(
        &mut self,
        token: Token,
        dir: Direction,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(entry) = self.slots.get_mut(token) else {
            return Poll::Ready(Err(Self::stale_token_error(token)));
        };
        let state = entry.dir(dir);
        if state.ready {
            return Poll::Ready(Ok(()));
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn clear_ready(&mut self, token: Token, dir: Direction) {
        if let Some(entry) = self.slots.get_mut(token) {
            entry.dir(dir).ready = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};
    use std::time::Instant;

    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Counter>, Waker) {
        let c = Arc::new(Counter(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn eventfd() -> OwnedFd {
        // SAFETY: eventfd takes no pointers; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(fd >= 0);
        // SAFETY: a fresh descriptor nobody else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    fn pending(d: &mut EpollDriver, t: Token, dir: Direction, w: &Waker) {
        d.clear_ready(t, dir);
        let mut cx = Context::from_waker(w);
        assert!(d.poll_ready(t, dir, &mut cx).is_pending());
    }

    fn fake_event(d: &mut EpollDriver, t: Token, events: libc::c_int) -> usize {
        d.events[0] = libc::epoll_event {
            events: events as u32,
            u64: t.0 as u64,
        };
        d.dispatch(1).0
    }

    #[test]
    fn event_bits_map_to_directions() {
        let efd = eventfd();
        let mut d = EpollDriver::new().unwrap();
        let t = d.register(efd.as_raw_fd()).unwrap();
        let cases: [(libc::c_int, bool, bool); 6] = [
            (libc::EPOLLIN, true, false),
            (libc::EPOLLRDHUP, true, false),
            (libc::EPOLLOUT, false, true),
            (libc::EPOLLHUP, true, true),
            (libc::EPOLLERR, true, true),
            (libc::EPOLLIN | libc::EPOLLOUT, true, true),
        ];
        for (bits, read, write) in cases {
            let (rc, rw) = counter();
            let (wc, ww) = counter();
            pending(&mut d, t, Direction::Read, &rw);
            pending(&mut d, t, Direction::Write, &ww);
            assert_eq!(fake_event(&mut d, t, bits), 1);
            assert_eq!(
                rc.0.load(Ordering::SeqCst),
                usize::from(read),
                "read for {bits:#x}"
            );
            assert_eq!(
                wc.0.load(Ordering::SeqCst),
                usize::from(write),
                "write for {bits:#x}"
            );
            assert_eq!(d.slots.get_mut(t).unwrap().read.ready, read);
            assert_eq!(d.slots.get_mut(t).unwrap().write.ready, write);
        }
    }

    #[test]
    fn stale_and_garbage_events_are_ignored() {
        let mut d = EpollDriver::new().unwrap();
        assert_eq!(fake_event(&mut d, Token(usize::MAX - 1), libc::EPOLLIN), 0);
        let efd = eventfd();
        let t = d.register(efd.as_raw_fd()).unwrap();
        d.deregister(t);
        assert_eq!(fake_event(&mut d, t, libc::EPOLLIN), 0);
        d.events[0] = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: UNPARK_KEY,
        };
        assert_eq!(d.dispatch(1), (0, true));
        // More events claimed than the buffer holds: clamped, no panic.
        assert!(d.dispatch(usize::MAX).1);
    }

    #[test]
    fn only_the_latest_waker_is_woken_once() {
        let efd = eventfd();
        let mut d = EpollDriver::new().unwrap();
        let t = d.register(efd.as_raw_fd()).unwrap();
        let (c1, w1) = counter();
        let (c2, w2) = counter();
        pending(&mut d, t, Direction::Read, &w1);
        pending(&mut d, t, Direction::Read, &w2);
        fake_event(&mut d, t, libc::EPOLLIN);
        fake_event(&mut d, t, libc::EPOLLIN);
        assert_eq!(c1.0.load(Ordering::SeqCst), 0);
        assert_eq!(c2.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn real_eventfd_readiness_wakes() {
        let efd = eventfd();
        let mut d = EpollDriver::new().unwrap();
        let t = d.register(efd.as_raw_fd()).unwrap();
        // Drain the initial edge (EPOLLOUT) so we test a fresh one.
        d.wait(Some(Duration::ZERO)).unwrap();
        let (c, w) = counter();
        pending(&mut d, t, Direction::Read, &w);
        assert_eq!(d.poll(), 0);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        let written = unsafe { libc::write(efd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        assert_eq!(written, 8);
        assert_eq!(d.wait(Some(Duration::from_secs(5))).unwrap(), 1);
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn wait_never_returns_before_its_timeout() {
        for precise in [true, false] {
            let mut d = EpollDriver::new().unwrap();
            d.set_precise_timeouts(precise);
            let efd = eventfd();
            // A registered fd with no pending edge after the first wait.
            d.register(efd.as_raw_fd()).unwrap();
            d.wait(Some(Duration::ZERO)).unwrap();
            for timeout in [
                Duration::from_micros(300),
                Duration::from_micros(1_500),
                Duration::from_millis(5),
            ] {
                let start = Instant::now();
                assert_eq!(d.wait(Some(timeout)).unwrap(), 0);
                let waited = start.elapsed();
                assert!(
                    waited >= timeout,
                    "precise={precise}: waited {waited:?} < {timeout:?}"
                );
            }
        }
    }
}
