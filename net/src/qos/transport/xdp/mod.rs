//! The AF_XDP technology: QoS endpoints on the userspace stack's
//! [`StackUdpTransport`] over an AF_XDP socket ([`device::XdpDevice`]) of
//! the `[xdp]` section's interface and queue; its probe and its bind.
//!
//! Offered only when the configuration has an `[xdp]` section, to
//! `latency = critical, best-effort, resources = poll` endpoints bound to
//! the section's address. The first endpoint on a core opens the socket
//! (and attaches the XDP program, which steers the bound UDP ports, ARP
//! and ICMP for the stack's address to it; everything else goes to the
//! kernel); one socket per queue in the process, so endpoints bound on
//! other cores are served by that core (software dispatch). A failure to
//! open falls back to the next choice, `explain()` naming it.
//!
//! - `device.rs`: [`device::XdpDevice`], an AF_XDP socket as the stack's
//!   frame device;
//! - here: [`probe_xdp`], the bind, and the entry in the
//!   technology table (`technology.rs`).

pub mod device;

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;

use insane_runtime::runtime::{CoreHandle, Runtime};
use insane_stack::Interface;
use insane_xdp::{BusyPoll, ModeRequest, XdpSocket};

use super::stack::StackUdpTransport;
use super::technology::{BindFuture, Technology};
use super::{TransportConfig, lock};
use crate::config::{Config, XdpConfig, XdpMode};
use crate::qos::policy::{Availability, Capabilities, TransportKind};
use device::XdpDevice;

/// AF_XDP in the technology table (`technology.rs`).
pub(crate) struct Xdp;

impl Technology for Xdp {
    fn name(&self) -> &'static str {
        "AF_XDP"
    }

    fn kinds(&self) -> &'static [TransportKind] {
        &[TransportKind::XdpUdp]
    }

    fn probe(&self, host: &Config, caps: &mut Capabilities) {
        if let Some(xdp) = &host.xdp {
            caps.xdp = probe_xdp(&xdp.interface, xdp.queue);
        }
    }

    fn offer(&self, host: &Config, caps: &mut Capabilities) {
        if let Some(xdp) = &host.xdp {
            caps.xdp = Availability::Available(format!(
                "{} queue {} (opened at bind)",
                xdp.interface, xdp.queue
            ));
        }
    }

    fn own_address(&self, host: &Config) -> Option<(std::net::Ipv4Addr, String)> {
        host.xdp.as_ref().map(|x| {
            (
                x.address.address,
                format!("the stack's address on {} ([xdp] address)", x.interface),
            )
        })
    }

    fn falls_back(&self) -> bool {
        true
    }

    fn bind<'a>(
        &'a self,
        kind: TransportKind,
        addr: SocketAddr,
        config: &'a TransportConfig,
        host: &'a Config,
    ) -> BindFuture<'a> {
        Box::pin(async move {
            debug_assert_eq!(kind, TransportKind::XdpUdp);
            let xdp = host
                .xdp
                .as_ref()
                .ok_or_else(|| io::Error::other("AF_XDP chosen without an [xdp] section"))?;
            Ok(bind_xdp(xdp, addr.port(), config).await?.into_bound())
        })
    }
}

/// AF_XDP on `interface` queue `queue` ([`insane_xdp::probe`]: attaches the
/// program, binds a socket, releases both): `Available("veth0 queue 0,
/// native, copy")`, or `Unavailable` with the error, which names the
/// interface. The queue stays busy for about a second afterwards (an
/// AF_XDP socket opened then retries its bind).
///
/// ```
/// use insane_net::qos::policy::Availability;
/// use insane_net::qos::transport::xdp::probe_xdp;
/// let Availability::Unavailable(why) = probe_xdp("insane-nosuch0", 0) else { panic!() };
/// assert!(why.contains("insane-nosuch0"), "{why}");
/// ```
pub fn probe_xdp(interface: &str, queue: u32) -> Availability {
    match insane_xdp::probe(interface, queue) {
        Ok(mode) => Availability::Available(format!(
            "{interface} queue {queue}, {}, {}",
            mode.attach.as_str(),
            if mode.zero_copy { "zero-copy" } else { "copy" }
        )),
        Err(e) => {
            let e = e.to_string();
            Availability::Unavailable(if e.contains(interface) {
                e
            } else {
                format!("{interface} queue {queue}: {e}")
            })
        }
    }
}

/// The transmit batch of an AF_XDP host ([`InterfaceConfig::tx_batch`](insane_stack::InterfaceConfig::tx_batch)),
/// part of latency isolation.
///
/// In copy mode (veth, drivers without zero-copy support) the `sendto`
/// kick runs every frame of the batch through the kernel before it
/// returns — copied into an skb and, on veth, through the peer's XDP
/// program and receive path: about 10 µs a frame measured on this
/// project's VM. So with the runtime's priority on, every frame leaves in
/// a kick of its own: a critical frame, or the critical receiver's look
/// for its echo, waits behind at most one bulk frame's kick instead of a
/// batch of them (bulk datagrams per second: ~16% fewer than with
/// batches of 32, measured). A zero-copy kick only wakes the driver: the
/// stack's default batch. With priority off, the batch is unbounded as
/// before latency isolation: frames leave at the core's poll of the
/// stack (or when the ring is full).
fn tx_batch(zero_copy: bool, priority: bool) -> usize {
    match (priority, zero_copy) {
        (false, _) => usize::MAX,
        (true, false) => 1,
        (true, true) => insane_stack::DEFAULT_TX_BATCH,
    }
}

/// AF_XDP queues served in this process, and by which core: one socket
/// per queue.
static XDP_QUEUES: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());

/// This process's claim on an AF_XDP queue, released when its host closes.
struct QueueClaim(String);

impl QueueClaim {
    fn take(key: &str, core: usize) -> io::Result<QueueClaim> {
        let mut queues = lock(&XDP_QUEUES);
        if let Some((_, owner)) = queues.iter().find(|(k, _)| k == key) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{key} is already served by core {owner} of this process (one AF_XDP socket per queue): bind its endpoints on that core"
                ),
            ));
        }
        queues.push((key.to_string(), core));
        Ok(QueueClaim(key.to_string()))
    }
}

impl Drop for QueueClaim {
    fn drop(&mut self) {
        lock(&XDP_QUEUES).retain(|(k, _)| *k != self.0);
    }
}

/// Binds UDP `port` of the `[xdp]` section's address on this core's
/// AF_XDP host for that interface and queue, opening it (socket, XDP
/// program, the stack with the section's address claimed) for the first
/// endpoint.
async fn bind_xdp(
    xdp: &XdpConfig,
    port: u16,
    config: &TransportConfig,
) -> io::Result<StackUdpTransport<XdpDevice>> {
    let key = format!("AF_XDP on {} queue {}", xdp.interface, xdp.queue);
    let (xdp, claim_key) = (xdp.clone(), key.clone());
    let open = move || {
        let key = claim_key;
        let core = CoreHandle::current().map_or(0, |c| c.index());
        let claim = QueueClaim::take(&key, core)?;
        let mode = match xdp.mode {
            XdpMode::Auto => ModeRequest::Auto,
            XdpMode::Native => ModeRequest::Native,
            XdpMode::Generic => ModeRequest::Generic,
        };
        let socket = XdpSocket::open(
            insane_xdp::SocketConfig::new(&xdp.interface, xdp.queue)
                .mode(mode)
                .busy_poll(Some(BusyPoll::default()))
                // The policy's probe (or an endpoint just dropped) may have
                // used the queue within the last second.
                .bind_retry(std::time::Duration::from_secs(3)),
        )?;
        let device = XdpDevice::new(socket)?;
        let addr = xdp.address.address;
        device.claim_address(addr)?;
        let mut stack = insane_stack::InterfaceConfig::new(xdp.address.into());
        stack.tx_batch = tx_batch(device.socket().mode().zero_copy, Runtime::priority());
        let iface = Interface::new(device, stack);
        Ok((iface, Some(Box::new(claim) as Box<dyn Any>)))
    };
    StackUdpTransport::<XdpDevice>::bind_dispatched(&key, port, TransportKind::XdpUdp, config, open)
        .await
}
