//! insane's DPDK driver: a safe layer over [`insane_dpdk_sys`].
//!
//! * [`Eal`]: `rte_eal_init` once per process from a list of arguments
//!   (the `[dpdk] eal` configuration), errors as `rte_errno` messages; a
//!   bad argument is an error, not an abort.
//! * [`Port`]: a port configured with one RX/TX queue pair per polling
//!   core (RSS over IPv4/UDP when there are several and the device has
//!   it), descriptor counts adjusted to the device, MTU, promiscuous mode,
//!   start with retries (a `net_memif` client started before its server).
//!   [`PortInfo`] names the PMD and lists its offload capabilities.
//! * [`Queue`]: one queue pair with its own [`Mempool`]; `rx_burst` hands
//!   over [`Mbuf`]s, `enqueue` batches transmissions ([`BURST`] per
//!   `tx_burst`), `flush` sends what is left.
//! * [`Mbuf`]: an owned single-segment mbuf: the payload sits in place
//!   after 128 bytes of headroom, headers are prepended into it, and it
//!   goes back to its pool on drop, from any thread.
//!
//! Every entry point starts at [`Eal::init`]. In a build without libdpdk
//! (see [`insane_dpdk_sys`]) the same API exists and every entry point
//! returns [`Error::unavailable`] ("DPDK not available: insane was built
//! without libdpdk ..."); values of the other types cannot exist there.
//!
//! ```no_run
//! use insane_dpdk::{Eal, Port, PortConfig};
//!
//! Eal::init(["-l", "0", "--no-pci", "--no-huge", "-m", "256",
//!            "--file-prefix=doc-lib", "--vdev=net_ring0"])?;
//! let mut port = Port::open(0, &PortConfig::default())?;
//! println!("{} on {}", port.info().name, port.info().driver);
//! let mut queue = port.take_queue(0).unwrap();
//! let mut frame = queue.alloc().unwrap();
//! frame.extend_from_slice(&[0xff; 60]);
//! queue.enqueue(frame).unwrap();
//! queue.flush();
//! // net_ring loops a port's TX ring back to its RX ring.
//! let got = queue.rx_burst(32, |m| assert_eq!(m.len(), 60));
//! assert_eq!(got, 1);
//! # Ok::<(), insane_dpdk::Error>(())
//! ```
//!
//! Facts from this project's machines (Debian libdpdk 22.11): no PCI
//! devices (`--no-pci`), `--no-huge -m 256` works without huge pages,
//! `rte_eal_init` prints its usage and fails with `EINVAL` on a bad
//! option but only logs a `--vdev` whose probe fails (so [`Port::open`]
//! reports the missing port), rustc's `--as-needed` drops the linked PMD
//! libraries (hence the `-d` loads in [`Eal::init`]).

#![warn(missing_docs)]

mod args;
mod error;
mod types;

#[cfg(insane_dpdk_available)]
mod eal;
#[cfg(insane_dpdk_available)]
mod flow;
#[cfg(insane_dpdk_available)]
mod mbuf;
#[cfg(insane_dpdk_available)]
mod mempool;
#[cfg(insane_dpdk_available)]
mod port;
#[cfg(insane_dpdk_available)]
mod ring;

#[cfg(not(insane_dpdk_available))]
mod unavailable;

pub use args::{memif_eal_args, vdev_eal_args};
pub use error::{Error, Result};
pub use types::{Link, MempoolConfig, PortConfig, PortInfo, PortStats, QueueStats};

#[cfg(insane_dpdk_available)]
pub use eal::Eal;
#[cfg(insane_dpdk_available)]
pub use flow::FlowRule;
#[cfg(insane_dpdk_available)]
pub use mbuf::Mbuf;
#[cfg(insane_dpdk_available)]
pub use mempool::Mempool;
#[cfg(insane_dpdk_available)]
pub use port::{BURST, Port, Queue, probe};
#[cfg(insane_dpdk_available)]
pub use ring::{ring_pair, ring_pair_with_queues};

#[cfg(not(insane_dpdk_available))]
pub use unavailable::{
    BURST, Eal, FlowRule, Mbuf, Mempool, Port, Queue, probe, ring_pair, ring_pair_with_queues,
};

/// Whether this build has DPDK.
pub const AVAILABLE: bool = cfg!(insane_dpdk_available);
