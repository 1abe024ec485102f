//! The DPDK technology (feature `dpdk`): QoS endpoints on the userspace
//! stack's [`StackUdpTransport`](super::stack::StackUdpTransport) over a
//! DPDK port queue ([`device::DpdkDevice`]); its probe, its bind, its
//! `[dpdk]` configuration section.
//!
//! [`Endpoint`](crate::qos::Endpoint) uses it when the policy picks
//! [`DpdkUdp`](crate::qos::policy::TransportKind::DpdkUdp): the configuration has a
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
//!   peer polls. A port has the section's `queues` RX/TX queue pairs
//!   (default 1; RSS over IPv4/UDP when there are several and the device
//!   has it).
//! * **Queues and cores**: the first core that binds an endpoint takes
//!   queue 0 and also polls every queue no other core has (a frame on an
//!   unpolled queue would be lost). Each further core that binds one gets
//!   a queue of its own while there is one: a spare one, or one the
//!   first core gives up at its next poll (the new core waits for it up
//!   to a second). Each core runs its own stack on its queues; together
//!   they are one host (a [`QueueGroup`](insane_stack::group::QueueGroup)): a UDP port is bound on one
//!   core, and a datagram that arrives on another core's queue (the NIC's
//!   RSS, or the peer, chose the queue) is handed to it without a copy;
//!   what one core's ARP learns, every core learns. When every queue has
//!   a core, an endpoint bound on yet another core is served by one of
//!   them (software dispatch: it receives the endpoint's datagrams and
//!   hands them over, the endpoint's sends are forwarded to it; see
//!   [`StackUdpTransport::bind_dispatched`](super::stack::StackUdpTransport::bind_dispatched)). When a core's last endpoint
//!   on the port is dropped, its queues go back to the port and another
//!   core's stack polls them; with no core left, the next endpoint (on
//!   any core, any runtime) takes them. `explain()` names the queue
//!   ("queue 1 of 2") or the serving core.
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

//!
//! # Files
//!
//! - `device.rs`: [`device::DpdkDevice`], a DPDK queue pair as the
//!   stack's frame device;
//! - `ports.rs`: the EAL, the ports and which core polls which queue, and
//!   the bind;
//! - here: the probe and the technology's entry in the
//!   technology table (`technology.rs`).
//!
//! Without the `dpdk` feature only the entry is built: a `[dpdk]` section
//! is then reported as "not part of this build" and the policy moves on.

#[cfg(feature = "dpdk")]
pub mod device;
#[cfg(feature = "dpdk")]
mod ports;

#[cfg(feature = "dpdk")]
pub use ports::{init_eal, port_pool, port_pools};

use std::net::SocketAddr;

use super::TransportConfig;
use super::technology::{BindFuture, Technology};
use crate::config::Config;
use crate::qos::policy::{Availability, Capabilities, TransportKind};

/// DPDK in the technology table (`technology.rs`).
pub(crate) struct Dpdk;

/// A configured DPDK that was not probed (yet).
pub(crate) fn not_probed() -> Availability {
    if cfg!(feature = "dpdk") {
        Availability::Unavailable(
            "DPDK is configured but its port was not probed (Capabilities::probe_with probes it)"
                .into(),
        )
    } else {
        not_in_build()
    }
}

fn not_in_build() -> Availability {
    Availability::Unavailable(
        "the DPDK driver is not part of this build (insane-net feature `dpdk`)".into(),
    )
}

impl Technology for Dpdk {
    fn name(&self) -> &'static str {
        "DPDK"
    }

    fn kinds(&self) -> &'static [TransportKind] {
        &[TransportKind::DpdkUdp]
    }

    fn probe(&self, host: &Config, caps: &mut Capabilities) {
        let Some(dpdk) = &host.dpdk else { return };
        #[cfg(feature = "dpdk")]
        {
            caps.dpdk = probe_dpdk(&dpdk.eal, dpdk.port);
        }
        #[cfg(not(feature = "dpdk"))]
        {
            let _ = dpdk;
            caps.dpdk = not_in_build();
        }
    }

    fn offer(&self, host: &Config, caps: &mut Capabilities) {
        let Some(dpdk) = &host.dpdk else { return };
        caps.dpdk = if cfg!(feature = "dpdk") {
            Availability::Available(format!("port {} (opened at bind)", dpdk.port))
        } else {
            not_in_build()
        };
    }

    fn own_address(&self, host: &Config) -> Option<(std::net::Ipv4Addr, String)> {
        host.dpdk.as_ref().map(|d| {
            (
                d.address.address,
                format!(
                    "the stack's address on DPDK port {} ([dpdk] address)",
                    d.port
                ),
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
            debug_assert_eq!(kind, TransportKind::DpdkUdp);
            let Some(dpdk) = host.dpdk.as_ref() else {
                return Err(std::io::Error::other(
                    "DPDK chosen without a [dpdk] section",
                ));
            };
            #[cfg(feature = "dpdk")]
            {
                Ok(ports::bind_dpdk(dpdk, addr.port(), config)
                    .await?
                    .into_bound())
            }
            #[cfg(not(feature = "dpdk"))]
            {
                let _ = (dpdk, addr, config);
                Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "the DPDK driver is not part of this build (insane-net feature `dpdk`)",
                ))
            }
        })
    }
}

/// DPDK port `port` after EAL initialisation with `eal`
/// ([`insane_dpdk::probe`]): `Available("port 0 net_memif0, PMD
/// net_memif, link down")` (the link as read now: down until the port is
/// started and, for memif, its peer connected), or `Unavailable` with the
/// reason (EAL arguments rejected with `rte_errno`'s text, no such port).
///
/// The EAL is initialised once per process: probing initialises it with
/// `eal` ([`init_eal`]: on a short-lived thread of its own, which the EAL
/// makes its main lcore and pins to the first CPU of `-l`; the caller's
/// thread is left as it is), and the driver later reuses that EAL (same
/// arguments).
#[cfg(feature = "dpdk")]
pub fn probe_dpdk(eal: &[String], port: u16) -> Availability {
    if let Err(e) = init_eal(eal) {
        return Availability::Unavailable(format!("DPDK port {port}: {e}"));
    }
    match insane_dpdk::probe(eal, port) {
        Ok((info, link)) => Availability::Available(format!(
            "port {} {}, PMD {}, link {}",
            info.id,
            info.name,
            info.driver,
            if link.up { "up" } else { "down" }
        )),
        Err(e) => Availability::Unavailable(format!("DPDK port {port}: {e}")),
    }
}
