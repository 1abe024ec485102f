//! The API in a build without libdpdk: every entry point returns
//! [`Error::unavailable`]; the handle types are uninhabited, so their
//! methods can never run.

use std::ops::{Deref, DerefMut};

use crate::error::{Error, Result};
use crate::types::{Link, MempoolConfig, PortConfig, PortInfo, PortStats, QueueStats};

/// Frames per burst.
pub const BURST: usize = 32;

#[derive(Debug, Clone, Copy)]
enum Never {}

/// The EAL (never initialised in this build).
#[derive(Debug)]
pub struct Eal(Never);

impl Eal {
    /// Always fails: DPDK is not available in this build.
    ///
    /// # Errors
    /// Always [`Error::unavailable`].
    pub fn init<I, S>(args: I) -> Result<&'static Eal>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        drop(args);
        Err(Error::unavailable())
    }

    /// Always `None`.
    pub fn get() -> Option<&'static Eal> {
        None
    }

    /// Unreachable.
    pub fn args(&self) -> &[String] {
        match self.0 {}
    }

    /// Unreachable.
    pub fn version(&self) -> &str {
        match self.0 {}
    }

    /// Unreachable.
    pub fn port_count(&self) -> u16 {
        match self.0 {}
    }

    /// Unreachable.
    ///
    /// # Errors
    /// Never returns.
    pub fn ports(&self) -> Result<Vec<PortInfo>> {
        match self.0 {}
    }

    /// Unreachable.
    ///
    /// # Errors
    /// Never returns.
    pub fn port_by_name(&self, _name: &str) -> Result<u16> {
        match self.0 {}
    }

    /// Unreachable.
    ///
    /// # Errors
    /// Never returns.
    pub fn register_thread(&self) -> Result<u32> {
        match self.0 {}
    }
}

/// A packet mempool (cannot exist in this build).
#[derive(Debug, Clone)]
pub struct Mempool(Never);

impl Drop for Mempool {
    fn drop(&mut self) {
        match self.0 {}
    }
}

impl Mempool {
    /// Always fails.
    ///
    /// # Errors
    /// Always [`Error::unavailable`].
    pub fn create(_tag: &str, _config: &MempoolConfig) -> Result<Self> {
        Err(Error::unavailable())
    }

    /// Unreachable.
    pub fn name(&self) -> &str {
        match self.0 {}
    }

    /// Unreachable.
    pub fn config(&self) -> &MempoolConfig {
        match self.0 {}
    }

    /// Unreachable.
    pub fn avail_count(&self) -> u32 {
        match self.0 {}
    }

    /// Unreachable.
    pub fn in_use_count(&self) -> u32 {
        match self.0 {}
    }

    /// Unreachable.
    pub fn alloc(&self) -> Option<Mbuf> {
        match self.0 {}
    }
}

/// An mbuf (cannot exist in this build).
#[derive(Debug)]
pub struct Mbuf(Never);

impl Drop for Mbuf {
    fn drop(&mut self) {
        match self.0 {}
    }
}

impl Mbuf {
    /// Unreachable.
    pub fn len(&self) -> usize {
        match self.0 {}
    }

    /// Unreachable.
    pub fn is_empty(&self) -> bool {
        match self.0 {}
    }

    /// Unreachable.
    pub fn headroom(&self) -> usize {
        match self.0 {}
    }

    /// Unreachable.
    pub fn tailroom(&self) -> usize {
        match self.0 {}
    }

    /// Unreachable.
    pub fn port(&self) -> u16 {
        match self.0 {}
    }

    /// Unreachable.
    pub fn rx_checksums_good(&self) -> bool {
        match self.0 {}
    }

    /// Unreachable.
    pub fn request_tx_checksums(&mut self, _l2_len: u16, _l3_len: u16) {
        match self.0 {}
    }

    /// Unreachable.
    pub fn clear_offload_flags(&mut self) {
        match self.0 {}
    }

    /// Unreachable.
    pub fn append(&mut self, _n: usize) -> Option<&mut [u8]> {
        match self.0 {}
    }

    /// Unreachable.
    pub fn prepend(&mut self, _n: usize) -> Option<&mut [u8]> {
        match self.0 {}
    }

    /// Unreachable.
    pub fn adj(&mut self, _n: usize) -> bool {
        match self.0 {}
    }

    /// Unreachable.
    pub fn truncate(&mut self, _len: usize) {
        match self.0 {}
    }

    /// Unreachable.
    pub fn extend_from_slice(&mut self, _bytes: &[u8]) -> bool {
        match self.0 {}
    }
}

impl Deref for Mbuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self.0 {}
    }
}

impl DerefMut for Mbuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self.0 {}
    }
}

/// A port (cannot exist in this build).
#[derive(Debug)]
pub struct Port(Never);

impl Drop for Port {
    fn drop(&mut self) {
        match self.0 {}
    }
}

impl Port {
    /// Always fails.
    ///
    /// # Errors
    /// Always [`Error::unavailable`].
    pub fn open(_id: u16, _config: &PortConfig) -> Result<Port> {
        Err(Error::unavailable())
    }

    /// Unreachable.
    pub fn info(&self) -> &PortInfo {
        match self.0 {}
    }

    /// Unreachable.
    pub fn id(&self) -> u16 {
        match self.0 {}
    }

    /// Unreachable.
    pub fn take_queue(&mut self, _index: u16) -> Option<Queue> {
        match self.0 {}
    }

    /// Unreachable.
    pub fn link(&self) -> Link {
        match self.0 {}
    }

    /// Unreachable.
    ///
    /// # Errors
    /// Never returns.
    pub fn stats(&self) -> Result<PortStats> {
        match self.0 {}
    }
}

/// A queue pair (cannot exist in this build).
#[derive(Debug)]
pub struct Queue(Never);

impl Drop for Queue {
    fn drop(&mut self) {
        match self.0 {}
    }
}

impl Queue {
    /// Unreachable.
    pub fn id(&self) -> u16 {
        match self.0 {}
    }

    /// Unreachable.
    pub fn port_info(&self) -> &PortInfo {
        match self.0 {}
    }

    /// Unreachable.
    pub fn pool(&self) -> &Mempool {
        match self.0 {}
    }

    /// Unreachable.
    pub fn stats(&self) -> QueueStats {
        match self.0 {}
    }

    /// Unreachable.
    pub fn link(&self) -> Link {
        match self.0 {}
    }

    /// Unreachable.
    pub fn rx_burst(&mut self, _max: usize, _out: impl FnMut(Mbuf)) -> usize {
        match self.0 {}
    }

    /// Unreachable.
    pub fn alloc(&self) -> Option<Mbuf> {
        match self.0 {}
    }

    /// Unreachable.
    ///
    /// # Errors
    /// Never returns.
    pub fn enqueue(&mut self, _frame: Mbuf) -> Result<(), Mbuf> {
        match self.0 {}
    }

    /// Unreachable.
    pub fn tx_checksum_offload(&self) -> bool {
        match self.0 {}
    }

    /// Unreachable.
    pub fn queue_count(&self) -> u16 {
        match self.0 {}
    }

    /// Unreachable.
    pub fn rss(&self) -> bool {
        match self.0 {}
    }

    /// Unreachable.
    ///
    /// # Errors
    /// Never returns.
    pub fn steer_udp(&self, _ip: std::net::Ipv4Addr, _udp_port: u16) -> Result<FlowRule> {
        match self.0 {}
    }

    /// Unreachable.
    pub fn pending(&self) -> usize {
        match self.0 {}
    }

    /// Unreachable.
    pub fn flush(&mut self) -> usize {
        match self.0 {}
    }
}

/// A flow rule (never created in this build).
#[derive(Debug)]
pub struct FlowRule(Never);

impl FlowRule {
    /// Unreachable.
    pub fn queue(&self) -> u16 {
        match self.0 {}
    }
}

/// Always fails.
///
/// # Errors
/// Always [`Error::unavailable`].
pub fn probe<S: AsRef<str>>(_eal: &[S], _port: u16) -> Result<(PortInfo, Link)> {
    Err(Error::unavailable())
}

/// Always fails.
///
/// # Errors
/// Always [`Error::unavailable`].
pub fn ring_pair(_size: u32) -> Result<(u16, u16)> {
    Err(Error::unavailable())
}

/// Always fails.
///
/// # Errors
/// Always [`Error::unavailable`].
pub fn ring_pair_with_queues(_size: u32, _queues: u16) -> Result<(u16, u16)> {
    Err(Error::unavailable())
}
