//! The userspace stack on AF_XDP: [`XdpDevice`] adapts an
//! [`insane_xdp::XdpSocket`] (one queue of one interface) to
//! [`FrameDevice`].
//!
//! Received frames are the socket's [`insane_xdp::XdpRxFrame`]s (UMEM frames,
//! back to the fill ring on drop), transmit buffers its
//! [`insane_xdp::XdpTxFrame`]s (UMEM frames with headroom, headers prepended
//! in place). The MAC address and MTU are read from the interface with
//! `SIOCGIFHWADDR` / `SIOCGIFMTU` in the calling thread's network
//! namespace.
//!
//! # What reaches the stack
//!
//! The XDP program redirects only what it is told to; everything else goes
//! to the kernel. [`XdpDevice::bind_port`] steers a UDP port (call it for
//! every port the [`Interface`](insane_stack::Interface) binds). For ARP and ICMP
//! there are two valid deployments:
//!
//! * **Own address** ([`XdpDevice::claim_address`]): the stack has an IPv4
//!   address the kernel does not have on this link. The program then
//!   redirects ARP whose target is that address (requests for it and the
//!   replies to the stack's own requests) and ICMP to it, so the stack
//!   resolves neighbours itself (cold cache) and answers ARP and ping. The
//!   kernel keeps its own address and all its other traffic. This is what
//!   the tests in `net/tests/xdp_stack.rs` use.
//! * **Shared address**: the stack uses the kernel's address and claims
//!   nothing; the kernel answers ARP and ping for it, and the stack needs
//!   its neighbours as static entries
//!   ([`Interface::add_static_neighbor`](insane_stack::Interface::add_static_neighbor)),
//!   since the ARP replies to its requests go to the kernel.

use std::io;
use std::net::Ipv4Addr;

use insane_stack::{EthernetAddress, FrameDevice};
use insane_xdp::XdpSocket;

use crate::qos::transport::stack::StackDevice;

/// An AF_XDP socket as the stack's [`FrameDevice`].
#[derive(Debug)]
pub struct XdpDevice {
    socket: XdpSocket,
    mac: EthernetAddress,
    mtu: usize,
}

impl XdpDevice {
    /// Wraps `socket`, reading the MAC address and MTU of its interface
    /// (in the calling thread's network namespace).
    ///
    /// # Errors
    /// The interface cannot be queried (the error names it).
    pub fn new(socket: XdpSocket) -> io::Result<Self> {
        let mac = interface_mac(socket.interface())?;
        let mtu = interface_mtu(socket.interface())?;
        Ok(Self {
            socket,
            mac: EthernetAddress(mac),
            mtu,
        })
    }

    /// The socket.
    pub fn socket(&self) -> &XdpSocket {
        &self.socket
    }

    /// Steers UDP datagrams to `port` to this socket (see
    /// [`XdpSocket::bind_port`]).
    ///
    /// # Errors
    /// The program's port map cannot be updated.
    pub fn bind_port(&self, port: u16) -> io::Result<()> {
        self.socket.bind_port(port)
    }

    /// Stops steering `port`.
    ///
    /// # Errors
    /// The program's port map cannot be updated.
    pub fn unbind_port(&self, port: u16) -> io::Result<()> {
        self.socket.unbind_port(port)
    }

    /// Steers ARP for `addr` and ICMP to `addr` to this socket: for a stack
    /// that owns `addr` while the kernel has another address (see the
    /// module documentation).
    ///
    /// # Errors
    /// The program's address map cannot be updated.
    pub fn claim_address(&self, addr: Ipv4Addr) -> io::Result<()> {
        self.socket.bind_address(addr)
    }

    /// One line for `explain()`: the socket's modes.
    pub fn explain(&self) -> String {
        self.socket.explain()
    }
}

impl FrameDevice for XdpDevice {
    type Rx = insane_xdp::XdpRxFrame;
    type Tx = insane_xdp::XdpTxFrame;

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn poll_rx(&mut self, max: usize, out: &mut impl FnMut(Self::Rx)) -> usize {
        // Reap completions, refill the fill ring, kick RX when needed.
        self.socket.drive();
        let mut n = 0;
        while n < max {
            match self.socket.recv() {
                Some(frame) => {
                    out(frame);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    fn rx_ready(&mut self) -> bool {
        self.socket.rx_ready()
    }

    fn alloc_tx(&mut self) -> Option<Self::Tx> {
        self.socket.tx_frame()
    }

    fn transmit(&mut self, frame: Self::Tx) -> Result<(), Self::Tx> {
        self.socket.enqueue(frame)
    }

    fn flush(&mut self) {
        self.socket.flush();
    }
}

/// `ifreq` for `name`, or an error naming it when it is too long.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.is_empty() || name.len() >= req.ifr_name.len() || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?}"),
        ));
    }
    for (dst, &b) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = b as libc::c_char;
    }
    Ok(req)
}

/// Runs interface ioctl `request` on `req` through a datagram socket.
fn if_ioctl(name: &str, request: libc::Ioctl, what: &str) -> io::Result<libc::ifreq> {
    let mut req = ifreq(name)?;
    // SAFETY: plain socket creation; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: `req` is a live, writable ifreq with a NUL-terminated name;
    // SIOCGIFHWADDR and SIOCGIFMTU write only inside it.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            request,
            &mut req as *mut libc::ifreq,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("reading the {what} of interface {name} failed: {e}"),
        ));
    }
    Ok(req)
}

/// The MAC address of `name` (`SIOCGIFHWADDR`).
fn interface_mac(name: &str) -> io::Result<[u8; 6]> {
    let req = if_ioctl(name, libc::SIOCGIFHWADDR, "MAC address")?;
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    if sa.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "interface {name} is not Ethernet (hardware type {})",
                sa.sa_family
            ),
        ));
    }
    let mut mac = [0u8; 6];
    for (dst, &b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *dst = b as u8;
    }
    Ok(mac)
}

/// The MTU of `name` (`SIOCGIFMTU`).
fn interface_mtu(name: &str) -> io::Result<usize> {
    let req = if_ioctl(name, libc::SIOCGIFMTU, "MTU")?;
    // SAFETY: SIOCGIFMTU filled the `ifru_mtu` member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    usize::try_from(mtu)
        .map_err(|_| io::Error::other(format!("interface {name} reports MTU {mtu}")))
}

impl StackDevice for XdpDevice {
    fn open_port(&mut self, port: u16) -> io::Result<()> {
        self.bind_port(port)
    }

    fn close_port(&mut self, port: u16) -> io::Result<()> {
        self.unbind_port(port)
    }

    fn describe(&self) -> String {
        self.explain()
    }

    fn max_rx_frame(&self) -> Option<usize> {
        Some(self.socket().max_rx_frame())
    }

    fn statistics(&self) -> String {
        match self.socket().stats() {
            Ok(s) => format!("{s:?}"),
            Err(e) => e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_no_ethernet_mac_and_missing_interfaces_are_named() {
        assert!(interface_mtu("lo").unwrap() >= 1500);
        let e = interface_mac("lo").unwrap_err();
        assert!(e.to_string().contains("lo"), "{e}");
        let e = interface_mtu("insane-nosuch0").unwrap_err();
        assert!(e.to_string().contains("insane-nosuch0"), "{e}");
        assert!(ifreq("a-name-much-too-long-for-ifreq").is_err());
    }
}
