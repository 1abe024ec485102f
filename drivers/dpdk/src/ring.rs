//! [`ring_pair`]: two `net_ring` ports joined like the two ends of a
//! cable, inside one process.

use std::ffi::CString;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use insane_dpdk_sys as sys;

use crate::Eal;
use crate::error::{Error, Result};
use crate::mempool::not_initialised;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Creates two `net_ring` ports (`rte_eth_from_rings`) over two
/// single-producer/single-consumer rings of `size` slots (a power of two):
/// what the first port transmits the second receives and the other way
/// round. Returns their port ids (open them with
/// [`Port::open`](crate::Port::open)). Ring ports have no MAC address of
/// their own worth using: set one with [`PortConfig::mac`](crate::PortConfig::mac).
///
/// # Errors
/// The EAL is not initialised; `size` is not a power of two; DPDK cannot
/// create the rings or the ports (out of memory, too many ports).
///
/// # Examples
/// ```no_run
/// use insane_dpdk::{Eal, Port, PortConfig, ring_pair};
/// Eal::init(["--no-pci", "--no-huge", "-m", "256", "--file-prefix=doc-ring"])?;
/// let (a, b) = ring_pair(1024)?;
/// let mut a = Port::open(a, &PortConfig { mac: Some([2, 0, 0, 0, 0, 1]), ..Default::default() })?;
/// let mut b = Port::open(b, &PortConfig { mac: Some([2, 0, 0, 0, 0, 2]), ..Default::default() })?;
/// # Ok::<(), insane_dpdk::Error>(())
/// ```
pub fn ring_pair(size: u32) -> Result<(u16, u16)> {
    ring_pair_with_queues(size, 1)
}

/// Like [`ring_pair`], with `queues` queue pairs on each port: what the
/// first port transmits on its queue `i` the second receives on its queue
/// `i`, and the other way round (the sender chooses the receiver's queue,
/// as a `net_memif` or `net_tap` peer does). Open the ports with
/// [`PortConfig::queues`](crate::PortConfig::queues) set to `queues`.
///
/// # Errors
/// As [`ring_pair`]; `queues` is 0 or more than DPDK's ring PMD takes
/// (16).
pub fn ring_pair_with_queues(size: u32, queues: u16) -> Result<(u16, u16)> {
    if Eal::get().is_none() {
        return Err(not_initialised("creating a ring pair"));
    }
    if !size.is_power_of_two() {
        return Err(Error::other(
            io::ErrorKind::InvalidInput,
            format!("ring size {size} is not a power of two"),
        ));
    }
    if !(1..=16).contains(&queues) {
        return Err(Error::other(
            io::ErrorKind::InvalidInput,
            format!("{queues} queues: a ring pair has 1 to 16"),
        ));
    }
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ring = |dir: &str, q: u16| -> Result<*mut sys::rte_ring> {
        let name = CString::new(format!("insane-r{n}{dir}{q}"))
            .map_err(|_| Error::other(io::ErrorKind::InvalidInput, "ring name"))?;
        // SAFETY: the EAL is initialised; the name is NUL-terminated and
        // copied by DPDK.
        let r = unsafe {
            sys::rte_ring_create(
                name.as_ptr(),
                size,
                sys::rte_socket_id() as i32,
                sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ,
            )
        };
        if r.is_null() {
            return Err(Error::rte_errno(format!(
                "rte_ring_create(insane-r{n}{dir}{q}, {size})"
            )));
        }
        Ok(r)
    };
    let mut ab = Vec::with_capacity(usize::from(queues));
    let mut ba = Vec::with_capacity(usize::from(queues));
    for q in 0..queues {
        ab.push(ring("ab", q)?);
        ba.push(ring("ba", q)?);
    }
    let port =
        |name: String, rx: &[*mut sys::rte_ring], tx: &[*mut sys::rte_ring]| -> Result<u16> {
            let c = CString::new(name.as_str())
                .map_err(|_| Error::other(io::ErrorKind::InvalidInput, "port name"))?;
            // SAFETY: the rings are live (never freed: the ports use them for
            // the rest of the process); each slice holds `queues` rings and is
            // copied by the PMD.
            let rc = unsafe {
                sys::rte_eth_from_rings(
                    c.as_ptr(),
                    rx.as_ptr(),
                    u32::from(queues),
                    tx.as_ptr(),
                    u32::from(queues),
                    sys::rte_socket_id(),
                )
            };
            if rc < 0 {
                return Err(Error::rte_errno(format!("rte_eth_from_rings({name})")));
            }
            u16::try_from(rc)
                .map_err(|_| Error::other(io::ErrorKind::Other, "port id out of range"))
        };
    let a = port(format!("net_ring_insane{n}a"), &ba, &ab)?;
    let b = port(format!("net_ring_insane{n}b"), &ab, &ba)?;
    Ok((a, b))
}
