//! The per-core io_uring [`Driver`]: ring setup, submission and completion
//! processing, parking, readiness for tokio-style sockets, and shutdown.
//!
//! One ring per core, created on the core's thread (`SINGLE_ISSUER`,
//! `DEFER_TASKRUN`: only that thread ever enters it). Every submission
//! carries a `user_data` that says what it is:
//!
//! ```text
//! bits 63..56  tag   (operation, readiness poll read/write, unpark poll, ignore)
//! bits 55..32  generation of the slot or token (stale completions are ignored)
//! bits 31..0   slot index in the operation slab, or token index
//! ```
//!
//! Operations ([`crate::op`], [`crate::bufring`]) live in a slab until
//! their final completion (no `IORING_CQE_F_MORE`); a future dropped early
//! leaves its resources in its slot (an "orphan") and cancels the request,
//! so the kernel never writes into freed memory. Orphans are dropped after
//! their final completion, in a small local task rather than inside
//! [`Reactor::poll`], because their destructors may call back into the
//! driver (e.g. a socket deregistering itself) while the core holds it.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use insane_runtime::driver::{Direction, DriverKind, EventLimits, IoDriver, Token};
use insane_runtime::reactor::{Reactor, Unpark};
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use slab::Slab;

use crate::bufring::{BufRingShared, RingState};
use crate::features::{self, UringFeatures};

/// Configuration of the io_uring driver of each core.
#[derive(Clone, Debug)]
pub struct UringConfig {
    /// Submission queue entries (the CQ gets four times as many). Default
    /// 256; at most 32768.
    pub entries: u32,
    /// Let a kernel thread poll the submission queue (`IORING_SETUP_SQPOLL`;
    /// the facade also enables it with `INSANE_SQPOLL=1`). Lower latency for
    /// one extra busy kernel thread per core; refused with fewer than 2
    /// CPUs in the process's allowed set (the thread would starve the core).
    pub sqpoll: bool,
    /// How long the SQPOLL thread spins without work before it sleeps.
    pub sqpoll_idle: Duration,
    /// Use `COOP_TASKRUN`, `TASKRUN_FLAG`, `SINGLE_ISSUER` and
    /// `DEFER_TASKRUN` when the kernel supports them (default true).
    pub taskrun_flags: bool,
    /// Use multishot `POLL_ADD` for read readiness when supported (one
    /// submission serves many wake-ups). Default true.
    pub multishot_poll: bool,
    /// Buffers in the per-core provided-buffer ring (power of two).
    pub buf_ring_entries: u16,
    /// Size of each buffer of the per-core provided-buffer ring.
    pub buf_ring_buf_size: u32,
    /// [`crate::op::send_auto`] uses `SEND_ZC` for buffers of at least this
    /// many bytes (default 16 KiB).
    pub send_zc_threshold: usize,
}

impl Default for UringConfig {
    fn default() -> Self {
        Self {
            entries: 256,
            sqpoll: false,
            sqpoll_idle: Duration::from_millis(1000),
            taskrun_flags: true,
            multishot_poll: true,
            buf_ring_entries: 256,
            buf_ring_buf_size: 4096,
            send_zc_threshold: 16 * 1024,
        }
    }
}

// ---- user_data encoding ------------------------------------------------

/// Completions one poll processes at most, by default (both
/// [`EventLimits`]): enough for a flood, few enough that it cannot starve
/// the core's tasks.
const DEFAULT_EVENTS: usize = 2048;

pub(crate) const TAG_OP: u64 = 0;
const TAG_READ: u64 = 1;
const TAG_WRITE: u64 = 2;
const TAG_UNPARK: u64 = 3;
const TAG_IGNORE: u64 = 4;
const GEN_MASK: u32 = 0x00FF_FFFF;

/// Identifies one slot of the operation slab (index + generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) index: u32,
    pub(crate) gen_: u32,
}

impl Key {
    pub(crate) fn user_data(self, tag: u64) -> u64 {
        (tag << 56) | (u64::from(self.gen_ & GEN_MASK) << 32) | u64::from(self.index)
    }
}

fn split_user_data(ud: u64) -> (u64, u32, usize) {
    (
        ud >> 56,
        ((ud >> 32) as u32) & GEN_MASK,
        (ud & 0xFFFF_FFFF) as usize,
    )
}

// ---- operation slots ---------------------------------------------------

/// How completions of an operation are collected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotKind {
    /// One completion.
    Single,
    /// `SEND_ZC`: a result and, if it had `F_MORE`, a notification.
    ZeroCopy,
    /// Multishot: completions queue up until one without `F_MORE`.
    Multi,
}

/// An in-flight operation.
pub(crate) struct Slot {
    pub(crate) gen_: u32,
    kind: SlotKind,
    pub(crate) waker: Option<Waker>,
    /// Result and flags of a single-shot (or zero-copy) operation.
    pub(crate) result: Option<(i32, u32)>,
    /// Completions of a multishot operation not yet consumed.
    pub(crate) queue: VecDeque<(i32, u32)>,
    /// The final completion arrived; the kernel is done with the resources.
    pub(crate) finished: bool,
    /// The owner (future, stream) is gone.
    pub(crate) orphaned: bool,
    /// Resources kept alive for the kernel after the owner went away.
    pub(crate) orphan: Option<Box<dyn Any>>,
    /// Provided-buffer group the operation selects buffers from.
    pub(crate) buf_group: Option<u16>,
}

struct DirState {
    ready: bool,
    armed: bool,
    waker: Option<Waker>,
}

impl DirState {
    const fn new() -> Self {
        Self {
            ready: false,
            armed: false,
            waker: None,
        }
    }
}

struct TokenState {
    fd: RawFd,
    gen_: u32,
    dirs: [DirState; 2],
}

fn dir_index(dir: Direction) -> usize {
    match dir {
        Direction::Read => 0,
        Direction::Write => 1,
    }
}

fn token_of(index: usize, gen_: u32) -> Token {
    Token(index | ((gen_ as usize) << 32))
}

fn untoken(token: Token) -> (usize, u32) {
    (token.0 & 0xFFFF_FFFF, (token.0 >> 32) as u32)
}

// ---- driver state ------------------------------------------------------

/// Everything the ring needs, behind one `RefCell` (never borrowed while
/// a waker is woken or an orphan dropped).
pub(crate) struct State {
    ring: ManuallyDrop<IoUring>,
    pub(crate) ops: Slab<Slot>,
    tokens: Slab<TokenState>,
    next_gen: u32,
    /// Submitted entries whose final completion has not been seen.
    pub(crate) in_flight: usize,
    unpark_fd: Option<RawFd>,
    unpark_armed: bool,
    /// Cleared when the kernel rejects multishot POLL_ADD.
    multishot_poll_ok: bool,
    /// Completions one poll (busy) or park processes at most.
    limits: EventLimits,
    pub(crate) wakes: Vec<Waker>,
    pub(crate) graveyard: Vec<Box<dyn Any>>,
    pub(crate) buf_rings: Slab<RingState>,
    pub(crate) closed: bool,
    /// Shutdown could not reap every operation: leak the ring and buffer
    /// memory rather than free what the kernel may still use.
    pub(crate) leak: bool,
    enter_error_logged: bool,
    features_ext_arg: bool,
    features_multishot_poll: bool,
    config_multishot_poll: bool,
}

impl Drop for State {
    fn drop(&mut self) {
        if self.leak {
            for (_, r) in std::mem::take(&mut self.buf_rings) {
                std::mem::forget(r);
            }
            return;
        }
        // SAFETY: the ring is dropped exactly once, here, and never used
        // afterwards; no operation is in flight (otherwise `leak` is set).
        unsafe { ManuallyDrop::drop(&mut self.ring) };
        // Buffer rings are unmapped after the ring (field drop order).
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBUSY) | Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ETIME)
    )
}

pub(crate) fn closed_error() -> io::Error {
    insane_runtime::runtime::shutdown_error("the io_uring driver of this core has shut down")
}

impl State {
    fn alloc_gen(&mut self) -> u32 {
        self.next_gen = self.next_gen.wrapping_add(1) & GEN_MASK;
        self.next_gen
    }

    /// Creates a slot for a new operation.
    pub(crate) fn insert_slot(
        &mut self,
        kind: SlotKind,
        buf_group: Option<u16>,
    ) -> io::Result<Key> {
        if self.closed {
            return Err(closed_error());
        }
        let gen_ = self.alloc_gen();
        let entry = self.ops.vacant_entry();
        let index = entry.key();
        let Ok(index) = u32::try_from(index) else {
            return Err(io::Error::other("too many io_uring operations in flight"));
        };
        entry.insert(Slot {
            gen_,
            kind,
            waker: None,
            result: None,
            queue: VecDeque::new(),
            finished: false,
            orphaned: false,
            orphan: None,
            buf_group,
        });
        Ok(Key { index, gen_ })
    }

    /// The slot of `key`, if it is still that operation's.
    #[inline]
    pub(crate) fn slot_mut(&mut self, key: Key) -> Option<&mut Slot> {
        self.ops
            .get_mut(key.index as usize)
            .filter(|s| s.gen_ == key.gen_)
    }

    pub(crate) fn remove_slot(&mut self, key: Key) -> Option<Slot> {
        if self.slot_mut(key).is_some() {
            Some(self.ops.remove(key.index as usize))
        } else {
            None
        }
    }

    /// Pushes `entry` to the SQ, submitting (and reaping, when the kernel
    /// pushes back) while the queue is full.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid until its final completion
    /// has been reaped.
    pub(crate) unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        for _ in 0..1_000 {
            // SAFETY: forwarded to the caller's contract.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.in_flight += 1;
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if is_transient(&e) => {
                    // CQ overflow backlog: make room by reaping.
                    self.reap();
                }
                Err(e) => return Err(enter_error(&e)),
            }
            if self.ring.submission().is_full() {
                if self.ring.params().is_setup_sqpoll() {
                    let _ = self.ring.submitter().squeue_wait();
                } else {
                    self.reap();
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "io_uring submission queue stays full (the kernel does not consume entries)",
        ))
    }

    /// Registers a provided-buffer ring.
    ///
    /// # Safety
    /// `addr` must be a page-aligned mapping of `entries` `io_uring_buf`
    /// entries that stays valid until unregistered or the ring is gone.
    pub(crate) unsafe fn register_buf_ring(
        &self,
        addr: u64,
        entries: u16,
        bgid: u16,
    ) -> io::Result<()> {
        // SAFETY: forwarded to the caller's contract.
        unsafe {
            self.ring
                .submitter()
                .register_buf_ring_with_flags(addr, entries, bgid, 0)
        }
    }

    pub(crate) fn unregister_buf_ring(&self, bgid: u16) -> io::Result<()> {
        self.ring.submitter().unregister_buf_ring(bgid)
    }

    /// Asks the kernel to cancel the request with `user_data`.
    pub(crate) fn push_cancel(&mut self, user_data: u64) {
        let entry = opcode::AsyncCancel::new(user_data)
            .build()
            .user_data(TAG_IGNORE << 56);
        // SAFETY: ASYNC_CANCEL carries no pointers.
        if let Err(e) = unsafe { self.push(&entry) } {
            // The request will complete on its own; its resources stay in
            // their slot until then, so this is only a delay.
            tracing::warn!(error = %e, "cannot submit io_uring cancellation");
        }
    }

    /// One `io_uring_enter` if there is anything to submit or the kernel
    /// asks for one (deferred task work, CQ overflow).
    pub(crate) fn submit_if_needed(&mut self) -> io::Result<()> {
        let needed = {
            let sq = self.ring.submission();
            !sq.is_empty() || sq.taskrun() || sq.cq_overflow()
        };
        if !needed {
            return Ok(());
        }
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(enter_error(&e)),
        }
    }

    /// Blocks in the kernel until a completion, the timeout, or a signal.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let result = match timeout {
            Some(d) if d.is_zero() => self.ring.submit(),
            Some(d) if self.features_ext_arg => {
                let ts = types::Timespec::from(clamp_timeout(d));
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            Some(d) => {
                let key = self.push_timeout(d)?;
                let r = self.ring.submit_and_wait(1);
                // Woken early: drop the timer (its slot frees itself).
                if self.slot_mut(key).is_some_and(|s| !s.finished) {
                    self.push_cancel(key.user_data(TAG_OP));
                }
                r
            }
            None => self.ring.submit_and_wait(1),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(enter_error(&e)),
        }
    }

    /// An `IORING_OP_TIMEOUT` (kernels without `EXT_ARG`), owned by the
    /// driver: its timespec lives in the slot until the completion.
    fn push_timeout(&mut self, d: Duration) -> io::Result<Key> {
        let key = self.insert_slot(SlotKind::Single, None)?;
        let ts = Box::new(types::Timespec::from(clamp_timeout(d)));
        let entry = opcode::Timeout::new(&*ts as *const types::Timespec)
            .build()
            .user_data(key.user_data(TAG_OP));
        if let Some(slot) = self.slot_mut(key) {
            slot.orphaned = true;
            slot.orphan = Some(ts);
        }
        // SAFETY: the timespec is owned by the slot until the completion.
        if let Err(e) = unsafe { self.push(&entry) } {
            self.remove_slot(key);
            return Err(e);
        }
        Ok(key)
    }

    /// Processes the available completions (at most [`DEFAULT_EVENTS`],
    /// so a flood cannot starve the core's tasks); returns how many.
    pub(crate) fn reap(&mut self) -> usize {
        self.reap_at_most(DEFAULT_EVENTS)
    }

    /// Processes at most `limit` of the available completions; the rest
    /// stay in the completion queue for the next poll. Returns how many.
    pub(crate) fn reap_at_most(&mut self, limit: usize) -> usize {
        let mut total = 0;
        while total < limit {
            // Most polls find nothing: skip building the batch then.
            if self.ring.completion().is_empty() {
                return total;
            }
            let mut batch = [(0u64, 0i32, 0u32); 64];
            let mut n = 0;
            {
                let cq = self.ring.completion();
                for cqe in cq.take(batch.len().min(limit - total)) {
                    batch[n] = (cqe.user_data(), cqe.result(), cqe.flags());
                    n += 1;
                }
            }
            if n == 0 {
                return total;
            }
            for &(ud, res, flags) in &batch[..n] {
                self.complete(ud, res, flags);
            }
            total += n;
        }
        total
    }

    fn complete(&mut self, ud: u64, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        if !more {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        let (tag, gen_, index) = split_user_data(ud);
        match tag {
            TAG_OP => self.complete_op(
                Key {
                    index: index as u32,
                    gen_,
                },
                res,
                flags,
            ),
            TAG_READ | TAG_WRITE => {
                let dir = if tag == TAG_READ { 0 } else { 1 };
                if let Some(t) = self.tokens.get_mut(index).filter(|t| t.gen_ == gen_) {
                    let d = &mut t.dirs[dir];
                    if !more {
                        d.armed = false;
                        if res == -libc::EINVAL && dir == 0 && self.multishot_poll_ok {
                            tracing::debug!(
                                "kernel rejects multishot POLL_ADD; using oneshot polls"
                            );
                            self.multishot_poll_ok = false;
                        }
                    }
                    // Errors too: the task retries its syscall and sees them.
                    d.ready = true;
                    if let Some(w) = d.waker.take() {
                        self.wakes.push(w);
                    }
                }
            }
            TAG_UNPARK => {
                if !more {
                    self.unpark_armed = false;
                    if res == -libc::EINVAL && self.multishot_poll_ok {
                        self.multishot_poll_ok = false;
                    }
                }
                if let Some(fd) = self.unpark_fd {
                    let mut value: u64 = 0;
                    // SAFETY: reads 8 bytes into a live u64 from the core's
                    // non-blocking eventfd (which outlives the driver);
                    // EAGAIN is ignored. Same as `Unpark::drain`.
                    unsafe { libc::read(fd, (&mut value as *mut u64).cast(), 8) };
                }
            }
            _ => {}
        }
    }

    fn complete_op(&mut self, key: Key, res: i32, flags: u32) {
        let Some(slot) = self
            .ops
            .get_mut(key.index as usize)
            .filter(|s| s.gen_ == key.gen_)
        else {
            return;
        };
        let last = !cqueue::more(flags);
        match slot.kind {
            SlotKind::Single => slot.result = Some((res, flags)),
            SlotKind::ZeroCopy => {
                if !cqueue::notif(flags) {
                    slot.result = Some((res, flags));
                }
            }
            SlotKind::Multi => {
                if !slot.orphaned {
                    slot.queue.push_back((res, flags));
                }
            }
        }
        if last {
            slot.finished = true;
        }
        if let (Some(bid), Some(group)) = (cqueue::buffer_select(flags), slot.buf_group) {
            if let Some(ring) = self.buf_rings.get_mut(usize::from(group)) {
                ring.held += 1;
                if slot.orphaned {
                    ring.recycle(bid, &mut self.wakes);
                }
            }
        }
        if slot.orphaned {
            if slot.finished {
                let slot = self.ops.remove(key.index as usize);
                if let Some(o) = slot.orphan {
                    self.graveyard.push(o);
                }
            }
        } else if last || slot.kind == SlotKind::Multi {
            if let Some(w) = slot.waker.take() {
                self.wakes.push(w);
            }
        }
    }

    fn arm_unpark(&mut self) -> io::Result<()> {
        let Some(fd) = self.unpark_fd else {
            return Ok(());
        };
        let multi = self.features_multishot_poll && self.multishot_poll_ok;
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .multi(multi)
            .build()
            .user_data(TAG_UNPARK << 56);
        // SAFETY: POLL_ADD carries no pointers.
        unsafe { self.push(&entry) }?;
        self.unpark_armed = true;
        Ok(())
    }

    // ---- readiness ----

    fn register(&mut self, fd: RawFd) -> io::Result<Token> {
        if self.closed {
            return Err(closed_error());
        }
        let gen_ = self.alloc_gen();
        let index = self.tokens.insert(TokenState {
            fd,
            gen_,
            dirs: [DirState::new(), DirState::new()],
        });
        if index > u32::MAX as usize {
            self.tokens.remove(index);
            return Err(io::Error::other(
                "too many fds registered with the io_uring driver",
            ));
        }
        Ok(token_of(index, gen_))
    }

    fn token_mut(&mut self, token: Token) -> Option<&mut TokenState> {
        let (index, gen_) = untoken(token);
        self.tokens.get_mut(index).filter(|t| t.gen_ == gen_)
    }

    fn deregister(&mut self, token: Token) {
        let (index, gen_) = untoken(token);
        if self.token_mut(token).is_none() {
            return;
        }
        let t = self.tokens.remove(index);
        let mut cancelled = false;
        for (i, d) in t.dirs.iter().enumerate() {
            if d.armed {
                let tag = if i == 0 { TAG_READ } else { TAG_WRITE };
                self.push_cancel(
                    Key {
                        index: index as u32,
                        gen_,
                    }
                    .user_data(tag),
                );
                cancelled = true;
            }
        }
        // Submit the cancels now: an armed poll holds a reference to the
        // socket's file, so until they reach the kernel a dropped socket
        // stays open (no FIN, port still bound) if the core then blocks.
        if cancelled {
            if let Err(e) = self.submit_if_needed() {
                tracing::warn!(error = %e, "io_uring: submitting poll cancels failed");
            }
        }
    }

    fn poll_ready(
        &mut self,
        token: Token,
        dir: Direction,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let multi_ok =
            self.features_multishot_poll && self.multishot_poll_ok && self.config_multishot_poll;
        let closed = self.closed;
        let (index, gen_) = untoken(token);
        let Some(t) = self.token_mut(token) else {
            return Poll::Ready(Err(io::Error::other(format!(
                "io_uring driver: token {index} is not registered (deregistered, or from another core)"
            ))));
        };
        let fd = t.fd;
        let d = &mut t.dirs[dir_index(dir)];
        if d.ready {
            return Poll::Ready(Ok(()));
        }
        if closed {
            return Poll::Ready(Err(closed_error()));
        }
        match &mut d.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        if d.armed {
            return Poll::Pending;
        }
        let (mask, tag, multi) = match dir {
            Direction::Read => (
                (libc::POLLIN | libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) as u32,
                TAG_READ,
                multi_ok,
            ),
            Direction::Write => (
                (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) as u32,
                TAG_WRITE,
                false,
            ),
        };
        let entry = opcode::PollAdd::new(types::Fd(fd), mask)
            .multi(multi)
            .build()
            .user_data(
                Key {
                    index: index as u32,
                    gen_,
                }
                .user_data(tag),
            );
        // SAFETY: POLL_ADD carries no pointers.
        match unsafe { self.push(&entry) } {
            Ok(()) => {
                if let Some(t) = self.token_mut(token) {
                    t.dirs[dir_index(dir)].armed = true;
                }
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn clear_ready(&mut self, token: Token, dir: Direction) {
        if let Some(t) = self.token_mut(token) {
            t.dirs[dir_index(dir)].ready = false;
        }
    }

    fn take_deferred(&mut self) -> Deferred {
        Deferred {
            wakes: std::mem::take(&mut self.wakes),
            graves: std::mem::take(&mut self.graveyard),
        }
    }
}

fn clamp_timeout(d: Duration) -> Duration {
    // Far beyond any timer; keeps tv_sec positive as an i64.
    d.min(Duration::from_secs(1 << 40))
}

fn enter_error(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("io_uring_enter failed: {e}"))
}

/// Work collected under the state borrow, done after it is released.
#[must_use]
pub(crate) struct Deferred {
    wakes: Vec<Waker>,
    graves: Vec<Box<dyn Any>>,
}

impl Deferred {
    /// Wakes the tasks and drops the orphans: in a local task when inside
    /// a runtime (their destructors may reach the driver, which the core
    /// holds borrowed while it polls us), directly otherwise.
    ///
    /// Returns the wake list, emptied, for reuse.
    pub(crate) fn run(self, in_poll: bool) -> Vec<Waker> {
        let mut wakes = self.wakes;
        for w in wakes.drain(..) {
            w.wake();
        }
        if self.graves.is_empty() {
            return wakes;
        }
        if in_poll && insane_runtime::runtime::CoreHandle::current().is_some() {
            let graves = self.graves;
            // A task of the core, never of an entered `LocalSet`.
            drop(
                insane_runtime::task::Builder::new().spawn_local(async move {
                    drop(graves);
                }),
            );
        } else {
            drop(self.graves);
        }
        wakes
    }
}

// ---- shared handle -----------------------------------------------------

pub(crate) struct Inner {
    pub(crate) state: RefCell<State>,
    pub(crate) features: UringFeatures,
    pub(crate) config: UringConfig,
    /// The per-core default provided-buffer ring, while someone uses it.
    pub(crate) default_ring: RefCell<Weak<BufRingShared>>,
}

/// A cheap, clonable reference to a core's io_uring driver, used by
/// operations and buffer rings. `!Send`: it belongs to its core's thread.
#[derive(Clone)]
pub struct Handle {
    pub(crate) inner: Rc<Inner>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("ops_in_flight", &self.ops_in_flight())
            .finish()
    }
}

impl Handle {
    /// The io_uring driver of the current core.
    ///
    /// # Errors
    /// Outside an insane runtime, or on a core whose I/O driver is not
    /// io_uring (e.g. the epoll fallback).
    pub fn current() -> io::Result<Handle> {
        let Some(driver) = insane_runtime::reactor::current::<Driver>() else {
            return Err(
                if insane_runtime::runtime::CoreHandle::current().is_none() {
                    io::Error::other(
                        "io_uring operations must be used from inside an insane runtime",
                    )
                } else {
                    io::Error::new(
                        io::ErrorKind::Unsupported,
                        "this insane core has no io_uring driver (it runs another I/O driver, e.g. epoll)",
                    )
                },
            );
        };
        let guard = driver.try_borrow().map_err(|_| {
            io::Error::other("the io_uring driver is busy (re-entrant use from inside its poll)")
        })?;
        Ok(guard.handle.clone())
    }

    /// What the kernel supports, and the setup flags of this ring.
    pub fn features(&self) -> &UringFeatures {
        &self.inner.features
    }

    /// The configuration the driver was built with.
    pub fn config(&self) -> &UringConfig {
        &self.inner.config
    }

    /// Operations in the slab: in flight, or completed and not yet
    /// collected by their future. 0 when everything finished.
    pub fn ops_in_flight(&self) -> usize {
        self.inner
            .state
            .try_borrow()
            .map(|s| s.ops.len())
            .unwrap_or(0)
    }

    /// Submissions (operations, polls, cancellations) whose final
    /// completion has not arrived yet.
    pub fn sqes_in_flight(&self) -> usize {
        self.inner
            .state
            .try_borrow()
            .map(|s| s.in_flight)
            .unwrap_or(0)
    }

    /// Whether the driver has shut down (its core stopped).
    pub fn is_closed(&self) -> bool {
        self.inner
            .state
            .try_borrow()
            .map(|s| s.closed)
            .unwrap_or(false)
    }

    /// Runs `f` on the state; fails instead of panicking on re-entrance.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> io::Result<R> {
        let mut st = self.inner.state.try_borrow_mut().map_err(|_| {
            io::Error::other("the io_uring driver is busy (re-entrant use from inside its poll)")
        })?;
        Ok(f(&mut st))
    }

    /// Submits what is queued and processes completions, without blocking.
    fn poll_now(&self) -> usize {
        let Ok(mut st) = self.inner.state.try_borrow_mut() else {
            return 0;
        };
        if let Err(e) = st.submit_if_needed() {
            if !st.enter_error_logged {
                st.enter_error_logged = true;
                tracing::error!(error = %e, "io_uring submission failed");
            }
        }
        let limit = st.limits.per_busy_tick;
        let n = st.reap_at_most(limit);
        let deferred = st.take_deferred();
        drop(st);
        self.run_deferred(deferred);
        n
    }

    /// Runs `deferred` (from a poll) and keeps its emptied wake list for
    /// the next poll, so that waking tasks allocates nothing per turn.
    fn run_deferred(&self, deferred: Deferred) {
        let wakes = deferred.run(true);
        if wakes.capacity() == 0 {
            return;
        }
        if let Ok(mut st) = self.inner.state.try_borrow_mut() {
            if st.wakes.is_empty() {
                st.wakes = wakes;
            }
        }
    }

    fn park(&self, timeout: Option<Duration>, unpark: &Unpark) -> io::Result<usize> {
        let Ok(mut st) = self.inner.state.try_borrow_mut() else {
            return Ok(0);
        };
        if st.closed {
            drop(st);
            unpark.wait(timeout)?;
            return Ok(0);
        }
        st.unpark_fd = Some(unpark.fd());
        let mut result = Ok(());
        if !st.unpark_armed {
            result = st.arm_unpark();
        }
        if result.is_ok() {
            let ready = !st.wakes.is_empty()
                || !st.graveyard.is_empty()
                || !st.ring.completion().is_empty();
            result = if ready {
                st.submit_if_needed()
            } else {
                st.wait(timeout)
            };
        }
        let limit = st.limits.per_tick;
        let n = st.reap_at_most(limit);
        let deferred = st.take_deferred();
        drop(st);
        self.run_deferred(deferred);
        result.map(|()| n)
    }

    /// Cancels everything, waits (bounded) for the kernel to finish, and
    /// marks the driver closed.
    fn shutdown(&self) {
        let deferred;
        {
            let Ok(mut st) = self.inner.state.try_borrow_mut() else {
                tracing::error!("io_uring driver dropped while in use; leaking its ring");
                return;
            };
            st.closed = true;
            let mut targets = Vec::new();
            for (i, slot) in st.ops.iter() {
                if !slot.finished {
                    targets.push(
                        Key {
                            index: i as u32,
                            gen_: slot.gen_,
                        }
                        .user_data(TAG_OP),
                    );
                }
            }
            for (i, t) in st.tokens.iter() {
                for (d, tag) in [(0, TAG_READ), (1, TAG_WRITE)] {
                    if t.dirs[d].armed {
                        targets.push(
                            Key {
                                index: i as u32,
                                gen_: t.gen_,
                            }
                            .user_data(tag),
                        );
                    }
                }
            }
            if st.unpark_armed {
                targets.push(TAG_UNPARK << 56);
            }
            for ud in targets {
                st.push_cancel(ud);
            }
            st.tokens.clear();
            let deadline = Instant::now() + Duration::from_secs(2);
            while st.in_flight > 0 && Instant::now() < deadline {
                if let Err(e) = st.wait(Some(Duration::from_millis(10))) {
                    tracing::warn!(error = %e, "io_uring wait failed during shutdown");
                    std::thread::sleep(Duration::from_millis(1));
                }
                st.reap();
            }
            if st.in_flight > 0 {
                tracing::error!(
                    in_flight = st.in_flight,
                    "io_uring operations did not complete at shutdown; leaking their buffers and the ring"
                );
                st.leak = true;
                for (_, slot) in st.ops.iter_mut() {
                    if let Some(o) = slot.orphan.take() {
                        std::mem::forget(o);
                    }
                }
            }
            deferred = st.take_deferred();
        }
        drop(deferred.run(false));
    }
}

// ---- the driver --------------------------------------------------------

/// A core's io_uring driver: the [`Reactor`] the core polls and parks in,
/// and the [`IoDriver`] its tokio-style sockets wait on.
pub struct Driver {
    handle: Handle,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("features", &self.handle.inner.features)
            .finish()
    }
}

/// Refuses SQPOLL on hosts where the polling kernel thread would share the
/// only CPU with the core (measured: it stalls).
///
/// # Errors
/// `allowed_cpus < 2`, with a message saying why.
pub fn check_sqpoll(allowed_cpus: usize) -> io::Result<()> {
    if allowed_cpus < 2 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "SQPOLL refused: the process may run on {allowed_cpus} CPU(s) (sched_getaffinity) \
                 but the kernel SQ polling thread needs a CPU besides the core's; \
                 unset INSANE_SQPOLL or allow at least 2 CPUs"
            ),
        ));
    }
    Ok(())
}

impl Driver {
    /// Sets up a ring for the calling thread (one per core).
    ///
    /// # Errors
    /// io_uring unavailable (the message names the cause), SQPOLL on fewer
    /// than 2 CPUs, or a kernel lacking `POLL_ADD`/`ASYNC_CANCEL`.
    pub fn new(config: &UringConfig) -> io::Result<Driver> {
        Self::with_cpu_count(config, features::allowed_cpu_count)
    }

    /// [`new`](Self::new) with the size of the allowed CPU set supplied by
    /// `allowed_cpus` (tests use it to simulate a one-CPU host).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_cpu_count(
        config: &UringConfig,
        allowed_cpus: impl FnOnce() -> io::Result<usize>,
    ) -> io::Result<Driver> {
        let cpus = if config.sqpoll {
            let n = allowed_cpus()?;
            check_sqpoll(n)?;
            n
        } else {
            allowed_cpus().unwrap_or(1)
        };
        let idle = config.sqpoll.then(|| {
            config
                .sqpoll_idle
                .as_millis()
                .clamp(1, u128::from(u32::MAX)) as u32
        });
        let (ring, flags) = features::setup_ring(config.entries, idle, config.taskrun_flags)
            .map_err(|e| {
                if config.sqpoll {
                    io::Error::new(e.kind(), format!("SQPOLL: {e}"))
                } else {
                    e
                }
            })?;
        let features = features::detect(&ring, flags, cpus)?;
        if !features.poll_add || !features.async_cancel {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "io_uring on Linux {} lacks POLL_ADD or ASYNC_CANCEL (Linux 5.6+ needed)",
                    features.kernel_release
                ),
            ));
        }
        tracing::debug!(%features, "io_uring driver ready");
        let state = State {
            ring: ManuallyDrop::new(ring),
            ops: Slab::with_capacity(64),
            tokens: Slab::with_capacity(64),
            next_gen: 0,
            in_flight: 0,
            unpark_fd: None,
            unpark_armed: false,
            multishot_poll_ok: true,
            limits: EventLimits {
                per_tick: DEFAULT_EVENTS,
                per_busy_tick: DEFAULT_EVENTS,
            },
            wakes: Vec::new(),
            graveyard: Vec::new(),
            buf_rings: Slab::new(),
            closed: false,
            leak: false,
            enter_error_logged: false,
            features_ext_arg: features.ext_arg,
            features_multishot_poll: features.poll_add_multishot,
            config_multishot_poll: config.multishot_poll,
        };
        Ok(Driver {
            handle: Handle {
                inner: Rc::new(Inner {
                    state: RefCell::new(state),
                    features,
                    config: config.clone(),
                    default_ring: RefCell::new(Weak::new()),
                }),
            },
        })
    }

    /// A handle for operations on this driver.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// What the kernel supports, and the setup flags of this ring.
    pub fn features(&self) -> &UringFeatures {
        &self.handle.inner.features
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

impl Reactor for Driver {
    fn name(&self) -> &'static str {
        "uring"
    }

    fn poll(&mut self) -> usize {
        self.handle.poll_now()
    }

    fn can_park(&self) -> bool {
        true
    }

    fn park(&mut self, timeout: Option<Duration>, unpark: &Unpark) -> io::Result<usize> {
        self.handle.park(timeout, unpark)
    }
}

impl IoDriver for Driver {
    fn kind(&self) -> DriverKind {
        DriverKind::Uring
    }

    fn event_limits(&self) -> EventLimits {
        self.handle
            .with_state(|st| st.limits)
            .unwrap_or(EventLimits {
                per_tick: DEFAULT_EVENTS,
                per_busy_tick: DEFAULT_EVENTS,
            })
    }

    /// Each limit counts completions (a readiness wake, an operation's
    /// result); at least 1.
    fn set_event_limits(&mut self, limits: EventLimits) {
        let limits = EventLimits {
            per_tick: limits.per_tick.max(1),
            per_busy_tick: limits.per_busy_tick.max(1),
        };
        if let Err(e) = self.handle.with_state(|st| st.limits = limits) {
            tracing::error!(error = %e, "io_uring event limits not set");
        }
    }

    fn register(&mut self, fd: RawFd) -> io::Result<Token> {
        self.handle.with_state(|st| st.register(fd))?
    }

    fn deregister(&mut self, token: Token) {
        if let Err(e) = self.handle.with_state(|st| st.deregister(token)) {
            tracing::error!(error = %e, "io_uring deregister failed");
        }
    }

    fn poll_ready(
        &mut self,
        token: Token,
        dir: Direction,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        match self.handle.with_state(|st| st.poll_ready(token, dir, cx)) {
            Ok(p) => p,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn clear_ready(&mut self, token: Token, dir: Direction) {
        let _ = self.handle.with_state(|st| st.clear_ready(token, dir));
    }
}

/// Creates this core's io_uring driver and installs it as the core's I/O
/// driver and parking reactor. Called by the facade from
/// `Builder::on_core_start`.
///
/// # Errors
/// As [`Driver::new`], or when the core already has an I/O driver.
pub fn install_on_current_core(config: &UringConfig) -> io::Result<()> {
    let driver = Driver::new(config)?;
    insane_runtime::driver::install(Rc::new(RefCell::new(driver)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trip() {
        let k = Key {
            index: 0xDEAD_BEEF,
            gen_: 0x12_3456,
        };
        let (tag, g, i) = split_user_data(k.user_data(TAG_WRITE));
        assert_eq!((tag, g, i), (TAG_WRITE, 0x12_3456, 0xDEAD_BEEF));
        let t = token_of(7, 99);
        assert_eq!(untoken(t), (7, 99));
    }

    fn timed_wait(ext_arg: bool) -> Duration {
        let driver = Driver::new(&UringConfig::default()).expect("io_uring driver");
        let mut st = driver.handle.inner.state.borrow_mut();
        st.features_ext_arg = ext_arg;
        let start = Instant::now();
        st.wait(Some(Duration::from_millis(50))).expect("wait");
        let waited = start.elapsed();
        // The fallback's timeout op completes and frees its slot.
        let t = Instant::now();
        while !st.ops.is_empty() && t.elapsed() < Duration::from_secs(2) {
            st.submit_if_needed().unwrap();
            st.reap();
        }
        assert!(st.ops.is_empty());
        assert_eq!(st.in_flight, 0);
        waited
    }

    #[test]
    fn park_timeout_with_ext_arg() {
        let waited = timed_wait(true);
        assert!(
            waited >= Duration::from_millis(45) && waited < Duration::from_secs(1),
            "{waited:?}"
        );
    }

    #[test]
    fn park_timeout_with_timeout_op() {
        let waited = timed_wait(false);
        assert!(
            waited >= Duration::from_millis(45) && waited < Duration::from_secs(1),
            "{waited:?}"
        );
    }

    #[test]
    fn zero_timeout_does_not_block() {
        let driver = Driver::new(&UringConfig::default()).expect("io_uring driver");
        let mut st = driver.handle.inner.state.borrow_mut();
        let start = Instant::now();
        st.wait(Some(Duration::ZERO)).unwrap();
        assert!(start.elapsed() < Duration::from_millis(20));
    }

    #[test]
    fn operations_after_shutdown_fail_with_the_runtime_shutdown_error() {
        let driver = Driver::new(&UringConfig::default()).expect("io_uring driver");
        driver.handle.shutdown();
        let err = driver
            .handle
            .inner
            .state
            .borrow_mut()
            .insert_slot(SlotKind::Single, None)
            .expect_err("a closed driver starts no operation");
        assert!(
            insane_runtime::runtime::is_rt_shutdown_err(&err),
            "tokio's is_rt_shutdown_err says so: {err}"
        );
        assert_eq!(
            err.to_string(),
            "the io_uring driver of this core has shut down"
        );
    }

    #[test]
    fn sqpoll_check() {
        assert!(check_sqpoll(1).is_err());
        assert!(check_sqpoll(0).is_err());
        assert!(check_sqpoll(2).is_ok());
    }
}
