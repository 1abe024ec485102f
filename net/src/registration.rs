//! [`Registration`]: a socket's link to the I/O driver of each core that
//! waits on it.
//!
//! A socket is `Send + Sync` like tokio's, so an `Arc<UdpSocket>` may be
//! used by tasks on several cores at once. Each core that waits on the fd
//! registers it with its own driver, lazily, at the first wait. On drop,
//! the entry of the current core is removed at once and those of other
//! cores by a small task spawned on them (a driver is only touched by its
//! own core); see [`Registration::release`].
//!
//! A driver keeps one waker per fd and direction. So that several tasks of
//! one core can wait for the same direction at once (two tasks calling
//! `recv_from` on one `Arc<UdpSocket>`, as tokio allows), the waker given
//! to the driver is a per-core, per-direction [`Waiters`] list that wakes
//! every task that waited since the last wake-up.

use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use insane_runtime::driver::{self, Direction, Token};
use insane_runtime::runtime::CoreHandle;
use insane_runtime::task::coop;

/// The tasks of one core waiting for one direction of one fd.
#[derive(Debug, Default)]
struct Waiters {
    list: Mutex<Vec<Waker>>,
}

impl Waiters {
    /// Adds `waker` unless an equivalent one is already waiting.
    fn push(&self, waker: &Waker) {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let list = std::mem::take(&mut *self.list.lock().unwrap_or_else(|p| p.into_inner()));
        for w in list {
            w.wake();
        }
    }
}

/// The registration of the fd with one core's driver.
#[derive(Debug)]
struct Entry {
    core: CoreHandle,
    token: Token,
    /// Waiters for [`Direction::Read`] and [`Direction::Write`], and the
    /// wakers handed to the driver for them.
    waiters: [(Arc<Waiters>, Waker); 2],
}

fn dir_index(dir: Direction) -> usize {
    match dir {
        Direction::Read => 0,
        Direction::Write => 1,
    }
}

/// Per-core driver registrations of one fd.
#[derive(Debug)]
pub(crate) struct Registration {
    fd: RawFd,
    entries: Mutex<Vec<Entry>>,
}

impl Registration {
    /// Tracks `fd` (which must stay open until this is dropped).
    pub(crate) fn new(fd: RawFd) -> Self {
        Self {
            fd,
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The uid of the current core, if it has an I/O driver (cheap: no
    /// reference count is touched).
    fn current_uid() -> Option<u64> {
        driver::current().map(|(_, uid)| uid)
    }

    /// Registers the fd with the current core's driver; the caller holds
    /// the entries' lock and found no entry for this core.
    fn register_here(&self, entries: &mut Vec<Entry>) -> io::Result<usize> {
        let core = CoreHandle::current().ok_or_else(|| {
            io::Error::other("insane sockets must be used from inside an insane runtime")
        })?;
        let token = driver::with_current(|d| d.register(self.fd))??;
        let waiters = [(); 2].map(|()| {
            let w = Arc::new(Waiters::default());
            let waker = Waker::from(w.clone());
            (w, waker)
        });
        entries.push(Entry {
            core,
            token,
            waiters,
        });
        Ok(entries.len() - 1)
    }

    /// Waits (as a poll function) until the fd may be ready for `dir`.
    ///
    /// Every task that got `Pending` for `dir` on this core is woken at
    /// the next readiness (not only the most recent one).
    ///
    /// Spends one unit of the task's cooperative budget when it reports
    /// the fd ready (tokio's sockets do the same): a task that always
    /// finds its socket ready still yields to the core's other tasks every
    /// [budget](insane_runtime::task::coop), and timeouts around it fire.
    pub(crate) fn poll_ready(&self, dir: Direction, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let coop = std::task::ready!(coop::poll_proceed(cx));
        let ready = self.poll_ready_uncounted(dir, cx);
        if ready.is_ready() {
            coop.made_progress();
        }
        ready
    }

    fn poll_ready_uncounted(&self, dir: Direction, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let uid = Self::current_uid();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let found = uid.and_then(|uid| entries.iter().position(|e| e.core.uid() == uid));
        let index = match found {
            Some(i) => i,
            None => match self.register_here(&mut entries) {
                Ok(i) => i,
                Err(e) => return Poll::Ready(Err(e)),
            },
        };
        let entry = &entries[index];
        let (waiters, fan_out) = &entry.waiters[dir_index(dir)];
        let mut fan_out = Context::from_waker(fan_out);
        // The driver never calls back into this registration (it only
        // stores, wakes or drops the fan-out waker), so the lock may be
        // held across the call.
        match driver::with_current(|d| d.poll_ready(entry.token, dir, &mut fan_out)) {
            Ok(Poll::Pending) => {
                // The driver wakes only on this core's thread, which is
                // running this call: no wake-up can slip in before the
                // push.
                waiters.push(cx.waker());
                Poll::Pending
            }
            Ok(ready) => ready,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Records that the fd returned `WouldBlock` for `dir`.
    pub(crate) fn clear_ready(&self, dir: Direction) {
        let Some(uid) = Self::current_uid() else {
            return;
        };
        let token = {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            match entries.iter().find(|e| e.core.uid() == uid) {
                Some(e) => e.token,
                // Not registered here: no readiness is cached to clear.
                None => return,
            }
        };
        let _ = driver::with_current(|d| d.clear_ready(token, dir));
    }

    /// Runs the non-blocking syscall `op` until it stops returning
    /// `WouldBlock`, waiting for readiness in between (tokio's
    /// `async_io`).
    pub(crate) async fn async_io<R>(
        &self,
        dir: Direction,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            std::future::poll_fn(|cx| self.poll_ready(dir, cx)).await?;
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.clear_ready(dir),
                other => return other,
            }
        }
    }

    /// The poll-function form of [`async_io`](Self::async_io), for
    /// `AsyncRead`/`AsyncWrite` implementations.
    pub(crate) fn poll_io<R>(
        &self,
        dir: Direction,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match self.poll_ready(dir, cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.clear_ready(dir),
                other => return Poll::Ready(other),
            }
        }
    }

    /// Deregisters the fd from every core's driver, then drops `owner` (the
    /// fd's owner, so this closes the fd) once no driver tracks it any more.
    ///
    /// The entry of the current core is removed at once. Entries of other
    /// cores are removed by small tasks on those cores, which keep `owner`
    /// alive until they ran: closing the fd first would let its number be
    /// reused by a new socket while another core's driver still tracks it,
    /// and an io_uring poll still in flight there keeps the file open
    /// anyway. With `owner = ()` (`into_std`), the fd stays open and the
    /// remote entries go away shortly after.
    pub(crate) fn release<T: Send + Sync + 'static>(&mut self, owner: T) {
        let entries = std::mem::take(self.entries.get_mut().unwrap_or_else(|p| p.into_inner()));
        let owner = Arc::new(owner);
        for Entry { core, token, .. } in entries {
            if core.is_current() {
                let _ = driver::with_current(|d| d.deregister(token));
            } else {
                let owner = owner.clone();
                drop(core.spawn(async move {
                    let _ = driver::with_current(|d| d.deregister(token));
                    drop(owner);
                }));
            }
        }
        drop(owner);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.release(());
    }
}
