//! QoS endpoints over DPDK (feature `dpdk`): the userspace stack's
//! [`StackUdpTransport`] on a DPDK port queue ([`DpdkDevice`]).
//!
//! [`Endpoint`](super::Endpoint) uses it when the policy picks
//! [`DpdkUdp`](policy::Transport::DpdkUdp): the configuration has a
//! `[dpdk]` section, the QoS is `latency = critical, best-effort,
//! resources = poll`, and the endpoint is bound to the section's address.
//!
//! # EAL, ports and queues
//!
//! * **EAL**: initialised once per process with the section's `eal`
//!   arguments ([`init_eal`]), on a short-lived thread of its own: the EAL
//!   pins the thread that initialises it to the first CPU of `-l`, which
//!   must not be a runtime core's thread (they are pinned to their own
//!   CPUs). A failed initialisation cannot be retried in the process
//!   (DPDK's rule): every later bind reports the same error, and the
//!   endpoint falls back to the next transport, naming it in `explain()`.
//! * **Ports** are opened on first use and stay open for the rest of the
//!   process: DPDK releases a virtual port when it is closed, so it could
//!   not be opened again, and a `net_memif` port must not close while its
//!   peer polls. One RX/TX queue pair per port, polled by one core at a
//!   time: the core of the first endpoint bound on it. Endpoints bound on
//!   other cores meanwhile are served by that core (software dispatch:
//!   it receives their datagrams and hands them over, their sends are
//!   forwarded to it; see [`StackUdpTransport::bind_dispatched`]). When
//!   the serving core's last endpoint on the port is dropped, the queue
//!   goes back to the port, unpolled, and the next endpoint (on any core,
//!   any runtime) takes it.
//! * **MAC**: the port's own; a PMD without one (`net_ring`: all zeros)
//!   gets a locally administered address made of the stack's IPv4
//!   address (`02:00:a:b:c:d`).
//!
//! ```no_run
//! use insane_net::config::Config;
//! use insane_net::qos::{Endpoint, Qos, TransportConfig};
//! # async fn f() -> std::io::Result<()> {
//! let host = Config::from_toml_str(
//!     "[dpdk]\neal = [\"-l\", \"0\", \"--no-pci\", \"--no-huge\", \"-m\", \"256\", \"--vdev=net_ring0\"]\n\
//!      port = 0\naddress = \"10.0.1.1/24\"\n",
//!     "inline",
//! )?;
//! let qos = Qos::builder().critical().best_effort().poll().build();
//! let ep = Endpoint::bind_with_config("10.0.1.1:7000", qos, TransportConfig::default(), &host).await?;
//! // latency=critical, best-effort, resources=poll -> DPDK UDP; DPDK port 0
//! // (net_ring0, PMD net_ring), queue 0, link up; busy-poll: ...
//! println!("{}", ep.explain());
//! # Ok(())
//! # }
//! ```

use std::io;
use std::mem::ManuallyDrop;
use std::sync::Mutex;
use std::time::Duration;

use insane_dpdk::{Eal, Mbuf, Mempool, Port, PortConfig};
use insane_runtime::runtime::CoreHandle;
use smoltcp::wire::EthernetAddress;

use super::policy;
use super::stack_transport::{StackDevice, StackUdpTransport};
use super::transport::TransportConfig;
use crate::config::DpdkConfig;
use crate::stack::dpdk::DpdkDevice;
use crate::stack::{FrameDevice, Interface};

impl StackDevice for DpdkDevice {
    fn describe(&self) -> String {
        self.explain()
    }

    fn statistics(&self) -> String {
        format!(
            "{:?}, pool {} mbufs free",
            self.queue().stats(),
            self.queue().pool().avail_count()
        )
    }
}

/// Initialises this process's EAL with `args` (see the
/// [module docs](self)), or returns it when it already is, with the same
/// arguments.
///
/// ```no_run
/// let eal = insane_net::qos::dpdk::init_eal(&[
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

/// A port this process opened, and its queue when no core polls it.
struct OpenPort {
    id: u16,
    /// Keeps the port open (see the module docs).
    _port: Port,
    pool: Mempool,
    /// The queue, while no host has it.
    spare: Option<DpdkDevice>,
    /// The core polling it: (index, uid).
    owner: Option<(usize, u64)>,
}

/// Ports opened by the QoS endpoints of this process.
static PORTS: Mutex<Vec<OpenPort>> = Mutex::new(Vec::new());

fn ports() -> std::sync::MutexGuard<'static, Vec<OpenPort>> {
    PORTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The mempool of the queue QoS endpoints use on DPDK port `port`, once
/// an endpoint has opened it in this process: for leak checks (its
/// [`avail_count`](Mempool::avail_count) is back to what it was once
/// every buffer lent by the endpoints is dropped).
///
/// ```no_run
/// if let Some(pool) = insane_net::qos::dpdk::port_pool(0) {
///     println!("{} mbufs free", pool.avail_count());
/// }
/// ```
pub fn port_pool(port: u16) -> Option<Mempool> {
    ports()
        .iter()
        .find(|p| p.id == port)
        .map(|p| p.pool.clone())
}

/// How QoS endpoints open a port: one queue pair, the default mempool,
/// and start retries (a `net_memif` client started before its server
/// fails to start: up to 5 s).
fn port_config() -> PortConfig {
    PortConfig {
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

/// Takes the queue of the section's port for the current core, opening
/// the port on first use.
fn take_queue(dpdk: &DpdkConfig) -> io::Result<PortQueue> {
    let core = CoreHandle::current().ok_or_else(|| {
        io::Error::other("a DPDK endpoint must be bound on a core of an insane runtime")
    })?;
    let me = (core.index(), core.uid());
    let mut ports = ports();
    if let Some(open) = ports.iter_mut().find(|p| p.id == dpdk.port) {
        return match open.spare.take() {
            Some(device) => {
                open.owner = Some(me);
                Ok(PortQueue::new(device))
            }
            None => {
                let owner = open
                    .owner
                    .map_or_else(|| "another core".into(), |(i, _)| format!("core {i}"));
                Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "DPDK port {} queue 0 is polled by {owner} of this process (one queue per port, one core polls it): bind its endpoints on that core",
                        dpdk.port
                    ),
                ))
            }
        };
    }
    let mut port = Port::open(dpdk.port, &port_config())
        .map_err(|e| io::Error::new(e.kind(), format!("opening DPDK port {}: {e}", dpdk.port)))?;
    let queue = port.take_queue(0).ok_or_else(|| {
        io::Error::other(format!(
            "DPDK port {} has no queue 0 after opening",
            dpdk.port
        ))
    })?;
    let mac = match queue.port_info().mac {
        [0, 0, 0, 0, 0, 0] => derived_mac(dpdk.address.address),
        mac => EthernetAddress(mac),
    };
    let pool = queue.pool().clone();
    // On error the queue and port go: a port that failed here is not
    // offered again (its id is released by DPDK).
    let device = DpdkDevice::with_mac(queue, mac)?;
    ports.push(OpenPort {
        id: dpdk.port,
        _port: port,
        pool,
        spare: None,
        owner: Some(me),
    });
    Ok(PortQueue::new(device))
}

/// A port's queue taken by a core's host; it goes back to its port when
/// the host closes.
pub(crate) struct PortQueue {
    device: ManuallyDrop<DpdkDevice>,
}

impl PortQueue {
    fn new(device: DpdkDevice) -> Self {
        Self {
            device: ManuallyDrop::new(device),
        }
    }
}

impl Drop for PortQueue {
    fn drop(&mut self) {
        // SAFETY: `device` is taken once, here, and never used again.
        let device = unsafe { ManuallyDrop::take(&mut self.device) };
        let id = device.queue().port_info().id;
        let mut ports = ports();
        match ports.iter_mut().find(|p| p.id == id) {
            Some(open) => {
                open.owner = None;
                open.spare = Some(device);
            }
            None => drop(device),
        }
    }
}

impl FrameDevice for PortQueue {
    type Rx = Mbuf;
    type Tx = Mbuf;

    fn mac(&self) -> EthernetAddress {
        self.device.mac()
    }

    fn mtu(&self) -> usize {
        self.device.mtu()
    }

    fn poll_rx(&mut self, max: usize, out: &mut impl FnMut(Self::Rx)) -> usize {
        self.device.poll_rx(max, out)
    }

    fn rx_checksum_verified(&self, frame: &Mbuf) -> bool {
        self.device.rx_checksum_verified(frame)
    }

    fn offload_tx_checksums(&mut self, frame: &mut Mbuf) -> bool {
        self.device.offload_tx_checksums(frame)
    }

    fn alloc_tx(&mut self) -> Option<Self::Tx> {
        self.device.alloc_tx()
    }

    fn transmit(&mut self, frame: Self::Tx) -> Result<(), Self::Tx> {
        self.device.transmit(frame)
    }

    fn flush(&mut self) {
        self.device.flush();
    }
}

impl StackDevice for PortQueue {
    fn describe(&self) -> String {
        self.device.describe()
    }

    fn statistics(&self) -> String {
        self.device.statistics()
    }
}

/// Binds UDP `port` of the `[dpdk]` section's address on this core's
/// host for the section's DPDK port, opening it (EAL, port, the stack
/// with the section's address) for the first endpoint.
pub(crate) async fn bind_dpdk(
    dpdk: &DpdkConfig,
    port: u16,
    config: &TransportConfig,
) -> io::Result<StackUdpTransport<PortQueue>> {
    let key = format!(
        "DPDK port {} at {}/{}",
        dpdk.port, dpdk.address.address, dpdk.address.prefix
    );
    let dpdk = dpdk.clone();
    let open = move || {
        init_eal(&dpdk.eal)?;
        let device = take_queue(&dpdk)?;
        let cidr = crate::stack::Ipv4Cidr::new(dpdk.address.address, dpdk.address.prefix);
        Ok((
            Interface::new(device, crate::stack::Config::new(cidr)),
            None,
        ))
    };
    StackUdpTransport::<PortQueue>::bind_dispatched(
        &key,
        port,
        policy::Transport::DpdkUdp,
        config,
        open,
    )
    .await
}
