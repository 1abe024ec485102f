//! Packet mempools: where mbufs come from and go back to.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use insane_dpdk_sys as sys;

use crate::Eal;
use crate::error::{Error, Result};
use crate::mbuf::Mbuf;
use crate::types::MempoolConfig;

/// A packet mempool (`rte_pktmbuf_pool_create`), shared by handles.
///
/// Mbufs from it ([`Mbuf`]) may be freed from any thread: `rte_pktmbuf_free`
/// puts them back through the pool's ops, which for DPDK's default
/// `ring_mp_mc` ops is a multi-producer ring; an EAL thread (the main
/// lcore, or a thread given an lcore by [`Eal::register_thread`]) first
/// uses its per-lcore cache, any other thread (`rte_lcore_id() ==
/// LCORE_ID_ANY`) goes to the ring directly. What must not happen is two
/// threads with the *same* lcore id, which this crate never creates.
///
/// The pool is freed when the last handle goes, if none of its mbufs is
/// still out (`in_use_count() == 0`); otherwise it is left allocated for
/// the rest of the process (logged), so an mbuf that outlives its port
/// and pool can still be freed safely.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<Inner>,
}

struct Inner {
    raw: NonNull<sys::rte_mempool>,
    name: String,
    config: MempoolConfig,
}

// SAFETY: a mempool is process-wide DPDK state whose get/put/count
// operations are thread safe (multi-producer/multi-consumer ring ops; see
// the type's documentation); the handle holds only its address.
unsafe impl Send for Inner {}
// SAFETY: as above; `&Inner` only allows those thread-safe operations.
unsafe impl Sync for Inner {}

/// Makes pool names unique in the process (DPDK names are global).
static NEXT_POOL: AtomicU64 = AtomicU64::new(0);

impl Mempool {
    /// Creates a pool of `config.mbufs` mbufs on the calling thread's NUMA
    /// socket, named `insane-<tag>-<n>` (DPDK pool names are global and at
    /// most 25 bytes; `tag` is shortened to fit).
    ///
    /// # Errors
    /// The EAL is not initialised; DPDK cannot create the pool (out of
    /// memory: `-m` too small, or sizes DPDK rejects, e.g. a cache larger
    /// than `mbufs / 1.5`).
    ///
    /// # Examples
    /// ```no_run
    /// use insane_dpdk::{Eal, Mempool, MempoolConfig};
    /// Eal::init(["--no-pci", "--no-huge", "-m", "128", "--file-prefix=doc-pool"])?;
    /// let pool = Mempool::create("rx", &MempoolConfig::default())?;
    /// let mut m = pool.alloc().expect("a fresh pool has mbufs");
    /// assert!(m.extend_from_slice(b"hello"));
    /// assert_eq!(pool.in_use_count(), 1);
    /// drop(m);
    /// assert_eq!(pool.in_use_count(), 0);
    /// # Ok::<(), insane_dpdk::Error>(())
    /// ```
    pub fn create(tag: &str, config: &MempoolConfig) -> Result<Self> {
        if Eal::get().is_none() {
            return Err(not_initialised("creating a mempool"));
        }
        let n = NEXT_POOL.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(8)
            .collect();
        let name = format!("insane-{tag}-{n}");
        let c_name = CString::new(name.as_str())
            .map_err(|_| Error::other(io::ErrorKind::InvalidInput, "pool name contains NUL"))?;
        // SAFETY: the EAL is initialised; the name is NUL-terminated (DPDK
        // copies it); the sizes are checked by DPDK.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(
                c_name.as_ptr(),
                config.mbufs,
                config.cache,
                0,
                config.data_room,
                sys::rte_socket_id() as i32,
            )
        };
        let raw = NonNull::new(raw).ok_or_else(|| {
            Error::rte_errno(format!(
                "rte_pktmbuf_pool_create({name}, {} mbufs, cache {}, data room {})",
                config.mbufs, config.cache, config.data_room
            ))
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                raw,
                name,
                config: *config,
            }),
        })
    }

    /// The pool's DPDK name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its sizes.
    pub fn config(&self) -> &MempoolConfig {
        &self.inner.config
    }

    /// Mbufs in the pool (free), per-lcore caches included
    /// (`rte_mempool_avail_count`).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: the pool is live while `self` exists.
        unsafe { sys::rte_mempool_avail_count(self.inner.raw.as_ptr()) }
    }

    /// Mbufs out of the pool: held by frames, by a device's RX ring, or
    /// queued for transmission (`rte_mempool_in_use_count`).
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: the pool is live while `self` exists.
        unsafe { sys::rte_mempool_in_use_count(self.inner.raw.as_ptr()) }
    }

    /// An empty mbuf with the standard headroom (128 bytes), or `None`
    /// when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is a live pktmbuf pool.
        let m = unsafe { sys::insane_rte_pktmbuf_alloc(self.inner.raw.as_ptr()) };
        // SAFETY: a fresh, single-segment mbuf owned by nobody else.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.raw.as_ptr()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: the pool is live; counting is always allowed.
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no mbuf of the pool exists anywhere (frames, device
            // rings: ports using it are closed first, as they hold a
            // handle), and this was the last handle.
            unsafe { sys::rte_mempool_free(self.raw.as_ptr()) };
        } else {
            tracing::warn!(
                pool = %self.name,
                in_use,
                "mempool still has mbufs out at its last handle's drop; leaving it allocated"
            );
        }
    }
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .field("avail", &self.avail_count())
            .finish()
    }
}

pub(crate) fn not_initialised(what: &str) -> Error {
    Error::other(
        io::ErrorKind::NotConnected,
        format!("{what}: the DPDK EAL is not initialised in this process (call Eal::init first)"),
    )
}
