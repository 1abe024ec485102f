//! Driver selection: what this host can do ([`Capabilities`]), and which
//! transport serves a [`Qos`] best ([`choose`]), with the reason in words.
//!
//! This module is pure: it probes nothing and opens nothing. The probes
//! live with their technologies ([`transport`](super::transport)), which
//! fill in a [`Capabilities`] ([`Capabilities::probe_with`]); here is only
//! the table of transports and the choice.
//!
//! The order of preference (docs/ARCHITECTURE.md, "Driver selection"):
//!
//! | latency | reliability | first choice → fallbacks |
//! |---|---|---|
//! | critical | best effort | DPDK → AF_XDP → io_uring busy-poll UDP → epoll busy-poll UDP |
//! | critical | reliable | RDMA RC → reliable datagrams over DPDK → over AF_XDP → io_uring TCP → epoll TCP → reliable datagrams over kernel busy-poll UDP |
//! | normal | best effort, resources = poll | DPDK → AF_XDP (only for an endpoint bound on the bypass stack's address) → io_uring UDP → epoll UDP |
//! | normal | either | io_uring (UDP or TCP) → epoll |
//! | any, resources = low | | kernel drivers only, never busy-poll |
//!
//! ```
//! use insane_net::qos::policy::{Availability, Capabilities, TransportKind, choose};
//! use insane_net::qos::Qos;
//!
//! let caps = Capabilities {
//!     dpdk: Availability::NotConfigured,
//!     xdp: Availability::Unavailable("interface eth1 not found".into()),
//!     ..Capabilities::kernel_only()
//! };
//! let choice = choose(&Qos::builder().critical().best_effort().poll().build(), &caps).unwrap();
//! assert_eq!(choice.transport, TransportKind::UringUdpBusyPoll);
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
        }
    }
}

/// A way to carry a flow: what [`Endpoint::driver`](super::Endpoint::driver)
/// returns. Each kind belongs to one technology (a module of
/// [`transport`](super::transport)), which binds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransportKind {
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
    /// insane's reliable datagrams (`insane-reliable`) over the DPDK UDP
    /// stack.
    DpdkReliable,
    /// insane's reliable datagrams over the AF_XDP UDP stack.
    XdpReliable,
    /// insane's reliable datagrams over kernel busy-poll UDP (io_uring or
    /// epoll, the core's driver).
    UdpReliable,
    /// Kernel TCP on io_uring.
    UringTcp,
    /// Kernel TCP on epoll.
    EpollTcp,
}

/// The old name of [`TransportKind`] (it clashed with the
/// [`Transport`](super::Transport) trait).
#[deprecated(since = "0.1.0", note = "renamed to TransportKind")]
pub type Transport = TransportKind;

impl TransportKind {
    /// Whether the core carrying this transport busy-polls.
    pub fn busy_polls(self) -> bool {
        matches!(
            self,
            TransportKind::DpdkUdp
                | TransportKind::XdpUdp
                | TransportKind::UringUdpBusyPoll
                | TransportKind::EpollUdpBusyPoll
                | TransportKind::RdmaRc
                | TransportKind::DpdkReliable
                | TransportKind::XdpReliable
                | TransportKind::UdpReliable
        )
    }

    /// Whether the transport is reliable (ordered, no loss).
    pub fn is_reliable(self) -> bool {
        matches!(
            self,
            TransportKind::RdmaRc
                | TransportKind::DpdkReliable
                | TransportKind::XdpReliable
                | TransportKind::UdpReliable
                | TransportKind::UringTcp
                | TransportKind::EpollTcp
        )
    }

    /// The lowest round trip of a small message this kind has shown on
    /// the project's machines (docs/ARCHITECTURE.md, "Facts measured"),
    /// or `None` where it was never measured (RDMA, reliable datagrams
    /// over a bypass stack). A deadline QoS below it is refused at bind:
    /// no scheduling can make a message faster than its path.
    ///
    /// ```
    /// use insane_net::qos::TransportKind;
    /// assert!(TransportKind::UringUdpBusyPoll.rtt_floor().unwrap()
    ///     < TransportKind::UringUdp.rtt_floor().unwrap());
    /// ```
    pub fn rtt_floor(self) -> Option<std::time::Duration> {
        use std::time::Duration;
        let ns = match self {
            // DPDK memif two-process ping-pong, ~330-550 ns p50.
            TransportKind::DpdkUdp => 330,
            // Raw AF_XDP echo over veth between namespaces, ~4.2 us p50.
            TransportKind::XdpUdp => 4_200,
            // Busy-polled kernel UDP on loopback, ~5-6 us.
            TransportKind::UringUdpBusyPoll | TransportKind::EpollUdpBusyPoll => 5_000,
            // UDP on loopback with a sleeping waiter, ~50-58 us.
            TransportKind::UringUdp | TransportKind::EpollUdp => 50_000,
            // Endpoint TCP ping-pong on loopback, 16.5-18.9 us.
            TransportKind::UringTcp | TransportKind::EpollTcp => 16_500,
            // Reliable datagrams over busy-poll UDP, 25.7-31.6 us.
            TransportKind::UdpReliable => 25_700,
            TransportKind::RdmaRc | TransportKind::DpdkReliable | TransportKind::XdpReliable => {
                return None;
            }
        };
        Some(Duration::from_nanos(ns))
    }

    /// The technology's name in `explain()` texts (`dpdk`, `af_xdp`, ...).
    pub fn technology(self) -> &'static str {
        match self {
            TransportKind::DpdkUdp | TransportKind::DpdkReliable => "dpdk",
            TransportKind::XdpUdp | TransportKind::XdpReliable => "af_xdp",
            TransportKind::UdpReliable => "kernel udp",
            TransportKind::UringUdpBusyPoll | TransportKind::UringUdp | TransportKind::UringTcp => {
                "io_uring"
            }
            TransportKind::EpollUdpBusyPoll | TransportKind::EpollUdp | TransportKind::EpollTcp => {
                "epoll"
            }
            TransportKind::RdmaRc => "rdma",
        }
    }

    /// What `caps` says of this kind's technology.
    pub fn availability(self, caps: &Capabilities) -> &Availability {
        match self {
            TransportKind::DpdkUdp | TransportKind::DpdkReliable => &caps.dpdk,
            TransportKind::XdpUdp | TransportKind::XdpReliable => &caps.xdp,
            // Over the core's kernel driver, whichever it is.
            TransportKind::UdpReliable if caps.uring.is_available() => &caps.uring,
            TransportKind::UdpReliable => &caps.epoll,
            TransportKind::UringUdpBusyPoll | TransportKind::UringUdp | TransportKind::UringTcp => {
                &caps.uring
            }
            TransportKind::EpollUdpBusyPoll | TransportKind::EpollUdp | TransportKind::EpollTcp => {
                &caps.epoll
            }
            TransportKind::RdmaRc => &caps.rdma,
        }
    }

    /// As [`availability`](Self::availability), to record a probe's or a
    /// failed bind's verdict.
    pub fn availability_mut(self, caps: &mut Capabilities) -> &mut Availability {
        match self {
            TransportKind::DpdkUdp | TransportKind::DpdkReliable => &mut caps.dpdk,
            TransportKind::XdpUdp | TransportKind::XdpReliable => &mut caps.xdp,
            TransportKind::UdpReliable if caps.uring.is_available() => &mut caps.uring,
            TransportKind::UdpReliable => &mut caps.epoll,
            TransportKind::UringUdpBusyPoll | TransportKind::UringUdp | TransportKind::UringTcp => {
                &mut caps.uring
            }
            TransportKind::EpollUdpBusyPoll | TransportKind::EpollUdp | TransportKind::EpollTcp => {
                &mut caps.epoll
            }
            TransportKind::RdmaRc => &mut caps.rdma,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::DpdkUdp => "DPDK UDP",
            TransportKind::XdpUdp => "AF_XDP UDP",
            TransportKind::UringUdpBusyPoll => "io_uring busy-poll UDP",
            TransportKind::EpollUdpBusyPoll => "epoll busy-poll UDP",
            TransportKind::UringUdp => "io_uring UDP",
            TransportKind::EpollUdp => "epoll UDP",
            TransportKind::RdmaRc => "RDMA RC",
            TransportKind::DpdkReliable => "DPDK reliable datagrams",
            TransportKind::XdpReliable => "AF_XDP reliable datagrams",
            TransportKind::UdpReliable => "UDP reliable datagrams",
            TransportKind::UringTcp => "io_uring TCP",
            TransportKind::EpollTcp => "epoll TCP",
        })
    }
}

/// The transports that may serve `qos`, best first.
pub fn preference(qos: &Qos) -> &'static [TransportKind] {
    use TransportKind::*;
    match (qos.latency, qos.reliability, qos.resources) {
        (Latency::Critical, Reliability::BestEffort, Resources::Poll) => {
            &[DpdkUdp, XdpUdp, UringUdpBusyPoll, EpollUdpBusyPoll]
        }
        // Kernel TCP before reliable datagrams over kernel UDP: faster in
        // a loopback ping-pong of 32 B messages through `Endpoint` on both
        // drivers (p50 io_uring TCP 16.5-18.9 us vs 25.7-31.6 us, epoll
        // TCP 16.6-17.8 us vs 29.3-30.4 us; `examples/reliable_pingpong.rs`).
        // Reliable datagrams over kernel UDP stay reachable with
        // `TransportConfig::prefer`.
        (Latency::Critical, Reliability::Reliable, Resources::Poll) => &[
            RdmaRc,
            DpdkReliable,
            XdpReliable,
            UringTcp,
            EpollTcp,
            UdpReliable,
        ],
        // A bypass stack serves only its own address (`Endpoint::bind`
        // marks it unavailable for any other): a flow that may poll and is
        // bound there shares the stack with the critical flows, as bulk
        // traffic (its class comes from its latency); bound elsewhere it
        // gets kernel UDP, without busy-polling.
        (Latency::Normal, Reliability::BestEffort, Resources::Poll) => {
            &[DpdkUdp, XdpUdp, UringUdp, EpollUdp]
        }
        (_, Reliability::BestEffort, _) => &[UringUdp, EpollUdp],
        (_, Reliability::Reliable, _) => &[UringTcp, EpollTcp],
    }
}

/// The transport chosen for a flow, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// What carries the flow.
    pub transport: TransportKind,
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
    choose_preferring(qos, caps, None)
}

/// As [`choose`], trying `prefer` first when it is one of
/// [`preference`]`(qos)` (a kind that cannot serve `qos` is ignored: a
/// preference never weakens the QoS). The explanation says "(preferred)".
///
/// ```
/// use insane_net::qos::policy::{Capabilities, TransportKind, choose_preferring};
/// use insane_net::qos::Qos;
/// let qos = Qos::builder().critical().reliable().poll().build();
/// let caps = Capabilities::kernel_only();
/// let c = choose_preferring(&qos, &caps, Some(TransportKind::UdpReliable)).unwrap();
/// assert_eq!(c.transport, TransportKind::UdpReliable);
/// assert!(c.explain.starts_with("latency=critical, reliable, resources=poll -> UDP reliable datagrams (preferred)"));
/// // Best effort cannot be preferred for a reliable flow.
/// let c = choose_preferring(&qos, &caps, Some(TransportKind::UringUdp)).unwrap();
/// assert_eq!(c.transport, TransportKind::UringTcp);
/// ```
///
/// # Errors
/// As [`choose`].
pub fn choose_preferring(
    qos: &Qos,
    caps: &Capabilities,
    prefer: Option<TransportKind>,
) -> io::Result<Choice> {
    let order = preference(qos);
    let prefer = prefer.filter(|p| order.contains(p));
    let mut passed: Vec<String> = Vec::new();
    for &transport in prefer
        .iter()
        .chain(order.iter().filter(|&&k| Some(k) != prefer))
    {
        match transport.availability(caps).why_not() {
            None => {
                let mut explain = format!("{qos} -> {transport}");
                if prefer == Some(transport) {
                    explain.push_str(" (preferred)");
                }
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
        assert_eq!(c.transport, TransportKind::DpdkUdp);
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
        assert_eq!(c.transport, TransportKind::XdpUdp);
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
        assert_eq!(c.transport, TransportKind::UringUdp);
        assert!(!c.transport.busy_polls());
    }

    #[test]
    fn reliable_critical_prefers_reliable_datagrams_over_bypass_then_io_uring_tcp() {
        let qos = Qos::builder().critical().reliable().poll().build();
        use TransportKind::*;
        assert_eq!(
            preference(&qos),
            &[
                RdmaRc,
                DpdkReliable,
                XdpReliable,
                UringTcp,
                EpollTcp,
                UdpReliable
            ]
        );
        let caps = Capabilities {
            xdp: Availability::Available("veth0 queue 0, native, copy".into()),
            ..Capabilities::kernel_only()
        };
        let c = choose(&qos, &caps).unwrap();
        assert_eq!(c.transport, XdpReliable);
        assert_eq!(
            c.explain,
            "latency=critical, reliable, resources=poll -> AF_XDP reliable datagrams \
             (rdma: no RDMA device; dpdk: not configured)"
        );
        // Kernel only: io_uring TCP (faster than reliable datagrams over
        // kernel UDP on loopback).
        let c = choose(&qos, &Capabilities::kernel_only()).unwrap();
        assert_eq!(c.transport, UringTcp);
        assert_eq!(
            c.explain,
            "latency=critical, reliable, resources=poll -> io_uring TCP \
             (rdma: no RDMA device; dpdk: not configured; af_xdp: not configured)"
        );
    }

    #[test]
    fn reliable_datagrams_over_kernel_udp_when_preferred_follow_the_cores_driver() {
        let qos = Qos::builder().critical().reliable().poll().build();
        let caps = Capabilities {
            uring: Availability::Unavailable("this core runs the epoll driver".into()),
            ..Capabilities::kernel_only()
        };
        // Not preferred: the core's TCP (measured faster on loopback).
        let c = choose(&qos, &caps).unwrap();
        assert_eq!(c.transport, TransportKind::EpollTcp);
        let udp = Some(TransportKind::UdpReliable);
        let c = choose_preferring(&qos, &caps, udp).unwrap();
        assert_eq!(c.transport, TransportKind::UdpReliable);
        assert_eq!(
            c.explain,
            "latency=critical, reliable, resources=poll -> UDP reliable datagrams (preferred)"
        );
        assert_eq!(TransportKind::UdpReliable.availability(&caps), &caps.epoll);
        // A preferred kind that is missing is passed, like any other.
        let none = Capabilities {
            epoll: Availability::Unavailable("seccomp".into()),
            ..caps
        };
        let err = choose_preferring(&qos, &none, udp).unwrap_err();
        assert!(err.to_string().contains("kernel udp: seccomp"), "{err}");
    }

    #[test]
    fn epoll_when_io_uring_is_disabled() {
        let caps = Capabilities {
            uring: Availability::Unavailable("io_uring_setup: Operation not permitted".into()),
            ..Capabilities::kernel_only()
        };
        let c = choose(&Qos::default(), &caps).unwrap();
        assert_eq!(c.transport, TransportKind::EpollTcp);
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
    fn a_normal_flow_that_may_poll_takes_the_bypass_stack_only_where_it_is() {
        let qos = Qos::builder().best_effort().poll().build();
        let caps = Capabilities {
            xdp: Availability::Available("veth0 queue 0, native, copy".into()),
            ..Capabilities::kernel_only()
        };
        // Bound on the stack's address: the stack, as a bulk flow.
        assert_eq!(
            choose(&qos, &caps).unwrap().transport,
            TransportKind::XdpUdp
        );
        // Bound elsewhere (`Endpoint::bind` marks the stack unavailable):
        // kernel UDP, which does not busy-poll for a normal flow.
        let elsewhere = Capabilities {
            xdp: Availability::Unavailable("127.0.0.1 is not 10.0.0.1".into()),
            ..caps
        };
        let c = choose(&qos, &elsewhere).unwrap();
        assert_eq!(c.transport, TransportKind::UringUdp);
        assert!(!c.transport.busy_polls());
    }

    #[test]
    fn every_qos_has_a_kernel_fallback() {
        for latency in [Latency::Critical, Latency::Normal] {
            for reliability in [Reliability::BestEffort, Reliability::Reliable] {
                for resources in [Resources::Poll, Resources::Low] {
                    let qos = Qos::new(latency, reliability, resources);
                    // Every list holds an epoll kind (epoll is always
                    // there) of the QoS's reliability.
                    let epoll = preference(&qos)
                        .iter()
                        .rfind(|k| {
                            matches!(
                                k,
                                TransportKind::EpollUdp
                                    | TransportKind::EpollUdpBusyPoll
                                    | TransportKind::EpollTcp
                            )
                        })
                        .copied();
                    let epoll = epoll.unwrap_or_else(|| panic!("{qos} has no epoll fallback"));
                    assert_eq!(epoll.is_reliable(), reliability == Reliability::Reliable);
                    assert!(
                        preference(&qos)
                            .iter()
                            .all(|k| k.is_reliable() == (reliability == Reliability::Reliable)),
                        "{qos}"
                    );
                    if resources == Resources::Low {
                        assert!(preference(&qos).iter().all(|t| !t.busy_polls()), "{qos}");
                    }
                }
            }
        }
    }
}
