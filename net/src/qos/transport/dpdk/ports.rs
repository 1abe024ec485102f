//! DPDK ports and queues of this process: the EAL (once per process), the
//! ports opened for the rest of the process, which core polls which
//! queue, and the bind of an endpoint on them ([`bind_dpdk`]). See the
//! [technology's docs](super) for the rules.

use std::io;
use std::mem::ManuallyDrop;
use std::sync::Mutex;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use insane_dpdk::{Eal, FlowRule, Mbuf, Mempool, Port, PortConfig};
use insane_stack::group::{GroupMember, QueueGroup};
use insane_stack::{EthernetAddress, FrameDevice, Interface};

use super::device::DpdkDevice;
use crate::config::DpdkConfig;
use crate::qos::policy::TransportKind;
use crate::qos::transport::TransportConfig;
use crate::qos::transport::stack::{StackDevice, StackUdpTransport};

/// Initialises this process's EAL with `args` (see the
/// [technology's docs](super)), or returns it when it already is, with the same
/// arguments.
///
/// ```no_run
/// let eal = insane_net::qos::transport::dpdk::init_eal(&[
///     "-l".into(), "0".into(), "--no-pci".into(), "--no-huge".into(),
///     "-m".into(), "256".into(), "--vdev=net_ring0".into(),
/// ])?;
/// println!("{}", eal.version());
/// # std::io::Result::Ok(())
/// ```
///
/// # Errors
/// As [`Eal::init`]: DPDK is not available in this build, the EAL
/// rejected the arguments (`rte_errno`'s text), an earlier initialisation
/// failed or used other arguments; or no thread could be started.
pub fn init_eal(args: &[String]) -> io::Result<&'static Eal> {
    if let Some(eal) = Eal::get().filter(|e| e.args() == args) {
        return Ok(eal);
    }
    let owned = args.to_vec();
    let handle = std::thread::Builder::new()
        .name("insane-dpdk-eal".into())
        .spawn(move || Eal::init(&owned))
        .map_err(|e| io::Error::other(format!("starting the DPDK EAL thread: {e}")))?;
    match handle.join() {
        Ok(r) => r.map_err(|e| io::Error::new(e.kind(), format!("DPDK EAL: {e}"))),
        Err(_) => Err(io::Error::other(
            "DPDK EAL initialisation panicked (see the log)",
        )),
    }
}

/// A port this process opened.
struct OpenPort {
    id: u16,
    /// Keeps the port open (see the module docs).
    _port: Port,
    /// Each queue's mempool, by queue index.
    pools: Vec<Mempool>,
    queues: Arc<PortQueues>,
    /// The hosts on its queues, one host: shared port table and ARP news
    /// (with several queues).
    group: Option<Arc<QueueGroup<Mbuf>>>,
}

/// Which core polls which queue of one port (see the module docs).
struct PortQueues {
    /// The queue count.
    total: usize,
    state: Mutex<QueueState>,
    /// Set while a host should look at `state`: queues wait for a host
    /// to adopt them, or a core without a queue waits for one. One relaxed
    /// load per poll of every host with several queues.
    attention: AtomicBool,
}

#[derive(Default)]
struct QueueState {
    /// Queues no host polls.
    spare: Vec<DpdkDevice>,
    /// Cores waiting for a host to give up one of its extra queues.
    wanted: usize,
    /// Hosts polling queues of the port.
    hosts: usize,
    /// Queues they poll.
    polled: usize,
}

impl QueueState {
    /// Whether a host has something to do: give a queue to a waiting core
    /// (one host has several), or adopt unpolled queues.
    fn needs_attention(&self) -> bool {
        (self.wanted > self.spare.len() && self.polled > self.hosts)
            || (self.wanted == 0 && !self.spare.is_empty() && self.hosts > 0)
    }
}

impl PortQueues {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a spare queue for a new host, which also adopts the other
    /// spare queues when it is the only host (nobody would poll them).
    fn take_spare(self: &Arc<Self>, state: &mut QueueState) -> Option<PortQueue> {
        let own = state.spare.pop()?;
        let adopted = if state.hosts == 0 {
            std::mem::take(&mut state.spare)
        } else {
            Vec::new()
        };
        state.hosts += 1;
        state.polled += 1 + adopted.len();
        self.attention
            .store(state.needs_attention(), Ordering::Release);
        Some(PortQueue {
            own: ManuallyDrop::new(own),
            adopted,
            queues: self.clone(),
            multi: self.total > 1,
            steering: Steering::default(),
        })
    }
}

/// Ports opened by the QoS endpoints of this process.
static PORTS: Mutex<Vec<OpenPort>> = Mutex::new(Vec::new());

fn ports() -> std::sync::MutexGuard<'static, Vec<OpenPort>> {
    PORTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The mempool of queue 0 of DPDK port `port`, once a QoS endpoint has
/// opened it in this process: for leak checks (its
/// [`avail_count`](Mempool::avail_count) is back to what it was once
/// every buffer lent by the endpoints is dropped). Each queue has a pool
/// of its own: see [`port_pools`].
///
/// ```no_run
/// if let Some(pool) = insane_net::qos::transport::dpdk::port_pool(0) {
///     println!("{} mbufs free", pool.avail_count());
/// }
/// ```
pub fn port_pool(port: u16) -> Option<Mempool> {
    port_pools(port).into_iter().next()
}

/// The mempools of every queue of DPDK port `port` (by queue index), once
/// a QoS endpoint has opened it in this process; empty before.
pub fn port_pools(port: u16) -> Vec<Mempool> {
    ports()
        .iter()
        .find(|p| p.id == port)
        .map(|p| p.pools.clone())
        .unwrap_or_default()
}

/// How QoS endpoints open a port: `queues` queue pairs (RSS when the
/// device has it), the default mempool, and start retries (a `net_memif`
/// client started before its server fails to start: up to 5 s).
fn port_config(queues: u16) -> PortConfig {
    PortConfig {
        queues,
        start_attempts: 50,
        start_retry_delay: Duration::from_millis(100),
        ..PortConfig::default()
    }
}

/// A MAC address for a port without one: locally administered, made of
/// the stack's IPv4 address.
fn derived_mac(ip: std::net::Ipv4Addr) -> EthernetAddress {
    let o = ip.octets();
    EthernetAddress([0x02, 0x00, o[0], o[1], o[2], o[3]])
}

/// How long a core without a queue waits for a host with several to give
/// one up (each host does it at its next poll: microseconds when it runs).
const QUEUE_HANDOVER_WAIT: Duration = Duration::from_secs(1);

/// What [`claim_queue`] found.
enum Claim {
    /// A queue (or several) for a new host on this core.
    Queue(Box<PortQueue>, Option<GroupMember<Mbuf>>),
    /// Every queue has a host that polls only it: bind on one of them.
    AllPolled,
    /// No spare queue, but a host polls several: one is being asked for.
    Asked(Arc<PortQueues>),
}

/// Opens the section's port on first use (EAL, port with all its queues
/// for the first host), or takes a spare queue of the open port; without
/// one, asks a host that polls several to give one up (when `ask`).
fn claim_queue(dpdk: &DpdkConfig, ask: bool) -> io::Result<Claim> {
    init_eal(&dpdk.eal)?;
    let mut ports = ports();
    if let Some(open) = ports.iter_mut().find(|p| p.id == dpdk.port) {
        let mut state = open.queues.lock();
        if let Some(queue) = open.queues.take_spare(&mut state) {
            let member = join(open.group.as_ref());
            return Ok(Claim::Queue(Box::new(queue), member));
        }
        if ask && state.polled > state.hosts {
            state.wanted += 1;
            open.queues.attention.store(true, Ordering::Release);
            return Ok(Claim::Asked(open.queues.clone()));
        }
        return Ok(Claim::AllPolled);
    }
    let queues = dpdk.queues.max(1);
    let mut port = Port::open(dpdk.port, &port_config(queues))
        .map_err(|e| io::Error::new(e.kind(), format!("opening DPDK port {}: {e}", dpdk.port)))?;
    let mac = match port.info().mac {
        [0, 0, 0, 0, 0, 0] => derived_mac(dpdk.address.address),
        mac => EthernetAddress(mac),
    };
    let mut devices = Vec::with_capacity(usize::from(queues));
    let mut pools = Vec::with_capacity(usize::from(queues));
    // Highest index first: `take_spare` pops, so queue 0 is taken first.
    for q in (0..queues).rev() {
        let queue = port.take_queue(q).ok_or_else(|| {
            io::Error::other(format!(
                "DPDK port {} has no queue {q} after opening",
                dpdk.port
            ))
        })?;
        pools.push(queue.pool().clone());
        // On error the queues and port go: a port that failed here is not
        // offered again (its id is released by DPDK).
        devices.push(DpdkDevice::with_mac(queue, mac)?);
    }
    pools.reverse();
    let queues_state = Arc::new(PortQueues {
        total: devices.len(),
        state: Mutex::new(QueueState {
            spare: devices,
            ..QueueState::default()
        }),
        attention: AtomicBool::new(false),
    });
    let group = (queues > 1).then(|| QueueGroup::new(usize::from(queues)));
    let queue = {
        let mut state = queues_state.lock();
        queues_state.take_spare(&mut state)
    }
    .ok_or_else(|| io::Error::other("a DPDK port opened without queues"))?;
    let member = join(group.as_ref());
    ports.push(OpenPort {
        id: dpdk.port,
        _port: port,
        pools,
        queues: queues_state,
        group,
    });
    Ok(Claim::Queue(Box::new(queue), member))
}

fn join(group: Option<&Arc<QueueGroup<Mbuf>>>) -> Option<GroupMember<Mbuf>> {
    // A group has a slot per queue, and a host holds at least one queue.
    group.and_then(QueueGroup::join)
}

/// Waits (bounded) for a host to give up one of its extra queues after
/// [`Claim::Asked`]; `None` when none came (every host kept its own).
async fn await_handover(queues: &Arc<PortQueues>, dpdk: &DpdkConfig) -> Option<Claim> {
    let deadline = std::time::Instant::now() + QUEUE_HANDOVER_WAIT;
    loop {
        {
            let mut state = queues.lock();
            let done = !state.spare.is_empty() || std::time::Instant::now() >= deadline;
            if done {
                state.wanted = state.wanted.saturating_sub(1);
                let queue = queues.take_spare(&mut state);
                drop(state);
                let ports = ports();
                let open = ports.iter().find(|p| p.id == dpdk.port)?;
                return queue.map(|q| Claim::Queue(Box::new(q), join(open.group.as_ref())));
            }
        }
        insane_runtime::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The queues one host polls: its own RX/TX queue pair, and RX queues it
/// adopted because no other core polls them (a frame on a queue nobody
/// polls would be lost). They go back to the port when the host closes,
/// and another host adopts them.
pub(crate) struct PortQueue {
    own: ManuallyDrop<DpdkDevice>,
    adopted: Vec<DpdkDevice>,
    queues: Arc<PortQueues>,
    /// The port has several queues (else `queues` is never looked at).
    multi: bool,
    steering: Steering,
}

/// Flow rules steering this host's UDP ports to its own queue, where the
/// device takes them (several queues only).
#[derive(Default)]
struct Steering {
    /// The stack's address (set before the first port opens).
    ip: Option<std::net::Ipv4Addr>,
    rules: std::collections::HashMap<u16, FlowRule>,
    /// Why the device refused a rule: when it does not do `rte_flow` at
    /// all, no rule is asked for again.
    refused: Option<(String, bool)>,
}

impl PortQueue {
    /// Steers the UDP ports later opened on this queue's host, at `ip`, to
    /// its own queue with flow rules, where the device takes them.
    fn steer_to(&mut self, ip: std::net::Ipv4Addr) {
        self.steering.ip = Some(ip);
    }

    /// The queue indexes this host polls, its own first.
    fn polled(&self) -> Vec<u16> {
        std::iter::once(self.own.queue().id())
            .chain(self.adopted.iter().map(|d| d.queue().id()))
            .collect()
    }

    /// Gives an extra queue to a core waiting for one, or adopts queues
    /// no host polls.
    #[cold]
    #[inline(never)]
    fn rebalance(&mut self) {
        let mut state = self.queues.lock();
        if state.wanted > state.spare.len() {
            if let Some(extra) = self.adopted.pop() {
                state.spare.push(extra);
                state.polled -= 1;
            }
        } else if state.wanted == 0 && !state.spare.is_empty() {
            let spare = std::mem::take(&mut state.spare);
            state.polled += spare.len();
            self.adopted.extend(spare);
        }
        self.queues
            .attention
            .store(state.needs_attention(), Ordering::Release);
    }

    /// Receives from the adopted queues.
    #[inline(never)]
    fn poll_adopted(&mut self, max: usize, out: &mut impl FnMut(Mbuf)) -> usize {
        let mut n = 0;
        for device in &mut self.adopted {
            if n >= max {
                break;
            }
            n += device.poll_rx(max - n, out);
        }
        n
    }
}

impl Drop for PortQueue {
    fn drop(&mut self) {
        // SAFETY: `own` is taken once, here, and never used again.
        let own = unsafe { ManuallyDrop::take(&mut self.own) };
        let mut state = self.queues.lock();
        state.hosts = state.hosts.saturating_sub(1);
        state.polled = state.polled.saturating_sub(1 + self.adopted.len());
        state.spare.push(own);
        state.spare.append(&mut self.adopted);
        // Another host adopts them at its next poll.
        self.queues
            .attention
            .store(state.needs_attention(), Ordering::Release);
    }
}

impl FrameDevice for PortQueue {
    type Rx = Mbuf;
    type Tx = Mbuf;

    fn mac(&self) -> EthernetAddress {
        self.own.mac()
    }

    fn mtu(&self) -> usize {
        self.own.mtu()
    }

    #[inline]
    fn poll_rx(&mut self, max: usize, out: &mut impl FnMut(Self::Rx)) -> usize {
        if self.multi && self.queues.attention.load(Ordering::Relaxed) {
            self.rebalance();
        }
        let n = self.own.poll_rx(max, out);
        if self.adopted.is_empty() || n >= max {
            return n;
        }
        n + self.poll_adopted(max - n, out)
    }

    #[inline]
    fn rx_checksum_verified(frame: &Mbuf) -> bool {
        DpdkDevice::rx_checksum_verified(frame)
    }

    #[inline]
    fn offload_tx_checksums(&mut self, frame: &mut Mbuf) -> bool {
        self.own.offload_tx_checksums(frame)
    }

    #[inline]
    fn alloc_tx(&mut self) -> Option<Self::Tx> {
        self.own.alloc_tx()
    }

    #[inline]
    fn transmit(&mut self, frame: Self::Tx) -> Result<(), Self::Tx> {
        self.own.transmit(frame)
    }

    #[inline]
    fn flush(&mut self) {
        self.own.flush();
    }

    fn rx_into_tx(&mut self, frame: Mbuf, data: std::ops::Range<usize>) -> Result<Mbuf, Mbuf> {
        self.own.rx_into_tx(frame, data)
    }
}

impl StackDevice for PortQueue {
    fn rx_anywhere(frame: Mbuf) -> Result<Box<dyn std::any::Any + Send>, Mbuf> {
        DpdkDevice::rx_anywhere(frame)
    }

    fn tx_anywhere(frame: Mbuf) -> Result<Box<dyn std::any::Any + Send>, Mbuf> {
        DpdkDevice::tx_anywhere(frame)
    }

    /// With several queues: a flow rule steers the port's datagrams to
    /// this host's own queue where the device takes one; datagrams that
    /// arrive on another queue anyway (no rule, or before it) are handed
    /// over by the core polling that queue.
    fn open_port(&mut self, port: u16) -> io::Result<()> {
        let Some(ip) = self.steering.ip.filter(|_| self.multi) else {
            return Ok(());
        };
        if matches!(self.steering.refused, Some((_, true))) {
            return Ok(());
        }
        match self.own.queue().steer_udp(ip, port) {
            Ok(rule) => {
                self.steering.rules.insert(port, rule);
                self.steering.refused = None;
            }
            Err(e) => {
                let unsupported = e.kind() == io::ErrorKind::Unsupported;
                tracing::debug!("no flow rule for UDP port {port}: {e}");
                self.steering.refused = Some((e.to_string(), unsupported));
            }
        }
        Ok(())
    }

    fn close_port(&mut self, port: u16) -> io::Result<()> {
        self.steering.rules.remove(&port);
        Ok(())
    }

    fn describe(&self) -> String {
        if !self.multi {
            return self.own.describe();
        }
        let steering = match (&self.steering.refused, self.steering.rules.len()) {
            (Some((why, _)), _) => format!(
                "no flow steering ({why}): datagrams arriving on other cores' queues are handed over"
            ),
            (None, 0) => "datagrams arriving on other cores' queues are handed over".to_string(),
            (None, n) => format!(
                "{n} UDP port(s) steered to this queue by rte_flow rules, stray datagrams handed over"
            ),
        };
        format!(
            "{}; {steering}; queues without a core of their own are polled by another core",
            self.own.describe()
        )
    }

    fn statistics(&self) -> String {
        let queues = std::iter::once(&*self.own)
            .chain(&self.adopted)
            .map(StackDevice::statistics)
            .collect::<Vec<_>>()
            .join("; ");
        if self.multi {
            format!("polling queues {:?}: {queues}", self.polled())
        } else {
            queues
        }
    }
}

/// The stack on `queue` with the section's address, in the port's queue
/// group when it has several queues.
fn interface(
    queue: PortQueue,
    member: Option<GroupMember<Mbuf>>,
    dpdk: &DpdkConfig,
) -> Interface<PortQueue> {
    let config = insane_stack::InterfaceConfig::new(dpdk.address.into());
    let mut queue = queue;
    queue.steer_to(dpdk.address.address);
    match member {
        Some(member) => Interface::in_group(queue, config, member),
        None => Interface::new(queue, config),
    }
}

/// Binds UDP `port` of the `[dpdk]` section's address for the section's
/// DPDK port: on this core's host when it has one; else on a new host on
/// a queue of this core's own (opening EAL and port for the first
/// endpoint of the process, taking a spare queue, or one a host that
/// polls several gives up); else, every queue being polled by a core of
/// its own, on one of those hosts (software dispatch).
pub(crate) async fn bind_dpdk(
    dpdk: &DpdkConfig,
    port: u16,
    config: &TransportConfig,
) -> io::Result<StackUdpTransport<PortQueue>> {
    let key = format!(
        "DPDK port {} at {}/{}",
        dpdk.port, dpdk.address.address, dpdk.address.prefix
    );
    let kind = TransportKind::DpdkUdp;
    if !StackUdpTransport::<PortQueue>::serves_here(&key) {
        let claim = match claim_queue(dpdk, true)? {
            Claim::Asked(queues) => await_handover(&queues, dpdk).await,
            claim => Some(claim),
        };
        if let Some(Claim::Queue(queue, member)) = claim {
            let iface = interface(*queue, member, dpdk);
            return StackUdpTransport::bind(&key, port, kind, config, move || Ok((iface, None)));
        }
    }
    let dpdk = dpdk.clone();
    // Run where no core serves the port any more (its runtime stopped).
    let open = move || match claim_queue(&dpdk, false)? {
        Claim::Queue(queue, member) => Ok((interface(*queue, member, &dpdk), None)),
        Claim::Asked(_) | Claim::AllPolled => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "every queue of DPDK port {} is polled by a core of this process, none of which serves endpoints any more",
                dpdk.port
            ),
        )),
    };
    StackUdpTransport::<PortQueue>::bind_dispatched(&key, port, kind, config, open).await
}
