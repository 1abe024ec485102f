//! Plain data about ports, links, pools and queues (the same in builds
//! with and without libdpdk).

use std::time::Duration;

/// What a port is: from `rte_eth_dev_info_get` and friends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// The port id.
    pub id: u16,
    /// The device name (`net_memif0`, `net_ring0`, a PCI address).
    pub name: String,
    /// The poll-mode driver (`net_memif`, `net_ring`, `net_af_packet`).
    pub driver: String,
    /// The port's MAC address.
    pub mac: [u8; 6],
    /// The current MTU (IP MTU: the largest Ethernet payload).
    pub mtu: u16,
    /// The smallest MTU the device accepts.
    pub min_mtu: u16,
    /// The largest MTU the device accepts.
    pub max_mtu: u16,
    /// Most RX queues the device has.
    pub max_rx_queues: u16,
    /// Most TX queues the device has.
    pub max_tx_queues: u16,
    /// RX offload capabilities, as DPDK names them (`ipv4_cksum`, ...).
    pub rx_offloads: Vec<String>,
    /// TX offload capabilities, as DPDK names them.
    pub tx_offloads: Vec<String>,
    /// Whether the device can spread flows over RX queues by hash (RSS)
    /// on IPv4/UDP fields.
    pub rss: bool,
    /// The NUMA socket of the device (`-1`: any).
    pub socket: i32,
}

/// A port's link state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// Whether the link is up (for `net_memif`: the peer is connected).
    pub up: bool,
    /// Speed in Mbit/s as the PMD reports it (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// A port's counters (`rte_eth_stats_get`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets dropped by the device because its RX queue was full.
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Receive failures for lack of mbufs.
    pub rx_no_mbuf: u64,
}

/// A queue's own counters (kept by [`Queue`](crate::Queue)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Frames received and handed over.
    pub rx: u64,
    /// Frames handed to the PMD by `tx_burst`.
    pub tx: u64,
    /// Received frames dropped because they span several mbufs (scatter
    /// RX is not enabled, so only a misconfigured PMD produces them).
    pub rx_multi_segment: u64,
    /// Times [`Queue::enqueue`](crate::Queue::enqueue) gave a frame back
    /// because the batch was full and the PMD took nothing.
    pub tx_full: u64,
    /// `rx_burst` calls skipped because the link was down.
    pub rx_link_down: u64,
}

/// Sizes of a packet mempool (`rte_pktmbuf_pool_create`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Number of mbufs; `2^k - 1` uses memory best.
    pub mbufs: u32,
    /// Per-lcore cache size (at most 512 and at most `mbufs / 1.5`); used
    /// only by EAL threads (see [`Mempool`](crate::Mempool)).
    pub cache: u32,
    /// Bytes of each mbuf's data buffer, headroom included
    /// (`RTE_MBUF_DEFAULT_BUF_SIZE`, 2176: 128 headroom + 2048).
    pub data_room: u16,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        Self {
            mbufs: 8191,
            cache: 256,
            data_room: 2176,
        }
    }
}

/// How to set a port up ([`Port::open`](crate::Port::open)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// RX/TX queue pairs: one per core that polls the port. Each pair gets
    /// its own mempool. With more than one, RSS spreads flows over the RX
    /// queues when the device supports it.
    pub queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_descriptors: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_descriptors: u16,
    /// MTU to set, or `None` to keep the device's.
    pub mtu: Option<u16>,
    /// MAC address to set (`rte_eth_dev_default_mac_addr_set`), or `None`
    /// to keep the device's.
    pub mac: Option<[u8; 6]>,
    /// Each queue's mempool.
    pub mempool: MempoolConfig,
    /// Receive every frame, not only those to the port's MAC.
    pub promiscuous: bool,
    /// `rte_eth_dev_start` attempts (a `net_memif` client started before
    /// its server fails to start; later attempts succeed).
    pub start_attempts: u32,
    /// Pause between start attempts.
    pub start_retry_delay: Duration,
}

impl Default for PortConfig {
    fn default() -> Self {
        Self {
            queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            mtu: None,
            mac: None,
            mempool: MempoolConfig::default(),
            promiscuous: false,
            start_attempts: 1,
            start_retry_delay: Duration::from_millis(100),
        }
    }
}
