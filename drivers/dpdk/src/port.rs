//! Ports and their queues: configuration, start, rx/tx bursts.

use std::collections::HashSet;
use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use insane_dpdk_sys as sys;

use crate::Eal;
use crate::error::{Error, Result};
use crate::mbuf::Mbuf;
use crate::mempool::{Mempool, not_initialised};
use crate::types::{Link, PortConfig, PortInfo, PortStats, QueueStats};

/// Frames per `rx_burst`/`tx_burst` call and per TX batch.
pub const BURST: usize = 32;

/// `rx_burst` calls between two link checks while the link is up.
const LINK_CHECK_EVERY: u32 = 64;

/// Ports opened by this process (a port is configured once).
static OPEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A configured and started DPDK port; its queues are taken by the cores
/// that poll them ([`take_queue`](Self::take_queue)).
///
/// The port is stopped and closed when the `Port` and all its [`Queue`]s
/// are gone.
#[derive(Debug)]
pub struct Port {
    shared: Arc<Shared>,
    queues: Vec<Option<Queue>>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) info: PortInfo,
    /// IPv4 and UDP checksums computed by the device on transmit
    /// (`RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | UDP_CKSUM` enabled).
    tx_checksum: bool,
    /// Queue pairs configured.
    queues: u16,
    /// Received flows spread over the queues by the device's hash (RSS
    /// over IPv4/UDP, configured with several queues where offered).
    rss: bool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let id = self.info.id;
        // SAFETY: no queue of the port exists any more (each holds an Arc
        // to this), so nothing polls it; stop and close are allowed on a
        // started port.
        unsafe {
            sys::rte_eth_dev_stop(id);
            sys::rte_eth_dev_close(id);
        }
        if let Some(open) = OPEN.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            open.remove(&id);
        }
    }
}

impl Port {
    /// Configures port `id` with `config.queues` RX/TX queue pairs (one
    /// mempool each, RSS over IPv4/UDP when there are several and the
    /// device supports it), sets the MTU and promiscuous mode when asked,
    /// and starts it (retrying as `config` says).
    ///
    /// # Errors
    /// The EAL is not initialised; the port does not exist (the message
    /// lists the ports there are: a `--vdev` that failed to probe is only
    /// logged by the EAL) or is already open; the device rejects the
    /// configuration (queues, descriptors, MTU) or does not start; a
    /// mempool cannot be created. Each message names the port and the
    /// failing call.
    ///
    /// # Examples
    /// ```no_run
    /// use insane_dpdk::{Eal, Port, PortConfig};
    /// Eal::init(["--no-pci", "--no-huge", "-m", "256",
    ///            "--file-prefix=doc-port", "--vdev=net_ring0"])?;
    /// let mut port = Port::open(0, &PortConfig::default())?;
    /// let mut queue = port.take_queue(0).expect("one queue");
    /// let mut frame = queue.alloc().expect("mbuf");
    /// assert!(frame.extend_from_slice(&[0u8; 60]));
    /// queue.enqueue(frame).expect("room in the batch");
    /// queue.flush();
    /// # Ok::<(), insane_dpdk::Error>(())
    /// ```
    pub fn open(id: u16, config: &PortConfig) -> Result<Port> {
        let eal = Eal::get().ok_or_else(|| not_initialised("opening a DPDK port"))?;
        // SAFETY: any id may be asked about.
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } != 1 {
            let there: Vec<String> = eal
                .ports()
                .unwrap_or_default()
                .into_iter()
                .map(|p| format!("{} ({})", p.id, p.name))
                .collect();
            return Err(Error::other(
                io::ErrorKind::NotFound,
                format!(
                    "DPDK port {id} does not exist; ports: [{}] (a --vdev that fails to probe is \
                     only logged by the EAL: check its arguments)",
                    there.join(", ")
                ),
            ));
        }
        if config.queues == 0 {
            return Err(Error::other(
                io::ErrorKind::InvalidInput,
                format!("port {id}: at least one queue is needed"),
            ));
        }
        {
            let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
            if !open.get_or_insert_with(HashSet::new).insert(id) {
                return Err(Error::other(
                    io::ErrorKind::AlreadyExists,
                    format!("DPDK port {id} is already open in this process"),
                ));
            }
        }
        match configure(id, config) {
            Ok(port) => Ok(port),
            Err(e) => {
                if let Some(open) = OPEN.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                    open.remove(&id);
                }
                Err(e)
            }
        }
    }

    /// The port as it was after configuration.
    pub fn info(&self) -> &PortInfo {
        &self.shared.info
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.shared.info.id
    }

    /// Takes queue pair `index` (to move it to the core that polls it);
    /// `None` when out of range or already taken.
    pub fn take_queue(&mut self, index: u16) -> Option<Queue> {
        self.queues.get_mut(usize::from(index))?.take()
    }

    /// The link state now (`rte_eth_link_get_nowait`).
    pub fn link(&self) -> Link {
        link_of(self.shared.info.id)
    }

    /// The device's counters.
    ///
    /// # Errors
    /// The PMD cannot report them.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = sys::rte_eth_stats::default();
        let id = self.shared.info.id;
        // SAFETY: the port is open; `s` is writable.
        let rc = unsafe { sys::rte_eth_stats_get(id, &mut s) };
        if rc != 0 {
            return Err(Error::errno(format!("rte_eth_stats_get(port {id})"), rc));
        }
        Ok(PortStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_no_mbuf: s.rx_nombuf,
        })
    }
}

fn configure(id: u16, config: &PortConfig) -> Result<Port> {
    let info = port_info(id)?;
    let queues = config.queues;
    if queues > info.max_rx_queues || queues > info.max_tx_queues {
        return Err(Error::other(
            io::ErrorKind::InvalidInput,
            format!(
                "port {id} ({}): {queues} queues asked, the device has at most {} RX / {} TX",
                info.driver, info.max_rx_queues, info.max_tx_queues
            ),
        ));
    }
    let mut conf = sys::rte_eth_conf::default();
    let mut dev = sys::rte_eth_dev_info::default();
    // SAFETY: the port exists; `dev` is writable.
    unsafe { sys::rte_eth_dev_info_get(id, &mut dev) };
    // IPv4 and UDP checksum verification by the NIC where it can: the
    // userspace stack then skips its software check for frames whose
    // mbuf flags say both are good (`Mbuf::rx_checksums_good`).
    // SAFETY: a constant defined in the shim.
    let rx_checksum = unsafe { sys::insane_rx_offload_ipv4_udp_cksum };
    if dev.rx_offload_capa & rx_checksum == rx_checksum {
        conf.rxmode.offloads |= rx_checksum;
    }
    // And checksum computation on transmit, which frames then request
    // one by one (`Mbuf::request_tx_checksums`).
    // SAFETY: constants defined in the shim.
    let tx_checksum =
        unsafe { sys::insane_tx_offload_ipv4_cksum | sys::insane_tx_offload_udp_cksum };
    let tx_checksum = if dev.tx_offload_capa & tx_checksum == tx_checksum {
        conf.txmode.offloads |= tx_checksum;
        true
    } else {
        false
    };
    let rss = queues > 1 && info.rss;
    if rss {
        conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
        // SAFETY: a constant defined in the shim.
        conf.rx_adv_conf.rss_conf.rss_hf =
            unsafe { sys::insane_rss_ip_udp } & dev.flow_type_rss_offloads;
    }
    // SAFETY: the port exists and is not started; `conf` is valid.
    let rc = unsafe { sys::rte_eth_dev_configure(id, queues, queues, &conf) };
    if rc != 0 {
        return Err(Error::errno(
            format!(
                "rte_eth_dev_configure(port {id} {}, {queues} queues)",
                info.driver
            ),
            rc,
        ));
    }
    let (mut rxd, mut txd) = (config.rx_descriptors, config.tx_descriptors);
    // SAFETY: the port is configured; both are writable.
    let rc = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rxd, &mut txd) };
    if rc != 0 {
        return Err(Error::errno(
            format!("rte_eth_dev_adjust_nb_rx_tx_desc(port {id})"),
            rc,
        ));
    }
    // SAFETY: the port exists.
    let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
    let socket = if socket < 0 {
        sys::SOCKET_ID_ANY
    } else {
        socket
    };
    let mut pools = Vec::with_capacity(usize::from(queues));
    if let Err(e) = set_up_and_start(id, config, &info, rxd, txd, socket, &mut pools) {
        // RX queues that were set up keep pointers to these pools inside
        // the device: never free them (leak the handles) rather than leave
        // the device pointing at freed memory.
        std::mem::forget(pools);
        return Err(e);
    }
    // The MTU may have changed: read the information again.
    let shared = Arc::new(Shared {
        info: port_info(id)?,
        tx_checksum,
        queues: config.queues,
        rss,
    });
    let queues = pools
        .into_iter()
        .zip(0..)
        .map(|(pool, q)| {
            Some(Queue {
                port: shared.clone(),
                pool,
                id: q,
                pending: Vec::with_capacity(BURST),
                stats: QueueStats::default(),
                polls_before_link_check: 0,
                tx_checksum: shared.tx_checksum,
            })
        })
        .collect();
    Ok(Port { shared, queues })
}

/// Sets up the queues (a new pool each, pushed to `pools`), the MAC and
/// MTU, starts the port (with retries) and sets promiscuous mode.
fn set_up_and_start(
    id: u16,
    config: &PortConfig,
    info: &PortInfo,
    rxd: u16,
    txd: u16,
    socket: i32,
    pools: &mut Vec<Mempool>,
) -> Result<()> {
    let queues = config.queues;
    for q in 0..queues {
        let pool = Mempool::create(&format!("p{id}q{q}"), &config.mempool)?;
        // Kept from now on (see the caller: never freed on failure).
        pools.push(pool.clone());
        // SAFETY: the port is configured and stopped; `pool` is a live
        // pktmbuf pool that outlives the queue's use of it (each Queue
        // holds a handle, and the port is closed before the last Queue's
        // handle goes: field order in Queue drops `port` first).
        let rc = unsafe {
            sys::rte_eth_rx_queue_setup(id, q, rxd, socket as u32, std::ptr::null(), pool.as_ptr())
        };
        if rc != 0 {
            return Err(Error::errno(
                format!("rte_eth_rx_queue_setup(port {id}, queue {q}, {rxd} descriptors)"),
                rc,
            ));
        }
        // SAFETY: as above.
        let rc =
            unsafe { sys::rte_eth_tx_queue_setup(id, q, txd, socket as u32, std::ptr::null()) };
        if rc != 0 {
            return Err(Error::errno(
                format!("rte_eth_tx_queue_setup(port {id}, queue {q}, {txd} descriptors)"),
                rc,
            ));
        }
    }
    if let Some(mtu) = config.mtu {
        // SAFETY: the port is configured.
        let rc = unsafe { sys::rte_eth_dev_set_mtu(id, mtu) };
        if rc != 0 {
            return Err(Error::errno(
                format!("rte_eth_dev_set_mtu(port {id}, {mtu})"),
                rc,
            ));
        }
    }
    if let Some(mac) = config.mac {
        let mut addr = sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: the port is configured; `addr` is a valid address.
        let rc = unsafe { sys::rte_eth_dev_default_mac_addr_set(id, &mut addr) };
        if rc != 0 {
            return Err(Error::errno(
                format!("rte_eth_dev_default_mac_addr_set(port {id})"),
                rc,
            ));
        }
    }
    let attempts = config.start_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        // SAFETY: the port is configured with its queues set up.
        let rc = unsafe { sys::rte_eth_dev_start(id) };
        if rc == 0 {
            break;
        }
        if attempt >= attempts {
            return Err(Error::errno(
                format!(
                    "rte_eth_dev_start(port {id} {}) after {attempt} attempt(s)",
                    info.driver
                ),
                rc,
            ));
        }
        std::thread::sleep(config.start_retry_delay);
    }
    if config.promiscuous {
        // SAFETY: the port is started.
        let rc = unsafe { sys::rte_eth_promiscuous_enable(id) };
        if rc != 0 && rc != -libc::ENOTSUP {
            return Err(Error::errno(
                format!("rte_eth_promiscuous_enable(port {id})"),
                rc,
            ));
        }
    }
    Ok(())
}

/// `rte_eth_link_get_nowait` as a [`Link`] (down when it fails).
fn link_of(id: u16) -> Link {
    let mut l = sys::rte_eth_link::default();
    // SAFETY: the port exists; `l` is writable.
    let rc = unsafe { sys::rte_eth_link_get_nowait(id, &mut l) };
    if rc != 0 {
        return Link::default();
    }
    Link {
        up: u32::from(l.link_status()) == sys::RTE_ETH_LINK_UP,
        speed_mbps: l.link_speed,
        full_duplex: l.link_duplex() != 0,
    }
}

/// What DPDK says about port `id`.
pub(crate) fn port_info(id: u16) -> Result<PortInfo> {
    let mut dev = sys::rte_eth_dev_info::default();
    // SAFETY: any id may be asked about; `dev` is writable.
    let rc = unsafe { sys::rte_eth_dev_info_get(id, &mut dev) };
    if rc != 0 {
        return Err(Error::errno(format!("rte_eth_dev_info_get(port {id})"), rc));
    }
    let cstr = |p: *const std::os::raw::c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: DPDK returns NUL-terminated strings that live as long
            // as the driver/device.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let mut name_buf = [0 as std::os::raw::c_char; 64];
    // SAFETY: the buffer has RTE_ETH_NAME_MAX_LEN (64) bytes.
    let name = if unsafe { sys::rte_eth_dev_get_name_by_port(id, name_buf.as_mut_ptr()) } == 0 {
        cstr(name_buf.as_ptr())
    } else {
        String::new()
    };
    let mut mac = sys::rte_ether_addr::default();
    // SAFETY: the port exists; `mac` is writable.
    unsafe { sys::rte_eth_macaddr_get(id, &mut mac) };
    let mut mtu = 0u16;
    // SAFETY: the port exists; `mtu` is writable.
    if unsafe { sys::rte_eth_dev_get_mtu(id, &mut mtu) } != 0 {
        mtu = 1500;
    }
    let names = |capa: u64, rx: bool| -> Vec<String> {
        (0..64)
            .map(|b| 1u64 << b)
            .filter(|bit| capa & bit != 0)
            .map(|bit| {
                // SAFETY: any value is accepted; a static string comes back.
                cstr(unsafe {
                    if rx {
                        sys::rte_eth_dev_rx_offload_name(bit)
                    } else {
                        sys::rte_eth_dev_tx_offload_name(bit)
                    }
                })
                .to_ascii_lowercase()
            })
            .collect()
    };
    // SAFETY: a constant defined in the shim.
    let rss_wanted = unsafe { sys::insane_rss_ip_udp };
    Ok(PortInfo {
        id,
        name,
        driver: cstr(dev.driver_name),
        mac: mac.addr_bytes,
        mtu,
        min_mtu: dev.min_mtu,
        max_mtu: dev.max_mtu,
        max_rx_queues: dev.max_rx_queues,
        max_tx_queues: dev.max_tx_queues,
        rx_offloads: names(dev.rx_offload_capa, true),
        tx_offloads: names(dev.tx_offload_capa, false),
        rss: dev.flow_type_rss_offloads & rss_wanted != 0,
        // SAFETY: the port exists.
        socket: unsafe { sys::rte_eth_dev_socket_id(id) },
    })
}

/// One RX/TX queue pair of a [`Port`] with its own mempool, polled by one
/// core: [`rx_burst`](Self::rx_burst) hands over received frames,
/// [`alloc`](Self::alloc) lends transmit buffers, [`enqueue`](Self::enqueue)
/// batches frames and sends a full batch at once, [`flush`](Self::flush)
/// sends the rest (call it when idle).
///
/// It is `Send` (move it to its core) but not shared: DPDK queues are
/// single-threaded.
///
/// On a port whose link is down it does not call `rx_burst` (the memif
/// PMD unmaps its shared memory from its control thread when the peer
/// goes, and an `rx_burst` at that moment can crash): it checks the link
/// every 64 calls while up and on every call while down. Applications
/// using `net_memif` should still stop polling before the peer closes.
#[derive(Debug)]
pub struct Queue {
    // Dropped before `pool`: the port closes (its RX ring's mbufs go back)
    // before the pool handle goes.
    port: Arc<Shared>,
    pool: Mempool,
    id: u16,
    pending: Vec<NonNull<sys::rte_mbuf>>,
    stats: QueueStats,
    /// Polls left before the link state is read again; 0: read it on the
    /// next poll (always, while the link is down).
    polls_before_link_check: u32,
    /// The port's TX checksum offload, here to spare the send path a
    /// pointer chase.
    tx_checksum: bool,
}

// SAFETY: the queue is used by one thread at a time (`&mut self` for every
// DPDK call); DPDK queues may be polled from any thread, one at a time;
// the pending mbufs are owned by the queue.
unsafe impl Send for Queue {}

impl Queue {
    /// The queue id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The port's information.
    pub fn port_info(&self) -> &PortInfo {
        &self.port.info
    }

    /// This queue's mempool.
    pub fn pool(&self) -> &Mempool {
        &self.pool
    }

    /// This queue's counters.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// The link state now.
    pub fn link(&self) -> Link {
        link_of(self.port.info.id)
    }

    /// Receives up to `max` frames (in bursts of [`BURST`]) and hands each
    /// to `out`, in arrival order; returns how many. Multi-segment frames
    /// are dropped and counted. Nothing is received while the link is down.
    ///
    /// Inlined into the busy-poll loop: an empty poll costs the PMD's
    /// receive call and a counter.
    #[inline]
    pub fn rx_burst(&mut self, max: usize, mut out: impl FnMut(Mbuf)) -> usize {
        if self.polls_before_link_check == 0 && !self.recheck_link() {
            return 0;
        }
        self.polls_before_link_check -= 1;
        let mut total = 0;
        // Not zeroed: the PMD writes the first `n` entries and only those
        // are read. Zeroing 256 bytes on every poll was half the cost of
        // an empty poll (the busy-poll loop's inner step).
        let mut bufs = [const { MaybeUninit::<*mut sys::rte_mbuf>::uninit() }; BURST];
        // At most max / BURST + 1 bursts; stops at the first short one.
        while total < max {
            let want = (max - total).min(BURST) as u16;
            // SAFETY: the port is started; queue `id` exists; `bufs` has
            // room for `want` pointers; this thread is the queue's only
            // user (`&mut self`).
            let n = unsafe {
                sys::insane_rte_eth_rx_burst(
                    self.port.info.id,
                    self.id,
                    bufs.as_mut_ptr().cast::<*mut sys::rte_mbuf>(),
                    want,
                )
            };
            let n = usize::from(n).min(BURST);
            for slot in &bufs[..n] {
                // SAFETY: rx_burst wrote the first `n` (<= want) pointers.
                let raw = unsafe { slot.assume_init() };
                let Some(raw) = NonNull::new(raw) else {
                    continue;
                };
                if Mbuf::raw_is_single_segment(raw) {
                    self.stats.rx += 1;
                    // SAFETY: the PMD handed this mbuf over: ours alone,
                    // single segment, reference count 1.
                    out(unsafe { Mbuf::from_raw(raw) });
                    total += 1;
                } else {
                    self.stats.rx_multi_segment += 1;
                    // SAFETY: ours; frees every segment.
                    unsafe { sys::insane_rte_pktmbuf_free(raw.as_ptr()) };
                }
            }
            if n < usize::from(want) {
                break;
            }
        }
        total
    }

    /// Reads the link state again (every [`LINK_CHECK_EVERY`] polls, and
    /// on every poll while it is down); false, counted, when it is down.
    #[cold]
    #[inline(never)]
    fn recheck_link(&mut self) -> bool {
        let up = self.link().up;
        if up {
            self.polls_before_link_check = LINK_CHECK_EVERY;
        } else {
            self.stats.rx_link_down += 1;
        }
        up
    }

    /// An empty transmit buffer from this queue's pool (128 bytes of
    /// headroom), or `None` when the pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        self.pool.alloc()
    }

    /// Adds `frame` to the TX batch; a full batch ([`BURST`]) is sent at
    /// once. When the PMD takes nothing of a full batch (its TX ring is
    /// full, or the link is down) the frame is given back.
    ///
    /// # Errors
    /// The frame, unchanged, when there is no room.
    #[inline]
    pub fn enqueue(&mut self, frame: Mbuf) -> Result<(), Mbuf> {
        if self.pending.len() >= BURST {
            self.flush();
            if self.pending.len() >= BURST {
                self.stats.tx_full += 1;
                return Err(frame);
            }
        }
        // SAFETY: into_raw never returns null.
        self.pending
            .push(unsafe { NonNull::new_unchecked(frame.into_raw()) });
        if self.pending.len() >= BURST {
            self.flush();
        }
        Ok(())
    }

    /// Whether the device computes IPv4 and UDP checksums on transmit for
    /// frames that ask ([`Mbuf::request_tx_checksums`]): enabled by
    /// [`Port::open`] where the device offers both.
    #[inline]
    pub fn tx_checksum_offload(&self) -> bool {
        self.tx_checksum
    }

    /// How many queue pairs the port has (this one among them).
    pub fn queue_count(&self) -> u16 {
        self.port.queues
    }

    /// Whether the device spreads received flows over the port's queues by
    /// hash (RSS over IPv4/UDP: enabled by [`Port::open`] with several
    /// queues where the device offers it).
    pub fn rss(&self) -> bool {
        self.port.rss
    }

    /// The port this queue belongs to (kept open by the queue).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.port
    }

    /// Frames waiting in the TX batch.
    #[inline]
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Sends the TX batch (`tx_burst`); frames the PMD does not take stay
    /// queued for the next flush. Returns how many were sent.
    ///
    /// Inlined where it is called, so that the busy-poll loop's flush of
    /// an empty batch costs a comparison, not a call.
    #[inline]
    pub fn flush(&mut self) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        self.flush_batch()
    }

    fn flush_batch(&mut self) -> usize {
        let n = self.pending.len() as u16;
        // SAFETY: `NonNull<rte_mbuf>` has the layout of `*mut rte_mbuf`;
        // the port is started; the PMD takes ownership of the first `sent`
        // mbufs, which are removed from `pending` below.
        let sent = unsafe {
            sys::insane_rte_eth_tx_burst(
                self.port.info.id,
                self.id,
                self.pending.as_mut_ptr().cast::<*mut sys::rte_mbuf>(),
                n,
            )
        };
        if usize::from(sent) == self.pending.len() {
            self.pending.clear();
        } else {
            self.pending.drain(..usize::from(sent));
        }
        self.stats.tx += u64::from(sent);
        usize::from(sent)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        for m in self.pending.drain(..) {
            // SAFETY: queued mbufs the PMD did not take are ours.
            unsafe { sys::insane_rte_pktmbuf_free(m.as_ptr()) };
        }
    }
}

/// Opens nothing: initialises the EAL with `eal` (or reuses this process's
/// EAL when the arguments match) and reports port `port`, its PMD and its
/// link, for the driver-selection policy.
///
/// # Errors
/// As [`Eal::init`], and port `port` does not exist.
pub fn probe<S: AsRef<str>>(eal: &[S], port: u16) -> Result<(PortInfo, Link)> {
    let eal = Eal::init(eal.iter().map(|s| s.as_ref()))?;
    // SAFETY: any id may be asked about.
    if unsafe { sys::rte_eth_dev_is_valid_port(port) } != 1 {
        return Err(Error::other(
            io::ErrorKind::NotFound,
            format!(
                "DPDK port {port} does not exist ({} ports after EAL init with {:?})",
                eal.port_count(),
                eal.args()
            ),
        ));
    }
    Ok((port_info(port)?, link_of(port)))
}
