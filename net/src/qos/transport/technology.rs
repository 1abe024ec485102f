//! The technology table: every way this build can carry an endpoint, each
//! behind one small trait ([`Technology`]), so that
//! [`Endpoint::bind`](crate::qos::Endpoint::bind) can walk the policy's
//! choices without knowing any technology by name.
//!
//! A technology is a module of [`transport`](super): its probe (what this
//! host has, and why not), its bind (open the device or socket, return a
//! [`Transport`]) and its configuration rule (which addresses it may
//! serve). [`TECHNOLOGIES`] lists them. Adding one is a new module plus a
//! line in that list, plus its [`TransportKind`]s in the policy's table
//! ([`policy`](crate::qos::policy): the kinds, their place in the order of
//! preference, the [`Capabilities`] entry its probe fills in).
//!
//! ```
//! use insane_net::qos::policy::Capabilities;
//! use insane_net::config::Config;
//!
//! // What every endpoint of this process will choose from (kernel drivers
//! // probed for real; no bypass section, so AF_XDP and DPDK are "not
//! // configured").
//! let caps = Capabilities::probe_with(&Config::default());
//! assert!(caps.uring.is_available() || caps.epoll.is_available(), "{caps:?}");
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use super::{Transport, TransportConfig};
use crate::config::Config;
use crate::qos::policy::{Availability, Capabilities, TransportKind};

/// What a technology's bind gives the endpoint: the transport, and what
/// `explain()` adds after the policy's reason (the device, its mode, the
/// core serving it; empty when there is nothing to add).
pub(crate) struct BoundTransport {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) detail: String,
}

/// A bind in progress.
pub(crate) type BindFuture<'a> =
    Pin<Box<dyn Future<Output = io::Result<BoundTransport>> + Send + 'a>>;

/// One technology: how it is probed and how an endpoint binds on it.
pub(crate) trait Technology: Sync {
    /// How `explain()` and errors name it (`"AF_XDP"`, `"DPDK"`, ...).
    fn name(&self) -> &'static str;

    /// The transport kinds it binds.
    fn kinds(&self) -> &'static [TransportKind];

    /// Probes this host for `host`'s configuration and records the verdict
    /// in `caps` (its own entry). Runs once per process, at the first bind
    /// (or when the application calls [`Capabilities::probe_with`]); may
    /// open and close devices, initialise a library (DPDK's EAL), read
    /// `/sys`.
    fn probe(&self, host: &Config, caps: &mut Capabilities);

    /// What [`Endpoint::bind_with_config`](crate::qos::Endpoint::bind_with_config)
    /// assumes without probing: a configured device is offered and opened
    /// at bind, where a failure falls back to the next choice. Defaults to
    /// leaving `caps` as the kernel probe left it.
    fn offer(&self, host: &Config, caps: &mut Capabilities) {
        let _ = (host, caps);
    }

    /// Restricts `caps` to what the current core can use (the kernel
    /// technology: only the core's own driver, io_uring or epoll). Called
    /// at every bind, on the binding core.
    fn restrict_to_current_core(&self, caps: &mut Capabilities) {
        let _ = caps;
    }

    /// The address of `host`'s section for this technology, when it only
    /// serves that address (a kernel-bypass stack has its own IPv4
    /// address): an endpoint bound to another address never uses it, and
    /// one bound to it learns why this technology failed when the kernel
    /// cannot bind the address either. `None`: any address.
    fn own_address(&self, host: &Config) -> Option<(std::net::Ipv4Addr, String)> {
        let _ = host;
        None
    }

    /// Whether a failed bind moves on to the policy's next choice (a
    /// device that could not be opened) instead of failing the endpoint
    /// (a kernel socket whose address is taken).
    fn falls_back(&self) -> bool {
        false
    }

    /// Binds an endpoint of `kind` (one of [`kinds`](Self::kinds)) to
    /// `addr`.
    fn bind<'a>(
        &'a self,
        kind: TransportKind,
        addr: SocketAddr,
        config: &'a TransportConfig,
        host: &'a Config,
    ) -> BindFuture<'a>;
}

/// Every technology of this build, in no particular order (the policy
/// orders them per QoS).
pub(crate) static TECHNOLOGIES: &[&dyn Technology] = &[
    &super::kernel::Kernel,
    &super::xdp::Xdp,
    &super::dpdk::Dpdk,
    &super::rdma::Rdma,
    &super::reliable::OVER_DPDK,
    &super::reliable::OVER_XDP,
    &super::reliable::OVER_UDP,
];

/// The technology that binds `kind`, if this build has one.
pub(crate) fn technology_of(kind: TransportKind) -> Option<&'static dyn Technology> {
    TECHNOLOGIES
        .iter()
        .copied()
        .find(|t| t.kinds().contains(&kind))
}

impl Availability {
    /// `Available(describe(v))` for a probe that succeeded, else
    /// `Unavailable` with its error.
    pub(crate) fn from_probe<T>(
        result: io::Result<T>,
        describe: impl FnOnce(&T) -> String,
    ) -> Self {
        match result {
            Ok(v) => Availability::Available(describe(&v)),
            Err(e) => Availability::Unavailable(e.to_string()),
        }
    }
}

impl Capabilities {
    /// Before any probe: bypass technologies not configured, the others
    /// not probed yet.
    fn unprobed() -> Self {
        let not_probed = || Availability::Unavailable("not probed".into());
        Capabilities {
            uring: not_probed(),
            epoll: not_probed(),
            xdp: Availability::NotConfigured,
            dpdk: Availability::NotConfigured,
            rdma: not_probed(),
        }
    }

    /// Probes this host for `config`: every technology of this build
    /// probes itself (io_uring and epoll for real, AF_XDP when the
    /// configuration has an `[xdp]` section — opening and closing a socket
    /// on its interface and queue —, DPDK when it has a `[dpdk]` section:
    /// initialising the EAL and reading the port, RDMA by looking for
    /// devices).
    ///
    /// ```
    /// use insane_net::config::Config;
    /// use insane_net::qos::policy::{Availability, Capabilities};
    /// let caps = Capabilities::probe_with(&Config::default());
    /// assert_eq!(caps.xdp, Availability::NotConfigured);
    /// ```
    pub fn probe_with(config: &Config) -> Self {
        let mut caps = Self::unprobed();
        for t in TECHNOLOGIES {
            t.probe(config, &mut caps);
        }
        caps
    }

    /// Probes the kernel drivers and RDMA; a bypass technology said to be
    /// configured is reported as "configured but not probed" (its probe
    /// needs its section: see [`probe_with`](Self::probe_with)).
    ///
    /// ```
    /// use insane_net::qos::policy::{Availability, Capabilities};
    /// let caps = Capabilities::probe(false, false);
    /// assert_eq!(caps.dpdk, Availability::NotConfigured);
    /// ```
    pub fn probe(xdp_configured: bool, dpdk_configured: bool) -> Self {
        let mut caps = Self::probe_with(&Config::default());
        if xdp_configured {
            caps.xdp = Availability::Unavailable(
                "AF_XDP is configured but its interface was not probed (Capabilities::probe_with probes it)".into(),
            );
        }
        if dpdk_configured {
            caps.dpdk = super::dpdk::not_probed();
        }
        caps
    }

    /// What [`Endpoint::bind_with_config`](crate::qos::Endpoint::bind_with_config)
    /// chooses from: the kernel drivers probed, configured bypass devices
    /// offered as "opened at bind".
    pub(crate) fn offered(host: &Config) -> Self {
        let mut caps = Self::probe_with(&Config::default());
        for t in TECHNOLOGIES {
            t.offer(host, &mut caps);
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qos::policy::preference;
    use crate::qos::{Latency, Qos, Reliability, Resources};

    #[test]
    fn probe_on_this_host_finds_a_kernel_driver() {
        let caps = Capabilities::probe(false, false);
        assert!(
            caps.uring.is_available() || caps.epoll.is_available(),
            "{caps:?}"
        );
        assert_eq!(caps.dpdk, Availability::NotConfigured);
    }

    #[test]
    fn every_kind_the_policy_may_choose_has_exactly_one_technology() {
        for latency in [Latency::Critical, Latency::Normal] {
            for reliability in [Reliability::BestEffort, Reliability::Reliable] {
                for resources in [Resources::Poll, Resources::Low] {
                    let qos = Qos::new(latency, reliability, resources);
                    for &kind in preference(&qos) {
                        let owners = TECHNOLOGIES
                            .iter()
                            .filter(|t| t.kinds().contains(&kind))
                            .count();
                        assert_eq!(owners, 1, "{kind} has {owners} technologies");
                    }
                }
            }
        }
    }
}
