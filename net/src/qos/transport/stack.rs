//! Best-effort QoS transport over insane's userspace stack: UDP datagrams
//! through an [`Interface`] on any [`FrameDevice`] — an AF_XDP socket
//! ([`XdpDevice`](crate::qos::transport::xdp::device::XdpDevice)), a DPDK port queue, or the in-memory test device. One
//! stack, several devices: [`StackUdpTransport<D>`] is generic over the
//! device, and a driver plugs in by implementing [`StackDevice`].
//!
//! # One host per core and device queue
//!
//! The first endpoint bound on a core for a device queue (e.g. AF_XDP on
//! `eth1` queue 0) opens it and builds an [`Interface`] (the *host*: our
//! address, the ARP cache, the UDP port table), owned by that core. Every
//! further endpoint on that core and queue binds another UDP port on the
//! same host; the device is shared, never opened twice. The host is
//! closed — the AF_XDP socket closed and the XDP program detached — when
//! its last endpoint is dropped (and the last frames it lent are back).
//!
//! The core polls its hosts on every turn of its loop (a
//! [`Reactor`]): returned frames are
//! recycled, received frames are demultiplexed to the endpoints' queues
//! (waking a task waiting in `recv`), ARP timers run and queued transmit
//! frames leave in one batch (the AF_XDP `sendto` kick; a batch that
//! reaches the interface's `tx_batch` leaves at once). These flows are
//! latency-critical: the transport busy-polls, and every endpoint keeps
//! its host's core spinning while it lives (a
//! [`SpinGuard`]: the stack reactor
//! cannot wake a parked core when frames arrive). A `recv` that finds
//! its queue empty looks at the device once itself
//! ([`Interface::poll_receive`]); a critical task's `recv` (with the
//! runtime's priority on) keeps looking, once per pass over the critical
//! tasks, instead of waiting for the core's next poll of the host.
//!
//! # Zero copy
//!
//! * **Send**: [`Endpoint::buffer`](crate::qos::Endpoint::buffer) lends a
//!   [`TxBuf`] whose storage is a device transmit frame: the application
//!   writes its payload straight into driver memory, after room for the
//!   Ethernet, IPv4 and UDP headers, which `send` writes in front of it in
//!   place. A heap `TxBuf` (from another kind of endpoint) is copied into a
//!   frame first.
//! * **Receive**: [`RxBuf`] holds the received frame itself; the payload
//!   is a window of it. Dropping the `RxBuf` gives the frame back to the
//!   device (the AF_XDP fill ring). [`debug_copy_count`](crate::qos::debug_copy_count)
//!   stays 0.
//!
//! # Cores
//!
//! Device frames belong to the core that owns the host. One core serves
//! a device queue: an endpoint bound on another core of the process for
//! the same queue ([`bind_dispatched`](StackUdpTransport::bind_dispatched),
//! what [`Endpoint`](crate::qos::Endpoint) uses) binds its UDP port on the
//! serving core's host, which receives its datagrams and hands them over:
//! software dispatch, for devices with one queue or without flow
//! steering. `explain()` says so ("bound from core 1, served by core 0").
//! A device with several queues (DPDK `queues = N`) gives each core a
//! queue and a host of its own instead, the hosts forming one
//! [`QueueGroup`](insane_stack::group::QueueGroup) (`transport::dpdk`).
//! `TxBuf`s and
//! `RxBuf`s are `Send` nevertheless: one dropped on another thread is sent
//! back to its core's return queue and recycled there on the next poll.
//! Sends and receives made from another core are forwarded to the home
//! core (a task spawned there), so they work, at the cost of a cross-core
//! hop; use the endpoint on the core that bound it for the lowest latency.
//! Away from home, `buffer()` lends heap buffers (copied into a frame at
//! home when sent). A DPDK mbuf dropped on another thread goes straight
//! back to its mempool (thread-safe); an AF_XDP frame goes back through
//! its home core, and one dropped after that core stopped stays allocated
//! until its last sibling is dropped (see `core_frame.rs`).
//!
//! # Plugging in a device
//!
//! A raw-frame technology gives its device queue to this transport by
//! implementing [`FrameDevice`] and [`StackDevice`] for it, and binding
//! endpoints with [`StackUdpTransport::<ItsDevice>::bind`](StackUdpTransport::bind)
//! (or `bind_dispatched`): a key naming the device queue (one host per
//! core and key), the policy's [`TransportKind`] (e.g. `DpdkUdp`), and an
//! opener that builds the [`Interface`] on the device with the
//! configuration's address, run once per core and key. AF_XDP does
//! exactly that in [`transport::xdp`](super::xdp), DPDK in
//! `transport::dpdk` (feature `dpdk`: a port queue, kept by the process
//! and handed back when its host closes); the technology table calls them
//! when the policy picks them.
//!
//! # Limits
//!
//! A datagram's payload is at most the device MTU minus the IPv4 and UDP
//! headers (1472 bytes on a 1500-byte link), and less if the device's
//! frames are smaller (AF_XDP with 2048-byte UMEM frames receives frames
//! of at most 1792 bytes, so on a link with a larger MTU the limit is
//! 1750): a larger message is an `InvalidInput` error naming the limit.
//! IP fragmentation is not done.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, SocketAddrV4};
use std::ops::DerefMut;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use insane_runtime::reactor::{self, Reactor};
use insane_runtime::runtime::{CoreHandle, Runtime, SpinGuard};
use insane_runtime::task::Latency;
use rustc_hash::FxHashMap;

use insane_stack::{EndpointId, FrameDevice, Interface, SendErrorKind, TxFrame, UDP_HEADROOM};

use super::{Op, Transport, TransportConfig, begin_send, lock, not_connected};
use crate::qos::core_frame::{CoreFrame, FrameOwner};
use crate::qos::policy::TransportKind;
use crate::qos::rxbuf::{DeviceRx, RxBuf};
use crate::qos::txbuf::{DeviceTx, Ticket, TxBuf};

/// A [`FrameDevice`] the QoS stack transport can run on: frames that
/// outlive a poll (`'static`), received frames writable in place, and the
/// hooks a device needs when endpoints come and go.
///
/// ```
/// use insane_net::qos::transport::stack::StackDevice;
/// use insane_net::stack::EthernetAddress as Mac;
/// use insane_net::stack::testing::PairDevice;
/// let (a, _b) = PairDevice::pair(Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]), 1500);
/// assert_eq!(a.describe(), "in-memory test link (MTU 1500)");
/// ```
pub trait StackDevice:
    FrameDevice<Rx: DerefMut<Target = [u8]> + 'static, Tx: 'static> + 'static
{
    /// A UDP port was bound on the host: a device that filters what it
    /// hands to the stack (the XDP program) starts steering it here.
    ///
    /// # Errors
    /// The device cannot steer the port; the bind fails with this error.
    fn open_port(&mut self, port: u16) -> io::Result<()> {
        let _ = port;
        Ok(())
    }

    /// The port was unbound.
    ///
    /// # Errors
    /// The device cannot stop steering it (reported in the log only).
    fn close_port(&mut self, port: u16) -> io::Result<()> {
        let _ = port;
        Ok(())
    }

    /// One line for `explain()`: the device and its modes.
    fn describe(&self) -> String;

    /// The device's counters, for diagnosis (empty by default); part of
    /// [`Transport::diagnostics`] (on the home core).
    ///
    /// ```
    /// use insane_net::qos::transport::stack::StackDevice;
    /// use insane_net::stack::EthernetAddress as Mac;
    /// use insane_net::stack::testing::PairDevice;
    /// let (a, _b) = PairDevice::pair(Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]), 1500);
    /// assert_eq!(a.statistics(), "");
    /// ```
    fn statistics(&self) -> String {
        String::new()
    }

    /// The longest Ethernet frame the device can receive, when its buffers
    /// hold less than `mtu() + 14` bytes (AF_XDP: the UMEM frame minus the
    /// kernel's headroom). The endpoint's payload limit is lowered to fit,
    /// so that peers using the same limit are received.
    fn max_rx_frame(&self) -> Option<usize> {
        None
    }

    /// A received frame as a value that may be dropped on any thread, for
    /// devices whose frames go back to their pool from anywhere (DPDK
    /// mbufs); `Err(frame)` for the others (the default), whose frames
    /// dropped on another thread are sent back to their home core.
    ///
    /// # Errors
    /// The frame, when it must be dropped at home.
    fn rx_anywhere(frame: Self::Rx) -> Result<Box<dyn Any + Send>, Self::Rx> {
        Err(frame)
    }

    /// As [`rx_anywhere`](Self::rx_anywhere), for a transmit frame.
    ///
    /// # Errors
    /// The frame, when it must be dropped at home.
    fn tx_anywhere(frame: Self::Tx) -> Result<Box<dyn Any + Send>, Self::Tx> {
        Err(frame)
    }
}

impl StackDevice for insane_stack::testing::PairDevice {
    fn describe(&self) -> String {
        format!("in-memory test link (MTU {})", self.mtu())
    }
}

/// A device whose received frames are lost, duplicated, reordered or
/// corrupted on purpose (tests of the reliable transports).
impl<D: StackDevice> StackDevice for insane_stack::testing::lossy::LossyDevice<D> {
    fn open_port(&mut self, port: u16) -> io::Result<()> {
        self.inner_mut().open_port(port)
    }

    fn close_port(&mut self, port: u16) -> io::Result<()> {
        self.inner_mut().close_port(port)
    }

    fn describe(&self) -> String {
        format!("{}, impaired on receive", self.inner().describe())
    }

    fn statistics(&self) -> String {
        format!("{:?}", self.stats())
    }

    fn max_rx_frame(&self) -> Option<usize> {
        self.inner().max_rx_frame()
    }
}

// ---- hosts ------------------------------------------------------------------

/// What a host shares with its transports (which are `Send + Sync` and
/// may be dropped on any thread).
struct HostShared {
    id: u64,
    /// The core that owns the device's frames (and takes back those
    /// dropped elsewhere).
    home: Arc<FrameOwner>,
    core: CoreHandle,
    /// Endpoints dropped away from home, to unbind there.
    unbinds: Mutex<Vec<(EndpointId, u16)>>,
    unbind_pending: AtomicBool,
}

impl fmt::Debug for HostShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("id", &self.id)
            .field("core", &self.core.index())
            .finish()
    }
}

/// One core's stack on one device queue.
struct Host<D: StackDevice> {
    key: String,
    shared: Arc<HostShared>,
    iface: RefCell<Interface<D>>,
    /// Endpoints bound.
    users: Cell<usize>,
    describe: String,
    /// Released when the host closes (e.g. the process-wide claim of an
    /// AF_XDP queue).
    _claim: Option<Box<dyn Any>>,
}

thread_local! {
    /// This thread's hosts by id, and their ids by key.
    static HOSTS: RefCell<FxHashMap<u64, Rc<dyn Any>>> = RefCell::new(FxHashMap::default());
    static HOST_KEYS: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
}

/// The host `id` of this thread, if it is a `Host<D>` (none while the
/// thread's registry is being destroyed, at thread exit).
fn host<D: StackDevice>(id: u64) -> Option<Rc<Host<D>>> {
    let any = HOSTS.try_with(|h| h.borrow().get(&id).cloned()).ok()??;
    any.downcast::<Host<D>>().ok()
}

/// This core's host named `key` (a host of an earlier runtime on this
/// thread, whose core is gone, is not reused: nothing polls it).
fn host_by_key<D: StackDevice>(key: &str) -> Option<Rc<Host<D>>> {
    let id = HOST_KEYS
        .try_with(|k| k.borrow().get(key).copied())
        .ok()??;
    host::<D>(id).filter(|h| h.shared.core.is_current())
}

/// Removes host `id` (named `key`) from this thread's registry.
fn forget_host(id: u64, key: &str) {
    let _ = HOST_KEYS.try_with(|k| {
        let mut k = k.borrow_mut();
        if k.get(key) == Some(&id) {
            k.remove(key);
        }
    });
    let removed = HOSTS
        .try_with(|h| h.borrow_mut().remove(&id))
        .ok()
        .flatten();
    // Dropped outside the registry's borrow.
    drop(removed);
}

/// The core serving each host key in this process (see "Cores" in the
/// [module docs](self)): an endpoint bound on another core for the same
/// key binds on this core's host instead of opening the device again.
struct Server {
    key: String,
    host: u64,
    core: CoreHandle,
}

static SERVERS: Mutex<Vec<Server>> = Mutex::new(Vec::new());

/// The running core whose host serves `key`, if any.
fn server_of(key: &str) -> Option<CoreHandle> {
    lock(&SERVERS)
        .iter()
        .find(|s| s.key == key && !s.core.is_shut_down())
        .map(|s| s.core.clone())
}

impl<D: StackDevice> Drop for Host<D> {
    fn drop(&mut self) {
        let id = self.shared.id;
        lock(&SERVERS).retain(|s| s.host != id);
    }
}

impl<D: StackDevice> Host<D> {
    /// Recycles returned frames, unbinds endpoints dropped elsewhere, and
    /// polls the interface. Returns the events handled.
    fn poll(self: &Rc<Self>, now: Instant) -> usize {
        let mut n = self.shared.home.drain();
        if self.shared.unbind_pending.load(Ordering::Acquire) {
            self.shared.unbind_pending.store(false, Ordering::Release);
            let ids = std::mem::take(&mut *lock(&self.shared.unbinds));
            for (id, port) in ids {
                self.unbind(id, port);
                n += 1;
            }
        }
        if let Ok(mut iface) = self.iface.try_borrow_mut() {
            n += iface.poll(now);
        }
        n
    }

    /// Unbinds an endpoint; closes the host with its last one.
    fn unbind(&self, id: EndpointId, port: u16) {
        {
            let Ok(mut iface) = self.iface.try_borrow_mut() else {
                // Dropped while the stack is busy (inside its own poll):
                // unbind at the next poll instead.
                lock(&self.shared.unbinds).push((id, port));
                self.shared.unbind_pending.store(true, Ordering::Release);
                return;
            };
            iface.unbind(id);
            if let Err(e) = iface.device_mut().close_port(port) {
                tracing::warn!("closing UDP port {port} on {}: {e}", self.describe);
            }
            iface.flush();
        }
        let users = self.users.get().saturating_sub(1);
        self.users.set(users);
        if users == 0 {
            // The registry holds the last strong reference besides the
            // caller's: the host (and its device) goes when both are gone.
            forget_host(self.shared.id, &self.key);
        }
    }
}

/// The stack reactor of one core: polls every host of device type `D`.
struct StackReactor<D: StackDevice> {
    hosts: Vec<Weak<Host<D>>>,
}

/// Dropped when the core shuts down: its hosts close with it (their
/// devices released — a DPDK queue back to its port, an AF_XDP socket
/// closed), also on a thread that lives on, such as the one that ran
/// `block_on`, whose registry would otherwise keep them. Endpoints that
/// outlive the runtime then report the host gone.
impl<D: StackDevice> Drop for StackReactor<D> {
    fn drop(&mut self) {
        for host in self.hosts.drain(..).filter_map(|w| w.upgrade()) {
            forget_host(host.shared.id, &host.key);
        }
    }
}

impl<D: StackDevice> Reactor for StackReactor<D> {
    fn name(&self) -> &'static str {
        "userspace stack"
    }

    fn poll(&mut self) -> usize {
        if self.hosts.is_empty() {
            return 0;
        }
        let now = Instant::now();
        let mut n = 0;
        self.hosts.retain(|w| match w.upgrade() {
            Some(h) => {
                n += h.poll(now);
                true
            }
            None => false,
        });
        n
    }
}

// ---- the transport ----------------------------------------------------------

/// Best-effort datagrams over the userspace stack on device `D` (see the
/// [module docs](self)).
///
/// Built by [`Endpoint::bind`](crate::qos::Endpoint::bind) when the policy
/// picks a kernel-bypass transport, or directly with
/// [`bind`](Self::bind) for a device the caller opens:
///
/// ```
/// use insane_net::qos::TransportKind as Kind;
/// use insane_net::qos::transport::stack::StackUdpTransport;
/// use insane_net::qos::{Transport, TransportConfig};
/// use insane_net::stack::testing::PairDevice;
/// use insane_net::stack::{InterfaceConfig, EthernetAddress as Mac, Interface};
/// # let rt = insane_runtime::runtime::Runtime::builder().cores(1).build()?;
/// # rt.block_on(async {
/// let t = StackUdpTransport::bind("test link", 5000, Kind::XdpUdp, &TransportConfig::default(), || {
///     let (a, _b) = PairDevice::pair(Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]), 1500);
///     Ok((Interface::new(a, InterfaceConfig::new("10.0.0.1/24".parse().unwrap())), None))
/// })?;
/// assert_eq!(t.max_payload(), 1472);
/// assert_eq!(t.local_addr()?, "10.0.0.1:5000".parse().unwrap());
/// # std::io::Result::Ok(())
/// # })?;
/// # std::io::Result::Ok(())
/// ```
pub struct StackUdpTransport<D: StackDevice> {
    host: Arc<HostShared>,
    endpoint: EndpointId,
    local: SocketAddrV4,
    max_payload: usize,
    kind: TransportKind,
    connected: ConnectedPeer,
    tx_lent: Arc<AtomicUsize>,
    rx_lent: Arc<AtomicUsize>,
    tx_buffers: usize,
    rx_buffers: usize,
    describe: String,
    /// The core the endpoint was bound from, when another core's host
    /// serves it (software dispatch).
    dispatched_from: Option<usize>,
    /// Keeps the home core spinning while the endpoint lives: its stack
    /// reactor cannot wake a parked core when frames arrive.
    _spin: SpinGuard,
    _device: PhantomData<fn() -> D>,
}

/// What a host opener returns: the interface, and an optional claim
/// released when the host closes.
pub type OpenedHost<D> = (Interface<D>, Option<Box<dyn Any>>);

impl<D: StackDevice> StackUdpTransport<D> {
    /// Binds UDP `port` (0: an ephemeral port) on this core's host named
    /// `key`, opening the host with `open` when this core has none yet
    /// (the first endpoint for a device queue). `kind` is the policy's
    /// name for the transport.
    ///
    /// Must run on a core of an insane runtime, which then polls the host.
    ///
    /// # Errors
    /// Outside a runtime, `open` fails, or the port is taken or cannot be
    /// steered to the device.
    pub fn bind(
        key: &str,
        port: u16,
        kind: TransportKind,
        config: &TransportConfig,
        open: impl FnOnce() -> io::Result<OpenedHost<D>>,
    ) -> io::Result<Self> {
        let core = CoreHandle::current().ok_or_else(|| {
            io::Error::other(
                "a userspace-stack endpoint must be bound on a core of an insane runtime",
            )
        })?;
        let host = match host_by_key::<D>(key) {
            Some(h) => h,
            None => {
                let (iface, claim) = open()?;
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
                let id = NEXT.fetch_add(1, Ordering::Relaxed);
                let describe = iface.device().describe();
                let host = Rc::new(Host {
                    key: key.to_string(),
                    shared: Arc::new(HostShared {
                        id,
                        home: FrameOwner::here(),
                        core,
                        unbinds: Mutex::new(Vec::new()),
                        unbind_pending: AtomicBool::new(false),
                    }),
                    iface: RefCell::new(iface),
                    users: Cell::new(0),
                    describe,
                    _claim: claim,
                });
                match reactor::current::<StackReactor<D>>() {
                    Some(r) => r.borrow_mut().hosts.push(Rc::downgrade(&host)),
                    None => reactor::register(Rc::new(RefCell::new(StackReactor::<D> {
                        hosts: vec![Rc::downgrade(&host)],
                    })))?,
                }
                let exiting = |_| io::Error::other("the core's thread is exiting");
                HOSTS
                    .try_with(|h| h.borrow_mut().insert(id, host.clone() as Rc<dyn Any>))
                    .map_err(exiting)?;
                HOST_KEYS
                    .try_with(|k| k.borrow_mut().insert(key.to_string(), id))
                    .map_err(exiting)?;
                lock(&SERVERS).push(Server {
                    key: key.to_string(),
                    host: id,
                    core: host.shared.core.clone(),
                });
                host
            }
        };
        let (endpoint, local, max_payload, describe) = {
            let mut iface = host.iface.borrow_mut();
            let opened = iface
                .bind(port)
                .map_err(|e| {
                    io::Error::new(io::ErrorKind::AddrInUse, format!("{e} ({})", host.describe))
                })
                .and_then(|endpoint| {
                    let local = iface.local_addr(endpoint).ok_or_else(|| {
                        io::Error::other("the stack lost an endpoint it had just bound")
                    });
                    match local.and_then(|l| iface.device_mut().open_port(l.port()).map(|()| l)) {
                        Ok(local) => Ok((endpoint, local)),
                        Err(e) => {
                            iface.unbind(endpoint);
                            Err(e)
                        }
                    }
                });
            let (endpoint, local) = match opened {
                Ok(v) => v,
                Err(e) => {
                    drop(iface);
                    if host.users.get() == 0 {
                        // A host opened for this endpoint closes again.
                        forget_host(host.shared.id, key);
                    }
                    return Err(e);
                }
            };
            // The payload limit: the MTU's, or less if a device frame
            // holds less (a 2048-byte UMEM frame on a link with a larger
            // MTU).
            let mut max_payload = iface.max_payload();
            if let Some(frame) = iface.alloc_tx() {
                max_payload = max_payload.min(frame.tailroom());
            }
            if let Some(rx) = iface.device().max_rx_frame() {
                max_payload = max_payload.min(rx.saturating_sub(UDP_HEADROOM));
            }
            // Described now: opening the port may have changed what the
            // device says (a DPDK flow rule installed or refused).
            (endpoint, local, max_payload, iface.device().describe())
        };
        host.users.set(host.users.get() + 1);
        Ok(Self {
            host: host.shared.clone(),
            endpoint,
            local,
            max_payload,
            kind,
            connected: ConnectedPeer::default(),
            tx_lent: Arc::new(AtomicUsize::new(0)),
            rx_lent: Arc::new(AtomicUsize::new(0)),
            tx_buffers: config.tx_buffers.max(1),
            rx_buffers: config.rx_buffers.max(1),
            describe,
            dispatched_from: None,
            _spin: host.shared.core.hold_spin(),
            _device: PhantomData,
        })
    }

    /// Like [`bind`](Self::bind), but when another core of the process
    /// already serves `key` (its host has the device queue), the endpoint
    /// is bound on that core's host instead of failing to open the device
    /// a second time: that core receives the endpoint's datagrams and
    /// hands them over (software dispatch), and this core's sends and
    /// receives are forwarded there (one cross-core hop each way, see
    /// "Cores" in the [module docs](self)).
    /// [`dispatched_from`](Self::dispatched_from) then names this core.
    ///
    /// ```
    /// use insane_net::qos::TransportKind as Kind;
    /// use insane_net::qos::transport::stack::StackUdpTransport;
    /// use insane_net::qos::TransportConfig;
    /// use insane_net::stack::testing::PairDevice;
    /// use insane_net::stack::{InterfaceConfig, EthernetAddress as Mac, Interface};
    /// # let rt = insane_runtime::runtime::Runtime::builder().cores(2).build()?;
    /// # rt.block_on(async {
    /// let open = || {
    ///     let (a, _b) = PairDevice::pair(Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]), 1500);
    ///     Ok((Interface::new(a, InterfaceConfig::new("10.0.0.1/24".parse().unwrap())), None))
    /// };
    /// let cfg = TransportConfig::default();
    /// let here = StackUdpTransport::bind_dispatched("link", 5000, Kind::XdpUdp, &cfg, open).await?;
    /// // Core 1 binds on core 0's host: the device is not opened twice.
    /// let there = insane_runtime::task::spawn_on(1, async move {
    ///     StackUdpTransport::bind_dispatched("link", 5001, Kind::XdpUdp, &cfg, open).await
    /// })
    /// .await
    /// .unwrap()?;
    /// assert_eq!((there.home_core(), there.dispatched_from()), (0, Some(1)));
    /// # drop(here);
    /// # std::io::Result::Ok(())
    /// # })?;
    /// # std::io::Result::Ok(())
    /// ```
    ///
    /// # Errors
    /// As [`bind`](Self::bind), run on the serving core (or on this one
    /// when no core serves `key`, or the serving core has stopped).
    pub async fn bind_dispatched<F>(
        key: &str,
        port: u16,
        kind: TransportKind,
        config: &TransportConfig,
        open: F,
    ) -> io::Result<Self>
    where
        F: FnOnce() -> io::Result<OpenedHost<D>> + Clone + Send + 'static,
    {
        let here = CoreHandle::current().map(|c| c.index());
        // Bounded: a retry follows only a lost race or a stopped core.
        for _ in 0..3 {
            let Some(server) = server_of(key).filter(|core| !core.is_current()) else {
                match Self::bind(key, port, kind, config, open.clone()) {
                    // Another core opened the device between our look at
                    // the servers and our own open: bind on it instead.
                    Err(_) if server_of(key).is_some_and(|core| !core.is_current()) => continue,
                    bound => return bound,
                }
            };
            let (owned_key, config_there, open_there) = (key.to_string(), *config, open.clone());
            let there = server
                .spawn(async move { Self::bind(&owned_key, port, kind, &config_there, open_there) })
                .await;
            match there {
                Ok(bound) => {
                    return bound.map(|mut t| {
                        t.dispatched_from = here;
                        t
                    });
                }
                // The serving core stopped (its runtime shut down) before
                // running the bind: its host is gone with it.
                Err(_) => lock(&SERVERS).retain(|s| s.core.uid() != server.uid()),
            }
        }
        Self::bind(key, port, kind, config, open)
    }

    /// Whether this core has a host named `key` (a bind there needs no
    /// device). Used by the DPDK transport (multi-queue ports).
    #[cfg(feature = "dpdk")]
    pub(crate) fn serves_here(key: &str) -> bool {
        host_by_key::<D>(key).is_some()
    }

    /// The core this endpoint was bound from when another core's host
    /// serves it ([`bind_dispatched`](Self::bind_dispatched)); `None` when
    /// it is served by the core that bound it.
    pub fn dispatched_from(&self) -> Option<usize> {
        self.dispatched_from
    }

    /// The part of `explain()` that says which core serves the endpoint.
    pub fn explain_cores(&self) -> String {
        match self.dispatched_from {
            None => format!(
                "busy-poll: the core {} spins while the endpoint lives",
                self.home_core()
            ),
            Some(from) => format!(
                "bound from core {from}, served by core {} (software dispatch: that core owns the device queue and spins while the endpoint lives; each send and receive crosses cores once)",
                self.home_core()
            ),
        }
    }

    /// As the technology table wants it: the transport, and for
    /// `explain()` the device and the core serving it.
    pub(crate) fn into_bound(self) -> super::technology::BoundTransport {
        let detail = format!("{}; {}", self.describe(), self.explain_cores());
        super::technology::BoundTransport {
            transport: Arc::new(self),
            detail,
        }
    }

    /// The device's description (e.g. the AF_XDP modes).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The index of the core that owns the host.
    pub fn home_core(&self) -> usize {
        self.host.core.index()
    }

    /// The host, when called on its home thread.
    fn local_host(&self) -> Option<Rc<Host<D>>> {
        if !self.host.home.is_current() {
            return None;
        }
        host::<D>(self.host.id)
    }

    fn closed(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotConnected,
            format!(
                "the userspace stack host ({}) on core {} is gone",
                self.describe,
                self.home_core()
            ),
        )
    }

    /// A device buffer from `host`, if one is free and the endpoint's
    /// lending bound allows.
    fn lend(&self, host: &Host<D>) -> Option<TxBuf> {
        lend::<D>(host, self.max_payload, &self.tx_lent, self.tx_buffers)
    }
}

fn lend<D: StackDevice>(
    host: &Host<D>,
    max_payload: usize,
    tx_lent: &Arc<AtomicUsize>,
    tx_buffers: usize,
) -> Option<TxBuf> {
    if tx_lent.load(Ordering::Relaxed) >= tx_buffers {
        return None;
    }
    let mut frame = host.iface.borrow_mut().alloc_tx()?;
    let headroom = frame.headroom();
    if headroom < UDP_HEADROOM {
        return None;
    }
    // The data region spans the whole payload capacity; `send` trims it.
    let ptr = frame.append(max_payload)?.as_mut_ptr();
    let frame = match D::tx_anywhere(frame) {
        Ok(sendable) => CoreFrame::anywhere(sendable, host.shared.home.clone()),
        Err(frame) => CoreFrame::new(frame, host.shared.home.clone()),
    };
    // SAFETY: `ptr` points to the `max_payload` bytes just appended inside
    // the frame now boxed in `frame`; driver memory does not move while
    // the frame lives, and only the `TxBuf` accesses it until `send`
    // takes the frame back at home.
    let device = unsafe {
        DeviceTx::new(
            frame,
            ptr,
            headroom,
            host.shared.id,
            Some(Ticket::new(tx_lent)),
        )
    };
    Some(TxBuf::from_device(device, max_payload))
}

/// Sends one datagram at home. `buf` is a device buffer of this host, or
/// any other buffer (copied into a frame).
fn send_at_home<D: StackDevice>(
    host: &Host<D>,
    endpoint: EndpointId,
    peer: SocketAddrV4,
    buf: TxBuf,
    max_payload: usize,
) -> Poll<io::Result<()>> {
    let len = buf.len();
    if len > max_payload {
        return Poll::Ready(Err(too_large(len, max_payload, &host.describe)));
    }
    let frame = match buf.device_owner() {
        Some(owner) if owner == host.shared.id => {
            let Ok((device, len)) = buf.into_device() else {
                unreachable!("a device buffer")
            };
            match device.frame.take::<D::Tx>() {
                Ok(mut frame) => {
                    frame.truncate(len);
                    frame
                }
                Err(_) => {
                    return Poll::Ready(Err(io::Error::other(
                        "a device buffer of this host holds a frame of another type",
                    )));
                }
            }
        }
        _ => {
            // Another endpoint's (heap or other device's) buffer: into a
            // frame of this device.
            let Some(mut frame) = host.iface.borrow_mut().alloc_tx() else {
                return Poll::Ready(Err(no_frames(&host.describe)));
            };
            if !frame.extend_from_slice(&buf) {
                return Poll::Ready(Err(too_large(len, max_payload, &host.describe)));
            }
            frame
        }
    };
    let mut iface = host.iface.borrow_mut();
    match iface.send_to(endpoint, peer, frame, Instant::now()) {
        Ok(_) => Poll::Ready(Ok(())),
        Err(e) => Poll::Ready(Err(send_error(e.kind, peer, &host.describe))),
    }
}

/// Takes the next datagram at home (from the connected peer, if any).
fn recv_at_home<D: StackDevice>(
    host: &Host<D>,
    endpoint: EndpointId,
    connected: Option<SocketAddrV4>,
    rx_lent: &Arc<AtomicUsize>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<RxBuf>> {
    let mut polled = false;
    // Bounded: each turn either takes a datagram off the queue (of at
    // most `endpoint_queue` entries) or returns.
    for _ in 0..4096 {
        let got = host.iface.borrow_mut().poll_recv_from(endpoint, cx);
        match got {
            Poll::Ready(Some(d)) => {
                if connected.is_some_and(|c| c != d.peer()) {
                    continue; // `connect` filters other senders, like connect(2)
                }
                let peer = d.peer();
                let range = d.payload_range();
                let mut frame = d.into_frame();
                let len = frame.len();
                let ptr = frame.as_mut_ptr();
                let frame = match D::rx_anywhere(frame) {
                    Ok(sendable) => CoreFrame::anywhere(sendable, host.shared.home.clone()),
                    Err(frame) => CoreFrame::new(frame, host.shared.home.clone()),
                };
                // SAFETY: `ptr..ptr + len` are the received frame's bytes
                // in driver memory, owned by the frame now boxed in
                // `frame`, which nothing else accesses until it is dropped.
                let device = unsafe { DeviceRx::new(frame, ptr, len, Some(Ticket::new(rx_lent))) };
                return Poll::Ready(Ok(RxBuf::from_device(
                    device,
                    range.start,
                    range.end,
                    SocketAddr::V4(peer),
                )));
            }
            Poll::Ready(None) => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!("the endpoint is no longer bound on {}", host.describe),
                )));
            }
            Poll::Pending if !polled => {
                // Latency: look at the device now rather than at the next
                // turn of the core's loop. Its receive side only: frames
                // queued for transmit (bulk ones) leave when their batch
                // is full or at that turn, not before this datagram.
                polled = true;
                host.shared.home.drain();
                if let Ok(mut iface) = host.iface.try_borrow_mut() {
                    iface.poll_receive(Instant::now);
                }
            }
            Poll::Pending => {
                if busy_polls_device() {
                    // Looked at again on the next pass over the critical
                    // tasks, between two normal tasks, instead of at the
                    // core's next poll of the stack, a whole turn of bulk
                    // work later.
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            }
        }
    }
    // Many datagrams from other peers: let other tasks run, then go on.
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// The peer set by `connect`, read by every send and receive without a
/// lock: an IPv4 socket address fits one atomic word (address, port, and
/// a bit saying one is set).
#[derive(Default)]
struct ConnectedPeer(AtomicU64);

impl ConnectedPeer {
    const SET: u64 = 1 << 48;

    fn get(&self) -> Option<SocketAddrV4> {
        let v = self.0.load(Ordering::Acquire);
        (v & Self::SET != 0)
            .then(|| SocketAddrV4::new(std::net::Ipv4Addr::from(v as u32), (v >> 32) as u16))
    }

    fn set(&self, peer: SocketAddrV4) {
        let v = Self::SET | u64::from(peer.port()) << 32 | u64::from(u32::from(*peer.ip()));
        self.0.store(v, Ordering::Release);
    }
}

/// Whether a receive that found nothing keeps looking at the device
/// itself: for a critical task (one that serves a critical endpoint) when
/// the runtime's priority is on (the receive side of latency isolation).
/// The look costs a load of the device's ring index
/// ([`Interface::poll_receive`]), no system call.
fn busy_polls_device() -> bool {
    Runtime::priority() && insane_runtime::task::latency() == Latency::Critical
}

fn too_large(len: usize, limit: usize, describe: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "a message of {len} bytes exceeds the UDP payload limit of {limit} bytes on {describe} (MTU minus IPv4 and UDP headers; datagrams are never fragmented)"
        ),
    )
}

fn no_frames(describe: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("no free transmit frame on {describe}"),
    )
}

fn send_error(kind: SendErrorKind, peer: SocketAddrV4, describe: &str) -> io::Error {
    let io_kind = match kind {
        SendErrorKind::InvalidDestination => io::ErrorKind::InvalidInput,
        SendErrorKind::NoRoute => io::ErrorKind::NetworkUnreachable,
        SendErrorKind::UnknownEndpoint => io::ErrorKind::NotConnected,
        SendErrorKind::DeviceFull | SendErrorKind::ArpQueueFull | SendErrorKind::ArpCacheFull => {
            io::ErrorKind::WouldBlock
        }
        _ => io::ErrorKind::Other,
    };
    io::Error::new(
        io_kind,
        format!("sending to {peer} on {describe} failed: {kind}"),
    )
}

fn v4(peer: SocketAddr) -> io::Result<SocketAddrV4> {
    match peer {
        SocketAddr::V4(p) => Ok(p),
        SocketAddr::V6(p) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{p} is IPv6; the userspace stack speaks IPv4 only"),
        )),
    }
}

/// Aborts a task forwarded to the home core if the operation is dropped.
struct AbortOnDrop<T>(insane_runtime::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn forwarded<T>(r: Result<io::Result<T>, insane_runtime::task::JoinError>) -> io::Result<T> {
    r.unwrap_or_else(|e| {
        Err(io::Error::other(format!(
            "the home core of the userspace stack endpoint did not run the operation: {e}"
        )))
    })
}

impl<D: StackDevice> Transport for StackUdpTransport<D> {
    fn kind(&self) -> TransportKind {
        self.kind
    }

    fn max_payload(&self) -> usize {
        self.max_payload
    }

    fn headroom(&self) -> usize {
        UDP_HEADROOM
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(self.local))
    }

    fn busy_polls(&self) -> bool {
        true
    }

    fn try_buffer(&self) -> Option<TxBuf> {
        match self.local_host() {
            Some(host) => self.lend(&host),
            // Away from home: a heap buffer, copied into a frame at home.
            None => Some(TxBuf::unpooled(0, self.max_payload)),
        }
    }

    fn poll_buffer(&self, cx: &mut Context<'_>) -> Poll<TxBuf> {
        match self.try_buffer() {
            Some(b) => Poll::Ready(b),
            None => {
                // Frames come back as the device completes sends, which
                // the spinning core notices on its next turn: retry then.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn tx_available(&self) -> usize {
        self.tx_buffers
            .saturating_sub(self.tx_lent.load(Ordering::Relaxed))
    }

    fn rx_available(&self) -> usize {
        self.rx_buffers
            .saturating_sub(self.rx_lent.load(Ordering::Relaxed))
    }

    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        buf: &mut Option<TxBuf>,
        peer: Option<SocketAddr>,
        op: &mut Op<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        let tx = match begin_send(cx, buf, op, self.max_payload, |len| {
            too_large(len, self.max_payload, &self.describe)
        }) {
            Ok(tx) => tx,
            Err(poll) => return poll,
        };
        let peer = match peer {
            Some(p) => match v4(p) {
                Ok(p) => p,
                Err(e) => return Poll::Ready(Err(e)),
            },
            None => match self.connected.get() {
                Some(p) => p,
                None => return Poll::Ready(Err(not_connected("this best-effort"))),
            },
        };
        if let Some(host) = self.local_host() {
            return send_at_home(&host, self.endpoint, peer, tx, self.max_payload);
        }
        if self.host.home.is_current() {
            return Poll::Ready(Err(self.closed()));
        }
        // Away from home: the send runs there.
        let (id, endpoint, max) = (self.host.id, self.endpoint, self.max_payload);
        let mut tx = Some(tx);
        let task = self.host.core.spawn(poll_fn(move |_| {
            let Some(tx) = tx.take() else {
                return Poll::Ready(Ok(()));
            };
            match host::<D>(id) {
                Some(host) => send_at_home(&host, endpoint, peer, tx, max),
                None => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the userspace stack host is gone",
                ))),
            }
        }));
        let mut task = AbortOnDrop(task);
        op.start(
            cx,
            Box::pin(async move {
                forwarded(poll_fn(|cx| std::pin::Pin::new(&mut task.0).poll(cx)).await)
            }),
        )
    }

    fn flush(&self) {
        // Away from home the forwarded send runs there, and the host's
        // next poll hands it over.
        if let Some(host) = self.local_host()
            && let Ok(mut iface) = host.iface.try_borrow_mut()
        {
            iface.flush();
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        op: &mut Op<io::Result<RxBuf>>,
    ) -> Poll<io::Result<RxBuf>> {
        if !op.is_idle() {
            return op.poll(cx);
        }
        let connected = self.connected.get();
        if let Some(host) = self.local_host() {
            return recv_at_home(&host, self.endpoint, connected, &self.rx_lent, cx);
        }
        if self.host.home.is_current() {
            return Poll::Ready(Err(self.closed()));
        }
        let (id, endpoint, rx_lent) = (self.host.id, self.endpoint, self.rx_lent.clone());
        let task = self.host.core.spawn(async move {
            poll_fn(|cx| match host::<D>(id) {
                Some(host) => recv_at_home(&host, endpoint, connected, &rx_lent, cx),
                None => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the userspace stack host is gone",
                ))),
            })
            .await
        });
        let mut task = AbortOnDrop(task);
        op.start(
            cx,
            Box::pin(async move {
                forwarded(poll_fn(|cx| std::pin::Pin::new(&mut task.0).poll(cx)).await)
            }),
        )
    }

    fn diagnostics(&self) -> Option<String> {
        let host = self.local_host()?;
        let iface = host.iface.borrow();
        Some(format!(
            "stack {:?}; endpoint {:?}; device {}",
            iface.stats(),
            iface.endpoint_stats(self.endpoint),
            iface.device().statistics()
        ))
    }

    fn poll_connect(
        &self,
        _cx: &mut Context<'_>,
        peer: SocketAddr,
        _op: &mut Op<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        let peer = match v4(peer) {
            Ok(p) => p,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if peer.port() == 0 || peer.ip().is_unspecified() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot connect to {peer}"),
            )));
        }
        self.connected.set(peer);
        Poll::Ready(Ok(()))
    }
}

impl<D: StackDevice> Drop for StackUdpTransport<D> {
    fn drop(&mut self) {
        let port = self.local.port();
        if let Some(host) = self.local_host() {
            host.unbind(self.endpoint, port);
            return;
        }
        // Away from home: the home core unbinds it on its next poll.
        lock(&self.host.unbinds).push((self.endpoint, port));
        self.host.unbind_pending.store(true, Ordering::Release);
    }
}

impl<D: StackDevice> fmt::Debug for StackUdpTransport<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackUdpTransport")
            .field("kind", &self.kind)
            .field("local", &self.local)
            .field("device", &self.describe)
            .field("core", &self.home_core())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectedPeer;
    use std::net::SocketAddrV4;

    #[test]
    fn connected_peer_is_none_until_set_then_the_last_address_set() {
        let peer = ConnectedPeer::default();
        assert_eq!(peer.get(), None);
        let a: SocketAddrV4 = "10.0.0.2:7000".parse().unwrap();
        peer.set(a);
        assert_eq!(peer.get(), Some(a));
        let b: SocketAddrV4 = "255.255.255.254:65535".parse().unwrap();
        peer.set(b);
        assert_eq!(peer.get(), Some(b));
    }
}
