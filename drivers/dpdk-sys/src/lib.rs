//! Raw bindings to DPDK for insane, made here because the crates.io
//! `dpdk-sys` is from 2017: `bindgen` output over an allow-list (EAL,
//! ethdev, mbuf, mempool, ring, errno, lcore) of the headers `pkg-config
//! libdpdk` points at, and a C shim (`src/shim.c`) exporting DPDK's
//! `static inline` functions and macros as `insane_*` symbols
//! ([`insane_rte_eth_rx_burst`], [`insane_rte_pktmbuf_alloc`],
//! [`insane_rte_errno`], ...).
//!
//! Use the safe wrapper `insane-dpdk`; this crate is only its FFI layer.
//!
//! # Linking
//! Besides the libraries of `pkg-config --libs libdpdk`, the build links
//! the poll-mode drivers this project uses (`net_ring`, `net_memif`,
//! `net_af_packet`, `net_null`), which pkg-config omits because Debian
//! loads PMDs as plugins; [`PMD_LIBRARIES`] lists their paths so the
//! wrapper can also load them explicitly (`-d`) when the linker dropped
//! them as unused (`--as-needed`).
//!
//! # Without libdpdk
//! When pkg-config cannot find libdpdk at build time the crate builds in
//! *unavailable* mode: [`AVAILABLE`] is `false`, [`UNAVAILABLE`] says what
//! to install, and there are no bindings. A build with
//! `INSANE_REQUIRE_DPDK=1` fails instead.
//!
//! ```
//! if insane_dpdk_sys::AVAILABLE {
//!     println!("built against DPDK {}", insane_dpdk_sys::BUILD_VERSION);
//! } else {
//!     println!("{}", insane_dpdk_sys::UNAVAILABLE);
//! }
//! ```

/// Whether this build has DPDK (libdpdk was found at build time).
pub const AVAILABLE: bool = cfg!(not(insane_dpdk_unavailable));

/// The error text of every DPDK entry point in a build without libdpdk.
pub const UNAVAILABLE: &str = "DPDK not available: insane was built without libdpdk (install libdpdk-dev pkg-config libclang-dev and rebuild)";

#[cfg(not(insane_dpdk_unavailable))]
#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    unsafe_op_in_unsafe_fn,
    missing_docs,
    rust_2018_idioms,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::pedantic
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

#[cfg(not(insane_dpdk_unavailable))]
pub use bindings::*;

#[cfg(not(insane_dpdk_unavailable))]
include!(concat!(env!("OUT_DIR"), "/meta.rs"));

/// The libdpdk version pkg-config reported at build time (none here).
#[cfg(insane_dpdk_unavailable)]
pub const BUILD_VERSION: &str = "";

/// Paths of the PMD libraries linked explicitly (none here).
#[cfg(insane_dpdk_unavailable)]
pub const PMD_LIBRARIES: &[&str] = &[];
