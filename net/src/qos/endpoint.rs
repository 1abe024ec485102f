//! [`Endpoint`]: a point-to-point QoS socket. The application states what
//! the flow needs ([`Qos`]); the endpoint picks the transport that serves
//! it best on this host ([`policy::choose`]), says why
//! ([`explain`](Endpoint::explain)), and moves payloads in pooled buffers:
//! [`buffer`](Endpoint::buffer) lends a [`TxBuf`], `send` consumes it,
//! [`recv`](Endpoint::recv) yields an [`RxBuf`] that returns to its pool
//! when dropped.
//!
//! # The model
//!
//! An endpoint is a socket bound to a local address that can talk to
//! several peers:
//!
//! - **Best effort** (UDP): each message is one datagram. `send_to(buf,
//!   peer)` sends anywhere; [`connect`](Endpoint::connect) sets the
//!   default peer for [`send`](Endpoint::send) and receives only from it.
//! - **Reliable** (TCP now, RDMA RC later): `bind` listens, and
//!   connections are accepted in the background from then on; messages
//!   from every connection arrive through the one
//!   [`recv`](Endpoint::recv), each telling its sender
//!   ([`RxBuf::peer`]). `send_to(buf, peer)` opens a connection to `peer`
//!   or reuses the open one (accepted or opened); `connect(peer)` opens it
//!   ahead and makes it the default for `send`. Messages to one peer
//!   arrive once, intact and in the order sent. Dropping the endpoint
//!   does not lose what `send` accepted: its connections close in order
//!   in the background (reliable datagrams: within
//!   [`TransportConfig::linger`]), and [`shutdown`](Endpoint::shutdown)
//!   waits for that.
//!
//! # Driver selection
//!
//! The first `bind` of the process loads the configuration
//! ([`Config::load`](crate::config::Config::load)) and probes the host
//! ([`Capabilities::probe_with`]: every technology of the table in
//! [`transport`](super::transport) probes itself); every endpoint then
//! matches its QoS against that ([`policy::choose`]), restricted to what
//! the core it is bound on can use (a core running epoll cannot carry
//! io_uring transports), and binds on the chosen technology. `bind`
//! names no technology: it walks the policy's choices through the table.
//! [`bind_with_config`](Endpoint::bind_with_config) takes the
//! configuration from the caller instead.
//!
//! Kernel bypass: with an `[xdp]` section, a `latency = critical,
//! best-effort, resources = poll` endpoint bound to the section's address
//! gets AF_XDP UDP: insane's userspace stack on an AF_XDP socket of the
//! section's interface and queue, shared by the endpoints bound on the
//! same core ([`transport::xdp`](super::transport::xdp)). An endpoint
//! bound to another address never uses it; if opening it fails, the
//! endpoint falls back to the next transport and
//! [`explain`](Endpoint::explain) names the reason. With a `[dpdk]` section
//! (and the `dpdk` feature), DPDK UDP comes first: the same stack on a
//! queue of the section's DPDK port, under the same rules
//! (`transport::dpdk` has the details: EAL once per process,
//! the port open for the rest of the process, one polling core per port).
//!
//! # Busy polling
//!
//! A `latency = critical, resources = poll` best-effort flow gets a
//! busy-poll transport: `SO_BUSY_POLL` on its socket, and receives that
//! retry without sleeping, and the endpoint holds a
//! [`SpinGuard`](insane_runtime::runtime::SpinGuard) on the core it was
//! bound on, so that core busy-polls instead of sleeping while the
//! endpoint lives, whatever the runtime's idle policy. `resources = low`
//! never spins.
//!
//! # Transmit scheduling
//!
//! Sends do not go to the transport directly: each core has a transmit
//! [`Scheduler`] and one transmit task (spawned on the core's first send),
//! and every endpoint that sends on a core has a flow there of class
//! [`Class::for_qos`] (`latency = critical` → strict priority over every
//! bulk flow; others share by deficit round-robin, weight 1). The
//! transmit task starts sends in the scheduler's order, so a critical
//! endpoint's message goes out before bulk messages queued earlier on the
//! same core.
//!
//! - **Fast path.** A [`send`](Endpoint::send) (or `send_to`) made while
//!   nothing is queued on the core's scheduler and no earlier message of
//!   its flow is still completing goes to the transport at once, in the
//!   sending task, without the queue, the transmit task and the
//!   completion channel: it cannot overtake anything, since nothing
//!   waits. On an idle core a send that the transport completes at once
//!   (a datagram into the device queue or the socket buffer) is therefore
//!   complete after its first poll. Otherwise it is queued as below.
//! - **Backpressure.** A flow queues at most half the endpoint's send
//!   buffers (`tx_buffers / 2`, at least 1) and 4 MiB (a larger message
//!   is accepted into an empty queue). [`send`](Endpoint::send) waits for
//!   room, then for the send's completion, and returns its result;
//!   [`try_send`](Endpoint::try_send) returns `WouldBlock` when the flow
//!   is full. Nothing queued is ever dropped: queued messages are sent
//!   even if the endpoint or the `send` future is dropped meanwhile.
//! - **Order.** Messages of one flow start in the order they were queued;
//!   when one cannot complete at once (socket buffer full, connection
//!   being opened), the flow's later messages wait behind it (on a
//!   per-flow task) while other flows go on. Messages waiting there have
//!   left the flow's queue but still hold their send buffers, so the
//!   endpoint's pool ([`buffer`](Endpoint::buffer)) bounds them.
//! - **Errors.** `send` returns its message's error. A failed
//!   `try_send`-queued message (or a `send` whose future was dropped)
//!   reports its error from the endpoint's next `send` or `try_send`,
//!   which then does not send its own buffer (like `SO_ERROR`).
//! - **Cores.** The flow lives on the core the endpoint sends from: an
//!   endpoint used from several cores gets a flow on each, and priority
//!   is enforced among the flows of one core. Order between messages sent
//!   from different cores is not defined.
//! - **Deadlines.** A QoS with a [deadline](super::QosBuilder::deadline)
//!   gets a [`Class::Deadline`] flow: earliest deadline first after the
//!   critical flows, before bulk. `bind` refuses a deadline below the
//!   chosen path's round-trip floor ([`TransportKind::rtt_floor`]);
//!   `explain()` states the deadline and the floor. A message handed to
//!   the transport after its deadline is counted
//!   ([`missed_deadlines`](Endpoint::missed_deadlines)), never dropped.
//!   Deadlines are local: they order this host's transmit queue; the
//!   receiving side serves deadline endpoints as critical ones.
//!
//! # Priority (latency isolation)
//!
//! How an endpoint's class reaches the tasks that serve it, when the
//! runtime has priority on ([`Runtime::priority`](insane_runtime::runtime::Runtime::priority)):
//!
//! - A task that sends or receives on a `latency = critical` endpoint
//!   (deadline ones included) becomes a critical task
//!   ([`task::set_latency`](insane_runtime::task::set_latency)): its
//!   wake-ups, e.g. its datagram arriving, put it before every normal
//!   task of its core. Tasks it spawns inherit the class.
//! - The core's transmit task is critical. Per poll it starts every
//!   queued critical and deadline message but at most
//!   `TX_BULK_SLICE` bulk ones, then yields: a critical message waits
//!   for at most that slice of bulk sends. A flow's drain task (sends
//!   that could not complete at once) has its flow's class.
//! - A critical or deadline message handed to a transport that batches
//!   (the userspace stack) is flushed at once
//!   ([`Transport::flush`]): it does not wait in the device's batch for
//!   the core's turn to end, behind the bulk frames of that turn.
//! - On the userspace stack, a critical task waiting in `recv` looks at
//!   the device itself on every pass over the critical tasks (a load of
//!   the AF_XDP RX ring's index when nothing came), not only when the
//!   core polls the stack once per turn; and the device's transmit batch
//!   is bounded (one frame per kick on AF_XDP in copy mode), so a
//!   critical frame or the look for its echo waits behind a bounded
//!   number of bulk frames' kernel work (`transport::stack`).
//! - Sends and receives spend the task's cooperative budget: a bulk
//!   receiver of a flood, or a sender whose sends all complete at once,
//!   yields after one budget of messages, so the other tasks of its core
//!   (the critical ones first) run in between.
//!
//! ```
//! use insane_net::qos::{Endpoint, Qos};
//! # use std::sync::Arc;
//! # let rt = insane_runtime::runtime::Runtime::builder()
//! #     .cores(1)
//! #     .on_core_start(Arc::new(|_| {
//! #         insane_uring::install_on_current_core(&Default::default())
//! #             .or_else(|_| insane_epoll::install_on_current_core())
//! #     }))
//! #     .build()?;
//! # rt.block_on(async {
//! let qos = Qos::builder().best_effort().build();
//! let server = Endpoint::bind("127.0.0.1:0", qos).await?;
//! let client = Endpoint::bind("127.0.0.1:0", qos).await?;
//! println!("{}", client.explain());
//!
//! let mut buf = client.buffer().await;
//! buf.extend_from_slice(b"ping")?;
//! client.send_to(buf, server.local_addr()?).await?;
//!
//! let msg = server.recv().await?;
//! assert_eq!(&msg[..], b"ping");
//! assert_eq!(msg.peer(), client.local_addr()?);
//! # std::io::Result::Ok(())
//! # })?;
//! # std::io::Result::Ok(())
//! ```

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};

use insane_runtime::driver;
use insane_runtime::runtime::{CoreHandle, Runtime};
use insane_runtime::task::{Latency, coop};
use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use super::policy::{self, Availability, Capabilities, TransportKind};
use super::rxbuf::RxBuf;
use super::sched::{Bound, Class, Dequeued, FlowHandle, Scheduler, TrySendError};
use super::transport::technology::{BoundTransport, TECHNOLOGIES, technology_of};
use super::transport::{Op, Transport, TransportConfig};
use super::txbuf::TxBuf;
use super::{Qos, Reliability};
use crate::addr::{ToSocketAddrs, to_socket_addrs};

/// The host's capabilities, probed once per process (with the
/// configuration's bypass sections), or why that failed.
type HostSetup = (Capabilities, crate::config::Config);

fn host_capabilities() -> io::Result<HostSetup> {
    static CAPS: OnceLock<Result<HostSetup, (io::ErrorKind, String)>> = OnceLock::new();
    let caps = CAPS.get_or_init(|| {
        let config = crate::config::Config::load().map_err(|e| (e.kind(), e.to_string()))?;
        Ok((Capabilities::probe_with(&config), config))
    });
    caps.clone()
        .map_err(|(kind, msg)| io::Error::new(kind, msg))
}

/// `caps` as seen from the current core (e.g. only the core's own kernel
/// driver can carry kernel transports): each technology restricts its
/// entry.
fn for_current_core(mut caps: Capabilities) -> io::Result<Capabilities> {
    if driver::current().is_none() {
        return Err(io::Error::other(
            "QoS endpoints must be bound inside an insane runtime whose core has an I/O driver",
        ));
    }
    for tech in TECHNOLOGIES {
        tech.restrict_to_current_core(&mut caps);
    }
    Ok(caps)
}

/// A point-to-point QoS endpoint: a QoS, the transport the policy chose
/// for it, and pooled send and receive buffers.
///
/// `Send + Sync`: share it (`Arc<Endpoint>`) between a sending and a
/// receiving task. Its receive and send buffers come from pools created
/// on the core that bound it.
pub struct Endpoint {
    transport: Arc<dyn Transport>,
    /// Identity and deferred errors, shared with queued sends.
    shared: Arc<Shared>,
    /// The queue bound of the endpoint's flow on each core.
    bound: Bound,
    qos: Qos,
    explain: String,
    /// For a busy-poll transport: keeps the core that last used the
    /// endpoint busy-polling (it follows the endpoint to another core).
    spin: Option<SpinFollower>,
}

/// A [`SpinGuard`](insane_runtime::runtime::SpinGuard) on the core that
/// last sent or received through the endpoint.
struct SpinFollower {
    /// `core uid` of the guard's core (0: none), checked without the lock.
    core_uid: std::sync::atomic::AtomicU64,
    guard: std::sync::Mutex<Option<insane_runtime::runtime::SpinGuard>>,
}

impl SpinFollower {
    fn new() -> Self {
        let follower = Self {
            core_uid: std::sync::atomic::AtomicU64::new(0),
            guard: std::sync::Mutex::new(None),
        };
        follower.follow();
        follower
    }

    /// Moves the guard to the current core if the endpoint moved.
    fn follow(&self) {
        use std::sync::atomic::Ordering;
        let here = CoreHandle::current_uid();
        if here.is_none_or(|uid| self.core_uid.load(Ordering::Relaxed) == uid) {
            return;
        }
        let Some(core) = CoreHandle::current() else {
            return;
        };
        let mut guard = self.guard.lock().unwrap_or_else(|p| p.into_inner());
        *guard = Some(core.hold_spin());
        self.core_uid.store(core.uid(), Ordering::Relaxed);
    }
}

impl Endpoint {
    /// Binds an endpoint for `qos` to `addr` (port 0: any free port), on
    /// the transport the policy chooses, with default sizes
    /// ([`TransportConfig::default`]: 16 MiB reliable messages, 256
    /// buffers each way).
    ///
    /// ```no_run
    /// use insane_net::qos::{Endpoint, Qos};
    /// # async fn f() -> std::io::Result<()> {
    /// let ep = Endpoint::bind("127.0.0.1:0", Qos::default()).await?;
    /// println!("{} on {}", ep.explain(), ep.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Nothing on this host can serve `qos` (the error names what is
    /// missing), a bad configuration, or binding fails.
    pub async fn bind<A: ToSocketAddrs>(addr: A, qos: Qos) -> io::Result<Endpoint> {
        Self::bind_with(addr, qos, TransportConfig::default()).await
    }

    /// Like [`bind`](Self::bind), with explicit sizes.
    ///
    /// ```no_run
    /// use insane_net::qos::{Endpoint, Qos, TransportConfig};
    /// # async fn f() -> std::io::Result<()> {
    /// let config = TransportConfig { max_message: 1 << 20, tx_buffers: 8, ..Default::default() };
    /// let ep = Endpoint::bind_with("127.0.0.1:0", Qos::default(), config).await?;
    /// assert_eq!(ep.max_payload(), 1 << 20);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub async fn bind_with<A: ToSocketAddrs>(
        addr: A,
        qos: Qos,
        config: TransportConfig,
    ) -> io::Result<Endpoint> {
        let (caps, host) = host_capabilities()?;
        Self::bind_inner(addr, qos, config, caps, &host).await
    }

    /// Like [`bind_with`](Self::bind_with), with the host configuration
    /// given here instead of loaded from `insane.toml`/`INSANE_*` (builder
    /// style): a `[xdp]` section offers AF_XDP, a `[dpdk]` section DPDK
    /// (feature `dpdk`), to endpoints bound to the section's address. The kernel drivers are probed as usual; a bypass device is
    /// probed by opening it, and when that fails the endpoint falls back
    /// to the next transport, [`explain`](Self::explain) naming the reason.
    ///
    /// ```no_run
    /// use insane_net::config::Config;
    /// use insane_net::qos::{Endpoint, Qos, TransportConfig};
    /// # async fn f() -> std::io::Result<()> {
    /// let host = Config::from_toml_str(
    ///     "[xdp]\ninterface = \"eth1\"\naddress = \"10.0.0.1/24\"\n",
    ///     "inline",
    /// )?;
    /// let qos = Qos::builder().critical().best_effort().poll().build();
    /// let ep = Endpoint::bind_with_config("10.0.0.1:7000", qos, TransportConfig::default(), &host).await?;
    /// println!("{}", ep.explain()); // ... -> AF_XDP UDP; AF_XDP on eth1 queue 0: native XDP, ...
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub async fn bind_with_config<A: ToSocketAddrs>(
        addr: A,
        qos: Qos,
        config: TransportConfig,
        host: &crate::config::Config,
    ) -> io::Result<Endpoint> {
        let caps = Capabilities::offered(host);
        Self::bind_inner(addr, qos, config, caps, host).await
    }

    /// Walks the policy's choices for `qos` through the technology table:
    /// the first technology whose bind succeeds carries the endpoint. A
    /// kernel-bypass technology that cannot open its device is marked
    /// unavailable (with the reason) and the policy chooses again.
    async fn bind_inner<A: ToSocketAddrs>(
        addr: A,
        qos: Qos,
        config: TransportConfig,
        caps: Capabilities,
        host: &crate::config::Config,
    ) -> io::Result<Endpoint> {
        let mut caps = for_current_core(caps)?;
        let addr = to_socket_addrs(addr)
            .await?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind to"))?;
        // A technology with an address of its own (a bypass stack) serves
        // only that address. An endpoint bound to it learns why the
        // technology was not usable when the kernel cannot bind the
        // address either.
        let mut bypass_failed: Option<String> = None;
        for tech in TECHNOLOGIES {
            let Some((own, what)) = tech.own_address(host) else {
                continue;
            };
            let wanted = tech
                .kinds()
                .iter()
                .any(|k| policy::preference(&qos).contains(k));
            for &kind in tech.kinds() {
                let availability = kind.availability_mut(&mut caps);
                if addr.ip() != IpAddr::V4(own) {
                    if availability.is_available() {
                        *availability = Availability::Unavailable(format!(
                            "{} is not {own}, {what}",
                            addr.ip()
                        ));
                    }
                } else if wanted && let Some(why) = availability.why_not() {
                    bypass_failed = Some(format!("{} was not usable: {why}", tech.name()));
                }
            }
        }
        let decorate = |e: io::Error, kind: TransportKind, why: &Option<String>| match why {
            None => e,
            Some(why) => io::Error::new(
                e.kind(),
                format!("binding {addr} with {kind} failed: {e}; {why}"),
            ),
        };
        // Each failed bind marks its technology unavailable and chooses
        // again: bounded by the number of technologies.
        let mut attempts = 0;
        let (bound, choice) = loop {
            attempts += 1;
            let choice = policy::choose_preferring(&qos, &caps, config.prefer)?;
            let kind = choice.transport;
            let tech = technology_of(kind).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the policy chose {kind}, whose driver is not part of this build"),
                )
            })?;
            match tech.bind(kind, addr, &config, host).await {
                Ok(bound) => break (bound, choice),
                Err(e) if tech.falls_back() && attempts < 8 => {
                    tracing::debug!("{} bind failed, falling back: {e}", tech.name());
                    for &k in tech.kinds() {
                        *k.availability_mut(&mut caps) = Availability::Unavailable(e.to_string());
                    }
                    bypass_failed = Some(format!("{} was not usable: {e}", tech.name()));
                }
                Err(e) => return Err(decorate(e, kind, &bypass_failed)),
            }
        };
        let BoundTransport { transport, detail } = bound;
        let mut explain = choice.explain;
        if !detail.is_empty() {
            explain.push_str("; ");
            explain.push_str(&detail);
        }
        if let Some(deadline) = qos.deadline {
            explain.push_str("; ");
            explain.push_str(&admit_deadline(deadline, choice.transport)?);
        }
        let mut spin = None;
        if transport.busy_polls() {
            // `resources = poll` is implied: the policy only picks
            // busy-poll transports for it.
            spin = Some(SpinFollower::new());
        }
        debug_assert_eq!(
            transport.kind().is_reliable(),
            qos.reliability == Reliability::Reliable
        );
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(Endpoint {
            transport,
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                error: Mutex::new(None),
                has_error: AtomicBool::new(false),
                missed: AtomicU64::new(0),
                shut: AtomicBool::new(false),
                queued: AtomicUsize::new(0),
                drained: Mutex::new(Vec::new()),
            }),
            bound: Bound::new((config.tx_buffers / 2).max(1), 4 << 20),
            qos,
            explain,
            spin,
        })
    }

    /// Sets the default peer: a best-effort endpoint `connect(2)`s its
    /// socket (sends go there, receives come only from there); a reliable
    /// one opens a connection to `peer` (or reuses one).
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// ep.connect("127.0.0.1:7000".parse().unwrap()).await?;
    /// let mut buf = ep.buffer().await;
    /// buf.extend_from_slice(b"hi")?;
    /// ep.send(buf).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As `connect(2)`.
    pub async fn connect(&self, peer: SocketAddr) -> io::Result<()> {
        let mut op = Op::new();
        poll_fn(|cx| self.transport.poll_connect(cx, peer, &mut op)).await
    }

    /// Lends a send buffer: empty, with [`capacity`](TxBuf::capacity) =
    /// [`max_payload`](Self::max_payload). Waits while the endpoint's
    /// send pool has none left (they return when sent or dropped).
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let buf = ep.buffer().await;
    /// assert_eq!(buf.capacity(), ep.max_payload());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn buffer(&self) -> TxBuf {
        poll_fn(|cx| self.transport.poll_buffer(cx)).await
    }

    /// A send buffer now, or `None` when the pool has none left
    /// (backpressure: send or drop some first).
    ///
    /// ```no_run
    /// # fn f(ep: insane_net::qos::Endpoint) {
    /// match ep.try_buffer() {
    ///     Some(buf) => drop(buf),
    ///     None => println!("all send buffers in use"),
    /// }
    /// # }
    /// ```
    pub fn try_buffer(&self) -> Option<TxBuf> {
        self.transport.try_buffer()
    }

    /// Sends `buf` (exactly its `len()` bytes) as one message to the
    /// default peer set by [`connect`](Self::connect), through this core's
    /// transmit scheduler (a `latency = critical` endpoint's messages go
    /// before bulk messages queued earlier on the same core): waits while
    /// the endpoint's flow on this core is full, then until the message is
    /// sent. The buffer returns to its pool once sent.
    ///
    /// Dropping the future while it waits for room drops `buf` unsent;
    /// once queued, the message is sent anyway (and a failure is reported
    /// by the next `send` or `try_send`).
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let mut buf = ep.buffer().await;
    /// buf.extend_from_slice(b"hello")?;
    /// ep.send(buf).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `NotConnected` without a default peer; a message over
    /// [`max_payload`](Self::max_payload) (`InvalidInput`, naming the
    /// limit); socket errors; the error of an earlier message queued by
    /// [`try_send`](Self::try_send) (then `buf` is not sent).
    pub async fn send(&self, buf: TxBuf) -> io::Result<()> {
        self.send_inner(buf, None).await
    }

    /// Queues `buf` as one message to the default peer without waiting:
    /// `WouldBlock` when the endpoint's flow on this core is full (`buf`
    /// is dropped unsent and returns to its pool). The message is sent in
    /// the background, in scheduler order; its failure is reported by the
    /// next `send` or `try_send`.
    ///
    /// ```no_run
    /// # fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let Some(mut buf) = ep.try_buffer() else { return Ok(()) };
    /// buf.extend_from_slice(b"hello")?;
    /// match ep.try_send(buf) {
    ///     Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => println!("flow full"),
    ///     other => other?,
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `WouldBlock` when the flow is full; the error of an earlier
    /// background message (then `buf` is not sent); outside an insane
    /// runtime.
    pub fn try_send(&self, buf: TxBuf) -> io::Result<()> {
        self.try_send_inner(buf, None)
    }

    /// Like [`try_send`](Self::try_send), to `peer`.
    ///
    /// ```no_run
    /// # fn f(ep: insane_net::qos::Endpoint, buf: insane_net::qos::TxBuf) -> std::io::Result<()> {
    /// ep.try_send_to(buf, "127.0.0.1:7000".parse().unwrap())?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    pub fn try_send_to(&self, buf: TxBuf, peer: SocketAddr) -> io::Result<()> {
        self.try_send_inner(buf, Some(peer))
    }

    /// Sends `buf` as one message to `peer`.
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let mut buf = ep.buffer().await;
    /// buf.extend_from_slice(b"hello")?;
    /// ep.send_to(buf, "127.0.0.1:7000".parse().unwrap()).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`send`](Self::send); a reliable endpoint may also fail to
    /// connect.
    pub async fn send_to(&self, buf: TxBuf, peer: SocketAddr) -> io::Result<()> {
        self.send_inner(buf, Some(peer)).await
    }

    /// What using the endpoint from the current task implies: a busy-poll
    /// endpoint keeps this core spinning, and a critical one makes the
    /// task critical (module docs, "Priority").
    fn serve(&self) {
        if let Some(spin) = &self.spin {
            spin.follow();
        }
        if self.qos.latency == Latency::Critical
            && insane_runtime::task::latency() != Latency::Critical
        {
            insane_runtime::task::set_latency(Latency::Critical);
        }
    }

    /// Messages of this endpoint handed to the transport after their
    /// deadline, on every core, since it was bound (0 without a deadline
    /// QoS).
    ///
    /// ```no_run
    /// # fn f(ep: insane_net::qos::Endpoint) {
    /// if ep.missed_deadlines() > 0 {
    ///     eprintln!("{} messages left late", ep.missed_deadlines());
    /// }
    /// # }
    /// ```
    pub fn missed_deadlines(&self) -> u64 {
        self.shared.missed.load(Ordering::Relaxed)
    }

    fn pending(&self, buf: TxBuf, peer: Option<SocketAddr>) -> PendingSend {
        PendingSend {
            buf: Some(buf),
            ..self.pending_parts(peer)
        }
    }

    /// A queued send of this endpoint to `peer`, without its buffer yet.
    fn pending_parts(&self, peer: Option<SocketAddr>) -> PendingSend {
        PendingSend {
            transport: self.transport.clone(),
            shared: QueuedRef::new(self.shared.clone()),
            buf: None,
            peer,
            op: Op::new(),
            done: None,
        }
    }

    async fn send_inner(&self, buf: TxBuf, peer: Option<SocketAddr>) -> io::Result<()> {
        // Each message spends a unit of the task's budget: a sender whose
        // sends complete at once (the fast path below) still yields to
        // its core's other tasks and timers every budget. One unit: here,
        // or in the transport's `poll_send` when it spends its own.
        if !self.transport.spends_coop_budget() {
            coop::consume_budget().await;
        }
        self.serve();
        self.shared.check_send()?;
        let class = Class::for_qos(&self.qos, 1);
        // The core's transmit path is not held across an await (`!Send`).
        let direct = CoreTx::current()?.send_direct(self, class, buf, peer);
        let buf = match direct {
            Direct::Done(res) => return res,
            Direct::Started(rx) => return rx.await.unwrap_or_else(|_| Err(closed())),
            Direct::Queue(buf) => buf,
        };
        let (tx, rx) = oneshot::channel();
        let mut item = Some(PendingSend {
            done: Some(tx),
            ..self.pending(buf, peer)
        });
        // The flow is looked up on every poll: its handle is `!Send` and
        // must not live in this (`Send`) future.
        poll_fn(|cx| {
            let core = CoreTx::current()?;
            let flow = core.flow(&self.shared, class, self.bound);
            match flow.poll_send(cx, &mut item) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
                Poll::Ready(Err(_)) => Poll::Ready(Err(closed())),
                Poll::Pending => Poll::Pending,
            }
        })
        .await?;
        rx.await.unwrap_or_else(|_| Err(closed()))
    }

    fn try_send_inner(&self, buf: TxBuf, peer: Option<SocketAddr>) -> io::Result<()> {
        self.serve();
        self.shared.check_send()?;
        let core = CoreTx::current()?;
        let flow = core.flow(&self.shared, Class::for_qos(&self.qos, 1), self.bound);
        match flow.try_send(self.pending(buf, peer)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the endpoint's transmit queue on this core is full",
            )),
            Err(TrySendError::Closed(_)) => Err(closed()),
        }
    }

    /// Ends this endpoint's sending in order and waits until it is done,
    /// like tokio's `AsyncWriteExt::shutdown` on a `TcpStream`: later
    /// sends fail (`BrokenPipe`); the messages already sent or queued
    /// (`try_send`) reach the transport first; then
    ///
    /// - **reliable datagrams**: every connection closes in order — its
    ///   messages are delivered and acknowledged, then the peers exchange
    ///   CLOSE (the peer's receiver gets every message; the connection
    ///   ends without an error on its side) — and `shutdown` returns
    ///   once all are closed. If a peer does not acknowledge everything
    ///   within [`TransportConfig::linger`] (default: the peer timeout),
    ///   the connection is given up and the error (`TimedOut`) names
    ///   each such peer and how many messages are lost;
    /// - **kernel TCP**: `shutdown(SHUT_WR)` on every connection (the
    ///   kernel delivers what was written, then FIN); returns at once;
    /// - **best effort**: batched datagrams are flushed; returns at once.
    ///
    /// Receiving still works: messages already received wait in
    /// [`recv`](Self::recv). Dropping an endpoint closes the same way in
    /// the background (without blocking, within the same bound) — but a
    /// runtime that shuts down cancels that background close, so await
    /// `shutdown` before leaving `block_on` when delivery matters.
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let mut buf = ep.buffer().await;
    /// buf.extend_from_slice(b"last words")?;
    /// ep.send_to(buf, "127.0.0.1:7000".parse().unwrap()).await?;
    /// ep.shutdown().await?; // acknowledged by the peer
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Reliable datagrams: peers that did not acknowledge every message
    /// within the bound (named, with the count lost). TCP: as
    /// `shutdown(2)`.
    pub async fn shutdown(&self) -> io::Result<()> {
        self.shared.shut.store(true, Ordering::Release);
        poll_fn(|cx| self.shared.poll_sends_done(cx)).await;
        poll_fn(|cx| self.transport.poll_shutdown(cx)).await
    }

    /// The next message, from any peer (only the connected one for a
    /// connected best-effort endpoint).
    ///
    /// Reliable endpoints: cancel-safe (messages wait in the endpoint); a
    /// connection's failure — including a peer announcing a message over
    /// the maximum — is reported here once, and the endpoint stays usable.
    /// Best-effort endpoints: a datagram received just as the future is
    /// dropped is lost (as UDP may lose it anyway).
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let msg = ep.recv().await?;
    /// println!("{} bytes from {}", msg.len(), msg.peer());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Socket errors, or a reliable connection's error.
    pub async fn recv(&self) -> io::Result<RxBuf> {
        self.serve();
        let mut op = Op::new();
        // Tells the transport when this future is dropped while waiting.
        let mut waiting = CancelRecv {
            transport: &*self.transport,
            waiting: false,
        };
        // Each message spends a unit of the task's budget, so a receiver
        // of a flood yields to its core's other tasks: here, or in the
        // transport's `poll_recv` when it spends its own.
        let spend_here = !self.transport.spends_coop_budget();
        poll_fn(|cx| {
            let budget = if spend_here {
                Some(std::task::ready!(coop::poll_proceed(cx)))
            } else {
                None
            };
            waiting.waiting = true;
            let res = std::task::ready!(self.transport.poll_recv(cx, &mut op));
            waiting.waiting = false;
            if let Some(budget) = budget {
                budget.made_progress();
            }
            Poll::Ready(res)
        })
        .await
    }

    /// The transport carrying this endpoint.
    ///
    /// ```no_run
    /// # fn f(ep: insane_net::qos::Endpoint) {
    /// println!("carried by {}", ep.driver());
    /// # }
    /// ```
    pub fn driver(&self) -> TransportKind {
        self.transport.kind()
    }

    /// Why this transport: the QoS, the choice, and why each better one
    /// was passed over, e.g. `latency=critical, best-effort,
    /// resources=poll -> io_uring busy-poll UDP (dpdk: not configured;
    /// af_xdp: not configured); busy-poll: SO_BUSY_POLL=50us, ...`.
    ///
    /// ```no_run
    /// # fn f(ep: insane_net::qos::Endpoint) {
    /// println!("{}", ep.explain());
    /// # }
    /// ```
    pub fn explain(&self) -> &str {
        &self.explain
    }

    /// The QoS this endpoint was bound for.
    ///
    /// ```no_run
    /// # fn f(ep: insane_net::qos::Endpoint) {
    /// println!("{}", ep.qos());
    /// # }
    /// ```
    pub fn qos(&self) -> Qos {
        self.qos
    }

    /// The local address.
    ///
    /// ```no_run
    /// # fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// println!("bound to {}", ep.local_addr()?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.transport.local_addr()
    }

    /// The largest message: 65507 bytes for best effort over IPv4, the
    /// configured maximum (16 MiB by default) for reliable endpoints.
    ///
    /// ```no_run
    /// # fn f(ep: insane_net::qos::Endpoint) {
    /// println!("messages up to {} bytes", ep.max_payload());
    /// # }
    /// ```
    pub fn max_payload(&self) -> usize {
        self.transport.max_payload()
    }

    /// Send buffers the endpoint can lend right now.
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) {
    /// let before = ep.tx_buffers_available();
    /// let buf = ep.buffer().await;
    /// assert_eq!(ep.tx_buffers_available(), before - 1);
    /// drop(buf);
    /// assert_eq!(ep.tx_buffers_available(), before);
    /// # }
    /// ```
    pub fn tx_buffers_available(&self) -> usize {
        self.transport.tx_available()
    }

    /// Receive buffers the endpoint can lend right now: fewer while the
    /// application holds [`RxBuf`]s (or a receive is filling one).
    ///
    /// ```no_run
    /// # async fn f(ep: insane_net::qos::Endpoint) -> std::io::Result<()> {
    /// let msg = ep.recv().await?;
    /// let held = ep.rx_buffers_available();
    /// drop(msg);
    /// assert!(ep.rx_buffers_available() > held);
    /// # Ok(())
    /// # }
    /// ```
    pub fn rx_buffers_available(&self) -> usize {
        self.transport.rx_available()
    }

    /// The transport itself, for what the endpoint does not wrap.
    ///
    /// ```no_run
    /// # fn f(ep: insane_net::qos::Endpoint) {
    /// println!("headroom {}", ep.transport().headroom());
    /// # }
    /// ```
    pub fn transport(&self) -> &dyn Transport {
        &*self.transport
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("qos", &self.qos)
            .field("transport", &self.transport)
            .finish()
    }
}

/// What an endpoint shares with its queued sends.
struct Shared {
    /// Unique per endpoint of the process: the key of its flows.
    id: u64,
    /// The first error of a send nobody waited for.
    error: Mutex<Option<io::Error>>,
    /// `error` holds one: every send checks this, not the lock.
    has_error: AtomicBool,
    /// Messages dequeued after their deadline, on every core.
    missed: AtomicU64,
    /// [`Endpoint::shutdown`] was called: no more sends.
    shut: AtomicBool,
    /// Sends queued on a core's transmit path and not complete yet
    /// (`PendingSend`s alive), on every core.
    queued: AtomicUsize,
    /// `shutdown` callers waiting for `queued` to reach 0.
    drained: Mutex<Vec<Waker>>,
}

/// Admission of a deadline QoS on `kind`: the text `explain()` adds, or
/// why the deadline cannot be met.
fn admit_deadline(deadline: std::time::Duration, kind: TransportKind) -> io::Result<String> {
    match kind.rtt_floor() {
        Some(floor) if deadline < floor => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "deadline {deadline:?} is below the round-trip floor of {kind} \
                 (~{floor:?} measured on this project's machines): no scheduling can meet it"
            ),
        )),
        Some(floor) => Ok(format!(
            "deadline {deadline:?} (path round-trip floor ~{floor:?}): earliest deadline first \
             on transmit, misses counted"
        )),
        None => Ok(format!(
            "deadline {deadline:?} (no round-trip floor measured for {kind}: not checked): \
             earliest deadline first on transmit, misses counted"
        )),
    }
}

impl Shared {
    /// Whether a new message may be sent: not after `shutdown`, nor
    /// before the error of a send nobody waited for is reported.
    fn check_send(&self) -> io::Result<()> {
        if self.shut.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the endpoint was shut down (Endpoint::shutdown): it sends no more",
            ));
        }
        self.take_error()
    }

    /// Ready once every send queued on a core's transmit path completed.
    fn poll_sends_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.queued.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        lock_ignoring_poison(&self.drained).push(cx.waker().clone());
        // A send that completed meanwhile found no waiter yet.
        if self.queued.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Reports (once) the error of a send nobody waited for.
    fn take_error(&self) -> io::Result<()> {
        if !self.has_error.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        self.has_error.store(false, Ordering::Release);
        match slot.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn defer_error(&self, e: io::Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
            self.has_error.store(true, Ordering::Release);
        }
    }
}

fn lock_ignoring_poison<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The endpoint's `Shared`, held by one of its queued sends: counted in
/// `Shared::queued` while it lives, so that `shutdown` knows when the
/// endpoint's sends have all reached the transport.
struct QueuedRef(Arc<Shared>);

impl QueuedRef {
    fn new(shared: Arc<Shared>) -> Self {
        shared.queued.fetch_add(1, Ordering::AcqRel);
        Self(shared)
    }
}

impl std::ops::Deref for QueuedRef {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Drop for QueuedRef {
    fn drop(&mut self) {
        if self.0.queued.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waiters = std::mem::take(&mut *lock_ignoring_poison(&self.0.drained));
            for w in waiters {
                w.wake();
            }
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the core's transmit path shut down (its runtime is gone)",
    )
}

/// One message queued on a core's transmit scheduler (`Send`: it sits in
/// the `send` future while waiting for room).
struct PendingSend {
    transport: Arc<dyn Transport>,
    shared: QueuedRef,
    buf: Option<TxBuf>,
    peer: Option<SocketAddr>,
    op: Op<io::Result<()>>,
    /// The waiting `send`, or `None` for `try_send`.
    done: Option<oneshot::Sender<io::Result<()>>>,
}

impl PendingSend {
    fn len(&self) -> usize {
        self.buf.as_ref().map_or(0, |b| b.len())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.transport
            .poll_send(cx, &mut self.buf, self.peer, &mut self.op)
    }

    /// The first poll, by the core's transmit path: a send still pending
    /// goes on in its flow's lane, whose task polls again with its own
    /// waker right away.
    fn poll_once(&mut self) -> Poll<io::Result<()>> {
        self.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// Hands the result to the waiting `send`, or keeps an error for the
    /// endpoint's next send.
    fn complete(self, res: io::Result<()>) {
        let res = match self.done {
            Some(tx) => match tx.send(res) {
                Ok(()) => return,
                Err(res) => res,
            },
            None => res,
        };
        if let Err(e) = res {
            self.shared.defer_error(e);
        }
    }
}

/// A flow's sends that could not complete at once, finished in order by
/// one task while the transmit task serves other flows.
#[derive(Default)]
struct Lane {
    backlog: RefCell<VecDeque<PendingSend>>,
    /// A task is draining `backlog`.
    draining: Cell<bool>,
}

struct FlowEntry {
    handle: FlowHandle<PendingSend>,
    lane: Rc<Lane>,
    owner: Weak<Shared>,
}

/// One core's transmit path: its scheduler and the endpoints' flows on it.
struct CoreTx {
    uid: u64,
    sched: Scheduler<PendingSend>,
    flows: RefCell<FxHashMap<u64, FlowEntry>>,
}

thread_local! {
    static CORE_TX: RefCell<Option<Rc<CoreTx>>> = const { RefCell::new(None) };
}

impl CoreTx {
    /// The current core's transmit path, created (with its transmit task)
    /// on first use.
    fn current() -> io::Result<Rc<CoreTx>> {
        let uid = CoreHandle::current_uid()
            .ok_or_else(|| io::Error::other("QoS endpoints send only inside an insane runtime"))?;
        let (core_tx, created, stale) = CORE_TX.with(|slot| {
            let mut slot = slot.borrow_mut();
            if let Some(c) = slot.as_ref().filter(|c| c.uid == uid) {
                return (c.clone(), false, None);
            }
            let c = Rc::new(CoreTx {
                uid,
                sched: Scheduler::builder().build_with_len(PendingSend::len),
                flows: RefCell::new(FxHashMap::default()),
            });
            // `stale`: a core of an earlier runtime on this thread; its
            // transmit task went with that runtime.
            let stale = slot.replace(c.clone());
            (c, true, stale)
        });
        drop(stale);
        if created {
            // Critical: it starts critical flows' messages (bulk ones in
            // bounded slices, see `transmit`).
            insane_runtime::task::Builder::new()
                .latency(Latency::Critical)
                .spawn_local(transmit(core_tx.clone()))?;
        }
        Ok(core_tx)
    }

    /// The endpoint's flow on this core, registered on first use.
    fn flow(&self, shared: &Arc<Shared>, class: Class, bound: Bound) -> FlowHandle<PendingSend> {
        if let Some(e) = self.flows.borrow().get(&shared.id) {
            return e.handle.clone();
        }
        self.sweep();
        let handle = self.sched.register(class, bound);
        self.flows.borrow_mut().insert(
            shared.id,
            FlowEntry {
                handle: handle.clone(),
                lane: Rc::default(),
                owner: Arc::downgrade(shared),
            },
        );
        handle
    }

    /// Forgets the flows of dropped endpoints that have nothing left to
    /// send.
    fn sweep(&self) {
        let mut flows = self.flows.borrow_mut();
        let dead: Vec<u64> = flows
            .iter()
            .filter(|(_, e)| {
                e.owner.strong_count() == 0
                    && !e.lane.draining.get()
                    && e.handle.stats().is_none_or(|s| s.queued == 0)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            if let Some(e) = flows.remove(&id) {
                let _ = self.sched.remove(e.handle.id());
            }
        }
    }

    /// The lane of endpoint `id`'s flow (a fresh one if the flow is
    /// gone).
    fn lane(&self, id: u64) -> Rc<Lane> {
        self.flows
            .borrow()
            .get(&id)
            .map(|e| e.lane.clone())
            .unwrap_or_default()
    }

    /// Starts a dequeued send: at once if it can complete now and its
    /// flow has nothing in flight, else behind the flow's backlog.
    fn start(&self, mut item: PendingSend, class: Class) {
        let lane = self.lane(item.shared.id);
        if lane.draining.get() {
            lane.backlog.borrow_mut().push_back(item);
            return;
        }
        if let Poll::Ready(res) = item.poll_once() {
            if !class.is_bulk() {
                item.transport.flush();
            }
            item.complete(res);
        } else {
            finish_in_lane(lane, item, class);
        }
    }

    /// The fast path of `send`: sends `item` at once, without going
    /// through the scheduler's queue and the transmit task, when that
    /// cannot overtake anything — nothing is queued on this core (so no
    /// message of a higher class waits, nor an earlier one of this flow)
    /// and no earlier message of this flow is still completing in its
    /// lane — and, with the runtime's priority on, only for critical and
    /// deadline flows. Otherwise hands `item` back to be queued.
    fn send_direct(
        &self,
        ep: &Endpoint,
        class: Class,
        buf: TxBuf,
        peer: Option<SocketAddr>,
    ) -> Direct {
        // With the runtime's priority on, bulk messages always take the
        // queue: the transmit task starts them in bounded slices, one per
        // sender poll, so a critical task never waits behind a budget of
        // bulk sends made inline.
        if !self.sched.is_empty() || (class.is_bulk() && Runtime::priority()) {
            return Direct::Queue(buf);
        }
        // One look-up on the hot path: whether the flow's lane is still
        // completing an earlier message (registering the flow on first
        // use: its lane keeps the order).
        let draining = self
            .flows
            .borrow()
            .get(&ep.shared.id)
            .map(|e| e.lane.draining.get());
        match draining {
            Some(true) => return Direct::Queue(buf),
            Some(false) => {}
            None => drop(self.flow(&ep.shared, class, ep.bound)),
        }
        // A `PendingSend` (two reference counts more) only if it waits.
        let (mut buf, mut op) = (Some(buf), Op::new());
        let mut cx = Context::from_waker(Waker::noop());
        match ep.transport.poll_send(&mut cx, &mut buf, peer, &mut op) {
            Poll::Ready(res) => {
                if !class.is_bulk() {
                    ep.transport.flush();
                }
                Direct::Done(res)
            }
            Poll::Pending => {
                let (tx, rx) = oneshot::channel();
                let item = PendingSend {
                    buf,
                    op,
                    done: Some(tx),
                    ..ep.pending_parts(peer)
                };
                finish_in_lane(self.lane(ep.shared.id), item, class);
                Direct::Started(rx)
            }
        }
    }
}

/// What [`CoreTx::send_direct`] did with a message.
enum Direct {
    /// Sent: the message's result.
    Done(io::Result<()>),
    /// Started but not complete: it completes in its flow's lane, which
    /// reports the result here.
    Started(oneshot::Receiver<io::Result<()>>),
    /// Not started: it must go through the scheduler's queue.
    Queue(TxBuf),
}

/// Hands a started send that could not complete at once to its flow's
/// lane, whose drain task (spawned here, in the flow's latency class)
/// completes it, and the flow's later messages behind it.
fn finish_in_lane(lane: Rc<Lane>, item: PendingSend, class: Class) {
    lane.backlog.borrow_mut().push_back(item);
    lane.draining.set(true);
    let latency = if class.is_bulk() {
        Latency::Normal
    } else {
        Latency::Critical
    };
    // Cannot fail: a `CoreTx` exists only on a running core.
    let _ = insane_runtime::task::Builder::new()
        .latency(latency)
        .spawn_local(drain(lane));
}

/// Bulk messages the transmit task starts per poll (with priority on)
/// before it yields: the slice of bulk sends a critical message may wait
/// behind.
const TX_BULK_SLICE: usize = 4;

/// A core's transmit task: starts queued sends in scheduler order. With
/// the runtime's priority on, it yields after `TX_BULK_SLICE` bulk sends
/// (critical and deadline ones never make it yield).
async fn transmit(core: Rc<CoreTx>) {
    let slice = if Runtime::priority() {
        TX_BULK_SLICE
    } else {
        usize::MAX
    };
    loop {
        core.sched.ready().await;
        let mut bulk = 0;
        while bulk < slice {
            let Some(Dequeued {
                class, item, late, ..
            }) = core.sched.dequeue_timed()
            else {
                break;
            };
            if late.is_some() {
                item.shared.missed.fetch_add(1, Ordering::Relaxed);
            }
            bulk += usize::from(class.is_bulk());
            core.start(item, class);
        }
        if bulk >= slice {
            insane_runtime::task::yield_now().await;
        }
    }
}

/// Finishes a flow's backlog in order.
async fn drain(lane: Rc<Lane>) {
    loop {
        let next = lane.backlog.borrow_mut().pop_front();
        let Some(mut item) = next else {
            lane.draining.set(false);
            return;
        };
        let res = poll_fn(|cx| item.poll(cx)).await;
        item.complete(res);
    }
}

/// Calls [`Transport::cancel_recv`] when a receive that waited is
/// dropped before it completed.
struct CancelRecv<'a> {
    transport: &'a dyn Transport,
    waiting: bool,
}

impl Drop for CancelRecv<'_> {
    fn drop(&mut self) {
        if self.waiting {
            self.transport.cancel_recv();
        }
    }
}
