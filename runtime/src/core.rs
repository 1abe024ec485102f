//! One core of the executor: its run queues, timers and reactors, and the
//! loop that drives them.
//!
//! A core is owned by one thread. Tasks woken on that thread go to a
//! local FIFO queue, one per latency class when priority is on (critical
//! tasks first, one normal task between passes: see `run_tasks` and
//! `task::Latency`); tasks woken (or spawned with `spawn_on`) from other
//! threads go to a lock-free injection queue and the core is unparked
//! through its eventfd when it might be sleeping.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use concurrent_queue::ConcurrentQueue;
use slab::Slab;

use crate::context;
use crate::driver::{EventLimits, IoDriver};
use crate::reactor::{Reactor, Registered, Unpark};
use crate::runtime::IdlePolicy;
use crate::task::{Latency, TaskHeader};
use crate::time::Clock;
use crate::time::wheel::Wheel;

pub(crate) type Runnable = async_task::Runnable<TaskHeader>;

/// How many tasks a core runs before it looks at its injection queue,
/// reactors and timers again, unless `Builder::event_interval` says
/// otherwise (tokio uses 61 for the same purpose).
pub(crate) const DEFAULT_EVENT_INTERVAL: usize = 64;

/// With priority on, how many normal tasks a core runs before it looks at
/// its reactors and timers again: a critical flow's completion waits for
/// at most this slice of normal work.
const NORMAL_SLICE: usize = 16;

/// The scheduling settings of a core, from the runtime's builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    /// Whether tasks are queued by latency class (`Builder::priority`).
    pub(crate) priority: bool,
    /// Tasks run per turn (`Builder::event_interval`).
    pub(crate) event_interval: usize,
    /// Tasks run between two looks at the injection queue within a turn
    /// (`Builder::global_queue_interval`); 0: only at the start of a turn.
    pub(crate) global_queue_interval: usize,
    /// `Builder::max_io_events_per_tick` / `_busy_tick`: set on the I/O
    /// driver when it is installed; `None` leaves the driver's default.
    pub(crate) io_events_per_tick: Option<usize>,
    pub(crate) io_events_per_busy_tick: Option<usize>,
}

impl Tuning {
    /// The I/O event limits for a driver whose own are `default`: tokio's
    /// rule, the busy limit follows the per-tick one unless set.
    fn event_limits(&self, default: EventLimits) -> EventLimits {
        EventLimits {
            per_tick: self.io_events_per_tick.unwrap_or(default.per_tick),
            per_busy_tick: self
                .io_events_per_busy_tick
                .or(self.io_events_per_tick)
                .unwrap_or(default.per_busy_tick),
        }
    }
}

/// How far the adaptive spin window may grow past the configured one.
const MAX_SPIN_FACTOR: u32 = 10;

/// A park shorter than this that ended by work means "should have spun".
const SHORT_SLEEP: Duration = Duration::from_micros(500);

static NEXT_CORE_UID: AtomicU64 = AtomicU64::new(1);

/// A number no other core, runtime or `LocalSet` of the process has (the
/// ids of `runtime::Id`).
pub(crate) fn next_uid() -> u64 {
    NEXT_CORE_UID.fetch_add(1, Ordering::Relaxed)
}

/// The part of a core other threads may touch.
pub(crate) struct CoreShared {
    pub(crate) index: usize,
    /// Distinguishes cores of different runtimes (timers remember it).
    pub(crate) uid: u64,
    remote: ConcurrentQueue<Runnable>,
    unpark: Unpark,
    /// True while the core is (about to be) asleep; a thread that hands it
    /// work must then signal `unpark`.
    sleeping: AtomicBool,
    /// Live `SpinGuard`s: while non-zero the core busy-polls instead of
    /// sleeping, whatever its idle policy (latency-critical flows).
    pub(crate) spin_holds: std::sync::atomic::AtomicUsize,
    owner: std::sync::OnceLock<ThreadId>,
    /// Set when the core has shut down: work handed to it afterwards is
    /// dropped (cancelled) instead of waiting forever in `remote`, which
    /// a `CoreHandle` may keep alive.
    shut_down: AtomicBool,
    pub(crate) metrics: crate::metrics::CoreMetrics,
}

impl CoreShared {
    pub(crate) fn new(index: usize) -> io::Result<Self> {
        Ok(Self {
            index,
            uid: next_uid(),
            remote: ConcurrentQueue::unbounded(),
            unpark: Unpark::new()?,
            sleeping: AtomicBool::new(false),
            spin_holds: std::sync::atomic::AtomicUsize::new(0),
            owner: std::sync::OnceLock::new(),
            shut_down: AtomicBool::new(false),
            metrics: crate::metrics::CoreMetrics::new(),
        })
    }

    /// The schedule function of every core task: on the thread of the
    /// task's core, a push on the core's run queue (no atomic operation,
    /// no unpark: the core is running); from any other thread, the core's
    /// injection queue and an unpark.
    pub(crate) fn schedule_task(runnable: Runnable) {
        let mut slot = Some(runnable);
        context::with_core(|core| {
            if let Some(runnable) = slot.take() {
                let ours = runnable
                    .metadata()
                    .core()
                    .is_some_and(|owner| owner.uid == core.shared.uid);
                slot = if ours {
                    core.push_local(runnable).err()
                } else {
                    Some(runnable)
                };
            }
        });
        let Some(runnable) = slot else { return };
        // A reference of our own: handing the task over may drop it.
        match runnable.metadata().core().cloned() {
            Some(owner) => owner.push_remote(runnable),
            // Blocking closures have their own schedule function.
            None => drop(runnable),
        }
    }

    fn push_remote(&self, runnable: Runnable) {
        if let Err(e) = self.remote.push(runnable) {
            // The queue is unbounded and never closed, so this cannot
            // happen; dropping keeps the task from leaking if it ever does.
            drop(e.into_inner());
            return;
        }
        // Pairs with the fence in `Core::shutdown`: either its last drain
        // sees this task, or we see the core shut down and cancel it.
        fence(Ordering::SeqCst);
        if self.shut_down.load(Ordering::SeqCst) {
            self.cancel_remote();
            return;
        }
        self.wake();
    }

    /// Whether the calling thread is this core's thread.
    pub(crate) fn is_owned_by_current_thread(&self) -> bool {
        self.owner.get() == Some(&std::thread::current().id())
    }

    /// Tasks handed over by other threads and not yet taken.
    pub(crate) fn remote_len(&self) -> usize {
        self.remote.len()
    }

    /// Whether the core has shut down (its runtime was dropped).
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    /// Cancels the tasks left in `remote` (dropping a runnable cancels
    /// its task: its `JoinHandle` reports a cancellation). A `!Send` task
    /// can only be dropped on its own thread; elsewhere it is leaked.
    fn cancel_remote(&self) {
        let on_owner = self.is_owned_by_current_thread();
        while let Ok(runnable) = self.remote.pop() {
            if on_owner || !runnable.metadata().is_local() {
                drop(runnable);
            } else {
                std::mem::forget(runnable);
            }
        }
    }

    /// Unparks the core if it may be sleeping.
    pub(crate) fn wake(&self) {
        // Pairs with the fence in `Core::park`: either the core sees our
        // work before it sleeps, or we see it sleeping and signal it.
        fence(Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::AcqRel) {
            self.unpark.unpark();
        }
    }
}

impl Drop for CoreShared {
    fn drop(&mut self) {
        self.cancel_remote();
    }
}

/// State every core of one runtime can see.
pub(crate) struct RuntimeShared {
    pub(crate) cores: Vec<Arc<CoreShared>>,
    /// `Builder::name`.
    pub(crate) name: Option<String>,
    /// `Builder::on_core_stop` hooks. Called only by the cores as they
    /// stop, so a panic caught around a `Handle` (which holds this) can
    /// never observe a hook half-run: asserting unwind safety keeps
    /// `Handle: UnwindSafe`, as tokio's is.
    pub(crate) stop: std::panic::AssertUnwindSafe<Vec<crate::runtime::CoreStop>>,
    /// `Builder::on_core_park` / `on_core_unpark` (same unwind reasoning).
    pub(crate) park_hooks: std::panic::AssertUnwindSafe<crate::runtime::ParkHooks>,
    pub(crate) shutdown: AtomicBool,
    /// The runtime's blocking thread pool (`spawn_blocking`).
    pub(crate) blocking: Arc<crate::task::BlockingPool>,
}

/// A core as its own thread sees it.
pub(crate) struct Core {
    pub(crate) shared: Arc<CoreShared>,
    pub(crate) runtime: Arc<RuntimeShared>,
    /// Ready tasks: every task with priority off, normal ones with it on.
    pub(crate) local: RefCell<VecDeque<Runnable>>,
    /// Ready critical tasks (priority on).
    critical: RefCell<VecDeque<Runnable>>,
    /// Whether tasks are queued by latency class (`Builder::priority`).
    priority: bool,
    /// Tasks run per turn (`Builder::event_interval`).
    event_interval: usize,
    /// The rest of the builder's settings (`global_queue_interval`, I/O
    /// event limits).
    tuning: Tuning,
    /// Tasks left to run before the next look at the injection queue
    /// (with `global_queue_interval` set).
    until_injected_look: Cell<usize>,
    /// The current critical pass of `run_tasks` (each critical task runs
    /// at most once per pass).
    pass: Cell<u64>,
    pub(crate) timers: RefCell<Wheel>,
    /// The time the loop and `time::Instant::now()` read on this core: the
    /// real time unless paused (`time::pause`, `time/clock.rs`).
    pub(crate) clock: Clock,
    /// A waker for every task that has been polled and not yet finished,
    /// so shutdown can reach tasks that are waiting on something.
    pub(crate) tasks: RefCell<Slab<Waker>>,
    pub(crate) reactors: RefCell<Vec<Registered>>,
    /// The kernel I/O driver sockets on this core use (also in `reactors`).
    io_driver: RefCell<Option<Rc<RefCell<dyn IoDriver>>>>,
    /// Index in `reactors` of the one that can park, if any.
    parker: Cell<Option<usize>>,
    /// Set once shutdown began: tasks polled from now on are cancelled.
    pub(crate) closing: Cell<bool>,
    /// The clock as last read by the loop: never ahead of `clock`, so
    /// timers may compare against it without firing early, and skip a
    /// clock read per poll.
    pub(crate) now: Cell<Instant>,
    /// Current spin window of `IdlePolicy::SpinThenPark` (see `idle`).
    spin_window: Cell<Duration>,
    /// The id of the task being polled, for `task::id()`.
    pub(crate) current_task: Cell<Option<crate::task::Id>>,
    /// The class of the task being polled (`Normal` outside tasks): what
    /// `task::latency()` reads and spawned tasks inherit.
    pub(crate) current_latency: Cell<Latency>,
    /// Set by `task::set_latency`; the task's wrapper stores the new class
    /// in its header after the poll.
    pub(crate) latency_changed: Cell<bool>,
    /// Set when the future given to `block_on` is woken on this core's own
    /// thread: such a wake needs no atomic flag, fence or unpark (the core
    /// is running and reads this before it idles). Wakes from other
    /// threads go through `MainWaker::woken`.
    main_woken: Cell<bool>,
    idle: IdlePolicy,
}

impl Core {
    pub(crate) fn new(
        shared: Arc<CoreShared>,
        runtime: Arc<RuntimeShared>,
        idle: IdlePolicy,
        tuning: Tuning,
    ) -> Self {
        let _ = shared.owner.set(std::thread::current().id());
        Self {
            shared,
            runtime,
            local: RefCell::new(VecDeque::with_capacity(1024)),
            critical: RefCell::new(VecDeque::with_capacity(64)),
            priority: tuning.priority,
            event_interval: tuning.event_interval,
            tuning,
            until_injected_look: Cell::new(tuning.global_queue_interval),
            pass: Cell::new(0),
            timers: RefCell::new(Wheel::new(Instant::now())),
            clock: Clock::new(),
            tasks: RefCell::new(Slab::new()),
            reactors: RefCell::new(Vec::new()),
            io_driver: RefCell::new(None),
            parker: Cell::new(None),
            closing: Cell::new(false),
            current_task: Cell::new(None),
            current_latency: Cell::new(Latency::Normal),
            latency_changed: Cell::new(false),
            main_woken: Cell::new(false),
            now: Cell::new(Instant::now()),
            spin_window: Cell::new(match idle {
                IdlePolicy::SpinThenPark(d) => d,
                _ => Duration::ZERO,
            }),
            idle,
        }
    }

    pub(crate) fn index(&self) -> usize {
        self.shared.index
    }

    /// Whether tasks are queued by latency class.
    pub(crate) fn priority(&self) -> bool {
        self.priority
    }

    pub(crate) fn register_reactor<R: Reactor>(&self, reactor: Rc<RefCell<R>>) -> io::Result<()> {
        let can_park = reactor.borrow().can_park();
        let name = reactor.borrow().name();
        let mut reactors = self.reactors.borrow_mut();
        if can_park {
            if let Some(i) = self.parker.get() {
                let other = reactors[i].reactor.borrow().name();
                return Err(io::Error::other(format!(
                    "core {} already parks in the {other} reactor; cannot also park in {name}",
                    self.index()
                )));
            }
            self.parker.set(Some(reactors.len()));
        }
        reactors.push(Registered {
            reactor: reactor.clone(),
            any: reactor,
        });
        tracing::debug!(
            core = self.index(),
            reactor = name,
            can_park,
            "reactor registered"
        );
        Ok(())
    }

    pub(crate) fn install_io_driver<D: IoDriver>(&self, driver: Rc<RefCell<D>>) -> io::Result<()> {
        if let Some(existing) = &*self.io_driver.borrow() {
            return Err(io::Error::other(format!(
                "core {} already has the {} I/O driver",
                self.index(),
                existing.borrow().kind()
            )));
        }
        if self.tuning.io_events_per_tick.is_some() || self.tuning.io_events_per_busy_tick.is_some()
        {
            let mut d = driver.borrow_mut();
            let limits = self.tuning.event_limits(d.event_limits());
            d.set_event_limits(limits);
        }
        self.register_reactor(driver.clone())?;
        *self.io_driver.borrow_mut() = Some(driver);
        Ok(())
    }

    pub(crate) fn io_driver(&self) -> Option<Rc<RefCell<dyn IoDriver>>> {
        self.io_driver.borrow().clone()
    }

    /// Queues a task of this core at the back of the run queue of its
    /// class; gives it back if that queue is borrowed (the caller then
    /// injects it).
    fn push_local(&self, runnable: Runnable) -> Result<(), Runnable> {
        self.push_local_at(runnable, false)
    }

    /// [`push_local`](Self::push_local), at the front of the queue with
    /// `front`.
    fn push_local_at(&self, runnable: Runnable, front: bool) -> Result<(), Runnable> {
        let header = runnable.metadata();
        // A task that called `task::set_latency` and wakes itself in the
        // same poll goes by its new class already.
        let latency = if self.latency_changed.get() && self.current_task.get() == Some(header.id())
        {
            self.current_latency.get()
        } else {
            header.latency()
        };
        let queue = if self.priority && latency == Latency::Critical {
            &self.critical
        } else {
            &self.local
        };
        match queue.try_borrow_mut() {
            Ok(mut q) => {
                if front {
                    q.push_front(runnable);
                } else {
                    q.push_back(runnable);
                }
                Ok(())
            }
            Err(_) => Err(runnable),
        }
    }

    /// With `global_queue_interval` set, counts a task run and, every
    /// that many, moves the oldest task of the injection queue to the
    /// front of its class's run queue: it runs next (tokio's worker takes
    /// a task from its global queue every `global_queue_interval` ticks).
    fn tick_injected_look(&self) {
        let interval = self.tuning.global_queue_interval;
        if interval == 0 {
            return;
        }
        let left = self.until_injected_look.get().saturating_sub(1);
        if left > 0 {
            self.until_injected_look.set(left);
            return;
        }
        self.until_injected_look.set(interval);
        // Looking first is a few loads; popping an empty queue a fence.
        if self.shared.remote.is_empty() {
            return;
        }
        if let Ok(r) = self.shared.remote.pop() {
            if let Err(r) = self.push_local_at(r, true) {
                self.local.borrow_mut().push_front(r);
            }
        }
    }

    /// Polls one task, with a fresh cooperative budget.
    fn run_one(&self, runnable: Runnable) {
        let header = runnable.metadata();
        self.current_task.set(Some(header.id()));
        self.current_latency.set(header.latency());
        self.latency_changed.set(false);
        crate::task::coop::with_budget(|| runnable.run());
        self.current_task.set(None);
        self.current_latency.set(Latency::Normal);
        self.tick_injected_look();
    }

    /// Runs up to `event_interval` local tasks, after moving injected ones
    /// over.
    /// Returns how many ran.
    ///
    /// With priority on: a *pass* runs every ready critical task that has
    /// not run in it yet (a critical task waking itself is seen again in
    /// the next pass, so it cannot hold the core), then one normal task
    /// runs, then the next pass begins. The turn ends after `event_interval` tasks
    /// or `NORMAL_SLICE` normal ones, when the core polls its reactors:
    /// a critical task that became ready waits for at most one normal
    /// task's poll, and normal tasks always get one poll per pass.
    fn run_tasks(&self) -> usize {
        let budget = self.event_interval;
        let mut injected = 0;
        // With `global_queue_interval` set, injected tasks are taken one
        // at a time by `tick_injected_look`, in a batch only when the core
        // has nothing else to run (as tokio's workers take their global
        // queue).
        let take_batch = self.tuning.global_queue_interval == 0
            || (self.local.borrow().is_empty() && self.critical.borrow().is_empty());
        // Looking first is a few loads, where popping an empty queue costs
        // a full fence; a task injected after the look is taken next turn.
        while take_batch && injected < budget && !self.shared.remote.is_empty() {
            match self.shared.remote.pop() {
                Ok(r) => {
                    if let Err(r) = self.push_local(r) {
                        self.local.borrow_mut().push_back(r);
                    }
                }
                Err(_) => break,
            }
            injected += 1;
        }
        let mut ran = 0;
        let mut normal = 0;
        while ran < budget {
            if self.priority {
                ran += self.critical_pass(budget - ran);
                if ran >= budget || normal >= NORMAL_SLICE {
                    break;
                }
            }
            let next = self.local.borrow_mut().pop_front();
            let Some(runnable) = next else {
                // Nothing normal: another pass if critical tasks are ready.
                if self.critical.borrow().is_empty() {
                    break;
                }
                continue;
            };
            self.run_one(runnable);
            ran += 1;
            normal += 1;
        }
        ran
    }

    /// One critical pass: runs ready critical tasks, each at most once,
    /// up to `max`. Returns how many ran. Tasks that already ran in this
    /// pass (they woke themselves) are rotated to the back, so a task
    /// woken behind them still runs in this pass.
    fn critical_pass(&self, max: usize) -> usize {
        let pass = self.pass.get() + 1;
        self.pass.set(pass);
        let mut ran = 0;
        // Tasks rotated since the last one ran: once every queued task was
        // rotated, each has run in this pass.
        let mut rotated = 0;
        while ran < max {
            let next = {
                let mut critical = self.critical.borrow_mut();
                if rotated >= critical.len() {
                    None
                } else {
                    critical.pop_front()
                }
            };
            let Some(runnable) = next else { break };
            if runnable.metadata().pass() == pass {
                self.critical.borrow_mut().push_back(runnable);
                rotated += 1;
                continue;
            }
            runnable.metadata().set_pass(pass);
            self.run_one(runnable);
            ran += 1;
            rotated = 0;
        }
        ran
    }

    /// Polls every reactor once without blocking.
    fn poll_reactors(&self) -> usize {
        // Clone the list so a reactor may register another while we poll.
        let count = self.reactors.borrow().len();
        let mut events = 0;
        for i in 0..count {
            let reactor = self.reactors.borrow()[i].reactor.clone();
            events += reactor.borrow_mut().poll();
        }
        events
    }

    fn fire_timers(&self, now: Instant) -> usize {
        self.timers.borrow_mut().process(now)
    }

    /// One turn of the loop: tasks, reactors, timers. Returns the amount of
    /// work done (0: the core is idle).
    fn turn(&self) -> usize {
        let ran = self.run_tasks();
        let events = self.poll_reactors();
        // The core's clock: the real time unless paused (one branch).
        let now = self.clock.now();
        self.now.set(now);
        let fired = self.fire_timers(now);
        ran + events + fired
    }

    fn has_queued_work(&self) -> bool {
        self.main_woken.get()
            || !self.local.borrow().is_empty()
            || !self.critical.borrow().is_empty()
            || !self.shared.remote.is_empty()
    }

    /// Pops the next ready task of either queue, critical first (shutdown
    /// only: no passes there).
    fn pop_any(&self) -> Option<Runnable> {
        let critical = self.critical.borrow_mut().pop_front();
        critical.or_else(|| self.local.borrow_mut().pop_front())
    }

    /// What an idle core does: spin (polling reactors) as the policy allows,
    /// then sleep until the next timer, an event, or an unpark.
    ///
    /// With `SpinThenPark` the spin window adapts: a core woken by work
    /// shortly after it fell asleep doubles its window (up to
    /// `MAX_SPIN_FACTOR` times the configured one), since waking a parked
    /// thread can cost more than the configured spin (~40 µs in VMs) and
    /// ping-pong peers would otherwise settle into paying it every round
    /// trip; a long sleep resets the window.
    fn idle(&self, extra_wake: &AtomicBool) {
        // Paused clock: jump to the next timer instead of spinning or
        // sleeping until it (auto-advance); with no timer, park below.
        if self.clock.frozen().is_some() && self.auto_advance(extra_wake) {
            return;
        }
        let spin_for = match self.idle {
            IdlePolicy::Park => Duration::ZERO,
            IdlePolicy::SpinThenPark(_) => self.spin_window.get(),
            IdlePolicy::Spin => Duration::MAX,
        };
        let held = || self.shared.spin_holds.load(Ordering::Relaxed) > 0;
        if !spin_for.is_zero() || held() {
            let start = self.clock.now(); // same clock as `now` below
            loop {
                if self.has_queued_work() || extra_wake.load(Ordering::Acquire) {
                    return;
                }
                // The core's clock (runs at the real rate here: a paused
                // one never gets this far).
                let now = self.clock.now();
                self.now.set(now);
                if self.poll_reactors() + self.fire_timers(now) > 0 {
                    return;
                }
                if self.runtime.shutdown.load(Ordering::Acquire) {
                    return;
                }
                if now.duration_since(start) >= spin_for && !held() {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        let slept_from = self.clock.now();
        let timeout = self.park(extra_wake);
        if let IdlePolicy::SpinThenPark(base) = self.idle {
            let slept = self.now.get().saturating_duration_since(slept_from);
            let woken_by_work = timeout.is_none_or(|t| slept < t);
            let window = if woken_by_work && slept < SHORT_SLEEP {
                (self.spin_window.get() * 2).min(base * MAX_SPIN_FACTOR)
            } else if slept >= SHORT_SLEEP {
                base
            } else {
                self.spin_window.get()
            };
            self.spin_window.set(window);
        }
    }

    /// Auto-advance of a paused clock (tokio's behaviour under
    /// `time::pause`), called when a turn found nothing to do: no task ran,
    /// no reactor had an event, no timer was due. Moves the clock to the
    /// earliest timer (the next turn fires it) and returns true; returns
    /// false, to park without a timeout, when there is no timer at all.
    fn auto_advance(&self, extra_wake: &AtomicBool) -> bool {
        if self.has_queued_work() || extra_wake.load(Ordering::Acquire) {
            return true; // work arrived meanwhile: not idle after all
        }
        let Some(deadline) = self.timers.borrow().next_deadline() else {
            return false;
        };
        self.clock.advance_to(deadline);
        self.now.set(self.clock.now());
        true
    }

    /// Sleeps in the parking reactor (or on the unpark eventfd) until work,
    /// an event or the next timer. Returns the timeout it slept with.
    fn park(&self, extra_wake: &AtomicBool) -> Option<Duration> {
        let timeout = self
            .timers
            .borrow()
            .next_deadline()
            // The core's clock runs at the real rate here, so the time
            // left on it is the real time to sleep.
            .map(|d| d.saturating_duration_since(self.clock.now()));
        self.shared.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.has_queued_work()
            || extra_wake.load(Ordering::Acquire)
            || self.runtime.shutdown.load(Ordering::Acquire)
            || timeout == Some(Duration::ZERO)
        {
            self.shared.sleeping.store(false, Ordering::Release);
            return timeout;
        }
        if let Some(hook) = &self.runtime.park_hooks.park {
            hook();
        }
        self.shared.metrics.park_started();
        let parked_at = std::time::Instant::now();
        let result = match self.parker.get() {
            Some(i) => {
                let reactor = self.reactors.borrow()[i].reactor.clone();
                let r = reactor.borrow_mut().park(timeout, &self.shared.unpark);
                r.map(|_| ())
            }
            None => self.shared.unpark.wait(timeout),
        };
        self.shared.sleeping.store(false, Ordering::Release);
        self.shared.metrics.park_ended(parked_at.elapsed());
        if let Some(hook) = &self.runtime.park_hooks.unpark {
            hook();
        }
        self.now.set(self.clock.now());
        if let Err(e) = result {
            tracing::warn!(core = self.index(), error = %e, "park failed; spinning once");
        }
        timeout
    }

    /// Drives `future` to completion on this core, running every other task
    /// of the core meanwhile.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _guard = context::enter(self);
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            core: self.shared.clone(),
        });
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        self.main_woken.set(false);
        loop {
            // The atomic flag is swapped only when set: a plain load
            // otherwise.
            let woken_elsewhere =
                main.woken.load(Ordering::Relaxed) && main.woken.swap(false, Ordering::AcqRel);
            if self.main_woken.replace(false) || woken_elsewhere {
                let polled = crate::task::coop::with_budget(|| future.as_mut().poll(&mut cx));
                if let Poll::Ready(out) = polled {
                    return out;
                }
            }
            if self.turn() == 0 && !self.main_woken.get() && !main.woken.load(Ordering::Acquire) {
                self.idle(&main.woken);
            }
        }
    }

    /// The loop of a worker core: runs until the runtime shuts down.
    pub(crate) fn run_worker(&self) {
        let _guard = context::enter(self);
        let never = AtomicBool::new(false);
        while !self.runtime.shutdown.load(Ordering::Acquire) {
            if self.turn() == 0 {
                self.idle(&never);
            }
        }
    }

    /// Cancels every task of this core and drops them here, on their own
    /// thread, so their destructors run (and `!Send` ones stay sound).
    pub(crate) fn shutdown(&self) {
        let _guard = context::enter(self);
        self.closing.set(true);
        // Bounded: every poll from now on cancels, so each round can only
        // find tasks created by destructors of the previous one.
        for _ in 0..1_000 {
            let wakers: Vec<Waker> = self.tasks.borrow_mut().drain().collect();
            for w in wakers {
                w.wake();
            }
            let mut drained = 0;
            while let Ok(r) = self.shared.remote.pop() {
                self.local.borrow_mut().push_back(r);
            }
            while let Some(runnable) = self.pop_any() {
                runnable.run();
                drained += 1;
            }
            // Timers hold wakers of tasks that are now gone; dropping them
            // may schedule closed tasks once more, handled next round.
            // (Origin on the core's clock, which may be virtual.)
            let timers =
                std::mem::replace(&mut *self.timers.borrow_mut(), Wheel::new(self.clock.now()));
            drop(timers);
            if drained == 0 && self.tasks.borrow().is_empty() && !self.has_queued_work() {
                break;
            }
        }
        let reactors = std::mem::take(&mut *self.reactors.borrow_mut());
        let io_driver = self.io_driver.borrow_mut().take();
        self.parker.set(None);
        drop(io_driver);
        drop(reactors);
        // From here on, work handed to this core is cancelled by whoever
        // hands it (see `push_remote`); the loop below runs what came
        // before.
        self.shared.shut_down.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // Reactors dropping their pending operations may have woken tasks.
        loop {
            while let Ok(r) = self.shared.remote.pop() {
                self.local.borrow_mut().push_back(r);
            }
            let Some(runnable) = self.pop_any() else {
                break;
            };
            runnable.run();
        }
    }
}

impl Core {
    /// The runtime's `on_core_stop` hooks, on this core's thread, after
    /// [`shutdown`](Self::shutdown).
    pub(crate) fn run_stop_hooks(&self) {
        for hook in self.runtime.stop.iter() {
            hook(self.index());
        }
    }
}

/// The waker of the future given to `block_on`.
struct MainWaker {
    woken: AtomicBool,
    core: Arc<CoreShared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // On the core's own thread the core is running: a plain flag it
        // reads before it polls or idles again (`Core::main_woken`).
        let on_core = context::with_core(|core| {
            let here = core.shared.uid == self.core.uid;
            if here {
                core.main_woken.set(true);
            }
            here
        });
        if on_core != Some(true) {
            self.woken.store(true, Ordering::Release);
            self.core.wake();
        }
    }
}
