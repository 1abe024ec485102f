//! QoS hints: what a flow needs, stated by the application, so the runtime
//! can pick the technology that serves it best on this host.
//!
//! A [`Qos`] has three independent axes:
//!
//! | axis | values | what it promises |
//! |---|---|---|
//! | [`Latency`] | `Critical`, `Normal` | `Critical`: the lowest latency this host can give — kernel bypass (DPDK, AF_XDP) first, else busy-polled kernel sockets; costs a spinning core. `Normal`: kernel sockets with interrupt-driven wake-ups; with `Poll`, bound on a bypass stack's address, that stack, as bulk traffic next to its critical flows. |
//! | [`Reliability`] | `BestEffort`, `Reliable` | `BestEffort`: datagrams; one may be lost, none is duplicated or corrupted, a message over the path's payload limit is an error. `Reliable`: every message arrives once, intact and in order, or the endpoint reports an error. |
//! | [`Resources`] | `Poll`, `Low` | `Poll`: the flow may busy-poll a core. `Low`: never spin; kernel drivers only. `Low` overrides `Critical`'s spinning. |
//!
//! and an optional **deadline** ([`QosBuilder::deadline`]): messages
//! scheduled earliest deadline first, misses counted.
//!
//! The default, `Qos::default()`, is `Normal`, `Reliable`, `Low`: what a
//! plain TCP socket gives, without burning CPU.
//!
//! ```
//! use insane_net::qos::{Latency, Qos, Reliability, Resources};
//! let telemetry = Qos::builder().latency(Latency::Critical).best_effort().poll().build();
//! assert_eq!(telemetry.reliability, Reliability::BestEffort);
//! assert_eq!(telemetry.resources, Resources::Poll);
//! assert_eq!(Qos::default(), Qos::new(Latency::Normal, Reliability::Reliable, Resources::Low));
//! ```

pub mod channel;
mod core_frame;
mod endpoint;
pub mod policy;
mod rxbuf;
pub mod sched;
pub mod transport;
mod txbuf;

pub use channel::{Publisher, Session, SessionConfig, Subscriber, channel_id};
// The old names of `Publisher` and `Subscriber`, deprecated for one release.
#[allow(deprecated)]
pub use channel::{Sink, Source};
pub use endpoint::Endpoint;
pub use policy::TransportKind;
pub use rxbuf::{RxBuf, debug_copy_count};
pub use transport::{Transport, TransportConfig};
pub use txbuf::{CapacityError, TxBuf};

/// The userspace-stack transport, now [`transport::stack`]; this path
/// stays for one release.
#[doc(hidden)]
pub use transport::stack as stack_transport;

/// The DPDK technology, now [`transport::dpdk`]; this path stays for one
/// release.
#[cfg(feature = "dpdk")]
#[doc(hidden)]
pub use transport::dpdk;

use std::fmt;
use std::time::Duration;

/// How fast the flow's messages must get through: `Critical` (bypass the
/// kernel if the host can, busy-poll) or `Normal` (kernel sockets,
/// sleeping waits). The same type as the executor's task class
/// ([`insane_runtime::task::Latency`]): a task that serves a critical
/// endpoint becomes a critical task (see [`Endpoint`]'s "Priority").
pub use insane_runtime::task::Latency;

/// What may be lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// Datagrams: a message may be lost, never corrupted or duplicated.
    BestEffort,
    /// Every message arrives once, intact, in order — or an error says why.
    #[default]
    Reliable,
}

/// What the flow may cost the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Resources {
    /// The flow may keep a core busy-polling.
    Poll,
    /// Never spin: kernel drivers with sleeping waits only.
    #[default]
    Low,
}

/// What a flow needs. See the [module docs](self) for what each value
/// promises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Qos {
    /// How fast.
    pub latency: Latency,
    /// What may be lost.
    pub reliability: Reliability,
    /// What it may cost.
    pub resources: Resources,
    /// The deadline class: each message should leave this host within
    /// this time of its `send` ([`QosBuilder::deadline`]); `None`: no
    /// deadline.
    pub deadline: Option<Duration>,
}

impl Qos {
    /// A QoS from its three axes.
    pub const fn new(latency: Latency, reliability: Reliability, resources: Resources) -> Self {
        Self {
            latency,
            reliability,
            resources,
            deadline: None,
        }
    }

    /// A builder starting from [`Qos::default`].
    pub fn builder() -> QosBuilder {
        QosBuilder(Qos::default())
    }

    /// Whether this flow is allowed to busy-poll (`resources = poll`).
    pub fn may_spin(&self) -> bool {
        self.resources == Resources::Poll
    }
}

impl fmt::Display for Qos {
    /// `latency=critical, best-effort, resources=poll` (and
    /// `, deadline=100µs` with a deadline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let latency = self.latency.as_str();
        let reliability = match self.reliability {
            Reliability::BestEffort => "best-effort",
            Reliability::Reliable => "reliable",
        };
        let resources = match self.resources {
            Resources::Poll => "poll",
            Resources::Low => "low",
        };
        write!(f, "latency={latency}, {reliability}, resources={resources}")?;
        if let Some(d) = self.deadline {
            write!(f, ", deadline={d:?}")?;
        }
        Ok(())
    }
}

/// Builds a [`Qos`] step by step.
#[derive(Clone, Copy, Debug)]
pub struct QosBuilder(Qos);

impl QosBuilder {
    /// Sets the latency class.
    pub fn latency(mut self, latency: Latency) -> Self {
        self.0.latency = latency;
        self
    }

    /// Sets the reliability.
    pub fn reliability(mut self, reliability: Reliability) -> Self {
        self.0.reliability = reliability;
        self
    }

    /// Sets the resource use.
    pub fn resources(mut self, resources: Resources) -> Self {
        self.0.resources = resources;
        self
    }

    /// The deadline class: every message should leave this host within
    /// `deadline` of its `send`. Implies `latency(Latency::Critical)`.
    /// The core's transmit scheduler sends deadline flows' messages
    /// earliest deadline first, after critical flows and before bulk ones
    /// ([`sched`]); a message handed to the transport after its deadline
    /// is counted ([`Endpoint::missed_deadlines`]), never dropped. `bind`
    /// refuses a deadline below the chosen path's round-trip floor
    /// ([`TransportKind::rtt_floor`]) and `explain()` states both.
    ///
    /// ```
    /// use std::time::Duration;
    /// use insane_net::qos::{Latency, Qos};
    /// let control = Qos::builder().deadline(Duration::from_micros(200)).best_effort().poll().build();
    /// assert_eq!(control.latency, Latency::Critical);
    /// assert_eq!(control.deadline, Some(Duration::from_micros(200)));
    /// assert!(control.to_string().ends_with("deadline=200µs"));
    /// ```
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.0.deadline = Some(deadline);
        self.latency(Latency::Critical)
    }

    /// `latency(Latency::Critical)`.
    pub fn critical(self) -> Self {
        self.latency(Latency::Critical)
    }

    /// `reliability(Reliability::BestEffort)`.
    pub fn best_effort(self) -> Self {
        self.reliability(Reliability::BestEffort)
    }

    /// `reliability(Reliability::Reliable)`.
    pub fn reliable(self) -> Self {
        self.reliability(Reliability::Reliable)
    }

    /// `resources(Resources::Poll)`.
    pub fn poll(self) -> Self {
        self.resources(Resources::Poll)
    }

    /// `resources(Resources::Low)`.
    pub fn low(self) -> Self {
        self.resources(Resources::Low)
    }

    /// The finished [`Qos`].
    pub fn build(self) -> Qos {
        self.0
    }
}
