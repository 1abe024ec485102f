//! Driver selection: what this host can do ([`Capabilities`]), and which
//! transport serves a [`Qos`] best ([`choose`]), with the reason in words.
//!
//! The order of preference is DESIGN.md's table:
//!
//! | latency | reliability | first choice → fallbacks |
//! |---|---|---|
//! | critical | best effort | DPDK → AF_XDP → io_uring busy-poll UDP → epoll busy-poll UDP |
//! | critical | reliable | RDMA RC → TCP over DPDK/AF_XDP → io_uring TCP → epoll TCP |
//! | normal | either | io_uring (UDP or TCP) → epoll |
//! | any, resources = low | | kernel drivers only, never busy-poll |
//!
//! ```
//! use insane_net::qos::policy::{Availability, Capabilities, Transport, choose};
//! use insane_net::qos::Qos;
//!
//! let caps = Capabilities {
//!     dpdk: Availability::NotConfigured,
//!     xdp: Availability::Unavailable("interface eth1 not found".into()),
//!     ..Capabilities::kernel_only()
//! };
//! let choice = choose(&Qos::builder().critical().best_effort().poll().build(), &caps).unwrap();
//! assert_eq!(choice.transport, Transport::UringUdpBusyPoll);
//! assert_eq!(
//!     choice.explain,
//!     "latency=critical, best-effort, resources=poll -> io_uring busy-poll UDP \
//!      (dpdk: not configured; af_xdp: interface eth1 not found)"
//! );
//! ```

use std::fmt;
use std::io;

use super::{Latency, Qos, Reliability, Resources};

/// Whether a technology can be used on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Usable; the text says what was found (e.g. the PMD or the XDP mode).
    Available(String),
    /// The configuration does not ask for it (no `[dpdk]`/`[xdp]` section).
    NotConfigured,
    /// Asked for or probed, but not usable here; the text says why.
    Unavailable(String),
}

impl Availability {
    /// Whether the technology can be used.
    pub fn is_available(&self) -> bool {
        matches!(self, Availability::Available(_))
    }

    /// Why it cannot be used (`None` when it can).
    pub fn why_not(&self) -> Option<String> {
        match self {
            Availability::Available(_) => None,
            Availability::NotConfigured => Some("not configured".into()),
            Availability::Unavailable(why) => Some(why.clone()),
        }
    }

    fn from_probe<T>(result: io::Result<T>, describe: impl FnOnce(&T) -> String) -> Self {
        match result {
            Ok(v) => Availability::Available(describe(&v)),
            Err(e) => Availability::Unavailable(e.to_string()),
        }
    }
}

/// What this host offers, probed once at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// io_uring (kernel sockets, completions).
    pub uring: Availability,
    /// epoll (kernel sockets, readiness).
    pub epoll: Availability,
    /// AF_XDP on the configured interface and queue.
    pub xdp: Availability,
    /// DPDK ports from the EAL configuration.
    pub dpdk: Availability,
    /// RDMA devices (reliable connections).
    pub rdma: Availability,
    /// A reliable transport (TCP) over the bypass drivers.
    pub bypass_tcp: Availability,
}

impl Capabilities {
    /// Kernel drivers only, both available: what tests and hosts without
    /// bypass configuration see.
    pub fn kernel_only() -> Self {
        Self {
            uring: Availability::Available("io_uring".into()),
            epoll: Availability::Available("epoll".into()),
            xdp: Availability::NotConfigured,
            dpdk: Availability::NotConfigured,
            rdma: Availability::Unavailable("no RDMA device".into()),
            bypass_tcp: Availability::Unavailable(
                "reliable transport over kernel bypass is not built yet".into(),
            ),
        }
    }

    /// Probes this host: io_uring and epoll for real; DPDK only when
    /// `dpdk_configured` (without the `dpdk` feature a configured one
    /// reports that its driver is not part of this build; with it, that it
    /// was not probed: [`probe_with`](Self::probe_with) probes it); RDMA by looking for devices in
    /// `/sys/class/infiniband`. AF_XDP needs its interface and queue: see
    /// [`probe_with`](Self::probe_with) (here a configured one reports that
    /// it was not probed).
    pub fn probe(xdp_configured: bool, dpdk_configured: bool) -> Self {
        let uring = Availability::from_probe(insane_uring::probe(), |f| {
            format!("io_uring on Linux {}", f.kernel_release)
        });
        let epoll = Availability::from_probe(insane_epoll::probe(), |_| "epoll".into());
        Self {
            uring,
            epoll,
            xdp: if xdp_configured {
                Availability::Unavailable(
                    "AF_XDP is configured but its interface was not probed (Capabilities::probe_with probes it)".into(),
                )
            } else {
                Availability::NotConfigured
            },
            dpdk: if dpdk_configured {
                if cfg!(feature = "dpdk") {
                    Availability::Unavailable(
                        "DPDK is configured but its port was not probed (Capabilities::probe_with probes it)".into(),
                    )
                } else {
                    Availability::Unavailable(
                        "the DPDK driver is not part of this build (insane-net feature `dpdk`)"
                            .into(),
                    )
                }
            } else {
                Availability::NotConfigured
            },
            rdma: probe_rdma(),
            bypass_tcp: Availability::Unavailable(
                "reliable transport over kernel bypass is not built yet".into(),
            ),
        }
    }

    /// Probes this host for `config`: as [`probe`](Self::probe), and AF_XDP
    /// for real when the configuration has an `[xdp]` section
    /// ([`probe_xdp`]), DPDK for real when it has a `[dpdk]` section and
    /// the `dpdk` feature is on (`probe_dpdk`).
    pub fn probe_with(config: &crate::config::Config) -> Self {
        let mut caps = Self::probe(false, config.dpdk.is_some());
        if let Some(xdp) = &config.xdp {
            caps.xdp = probe_xdp(&xdp.interface, xdp.queue);
        }
        #[cfg(feature = "dpdk")]
        if let Some(dpdk) = &config.dpdk {
            caps.dpdk = probe_dpdk(&dpdk.eal, dpdk.port);
        }
        caps
    }
}

/// AF_XDP on `interface` queue `queue` ([`insane_xdp::probe`]: attaches the
/// program, binds a socket, releases both): `Available("veth0 queue 0,
/// native, copy")`, or `Unavailable` with the error, which names the
/// interface. The queue stays busy for about a second afterwards (an
/// AF_XDP socket opened then retries its bind).
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

/// DPDK port `port` after EAL initialisation with `eal`
/// ([`insane_dpdk::probe`]): `Available("port 0 net_memif0, PMD
/// net_memif, link down")` (the link as read now: down until the port is
/// started and, for memif, its peer connected), or `Unavailable` with the reason (DPDK not in
/// this build, EAL arguments rejected with `rte_errno`'s text, no such
/// port). Feature `dpdk`.
///
/// The EAL is initialised once per process: probing initialises it with
/// `eal`, and the driver later reuses that EAL (same arguments). It runs
/// `rte_eal_init` on a short-lived thread of its own
/// ([`init_eal`](super::dpdk::init_eal)), which the EAL makes its main
/// lcore and pins to the first CPU of `-l`; the caller's thread is left
/// as it is.
#[cfg(feature = "dpdk")]
pub fn probe_dpdk(eal: &[String], port: u16) -> Availability {
    // The EAL initialised on a thread of its own (which it pins), not on
    // the caller's (a runtime core's, pinned to its CPU).
    if let Err(e) = super::dpdk::init_eal(eal) {
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

fn probe_rdma() -> Availability {
    match std::fs::read_dir("/sys/class/infiniband") {
        Ok(mut entries) => match entries.next() {
            Some(Ok(dev)) => Availability::Unavailable(format!(
                "RDMA device {} found, but the RDMA driver is not part of this build yet",
                dev.file_name().to_string_lossy()
            )),
            _ => {
                Availability::Unavailable("no RDMA device (/sys/class/infiniband is empty)".into())
            }
        },
        Err(_) => Availability::Unavailable("no RDMA device (no /sys/class/infiniband)".into()),
    }
}

/// A way to carry a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP over DPDK with the userspace stack.
    DpdkUdp,
    /// UDP over AF_XDP with the userspace stack.
    XdpUdp,
    /// Kernel UDP on io_uring, core busy-polling (`SO_BUSY_POLL`, spin).
    UringUdpBusyPoll,
    /// Kernel UDP on epoll, core busy-polling.
    EpollUdpBusyPoll,
    /// Kernel UDP on io_uring, sleeping waits.
    UringUdp,
    /// Kernel UDP on epoll, sleeping waits.
    EpollUdp,
    /// RDMA reliable connection.
    RdmaRc,
    /// TCP over DPDK or AF_XDP (userspace TCP).
    BypassTcp,
    /// Kernel TCP on io_uring.
    UringTcp,
    /// Kernel TCP on epoll.
    EpollTcp,
}

impl Transport {
    /// Whether the core carrying this transport busy-polls.
    pub fn busy_polls(self) -> bool {
        matches!(
            self,
            Transport::DpdkUdp
                | Transport::XdpUdp
                | Transport::UringUdpBusyPoll
                | Transport::EpollUdpBusyPoll
                | Transport::RdmaRc
                | Transport::BypassTcp
        )
    }

    /// Whether the transport is reliable (ordered, no loss).
    pub fn is_reliable(self) -> bool {
        matches!(
            self,
            Transport::RdmaRc | Transport::BypassTcp | Transport::UringTcp | Transport::EpollTcp
        )
    }

    /// The technology's name in `explain()` texts (`dpdk`, `af_xdp`, ...).
    fn technology(self) -> &'static str {
        match self {
            Transport::DpdkUdp => "dpdk",
            Transport::XdpUdp => "af_xdp",
            Transport::UringUdpBusyPoll | Transport::UringUdp | Transport::UringTcp => "io_uring",
            Transport::EpollUdpBusyPoll | Transport::EpollUdp | Transport::EpollTcp => "epoll",
            Transport::RdmaRc => "rdma",
            Transport::BypassTcp => "bypass tcp",
        }
    }

    fn availability(self, caps: &Capabilities) -> &Availability {
        match self {
            Transport::DpdkUdp => &caps.dpdk,
            Transport::XdpUdp => &caps.xdp,
            Transport::UringUdpBusyPoll | Transport::UringUdp | Transport::UringTcp => &caps.uring,
            Transport::EpollUdpBusyPoll | Transport::EpollUdp | Transport::EpollTcp => &caps.epoll,
            Transport::RdmaRc => &caps.rdma,
            Transport::BypassTcp => &caps.bypass_tcp,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::DpdkUdp => "DPDK UDP",
            Transport::XdpUdp => "AF_XDP UDP",
            Transport::UringUdpBusyPoll => "io_uring busy-poll UDP",
            Transport::EpollUdpBusyPoll => "epoll busy-poll UDP",
            Transport::UringUdp => "io_uring UDP",
            Transport::EpollUdp => "epoll UDP",
            Transport::RdmaRc => "RDMA RC",
            Transport::BypassTcp => "TCP over kernel bypass",
            Transport::UringTcp => "io_uring TCP",
            Transport::EpollTcp => "epoll TCP",
        })
    }
}

/// The transports that may serve `qos`, best first (DESIGN.md's table).
pub fn preference(qos: &Qos) -> &'static [Transport] {
    use Transport::*;
    match (qos.latency, qos.reliability, qos.resources) {
        (Latency::Critical, Reliability::BestEffort, Resources::Poll) => {
            &[DpdkUdp, XdpUdp, UringUdpBusyPoll, EpollUdpBusyPoll]
        }
        (Latency::Critical, Reliability::Reliable, Resources::Poll) => {
            &[RdmaRc, BypassTcp, UringTcp, EpollTcp]
        }
        (_, Reliability::BestEffort, _) => &[UringUdp, EpollUdp],
        (_, Reliability::Reliable, _) => &[UringTcp, EpollTcp],
    }
}

/// The transport chosen for a flow, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// What carries the flow.
    pub transport: Transport,
    /// E.g. `latency=critical, best-effort, resources=poll -> io_uring
    /// busy-poll UDP (dpdk: not configured; af_xdp: interface eth1 not
    /// found)`: the QoS, the choice, and why each better one was passed.
    pub explain: String,
}

/// Picks the first available transport of [`preference`]`(qos)`.
///
/// # Errors
/// `Unsupported` when nothing on this host can serve `qos`; the message
/// names every technology tried and why it failed.
pub fn choose(qos: &Qos, caps: &Capabilities) -> io::Result<Choice> {
    let mut passed: Vec<String> = Vec::new();
    for &transport in preference(qos) {
        match transport.availability(caps).why_not() {
            None => {
                let mut explain = format!("{qos} -> {transport}");
                if !passed.is_empty() {
                    explain.push_str(&format!(" ({})", passed.join("; ")));
                }
                return Ok(Choice { transport, explain });
            }
            Some(why) => {
                let entry = format!("{}: {why}", transport.technology());
                // Several transports share a technology: name it once.
                if !passed.contains(&entry) {
                    passed.push(entry);
                }
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "no transport on this host can serve {qos} ({})",
            passed.join("; ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qos::Qos;

    fn critical_datagrams() -> Qos {
        Qos::builder().critical().best_effort().poll().build()
    }

    #[test]
    fn bypass_first_when_available() {
        let caps = Capabilities {
            dpdk: Availability::Available("net_memif".into()),
            ..Capabilities::kernel_only()
        };
        let c = choose(&critical_datagrams(), &caps).unwrap();
        assert_eq!(c.transport, Transport::DpdkUdp);
        assert_eq!(
            c.explain,
            "latency=critical, best-effort, resources=poll -> DPDK UDP"
        );
    }

    #[test]
    fn af_xdp_when_dpdk_is_missing() {
        let caps = Capabilities {
            xdp: Availability::Available("veth0 queue 0, native, copy".into()),
            ..Capabilities::kernel_only()
        };
        let c = choose(&critical_datagrams(), &caps).unwrap();
        assert_eq!(c.transport, Transport::XdpUdp);
        assert!(
            c.explain.ends_with("(dpdk: not configured)"),
            "{}",
            c.explain
        );
    }

    #[test]
    fn resources_low_never_busy_polls() {
        let caps = Capabilities {
            dpdk: Availability::Available("net_memif".into()),
            ..Capabilities::kernel_only()
        };
        let qos = Qos::builder().critical().best_effort().low().build();
        let c = choose(&qos, &caps).unwrap();
        assert_eq!(c.transport, Transport::UringUdp);
        assert!(!c.transport.busy_polls());
    }

    #[test]
    fn reliable_critical_falls_back_to_kernel_tcp_naming_why() {
        let qos = Qos::builder().critical().reliable().poll().build();
        let c = choose(&qos, &Capabilities::kernel_only()).unwrap();
        assert_eq!(c.transport, Transport::UringTcp);
        assert!(c.explain.contains("rdma: no RDMA device"), "{}", c.explain);
        assert!(c.explain.contains("bypass tcp: "), "{}", c.explain);
    }

    #[test]
    fn epoll_when_io_uring_is_disabled() {
        let caps = Capabilities {
            uring: Availability::Unavailable("io_uring_setup: Operation not permitted".into()),
            ..Capabilities::kernel_only()
        };
        let c = choose(&Qos::default(), &caps).unwrap();
        assert_eq!(c.transport, Transport::EpollTcp);
        assert_eq!(
            c.explain,
            "latency=normal, reliable, resources=low -> epoll TCP (io_uring: io_uring_setup: Operation not permitted)"
        );
    }

    #[test]
    fn nothing_available_is_an_error_naming_everything() {
        let caps = Capabilities {
            uring: Availability::Unavailable("disabled".into()),
            epoll: Availability::Unavailable("seccomp".into()),
            ..Capabilities::kernel_only()
        };
        let err = choose(&Qos::default(), &caps).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(
            err.to_string()
                .contains("io_uring: disabled; epoll: seccomp"),
            "{err}"
        );
    }

    #[test]
    fn every_qos_has_a_kernel_fallback() {
        for latency in [Latency::Critical, Latency::Normal] {
            for reliability in [Reliability::BestEffort, Reliability::Reliable] {
                for resources in [Resources::Poll, Resources::Low] {
                    let qos = Qos::new(latency, reliability, resources);
                    let last = *preference(&qos).last().unwrap();
                    assert!(matches!(
                        last,
                        Transport::EpollUdp | Transport::EpollUdpBusyPoll | Transport::EpollTcp
                    ));
                    assert_eq!(last.is_reliable(), reliability == Reliability::Reliable);
                    if resources == Resources::Low {
                        assert!(preference(&qos).iter().all(|t| !t.busy_polls()), "{qos}");
                    }
                }
            }
        }
    }

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
    fn xdp_probe_of_a_missing_interface_names_it() {
        let Availability::Unavailable(why) = probe_xdp("insane-nosuch9", 0) else {
            panic!("a missing interface probed as available");
        };
        assert!(why.contains("insane-nosuch9"), "{why}");
    }
}
