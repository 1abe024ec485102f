//! Flow rules (`rte_flow`): the device itself steers a UDP destination to
//! one RX queue, so that its datagrams arrive on the queue of the core
//! that serves them instead of wherever RSS hashes them.
//!
//! Only devices whose PMD implements `rte_flow` (most physical NICs; among
//! the virtual ones `net_tap`, when the kernel has the `multiq` qdisc and
//! TC flower) accept rules; the others refuse them with a reason, which
//! [`Queue::steer_udp`] returns: the caller then relies on software
//! dispatch (`insane_net::stack::group`).

use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;
use std::ptr::NonNull;
use std::sync::Arc;

use insane_dpdk_sys as sys;

use crate::error::{Error, Result};
use crate::port::{Queue, Shared};

/// A flow rule installed on a port; removed (`rte_flow_destroy`) on drop.
#[derive(Debug)]
pub struct FlowRule {
    // Keeps the port open while the rule exists.
    port: Arc<Shared>,
    flow: NonNull<sys::rte_flow>,
    queue: u16,
}

// SAFETY: a rule is only a handle passed back to `rte_flow_destroy`,
// which ethdev serialises per port (it takes the port's flow lock for
// PMDs that are not thread-safe), from any thread.
unsafe impl Send for FlowRule {}
// SAFETY: `&FlowRule` gives no access to the handle.
unsafe impl Sync for FlowRule {}

impl FlowRule {
    /// The RX queue the rule sends its datagrams to.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

impl Drop for FlowRule {
    fn drop(&mut self) {
        let id = self.port.info.id;
        // SAFETY: the flow was created on this port, which is open (we
        // hold it), and is destroyed once.
        let rc = unsafe { sys::insane_flow_destroy(id, self.flow.as_ptr()) };
        if rc != 0 {
            tracing::warn!(
                "rte_flow_destroy(port {id}): {}",
                Error::errno("removing a flow rule", rc)
            );
        }
    }
}

impl Queue {
    /// Asks the device to deliver IPv4/UDP datagrams to `ip`:`udp_port` on
    /// this RX queue (a `rte_flow` rule: ETH / IPV4 dst / UDP dst → QUEUE),
    /// for as long as the returned rule lives.
    ///
    /// # Errors
    /// The PMD does not support `rte_flow` or this rule (the message
    /// gives its reason; kind [`Unsupported`](io::ErrorKind::Unsupported)
    /// for `ENOSYS`/`ENOTSUP`), or the device is out of rule space.
    pub fn steer_udp(&self, ip: Ipv4Addr, udp_port: u16) -> Result<FlowRule> {
        let port = self.shared();
        let id = port.info.id;
        let mut message: *const std::os::raw::c_char = std::ptr::null();
        // SAFETY: the port is open (the queue holds it); the address is
        // passed in network byte order as the shim expects; `message` is
        // writable and only set to a NUL-terminated string on failure.
        let flow = unsafe {
            sys::insane_flow_udp_to_queue(
                id,
                u32::from_ne_bytes(ip.octets()),
                udp_port,
                self.id(),
                &mut message,
            )
        };
        if let Some(flow) = NonNull::new(flow) {
            return Ok(FlowRule {
                port: port.clone(),
                flow,
                queue: self.id(),
            });
        }
        let reason = if message.is_null() {
            "no reason given".to_string()
        } else {
            // SAFETY: the PMD's message (or the shim's fallback) is a
            // NUL-terminated static string.
            unsafe { CStr::from_ptr(message) }
                .to_string_lossy()
                .into_owned()
        };
        let e = Error::rte_errno(format!(
            "rte_flow rule UDP {ip}:{udp_port} -> queue {} on port {id} ({})",
            self.id(),
            port.info.driver
        ));
        // The PMD's reason, unless it only repeats the errno's text.
        let text = if e.to_string().contains(&reason) {
            e.to_string()
        } else {
            format!("{e}; the PMD says: {reason}")
        };
        let kind = match e.raw_errno() {
            Some(libc::ENOSYS) | Some(libc::ENOTSUP) => io::ErrorKind::Unsupported,
            _ => e.kind(),
        };
        Err(Error::other(kind, text))
    }
}
