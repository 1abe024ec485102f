//! The XDP program: assembled here, loaded with `bpf(BPF_PROG_LOAD)`,
//! attached with a BPF link (`BPF_LINK_CREATE`, attach type `BPF_XDP`) so
//! that it is detached when the link descriptor closes, also when the
//! process dies.
//!
//! What it does, per received frame:
//!
//! - IPv4 (ethertype 0x0800), not a fragment (MF clear, offset 0), protocol
//!   UDP, header length ≥ 20 (options allowed), UDP header inside the frame,
//!   destination port in the **ports** hash map →
//!   `bpf_redirect_map(xsks, rx_queue_index, XDP_PASS)`: to the AF_XDP
//!   socket bound to the receiving queue, or to the kernel when that queue
//!   has no socket.
//! - ARP (ethertype 0x0806, at least 42 bytes) whose *target protocol
//!   address* is in the **addrs** hash map, and IPv4 ICMP whose destination
//!   address is in it → the same redirect. This is for a userspace stack
//!   that owns an IPv4 address of its own on the link
//!   ([`XdpProgram::add_address`]): it then answers ARP and ping for that
//!   address and receives the ARP replies to its own requests, while the
//!   kernel keeps its own address. With the map empty (the default) ARP and
//!   ICMP all go to the kernel, which is right when the stack and the
//!   kernel share one address (the kernel answers ARP and ping for both).
//!   When any address is claimed, a bound UDP port is redirected only for
//!   datagrams to a claimed address (the map then holds the marker key
//!   0.0.0.0): a datagram to the kernel's own address on the same port
//!   still reaches the kernel.
//! - Everything else (other ARP, TCP, other ICMP, IPv6, other UDP ports,
//!   fragments, truncated frames) → `XDP_PASS`: the kernel handles it as
//!   if no program were attached.
//!
//! Port map keys are the destination port in network byte order (the two
//! bytes as they are on the wire); address map keys are the four address
//! bytes as on the wire.

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

use crate::asm::{Alu, Asm, Insn, Jmp, R0, R1, R2, R3, R4, R5, R6, R10, Size};
use crate::sys;

/// Where the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// In the driver, before an skb exists (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the generic receive path, after the skb is built
    /// (`XDP_FLAGS_SKB_MODE`): works on every interface, slower.
    Generic,
}

impl AttachMode {
    fn flags(self) -> u32 {
        match self {
            AttachMode::Native => sys::XDP_FLAGS_DRV_MODE,
            AttachMode::Generic => sys::XDP_FLAGS_SKB_MODE,
        }
    }

    /// `"native"` or `"generic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }
}

/// Which attach modes to try (configuration `xdp.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ModeRequest {
    /// Native, and generic when native fails (default).
    #[default]
    Auto,
    /// Native only.
    Native,
    /// Generic only.
    Generic,
}

impl std::str::FromStr for ModeRequest {
    type Err = io::Error;

    fn from_str(s: &str) -> io::Result<Self> {
        match s {
            "auto" => Ok(ModeRequest::Auto),
            "native" | "drv" => Ok(ModeRequest::Native),
            "generic" | "skb" => Ok(ModeRequest::Generic),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("XDP mode {s:?} is not one of auto, native, generic"),
            )),
        }
    }
}

/// Maximum number of queues the XSKMAP can address.
pub(crate) const MAX_QUEUES: u32 = 256;
/// Maximum number of distinct UDP ports redirected at once.
pub const MAX_PORTS: u32 = 1024;
/// Maximum number of IPv4 addresses whose ARP and ICMP are redirected.
pub const MAX_ADDRESSES: u32 = 64;

/// The XDP program attached to one interface, with its two maps. Shared
/// (through an `Arc`) by the sockets of all queues of that interface;
/// detached when the last owner drops it.
#[derive(Debug)]
pub struct XdpProgram {
    // Field order is drop order: the link first, so the program is
    // detached before the maps and the program close. Link and program are
    // only held for their lifetime.
    #[allow(dead_code)]
    link: OwnedFd,
    #[allow(dead_code)]
    prog: OwnedFd,
    xsks: OwnedFd,
    ports: OwnedFd,
    addrs: OwnedFd,
    interface: String,
    ifindex: u32,
    mode: AttachMode,
    notes: Vec<String>,
    /// Claims per redirected port.
    bound: Mutex<ClaimCounts<u16>>,
    /// Claims per redirected address.
    claimed: Mutex<ClaimCounts<Ipv4Addr>>,
}

impl XdpProgram {
    /// Loads the program and attaches it to `interface` in the requested
    /// mode (native first, then generic for [`ModeRequest::Auto`]).
    ///
    /// # Errors
    /// The interface does not exist, the caller lacks CAP_NET_ADMIN /
    /// CAP_BPF, the kernel is too old (BPF links for XDP need Linux 5.9),
    /// another XDP program is attached, or the verifier rejects the
    /// program (its log is included).
    pub fn attach(interface: &str, mode: ModeRequest) -> io::Result<Self> {
        let ifindex = sys::if_index(interface).ok_or_else(|| not_found(interface))?;
        Self::attach_index(interface, ifindex, mode)
    }

    pub(crate) fn attach_index(
        interface: &str,
        ifindex: u32,
        mode: ModeRequest,
    ) -> io::Result<Self> {
        let xsks = create_map(sys::BPF_MAP_TYPE_XSKMAP, 4, 4, MAX_QUEUES, "insane_xsks")?;
        let ports = create_map(sys::BPF_MAP_TYPE_HASH, 2, 1, MAX_PORTS, "insane_ports")?;
        let addrs = create_map(sys::BPF_MAP_TYPE_HASH, 4, 1, MAX_ADDRESSES, "insane_addrs")?;
        let prog = load(
            &program(
                ports.as_raw_fd(),
                addrs.as_raw_fd(),
                xsks.as_raw_fd(),
                sys::XDP_PASS,
            ),
            "insane_xdp",
        )?;
        let order: &[AttachMode] = match mode {
            ModeRequest::Auto => &[AttachMode::Native, AttachMode::Generic],
            ModeRequest::Native => &[AttachMode::Native],
            ModeRequest::Generic => &[AttachMode::Generic],
        };
        let mut notes = Vec::new();
        let mut last = None;
        for &m in order {
            match link_create(&prog, ifindex, m) {
                Ok(link) => {
                    tracing::debug!(interface, mode = m.as_str(), "XDP program attached");
                    return Ok(Self {
                        link,
                        prog,
                        xsks,
                        ports,
                        addrs,
                        interface: interface.to_string(),
                        ifindex,
                        mode: m,
                        notes,
                        bound: Mutex::new(ClaimCounts::default()),
                        claimed: Mutex::new(ClaimCounts::default()),
                    });
                }
                Err(e) => {
                    let e = attach_error(interface, m, e);
                    tracing::debug!(interface, mode = m.as_str(), error = %e, "XDP attach failed");
                    notes.push(e.to_string());
                    last = Some(e);
                }
            }
        }
        let e = last.expect("at least one mode tried");
        if notes.len() > 1 {
            Err(io::Error::new(e.kind(), notes.join("; ")))
        } else {
            Err(e)
        }
    }

    /// The mode the program runs in.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The interface it is attached to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Its interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Why better modes were not used (empty when the first choice worked).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Redirects UDP datagrams to `port` to the AF_XDP sockets. Ports are
    /// reference-counted: each `add_port` needs its own
    /// [`remove_port`](Self::remove_port) (sockets of several queues may
    /// claim the same port).
    ///
    /// # Errors
    /// The map is full ([`MAX_PORTS`]) or the update fails.
    pub fn add_port(&self, port: u16) -> io::Result<()> {
        let mut bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        bound.claim(port, || {
            map_update(&self.ports, &port.to_be_bytes(), &[1u8]).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot add UDP port {port} to the XDP port map: {e}"),
                )
            })
        })
    }

    /// Drops one claim on `port`; when none is left, its datagrams reach
    /// the kernel again. Removing a port that is not there is not an error.
    ///
    /// # Errors
    /// The map update fails.
    pub fn remove_port(&self, port: u16) -> io::Result<()> {
        let mut bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        bound.release(port, || {
            map_delete_present(&self.ports, &port.to_be_bytes(), || {
                format!("UDP port {port} from the XDP port map")
            })
        })
    }

    /// The UDP ports currently redirected, sorted.
    pub fn ports(&self) -> Vec<u16> {
        let bound = self.bound.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ports: Vec<u16> = bound.keys().collect();
        ports.sort_unstable();
        ports
    }

    /// Redirects ARP whose target is `addr` and ICMP to `addr` to the
    /// AF_XDP sockets, for a userspace stack that owns `addr` (an address
    /// the kernel does *not* have on this interface). Reference-counted
    /// like [`add_port`](Self::add_port). While any address is claimed,
    /// bound UDP ports are redirected only for datagrams to a claimed
    /// address (the map's key 0.0.0.0 marks that; it takes one of the
    /// [`MAX_ADDRESSES`] entries).
    ///
    /// # Errors
    /// `addr` is 0.0.0.0, the map is full ([`MAX_ADDRESSES`]) or the
    /// update fails.
    pub fn add_address(&self, addr: Ipv4Addr) -> io::Result<()> {
        if addr.is_unspecified() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "0.0.0.0 cannot be claimed by a userspace stack",
            ));
        }
        let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        if claimed.is_empty() {
            // The marker: from now on bound UDP ports are redirected only
            // for claimed destination addresses.
            map_update(&self.addrs, &[0; 4], &[1u8]).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot add the claim marker to the XDP address map: {e}"),
                )
            })?;
        }
        claimed.claim(addr, || {
            map_update(&self.addrs, &addr.octets(), &[1u8]).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot add IPv4 address {addr} to the XDP address map: {e}"),
                )
            })
        })
    }

    /// Drops one claim on `addr`; when none is left its ARP and ICMP reach
    /// the kernel again. Removing an absent address is not an error.
    ///
    /// # Errors
    /// The map update fails.
    pub fn remove_address(&self, addr: Ipv4Addr) -> io::Result<()> {
        let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        claimed.release(addr, || {
            map_delete_present(&self.addrs, &addr.octets(), || {
                format!("IPv4 address {addr} from the XDP address map")
            })
        })?;
        if claimed.is_empty() {
            // No claims left: bound ports are redirected whatever their
            // destination address again.
            map_delete_present(&self.addrs, &[0; 4], || {
                "the claim marker from the XDP address map".into()
            })?;
        }
        Ok(())
    }

    /// The addresses whose ARP and ICMP are redirected, sorted.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        let claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        let mut addrs: Vec<Ipv4Addr> = claimed.keys().collect();
        addrs.sort_unstable();
        addrs
    }

    /// Points queue `queue`'s XSKMAP entry at socket `fd`.
    pub(crate) fn set_socket(&self, queue: u32, fd: i32) -> io::Result<()> {
        map_update(&self.xsks, &queue.to_ne_bytes(), &fd.to_ne_bytes()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot insert the AF_XDP socket of {} queue {queue} into the XSKMAP: {e}",
                    self.interface
                ),
            )
        })
    }

    /// Removes queue `queue`'s XSKMAP entry (closing the socket does this
    /// too).
    pub(crate) fn clear_socket(&self, queue: u32) {
        let _ = map_delete(&self.xsks, &queue.to_ne_bytes());
    }
}

/// The program text. `miss` is the verdict when a port matches but the
/// receiving queue has no socket (XDP_PASS in production; the unit tests
/// use XDP_DROP to tell "matched" from "not matched").
pub(crate) fn program(ports_fd: i32, addrs_fd: i32, xsks_fd: i32, miss: i32) -> Vec<Insn> {
    const ETH_HLEN: i32 = 14;
    const ARP_LEN: i32 = 28;
    let mut a = Asm::default();
    let pass = a.label();
    let arp = a.label();
    let icmp = a.label();
    let lookup_addr = a.label();
    let redirect = a.label();

    a.alu64_reg(Alu::Mov, R6, R1); // r6 = ctx
    a.load(Size::W, R2, R6, 0); // r2 = ctx->data
    a.load(Size::W, R3, R6, 4); // r3 = ctx->data_end
    a.alu64_reg(Alu::Mov, R4, R2);
    a.alu64_imm(Alu::Add, R4, ETH_HLEN + 20);
    a.jump_reg(Jmp::Gt, R4, R3, pass); // Ethernet + minimal IPv4 header present?
    a.load(Size::H, R5, R2, 12); // ethertype (wire order, read little-endian)
    a.jump_imm(Jmp::Eq, R5, 0x0608, arp); // 0x0806 ARP
    a.jump_imm(Jmp::Ne, R5, 0x0008, pass); // 0x0800 IPv4
    a.load(Size::B, R5, R2, ETH_HLEN as i16 + 9); // protocol
    a.jump_imm(Jmp::Eq, R5, 1, icmp); // ICMP
    a.jump_imm(Jmp::Ne, R5, 17, pass); // UDP
    a.load(Size::H, R5, R2, ETH_HLEN as i16 + 6); // flags + fragment offset
    a.alu64_imm(Alu::And, R5, 0xff3f); // MF | offset (0x3fff on the wire)
    a.jump_imm(Jmp::Ne, R5, 0, pass); // fragments go to the kernel
    a.load(Size::B, R5, R2, ETH_HLEN as i16); // version | IHL
    a.alu64_imm(Alu::And, R5, 0x0f);
    a.jump_imm(Jmp::Lt, R5, 5, pass); // IHL < 5: malformed
    a.alu64_imm(Alu::Lsh, R5, 2); // IPv4 header length in bytes (20..=60)
    a.alu64_reg(Alu::Add, R2, R5); // r2 = data + IP header length
    a.alu64_reg(Alu::Mov, R4, R2);
    a.alu64_imm(Alu::Add, R4, ETH_HLEN + 8);
    a.jump_reg(Jmp::Gt, R4, R3, pass); // UDP header present?
    a.load(Size::H, R5, R2, ETH_HLEN as i16 + 2); // destination port
    a.store(Size::H, R10, R5, -2); // key on the stack
    a.load_map_fd(R1, ports_fd);
    a.alu64_reg(Alu::Mov, R2, R10);
    a.alu64_imm(Alu::Add, R2, -2);
    a.call(sys::BPF_FUNC_MAP_LOOKUP_ELEM);
    a.jump_imm(Jmp::Eq, R0, 0, pass); // port not bound
    // Bound port. With addresses claimed (the marker key 0.0.0.0 is in
    // `addrs`), only datagrams to a claimed address are ours: one to the
    // kernel's own address on that port stays the kernel's.
    a.load(Size::W, R2, R6, 0); // r2 = ctx->data (registers were clobbered)
    a.load(Size::W, R3, R6, 4); // r3 = ctx->data_end
    a.alu64_reg(Alu::Mov, R4, R2);
    a.alu64_imm(Alu::Add, R4, ETH_HLEN + 20);
    a.jump_reg(Jmp::Gt, R4, R3, pass); // (checked before; the verifier needs it again)
    a.load(Size::W, R5, R2, ETH_HLEN as i16 + 16); // IPv4 destination
    a.store(Size::W, R10, R5, -8);
    a.load_map_fd(R1, addrs_fd);
    a.alu64_reg(Alu::Mov, R2, R10);
    a.alu64_imm(Alu::Add, R2, -8);
    a.call(sys::BPF_FUNC_MAP_LOOKUP_ELEM);
    a.jump_imm(Jmp::Ne, R0, 0, redirect); // to a claimed address
    a.alu64_imm(Alu::Mov, R5, 0);
    a.store(Size::W, R10, R5, -8); // key 0.0.0.0: the "addresses claimed" marker
    a.load_map_fd(R1, addrs_fd);
    a.alu64_reg(Alu::Mov, R2, R10);
    a.alu64_imm(Alu::Add, R2, -8);
    a.call(sys::BPF_FUNC_MAP_LOOKUP_ELEM);
    a.jump_imm(Jmp::Ne, R0, 0, pass); // claims exist, and this is not one
    a.bind(redirect);
    a.load(Size::W, R2, R6, 16); // ctx->rx_queue_index
    a.load_map_fd(R1, xsks_fd);
    a.alu64_imm(Alu::Mov, R3, miss); // verdict when the queue has no socket
    a.call(sys::BPF_FUNC_REDIRECT_MAP);
    a.exit();

    // ICMP: the IPv4 destination (inside the 34 bytes checked above).
    a.bind(icmp);
    a.load(Size::W, R5, R2, ETH_HLEN as i16 + 16);
    a.jump(lookup_addr);

    // ARP: the target protocol address (offset 24 of the ARP body).
    a.bind(arp);
    a.alu64_reg(Alu::Mov, R4, R2);
    a.alu64_imm(Alu::Add, R4, ETH_HLEN + ARP_LEN);
    a.jump_reg(Jmp::Gt, R4, R3, pass); // whole ARP body present?
    a.load(Size::W, R5, R2, ETH_HLEN as i16 + 24);

    // r5 = an IPv4 address (wire order): redirect if it is in `addrs`
    // (never 0.0.0.0, the marker key).
    a.bind(lookup_addr);
    a.jump_imm(Jmp::Eq, R5, 0, pass);
    a.store(Size::W, R10, R5, -8); // key on the stack
    a.load_map_fd(R1, addrs_fd);
    a.alu64_reg(Alu::Mov, R2, R10);
    a.alu64_imm(Alu::Add, R2, -8);
    a.call(sys::BPF_FUNC_MAP_LOOKUP_ELEM);
    a.jump_imm(Jmp::Ne, R0, 0, redirect); // an address we own

    a.bind(pass);
    a.alu64_imm(Alu::Mov, R0, sys::XDP_PASS);
    a.exit();
    a.finish()
}

fn not_found(interface: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("interface {interface} not found"),
    )
}

/// Adds the capability hint to EPERM/EACCES errors of bpf(2).
fn bpf_error(what: &str, e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{what} failed: {e}; needs CAP_NET_ADMIN and CAP_BPF (or CAP_SYS_ADMIN){}",
                if sys::has_cap_net_admin() {
                    ""
                } else {
                    " (the calling thread lacks CAP_NET_ADMIN)"
                }
            ),
        ),
        _ => io::Error::new(e.kind(), format!("{what} failed: {e}")),
    }
}

fn create_map(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut attr = sys::MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries: max,
        map_name: sys::obj_name(name),
        ..Default::default()
    };
    // SAFETY: BPF_MAP_CREATE reads only the plain fields of `attr`.
    unsafe { sys::bpf_fd(sys::BPF_MAP_CREATE, &mut attr) }.map_err(|e| {
        let e = bpf_error(&format!("bpf(BPF_MAP_CREATE) of {name}"), e);
        if e.kind() == io::ErrorKind::InvalidInput && map_type == sys::BPF_MAP_TYPE_XSKMAP {
            io::Error::new(
                e.kind(),
                format!("{e} (kernel too old for XSKMAP? needs Linux >= 4.18)"),
            )
        } else {
            e
        }
    })
}

fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = sys::MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: key and value point to live buffers of the map's key and value
    // sizes (callers pass the sizes the map was created with); the kernel
    // only reads them.
    unsafe { sys::bpf(sys::BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
}

fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<()> {
    let mut attr = sys::MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: key points to a live buffer of the map's key size; the kernel
    // only reads it.
    unsafe { sys::bpf(sys::BPF_MAP_DELETE_ELEM, &mut attr) }.map(drop)
}

/// Deletes `key` from `map`; a key that is not there (ENOENT) is not an
/// error. `what` names the entry for the error message ("UDP port 7000
/// from the XDP port map").
fn map_delete_present(map: &OwnedFd, key: &[u8], what: impl FnOnce() -> String) -> io::Result<()> {
    match map_delete(map, key) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(io::Error::new(
            e.kind(),
            format!("cannot remove {}: {e}", what()),
        )),
        _ => Ok(()),
    }
}

/// Reference counts of the keys claimed in a map (UDP ports, addresses):
/// several sockets or endpoints may claim one key; the map entry is added
/// with the first claim and removed with the last.
#[derive(Debug)]
struct ClaimCounts<K>(HashMap<K, u32>);

impl<K> Default for ClaimCounts<K> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<K: Copy + Eq + std::hash::Hash> ClaimCounts<K> {
    /// Counts one more claim on `key`, running `add` (the map update)
    /// first when it is the first; a failed `add` counts nothing.
    fn claim(&mut self, key: K, add: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let count = self.0.get(&key).copied().unwrap_or(0);
        if count == 0 {
            add()?;
        }
        self.0.insert(key, count + 1);
        Ok(())
    }

    /// Drops one claim on `key`, running `remove` (the map delete) when
    /// it was the last; an unclaimed key is not an error. A failed
    /// `remove` keeps the last claim.
    fn release(&mut self, key: K, remove: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        match self.0.get(&key).copied() {
            None => Ok(()),
            Some(n) if n > 1 => {
                self.0.insert(key, n - 1);
                Ok(())
            }
            Some(_) => {
                remove()?;
                self.0.remove(&key);
                Ok(())
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn keys(&self) -> impl Iterator<Item = K> + '_ {
        self.0.keys().copied()
    }
}

/// Loads `insns` as an XDP program; on rejection loads again with the
/// verifier log enabled and returns the log in the error.
/// How many times `BPF_PROG_LOAD` is tried while the kernel answers
/// EAGAIN.
const LOAD_ATTEMPTS: u32 = 5;

pub(crate) fn load(insns: &[Insn], name: &str) -> io::Result<OwnedFd> {
    const LICENSE: &[u8] = b"Dual MIT/GPL\0";
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = sys::ProgLoadAttr {
            prog_type: sys::BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            prog_name: sys::obj_name(name),
            expected_attach_type: sys::BPF_XDP,
            ..Default::default()
        };
        if let Some(buf) = log {
            attr.log_level = 1;
            attr.log_size = buf.len() as u32;
            attr.log_buf = buf.as_mut_ptr() as u64;
        }
        // The kernel may answer EAGAIN to a program it would load (seen
        // here under CPU load, with a clean verifier log): retry, as
        // libbpf does (PROG_LOAD_ATTEMPTS, 5).
        let mut tries = 0;
        loop {
            tries += 1;
            // SAFETY: `insns` and `LICENSE` are live for the call and are
            // only read; the log buffer, when given, is live and writable
            // for `log_size` bytes.
            match unsafe { sys::bpf_fd(sys::BPF_PROG_LOAD, &mut attr) } {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < LOAD_ATTEMPTS => {}
                loaded => return loaded,
            }
        }
    };
    match attempt(None) {
        Ok(fd) => Ok(fd),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => {
            Err(bpf_error("bpf(BPF_PROG_LOAD) of the XDP program", e))
        }
        Err(e) => {
            let mut log = vec![0u8; 64 * 1024];
            let _ = attempt(Some(&mut log));
            let text = sys::c_buf_to_string(&log);
            Err(io::Error::new(
                e.kind(),
                format!("bpf(BPF_PROG_LOAD) of the XDP program failed: {e}; verifier log:\n{text}"),
            ))
        }
    }
}

fn link_create(prog: &OwnedFd, ifindex: u32, mode: AttachMode) -> io::Result<OwnedFd> {
    let mut attr = sys::LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: sys::BPF_XDP,
        flags: mode.flags(),
    };
    // SAFETY: BPF_LINK_CREATE reads only the plain fields of `attr`.
    unsafe { sys::bpf_fd(sys::BPF_LINK_CREATE, &mut attr) }
}

fn attach_error(interface: &str, mode: AttachMode, e: io::Error) -> io::Error {
    let what = format!(
        "attaching the XDP program to {interface} in {} mode",
        mode.as_str()
    );
    let hint = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => return bpf_error(&what, e),
        Some(libc::EEXIST) => {
            " (an XDP program in the other mode is attached; native and generic cannot be active at once)"
        }
        Some(libc::EBUSY) => " (another XDP program is already attached to this interface)",
        Some(libc::EOPNOTSUPP) => " (the driver has no native XDP support)",
        Some(libc::ERANGE) => " (MTU too large for native XDP on this driver)",
        Some(libc::EINVAL) if mode == AttachMode::Native => {
            " (driver refused native XDP, e.g. MTU too large or not supported)"
        }
        Some(libc::EINVAL) => " (kernel too old? XDP through BPF_LINK_CREATE needs Linux >= 5.9)",
        Some(libc::ENODEV) => " (interface disappeared)",
        _ => "",
    };
    let name = sys::errno_name(&e);
    let sep = if name.is_empty() { "" } else { " " };
    io::Error::new(e.kind(), format!("{what} failed: {e}{sep}{name}{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_has_no_unbound_labels_and_ends_in_exit() {
        let p = program(3, 4, 5, sys::XDP_PASS);
        assert!(p.len() < 96, "{} instructions", p.len());
        assert_eq!(p.last().unwrap().code, 0x95);
        // Every jump lands inside the program.
        for (i, insn) in p.iter().enumerate() {
            let class = insn.code & 0x07;
            let op = insn.code & 0xf0;
            if class == 0x05 && op != 0x80 && op != 0x90 {
                let target = i as isize + 1 + insn.off as isize;
                assert!((0..p.len() as isize).contains(&target), "insn {i}");
            }
        }
    }

    /// Root is needed to load programs; outside CI a non-root run skips.
    fn privileged(test: &str) -> bool {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test} needs root under CI"
        );
        eprintln!("skipping {test}: needs root to load BPF programs");
        false
    }

    /// Runs `prog` once on `frame` with BPF_PROG_TEST_RUN; returns the
    /// verdict.
    fn test_run(prog: &OwnedFd, frame: &[u8]) -> io::Result<i32> {
        let mut attr = sys::TestRunAttr {
            prog_fd: prog.as_raw_fd() as u32,
            data_size_in: frame.len() as u32,
            data_in: frame.as_ptr() as u64,
            repeat: 1,
            ..Default::default()
        };
        // SAFETY: `frame` is live and only read; no output buffers given.
        unsafe { sys::bpf(sys::BPF_PROG_TEST_RUN, &mut attr) }?;
        Ok(attr.retval as i32)
    }

    /// An Ethernet + IPv4 + UDP frame; `ihl` in words, `frag` is the
    /// flags/offset field, `proto` the IP protocol.
    fn frame(ethertype: u16, ihl: u8, frag: u16, proto: u8, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        let hlen = ihl as usize * 4;
        let mut ip = vec![0u8; hlen.max(20)];
        ip[0] = 0x40 | ihl;
        ip[2..4].copy_from_slice(&((hlen + 8 + 4) as u16).to_be_bytes());
        ip[6..8].copy_from_slice(&frag.to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&[10, 0, 0, 2]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 1]);
        f.extend_from_slice(&ip);
        let mut udp = vec![0u8; 8];
        udp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        udp[2..4].copy_from_slice(&dport.to_be_bytes());
        udp[4..6].copy_from_slice(&12u16.to_be_bytes());
        f.extend_from_slice(&udp);
        f.extend_from_slice(b"ping");
        f
    }

    /// An ARP request (Ethernet/IPv4) for `target`.
    fn arp_frame(target: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&0x0806u16.to_be_bytes());
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 10, 0, 0, 2]);
        f.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&target);
        f.resize(60, 0);
        f
    }

    #[test]
    fn program_redirects_only_bound_udp_ports() {
        if !privileged("program_redirects_only_bound_udp_ports") {
            return;
        }
        let xsks = create_map(sys::BPF_MAP_TYPE_XSKMAP, 4, 4, MAX_QUEUES, "t_xsks").unwrap();
        let ports = create_map(sys::BPF_MAP_TYPE_HASH, 2, 1, MAX_PORTS, "t_ports").unwrap();
        let addrs = create_map(sys::BPF_MAP_TYPE_HASH, 4, 1, MAX_ADDRESSES, "t_addrs").unwrap();
        // With XDP_DROP as the "matched but no socket" verdict, DROP means
        // "would be redirected" and PASS means "left to the kernel".
        let prog = load(
            &program(
                ports.as_raw_fd(),
                addrs.as_raw_fd(),
                xsks.as_raw_fd(),
                sys::XDP_DROP,
            ),
            "t_xdp",
        )
        .unwrap();
        map_update(&ports, &7777u16.to_be_bytes(), &[1]).unwrap();
        let (drop_, pass) = (sys::XDP_DROP, sys::XDP_PASS);
        let udp = 17;
        let cases: Vec<(&str, Vec<u8>, i32)> = vec![
            ("bound UDP port", frame(0x0800, 5, 0, udp, 7777), drop_),
            (
                "bound port, DF set",
                frame(0x0800, 5, 0x4000, udp, 7777),
                drop_,
            ),
            (
                "bound port, IP options",
                frame(0x0800, 6, 0, udp, 7777),
                drop_,
            ),
            (
                "bound port, max IP options",
                frame(0x0800, 15, 0, udp, 7777),
                drop_,
            ),
            ("other UDP port", frame(0x0800, 5, 0, udp, 7778), pass),
            ("TCP to the port", frame(0x0800, 5, 0, 6, 7777), pass),
            ("ARP", frame(0x0806, 5, 0, udp, 7777), pass),
            ("IPv6 ethertype", frame(0x86dd, 5, 0, udp, 7777), pass),
            (
                "first fragment (MF)",
                frame(0x0800, 5, 0x2000, udp, 7777),
                pass,
            ),
            ("later fragment", frame(0x0800, 5, 0x0010, udp, 7777), pass),
            ("IHL below 5", frame(0x0800, 4, 0, udp, 7777), pass),
            (
                "Ethernet header only",
                frame(0x0800, 5, 0, udp, 7777)[..14].to_vec(),
                pass,
            ),
            (
                "IP header cut",
                frame(0x0800, 5, 0, udp, 7777)[..30].to_vec(),
                pass,
            ),
            (
                "UDP header cut",
                frame(0x0800, 5, 0, udp, 7777)[..40].to_vec(),
                pass,
            ),
            (
                "options push UDP past the end",
                frame(0x0800, 15, 0, udp, 7777)[..80].to_vec(),
                pass,
            ),
        ];
        for (name, f, want) in &cases {
            let got = test_run(&prog, f)
                .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on {name} ({} bytes): {e}", f.len()));
            assert_eq!(got, *want, "{name}");
        }
        // Removing the port leaves its datagrams to the kernel.
        map_delete(&ports, &7777u16.to_be_bytes()).unwrap();
        assert_eq!(test_run(&prog, &cases[0].1).unwrap(), pass);

        // ARP for and ICMP to a claimed address are redirected; ARP for
        // other addresses, truncated ARP, and ICMP elsewhere are not.
        let icmp_to = |dst: [u8; 4]| {
            let mut f = frame(0x0800, 5, 0, 1, 0);
            f[30..34].copy_from_slice(&dst);
            f
        };
        assert_eq!(test_run(&prog, &arp_frame([10, 0, 0, 9])).unwrap(), pass);
        assert_eq!(test_run(&prog, &icmp_to([10, 0, 0, 9])).unwrap(), pass);
        map_update(&addrs, &[10, 0, 0, 9], &[1]).unwrap();
        assert_eq!(test_run(&prog, &arp_frame([10, 0, 0, 9])).unwrap(), drop_);
        assert_eq!(test_run(&prog, &icmp_to([10, 0, 0, 9])).unwrap(), drop_);
        assert_eq!(test_run(&prog, &arp_frame([10, 0, 0, 8])).unwrap(), pass);
        assert_eq!(test_run(&prog, &icmp_to([10, 0, 0, 8])).unwrap(), pass);
        assert_eq!(
            test_run(&prog, &arp_frame([10, 0, 0, 9])[..41]).unwrap(),
            pass,
            "truncated ARP"
        );
        // UDP to an unbound port of a claimed address stays the kernel's.
        let mut udp_to = frame(0x0800, 5, 0, udp, 7778);
        udp_to[30..34].copy_from_slice(&[10, 0, 0, 9]);
        assert_eq!(test_run(&prog, &udp_to).unwrap(), pass);

        // Bound port: without the claim marker every destination address
        // is redirected; with it (addresses claimed), only datagrams to a
        // claimed address are, and one to another address (the kernel's
        // own) on that port stays the kernel's.
        map_update(&ports, &7777u16.to_be_bytes(), &[1]).unwrap();
        let mut to_claimed = frame(0x0800, 5, 0, udp, 7777);
        to_claimed[30..34].copy_from_slice(&[10, 0, 0, 9]);
        let to_kernel = frame(0x0800, 5, 0, udp, 7777); // to 10.0.0.1
        assert_eq!(test_run(&prog, &to_kernel).unwrap(), drop_, "no marker");
        assert_eq!(test_run(&prog, &to_claimed).unwrap(), drop_, "no marker");
        map_update(&addrs, &[0, 0, 0, 0], &[1]).unwrap();
        assert_eq!(test_run(&prog, &to_claimed).unwrap(), drop_, "claimed");
        assert_eq!(test_run(&prog, &to_kernel).unwrap(), pass, "kernel's");
        // The marker itself is no address: ARP for / ICMP to 0.0.0.0 pass.
        assert_eq!(test_run(&prog, &arp_frame([0, 0, 0, 0])).unwrap(), pass);
        map_delete(&addrs, &[0, 0, 0, 0]).unwrap();
        map_delete(&ports, &7777u16.to_be_bytes()).unwrap();

        // The production program passes a bound port whose queue has no
        // socket (redirect_map falls back to XDP_PASS).
        let prog = load(
            &program(
                ports.as_raw_fd(),
                addrs.as_raw_fd(),
                xsks.as_raw_fd(),
                sys::XDP_PASS,
            ),
            "t_xdp2",
        )
        .unwrap();
        map_update(&ports, &7777u16.to_be_bytes(), &[1]).unwrap();
        assert_eq!(test_run(&prog, &cases[0].1).unwrap(), pass);
        assert_ne!(pass, sys::XDP_REDIRECT);
    }

    #[test]
    fn mode_request_parses() {
        assert_eq!("auto".parse::<ModeRequest>().unwrap(), ModeRequest::Auto);
        assert_eq!(
            "native".parse::<ModeRequest>().unwrap(),
            ModeRequest::Native
        );
        assert_eq!(
            "generic".parse::<ModeRequest>().unwrap(),
            ModeRequest::Generic
        );
        assert!("fast".parse::<ModeRequest>().is_err());
    }
}
